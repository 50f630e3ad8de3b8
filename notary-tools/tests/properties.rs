//! Property tests (proptest) of the publish rules and the formats they read, run in CI with a
//! bounded number of cases (`PROPTEST_CASES` raises it):
//! - the server never accepts content the key holder did not sign: any 1–4 byte changes to a
//!   signed upload are rejected, or leave the signed body exactly as it was signed;
//! - arbitrary bytes never make parsing or validation panic;
//! - canonical JSON round-trips (integers within ±2^53; larger ones are rounded through float64
//!   as Go does) and is idempotent.

use std::collections::BTreeMap;

use chrono::Utc;
use notary_bench::repo::RustRepo;
use notary_tuf::cjson;
use notary_tuf::metadata::SignedFile;
use notary_tuf::validation::{validate_update, StoredRepo};
use notary_tuf::PrivateKey;
use proptest::prelude::*;
use serde_json::Value;

const GUN: &str = "example.com/props/repo";

struct Fixture {
    root: Vec<u8>,
    targets: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let snapshot = PrivateKey::generate("ecdsa").unwrap().public_key();
        let timestamp = PrivateKey::generate("ecdsa").unwrap().public_key();
        let repo = RustRepo::new(GUN, snapshot, timestamp);
        Fixture {
            root: repo.root_file(1),
            targets: repo.targets_file(1, &[("latest", b"image manifest")]),
        }
    })
}

/// Validate a first publish of root + targets as the server would.
fn validate(
    root: &[u8],
    targets: &[u8],
) -> Option<Result<notary_tuf::validation::Plan, notary_tuf::validation::ValidationError>> {
    let mut uploads = BTreeMap::new();
    uploads.insert("root".to_string(), SignedFile::parse(root).ok()?);
    uploads.insert("targets".to_string(), SignedFile::parse(targets).ok()?);
    Some(validate_update(
        GUN,
        &uploads,
        &StoredRepo::default(),
        Utc::now(),
    ))
}

fn signed_canonical(file: &[u8]) -> Vec<u8> {
    SignedFile::parse(file)
        .unwrap()
        .canonical_body()
        .unwrap()
        .to_vec()
}

fn mutate(data: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut out = data.to_vec();
    for (pos, byte) in edits {
        let i = pos % out.len();
        out[i] = *byte;
    }
    out
}

#[test]
fn the_fixture_is_accepted() {
    let f = fixture();
    let plan = validate(&f.root, &f.targets)
        .unwrap()
        .expect("a valid first publish");
    assert!(plan.snapshot.is_some(), "the server signs the snapshot");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000), ..ProptestConfig::default() })]

    #[test]
    fn changed_targets_are_rejected_or_unchanged(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..5)) {
        let f = fixture();
        let bad = mutate(&f.targets, &edits);
        if let Some(Ok(plan)) = validate(&f.root, &bad) {
            let stored = plan.updates.iter().find(|u| u.role == "targets").expect("targets stored");
            prop_assert_eq!(signed_canonical(&stored.data), signed_canonical(&f.targets), "accepted a targets body nobody signed");
        }
    }

    #[test]
    fn changed_roots_are_rejected_or_unchanged(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..5)) {
        let f = fixture();
        let bad = mutate(&f.root, &edits);
        if let Some(Ok(plan)) = validate(&bad, &f.targets) {
            let stored = plan.updates.iter().find(|u| u.role == "root").expect("root stored");
            prop_assert_eq!(signed_canonical(&stored.data), signed_canonical(&f.root), "accepted a root body nobody signed");
        }
    }

    #[test]
    fn arbitrary_uploads_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), as_root in any::<bool>()) {
        let f = fixture();
        let _ = SignedFile::parse(&bytes);
        let _ = if as_root { validate(&bytes, &f.targets) } else { validate(&f.root, &bytes) };
    }

    #[test]
    fn json_shaped_uploads_never_panic(v in json_value()) {
        let f = fixture();
        let doc = serde_json::json!({"signed": v.clone(), "signatures": [{"keyid": "ab", "method": "ecdsa", "sig": "AA=="}]});
        let bytes = serde_json::to_vec(&doc).unwrap();
        let _ = validate(&f.root, &bytes);
        let _ = validate(&bytes, &f.targets);
    }

    #[test]
    fn canonical_json_round_trips_and_is_idempotent(v in json_value()) {
        let c = cjson::to_canonical(&v).unwrap();
        let back: Value = serde_json::from_slice(&c).unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(cjson::canonicalize(&c).unwrap(), c);
    }
}

proptest! {
    #[test]
    fn big_integers_are_rounded_like_go(n in any::<i64>()) {
        let c = cjson::to_canonical(&serde_json::json!({"n": n})).unwrap();
        prop_assert_eq!(cjson::canonicalize(&c).unwrap(), c.clone(), "not idempotent");
        let back: Value = serde_json::from_slice(&c).unwrap();
        prop_assert_eq!(back["n"].as_f64().unwrap(), n as f64, "not Go's float64 value");
    }
}

/// JSON values with integers only (canonical JSON has no floats), including TUF-looking keys.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        // Go decodes generic numbers as float64: only integers within ±2^53 are exact (larger
        // ones are rounded, as Go does — see `big_integers_are_rounded_like_go`).
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| Value::Number(n.into())),
        "[ -~<>&\u{e9}\u{2028}\u{1F600}]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Targets"),
            Just("Root"),
            Just("2030-01-01T00:00:00Z"),
            Just("ecdsa")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("_type".to_string()),
                    Just("version".to_string()),
                    Just("expires".to_string()),
                    Just("meta".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
