//! Where entries live. Both backends keep the same semantics: every entry
//! has a TTL and is gone once it passes, `set` replaces, `delete` removes a
//! batch of keys; and each key may have one lease (see `crate::lease`): a
//! token with its own TTL that entitles its holder to fill the key. The
//! [`Backend`] trait is that contract; [`Store`] dispatches to the backend a
//! [`Cache`](crate::Cache) was built with.

pub(crate) mod memory;
mod memory_queue;
pub(crate) mod queue;
pub(crate) mod redis;
mod redis_queue;

use bytes::Bytes;
use std::sync::Arc;
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

    /// Whether the failure says the backend is unreachable or unusable
    /// (a timeout, a lost connection, a server loading or failing over),
    /// as opposed to a server that answered with an error about this one
    /// call (a key of the wrong type, a command its ACL refuses). Only
    /// outages count towards the circuit breaker: one bad key must not
    /// switch the cache off for every other.
    pub fn is_outage(&self) -> bool {
        use ::redis::{ErrorKind, ServerErrorKind};
        match self {
            BackendError::Timeout(_) => true,
            BackendError::CircuitOpen | BackendError::Retrying => false,
            BackendError::Redis(e) => match e.kind() {
                ErrorKind::Server(kind) => matches!(
                    kind,
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                ),
                ErrorKind::Extension | ErrorKind::Parse | ErrorKind::UnexpectedReturnType => false,
                _ => true,
            },
        }
    }
}

/// A lease token: random, so that a holder whose lease was deleted or
/// expired cannot mistake someone else's lease for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

impl Token {
    pub(crate) fn random() -> Token {
        Token(fastrand::u64(1..))
    }
}

/// What [`Backend::acquire`] found.
#[derive(Debug, PartialEq)]
pub(crate) enum Acquire {
    /// The key holds an entry (a value or a null marker): nothing to load.
    Value(Bytes),
    /// No entry; the last lease ended with this answer, not stored (see
    /// [`Backend::answer`]). For callers that were waiting for it.
    Answer(Bytes),
    /// No entry and no lease: the caller now holds the lease.
    Granted,
    /// No entry, and someone else holds the lease.
    Wait,
}

/// The operations a backend provides.
pub(crate) trait Backend: Send + Sync {
    /// The stored bytes of `key`, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError>;
    /// Stores `value` under `key` for `ttl`, replacing what was there, and
    /// cancels the key's lease: a load in flight that read the source
    /// before this write cannot overwrite it.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BackendError>;
    /// Stores `value` under `key` for `ttl` and cancels the key's lease, as
    /// [`set`](Self::set), unless the key holds a newer version than
    /// `version` (kept beside it for `ttl`); `false` when refused. A
    /// refusal also deletes the key and its lease unless the key holds the
    /// value stored with the newer version: what it holds instead (a load
    /// made after a delete) may be older than this write.
    async fn set_versioned(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        version: u64,
    ) -> Result<bool, BackendError>;
    /// Removes every key of `keys` and their leases, atomically per key;
    /// absent keys are not an error.
    async fn delete(&self, keys: &[String]) -> Result<(), BackendError>;
    /// The time `key` has left to live, or `None` when absent or without
    /// expiry (a write-behind value whose write is pending).
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, BackendError>;
    /// In one atomic step: the entry of `key` if there is one; else the
    /// lease for `token` for `ttl` if no lease is out; else "wait".
    async fn acquire(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<Acquire, BackendError>;
    /// In one atomic step: if `token` holds the lease of `key`, stores
    /// `value` for `ttl` (or, for `None`, deletes the entry), ends the
    /// lease and returns `true`; else changes nothing and returns `false`.
    async fn fill(
        &self,
        key: &str,
        token: Token,
        value: Option<Bytes>,
        ttl: Duration,
    ) -> Result<bool, BackendError>;
    /// Ends the lease of `key` if `token` holds it.
    async fn release(&self, key: &str, token: Token) -> Result<(), BackendError>;
    /// Takes the lease of `key` for `token` if no lease is out, whether or
    /// not the key holds an entry (to refresh it); `false` when one is.
    async fn take_lease(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError>;
    /// Ends the lease of `key` if `token` holds it, and leaves a marker in
    /// its place for `window` that keeps [`take_lease`](Self::take_lease)
    /// from taking it (background refreshes wait) but not
    /// [`acquire`](Self::acquire) (a miss loads at once). For a background
    /// refresh that failed: the next one waits out `window`, everywhere.
    async fn throttle(&self, key: &str, token: Token, window: Duration)
        -> Result<(), BackendError>;
    /// Ends the lease of `key` if `token` holds it, and leaves `answer` in
    /// its place for `window`: [`acquire`](Self::acquire) returns it as
    /// [`Acquire::Answer`] meanwhile, but it is no entry (`get` does not see
    /// it, a delete removes it). For a result that is not stored (a `None`
    /// with `null_ttl = 0`), so that the callers waiting for it need not
    /// each load in turn.
    async fn answer(
        &self,
        key: &str,
        token: Token,
        answer: Bytes,
        window: Duration,
    ) -> Result<(), BackendError>;
}

/// The backend of one cache. An in-memory store may be shared by several
/// caches (see [`MemoryStore`](crate::MemoryStore)).
#[derive(Debug)]
pub(crate) enum Store {
    Memory(Arc<memory::MemoryBackend>),
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
    async fn set_versioned(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        version: u64,
    ) -> Result<bool, BackendError> {
        dispatch!(self, b => b.set_versioned(key, value, ttl, version).await)
    }
    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        dispatch!(self, b => b.delete(keys).await)
    }
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, BackendError> {
        dispatch!(self, b => b.ttl(key).await)
    }
    async fn acquire(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<Acquire, BackendError> {
        dispatch!(self, b => b.acquire(key, token, ttl).await)
    }
    async fn fill(
        &self,
        key: &str,
        token: Token,
        value: Option<Bytes>,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        dispatch!(self, b => b.fill(key, token, value, ttl).await)
    }
    async fn release(&self, key: &str, token: Token) -> Result<(), BackendError> {
        dispatch!(self, b => b.release(key, token).await)
    }
    async fn take_lease(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        dispatch!(self, b => b.take_lease(key, token, ttl).await)
    }
    async fn throttle(
        &self,
        key: &str,
        token: Token,
        window: Duration,
    ) -> Result<(), BackendError> {
        dispatch!(self, b => b.throttle(key, token, window).await)
    }
    async fn answer(
        &self,
        key: &str,
        token: Token,
        answer: Bytes,
        window: Duration,
    ) -> Result<(), BackendError> {
        dispatch!(self, b => b.answer(key, token, answer, window).await)
    }
}
