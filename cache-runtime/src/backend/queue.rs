//! Write-behind queues: what a backend provides so that writes can be
//! acknowledged at once and flushed to the database later, in order,
//! exactly once per key's latest write, by any number of flushers.
//!
//! A queue is a log of entries (a stream on Redis) read by one consumer
//! group: each entry is delivered to one flusher and stays pending, in that
//! flusher's name, until acknowledged; a flusher that dies leaves its
//! pending entries to be claimed by another once they are idle. Beside
//! each written key `K` live two more keys (in `K`'s cluster slot):
//!
//! - `{K}:wb`, the marker: the latest entry queued for `K` (its id and
//!   queue: two functions may write one key, each with its queue). It
//!   has no TTL while that entry is pending or dead-lettered, and keeps the
//!   id for a day after it is flushed, so that a replayed dead letter can
//!   tell whether a newer write came since. An entry whose id is not the
//!   marker's is superseded: acknowledged without running its body. So is
//!   one whose key has no marker: a pending latest entry always has one, so
//!   the entry is older than a marker that expired or was evicted.
//! - `{K}:wbl`, the flush lock, held while one flusher runs `K`'s body,
//!   so that two bodies of one key never run at once.
//!
//! While its write is pending, `K` holds the written value with no TTL:
//! it cannot expire before the database has the write. The flush gives it
//! its TTL.

use super::{BackendError, Store, Token};
use bytes::Bytes;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long a key's marker outlives the flush (or dead-lettering) of its
/// latest write: the window in which a replayed dead letter can tell that a
/// newer write to its key came since.
pub(crate) const MARKER_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The id of an entry: milliseconds and a sequence number, ordered as
/// written (a Redis stream id, `1790000000000-3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    /// When it was queued, in Unix milliseconds.
    pub ms: u64,
    /// Its rank among the entries of that millisecond.
    pub seq: u64,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for EntryId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or_else(|| format!("not an id: {s}"))?;
        let number = |part: &str| part.parse::<u64>().map_err(|_| format!("not an id: {s}"));
        Ok(EntryId {
            ms: number(ms)?,
            seq: number(seq)?,
        })
    }
}

/// The keys of one queue, all in one cluster slot.
#[derive(Debug, Clone)]
pub(crate) struct QueueKeys {
    /// The log of entries.
    pub(crate) stream: String,
    /// Entries that failed every attempt, with their errors.
    pub(crate) dead: String,
    /// Failed attempts per pending entry.
    pub(crate) attempts: String,
}

impl QueueKeys {
    /// The keys of queue `name` in `namespace`: `namespace:wb:{name}`...
    /// Not under the schema version: a queue must survive the deploy that
    /// bumps it, and be flushed by the new build.
    pub(crate) fn new(namespace: &str, name: &str) -> QueueKeys {
        let stream = QueueKeys::stream(namespace, name);
        QueueKeys {
            dead: format!("{stream}:dead"),
            attempts: format!("{stream}:attempts"),
            stream,
        }
    }

    /// The log of queue `name` alone, for a call that only appends.
    pub(crate) fn stream(namespace: &str, name: &str) -> String {
        format!("{namespace}:wb:{{{name}}}")
    }
}

/// The consumer group of every queue.
pub(crate) const GROUP: &str = "flushers";

/// A queued write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: EntryId,
    /// The full cache key it wrote.
    pub(crate) key: String,
    /// The call's arguments, encoded.
    pub(crate) args: Bytes,
    /// The value it stored under the key (an envelope).
    pub(crate) value: Bytes,
}

/// What [`QueueBackend::begin`] decided for an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// The caller holds the key's flush lock: run the body.
    Go,
    /// Another flusher runs this key's body: try again shortly.
    Busy,
    /// A newer write to the key is queued: the entry was acknowledged
    /// without running its body.
    Superseded,
    /// The entry is no longer pending in the caller's name (claimed by
    /// another flusher, or acknowledged): forget it.
    Lost,
}

/// A queue's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Depth {
    /// Entries not yet acknowledged.
    pub(crate) entries: u64,
    /// Of those, entries delivered to a flusher.
    pub(crate) pending: u64,
    /// The oldest entry not yet acknowledged.
    pub(crate) oldest: Option<EntryId>,
    /// Dead letters.
    pub(crate) dead: u64,
    /// The backend's clock (Unix ms), which the entry ids come from.
    pub(crate) now_ms: u64,
}

/// An entry that failed every attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dead {
    /// Its id in the dead-letter log.
    pub(crate) id: EntryId,
    pub(crate) entry: Entry,
    pub(crate) error: String,
    pub(crate) attempts: u32,
    pub(crate) failed_at_ms: u64,
}

/// What replaying a dead letter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replayed {
    /// Queued again under this id, its value stored again.
    Queued(EntryId),
    /// A newer write to its key was queued since (or its key's marker is
    /// gone, and that cannot be ruled out): not replayed, kept.
    Superseded,
    /// No such dead letter.
    Missing,
}

/// The queue operations of a backend. Each is atomic.
pub(crate) trait QueueBackend: Send + Sync {
    /// Stores `value` under `key` with no TTL, cancels the key's lease,
    /// appends the entry to `stream` and makes it the key's marker.
    async fn enqueue(
        &self,
        stream: &str,
        key: &str,
        value: Bytes,
        args: Bytes,
    ) -> Result<EntryId, BackendError>;
    /// Creates the consumer group if it is missing, reading from the first
    /// entry.
    async fn join(&self, q: &QueueKeys) -> Result<(), BackendError>;
    /// Up to `count` entries never delivered before, now pending for
    /// `consumer`.
    async fn read(
        &self,
        q: &QueueKeys,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>, BackendError>;
    /// The newest entry not yet acknowledged (every write queued so far
    /// is at or before it); `None` when there is none.
    async fn newest(&self, q: &QueueKeys) -> Result<Option<EntryId>, BackendError>;
    /// Up to `count` entries pending for at least `idle` since their last
    /// delivery (their flusher died, or froze), now pending for `consumer`;
    /// the scan of pending entries starts after `cursor` and the returned
    /// cursor continues it (the default id starts over).
    async fn claim(
        &self,
        q: &QueueKeys,
        consumer: &str,
        idle: Duration,
        count: usize,
        cursor: EntryId,
    ) -> Result<(Vec<Entry>, EntryId), BackendError>;
    /// Decides whether `consumer` runs `entry`'s body now (see [`Begin`]);
    /// on `Go` it holds the key's flush lock for `lock_ttl` with `token`,
    /// and the entry's idle time starts again.
    async fn begin(
        &self,
        q: &QueueKeys,
        consumer: &str,
        entry: &Entry,
        token: Token,
        lock_ttl: Duration,
    ) -> Result<Begin, BackendError>;
    /// Acknowledges entries superseded by a newer write of their key;
    /// returns how many were still pending (the rest were acknowledged
    /// meanwhile, by another flusher).
    async fn ack(&self, q: &QueueKeys, ids: &[EntryId]) -> Result<u64, BackendError>;
    /// After the body succeeded: acknowledges the entry; if it is still its
    /// key's latest write, stores `value` under the key for `ttl` (cancelling
    /// its lease) and keeps the marker for [`MARKER_RETENTION`]; releases
    /// the flush lock.
    async fn commit(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        value: Bytes,
        ttl: Duration,
        token: Token,
    ) -> Result<(), BackendError>;
    /// After the body failed: counts the attempt, keeps the key's flush
    /// lock for `hold` more (the key's backoff: no flusher tries its writes
    /// meanwhile), and returns the attempts so far; `None` when the entry
    /// is no longer pending (acknowledged meanwhile, as superseded).
    async fn fail(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        token: Token,
        hold: Duration,
    ) -> Result<Option<u32>, BackendError>;
    /// If the entry is its key's latest write: moves it to the dead letters
    /// with `error`, deletes the key's value (the database does not have
    /// it) and keeps the marker until the letter is replayed or discarded;
    /// `true`. Else acknowledges it, superseded; `false`. Releases the
    /// flush lock held with `release`, if given (a body that would not
    /// stop keeps it until it returns).
    async fn bury(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        failure: &Failure<'_>,
        release: Option<Token>,
    ) -> Result<bool, BackendError>;
    /// The queue's size.
    async fn depth(&self, q: &QueueKeys) -> Result<Depth, BackendError>;
    /// Up to `count` dead letters, oldest first.
    async fn dead_letters(&self, q: &QueueKeys, count: usize) -> Result<Vec<Dead>, BackendError>;
    /// Queues a dead letter again (see [`Replayed`]).
    async fn replay(&self, q: &QueueKeys, dead: &Dead) -> Result<Replayed, BackendError>;
    /// Deletes a dead letter (its key's marker then keeps for
    /// [`MARKER_RETENTION`]); `false` when there was none.
    async fn discard(&self, q: &QueueKeys, dead: &Dead) -> Result<bool, BackendError>;
    /// Removes `consumer` from the group if nothing is pending in its name.
    async fn leave(&self, q: &QueueKeys, consumer: &str) -> Result<(), BackendError>;
    /// Removes the consumers that hold nothing and were idle for `idle`.
    async fn reap(&self, q: &QueueKeys, idle: Duration) -> Result<(), BackendError>;
    /// Sets the flush lock of `key` to expire after `ttl` if `token` holds
    /// it; `false` when it does not.
    async fn hold(
        &self,
        q: &QueueKeys,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError>;
}

/// Why an entry is dead-lettered.
#[derive(Debug)]
pub(crate) struct Failure<'a> {
    pub(crate) error: &'a str,
    pub(crate) attempts: u32,
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            Store::Memory($b) => $call,
            Store::Redis($b) => $call,
        }
    };
}

impl QueueBackend for Store {
    async fn enqueue(
        &self,
        stream: &str,
        key: &str,
        value: Bytes,
        args: Bytes,
    ) -> Result<EntryId, BackendError> {
        dispatch!(self, b => b.enqueue(stream, key, value, args).await)
    }
    async fn join(&self, q: &QueueKeys) -> Result<(), BackendError> {
        dispatch!(self, b => b.join(q).await)
    }
    async fn read(
        &self,
        q: &QueueKeys,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        dispatch!(self, b => b.read(q, consumer, count).await)
    }
    async fn newest(&self, q: &QueueKeys) -> Result<Option<EntryId>, BackendError> {
        dispatch!(self, b => b.newest(q).await)
    }
    async fn claim(
        &self,
        q: &QueueKeys,
        consumer: &str,
        idle: Duration,
        count: usize,
        cursor: EntryId,
    ) -> Result<(Vec<Entry>, EntryId), BackendError> {
        dispatch!(self, b => b.claim(q, consumer, idle, count, cursor).await)
    }
    async fn begin(
        &self,
        q: &QueueKeys,
        consumer: &str,
        entry: &Entry,
        token: Token,
        lock_ttl: Duration,
    ) -> Result<Begin, BackendError> {
        dispatch!(self, b => b.begin(q, consumer, entry, token, lock_ttl).await)
    }
    async fn ack(&self, q: &QueueKeys, ids: &[EntryId]) -> Result<u64, BackendError> {
        dispatch!(self, b => b.ack(q, ids).await)
    }
    async fn commit(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        value: Bytes,
        ttl: Duration,
        token: Token,
    ) -> Result<(), BackendError> {
        dispatch!(self, b => b.commit(q, entry, value, ttl, token).await)
    }
    async fn fail(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        token: Token,
        hold: Duration,
    ) -> Result<Option<u32>, BackendError> {
        dispatch!(self, b => b.fail(q, entry, token, hold).await)
    }
    async fn bury(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        failure: &Failure<'_>,
        release: Option<Token>,
    ) -> Result<bool, BackendError> {
        dispatch!(self, b => b.bury(q, entry, failure, release).await)
    }
    async fn depth(&self, q: &QueueKeys) -> Result<Depth, BackendError> {
        dispatch!(self, b => b.depth(q).await)
    }
    async fn dead_letters(&self, q: &QueueKeys, count: usize) -> Result<Vec<Dead>, BackendError> {
        dispatch!(self, b => b.dead_letters(q, count).await)
    }
    async fn replay(&self, q: &QueueKeys, dead: &Dead) -> Result<Replayed, BackendError> {
        dispatch!(self, b => b.replay(q, dead).await)
    }
    async fn discard(&self, q: &QueueKeys, dead: &Dead) -> Result<bool, BackendError> {
        dispatch!(self, b => b.discard(q, dead).await)
    }
    async fn leave(&self, q: &QueueKeys, consumer: &str) -> Result<(), BackendError> {
        dispatch!(self, b => b.leave(q, consumer).await)
    }
    async fn reap(&self, q: &QueueKeys, idle: Duration) -> Result<(), BackendError> {
        dispatch!(self, b => b.reap(q, idle).await)
    }
    async fn hold(
        &self,
        q: &QueueKeys,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        dispatch!(self, b => b.hold(q, key, token, ttl).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_parse_and_order_as_redis_does() {
        let id: EntryId = "1790000000000-3".parse().unwrap();
        assert_eq!(
            id,
            EntryId {
                ms: 1_790_000_000_000,
                seq: 3
            }
        );
        assert_eq!(id.to_string(), "1790000000000-3");
        assert!(
            id < "1790000000000-10".parse().unwrap(),
            "numeric, not text"
        );
        assert!("x-1".parse::<EntryId>().is_err() && "12".parse::<EntryId>().is_err());
    }

    #[test]
    fn a_queues_keys_share_one_slot() {
        let q = QueueKeys::new("shop", "app::set_stock");
        assert_eq!(q.stream, "shop:wb:{app::set_stock}");
        assert_eq!(q.dead, "shop:wb:{app::set_stock}:dead");
        assert_eq!(q.attempts, "shop:wb:{app::set_stock}:attempts");
    }
}
