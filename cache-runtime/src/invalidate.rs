//! `#[invalidates]`: run the write, then delete its keys if it succeeded.

use crate::shape::Succeeded;
use crate::Cache;
use std::future::Future;

/// Runs `write`; when its result counts as success for the shape `S`,
/// deletes `keys` (full keys). A failed delete is logged, counted and
/// queued for retry (see `pending`), but does not fail the write, which has
/// already happened.
pub async fn invalidate_after<S, R, F, const N: usize>(
    cache: &Cache,
    keys: [String; N],
    write: F,
) -> R
where
    S: Succeeded<R>,
    F: Future<Output = R>,
{
    let result = write.await;
    if S::succeeded(&result) {
        if let Err(e) = cache.delete(&keys).await {
            tracing::error!(keys = ?keys, error = %e, "invalidation failed; retried before this cache reads again");
        }
    }
    result
}
