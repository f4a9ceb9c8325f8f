//! A background refresh does not need the result to be `Send`: it encodes
//! it and drops it before it awaits anything.

use cache_runtime::{cached, Cache};
use std::rc::Rc;

#[cached(strategy = "refresh_ahead", key = "n:<id>", ttl = 60)]
async fn n(id: u64) -> Result<u64, Rc<String>> {
    Ok(id)
}

#[tokio::main]
async fn main() {
    cache_runtime::set_default(Cache::memory());
    assert_eq!(n(7).await, Ok(7));
    assert_eq!(n(7).await, Ok(7));
    assert_eq!(cache_runtime::default_cache().unwrap().stats().loads, 1);
}
