//! Counters per cache, and the snapshot a user reads with
//! [`Cache::stats`](crate::Cache::stats).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of one cache's counters since it was built. Clones of a
/// [`Cache`](crate::Cache) share one set of counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered with a cached value.
    pub hits: u64,
    /// Lookups answered with a cached `None` (negative caching).
    pub null_hits: u64,
    /// Lookups that found nothing usable: absent, expired, undecodable, or
    /// the backend failed.
    pub misses: u64,
    /// Times a function body ran as a loader after a miss.
    pub loads: u64,
    /// Loads whose body failed (`Err`); their result was not cached.
    pub load_failures: u64,
    /// Callers answered by another caller's load of the same key instead
    /// of running the body: one in this process (single-flight), or one in
    /// another process or cache that held the key's lease.
    pub coalesced: u64,
    /// Misses whose lease request found the key's lease held by another
    /// caller, and waited for its load: one in another process (or another
    /// cache on the same memory store), or one of this process that an
    /// invalidation detached.
    pub lease_waits: u64,
    /// Lease waits that reached `lease_wait`: the caller then ran the body
    /// itself and did not store the result.
    pub wait_timeouts: u64,
    /// Loads whose lease was gone when they finished (the key was
    /// invalidated or written meanwhile, or the lease expired): their
    /// result was returned but not stored, as it may predate the write.
    pub lease_lost: u64,
    /// Reads answered with a value past its TTL, within its `stale` grace
    /// period (stale-while-revalidate), each starting a background refresh.
    pub stale_hits: u64,
    /// Background refreshes run: ahead of expiry (`refresh`), or of a stale
    /// value (`stale`).
    pub refreshes: u64,
    /// Background refreshes whose body failed: the cached value was kept
    /// (fail-safe), and the key is not tried again for a lease TTL.
    pub refresh_failures: u64,
    /// Write-through stores that failed after the body had written: the key
    /// was deleted instead (best effort), and the call still succeeded.
    pub write_failures: u64,
    /// Write-through values not stored because the cache held a newer
    /// version (`version = ...`).
    pub versions_refused: u64,
    /// Write-behind writes acknowledged: their value stored and their call
    /// queued for a flusher.
    pub queued: u64,
    /// Backend calls that failed or timed out.
    pub errors: u64,
    /// Backend calls skipped while the circuit breaker was open.
    pub skipped: u64,
    /// Entries that did not decode (corrupt, or another schema); each was
    /// treated as a miss and deleted.
    pub decode_errors: u64,
    /// Keys deleted by invalidation.
    pub invalidations: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) null_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_failures: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) lease_waits: AtomicU64,
    pub(crate) wait_timeouts: AtomicU64,
    pub(crate) lease_lost: AtomicU64,
    pub(crate) stale_hits: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    pub(crate) versions_refused: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) invalidations: AtomicU64,
}

/// Adds one to a counter.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            null_hits: self.null_hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            loads: self.loads.load(Relaxed),
            load_failures: self.load_failures.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            lease_waits: self.lease_waits.load(Relaxed),
            wait_timeouts: self.wait_timeouts.load(Relaxed),
            lease_lost: self.lease_lost.load(Relaxed),
            stale_hits: self.stale_hits.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            refresh_failures: self.refresh_failures.load(Relaxed),
            write_failures: self.write_failures.load(Relaxed),
            versions_refused: self.versions_refused.load(Relaxed),
            queued: self.queued.load(Relaxed),
            errors: self.errors.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
        }
    }
}
