//! Docker Content Trust on the machine's real Docker engine: Debian's docker-registry on
//! loopback, our notary-server + our notary-signer on Postgres, images made locally with
//! `docker import` (nothing is pulled from outside).
#![cfg(feature = "system-tests")]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_push_pull_unsigned_refused_signers_and_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let signer = SignerProc::start(false, Some(&create_pg_db().await), &tls).await;
    // Every metadata file over 64 bytes is served gzip to the docker CLI (it asks for gzip):
    // nothing changes for it (`compression`).
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service(), "caching": {"gzip_min_bytes": 64}}),
    )
    .await;
    let reg = Registry::start(None);
    let d = DockerCli::new(tmp.path(), &s);
    let repo = format!("127.0.0.1:{}/dct/app{}", reg.port, std::process::id());
    let v1 = format!("{repo}:v1");

    // Trusted push: the image goes to the registry, its signature to our server.
    d.make_image(tmp.path(), &v1, "version one\n");
    let out = d.ok(true, &["push", &v1]);
    assert!(
        out.contains("Successfully signed") && out.contains(":v1"),
        "{out}"
    );

    // A fresh client (no image, no cached trust data) pulls through trust.
    d.forget_image(&v1);
    d.forget_trust_cache();
    let out = d.ok(true, &["pull", &v1]);
    assert!(
        out.contains("Tagging") && out.contains(&format!("as {v1}")),
        "{out}"
    );

    // A tag pushed without trust is refused on a trusted pull.
    let unsigned = format!("{repo}:unsigned");
    d.make_image(tmp.path(), &unsigned, "never signed\n");
    d.ok(false, &["push", &unsigned]);
    d.forget_image(&unsigned);
    let (ok, out) = d.run(true, &["pull", &unsigned], b"");
    assert!(
        !ok && out.contains("No valid trust data for unsigned"),
        "{out}"
    );

    // Revoke v1 (signed by the repository key): a trusted pull of it then fails.
    let out = d.ok(false, &["trust", "revoke", "--yes", &v1]);
    assert!(out.contains("Successfully deleted signature"), "{out}");
    d.forget_image(&v1);
    d.forget_trust_cache();
    let (ok, out) = d.run(true, &["pull", &v1], b"");
    assert!(!ok, "{out}");

    // Signers: a key for alice, added to the repository; alice signs v2.
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    d.ok(
        false,
        &[
            "trust",
            "key",
            "generate",
            "alice",
            "--dir",
            keys.to_str().unwrap(),
        ],
    );
    d.ok(
        false,
        &[
            "trust",
            "signer",
            "add",
            "--key",
            keys.join("alice.pub").to_str().unwrap(),
            "alice",
            &repo,
        ],
    );
    let v2 = format!("{repo}:v2");
    d.make_image(tmp.path(), &v2, "version two\n");
    let out = d.ok(false, &["trust", "sign", &v2]);
    assert!(out.contains("Successfully signed"), "{out}");
    let inspect = d.ok(false, &["trust", "inspect", "--pretty", &repo]);
    assert!(
        inspect
            .lines()
            .any(|l| l.starts_with("v2") && l.contains("alice")),
        "{inspect}"
    );
    d.forget_image(&v2);
    d.forget_trust_cache();
    d.ok(true, &["pull", &v2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_push_and_pull_with_token_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ts = TokenService::new(tmp.path(), "notary.test");
    ts.serve().await;
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let signer = SignerProc::start(false, Some(&create_pg_db().await), &tls).await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service(), "auth": ts.auth_config()}),
    )
    .await;
    let reg = Registry::start(Some((&ts.realm, &ts.issuer, &ts.bundle)));
    let d = DockerCli::new(tmp.path(), &s);
    let host = format!("127.0.0.1:{}", reg.port);
    // One login: the daemon uses it for the registry, the CLI for notary's realm.
    let (ok, out) = d.run(
        false,
        &["login", &host, "-u", "alice", "--password-stdin"],
        b"secret\n",
    );
    assert!(ok && out.contains("Login Succeeded"), "{out}");
    let tag = format!("{host}/auth/app{}:v1", std::process::id());
    d.make_image(tmp.path(), &tag, "behind token auth\n");
    let out = d.ok(true, &["push", &tag]);
    assert!(out.contains("Successfully signed"), "{out}");
    d.forget_image(&tag);
    d.forget_trust_cache();
    let out = d.ok(true, &["pull", &tag]);
    assert!(out.contains(&format!("as {tag}")), "{out}");
    // The server saw only authorised writes; an anonymous raw write is refused.
    let gun = tag.rsplit_once(':').unwrap().0;
    assert_eq!(s.publish_request(gun, &[]).await.status(), 401);
}
