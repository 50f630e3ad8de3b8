//! Our notary-signer with its keys in AWS KMS (`notary-signer/src/kms.rs`), moto run as the
//! KMS endpoint, behind our notary-server, driven by the Go notary CLI.
#![cfg(feature = "system-tests")]

mod common;

use common::*;

/// The Go CLI's flow (init, publish, `key rotate timestamp -r`, `key rotate snapshot -r`,
/// publish, list and verify from a fresh client) with the server's keys made and used in KMS:
/// the key IDs clients see are those of the public keys KMS reports (the Go client verified
/// the signatures with them), the keys are found again after a signer restart.
#[tokio::test(flavor = "multi_thread")]
async fn the_go_cli_flow_with_keys_in_kms() {
    let moto = Moto::start();
    credentials();
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let mut signer = SignerProc::start_with(
        workspace_bin("notary-signer"),
        serde_json::json!({"backend": "awskms", "region": "us-east-1", "endpoint": moto.url}),
        vec![],
        &tls,
    )
    .await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    let gun = "example.com/kms/app";
    let n = s.notary("owner");
    full_flow(&n, &s.notary("fresh"), gun, tmp.path());

    // Every key the server signs with is a KMS key, found by its alias; the TUF key ID is that
    // of the DER public key KMS reports.
    let listed = moto.boto3(
        "kms",
        "for a in client.list_aliases()['Aliases']:\n    \
         n = a['AliasName']\n    \
         if n.startswith('alias/notary/key/'):\n        \
         print(n[len('alias/notary/key/'):], base64.b64encode(client.get_public_key(KeyId=n)['PublicKey']).decode())",
    );
    let kms_keys: Vec<(String, Vec<u8>)> = listed
        .lines()
        .map(|l| {
            let (id, der) = l.split_once(' ').unwrap();
            use base64::Engine;
            (
                id.to_string(),
                base64::engine::general_purpose::STANDARD
                    .decode(der)
                    .unwrap(),
            )
        })
        .collect();
    // The first timestamp key, its replacement, and the snapshot key the owner handed over.
    assert_eq!(kms_keys.len(), 3, "{listed}");
    for (id, der) in &kms_keys {
        assert_eq!(&notary_tuf::PublicKey::new("ecdsa", der.clone()).id(), id);
    }
    for role in ["timestamp.json", "snapshot.json"] {
        let (_, body) = s.get(&s.tuf(gun, role)).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let keyid = v["signatures"][0]["keyid"].as_str().unwrap().to_string();
        assert!(
            kms_keys.iter().any(|(id, _)| *id == keyid),
            "{role} signed by {keyid}, not a KMS key"
        );
    }

    // A restarted signer finds its keys in KMS again.
    signer.restart().await;
    let f = write_file(tmp.path(), "v3.txt", b"after a restart\n");
    n.ok(&["add", gun, "v3", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    let list = s.notary("fresh-after-restart").ok(&["list", gun]);
    assert!(list.contains("v3"), "{list}");
}

/// KMS faults are clear errors, never a 500 nor a half-written repository: a disabled key
/// (the operator must act) and an unreachable endpoint answer 503 with the cause in the
/// signer's log; the repository is as before, and publishing works again once KMS does.
#[tokio::test(flavor = "multi_thread")]
async fn kms_faults_are_503s_and_leave_the_repository_whole() {
    let moto = Moto::start();
    credentials();
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    // KMS behind a proxy the test can cut.
    let proxy = Proxy::new(moto.url.trim_start_matches("http://").to_string());
    proxy.start().await;
    let mut signer = SignerProc::start_with(
        workspace_bin("notary-signer"),
        serde_json::json!({"backend": "awskms", "region": "us-east-1", "endpoint": format!("http://127.0.0.1:{}", proxy.port)}),
        vec![],
        &tls,
    )
    .await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    let gun = "example.com/kms/faults";
    let n = s.notary("owner");
    let f = write_file(tmp.path(), "t.txt", b"fault\n");
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    let before = s.snapshot_of_state(gun).await;

    // The timestamp key disabled in KMS.
    let (_, ts) = s.get(&s.tuf(gun, "timestamp.json")).await;
    let ts: serde_json::Value = serde_json::from_slice(&ts).unwrap();
    let keyid = ts["signatures"][0]["keyid"].as_str().unwrap().to_string();
    // (DisableKey takes a key ID, not an alias.)
    let key =
        format!("client.describe_key(KeyId='alias/notary/key/{keyid}')['KeyMetadata']['KeyId']");
    moto.boto3("kms", &format!("client.disable_key(KeyId={key})"));
    // (moto signs with a disabled key; real KMS refuses. The store checks a key's state at
    // its first use in a process, so a restarted signer meets the disabled key.)
    signer.restart().await;
    n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    let r = n.run(&["publish", gun]);
    assert!(!r.ok && r.output().contains("503"), "{}", r.output());
    assert_eq!(
        s.snapshot_of_state(gun).await,
        before,
        "nothing half-written"
    );
    assert!(
        signer.log().contains("disabled or pending deletion"),
        "{}",
        signer.log()
    );
    moto.boto3("kms", &format!("client.enable_key(KeyId={key})"));

    // KMS unreachable: a network that silently drops everything.
    proxy.blackhole();
    let r = n.run(&["publish", gun]);
    assert!(!r.ok && r.output().contains("503"), "{}", r.output());
    assert_eq!(
        s.snapshot_of_state(gun).await,
        before,
        "nothing half-written"
    );

    // Back: the staged change publishes.
    proxy.stop().await;
    proxy.start().await;
    n.ok(&["publish", gun]);
    assert!(s.notary("fresh").ok(&["list", gun]).contains("v2"));
    signer.stop();
}

/// A throttling KMS (every call answered `ThrottlingException`, as KMS does over its request
/// quota): the SDK retries, then the server answers 503 — never a 500 — and the signer's log
/// names the cause.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttling_kms_is_a_503() {
    credentials();
    let kms = FakeHttp::start(std::sync::Arc::new(|_req| {
        Box::pin(async {
            Reply::Bytes(
                400,
                vec![(
                    "content-type".to_string(),
                    "application/x-amz-json-1.1".to_string(),
                )],
                br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_vec(),
            )
        })
    }));
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let signer = SignerProc::start_with(
        workspace_bin("notary-signer"),
        serde_json::json!({"backend": "awskms", "region": "us-east-1", "endpoint": kms.url}),
        vec![],
        &tls,
    )
    .await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    // A new repository needs a timestamp key: KMS throttles its creation.
    let (code, body) = s
        .get(&format!(
            "{}/v2/example.com/kms/throttled/_trust/tuf/timestamp.key",
            s.url
        ))
        .await;
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert!(
        signer.log().contains("ThrottlingException"),
        "{}",
        signer.log()
    );
    assert!(
        kms.hits.load(std::sync::atomic::Ordering::Relaxed) > 1,
        "the SDK retried"
    );
}
