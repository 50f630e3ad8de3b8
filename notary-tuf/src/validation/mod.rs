//! Publish validation (Go `server/handlers/validation.go` + `tuf/builder.go` + `trustpinning`),
//! written once and used by the server, the importer and the tests (docs/wire-format.md §7–§8).
//!
//! The function is pure: it takes the uploaded files, the GUN's current stored files and the
//! time, and returns a [`Plan`]. Producing signatures for a server-generated snapshot or
//! timestamp needs the signing service, so the plan carries the canonical bodies to sign and the
//! role that must sign them; [`timestamp_body`] builds the timestamp once the snapshot bytes exist.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::metadata::{self as md, is_delegation, parent_role, FileMeta, SignedFile, Targets};
use crate::verify::{verify_signatures, BaseRole};
use crate::Error;

mod roles;

pub(crate) use roles::{
    base_role_from, cert_keys, parse_root_certs, parse_root_structure, parse_targets_structure,
};
use roles::{check_version_and_expiry, load_targets};
pub use roles::{load_root, parse_snapshot, parse_timestamp, LoadedRoot};

/// Largest version the Go SQL schemas can store (`integer` column).
pub const MAX_VERSION: i64 = i32::MAX as i64;

/// Validation failures, named as Go's `validation.SerializableError` names them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{0}")]
    /// No root to validate against (`ErrValidation`).
    Validation(String),
    #[error("{msg}")]
    /// A role the server must make but cannot (`ErrBadHierarchy`).
    BadHierarchy {
        /// The role that is missing.
        missing: String,
        /// Go's message.
        msg: String,
    },
    #[error("{0}")]
    /// A root problem (`ErrBadRoot`).
    BadRoot(String),
    #[error("{0}")]
    /// A targets or delegation problem (`ErrBadTargets`).
    BadTargets(String),
    #[error("{0}")]
    /// A snapshot problem (`ErrBadSnapshot`).
    BadSnapshot(String),
    /// Not a validation-type error in Go: `INVALID_UPDATE` without detail.
    #[error("{0}")]
    Other(String),
}

impl ValidationError {
    /// `{"Name":…,"Error":{…}}` as the Go client parses it, or None for `Other`.
    pub fn detail(&self) -> Option<serde_json::Value> {
        use serde_json::json;
        Some(match self {
            ValidationError::Validation(m) => json!({"Name": "ErrValidation", "Error": {"Msg": m}}),
            ValidationError::BadHierarchy { missing, msg } => {
                json!({"Name": "ErrBadHierarchy", "Error": {"Missing": missing, "Msg": msg}})
            }
            ValidationError::BadRoot(m) => json!({"Name": "ErrBadRoot", "Error": {"Msg": m}}),
            ValidationError::BadTargets(m) => json!({"Name": "ErrBadTargets", "Error": {"Msg": m}}),
            ValidationError::BadSnapshot(m) => {
                json!({"Name": "ErrBadSnapshot", "Error": {"Msg": m}})
            }
            ValidationError::Other(_) => return None,
        })
    }
}

/// A file to store: role, version and the exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The role.
    pub role: String,
    /// The version.
    pub version: i64,
    /// The exact bytes.
    pub data: Bytes,
}

/// The GUN's current stored files (role → bytes) that validation may need: root, snapshot,
/// timestamp, and the ancestors of uploaded delegations. See [`roles_needed`].
#[derive(Debug, Default, Clone)]
pub struct StoredRepo {
    /// Role → the current file's bytes.
    pub files: BTreeMap<String, Bytes>,
}

/// The stored roles validation reads for an upload of `uploaded` roles.
pub fn roles_needed<'a>(uploaded: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut need: BTreeSet<String> = [md::ROOT, md::SNAPSHOT, md::TIMESTAMP]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for role in uploaded {
        if role == md::TARGETS || is_delegation(role) {
            let mut r = role;
            while is_delegation(r) {
                r = parent_role(r);
                need.insert(r.to_string());
            }
        }
    }
    need
}

/// What the server must still sign.
#[derive(Debug, Clone)]
pub struct ToSign {
    /// The role and the keys that must sign it.
    pub role: BaseRole,
    /// The version it will have.
    pub version: i64,
    /// Canonical body; the signatures are over exactly these bytes.
    pub body: Vec<u8>,
}

/// What a valid publish stores, and what the server still signs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Validated uploads in storage order: root, targets (shallow first), uploaded snapshot.
    pub updates: Vec<Update>,
    /// Some when the server must generate the snapshot.
    pub snapshot: Option<ToSign>,
    /// The timestamp role of the root in force after this update.
    pub timestamp_role: BaseRole,
    /// The previous timestamp (for its version), if any.
    pub prev_timestamp_version: Option<i64>,
    /// The bytes of the uploaded snapshot, if the client sent one.
    pub uploaded_snapshot: Option<Bytes>,
}

/// Validate an upload. `uploads` maps role → parsed file; roles must already be valid role
/// names (the HTTP layer answers `INVALID_ROLE` otherwise). An uploaded timestamp is ignored.
pub fn validate_update(
    gun: &str,
    uploads: &BTreeMap<String, SignedFile>,
    stored: &StoredRepo,
    now: DateTime<Utc>,
) -> Result<Plan, ValidationError> {
    use ValidationError as E;
    let stored_file = |role: &str| -> Result<Option<SignedFile>, ValidationError> {
        stored
            .files
            .get(role)
            .map(|b| {
                SignedFile::parse_bytes(b.clone())
                    .map_err(|e| E::Other(format!("stored {role} is unreadable: {e}")))
            })
            .transpose()
    };
    let mut updates = Vec::new();

    // 1. The stored root, loaded as the trust anchor (expired metadata allowed).
    let stored_root = match stored_file(md::ROOT)? {
        Some(f) => {
            Some(load_root(gun, &f, None, 1, true, now).map_err(|e| E::Other(e.to_string()))?)
        }
        None => None,
    };

    // 2. An uploaded root: version current or current+1, signed by old and new root keys.
    let root = match uploads.get(md::ROOT) {
        Some(up) => {
            let cur = stored_root
                .as_ref()
                .map(|r| r.file.common.version)
                .unwrap_or(1);
            let v = up.common.version;
            if v != cur && v != cur + 1 {
                return Err(E::BadRoot(format!(
                    "Root modifications must increment the version. Current {cur}, new {v}"
                )));
            }
            let loaded = load_root(gun, up, stored_root.as_ref(), cur, false, now)
                .map_err(|e| E::BadRoot(e.to_string()))?;
            updates.push(Update {
                role: md::ROOT.into(),
                version: v,
                data: up.raw.clone(),
            });
            loaded
        }
        None => stored_root.ok_or_else(|| {
            E::Validation("no pre-existing root and no root provided in update.".into())
        })?,
    };

    // 3. Targets and delegations, shallow first; ancestors come from storage.
    let mut target_roles: Vec<&String> = uploads
        .keys()
        .filter(|r| *r == md::TARGETS || is_delegation(r))
        .collect();
    target_roles.sort_by_key(|r| (r.split('/').count(), r.to_string()));
    let mut loaded: BTreeMap<String, (Targets, Bytes)> = BTreeMap::new();
    for role in target_roles {
        let mut ancestors = Vec::new();
        let mut r = role.as_str();
        while is_delegation(r) {
            r = parent_role(r);
            ancestors.push(r);
        }
        for anc in ancestors.into_iter().rev() {
            if loaded.contains_key(anc) {
                continue;
            }
            if let Some(f) = stored_file(anc)? {
                let t = load_targets(anc, &f, &root, &loaded, true, now)
                    .map_err(|e| E::Other(e.to_string()))?;
                loaded.insert(anc.to_string(), (t, f.raw));
            }
        }
        let up = &uploads[role];
        let t = load_targets(role, up, &root, &loaded, false, now)
            .map_err(|e| E::BadTargets(e.to_string()))?;
        loaded.insert(role.clone(), (t, up.raw.clone()));
        updates.push(Update {
            role: role.clone(),
            version: up.common.version,
            data: up.raw.clone(),
        });
    }

    // 4. Snapshot: uploaded (checked against everything loaded) or generated by the server.
    let snapshot_role = root
        .base_role(md::SNAPSHOT)
        .map_err(|e| E::Validation(e.to_string()))?;
    let mut uploaded_snapshot = None;
    let snapshot = match uploads.get(md::SNAPSHOT) {
        Some(up) => {
            let check = || -> Result<(), Error> {
                verify_signatures(up, &snapshot_role)?;
                let body = parse_snapshot(up)?;
                check_version_and_expiry(up, md::SNAPSHOT, 1, false, now)?;
                let empty = FileMeta::default();
                body.meta
                    .get(md::ROOT)
                    .unwrap_or(&empty)
                    .check(&root.file.raw, md::ROOT)?;
                for (role, (_, raw)) in &loaded {
                    body.meta.get(role).unwrap_or(&empty).check(raw, role)?;
                }
                Ok(())
            };
            check().map_err(|e| E::BadSnapshot(e.to_string()))?;
            updates.push(Update {
                role: md::SNAPSHOT.into(),
                version: up.common.version,
                data: up.raw.clone(),
            });
            uploaded_snapshot = Some(up.raw.clone());
            None
        }
        None => {
            let prev = match stored_file(md::SNAPSHOT)? {
                Some(f) => Some((
                    parse_snapshot(&f).map_err(|e| E::Validation(e.to_string()))?,
                    f.common.version,
                )),
                None => None,
            };
            let (mut meta, version) = match prev {
                Some((body, v)) => (body.meta, v + 1),
                None => {
                    if !loaded.contains_key(md::TARGETS) {
                        return Err(E::Validation("targets must be loaded first".into()));
                    }
                    (BTreeMap::new(), 1)
                }
            };
            if version > MAX_VERSION {
                return Err(E::Validation(format!(
                    "snapshot version {version} is larger than the maximum {MAX_VERSION}"
                )));
            }
            meta.insert(md::ROOT.into(), FileMeta::of(&root.file.raw));
            for (role, (_, raw)) in &loaded {
                meta.insert(role.clone(), FileMeta::of(raw));
            }
            let expires = crate::time::snapshot_expiry(now);
            let body = md::meta_body("Snapshot", version, &expires, &meta)
                .map_err(|e| E::Validation(e.to_string()))?;
            Some(ToSign {
                role: snapshot_role,
                version,
                body,
            })
        }
    };

    // 5. The timestamp is always the server's; an uploaded one is ignored.
    let timestamp_role = root
        .base_role(md::TIMESTAMP)
        .map_err(|e| E::Validation(e.to_string()))?;
    let prev_timestamp_version = match stored_file(md::TIMESTAMP)? {
        Some(f) => {
            parse_timestamp(&f).map_err(|e| E::Validation(e.to_string()))?;
            Some(f.common.version)
        }
        None => None,
    };
    Ok(Plan {
        updates,
        snapshot,
        timestamp_role,
        prev_timestamp_version,
        uploaded_snapshot,
    })
}

/// The canonical body of the next timestamp over `snapshot_bytes`.
pub fn timestamp_body(
    prev_version: Option<i64>,
    snapshot_bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<(i64, Vec<u8>), ValidationError> {
    let version = prev_version.unwrap_or(0) + 1;
    if version > MAX_VERSION {
        return Err(ValidationError::Validation(format!(
            "timestamp version {version} is larger than the maximum {MAX_VERSION}"
        )));
    }
    let mut meta = BTreeMap::new();
    meta.insert(md::SNAPSHOT.to_string(), FileMeta::of(snapshot_bytes));
    let body = md::meta_body(
        "Timestamp",
        version,
        &crate::time::timestamp_expiry(now),
        &meta,
    )
    .map_err(|e| ValidationError::Validation(e.to_string()))?;
    Ok((version, body))
}

/// The snapshot to regenerate when the stored one has expired (GET path, docs/wire-format.md §7):
/// same meta, version+1, new expiry.
pub fn refreshed_snapshot(
    root: &LoadedRoot,
    prev: &SignedFile,
    now: DateTime<Utc>,
) -> Result<ToSign, Error> {
    let body = parse_snapshot(prev)?;
    let version = prev.common.version + 1;
    let expires = crate::time::snapshot_expiry(now);
    let body = md::meta_body("Snapshot", version, &expires, &body.meta)?;
    Ok(ToSign {
        role: root.base_role(md::SNAPSHOT)?,
        version,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_needed_includes_ancestors() {
        let n = roles_needed(["targets/a/b", "root"]);
        let v: Vec<&str> = n.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            v,
            vec!["root", "snapshot", "targets", "targets/a", "timestamp"]
        );
    }

    #[test]
    fn validation_error_details_have_go_names() {
        let e = ValidationError::BadHierarchy {
            missing: "snapshot".into(),
            msg: "m".into(),
        };
        assert_eq!(
            e.detail().unwrap().to_string(),
            r#"{"Error":{"Missing":"snapshot","Msg":"m"},"Name":"ErrBadHierarchy"}"#
        );
        assert!(ValidationError::Other("x".into()).detail().is_none());
    }
}
