//! The embedded backend: a sharded in-process map with per-entry TTL and a
//! bound on the number of entries.
//!
//! Expired entries are dropped when read, and a few random entries are
//! checked for expiry on every write, so expired entries that are never read
//! again do not pile up. When a write finds its shard full, it evicts: an
//! expired entry when one of a handful of random samples is expired, else
//! the least recently used of the samples (the approximation Redis uses for
//! `allkeys-lru`). Time is `tokio::time::Instant`, so tests that pause
//! tokio's clock can move expiry forward without waiting.

use super::{Backend, BackendError};
use bytes::Bytes;
use indexmap::IndexMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How many random entries one eviction or expiry pass looks at.
const SAMPLES: usize = 5;

#[derive(Debug)]
struct Entry {
    value: Bytes,
    expires_at: Instant,
    last_used: u64,
}

#[derive(Debug)]
struct Shard {
    map: IndexMap<String, Entry>,
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
    /// used sample. Never evicts `keep` (the index just written).
    fn evict_one(&mut self, now: Instant, keep: usize) {
        let len = self.map.len();
        let mut victim: Option<(usize, u64)> = None;
        for _ in 0..SAMPLES.min(len) {
            let i = self.rng.usize(..len);
            if i == keep {
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
        let i = match victim {
            Some((i, _)) => i,
            // Every sample hit `keep`: take any other entry.
            None => usize::from(keep == 0),
        };
        self.map.swap_remove_index(i);
    }
}

/// In-process storage with TTL expiry and a bounded number of entries.
#[derive(Debug)]
pub(crate) struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
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
                        map: IndexMap::new(),
                        clock: 0,
                        rng: fastrand::Rng::with_seed(0x9e37_79b9 ^ i as u64),
                    })
                })
                .collect(),
            shard_capacity: max_entries / shards,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let i = if self.shards.len() == 1 {
            0
        } else {
            // FNV-1a: cheap, and good enough to spread keys over 16 shards.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in key.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            (h as usize) & (self.shards.len() - 1)
        };
        // A panic while holding the lock cannot leave a shard half-written:
        // every mutation is a single map call. Keep serving.
        self.shards[i]
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
        let now = Instant::now();
        let mut shard = self.shard(key);
        let tick = shard.tick();
        let Some(i) = shard.map.get_index_of(key) else {
            return Ok(None);
        };
        let entry = &mut shard.map[i];
        if entry.expires_at <= now {
            shard.map.swap_remove_index(i);
            return Ok(None);
        }
        entry.last_used = tick;
        Ok(Some(entry.value.clone()))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        shard.expire_some(now);
        let last_used = shard.tick();
        let entry = Entry {
            value,
            // Callers cap TTLs at MAX_TTL; never panic on an overflow anyway.
            expires_at: now.checked_add(ttl).unwrap_or(now + crate::MAX_TTL),
            last_used,
        };
        let (i, _) = shard.map.insert_full(key.to_owned(), entry);
        if shard.map.len() > self.shard_capacity {
            shard.evict_one(now, i);
        }
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        for key in keys {
            self.shard(key).map.swap_remove(key.as_str());
        }
        Ok(())
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, BackendError> {
        let now = Instant::now();
        let shard = self.shard(key);
        Ok(shard
            .map
            .get(key)
            .filter(|e| e.expires_at > now)
            .map(|e| e.expires_at - now))
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
}
