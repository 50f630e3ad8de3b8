#![deny(missing_docs)]
//! notary-tuf: the pure (no I/O) TUF library of this Notary implementation, byte-compatible with
//! Docker Notary 0.7. Canonical JSON, key IDs, signature verification and signing, metadata
//! types that keep their raw bytes, and the publish validation shared by server, importer and tests.

pub mod builder;
pub mod cjson;
pub mod error;
pub mod history;
pub mod keys;
pub mod metadata;
pub mod time;
pub mod validation;
pub mod verify;

pub use error::Error;
pub use keys::{PrivateKey, PublicKey};
pub use metadata::{FileMeta, Signature, SignedFile};
