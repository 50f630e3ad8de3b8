//! Publish validation (Go `server/handlers/validation.go` + `tuf/builder.go` + `trustpinning`),
//! written once and used by the server, the importer and the tests (docs/wire-format.md §7–§8).
//!
//! The function is pure: it takes the uploaded files, the GUN's current stored files and the
//! time, and returns a [`Plan`]. Producing signatures for a server-generated snapshot or
//! timestamp needs the signing service, so the plan carries the canonical bodies to sign and the
//! role that must sign them; [`timestamp_body`] builds the timestamp once the snapshot bytes exist.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::keys::{cert_bundle_to_key, load_cert_bundle, CertInfo, PublicKey};
use crate::metadata::{
    self as md, is_delegation, parent_role, FileMeta, MetaBody, Root, SignedFile, Targets,
};
use crate::verify::{verify_signatures, BaseRole};
use crate::Error;

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
    pub data: Vec<u8>,
}

/// The GUN's current stored files (role → bytes) that validation may need: root, snapshot,
/// timestamp, and the ancestors of uploaded delegations. See [`roles_needed`].
#[derive(Debug, Default, Clone)]
pub struct StoredRepo {
    /// Role → the current file's bytes.
    pub files: BTreeMap<String, Vec<u8>>,
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
    pub uploaded_snapshot: Option<Vec<u8>>,
}

/// A root that passed Go's `ValidateRoot` for a GUN.
#[derive(Debug, Clone)]
pub struct LoadedRoot {
    /// The file as stored.
    pub file: SignedFile,
    /// Its body.
    pub root: Root,
}

impl LoadedRoot {
    /// Go `Root.BuildBaseRole`.
    pub fn base_role(&self, name: &str) -> Result<BaseRole, Error> {
        base_role_from(&self.root, name)
    }
}

pub(crate) fn base_role_from(root: &Root, name: &str) -> Result<BaseRole, Error> {
    let Some(Some(r)) = root.roles.get(name) else {
        return Err(Error::role(name, "role not found in root file"));
    };
    let mut keys = BTreeMap::new();
    for id in &r.keyids {
        match root.keys.get(id) {
            Some(k) => {
                keys.insert(id.clone(), k.clone());
            }
            None => {
                return Err(Error::role(
                    name,
                    format!("key {id} not found in root file"),
                ))
            }
        }
    }
    Ok(BaseRole {
        name: name.to_string(),
        keys,
        threshold: r.threshold,
    })
}

fn invalid_metadata(role: &str, msg: impl std::fmt::Display) -> Error {
    Error::metadata(role, msg)
}

fn check_common(file: &SignedFile, role: &str, type_: &str) -> Result<(), Error> {
    if file.common.type_ != type_ {
        return Err(invalid_metadata(
            role,
            format!("expected type {type_}, not {}", file.common.type_),
        ));
    }
    if file.common.version < 1 {
        return Err(invalid_metadata(role, "version cannot be less than one"));
    }
    if file.common.version > MAX_VERSION {
        return Err(invalid_metadata(
            role,
            format!(
                "version {} is larger than the maximum {MAX_VERSION}",
                file.common.version
            ),
        ));
    }
    Ok(())
}

fn check_version_and_expiry(
    file: &SignedFile,
    role: &str,
    min_version: i64,
    allow_expired: bool,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if file.common.version < min_version {
        return Err(Error::OldVersion {
            role: role.to_string(),
            version: file.common.version,
            current: min_version,
        });
    }
    if !allow_expired && file.expired(now) {
        return Err(Error::Expired {
            role: role.to_string(),
            expires: file.common.expires.to_rfc3339(),
        });
    }
    Ok(())
}

/// Go `isValidRootRoleStructure`.
fn check_role_keys(
    container: &str,
    role: &str,
    keyids: &[String],
    threshold: i64,
    keys: &BTreeMap<String, PublicKey>,
) -> Result<(), Error> {
    if threshold < 1 {
        return Err(invalid_metadata(
            container,
            format!("invalid threshold specified for {role}: {threshold} "),
        ));
    }
    for id in keyids {
        if !keys.contains_key(id) {
            return Err(invalid_metadata(
                container,
                format!("key ID {id} specified in {role} without corresponding key"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn parse_root_structure(file: &SignedFile) -> Result<Root, Error> {
    check_common(file, md::ROOT, "Root")?;
    let root: Root = file.body().map_err(|e| invalid_metadata(md::ROOT, e))?;
    for name in md::BASE_ROLES {
        match root.roles.get(name) {
            Some(Some(r)) => check_role_keys(md::ROOT, name, &r.keyids, r.threshold, &root.keys)?,
            _ => {
                return Err(invalid_metadata(
                    md::ROOT,
                    format!("missing {name} role specification"),
                ))
            }
        }
    }
    Ok(root)
}

pub(crate) struct RootCerts {
    leaves: BTreeMap<String, CertInfo>,
    intermediates: BTreeMap<String, Vec<CertInfo>>,
}

/// Go `parseAllCerts`: leaf and intermediates of every root-role key that is a cert bundle.
pub(crate) fn parse_root_certs(root: &Root) -> RootCerts {
    let mut leaves = BTreeMap::new();
    let mut intermediates = BTreeMap::new();
    let Some(Some(role)) = root.roles.get(md::ROOT) else {
        return RootCerts {
            leaves,
            intermediates,
        };
    };
    for id in &role.keyids {
        let Some(key) = root.keys.get(id) else {
            continue;
        };
        let Ok(certs) = load_cert_bundle(&key.public) else {
            continue;
        };
        let (leaf, ints): (Vec<CertInfo>, Vec<CertInfo>) =
            certs.into_iter().partition(|c| !c.is_ca);
        if leaf.len() != 1 {
            continue;
        }
        leaves.insert(id.clone(), leaf.into_iter().next().unwrap());
        intermediates.insert(id.clone(), ints);
    }
    RootCerts {
        leaves,
        intermediates,
    }
}

fn cn_matches(cn: Option<&str>, gun: &str) -> bool {
    match cn {
        Some(cn) if cn == gun => true,
        Some(cn) => cn
            .strip_suffix('*')
            .map(|p| gun.starts_with(p))
            .unwrap_or(false),
        None => false,
    }
}

/// Keys for signature checks rebuilt from the valid leaf certificates (Go `CertsToKeys`).
pub(crate) fn cert_keys(
    certs: &RootCerts,
    gun: &str,
    check_expiry: bool,
    now: i64,
) -> BTreeMap<String, PublicKey> {
    let mut out = BTreeMap::new();
    for (id, leaf) in &certs.leaves {
        if !cn_matches(leaf.common_name.as_deref(), gun)
            || leaf.validate(check_expiry, now).is_err()
        {
            continue;
        }
        let ints: Vec<CertInfo> = certs
            .intermediates
            .get(id)
            .into_iter()
            .flatten()
            .filter(|c| c.validate(true, now).is_ok())
            .cloned()
            .collect();
        if let Some(k) = cert_bundle_to_key(leaf, &ints) {
            out.insert(k.id(), k);
        }
    }
    out
}

/// Load a root for `gun` as Go's builder does with TOFU trust pinning and an optional previous
/// root (rotation: the new root must also satisfy the previous root's root role).
pub fn load_root(
    gun: &str,
    file: &SignedFile,
    prev: Option<&LoadedRoot>,
    min_version: i64,
    allow_expired: bool,
    now: DateTime<Utc>,
) -> Result<LoadedRoot, Error> {
    let root = parse_root_structure(file)?;
    let now_unix = now.timestamp();
    let keys = cert_keys(&parse_root_certs(&root), gun, true, now_unix);
    if keys.is_empty() {
        return Err(Error::NoTrustedLeaf);
    }
    if let Some(prev) = prev {
        let prev_keys = cert_keys(&parse_root_certs(&prev.root), gun, false, now_unix);
        let threshold = prev.root.role_threshold(md::ROOT).unwrap_or(1);
        verify_signatures(
            file,
            &BaseRole {
                name: md::ROOT.into(),
                keys: prev_keys,
                threshold,
            },
        )
        .map_err(Error::Rotation)?;
    }
    let threshold = root.role_threshold(md::ROOT).unwrap_or(0);
    verify_signatures(
        file,
        &BaseRole {
            name: md::ROOT.into(),
            keys,
            threshold,
        },
    )
    .map_err(Error::RootIntegrity)?;
    check_version_and_expiry(file, md::ROOT, min_version, allow_expired, now)?;
    Ok(LoadedRoot {
        file: file.clone(),
        root,
    })
}

/// Go `isValidTargetsStructure`.
pub(crate) fn parse_targets_structure(file: &SignedFile, role: &str) -> Result<Targets, Error> {
    check_common(file, role, "Targets")?;
    let t: Targets = file.body().map_err(|e| invalid_metadata(role, e))?;
    for d in &t.delegations.roles {
        if !is_delegation(&d.name) || parent_role(&d.name) != role {
            return Err(invalid_metadata(
                role,
                format!("delegation role {} invalid", d.name),
            ));
        }
        check_role_keys(role, &d.name, &d.keyids, d.threshold, &t.delegations.keys)?;
    }
    Ok(t)
}

/// The key set and threshold a delegation is verified with, found by walking down from
/// `targets` through loaded parents (Go `Repo.GetDelegationRole`).
fn delegation_role(
    name: &str,
    loaded: &BTreeMap<String, (Targets, Vec<u8>)>,
    now: i64,
) -> Result<BaseRole, Error> {
    let parent = parent_role(name);
    let Some((pt, _)) = loaded.get(parent) else {
        return Err(if parent == md::TARGETS {
            Error::TargetsNotLoaded
        } else {
            Error::role(name, format!("parent role {parent} not loaded"))
        });
    };
    let Some(d) = pt.delegations.roles.iter().find(|d| d.name == name) else {
        return Err(Error::role(name, "delegation does not exist"));
    };
    let mut keys = BTreeMap::new();
    for id in &d.keyids {
        let Some(k) = pt.delegations.keys.get(id) else {
            return Err(Error::role(name, "role lists unavailable keys"));
        };
        if matches!(
            k.keytype.as_str(),
            crate::keys::ECDSA_X509 | crate::keys::RSA_X509
        ) {
            if let Ok(certs) = load_cert_bundle(&k.public) {
                certs[0].validate(false, now)?;
            }
        }
        keys.insert(id.clone(), k.clone());
    }
    Ok(BaseRole {
        name: name.to_string(),
        keys,
        threshold: d.threshold,
    })
}

fn load_targets(
    role: &str,
    file: &SignedFile,
    root: &LoadedRoot,
    loaded: &BTreeMap<String, (Targets, Vec<u8>)>,
    allow_expired: bool,
    now: DateTime<Utc>,
) -> Result<Targets, Error> {
    let base = if role == md::TARGETS {
        root.base_role(md::TARGETS)?
    } else {
        delegation_role(role, loaded, now.timestamp())?
    };
    verify_signatures(file, &base)?;
    let t = parse_targets_structure(file, role)?;
    check_version_and_expiry(file, role, 1, allow_expired, now)?;
    Ok(t)
}

/// Go `IsValidSnapshotStructure` / `IsValidTimestampStructure`.
fn parse_meta_structure(
    file: &SignedFile,
    role: &str,
    type_: &str,
    required: &[&str],
) -> Result<MetaBody, Error> {
    check_common(file, role, type_)?;
    let body: MetaBody = file.body().map_err(|e| invalid_metadata(role, e))?;
    for r in required {
        let fm = body.meta.get(*r).cloned().unwrap_or_default();
        if !fm.hashes.contains_key("sha256") {
            return Err(invalid_metadata(
                role,
                format!("missing {r} sha256 checksum information"),
            ));
        }
        fm.check_hash_structure().map_err(|e| {
            invalid_metadata(role, format!("invalid {r} checksum information, {e}"))
        })?;
    }
    Ok(body)
}

/// A snapshot body, checked as Go checks one (`docs/wire-format.md` §3).
pub fn parse_snapshot(file: &SignedFile) -> Result<MetaBody, Error> {
    parse_meta_structure(file, md::SNAPSHOT, "Snapshot", &[md::ROOT, md::TARGETS])
}

/// A timestamp body, checked as Go checks one.
pub fn parse_timestamp(file: &SignedFile) -> Result<MetaBody, Error> {
    parse_meta_structure(file, md::TIMESTAMP, "Timestamp", &[md::SNAPSHOT])
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
                SignedFile::parse(b)
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
    let mut loaded: BTreeMap<String, (Targets, Vec<u8>)> = BTreeMap::new();
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
