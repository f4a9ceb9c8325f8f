//! Write-behind across OS processes and Redis restarts, on Redis only (the
//! in-memory queue is per process and not durable). The "database" is a
//! second `redis-server` that every process reaches.
//!
//! - 10 000 writes over 100 keys, 4 flusher processes, one killed with
//!   SIGKILL while it holds entries and started again: every key ends with
//!   its last acknowledged write, with at most one body run per write.
//! - Redis on `--appendonly yes --appendfsync always`, killed with SIGKILL
//!   and restarted mid-run: no acknowledged write is lost.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::child::ChildProcess;
use support::stock::Stock;
use support::RedisServer;

/// A `write-behind-worker` child process (see `tests/worker`).
struct Worker {
    process: ChildProcess,
    consumer: String,
}

/// What a worker's flusher did, as it printed it when stopped.
#[derive(Debug, Default, Clone, Copy)]
struct Stopped {
    taken: u64,
    claimed: u64,
    body_runs: u64,
    flushed: u64,
    coalesced: u64,
}

impl Worker {
    fn spawn(cache: &RedisServer, db: &RedisServer) -> Worker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_write-behind-worker"));
        command.args([cache.url(), db.url()]).args(["2", "1000"]); // body ms, claim idle ms
        let process = ChildProcess::spawn(&mut command, "write-behind-worker");
        let consumer = process.expect("ready ");
        Worker { process, consumer }
    }

    /// Closes its stdin: it drains, stops and reports.
    fn stop(mut self) -> Stopped {
        self.process.close_stdin();
        let n = self.process.expect_numbers("stopped ");
        self.process.wait();
        Stopped {
            taken: n[0],
            claimed: n[1],
            body_runs: n[2],
            flushed: n[3],
            coalesced: n[4],
        }
    }

    fn kill(&mut self) {
        self.process.kill();
    }
}

/// Entries pending in `consumer`'s name.
fn pending_for(cache: &RedisServer, consumer: &str) -> usize {
    let pending: Vec<redis::Value> = cache.query(
        redis::cmd("XPENDING")
            .arg("cache:wb:{stock}")
            .arg("flushers")
            .arg("-")
            .arg("+")
            .arg(10)
            .arg(consumer),
    );
    pending.len()
}

/// Waits until the stock queue holds nothing, for at most 60 s.
async fn drained(stock: &Stock) {
    let queue = Stock::STOCK.queue_for(stock);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match queue.stats().await {
            Ok(stats) if stats.depth == 0 => return,
            other => assert!(Instant::now() < deadline, "queue not drained: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the database holds for `sku`, and its body runs.
fn db_stock(db: &RedisServer, sku: u64) -> Option<u64> {
    db.query(redis::cmd("GET").arg(format!("db:stock:{sku}")))
}

fn db_runs(db: &RedisServer) -> u64 {
    db.query::<Option<u64>>(redis::cmd("GET").arg("db:body_runs"))
        .unwrap_or(0)
}

/// `writers` tasks, writer `w` owning keys `first + w`, `first + w +
/// writers`, ... (5 each): each writes its keys in turn, `writes` times in
/// all, retrying a write until it is acknowledged. Returns each key's last
/// acknowledged value; `acked` counts acknowledgements as they come.
fn write_all(
    stock: &Arc<Stock>,
    (first, writers, writes): (u64, u64, u64),
    acked: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<HashMap<u64, u64>>> {
    (0..writers)
        .map(|w| {
            let (stock, acked) = (Arc::clone(stock), Arc::clone(acked));
            tokio::spawn(async move {
                let mut last = HashMap::new();
                for i in 0..writes {
                    let sku = first + w + writers * (i % 5);
                    let qty = fastrand::u64(..);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while let Err(e) = stock.set_stock(sku as u32, qty).await {
                        assert!(Instant::now() < deadline, "never acknowledged: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    acked.fetch_add(1, SeqCst);
                    last.insert(sku, qty);
                }
                last
            })
        })
        .collect()
}

/// Joins writers: every key's last acknowledged value.
async fn last_writes(
    writers: Vec<tokio::task::JoinHandle<HashMap<u64, u64>>>,
) -> HashMap<u64, u64> {
    let mut last = HashMap::new();
    for writer in writers {
        last.extend(writer.await.unwrap());
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_writes_four_flusher_processes_one_killed() {
    let (cache, db) = (RedisServer::start(), RedisServer::start());
    let stock = Stock::new(support::redis(&cache).await, &db.url(), Duration::ZERO).await;
    let mut workers: Vec<Worker> = (0..4).map(|_| Worker::spawn(&cache, &db)).collect();
    let acked = Arc::new(AtomicU64::new(0));
    let writers = write_all(&stock, (0, 20, 500), &acked);

    // Killed while it holds entries: mid-batch.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending_for(&cache, &workers[0].consumer) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first worker never took a batch"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let acked_at_kill = acked.load(SeqCst);
    workers[0].kill();
    workers.remove(0);
    workers.push(Worker::spawn(&cache, &db));

    let last = last_writes(writers).await;
    assert_eq!((last.len(), acked.load(SeqCst)), (100, 10_000));
    drained(&stock).await;
    let stopped: Vec<Stopped> = workers.into_iter().map(Worker::stop).collect();

    for (sku, qty) in &last {
        assert_eq!(db_stock(&db, *sku), Some(*qty), "sku {sku}");
        let cached = stock.cache.get::<u64>(&format!("stock:{sku}")).await;
        assert_eq!(cached, Some(*qty), "sku {sku} in the cache");
    }
    let runs = db_runs(&db);
    assert!(runs <= 10_000, "{runs} body runs for 10 000 writes");
    let sum = |f: fn(&Stopped) -> u64| stopped.iter().map(f).sum::<u64>();
    println!(
        "10 000 writes acknowledged ({acked_at_kill} before the kill), {runs} body runs \
         ({:.2} writes per run); the 3 surviving and 1 restarted flushers took {}, \
         claimed {}, flushed {}, coalesced {}, ran {} bodies",
        10_000.0 / runs as f64,
        sum(|s| s.taken),
        sum(|s| s.claimed),
        sum(|s| s.flushed),
        sum(|s| s.coalesced),
        sum(|s| s.body_runs),
    );
}

/// The database is down while 25 keys get their last write (500 writes):
/// those writes are acknowledged and pending in Redis, nothing flushed.
/// Then Redis is killed in the middle of 1 500 more writes to 25 other
/// keys, and restarted from its append-only file; the database comes
/// back. Every key, of both halves, ends with its last acknowledged write.
/// (On a server without the append-only file the first half is lost: the
/// test fails.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aof_redis_killed_mid_run_loses_no_acknowledged_write() {
    let mut cache = RedisServer::start_durable();
    let db = RedisServer::start();
    let stock = Stock::new(
        support::redis(&cache).await,
        &db.url(),
        Duration::from_millis(1),
    )
    .await;
    stock.down.store(true, SeqCst);
    let flushers: Vec<_> = (0..2)
        .map(|_| {
            Stock::STOCK
                .flusher_for(Arc::clone(&stock))
                .poll(Duration::from_millis(10))
                .claim_idle(Duration::from_secs(1))
                .body_timeout(Duration::from_secs(1))
                .backoff(Duration::from_millis(20), Duration::from_millis(500))
                .max_attempts(10_000)
                .start()
        })
        .collect();
    let acked = Arc::new(AtomicU64::new(0));
    let mut last = last_writes(write_all(&stock, (0, 5, 100), &acked)).await;
    // Older writes of a key may be acknowledged as superseded; each key's
    // latest is pending, and the database has none.
    let pending = Stock::STOCK.queue_for(&*stock).stats().await.unwrap();
    assert!(pending.depth >= 25, "{pending:?}");
    assert_eq!(db_runs(&db), 0);

    let writers = write_all(&stock, (25, 5, 300), &acked);
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(SeqCst) < 700 {
        assert!(Instant::now() < deadline, "writes never got going");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cache.kill();
    let acked_at_kill = acked.load(SeqCst);
    let cache = tokio::task::spawn_blocking(move || {
        cache.restart();
        cache
    })
    .await
    .unwrap();
    stock.down.store(false, SeqCst);

    last.extend(last_writes(writers).await);
    assert_eq!((last.len(), acked.load(SeqCst)), (50, 2_000));
    assert!(acked_at_kill < 2_000, "killed mid-run");
    drained(&stock).await;
    let mut flushed = 0;
    for flusher in flushers {
        flushed += flusher.stop().await.flushed;
    }
    for (sku, qty) in &last {
        assert_eq!(db_stock(&db, *sku), Some(*qty), "sku {sku}");
        let cached = stock.cache.get::<u64>(&format!("stock:{sku}")).await;
        assert_eq!(cached, Some(*qty), "sku {sku} in the cache");
    }
    println!(
        "2 000 writes acknowledged, {acked_at_kill} before Redis was killed; \
         {flushed} flushed, {} body runs; every key holds its last write",
        db_runs(&db)
    );
    drop(cache);
}
