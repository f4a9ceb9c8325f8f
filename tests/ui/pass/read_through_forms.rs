//! Read-through handles: on a method whose key names a field of `self`,
//! and on a function without arguments (its handle takes `()`).

use cache_runtime::{cached, Cache};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

static LOADS: AtomicU64 = AtomicU64::new(0);

struct Tenant {
    cache: Cache,
    tenant: u32,
}

impl Tenant {
    #[cached(strategy = "read_through", key = "t:<self.tenant>:<id>", ttl = 60, cache = self.cache, handle = items)]
    pub async fn item(&self, id: u64) -> String {
        LOADS.fetch_add(1, SeqCst);
        format!("{}/{id}", self.tenant)
    }
}

#[cached(strategy = "read_through", key = "settings", ttl = 60, handle = SETTINGS)]
async fn settings() -> Vec<String> {
    LOADS.fetch_add(1, SeqCst);
    vec!["dark".into()]
}

#[tokio::main]
async fn main() {
    cache_runtime::set_default(Cache::memory());
    let a = Tenant { cache: Cache::memory(), tenant: 1 };
    assert_eq!(a.items().get(5).await, "1/5");
    assert_eq!(a.items().get(5).await, "1/5");
    assert_eq!(a.cache.get::<String>("t:1:5").await.as_deref(), Some("1/5"));
    a.items().invalidate(5).await.unwrap();
    assert_eq!(a.cache.get::<String>("t:1:5").await, None);
    assert_eq!(SETTINGS.get(()).await, ["dark"]);
    assert_eq!(SETTINGS.get(()).await, ["dark"]);
    assert_eq!(LOADS.load(SeqCst), 2);
}
