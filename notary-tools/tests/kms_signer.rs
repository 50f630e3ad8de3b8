//! Our notary-signer with its keys in AWS KMS (`notary-signer/src/kms.rs`), moto run as the
//! KMS endpoint, behind our notary-server, driven by the Go notary CLI.
#![cfg(feature = "system-tests")]

mod common;

use common::*;
use serde_json::{json, Value};

/// The signer's `storage` block for KMS at `endpoint`.
fn kms(endpoint: &str) -> Value {
    json!({"backend": "awskms", "region": "us-east-1", "endpoint": endpoint})
}

/// Our signer on `storage` (certificates under `tmp`) and our server, on a new database,
/// signing through it with `trust_service` settings added.
async fn signer_and_server(
    tmp: &std::path::Path,
    storage: Value,
    env: Vec<(String, String)>,
) -> (SignerProc, Server) {
    let tls = notary_server::tls::ensure_tls_files(&tmp.join("mtls")).unwrap();
    let signer = SignerProc::start_with(workspace_bin("notary-signer"), storage, env, &tls).await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        json!({"trust_service": signer.trust_service()}),
    )
    .await;
    (signer, s)
}

/// The root's key IDs for `role` of `gun` as the server serves it.
async fn root_keys(s: &Server, gun: &str, role: &str) -> Vec<String> {
    let (_, body) = s.get(&s.tuf(gun, "root.json")).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    serde_json::from_value(v["signed"]["roles"][role]["keyids"].clone()).unwrap()
}

/// A publish of `gun`'s staged change refused with a 503, the repository as `before`.
async fn assert_publish_refused(n: &Notary, s: &Server, gun: &str, before: &[(u16, Vec<u8>)]) {
    let r = n.run(&["publish", gun]);
    assert!(!r.ok && r.output().contains("503"), "{}", r.output());
    assert_eq!(
        s.snapshot_of_state(gun).await,
        before,
        "nothing half-written"
    );
}

/// The key that signed `gun`'s current `file` (timestamp.json, snapshot.json).
async fn signed_by(s: &Server, gun: &str, file: &str) -> String {
    let (_, body) = s.get(&s.tuf(gun, file)).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["signatures"][0]["keyid"].as_str().unwrap().to_string()
}

/// The Go CLI's flow (init, publish, `key rotate timestamp -r`, `key rotate snapshot -r`,
/// publish, list and verify from a fresh client) with the server's keys made and used in KMS:
/// the key IDs clients see are those of the public keys KMS reports (the Go client verified
/// the signatures with them), the keys are found again after a signer restart.
#[tokio::test(flavor = "multi_thread")]
async fn the_go_cli_flow_with_keys_in_kms() {
    let moto = Moto::start();
    credentials();
    let tmp = tempfile::tempdir().unwrap();
    let (mut signer, s) = signer_and_server(tmp.path(), kms(&moto.url), vec![]).await;
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
        let keyid = signed_by(&s, gun, role).await;
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

    // Docker Content Trust through the same server: `docker push` with trust makes the new
    // repository's server-held keys in KMS; a fresh docker client pulls through trust.
    let reg = Registry::start(None);
    let d = DockerCli::new(tmp.path(), &s);
    let image = format!("127.0.0.1:{}/kms/app{}:v1", reg.port, std::process::id());
    d.make_image(tmp.path(), &image, "signed with a KMS-held timestamp key\n");
    let out = d.ok(true, &["push", &image]);
    assert!(out.contains("Successfully signed"), "{out}");
    let docker_gun = image.trim_end_matches(":v1");
    let ts_key = signed_by(&s, docker_gun, "timestamp.json").await;
    moto.boto3(
        "kms",
        &format!("client.describe_key(KeyId='alias/notary/key/{ts_key}')"),
    );
    d.forget_image(&image);
    d.forget_trust_cache();
    let out = d.ok(true, &["pull", &image]);
    assert!(out.contains(&format!("as {image}")), "{out}");
}

/// KMS faults are clear errors, never a 500 nor a half-written repository: a disabled key
/// or one pending deletion (the operator must act) and an unreachable endpoint answer 503 with the cause in the
/// signer's log; the repository is as before, and publishing works again once KMS does.
#[tokio::test(flavor = "multi_thread")]
async fn kms_faults_are_503s_and_leave_the_repository_whole() {
    let moto = Moto::start();
    credentials();
    let tmp = tempfile::tempdir().unwrap();
    // KMS behind a proxy the test can cut.
    let proxy = Proxy::new(moto.url.trim_start_matches("http://").to_string());
    proxy.start().await;
    let (mut signer, s) = signer_and_server(
        tmp.path(),
        kms(&format!("http://127.0.0.1:{}", proxy.port)),
        vec![],
    )
    .await;
    let gun = "example.com/kms/faults";
    let n = s.notary("owner");
    let f = write_file(tmp.path(), "t.txt", b"fault\n");
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    let before = s.snapshot_of_state(gun).await;

    // The timestamp key's faults.
    let keyid = signed_by(&s, gun, "timestamp.json").await;
    // (DisableKey takes a key ID, not an alias.)
    let key =
        format!("client.describe_key(KeyId='alias/notary/key/{keyid}')['KeyMetadata']['KeyId']");
    n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    // Disabled, then scheduled for deletion (cancelling leaves a key disabled, as in KMS).
    // (moto signs with such keys; real KMS refuses. The store checks a key's state at its
    // first use in a process, so a restarted signer meets the key's state.)
    for (fault, undo, log) in [
        (
            "disable_key(KeyId={key})",
            &["enable_key"][..],
            "disabled or pending deletion",
        ),
        (
            "schedule_key_deletion(KeyId={key}, PendingWindowInDays=7)",
            &["cancel_key_deletion", "enable_key"][..],
            "PendingDeletion",
        ),
    ] {
        moto.boto3("kms", &format!("client.{}", fault.replace("{key}", &key)));
        signer.restart().await;
        assert_publish_refused(&n, &s, gun, &before).await;
        assert!(signer.log().contains(log), "{}", signer.log());
        for u in undo {
            moto.boto3("kms", &format!("client.{u}(KeyId={key})"));
        }
    }
    signer.restart().await;

    // KMS unreachable: a network that silently drops everything.
    proxy.blackhole();
    assert_publish_refused(&n, &s, gun, &before).await;

    // Back: the staged change publishes.
    proxy.stop().await;
    proxy.start().await;
    n.ok(&["publish", gun]);
    assert!(s.notary("fresh").ok(&["list", gun]).contains("v2"));
    signer.stop();
}

/// A KMS that answers every call with an error, as AWS does: throttling
/// (`ThrottlingException`, over the request quota) is retried by the SDK, then the server
/// answers 503; wrong credentials (`UnrecognizedClientException`, an unknown access key) are
/// a 503 at once, the signer's log saying to check them. Never a 500.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttling_or_refusing_kms_is_a_503() {
    credentials();
    for (error, retried, log) in [
        ("ThrottlingException", true, "ThrottlingException"),
        (
            "UnrecognizedClientException",
            false,
            "check the credentials and the key policy",
        ),
    ] {
        let body = format!(r#"{{"__type":"{error}","message":"refused by the test"}}"#);
        let fake = FakeHttp::start(std::sync::Arc::new(move |_req| {
            let body = body.clone().into_bytes();
            Box::pin(async move {
                Reply::Bytes(
                    400,
                    vec![(
                        "content-type".to_string(),
                        "application/x-amz-json-1.1".to_string(),
                    )],
                    body,
                )
            })
        }));
        let tmp = tempfile::tempdir().unwrap();
        let (signer, s) = signer_and_server(tmp.path(), kms(&fake.url), vec![]).await;
        // A new repository needs a timestamp key: KMS refuses its creation.
        let (code, body) = s
            .get(&format!(
                "{}/v2/example.com/kms/refused/_trust/tuf/timestamp.key",
                s.url
            ))
            .await;
        assert_eq!(code, 503, "{error}: {}", String::from_utf8_lossy(&body));
        assert!(signer.log().contains(log), "{error}: {}", signer.log());
        let hits = fake.hits.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(hits > 1, retried, "{error}: {hits} calls");
    }
}

/// Keys move from the SQL store to KMS the way TUF allows: the signer switched to KMS with
/// `migrate_from` keeps signing with the SQL keys; `notary-server migrate-keys` reports each
/// role and makes the KMS keys (the same ones when run again); the owner's stock `notary key
/// rotate … -r` receives exactly those; afterwards every server-held key is in KMS, the SQL
/// store is no longer needed, and clients with old caches follow.
#[tokio::test(flavor = "multi_thread")]
async fn sql_keys_move_to_kms_by_rotation() {
    let moto = Moto::start();
    credentials();
    let tmp = tempfile::tempdir().unwrap();
    let keys = create_pg_db().await;
    let passphrase = vec![(
        format!("NOTARY_SIGNER_{}", SIGNER_ALIAS.to_uppercase()),
        SIGNER_PASSPHRASE.to_string(),
    )];
    let (mut signer, s) = signer_and_server(
        tmp.path(),
        json!({"backend": "postgres", "db_url": keys, "default_alias": SIGNER_ALIAS}),
        passphrase.clone(),
    )
    .await;
    // `both`: the server holds its timestamp and snapshot keys; `one`: only the timestamp key.
    let (both, one) = ("example.com/move/both", "example.com/move/one");
    let n = s.notary("owner");
    let f = write_file(tmp.path(), "t.txt", b"moving\n");
    for gun in [both, one] {
        n.ok(&["init", gun]);
        n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
        n.ok(&["publish", gun]);
    }
    n.ok(&["key", "rotate", both, "snapshot", "-r"]);
    let old_ts = root_keys(&s, both, "timestamp").await;

    // The signer on KMS, the SQL store's keys still signing.
    let mut storage = kms(&moto.url);
    storage["migrate_from"] = json!(keys);
    signer
        .reconfigure(storage.clone(), passphrase.clone())
        .await
        .unwrap();
    for gun in [both, one] {
        n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
        n.ok(&["publish", gun]);
    }
    assert_eq!(signed_by(&s, both, "timestamp.json").await, old_ts[0]);

    let signer_config = signer.tmp.path().join("signer.json");
    let report_file = tmp.path().join("report.json");
    let migrate = || {
        let out = s
            .admin(&[
                "migrate-keys",
                "--signer-config",
                signer_config.to_str().unwrap(),
                "--report",
                report_file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "{text}");
        let report: Vec<Value> =
            serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
        let by_role = report
            .iter()
            .map(|r| {
                (
                    format!(
                        "{} {}",
                        r["gun"].as_str().unwrap(),
                        r["role"].as_str().unwrap()
                    ),
                    (
                        r["status"].as_str().unwrap().to_string(),
                        r["new_key"].as_str().map(String::from),
                    ),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>();
        (text, by_role)
    };
    let (text, first) = migrate();
    assert!(
        text.contains("0 roles in KMS, 3 await the owner's rotation, 1 held by owners, 0 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("notary key rotate {both} timestamp -r")),
        "{text}"
    );
    assert_eq!(first[&format!("{one} snapshot")].0, "owner's key");
    // Run again (as after an interruption): the same keys, none made twice.
    let (_, again) = migrate();
    assert_eq!(first, again);

    // The owner's half: stock rotations, which receive the keys prepared in KMS.
    n.ok(&["key", "rotate", both, "timestamp", "-r"]);
    n.ok(&["key", "rotate", both, "snapshot", "-r"]);
    n.ok(&["key", "rotate", one, "timestamp", "-r"]);
    for (gun, role) in [(both, "timestamp"), (both, "snapshot"), (one, "timestamp")] {
        let prepared = first[&format!("{gun} {role}")].1.clone().unwrap();
        assert_eq!(root_keys(&s, gun, role).await, vec![prepared.clone()]);
        assert_eq!(signed_by(&s, gun, &format!("{role}.json")).await, prepared);
    }
    let (text, _) = migrate();
    assert!(
        text.contains("3 roles in KMS, 0 await the owner's rotation, 1 held by owners, 0 failed"),
        "{text}"
    );

    // The SQL store is no longer needed: KMS alone signs, and clients follow.
    signer.reconfigure(kms(&moto.url), vec![]).await.unwrap();
    for gun in [both, one] {
        n.ok(&["add", gun, "v3", f.to_str().unwrap()]);
        n.ok(&["publish", gun]);
        let list = s.notary("fresh").ok(&["list", gun]);
        assert!(list.contains("v3"), "{list}");
    }
}

/// Two signers on one KMS account, both given to the server: a key one made is found and used
/// by the other, so killing either does not stop publishes (as with a shared SQL store).
#[tokio::test(flavor = "multi_thread")]
async fn two_signers_on_one_kms_fail_over() {
    let moto = Moto::start();
    credentials();
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let bin = workspace_bin("notary-signer");
    let mut a = SignerProc::start_with(bin.clone(), kms(&moto.url), vec![], &tls).await;
    let mut b = SignerProc::start_with(bin, kms(&moto.url), vec![], &tls).await;
    let mut ts = a.trust_service();
    ts["addresses"] = json!([format!("127.0.0.1:{}", b.port)]);
    ts["timeout_ms"] = json!(3000);
    let s = Server::start_with_config(&create_pg_db().await, json!({"trust_service": ts})).await;
    let gun = "example.com/kms/failover";
    let n = s.notary("owner");
    let f = write_file(tmp.path(), "t.txt", b"fail over\n");
    n.ok(&["init", gun]);
    let publish = |tag: &str| {
        n.ok(&["add", gun, tag, f.to_str().unwrap()]);
        let r = n.run(&["publish", gun]);
        assert!(r.ok, "publish {tag}: {}\nserver:\n{}", r.output(), s.log());
    };
    publish("v1");
    n.ok(&["key", "rotate", gun, "snapshot", "-r"]);
    a.stop();
    publish("v2-a-killed");
    a.restart().await;
    b.stop();
    publish("v3-b-killed");
    let list = s.notary("fresh").ok(&["list", gun]);
    for tag in ["v1", "v2-a-killed", "v3-b-killed"] {
        assert!(list.contains(tag), "{tag} missing: {list}");
    }
}

/// The signer's gRPC key management on the KMS store, as notary-server (Go's or ours) uses
/// it: a never-used key is handed out again and a used one is not; a key is found with its
/// role; signatures verify with the public key; a deleted key has its alias removed
/// and its KMS key scheduled for deletion, and no longer signs.
#[tokio::test(flavor = "multi_thread")]
async fn keys_are_made_found_used_and_deleted_over_grpc() {
    use notary_signer::remote::{RemoteConfig, RemoteCryptoService};
    use notary_signer::{CryptoError, CryptoService};
    let moto = Moto::start();
    credentials();
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let signer =
        SignerProc::start_with(workspace_bin("notary-signer"), kms(&moto.url), vec![], &tls).await;
    let client = RemoteCryptoService::new(RemoteConfig {
        hostname: "127.0.0.1".into(),
        port: signer.port,
        ca_pem: std::fs::read(&tls.ca).unwrap(),
        client_identity: Some((
            std::fs::read(&tls.cert).unwrap(),
            std::fs::read(&tls.key).unwrap(),
        )),
        timeout: std::time::Duration::from_secs(10),
        files: None,
    })
    .unwrap();
    let gun = "example.com/kms/grpc";
    let k = client.create_key("timestamp", gun, "ecdsa").await.unwrap();
    let again = client.create_key("timestamp", gun, "ecdsa").await.unwrap();
    assert_eq!(k.id(), again.id(), "a never-used key is handed out again");
    let info = client.get_key(&k.id()).await.unwrap().unwrap();
    // (Go's GetKeyInfo answers the role, not the GUN.)
    assert_eq!(info.role, "timestamp");
    let sig = client.sign(&k.id(), b"canonical bytes").await.unwrap();
    assert!(k.verify(&sig.method, b"canonical bytes", &sig.sig));
    let next = client.create_key("timestamp", gun, "ecdsa").await.unwrap();
    assert_ne!(next.id(), k.id(), "a used key is not handed out again");

    let kms_id = moto.boto3(
        "kms",
        &format!(
            "print(client.describe_key(KeyId='alias/notary/key/{}')['KeyMetadata']['KeyId'])",
            k.id()
        ),
    );
    client.delete_key(&k.id()).await.unwrap();
    assert!(client.get_key(&k.id()).await.unwrap().is_none());
    let state = moto.boto3(
        "kms",
        &format!(
            "print(client.describe_key(KeyId='{}')['KeyMetadata']['KeyState'])",
            kms_id.trim()
        ),
    );
    assert_eq!(state.trim(), "PendingDeletion");
    assert!(matches!(
        client.sign(&k.id(), b"after deletion").await,
        Err(CryptoError::NotFound(_))
    ));
}
