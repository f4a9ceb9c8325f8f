//! The forms of `refresh_ahead` and `stale`, and the signatures their
//! background loads copy: borrowed and `mut` arguments, generics, an `Arc`
//! receiver, an argument used in the key only (no `Clone` needed), `self::`
//! paths and inline format arguments in the body.

use cache_runtime::{cached, Cache, KeyPart, KeyWriter};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static LOADS: AtomicU64 = AtomicU64::new(0);

fn load() {
    LOADS.fetch_add(1, SeqCst);
}

#[cached(strategy = "refresh_ahead", key = "fraction:<id>", ttl = 60, refresh = 0.5, cache = &CACHE)]
async fn fraction(id: u64) -> u64 {
    load();
    id
}

#[cached(strategy = "refresh_ahead", key = "age:<id>", ttl = "1h", refresh = "45m", cache = &CACHE)]
async fn age(id: u64) -> u64 {
    load();
    id
}

#[cached(strategy = "refresh_ahead", key = "xfetch:<id>", ttl = 60, refresh = "xfetch", beta = 1.5, cache = &CACHE)]
async fn xfetch(id: u64) -> u64 {
    load();
    id
}

#[cached(key = "grace:<id>", ttl = 60, stale = "10m", cache = &CACHE)]
async fn grace(id: u64) -> Option<u64> {
    load();
    Some(id)
}

#[cached(strategy = "refresh_ahead", key = "borrowed:<name>", ttl = 60, cache = &CACHE)]
async fn borrowed(name: &str, bytes: &[u8], path: &Path) -> String {
    load();
    format!("{name}:{}:{}", bytes.len(), path.display())
}

#[cached(strategy = "refresh_ahead", key = "mutable:<n>", ttl = 60, cache = &CACHE)]
async fn mutable(mut n: u64) -> u64 {
    load();
    n += 1;
    n
}

#[cached(strategy = "refresh_ahead", key = "generic:<value>", ttl = 60, cache = &CACHE)]
async fn generic<T: KeyPart + Clone + Send + ToString + 'static>(value: T) -> String {
    load();
    value.to_string()
}

/// Not `Clone`: used in the key only, so never copied.
struct Tenant(u32);

impl KeyPart for Tenant {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_u64(u64::from(self.0));
    }
}

#[cached(strategy = "refresh_ahead", key = "tenant:<tenant>:<id>", ttl = 60, cache = &CACHE)]
async fn per_tenant(tenant: &Tenant, id: u64) -> u64 {
    load();
    self::double(id)
}

fn double(n: u64) -> u64 {
    n * 2
}

struct Service {
    base: u64,
}

impl Service {
    #[cached(strategy = "refresh_ahead", key = "service:<id>", ttl = 60, cache = &CACHE)]
    async fn shifted(self: Arc<Self>, id: u64) -> u64 {
        load();
        self.base + id
    }
}

/// `self` where the body has nested items and `use` trees with their own,
/// and a receiver bound `mut`.
#[derive(Clone)]
struct Counter {
    start: u64,
}

impl Counter {
    #[cached(strategy = "refresh_ahead", key = "counter:<step>", ttl = 60, cache = &CACHE)]
    async fn next(mut self, step: u64) -> String {
        use std::fmt::{self, Write};
        struct Shown(u64);
        impl fmt::Display for Shown {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "#{}", self.0)
            }
        }
        load();
        self.start += step;
        let mut out = String::new();
        let _ = write!(out, "{}", Shown(self.start));
        out
    }
}

/// `&mut self`, which cannot be copied, is fine when the body does not use
/// `self` (a word in a string is not a use).
struct Tally {
    seen: u64,
}

impl Tally {
    #[cached(key = "tally:<id>", ttl = 60, stale = "1m", cache = &CACHE)]
    async fn describe(&mut self, id: u64) -> String {
        load();
        format!("loaded by self for {id}")
    }
}

#[tokio::main]
async fn main() {
    for _ in 0..2 {
        assert_eq!(fraction(1).await, 1);
        assert_eq!(age(2).await, 2);
        assert_eq!(xfetch(3).await, 3);
        assert_eq!(grace(4).await, Some(4));
        assert_eq!(borrowed("ada", b"xyz", Path::new("/tmp")).await, "ada:3:/tmp");
        assert_eq!(mutable(5).await, 6);
        assert_eq!(generic(6u8).await, "6");
        assert_eq!(per_tenant(&Tenant(9), 7).await, 14);
        assert_eq!(Arc::new(Service { base: 100 }).shifted(8).await, 108);
        assert_eq!(Counter { start: 10 }.next(5).await, "#15");
        let mut tally = Tally { seen: 0 };
        assert_eq!(tally.describe(3).await, "loaded by self for 3");
        tally.seen += 1;
        assert!(tally.seen > 0);
    }
    assert_eq!(LOADS.load(SeqCst), 11, "each loaded once, then hits");
}
