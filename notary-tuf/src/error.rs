//! The crate's error: why metadata, a key or a certificate is not acceptable. The texts are
//! Go notary's (they reach clients inside `INVALID_UPDATE` details and the Go CLI prints them;
//! `docs/wire-format.md`), so each variant renders exactly Go's message. The publish
//! validation sorts these into Go's categories ([`crate::validation::ValidationError`]).
//!
//! The leaf errors of the other modules live here too (each module re-exports its own), so
//! that this module imports none of them: the crate's modules form no cycle through it.

/// Why metadata, a key or a certificate is not acceptable (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A file's structure (Go `ErrInvalidMetadata`): `role`'s file, and what is wrong with it.
    #[error("{role} type metadata invalid: {msg}")]
    Metadata {
        /// The role whose file it is.
        role: String,
        /// What is wrong.
        msg: String,
    },
    /// A role that cannot be built from its root or delegating role.
    #[error("tuf: invalid role {role}. {msg}")]
    Role {
        /// The role.
        role: String,
        /// Why it cannot be built.
        msg: String,
    },
    /// A delegation was checked before `targets` was loaded.
    #[error("targets must be loaded first")]
    TargetsNotLoaded,
    /// A file older than the version it must at least have.
    #[error("version {version} of {role} is lower than current version {current}")]
    OldVersion {
        /// The role.
        role: String,
        /// The file's version.
        version: i64,
        /// The lowest version allowed.
        current: i64,
    },
    /// A file past its `expires`.
    #[error("{role} expired at {expires}")]
    Expired {
        /// The role.
        role: String,
        /// Its `expires`, RFC 3339.
        expires: String,
    },
    /// A file whose digest differs from the one its referencing metadata gives.
    #[error("{alg} checksum for {name} did not match: expected {expected}")]
    ChecksumMismatch {
        /// `sha256` or `sha512`.
        alg: String,
        /// The role whose file it is.
        name: String,
        /// The expected digest, hex.
        expected: String,
    },
    /// Referencing metadata without a supported digest for a file.
    #[error("tuf: sha256 checksum required for {name}")]
    ChecksumMissing {
        /// The role whose file it is.
        name: String,
    },
    /// A digest of the wrong length.
    #[error("invalid {alg} checksum")]
    BadChecksum {
        /// `sha256` or `sha512`.
        alg: String,
    },
    /// FileMeta without a `sha256` or `sha512`.
    #[error("at least one supported hash needed")]
    NoSupportedHash,
    /// A file whose length differs from its referencing metadata's (Go checks only hashes; its
    /// clients also refuse this).
    #[error("length of {name} is {got}, the referencing metadata says {want}")]
    Length {
        /// The role whose file it is.
        name: String,
        /// The file's length.
        got: usize,
        /// The length the metadata gives.
        want: i64,
    },
    /// No root certificate valid for the GUN.
    #[error(
        "could not validate the path to a trusted root: unable to retrieve valid leaf certificates"
    )]
    NoTrustedLeaf,
    /// A new root not signed by the previous root's root role.
    #[error("could not rotate trust to a new trusted root: failed to validate data with current trusted certificates: {0}")]
    Rotation(VerifyError),
    /// A root not signed by its own root role.
    #[error("failed to validate integrity of roots: {0}")]
    RootIntegrity(VerifyError),
    /// A certificate bundle that is not PEM, or not DER inside.
    #[error("invalid certificate bundle: {0}")]
    CertBundle(String),
    /// A PEM block other than `CERTIFICATE` in a bundle.
    #[error("invalid pem block type: {0}")]
    PemType(String),
    /// A bundle without certificates.
    #[error("no certificates found in PEM data")]
    NoCertificates,
    /// A certificate whose not-before is after its not-after.
    #[error("certificate validity window is invalid")]
    CertWindow,
    /// A certificate signed with SHA-1.
    #[error("certificate uses a SHA1 signature algorithm")]
    CertSha1,
    /// An RSA key under 2048 bits.
    #[error("RSA bit length is too short")]
    RsaTooShort,
    /// A certificate's public key that cannot be read.
    #[error("{0}")]
    CertKey(String),
    /// An expired (or not yet valid) certificate.
    #[error("certificate with CN {cn} is expired")]
    CertExpired {
        /// The certificate's common name.
        cn: String,
    },
    /// Signatures that do not satisfy their role.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A body that cannot be written as canonical JSON.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// A file that does not parse.
    #[error("{0}")]
    Parse(String),
    /// A key that cannot be used.
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

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
/// Why a value cannot be written as Go-canonical JSON (`docs/wire-format.md` §2).
pub enum CanonicalError {
    #[error("canonical JSON: non-integer number {0}")]
    /// A number with a fraction.
    NonInteger(String),
    #[error("canonical JSON: number out of range {0}")]
    /// A number outside the 64-bit integers.
    OutOfRange(String),
    #[error("canonical JSON: control character in string")]
    /// A control character in a string (Go cannot write it).
    ControlCharacter,
    #[error("canonical JSON: invalid JSON: {0}")]
    /// Not JSON at all.
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
/// Why a key cannot be made or read.
pub enum KeyError {
    #[error("unsupported key algorithm {0}")]
    /// Not `ecdsa` or `ed25519`.
    UnsupportedAlgorithm(String),
    #[error("invalid private key bytes for {0}")]
    /// Bytes that are not a key of the algorithm.
    InvalidKey(String),
}

#[derive(Debug, thiserror::Error)]
/// Why a metadata file does not parse.
pub enum ParseError {
    #[error("malformed JSON: {0}")]
    /// Not JSON, or not the envelope of `docs/wire-format.md` §1.
    Json(String),
    #[error("{0}")]
    /// A body that cannot be written canonically.
    Canonical(#[from] CanonicalError),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
/// Why signatures do not satisfy a role (`docs/wire-format.md` §5).
pub enum VerifyError {
    #[error("tuf: data has no signatures")]
    /// No signature at all.
    NoSignatures,
    #[error("tuf: invalid threshold {0} for {1}")]
    /// A threshold below 1.
    InvalidThreshold(i64, String),
    #[error("tuf: {0}")]
    /// A body that cannot be written canonically.
    Canonical(String),
    #[error("key ID is not valid for key content")]
    /// A signature whose key ID does not match its key's content.
    InvalidKeyId,
    #[error("valid signatures did not meet threshold for {0}")]
    /// Fewer valid signatures than the threshold.
    Threshold(String),
}
