//! Invalidations that failed (backend down, timed out, breaker open) wait
//! here and are retried before this cache's next backend call, so that once
//! the backend answers again this process never reads an entry whose
//! invalidation it could not deliver. Other processes are not covered: they
//! may read such an entry until it is retried or its TTL ends.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tokio::sync::Mutex;

/// At most this many keys wait; beyond it, failed invalidations are dropped
/// with an error log (their entries then live until their TTL).
pub(crate) const MAX_PENDING: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct PendingDeletes {
    /// Held across the retry, so that callers arriving meanwhile wait for it
    /// rather than read ahead of it.
    keys: Mutex<Vec<String>>,
    any: AtomicBool,
}

impl PendingDeletes {
    /// Whether there is anything to retry: one relaxed load.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.any.load(Relaxed)
    }

    /// Queues keys whose delete failed; returns how many did not fit.
    pub(crate) async fn add(&self, keys: &[String]) -> usize {
        let mut pending = self.keys.lock().await;
        let room = MAX_PENDING.saturating_sub(pending.len());
        let taken = keys.len().min(room);
        pending.extend(keys[..taken].iter().cloned());
        if !pending.is_empty() {
            self.any.store(true, Relaxed);
        }
        keys.len() - taken
    }

    /// Runs `delete` on the waiting keys; they are forgotten only when it
    /// succeeds. Returns how many keys were delivered.
    pub(crate) async fn retry<E, F>(&self, delete: impl FnOnce(Vec<String>) -> F) -> Result<usize, E>
    where
        F: std::future::Future<Output = (Vec<String>, Result<(), E>)>,
    {
        let mut pending = self.keys.lock().await;
        if pending.is_empty() {
            self.any.store(false, Relaxed);
            return Ok(0);
        }
        let (keys, result) = delete(std::mem::take(&mut *pending)).await;
        match result {
            Ok(()) => {
                self.any.store(false, Relaxed);
                Ok(keys.len())
            }
            Err(e) => {
                *pending = keys;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_wait_until_a_retry_succeeds() {
        let p = PendingDeletes::default();
        assert!(!p.any());
        assert_eq!(p.add(&["a".into(), "b".into()]).await, 0);
        assert!(p.any());
        let failed: Result<usize, &str> = p.retry(|keys| async { (keys, Err("down")) }).await;
        assert_eq!(failed, Err("down"));
        assert!(p.any(), "kept after a failed retry");
        let delivered: Result<usize, &str> = p
            .retry(|keys| async move {
                assert_eq!(keys, ["a", "b"]);
                (keys, Ok(()))
            })
            .await;
        assert_eq!(delivered, Ok(2));
        assert!(!p.any());
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let p = PendingDeletes::default();
        let keys: Vec<String> = (0..MAX_PENDING + 5).map(|i| i.to_string()).collect();
        assert_eq!(p.add(&keys).await, 5);
        assert_eq!(p.add(&["x".into()]).await, 1);
    }
}
