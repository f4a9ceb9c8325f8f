//! Return shapes: how a function's return value maps onto what is cached.
//!
//! The macro recognises four shapes by the return type's last path segment
//! and names the matching marker type; the strategies are written once,
//! generic over [`ReturnShape`].
//!
//! | return type | cached | not cached |
//! |---|---|---|
//! | `T` | every value | |
//! | `Option<T>` | `Some(v)` as a value, `None` as a null marker | |
//! | `Result<T, E>` | `Ok(v)` | `Err(e)` |
//! | `Result<Option<T>, E>` | `Ok(Some(v))`, `Ok(None)` as a null marker | `Err(e)` |

/// A return value seen by the cache.
#[derive(Debug)]
pub enum Outcome<'a, T> {
    /// A value to cache.
    Value(&'a T),
    /// A `None` to cache as a null marker.
    Null,
    /// A failure: never cached.
    Failed,
}

/// Maps a return type `R` onto the value that is cached.
pub trait ReturnShape<R> {
    /// The type stored in the cache.
    type Value;
    /// Whether a cached `None` can be returned as `R`.
    const NULLABLE: bool;
    /// Classifies a return value.
    fn outcome(r: &R) -> Outcome<'_, Self::Value>;
    /// Builds the return value for a cache hit.
    fn from_value(v: Self::Value) -> R;
    /// Builds the return value for a cached `None`; only called when `NULLABLE`.
    fn from_null() -> Option<R>;
}

/// Shape `T`: every value is cached.
#[derive(Debug)]
pub enum Plain {}
/// Shape `Option<T>`.
#[derive(Debug)]
pub enum Opt {}
/// Shape `Result<T, E>`.
#[derive(Debug)]
pub enum Res {}
/// Shape `Result<Option<T>, E>`.
#[derive(Debug)]
pub enum ResOpt {}

impl<T> ReturnShape<T> for Plain {
    type Value = T;
    const NULLABLE: bool = false;
    fn outcome(r: &T) -> Outcome<'_, T> {
        Outcome::Value(r)
    }
    fn from_value(v: T) -> T {
        v
    }
    fn from_null() -> Option<T> {
        None
    }
}

impl<T> ReturnShape<Option<T>> for Opt {
    type Value = T;
    const NULLABLE: bool = true;
    fn outcome(r: &Option<T>) -> Outcome<'_, T> {
        r.as_ref().map_or(Outcome::Null, Outcome::Value)
    }
    fn from_value(v: T) -> Option<T> {
        Some(v)
    }
    fn from_null() -> Option<Option<T>> {
        Some(None)
    }
}

impl<T, E> ReturnShape<Result<T, E>> for Res {
    type Value = T;
    const NULLABLE: bool = false;
    fn outcome(r: &Result<T, E>) -> Outcome<'_, T> {
        r.as_ref().map_or(Outcome::Failed, Outcome::Value)
    }
    fn from_value(v: T) -> Result<T, E> {
        Ok(v)
    }
    fn from_null() -> Option<Result<T, E>> {
        None
    }
}

impl<T, E> ReturnShape<Result<Option<T>, E>> for ResOpt {
    type Value = T;
    const NULLABLE: bool = true;
    fn outcome(r: &Result<Option<T>, E>) -> Outcome<'_, T> {
        match r {
            Ok(Some(v)) => Outcome::Value(v),
            Ok(None) => Outcome::Null,
            Err(_) => Outcome::Failed,
        }
    }
    fn from_value(v: T) -> Result<Option<T>, E> {
        Ok(Some(v))
    }
    fn from_null() -> Option<Result<Option<T>, E>> {
        Some(Ok(None))
    }
}

/// Whether a write succeeded, for `#[invalidates]`: `Ok(_)`, `Some(_)`, or
/// any value of an infallible body.
pub trait Succeeded<R> {
    /// `true` when the keys should be invalidated.
    fn succeeded(r: &R) -> bool;
}

impl<T> Succeeded<T> for Plain {
    fn succeeded(_: &T) -> bool {
        true
    }
}

impl<T> Succeeded<Option<T>> for Opt {
    fn succeeded(r: &Option<T>) -> bool {
        r.is_some()
    }
}

impl<T, E> Succeeded<Result<T, E>> for Res {
    fn succeeded(r: &Result<T, E>) -> bool {
        r.is_ok()
    }
}

impl<T, E> Succeeded<Result<Option<T>, E>> for ResOpt {
    fn succeeded(r: &Result<Option<T>, E>) -> bool {
        r.is_ok()
    }
}
