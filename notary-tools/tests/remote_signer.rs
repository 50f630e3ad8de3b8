//! notary-server ↔ notary-signer over gRPC with mutual TLS, with each half ours or Go's.
#![cfg(feature = "system-tests")]

mod common;

use std::time::{Duration, Instant};

use common::*;

fn shared_tls(dir: &std::path::Path) -> notary_server::tls::Generated {
    notary_server::tls::ensure_tls_files(&dir.join("mtls")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_with_our_signer_on_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let mut signer = SignerProc::start(false, Some(&create_pg_db().await), &tls).await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    let gun = "example.com/remote/ours";
    full_flow(&s.notary("owner"), &s.notary("fresh"), gun, s.tmp());
    assert_eq!(
        s.get(&format!("{}/_notary_server/health", s.url)).await.0,
        200
    );

    // Keys live in the signer's database (encrypted): a signer restart changes nothing.
    signer.restart().await;
    let owner = s.notary("owner");
    let f = write_file(s.tmp(), "v3.txt", b"three\n");
    owner.ok(&["add", gun, "v3", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    assert!(s.notary("fresh2").ok(&["list", gun]).contains("v3"));

    // Signer down: reads keep serving, publishes fail fast with 503, then work again.
    signer.stop();
    let t = Instant::now();
    let r = s.publish_request(gun, &[]).await;
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "fails fast: {:?}",
        t.elapsed()
    );
    assert!(
        s.notary("fresh3").ok(&["list", gun]).contains("v3"),
        "reads keep working"
    );
    let (st, health) = s.get(&format!("{}/_notary_server/health", s.url)).await;
    assert_eq!(st, 503);
    assert!(String::from_utf8_lossy(&health).contains("Trust operational"));
    signer.restart().await;
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(500),
        async || {
            let r = owner.run(&["add", gun, "v4", f.to_str().unwrap()]);
            assert!(r.ok);
            match owner.run(&["publish", gun]).ok {
                true => Ok(()),
                false => Err(format!(
                    "no recovery after the signer came back:\n{}",
                    s.log()
                )),
            }
        },
    )
    .await;
    assert!(s.notary("fresh4").ok(&["list", gun]).contains("v4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_server_with_our_signer() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let signer = SignerProc::start(false, Some(&create_pg_db().await), &tls).await;
    let go = GoServer::start_with(
        &create_go_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    let n = go.notary(&go.tmp.path().join("owner"));
    let fresh = go.notary(&go.tmp.path().join("fresh"));
    full_flow(&n, &fresh, "example.com/remote/go-server", go.tmp.path());
    assert!(!signer.log().contains("panicked"), "{}", signer.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_with_go_signer() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let signer = SignerProc::start(true, Some(&create_go_signer_db().await), &tls).await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        full_flow(
            &s.notary("owner"),
            &s.notary("fresh"),
            "example.com/remote/go-signer",
            s.tmp(),
        )
    }));
    assert!(
        r.is_ok(),
        "Go signer log:\n{}\nserver log:\n{}",
        signer.log(),
        s.log()
    );
    assert_eq!(
        s.get(&format!("{}/_notary_server/health", s.url)).await.0,
        200,
        "{}",
        s.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_refuses_clients_without_a_valid_certificate() {
    use notary_signer::remote::{RemoteConfig, RemoteCryptoService};
    use notary_signer::CryptoService;
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let signer = SignerProc::start(false, None, &tls).await;
    let ca_pem = std::fs::read(&tls.ca).unwrap();
    let client = |identity: Option<(Vec<u8>, Vec<u8>)>| {
        RemoteCryptoService::new(RemoteConfig {
            hostname: "127.0.0.1".into(),
            port: signer.port,
            ca_pem: ca_pem.clone(),
            client_identity: identity,
            timeout: Duration::from_secs(5),
            files: None,
        })
        .unwrap()
    };
    // With the right certificate: served.
    let good = client(Some((
        std::fs::read(&tls.cert).unwrap(),
        std::fs::read(&tls.key).unwrap(),
    )));
    good.health().await.unwrap();
    let k = good
        .create_key("timestamp", "example.com/x", "ecdsa")
        .await
        .unwrap();
    let sig = good.sign(&k.id(), b"message").await.unwrap();
    assert!(k.verify(&sig.method, b"message", &sig.sig));
    // No client certificate: refused.
    let none = client(None);
    assert!(none.health().await.is_err());
    assert!(none
        .create_key("timestamp", "example.com/x", "ecdsa")
        .await
        .is_err());
    // A certificate from another CA: refused.
    let other = notary_server::tls::ensure_tls_files(&tmp.path().join("other-ca")).unwrap();
    let stranger = client(Some((
        std::fs::read(&other.cert).unwrap(),
        std::fs::read(&other.key).unwrap(),
    )));
    assert!(stranger.health().await.is_err());
    assert!(stranger.sign(&k.id(), b"message").await.is_err());
    // A server configured with the wrong client certificate reports the signer unhealthy.
    let mut ts = signer.trust_service();
    ts["tls_client_cert"] = serde_json::json!(other.cert);
    ts["tls_client_key"] = serde_json::json!(other.key);
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": ts}),
    )
    .await;
    let (st, body) = s.get(&format!("{}/_notary_server/health", s.url)).await;
    assert_eq!(st, 503, "{}", String::from_utf8_lossy(&body));
    // Error statuses as the Go signer gives them.
    let e = good.create_key("timestamp", "g", "rsa").await.unwrap_err();
    assert!(
        matches!(e, notary_signer::CryptoError::Unsupported(_)),
        "{e}"
    );
    assert!(good.get_key(&"0".repeat(64)).await.unwrap().is_none());
    assert!(matches!(
        good.sign(&"0".repeat(64), b"m").await,
        Err(notary_signer::CryptoError::NotFound(_))
    ));
    good.delete_key(&"0".repeat(64)).await.unwrap();
    // Malformed requests get a status, never a crash (the Go signer exits on a missing key ID).
    use notary_signer::grpc::proto::{signer_client::SignerClient, SignatureRequest};
    let st = SignerClient::new(good.channel())
        .sign(SignatureRequest {
            key_id: None,
            content: b"x".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::InvalidArgument);
    good.health().await.expect("still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_server_and_go_signer_replaced_by_ours_on_their_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let signer_db = create_go_signer_db().await;
    let server_db = create_go_pg_db().await;
    let owner_dir = tmp.path().join("owner");
    let gun = "example.com/go-stack/repo";
    let f = write_file(tmp.path(), "a.txt", b"published by the Go stack\n");
    {
        let go_signer = SignerProc::start(true, Some(&signer_db), &tls).await;
        let go = GoServer::start_with(
            &server_db,
            serde_json::json!({"trust_service": go_signer.trust_service()}),
        )
        .await;
        let owner = go.notary(&owner_dir);
        owner.ok(&["init", gun]);
        owner.ok(&["add", gun, "go-v1", f.to_str().unwrap()]);
        owner.ok(&["publish", gun]);
        owner.ok(&["key", "rotate", gun, "snapshot", "-r"]);
        assert!(go
            .notary(&go.tmp.path().join("check"))
            .ok(&["list", gun])
            .contains("go-v1"));
    } // both Go processes stop here

    // Ours, on the same two databases (the signer reads the Go signer's encrypted keys).
    let signer = SignerProc::start(false, Some(&signer_db), &tls).await;
    let s = Server::start_with_config(
        &server_db,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    assert!(s.notary("fresh").ok(&["list", gun]).contains("go-v1"));
    let owner = Notary {
        server: s.url.clone(),
        ca: s.ca.clone(),
        dir: owner_dir,
    };
    owner.ok(&["add", gun, "rs-v2", f.to_str().unwrap()]);
    let r = owner.run(&["publish", gun]);
    assert!(
        r.ok,
        "{}\nserver:\n{}\nsigner:\n{}",
        r.output(),
        s.log(),
        signer.log()
    );
    let list = s.notary("fresh2").ok(&["list", gun]);
    assert!(list.contains("go-v1") && list.contains("rs-v2"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_signer_fails_publishes_fast_and_reads_keep_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let signer = SignerProc::start(false, Some(&create_pg_db().await), &tls).await;
    let mut ts = signer.trust_service();
    ts["timeout_ms"] = serde_json::json!(1500);
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": ts}),
    )
    .await;
    let gun = "example.com/hung/repo";
    let owner = s.notary("owner");
    let f = write_file(s.tmp(), "a.txt", b"a\n");
    owner.ok(&["init", gun]);
    owner.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);

    signer.signal("STOP"); // accepts connections, answers nothing
    let t = Instant::now();
    let r = s.publish_request(gun, &[]).await;
    assert_eq!(r.status(), 503);
    let (code, _) = api_error(&r.bytes().await.unwrap());
    assert_eq!(code, "UNAVAILABLE");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(
        s.notary("fresh").ok(&["list", gun]).contains("v1"),
        "reads keep serving"
    );
    signer.signal("CONT");
    owner.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    assert!(s.notary("fresh2").ok(&["list", gun]).contains("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_signer_reads_keys_our_signer_wrote_and_reencrypted() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let signer_db = create_go_signer_db().await;
    let server_db = create_pg_db().await;
    let gun = "example.com/reencrypt/repo";
    let owner_dir = tmp.path().join("owner");
    let f = write_file(tmp.path(), "a.txt", b"a\n");
    {
        let mut ours = SignerProc::start(false, Some(&signer_db), &tls).await;
        let s = Server::start_with_config(
            &server_db,
            serde_json::json!({"trust_service": ours.trust_service()}),
        )
        .await;
        let owner = Notary {
            server: s.url.clone(),
            ca: s.ca.clone(),
            dir: owner_dir.clone(),
        };
        owner.ok(&["init", gun]);
        owner.ok(&["add", gun, "v1", f.to_str().unwrap()]);
        owner.ok(&["publish", gun]);
        owner.ok(&["key", "rotate", gun, "snapshot", "-r"]);
        ours.stop();
        // Re-encrypt every key from alias timestamp_1 to alias rotated_2.
        let (ok, out) = ours.run_command(
            &[
                "reencrypt",
                "--from-alias",
                SIGNER_ALIAS,
                "--to-alias",
                "rotated_2",
            ],
            &[("NOTARY_SIGNER_ROTATED_2", "a-new-passphrase")],
        );
        assert!(ok, "{out}");
        assert!(out.contains("re-encrypted 2 key(s)"), "{out}");
    }
    // The Go signer, knowing only the new alias's passphrase, signs with those keys.
    let go_signer = SignerProc::start_with(
        std::path::PathBuf::from("notary-signer"),
        serde_json::json!({"backend": "postgres", "db_url": format!("{signer_db}?sslmode=disable"), "default_alias": "rotated_2"}),
        vec![("NOTARY_SIGNER_ROTATED_2".into(), "a-new-passphrase".into())],
        &tls,
    )
    .await;
    let s = Server::start_with_config(
        &server_db,
        serde_json::json!({"trust_service": go_signer.trust_service()}),
    )
    .await;
    let owner = Notary {
        server: s.url.clone(),
        ca: s.ca.clone(),
        dir: owner_dir,
    };
    owner.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    let r = owner.run(&["publish", gun]);
    assert!(r.ok, "{}\n{}", r.output(), go_signer.log());
    let list = s.notary("fresh").ok(&["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");
}

/// Two signers sharing one key database, both given to the server: killing or hanging either
/// one does not stop publishes; with both gone publishes fail fast (503) and recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_fails_over_between_signers() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = shared_tls(tmp.path());
    let keys = create_pg_db().await;
    let mut a = SignerProc::start(false, Some(&keys), &tls).await;
    let mut b = SignerProc::start(false, Some(&keys), &tls).await;
    let mut ts = a.trust_service();
    ts["addresses"] = serde_json::json!([format!("127.0.0.1:{}", b.port)]);
    ts["timeout_ms"] = serde_json::json!(1500);
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": ts}),
    )
    .await;
    let gun = "example.com/failover/repo";
    let owner = s.notary("owner");
    let f = write_file(s.tmp(), "a.txt", b"a\n");
    owner.ok(&["init", gun]);
    let publish = |tag: &str| {
        owner.ok(&["add", gun, tag, f.to_str().unwrap()]);
        let t = Instant::now();
        let r = owner.run(&["publish", gun]);
        assert!(r.ok, "publish {tag}: {}\nserver:\n{}", r.output(), s.log());
        t.elapsed()
    };
    publish("v1");

    a.stop();
    let took = publish("v2-a-killed");
    assert!(took < Duration::from_secs(10), "fail-over took {took:?}");
    assert_eq!(
        s.get(&format!("{}/_notary_server/health", s.url)).await.0,
        200,
        "healthy while one signer is"
    );

    a.restart().await;
    b.signal("STOP"); // hung: accepts connections, answers nothing
    publish("v3-b-hung");
    b.signal("CONT");

    a.stop();
    b.stop();
    let t = Instant::now();
    let r = s.publish_request(gun, &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(api_error(&r.bytes().await.unwrap()).0, "UNAVAILABLE");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    b.restart().await;
    publish("v4-b-back");
    let list = s.notary("fresh").ok(&["list", gun]);
    for tag in ["v1", "v2-a-killed", "v3-b-hung", "v4-b-back"] {
        assert!(list.contains(tag), "{tag} missing: {list}");
    }
    let log = s.log();
    assert!(
        log.contains("signer unavailable; using the others"),
        "{log}"
    );
}
