//! `ttl = "5m"`, `ttl = 300`, `null_ttl = 0`, and `cache = &CACHE` with a
//! `LazyLock<Cache>` static.

use cache_runtime::{cached, Cache};
use std::sync::LazyLock;
use std::time::Duration;

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::builder().ttl_jitter(0.0).memory());

#[cached(key = "five_minutes:<id>", ttl = "5m", cache = &CACHE)]
async fn five_minutes(id: u64) -> u64 {
    id
}

#[cached(key = "seconds:<id>", ttl = 300, cache = &CACHE)]
async fn seconds(id: u64) -> u64 {
    id
}

#[cached(key = "compound:<id>", ttl = "1h30m", cache = &CACHE)]
async fn compound(id: u64) -> u64 {
    id
}

#[cached(key = "no_nulls:<id>", ttl = 60, null_ttl = 0, cache = &CACHE)]
async fn no_nulls(id: u64) -> Option<u64> {
    (id != 0).then_some(id)
}

#[cached(key = "nulls:<id>", ttl = 60, null_ttl = "10s", cache = &CACHE)]
async fn nulls(id: u64) -> Option<u64> {
    (id != 0).then_some(id)
}

async fn ttl_of(key: &str) -> Duration {
    CACHE
        .ttl(key)
        .await
        .unwrap_or_else(|| panic!("{key} is not cached"))
}

fn near(actual: Duration, expected: Duration) -> bool {
    actual <= expected && actual + Duration::from_secs(5) > expected
}

async fn run() {
    assert_eq!(five_minutes(1).await, 1);
    assert_eq!(seconds(1).await, 1);
    assert_eq!(compound(1).await, 1);
    assert!(near(
        ttl_of("five_minutes:1").await,
        Duration::from_secs(300)
    ));
    assert!(near(ttl_of("seconds:1").await, Duration::from_secs(300)));
    assert!(near(ttl_of("compound:1").await, Duration::from_secs(5400)));

    let before = CACHE.stats();
    assert_eq!(no_nulls(0).await, None);
    assert_eq!(no_nulls(0).await, None);
    assert_eq!(nulls(0).await, None);
    assert_eq!(nulls(0).await, None);
    let after = CACHE.stats();
    assert_eq!(
        after.loads - before.loads,
        3,
        "null_ttl = 0 does not cache None"
    );
    assert_eq!(after.null_hits - before.null_hits, 1);
    assert!(CACHE.ttl("no_nulls:0").await.is_none());
    assert!(near(ttl_of("nulls:0").await, Duration::from_secs(10)));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
