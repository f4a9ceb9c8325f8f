//! Declarative caching for async Rust.
//!
//! Annotate an `async fn` with [`#[cached]`](macro@cached) and it reads
//! through a [`Cache`]; annotate a write with
//! [`#[invalidates]`](macro@invalidates) and it deletes the keys it touched.
//! Key templates are checked at compile time.
//!
//! ```
//! use cache_runtime::{cached, invalidates, Cache};
//!
//! #[cached(key = "square:<n>", ttl = 300)]
//! async fn square(n: u64) -> u64 {
//!     n * n // the expensive read
//! }
//!
//! #[invalidates("square:<n>")]
//! async fn forget(n: u64) {}
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! cache_runtime::set_default(Cache::memory());
//! assert_eq!(square(12).await, 144); // miss: runs the body
//! assert_eq!(square(12).await, 144); // hit
//! forget(12).await;
//! let stats = cache_runtime::default_cache().unwrap().stats();
//! assert_eq!((stats.hits, stats.loads, stats.invalidations), (1, 1, 1));
//! # }
//! ```
//!
//! See the README for the attribute reference and the strategy guide.

mod aside;
mod backend;
mod breaker;
mod builder;
mod cache;
mod clock;
mod default;
mod depth;
pub mod envelope;
mod error;
mod flight;
mod invalidate;
mod key;
mod lease;
mod pending;
mod read_through;
mod refresh;
mod shape;
mod spec;
mod stats;
mod write_behind;
mod write_through;

pub use builder::{CacheBuilder, MemoryStore};
pub use cache::Cache;
pub use cache_macros::{cached, invalidates};
pub use default::{default_cache, set_default, try_set_default};
pub use depth::MAX_DEPTH;
pub use error::{BackendError, DecodeError, EncodeError, Error};
pub use key::{key_part, KeyPart, KeyWriter};
pub use read_through::{BoxFuture, ReadThrough, ReadThroughOn};
pub use spec::{Refresh, Spec};
pub use stats::CacheStats;
pub use write_behind::{
    DeadLetter, EntryId, FlushStats, Flusher, FlusherBuilder, Queue, QueueStats, Replay,
    WriteBehind,
};
pub use write_through::CacheVersion;

/// The longest time an entry lives: longer TTLs are capped to it (ten years).
pub const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// What generated code calls. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::aside::aside;
    pub use crate::default::required as default_cache;
    pub use crate::invalidate::invalidate_after;
    pub use crate::key::KeyBuilder;
    pub use crate::refresh::{read, Refresh};
    pub use crate::write_behind::generated::{
        assert_write_behind_result, pending_value, Args, QueueArg, QueueRef, Storable,
        WriteBehindResult,
    };
    pub use crate::write_behind::{write_behind, QueueSpec};
    pub use crate::write_through::{write_through, write_through_versioned};

    /// The version of `value` by a closure over it, for `version = |v| ..`.
    #[inline]
    pub fn version_of<T: ?Sized, V: crate::CacheVersion>(
        f: impl FnOnce(&T) -> V,
        value: &T,
    ) -> u64 {
        f(value).version_key()
    }

    /// Deletes one full key and its lease, for read-through handles.
    pub async fn invalidate_key(cache: &Cache, key: String) -> Result<(), crate::Error> {
        Ok(cache.delete(&[key]).await?)
    }
    pub use crate::shape::{Opt, Plain, Res, ResOpt};
    pub use crate::Cache;
    pub use crate::Spec;

    /// A copy of `self` for a background load.
    #[inline]
    pub fn owned_self<T: OwnedSelf>(receiver: &T) -> T {
        receiver.clone()
    }

    /// A receiver a background load can copy.
    #[diagnostic::on_unimplemented(
        message = "a background refresh needs its own copy of `self`, and `{Self}` cannot be copied: it must be `Clone + Send + Sync + 'static`",
        label = "refresh_ahead and stale copy `self` here, to load after the call returns",
        note = "derive `Clone` for `{Self}` (cheap when its fields are `Arc`s, pools or `Cache`s), or take `self: Arc<Self>`"
    )]
    pub trait OwnedSelf: Clone + Send + Sync + 'static {}
    #[diagnostic::do_not_recommend]
    impl<T: Clone + Send + Sync + 'static> OwnedSelf for T {}

    /// A copy of an argument for a background load.
    #[inline]
    pub fn owned_arg<T: OwnedArg>(arg: &T) -> T {
        arg.clone()
    }

    /// An owned copy of a borrowed argument for a background load.
    #[inline]
    pub fn owned_ref<T: ?Sized + OwnedRef<O>, O>(arg: &T) -> O {
        arg.owned()
    }

    /// A borrowed argument a background load can copy to an owned value `O`
    /// it borrows again.
    #[diagnostic::on_unimplemented(
        message = "a background refresh needs its own copy of this argument, and `&{Self}` cannot be copied to an owned value: `{Self}` must be `ToOwned` (or `Clone`), its owned form `Send + 'static`",
        label = "refresh_ahead and stale copy this argument, to load after the call returns",
        note = "`&str` becomes a `String`, `&[T]` a `Vec<T>`, `&T` a `T` when `T: Clone`: derive `Clone` for `{Self}`, or take the argument by value"
    )]
    pub trait OwnedRef<O> {
        /// Copies it.
        fn owned(&self) -> O;
    }
    #[diagnostic::do_not_recommend]
    impl<T: ?Sized + ToOwned<Owned = O>, O: ::core::borrow::Borrow<T> + Send + 'static> OwnedRef<O>
        for T
    {
        fn owned(&self) -> O {
            self.to_owned()
        }
    }

    /// An argument a background load can copy.
    #[diagnostic::on_unimplemented(
        message = "a background refresh needs its own copy of this argument, and `{Self}` cannot be copied: it must be `Clone + Send + 'static`",
        label = "refresh_ahead and stale copy this argument, to load after the call returns",
        note = "derive `Clone` for `{Self}`, or pass an owned value or an `Arc` of it"
    )]
    pub trait OwnedArg: Clone + Send + 'static {}
    #[diagnostic::do_not_recommend]
    impl<T: Clone + Send + 'static> OwnedArg for T {}

    /// Checks at the return type that the cached value can be stored.
    #[inline(always)]
    pub fn assert_cacheable<T: Cacheable>() {}

    /// A value the cache can store: `Serialize + DeserializeOwned`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
        label = "the cached value has type `{Self}`",
        note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
    )]
    pub trait Cacheable {}
    // Hidden from diagnostics, so that a missing impl is reported once, as
    // `Cacheable` with the message above, not again as serde's traits.
    #[diagnostic::do_not_recommend]
    impl<T: serde::Serialize + serde::de::DeserializeOwned> Cacheable for T {}
}
