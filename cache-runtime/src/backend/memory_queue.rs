//! Write-behind queues in process memory: the same operations as the
//! Redis streams, under one lock, for caches of one `MemoryStore` and the
//! flushers of one process. Not durable: what is queued and not yet
//! flushed is lost when the process exits. A pending write's value is
//! pinned in its shard (no expiry, not evicted) until it is flushed.

use super::memory::MemoryBackend;
use super::queue::{
    Begin, Dead, Depth, Entry, EntryId, Failure, QueueBackend, QueueKeys, Replayed,
    MARKER_RETENTION,
};
use super::{BackendError, Token};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The queues of one store, by stream key, and the write-behind state of
/// its keys, which all queues share (as on Redis, where it lives beside
/// the key): two functions writing one key take turns.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    queues: HashMap<String, Queue>,
    keys: Keys,
}

/// A key's latest queued entry (its queue and id), and when the marker
/// expires (never while that entry is pending).
#[derive(Debug, Clone)]
struct Marker {
    stream: String,
    id: EntryId,
    until: Option<Instant>,
}

/// The markers and flush locks of the store's keys.
#[derive(Debug, Default)]
struct Keys {
    markers: HashMap<String, Marker>,
    /// Markers count at which expired ones are next swept.
    marker_sweep_at: usize,
    locks: HashMap<String, (Token, Instant)>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Entries not yet acknowledged.
    entries: BTreeMap<EntryId, Entry>,
    /// The last entry delivered to the group: later ones are new.
    delivered: EntryId,
    /// Delivered entries by id: their consumer and last delivery.
    pending: HashMap<EntryId, (String, Instant)>,
    attempts: HashMap<EntryId, u32>,
    dead: BTreeMap<EntryId, Dead>,
    last_id: EntryId,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Queue {
    /// A new id, after every earlier one, as Redis makes them.
    fn next_id(&mut self) -> EntryId {
        let ms = unix_ms();
        self.last_id = if ms > self.last_id.ms {
            EntryId { ms, seq: 0 }
        } else {
            EntryId {
                ms: self.last_id.ms,
                seq: self.last_id.seq + 1,
            }
        };
        self.last_id
    }

    fn ack(&mut self, id: EntryId) {
        self.entries.remove(&id);
        self.pending.remove(&id);
        self.attempts.remove(&id);
    }

    /// Appends an entry, makes it its key's marker; the caller stores the
    /// value.
    fn append(
        &mut self,
        keys: &mut Keys,
        stream: &str,
        key: &str,
        args: Bytes,
        value: Bytes,
        now: Instant,
    ) -> EntryId {
        let id = self.next_id();
        let entry = Entry {
            id,
            key: key.to_owned(),
            args,
            value,
        };
        self.entries.insert(id, entry);
        keys.set_marker(key, stream, id, None, now);
        id
    }

    /// Delivers `entries` to `consumer`, now.
    fn deliver(&mut self, ids: &[EntryId], consumer: &str, now: Instant) -> Vec<Entry> {
        ids.iter()
            .filter_map(|id| {
                self.pending.insert(*id, (consumer.to_owned(), now));
                self.entries.get(id).cloned()
            })
            .collect()
    }
}

impl Keys {
    /// Whether `key`'s latest write is entry `id` of queue `stream`.
    fn is_latest(&self, key: &str, stream: &str, id: EntryId, now: Instant) -> bool {
        self.markers.get(key).is_some_and(|m| {
            m.until.is_none_or(|until| until > now) && m.stream == stream && m.id == id
        })
    }

    fn set_marker(
        &mut self,
        key: &str,
        stream: &str,
        id: EntryId,
        until: Option<Instant>,
        now: Instant,
    ) {
        if self.markers.len() >= self.marker_sweep_at {
            self.markers
                .retain(|_, m| m.until.is_none_or(|until| until > now));
            self.marker_sweep_at = 1_024.max(2 * self.markers.len());
        }
        let stream = stream.to_owned();
        self.markers
            .insert(key.to_owned(), Marker { stream, id, until });
    }

    /// Keeps `key`'s marker for the retention period if it is `id`.
    fn retire_marker(&mut self, key: &str, stream: &str, id: EntryId, now: Instant) {
        if self.is_latest(key, stream, id, now) {
            if let Some(m) = self.markers.get_mut(key) {
                m.until = Some(now + MARKER_RETENTION);
            }
        }
    }

    fn unlock(&mut self, key: &str, token: Token) {
        if self.locks.get(key).is_some_and(|(held, _)| *held == token) {
            self.locks.remove(key);
        }
    }
}

impl Queues {
    fn queue(&mut self, q: &QueueKeys) -> &mut Queue {
        self.open(&q.stream).0
    }

    /// The queue of `stream`, and the keys' state.
    fn open(&mut self, stream: &str) -> (&mut Queue, &mut Keys) {
        if !self.queues.contains_key(stream) {
            self.queues.insert(stream.to_owned(), Queue::default());
        }
        let queue = self.queues.get_mut(stream).expect("inserted above");
        (queue, &mut self.keys)
    }
}

impl QueueBackend for MemoryBackend {
    async fn enqueue(
        &self,
        stream: &str,
        key: &str,
        value: Bytes,
        args: Bytes,
    ) -> Result<EntryId, BackendError> {
        let mut queues = self.queues();
        let (queue, keys) = queues.open(stream);
        let id = queue.append(keys, stream, key, args, value.clone(), Instant::now());
        self.put(key, value, None);
        Ok(id)
    }

    async fn join(&self, q: &QueueKeys) -> Result<(), BackendError> {
        self.queues().queue(q);
        Ok(())
    }

    async fn read(
        &self,
        q: &QueueKeys,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>, BackendError> {
        let mut queues = self.queues();
        let queue = queues.queue(q);
        let after = queue.delivered;
        let ids: Vec<EntryId> = queue
            .entries
            .range(after..)
            .map(|(id, _)| *id)
            .filter(|id| *id > after)
            .take(count)
            .collect();
        if let Some(last) = ids.last() {
            queue.delivered = *last;
        }
        Ok(queue.deliver(&ids, consumer, Instant::now()))
    }

    async fn newest(&self, q: &QueueKeys) -> Result<Option<EntryId>, BackendError> {
        let mut queues = self.queues();
        Ok(queues.queue(q).entries.keys().next_back().copied())
    }

    async fn claim(
        &self,
        q: &QueueKeys,
        consumer: &str,
        idle: Duration,
        count: usize,
        _cursor: EntryId,
    ) -> Result<(Vec<Entry>, EntryId), BackendError> {
        let now = Instant::now();
        let mut queues = self.queues();
        let queue = queues.queue(q);
        let mut ids: Vec<EntryId> = queue
            .pending
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= idle)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.truncate(count);
        Ok((queue.deliver(&ids, consumer, now), EntryId::default()))
    }

    async fn begin(
        &self,
        q: &QueueKeys,
        consumer: &str,
        entry: &Entry,
        token: Token,
        lock_ttl: Duration,
    ) -> Result<Begin, BackendError> {
        let now = Instant::now();
        let mut queues = self.queues();
        let (queue, keys) = queues.open(&q.stream);
        if queue
            .pending
            .get(&entry.id)
            .is_none_or(|(owner, _)| owner != consumer)
        {
            return Ok(Begin::Lost);
        }
        if !keys.is_latest(&entry.key, &q.stream, entry.id, now) {
            queue.ack(entry.id);
            return Ok(Begin::Superseded);
        }
        if keys
            .locks
            .get(&entry.key)
            .is_some_and(|(_, until)| *until > now)
        {
            return Ok(Begin::Busy);
        }
        keys.locks
            .insert(entry.key.clone(), (token, now + lock_ttl));
        if let Some((_, at)) = queue.pending.get_mut(&entry.id) {
            *at = now;
        }
        Ok(Begin::Go)
    }

    async fn ack(&self, q: &QueueKeys, ids: &[EntryId]) -> Result<u64, BackendError> {
        let mut queues = self.queues();
        let queue = queues.queue(q);
        let mut acked = 0;
        for id in ids {
            acked += u64::from(queue.pending.contains_key(id));
            queue.ack(*id);
        }
        Ok(acked)
    }

    async fn commit(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        value: Bytes,
        ttl: Duration,
        token: Token,
    ) -> Result<(), BackendError> {
        let now = Instant::now();
        let mut queues = self.queues();
        let (queue, keys) = queues.open(&q.stream);
        queue.ack(entry.id);
        if keys.is_latest(&entry.key, &q.stream, entry.id, now) {
            keys.retire_marker(&entry.key, &q.stream, entry.id, now);
            self.put(&entry.key, value, Some(ttl));
        }
        keys.unlock(&entry.key, token);
        Ok(())
    }

    async fn fail(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        token: Token,
        hold: Duration,
    ) -> Result<Option<u32>, BackendError> {
        let mut queues = self.queues();
        let (queue, keys) = queues.open(&q.stream);
        if let Some((held, until)) = keys.locks.get_mut(&entry.key) {
            if *held == token {
                *until = Instant::now() + hold;
            }
        }
        if !queue.pending.contains_key(&entry.id) {
            return Ok(None);
        }
        let attempts = queue.attempts.entry(entry.id).or_default();
        *attempts += 1;
        Ok(Some(*attempts))
    }

    async fn bury(
        &self,
        q: &QueueKeys,
        entry: &Entry,
        failure: &Failure<'_>,
        release: Option<Token>,
    ) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut queues = self.queues();
        let (queue, keys) = queues.open(&q.stream);
        let latest = keys.is_latest(&entry.key, &q.stream, entry.id, now);
        if latest {
            let id = queue.next_id();
            queue.dead.insert(
                id,
                Dead {
                    id,
                    entry: entry.clone(),
                    error: failure.error.to_owned(),
                    attempts: failure.attempts,
                    failed_at_ms: unix_ms(),
                },
            );
            // Kept with no expiry while the letter waits for a replay.
            keys.set_marker(&entry.key, &q.stream, entry.id, None, now);
            self.remove(&entry.key);
        }
        queue.ack(entry.id);
        if let Some(token) = release {
            keys.unlock(&entry.key, token);
        }
        Ok(latest)
    }

    async fn depth(&self, q: &QueueKeys) -> Result<Depth, BackendError> {
        let mut queues = self.queues();
        let queue = queues.queue(q);
        Ok(Depth {
            entries: queue.entries.len() as u64,
            pending: queue.pending.len() as u64,
            oldest: queue.entries.keys().next().copied(),
            dead: queue.dead.len() as u64,
            now_ms: unix_ms(),
        })
    }

    async fn dead_letters(&self, q: &QueueKeys, count: usize) -> Result<Vec<Dead>, BackendError> {
        let mut queues = self.queues();
        Ok(queues.queue(q).dead.values().take(count).cloned().collect())
    }

    async fn replay(&self, q: &QueueKeys, dead: &Dead) -> Result<Replayed, BackendError> {
        let now = Instant::now();
        let mut queues = self.queues();
        let (queue, keys) = queues.open(&q.stream);
        let Some(letter) = queue.dead.get(&dead.id) else {
            return Ok(Replayed::Missing);
        };
        let key = letter.entry.key.clone();
        if !keys.is_latest(&key, &q.stream, letter.entry.id, now) {
            return Ok(Replayed::Superseded);
        }
        let Some(letter) = queue.dead.remove(&dead.id) else {
            return Ok(Replayed::Missing);
        };
        let value = letter.entry.value;
        let id = queue.append(keys, &q.stream, &key, letter.entry.args, value.clone(), now);
        self.put(&key, value, None);
        Ok(Replayed::Queued(id))
    }

    async fn discard(&self, q: &QueueKeys, dead: &Dead) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut queues = self.queues();
        let (queue, keys) = queues.open(&q.stream);
        if queue.dead.remove(&dead.id).is_none() {
            return Ok(false);
        }
        keys.retire_marker(&dead.entry.key, &q.stream, dead.entry.id, now);
        Ok(true)
    }

    async fn leave(&self, _: &QueueKeys, _: &str) -> Result<(), BackendError> {
        // Consumers exist only as names on their pending entries.
        Ok(())
    }

    async fn reap(&self, _: &QueueKeys, _: Duration) -> Result<(), BackendError> {
        Ok(())
    }

    async fn hold(
        &self,
        _: &QueueKeys,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let mut queues = self.queues();
        match queues.keys.locks.get_mut(key) {
            Some((held, until)) if *held == token => {
                *until = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry acknowledged twice (a flusher holding an entry another
    /// flusher flushed meanwhile) counts once: the counts of `FlushStats`
    /// add up to the writes.
    #[tokio::test]
    async fn an_entry_is_acknowledged_once() {
        let m = MemoryBackend::new(100);
        let q = QueueKeys::new("t", "q");
        let old = m
            .enqueue(&q.stream, "k", "1".into(), Bytes::new())
            .await
            .unwrap();
        m.enqueue(&q.stream, "k", "2".into(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(m.read(&q, "a", 10).await.unwrap().len(), 2);
        assert_eq!(m.ack(&q, &[old]).await.unwrap(), 1);
        assert_eq!(m.ack(&q, &[old]).await.unwrap(), 0);
    }
}
