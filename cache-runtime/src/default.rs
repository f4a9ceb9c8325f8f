//! The process-wide default cache, used by annotated functions that do not
//! name one with `cache = ...`.

use crate::Cache;
use std::sync::OnceLock;

static DEFAULT: OnceLock<Cache> = OnceLock::new();

/// Sets the process-wide default cache. Call it once at start-up, before
/// the first call of a function annotated without `cache = ...`.
///
/// # Panics
///
/// When a default is already set: a second call would silently send some
/// functions to another cache than others. Use [`try_set_default`] to
/// handle that case instead.
///
/// ```
/// cache_runtime::set_default(cache_runtime::Cache::memory());
/// assert!(cache_runtime::default_cache().is_some());
/// ```
pub fn set_default(cache: Cache) {
    if try_set_default(cache).is_err() {
        panic!("cache_runtime::set_default called twice: the default cache is already set");
    }
}

/// Sets the process-wide default cache unless one is set; gives the cache
/// back when it was.
pub fn try_set_default(cache: Cache) -> Result<(), Cache> {
    DEFAULT.set(cache)
}

/// The process-wide default cache, if set.
pub fn default_cache() -> Option<&'static Cache> {
    DEFAULT.get()
}

/// The default cache for generated code.
///
/// # Panics
///
/// When no default is set: that is a start-up mistake, and failing the first
/// call says so where it happens.
#[doc(hidden)]
#[track_caller]
pub fn required() -> &'static Cache {
    match DEFAULT.get() {
        Some(cache) => cache,
        None => panic!(
            "no default cache: call cache_runtime::set_default(Cache::memory() or Cache::redis(url).await?) \
             at start-up, or name a cache with #[cached(cache = ...)]"
        ),
    }
}
