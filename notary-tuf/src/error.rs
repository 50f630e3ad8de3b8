//! The crate's error: why metadata, a key or a certificate is not acceptable. The texts are
//! Go notary's (they reach clients inside `INVALID_UPDATE` details and the Go CLI prints them;
//! `docs/wire-format.md`), so each variant renders exactly Go's message. The publish
//! validation sorts these into Go's categories ([`crate::validation::ValidationError`]).

use crate::cjson::CanonicalError;
use crate::keys::KeyError;
use crate::metadata::ParseError;
use crate::verify::VerifyError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A file's structure (Go `ErrInvalidMetadata`).
    #[error("{role} type metadata invalid: {msg}")]
    Metadata { role: String, msg: String },
    /// A role that cannot be built from its root or delegating role.
    #[error("tuf: invalid role {role}. {msg}")]
    Role { role: String, msg: String },
    #[error("targets must be loaded first")]
    TargetsNotLoaded,
    #[error("version {version} of {role} is lower than current version {current}")]
    OldVersion {
        role: String,
        version: i64,
        current: i64,
    },
    #[error("{role} expired at {expires}")]
    Expired { role: String, expires: String },
    #[error("{alg} checksum for {name} did not match: expected {expected}")]
    ChecksumMismatch {
        alg: String,
        name: String,
        expected: String,
    },
    #[error("tuf: sha256 checksum required for {name}")]
    ChecksumMissing { name: String },
    #[error("invalid {alg} checksum")]
    BadChecksum { alg: String },
    #[error("at least one supported hash needed")]
    NoSupportedHash,
    /// Go checks only hashes; its clients also refuse a wrong length.
    #[error("length of {name} is {got}, the referencing metadata says {want}")]
    Length { name: String, got: usize, want: i64 },
    #[error(
        "could not validate the path to a trusted root: unable to retrieve valid leaf certificates"
    )]
    NoTrustedLeaf,
    #[error("could not rotate trust to a new trusted root: failed to validate data with current trusted certificates: {0}")]
    Rotation(VerifyError),
    #[error("failed to validate integrity of roots: {0}")]
    RootIntegrity(VerifyError),
    #[error("invalid certificate bundle: {0}")]
    CertBundle(String),
    #[error("invalid pem block type: {0}")]
    PemType(String),
    #[error("no certificates found in PEM data")]
    NoCertificates,
    #[error("certificate validity window is invalid")]
    CertWindow,
    #[error("certificate uses a SHA1 signature algorithm")]
    CertSha1,
    #[error("RSA bit length is too short")]
    RsaTooShort,
    #[error("{0}")]
    CertKey(String),
    #[error("certificate with CN {cn} is expired")]
    CertExpired { cn: String },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Key(String),
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Parse(e.to_string())
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Key(e.to_string())
    }
}

impl Error {
    /// A structure error of `role`'s file.
    pub fn metadata(role: &str, msg: impl std::fmt::Display) -> Self {
        Error::Metadata {
            role: role.to_string(),
            msg: msg.to_string(),
        }
    }

    /// A role that cannot be built.
    pub fn role(role: &str, msg: impl std::fmt::Display) -> Self {
        Error::Role {
            role: role.to_string(),
            msg: msg.to_string(),
        }
    }
}
