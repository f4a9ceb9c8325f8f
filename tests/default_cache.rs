//! The process-wide default cache: functions without `cache = ...` use it;
//! using them before it is set, or setting it twice, is a loud mistake.
//! One test, because the default is global to this test process.

use cache_runtime::{cached, invalidates, Cache};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "square:<n>", ttl = "10m")]
async fn square(n: u64) -> u64 {
    LOADS.fetch_add(1, SeqCst);
    n * n
}

#[invalidates("square:<n>")]
async fn forget(n: u64) {}

#[tokio::test]
async fn the_default_cache_is_set_once_and_used_by_default() {
    let early = tokio::spawn(square(3)).await.expect_err("no default yet");
    let message = early.into_panic();
    let message = match message.downcast_ref::<&str>() {
        Some(s) => s.to_string(),
        None => message
            .downcast_ref::<String>()
            .cloned()
            .expect("a text message"),
    };
    assert!(message.contains("no default cache"), "{message}");

    cache_runtime::set_default(Cache::memory());
    assert_eq!(square(12).await, 144);
    assert_eq!(square(12).await, 144);
    forget(12).await;
    assert_eq!(square(12).await, 144);
    assert_eq!(LOADS.load(SeqCst), 2);
    let stats = cache_runtime::default_cache().expect("set").stats();
    assert_eq!((stats.hits, stats.loads, stats.invalidations), (1, 2, 1));

    assert!(cache_runtime::try_set_default(Cache::memory()).is_err());
    let twice = std::panic::catch_unwind(|| cache_runtime::set_default(Cache::memory()));
    assert!(twice.is_err(), "a second set_default panics");
}
