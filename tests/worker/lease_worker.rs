//! A separate process for the cross-process lease tests (`tests/stampede.rs`).
//!
//! `lease-worker <redis-url> <callers> <body-ms> <lease-ttl-ms> <lease-wait-ms>`
//! connects one cache to Redis, prints `ready`, then obeys lines on stdin:
//!
//! - `round <n> <start>`: at Unix time `<start>` ms, runs `<callers>`
//!   concurrent callers of key `stampede:<n>` (a body of `<body-ms>`), then
//!   prints `done <n> <answered> <loads> <lease_waits> <coalesced> <hits> <wait_timeouts>`:
//!   callers that got the round's value, and this process's body runs and
//!   cache counters during the round.
//! - `watch <n> <start> <ms>`: at Unix time `<start>` ms, `<callers>`
//!   readers read key `ahead:<n>` (refreshed ahead: TTL 2 s, refreshed at
//!   half of it) every 10 ms for `<ms>` milliseconds, then it prints
//!   `watched <n> <right> <reads> <misses> <loads>`: reads that got the
//!   round's value, of how many, and this process's misses and body runs.
//! - `hold <n>`: starts one caller of `stampede:<n>` whose body never ends,
//!   and prints `holding <n>` once it runs: the lease is this process's
//!   until the test kills it.

#[path = "args.rs"]
mod args;
#[path = "../support/stampede.rs"]
mod stampede;

use args::arg;
use cache_runtime::Cache;
use stampede::Node;
use std::io::{BufRead, Write};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url: String = arg(&args, 1, "redis url");
    let callers: usize = arg(&args, 2, "callers");
    let body = Duration::from_millis(arg(&args, 3, "body ms"));
    let lease_ttl = Duration::from_millis(arg(&args, 4, "lease ttl ms"));
    let lease_wait = Duration::from_millis(arg(&args, 5, "lease wait ms"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let node = runtime.block_on(async {
        let cache = Cache::builder()
            .lease_ttl(lease_ttl)
            .lease_wait(lease_wait)
            .redis(&url)
            .await
            .expect("lease-worker: connect to redis");
        Node::new(cache, body)
    });
    println!("ready");
    let mut holders = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("lease-worker: read stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        let out = match words.as_slice() {
            ["round", round, start] => {
                let (round, start): (u64, u64) = (round.parse().unwrap(), start.parse().unwrap());
                runtime.block_on(async {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                    tokio::time::sleep(Duration::from_millis(start).saturating_sub(now)).await;
                    let (loads, before) = (node.loads.load(SeqCst), node.cache.stats());
                    let answered = node.round(round, callers).await;
                    let after = node.cache.stats();
                    format!(
                        "done {round} {answered} {} {} {} {} {}",
                        node.loads.load(SeqCst) - loads,
                        after.lease_waits - before.lease_waits,
                        after.coalesced - before.coalesced,
                        after.hits - before.hits,
                        after.wait_timeouts - before.wait_timeouts,
                    )
                })
            }
            ["watch", round, start, ms] => {
                let (round, start, ms): (u64, u64, u64) = (
                    round.parse().unwrap(),
                    start.parse().unwrap(),
                    ms.parse().unwrap(),
                );
                runtime.block_on(async {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                    tokio::time::sleep(Duration::from_millis(start).saturating_sub(now)).await;
                    let (loads, before) = (node.loads.load(SeqCst), node.cache.stats());
                    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
                    let (right, reads) = node.watch(round, callers, until).await;
                    format!(
                        "watched {round} {right} {reads} {} {}",
                        node.cache.stats().misses - before.misses,
                        node.loads.load(SeqCst) - loads,
                    )
                })
            }
            ["hold", round] => {
                let round: u64 = round.parse().unwrap();
                holders.push(runtime.block_on(node.hold(round)));
                format!("holding {round}")
            }
            _ => panic!("lease-worker: unknown command {line:?}"),
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{out}")
            .and_then(|()| stdout.flush())
            .expect("lease-worker: write stdout");
    }
}
