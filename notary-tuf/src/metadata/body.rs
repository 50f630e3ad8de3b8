//! The typed bodies of the four roles and delegations, as Notary 0.7 writes them, and the
//! envelope a signed body goes in.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256, Sha512};

use super::{b64_bytes, b64_map, nullable, Signature};
use crate::cjson::{self, CanonicalError};
use crate::keys::PublicKey;

#[derive(Deserialize)]
struct KeyJson {
    #[serde(default, deserialize_with = "nullable")]
    keytype: String,
    #[serde(default, deserialize_with = "nullable")]
    keyval: KeyValJson,
}
#[derive(Deserialize, Default)]
struct KeyValJson {
    #[serde(default, deserialize_with = "b64_bytes")]
    public: Vec<u8>,
}

fn key_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, PublicKey>, D::Error> {
    let m: Option<BTreeMap<String, KeyJson>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(id, k)| (id, PublicKey::new(k.keytype, k.keyval.public)))
        .collect())
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
/// What referencing metadata says of a file (`snapshot`/`timestamp` `meta`, `targets`).
pub struct FileMeta {
    #[serde(default, deserialize_with = "nullable")]
    /// Its length in bytes.
    pub length: i64,
    #[serde(default, deserialize_with = "b64_map")]
    /// Algorithm (`sha256`, `sha512`) → digest.
    pub hashes: BTreeMap<String, Vec<u8>>,
    #[serde(default)]
    /// Anything else a target carries, kept as given.
    pub custom: Option<Value>,
}

impl FileMeta {
    /// Length and sha256+sha512 over exact bytes (Go `NewFileMeta` with the notary hashes).
    pub fn of(bytes: &[u8]) -> Self {
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".to_string(), Sha256::digest(bytes).to_vec());
        hashes.insert("sha512".to_string(), Sha512::digest(bytes).to_vec());
        FileMeta {
            length: bytes.len() as i64,
            hashes,
            custom: None,
        }
    }

    /// The SHA-256 digest in hex, if given.
    pub fn sha256_hex(&self) -> Option<String> {
        self.hashes.get("sha256").map(hex::encode)
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        if let Some(c) = &self.custom {
            if !c.is_null() {
                m.insert("custom".into(), c.clone());
            }
        }
        let hashes: Map<String, Value> = self
            .hashes
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(B64.encode(v))))
            .collect();
        m.insert("hashes".into(), Value::Object(hashes));
        m.insert("length".into(), json!(self.length));
        Value::Object(m)
    }

    /// Go `CheckValidHashStructures`.
    pub fn check_hash_structure(&self) -> Result<(), crate::Error> {
        let mut supported = 0;
        for (alg, v) in &self.hashes {
            let want = match alg.as_str() {
                "sha256" => 32,
                "sha512" => 64,
                _ => continue,
            };
            if v.len() != want {
                return Err(crate::Error::BadChecksum { alg: alg.clone() });
            }
            supported += 1;
        }
        if supported == 0 {
            return Err(crate::Error::NoSupportedHash);
        }
        Ok(())
    }

    /// [`FileMeta::check_hashes`] and the length: Go checks only the hashes, but its clients
    /// refuse a file whose length differs from what the snapshot or timestamp says.
    pub fn check(&self, payload: &[u8], name: &str) -> Result<(), crate::Error> {
        self.check_hashes(payload, name)?;
        if self.length != payload.len() as i64 {
            return Err(crate::Error::Length {
                name: name.to_string(),
                got: payload.len(),
                want: self.length,
            });
        }
        Ok(())
    }

    /// Go `data.CheckHashes`: every supported hash present must match; at least one must exist.
    pub fn check_hashes(&self, payload: &[u8], name: &str) -> Result<(), crate::Error> {
        let mut count = 0;
        for (alg, want) in &self.hashes {
            let got = match alg.as_str() {
                "sha256" => Sha256::digest(payload).to_vec(),
                "sha512" => Sha512::digest(payload).to_vec(),
                _ => continue,
            };
            if !subtle_eq(&got, want) {
                return Err(crate::Error::ChecksumMismatch {
                    alg: alg.clone(),
                    name: name.to_string(),
                    expected: hex::encode(want),
                });
            }
            count += 1;
        }
        if count == 0 {
            return Err(crate::Error::ChecksumMissing {
                name: name.to_string(),
            });
        }
        Ok(())
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, Default, Deserialize)]
/// The keys of one role in a root.
pub struct RoleKeys {
    #[serde(default, deserialize_with = "nullable")]
    /// Key IDs from the root's `keys`.
    pub keyids: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    /// How many of them must sign.
    pub threshold: i64,
}

#[derive(Debug, Clone, Deserialize)]
/// A root body.
pub struct Root {
    #[serde(default, deserialize_with = "key_map")]
    /// Key ID → key.
    pub keys: BTreeMap<String, PublicKey>,
    #[serde(default, deserialize_with = "nullable")]
    /// Role → its keys (`None`: written as `null`).
    pub roles: BTreeMap<String, Option<RoleKeys>>,
}

impl Root {
    /// The key IDs the root lists for `role` (none if it has no such role).
    pub fn role_keyids(&self, role: &str) -> Vec<String> {
        self.roles
            .get(role)
            .cloned()
            .flatten()
            .map(|r| r.keyids)
            .unwrap_or_default()
    }

    /// The threshold the root sets for `role`, if it has such a role.
    pub fn role_threshold(&self, role: &str) -> Option<i64> {
        self.roles.get(role).cloned().flatten().map(|r| r.threshold)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
/// A delegated role as its parent lists it.
pub struct DelegationRole {
    #[serde(default, deserialize_with = "nullable")]
    /// `targets/…`.
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    /// Key IDs from the parent's `delegations.keys`.
    pub keyids: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    /// How many of them must sign.
    pub threshold: i64,
    #[serde(default, deserialize_with = "nullable")]
    /// Path prefixes it may sign for.
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
/// The delegations of a targets file.
pub struct Delegations {
    #[serde(default, deserialize_with = "key_map")]
    /// Key ID → key.
    pub keys: BTreeMap<String, PublicKey>,
    #[serde(default, deserialize_with = "nullable")]
    /// The delegated roles.
    pub roles: Vec<DelegationRole>,
}

#[derive(Debug, Clone, Deserialize)]
/// A targets body (top role or delegation).
pub struct Targets {
    #[serde(default, deserialize_with = "nullable")]
    /// The targets, checked and counted ([`TargetList`]).
    pub targets: TargetList,
    #[serde(default, deserialize_with = "nullable")]
    /// Its delegations.
    pub delegations: Delegations,
}

/// The `targets` of a targets body: every entry checked as a [`FileMeta`] is (Go's decoder
/// refuses the same ones), then counted and dropped. Neither the server nor the tools read a
/// target, and a map of 20 000 of them cost more than parsing the whole upload (issue 32:
/// docs/performance.md); a target's `custom` is skipped, not built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetList {
    /// Entries in the list (a repeated name counted each time it is written).
    pub entries: usize,
}

impl<'de> Deserialize<'de> for TargetList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = CheckedMap::<CheckedFileMeta>::deserialize(d)?;
        Ok(TargetList {
            entries: list.members,
        })
    }
}

/// A [`FileMeta`] read for its errors only: the same fields, types and base64, nothing kept.
#[derive(Deserialize)]
struct CheckedFileMeta {
    #[serde(default, rename = "length", deserialize_with = "nullable")]
    _length: i64,
    /// Read as [`FileMeta`]'s `hashes` are: base64 strings or nulls.
    #[serde(default, rename = "hashes")]
    _hashes: Option<CheckedMap<Option<CheckedBase64>>>,
    #[serde(default, rename = "custom")]
    _custom: Option<IgnoredAny>,
}

/// A JSON object read for its errors only: keys skipped, each value read as `V` and dropped.
struct CheckedMap<V> {
    /// How many members it had.
    members: usize,
    value: std::marker::PhantomData<V>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for CheckedMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = CheckedMap<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<CheckedMap<T>, A::Error> {
                let mut members = 0;
                while m.next_key::<IgnoredAny>()?.is_some() {
                    m.next_value::<T>()?;
                    members += 1;
                }
                Ok(CheckedMap {
                    members,
                    value: self.0,
                })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A base64 string decoded where it lies (a digest fits on the stack), for its errors only.
struct CheckedBase64;

impl<'de> Deserialize<'de> for CheckedBase64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CheckedBase64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<CheckedBase64, E> {
                let mut digest = [0u8; 96];
                match B64.decode_slice(s, &mut digest) {
                    Ok(_) => Ok(CheckedBase64),
                    Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                        B64.decode(s).map(|_| CheckedBase64).map_err(E::custom)
                    }
                    Err(base64::DecodeSliceError::DecodeError(e)) => Err(E::custom(e)),
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// Snapshot and timestamp bodies share this shape: `meta` maps a role to its FileMeta.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaBody {
    #[serde(default, deserialize_with = "nullable")]
    /// Role → what its file is.
    pub meta: BTreeMap<String, FileMeta>,
}

// ---------------------------------------------------------------------------------------------
// Writing server-generated files

/// Canonical body of a snapshot or timestamp (`_type` is `Snapshot` or `Timestamp`).
pub fn meta_body(
    type_: &str,
    version: i64,
    expires: &DateTime<Utc>,
    meta: &BTreeMap<String, FileMeta>,
) -> Result<Vec<u8>, CanonicalError> {
    let meta: Map<String, Value> = meta
        .iter()
        .map(|(k, v)| (k.clone(), v.to_value()))
        .collect();
    let body = json!({
        "_type": type_,
        "expires": crate::time::format_go(expires),
        "meta": meta,
        "version": version,
    });
    cjson::to_canonical(&body)
}

/// The file Go writes: `{"signed":<body, HTML-escaped>,"signatures":[{"keyid","method","sig"}]}`.
pub fn envelope(canonical_body: &[u8], signatures: &[Signature]) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical_body.len() + 160 * signatures.len() + 32);
    out.extend_from_slice(b"{\"signed\":");
    out.extend_from_slice(&cjson::html_escape(canonical_body));
    out.extend_from_slice(b",\"signatures\":[");
    for (i, s) in signatures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // keyid and method are hex / lowercase ASCII chosen by us; JSON-encode them anyway.
        out.extend_from_slice(b"{\"keyid\":");
        out.extend_from_slice(serde_json::to_string(&s.keyid).unwrap().as_bytes());
        out.extend_from_slice(b",\"method\":");
        out.extend_from_slice(serde_json::to_string(&s.method).unwrap().as_bytes());
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(B64.encode(&s.sig).as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    out
}
