//! notary-signer: the key stores and signing service behind notary-server.
//!
//! [`CryptoService`] is the one signing abstraction the server uses. In-process ("local") it is
//! a store used directly: the SQL store ([`sql::SqlKeyStore`], keys encrypted at rest in the
//! metadata database), or the memory store for `storage.backend = memory`; the gRPC client to
//! a remote notary-signer ([`remote`]) implements the same trait.

#![warn(missing_docs)]

pub mod jwe;
pub mod kms;
pub mod listen;
pub mod memory;
pub mod migrating;
pub mod passphrase;
pub mod sql;
pub mod stores;

use async_trait::async_trait;
use notary_tuf::validation::ToSign;
use notary_tuf::{PublicKey, Signature};

/// What a signing operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// No key with that ID is held.
    #[error("key {0} not found")]
    NotFound(String),
    /// A key algorithm this store does not make or use.
    #[error("unsupported key algorithm {0}")]
    Unsupported(String),
    /// The signing service or its key store cannot be reached now: worth retrying.
    #[error("signing service unavailable: {0}")]
    Unavailable(String),
    /// A stored key cannot be decrypted (its alias has no passphrase, or the wrong one): the
    /// operator must fix the passphrase configuration.
    #[error("{0}")]
    Locked(String),
    /// Anything else, with its cause.
    #[error("signing service error: {0}")]
    Internal(String),
    /// The signer's configuration is unusable (start-up only).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// TLS files of the service or its client are unusable.
    #[error(transparent)]
    Tls(#[from] notary_common::tls::TlsError),
    /// The key database cannot be opened.
    #[error(transparent)]
    Db(#[from] notary_common::db::DbError),
}

/// A held key and what it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The public key.
    pub public: PublicKey,
    /// The role it was made for (empty: unknown, as for some Go-made keys).
    pub role: String,
    /// The GUN it was made for (empty: unknown).
    pub gun: String,
}

/// The operations notary-server needs from a signer (Go `signed.CryptoService` as used by the
/// server, and the gRPC `KeyManagement` + `Signer` services).
#[async_trait]
pub trait CryptoService: Send + Sync {
    /// Create a key for (role, gun); a never-used key for the same triple is handed out again.
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError>;
    /// The key with this ID and what it was made for, if held.
    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError>;
    /// Sign `msg` (the exact canonical bytes). `NotFound` if the key is not held.
    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError>;
    /// Remove a key (no error if it was not held).
    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError>;
    /// Whether the store can sign now (its database or token answers).
    async fn health(&self) -> Result<(), CryptoError>;
}

/// Why a role's body could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignRoleError {
    /// Fewer held keys than the role's threshold (Go `ErrInsufficientSignatures`/`ErrNoKeys`).
    #[error("insufficient signatures for {role}: signed with {got} of threshold {threshold}")]
    Insufficient {
        /// The role.
        role: String,
        /// Signatures made.
        got: usize,
        /// Signatures needed.
        threshold: i64,
    },
    /// The signing service failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Sign a body with every key of the role the service holds (Go `signed.Sign`); at least the
/// role's threshold must sign.
pub async fn sign_role(
    crypto: &dyn CryptoService,
    to_sign: &ToSign,
) -> Result<Vec<Signature>, SignRoleError> {
    let mut sigs = Vec::new();
    for key_id in to_sign.role.keys.keys() {
        match crypto.sign(key_id, &to_sign.body).await {
            Ok(s) => sigs.push(s),
            Err(CryptoError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if sigs.is_empty() || (sigs.len() as i64) < to_sign.role.threshold {
        return Err(SignRoleError::Insufficient {
            role: to_sign.role.name.clone(),
            got: sigs.len(),
            threshold: to_sign.role.threshold,
        });
    }
    Ok(sigs)
}

/// Sign with a private key and describe the result as a TUF signature.
pub(crate) fn tuf_signature(key_id: &str, key: &notary_tuf::PrivateKey, msg: &[u8]) -> Signature {
    Signature {
        keyid: key_id.to_string(),
        method: key.method().to_string(),
        sig: key.sign(msg),
    }
}

pub(crate) fn check_algorithm(algorithm: &str) -> Result<(), CryptoError> {
    match algorithm {
        notary_tuf::keys::ECDSA | notary_tuf::keys::ED25519 => Ok(()),
        other => Err(CryptoError::Unsupported(other.to_string())),
    }
}

pub mod config;
pub mod grpc;
pub mod pkcs11;
pub mod remote;
pub mod service;
