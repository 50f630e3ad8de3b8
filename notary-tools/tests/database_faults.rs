//! Postgres unreachable at start, going away and coming back: the server waits, reports, and
//! recovers without a restart.
#![cfg(feature = "system-tests")]

mod common;

use std::time::{Duration, Instant};

use common::*;

async fn health(s: &Server) -> (u16, String) {
    let (st, body) = s.get(&format!("{}/_notary_server/health", s.url)).await;
    (st, String::from_utf8_lossy(&body).into())
}

// Multi-threaded: the proxy runs on this runtime while the test blocks on CLI processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_database_and_recovers_after_an_outage() {
    let db = create_pg_db().await;
    let proxy = Proxy::new(host_port(&db));
    // The database becomes reachable only two seconds after the server starts.
    let starter = {
        let p = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            p.start().await;
        })
    };
    let s = Server::start_with_config(
        &proxy.url(&db),
        serde_json::json!({"storage": {"connect_retry_seconds": 30}}),
    )
    .await;
    starter.await.unwrap();
    let c = s.notary("c");
    let f = write_file(s.tmp(), "a.txt", b"a\n");
    c.ok(&["init", "example.com/outage/repo"]);
    c.ok(&["add", "example.com/outage/repo", "v1", f.to_str().unwrap()]);
    c.ok(&["publish", "example.com/outage/repo"]);

    // The database goes away: health says so (quickly), the process stays up.
    proxy.stop().await;
    let t = Instant::now();
    let (st, body) = health(&s).await;
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("DB operational"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(8));
    let (st, body) = s.get(&s.tuf("example.com/outage/repo", "root.json")).await;
    assert!(st >= 500, "{st} {}", String::from_utf8_lossy(&body));

    // It comes back: the same process serves again.
    proxy.start().await;
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || match health(&s).await.0 {
            200 => Ok(()),
            st => Err(format!("no recovery ({st}): {}", s.log())),
        },
    )
    .await;
    assert!(s
        .notary("fresh")
        .ok(&["list", "example.com/outage/repo"])
        .contains("v1"));
    c.ok(&["add", "example.com/outage/repo", "v2", f.to_str().unwrap()]);
    c.ok(&["publish", "example.com/outage/repo"]);
}

#[tokio::test]
async fn gives_up_with_a_clear_error_when_the_database_never_comes() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = serde_json::json!({
        "server": {"http_addr": "127.0.0.1:0"},
        "trust_service": {"type": "local"},
        "storage": {"backend": "postgres", "db_url": format!("postgres://notary:secret-password@127.0.0.1:{port}/notary"), "connect_retry_seconds": 2}
    });
    let path = tmp.path().join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let t = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_notary-server"))
        .args(["--config", path.to_str().unwrap()])
        .env("NOTARY_SERVER_KEY_PASSPHRASE", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Where, for how long, and why.
    assert!(
        err.contains(&format!(
            "the database at postgres://notary@127.0.0.1:{port}/notary is not reachable"
        )),
        "{err}"
    );
    assert!(
        err.contains("retried for 2s") && err.to_lowercase().contains("connection refused"),
        "{err}"
    );
    assert!(
        !err.contains("secret-password"),
        "the password must not be printed: {err}"
    );
    assert!(t.elapsed() < Duration::from_secs(20));
}

/// A silent partition from the database (packets dropped, no reset — the statement never
/// reaches Postgres, so its statement_timeout cannot fire): requests still end within the
/// statement timeout plus 2 s with 503 UNAVAILABLE instead of hanging, cached reads keep
/// serving, and everything works again once the partition heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_database_partition_fails_fast_and_heals() {
    let db = create_pg_db().await;
    let proxy = Proxy::new(host_port(&db));
    proxy.start().await;
    let s = Server::start_with_config(
        &proxy.url(&db),
        serde_json::json!({"storage": {"statement_timeout_ms": 1000}}),
    )
    .await;
    let gun = "example.com/partition/repo";
    let repo = init_repo(&s, gun).await;
    let (_, sha_file) = s.get(&s.tuf(gun, "timestamp.json")).await;
    let by_hash = s.tuf(
        gun,
        &format!("snapshot.{}.json", snapshot_sha_from_timestamp(&sha_file)),
    );
    assert_eq!(s.get(&by_hash).await.0, 200); // now cached

    proxy.blackhole();
    let t = Instant::now();
    let (st, body) = s
        .post_parts(gun, &[("targets", &repo.targets_file(2, &[("x", b"x")]))])
        .await;
    assert_eq!(st, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(api_error(&body).0, "UNAVAILABLE");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "a publish hung for {:?} on a silent partition:\n{}",
        t.elapsed(),
        s.log()
    );
    let t = Instant::now();
    assert_eq!(s.get(&s.tuf(gun, "timestamp.json")).await.0, 503);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "a read hung for {:?}",
        t.elapsed()
    );
    assert_eq!(
        s.get(&by_hash).await.0,
        200,
        "content-addressed reads are served from the cache"
    );
    let (st, _) = health(&s).await;
    assert_eq!(st, 503);

    proxy.stop().await;
    proxy.start().await;
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(200),
        async || {
            let (st, _) = s
                .post_parts(gun, &[("targets", &repo.targets_file(2, &[("x", b"x")]))])
                .await;
            (st == 200).then_some(()).ok_or_else(|| {
                format!(
                    "no recovery after the partition healed ({st}):\n{}",
                    s.log()
                )
            })
        },
    )
    .await;
    assert_eq!(version_of(&s.get(&s.tuf(gun, "targets.json")).await.1), 2);
}

/// The signer's SQL key store on a silent partition from its database: every statement is
/// bounded by the pool's call limit, so looking a key up, loading it to sign and making a key
/// each fail `Unavailable` within it (the server answers 503) instead of waiting for TCP, and
/// work again once the partition heals. (A connection is no longer pinged before each use:
/// this bound is what finds a connection cut off silently.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signer_key_store_gives_up_on_a_silent_partition() {
    use notary_common::db::{Db, PoolConfig};
    use notary_signer::passphrase::Passphrases;
    use notary_signer::sql::SqlKeyStore;
    use notary_signer::{CryptoError, CryptoService};
    let db = create_pg_db().await;
    let proxy = Proxy::new(host_port(&db));
    proxy.start().await;
    let pool = PoolConfig {
        statement_timeout: Duration::from_millis(500),
        ..PoolConfig::default()
    };
    let open = || async {
        let conn = Db::connect(&proxy.url(&db), &pool).await.unwrap();
        let passphrase = zeroize::Zeroizing::new("partition".to_string());
        SqlKeyStore::new(conn, Passphrases::single("a", passphrase))
            .await
            .unwrap()
            .with_call_limit(pool.call_limit())
    };
    let made = open()
        .await
        .create_key("timestamp", "example.com/partition/keys", "ecdsa")
        .await
        .unwrap();
    // A store that has not used the key yet: signing loads it from the database.
    let store = open().await;
    proxy.blackhole();
    for (what, t, r) in [
        {
            let t = Instant::now();
            let r = store.get_key(&made.id()).await.map(|_| ());
            ("looking a key up", t.elapsed(), r)
        },
        {
            let t = Instant::now();
            let r = store.sign(&made.id(), b"canonical").await.map(|_| ());
            ("signing", t.elapsed(), r)
        },
        {
            let t = Instant::now();
            let r = store
                .create_key("snapshot", "example.com/partition/keys", "ecdsa")
                .await
                .map(|_| ());
            ("making a key", t.elapsed(), r)
        },
    ] {
        assert!(
            matches!(&r, Err(CryptoError::Unavailable(m)) if m.contains("no answer within")),
            "{what}: {r:?}"
        );
        assert!(
            t < pool.call_limit() + Duration::from_secs(1),
            "{what} took {t:?}"
        );
    }
    proxy.stop().await;
    proxy.start().await;
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(200),
        async || {
            store
                .sign(&made.id(), b"canonical")
                .await
                .map_err(|e| format!("no recovery: {e}"))
        },
    )
    .await;
}
