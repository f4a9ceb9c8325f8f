//! `crate = "path"` for code that reaches the runtime under another name.

use cache_runtime as caching;

#[caching::cached(key = "n:<n>", cache = c, crate = "caching")]
async fn half(c: &caching::Cache, n: u64) -> u64 {
    n / 2
}

#[caching::invalidates("n:<n>", cache = c, crate = "caching")]
async fn forget(c: &caching::Cache, n: u64) {
    let _ = (c, n);
}

async fn run() {
    let c = &caching::Cache::memory();
    assert_eq!(half(c, 8).await, 4);
    assert_eq!(half(c, 8).await, 4);
    forget(c, 8).await;
    assert_eq!(half(c, 8).await, 4);
    let stats = c.stats();
    assert_eq!((stats.loads, stats.hits, stats.invalidations), (2, 1, 1));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
