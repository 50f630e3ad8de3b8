//! `notary-server mirror` (`notary-tools/src/mirror.rs`) following Debian's Go notary-server,
//! read by the Go notary CLI.
#![cfg(feature = "system-tests")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const BOUND: Duration = Duration::from_secs(20);

async fn shows(r: &Notary, gun: &str, target: &str) {
    eventually(BOUND, Duration::from_millis(100), async || {
        let run = r.run(&["list", gun]);
        if run.ok && run.stdout.contains(target) {
            Ok(())
        } else {
            Err(run.output())
        }
    })
    .await
}

/// A changefeed row naming the repository `$1`, as the Go server writes for an update.
const ANNOUNCE: &str =
    "INSERT INTO changefeed (gun, version, sha256, category) VALUES ($1, 0, '', 'update')";

/// Run `statements` on the source's database (`$1`, where used: the GUN).
async fn on_source(db: &str, gun: &str, statements: &[&str]) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db).await.unwrap();
    for sql in statements {
        let q = sqlx::query(sql);
        let q = if sql.contains("$1") { q.bind(gun) } else { q };
        q.execute(&mut c).await.unwrap();
    }
}

/// Wait until the server's log says `what`.
async fn logged(s: &Server, what: &str) {
    eventually(BOUND, Duration::from_millis(100), async || {
        if s.log().contains(what) {
            Ok(())
        } else {
            Err(s.log())
        }
    })
    .await
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// The mirror copies a Go server's repository, follows its publishes and a root rotation
/// (a client with an old cache reads on), refuses clients' writes, and when the source forks
/// the history (another file for a version the copy holds) refuses it, says so in its log, and
/// keeps serving what it verified.
#[tokio::test(flavor = "multi_thread")]
async fn follows_a_go_server_and_refuses_a_fork() {
    let go_db = create_go_pg_db().await;
    let go = GoServer::start(&go_db).await;
    let dir = tempfile::tempdir().unwrap();
    let writer_dir = dir.path().join("writer");
    let n = go.notary(&writer_dir);
    let f = write_file(dir.path(), "t.txt", b"mirrored\n");
    let gun = "example.com/mirrored";
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);

    let tree = dir.path().join("tree");
    let m = Server::start_command(
        &create_pg_db().await,
        serde_json::json!({"publish": {"directory": tree, "interval_ms": 100}}),
        None,
        &[
            "mirror",
            "--from",
            &go.url,
            "--tlscacert",
            go.ca.to_str().unwrap(),
            "--all",
            "--interval-ms",
            "200",
        ],
    )
    .await;
    let r = m.notary("reader");
    shows(&r, gun, "v1").await;
    let v = r.run_with_input(&["verify", gun, "v1"], b"mirrored\n");
    assert!(v.ok, "{}", v.output());

    n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    shows(&r, gun, "v2").await;
    // (The CLI asks before rotating a root key.)
    let rotated = n.run_with_input(&["key", "rotate", gun, "root"], b"yes\n");
    assert!(rotated.ok, "{}", rotated.output());
    n.ok(&["add", gun, "v3", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    shows(&r, gun, "v3").await;
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&go.ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    for file in [
        "root.json",
        "targets.json",
        "snapshot.json",
        "timestamp.json",
        "1.root.json",
        "2.root.json",
    ] {
        let theirs = http
            .get(format!("{}/v2/{gun}/_trust/tuf/{file}", go.url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let (code, ours) = m.get(&m.tuf(gun, file)).await;
        assert_eq!((code, ours.as_slice()), (200, theirs.as_ref()), "{file}");
    }

    // The copy is published as a static tree too.
    let (_, current) = m.get(&m.tuf(gun, "timestamp.json")).await;
    let published = tree.join(format!("v2/{gun}/_trust/tuf/timestamp.json"));
    eventually(
        BOUND,
        Duration::from_millis(100),
        async || match std::fs::read(&published) {
            Ok(b) if b == current => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    // Clients cannot write to a mirror.
    let refused = m
        .http
        .delete(format!("{}/v2/{gun}/_trust/tuf/", m.url))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let (code, _) = m.get(&m.tuf(gun, "timestamp.json")).await;
    assert_eq!(code, 200);

    // The source rewinds: its newest targets, snapshot and timestamp are removed …
    let (_, served) = m.get(&m.tuf(gun, "timestamp.json")).await;
    on_source(
        &go_db,
        gun,
        &[
            "DELETE FROM tuf_files t WHERE gun = $1 AND role IN ('targets', 'snapshot', 'timestamp') \
             AND version = (SELECT MAX(version) FROM tuf_files u WHERE u.gun = t.gun AND u.role = t.role)",
            // … and, as a source restored from a backup would, announces the repository.
            ANNOUNCE,
        ],
    )
    .await;
    logged(&m, "mirror: the source rewound the repository").await;
    let (_, now) = m.get(&m.tuf(gun, "timestamp.json")).await;
    assert_eq!(now, served, "a rewind changes nothing here");
    // … then forks: a client without a cache publishes other files under those versions.
    let forker_dir = dir.path().join("forker");
    copy_dir(&writer_dir, &forker_dir);
    std::fs::remove_dir_all(forker_dir.join("tuf").join(gun).join("metadata")).unwrap();
    let forker = go.notary(&forker_dir);
    forker.ok(&["add", gun, "forked", f.to_str().unwrap()]);
    forker.ok(&["publish", gun]);
    logged(&m, "mirror: refused the source's repository").await;
    let (code, now) = m.get(&m.tuf(gun, "timestamp.json")).await;
    assert_eq!(
        (code, now),
        (200, served.clone()),
        "the copy keeps what it verified"
    );
    let list = r.ok(&["list", gun]);
    assert!(list.contains("v3") && !list.contains("forked"), "{list}");

    // The source is restored from a backup that numbers its changefeed from 1 again: the
    // mirror notices, copies everything again, and still refuses the fork.
    on_source(
        &go_db,
        gun,
        &[
            "DELETE FROM changefeed",
            "ALTER SEQUENCE changefeed_id_seq RESTART WITH 1",
            ANNOUNCE,
        ],
    )
    .await;
    logged(&m, "mirror: the source's changefeed went back").await;
    let (code, now) = m.get(&m.tuf(gun, "timestamp.json")).await;
    assert_eq!(
        (code, now),
        (200, served),
        "the copy keeps what it verified"
    );
}

/// A mirror of a source behind registry token auth: its changefeed (which needs credentials)
/// and its repositories are read with `--username` and the password from the environment,
/// never from the command line.
#[tokio::test(flavor = "multi_thread")]
async fn follows_a_source_behind_token_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut ts = TokenService::new(t, "notary.test");
    ts.serve().await;
    // The repository is made while the Go server has no auth (its CLI then needs no
    // credentials); then the server is restarted behind token auth.
    let go_db = create_go_pg_db().await;
    let mut go = GoServer::start(&go_db).await;
    let gun = "example.com/mirrored/private";
    let n = go.notary(&t.join("writer"));
    let f = write_file(t, "t.txt", b"behind auth\n");
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    go.stop();
    let go = GoServer::start_with(&go_db, serde_json::json!({"auth": ts.auth_config()})).await;
    std::env::set_var("NOTARY_IMPORT_PASSWORD", "secret");
    let m = Server::start_command(
        &create_pg_db().await,
        serde_json::json!({}),
        None,
        &[
            "mirror",
            "--from",
            &go.url,
            "--tlscacert",
            go.ca.to_str().unwrap(),
            "--all",
            "--username",
            "alice",
            // The test's token service is plain http on loopback.
            "--allow-insecure-token-realm",
            "--interval-ms",
            "200",
        ],
    )
    .await;
    shows(&m.notary("reader"), gun, "v1").await;
    assert!(!m.log().contains("secret"));
}
