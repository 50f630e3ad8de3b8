//! Each role's file checked as Go checks it: its common fields, structure, version, expiry and
//! signatures — the root (with its certificates and the GUN they must name), targets and
//! delegations, snapshot and timestamp.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::MAX_VERSION;
use crate::keys::{cert_bundle_to_key, load_cert_bundle, CertInfo, PublicKey};
use crate::metadata::{
    self as md, is_delegation, parent_role, MetaBody, Root, SignedFile, Targets,
};
use crate::verify::{verify_signatures, BaseRole};
use crate::Error;

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

pub(super) fn check_version_and_expiry(
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
    loaded: &BTreeMap<String, (Targets, Bytes)>,
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

pub(super) fn load_targets(
    role: &str,
    file: &SignedFile,
    root: &LoadedRoot,
    loaded: &BTreeMap<String, (Targets, Bytes)>,
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
