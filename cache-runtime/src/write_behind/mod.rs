//! The write-behind strategy: a call stores its value under the key at
//! once, appends its arguments to a durable queue, and returns; the
//! function's body (the database write) runs later, in a [`Flusher`].
//!
//! ```
//! use cache_runtime::{cached, Cache};
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! static DB_STOCK: AtomicU32 = AtomicU32::new(0);
//!
//! #[cached(strategy = "write_behind", key = "stock:<sku>", value = qty, ttl = 300, handle = STOCK)]
//! async fn set_stock(sku: &str, qty: u32) -> Result<(), cache_runtime::Error> {
//!     DB_STOCK.store(qty, Ordering::SeqCst); // the database write, run by a flusher
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! cache_runtime::set_default(Cache::memory());
//! let flusher = STOCK.flusher().start();
//! set_stock("apple", 3).await.unwrap(); // acknowledged: cached and queued
//! set_stock("apple", 5).await.unwrap();
//! let cache = cache_runtime::default_cache().unwrap();
//! assert_eq!(cache.get::<u32>("stock:apple").await, Some(5)); // readers see it at once
//! let report = flusher.stop().await; // drains the queue, then stops
//! assert_eq!(DB_STOCK.load(Ordering::SeqCst), 5);
//! assert_eq!(report.flushed + report.coalesced, 2);
//! # }
//! ```
//!
//! Semantics (the README states the loss window):
//!
//! - **Acknowledged** means the value is stored and the call is queued, in
//!   one atomic step. When that step fails (Redis down), the call returns
//!   the error (its error type implements `From<cache_runtime::Error>`):
//!   the write was not acknowledged. (After a timeout it may still have
//!   been queued: retrying it writes the same value again, which is
//!   harmless.)
//! - **Pinned until flushed**: while its write is pending the key has no
//!   TTL, and on the in-memory backend it is never evicted; the flush gives
//!   it its TTL. On Redis, run the queue's server with `maxmemory-policy
//!   noeviction` (or no `maxmemory`): an eviction policy may evict the
//!   queue, pending values (`allkeys-*`), or the flush locks and markers
//!   that keep writes in order (any policy).
//! - **Latest write wins, per key**: only a key's latest queued write runs
//!   its body. Older ones are acknowledged without running it (coalesced),
//!   within a batch and across flushers; a key's body never runs twice at
//!   once (a lock), so an older write never lands after a newer one, also
//!   when a retry of an old entry races a new one. A body that does not
//!   stop at its timeout (it blocks its thread) keeps its key locked until
//!   it returns. The body must write the state its arguments give (set a
//!   quantity), not apply a change (add to it).
//! - **At least once**: an entry is acknowledged only after its body
//!   succeeded. A flusher that dies leaves its entries pending; another
//!   claims them once idle. A body that succeeded just before its flusher
//!   died runs again: make it idempotent (an upsert).
//! - **Retries and dead letters**: a failing body is retried with
//!   exponential backoff; after the configured attempts the entry moves to
//!   the dead letters with its error, and the key's value is deleted (the
//!   database does not have it). An entry a newer write superseded is not
//!   dead-lettered: the newer one carries the key's state. Arguments this
//!   build cannot decode (queued by a build with other arguments, during a
//!   rolling deploy) are left for a flusher of that build to claim, and
//!   dead-lettered after the attempts. See [`Queue`] to list, replay or
//!   discard dead letters.

mod flusher;
pub(crate) mod generated;
mod queue;

pub use crate::backend::queue::EntryId;
pub use flusher::{FlushStats, Flusher, FlusherBuilder};
pub use queue::{DeadLetter, Queue, QueueStats, Replay};

use crate::backend::queue::{QueueBackend, QueueKeys};
use crate::envelope::EncodeError;
use crate::read_through::BoxFuture;
use crate::stats::bump;
use crate::{Cache, Error};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A write-behind function's queue and the TTL its values get once
/// flushed. Built by generated code.
#[derive(Debug, Clone, Copy)]
pub struct QueueSpec {
    /// The queue's name: the function's path unless `queue = "..."`.
    pub name: &'static str,
    /// The function's path, for logs.
    pub function: &'static str,
    /// The TTL of a flushed value; `None`: the cache's default.
    pub ttl: Option<Duration>,
}

impl QueueSpec {
    /// The queue `name` of `function`, with the cache's default TTL.
    pub const fn new(name: &'static str, function: &'static str) -> QueueSpec {
        QueueSpec {
            name,
            function,
            ttl: None,
        }
    }

    /// Sets the TTL of flushed values, in milliseconds.
    pub const fn ttl_ms(mut self, ms: u64) -> QueueSpec {
        self.ttl = Some(Duration::from_millis(ms));
        self
    }

    pub(crate) fn keys(&self, cache: &Cache) -> QueueKeys {
        QueueKeys::new(&cache.inner.config.namespace, self.name)
    }

    pub(crate) fn ttl(&self, cache: &Cache) -> Duration {
        self.ttl.unwrap_or(cache.inner.config.default_ttl)
    }
}

/// The call path of a write-behind function: stores `value` under `key`
/// (pinned until flushed; see `generated::pending_value`) and queues
/// `args`, in one step.
pub async fn write_behind(
    cache: &Cache,
    key: String,
    spec: QueueSpec,
    value: Result<Vec<u8>, EncodeError>,
    args: generated::Args,
) -> Result<(), Error> {
    let value = value?;
    let args = args.finish()?;
    let stream = QueueKeys::stream(&cache.inner.config.namespace, spec.name);
    let queued = cache
        .guarded(
            cache
                .backend()
                .enqueue(&stream, &key, value.into(), args.into()),
        )
        .await;
    match queued {
        Ok(_) => {
            bump(&cache.inner.counters.queued);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(key, function = spec.function, error = %e, "write-behind write not queued; the call fails");
            Err(e.into())
        }
    }
}

/// The body of a write-behind function, as a flusher runs it: with the
/// owner (`()` for a free function, the instance for a method) and the
/// decoded arguments; a failure as its `Display` text.
pub type FlushFn<O, A> = fn(Arc<O>, A) -> BoxFuture<'static, Result<(), String>>;

/// The cache of a write-behind function, given its owner.
pub type CacheFn<O> = fn(&O) -> &Cache;

/// The handle of a write-behind function, defined by `handle = NAME`:
/// start flushers that run its body, and see its queue.
///
/// On a free function it is a constant `WriteBehind<(), A>`, where `A` is
/// the tuple of the function's arguments (owned: `String` for `&str`):
/// `NAME.flusher()`, `NAME.queue()`. On a `&self` method it is an
/// associated constant `WriteBehind<Self, A>`, used with the instance the
/// body runs on: `Repo::NAME.flusher_for(Arc::clone(&repo))`,
/// `Repo::NAME.queue_for(&repo)`.
pub struct WriteBehind<O: 'static, A: 'static> {
    spec: QueueSpec,
    cache: CacheFn<O>,
    flush: FlushFn<O, A>,
}

impl<O, A> Clone for WriteBehind<O, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O, A> Copy for WriteBehind<O, A> {}

impl<O, A> fmt::Debug for WriteBehind<O, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehind")
            .field("queue", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl<O, A> WriteBehind<O, A> {
    /// Used by generated code.
    #[doc(hidden)]
    pub const fn new(spec: QueueSpec, cache: CacheFn<O>, flush: FlushFn<O, A>) -> Self {
        WriteBehind { spec, cache, flush }
    }

    /// The queue's name.
    pub fn name(&self) -> &'static str {
        self.spec.name
    }
}

impl<O, A> WriteBehind<O, A>
where
    O: Send + Sync + 'static,
    A: serde::de::DeserializeOwned + Send + 'static,
{
    /// A flusher that runs the body on `owner`; configure it, then
    /// [`start`](FlusherBuilder::start) it.
    pub fn flusher_for(self, owner: Arc<O>) -> FlusherBuilder<O, A> {
        let cache = (self.cache)(&owner).clone();
        FlusherBuilder::new(cache, self.spec, owner, self.flush)
    }

    /// The queue of the function on `owner`'s cache.
    pub fn queue_for(self, owner: &O) -> Queue<A> {
        Queue::new((self.cache)(owner).clone(), self.spec)
    }
}

impl<A> WriteBehind<(), A>
where
    A: serde::de::DeserializeOwned + Send + 'static,
{
    /// A flusher for a free function; configure it, then
    /// [`start`](FlusherBuilder::start) it.
    pub fn flusher(self) -> FlusherBuilder<(), A> {
        self.flusher_for(Arc::new(()))
    }

    /// The function's queue.
    pub fn queue(self) -> Queue<A> {
        self.queue_for(&())
    }
}
