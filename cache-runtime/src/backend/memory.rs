//! The embedded backend: a sharded in-process map with per-entry TTL and a
//! bound on the number of entries, and the leases of its keys.
//!
//! Expired entries are dropped when read, and a few random entries are
//! checked for expiry on every write, so expired entries that are never read
//! again do not pile up. When a write finds its shard full, it evicts: an
//! expired entry when one of a handful of random samples is expired, else
//! the least recently used of the samples (the approximation Redis uses for
//! `allkeys-lru`). Time is `tokio::time::Instant`, so tests that pause
//! tokio's clock can move expiry forward without waiting.
//!
//! A key's lease lives in the key's own shard, in a map beside the entries,
//! so that one lock makes each lease operation atomic. Leases are not
//! entries: they do not count towards `max_entries` and are never evicted;
//! each ends when filled, released, deleted with its key, or at its TTL.

use super::{Acquire, Backend, BackendError, Token};
use bytes::Bytes;
use foldhash::fast::RandomState;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How many random entries one eviction or expiry pass looks at.
const SAMPLES: usize = 5;

/// A shard drops its expired leases when it holds this many, then when it
/// holds twice as many as were left, so that sweeps stay rare.
const LEASE_SWEEP: usize = 1_024;

#[derive(Debug)]
struct Entry {
    value: Bytes,
    expires_at: Instant,
    last_used: u64,
    /// A write-behind value whose write is pending: it does not expire and
    /// is never evicted until the write is flushed.
    pinned: bool,
}

#[derive(Debug)]
struct Lease {
    state: LeaseState,
    expires_at: Instant,
}

#[derive(Debug)]
enum LeaseState {
    /// Held by the caller with this token.
    Held(Token),
    /// Ended with an answer for the callers that were waiting on it.
    Answered(Bytes),
    /// Ended by a failed background refresh: the next one waits; a miss
    /// takes it over.
    Throttled,
}

// Keys are hashed with foldhash, seeded per map: a few instructions per
// key where SipHash (std's default) took a few hundred, and still not
// predictable from outside the process, so keys built from user input
// cannot be chosen to collide.
#[derive(Debug)]
struct Shard {
    map: IndexMap<String, Entry, RandomState>,
    /// Leases by the key they fill.
    leases: HashMap<String, Lease, RandomState>,
    /// The lease count at which expired leases are next swept.
    lease_sweep_at: usize,
    /// The newest version written through each key, with its expiry and
    /// the value stored with it.
    versions: HashMap<String, (u64, Instant, Bytes), RandomState>,
    clock: u64,
    rng: fastrand::Rng,
}

impl Shard {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Drops expired entries among a few random samples.
    fn expire_some(&mut self, now: Instant) {
        for _ in 0..2 {
            if self.map.is_empty() {
                return;
            }
            let i = self.rng.usize(..self.map.len());
            if self.map[i].expires_at <= now {
                self.map.swap_remove_index(i);
            }
        }
    }

    /// Evicts one entry: an expired sample if any, else the least recently
    /// used sample. Never evicts `keep` (the index just written) nor a
    /// pinned entry; a shard of pinned entries only grows past its bound.
    fn evict_one(&mut self, now: Instant, keep: usize) {
        let len = self.map.len();
        let mut victim: Option<(usize, u64)> = None;
        for _ in 0..SAMPLES.min(len) {
            let i = self.rng.usize(..len);
            if i == keep || self.map[i].pinned {
                continue;
            }
            let e = &self.map[i];
            if e.expires_at <= now {
                victim = Some((i, 0));
                break;
            }
            if victim.is_none_or(|(_, used)| e.last_used < used) {
                victim = Some((i, e.last_used));
            }
        }
        let victim = victim.map(|(i, _)| i).or_else(|| {
            // Every sample hit `keep` or a pinned entry: take any other.
            (0..len).find(|&i| i != keep && !self.map[i].pinned)
        });
        if let Some(i) = victim {
            self.map.swap_remove_index(i);
        }
    }

    /// The live entry of `key`, marked as used; an expired one is dropped.
    fn live(&mut self, key: &str, now: Instant) -> Option<Bytes> {
        let tick = self.tick();
        let i = self.map.get_index_of(key)?;
        let entry = &mut self.map[i];
        if entry.expires_at <= now {
            self.map.swap_remove_index(i);
            return None;
        }
        entry.last_used = tick;
        Some(entry.value.clone())
    }

    /// Stores an entry, evicting one when the shard is over `capacity`.
    fn insert(&mut self, key: &str, value: Bytes, ttl: Duration, now: Instant, capacity: usize) {
        self.insert_entry(key, value, Some(ttl), now, capacity);
    }

    /// Stores an entry that expires after `ttl`, or a pinned one (`None`).
    fn insert_entry(
        &mut self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        now: Instant,
        capacity: usize,
    ) {
        self.expire_some(now);
        let last_used = self.tick();
        let entry = Entry {
            value,
            // Callers cap TTLs at MAX_TTL; never panic on an overflow anyway.
            expires_at: deadline(now, ttl.unwrap_or(crate::MAX_TTL)),
            last_used,
            pinned: ttl.is_none(),
        };
        // Replacing an entry keeps its key: no allocation.
        let i = match self.map.get_full_mut(key) {
            Some((i, _, slot)) => {
                *slot = entry;
                i
            }
            None => self.map.insert_full(key.to_owned(), entry).0,
        };
        if self.map.len() > capacity {
            self.evict_one(now, i);
        }
    }

    /// Whether `token` holds a live lease on `key`.
    fn holds(&self, key: &str, token: Token, now: Instant) -> bool {
        self.leases.get(key).is_some_and(|l| {
            l.expires_at > now && matches!(l.state, LeaseState::Held(held) if held == token)
        })
    }
}

fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or(now + crate::MAX_TTL)
}

/// In-process storage with TTL expiry and a bounded number of entries.
#[derive(Debug)]
pub(crate) struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    /// Picks a key's shard; seeded apart from the maps', so that the keys
    /// of one shard do not share bits of the hash its map indexes by.
    shard_hasher: RandomState,
    /// Write-behind queues; locked before a shard when both are.
    queues: Mutex<super::memory_queue::Queues>,
}

impl MemoryBackend {
    /// A backend holding at most `max_entries` entries (at least one).
    pub(crate) fn new(max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        // Small caches get one shard so that the bound is exact.
        let shards = if max_entries >= 1024 { 16 } else { 1 };
        MemoryBackend {
            shards: (0..shards)
                .map(|i| {
                    Mutex::new(Shard {
                        map: IndexMap::default(),
                        leases: HashMap::default(),
                        lease_sweep_at: LEASE_SWEEP,
                        versions: HashMap::default(),
                        clock: 0,
                        rng: fastrand::Rng::with_seed(0x9e37_79b9 ^ i as u64),
                    })
                })
                .collect(),
            shard_capacity: max_entries / shards,
            shard_hasher: RandomState::default(),
            queues: Mutex::default(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let i = if self.shards.len() == 1 {
            0
        } else {
            (self.shard_hasher.hash_one(key) as usize) & (self.shards.len() - 1)
        };
        // A panic while holding the lock cannot leave a shard inconsistent:
        // each step of a mutation leaves a state that callers could have
        // made (an entry replaced or removed, a lease ended). Keep serving.
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the lease of `key` with `state` for `window`, if `token` holds it.
    fn mark(&self, key: &str, token: Token, state: LeaseState, window: Duration) {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if shard.holds(key, token, now) {
            let lease = Lease {
                state,
                expires_at: deadline(now, window),
            };
            shard.leases.insert(key.to_owned(), lease);
        }
    }

    /// Stores `value` under `key` for `ttl`, or pinned (`None`: no expiry,
    /// never evicted), and cancels the key's lease.
    pub(super) fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) {
        let mut shard = self.shard(key);
        shard.leases.remove(key);
        shard.insert_entry(key, value, ttl, Instant::now(), self.shard_capacity);
    }

    /// Removes `key`'s entry (not its lease).
    pub(super) fn remove(&self, key: &str) {
        self.shard(key).map.swap_remove(key);
    }

    /// The write-behind queues of this store.
    pub(super) fn queues(&self) -> MutexGuard<'_, super::memory_queue::Queues> {
        // As for shards: each step leaves a state callers could have made.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of live and not yet collected entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .map
                    .len()
            })
            .sum()
    }
}

impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        Ok(self.shard(key).live(key, Instant::now()))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        self.put(key, value, Some(ttl));
        Ok(())
    }

    async fn set_versioned(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
        version: u64,
    ) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        let newer = |(held, until, _): &&(u64, Instant, Bytes)| *until > now && *held > version;
        if let Some((_, _, stored)) = shard.versions.get(key).filter(newer) {
            let holds_it = shard
                .map
                .get(key)
                .is_some_and(|e| e.expires_at > now && e.value == stored);
            if !holds_it {
                shard.map.swap_remove(key);
                shard.leases.remove(key);
            }
            return Ok(false);
        }
        if shard.versions.len() > 2 * self.shard_capacity {
            shard.versions.retain(|_, (_, until, _)| *until > now);
        }
        let entry = (version, deadline(now, ttl), value.clone());
        shard.versions.insert(key.to_owned(), entry);
        shard.leases.remove(key);
        shard.insert(key, value, ttl, now, self.shard_capacity);
        Ok(true)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        for key in keys {
            let mut shard = self.shard(key);
            shard.map.swap_remove(key.as_str());
            shard.leases.remove(key.as_str());
        }
        Ok(())
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, BackendError> {
        let now = Instant::now();
        let shard = self.shard(key);
        Ok(shard
            .map
            .get(key)
            .filter(|e| e.expires_at > now && !e.pinned)
            .map(|e| e.expires_at - now))
    }

    async fn acquire(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<Acquire, BackendError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if let Some(value) = shard.live(key, now) {
            return Ok(Acquire::Value(value));
        }
        match shard.leases.get(key).filter(|l| l.expires_at > now) {
            Some(Lease {
                state: LeaseState::Answered(answer),
                ..
            }) => return Ok(Acquire::Answer(answer.clone())),
            Some(Lease {
                state: LeaseState::Held(_),
                ..
            }) => return Ok(Acquire::Wait),
            Some(Lease {
                state: LeaseState::Throttled,
                ..
            })
            | None => {}
        }
        if shard.leases.len() >= shard.lease_sweep_at {
            shard.leases.retain(|_, l| l.expires_at > now);
            shard.lease_sweep_at = LEASE_SWEEP.max(2 * shard.leases.len());
        }
        let lease = Lease {
            state: LeaseState::Held(token),
            expires_at: deadline(now, ttl),
        };
        shard.leases.insert(key.to_owned(), lease);
        Ok(Acquire::Granted)
    }

    async fn fill(
        &self,
        key: &str,
        token: Token,
        value: Option<Bytes>,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if !shard.holds(key, token, now) {
            return Ok(false);
        }
        shard.leases.remove(key);
        match value {
            Some(value) => shard.insert(key, value, ttl, now, self.shard_capacity),
            None => {
                shard.map.swap_remove(key);
            }
        }
        Ok(true)
    }

    async fn release(&self, key: &str, token: Token) -> Result<(), BackendError> {
        let mut shard = self.shard(key);
        if shard.holds(key, token, Instant::now()) {
            shard.leases.remove(key);
        }
        Ok(())
    }

    async fn take_lease(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if shard.leases.get(key).is_some_and(|l| l.expires_at > now) {
            return Ok(false);
        }
        let lease = Lease {
            state: LeaseState::Held(token),
            expires_at: deadline(now, ttl),
        };
        shard.leases.insert(key.to_owned(), lease);
        Ok(true)
    }

    async fn throttle(
        &self,
        key: &str,
        token: Token,
        window: Duration,
    ) -> Result<(), BackendError> {
        self.mark(key, token, LeaseState::Throttled, window);
        Ok(())
    }

    async fn answer(
        &self,
        key: &str,
        token: Token,
        answer: Bytes,
        window: Duration,
    ) -> Result<(), BackendError> {
        self.mark(key, token, LeaseState::Answered(answer), window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let m = MemoryBackend::new(100);
        m.set("k", b("v"), Duration::from_secs(10)).await.unwrap();
        assert_eq!(m.get("k").await.unwrap(), Some(b("v")));
        assert_eq!(m.ttl("k").await.unwrap(), Some(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(m.get("k").await.unwrap(), Some(b("v")));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(m.get("k").await.unwrap(), None);
        assert_eq!(m.ttl("k").await.unwrap(), None);
        assert_eq!(m.len(), 0, "an expired entry is dropped when read");
    }

    #[tokio::test]
    async fn set_replaces_and_delete_removes() {
        let m = MemoryBackend::new(100);
        let ttl = Duration::from_secs(60);
        m.set("a", b("1"), ttl).await.unwrap();
        m.set("a", b("2"), ttl).await.unwrap();
        m.set("b", b("3"), ttl).await.unwrap();
        assert_eq!(m.get("a").await.unwrap(), Some(b("2")));
        m.delete(&["a".into(), "b".into(), "absent".into()])
            .await
            .unwrap();
        assert_eq!(m.get("a").await.unwrap(), None);
        assert_eq!(m.get("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn size_is_bounded_and_recently_used_entries_survive() {
        let m = MemoryBackend::new(100);
        let ttl = Duration::from_secs(60);
        m.set("hot", b("h"), ttl).await.unwrap();
        for i in 0..1_000 {
            m.set(&format!("k{i}"), b("x"), ttl).await.unwrap();
            assert!(
                m.get("hot").await.unwrap().is_some(),
                "hot key evicted at {i}"
            );
        }
        assert_eq!(m.len(), 100);
    }

    #[tokio::test]
    async fn large_caches_shard_and_stay_bounded() {
        let m = MemoryBackend::new(2_048);
        let ttl = Duration::from_secs(60);
        for i in 0..10_000 {
            m.set(&format!("k{i}"), b("x"), ttl).await.unwrap();
        }
        assert!(m.len() <= 2_048, "len {}", m.len());
        assert!(m.len() > 1_500, "len {}", m.len());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_collected_by_writes() {
        let m = MemoryBackend::new(10_000);
        for i in 0..500 {
            m.set(&format!("old{i}"), b("x"), Duration::from_secs(1))
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..2_000 {
            m.set(&format!("new{i}"), b("x"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(m.len() < 2_300, "expired entries linger: {}", m.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_granted_once_and_only_its_holder_fills() {
        let m = MemoryBackend::new(100);
        let ttl = Duration::from_secs(60);
        let (a, t2) = (Token(1), Token(2));
        assert_eq!(m.acquire("k", a, ttl).await.unwrap(), Acquire::Granted);
        assert_eq!(m.acquire("k", t2, ttl).await.unwrap(), Acquire::Wait);
        assert!(
            !m.fill("k", t2, Some(b("x")), ttl).await.unwrap(),
            "not b's lease"
        );
        assert!(m.fill("k", a, Some(b("v")), ttl).await.unwrap());
        assert!(
            !m.fill("k", a, Some(b("w")), ttl).await.unwrap(),
            "a fill ends the lease"
        );
        assert_eq!(
            m.acquire("k", t2, ttl).await.unwrap(),
            Acquire::Value(b("v"))
        );
        assert_eq!(m.len(), 1, "a lease is not an entry");
    }

    #[tokio::test(start_paused = true)]
    async fn writes_and_deletes_cancel_the_lease_and_it_expires() {
        let m = MemoryBackend::new(100);
        let ttl = Duration::from_secs(60);
        let (a, t2, c) = (Token(1), Token(2), Token(3));
        m.acquire("k", a, ttl).await.unwrap();
        m.delete(&["k".into()]).await.unwrap();
        assert!(
            !m.fill("k", a, Some(b("old")), ttl).await.unwrap(),
            "deleted"
        );
        assert_eq!(m.acquire("k", t2, ttl).await.unwrap(), Acquire::Granted);
        m.set("k", b("new"), ttl).await.unwrap();
        assert!(
            !m.fill("k", t2, Some(b("old")), ttl).await.unwrap(),
            "overwritten"
        );
        assert_eq!(m.get("k").await.unwrap(), Some(b("new")));
        m.delete(&["k".into()]).await.unwrap();
        assert_eq!(
            m.acquire("k", c, Duration::from_secs(1)).await.unwrap(),
            Acquire::Granted
        );
        m.release("k", a).await.unwrap();
        assert_eq!(
            m.acquire("k", a, ttl).await.unwrap(),
            Acquire::Wait,
            "not a's to release"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            !m.fill("k", c, Some(b("late")), ttl).await.unwrap(),
            "expired"
        );
        m.answer("k", c, b("none"), ttl).await.unwrap();
        assert_eq!(
            m.acquire("k", a, ttl).await.unwrap(),
            Acquire::Granted,
            "an expired holder cannot answer"
        );
        m.release("k", a).await.unwrap();
        assert_eq!(m.acquire("k", t2, ttl).await.unwrap(), Acquire::Granted);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_ends_the_lease_and_serves_acquirers_for_its_window() {
        let m = MemoryBackend::new(100);
        let ttl = Duration::from_secs(60);
        let (a, t2) = (Token(1), Token(2));
        m.acquire("k", a, ttl).await.unwrap();
        m.answer("k", t2, b("x"), ttl).await.unwrap();
        assert_eq!(
            m.acquire("k", t2, ttl).await.unwrap(),
            Acquire::Wait,
            "not t2's lease"
        );
        m.answer("k", a, b("none"), Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(
            m.acquire("k", t2, ttl).await.unwrap(),
            Acquire::Answer(b("none"))
        );
        assert_eq!(m.get("k").await.unwrap(), None, "an answer is not an entry");
        assert!(
            !m.fill("k", a, Some(b("v")), ttl).await.unwrap(),
            "the lease ended"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(m.acquire("k", t2, ttl).await.unwrap(), Acquire::Granted);
        m.answer("k", t2, b("none"), ttl).await.unwrap();
        m.delete(&["k".into()]).await.unwrap();
        assert_eq!(
            m.acquire("k", a, ttl).await.unwrap(),
            Acquire::Granted,
            "deleted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_holds_refreshes_back_but_not_misses() {
        let m = MemoryBackend::new(100);
        let ttl = Duration::from_secs(60);
        let (a, t2, c) = (Token(1), Token(2), Token(3));
        m.set("k", b("v"), ttl).await.unwrap();
        assert!(
            m.take_lease("k", a, ttl).await.unwrap(),
            "taken despite the entry"
        );
        assert!(!m.take_lease("k", t2, ttl).await.unwrap(), "one at a time");
        m.throttle("k", a, Duration::from_secs(5)).await.unwrap();
        assert!(!m.take_lease("k", t2, ttl).await.unwrap(), "throttled");
        m.delete(&["k".into()]).await.unwrap();
        m.throttle("k", a, Duration::from_secs(5)).await.unwrap();
        assert!(
            m.take_lease("k", t2, ttl).await.unwrap(),
            "a delete ends the throttle"
        );
        m.throttle("k", t2, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            m.acquire("k", c, ttl).await.unwrap(),
            Acquire::Granted,
            "a miss takes it over"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(m.take_lease("k", a, ttl).await.unwrap(), "and it expires");
    }
}
