//! The error type of the programmatic API.

pub use crate::backend::BackendError;
pub use crate::envelope::{DecodeError, EncodeError};

/// An error of [`Cache`](crate::Cache)'s programmatic API. Annotated
/// functions never return it: for them cache failures fall back to the body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend failed, timed out or was skipped by the circuit breaker.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Backend(BackendError::Redis(e))
    }
}
