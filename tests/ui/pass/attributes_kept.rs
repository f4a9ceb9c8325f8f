//! Attributes, doc comments and visibility of the annotated function are
//! kept: `#[allow]` still silences the lint that `deny` below would raise,
//! `pub(crate)` is still callable from outside its module, and the
//! generated code raises no warning of its own.
#![deny(warnings)]

use cache_runtime::Cache;

mod users {
    use cache_runtime::{cached, invalidates, Cache};

    /// Looks a user's name up.
    #[doc = "Cached for a minute."]
    #[cached(key = "user:<ID>", ttl = 60, cache = c)]
    #[allow(non_snake_case)]
    #[must_use = "the name is the point"]
    #[inline]
    pub(crate) async fn GetName(c: &Cache, ID: u64) -> String {
        format!("user {ID}")
    }

    /// Renames a user.
    #[allow(non_snake_case)]
    #[invalidates("user:<ID>", cache = c)]
    #[cfg(not(any()))]
    pub(crate) async fn Rename(c: &Cache, ID: u64) -> Result<(), String> {
        let _ = ID;
        Ok(())
    }
}

async fn run() {
    let c = &Cache::memory();
    assert_eq!(users::GetName(c, 3).await, "user 3");
    assert_eq!(users::GetName(c, 3).await, "user 3");
    users::Rename(c, 3).await.expect("renamed");
    assert_eq!(users::GetName(c, 3).await, "user 3");
    let stats = c.stats();
    assert_eq!((stats.loads, stats.hits, stats.invalidations), (2, 1, 1));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    run().await;
}
