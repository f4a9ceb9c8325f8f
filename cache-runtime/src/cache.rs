//! [`Cache`]: the handle users hold, its programmatic API, and the guarded
//! backend calls every strategy goes through (breaker, counters, logs).

use crate::backend::{Acquire, Backend, BackendError, Store, Token};
use crate::breaker::Breaker;
use crate::builder::{CacheBuilder, Config};
use crate::clock::Clock;
use crate::envelope::{self, DecodeError, Decoded, Header};
use crate::flight::Flights;
use crate::pending::{PendingDeletes, Retry};
use crate::refresh::Refreshing;
use crate::stats::{bump, CacheStats, Counters};
use crate::Error;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A cache: a cheap, cloneable handle to one backend (in memory or Redis),
/// its settings, counters and in-flight loads.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_runtime::Cache;
/// use std::time::Duration;
///
/// let cache = Cache::memory();
/// cache.set("greeting", &"hello".to_string(), Duration::from_secs(60)).await.unwrap();
/// assert_eq!(cache.get::<String>("greeting").await.as_deref(), Some("hello"));
/// cache.invalidate(&["greeting"]).await.unwrap();
/// assert_eq!(cache.get::<String>("greeting").await, None);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    store: Store,
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    breaker: Breaker,
    pub(crate) flights: Flights,
    pub(crate) refreshing: Refreshing,
    pending: PendingDeletes,
    clock: Clock,
}

/// What a lookup found.
pub(crate) enum Lookup<T> {
    Hit(T, Header),
    Null(Header),
    Miss,
}

impl Cache {
    pub(crate) fn new(store: Store, config: Config, threshold: u32, cooldown: Duration) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                store,
                config,
                counters: Counters::default(),
                breaker: Breaker::new(threshold, cooldown),
                flights: Flights::default(),
                refreshing: Refreshing::default(),
                pending: PendingDeletes::default(),
                clock: Clock::new(),
            }),
        }
    }

    /// An embedded in-memory cache with default settings: no server needed.
    pub fn memory() -> Cache {
        CacheBuilder::default().memory()
    }

    /// A cache on Redis at `url` with default settings; see
    /// [`CacheBuilder::redis`].
    pub async fn redis(url: &str) -> Result<Cache, Error> {
        CacheBuilder::default().redis(url).await
    }

    /// A builder for namespace, schema version, default TTLs, timeouts.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// The prefix of every key of this cache: `namespace:vN:`.
    pub fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// The counters of this cache since it was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix().len() + key.len());
        full.push_str(self.prefix());
        full.push_str(key);
        full
    }

    /// Reads `key` (without the prefix; see [`key_part`](crate::key_part)
    /// for escaping values). A miss, a cached `None`, an undecodable entry
    /// and a backend failure all read as `None`; the last two are logged
    /// and counted.
    ///
    /// Keys given to this API should not contain `{` or `}` (values
    /// escaped with `key_part` never do): on a Redis Cluster, braces would
    /// move the key to another slot than its lease.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        match self.lookup::<T>(&self.full_key(key)).await {
            Lookup::Hit(v, _) => {
                bump(&self.inner.counters.hits);
                Some(v)
            }
            Lookup::Null(_) => {
                bump(&self.inner.counters.null_hits);
                None
            }
            Lookup::Miss => {
                bump(&self.inner.counters.misses);
                None
            }
        }
    }

    /// Stores `value` under `key` for `ttl` (jitter applies), and cancels
    /// the key's lease: a load in flight, which may have read the source
    /// before this write, will not overwrite it.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        let fresh = self.jittered(ttl);
        let bytes = envelope::encode_value(value, &self.header(fresh, Duration::ZERO))?;
        self.guarded(
            self.inner
                .store
                .set(&self.full_key(key), bytes.into(), fresh),
        )
        .await?;
        Ok(())
    }

    /// Deletes `keys` (without the prefix) and their leases: loads of these
    /// keys in flight, in any process, will not store their result.
    pub async fn invalidate<K: AsRef<str>>(&self, keys: &[K]) -> Result<(), Error> {
        let full: Vec<String> = keys.iter().map(|k| self.full_key(k.as_ref())).collect();
        Ok(self.delete(&full).await?)
    }

    /// The time `key` has left to live, or `None` when it is absent, has no
    /// expiry (a write-behind value whose write is not flushed yet), or the
    /// backend cannot be reached.
    pub async fn ttl(&self, key: &str) -> Option<Duration> {
        self.guarded(self.inner.store.ttl(&self.full_key(key)))
            .await
            .ok()
            .flatten()
    }

    /// Reads through: returns the cached value of `key`, or runs `load`,
    /// caches its `Ok(Some(_))` for `ttl` and its `Ok(None)` for the null
    /// TTL, and returns its result. Concurrent misses of `key` share one
    /// load, in this process and, through the key's lease, across
    /// processes (with the cache's lease settings). This is what
    /// `#[cached(strategy = "aside")]` calls.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let cache = Cache::memory();
    /// let load = || async { Ok::<_, std::io::Error>(Some(42u32)) };
    /// let ttl = Duration::from_secs(60);
    /// assert_eq!(cache.aside("answer", ttl, load()).await.unwrap(), Some(42));
    /// assert_eq!(cache.aside("answer", ttl, load()).await.unwrap(), Some(42));
    /// assert_eq!(cache.stats().loads, 1);
    /// # }
    /// ```
    pub async fn aside<T, E, F>(&self, key: &str, ttl: Duration, load: F) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<Option<T>, E>>,
    {
        let spec = crate::Spec::new("Cache::aside").ttl(ttl);
        crate::aside::aside::<crate::shape::ResOpt, _, _>(self, self.full_key(key), spec, load)
            .await
    }

    /// Now, in Unix milliseconds, on this cache's clock (see `clock`).
    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The header of an entry written now, fresh for `fresh`, loaded in
    /// `load`.
    pub(crate) fn header(&self, fresh: Duration, load: Duration) -> Header {
        Header {
            written_at_ms: self.now_ms(),
            fresh_ms: u64::try_from(fresh.as_millis()).unwrap_or(u64::MAX),
            // Rounded up: a load of 0.4 ms took time, and XFetch needs it.
            load_ms: u64::try_from(load.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX),
        }
    }

    /// `ttl`, capped at [`MAX_TTL`](crate::MAX_TTL), shortened by a random
    /// fraction up to the configured jitter.
    pub(crate) fn jittered(&self, ttl: Duration) -> Duration {
        let ttl = ttl.min(crate::MAX_TTL);
        let jitter = self.inner.config.jitter;
        if jitter == 0.0 {
            return ttl;
        }
        ttl.mul_f64(1.0 - jitter * fastrand::f64())
            .max(Duration::from_millis(1))
    }

    /// The backend, for calls made through [`guarded`](Self::guarded).
    pub(crate) fn backend(&self) -> &Store {
        &self.inner.store
    }

    /// Runs one backend call behind the circuit breaker, counting failures.
    /// Invalidations that failed earlier are delivered first; while they
    /// cannot be, the call is not made.
    pub(crate) async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let inner = &*self.inner;
        if !inner.breaker.allow() {
            bump(&inner.counters.skipped);
            return Err(BackendError::CircuitOpen);
        }
        if inner.pending.any() {
            if let Err(e) = self.retry_pending().await {
                if e.is_skip() {
                    bump(&inner.counters.skipped);
                } else {
                    self.failed(&e);
                }
                return Err(e);
            }
        }
        let result = call.await;
        match &result {
            Ok(_) => inner.breaker.success(),
            Err(e) => self.failed(e),
        }
        result
    }

    /// Counts a failed call; only an outage counts towards the breaker (a
    /// server that answered with an error is up).
    fn failed(&self, e: &BackendError) {
        bump(&self.inner.counters.errors);
        if e.is_outage() {
            self.inner.breaker.failure();
        } else {
            self.inner.breaker.success();
        }
    }

    /// Reads and decodes a full key. Never fails: a backend error or an
    /// undecodable entry (which is deleted) is a miss.
    pub(crate) async fn lookup<T: DeserializeOwned>(&self, key: &str) -> Lookup<T> {
        let bytes = match self.guarded(self.inner.store.get(key)).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Lookup::Miss,
            Err(e) => {
                if !e.is_skip() {
                    tracing::warn!(key, error = %e, "cache read failed; the source answers");
                }
                return Lookup::Miss;
            }
        };
        let decoded = envelope::header(&bytes)
            .and_then(|header| Ok((envelope::decode::<T>(&bytes)?, header)));
        match decoded {
            Ok((Decoded::Value(v), header)) => Lookup::Hit(v, header),
            Ok((Decoded::Null, header)) => Lookup::Null(header),
            // Written by a build with another envelope format (a rolling
            // deploy): a miss, but not deleted, or old and new builds would
            // delete each other's entries on every read.
            Err(DecodeError::Format(_)) => Lookup::Miss,
            Err(e) => {
                bump(&self.inner.counters.decode_errors);
                tracing::warn!(key, error = %e, "cache entry does not decode; deleting it");
                let _ = self
                    .guarded(self.inner.store.delete(&[key.to_owned()]))
                    .await;
                Lookup::Miss
            }
        }
    }

    /// Asks for the lease of a full key (see `lease`).
    pub(crate) async fn acquire(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<Acquire, BackendError> {
        self.guarded(self.inner.store.acquire(key, token, ttl))
            .await
    }

    /// Stores encoded bytes under a full key (deletes its entry, for `None`)
    /// if `token` holds its lease.
    pub(crate) async fn fill(
        &self,
        key: &str,
        token: Token,
        bytes: Option<Bytes>,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        self.guarded(self.inner.store.fill(key, token, bytes, ttl))
            .await
    }

    /// Ends the lease of a full key if `token` holds it.
    pub(crate) async fn release(&self, key: &str, token: Token) -> Result<(), BackendError> {
        self.guarded(self.inner.store.release(key, token)).await
    }

    /// Takes the lease of a full key if none is out, entry or not.
    pub(crate) async fn take_lease(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        self.guarded(self.inner.store.take_lease(key, token, ttl))
            .await
    }

    /// Ends the lease of a full key if `token` holds it, leaving a throttle
    /// for `window` (see `Backend::throttle`).
    pub(crate) async fn throttle(
        &self,
        key: &str,
        token: Token,
        window: Duration,
    ) -> Result<(), BackendError> {
        self.guarded(self.inner.store.throttle(key, token, window))
            .await
    }

    /// Ends the lease of a full key if `token` holds it, leaving `answer`
    /// to its waiters for `window`.
    pub(crate) async fn answer(
        &self,
        key: &str,
        token: Token,
        answer: Bytes,
        window: Duration,
    ) -> Result<(), BackendError> {
        self.guarded(self.inner.store.answer(key, token, answer, window))
            .await
    }

    /// The header of a full key's entry; `None` when absent, undecodable
    /// or unreachable.
    pub(crate) async fn header_of(&self, key: &str) -> Option<Header> {
        let bytes = self.guarded(self.inner.store.get(key)).await.ok()??;
        envelope::header(&bytes).ok()
    }

    /// Stores encoded bytes under a full key, cancelling its lease.
    pub(crate) async fn set_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        self.guarded(self.inner.store.set(key, bytes, ttl)).await
    }

    /// As [`set_bytes`](Self::set_bytes), unless the key holds a newer
    /// version; `false` when refused.
    pub(crate) async fn set_versioned(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Duration,
        version: u64,
    ) -> Result<bool, BackendError> {
        self.guarded(self.inner.store.set_versioned(key, bytes, ttl, version))
            .await
    }

    /// Stores encoded bytes under a full key; a failure is logged and counted.
    pub(crate) async fn store(&self, key: &str, bytes: Bytes, ttl: Duration) {
        if let Err(e) = self.guarded(self.inner.store.set(key, bytes, ttl)).await {
            if !e.is_skip() {
                tracing::warn!(key, error = %e, "cache write failed; the value is not cached");
            }
        }
    }

    /// Delivers invalidations that failed earlier; while another caller is
    /// at it, says to skip the backend.
    async fn retry_pending(&self) -> Result<(), BackendError> {
        let store = &self.inner.store;
        match self
            .inner
            .pending
            .retry(|keys| async move { store.delete(&keys).await })
            .await
        {
            Retry::Delivered(0) => Ok(()),
            Retry::Delivered(delivered) => {
                self.inner
                    .counters
                    .invalidations
                    .fetch_add(delivered as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(keys = delivered, "delivered invalidations that had failed");
                Ok(())
            }
            Retry::Busy => Err(BackendError::Retrying),
            Retry::Failed(e) => Err(e),
        }
    }

    /// Deletes full keys and their leases, and detaches their in-flight
    /// loads in this process (later callers start a new one). When the backend
    /// fails, the keys wait in the retry queue and the error is returned.
    pub(crate) async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        self.inner.flights.invalidate(keys);
        if let Err(e) = self.guarded(self.inner.store.delete(keys)).await {
            let dropped = self.inner.pending.add(keys).await;
            if dropped > 0 {
                tracing::error!(
                    dropped,
                    "invalidation retry queue full; entries stay until their TTL"
                );
            }
            return Err(e);
        }
        self.inner
            .counters
            .invalidations
            .fetch_add(keys.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_only_shortens_and_spreads() {
        let cache = Cache::builder().ttl_jitter(0.1).memory();
        let ttl = Duration::from_secs(100);
        let samples: Vec<Duration> = (0..1_000).map(|_| cache.jittered(ttl)).collect();
        assert!(samples
            .iter()
            .all(|&t| t <= ttl && t >= Duration::from_secs(90)));
        let (min, max) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
        assert!(
            *max - *min > Duration::from_secs(8),
            "spread {min:?}..{max:?}"
        );
        let exact = Cache::builder().ttl_jitter(0.0).memory();
        assert_eq!(exact.jittered(ttl), ttl);
        assert_eq!(
            cache
                .jittered(Duration::MAX)
                .max(exact.jittered(Duration::MAX)),
            crate::MAX_TTL
        );
    }

    #[tokio::test]
    async fn the_longest_ttl_is_capped_not_a_panic() {
        let cache = Cache::memory();
        cache.set("k", &1u8, Duration::MAX).await.unwrap();
        assert_eq!(cache.get::<u8>("k").await, Some(1));
        assert!(cache.ttl("k").await.is_some_and(|t| t <= crate::MAX_TTL));
    }
}
