//! Verification of a repository's whole history before it is imported from another Notary
//! server or from a client's trust directory (`notary-server import`). Pure: it takes every
//! file found, by role and version, and says whether the set may be stored as it is.
//!
//! Invariants (tests in this module; end to end in `notary-tools/tests/import.rs`):
//! 1. Every file parses, has its role's `_type`, and carries the version it was found under
//!    (`rejects_a_file_under_the_wrong_version`).
//! 2. Root versions are contiguous. Each is signed to its threshold by its own root keys
//!    (certificates whose CN matches the GUN; certificate expiry is not held against history)
//!    and by the keys of the version before it (`verifies_a_rotated_root_chain`,
//!    `rejects_a_root_not_signed_by_its_predecessor`, `rejects_a_gap_in_the_root_chain`).
//! 3. The current chain — the newest timestamp, the snapshot it names, and the root, targets and
//!    delegations that snapshot names — matches by hash **and** length, and each file is signed
//!    by the keys the newest root (for delegations: the parent) gives its role
//!    (`rejects_a_tampered_targets_file`, `rejects_a_wrong_length`).
//! 4. Every older version is signed to threshold by the keys its role had in some version of the
//!    file that delegates it (a root version for base roles, a version of the parent for
//!    delegations) (`rejects_an_old_version_signed_by_a_stranger`).
//! 5. Expiry is reported ([`Verified::expired`]), never refused (`expired_history_is_reported`).
//! 6. Files are read one at a time through [`HistoryFiles`]; between steps only roots,
//!    delegations and the current chain's bodies are kept, so a history on disk is verified
//!    in memory of about one file (`files_loaded_on_demand_verify_alike`;
//!    `notary-tools/tests/hostile_import.rs::a_large_history_is_imported_in_bounded_memory`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::metadata::{
    self as md, is_delegation, parent_role, Delegations, FileMeta, Root, SignedFile, Targets,
};
use crate::validation::{
    base_role_from, cert_keys, parse_root_certs, parse_root_structure, parse_snapshot,
    parse_targets_structure,
};
use crate::validation::{parse_timestamp, MAX_VERSION};
use crate::verify::{verify_signatures, BaseRole};

/// Every file of one repository: role → version → exact bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct History {
    /// Role → version → the file's exact bytes.
    pub roles: BTreeMap<String, BTreeMap<i64, Vec<u8>>>,
}

impl History {
    /// Hold the file of `role` at `version`.
    pub fn insert(&mut self, role: &str, version: i64, bytes: Vec<u8>) {
        self.roles
            .entry(role.to_string())
            .or_default()
            .insert(version, bytes);
    }

    /// The file of `role` at `version`, if held.
    pub fn get(&self, role: &str, version: i64) -> Option<&[u8]> {
        self.roles.get(role)?.get(&version).map(Vec::as_slice)
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.roles.values().map(BTreeMap::len).sum()
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest version held of `role`.
    pub fn newest(&self, role: &str) -> Option<(i64, &[u8])> {
        self.roles
            .get(role)?
            .last_key_value()
            .map(|(v, b)| (*v, b.as_slice()))
    }

    /// The version of `role` whose bytes match `meta` (hashes and length), if one is held.
    pub fn matching(&self, role: &str, meta: &FileMeta) -> Option<(i64, &[u8])> {
        self.roles
            .get(role)?
            .iter()
            .rev()
            .find(|(_, b)| meta.check(b, role).is_ok())
            .map(|(v, b)| (*v, b.as_slice()))
    }
}

/// Why a history may not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("{role} version {version}: {msg}")]
    /// One file is wrong.
    File {
        /// Its role.
        role: String,
        /// Its version.
        version: i64,
        /// What is wrong with it.
        msg: String,
    },
    #[error("{0}")]
    /// The versions do not form a chain (a missing root version, two current chains…).
    Chain(String),
}

fn file_err(role: &str, version: i64, msg: impl std::fmt::Display) -> HistoryError {
    HistoryError::File {
        role: role.to_string(),
        version,
        msg: msg.to_string(),
    }
}

/// What a verified history holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The version of each role in the current chain (root, timestamp, snapshot, targets and
    /// the delegations the snapshot names).
    pub current: BTreeMap<String, i64>,
    /// The oldest root version held (1 unless the source had lost older ones).
    pub first_root: i64,
    /// When the current timestamp expires.
    pub timestamp_expires: DateTime<Utc>,
    /// Roles of the current chain that have expired.
    pub expired: Vec<String>,
    /// Key IDs the newest root lists for the timestamp role.
    pub timestamp_keys: Vec<String>,
    /// Key IDs the newest root lists for the snapshot role.
    pub snapshot_keys: Vec<String>,
    /// Things worth telling that do not stop the import.
    pub notes: Vec<String>,
}

/// The `_type` a role's files have.
fn expected_type(role: &str) -> &'static str {
    match role {
        md::ROOT => "Root",
        md::SNAPSHOT => "Snapshot",
        md::TIMESTAMP => "Timestamp",
        _ => "Targets",
    }
}

/// Where the files of a history are read from, one at a time: memory ([`History`]), or a
/// caller's store (the importer keeps them on disk, so that verifying holds about one file in
/// memory at a time, whatever the history's size; invariant 6).
pub trait HistoryFiles {
    /// Every role held, with its versions in ascending order.
    fn versions(&self) -> BTreeMap<String, Vec<i64>>;
    /// The exact bytes of one file the index lists.
    fn load(&self, role: &str, version: i64) -> Result<Cow<'_, [u8]>, HistoryError>;
}

impl HistoryFiles for History {
    fn versions(&self) -> BTreeMap<String, Vec<i64>> {
        self.roles
            .iter()
            .map(|(r, v)| (r.clone(), v.keys().copied().collect()))
            .collect()
    }

    fn load(&self, role: &str, version: i64) -> Result<Cow<'_, [u8]>, HistoryError> {
        self.get(role, version)
            .map(Cow::Borrowed)
            .ok_or_else(|| file_err(role, version, "not held"))
    }
}

/// What step 1 keeps of each file for the later steps (not its bytes).
struct Seen {
    expired: bool,
    /// A targets-type file's delegations (keys and roles), for its children's older versions.
    delegations: Option<Delegations>,
}

/// Verify `h` as the history of `gun` (see the module's invariants). Files are loaded one at a
/// time; what is kept between steps is small (roots, delegations, the current chain's bodies).
pub fn verify_history(
    gun: &str,
    h: &dyn HistoryFiles,
    now: DateTime<Utc>,
) -> Result<Verified, HistoryError> {
    let index = h.versions();
    let parse = |role: &str, v: i64| -> Result<SignedFile, HistoryError> {
        let raw = h.load(role, v)?;
        SignedFile::parse(&raw).map_err(|e| file_err(role, v, e))
    };
    // The newest version of `role` whose bytes match `meta` (hashes and length).
    let matching = |role: &str, meta: &FileMeta| -> Result<Option<i64>, HistoryError> {
        for v in index.get(role).into_iter().flatten().rev() {
            if meta.check(&h.load(role, *v)?, role).is_ok() {
                return Ok(Some(*v));
            }
        }
        Ok(None)
    };

    // 1. Every file.
    let mut seen: BTreeMap<&str, BTreeMap<i64, Seen>> = BTreeMap::new();
    for (role, versions) in &index {
        if !md::is_valid_role(role) {
            return Err(HistoryError::Chain(format!(
                "{role:?} is not a valid role name"
            )));
        }
        for v in versions {
            let f = parse(role, *v)?;
            if f.common.type_ != expected_type(role) {
                return Err(file_err(
                    role,
                    *v,
                    format!(
                        "expected type {}, not {:?}",
                        expected_type(role),
                        f.common.type_
                    ),
                ));
            }
            if f.common.version != *v || !(1..=MAX_VERSION).contains(v) {
                return Err(file_err(
                    role,
                    *v,
                    format!("the file says it is version {}", f.common.version),
                ));
            }
            let delegations = (expected_type(role) == "Targets")
                .then(|| f.body::<Targets>().ok().map(|t| t.delegations))
                .flatten();
            seen.entry(role.as_str()).or_default().insert(
                *v,
                Seen {
                    expired: f.expired(now),
                    delegations,
                },
            );
        }
    }
    let now_unix = now.timestamp();

    // 2. The root chain.
    let root_versions = index
        .get(md::ROOT)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| HistoryError::Chain("no root metadata".into()))?;
    let mut loaded_roots: Vec<(i64, Root)> = Vec::new();
    for v in root_versions {
        let f = parse(md::ROOT, *v)?;
        let root = parse_root_structure(&f).map_err(|e| file_err(md::ROOT, *v, e))?;
        let keys = cert_keys(&parse_root_certs(&root), gun, false, now_unix);
        if keys.is_empty() {
            return Err(file_err(
                md::ROOT,
                *v,
                format!("no root certificate issued for {gun}"),
            ));
        }
        let own = BaseRole {
            name: md::ROOT.into(),
            keys,
            threshold: root.role_threshold(md::ROOT).unwrap_or(0),
        };
        verify_signatures(&f, &own).map_err(|e| {
            file_err(
                md::ROOT,
                *v,
                format!("not signed by its own root keys: {e}"),
            )
        })?;
        if let Some((pv, prev)) = loaded_roots.last() {
            if *v != pv + 1 {
                return Err(HistoryError::Chain(format!(
                    "root version {} is missing: the chain from version {pv} to {v} cannot be verified",
                    pv + 1
                )));
            }
            let prev_keys = cert_keys(&parse_root_certs(prev), gun, false, now_unix);
            let by_prev = BaseRole {
                name: md::ROOT.into(),
                keys: prev_keys,
                threshold: prev.role_threshold(md::ROOT).unwrap_or(0),
            };
            verify_signatures(&f, &by_prev).map_err(|e| {
                file_err(
                    md::ROOT,
                    *v,
                    format!("not signed by the keys of root version {pv}: {e}"),
                )
            })?;
        }
        loaded_roots.push((*v, root));
    }
    let (root_version, root) = loaded_roots.last().expect("at least one root");
    let mut current = BTreeMap::from([(md::ROOT.to_string(), *root_version)]);

    // 3. The current chain.
    let base = |role: &str| {
        base_role_from(root, role).map_err(|e| HistoryError::Chain(format!("newest root: {e}")))
    };
    let tv = *index
        .get(md::TIMESTAMP)
        .and_then(|t| t.last())
        .ok_or_else(|| HistoryError::Chain("no timestamp metadata".into()))?;
    let ts = parse(md::TIMESTAMP, tv)?;
    verify_signatures(&ts, &base(md::TIMESTAMP)?).map_err(|e| file_err(md::TIMESTAMP, tv, e))?;
    let ts_body = parse_timestamp(&ts).map_err(|e| file_err(md::TIMESTAMP, tv, e))?;
    current.insert(md::TIMESTAMP.into(), tv);
    let snap_meta = ts_body.meta.get(md::SNAPSHOT).cloned().unwrap_or_default();
    let sv = matching(md::SNAPSHOT, &snap_meta)?.ok_or_else(|| {
        file_err(
            md::TIMESTAMP,
            tv,
            "the snapshot it names is missing, or its hashes or length do not match",
        )
    })?;
    let snap = parse(md::SNAPSHOT, sv)?;
    verify_signatures(&snap, &base(md::SNAPSHOT)?).map_err(|e| file_err(md::SNAPSHOT, sv, e))?;
    let snap_body = parse_snapshot(&snap).map_err(|e| file_err(md::SNAPSHOT, sv, e))?;
    current.insert(md::SNAPSHOT.into(), sv);
    snap_body
        .meta
        .get(md::ROOT)
        .unwrap_or(&FileMeta::default())
        .check(&h.load(md::ROOT, *root_version)?, md::ROOT)
        .map_err(|e| {
            file_err(
                md::SNAPSHOT,
                sv,
                format!("does not name root version {root_version}: {e}"),
            )
        })?;
    let targets_meta = snap_body.meta.get(md::TARGETS).cloned().unwrap_or_default();
    let tgv = matching(md::TARGETS, &targets_meta)?.ok_or_else(|| {
        file_err(
            md::SNAPSHOT,
            sv,
            "the targets file it names is missing, or its hashes or length do not match",
        )
    })?;
    let targets_file = parse(md::TARGETS, tgv)?;
    verify_signatures(&targets_file, &base(md::TARGETS)?)
        .map_err(|e| file_err(md::TARGETS, tgv, e))?;
    let targets = parse_targets_structure(&targets_file, md::TARGETS)
        .map_err(|e| file_err(md::TARGETS, tgv, e))?;
    drop(targets_file);
    current.insert(md::TARGETS.into(), tgv);
    // The delegations of each verified file of the current chain.
    let mut loaded: BTreeMap<String, Delegations> =
        BTreeMap::from([(md::TARGETS.to_string(), targets.delegations)]);
    let mut notes = Vec::new();
    let mut delegated: Vec<&String> = snap_body.meta.keys().filter(|r| is_delegation(r)).collect();
    delegated.sort_by_key(|r| (r.split('/').count(), r.to_string()));
    for role in delegated {
        let dv = matching(role, &snap_body.meta[role])?.ok_or_else(|| {
            file_err(
                md::SNAPSHOT,
                sv,
                format!(
                    "the {role} file it names is missing, or its hashes or length do not match"
                ),
            )
        })?;
        let Some(keys) = loaded
            .get(parent_role(role))
            .and_then(|p| delegation_keys(p, role))
        else {
            notes.push(format!(
                "{role} is named by the snapshot but no longer delegated; clients ignore it"
            ));
            current.insert(role.clone(), dv);
            continue;
        };
        let file = parse(role, dv)?;
        verify_signatures(&file, &keys).map_err(|e| file_err(role, dv, e))?;
        let t = parse_targets_structure(&file, role).map_err(|e| file_err(role, dv, e))?;
        loaded.insert(role.clone(), t.delegations);
        current.insert(role.clone(), dv);
    }

    // 4. Older versions: signed by the keys of some version of what delegates the role.
    for (role, versions) in &index {
        if role == md::ROOT {
            continue;
        }
        let candidates: Vec<BaseRole> = if is_delegation(role) {
            let parents = seen
                .get(parent_role(role))
                .into_iter()
                .flat_map(|p| p.values());
            dedup(
                parents
                    .filter_map(|p| p.delegations.as_ref())
                    .filter_map(|d| delegation_keys(d, role)),
            )
        } else {
            dedup(
                loaded_roots
                    .iter()
                    .filter_map(|(_, r)| base_role_from(r, role).ok()),
            )
        };
        for v in versions {
            let verified_with_chain =
                current.get(role) == Some(v) && (!is_delegation(role) || loaded.contains_key(role));
            if verified_with_chain {
                continue;
            }
            let f = parse(role, *v)?;
            if !candidates.iter().any(|c| verify_signatures(&f, c).is_ok()) {
                return Err(file_err(
                    role,
                    *v,
                    format!(
                        "not signed by the {role} keys of any version of {}",
                        delegator(role)
                    ),
                ));
            }
        }
    }

    // 5. Expiry: reported.
    let expired = current
        .iter()
        .filter(|(role, v)| seen[role.as_str()][*v].expired)
        .map(|(role, _)| role.clone())
        .collect();
    Ok(Verified {
        current,
        first_root: loaded_roots[0].0,
        timestamp_expires: ts.common.expires.with_timezone(&Utc),
        expired,
        timestamp_keys: root.role_keyids(md::TIMESTAMP),
        snapshot_keys: root.role_keyids(md::SNAPSHOT),
        notes,
    })
}

fn delegator(role: &str) -> &str {
    if is_delegation(role) {
        parent_role(role)
    } else {
        md::ROOT
    }
}

/// The keys and threshold the delegations `parent` gives the delegation `role`, if it
/// delegates it.
fn delegation_keys(parent: &Delegations, role: &str) -> Option<BaseRole> {
    let d = parent.roles.iter().find(|d| d.name == role)?;
    let keys = d
        .keyids
        .iter()
        .filter_map(|id| parent.keys.get(id).map(|k| (id.clone(), k.clone())))
        .collect();
    Some(BaseRole {
        name: role.to_string(),
        keys,
        threshold: d.threshold,
    })
}

/// Distinct key sets (by key IDs and threshold), first seen first.
fn dedup(roles: impl Iterator<Item = BaseRole>) -> Vec<BaseRole> {
    let mut out: Vec<BaseRole> = Vec::new();
    for r in roles {
        if !out
            .iter()
            .any(|o| o.threshold == r.threshold && o.keys.keys().eq(r.keys.keys()))
        {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{root_body, sign, snapshot_body, targets_body, Signer};
    use crate::keys::{PrivateKey, PublicKey};
    use chrono::Duration;

    const GUN: &str = "example.com/history";

    fn root_cert() -> (PrivateKey, PublicKey) {
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, GUN);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2120, 1, 1);
        let cert = p.self_signed(&kp).unwrap();
        (
            PrivateKey::from_go_bytes("ecdsa", &kp.serialize_der()).unwrap(),
            crate::keys::cert_key_from_der(cert.der()).unwrap(),
        )
    }

    /// A repository with two root versions (the root key rotated), two targets, snapshots and
    /// timestamps; `expires` for every role.
    struct Repo {
        roots: Vec<(PrivateKey, PublicKey)>,
        targets: PrivateKey,
        snapshot: PrivateKey,
        timestamp: PrivateKey,
        expires: DateTime<Utc>,
    }

    impl Repo {
        fn new(expires: DateTime<Utc>) -> Repo {
            let g = |a| PrivateKey::generate(a).unwrap();
            Repo {
                roots: vec![root_cert(), root_cert(), root_cert()],
                targets: g("ecdsa"),
                snapshot: g("ecdsa"),
                timestamp: g("ed25519"),
                expires,
            }
        }

        fn root(&self, v: i64, signers: &[usize]) -> Vec<u8> {
            let (_, public) = &self.roots[(v - 1) as usize];
            let body = root_body(
                public,
                &self.targets.public_key(),
                &self.snapshot.public_key(),
                &self.timestamp.public_key(),
                v,
                &self.expires,
            );
            let s: Vec<Signer> = signers
                .iter()
                .map(|i| Signer {
                    key: &self.roots[*i].0,
                    public: self.roots[*i].1.clone(),
                })
                .collect();
            sign(&body, &s).unwrap()
        }

        fn history(&self) -> History {
            let mut h = History::default();
            h.insert(md::ROOT, 1, self.root(1, &[0]));
            h.insert(md::ROOT, 2, self.root(2, &[0, 1]));
            for v in 1..=2 {
                let t = BTreeMap::from([(format!("t{v}"), FileMeta::of(b"content"))]);
                let targets = sign(
                    &targets_body(&t, &[], v, &self.expires),
                    &[Signer::plain(&self.targets)],
                )
                .unwrap();
                let root = h.get(md::ROOT, v).unwrap().to_vec();
                let snap = sign(
                    &snapshot_body(&[("root", &root), ("targets", &targets)], v, &self.expires),
                    &[Signer::plain(&self.snapshot)],
                )
                .unwrap();
                let ts = BTreeMap::from([(md::SNAPSHOT.to_string(), FileMeta::of(&snap))]);
                let ts = md::meta_body("Timestamp", v, &self.expires, &ts).unwrap();
                let ts = sign(
                    &serde_json::from_slice(&ts).unwrap(),
                    &[Signer::plain(&self.timestamp)],
                )
                .unwrap();
                h.insert(md::TARGETS, v, targets);
                h.insert(md::SNAPSHOT, v, snap);
                h.insert(md::TIMESTAMP, v, ts);
            }
            h
        }
    }

    fn later() -> DateTime<Utc> {
        Utc::now() + Duration::days(30)
    }

    /// Files handed out as owned copies, one load at a time, as a store on disk does.
    struct OnDemand<'a>(&'a History, std::cell::Cell<usize>);

    impl HistoryFiles for OnDemand<'_> {
        fn versions(&self) -> BTreeMap<String, Vec<i64>> {
            self.0.versions()
        }
        fn load(&self, role: &str, version: i64) -> Result<Cow<'_, [u8]>, HistoryError> {
            self.1.set(self.1.get() + 1);
            Ok(Cow::Owned(self.0.load(role, version)?.into_owned()))
        }
    }

    #[test]
    fn files_loaded_on_demand_verify_alike() {
        let r = Repo::new(later());
        let good = r.history();
        let mut tampered = r.history();
        let t = tampered
            .roles
            .get_mut(md::TARGETS)
            .unwrap()
            .get_mut(&1)
            .unwrap();
        let pos = t.windows(2).position(|w| w == b"t1").unwrap();
        t[pos + 1] = b'9';
        for h in [&good, &tampered] {
            let on_demand = OnDemand(h, Default::default());
            assert_eq!(
                verify_history(GUN, &on_demand, Utc::now()),
                verify_history(GUN, h, Utc::now())
            );
            assert!(on_demand.1.get() >= h.len(), "every file was read");
        }
        assert!(verify_history(GUN, &tampered, Utc::now()).is_err());
    }

    #[test]
    fn verifies_a_rotated_root_chain() {
        let v = verify_history(GUN, &Repo::new(later()).history(), Utc::now()).unwrap();
        assert_eq!(
            v.current.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2, 2]
        );
        assert_eq!(v.first_root, 1);
        assert!(v.expired.is_empty());
        assert_eq!(v.timestamp_keys.len(), 1);
    }

    #[test]
    fn rejects_a_root_not_signed_by_its_predecessor() {
        let r = Repo::new(later());
        let mut h = r.history();
        h.insert(md::ROOT, 2, r.root(2, &[1]));
        let e = verify_history(GUN, &h, Utc::now()).unwrap_err();
        assert!(
            e.to_string()
                .contains("root version 2: not signed by the keys of root version 1"),
            "{e}"
        );
    }

    #[test]
    fn rejects_a_gap_in_the_root_chain() {
        let r = Repo::new(later());
        let mut h = r.history();
        h.insert(md::ROOT, 3, r.root(3, &[1, 2]));
        h.roles.get_mut(md::ROOT).unwrap().remove(&2);
        let e = verify_history(GUN, &h, Utc::now()).unwrap_err();
        assert!(e.to_string().contains("root version 2 is missing"), "{e}");
    }

    #[test]
    fn rejects_a_tampered_targets_file() {
        let mut h = Repo::new(later()).history();
        let t = h.roles.get_mut(md::TARGETS).unwrap().get_mut(&2).unwrap();
        let pos = t.windows(2).position(|w| w == b"t2").unwrap();
        t[pos + 1] = b'3';
        let e = verify_history(GUN, &h, Utc::now()).unwrap_err();
        assert!(
            e.to_string()
                .contains("the targets file it names is missing"),
            "{e}"
        );
    }

    #[test]
    fn rejects_a_wrong_length() {
        let r = Repo::new(later());
        let mut h = r.history();
        // A timestamp naming the right snapshot hashes with a wrong length.
        let snap = h.get(md::SNAPSHOT, 2).unwrap().to_vec();
        let mut meta = FileMeta::of(&snap);
        meta.length = 1;
        let ts = md::meta_body(
            "Timestamp",
            2,
            &r.expires,
            &BTreeMap::from([(md::SNAPSHOT.to_string(), meta)]),
        )
        .unwrap();
        h.insert(
            md::TIMESTAMP,
            2,
            sign(
                &serde_json::from_slice(&ts).unwrap(),
                &[Signer::plain(&r.timestamp)],
            )
            .unwrap(),
        );
        let e = verify_history(GUN, &h, Utc::now()).unwrap_err();
        assert!(
            e.to_string()
                .contains("timestamp version 2: the snapshot it names is missing"),
            "{e}"
        );
    }

    #[test]
    fn rejects_an_old_version_signed_by_a_stranger() {
        let r = Repo::new(later());
        let mut h = r.history();
        let stranger = PrivateKey::generate("ecdsa").unwrap();
        let t = BTreeMap::from([("evil".to_string(), FileMeta::of(b"evil"))]);
        h.insert(
            md::TARGETS,
            1,
            sign(
                &targets_body(&t, &[], 1, &r.expires),
                &[Signer::plain(&stranger)],
            )
            .unwrap(),
        );
        let e = verify_history(GUN, &h, Utc::now()).unwrap_err();
        assert!(
            e.to_string().contains(
                "targets version 1: not signed by the targets keys of any version of root"
            ),
            "{e}"
        );
    }

    #[test]
    fn rejects_a_file_under_the_wrong_version() {
        let mut h = Repo::new(later()).history();
        let one = h.get(md::SNAPSHOT, 1).unwrap().to_vec();
        h.insert(md::SNAPSHOT, 7, one);
        let e = verify_history(GUN, &h, Utc::now()).unwrap_err();
        assert_eq!(
            e,
            file_err(md::SNAPSHOT, 7, "the file says it is version 1")
        );
    }

    #[test]
    fn expired_history_is_reported() {
        let v = verify_history(
            GUN,
            &Repo::new(Utc::now() - Duration::days(1)).history(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(v.expired, vec!["root", "snapshot", "targets", "timestamp"]);
    }
}
