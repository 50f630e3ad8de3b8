//! Certificate rotation without a restart: the server's TLS certificate is re-read on SIGHUP
//! and when its files change; new connections get the new one, a request in flight across the
//! reload completes, and a broken pair (half-written) never replaces a working one.
#![cfg(feature = "system-tests")]

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;

fn client(ca: &std::path::Path) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(cert)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Wait until a new client (no TLS session to resume) trusting `ca` is served.
async fn wait_until_served(ca: &std::path::Path, url: &str, what: &str) {
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || match client(ca).get(url).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            _ => Err(what.to_string()),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_reloads_on_sighup_and_file_change() {
    let s = Server::start_with_config(&create_pg_db().await, serde_json::json!({})).await;
    let gun = "example.com/tls/reload";
    let repo = init_repo(&s, gun).await;
    let ping = format!("{}/v2/", s.url);
    let (old_ca, cert, key) = (
        s.data.join("tls/ca.crt"),
        s.data.join("tls/server.crt"),
        s.data.join("tls/server.key"),
    );
    let (old_cert, old_key) = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    let new = notary_server::tls::ensure_tls_files(&s.tmp().join("rotated")).unwrap();
    let (old_client, new_client) = (client(&old_ca), client(&new.ca));
    assert_eq!(old_client.get(&ping).send().await.unwrap().status(), 200);
    assert!(
        new_client.get(&ping).send().await.is_err(),
        "the new CA must not be trusted yet"
    );

    // A publish whose body trickles in over ~3 s, in flight across the reload.
    let targets = repo.targets_file(2, &[("during-reload", b"x")]);
    let (ct, body) = multipart(&[("targets", &targets)]);
    let chunks: Vec<Vec<u8>> = body
        .chunks(body.len() / 30 + 1)
        .map(|c| c.to_vec())
        .collect();
    // (A new client, so the upload does not start on a pooled connection the server is about to
    // close for idleness.)
    let (http, url) = (client(&old_ca), s.tuf(gun, ""));
    let in_flight = tokio::spawn(async move {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>))
            .then(|c| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                c
            });
        match http
            .post(url)
            .header("content-type", ct)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, format!("{e:?}")),
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A half-written pair (new key, old certificate) is refused and the old pair keeps serving.
    std::fs::copy(&new.key, &key).unwrap();
    s.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client(&old_ca).get(&ping).send().await.unwrap().status(),
        200,
        "a mismatched pair replaced the working one"
    );
    assert!(
        s.log()
            .contains("TLS certificate not reloaded; keeping the previous one"),
        "{}",
        s.log()
    );

    // The whole new pair, then SIGHUP: new connections get the new certificate.
    std::fs::copy(&new.cert, &cert).unwrap();
    s.signal("HUP");
    wait_until_served(
        &new.ca,
        &ping,
        "the new certificate was not served after SIGHUP",
    )
    .await;
    // (A fresh client: TLS session resumption lets a client that already connected skip the
    // certificate, which is fine — what matters is what a new client is shown.)
    assert!(
        client(&old_ca).get(&ping).send().await.is_err(),
        "new connections still got the old certificate"
    );

    let (st, body) = in_flight.await.unwrap();
    assert_eq!(
        st,
        200,
        "the publish in flight across the reload failed: {body}\n{}",
        s.log()
    );
    assert_eq!(version_of(&s.get(&s.tuf(gun, "targets.json")).await.1), 2);

    // Rotating back by changing the files alone (no signal) is picked up too.
    std::fs::write(&key, &old_key).unwrap();
    std::fs::write(&cert, &old_cert).unwrap();
    wait_until_served(&old_ca, &ping, "the file change was not picked up").await;
    assert!(client(&new.ca).get(&ping).send().await.is_err());
}

/// SHA-256 fingerprint of the certificate a TLS server presents (openssl s_client).
fn served_fingerprint(port: u16) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The signer's certificate rotates too (here to one from a new CA that the servers' bundle
/// already trusts): after SIGHUP new connections get it, the server's established connection
/// keeps working, and a server connecting afresh verifies the new certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_certificate_reloads_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let ca1 = notary_server::tls::ensure_tls_files(&tmp.path().join("ca1")).unwrap();
    let ca2 = notary_server::tls::ensure_tls_files(&tmp.path().join("ca2")).unwrap();
    // The signer's own copies of its certificate and key (what an operator replaces).
    let dir = tmp.path().join("signer");
    std::fs::create_dir_all(&dir).unwrap();
    let own = notary_server::tls::Generated {
        ca: ca1.ca.clone(),
        cert: dir.join("signer.crt"),
        key: dir.join("signer.key"),
    };
    std::fs::copy(&ca1.cert, &own.cert).unwrap();
    std::fs::copy(&ca1.key, &own.key).unwrap();
    let mut bundle = std::fs::read(&ca1.ca).unwrap();
    bundle.extend(std::fs::read(&ca2.ca).unwrap());
    std::fs::write(tmp.path().join("bundle.pem"), bundle).unwrap();
    let signer = SignerProc::start(false, None, &own).await;
    let mut trust = signer.trust_service();
    trust["tls_ca_file"] = serde_json::json!(tmp.path().join("bundle.pem"));
    trust["tls_client_cert"] = serde_json::json!(ca1.cert);
    trust["tls_client_key"] = serde_json::json!(ca1.key);
    let db = create_pg_db().await;
    let s = Server::start_with_config(&db, serde_json::json!({"trust_service": trust})).await;
    let gun = "example.com/tls/signer";
    let repo = init_repo(&s, gun).await;
    let before = served_fingerprint(signer.port);
    assert!(before.contains("Fingerprint"), "{before}");

    std::fs::copy(&ca2.key, &own.key).unwrap();
    std::fs::copy(&ca2.cert, &own.cert).unwrap();
    signer.signal("HUP");
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || match served_fingerprint(signer.port) == before {
            false => Ok(()),
            true => Err(format!(
                "the signer still serves its old certificate:\n{}",
                signer.log()
            )),
        },
    )
    .await;
    assert!(
        signer.log().contains("reloaded the TLS certificate"),
        "{}",
        signer.log()
    );

    // The established connection keeps working; a new server connects to the new certificate.
    let (st, body) = s
        .post_parts(gun, &[("targets", &repo.targets_file(2, &[("a", b"a")]))])
        .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let fresh = Server::start_with_config(&db, serde_json::json!({"trust_service": trust})).await;
    let (st, body) = fresh
        .post_parts(gun, &[("targets", &repo.targets_file(3, &[("b", b"b")]))])
        .await;
    assert_eq!(
        st,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&body),
        fresh.log()
    );
    assert_eq!(
        version_of(&fresh.get(&fresh.tuf(gun, "targets.json")).await.1),
        3
    );
}

/// Client-certificate rotation between server and signer, without a restart of either: the
/// server switches to a client certificate from a new CA (its files change; it reloads and new
/// calls handshake with the new certificate, which the signer does not accept yet → 503), then
/// the signer's client-CA bundle gains the new CA (file change; it reloads) and publishes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_rotate_without_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let ca1 = notary_server::tls::ensure_tls_files(&tmp.path().join("ca1")).unwrap();
    let ca2 = notary_server::tls::ensure_tls_files(&tmp.path().join("ca2")).unwrap();
    // The signer's client-CA bundle and the server's client certificate: files an operator edits.
    let clients_ca = tmp.path().join("signer-clients.pem");
    std::fs::copy(&ca1.ca, &clients_ca).unwrap();
    let (client_cert, client_key) = (tmp.path().join("client.crt"), tmp.path().join("client.key"));
    std::fs::copy(&ca1.cert, &client_cert).unwrap();
    std::fs::copy(&ca1.key, &client_key).unwrap();
    let signer_tls = notary_server::tls::Generated {
        ca: clients_ca.clone(),
        cert: ca1.cert.clone(),
        key: ca1.key.clone(),
    };
    let signer = SignerProc::start(false, Some(&create_pg_db().await), &signer_tls).await;
    let mut trust = signer.trust_service();
    trust["tls_ca_file"] = serde_json::json!(ca1.ca);
    trust["tls_client_cert"] = serde_json::json!(client_cert);
    trust["tls_client_key"] = serde_json::json!(client_key);
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": trust}),
    )
    .await;
    let gun = "example.com/tls/clients";
    let repo = init_repo(&s, gun).await;

    // 1. The server's client certificate changes to one from CA2 (key first: the half-written
    //    state is refused and the previous pair kept).
    std::fs::copy(&ca2.key, &client_key).unwrap();
    std::fs::copy(&ca2.cert, &client_cert).unwrap();
    s.signal("HUP");
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(200),
        async || {
            let (st, _) = s
                .post_parts(gun, &[("targets", &repo.targets_file(2, &[("a", b"a")]))])
                .await;
            assert_ne!(
                st, 200,
                "the signer accepted a client certificate from a CA it does not trust yet"
            );
            // 503: a new handshake with the new certificate, refused by the signer.
            (st == 503).then_some(()).ok_or(format!("status {st}"))
        },
    )
    .await;
    assert!(
        s.log().contains("reloaded the signer TLS files"),
        "{}",
        s.log()
    );

    // 2. The signer's bundle gains CA2 (file change only): publishes work again.
    let mut bundle = std::fs::read(&ca1.ca).unwrap();
    bundle.extend(std::fs::read(&ca2.ca).unwrap());
    std::fs::write(&clients_ca, bundle).unwrap();
    eventually(
        Duration::from_secs(15),
        Duration::from_millis(250),
        async || {
            let (st, body) = s
                .post_parts(gun, &[("targets", &repo.targets_file(2, &[("a", b"a")]))])
                .await;
            (st == 200).then_some(()).ok_or_else(|| {
                format!(
                    "no recovery after the signer's CA bundle changed: {st} {}\n{}",
                    String::from_utf8_lossy(&body),
                    signer.log()
                )
            })
        },
    )
    .await;
    assert!(
        signer.log().contains("reloaded the client CA bundle"),
        "{}",
        signer.log()
    );
    assert_eq!(version_of(&s.get(&s.tuf(gun, "targets.json")).await.1), 2);
}
