//! Refresh-ahead, stale-while-revalidate and fail-safe through `#[cached]`.
//! On the in-memory backend the tests run on tokio's paused clock, so the
//! counts are exact; on Redis they run in real time, with margins around
//! the moments a TTL or grace period ends.

mod support;

use cache_runtime::{cached, Cache};
use futures::future::join_all;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::RedisServer;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A source whose rows are a version number, which can fail, hang, be
/// deleted, or hold its next read at a gate.
#[derive(Default)]
struct Source {
    version: AtomicU64,
    loads: AtomicU64,
    failing: AtomicBool,
    hanging: AtomicBool,
    deleted: AtomicBool,
    gate: std::sync::Mutex<Option<Gate>>,
}

/// A held read: it says when it started, then waits to be released.
type Gate = (oneshot::Sender<()>, oneshot::Receiver<()>);

impl Source {
    async fn read(&self) -> Result<u64, String> {
        self.loads.fetch_add(1, SeqCst);
        if self.hanging.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        let gate = self.gate.lock().unwrap().take();
        if let Some((started, release)) = gate {
            let _ = started.send(());
            let _ = release.await;
        }
        if self.failing.load(SeqCst) {
            return Err("database down".into());
        }
        Ok(self.version.load(SeqCst))
    }

    /// Holds the next read: returns when it started, and its release.
    fn hold_next(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (started_tx, started) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.gate.lock().unwrap() = Some((started_tx, release_rx));
        (started, release)
    }

    fn loads(&self) -> u64 {
        self.loads.load(SeqCst)
    }
}

/// `Clone`, as background refreshes of `&self` methods copy `self`.
#[derive(Clone)]
struct Repo {
    cache: Cache,
    source: Arc<Source>,
}

impl Repo {
    fn new(cache: Cache) -> Repo {
        let source = Arc::new(Source::default());
        source.version.store(1, SeqCst);
        Repo { cache, source }
    }

    #[cached(strategy = "refresh_ahead", key = "ahead:<id>", ttl = 10, refresh = 0.8, cache = self.cache)]
    async fn ahead(&self, id: u64) -> Result<u64, String> {
        self.source.read().await
    }

    #[cached(key = "graced:<id>", ttl = 1, stale = 3, cache = self.cache)]
    async fn graced(&self, id: u64) -> Result<u64, String> {
        self.source.read().await
    }

    /// Thirty seconds of grace on a TTL of one.
    #[cached(key = "long:<id>", ttl = 1, stale = 30, cache = self.cache)]
    async fn long_graced(&self, id: u64) -> Result<u64, String> {
        self.source.read().await.map(|v| v + id - id)
    }

    /// A row that can be deleted, whose `None` is not cached.
    #[cached(strategy = "refresh_ahead", key = "row:<id>", ttl = 10, null_ttl = 0, cache = self.cache)]
    async fn row(&self, id: u64) -> Result<Option<u64>, String> {
        let version = self.source.read().await?;
        Ok((!self.source.deleted.load(SeqCst)).then_some(version + id - id))
    }

    /// Refreshed ahead and kept stale: a TTL of 2 s refreshed at half of
    /// it, and 10 s of grace.
    #[cached(strategy = "refresh_ahead", key = "both:<id>", ttl = 2, refresh = 0.5, stale = 10, cache = self.cache)]
    async fn both(&self, id: u64) -> Result<u64, String> {
        self.source.read().await.map(|v| v + id - id)
    }

    /// XFetch on a load of 200 ms: TTL 3 s, beta 2.
    #[cached(strategy = "refresh_ahead", key = "xfetch:<id>", ttl = 3, refresh = "xfetch", beta = 2.0, cache = self.cache)]
    async fn xfetched(&self, id: u64) -> Result<u64, String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.source.read().await.map(|v| v + id - id)
    }

    /// A borrowed argument, copied for the background refresh and borrowed
    /// again inside it.
    #[cached(strategy = "refresh_ahead", key = "named:<name>", ttl = 10, refresh = "8s", cache = self.cache)]
    async fn named(&self, name: &str) -> Result<String, String> {
        let version = self.source.read().await?;
        Ok(format!("{name}@{version}"))
    }
}

/// `readers` concurrent calls of `read`, every 100 ms, for `seconds`;
/// panics unless every one answers `Ok`.
async fn read_continuously<F, Fut, T>(seconds: u64, readers: usize, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
    T: std::fmt::Debug,
{
    for step in 0..seconds * 10 {
        for answer in join_all((0..readers).map(|_| read())).await {
            assert!(answer.is_ok(), "at {} ms: {answer:?}", step * 100);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A key read every 100 ms for 60 s, with a 10 s TTL refreshed at 80%:
/// one miss, then a load every 8 s (at 8, 16, ... 56 s), whatever the
/// number of readers.
#[tokio::test(start_paused = true)]
async fn a_key_read_continuously_is_loaded_once_per_refresh_window() {
    let repo = Repo::new(support::memory());
    read_continuously(60, 5, || repo.ahead(1)).await;
    let stats = repo.cache.stats();
    assert_eq!(stats.misses, 1, "never a miss after the first load");
    assert_eq!(repo.source.loads(), 8, "one load per 8 s window: {stats:?}");
    assert_eq!(stats.refreshes, 7);
    assert_eq!(stats.hits, 5 * 600 - 1);
}

/// A refresh serves the new version to later reads, and borrowed arguments
/// are copied for it.
#[tokio::test(start_paused = true)]
async fn a_refresh_brings_the_new_version() {
    let repo = Repo::new(support::memory());
    assert_eq!(repo.named("ada").await, Ok("ada@1".into()));
    repo.source.version.store(2, SeqCst);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert_eq!(
        repo.named("ada").await,
        Ok("ada@1".into()),
        "served at once"
    );
    tokio::task::yield_now().await; // the refresh runs in the background
    assert_eq!(repo.named("ada").await, Ok("ada@2".into()));
    assert_eq!(repo.source.loads(), 2);
}

/// TTL 1 s, grace 3 s, the source down from the start: the last good value
/// is served (stale) until 4 s, one background refresh is tried in the
/// grace period (the failure throttles the next for a lease TTL, 5 s), and
/// from 4 s reads load at once and return the error.
#[tokio::test(start_paused = true)]
async fn a_stale_value_is_served_while_the_source_is_down_until_the_grace_ends() {
    let repo = Repo::new(support::memory());
    let start = Instant::now();
    assert_eq!(repo.graced(1).await, Ok(1));
    repo.source.failing.store(true, SeqCst);
    while start.elapsed() < Duration::from_secs(4) {
        assert_eq!(repo.graced(1).await, Ok(1), "at {:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(repo.graced(1).await, Err("database down".into()));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(4),
        "the error comes at once: the failed refresh's throttle does not hold misses back"
    );
    let stats = repo.cache.stats();
    assert_eq!(stats.stale_hits, 30, "1.0 s to 3.9 s: {stats:?}");
    assert_eq!(stats.refresh_failures, 1, "{stats:?}");
    assert_eq!(
        repo.source.loads(),
        3,
        "the first load, one refresh, the miss at 4 s"
    );
    repo.source.failing.store(false, SeqCst);
    assert_eq!(repo.graced(1).await, Ok(1), "back with the source");
}

/// Within the grace period a read returns the stale value at once and
/// refreshes it (stale-while-revalidate).
#[tokio::test(start_paused = true)]
async fn a_stale_read_refreshes_in_the_background() {
    let repo = Repo::new(support::memory());
    assert_eq!(repo.graced(1).await, Ok(1));
    repo.source.version.store(2, SeqCst);
    tokio::time::advance(Duration::from_millis(1_500)).await;
    assert_eq!(repo.graced(1).await, Ok(1), "stale, at once");
    tokio::task::yield_now().await;
    assert_eq!(repo.graced(1).await, Ok(2), "refreshed");
    let stats = repo.cache.stats();
    assert_eq!((stats.stale_hits, stats.refreshes, stats.hits), (1, 1, 1));
}

/// On Redis, in real time: TTL 1 s, grace 3 s, the source down. Every read
/// that ends inside the grace period gets the last good value, every read
/// that starts after it the error; the reads past the TTL are stale hits,
/// and the source is tried once (a lease TTL of a minute). Which read
/// falls where is decided by the clock readings around it, so a slow
/// machine changes how many reads there are, not the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_stale_value_is_served_while_the_source_is_down() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .ttl_jitter(0.0)
        .lease_ttl(Duration::from_secs(60))
        .redis(&server.url())
        .await
        .unwrap();
    let repo = Repo::new(cache);
    let before = Instant::now();
    assert_eq!(repo.graced(1).await, Ok(1));
    let after = Instant::now(); // the entry was written between the two
    repo.source.failing.store(true, SeqCst);
    let mut stale_reads = 0;
    while Instant::now() < before + Duration::from_millis(3_700) {
        let started = Instant::now();
        let read = repo.graced(1).await;
        if Instant::now() < before + Duration::from_secs(4) {
            assert_eq!(read, Ok(1), "at {:?}", started - before);
        }
        if started > after + Duration::from_secs(1) && read.is_ok() {
            stale_reads += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep_until(after + Duration::from_millis(4_100)).await;
    assert_eq!(repo.graced(1).await, Err("database down".into()));
    let stats = repo.cache.stats();
    assert!(stale_reads > 0, "no read fell past the TTL");
    assert!(
        stats.stale_hits >= stale_reads,
        "{stale_reads} stale reads: {stats:?}"
    );
    assert_eq!(
        stats.refresh_failures, 1,
        "one try per lease TTL: {stats:?}"
    );
}

/// A refresh whose body hangs is abandoned after the lease TTL (5 s): the
/// miss at expiry (10 s), which waits for the refresh in flight, then loads
/// itself, instead of waiting forever.
#[tokio::test(start_paused = true)]
async fn a_hung_refresh_is_abandoned_after_the_lease_ttl() {
    let repo = Repo::new(support::memory());
    let start = Instant::now();
    assert_eq!(repo.ahead(1).await, Ok(1));
    repo.source.hanging.store(true, SeqCst);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert_eq!(repo.ahead(1).await, Ok(1), "due: refreshes, and hangs");
    tokio::task::yield_now().await;
    repo.source.hanging.store(false, SeqCst);
    tokio::time::advance(Duration::from_secs(2)).await;
    let late = tokio::time::timeout(Duration::from_secs(60), repo.ahead(1)).await;
    assert_eq!(late, Ok(Ok(1)), "the miss at expiry is answered");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(13),
        "when the refresh was abandoned"
    );
    assert_eq!(repo.cache.stats().refresh_failures, 1);
}

/// A refresh finds the row deleted (a `None`, not cached): the entry goes.
/// But a value written while it loaded is kept: the lease says so.
#[tokio::test(start_paused = true)]
async fn a_refresh_that_finds_the_row_gone_clears_it_unless_written_meanwhile() {
    let repo = Repo::new(support::memory());
    assert_eq!(repo.row(1).await, Ok(Some(1)));
    repo.source.deleted.store(true, SeqCst);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert_eq!(repo.row(1).await, Ok(Some(1)), "served while it refreshes");
    tokio::task::yield_now().await;
    assert_eq!(repo.cache.get::<u64>("row:1").await, None, "cleared");

    assert_eq!(repo.row(2).await, Ok(None));
    // Past the moment its uncached answer is shared with waiters.
    tokio::time::advance(Duration::from_millis(200)).await;
    repo.source.deleted.store(false, SeqCst);
    assert_eq!(repo.row(2).await, Ok(Some(1)));
    repo.source.deleted.store(true, SeqCst);
    tokio::time::advance(Duration::from_secs(8)).await;
    let (started, release) = repo.source.hold_next();
    assert_eq!(repo.row(2).await, Ok(Some(1)));
    started.await.unwrap();
    repo.cache
        .set("row:2", &42u64, Duration::from_secs(60))
        .await
        .unwrap();
    release.send(()).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        repo.cache.get::<u64>("row:2").await,
        Some(42),
        "the write stays"
    );
}

/// An invalidation during a refresh: the refresh, which may have read the
/// row before the write, does not store.
#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_refresh_wins() {
    let repo = Repo::new(support::memory());
    assert_eq!(repo.ahead(1).await, Ok(1));
    tokio::time::advance(Duration::from_secs(8)).await;
    let (started, release) = repo.source.hold_next();
    assert_eq!(repo.ahead(1).await, Ok(1));
    started.await.unwrap();
    repo.source.version.store(2, SeqCst);
    repo.cache.invalidate(&["ahead:1"]).await.unwrap();
    release.send(()).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        repo.cache.stats().lease_lost,
        1,
        "the refresh was not stored"
    );
    assert_eq!(
        repo.ahead(1).await,
        Ok(2),
        "the next read loads the new row"
    );
}

/// A failed refresh throttles the next for a lease TTL (5 s): with the
/// source down and the value read every 100 ms, it is tried at 1 s, then
/// once the throttle ends, at 6 s (give or take the half second a process
/// waits after finding the key throttled), and not in between.
#[tokio::test(start_paused = true)]
async fn a_failed_refresh_is_tried_again_once_its_throttle_ends() {
    let repo = Repo::new(support::memory());
    assert_eq!(repo.long_graced(1).await, Ok(1));
    repo.source.failing.store(true, SeqCst);
    let start = Instant::now();
    let mut failures_at = Vec::new();
    while start.elapsed() < Duration::from_millis(7_900) {
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(repo.long_graced(1).await, Ok(1));
        tokio::task::yield_now().await;
        if repo.cache.stats().refresh_failures as usize > failures_at.len() {
            failures_at.push(start.elapsed().as_millis());
        }
    }
    assert_eq!(failures_at.len(), 2, "{failures_at:?}");
    assert_eq!(failures_at[0], 1_000);
    assert!((6_000..=6_600).contains(&failures_at[1]), "{failures_at:?}");
    assert_eq!(repo.source.loads(), 3);
}

/// Refresh ahead and stale together: refreshed at 1 s while the source is
/// up; with the source down, served fresh until 2 s, then stale until the
/// grace ends, with failed refreshes throttled.
#[tokio::test(start_paused = true)]
async fn refresh_ahead_and_stale_together() {
    let repo = Repo::new(support::memory());
    read_continuously(2, 1, || repo.both(1)).await;
    assert_eq!(
        repo.source.loads(),
        2,
        "the first load and one refresh at 1 s"
    );
    repo.source.failing.store(true, SeqCst);
    read_continuously(10, 1, || repo.both(1)).await;
    let stats = repo.cache.stats();
    assert!(stats.stale_hits > 50, "{stats:?}");
    assert!(
        (1..=3).contains(&stats.refresh_failures),
        "one try per throttle window: {stats:?}"
    );
}

/// XFetch end to end: a key read every 10 ms for 30 s, its load taking
/// 200 ms, its TTL 3 s. With beta 2, one read refreshes it ahead of every
/// expiry (the chance that none does, in a cycle, is below one in a
/// billion), so it never misses after the first load. By the formula the
/// median refresh comes 1.6 s before expiry: some 19 loads in 30 s.
#[tokio::test(start_paused = true)]
async fn xfetch_refreshes_before_expiry() {
    let repo = Repo::new(support::memory());
    for _ in 0..3_000 {
        assert!(repo.xfetched(1).await.is_ok());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = repo.cache.stats();
    assert_eq!(stats.misses, 1, "{stats:?}");
    assert!(
        (10..=30).contains(&repo.source.loads()),
        "ahead of each expiry, not once per read: {stats:?}"
    );
}

/// On Redis, a failed refresh in one process throttles the others: a second
/// cache reading the stale value does not try the source until the throttle
/// (a lease TTL, here a minute, longer than the test) ends. TTL 1 s, grace
/// 30 s: every read past the TTL is stale, however slow the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_failed_refresh_throttles_other_processes() {
    let server = RedisServer::start();
    let builder = || {
        Cache::builder()
            .ttl_jitter(0.0)
            .lease_ttl(Duration::from_secs(60))
    };
    let a = Repo::new(builder().redis(&server.url()).await.unwrap());
    let b = Repo {
        cache: builder().redis(&server.url()).await.unwrap(),
        source: Arc::clone(&a.source),
    };
    assert_eq!(a.long_graced(1).await, Ok(1));
    a.source.failing.store(true, SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        a.long_graced(1).await,
        Ok(1),
        "stale: a tries to refresh, and fails"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.cache.stats().refresh_failures == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..10 {
        assert_eq!(b.long_graced(1).await, Ok(1), "b is served the stale value");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.source.loads(), 2, "b did not try the failing source");
    assert_eq!(b.cache.stats().refreshes, 0);
}
