//! [`CacheBuilder`]: namespace, schema version, default TTLs, jitter,
//! timeouts and size, then the backend.

use crate::backend::memory::MemoryBackend;
use crate::backend::redis::RedisBackend;
use crate::backend::Store;
use crate::{Cache, Error};
use std::sync::Arc;
use std::time::Duration;

/// Settings shared by every entry of one cache.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The namespace alone: write-behind queues live under it, outside the
    /// schema version.
    pub(crate) namespace: String,
    pub(crate) prefix: String,
    pub(crate) default_ttl: Duration,
    pub(crate) default_null_ttl: Duration,
    pub(crate) jitter: f64,
    pub(crate) lease_ttl: Duration,
    pub(crate) lease_wait: Option<Duration>,
}

/// Builds a [`Cache`].
///
/// | setting | default |
/// |---|---|
/// | [`namespace`](Self::namespace) | `"cache"` |
/// | [`schema_version`](Self::schema_version) | `1` |
/// | [`default_ttl`](Self::default_ttl) | 60 s |
/// | [`default_null_ttl`](Self::default_null_ttl) | 30 s, capped at the entry's TTL |
/// | [`ttl_jitter`](Self::ttl_jitter) | `0.1`: each TTL is shortened by up to 10% |
/// | [`lease_ttl`](Self::lease_ttl) | 5 s |
/// | [`lease_wait`](Self::lease_wait) | the lease TTL plus 1 s |
/// | [`timeout`](Self::timeout) | 250 ms per Redis call |
/// | [`connect_timeout`](Self::connect_timeout) | 2 s |
/// | [`circuit_breaker`](Self::circuit_breaker) | open after 5 failures in a row, for 1 s |
/// | [`max_entries`](Self::max_entries) | 100 000 (in-memory backend) |
///
/// ```
/// # async fn run() -> Result<(), cache_runtime::Error> {
/// use cache_runtime::Cache;
/// use std::time::Duration;
///
/// let cache = Cache::builder()
///     .namespace("shop")
///     .schema_version(3)
///     .default_ttl(Duration::from_secs(300))
///     .memory();
/// assert_eq!(cache.prefix(), "shop:v3:");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CacheBuilder {
    namespace: String,
    schema_version: u32,
    default_ttl: Duration,
    default_null_ttl: Duration,
    jitter: f64,
    lease_ttl: Duration,
    lease_wait: Option<Duration>,
    timeout: Duration,
    connect_timeout: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    max_entries: usize,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            namespace: "cache".into(),
            schema_version: 1,
            default_ttl: Duration::from_secs(60),
            default_null_ttl: Duration::from_secs(30),
            jitter: 0.1,
            lease_ttl: Duration::from_secs(5),
            lease_wait: None,
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(2),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            max_entries: 100_000,
        }
    }
}

impl CacheBuilder {
    /// The first part of every key, so that several applications can share
    /// one Redis. `{`, `}` and `\` are replaced by `_`, so a namespace
    /// cannot change a key's Redis Cluster slot or forge an escape.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into().replace(['{', '}', '\\'], "_");
        self
    }

    /// The schema version, part of every key (`namespace:v3:`). Bump it when
    /// a cached type changes shape: new code then never reads old bytes.
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// The TTL of functions that do not set `ttl`. Zero is raised to 1 ms.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How long a `None` is cached for functions that do not set
    /// `null_ttl`; never longer than the entry's TTL. Zero turns negative
    /// caching off by default.
    pub fn default_null_ttl(mut self, ttl: Duration) -> Self {
        self.default_null_ttl = ttl;
        self
    }

    /// Shortens each stored TTL by a random fraction up to `fraction`
    /// (clamped to `0.0..=0.5`), so that keys written together do not all
    /// expire together. A TTL is never lengthened.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 0.5)
        };
        self
    }

    /// How long a lease lasts for functions that do not set `lease_ttl`.
    /// The caller that leads a load holds the key's lease until it stores
    /// the result; past the lease TTL (a crashed or very slow holder)
    /// another caller may take it and load. Set it above your slowest load.
    /// Zero is raised to 1 ms.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The longest a caller waits for another caller's load, for functions
    /// that do not set `lease_wait`; past it, the caller runs the body
    /// itself and does not store the result. Default: the lease TTL plus
    /// one second, so that when a holder crashes its lease expires while
    /// the waiters still wait, and one of them takes over.
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = Some(wait);
        self
    }

    /// The longest a Redis call may take before the cache gives up on it
    /// (a read then runs the body).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest [`redis`](Self::redis) waits for the first connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// After `failures` backend failures in a row, skip the backend for
    /// `cooldown`, then let one call probe it.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_cooldown = cooldown;
        self
    }

    /// The most entries the in-memory backend holds; beyond it, writes evict
    /// (least recently used of a few random samples, expired ones first).
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    fn config(&self) -> Config {
        Config {
            namespace: self.namespace.clone(),
            prefix: format!("{}:v{}:", self.namespace, self.schema_version),
            default_ttl: self.default_ttl,
            default_null_ttl: self.default_null_ttl,
            jitter: self.jitter,
            lease_ttl: self.lease_ttl,
            lease_wait: self.lease_wait,
        }
    }

    /// A cache in this process's memory: no server, not shared between
    /// processes.
    pub fn memory(self) -> Cache {
        let store = MemoryStore::new(self.max_entries);
        self.memory_store(&store)
    }

    /// A cache in a memory store that other caches may share (see
    /// [`MemoryStore`]). The store's own size bound applies;
    /// [`max_entries`](Self::max_entries) is not used.
    pub fn memory_store(self, store: &MemoryStore) -> Cache {
        Cache::new(
            Store::Memory(Arc::clone(&store.0)),
            self.config(),
            self.breaker_threshold,
            self.breaker_cooldown,
        )
    }

    /// A cache on the Redis server at `url` (`redis://[user:password@]host:port[/db]`).
    ///
    /// Connects before returning: fails when the URL is invalid or the
    /// server does not answer within the connect timeout. Once connected,
    /// a lost connection is re-established in the background, and cache
    /// failures never fail a read.
    pub async fn redis(self, url: &str) -> Result<Cache, Error> {
        let backend = RedisBackend::connect(url, self.timeout, self.connect_timeout).await?;
        Ok(Cache::new(
            Store::Redis(backend),
            self.config(),
            self.breaker_threshold,
            self.breaker_cooldown,
        ))
    }
}

/// An in-process store that several caches can share: caches with their
/// own namespaces and settings over one memory budget, in the way several
/// services share one Redis. Each cache keeps its own counters and its own
/// loads in flight; leases coordinate loads between the caches of one store
/// exactly as they do between processes on Redis.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_runtime::{Cache, MemoryStore};
/// use std::time::Duration;
///
/// let store = MemoryStore::new(10_000);
/// let users = Cache::builder().namespace("users").memory_store(&store);
/// let same = Cache::builder().namespace("users").memory_store(&store);
/// users.set("1", &"Ada", Duration::from_secs(60)).await.unwrap();
/// assert_eq!(same.get::<String>("1").await.as_deref(), Some("Ada"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore(Arc<MemoryBackend>);

impl MemoryStore {
    /// A store holding at most `max_entries` entries; beyond it, writes
    /// evict (least recently used of a few random samples, expired ones
    /// first).
    pub fn new(max_entries: usize) -> Self {
        MemoryStore(Arc::new(MemoryBackend::new(max_entries)))
    }
}
