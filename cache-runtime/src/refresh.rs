//! Reads that look at an entry's age (the header's write time, TTL and load
//! time):
//!
//! - **refresh ahead** (`refresh`): a hit on a fresh value past a threshold
//!   (a fraction of its TTL, an age, or XFetch's probabilistic early
//!   expiration) returns it at once and refreshes it in the background, so
//!   a key read continuously never misses;
//! - **stale-while-revalidate** (`stale`): a value is kept past its TTL for
//!   a grace period; a read in that period returns it at once and refreshes
//!   it in the background;
//! - **fail-safe**: a background refresh whose body fails keeps the value,
//!   and leaves a throttle in the key's lease for a lease TTL, so a failing
//!   source is tried once per lease TTL across every process, not once per
//!   read. Past the grace period the value is gone; a read loads at once
//!   (the throttle does not hold misses back) and returns the body's error.
//!
//! One background refresh runs per key: one per process (a burst of reads
//! past the threshold schedules one; it leads the key's flight, so misses
//! meanwhile wait for it), and one across processes (it takes the key's
//! lease, which invalidations delete, so a refresh that read the source
//! before a write is not stored). Holding the lease, it checks that the
//! entry is still the one it set out to refresh: one written meanwhile by
//! another process's refresh is left alone. A miss is cache-aside with
//! leases.

use crate::aside::{entry, load_coordinated};
use crate::cache::{Cache, Lookup};
use crate::envelope::Header;
use crate::flight::{Role, Shared};
use crate::lease;
use crate::shape::ReturnShape;
use crate::stats::bump;
use crate::Spec;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The keys with a background refresh scheduled or running in one cache.
#[derive(Debug, Default)]
pub(crate) struct Refreshing(Mutex<HashSet<String>>);

impl Refreshing {
    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A claim on refreshing one key in this cache, given up when dropped.
struct Claim {
    cache: Cache,
    key: String,
}

impl Claim {
    /// The claim on `key`, unless a refresh of it is already scheduled.
    fn new(cache: &Cache, key: String) -> Option<Claim> {
        if !cache.inner.refreshing.lock().insert(key.clone()) {
            return None;
        }
        Some(Claim {
            cache: cache.clone(),
            key,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.cache.inner.refreshing.lock().remove(&self.key);
    }
}

/// When a fresh value is refreshed ahead of its expiry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refresh {
    /// Never: the value expires at its TTL.
    Never,
    /// Once this fraction of its TTL has passed (`refresh = 0.8`).
    Fraction(f64),
    /// Once it is this old (`refresh = "4m"`), or at 90% of its TTL if
    /// that comes first (jitter may have shortened the TTL below it).
    After(Duration),
    /// Probabilistic early expiration (XFetch; Vattani, Chierichetti and
    /// Lowenstein, VLDB 2015): a read refreshes when
    /// `now - load_time * beta * ln(rand()) >= expiry`. The closer the
    /// expiry and the longer the last load took, the likelier a read is to
    /// refresh, so among many readers one refreshes shortly before expiry.
    /// `beta` above 1 refreshes earlier. A load that took no time is never
    /// refreshed early.
    XFetch {
        /// The weight of the load time (1.0 in the paper).
        beta: f64,
    },
}

impl Refresh {
    /// Whether a read at `now_ms` of a fresh entry with `header` refreshes
    /// it; `rand` draws a number in `(0, 1]`.
    pub(crate) fn due(&self, header: &Header, now_ms: u64, rand: impl FnOnce() -> f64) -> bool {
        let age = now_ms.saturating_sub(header.written_at_ms);
        match *self {
            Refresh::Never => false,
            Refresh::Fraction(fraction) => age as f64 >= fraction * header.fresh_ms as f64,
            Refresh::After(after) => {
                let before_expiry = header.fresh_ms.saturating_mul(9) / 10;
                u128::from(age) >= after.as_millis().min(u128::from(before_expiry))
            }
            Refresh::XFetch { beta } => {
                let until_expiry = header.fresh_until_ms().saturating_sub(now_ms) as f64;
                let early = -(header.load_ms as f64) * beta * rand().ln();
                early >= until_expiry
            }
        }
    }
}

/// A read of `key` that refreshes ahead and serves stale values as `spec`
/// says. `make` builds the body's future from owned copies of the
/// function's arguments; it is called only to load (on a miss, or in the
/// background), never on a plain hit.
pub async fn read<S, R, M, F>(cache: &Cache, key: String, spec: Spec, make: M) -> R
where
    S: ReturnShape<R> + 'static,
    S::Value: Serialize + DeserializeOwned,
    R: 'static,
    M: FnOnce() -> F,
    F: Future<Output = R> + Send + 'static,
{
    let counters = &cache.inner.counters;
    match cache.lookup::<S::Value>(&key).await {
        Lookup::Hit(v, header) => {
            let now = cache.now_ms();
            if now < header.fresh_until_ms() {
                bump(&counters.hits);
                if spec.refresh.due(&header, now, || 1.0 - fastrand::f64()) {
                    in_background::<S, R, F>(cache, key, spec, header, make);
                }
                return S::from_value(v);
            }
            let grace_ends = header
                .fresh_until_ms()
                .saturating_add(spec.stale_grace().as_millis() as u64);
            if now < grace_ends {
                bump(&counters.stale_hits);
                in_background::<S, R, F>(cache, key, spec, header, make);
                return S::from_value(v);
            }
            // Past its TTL and any grace period this function gives (another
            // function wrote it, or clocks disagree): a miss.
        }
        Lookup::Null(header) => {
            if cache.now_ms() < header.fresh_until_ms() {
                if let Some(r) = S::from_null() {
                    bump(&counters.null_hits);
                    return r;
                }
            }
        }
        Lookup::Miss => {}
    }
    bump(&counters.misses);
    Box::pin(load_coordinated::<S, R, F>(cache, &key, &spec, make())).await
}

/// Starts a background refresh of the entry of `key` written as `seen`,
/// unless one is scheduled or a load of it is in flight in this process
/// already, or no tokio runtime runs here.
fn in_background<S, R, F>(
    cache: &Cache,
    key: String,
    spec: Spec,
    seen: Header,
    make: impl FnOnce() -> F,
) where
    S: ReturnShape<R> + 'static,
    S::Value: Serialize,
    R: 'static,
    F: Future<Output = R> + Send + 'static,
{
    if cache.inner.flights.in_flight(&key) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(claim) = Claim::new(cache, key) else {
        return;
    };
    let load = make();
    runtime.spawn(async move {
        refresh::<S, R, F>(&claim.cache, &claim.key, &spec, seen, load).await;
        drop(claim);
    });
}

/// Loads `key` in the background and stores the result, if this process
/// leads the key's flight, can take its lease, and the entry is still the
/// one written as `seen`.
async fn refresh<S, R, F>(cache: &Cache, key: &str, spec: &Spec, seen: Header, load: F)
where
    S: ReturnShape<R>,
    S::Value: Serialize,
    F: Future<Output = R>,
{
    let Role::Leader(leader) = cache.inner.flights.join(key) else {
        return;
    };
    let lease_ttl = spec.lease_ttl(&cache.inner.config);
    let Some(lease) = lease::take(cache, key, lease_ttl).await else {
        // Another process refreshes it, or a failed refresh left a throttle:
        // keep the claim a while, so that reads here do not try again and
        // again meanwhile.
        drop(leader);
        tokio::time::sleep(lease_ttl / 10).await;
        return;
    };
    // With the lease held nobody else can fill: if the entry changed, it
    // was refreshed (or written) since we saw it.
    match cache.header_of(key).await {
        Some(now) if now.written_at_ms != seen.written_at_ms => {
            lease.release().await;
            return;
        }
        _ => {}
    }
    let counters = &cache.inner.counters;
    bump(&counters.refreshes);
    bump(&counters.loads);
    let started = Instant::now();
    // Bounded by the lease: past it, the fill could not land anyway, and a
    // load that hangs must not hold this key's flight (misses wait on it).
    // The result ends with this block, before the next await: the task is
    // `Send` whatever the result's type.
    let entry = match tokio::time::timeout(lease_ttl, load).await {
        Ok(result) => entry::<S, R>(cache, key, spec, &result, started.elapsed()),
        Err(_) => {
            tracing::warn!(key, function = spec.name, timeout = ?lease_ttl, "background refresh took longer than the lease; abandoned");
            None
        }
    };
    match entry {
        Some((bytes, ttl)) if !ttl.is_zero() => {
            leader.publish(Shared::Entry(bytes.clone()));
            lease.fill(bytes, ttl).await;
        }
        // A `None` that is not cached: the value it replaces is gone, unless
        // something was written since (the lease says).
        Some((bytes, _)) => {
            leader.publish(Shared::Entry(bytes));
            lease.clear().await;
        }
        None => {
            bump(&counters.refresh_failures);
            tracing::warn!(
                key,
                function = spec.name,
                "background refresh failed; the cached value is kept (fail-safe)"
            );
            // The next background try waits a lease TTL, everywhere.
            lease.throttle(lease_ttl).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_790_000_000_000;

    fn written(fresh_ms: u64, load_ms: u64) -> Header {
        Header {
            written_at_ms: T0,
            fresh_ms,
            load_ms,
        }
    }

    #[test]
    fn thresholds_by_fraction_and_age() {
        let h = written(10_000, 0);
        let never = || panic!("no randomness needed");
        assert!(!Refresh::Never.due(&h, T0 + 9_999, never));
        assert!(!Refresh::Fraction(0.8).due(&h, T0 + 7_999, never));
        assert!(Refresh::Fraction(0.8).due(&h, T0 + 8_000, never));
        let after = Refresh::After(Duration::from_secs(3));
        assert!(!after.due(&h, T0 + 2_999, never));
        assert!(after.due(&h, T0 + 3_000, never));
    }

    #[test]
    fn xfetch_follows_its_formula() {
        let h = written(10_000, 100);
        let xfetch = Refresh::XFetch { beta: 1.0 };
        // 100 ms from expiry, a load of 100 ms: refresh when -ln(r) >= 1.
        assert!(xfetch.due(&h, T0 + 9_900, || (-1.0f64).exp() - 1e-12));
        assert!(!xfetch.due(&h, T0 + 9_900, || (-1.0f64).exp() + 1e-12));
        // beta = 2 halves the draw needed.
        let eager = Refresh::XFetch { beta: 2.0 };
        assert!(eager.due(&h, T0 + 9_800, || (-1.0f64).exp() - 1e-12));
        // A load that took no time never refreshes early.
        assert!(!xfetch.due(&written(10_000, 0), T0 + 9_999, || 1e-300));
    }

    /// Over many simulated expiries, with reads every 10 ms over the last
    /// second of a 10 s TTL and loads of 200 ms, XFetch refreshes before
    /// expiry in the share of runs its formula predicts, and at the time it
    /// predicts (the median refresh falls where half the runs that refresh
    /// have done so, by the formula: about 640 ms before expiry; with many
    /// reads, one of them refreshes well ahead).
    #[test]
    fn xfetch_refreshes_early_as_often_as_predicted() {
        let (fresh, load, beta) = (10_000u64, 200u64, 1.0);
        let h = written(fresh, load);
        let xfetch = Refresh::XFetch { beta };
        let reads: Vec<u64> = (0..100).map(|i| fresh - 1_000 + i * 10).collect();
        // P(a read `gap` ms before expiry refreshes) = exp(-gap / (load * beta)).
        let p = |at: u64| (-((fresh - at) as f64) / (load as f64 * beta)).exp();
        let p_none: f64 = reads.iter().map(|&at| 1.0 - p(at)).product();
        let mut rng = fastrand::Rng::with_seed(2015);
        let runs = 20_000;
        let mut early = 0u32;
        let mut gaps = Vec::new();
        for _ in 0..runs {
            if let Some(&at) = reads
                .iter()
                .find(|&&at| xfetch.due(&h, T0 + at, || 1.0 - rng.f64()))
            {
                early += 1;
                gaps.push(fresh - at);
            }
        }
        let expected = runs as f64 * (1.0 - p_none);
        let sd = (runs as f64 * p_none * (1.0 - p_none)).sqrt();
        assert!(
            (early as f64 - expected).abs() <= 4.0 * sd,
            "{early} early refreshes in {runs} runs; the formula predicts {expected:.0} ± {sd:.0}"
        );
        assert!(gaps.iter().all(|&g| g > 0 && g <= 1_000), "before expiry");
        // The predicted median: the first read by which half of the runs
        // that refresh at all have refreshed.
        let mut survive = 1.0;
        let predicted = reads
            .iter()
            .find(|&&at| {
                survive *= 1.0 - p(at);
                1.0 - survive >= 0.5 * (1.0 - p_none)
            })
            .map(|&at| fresh - at)
            .unwrap();
        gaps.sort_unstable_by(|a, b| b.cmp(a)); // in read order: largest gap first
        let median = gaps[gaps.len() / 2];
        assert!(
            median.abs_diff(predicted) <= 30,
            "median refresh {median} ms before expiry; the formula predicts {predicted} ms"
        );
    }
}
