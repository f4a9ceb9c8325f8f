//! The clock of entry timestamps: Unix milliseconds, read from the wall
//! clock once when a cache is built and advanced by tokio's monotonic clock
//! since. Under tokio's paused clock (tests) it moves with
//! `tokio::time::advance`; a step of the wall clock after start does not
//! move it. Processes compare each other's timestamps, so their wall clocks
//! should agree to well within a TTL, as NTP keeps them.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Clock {
    unix_ms: u64,
    at: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            unix_ms,
            at: Instant::now(),
        }
    }

    /// Now, in Unix milliseconds.
    pub(crate) fn now_ms(&self) -> u64 {
        self.unix_ms + self.at.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn moves_with_tokios_clock() {
        let clock = Clock::new();
        let start = clock.now_ms();
        assert!(start > 1_600_000_000_000, "Unix milliseconds");
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now_ms() - start, 1_500);
    }
}
