//! Byte-compatibility with files written by the real Go notary 0.7 (client and server), made by
//! `fixtures/generate-go-fixtures.sh`, plus deterministic vectors (fixed keys and messages, checked against Go).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use notary_tuf::cjson;
use notary_tuf::keys::{self, PrivateKey, PublicKey};
use notary_tuf::metadata::{envelope, MetaBody, Root, SignedFile, Targets};
use notary_tuf::validation::{load_root, validate_update, StoredRepo, ValidationError};
use notary_tuf::verify::{verify_signatures, BaseRole, VerifyError};
use serde_json::json;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/go-notary-0.7")
}

fn read(role: &str) -> Vec<u8> {
    std::fs::read(dir().join("metadata").join(format!("{role}.json"))).unwrap()
}

fn file(role: &str) -> SignedFile {
    SignedFile::parse(&read(role)).unwrap()
}

fn gun() -> String {
    std::fs::read_to_string(dir().join("gun.txt"))
        .unwrap()
        .trim()
        .to_string()
}

/// The instant the fixtures were made: the Go server's timestamp expires 14 days after it.
fn fixture_now() -> DateTime<Utc> {
    file("timestamp").common.expires.with_timezone(&Utc) - Duration::days(14) + Duration::minutes(1)
}

const ROLES: [&str; 6] = [
    "root",
    "1.root",
    "targets",
    "targets/releases",
    "snapshot",
    "timestamp",
];

/// Go writes canonical bodies, which are then signed and read as written; the same files with
/// whitespace, reordered keys and a duplicate key take the generic way to the same message,
/// common fields and typed body (the duplicate's last value wins, as in Go).
#[test]
fn go_bodies_are_signed_as_written_and_reformatted_ones_agree() {
    for role in ROLES {
        let f = file(role);
        assert!(f.signed_as_written(), "{role}");
        let tree = f.signed_value().unwrap();
        let mut pretty = serde_json::to_string_pretty(&json!({
            "signatures": serde_json::from_slice::<serde_json::Value>(&read(role)).unwrap()["signatures"],
            "signed": tree,
        }))
        .unwrap();
        // A duplicate `_type` whose first value is wrong: the last one counts.
        pretty = pretty.replacen("\"signed\": {", "\"signed\": {\"_type\": \"Wrong\",", 1);
        let g = SignedFile::parse(pretty.as_bytes()).unwrap();
        assert!(!g.signed_as_written(), "{role}");
        assert_eq!(
            g.canonical_body().unwrap(),
            f.canonical_body().unwrap(),
            "{role}"
        );
        assert_eq!(g.common.type_, f.common.type_, "{role}");
        assert_eq!(g.common.version, f.common.version, "{role}");
        assert_eq!(g.common.expires, f.common.expires, "{role}");
        assert_eq!(g.signatures, f.signatures, "{role}");
        if role.starts_with("targets") {
            let (a, b) = (f.body::<Targets>().unwrap(), g.body::<Targets>().unwrap());
            assert_eq!(a.targets, b.targets, "{role}");
        }
    }
}

#[test]
fn canonical_body_and_envelope_reproduce_go_bytes() {
    for role in ROLES {
        let raw = read(role);
        let f = SignedFile::parse(&raw).unwrap();
        let body = f.canonical_body().unwrap();
        // The bytes between `{"signed":` and `,"signatures":` are Go's canonical body.
        let s = std::str::from_utf8(&raw).unwrap();
        let end = s.rfind(",\"signatures\":").unwrap();
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            &s[10..end],
            "{role}: canonical body"
        );
        // Re-assembling the envelope gives back the whole Go file, byte for byte.
        assert_eq!(envelope(body, &f.signatures), raw, "{role}: envelope");
    }
}

#[test]
fn key_ids_match_go() {
    let root: Root = file("root").body().unwrap();
    assert!(!root.keys.is_empty());
    for (id, key) in &root.keys {
        assert_eq!(&key.id(), id, "root key {id} ({})", key.keytype);
    }
    let targets: Targets = file("targets").body().unwrap();
    assert_eq!(targets.delegations.keys.len(), 1);
    for (id, key) in &targets.delegations.keys {
        assert_eq!(key.keytype, keys::RSA_X509);
        assert_eq!(&key.id(), id);
    }
    // Canonical IDs (of the bare keys inside certificates) name the Go client's private key files.
    let files = std::fs::read_to_string(dir().join("private-key-ids.txt")).unwrap();
    let root_cert_key = &root.keys[&root.roles["root"].as_ref().unwrap().keyids[0]];
    assert_eq!(root_cert_key.keytype, keys::ECDSA_X509);
    assert_ne!(root_cert_key.canonical_id(), root_cert_key.id());
    assert!(
        files.contains(&format!("{}.key", root_cert_key.canonical_id())),
        "root canonical ID"
    );
    let del = targets.delegations.keys.values().next().unwrap();
    assert!(
        files.contains(&format!("{}.key", del.canonical_id())),
        "delegation canonical ID"
    );
}

fn role_of(root: &Root, name: &str) -> BaseRole {
    let r = root.roles[name].as_ref().unwrap();
    BaseRole {
        name: name.into(),
        keys: r
            .keyids
            .iter()
            .map(|k| (k.clone(), root.keys[k].clone()))
            .collect(),
        threshold: r.threshold,
    }
}

#[test]
fn go_signatures_verify_ecdsa_rsapss_eddsa() {
    let now = fixture_now();
    let loaded = load_root(&gun(), &file("root"), None, 1, false, now)
        .expect("Go root loads (x509 leaf, self-signature)");
    let first = load_root(&gun(), &file("1.root"), None, 1, true, now).unwrap();
    // root v2 was a rotation-free re-sign: it must also satisfy root v1's keys.
    load_root(&gun(), &file("root"), Some(&first), 1, false, now).unwrap();
    let root = &loaded.root;
    let t = file("targets");
    verify_signatures(&t, &role_of(root, "targets")).unwrap();
    assert_eq!(t.signatures[0].method, "ecdsa");
    let targets: Targets = t.body().unwrap();
    let d = &targets.delegations.roles[0];
    let del_role = BaseRole {
        name: d.name.clone(),
        keys: d
            .keyids
            .iter()
            .map(|k| (k.clone(), targets.delegations.keys[k].clone()))
            .collect(),
        threshold: d.threshold,
    };
    let rel = file("targets/releases");
    assert_eq!(rel.signatures[0].method, "rsapss");
    verify_signatures(&rel, &del_role).unwrap();
    let snap = file("snapshot");
    assert_eq!(snap.signatures[0].method, "eddsa");
    verify_signatures(&snap, &role_of(root, "snapshot")).unwrap();
    verify_signatures(&file("timestamp"), &role_of(root, "timestamp")).unwrap();
    // A signature checked against another role's keys fails the threshold.
    assert_eq!(
        verify_signatures(&t, &role_of(root, "snapshot")),
        Err(VerifyError::Threshold("snapshot".into()))
    );
}

#[test]
fn hash_chain_matches_file_bytes() {
    let snap: MetaBody = file("snapshot").body().unwrap();
    for role in ["root", "targets", "targets/releases"] {
        snap.meta[role].check_hashes(&read(role), role).unwrap();
        assert_eq!(snap.meta[role].length as usize, read(role).len());
    }
    let ts: MetaBody = file("timestamp").body().unwrap();
    ts.meta["snapshot"]
        .check_hashes(&read("snapshot"), "snapshot")
        .unwrap();
}

#[test]
fn publish_validation_accepts_go_upload_and_rejects_tampering() {
    let now = fixture_now();
    let mut uploads = BTreeMap::new();
    for role in ["root", "targets", "targets/releases", "snapshot"] {
        uploads.insert(role.to_string(), file(role));
    }
    // The stored state of a fresh repository is empty: root v2 is accepted (current 1 → 1 or 2).
    let plan = validate_update(&gun(), &uploads, &StoredRepo::default(), now).unwrap();
    assert_eq!(
        plan.updates
            .iter()
            .map(|u| u.role.as_str())
            .collect::<Vec<_>>(),
        ["root", "targets", "targets/releases", "snapshot"]
    );
    assert!(plan.snapshot.is_none());

    // A delegation upload is checked against its parent from storage.
    let mut stored = StoredRepo::default();
    for role in ["root", "targets", "snapshot", "timestamp"] {
        stored.files.insert(role.into(), read(role).into());
    }
    let only_rel: BTreeMap<_, _> =
        [("targets/releases".to_string(), file("targets/releases"))].into();
    // Same version as stored is fine for validation (storage enforces "newer").
    let plan = validate_update(&gun(), &only_rel, &stored, now).unwrap();
    let gen = plan.snapshot.expect("server generates the snapshot");
    assert_eq!(gen.version, file("snapshot").common.version + 1);

    // Tampered target: signature no longer verifies.
    let tampered = String::from_utf8(read("targets"))
        .unwrap()
        .replace("\"length\":14", "\"length\":15");
    assert_ne!(tampered.as_bytes(), read("targets").as_slice());
    let up: BTreeMap<_, _> = [(
        "targets".to_string(),
        SignedFile::parse(tampered.as_bytes()).unwrap(),
    )]
    .into();
    match validate_update(&gun(), &up, &stored, now) {
        Err(ValidationError::BadTargets(m)) => {
            assert_eq!(m, "valid signatures did not meet threshold for targets")
        }
        other => panic!("{other:?}"),
    }

    // Wrong GUN: the root certificate's CN does not match.
    let up: BTreeMap<_, _> = [("root".to_string(), file("root"))].into();
    assert!(
        matches!(validate_update("example.com/other", &up, &StoredRepo::default(), now), Err(ValidationError::BadRoot(m)) if m.contains("valid leaf certificates"))
    );

    // Expired metadata is refused on upload.
    let later = file("targets").common.expires.with_timezone(&Utc) + Duration::days(1);
    assert!(validate_update(&gun(), &uploads, &StoredRepo::default(), later).is_err());

    // Nothing stored and no root uploaded.
    let up: BTreeMap<_, _> = [("targets".to_string(), file("targets"))].into();
    assert_eq!(
        validate_update(&gun(), &up, &StoredRepo::default(), now).unwrap_err(),
        ValidationError::Validation("no pre-existing root and no root provided in update.".into())
    );

    // A snapshot that does not match the uploaded targets.
    let mut bad = uploads.clone();
    bad.insert("targets".into(), file("1.root"));
    assert!(validate_update(&gun(), &bad, &StoredRepo::default(), now).is_err());
}

#[test]
fn root_version_rules() {
    let now = fixture_now();
    let mut stored = StoredRepo::default();
    stored.files.insert("root".into(), read("root").into()); // version 2
    let up: BTreeMap<_, _> = [("root".to_string(), file("1.root"))].into();
    match validate_update(&gun(), &up, &stored, now) {
        Err(ValidationError::BadRoot(m)) => assert_eq!(
            m,
            "Root modifications must increment the version. Current 2, new 1"
        ),
        other => panic!("{other:?}"),
    }
}

/// A targets file signed by Go with the Ed25519 seed 00..1f.
#[test]
fn deterministic_ed25519_vector_v6() {
    let seed: Vec<u8> = (0u8..32).collect();
    let key = PrivateKey::from_go_bytes(keys::ED25519, &seed).unwrap();
    assert_eq!(
        key.public_key().id(),
        "b9fe8d4b54e73abb584e2015aaa447047e53282f491dcc70c40d2474d3096a21"
    );
    let body = json!({"_type":"Targets","delegations":{"keys":{},"roles":[]},"expires":"2030-01-01T00:00:00Z",
        "targets":{"hello":{"hashes":{"sha256":"uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=","sha512":"MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw=="},"length":11}},"version":1});
    let canon = cjson::to_canonical(&body).unwrap();
    let sig = notary_tuf::Signature {
        keyid: key.public_key().id(),
        method: key.method().into(),
        sig: key.sign(&canon),
    };
    let file = envelope(&canon, &[sig]);
    assert_eq!(file.len(), 519);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&file)),
        "8a7745690dfe752a75d60e2c83a318fa05a6f7c698901a1c994c8d8197df2332"
    );

    // Negative vectors: method case, unknown method, duplicate signatures, wrong key ID.
    let parsed = SignedFile::parse(&file).unwrap();
    let pk = key.public_key();
    let role = |t| BaseRole {
        name: "targets".into(),
        keys: [(pk.id(), pk.clone())].into(),
        threshold: t,
    };
    verify_signatures(&parsed, &role(1)).unwrap();
    let mut upper = parsed.clone();
    upper.signatures[0].method = "EdDSA".to_lowercase();
    verify_signatures(&upper, &role(1)).unwrap();
    let mut unknown = parsed.clone();
    unknown.signatures[0].method = "ed25519".into();
    assert!(verify_signatures(&unknown, &role(1)).is_err());
    let mut dup = parsed.clone();
    dup.signatures.push(dup.signatures[0].clone());
    assert_eq!(
        verify_signatures(&dup, &role(2)),
        Err(VerifyError::Threshold("targets".into())),
        "a key counts once"
    );
    let wrong_id = BaseRole {
        name: "targets".into(),
        keys: [(pk.id(), PublicKey::new(keys::ED25519, vec![7; 32]))].into(),
        threshold: 1,
    };
    assert_eq!(
        verify_signatures(&parsed, &wrong_id),
        Err(VerifyError::InvalidKeyId)
    );
    assert_eq!(
        verify_signatures(&parsed, &role(0)),
        Err(VerifyError::InvalidThreshold(0, "targets".into()))
    );
}

use sha2::Digest;
