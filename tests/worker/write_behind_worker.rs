//! A flusher process for the cross-process write-behind tests
//! (`tests/write_behind_processes.rs`).
//!
//! `write-behind-worker <cache-url> <db-url> <body-ms> <claim-idle-ms>`
//! starts one flusher of `Stock::STOCK` (see `tests/support/stock.rs`),
//! prints `ready <consumer>`, and runs until its stdin closes; then it
//! drains, stops, and prints `stopped <taken> <claimed> <body_runs>
//! <flushed> <coalesced> <failures> <dead_lettered>`. The tests kill some
//! with SIGKILL instead.

#[path = "args.rs"]
mod args;
#[path = "../support/stock.rs"]
mod stock;

use args::arg;
use cache_runtime::Cache;
use std::io::Read;
use std::time::Duration;
use stock::Stock;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cache_url: String = arg(&args, 1, "cache url");
    let db_url: String = arg(&args, 2, "db url");
    let body = Duration::from_millis(arg(&args, 3, "body ms"));
    let claim_idle = Duration::from_millis(arg(&args, 4, "claim idle ms"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let flusher = runtime.block_on(async {
        let cache = Cache::builder()
            .redis(&cache_url)
            .await
            .expect("write-behind-worker: connect to redis");
        let stock = Stock::new(cache, &db_url, body).await;
        Stock::STOCK
            .flusher_for(stock)
            .batch(50)
            .poll(Duration::from_millis(10))
            .claim_idle(claim_idle)
            .body_timeout(Duration::from_secs(1))
            .backoff(Duration::from_millis(20), Duration::from_millis(500))
            .start()
    });
    println!("ready {}", flusher.consumer());
    // Runs until the test closes stdin (or kills the process).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let s = runtime.block_on(flusher.stop());
    println!(
        "stopped {} {} {} {} {} {} {}",
        s.taken, s.claimed, s.body_runs, s.flushed, s.coalesced, s.failures, s.dead_lettered
    );
}
