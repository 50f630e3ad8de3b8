//! What can go wrong in a repository operation, in the domain's words. The service never
//! speaks HTTP: `errors.rs` maps a [`ServiceError`] to Go's envelope and status once, at the
//! HTTP edge, and the operator commands print its cause chain.

use notary_signer::CryptoError;
use notary_tuf::validation::ValidationError;

use crate::storage::StoreError;

/// What went wrong in a repository operation.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such metadata, repository or version is stored.
    #[error("no such metadata is stored")]
    NotFound,
    /// An uploaded file, or a stored root a key request needs, is not JSON this server can
    /// read.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The update breaks a publish rule (wire-format.md §8); its detail goes to the client.
    #[error("invalid update: {0}")]
    Invalid(#[from] ValidationError),
    /// The stored chain cannot be re-signed by this server (its root in force cannot be used).
    #[error("the stored chain cannot be re-signed: {0}")]
    Unsignable(String),
    /// This instance serves reads only.
    #[error("this instance is read-only")]
    ReadOnly,
    /// A condition that passes by itself (this instance's changefeed checks are behind, the
    /// background key binding has not reached this repository yet): retry.
    #[error("temporarily unavailable: {0}")]
    NotYet(&'static str),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing service failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Stored data this server cannot read, or a state that should not occur: a bug or a
    /// damaged database, never the client's doing.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// An internal failure with its cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ServiceError::Internal(cause.to_string())
    }

    /// Whether retrying later may succeed without anyone changing anything: the database or
    /// the signing service is unreachable, or the condition passes by itself.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            ServiceError::NotYet(_) => true,
            ServiceError::Store(e) => matches!(
                e,
                StoreError::Unavailable(_) | StoreError::ReadOnly(_) | StoreError::Unacknowledged
            ),
            ServiceError::Crypto(e) => matches!(e, CryptoError::Unavailable(_)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_passes_by_itself_is_transient() {
        assert!(ServiceError::NotYet("x").is_transient());
        assert!(ServiceError::Store(StoreError::Unavailable("down".into())).is_transient());
        assert!(ServiceError::Crypto(CryptoError::Unavailable("down".into())).is_transient());
        assert!(!ServiceError::Crypto(CryptoError::Locked("pass".into())).is_transient());
        assert!(!ServiceError::Store(StoreError::OldVersion).is_transient());
        assert!(!ServiceError::NotFound.is_transient());
        assert!(!ServiceError::internal("bad").is_transient());
    }
}
