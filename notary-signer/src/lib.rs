//! notary-signer: the key stores and signing service behind notary-server.
//!
//! [`CryptoService`] is the one signing abstraction the server uses. In-process ("local") it is
//! a store used directly: the SQL store ([`sql::SqlKeyStore`], keys encrypted at rest in the
//! metadata database), or the memory store for `storage.backend = memory`; the gRPC client to
//! a remote notary-signer ([`remote`]) implements the same trait.

pub mod jwe;
pub mod listen;
pub mod memory;
pub mod passphrase;
pub mod sql;

use async_trait::async_trait;
use notary_tuf::validation::ToSign;
use notary_tuf::{PublicKey, Signature};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key {0} not found")]
    NotFound(String),
    #[error("unsupported key algorithm {0}")]
    Unsupported(String),
    #[error("signing service unavailable: {0}")]
    Unavailable(String),
    /// A stored key cannot be decrypted (its alias has no passphrase, or the wrong one): the
    /// operator must fix the passphrase configuration.
    #[error("{0}")]
    Locked(String),
    #[error("signing service error: {0}")]
    Internal(String),
    /// The signer's configuration is unusable (start-up only).
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] notary_common::tls::TlsError),
    #[error(transparent)]
    Db(#[from] notary_common::db::DbError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub public: PublicKey,
    pub role: String,
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
    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError>;
    /// Sign `msg` (the exact canonical bytes). `NotFound` if the key is not held.
    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError>;
    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError>;
    async fn health(&self) -> Result<(), CryptoError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SignRoleError {
    /// Fewer held keys than the role's threshold (Go `ErrInsufficientSignatures`/`ErrNoKeys`).
    #[error("insufficient signatures for {role}: signed with {got} of threshold {threshold}")]
    Insufficient {
        role: String,
        got: usize,
        threshold: i64,
    },
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
