//! The cache-aside strategy: look up; on a hit return it; on a miss, load
//! (the function body) once per key in this process, store the result with
//! its TTL, return it. The cache never makes a read fail: backend errors and
//! undecodable entries are misses, and a failed store still returns the
//! loaded value.

use crate::cache::{Cache, Lookup};
use crate::envelope::{self, Decoded};
use crate::flight::{Leader, Role, Shared};
use crate::shape::{Outcome, ReturnShape};
use crate::stats::bump;
use crate::Spec;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;

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
        Lookup::Null => {
            if let Some(r) = S::from_null() {
                bump(&counters.null_hits);
                return r;
            }
        }
        Lookup::Miss => {}
    }
    bump(&counters.misses);
    load_once::<S, R, F>(cache, &key, spec, load).await
}

/// Loads `key` with single-flight: waits for a load already in flight, or
/// leads one.
async fn load_once<S, R, F>(cache: &Cache, key: &str, spec: Spec, load: F) -> R
where
    S: ReturnShape<R>,
    S::Value: Serialize + DeserializeOwned,
    F: Future<Output = R>,
{
    let counters = &cache.inner.counters;
    let leader = loop {
        match cache.inner.flights.join(key) {
            Role::Leader(leader) => break Some(leader),
            Role::Waiter(waiter) => match waiter.outcome().await {
                Shared::Value(bytes) => match envelope::decode::<S::Value>(&bytes) {
                    Ok(Decoded::Value(v)) => {
                        bump(&counters.coalesced);
                        return S::from_value(v);
                    }
                    // Another function stored another type under this key:
                    // load our own, outside the flight.
                    _ => break None,
                },
                Shared::Null => match S::from_null() {
                    Some(r) => {
                        bump(&counters.coalesced);
                        return r;
                    }
                    // Another function's `None` under this key: as above.
                    None => break None,
                },
                Shared::Retry => {}
            },
        }
    };

    if let Some(leader) = &leader {
        // A load may have finished between our miss and our lead.
        match cache.lookup::<S::Value>(key).await {
            Lookup::Hit(v, bytes) => {
                leader.publish(Shared::Value(bytes));
                bump(&counters.coalesced);
                return S::from_value(v);
            }
            Lookup::Null => {
                if let Some(r) = S::from_null() {
                    leader.publish(Shared::Null);
                    bump(&counters.coalesced);
                    return r;
                }
            }
            Lookup::Miss => {}
        }
    }

    bump(&counters.loads);
    let result = load.await;
    let config = &cache.inner.config;
    let leader = leader.as_ref();
    match S::outcome(&result) {
        Outcome::Value(value) => match envelope::encode_value(value) {
            Ok(bytes) => {
                let bytes = bytes::Bytes::from(bytes);
                if let Some(leader) = leader {
                    leader.publish(Shared::Value(bytes.clone()));
                }
                store_fresh(
                    cache,
                    leader,
                    key,
                    bytes,
                    spec.value_ttl(config.default_ttl),
                )
                .await;
            }
            Err(e) => {
                bump(&counters.errors);
                tracing::warn!(key, function = spec.name, error = %e, "value does not encode; not cached");
            }
        },
        Outcome::Null => {
            if let Some(leader) = leader {
                leader.publish(Shared::Null);
            }
            let ttl = spec.null_ttl(config.default_ttl, config.default_null_ttl);
            if !ttl.is_zero() {
                store_fresh(cache, leader, key, envelope::encode_null().into(), ttl).await;
            }
        }
        Outcome::Failed => {
            bump(&counters.load_failures);
            tracing::debug!(key, function = spec.name, "load failed; not cached");
        }
    }
    result
}

/// Stores what a load returned, unless the key was invalidated since the
/// load began: the value may predate the write behind the invalidation.
/// An invalidation that lands while the store is on its way may have
/// deleted before our write arrived, so the flag is checked again after it
/// and the key deleted if it was set. (An invalidation marks the flight
/// before it deletes, so one of the two checks always sees it.)
async fn store_fresh(
    cache: &Cache,
    leader: Option<&Leader<'_>>,
    key: &str,
    bytes: Bytes,
    ttl: Duration,
) {
    let invalidated = || leader.is_some_and(Leader::invalidated);
    if invalidated() {
        tracing::debug!(key, "key invalidated during the load; not storing");
        return;
    }
    cache.store(key, bytes, ttl).await;
    if invalidated() {
        tracing::debug!(
            key,
            "key invalidated while storing; deleting the stored value"
        );
        let _ = cache.delete(&[key.to_owned()]).await;
    }
}
