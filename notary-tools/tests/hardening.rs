//! Regression tests for the adversarial review's findings (docs/security.md): each failed
//! before its fix.
#![cfg(feature = "system-tests")]

mod common;

use common::*;

/// A NUL or an over-long GUN on every route answers 404 (reads) or 400 `INVALID_GUN`
/// (deletion, keys, publish) before it reaches storage — never 500 (Postgres refused it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_repository_names_never_reach_the_database() {
    let s = Server::start_with_db(&create_pg_db().await).await;
    let long = "a/".repeat(150) + "b";
    for gun in ["example.com/nul%00here", long.as_str()] {
        for file in [
            "timestamp.json",
            "root.json",
            "3.root.json",
            &format!("targets.{}.json", "0".repeat(64)),
            "targets/releases.json",
        ] {
            let (st, body) = s.get(&s.tuf(gun, file)).await;
            assert_eq!(
                (st, api_error(&body).0.as_str()),
                (404, "METADATA_NOT_FOUND"),
                "GET {gun} {file}"
            );
        }
        let (st, body) = s
            .get(&format!("{}/v2/{gun}/_trust/changefeed?records=10", s.url))
            .await;
        assert_eq!(
            (st, api_error(&body).0.as_str()),
            (404, "METADATA_NOT_FOUND"),
            "changefeed {gun}"
        );
        let r = s.http.delete(s.tuf(gun, "")).send().await.unwrap();
        assert_eq!(r.status(), 400, "DELETE {gun}");
        assert_eq!(api_error(&r.bytes().await.unwrap()).0, "INVALID_GUN");
        let (st, body) = s.get(&s.tuf(gun, "timestamp.key")).await;
        assert_eq!(
            (st, api_error(&body).0.as_str()),
            (400, "INVALID_GUN"),
            "key {gun}"
        );
    }
    // The database was never asked: the server is healthy and logged no internal error.
    assert_eq!(
        s.get(&format!("{}/_notary_server/health", s.url)).await.0,
        200
    );
    assert!(!s.log().contains("internal error"), "{}", s.log());
}

/// The path-cleaning redirect never names another host: control characters and backslashes in
/// the cleaned path are sent percent-encoded.
#[tokio::test]
async fn path_cleaning_redirects_stay_on_this_host() {
    let s = Server::start().await;
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&s.ca).unwrap()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, want) in [
        ("/%09/evil.example//", "/%09/evil.example/"),
        ("/%5Cevil.example//x", "/%5Cevil.example/x"),
        (
            "/v2//a%3Fb/_trust/tuf/root.json?x=1",
            "/v2/a%3Fb/_trust/tuf/root.json?x=1",
        ),
        (
            "/v2//example.com/a/_trust/tuf/root.json",
            "/v2/example.com/a/_trust/tuf/root.json",
        ),
    ] {
        let r = http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 301, "{path}");
        assert_eq!(r.headers()["location"].to_str().unwrap(), want, "{path}");
    }
}

/// A client-signed snapshot whose hashes are right but whose `length` is not is refused (fresh
/// clients would then fail with "trust server returned a bad response"), and nothing is stored.
#[tokio::test]
async fn a_snapshot_with_a_wrong_length_is_refused() {
    use notary_tuf::builder::{sign, snapshot_body, Signer};
    let s = Server::start().await;
    let gun = "example.com/hardening/length";
    let (st, ts) = s.get(&s.tuf(gun, "timestamp.key")).await;
    assert_eq!(st, 200);
    let snapshot_key = notary_tuf::PrivateKey::generate("ecdsa").unwrap();
    let repo = RustRepo::new(
        gun,
        snapshot_key.public_key(),
        notary_bench::repo::parse_key_response(&ts).unwrap(),
    );
    let (root, targets) = (repo.root_file(1), repo.targets_file(1, &[("a", b"a")]));
    let mut body = snapshot_body(&[("root", &root), ("targets", &targets)], 1, &far_future());
    body["meta"]["targets"]["length"] = serde_json::json!(1);
    let bad = sign(&body, &[Signer::plain(&snapshot_key)]).unwrap();
    let (st, resp) = s
        .post_parts(
            gun,
            &[("root", &root), ("targets", &targets), ("snapshot", &bad)],
        )
        .await;
    let (code, detail) = api_error(&resp);
    assert_eq!(
        (st, code.as_str(), detail["Name"].as_str()),
        (400, "INVALID_UPDATE", Some("ErrBadSnapshot")),
        "{detail}"
    );
    assert!(
        detail["Error"]["Msg"]
            .as_str()
            .unwrap()
            .contains("length of targets"),
        "{detail}"
    );
    assert_eq!(
        s.get(&s.tuf(gun, "root.json")).await.0,
        404,
        "nothing stored"
    );
    // The same snapshot with the right length is accepted.
    let good = sign(
        &snapshot_body(&[("root", &root), ("targets", &targets)], 1, &far_future()),
        &[Signer::plain(&snapshot_key)],
    )
    .unwrap();
    assert_eq!(
        s.post_parts(
            gun,
            &[("root", &root), ("targets", &targets), ("snapshot", &good)]
        )
        .await
        .0,
        200
    );
}

/// Started with umask 000, the embedded default still makes its folders 0700 and its key,
/// passphrase and database 0600 (certificates 0644: public, but not writable by others).
#[tokio::test]
async fn files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "umask 000; exec {} --data-dir {} --listen 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_notary-server"),
        data.display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .env_remove("NOTARY_SERVER_KEY_PASSPHRASE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(50),
        async || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| format!("the server does not listen: {e}"))
        },
    )
    .await;
    let mode = |p: &str| {
        std::fs::metadata(data.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let modes: Vec<(&str, u32)> = [
        "",
        "tls",
        "tls/server.key",
        "key-passphrase",
        "notary.db",
        "tls/server.crt",
        "tls/ca.crt",
    ]
    .iter()
    .map(|p| (*p, mode(p)))
    .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        modes,
        vec![
            ("", 0o700),
            ("tls", 0o700),
            ("tls/server.key", 0o600),
            ("key-passphrase", 0o600),
            ("notary.db", 0o600),
            ("tls/server.crt", 0o644),
            ("tls/ca.crt", 0o644)
        ]
    );
}

/// Client text reaches the log escaped: a newline cannot start a forged line and ANSI escapes
/// do not pass; with `logging.format: json` every log line is one JSON object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_text_cannot_forge_log_lines() {
    let evil = r#"{"signed":{"_type":"Targets","expires":"2030-01-01\nFORGED level=INFO admin logged in \u001b[31m","version":1},"signatures":[]}"#;
    for s in [
        Server::start().await,
        Server::start_with_config(
            &create_pg_db().await,
            serde_json::json!({"logging": {"format": "json"}}),
        )
        .await,
    ] {
        let (st, _) = s
            .post_parts("example.com/hardening/log", &[("targets", evil.as_bytes())])
            .await;
        assert_eq!(st, 400);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let log = s.log();
        assert!(log.contains("FORGED"), "the client's text is logged: {log}");
        assert!(!log.lines().any(|l| l.starts_with("FORGED")), "{log}");
        assert!(!log.contains('\u{1b}'), "{log}");
        if s.db_url.is_some() {
            for l in log
                .lines()
                .filter(|l| l.contains("FORGED") || l.starts_with('{'))
            {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            }
        }
    }
}

/// A 60 KB path of `/_trust/tuf/` segments is refused with 414 at once (it cost 0.3 s of CPU to
/// route, before authentication); the longest accepted path routes as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_paths_are_refused_before_routing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_ts, s) = server_with_token_auth(tmp.path()).await;
    let hostile = format!(
        "/v2/g/_trust/tuf/{} .json",
        "targets/_trust/tuf/".repeat(3200)
    );
    let r = s
        .http
        .get(format!("{}{hostile}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert_eq!(api_error(&r.bytes().await.unwrap()).0, "URI_TOO_LONG");
    let fits = format!(
        "/v2/g/_trust/tuf/{}.json",
        "targets/_trust/tuf/".repeat(400)
    );
    assert!(fits.len() <= notary_server::http::MAX_PATH);
    let r = s.http.get(format!("{}{fits}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 401, "routed, then asked for a token");
}

/// Without token auth one client address may create only so many keys a minute (each new GUN's
/// `timestamp.key` makes one); a changefeed page holds at most 1000 rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_creation_and_changefeed_pages_are_bounded() {
    let db = create_pg_db().await;
    let s = Server::start_with_config(
        &db,
        serde_json::json!({"server": {"key_creations_per_minute": 3}}),
    )
    .await;
    for i in 0..3 {
        assert_eq!(
            s.get(&s.tuf(&format!("example.com/keys/r{i}"), "timestamp.key"))
                .await
                .0,
            200
        );
    }
    let (st, body) = s.get(&s.tuf("example.com/keys/r3", "timestamp.key")).await;
    assert_eq!(
        (st, api_error(&body).0.as_str()),
        (429, "TOO_MANY_REQUESTS")
    );
    let r = s
        .http
        .post(s.tuf("example.com/keys/r0", "snapshot.key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "rotation creates a key too");

    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("INSERT INTO changefeed (created_at, gun, version, sha256, category) SELECT now(), 'example.com/feed', g, '', 'update' FROM generate_series(1, 1200) g")
        .execute(&mut c)
        .await
        .unwrap();
    for q in [
        "records=5000",
        "records=-5000",
        "change_id=-1&records=-100000",
    ] {
        let (st, body) = s.get(&format!("{}/v2/_trust/changefeed?{q}", s.url)).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((st, v["count"].as_i64()), (200, Some(1000)), "{q}");
    }
}

/// A repository whose client-signed snapshot expired: reads serve the stored chain (no 500),
/// the background re-signer does not retry every minute, and the server says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_snapshot_is_served_not_an_error() {
    use notary_tuf::builder::{sign, snapshot_body, Signer};
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"caching": {"resign_before_expiry_seconds": 2, "resign_check_seconds": 1}}),
    )
    .await;
    let gun = "example.com/hardening/expired-snapshot";
    let (_, ts) = s.get(&s.tuf(gun, "timestamp.key")).await;
    let snapshot_key = notary_tuf::PrivateKey::generate("ecdsa").unwrap();
    let repo = RustRepo::new(
        gun,
        snapshot_key.public_key(),
        notary_bench::repo::parse_key_response(&ts).unwrap(),
    );
    let (root, targets) = (repo.root_file(1), repo.targets_file(1, &[("a", b"a")]));
    let soon = chrono::Utc::now() + chrono::Duration::seconds(3);
    let snap = sign(
        &snapshot_body(&[("root", &root), ("targets", &targets)], 1, &soon),
        &[Signer::plain(&snapshot_key)],
    )
    .unwrap();
    assert_eq!(
        s.post_parts(
            gun,
            &[("root", &root), ("targets", &targets), ("snapshot", &snap)]
        )
        .await
        .0,
        200
    );
    let (_, first) = s.get(&s.tuf(gun, "timestamp.json")).await;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    for _ in 0..3 {
        assert_eq!(
            s.get(&s.tuf(gun, "timestamp.json")).await,
            (200, first.clone())
        );
        assert_eq!(
            s.get(&s.tuf(gun, "snapshot.json")).await,
            (200, snap.clone())
        );
    }
    let log = s.log();
    assert_eq!(
        log.matches("snapshot expired and this server holds no key for it")
            .count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("internal error") && !log.contains("background re-signing failed"),
        "{log}"
    );
}

/// Start the server binary on `db_url` (connect retries: 1 s).
fn try_start(db_url: &str, dir: &std::path::Path) -> Result<std::process::Child, String> {
    let config = serde_json::json!({"server": {}, "trust_service": {"type": "local"},
        "storage": {"backend": "postgres", "db_url": db_url, "connect_retry_seconds": 1}});
    try_start_server(config, dir, &[("NOTARY_SERVER_KEY_PASSPHRASE", "test")])
        .map(|(child, _)| child)
}

/// Postgres over TLS as libpq spells it: `sslmode` (`require`, `verify-ca`, `verify-full`),
/// `sslrootcert`, and a client certificate (`sslcert`, `sslkey`); a server certificate from
/// another CA is refused, and so is a plain-text connection to a server that requires TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_as_libpq_spells_it() {
    let (Ok(admin), Ok(certs)) = (
        std::env::var("NOTARY_TEST_PG_TLS_URL"),
        std::env::var("NOTARY_TEST_PG_TLS_DIR"),
    ) else {
        eprintln!("skipped: no TLS Postgres (NOTARY_TEST_PG_TLS_URL): run `bash scripts/test.sh`, which starts one");
        return;
    };
    use sqlx::Connection;
    let certs = std::path::PathBuf::from(certs);
    let mut c = sqlx::PgConnection::connect(&format!("{admin}?sslmode=require"))
        .await
        .unwrap();
    let name = format!("notary_tls_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let base = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let ca = certs.join("ca.crt").display().to_string();
    let tmp = tempfile::tempdir().unwrap();

    for params in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        "sslmode=require".to_string(),
        format!(
            "sslmode=verify-ca&sslrootcert={ca}&sslcert={}&sslkey={}",
            certs.join("client.crt").display(),
            certs.join("client.key").display()
        ),
    ] {
        let url = if params.contains("sslcert") {
            format!("{}?{params}", base.replace("postgres@", "certuser@"))
        } else {
            format!("{base}?{params}")
        };
        let mut child = try_start(&url, tmp.path()).unwrap_or_else(|log| panic!("{params}: {log}"));
        let (ssl,): (Option<bool>,) = sqlx::query_as(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'notary-rs'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            ssl,
            Some(true),
            "{params}: every connection of the server is encrypted"
        );
    }
    for (params, why, said) in [
        (
            format!(
                "sslmode=verify-full&sslrootcert={}",
                certs.join("other-ca.crt").display()
            ),
            "certificate",
            "is not reachable",
        ),
        // A refusal by the server's rules is not retried: it is said at once.
        (
            "sslmode=disable".to_string(),
            "pg_hba.conf",
            "refused the connection",
        ),
    ] {
        let log = try_start(&format!("{base}?{params}"), tmp.path())
            .err()
            .unwrap_or_else(|| panic!("{params}: started"));
        assert!(
            log.contains(said) && log.to_lowercase().contains(why),
            "{params}: {log}"
        );
    }
    let log = try_start(
        &format!("{}?sslmode=require", base.replace("postgres@", "certuser@")),
        tmp.path(),
    )
    .expect_err("no client certificate");
    assert!(log.contains("certificate"), "{log}");
}

/// A new repository whose root gives the timestamp role `ts`: (status, body, ()).
async fn attack(s: &Server, gun: &str, ts: notary_tuf::PublicKey) -> (u16, Vec<u8>, ()) {
    let (_, sn) = s.get(&s.tuf(gun, "snapshot.key")).await;
    let repo = RustRepo::new(
        gun,
        notary_bench::repo::parse_key_response(&sn).unwrap(),
        ts,
    );
    let (st, body) = s
        .post_parts(
            gun,
            &[
                ("root", &repo.root_file(1)),
                ("targets", &repo.targets_file(1, &[("x", b"x")])),
            ],
        )
        .await;
    (st, body, ())
}

/// A root that lists another repository's server-managed key (its ID is public), or this
/// repository's key under another role, is refused and nothing is stored: the server never
/// signs one repository's metadata with another's key. Local keys, keys of a remote signer
/// (whose protocol carries no GUN), and keys made before bindings existed (bound from the
/// stored roots once, in the background from start) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keys_sign_only_their_own_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let signer = SignerProc::start(false, Some(&create_pg_db().await), &tls).await;
    let local_db = create_pg_db().await;
    let remote_db = create_pg_db().await;
    let local = Server::start_with_db(&local_db).await;
    let remote = Server::start_with_config(
        &remote_db,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    let parse = |b: &[u8]| notary_bench::repo::parse_key_response(b).unwrap();
    for (s, db) in [(local, local_db), (remote, remote_db)] {
        let victim = init_repo(&s, "example.com/keys/victim").await;
        let victim_ts = victim.timestamp_pub.clone();
        let (st, body, _) = attack(&s, "example.com/keys/attacker", victim_ts.clone()).await;
        let (code, detail) = api_error(&body);
        assert_eq!(
            (st, code.as_str(), detail["Name"].as_str()),
            (400, "INVALID_UPDATE", Some("ErrBadRoot")),
            "{detail}"
        );
        assert!(
            detail["Error"]["Msg"]
                .as_str()
                .unwrap()
                .contains("another repository"),
            "{detail}"
        );
        assert_eq!(
            s.get(&s.tuf("example.com/keys/attacker", "root.json"))
                .await
                .0,
            404,
            "nothing stored"
        );
        // Its own snapshot key as its timestamp key: the wrong role.
        let (_, sn) = s.get(&s.tuf("example.com/keys/swap", "snapshot.key")).await;
        let (st, _, _) = attack(&s, "example.com/keys/swap", parse(&sn)).await;
        assert_eq!(st, 400);

        // Bindings forgotten (a database from before them): bound again from the stored roots.
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
        sqlx::query("DELETE FROM notary_rs_server_keys")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("DELETE FROM notary_rs_migrations WHERE set_name = 'server-keys-backfill'")
            .execute(&mut c)
            .await
            .unwrap();
        let s = s.restart().await;
        wait_for_key_binding(&db).await;
        let (st, _, _) = attack(&s, "example.com/keys/attacker2", victim_ts).await;
        assert_eq!(st, 400);
        // The victim still publishes.
        let (st, _) = s
            .post_parts(
                "example.com/keys/victim",
                &[("targets", &victim.targets_file(2, &[("v2", b"v2")]))],
            )
            .await;
        assert_eq!(st, 200);
    }
}

/// Wait (bounded) until the server keys that stored roots list are all bound.
async fn wait_for_key_binding(db: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db).await.unwrap();
    eventually(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(50),
        async || {
            let done: Option<(i64,)> = sqlx::query_as(
                "SELECT version FROM notary_rs_migrations WHERE set_name = 'server-keys-backfill'",
            )
            .fetch_optional(&mut c)
            .await
            .unwrap();
            done.map(|_| ()).ok_or_else(|| "keys not bound".to_string())
        },
    )
    .await
}

/// The first start on a database whose keys are not bound yet (a Go database, or one from
/// before bindings) serves at once: the binding runs in the background, and a root that would
/// claim a key meanwhile is still refused. Here the binding is held back by a lock on the table
/// where it records its progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_binding_runs_in_the_background() {
    use sqlx::Connection;
    let db = create_pg_db().await;
    let s = Server::start_with_db(&db).await;
    let victim = init_repo(&s, "example.com/keys/bg-victim").await;
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    for q in [
        "DELETE FROM notary_rs_server_keys",
        "DELETE FROM notary_rs_migrations WHERE set_name LIKE 'server-keys-backfill%'",
    ] {
        sqlx::query(q).execute(&mut c).await.unwrap();
    }
    let mut blocker = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    // The binding records its progress there in each step's transaction: no step can commit.
    sqlx::query("LOCK TABLE notary_rs_migrations IN EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    // Starts and serves while the binding cannot write.
    let s = s.restart().await;
    assert_eq!(
        s.get(&format!("{}/_notary_server/health", s.url)).await.0,
        200
    );
    assert_eq!(
        s.get(&s.tuf("example.com/keys/bg-victim", "targets.json"))
            .await
            .0,
        200
    );
    let bound: (i64,) = sqlx::query_as("SELECT count(*) FROM notary_rs_server_keys")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(bound.0, 0, "the binding is held back");
    // A claim of the victim's key meanwhile: refused, nothing stored.
    let (st, _, _) = attack(
        &s,
        "example.com/keys/bg-attacker",
        victim.timestamp_pub.clone(),
    )
    .await;
    assert!(st == 400 || st == 503, "{st}");
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    wait_for_key_binding(&db).await;
    let bound: Vec<(String,)> =
        sqlx::query_as("SELECT gun FROM notary_rs_server_keys WHERE key_id = $1")
            .bind(victim.timestamp_pub.id())
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(bound, vec![("example.com/keys/bg-victim".to_string(),)]);
    assert_eq!(
        s.get(&s.tuf("example.com/keys/bg-attacker", "root.json"))
            .await
            .0,
        404,
        "nothing stored"
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    peak_memory_kib(pid).expect("the server runs")
}

/// A 10 MB `targets.json` of `[0,0,…]` is refused before a tree is built for it (it raised the
/// server's peak memory by ~180 MB), and a root or timestamp part over 1 MiB is refused whole.
#[tokio::test]
async fn hostile_uploads_cost_little_memory() {
    let s = Server::start().await;
    let gun = "example.com/hardening/memory";
    init_repo(&s, gun).await;
    let before = peak_rss_kib(s.pid());
    let mut dense =
        b"{\"signed\":{\"_type\":\"Targets\",\"expires\":\"2030-01-01T00:00:00Z\",\"version\":2,\"targets\":{},\"x\":[".to_vec();
    dense.extend(std::iter::repeat_n(&b"0,"[..], 5_000_000).flatten());
    dense.extend_from_slice(b"0]},\"signatures\":[]}");
    let (st, body) = s.post_parts(gun, &[("targets", &dense)]).await;
    assert_eq!((st, api_error(&body).0.as_str()), (400, "MALFORMED_JSON"));
    let grown_mib = (peak_rss_kib(s.pid()) - before) / 1024;
    assert!(
        grown_mib < 60,
        "peak memory grew by {grown_mib} MiB for a {} MB upload",
        dense.len() >> 20
    );
    assert!(
        s.log().contains("too dense for TUF metadata"),
        "{}",
        s.log()
    );

    let big_root = format!(
        "{{\"signed\":{{\"_type\":\"Root\",\"pad\":\"{}\"}},\"signatures\":[]}}",
        "a".repeat(2 << 20)
    );
    let (st, body) = s.post_parts(gun, &[("root", big_root.as_bytes())]).await;
    assert_eq!((st, api_error(&body).0.as_str()), (413, "MALFORMED_UPLOAD"));
}
