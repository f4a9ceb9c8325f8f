//! Write-behind on both backends, with flushers in this process: a write
//! is cached at once and pinned until flushed; writes to one key coalesce
//! and the last one wins, also against a retry of an older one and across
//! flushers; a database that is down delays writes and never loses them;
//! entries past their attempts are dead-lettered and can be replayed; a
//! flusher that dies leaves its entries to another. Counts are exact; the
//! waits are bounded polls. `tests/write_behind_processes.rs` does the
//! same across OS processes, with SIGKILL.

mod support;

use cache_runtime::{cached, Cache, FlushStats, FlusherBuilder, MemoryStore, Replay};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::stock::StockError;
use support::Shared;
use tokio::sync::oneshot;

/// The database: stock per SKU, body runs, failures on demand, and a gate
/// that holds the next write until released.
#[derive(Default)]
struct Db {
    rows: Mutex<HashMap<String, u64>>,
    runs: AtomicU64,
    failures: AtomicU64,
    down: AtomicBool,
    /// Values whose write fails (a row the database refuses).
    refused: Mutex<HashSet<u64>>,
    /// Values whose write blocks its thread (a synchronous client called
    /// from async code) until `unblocked` is set.
    blocking: Mutex<HashSet<u64>>,
    unblocked: AtomicBool,
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    /// While set, writes never finish (a hung database, or a flusher
    /// killed mid-write).
    hang: AtomicBool,
    /// How long each write takes, in milliseconds.
    delay_ms: AtomicU64,
    /// Writes running now per SKU, and the most ever seen at once.
    running: Mutex<HashMap<String, u64>>,
    most_at_once: AtomicU64,
    /// Writes that returned, succeeded or not.
    returned: AtomicU64,
    reads: AtomicU64,
}

impl Db {
    async fn write(&self, sku: &str, qty: u64) -> Result<(), StockError> {
        self.runs.fetch_add(1, SeqCst);
        let now = {
            let mut running = self.running.lock().unwrap();
            let n = running.entry(sku.to_owned()).or_default();
            *n += 1;
            *n
        };
        self.most_at_once.fetch_max(now, SeqCst);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.await;
        }
        if self.hang.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        match self.delay_ms.load(SeqCst) {
            0 => tokio::task::yield_now().await,
            ms => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        if self.blocking.lock().unwrap().contains(&qty) {
            while !self.unblocked.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        *self.running.lock().unwrap().get_mut(sku).unwrap() -= 1;
        let written = if self.down.load(SeqCst) || self.refused.lock().unwrap().contains(&qty) {
            self.failures.fetch_add(1, SeqCst);
            Err(StockError::Down)
        } else {
            self.rows.lock().unwrap().insert(sku.to_owned(), qty);
            Ok(())
        };
        self.returned.fetch_add(1, SeqCst);
        written
    }

    fn row(&self, sku: &str) -> Option<u64> {
        self.rows.lock().unwrap().get(sku).copied()
    }
}

struct Shop {
    cache: Cache,
    db: Arc<Db>,
}

impl Shop {
    #[cached(
        strategy = "write_behind",
        key = "stock:<sku>",
        value = qty,
        ttl = 60,
        queue = "stock",
        cache = self.cache,
        handle = STOCK
    )]
    async fn set_stock(&self, sku: &str, qty: u64) -> Result<(), StockError> {
        self.db.write(sku, qty).await
    }

    /// A second function writing the same keys, through its own queue.
    #[cached(
        strategy = "write_behind",
        key = "stock:<sku>",
        value = qty,
        ttl = 60,
        queue = "stock_bulk",
        cache = self.cache,
        handle = BULK
    )]
    async fn set_stock_in_bulk(&self, sku: &str, qty: u64) -> Result<(), StockError> {
        self.db.write(sku, qty).await
    }

    #[cached(key = "stock:<sku>", ttl = 60, cache = self.cache)]
    async fn stock(&self, sku: &str) -> Result<Option<u64>, StockError> {
        self.db.reads.fetch_add(1, SeqCst);
        Ok(self.db.row(sku))
    }

    /// An old build's signature of the queue `renamed`...
    #[cached(strategy = "write_behind", key = "old:<sku>", value = qty, queue = "renamed", cache = self.cache, handle = OLD)]
    async fn set_old(&self, sku: &str, qty: u64) -> Result<(), StockError> {
        self.db.write(sku, qty).await
    }

    /// ... and the new one, which cannot decode the old arguments.
    #[cached(strategy = "write_behind", key = "old:<sku>", value = qty, queue = "renamed", cache = self.cache, handle = NEW)]
    async fn set_new(&self, sku: &str, qty: u64, note: String) -> Result<(), StockError> {
        let _ = note;
        self.db.write(sku, qty).await
    }
}

async fn shop(backend: &Shared) -> Arc<Shop> {
    Arc::new(Shop {
        cache: backend.cache().await,
        db: Arc::default(),
    })
}

/// A flusher of `shop`'s stock with short waits, for tests.
fn flusher(shop: &Arc<Shop>) -> FlusherBuilder<Shop, (String, u64)> {
    Shop::STOCK
        .flusher_for(Arc::clone(shop))
        .poll(Duration::from_millis(10))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// Waits until `done` holds, for at most 30 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the stock queue is empty (nothing queued, nothing pending).
async fn drained(shop: &Shop) {
    let queue = Shop::STOCK.queue_for(shop);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = queue.stats().await.unwrap();
        if stats.depth == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue not drained: {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_write_is_cached_at_once_pinned_and_flushed_later(backend: &Shared) {
    let shop = shop(backend).await;
    shop.set_stock("apple", 3).await.unwrap();
    assert_eq!(shop.cache.stats().queued, 1, "acknowledged");
    assert_eq!(shop.cache.get::<u64>("stock:apple").await, Some(3));
    assert_eq!(
        shop.cache.ttl("stock:apple").await,
        None,
        "no TTL while pending"
    );
    assert_eq!(
        shop.stock("apple").await.unwrap(),
        Some(3),
        "readers see it"
    );
    assert_eq!(shop.db.reads.load(SeqCst), 0, "from the cache");
    assert_eq!(shop.db.row("apple"), None, "not flushed yet");
    let queue = Shop::STOCK.queue_for(&shop);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.depth, stats.pending, stats.dead_letters), (1, 0, 0));
    assert!(stats.oldest_age.is_some());

    let flusher = flusher(&shop).start();
    until("the flush", || shop.db.row("apple") == Some(3)).await;
    let report = flusher.stop().await;
    assert_eq!((report.body_runs, report.flushed), (1, 1));
    let ttl = shop
        .cache
        .ttl("stock:apple")
        .await
        .expect("a TTL once flushed");
    assert!(ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60));
    assert_eq!(shop.cache.get::<u64>("stock:apple").await, Some(3));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.depth, stats.oldest_age), (0, None));
}

async fn writes_to_one_key_coalesce_and_the_last_wins(backend: &Shared) {
    let shop = shop(backend).await;
    for qty in 1..=50 {
        shop.set_stock("apple", qty).await.unwrap();
    }
    for qty in 1..=10 {
        shop.set_stock("pear", qty).await.unwrap();
        shop.set_stock("plum", 100 + qty).await.unwrap();
    }
    // One batch holds all 70 writes: one body per key.
    let report = flusher(&shop).batch(100).start().stop().await;
    assert_eq!(
        (report.body_runs, report.flushed, report.coalesced),
        (3, 3, 67)
    );
    assert_eq!(shop.db.row("apple"), Some(50));
    assert_eq!(shop.db.row("pear"), Some(10));
    assert_eq!(shop.db.row("plum"), Some(110));
    assert_eq!(shop.db.runs.load(SeqCst), 3);
}

/// `stop()` flushes every write queued before it, the last ones
/// included, however the backend's clock and the cache's compare.
async fn stop_drains_every_write_queued_before_it(backend: &Shared) {
    let shop = shop(backend).await;
    for n in 0..3_000 {
        shop.set_stock(&format!("sku{n}"), n).await.unwrap();
    }
    let report = flusher(&shop).batch(100).start().stop().await;
    assert_eq!((report.flushed, report.left_pending), (3_000, 0));
    let stats = Shop::STOCK.queue_for(&shop).stats().await.unwrap();
    assert_eq!(stats.depth, 0, "{stats:?}");
    assert_eq!(shop.db.row("sku2999"), Some(2_999));
}

/// Two functions write the same keys through two queues (whose entry ids
/// can be equal): the later write wins whichever queue flushes first, and
/// the earlier one never runs.
async fn two_queues_writing_one_key_keep_its_order(backend: &Shared) {
    let shop = shop(backend).await;
    for n in 0..200 {
        shop.set_stock(&format!("sku{n}"), 1).await.unwrap();
        shop.set_stock_in_bulk(&format!("sku{n}"), 2).await.unwrap();
    }
    let bulk = Shop::BULK
        .flusher_for(Arc::clone(&shop))
        .start()
        .stop()
        .await;
    let single = flusher(&shop).start().stop().await;
    assert_eq!((bulk.flushed, bulk.coalesced), (200, 0), "{bulk:?}");
    assert_eq!((single.body_runs, single.coalesced), (0, 200), "{single:?}");
    for n in 0..200 {
        let sku = format!("sku{n}");
        assert_eq!(shop.db.row(&sku), Some(2), "{sku}");
        assert_eq!(
            shop.cache.get::<u64>(&format!("stock:{sku}")).await,
            Some(2)
        );
    }
}

/// `apple = 1` fails and waits for its retry; meanwhile `apple = 2` is
/// written and flushed. The retry of 1 finds a newer write: it is
/// acknowledged without running, and the database keeps 2.
async fn a_newer_write_is_never_overwritten_by_an_older_retry(backend: &Shared) {
    let shop = shop(backend).await;
    shop.db.refused.lock().unwrap().insert(1);
    let flusher = flusher(&shop)
        .backoff(Duration::from_millis(300), Duration::from_secs(1))
        .start();
    shop.set_stock("apple", 1).await.unwrap();
    until("the first write to fail", || {
        shop.db.failures.load(SeqCst) == 1
    })
    .await;
    shop.set_stock("apple", 2).await.unwrap();
    until("the second write", || shop.db.row("apple") == Some(2)).await;
    let report = flusher.stop().await;
    assert_eq!(shop.db.row("apple"), Some(2));
    assert_eq!(
        (
            report.body_runs,
            report.failures,
            report.flushed,
            report.coalesced
        ),
        (2, 1, 1, 1),
        "{report:?}"
    );
    assert_eq!(shop.cache.get::<u64>("stock:apple").await, Some(2));
}

/// Flusher A runs `apple = 1`, held at the gate; flusher B takes
/// `apple = 2` meanwhile and must wait for A: a key's bodies never run at
/// once, and the older one cannot land after the newer.
async fn one_keys_bodies_never_run_at_once(backend: &Shared) {
    let shop = shop(backend).await;
    let (release, gate) = oneshot::channel();
    *shop.db.gate.lock().unwrap() = Some(gate);
    let a = flusher(&shop).start();
    shop.set_stock("apple", 1).await.unwrap();
    until("a to run the first write", || {
        shop.db.runs.load(SeqCst) == 1
    })
    .await;
    let b = flusher(&shop).start();
    shop.set_stock("apple", 2).await.unwrap();
    until("b to take the second write", || b.stats().taken >= 1).await;
    release.send(()).unwrap();
    until("the second write", || shop.db.row("apple") == Some(2)).await;
    drained(&shop).await;
    let (a, b) = (a.stop().await, b.stop().await);
    assert_eq!(
        shop.db.most_at_once.load(SeqCst),
        1,
        "one body per key at once"
    );
    assert_eq!(shop.db.row("apple"), Some(2));
    assert_eq!(shop.db.runs.load(SeqCst), 2);
    assert_eq!((a.flushed, b.flushed), (1, 1), "{a:?} {b:?}");
}

/// `apple = 1`'s body blocks its thread past its timeout: it cannot be
/// cancelled, so its key stays locked until it returns, and `apple = 2`,
/// queued meanwhile, runs after it: the database ends with 2.
async fn a_body_stuck_past_its_timeout_keeps_its_key_locked(backend: &Shared) {
    let (shop, report) = stuck_then_newer(backend, 10).await;
    assert_eq!((report.failures, report.flushed), (1, 1), "{report:?}");
    assert_eq!(shop.db.row("apple"), Some(2));
}

/// The same when the stuck attempt is the last: `apple = 1` is
/// dead-lettered, and its key stays locked all the same.
async fn a_stuck_last_attempt_keeps_its_key_locked(backend: &Shared) {
    let (shop, report) = stuck_then_newer(backend, 1).await;
    assert_eq!((report.dead_lettered, report.flushed), (1, 1), "{report:?}");
    assert_eq!(shop.db.row("apple"), Some(2));
    let letters = Shop::STOCK.queue_for(&shop).dead_letters(10).await.unwrap();
    assert!(letters[0].error().contains("may still land"), "{letters:?}");
}

/// Lets blocked writes return when dropped, also when a test fails (a
/// thread blocked for good would hang the test's runtime).
struct Unblock(Arc<Db>);

impl Drop for Unblock {
    fn drop(&mut self) {
        self.0.unblocked.store(true, SeqCst);
    }
}

/// Writes `apple = 1`, whose body blocks its thread past its timeout, and
/// once that attempt has failed (with `max_attempts`), `apple = 2`; then
/// lets the first body return. Checks that the older write never ran
/// beside or after the newer.
async fn stuck_then_newer(backend: &Shared, max_attempts: u32) -> (Arc<Shop>, FlushStats) {
    let shop = shop(backend).await;
    shop.db.blocking.lock().unwrap().insert(1);
    let _unblock = Unblock(Arc::clone(&shop.db));
    let flusher = flusher(&shop)
        .body_timeout(Duration::from_millis(100))
        .max_attempts(max_attempts)
        .start();
    shop.set_stock("apple", 1).await.unwrap();
    until("the first attempt to fail", || {
        let stats = flusher.stats();
        stats.failures == 1 && (max_attempts > 1 || stats.dead_lettered == 1)
    })
    .await;
    shop.set_stock("apple", 2).await.unwrap();
    until("the flusher to take it", || flusher.stats().taken >= 2).await;
    // A chance for the second write to run beside the stuck first one,
    // were its key unlocked (the test passes however long this takes).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shop.db.runs.load(SeqCst), 1, "ran beside the stuck write");
    shop.db.unblocked.store(true, SeqCst);
    until("the second write", || shop.db.row("apple") == Some(2)).await;
    drained(&shop).await;
    let report = flusher.stop().await;
    until("every write to return", || {
        shop.db.returned.load(SeqCst) == shop.db.runs.load(SeqCst)
    })
    .await;
    assert_eq!(shop.db.row("apple"), Some(2), "the older write landed last");
    assert_eq!(shop.db.most_at_once.load(SeqCst), 1);
    (shop, report)
}

/// During an outage a flusher takes no more than a batch (entries waiting
/// out their backoff count), so another flusher started meanwhile finds
/// work rather than an empty queue.
async fn a_flusher_holds_at_most_a_batch_during_an_outage(backend: &Shared) {
    let shop = shop(backend).await;
    shop.db.down.store(true, SeqCst);
    let a = flusher(&shop).batch(10).start();
    for key in 0..200u64 {
        shop.set_stock(&format!("sku{key}"), key).await.unwrap();
    }
    until("the first flusher to fail a batch", || {
        shop.db.failures.load(SeqCst) >= 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = Shop::STOCK.queue_for(&shop).stats().await.unwrap();
    assert_eq!((stats.depth, stats.pending), (200, 10), "{stats:?}");
    let b = flusher(&shop).batch(10).start();
    shop.db.down.store(false, SeqCst);
    drained(&shop).await;
    let (a, b) = (a.stop().await, b.stop().await);
    assert_eq!(a.flushed + b.flushed, 200);
    assert!(b.flushed >= 10, "the second flusher found work: {b:?}");
}

/// The database down while 1 500 writes come in over 1.5 s (10 keys,
/// each written every 10 ms), 2 flushers: every write is acknowledged;
/// each key is retried with backoff, its newer writes waiting for it
/// rather than each trying at once, on either flusher; and once the
/// database is back every key holds its last write.
async fn the_database_down_for_a_while_delays_writes_and_loses_none(backend: &Shared) {
    let shop = shop(backend).await;
    shop.db.down.store(true, SeqCst);
    let started = Instant::now();
    let flushers = [
        flusher(&shop).max_attempts(1_000).start(),
        flusher(&shop).max_attempts(1_000).start(),
    ];
    for round in 0..150u64 {
        for key in 0..10u64 {
            shop.set_stock(&format!("sku{key}"), round * 100 + key)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(shop.cache.stats().queued, 1_500, "all acknowledged");
    let failures = shop.db.failures.load(SeqCst);
    let outage = started.elapsed();
    shop.db.down.store(false, SeqCst);
    drained(&shop).await;
    let (mut flushed, mut coalesced) = (0, 0);
    for f in flushers {
        let report = f.stop().await;
        assert_eq!(report.dead_lettered, 0);
        (flushed, coalesced) = (flushed + report.flushed, coalesced + report.coalesced);
    }
    for key in 0..10u64 {
        assert_eq!(shop.db.row(&format!("sku{key}")), Some(14_900 + key));
    }
    assert_eq!((flushed, coalesced), (10, 1_490));
    // Retried, with backoff per key (20 ms doubling to 200 ms, less up to
    // half): at least twice per key; at most 6 tries per key plus one per
    // 100 ms of outage, per flusher, however long the outage took (about
    // 420 for 1.5 s). A try per new write would make 1 500.
    let most = 10 * 2 * (6 + outage.as_millis() as u64 / 100);
    assert!(
        (20..=most).contains(&failures),
        "{failures} failed attempts for 10 keys in {outage:?}"
    );
}

/// Five writes fail 3 attempts each and are dead-lettered, with their
/// error, arguments and value; their cached values are deleted. Once the
/// database is back they are replayed, but not the one whose key was
/// written again since: replaying it would put the older value back.
async fn writes_past_their_attempts_are_dead_lettered_and_replayed(backend: &Shared) {
    let shop = shop(backend).await;
    shop.db.down.store(true, SeqCst);
    let flusher = flusher(&shop)
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .start();
    for key in 0..5u64 {
        shop.set_stock(&format!("sku{key}"), 10 + key)
            .await
            .unwrap();
    }
    let queue = Shop::STOCK.queue_for(&shop);
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.stats().await.unwrap().dead_letters < 5 {
        assert!(Instant::now() < deadline, "dead letters never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = flusher.stats();
    assert_eq!((stats.body_runs, stats.dead_lettered), (15, 5), "{stats:?}");
    assert_eq!(queue.stats().await.unwrap().depth, 0);
    assert_eq!(
        shop.cache.get::<u64>("stock:sku1").await,
        None,
        "the cache does not claim a write the database refused"
    );
    let letters = queue.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 5);
    for letter in &letters {
        let (sku, qty) = letter.args.clone().unwrap();
        assert_eq!(letter.key(), format!("cache:v1:stock:{sku}"));
        assert_eq!((letter.error(), letter.attempts()), ("database down", 3));
        assert_eq!(letter.value::<u64>(), Some(qty));
        assert!(letter.failed_at() >= letter.queued_at());
    }

    shop.db.down.store(false, SeqCst);
    shop.set_stock("sku0", 99).await.unwrap();
    until("the newer write", || shop.db.row("sku0") == Some(99)).await;
    for letter in &letters {
        let expected = if letter.key().ends_with(":sku0") {
            Replay::Superseded // written since: replaying would undo it
        } else {
            Replay::Queued
        };
        assert_eq!(queue.replay(letter).await.unwrap(), expected, "{letter:?}");
        if expected == Replay::Queued {
            assert_eq!(queue.replay(letter).await.unwrap(), Replay::Missing);
        }
    }
    drained(&shop).await;
    let report = flusher.stop().await;
    for key in 1..5u64 {
        assert_eq!(shop.db.row(&format!("sku{key}")), Some(10 + key));
        assert_eq!(
            shop.cache.get::<u64>(&format!("stock:sku{key}")).await,
            Some(10 + key)
        );
    }
    assert_eq!(shop.db.row("sku0"), Some(99), "the replay did not undo it");
    assert_eq!(report.flushed, 5);
    assert_eq!(queue.stats().await.unwrap().dead_letters, 1);
    let sku0 = letters.iter().find(|l| l.key().ends_with(":sku0")).unwrap();
    assert!(queue.discard(sku0).await.unwrap());
    assert!(!queue.discard(sku0).await.unwrap());
    assert_eq!(queue.stats().await.unwrap().dead_letters, 0);
}

/// A flusher dropped mid-body (its task aborted, as a crash would) leaves
/// its entries pending; another claims them once idle and flushes them.
async fn a_flusher_that_dies_leaves_its_entries_to_another(backend: &Shared) {
    let shop = shop(backend).await;
    shop.db.hang.store(true, SeqCst);
    let dying = flusher(&shop)
        .body_timeout(Duration::from_millis(500))
        .start();
    for key in 0..3u64 {
        shop.set_stock(&format!("sku{key}"), key).await.unwrap();
    }
    until("the dying flusher to run all", || {
        dying.stats().body_runs == 3
    })
    .await;
    drop(dying);
    shop.db.hang.store(false, SeqCst);
    let heir = flusher(&shop)
        .claim_idle(Duration::from_millis(300))
        .start();
    drained(&shop).await;
    let report = heir.stop().await;
    for key in 0..3u64 {
        assert_eq!(shop.db.row(&format!("sku{key}")), Some(key));
    }
    assert_eq!((report.claimed, report.flushed), (3, 3), "{report:?}");
}

/// A queue written by an old build whose arguments the new build cannot
/// decode (a rolling deploy that changed the function's arguments): the
/// new build's flushers leave such entries for the old build's, which
/// flush them; with no old flusher left, they are dead-lettered after
/// their attempts, the body never run with garbled arguments.
async fn arguments_another_build_queued_wait_for_it_then_are_dead_lettered(backend: &Shared) {
    let shop = shop(backend).await;
    fn configure<A>(b: FlusherBuilder<Shop, A>) -> FlusherBuilder<Shop, A>
    where
        A: serde::de::DeserializeOwned + Send + 'static,
    {
        b.poll(Duration::from_millis(10))
            .claim_idle(Duration::from_millis(100))
    }
    shop.set_old("apple", 3).await.unwrap();
    let new = configure(Shop::NEW.flusher_for(Arc::clone(&shop)).max_attempts(30)).start();
    let old = configure(Shop::OLD.flusher_for(Arc::clone(&shop))).start();
    until("the old build to flush it", || {
        shop.db.row("apple") == Some(3)
    })
    .await;
    let (new, old) = (new.stop().await, old.stop().await);
    assert_eq!((new.body_runs, new.dead_lettered), (0, 0), "{new:?}");
    assert_eq!(old.flushed, 1);

    shop.set_old("pear", 4).await.unwrap();
    let new = configure(Shop::NEW.flusher_for(Arc::clone(&shop)).max_attempts(2)).start();
    let queue = Shop::NEW.queue_for(&shop);
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.stats().await.unwrap().dead_letters == 0 {
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = new.stop().await;
    assert_eq!(
        (report.body_runs, report.dead_lettered),
        (0, 1),
        "{report:?}"
    );
    let letters = queue.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].error().contains("do not decode"), "{letters:?}");
    assert_eq!(letters[0].attempts(), 2);
    assert!(letters[0].args.is_none(), "not the new arguments");
    // The old build's view of the same queue decodes them.
    let old = Shop::OLD.queue_for(&shop).dead_letters(10).await.unwrap();
    assert_eq!(old[0].args, Some(("pear".to_string(), 4)));
    assert_eq!(shop.db.row("pear"), None);
}

/// 10 000 writes over 100 keys by 20 writers, 4 flushers, one dropped
/// (aborted) mid-run and started again: every key ends with its last
/// write, and the body ran at most once per write.
async fn ten_thousand_writes_four_flushers_one_aborted(backend: &Shared) {
    let shop = shop(backend).await;
    shop.db.delay_ms.store(1, SeqCst);
    let start = |shop: &Arc<Shop>| {
        flusher(shop)
            .batch(50)
            .claim_idle(Duration::from_millis(500))
            .body_timeout(Duration::from_millis(200))
            .start()
    };
    let mut flushers: Vec<_> = (0..4).map(|_| start(&shop)).collect();
    let writers: Vec<_> = (0..20u64)
        .map(|w| {
            let shop = Arc::clone(&shop);
            tokio::spawn(async move {
                // Writer w owns keys w, w+20, ...: its writes to a key are
                // in order, and the last one is known.
                let mut last = HashMap::new();
                for i in 0..500u64 {
                    let key = w + 20 * (i % 5);
                    let qty = fastrand::u64(..);
                    shop.set_stock(&format!("sku{key}"), qty).await.unwrap();
                    last.insert(key, qty);
                }
                last
            })
        })
        .collect();
    until("the first flusher to be busy", || {
        flushers[0].stats().taken >= 50
    })
    .await;
    drop(flushers.remove(0));
    flushers.push(start(&shop));
    let mut last = HashMap::new();
    for writer in writers {
        last.extend(writer.await.unwrap());
    }
    assert_eq!(last.len(), 100);
    drained(&shop).await;
    let mut reports = Vec::new();
    for f in flushers {
        reports.push(f.stop().await);
    }
    for (key, qty) in &last {
        assert_eq!(shop.db.row(&format!("sku{key}")), Some(*qty), "sku{key}");
    }
    let runs = shop.db.runs.load(SeqCst);
    assert!(runs <= 10_000, "{runs} body runs for 10 000 writes");
    assert_eq!(shop.cache.stats().queued, 10_000);
    println!(
        "10 000 writes, {runs} body runs ({:.1} writes per run), flushers: {reports:?}",
        10_000.0 / runs as f64
    );
}

on_shared_backends!(
    a_write_is_cached_at_once_pinned_and_flushed_later,
    writes_to_one_key_coalesce_and_the_last_wins,
    stop_drains_every_write_queued_before_it,
    two_queues_writing_one_key_keep_its_order,
    a_newer_write_is_never_overwritten_by_an_older_retry,
    one_keys_bodies_never_run_at_once,
    a_body_stuck_past_its_timeout_keeps_its_key_locked,
    a_stuck_last_attempt_keeps_its_key_locked,
    a_flusher_holds_at_most_a_batch_during_an_outage,
    the_database_down_for_a_while_delays_writes_and_loses_none,
    writes_past_their_attempts_are_dead_lettered_and_replayed,
    a_flusher_that_dies_leaves_its_entries_to_another,
    arguments_another_build_queued_wait_for_it_then_are_dead_lettered,
    ten_thousand_writes_four_flushers_one_aborted,
);

/// The queue's ids come from the backend's clock, which may run ahead of
/// the flusher's (here the flusher's is paused: 20 ms behind): `stop()`
/// still drains every write queued before it.
#[tokio::test(start_paused = true)]
async fn a_drain_does_not_depend_on_the_clocks_agreeing() {
    let shop = Arc::new(Shop {
        cache: Cache::memory(),
        db: Arc::default(),
    });
    std::thread::sleep(Duration::from_millis(20));
    for n in 0..300 {
        shop.set_stock(&format!("sku{n}"), n).await.unwrap();
    }
    let report = flusher(&shop).batch(100).start().stop().await;
    assert_eq!((report.flushed, report.left_pending), (300, 0));
    assert_eq!(Shop::STOCK.queue_for(&shop).stats().await.unwrap().depth, 0);
}

/// The oldest write's age is measured on the queue's clock, which the
/// write's id comes from, not on the cache's (paused here).
#[tokio::test(start_paused = true)]
async fn the_oldest_age_does_not_depend_on_the_clocks_agreeing() {
    let shop = Arc::new(Shop {
        cache: Cache::memory(),
        db: Arc::default(),
    });
    shop.set_stock("apple", 1).await.unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let stats = Shop::STOCK.queue_for(&shop).stats().await.unwrap();
    let age = stats.oldest_age.expect("a write is queued");
    assert!(age >= Duration::from_millis(200), "{stats:?}");
}

/// On the in-memory backend a pending write's value is pinned: a full
/// store evicts other entries, never it. Once flushed it is evictable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_values_are_never_evicted_from_memory() {
    let store = MemoryStore::new(10);
    let shop = Arc::new(Shop {
        cache: Cache::builder().memory_store(&store),
        db: Arc::default(),
    });
    for key in 0..20u64 {
        shop.set_stock(&format!("sku{key}"), key).await.unwrap();
    }
    for other in 0..100u64 {
        shop.cache
            .set(&format!("other{other}"), &other, Duration::from_secs(60))
            .await
            .unwrap();
    }
    for key in 0..20u64 {
        assert_eq!(
            shop.cache.get::<u64>(&format!("stock:sku{key}")).await,
            Some(key),
            "pending sku{key} was evicted"
        );
    }
    flusher(&shop).start().stop().await;
    for other in 0..100u64 {
        shop.cache
            .set(&format!("other{other}"), &other, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let mut kept = 0;
    for key in 0..20u64 {
        kept += usize::from(
            shop.cache
                .get::<u64>(&format!("stock:sku{key}"))
                .await
                .is_some(),
        );
    }
    assert!(
        kept <= 10,
        "flushed values are evictable again: {kept} kept"
    );
}

/// A flusher that died (dropped) leaves its name in the consumer group;
/// a live flusher removes it once it holds nothing and has been idle for
/// twice `claim_idle`. (An idle live one holding nothing may go too: Redis
/// adds it back when it next takes an entry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_flushers_leave_the_consumer_group() {
    let server = support::RedisServer::start();
    let shop = Arc::new(Shop {
        cache: support::redis(&server).await,
        db: Arc::default(),
    });
    let consumers = || -> Vec<String> {
        let groups: Vec<Vec<redis::Value>> = server.query(
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg("cache:wb:{stock}")
                .arg("flushers"),
        );
        groups
            .into_iter()
            .map(|c| match &c[1] {
                redis::Value::BulkString(name) => String::from_utf8_lossy(name).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    // A consumer exists once it has taken an entry.
    let ghost = flusher(&shop).consumer("ghost").start();
    shop.set_stock("apple", 1).await.unwrap();
    until("the ghost to flush", || shop.db.row("apple") == Some(1)).await;
    assert_eq!(consumers(), ["ghost"]);
    drop(ghost);
    let live = flusher(&shop)
        .consumer("live")
        .claim_idle(Duration::from_millis(50))
        .start();
    shop.set_stock("pear", 2).await.unwrap();
    until("the ghost to be removed", || {
        !consumers().contains(&"ghost".to_string())
    })
    .await;
    shop.set_stock("plum", 3).await.unwrap();
    until("the live flusher to flush", || {
        shop.db.row("plum") == Some(3)
    })
    .await;
    drop(live);
}

/// Redis down: the write is not acknowledged, and the caller is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_cannot_take_returns_the_error() {
    let mut server = support::RedisServer::start();
    let shop = Arc::new(Shop {
        cache: support::redis(&server).await,
        db: Arc::default(),
    });
    server.kill();
    let result = shop.set_stock("apple", 3).await;
    assert!(matches!(result, Err(StockError::Cache(_))), "{result:?}");
    assert_eq!(shop.cache.stats().queued, 0);
}
