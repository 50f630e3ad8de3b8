//! Behind a connection pooler: Debian's PgBouncer configured as usual
//! (`ignore_startup_parameters = extra_float_digits`) in front of the test Postgres. Session mode
//! works; transaction mode is refused at start with the fix named (never stale reads).
#![cfg(feature = "system-tests")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct PgBouncer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // `runuser` does not pass the kill on: end PgBouncer itself (found by its config path).
        let ini = self.dir.path().join("pgbouncer.ini");
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(format!("pgbouncer {}", ini.display()))
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PgBouncer {
    /// PgBouncer (run as `postgres`: it refuses root) in `mode` in front of `admin_url`'s server.
    fn start(admin_url: &str, mode: &str) -> Option<PgBouncer> {
        Self::start_with(admin_url, mode, "extra_float_digits")
    }

    /// As [`start`], ignoring the startup parameters `ignored` (comma-separated) rather than
    /// the usual `extra_float_digits`.
    fn start_with(admin_url: &str, mode: &str, ignored: &str) -> Option<PgBouncer> {
        let bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let hostport = admin_url.split('@').nth(1)?.split('/').next()?.to_string();
        let (host, pg_port) = hostport.split_once(':')?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path();
        std::fs::write(d.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            d.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={pg_port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {users}\npool_mode = {mode}\n\
                 ignore_startup_parameters = {ignored}\nlogfile = {log}\nmax_client_conn = 500\ndefault_pool_size = 40\n",
                users = d.join("users.txt").display(),
                log = d.join("pgbouncer.log").display()
            ),
        )
        .unwrap();
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(d)
            .status();
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--", bin])
            .arg(d.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        wait_for_port(port, "pgbouncer");
        Some(PgBouncer { child, port, dir })
    }

    /// `db_url` with the pooler's address instead of the server's.
    fn url(&self, db_url: &str) -> String {
        let (scheme_user, rest) = db_url.split_once('@').unwrap();
        let path = rest.split_once('/').unwrap().1;
        format!("{scheme_user}@127.0.0.1:{}/{path}", self.port)
    }
}

/// Start the server on `db` (through a pooler) expecting it to refuse: (its log, how long it
/// took to give up).
fn refused_start(db: &str) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&dir.path().join("tls")).unwrap();
    let started = Instant::now();
    let log = try_start_server(
        serde_json::json!({
            "server": {"tls_cert_file": tls.cert, "tls_key_file": tls.key},
            "trust_service": {"type": "local"},
            "storage": {"backend": "postgres", "db_url": db},
        }),
        dir.path(),
        &[("NOTARY_SERVER_KEY_PASSPHRASE", "x")],
    )
    .expect_err("the server started");
    (log, started.elapsed())
}

/// Session mode works as a direct connection does, and the statement timeout still applies
/// (it is set after connecting: PgBouncer refuses the `options` startup parameter, which the
/// server sent before, failing at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_in_session_mode() {
    let Ok(admin) = std::env::var("NOTARY_TEST_PG_URL") else {
        eprintln!("skipped: no test Postgres (NOTARY_TEST_PG_URL): run `bash scripts/test.sh`");
        return;
    };
    let Some(bouncer) = PgBouncer::start(&admin, "session") else {
        eprintln!("skipped: PgBouncer is not installed (Debian package pgbouncer; `bash scripts/test.sh` installs it)");
        return;
    };
    let db = bouncer.url(&create_pg_db().await);
    let s = Server::start_with_config(
        &db,
        serde_json::json!({"storage": {"statement_timeout_ms": 1500}}),
    )
    .await;
    let repo = init_repo(&s, "example.com/pooled/repo").await;
    let (st, _) = s
        .post_parts(
            "example.com/pooled/repo",
            &[("targets", &repo.targets_file(2, &[("b", b"b")]))],
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.get(&s.tuf("example.com/pooled/repo", "timestamp.json"))
            .await
            .0,
        200
    );

    let pool = notary_common::db::PoolConfig {
        statement_timeout: Duration::from_millis(1500),
        ..Default::default()
    };
    let notary_common::db::Db::Postgres(p) =
        notary_common::db::Db::connect(&db, &pool).await.unwrap()
    else {
        unreachable!()
    };
    let (timeout,): (String,) = sqlx::query_as("SHOW statement_timeout")
        .fetch_one(&p)
        .await
        .unwrap();
    assert_eq!(timeout, "1500ms");
    let slow = sqlx::query("SELECT pg_sleep(3)").execute(&p).await;
    assert!(
        slow.is_err_and(|e| e.to_string().contains("statement timeout")),
        "the timeout applies through the pooler"
    );
}

/// Transaction mode shares one Postgres session between clients: LISTEN would miss
/// notifications, advisory locks and prepared statements would leak between clients. The server
/// and the signer refuse it at start, saying so and naming the fix, and exit at once (no 30 s of
/// retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_in_transaction_mode_is_refused_at_start() {
    let Ok(admin) = std::env::var("NOTARY_TEST_PG_URL") else {
        eprintln!("skipped: no test Postgres (NOTARY_TEST_PG_URL): run `bash scripts/test.sh`");
        return;
    };
    let Some(bouncer) = PgBouncer::start(&admin, "transaction") else {
        eprintln!("skipped: PgBouncer is not installed (Debian package pgbouncer; `bash scripts/test.sh` installs it)");
        return;
    };
    let db = bouncer.url(&create_pg_db().await);
    let (log, took) = refused_start(&db);
    assert!(
        log.contains("transaction or statement pooling mode")
            && log.contains("pool_mode = session"),
        "{log}"
    );
    assert!(!log.contains("not reachable"), "{log}");
    assert!(took < Duration::from_secs(20), "{log}");

    let dir = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&dir.path().join("tls")).unwrap();
    let mut signer = SignerProc::start(false, None, &tls).await;
    let signer_log = signer
        .reconfigure(
            serde_json::json!({"backend": "postgres", "db_url": db, "default_alias": SIGNER_ALIAS}),
            vec![(
                format!("NOTARY_SIGNER_{}", SIGNER_ALIAS.to_uppercase()),
                SIGNER_PASSPHRASE.to_string(),
            )],
        )
        .await
        .expect_err("the signer started behind a transaction-mode pooler");
    assert!(signer_log.contains("pool_mode = session"), "{signer_log}");

    // The same database through the pooler in session mode, and directly, is accepted.
    drop(bouncer);
    let session = PgBouncer::start(&admin, "session").unwrap();
    let s = Server::start_with_db(&session.url(&db)).await;
    assert_eq!(
        s.get(&format!("{}/_notary_server/health", s.url)).await.0,
        200
    );
}

/// A pooler that refuses a startup parameter (here PgBouncer without its usual
/// `ignore_startup_parameters = extra_float_digits`) is a configuration error, not an
/// unreachable database: start-up stops at once and says what the pooler answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_refusing_the_start_up_is_reported_as_such() {
    let Ok(admin) = std::env::var("NOTARY_TEST_PG_URL") else {
        eprintln!("skipped: no test Postgres (NOTARY_TEST_PG_URL): run `bash scripts/test.sh`");
        return;
    };
    let Some(bouncer) = PgBouncer::start_with(&admin, "session", "") else {
        eprintln!("skipped: PgBouncer is not installed (Debian package pgbouncer; `bash scripts/test.sh` installs it)");
        return;
    };
    let db = bouncer.url(&create_pg_db().await);
    let (log, took) = refused_start(&db);
    assert!(
        log.contains("refused the connection") && log.contains("unsupported startup parameter"),
        "{log}"
    );
    assert!(!log.contains("retrying"), "{log}");
    assert!(took < Duration::from_secs(10), "{log}");
}
