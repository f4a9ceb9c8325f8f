//! A circuit breaker in front of the backend. After `threshold` failures in
//! a row it opens: calls skip the backend for `cooldown` (the body answers
//! reads at once instead of waiting out a timeout per call). Then one call
//! is let through as a probe; its success closes the breaker, its failure
//! opens it for another cooldown.
//!
//! The closed path is one relaxed atomic load per call, and a success
//! writes only when there were failures to forget.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which calls are skipped; 0 = closed.
    open_until: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 so that "now" is never the closed marker 0.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go to the backend now.
    #[inline]
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Relaxed);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        // Past the cooldown: exactly one caller wins the probe; the others
        // keep skipping until it reports.
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + self.cooldown.as_millis() as u64,
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
    }

    #[inline]
    pub(crate) fn success(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.open_until.load(Relaxed) != 0 {
            self.open_until.store(0, Relaxed);
            tracing::info!("cache backend answered again: circuit breaker closed");
        }
    }

    pub(crate) fn failure(&self) {
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if failures >= self.threshold {
            let was = self
                .open_until
                .swap(self.now_ms() + self.cooldown.as_millis() as u64, Relaxed);
            if was == 0 {
                tracing::warn!(
                    failures,
                    cooldown = ?self.cooldown,
                    "cache backend failing: circuit breaker open, calls skip the cache"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_probes_once() {
        let b = Breaker::new(3, Duration::from_secs(1));
        b.failure();
        b.failure();
        assert!(b.allow(), "two failures keep it closed");
        b.failure();
        assert!(!b.allow(), "three failures open it");
        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert!(b.allow(), "after the cooldown one probe goes through");
        assert!(!b.allow(), "and only one");
        b.success();
        assert!(b.allow() && b.allow(), "a successful probe closes it");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens() {
        let b = Breaker::new(1, Duration::from_secs(1));
        b.failure();
        assert!(!b.allow());
        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert!(b.allow());
        b.failure();
        assert!(!b.allow());
        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert!(b.allow());
    }
}
