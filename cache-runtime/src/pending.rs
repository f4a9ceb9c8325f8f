//! Invalidations that failed (backend down, timed out, breaker open) wait
//! here and are retried before this cache's next backend call, so that once
//! the backend answers again this process never reads an entry whose
//! invalidation it could not deliver. Other processes are not covered: they
//! may read such an entry until it is retried or its TTL ends.
//!
//! One retry runs at a time; calls arriving meanwhile do not queue behind
//! it (each would wait out a timeout) but skip the backend, so that reads
//! answer from the source at once. A cancelled retry loses nothing: keys
//! leave the queue only once their delete succeeded.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tokio::sync::Mutex;

/// At most this many distinct keys wait; beyond it, failed invalidations
/// are dropped with an error log (their entries then live until their TTL).
pub(crate) const MAX_PENDING: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct PendingDeletes {
    keys: Mutex<HashSet<String>>,
    any: AtomicBool,
}

/// The result of one retry.
#[derive(Debug, PartialEq)]
pub(crate) enum Retry<E> {
    /// Every waiting key was deleted (possibly none were waiting).
    Delivered(usize),
    /// Another caller is retrying right now.
    Busy,
    /// The delete failed; the keys still wait.
    Failed(E),
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
        let mut dropped = 0;
        for key in keys {
            if pending.len() < MAX_PENDING || pending.contains(key) {
                pending.insert(key.clone());
            } else {
                dropped += 1;
            }
        }
        if !pending.is_empty() {
            self.any.store(true, Relaxed);
        }
        dropped
    }

    /// Runs `delete` on a copy of the waiting keys, unless a retry is
    /// already running; the keys are forgotten only when it succeeds.
    pub(crate) async fn retry<E, F>(&self, delete: impl FnOnce(Vec<String>) -> F) -> Retry<E>
    where
        F: Future<Output = Result<(), E>>,
    {
        let Ok(mut pending) = self.keys.try_lock() else {
            return Retry::Busy;
        };
        if pending.is_empty() {
            self.any.store(false, Relaxed);
            return Retry::Delivered(0);
        }
        match delete(pending.iter().cloned().collect()).await {
            Ok(()) => {
                let delivered = pending.len();
                pending.clear();
                self.any.store(false, Relaxed);
                Retry::Delivered(delivered)
            }
            Err(e) => Retry::Failed(e),
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
        assert_eq!(p.add(&["a".into(), "b".into(), "a".into()]).await, 0);
        assert!(p.any());
        assert_eq!(
            p.retry(|_| async { Err("down") }).await,
            Retry::Failed("down")
        );
        assert!(p.any(), "kept after a failed retry");
        let delivered = p
            .retry(|mut keys| async move {
                keys.sort();
                assert_eq!(keys, ["a", "b"], "each key once");
                Ok::<(), ()>(())
            })
            .await;
        assert_eq!(delivered, Retry::Delivered(2));
        assert!(!p.any());
    }

    #[tokio::test]
    async fn a_cancelled_retry_keeps_the_keys() {
        let p = PendingDeletes::default();
        p.add(&["a".into()]).await;
        let never = p.retry(|_| std::future::pending::<Result<(), ()>>());
        // Polled once (it takes the lock and starts deleting), then dropped.
        assert!(futures_poll_once(never).await);
        assert!(p.any());
        assert_eq!(
            p.retry(|_| async { Ok::<(), ()>(()) }).await,
            Retry::Delivered(1)
        );
    }

    #[tokio::test]
    async fn one_retry_at_a_time() {
        let p = PendingDeletes::default();
        p.add(&["a".into()]).await;
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let first = p.retry(|_| async move {
            let _ = started_tx.send(());
            let _ = finish_rx.await;
            Ok::<(), ()>(())
        });
        let second = async {
            let _ = started_rx.await;
            let busy = p.retry(|_| async { Ok::<(), ()>(()) }).await;
            let _ = finish_tx.send(());
            busy
        };
        let (first, second) = tokio::join!(first, second);
        assert_eq!(second, Retry::Busy);
        assert_eq!(first, Retry::Delivered(1));
    }

    #[tokio::test]
    async fn the_queue_is_bounded_by_distinct_keys() {
        let p = PendingDeletes::default();
        let hot = vec!["hot".to_string(); MAX_PENDING + 5];
        assert_eq!(p.add(&hot).await, 0, "one hot key takes one slot");
        let keys: Vec<String> = (0..MAX_PENDING + 5).map(|i| i.to_string()).collect();
        assert_eq!(p.add(&keys).await, 6);
    }

    /// Polls a future once; `true` if it was still pending (then drops it).
    async fn futures_poll_once<F: Future>(f: F) -> bool {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx).is_pending())).await
    }
}
