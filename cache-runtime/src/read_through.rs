//! Read-through handles: what `#[cached(strategy = "read_through",
//! handle = NAME)]` defines beside the function, so that code that knows
//! only the key arguments reads the function's key space through the same
//! loader, TTL and miss protection, and invalidates it by key arguments,
//! without naming the function or repeating its key template.
//!
//! The handle is the one item the attribute adds, under the name the user
//! gave it: on a free function, a constant [`ReadThrough`]; on a `&self`
//! method, an associated method returning a [`ReadThroughOn`] bound to the
//! instance.

use crate::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The read path of a function's key space. `K` is the function's argument
/// (a tuple of them when it takes several), `R` its return type.
///
/// ```
/// use cache_runtime::{cached, Cache};
///
/// #[cached(strategy = "read_through", key = "square:<n>", ttl = 60, handle = SQUARES)]
/// async fn square(n: u64) -> u64 {
///     n * n // the loader: other code reads through SQUARES
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// cache_runtime::set_default(Cache::memory());
/// assert_eq!(SQUARES.get(12).await, 144); // runs `square` on a miss
/// assert_eq!(SQUARES.get(12).await, 144); // a hit
/// SQUARES.invalidate(12).await.unwrap(); // deletes `square:12`
/// # }
/// ```
pub struct ReadThrough<K, R> {
    load: fn(K) -> BoxFuture<'static, R>,
    invalidate: fn(K) -> BoxFuture<'static, Result<(), Error>>,
}

impl<K, R> ReadThrough<K, R> {
    /// Used by generated code.
    #[doc(hidden)]
    pub const fn new(
        load: fn(K) -> BoxFuture<'static, R>,
        invalidate: fn(K) -> BoxFuture<'static, Result<(), Error>>,
    ) -> Self {
        ReadThrough { load, invalidate }
    }

    /// The value of `key`: cached, or loaded by the function (and cached
    /// with its TTL); concurrent misses share one load.
    pub async fn get(&self, key: K) -> R {
        (self.load)(key).await
    }

    /// Deletes the entry of `key` (and its lease: a load in flight will not
    /// store its result).
    pub async fn invalidate(&self, key: K) -> Result<(), Error> {
        (self.invalidate)(key).await
    }
}

impl<K, R> fmt::Debug for ReadThrough<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadThrough").finish_non_exhaustive()
    }
}

/// The read path of a method's key space, bound to the instance `S` it
/// loads through (its database handle, its cache).
pub struct ReadThroughOn<'a, S, K, R> {
    on: &'a S,
    load: fn(&'a S, K) -> BoxFuture<'a, R>,
    invalidate: fn(&'a S, K) -> BoxFuture<'a, Result<(), Error>>,
}

impl<'a, S, K, R> ReadThroughOn<'a, S, K, R> {
    /// Used by generated code.
    #[doc(hidden)]
    pub fn new(
        on: &'a S,
        load: fn(&'a S, K) -> BoxFuture<'a, R>,
        invalidate: fn(&'a S, K) -> BoxFuture<'a, Result<(), Error>>,
    ) -> Self {
        ReadThroughOn {
            on,
            load,
            invalidate,
        }
    }

    /// The value of `key`: cached, or loaded by the method (and cached with
    /// its TTL); concurrent misses share one load.
    pub async fn get(&self, key: K) -> R {
        (self.load)(self.on, key).await
    }

    /// Deletes the entry of `key` (and its lease: a load in flight will not
    /// store its result).
    pub async fn invalidate(&self, key: K) -> Result<(), Error> {
        (self.invalidate)(self.on, key).await
    }
}

impl<S, K, R> fmt::Debug for ReadThroughOn<'_, S, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadThroughOn").finish_non_exhaustive()
    }
}
