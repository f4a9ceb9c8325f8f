//! `#[must_use]` on a cached function is kept: ignoring the result is
//! still reported. (The only fail case that pins a lint of rustc's own.)
#![deny(unused_must_use)]

use cache_runtime::{cached, Cache};

#[cached(key = "n:<n>", cache = c)]
#[must_use]
async fn double(c: &Cache, n: u64) -> u64 {
    n * 2
}

async fn call(c: &Cache) {
    double(c, 1).await;
}

fn main() {
    let _ = call;
}
