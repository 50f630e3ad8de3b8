//! Go `signed.VerifySignatures`: threshold of distinct valid keys over the re-canonicalised body
//! (docs/wire-format.md §5).

use std::collections::{BTreeMap, BTreeSet};

use crate::keys::PublicKey;
use crate::metadata::SignedFile;

/// A role's trusted keys and threshold (Go `data.BaseRole`).
#[derive(Debug, Clone)]
pub struct BaseRole {
    /// The role's name (for messages).
    pub name: String,
    /// Key ID → key.
    pub keys: BTreeMap<String, PublicKey>,
    /// How many distinct keys must sign.
    pub threshold: i64,
}

pub use crate::error::VerifyError;

/// Check that the signatures of `file` satisfy `role`.
pub fn verify_signatures(file: &SignedFile, role: &BaseRole) -> Result<(), VerifyError> {
    if file.signatures.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    if role.threshold < 1 {
        return Err(VerifyError::InvalidThreshold(
            role.threshold,
            role.name.clone(),
        ));
    }
    let msg = file
        .canonical_body()
        .map_err(|e| VerifyError::Canonical(e.to_string()))?;
    let mut valid = BTreeSet::new();
    for sig in &file.signatures {
        let Some(key) = role.keys.get(&sig.keyid) else {
            continue;
        };
        if key.id() != sig.keyid {
            return Err(VerifyError::InvalidKeyId);
        }
        if key.verify(&sig.method, msg, &sig.sig) {
            valid.insert(sig.keyid.as_str());
        }
    }
    if (valid.len() as i64) < role.threshold {
        return Err(VerifyError::Threshold(role.name.clone()));
    }
    Ok(())
}
