//! The headline figures in one table: ours against the code it replaces,
//! side by side in one run, as ratios.
//!
//! ```text
//! cargo run --release --example bench
//! ```
//!
//! Starts its own `redis-server` on a free loopback port when one is
//! installed, and says so when none is (the in-memory rows run either way).
//! Each comparison alternates the two sides over several rounds and takes
//! the median round of each, so that drift on a shared machine falls on
//! both alike. `cargo bench` measures the same things with criterion's
//! statistics.

#[path = "../benches/support/mod.rs"]
mod support;

use cache_runtime::Cache;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::writes::Writes;
use support::{Client, Ours, Profile, RedisServer, WARM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Rounds per side in each comparison.
const ROUNDS: usize = 9;
/// Concurrent tasks of the throughput rows.
const TASKS: u64 = 50;

/// One side's median round: time per operation, allocations per operation.
#[derive(Clone, Copy)]
struct Side {
    per_op: Duration,
    allocs: f64,
}

/// Times `ops` sequential calls of `f`, counting allocations.
async fn round(ops: u64, f: &impl AsyncFn(u64)) -> Side {
    let region = Region::new(GLOBAL);
    let start = Instant::now();
    for i in 0..ops {
        f(i).await;
    }
    let elapsed = start.elapsed();
    Side {
        per_op: elapsed / ops as u32,
        allocs: region.change().allocations as f64 / ops as f64,
    }
}

fn median(mut sides: Vec<Side>) -> Side {
    sides.sort_by_key(|s| s.per_op);
    sides[sides.len() / 2]
}

/// Alternates `ours` and `theirs`, `ROUNDS` rounds of `ops` calls each,
/// after a warm-up round each; which side goes first alternates too.
async fn compare(ops: u64, ours: impl AsyncFn(u64), theirs: impl AsyncFn(u64)) -> (Side, Side) {
    round(ops / 4, &ours).await;
    round(ops / 4, &theirs).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            a.push(round(ops, &ours).await);
            b.push(round(ops, &theirs).await);
        } else {
            b.push(round(ops, &theirs).await);
            a.push(round(ops, &ours).await);
        }
    }
    (median(a), median(b))
}

/// Operations per second of `TASKS` tasks calling `client` for `period`,
/// on warm keys.
async fn throughput<C: Client>(period: Duration, client: &Arc<C>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + period;
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (client, done) = (Arc::clone(client), Arc::clone(&done));
            tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < deadline {
                    let _ = client.get(i % WARM).await;
                    i += TASKS;
                    done.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("benchmark task panicked");
    }
    done.load(Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Alternates two throughput runs, `ROUNDS` rounds of `period` each
/// (which goes first alternates too); the median round of each side.
async fn compare_throughput<A: Client, B: Client>(
    period: Duration,
    a: &Arc<A>,
    b: &Arc<B>,
) -> (f64, f64) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            x.push(throughput(period, a).await);
            y.push(throughput(period, b).await);
        } else {
            y.push(throughput(period, b).await);
            x.push(throughput(period, a).await);
        }
    }
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (mid(x), mid(y))
}

/// One row of the table.
struct Row {
    name: &'static str,
    ours: String,
    theirs_name: &'static str,
    theirs: String,
    /// Ours over theirs; `None` for a figure reported alone.
    ratio: Option<f64>,
    goal: &'static str,
}

fn time(side: Side) -> String {
    let ns = side.per_op.as_nanos();
    let time = if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1_000.0)
    } else {
        format!("{ns} ns")
    };
    format!("{time} ({:.1} allocs)", side.allocs)
}

fn timed_row(
    name: &'static str,
    theirs_name: &'static str,
    goal: &'static str,
    sides: (Side, Side),
) -> Row {
    let (ours, theirs) = sides;
    Row {
        name,
        ours: time(ours),
        theirs_name,
        theirs: time(theirs),
        ratio: Some(ours.per_op.as_secs_f64() / theirs.per_op.as_secs_f64()),
        goal,
    }
}

fn throughput_row(
    name: &'static str,
    theirs_name: &'static str,
    goal: &'static str,
    ops: (f64, f64),
) -> Row {
    Row {
        name,
        ours: format!("{:.0} ops/s", ops.0),
        theirs_name,
        theirs: format!("{:.0} ops/s", ops.1),
        ratio: Some(ops.0 / ops.1),
        goal,
    }
}

fn redis_rows(server: &RedisServer, rows: &mut Vec<Row>) {
    let rt = support::runtime(2);
    let (ours, hand, theirs) = rt.block_on(support::connect_and_warm(&server.url()));
    rt.block_on(async {
        // One caller at a time, warm keys.
        let sides = compare(
            3_000,
            async |i| drop(ours.get(i % WARM).await),
            async |i| drop(hand.get(i % WARM).await),
        )
        .await;
        rows.push(timed_row(
            "Redis hit, 1 caller",
            "hand-written",
            "<= 1.05",
            sides,
        ));
        let sides = compare(
            3_000,
            async |i| drop(ours.get(i % WARM).await),
            async |i| drop(theirs.get(i % WARM).await),
        )
        .await;
        rows.push(timed_row(
            "Redis hit, 1 caller",
            "cached crate",
            "<= 1.00",
            sides,
        ));
        // Cold keys: each call a new id, never read before.
        let next = AtomicU64::new(1 << 32);
        let sides = compare(
            1_000,
            async |_| drop(ours.get(next.fetch_add(1, Relaxed)).await),
            async |_| drop(hand.get(next.fetch_add(1, Relaxed)).await),
        )
        .await;
        rows.push(timed_row(
            "Redis miss (lease on)",
            "hand-written GET+SET",
            "report",
            sides,
        ));

        // 50 tasks at once on one multiplexed connection per client.
        let period = Duration::from_millis(700);
        let ops = compare_throughput(period, &ours, &hand).await;
        rows.push(throughput_row(
            "Redis hits, 50 tasks",
            "hand-written",
            ">= 0.95",
            ops,
        ));
        let ops = compare_throughput(period, &ours, &theirs).await;
        rows.push(throughput_row(
            "Redis hits, 50 tasks",
            "cached crate",
            "> 1.00",
            ops,
        ));
    });
}

/// Writes per second that one flusher takes off a queue of `writes`
/// writes over `keys` keys, queued before it starts; and its body runs.
async fn flush_rate(writes: &Arc<Writes>, count: u64, keys: u64) -> (f64, u64) {
    let base = fastrand::u64(1 << 40..1 << 50);
    for i in 0..count {
        writes.write_behind(base + i % keys).await.expect("queued");
    }
    let start = Instant::now();
    let report = Writes::BEHIND
        .flusher_for(Arc::clone(writes))
        .batch(100)
        .start()
        .stop()
        .await;
    (
        count as f64 / start.elapsed().as_secs_f64(),
        report.body_runs,
    )
}

fn flush_row(name: &'static str, (rate, runs): (f64, u64), count: u64) -> Row {
    Row {
        name,
        ours: format!("{rate:.0} writes/s"),
        theirs_name: "",
        theirs: format!("{runs} body runs for {count} writes"),
        ratio: None,
        goal: "report",
    }
}

/// The cache's part of a write with each strategy (the body writes
/// nothing), against the cache write people add by hand; and how fast a
/// flusher drains a write-behind queue.
fn write_rows(server: &RedisServer, rows: &mut Vec<Row>) {
    support::runtime(2).block_on(async {
        let cache = Cache::builder()
            .redis(&server.url())
            .await
            .expect("connect");
        let writes = Writes::new(cache, Some(&server.url())).await;
        let sides = compare(
            3_000,
            async |i| drop(writes.write_through(i % WARM).await),
            async |i| writes.hand_set(i % WARM).await,
        )
        .await;
        rows.push(timed_row(
            "Redis write_through store",
            "hand-written SET",
            "report",
            sides,
        ));
        let sides = compare(
            3_000,
            async |i| drop(writes.invalidate(i % WARM).await),
            async |i| writes.hand_del(i % WARM).await,
        )
        .await;
        rows.push(timed_row(
            "Redis #[invalidates]",
            "hand-written DEL",
            "report",
            sides,
        ));
        let sides = compare(
            3_000,
            async |i| drop(writes.write_behind(i % WARM).await),
            async |i| writes.hand_set(i % WARM).await,
        )
        .await;
        rows.push(timed_row(
            "Redis write_behind call",
            "hand-written SET",
            "report",
            sides,
        ));
        // Drain what the calls above queued before timing flushes.
        Writes::BEHIND
            .flusher_for(Arc::clone(&writes))
            .start()
            .stop()
            .await;
        let rate = flush_rate(&writes, 20_000, 20_000).await;
        rows.push(flush_row(
            "Redis flush, 1 flusher, distinct keys",
            rate,
            20_000,
        ));
        let rate = flush_rate(&writes, 20_000, 100).await;
        rows.push(flush_row("Redis flush, 1 flusher, 100 keys", rate, 20_000));
    });
}

fn memory_rows(rows: &mut Vec<Row>) {
    support::runtime(1).block_on(async {
        let ours = Ours {
            cache: Cache::memory(),
        };
        let moka = support::moka();
        for id in 0..WARM {
            ours.profile(id).await.unwrap();
            moka.insert(id, Profile::sample(id)).await;
        }
        let sides = compare(
            200_000,
            async |i| drop(ours.profile(i % WARM).await),
            async |i| drop(moka.get(&(i % WARM)).await),
        )
        .await;
        rows.push(timed_row("Memory hit", "moka get", "<= 2.00", sides));
        let writes = Writes::new(Cache::memory(), None).await;
        let rate = flush_rate(&writes, 20_000, 20_000).await;
        rows.push(flush_row(
            "Memory flush, 1 flusher, distinct keys",
            rate,
            20_000,
        ));
    });
}

fn codec_rows(rows: &mut Vec<Row>) {
    let profile = Profile::sample(42);
    let envelope =
        cache_runtime::envelope::encode_value(&profile, &support::header()).expect("encodes");
    let raw = bincode::serde::encode_to_vec(&profile, support::bincode_config()).expect("encodes");
    let overhead = envelope.len() - raw.len();
    let sides = support::runtime(1).block_on(compare(
        200_000,
        async |_| {
            drop(std::hint::black_box(cache_runtime::envelope::decode::<
                Profile,
            >(&envelope)))
        },
        async |_| {
            let decoded: Result<(Profile, usize), _> = bincode::serde::decode_from_slice(
                std::hint::black_box(&raw),
                support::bincode_config(),
            );
            drop(std::hint::black_box(decoded));
        },
    ));
    let mut row = timed_row("Decode an entry", "raw bincode", "report", sides);
    row.name = "Decode an entry";
    row.goal = "report";
    rows.push(row);
    println!(
        "entry: {} bytes encoded, {} of them the envelope (goal: <= 16)",
        envelope.len(),
        overhead
    );
}

fn main() {
    let mut rows = Vec::new();
    match RedisServer::try_start() {
        Some(server) => {
            println!("redis: started redis-server on 127.0.0.1:{}", server.port());
            redis_rows(&server, &mut rows);
            write_rows(&server, &mut rows);
            if let Some(line) = support::redis_benchmark(&server) {
                println!("redis-benchmark -c 50 -t get on the same server: {line}");
            }
        }
        None => println!(
            "redis: redis-server is not installed, so the Redis rows are skipped \
             (scripts/test installs it; or apt-get install redis-server)"
        ),
    }
    memory_rows(&mut rows);
    codec_rows(&mut rows);

    println!();
    println!("| benchmark | ours | compared with | theirs | ours / theirs | goal |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let ratio = r
            .ratio
            .map_or_else(String::new, |ratio| format!("{ratio:.2}"));
        println!(
            "| {} | {} | {} | {} | {ratio} | {} |",
            r.name, r.ours, r.theirs_name, r.theirs, r.goal
        );
    }
    println!();
    println!("Times are medians of {ROUNDS} alternating rounds; allocations are per operation.");
}
