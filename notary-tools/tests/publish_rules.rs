//! Publish semantics through raw HTTP with metadata signed in Rust: races, byte preservation,
//! and the security findings of the public Notary audits as regression tests.
#![cfg(feature = "system-tests")]

mod common;

use common::*;
use notary_tuf::builder::{root_body, sign, targets_body, Signer};
use serde_json::{json, Value};

on_both_backends!(
    racing_publishes_have_one_winner,
    unknown_fields_are_preserved,
    audit_regressions_are_rejected,
    changefeed_pages_like_go
);

fn code_and_name(body: &[u8]) -> (String, String) {
    let (code, detail) = api_error(body);
    (
        code,
        detail["Name"].as_str().unwrap_or_default().to_string(),
    )
}

async fn racing_publishes_have_one_winner(backend: Backend) {
    let s = Server::start_backend(backend).await;
    let repo = init_repo(&s, "example.com/race/repo").await;
    let gun = repo.gun.clone();
    let rounds = 10;
    for v in 2..2 + rounds {
        let a = repo.targets_file(v, &[("a", format!("a{v}").as_bytes())]);
        let b = repo.targets_file(v, &[("b", format!("b{v}").as_bytes())]);
        let (pa, pb) = ([("targets", a.as_slice())], [("targets", b.as_slice())]);
        let ((sa, ba), (sb, bb)) = tokio::join!(s.post_parts(&gun, &pa), s.post_parts(&gun, &pb));
        let mut outcomes = vec![(sa, code_or_ok(&ba)), (sb, code_or_ok(&bb))];
        outcomes.sort();
        assert_eq!(
            outcomes,
            vec![(200, String::new()), (400, "VERSION".to_string())],
            "round {v}"
        );
        let winner = if sa == 200 { &a } else { &b };
        let (_, served) = s.get(&s.tuf(&gun, "targets.json")).await;
        assert_eq!(&served, winner, "the winner's bytes are current");
    }
    // One changefeed entry per successful publish, ids strictly increasing.
    let (_, feed) = s
        .get(&format!("{}/v2/{gun}/_trust/changefeed?records=100", s.url))
        .await;
    let feed: Value = serde_json::from_slice(&feed).unwrap();
    let ids: Vec<i64> = feed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ID"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len() as i64, 1 + rounds);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let versions: Vec<i64> = feed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, (1..=1 + rounds).collect::<Vec<_>>());
    assert!(!s.log().contains("panicked"));
}

fn code_or_ok(body: &[u8]) -> String {
    if body.is_empty() {
        String::new()
    } else {
        code_and_name(body).0
    }
}

async fn unknown_fields_are_preserved(backend: Backend) {
    let s = Server::start_backend(backend).await;
    let repo = init_repo(&s, "example.com/bytes/repo").await;
    let mut t = std::collections::BTreeMap::new();
    let mut fm = notary_tuf::FileMeta::of(b"payload");
    fm.custom = Some(json!({"a": [1, 2], "z": {"nested": "<&>"}}));
    t.insert("with-custom".to_string(), fm);
    let mut body = targets_body(&t, &[], 2, &far_future());
    body["x-unknown"] = json!({"kept": true, "list": [3, 2, 1]});
    let file = sign(&body, &[Signer::plain(&repo.targets_key)]).unwrap();
    // Extra whitespace and an unsigned top-level field: still valid, stored as sent.
    let mut file = String::from_utf8(file)
        .unwrap()
        .replacen("{\"signed\":", "{\"signed\": ", 1);
    file.insert_str(file.len() - 1, ",\"unsigned-extra\":1");
    let (st, b) = s
        .post_parts(&repo.gun, &[("targets", file.as_bytes())])
        .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    let (_, served) = s.get(&s.tuf(&repo.gun, "targets.json")).await;
    assert_eq!(served, file.as_bytes(), "served byte for byte");
    let (_, by_version) = s.get(&s.tuf(&repo.gun, "2.targets.json")).await;
    assert_eq!(by_version, file.as_bytes());
}

async fn audit_regressions_are_rejected(backend: Backend) {
    let s = Server::start_backend(backend).await;
    let repo = init_repo(&s, "example.com/audit/repo").await;
    let gun = repo.gun.clone();
    let before = s.snapshot_of_state(&gun).await;
    let expect = |what: &str, (st, body): (u16, Vec<u8>), code: &str, name: &str| {
        assert_eq!(st, 400, "{what}: {}", String::from_utf8_lossy(&body));
        assert_eq!(
            code_and_name(&body),
            (code.to_string(), name.to_string()),
            "{what}"
        );
    };
    let root_signer = || Signer {
        key: &repo.root_key,
        public: repo.root_pub.clone(),
    };
    let targets_pub = repo.targets_key.public_key();

    // Threshold 0 for a role.
    let mut body = root_body(
        &repo.root_pub,
        &targets_pub,
        &repo.snapshot_pub,
        &repo.timestamp_pub,
        2,
        &far_future(),
    );
    body["roles"]["targets"]["threshold"] = json!(0);
    expect(
        "threshold 0",
        s.post_parts(&gun, &[("root", &sign(&body, &[root_signer()]).unwrap())])
            .await,
        "INVALID_UPDATE",
        "ErrBadRoot",
    );

    // Root rotation signed only by the new root key.
    let (new_key, new_pub) = root_cert(&gun);
    let body = root_body(
        &new_pub,
        &targets_pub,
        &repo.snapshot_pub,
        &repo.timestamp_pub,
        2,
        &far_future(),
    );
    let rotated = sign(
        &body,
        &[Signer {
            key: &new_key,
            public: new_pub.clone(),
        }],
    )
    .unwrap();
    expect(
        "rotation without the old root",
        s.post_parts(&gun, &[("root", &rotated)]).await,
        "INVALID_UPDATE",
        "ErrBadRoot",
    );

    // An expired root.
    let past = chrono::Utc::now() - chrono::Duration::days(1);
    let body = root_body(
        &repo.root_pub,
        &targets_pub,
        &repo.snapshot_pub,
        &repo.timestamp_pub,
        2,
        &past,
    );
    expect(
        "expired root",
        s.post_parts(&gun, &[("root", &sign(&body, &[root_signer()]).unwrap())])
            .await,
        "INVALID_UPDATE",
        "ErrBadRoot",
    );

    // A root certificate for another GUN.
    let (other_key, other_pub) = root_cert("example.com/someone/else");
    let body = root_body(
        &other_pub,
        &targets_pub,
        &repo.snapshot_pub,
        &repo.timestamp_pub,
        2,
        &far_future(),
    );
    let foreign = sign(
        &body,
        &[
            root_signer(),
            Signer {
                key: &other_key,
                public: other_pub.clone(),
            },
        ],
    )
    .unwrap();
    expect(
        "root cert CN of another GUN",
        s.post_parts(&gun, &[("root", &foreign)]).await,
        "INVALID_UPDATE",
        "ErrBadRoot",
    );

    // Algorithm / key-type confusion: a valid ECDSA signature relabelled as another method.
    let good = repo.targets_file(2, &[("x", b"x")]);
    for method in [
        "rsapss",
        "eddsa",
        "rsapkcs1v15",
        "pycrypto-pkcs#1 pss",
        "ed25519",
    ] {
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["signatures"][0]["method"] = json!(method);
        expect(
            method,
            s.post_parts(&gun, &[("targets", &serde_json::to_vec(&v).unwrap())])
                .await,
            "INVALID_UPDATE",
            "ErrBadTargets",
        );
    }

    // A key declared under an ID that is not its own (hard failure in Go).
    let mut body = root_body(
        &repo.root_pub,
        &targets_pub,
        &repo.snapshot_pub,
        &repo.timestamp_pub,
        2,
        &far_future(),
    );
    let keys = body["keys"].as_object_mut().unwrap();
    let real = keys.remove(&targets_pub.id()).unwrap();
    let fake_id = "0".repeat(64);
    keys.insert(fake_id.clone(), real);
    body["roles"]["targets"]["keyids"] = json!([fake_id]);
    let root2 = sign(&body, &[root_signer()]).unwrap();
    let mut t: Value = serde_json::from_slice(&good).unwrap();
    t["signatures"][0]["keyid"] = json!(fake_id);
    expect(
        "mislabelled key ID",
        s.post_parts(
            &gun,
            &[
                ("root", &root2),
                ("targets", &serde_json::to_vec(&t).unwrap()),
            ],
        )
        .await,
        "INVALID_UPDATE",
        "ErrBadTargets",
    );

    // Duplicate key IDs and duplicated signatures count once toward a threshold of 2.
    let mut body = root_body(
        &repo.root_pub,
        &targets_pub,
        &repo.snapshot_pub,
        &repo.timestamp_pub,
        2,
        &far_future(),
    );
    body["roles"]["targets"] =
        json!({"keyids": [targets_pub.id(), targets_pub.id()], "threshold": 2});
    let root2 = sign(&body, &[root_signer()]).unwrap();
    let mut t: Value = serde_json::from_slice(&good).unwrap();
    let sig = t["signatures"][0].clone();
    t["signatures"].as_array_mut().unwrap().push(sig);
    expect(
        "duplicate signatures",
        s.post_parts(
            &gun,
            &[
                ("root", &root2),
                ("targets", &serde_json::to_vec(&t).unwrap()),
            ],
        )
        .await,
        "INVALID_UPDATE",
        "ErrBadTargets",
    );

    // Signed fields changed after signing.
    let mut t: Value = serde_json::from_slice(&good).unwrap();
    t["signed"]["targets"]["x"]["length"] = json!(999);
    expect(
        "tampered body",
        s.post_parts(&gun, &[("targets", &serde_json::to_vec(&t).unwrap())])
            .await,
        "INVALID_UPDATE",
        "ErrBadTargets",
    );

    // A delegation the parent does not declare.
    let d = sign(
        &targets_body(&Default::default(), &[], 1, &far_future()),
        &[Signer::plain(&repo.targets_key)],
    )
    .unwrap();
    expect(
        "undeclared delegation",
        s.post_parts(&gun, &[("targets/ghost", &d)]).await,
        "INVALID_UPDATE",
        "ErrBadTargets",
    );

    // Version above the Go schema's integer column.
    let big = repo.targets_file(1 << 31, &[("x", b"x")]);
    expect(
        "version overflow",
        s.post_parts(&gun, &[("targets", &big)]).await,
        "INVALID_UPDATE",
        "ErrBadTargets",
    );

    assert_eq!(s.snapshot_of_state(&gun).await, before, "nothing stored");
    // And a correct update still goes through afterwards.
    let (st, _) = s.post_parts(&gun, &[("targets", &good)]).await;
    assert_eq!(st, 200);
}

async fn changefeed_pages_like_go(backend: Backend) {
    let s = Server::start_backend(backend).await;
    // The database may hold earlier changes (the Go-populated one does): page from the newest.
    let (_, body) = s
        .get(&format!(
            "{}/v2/_trust/changefeed?change_id=-1&records=1",
            s.url
        ))
        .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let base = v["records"]
        .get(0)
        .map(|r| r["ID"].as_str().unwrap().to_string())
        .unwrap_or_else(|| "0".into());
    let a = init_repo(&s, "example.com/feed/a").await;
    let b = init_repo(&s, "example.com/feed/b").await;
    for v in 2..4 {
        let (st, _) = s.publish_version(&a, v).await;
        assert_eq!(st, 200);
    }
    let r = s.http.delete(s.tuf(&b.gun, "")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Deleting a GUN that does not exist: 200 and no changefeed row.
    assert_eq!(
        s.http
            .delete(s.tuf("example.com/feed/none", ""))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let feed = |q: String| {
        let s = &s;
        async move {
            let (st, body) = s.get(&format!("{}{q}", s.url)).await;
            assert_eq!(st, 200, "{q}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                v["count"].as_u64().unwrap() as usize,
                v["records"].as_array().unwrap().len()
            );
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["GUN"].as_str().unwrap().to_string(),
                        r["Version"].as_i64().unwrap(),
                        r["Category"].as_str().unwrap().to_string(),
                        r["ID"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let all = feed(format!("/v2/_trust/changefeed?records=0&change_id={base}")).await; // 0 = default page
    let summary: Vec<(String, i64, String)> = all
        .iter()
        .map(|(g, v, c, _)| (g.clone(), *v, c.clone()))
        .collect();
    let (fa, fb) = (
        "example.com/feed/a".to_string(),
        "example.com/feed/b".to_string(),
    );
    assert_eq!(
        summary,
        vec![
            (fa.clone(), 1, "update".into()),
            (fb.clone(), 1, "update".into()),
            (fa.clone(), 2, "update".into()),
            (fa.clone(), 3, "update".into()),
            (fb.clone(), 0, "deletion".into())
        ]
    );
    let ids: Vec<String> = all.iter().map(|r| r.3.clone()).collect();
    // Forward pages: after a change ID, oldest first.
    assert_eq!(
        feed(format!("/v2/_trust/changefeed?records=2&change_id={base}")).await,
        all[..2].to_vec()
    );
    assert_eq!(
        feed(format!(
            "/v2/_trust/changefeed?records=2&change_id={}",
            ids[1]
        ))
        .await,
        all[2..4].to_vec()
    );
    // Backwards: the newest |records|, still oldest first; change_id excluded.
    assert_eq!(
        feed("/v2/_trust/changefeed?records=-2".into()).await,
        all[3..].to_vec()
    );
    assert_eq!(
        feed("/v2/_trust/changefeed?change_id=-1&records=1".into()).await,
        all[4..].to_vec()
    );
    assert_eq!(
        feed(format!(
            "/v2/_trust/changefeed?records=-2&change_id={}",
            ids[3]
        ))
        .await,
        all[1..3].to_vec()
    );
    // Per GUN.
    let only_a = feed(format!("/v2/{}/_trust/changefeed?records=10", a.gun)).await;
    assert_eq!(
        only_a.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // A deletion row has an empty checksum.
    let (_, body) = s
        .get(&format!(
            "{}/v2/{}/_trust/changefeed?records=-1",
            s.url, b.gun
        ))
        .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["records"][0]["SHA256"], "");
}

#[tokio::test]
async fn nested_delegations_thresholds_and_ignored_timestamp() {
    use notary_tuf::builder::Delegation;
    let s = Server::start().await;
    let repo = init_repo(&s, "example.com/nested/repo").await;
    let gun = repo.gun.clone();
    let (k1, k2, k3) = (
        notary_tuf::PrivateKey::generate("ecdsa").unwrap(),
        notary_tuf::PrivateKey::generate("ed25519").unwrap(),
        notary_tuf::PrivateKey::generate("ecdsa").unwrap(),
    );
    // targets v2 delegates targets/a to k1+k2 with threshold 2, paths restricted to "a/".
    let d = [Delegation {
        name: "targets/a",
        keys: vec![k1.public_key(), k2.public_key()],
        threshold: 2,
        paths: vec!["a/".into()],
    }];
    let t2 = sign(
        &targets_body(&Default::default(), &d, 2, &far_future()),
        &[Signer::plain(&repo.targets_key)],
    )
    .unwrap();
    let (st, b) = s.post_parts(&gun, &[("targets", &t2)]).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));

    // targets/a delegates targets/a/b to k3; signed by one of two keys it misses the threshold.
    let mut ta = std::collections::BTreeMap::new();
    ta.insert("a/one".to_string(), notary_tuf::FileMeta::of(b"one"));
    let child = [Delegation {
        name: "targets/a/b",
        keys: vec![k3.public_key()],
        threshold: 1,
        paths: vec!["a/b/".into()],
    }];
    let body = targets_body(&ta, &child, 1, &far_future());
    let half = sign(&body, &[Signer::plain(&k1)]).unwrap();
    let (st, b) = s.post_parts(&gun, &[("targets/a", &half)]).await;
    assert_eq!(
        (st, code_and_name(&b)),
        (400, ("INVALID_UPDATE".into(), "ErrBadTargets".into()))
    );
    let full = sign(&body, &[Signer::plain(&k1), Signer::plain(&k2)]).unwrap();
    // An uploaded timestamp must still be well-formed JSON...
    let (st, b) = s
        .post_parts(&gun, &[("targets/a", &full), ("timestamp", b"garbage")])
        .await;
    assert_eq!((st, code_and_name(&b).0), (400, "MALFORMED_JSON".into()));
    // ...and is then ignored: the server signs its own.
    let (_, old_ts) = s.get(&s.tuf(&gun, "timestamp.json")).await;
    let (st, b) = s
        .post_parts(&gun, &[("targets/a", &full), ("timestamp", &old_ts)])
        .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    let (_, new_ts) = s.get(&s.tuf(&gun, "timestamp.json")).await;
    assert_ne!(new_ts, old_ts);

    // The grandchild, uploaded alone: its ancestors come from storage.
    let tab = sign(
        &targets_body(&Default::default(), &[], 1, &far_future()),
        &[Signer::plain(&k3)],
    )
    .unwrap();
    let (st, b) = s.post_parts(&gun, &[("targets/a/b", &tab)]).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        s.get(&s.tuf(&gun, "targets/a/b.json")).await,
        (200, tab.clone())
    );
    // Signed by the wrong key: refused.
    let wrong = sign(
        &targets_body(&Default::default(), &[], 2, &far_future()),
        &[Signer::plain(&k1)],
    )
    .unwrap();
    let (st, b) = s.post_parts(&gun, &[("targets/a/b", &wrong)]).await;
    assert_eq!((st, code_and_name(&b).1), (400, "ErrBadTargets".into()));
    // The snapshot lists every role, so a fresh client can walk the tree.
    let (_, snap) = s.get(&s.tuf(&gun, "snapshot.json")).await;
    let v: Value = serde_json::from_slice(&snap).unwrap();
    for role in ["root", "targets", "targets/a", "targets/a/b"] {
        assert!(
            v["signed"]["meta"][role]["hashes"]["sha256"].is_string(),
            "{role}"
        );
    }
}
