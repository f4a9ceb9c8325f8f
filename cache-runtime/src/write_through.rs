//! The write-through strategy: the function body writes to the database
//! and returns what it stored; on success that value is stored under the
//! key with its TTL, cancelling the key's lease, so that a cache-aside
//! load in flight that read the row before this write cannot store the old
//! row over it.
//!
//! - A body that fails leaves the cache untouched.
//! - A `None` result (the row is gone) deletes the key; the next read
//!   caches the null marker as usual.
//! - A store that fails after the body wrote deletes the key instead (a
//!   delete that fails is retried with the next cache call, as
//!   invalidations are), and the call still returns the body's result: the
//!   database has the write. The failure is logged and counted
//!   ([`CacheStats::write_failures`](crate::CacheStats::write_failures)).
//!
//! With `version = <expr>` the store is conditional, in one atomic step on
//! the backend: a value whose version is older than the one the key holds
//! is not stored. Two writers whose cache writes arrive in the opposite
//! order to their database commits then leave the newer row cached. The
//! version is kept beside the key for as long as the value lives, and
//! outlives a delete of the key: a late older write cannot land after an
//! invalidation either.

use crate::aside::entry;
use crate::cache::Cache;
use crate::shape::{Outcome, ReturnShape};
use crate::stats::bump;
use crate::Spec;
use serde::Serialize;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Write-through around `body`, whose output has the shape `S`.
pub async fn write_through<S, R, F>(cache: &Cache, key: String, spec: Spec, body: F) -> R
where
    S: ReturnShape<R>,
    S::Value: Serialize,
    F: Future<Output = R>,
{
    let started = Instant::now();
    let result = body.await;
    store::<S, R>(cache, &key, &spec, &result, started.elapsed(), None).await;
    result
}

/// Write-through around `body`, storing its value only if `version` of it
/// is not older than the version the key holds.
pub async fn write_through_versioned<S, R, F, G>(
    cache: &Cache,
    key: String,
    spec: Spec,
    version: G,
    body: F,
) -> R
where
    S: ReturnShape<R>,
    S::Value: Serialize,
    F: Future<Output = R>,
    G: FnOnce(&S::Value) -> u64,
{
    let started = Instant::now();
    let result = body.await;
    let version = match S::outcome(&result) {
        Outcome::Value(value) => Some(version(value)),
        Outcome::Null | Outcome::Failed => None,
    };
    store::<S, R>(cache, &key, &spec, &result, started.elapsed(), version).await;
    result
}

/// Stores the result of a write, or deletes the key for a `None`.
async fn store<S, R>(
    cache: &Cache,
    key: &str,
    spec: &Spec,
    result: &R,
    took: Duration,
    version: Option<u64>,
) where
    S: ReturnShape<R>,
    S::Value: Serialize,
{
    let counters = &cache.inner.counters;
    let stored = match S::outcome(result) {
        Outcome::Failed => {
            tracing::debug!(key, function = spec.name, "write failed; cache untouched");
            return;
        }
        Outcome::Null => cache.delete(&[key.to_owned()]).await,
        Outcome::Value(_) => {
            // `entry` also logs and counts a value that does not encode.
            let Some((bytes, ttl)) = entry::<S, R>(cache, key, spec, result, took) else {
                bump(&counters.write_failures);
                return drop_stale(cache, key, spec).await;
            };
            match version {
                None => cache.set_bytes(key, bytes, ttl).await,
                Some(version) => match cache.set_versioned(key, bytes, ttl, version).await {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        bump(&counters.versions_refused);
                        tracing::debug!(
                            key,
                            function = spec.name,
                            version,
                            "the cache holds a newer version; not stored"
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            }
        }
    };
    if let Err(e) = stored {
        bump(&counters.write_failures);
        if !e.is_skip() {
            tracing::warn!(key, function = spec.name, error = %e, "cache write after a database write failed; deleting the key");
        }
        drop_stale(cache, key, spec).await;
    }
}

/// Deletes a key whose cached value the write made stale; a failure is
/// queued for retry by `Cache::delete`.
async fn drop_stale(cache: &Cache, key: &str, spec: &Spec) {
    if let Err(e) = cache.delete(&[key.to_owned()]).await {
        if !e.is_skip() {
            tracing::warn!(key, function = spec.name, error = %e, "could not delete the key either; retried with the next cache call");
        }
    }
}

/// A version for `#[cached(strategy = "write_through", version = ...)]`:
/// an order on the values written through a key, newer is greater. Row
/// versions (integers up to 64 bits) and update times (`SystemTime`, in
/// microseconds, as databases keep them) are versions; for another type (a
/// `chrono` time), give `version = updated_at.timestamp_micros()` or
/// implement this trait. Two values of one version are stored in the order
/// they arrive: a version must grow with every write of the row.
/// (128-bit integers are not versions: most do not fit the 64 bits a
/// version is kept in, and would all look equal.)
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cache version: a version is an integer or a `SystemTime` (newer is greater)",
    label = "the version of the written value",
    note = "convert it, like `version = user.updated_at.timestamp_micros()`, or implement `cache_runtime::CacheVersion` for `{Self}`"
)]
pub trait CacheVersion {
    /// The version as an unsigned integer that orders as `self` does.
    fn version_key(&self) -> u64;
}

macro_rules! unsigned_versions {
    ($($t:ty),*) => {$(
        impl CacheVersion for $t {
            fn version_key(&self) -> u64 {
                u64::try_from(*self).unwrap_or(u64::MAX)
            }
        }
    )*};
}
unsigned_versions!(u8, u16, u32, u64, usize);

macro_rules! signed_versions {
    ($($t:ty),*) => {$(
        impl CacheVersion for $t {
            fn version_key(&self) -> u64 {
                // Flipping the sign bit maps i64's order onto u64's.
                (i64::from(*self) as u64) ^ (1 << 63)
            }
        }
    )*};
}
signed_versions!(i8, i16, i32, i64);

impl CacheVersion for isize {
    fn version_key(&self) -> u64 {
        (*self as i64).version_key()
    }
}

impl CacheVersion for SystemTime {
    /// Microseconds since the Unix epoch; times before it are 0.
    fn version_key(&self) -> u64 {
        self.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

impl<T: CacheVersion + ?Sized> CacheVersion for &T {
    fn version_key(&self) -> u64 {
        (**self).version_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_keep_their_order() {
        let signed = [i64::MIN, -2, -1, 0, 1, i64::MAX];
        let keys: Vec<u64> = signed.iter().map(CacheVersion::version_key).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(7u32.version_key(), 7);
        let t = UNIX_EPOCH + Duration::from_micros(1_790_000_000_123_456);
        assert_eq!(t.version_key(), 1_790_000_000_123_456);
        assert!(t.version_key() < (t + Duration::from_micros(1)).version_key());
        assert_eq!((UNIX_EPOCH - Duration::from_secs(1)).version_key(), 0);
        assert_eq!((&&5u64).version_key(), 5);
    }
}
