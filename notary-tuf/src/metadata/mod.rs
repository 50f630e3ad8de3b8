//! TUF metadata as Notary 0.7 writes it (docs/wire-format.md §1–§3). Parsed files keep the exact bytes
//! they came from: hashes and lengths are always computed over those bytes.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::cjson::{self, CanonicalError};

mod body;

pub use body::{
    envelope, meta_body, DelegationRole, Delegations, FileMeta, MetaBody, RoleKeys, Root,
    TargetList, Targets,
};

/// The root role.
pub const ROOT: &str = "root";
/// The top targets role.
pub const TARGETS: &str = "targets";
/// The snapshot role.
pub const SNAPSHOT: &str = "snapshot";
/// The timestamp role.
pub const TIMESTAMP: &str = "timestamp";
/// The four roles every root must list.
pub const BASE_ROLES: [&str; 4] = [ROOT, TARGETS, SNAPSHOT, TIMESTAMP];

/// Go `data.IsDelegation`.
pub fn is_delegation(role: &str) -> bool {
    role.len() < 256
        && role.starts_with("targets/")
        && role
            .bytes()
            .all(|b| matches!(b, b'-' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'/'))
        && is_clean_path(role)
}

/// Go `data.ValidRole`: a base role or a delegation.
pub fn is_valid_role(role: &str) -> bool {
    BASE_ROLES.contains(&role) || is_delegation(role)
}

/// `path.Clean(p) == p` for the character set delegations allow (no `.` can occur).
fn is_clean_path(p: &str) -> bool {
    !p.is_empty() && !p.ends_with('/') && !p.contains("//") && !p.starts_with('/')
}

/// `path.Dir` for role names.
pub fn parent_role(role: &str) -> &str {
    match role.rfind('/') {
        Some(i) => &role[..i],
        None => ".",
    }
}

pub use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
/// One signature of a file.
pub struct Signature {
    /// The key it claims, by TUF key ID.
    pub keyid: String,
    /// Lower-cased on parse, as Go does.
    pub method: String,
    /// The signature bytes (base64 in the file).
    pub sig: Vec<u8>,
}

/// The fields every role body has (Go `SignedCommon`).
#[derive(Debug, Clone)]
pub struct Common {
    /// `_type`.
    pub type_: String,
    /// `expires`.
    pub expires: DateTime<FixedOffset>,
    /// `version`.
    pub version: i64,
}

/// A whole metadata file: raw bytes, the `signed` body, and its signatures.
#[derive(Debug, Clone)]
pub struct SignedFile {
    /// The exact bytes as received or stored (shared, not copied, by what keeps them).
    pub raw: Bytes,
    /// The `signed` body.
    body: Body,
    /// The signatures.
    pub signatures: Vec<Signature>,
    /// The fields every role has.
    pub common: Common,
}

/// The `signed` body, in the cheaper of two forms (docs/wire-format.md §2).
#[derive(Debug, Clone)]
enum Body {
    /// Written exactly as Go re-canonicalises it (as Go clients and this server sign): these
    /// bytes of `raw` are the message signatures cover, and typed bodies are read from them. A
    /// canonical body has no duplicate keys, so reading it typed or through a generic tree gives
    /// the same result.
    Canonical(std::ops::Range<usize>),
    /// Anything else (whitespace, escapes, unsorted or duplicate keys …): Go's generic view
    /// (`map[string]interface{}`, last duplicate wins) and the canonical bytes written from it.
    Generic {
        value: Value,
        canonical: Result<Vec<u8>, CanonicalError>,
    },
}

impl SignedFile {
    /// Decode `{signed:{_type,expires,version,…},signatures:[…]}`; anything else is malformed
    /// (the server answers `MALFORMED_JSON`).
    ///
    /// A body written canonically (as Go clients and this server sign) is walked once here
    /// ([`cjson::scan`]: canonical or not, how many values, its `_type`/`expires`/`version`)
    /// and parsed once, typed, by whoever reads it ([`SignedFile::body`]); no generic tree is
    /// built for it. Any other body is counted, parsed into Go's generic tree and rewritten.
    pub fn parse(raw: &[u8]) -> Result<Self, ParseError> {
        Self::parse_bytes(Bytes::copy_from_slice(raw))
    }

    /// [`SignedFile::parse`] on bytes already owned (an upload): they are kept, not copied.
    pub fn parse_bytes(bytes: Bytes) -> Result<Self, ParseError> {
        let raw = &bytes[..];
        let top = Envelope::parse(raw)?;
        let signed = top
            .signed
            .ok_or_else(|| ParseError::Json("\"signed\" is not an object".into()))?;
        let span = signed.get();
        // `span` borrows `raw`: where it starts in it.
        let start = span.as_ptr() as usize - raw.as_ptr() as usize;
        let range = start..start + span.len();
        let (body, common) = match cjson::scan(span.as_bytes()) {
            Some(scan) => {
                check_density(scan.values + top.signature_values, raw.len())?;
                let common = CommonJson::from_members(&scan.members)?;
                (Body::Canonical(range), common)
            }
            None => {
                let values = count_values(span.as_bytes())? + top.signature_values;
                check_density(values, raw.len())?;
                let value: Value =
                    serde_json::from_str(span).map_err(|e| ParseError::Json(e.to_string()))?;
                let canonical = cjson::to_canonical(&value);
                let body = Body::Generic { value, canonical };
                let common: CommonJson = body.read(raw)?;
                (body, common)
            }
        };
        let signatures = top.signatures;
        Ok(SignedFile {
            raw: bytes,
            body,
            signatures,
            common: common.into_common()?,
        })
    }

    /// The message signatures are verified against: Go's re-canonicalised body.
    pub fn canonical_body(&self) -> Result<&[u8], CanonicalError> {
        match &self.body {
            Body::Canonical(r) => Ok(&self.raw[r.clone()]),
            Body::Generic { canonical, .. } => canonical.as_deref().map_err(Clone::clone),
        }
    }

    /// Whether the body is signed as written (canonical already, the fast path) rather than as
    /// rewritten.
    pub fn signed_as_written(&self) -> bool {
        matches!(self.body, Body::Canonical(_))
    }

    /// The `signed` body as a generic tree.
    pub fn signed_value(&self) -> Result<Value, ParseError> {
        self.body()
    }

    /// Whether `expires` is before `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.common.expires < now
    }

    /// The body parsed as `T`.
    pub fn body<T: for<'de> Deserialize<'de>>(&self) -> Result<T, ParseError> {
        self.body.read(&self.raw)
    }
}

impl Body {
    /// The body (of the file `raw`) parsed as `T`: from the bytes as written, or from the tree.
    fn read<T: for<'de> Deserialize<'de>>(&self, raw: &[u8]) -> Result<T, ParseError> {
        match self {
            Body::Canonical(r) => serde_json::from_slice(&raw[r.clone()]),
            Body::Generic { value, .. } => T::deserialize(value),
        }
        .map_err(|e| ParseError::Json(e.to_string()))
    }
}

/// The top level of a file: `signed` kept as the bytes it was written as, `signatures` read
/// typed (no tree) and counted as they are read; other keys skipped; a repeated key keeps its
/// last value, as Go's decoder does.
struct Envelope<'a> {
    signed: Option<&'a serde_json::value::RawValue>,
    signatures: Vec<Signature>,
    /// The JSON values the signatures held (each object, key and field), for the density limit.
    signature_values: usize,
}

impl<'a> Envelope<'a> {
    fn parse(raw: &'a [u8]) -> Result<Self, ParseError> {
        use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
        /// The signatures, refused as soon as they are denser than metadata can be.
        struct Signatures {
            limit: usize,
        }
        impl<'de> DeserializeSeed<'de> for Signatures {
            type Value = (Vec<Signature>, usize);
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for Signatures {
            type Value = (Vec<Signature>, usize);
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"signatures\" as an array")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok((Vec::new(), 0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let (mut sigs, mut values) = (Vec::new(), 0);
                while let Some(SignatureJson { sig, values: n }) = a.next_element()? {
                    sigs.push(sig);
                    values += n;
                    if values > self.limit {
                        return Err(serde::de::Error::custom(format!(
                            "{values} JSON values in the signatures alone: too dense for TUF metadata"
                        )));
                    }
                }
                Ok((sigs, values))
            }
        }
        struct V {
            limit: usize,
        }
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("metadata is not a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Envelope<'de>, A::Error> {
                let mut e = Envelope {
                    signed: None,
                    signatures: Vec::new(),
                    signature_values: 0,
                };
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    match k.as_ref() {
                        "signed" => {
                            let v: &'de serde_json::value::RawValue = m.next_value()?;
                            // Only an object is a body; `null` or anything else is not.
                            e.signed = v.get().starts_with('{').then_some(v);
                        }
                        "signatures" => {
                            (e.signatures, e.signature_values) =
                                m.next_value_seed(Signatures { limit: self.limit })?;
                        }
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(e)
            }
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        let limit = density_limit(raw.len());
        let e = Deserializer::deserialize_map(&mut de, V { limit })
            .and_then(|e| de.end().map(|()| e))
            .map_err(|e| ParseError::Json(e.to_string()))?;
        Ok(e)
    }
}

/// One signature as Go decodes it: `keyid`, `method`, `sig` (base64) strings or null, other
/// fields skipped, a repeated field's last value kept; and how many values it held.
struct SignatureJson {
    sig: Signature,
    values: usize,
}

impl<'de> Deserialize<'de> for SignatureJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, Visitor};
        fn string<'de, A: MapAccess<'de>>(m: &mut A, k: &str) -> Result<String, A::Error> {
            let v: Option<String> = m
                .next_value()
                .map_err(|_| A::Error::custom(format!("signature field {k} is not a string")))?;
            Ok(v.unwrap_or_default())
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SignatureJson;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a signature object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<SignatureJson, A::Error> {
                let (mut keyid, mut method, mut sig) =
                    (String::new(), String::new(), String::new());
                let mut values = 1;
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    values += 2;
                    match k.as_ref() {
                        "keyid" => keyid = string(&mut m, "keyid")?,
                        "method" => method = string(&mut m, "method")?,
                        "sig" => sig = string(&mut m, "sig")?,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let sig = B64
                    .decode(sig)
                    .map_err(|e| A::Error::custom(format!("signature is not base64: {e}")))?;
                Ok(SignatureJson {
                    sig: Signature {
                        keyid,
                        method: method.to_lowercase(),
                        sig,
                    },
                    values,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// `_type`, `expires` and `version` as the body gives them, checked by `into_common`.
#[derive(Deserialize)]
struct CommonJson {
    #[serde(default, rename = "_type")]
    type_: Option<Value>,
    #[serde(default)]
    expires: Option<Value>,
    #[serde(default)]
    version: Option<Value>,
}

impl CommonJson {
    /// The fields from a canonical body's members ([`cjson::Scan`]).
    fn from_members(members: &[(&[u8], &[u8])]) -> Result<Self, ParseError> {
        let mut c = CommonJson {
            type_: None,
            expires: None,
            version: None,
        };
        for (key, value) in members {
            let slot = match *key {
                b"_type" => &mut c.type_,
                b"expires" => &mut c.expires,
                b"version" => &mut c.version,
                _ => continue,
            };
            let value =
                serde_json::from_slice(value).map_err(|e| ParseError::Json(e.to_string()))?;
            *slot = Some(value);
        }
        Ok(c)
    }

    fn into_common(self) -> Result<Common, ParseError> {
        let type_ = match self.type_ {
            Some(Value::String(s)) => s,
            None | Some(Value::Null) => String::new(),
            _ => return Err(ParseError::Json("\"_type\" is not a string".into())),
        };
        let expires = match self.expires {
            Some(Value::String(s)) => crate::time::parse_rfc3339(&s)
                .ok_or_else(|| ParseError::Json(format!("\"expires\" is not RFC 3339: {s}")))?,
            _ => {
                return Err(ParseError::Json(
                    "\"expires\" missing or not a string".into(),
                ))
            }
        };
        let version = match self.version {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| ParseError::Json(format!("\"version\" is not an integer: {n}")))?,
            _ => return Err(ParseError::Json("\"version\" is not a number".into())),
        };
        Ok(Common {
            type_,
            expires,
            version,
        })
    }
}

/// At most one JSON value per this many bytes. TUF metadata is made of keys, base64 hashes,
/// IDs and signatures (16–37 bytes a value in Go-written files); a generic tree of a document
/// denser than this (`[0,0,0,…]`: a value every two bytes) would cost tens of times its size.
pub const MIN_BYTES_PER_VALUE: usize = 8;

/// How many JSON values `len` bytes of metadata may hold.
fn density_limit(len: usize) -> usize {
    len / MIN_BYTES_PER_VALUE + 16
}

/// Refuse `values` JSON values in a file of `len` bytes if that is denser than
/// [`MIN_BYTES_PER_VALUE`], before a tree is built for it.
fn check_density(values: usize, len: usize) -> Result<(), ParseError> {
    if values > density_limit(len) {
        return Err(ParseError::Json(format!(
            "{values} JSON values in {len} bytes: too dense for TUF metadata"
        )));
    }
    Ok(())
}

/// Count the values of `raw` without building anything (serde's `IgnoredAny` walk, counted).
fn count_values(raw: &[u8]) -> Result<usize, ParseError> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Count<'a>(&'a std::cell::Cell<usize>);
    impl<'de> DeserializeSeed<'de> for Count<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            self.0.set(self.0.get() + 1);
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Count<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            while a.next_element_seed(Count(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            while a.next_key_seed(Count(self.0))?.is_some() {
                a.next_value_seed(Count(self.0))?;
            }
            Ok(())
        }
    }
    let n = std::cell::Cell::new(0);
    let mut de = serde_json::Deserializer::from_slice(raw);
    Count(&n)
        .deserialize(&mut de)
        .map_err(|e| ParseError::Json(e.to_string()))?;
    Ok(n.get())
}

// ---------------------------------------------------------------------------------------------
// Typed bodies

fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn b64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(Vec::new()),
        Some(s) => B64.decode(s).map_err(serde::de::Error::custom),
    }
}

fn b64_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
    let m: Option<BTreeMap<String, Option<String>>> = Option::deserialize(d)?;
    m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            Ok((
                k,
                B64.decode(v.unwrap_or_default())
                    .map_err(serde::de::Error::custom)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegation_names() {
        assert!(is_delegation("targets/releases"));
        assert!(is_delegation("targets/a/b_c-1"));
        for bad in [
            "targets",
            "targets/",
            "targets//a",
            "targets/A",
            "targets/a.b",
            "targets/../x",
            "/targets/a",
            "other/a",
        ] {
            assert!(!is_delegation(bad), "{bad}");
        }
        assert!(!is_delegation(&format!("targets/{}", "a".repeat(250))));
        assert_eq!(parent_role("targets/a/b"), "targets/a");
        assert_eq!(parent_role("targets"), ".");
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in [
            &b"garbage"[..],
            b"[]",
            b"{\"signed\":1}",
            b"{\"signed\":{\"_type\":\"Root\",\"expires\":\"x\",\"version\":1}}",
            b"{\"signed\":{\"_type\":\"Root\",\"expires\":\"2030-01-01T00:00:00Z\",\"version\":1.5}}",
            b"{\"signed\":{\"_type\":\"Root\",\"expires\":\"2030-01-01T00:00:00Z\",\"version\":1},\"signatures\":[{\"sig\":\"!!\"}]}",
        ] {
            assert!(SignedFile::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let ok = SignedFile::parse(br#"{"signed":{"_type":"Root","expires":"2030-01-01T00:00:00Z","version":3},"signatures":[{"keyid":"ab","method":"EdDSA","sig":"AAAA"}]}"#).unwrap();
        assert_eq!(ok.common.version, 3);
        assert_eq!(ok.signatures[0].method, "eddsa");
    }

    #[test]
    fn dense_files_are_refused_whether_canonical_or_not() {
        let body = |sep: &str| {
            let mut b = format!("{{\"_type\":\"Targets\",{sep}\"expires\":\"2030-01-01T00:00:00Z\",\"targets\":{{}},\"version\":2,\"x\":[");
            b.push_str(&"0,".repeat(100_000));
            b.push_str("0]}");
            b
        };
        for (sep, canonical) in [("", true), (" ", false)] {
            let b = body(sep);
            assert_eq!(cjson::is_canonical(b.as_bytes()), canonical);
            let file = format!("{{\"signed\":{b},\"signatures\":[]}}");
            let e = SignedFile::parse(file.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("too dense for TUF metadata"), "{e}");
        }
        // Signatures are read typed, and refused as soon as they are too many for their bytes.
        let file = format!(
            "{{\"signed\":{{\"_type\":\"Targets\",\"expires\":\"2030-01-01T00:00:00Z\",\"version\":1}},\"signatures\":[{}{{}}]}}",
            "{},".repeat(100_000)
        );
        let e = SignedFile::parse(file.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("in the signatures alone: too dense"), "{e}");
    }

    #[test]
    fn signatures_read_as_go_reads_them() {
        let f = SignedFile::parse(br#"{"signed":{"_type":"Root","expires":"2030-01-01T00:00:00Z","version":1},"signatures":[{"keyid":"a","keyid":"b","method":null,"sig":"AQ==","x":[1,{"y":2}]}]}"#).unwrap();
        assert_eq!(
            f.signatures,
            [Signature {
                keyid: "b".into(),
                method: String::new(),
                sig: vec![1]
            }]
        );
        let none = SignedFile::parse(br#"{"signatures":null,"signed":{"_type":"Root","expires":"2030-01-01T00:00:00Z","version":1}}"#).unwrap();
        assert!(none.signatures.is_empty());
        for bad in [
            r#""signatures":{}"#,
            r#""signatures":[1]"#,
            r#""signatures":[null]"#,
            r#""signatures":[{"keyid":1}]"#,
            r#""signatures":[{"sig":"!"}]"#,
        ] {
            let file = format!("{{{bad},\"signed\":{{\"_type\":\"Root\",\"expires\":\"2030-01-01T00:00:00Z\",\"version\":1}}}}");
            assert!(SignedFile::parse(file.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_are_checked_and_counted_not_kept() {
        let file = |targets: &str| {
            format!("{{\"signed\":{{\"_type\":\"Targets\",\"expires\":\"2030-01-01T00:00:00Z\",\"targets\":{targets},\"version\":1}},\"signatures\":[]}}")
        };
        let ok = file(
            r#"{"a":{"custom":{"x":[1,2]},"hashes":{"sha256":"AAAA","sha512":null},"length":3},"b":{},"c":{"hashes":{"sha256":"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}}}"#,
        );
        let t: Targets = SignedFile::parse(ok.as_bytes()).unwrap().body().unwrap();
        assert_eq!(t.targets.entries, 3);
        let t: Targets = SignedFile::parse(file("null").as_bytes())
            .unwrap()
            .body()
            .unwrap();
        assert_eq!(t.targets.entries, 0);
        // What FileMeta (and Go's decoder) refuses is refused here too.
        for bad in [
            r#"[]"#,
            r#"{"a":1}"#,
            r#"{"a":null}"#,
            r#"{"a":{"length":1.5}}"#,
            r#"{"a":{"length":"1"}}"#,
            r#"{"a":{"hashes":[]}}"#,
            r#"{"a":{"hashes":{"sha256":5}}}"#,
            r#"{"a":{"hashes":{"sha256":"!!"}}}"#,
        ] {
            let f = SignedFile::parse(file(bad).as_bytes()).unwrap();
            assert!(f.body::<Targets>().is_err(), "{bad}");
            assert!(
                f.body::<Value>().unwrap()["targets"]
                    .as_object()
                    .and_then(|m| m.get("a"))
                    .map(|a| serde_json::from_value::<FileMeta>(a.clone()).is_err())
                    .unwrap_or(true),
                "{bad}: FileMeta reads it"
            );
        }
    }

    #[test]
    fn envelope_layout_matches_go() {
        let sig = Signature {
            keyid: "ab".into(),
            method: "eddsa".into(),
            sig: vec![1, 2, 3],
        };
        assert_eq!(
            envelope(b"{\"a\":\"<&>\"}", &[sig]),
            br#"{"signed":{"a":"\u003c\u0026\u003e"},"signatures":[{"keyid":"ab","method":"eddsa","sig":"AQID"}]}"#
        );
    }

    #[test]
    fn hash_checks() {
        let fm = FileMeta::of(b"hello");
        assert!(fm.check_hashes(b"hello", "targets").is_ok());
        assert!(
            fm.check_hashes(b"hellO", "targets")
                .unwrap_err()
                .to_string()
                .starts_with("sha256 checksum for targets did not match")
                || fm
                    .check_hashes(b"hellO", "targets")
                    .unwrap_err()
                    .to_string()
                    .starts_with("sha512")
        );
        assert!(FileMeta::default()
            .check_hashes(b"x", "root")
            .unwrap_err()
            .to_string()
            .contains("checksum required"));
        assert!(fm.check_hash_structure().is_ok());
        let mut short = fm.clone();
        short.hashes.insert("sha256".into(), vec![0; 31]);
        assert!(short.check_hash_structure().is_err());
    }
}
