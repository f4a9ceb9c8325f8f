//! The cache-aside strategy: look up; on a hit return it; on a miss, load
//! (the function body), store the result with its TTL, return it. The cache
//! never makes a read fail: backend errors and undecodable entries are
//! misses, and a failed store still returns the loaded value.
//!
//! Misses are coordinated unless the function says `lock = false`: callers
//! in this process share one load (`flight`), and the caller leading it
//! takes the key's lease (`lease`), so that one load runs per key across
//! every process, and a load stores its result only while its lease holds.
//!
//! A leader waits at most `lease_wait` for a lease held elsewhere; then it
//! runs the body itself, does not store the result, and shares it with the
//! callers waiting on it in this process. Those wait for their leader
//! without a deadline of their own: its wait is bounded, and its body is
//! the one they would have run themselves. (Giving up on it would only
//! start the same body later, all at once, when the source is slow.)
//!
//! With `lock = false` every miss runs the body and stores its result:
//! plain cache-aside, stale-set race included.

use crate::cache::{Cache, Lookup};
use crate::envelope::{self, Decoded};
use crate::flight::{Role, Shared};
use crate::lease::{self, Obtained};
use crate::shape::{Outcome, ReturnShape};
use crate::stats::bump;
use crate::Spec;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Cache-aside around `load`, whose output has the shape `S`.
pub async fn aside<S, R, F>(cache: &Cache, key: String, spec: Spec, load: F) -> R
where
    S: ReturnShape<R>,
    S::Value: Serialize + DeserializeOwned,
    F: Future<Output = R>,
{
    let counters = &cache.inner.counters;
    match cache.lookup::<S::Value>(&key).await {
        Lookup::Hit(v, _) => {
            bump(&counters.hits);
            return S::from_value(v);
        }
        Lookup::Null(_) => {
            if let Some(r) = S::from_null() {
                bump(&counters.null_hits);
                return r;
            }
        }
        Lookup::Miss => {}
    }
    bump(&counters.misses);
    // Boxed: inline, the miss paths' state would make every call's future,
    // hits included, twice as large (4 KiB against 2 KiB).
    if spec.lock {
        Box::pin(load_coordinated::<S, R, F>(cache, &key, &spec, load)).await
    } else {
        Box::pin(load_plain::<S, R, F>(cache, &key, &spec, load)).await
    }
}

/// `lock = false`: runs the body and stores its result.
async fn load_plain<S, R, F>(cache: &Cache, key: &str, spec: &Spec, load: F) -> R
where
    S: ReturnShape<R>,
    S::Value: Serialize,
    F: Future<Output = R>,
{
    bump(&cache.inner.counters.loads);
    let started = Instant::now();
    let result = load.await;
    match entry::<S, R>(cache, key, spec, &result, started.elapsed()) {
        Some((bytes, ttl)) if !ttl.is_zero() => cache.store(key, bytes, ttl).await,
        _ => {}
    }
    result
}

/// Loads `key` once across callers: waits for a load in flight in this
/// process, or leads one, which takes the lease.
pub(crate) async fn load_coordinated<S, R, F>(cache: &Cache, key: &str, spec: &Spec, load: F) -> R
where
    S: ReturnShape<R>,
    S::Value: Serialize + DeserializeOwned,
    F: Future<Output = R>,
{
    let counters = &cache.inner.counters;
    let config = &cache.inner.config;
    let leader = loop {
        match cache.inner.flights.join(key) {
            Role::Leader(leader) => break Some(leader),
            Role::Waiter(waiter) => match waiter.outcome().await {
                Shared::Entry(bytes) => match answer::<S, R>(&bytes) {
                    Some(r) => {
                        bump(&counters.coalesced);
                        return r;
                    }
                    // Another function stored another type under this key:
                    // load our own, outside the flight.
                    None => break None,
                },
                Shared::Retry => {}
            },
        }
    };
    let publish = |bytes: &Bytes| {
        if let Some(leader) = &leader {
            leader.publish(Shared::Entry(bytes.clone()));
        }
    };

    let deadline = Instant::now() + spec.lease_wait(config);
    let lease = match lease::obtain(cache, key, spec.lease_ttl(config), deadline).await {
        Obtained::Entry(bytes) => match answer::<S, R>(&bytes) {
            Some(r) => {
                publish(&bytes);
                bump(&counters.coalesced);
                return r;
            }
            // Another type, or bytes that do not decode: load, unstored.
            None => None,
        },
        Obtained::Lease(lease) => Some(lease),
        Obtained::TimedOut => {
            bump(&counters.wait_timeouts);
            tracing::warn!(
                key,
                function = spec.name,
                "waited lease_wait for another process's load; loading, unstored"
            );
            None
        }
        Obtained::NoLease => None,
    };

    bump(&counters.loads);
    let started = Instant::now();
    let result = load.await;
    let entry = entry::<S, R>(cache, key, spec, &result, started.elapsed());
    if let Some((bytes, _)) = &entry {
        publish(bytes);
    }
    if let Some(lease) = lease {
        match entry {
            Some((bytes, ttl)) if !ttl.is_zero() => lease.fill(bytes, ttl).await,
            // A `None` not to be cached: shared with those waiting for it.
            Some((bytes, _)) => lease.answer(bytes).await,
            // A failure: the next caller loads, one at a time.
            None => lease.release().await,
        }
    }
    result
}

/// What an entry's bytes answer to a caller of shape `S`: `None` when they
/// do not decode into its type (another function's entry, or corrupt).
fn answer<S, R>(bytes: &[u8]) -> Option<R>
where
    S: ReturnShape<R>,
    S::Value: DeserializeOwned,
{
    match envelope::decode::<S::Value>(bytes) {
        Ok(Decoded::Value(v)) => Some(S::from_value(v)),
        Ok(Decoded::Null) => S::from_null(),
        Err(_) => None,
    }
}

/// The entry a load's result becomes, with the TTL to store it for: the
/// value, fresh for the function's TTL (jittered) and kept `stale` longer;
/// or the null marker for a `None`, fresh for the null TTL (zero when
/// `None` is not cached). Its header records when it turns stale and how
/// long `load` took. `None` for a failure or a value that does not encode:
/// nothing to share or store.
pub(crate) fn entry<S, R>(
    cache: &Cache,
    key: &str,
    spec: &Spec,
    result: &R,
    load: Duration,
) -> Option<(Bytes, Duration)>
where
    S: ReturnShape<R>,
    S::Value: Serialize,
{
    let counters = &cache.inner.counters;
    let config = &cache.inner.config;
    match S::outcome(result) {
        Outcome::Value(value) => {
            let fresh = cache.jittered(spec.value_ttl(config.default_ttl));
            match envelope::encode_value(value, &cache.header(fresh, load)) {
                Ok(bytes) => Some((bytes.into(), fresh.saturating_add(spec.stale_grace()))),
                Err(e) => {
                    bump(&counters.errors);
                    tracing::warn!(key, function = spec.name, error = %e, "value does not encode; not cached");
                    None
                }
            }
        }
        Outcome::Null => {
            let ttl = spec.null_ttl(config.default_ttl, config.default_null_ttl);
            let fresh = if ttl.is_zero() {
                ttl
            } else {
                cache.jittered(ttl)
            };
            Some((
                envelope::encode_null(&cache.header(fresh, load)).into(),
                fresh,
            ))
        }
        Outcome::Failed => {
            bump(&counters.load_failures);
            tracing::debug!(key, function = spec.name, "load failed; not cached");
            None
        }
    }
}
