//! [`Queue`]: what an operator sees of a write-behind queue, its depth and
//! age, and its dead letters, to replay or discard.

use super::QueueSpec;
use crate::backend::queue::{Dead, EntryId, QueueBackend, QueueKeys, Replayed};
use crate::{envelope, Cache, Error};
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A write-behind function's queue, on its cache. `A` is the function's
/// arguments (owned), as dead letters hold them.
pub struct Queue<A> {
    cache: Cache,
    keys: QueueKeys,
    args: PhantomData<fn() -> A>,
}

impl<A> fmt::Debug for Queue<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("stream", &self.keys.stream)
            .finish_non_exhaustive()
    }
}

/// A queue's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueStats {
    /// Writes acknowledged and not yet flushed.
    pub depth: u64,
    /// Of those, writes a flusher has taken (running, or waiting to retry).
    pub pending: u64,
    /// How long the oldest write not yet flushed has waited.
    pub oldest_age: Option<Duration>,
    /// Writes that failed every attempt.
    pub dead_letters: u64,
}

/// A write that failed every attempt, kept with its error until it is
/// replayed or discarded.
pub struct DeadLetter<A> {
    dead: Dead,
    /// The call's arguments; `None` when they do not decode into `A` (the
    /// function's signature changed since).
    pub args: Option<A>,
}

impl<A> DeadLetter<A> {
    /// The full cache key the write stored.
    pub fn key(&self) -> &str {
        &self.dead.entry.key
    }

    /// The last error of the body.
    pub fn error(&self) -> &str {
        &self.dead.error
    }

    /// How many times the body ran and failed.
    pub fn attempts(&self) -> u32 {
        self.dead.attempts
    }

    /// When the write was acknowledged.
    pub fn queued_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.dead.entry.id.ms)
    }

    /// When it was dead-lettered.
    pub fn failed_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.dead.failed_at_ms)
    }

    /// Its id among the dead letters.
    pub fn id(&self) -> EntryId {
        self.dead.id
    }

    /// The value the write stored under the key, decoded as `T`.
    pub fn value<T: DeserializeOwned>(&self) -> Option<T> {
        match envelope::decode::<T>(&self.dead.entry.value) {
            Ok(envelope::Decoded::Value(v)) => Some(v),
            _ => None,
        }
    }
}

impl<A: fmt::Debug> fmt::Debug for DeadLetter<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("key", &self.key())
            .field("args", &self.args)
            .field("error", &self.error())
            .field("attempts", &self.attempts())
            .finish_non_exhaustive()
    }
}

/// What [`Queue::replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Queued again (a new write, flushed like any other), and its value
    /// stored under the key again.
    Queued,
    /// Not replayed: a newer write to its key was queued after it, and
    /// replaying would put the older value back. The dead letter is kept;
    /// discard it.
    Superseded,
    /// No such dead letter (replayed or discarded meanwhile).
    Missing,
}

impl<A> Queue<A> {
    pub(crate) fn new(cache: Cache, spec: QueueSpec) -> Self {
        Queue {
            keys: spec.keys(&cache),
            cache,
            args: PhantomData,
        }
    }

    /// The queue's depth, its oldest write's age, and its dead letters.
    pub async fn stats(&self) -> Result<QueueStats, Error> {
        let depth = self
            .cache
            .guarded(self.cache.backend().depth(&self.keys))
            .await?;
        // Both times are the backend's: the client's clock may differ.
        Ok(QueueStats {
            depth: depth.entries,
            pending: depth.pending,
            oldest_age: depth
                .oldest
                .map(|id| Duration::from_millis(depth.now_ms.saturating_sub(id.ms))),
            dead_letters: depth.dead,
        })
    }

    /// Up to `limit` dead letters, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter<A>>, Error>
    where
        A: DeserializeOwned,
    {
        let dead = self
            .cache
            .guarded(self.cache.backend().dead_letters(&self.keys, limit))
            .await?;
        Ok(dead
            .into_iter()
            .map(|dead| DeadLetter {
                args: envelope::decode_args(&dead.entry.args).ok(),
                dead,
            })
            .collect())
    }

    /// Queues a dead letter again, unless a newer write to its key came
    /// since (see [`Replay`]).
    pub async fn replay(&self, letter: &DeadLetter<A>) -> Result<Replay, Error> {
        let replayed = self
            .cache
            .guarded(self.cache.backend().replay(&self.keys, &letter.dead))
            .await?;
        Ok(match replayed {
            Replayed::Queued(_) => Replay::Queued,
            Replayed::Superseded => Replay::Superseded,
            Replayed::Missing => Replay::Missing,
        })
    }

    /// Deletes a dead letter for good; `false` when it was gone already.
    pub async fn discard(&self, letter: &DeadLetter<A>) -> Result<bool, Error> {
        Ok(self
            .cache
            .guarded(self.cache.backend().discard(&self.keys, &letter.dead))
            .await?)
    }
}
