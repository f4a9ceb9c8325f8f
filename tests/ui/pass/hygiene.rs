//! The macros' own bindings cannot clash with the user's names: parameters
//! called `key`, `cache`, `result`, `spec` or `__cache_rt_cache`, and
//! locals with the macros' reserved prefix, all work.

use cache_runtime::{cached, invalidates, Cache};

#[cached(key = "all:<key>:<result>:<spec>:<__cache_rt_cache>", cache = cache)]
async fn all(cache: &Cache, key: u64, result: &str, spec: bool, __cache_rt_cache: char) -> String {
    let __cache_rt_key = format!("{key}/{result}/{spec}/{__cache_rt_cache}");
    let _ = cache.prefix();
    __cache_rt_key
}

static SHARED: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(Cache::memory);

#[cached(cache = &SHARED)]
async fn default_key(__cache_rt_probe: u64, __cache_rt_key: u64) -> u64 {
    let __cache_rt_cache = __cache_rt_probe * 10;
    __cache_rt_cache + __cache_rt_key
}

#[invalidates("all:<key>:<result>:<spec>:<__cache_rt_cache>", cache = cache)]
async fn forget(cache: &Cache, key: u64, result: &str, spec: bool, __cache_rt_cache: char) {
    let __cache_rt_keys = [key];
    let _ = (cache, __cache_rt_keys, result, spec, __cache_rt_cache);
}

async fn run() {
    let cache = &Cache::memory();
    for _ in 0..2 {
        assert_eq!(all(cache, 1, "r", true, 'c').await, "1/r/true/c");
        assert_eq!(all(cache, 2, "r", true, 'c').await, "2/r/true/c");
    }
    forget(cache, 1, "r", true, 'c').await;
    assert_eq!(all(cache, 1, "r", true, 'c').await, "1/r/true/c");
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.hits, stats.invalidations), (3, 2, 1));

    for _ in 0..2 {
        assert_eq!(default_key(1, 2).await, 12);
        assert_eq!(default_key(2, 1).await, 21);
    }
    assert_eq!((SHARED.stats().loads, SHARED.stats().hits), (2, 2));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
