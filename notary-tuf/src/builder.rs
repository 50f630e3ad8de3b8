//! Writing client-side metadata (root, targets, snapshot) the way the Go client does: used by
//! the benchmark tool and the tests to publish pre-signed metadata over raw HTTP.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::cjson::{self, CanonicalError};
use crate::keys::{PrivateKey, PublicKey};
use crate::metadata::{envelope, FileMeta, Signature};

/// A signer: the private key and the public key it is listed under in metadata (for a root key
/// that is the x509 certificate key, whose ID differs from the bare key's).
pub struct Signer<'a> {
    /// The private key that signs.
    pub key: &'a PrivateKey,
    /// The key the metadata lists it under (its ID names the signature).
    pub public: PublicKey,
}

impl<'a> Signer<'a> {
    /// A signer listed under its own public key (any key but a root certificate key).
    pub fn plain(key: &'a PrivateKey) -> Self {
        Signer {
            key,
            public: key.public_key(),
        }
    }
}

fn key_value(k: &PublicKey) -> Value {
    use base64::Engine;
    json!({"keytype": k.keytype, "keyval": {"private": null, "public": base64::engine::general_purpose::STANDARD.encode(&k.public)}})
}

/// Canonical body → signed file.
pub fn sign(body: &Value, signers: &[Signer]) -> Result<Vec<u8>, CanonicalError> {
    let canon = cjson::to_canonical(body)?;
    let sigs: Vec<Signature> = signers
        .iter()
        .map(|s| Signature {
            keyid: s.public.id(),
            method: s.key.method().into(),
            sig: s.key.sign(&canon),
        })
        .collect();
    Ok(envelope(&canon, &sigs))
}

/// A root body listing one key per base role, threshold 1.
pub fn root_body(
    root: &PublicKey,
    targets: &PublicKey,
    snapshot: &PublicKey,
    timestamp: &PublicKey,
    version: i64,
    expires: &DateTime<Utc>,
) -> Value {
    let mut keys = Map::new();
    let mut roles = Map::new();
    for (name, k) in [
        ("root", root),
        ("targets", targets),
        ("snapshot", snapshot),
        ("timestamp", timestamp),
    ] {
        keys.insert(k.id(), key_value(k));
        roles.insert(name.into(), json!({"keyids": [k.id()], "threshold": 1}));
    }
    json!({"_type": "Root", "consistent_snapshot": false, "expires": crate::time::format_go(expires), "keys": keys, "roles": roles, "version": version})
}

/// A delegation entry for a targets body: (name, keys, threshold, paths).
pub struct Delegation<'a> {
    /// The delegated role, `targets/…`.
    pub name: &'a str,
    /// Its keys.
    pub keys: Vec<PublicKey>,
    /// How many of them must sign.
    pub threshold: i64,
    /// The path prefixes it may sign for.
    pub paths: Vec<String>,
}

/// A targets body (canonical JSON) with these targets and delegations, `version` and `expires`.
pub fn targets_body(
    targets: &BTreeMap<String, FileMeta>,
    delegations: &[Delegation],
    version: i64,
    expires: &DateTime<Utc>,
) -> Value {
    let mut dkeys = Map::new();
    let mut droles = Vec::new();
    for d in delegations {
        for k in &d.keys {
            dkeys.insert(k.id(), key_value(k));
        }
        let mut r = json!({"keyids": d.keys.iter().map(PublicKey::id).collect::<Vec<_>>(), "name": d.name, "threshold": d.threshold});
        if !d.paths.is_empty() {
            r["paths"] = json!(d.paths);
        }
        droles.push(r);
    }
    let t: Map<String, Value> = targets
        .iter()
        .map(|(k, m)| (k.clone(), file_meta_value(m)))
        .collect();
    json!({"_type": "Targets", "delegations": {"keys": dkeys, "roles": droles}, "expires": crate::time::format_go(expires), "targets": t, "version": version})
}

fn file_meta_value(m: &FileMeta) -> Value {
    use base64::Engine;
    let hashes: Map<String, Value> = m
        .hashes
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    let mut v = json!({"hashes": hashes, "length": m.length});
    if let Some(c) = &m.custom {
        v["custom"] = c.clone();
    }
    v
}

/// A snapshot body over exact file bytes (role → bytes).
pub fn snapshot_body(files: &[(&str, &[u8])], version: i64, expires: &DateTime<Utc>) -> Value {
    let meta: Map<String, Value> = files
        .iter()
        .map(|(r, b)| (r.to_string(), file_meta_value(&FileMeta::of(b))))
        .collect();
    json!({"_type": "Snapshot", "expires": crate::time::format_go(expires), "meta": meta, "version": version})
}
