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
use tokio::time::Instant;

/// A source whose rows are a version number, which can fail.
#[derive(Default)]
struct Source {
    version: AtomicU64,
    loads: AtomicU64,
    failing: AtomicBool,
}

impl Source {
    async fn read(&self) -> Result<u64, String> {
        self.loads.fetch_add(1, SeqCst);
        if self.failing.load(SeqCst) {
            return Err("database down".into());
        }
        Ok(self.version.load(SeqCst))
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

/// On Redis, in real time: TTL 1 s, grace 3 s, the source down. Reads well
/// inside the grace period get the last good value; reads well after it
/// get the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_stale_value_is_served_while_the_source_is_down() {
    let server = RedisServer::start();
    let repo = Repo::new(support::redis(&server).await);
    let start = Instant::now();
    assert_eq!(repo.graced(1).await, Ok(1));
    repo.source.failing.store(true, SeqCst);
    while start.elapsed() < Duration::from_millis(3_700) {
        assert_eq!(repo.graced(1).await, Ok(1), "at {:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep_until(start + Duration::from_millis(4_300)).await;
    assert_eq!(repo.graced(1).await, Err("database down".into()));
    let stats = repo.cache.stats();
    assert!(stats.stale_hits >= 20, "{stats:?}");
    assert_eq!(
        stats.refresh_failures, 1,
        "one try per lease TTL: {stats:?}"
    );
}
