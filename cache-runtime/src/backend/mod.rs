//! Where entries live. Both backends keep the same semantics: every entry
//! has a TTL and is gone once it passes, `set` replaces, `delete` removes a
//! batch of keys. The [`Backend`] trait is that contract; [`Store`]
//! dispatches to the backend a [`Cache`](crate::Cache) was built with.

pub(crate) mod memory;
pub(crate) mod redis;

use bytes::Bytes;
use std::time::Duration;

/// A failed backend call. Never reaches the caller of a cached function:
/// the strategies log it, count it, and fall back to the body.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The call did not answer within the cache's timeout.
    #[error("cache backend timed out after {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The circuit breaker is open after repeated failures; the call was skipped.
    #[error("cache backend skipped: circuit breaker open after repeated failures")]
    CircuitOpen,
    /// Invalidations that failed earlier are being delivered by another
    /// call; this one skipped the backend rather than read ahead of them.
    #[error("cache backend skipped: failed invalidations are being retried")]
    Retrying,
}

impl BackendError {
    /// Whether the call was skipped rather than tried.
    pub fn is_skip(&self) -> bool {
        matches!(self, BackendError::CircuitOpen | BackendError::Retrying)
    }
}

/// The operations a backend provides.
pub(crate) trait Backend: Send + Sync {
    /// The stored bytes of `key`, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError>;
    /// Stores `value` under `key` for `ttl`, replacing what was there.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BackendError>;
    /// Removes every key of `keys`; absent keys are not an error.
    async fn delete(&self, keys: &[String]) -> Result<(), BackendError>;
    /// The time `key` has left to live, or `None` when absent.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, BackendError>;
}

/// The backend of one cache.
#[derive(Debug)]
pub(crate) enum Store {
    Memory(memory::MemoryBackend),
    Redis(redis::RedisBackend),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            Store::Memory($b) => $call,
            Store::Redis($b) => $call,
        }
    };
}

impl Backend for Store {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        dispatch!(self, b => b.get(key).await)
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        dispatch!(self, b => b.set(key, value, ttl).await)
    }
    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        dispatch!(self, b => b.delete(keys).await)
    }
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, BackendError> {
        dispatch!(self, b => b.ttl(key).await)
    }
}
