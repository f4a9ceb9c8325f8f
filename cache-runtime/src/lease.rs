//! Leases, after Facebook's memcache leases (NSDI 2013): one load per key
//! across every process that shares a backend, and no stale value stored by
//! a load that raced a write.
//!
//! A caller that misses asks for the key's lease in one atomic step that
//! also re-checks the entry ([`Backend::acquire`](crate::backend::Backend::acquire)):
//! it gets the entry, the lease (a random token with its own TTL), or "wait".
//! The holder runs the body and stores its result only if its token still
//! holds the lease ([`Lease::fill`]). Every delete removes the key's lease
//! with its entry, so a holder that read the source before a write cannot
//! store what it read (the stale-set race of cache-aside), and a write
//! cancels the lease too.
//!
//! Callers that find the lease out poll with backoff until the entry
//! appears, or the lease becomes theirs (its holder failed, crashed, or was
//! cancelled by an invalidation), or their deadline passes: then they run
//! the body themselves and do not store the result. No caller waits
//! without bound, and none fails because of a lease: a backend that does
//! not answer means the body answers, unstored.
//!
//! A holder whose result is not to be stored (a `None` with
//! `null_ttl = 0`) leaves it in the lease for [`ANSWER_WINDOW`], so that
//! the callers that were waiting for it share it instead of each loading in
//! turn. A caller that arrives after it, as for any uncached result, loads
//! (without a lease, so unstored, until the answer is gone).

use crate::backend::{Acquire, Token};
use crate::stats::bump;
use crate::Cache;
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

/// The first pause between two polls of a lease.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause between two polls: a waiter sees a filled entry at
/// most this long (plus a round trip) after it lands.
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// How long an unstored answer stays in the lease: long enough for every
/// waiter to poll once more.
pub(crate) const ANSWER_WINDOW: Duration = Duration::from_millis(100);

/// What [`obtain`] came back with.
pub(crate) enum Obtained<'a> {
    /// The entry appeared (another caller filled it): its bytes.
    Entry(Bytes),
    /// The lease is ours: load, then fill or release it.
    Lease(Lease<'a>),
    /// Another caller held the lease until our deadline.
    TimedOut,
    /// No lease to be had: the backend failed or was skipped, or the last
    /// load of the key just ended without storing. Load, unstored.
    NoLease,
}

/// Asks for the lease of `key` for `ttl`, polling while another caller
/// holds it, until `deadline`.
pub(crate) async fn obtain<'a>(
    cache: &'a Cache,
    key: &'a str,
    ttl: Duration,
    deadline: Instant,
) -> Obtained<'a> {
    // Armed whenever our token may hold the lease: from each request until
    // its answer says otherwise. A request that failed, timed out or was
    // cancelled may still have been granted on the server, so dropping the
    // guard then releases it (which does nothing if it was not granted).
    let mut lease = Lease {
        cache,
        key,
        token: Token::random(),
        armed: false,
    };
    let mut backoff = Backoff::new();
    let mut waited = false;
    loop {
        lease.armed = true;
        match cache.acquire(key, lease.token, ttl).await {
            Ok(Acquire::Granted) => return Obtained::Lease(lease),
            Ok(Acquire::Value(bytes)) => {
                lease.armed = false;
                return Obtained::Entry(bytes);
            }
            // The load we waited for, which was not stored.
            Ok(Acquire::Answer(bytes)) if waited => {
                lease.armed = false;
                return Obtained::Entry(bytes);
            }
            // Another caller's answer, from before we asked.
            Ok(Acquire::Answer(_)) => {
                lease.armed = false;
                return Obtained::NoLease;
            }
            Ok(Acquire::Wait) => {
                lease.armed = false;
                if !waited {
                    waited = true;
                    bump(&cache.inner.counters.lease_waits);
                    tracing::debug!(key, "another caller holds the lease; waiting for its load");
                }
                let now = Instant::now();
                if now >= deadline {
                    return Obtained::TimedOut;
                }
                // The last pause ends at the deadline, for one last look.
                tokio::time::sleep(backoff.pause().min(deadline - now)).await;
            }
            Err(e) => {
                // Only a request lost in an outage (a timeout, a dropped
                // connection) may have been granted unseen; one that was
                // skipped was never sent, and a server that answered with
                // an error did not grant it.
                lease.armed = e.is_outage();
                if !e.is_skip() {
                    tracing::warn!(key, error = %e, "lease request failed; the body answers, unstored");
                }
                return Obtained::NoLease;
            }
        }
    }
}

/// Takes the lease of `key` for a background refresh: the entry exists,
/// so [`obtain`] would return it. `None` when the lease is out (another
/// process refreshes, or a failed refresh holds it) or the backend fails.
pub(crate) async fn take<'a>(cache: &'a Cache, key: &'a str, ttl: Duration) -> Option<Lease<'a>> {
    let mut lease = Lease {
        cache,
        key,
        token: Token::random(),
        armed: true,
    };
    match cache.take_lease(key, lease.token, ttl).await {
        Ok(true) => Some(lease),
        Ok(false) => {
            lease.armed = false;
            None
        }
        Err(e) => {
            // As in `obtain`: only an outage may have granted it unseen.
            lease.armed = e.is_outage();
            None
        }
    }
}

/// A held lease. Fill, answer or release it; if the holder's future is
/// dropped first (a cancelled request), or the call that ends it fails, it
/// is released in the background on the tokio runtime, so that waiters
/// need not wait for its TTL.
pub(crate) struct Lease<'a> {
    cache: &'a Cache,
    key: &'a str,
    token: Token,
    armed: bool,
}

impl Lease<'_> {
    /// Stores `bytes` for `ttl` if the lease still holds, and ends it.
    pub(crate) async fn fill(self, bytes: Bytes, ttl: Duration) {
        self.put(Some(bytes), ttl).await;
    }

    /// Deletes the entry if the lease still holds (nothing written since
    /// it was taken), and ends it.
    pub(crate) async fn clear(self) {
        self.put(None, Duration::ZERO).await;
    }

    async fn put(mut self, bytes: Option<Bytes>, ttl: Duration) {
        match self.cache.fill(self.key, self.token, bytes, ttl).await {
            Ok(true) => self.armed = false,
            Ok(false) => {
                self.armed = false;
                bump(&self.cache.inner.counters.lease_lost);
                tracing::debug!(
                    key = self.key,
                    "lease lost during the load (invalidated, overwritten or expired); not storing"
                );
            }
            // The fill may not have run: the guard releases the lease.
            Err(e) => {
                if !e.is_skip() {
                    tracing::warn!(key = self.key, error = %e, "cache write failed; the value is not cached");
                }
            }
        }
    }

    /// Ends the lease without storing, leaving `bytes` for the callers
    /// waiting on it (see [`ANSWER_WINDOW`]).
    pub(crate) async fn answer(mut self, bytes: Bytes) {
        let answered = self
            .cache
            .answer(self.key, self.token, bytes, ANSWER_WINDOW)
            .await;
        self.armed = answered.is_err();
    }

    /// Ends the lease without storing, so that another caller may load.
    pub(crate) async fn release(mut self) {
        self.armed = self.cache.release(self.key, self.token).await.is_err();
    }

    /// Ends the lease with a throttle for `window`: background refreshes of
    /// the key wait it out, in every process; a miss does not.
    pub(crate) async fn throttle(mut self, window: Duration) {
        self.armed = self
            .cache
            .throttle(self.key, self.token, window)
            .await
            .is_err();
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // No runtime to release on: the lease ends at its TTL.
        };
        let (cache, key, token) = (self.cache.clone(), self.key.to_owned(), self.token);
        runtime.spawn(async move {
            let _ = cache.release(&key, token).await;
        });
    }
}

/// Pauses between polls: doubling from [`FIRST_PAUSE`] to [`MAX_PAUSE`],
/// each shortened by a random fraction up to a half, so that waiters in
/// several processes do not poll in step.
struct Backoff {
    base: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { base: FIRST_PAUSE }
    }

    fn pause(&mut self) -> Duration {
        let pause = self.base.mul_f64(1.0 - 0.5 * fastrand::f64());
        self.base = (self.base * 2).min(MAX_PAUSE);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_cap_and_are_jittered() {
        let mut backoff = Backoff::new();
        let pauses: Vec<Duration> = (0..40).map(|_| backoff.pause()).collect();
        assert!(pauses[0] <= FIRST_PAUSE && pauses[0] >= FIRST_PAUSE / 2);
        assert!(pauses
            .iter()
            .all(|p| *p <= MAX_PAUSE && *p >= FIRST_PAUSE / 2));
        let late = &pauses[10..];
        assert!(late.iter().all(|p| *p >= MAX_PAUSE / 2), "{late:?}");
        assert!(
            late.iter().any(|p| *p != late[0]),
            "jittered, not in step: {late:?}"
        );
        // 100 ms of waiting takes a handful of polls, not hundreds.
        let mut backoff = Backoff::new();
        let mut waited = Duration::ZERO;
        let mut polls = 0;
        while waited < Duration::from_millis(100) {
            waited += backoff.pause();
            polls += 1;
        }
        assert!(polls <= 12, "{polls} polls");
    }

    #[tokio::test(start_paused = true)]
    async fn one_holder_then_waiters_until_it_fills_or_releases() {
        let cache = Cache::memory();
        let key = "k";
        let ttl = Duration::from_secs(5);
        let far = Instant::now() + Duration::from_secs(60);
        let Obtained::Lease(lease) = obtain(&cache, key, ttl, far).await else {
            panic!("the first caller gets the lease");
        };
        // A second caller waits until its deadline while the lease is out.
        let soon = Instant::now() + Duration::from_millis(300);
        assert!(matches!(
            obtain(&cache, key, ttl, soon).await,
            Obtained::TimedOut
        ));
        assert_eq!(Instant::now(), soon, "it waited exactly until its deadline");
        assert_eq!(cache.stats().lease_waits, 1);
        lease.release().await;
        let Obtained::Lease(lease) = obtain(&cache, key, ttl, far).await else {
            panic!("a released lease is granted again at once");
        };
        lease.fill(Bytes::from_static(b"v"), ttl).await;
        assert!(matches!(obtain(&cache, key, ttl, far).await, Obtained::Entry(b) if b == "v"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_passes_to_a_waiter() {
        let cache = Cache::memory();
        let ttl = Duration::from_secs(1);
        let far = Instant::now() + Duration::from_secs(60);
        let Obtained::Lease(crashed) = obtain(&cache, "k", ttl, far).await else {
            panic!()
        };
        std::mem::forget(crashed); // its holder never comes back
        let start = Instant::now();
        assert!(matches!(
            obtain(&cache, "k", ttl, far).await,
            Obtained::Lease(_)
        ));
        let waited = Instant::now() - start;
        assert!(
            waited >= ttl && waited <= ttl + MAX_PAUSE,
            "taken over {waited:?} after the crash"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_holder_releases_its_lease() {
        let cache = Cache::memory();
        let ttl = Duration::from_secs(60);
        let far = Instant::now() + ttl;
        let Obtained::Lease(lease) = obtain(&cache, "k", ttl, far).await else {
            panic!()
        };
        drop(lease);
        tokio::task::yield_now().await; // the release runs in the background
        assert!(matches!(
            obtain(&cache, "k", ttl, far).await,
            Obtained::Lease(_)
        ));
        assert_eq!(cache.stats().lease_waits, 0, "granted without waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalidated_lease_does_not_fill() {
        let cache = Cache::memory();
        let ttl = Duration::from_secs(60);
        let far = Instant::now() + ttl;
        let Obtained::Lease(lease) = obtain(&cache, "k", ttl, far).await else {
            panic!()
        };
        cache.delete(&["k".to_owned()]).await.unwrap();
        lease.fill(Bytes::from_static(b"old"), ttl).await;
        assert_eq!(cache.stats().lease_lost, 1);
        assert!(matches!(
            obtain(&cache, "k", ttl, far).await,
            Obtained::Lease(_)
        ));
    }
}
