//! Write-behind on an inventory: 20 clients set the stock of 60 SKUs,
//! 10 000 writes in all, against a database that takes 2 ms a write and
//! goes down for 300 ms in the middle. Each write is acknowledged
//! as soon as the cache holds it and the queue has it; 4 flushers write the
//! database behind, one body per SKU's latest write (coalescing), retrying
//! through the outage. At the end the database holds every SKU's last
//! write, and the table says what it took.
//!
//! ```text
//! cargo run --release --example write_behind
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --example write_behind
//! ```

use cache_runtime::{cached, Cache, FlushStats, QueueStats};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 20;
const WRITES_PER_CLIENT: u64 = 500;
/// Each client owns 3 SKUs.
const SKUS: u64 = 3 * CLIENTS;
const FLUSHERS: usize = 4;

#[derive(Debug)]
enum InventoryError {
    DatabaseDown,
    Cache(cache_runtime::Error),
}

impl From<cache_runtime::Error> for InventoryError {
    fn from(e: cache_runtime::Error) -> Self {
        InventoryError::Cache(e)
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InventoryError::DatabaseDown => f.write_str("database down"),
            InventoryError::Cache(e) => write!(f, "cache: {e}"),
        }
    }
}

impl std::error::Error for InventoryError {}

/// A stand-in for the database: a table, 2 ms per write, a switch to take
/// it down, and counters.
#[derive(Default)]
struct Db {
    stock: Mutex<HashMap<String, u32>>,
    writes: AtomicU64,
    refused: AtomicU64,
    down: AtomicBool,
}

struct Inventory {
    cache: Cache,
    db: Db,
}

impl Inventory {
    /// Sets a SKU's stock: acknowledged once cached and queued; the body
    /// runs later, in a flusher.
    #[cached(
        strategy = "write_behind",
        key = "inventory:<sku>",
        value = qty,
        ttl = "10m",
        queue = "inventory",
        cache = self.cache,
        handle = INVENTORY
    )]
    async fn set_stock(&self, sku: &str, qty: u32) -> Result<(), InventoryError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if self.db.down.load(SeqCst) {
            self.db.refused.fetch_add(1, SeqCst);
            return Err(InventoryError::DatabaseDown);
        }
        self.db.writes.fetch_add(1, SeqCst);
        self.db.stock.lock().unwrap().insert(sku.to_owned(), qty);
        Ok(())
    }

    /// Reads a SKU's stock: the cache answers, pending writes included.
    #[cached(key = "inventory:<sku>", ttl = "10m", cache = self.cache)]
    async fn stock(&self, sku: &str) -> Result<Option<u32>, InventoryError> {
        Ok(self.db.stock.lock().unwrap().get(sku).copied())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = Cache::builder().namespace("example-write-behind");
    let cache = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("backend: Redis at {url}");
            builder.redis(&url).await?
        }
        Err(_) => {
            println!("backend: in memory (set REDIS_URL to use Redis)");
            builder.memory()
        }
    };
    let inventory = Arc::new(Inventory {
        cache,
        db: Db::default(),
    });
    let flushers: Vec<_> = (0..FLUSHERS)
        .map(|_| {
            Inventory::INVENTORY
                .flusher_for(Arc::clone(&inventory))
                .backoff(Duration::from_millis(50), Duration::from_millis(400))
                .start()
        })
        .collect();
    let queue = Inventory::INVENTORY.queue_for(&inventory);

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let inventory = Arc::clone(&inventory);
            tokio::spawn(async move {
                let mut last = HashMap::new();
                let mut slowest = Duration::ZERO;
                for i in 0..WRITES_PER_CLIENT {
                    // Client c owns SKUs c, c + 20 and c + 40: its
                    // writes to a SKU are in order, its last one known.
                    let sku = format!("sku-{}", client + CLIENTS * (i % 3));
                    let qty = fastrand::u32(..1_000);
                    let call = Instant::now();
                    inventory.set_stock(&sku, qty).await?;
                    slowest = slowest.max(call.elapsed());
                    last.insert(sku, qty);
                    // A client's pace: about a write a millisecond.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok::<_, InventoryError>((last, slowest))
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(100)).await;
    inventory.db.down.store(true, SeqCst);
    let during = queue.stats().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outage_end = queue.stats().await?;
    inventory.db.down.store(false, SeqCst);

    let mut last = HashMap::new();
    let mut slowest = Duration::ZERO;
    for client in clients {
        let (writes, slow) = client.await??;
        last.extend(writes);
        slowest = slowest.max(slow);
    }
    let acknowledged_in = started.elapsed();
    let acknowledged = inventory.cache.stats().queued;

    // Readers see every last write at once, flushed or not.
    for (sku, qty) in &last {
        assert_eq!(inventory.stock(sku).await?, Some(*qty), "{sku}");
    }

    let mut report = FlushStats::default();
    for flusher in flushers {
        let s = flusher.stop().await;
        report.body_runs += s.body_runs;
        report.flushed += s.flushed;
        report.coalesced += s.coalesced;
        report.failures += s.failures;
        report.claimed += s.claimed;
    }
    let flushed_in = started.elapsed();
    let after = queue.stats().await?;
    let db = inventory.db.stock.lock().unwrap().clone();
    let all_landed = last.iter().all(|(sku, qty)| db.get(sku) == Some(qty));

    let row = |what: &str, value: String| println!("| {what} | {value} |");
    println!();
    println!("| | |");
    println!("|---|---|");
    row(
        "writes acknowledged",
        format!(
            "{acknowledged} in {:.2} s (slowest call {:.1} ms)",
            acknowledged_in.as_secs_f64(),
            slowest.as_secs_f64() * 1_000.0
        ),
    );
    row(
        "body runs (database writes)",
        format!(
            "{} ({} succeeded, {} refused while the database was down)",
            report.body_runs,
            inventory.db.writes.load(SeqCst),
            inventory.db.refused.load(SeqCst)
        ),
    );
    row(
        "coalescing",
        format!(
            "{} writes flushed, {} superseded: {:.1} writes per database write",
            report.flushed,
            report.coalesced,
            acknowledged as f64 / inventory.db.writes.load(SeqCst).max(1) as f64
        ),
    );
    row("queue as the outage began", queue_state(&during));
    row("queue as the outage ended", queue_state(&outage_end));
    row(
        "queue at the end",
        format!(
            "{} pending, {} dead letters; all flushed {:.2} s after the start",
            after.depth,
            after.dead_letters,
            flushed_in.as_secs_f64()
        ),
    );
    row(
        "database holds every SKU's last write",
        format!("{all_landed} ({} SKUs)", last.len()),
    );
    assert!(all_landed && last.len() as u64 == SKUS);
    Ok(())
}

/// "462 pending, the oldest queued 152 ms ago".
fn queue_state(stats: &QueueStats) -> String {
    match stats.oldest_age {
        Some(age) => format!(
            "{} pending, the oldest queued {} ms ago",
            stats.depth,
            age.as_millis()
        ),
        None => "empty".to_owned(),
    }
}
