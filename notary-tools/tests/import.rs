//! `notary-server import` and `notary-rekey` end to end: Debian's Go notary-server (with token
//! auth) as the source, the Go `notary` CLI and the docker CLI as the clients whose trust caches
//! came from it, our server as the destination.
#![cfg(feature = "system-tests")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Run `notary-server import <args>` on `s`'s storage; (exit ok, output, report by GUN).
fn import(
    s: &Server,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, BTreeMap<String, Value>) {
    let report = s.tmp().join(format!("report-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let mut cmd = s.admin(&["import"]);
    cmd.args(args).arg("--report").arg(&report);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(cmd, b"");
    let reports: Vec<Value> = std::fs::read(&report)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_default();
    let by_gun = reports
        .into_iter()
        .map(|r| (r["gun"].as_str().unwrap().to_string(), r))
        .collect();
    (out.status.success(), output_text(&out), by_gun)
}

/// `notary-rekey` against `s` with the root key in `trust_dir`.
fn rekey(s: &Server, gun: &str, trust_dir: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notary-rekey"));
    cmd.args([
        "--server",
        &s.url,
        "--tlscacert",
        s.ca.to_str().unwrap(),
        "--gun",
        gun,
        "--trust-dir",
        trust_dir.to_str().unwrap(),
        "--yes",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(cmd, b"");
    (out.status.success(), output_text(&out))
}

/// The same trust folder, talking to `s` instead.
fn moved(n: &Notary, s: &Server) -> Notary {
    Notary {
        server: s.url.clone(),
        ca: s.ca.clone(),
        dir: n.dir.clone(),
    }
}

/// Every (gun, role, version) → bytes of `guns` in a database.
async fn rows(db_url: &str, guns: &[&str]) -> BTreeMap<(String, String, i32), Vec<u8>> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
    let guns: Vec<String> = guns.iter().map(|g| g.to_string()).collect();
    let r: Vec<(String, String, i32, Vec<u8>)> =
        sqlx::query_as("SELECT gun, role, version, data FROM tuf_files WHERE gun = ANY($1)")
            .bind(&guns)
            .fetch_all(&mut c)
            .await
            .unwrap();
    r.into_iter().map(|(g, ro, v, d)| ((g, ro, v), d)).collect()
}

/// Changefeed `update` versions of `gun`, in row order.
async fn feed(db_url: &str, gun: &str) -> Vec<i32> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
    let r: Vec<(i32,)> = sqlx::query_as(
        "SELECT version FROM changefeed WHERE gun = $1 AND category = 'update' ORDER BY id",
    )
    .bind(gun)
    .fetch_all(&mut c)
    .await
    .unwrap();
    r.into_iter().map(|v| v.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_go_repositories_with_token_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut ts = TokenService::new(t, "notary.test");
    ts.serve().await;
    // The repositories are made while the Go server has no auth (so the CLIs need no
    // credentials), then it is restarted with token auth: the readers and the import go through it.
    let go_db = create_go_pg_db().await;
    let mut go = GoServer::start(&go_db).await;
    let f = write_file(t, "f.txt", b"signed content\n");
    let f = f.to_str().unwrap();

    // A: the owner holds the snapshot key; two target versions, a delegation, a root rotation.
    let a = "example.com/import/cli";
    let a_owner = go.notary(&t.join("a-owner"));
    a_owner.ok(&["init", a]);
    for v in ["v1", "v2"] {
        a_owner.ok(&["add", a, v, f]);
        a_owner.ok(&["publish", a]);
    }
    let (dkey, dcert) = delegate_cert(t, "releases");
    a_owner.ok(&[
        "delegation",
        "add",
        a,
        "targets/releases",
        dcert.to_str().unwrap(),
        "--all-paths",
    ]);
    a_owner.ok(&["publish", a]);
    // (The owner signs the release too: a delegate alone could not, the snapshot key is the owner's.)
    a_owner.ok(&[
        "key",
        "import",
        dkey.to_str().unwrap(),
        "--role",
        "targets/releases",
    ]);
    a_owner.ok(&["add", a, "rel1", f, "--roles", "targets/releases"]);
    a_owner.ok(&["publish", a]);
    let r = a_owner.run_with_input(&["key", "rotate", a, "root"], b"yes\n");
    assert!(r.ok, "{}", r.output());

    // B: the server holds the snapshot key too (as Docker Hub does).
    let b = "example.com/import/managed";
    let b_owner = go.notary(&t.join("b-owner"));
    b_owner.ok(&["init", b]);
    b_owner.ok(&["add", b, "v1", f]);
    b_owner.ok(&["publish", b]);
    b_owner.ok(&["key", "rotate", b, "snapshot", "-r"]);
    b_owner.ok(&["add", b, "v2", f]);
    b_owner.ok(&["publish", b]);

    // C: `docker push` with content trust through the Go server (server-managed snapshot).
    let reg = Registry::start(Some((&ts.realm, &ts.issuer, &ts.bundle)));
    let host = format!("127.0.0.1:{}", reg.port);
    let d_go = DockerCli::for_notary(t, &go.url, &go.ca);
    let (ok, out) = d_go.run(
        false,
        &["login", &host, "-u", "alice", "--password-stdin"],
        b"secret\n",
    );
    assert!(ok, "{out}");
    let c = format!("{host}/import/app{}", std::process::id());
    let c_v1 = format!("{c}:v1");
    d_go.make_image(t, &c_v1, "image one\n");
    assert!(d_go
        .ok(true, &["push", &c_v1])
        .contains("Successfully signed"));

    // The source behind token auth; readers take their trust from it (anonymous pull tokens).
    go.stop();
    let mut go = GoServer::start_with(&go_db, serde_json::json!({"auth": ts.auth_config()})).await;
    let a_reader = go.notary(&t.join("a-reader"));
    assert!(a_reader.ok(&["list", a]).contains("rel1"));
    let b_reader = go.notary(&t.join("b-reader"));
    assert!(b_reader.ok(&["list", b]).contains("v2"));

    // Import everything (the changefeed needs credentials) into a running server's database.
    let ours = Server::start_with_db(&create_pg_db().await).await;
    let (ok, out, report) = import(
        &ours,
        &[
            "--from",
            &go.url,
            "--tlscacert",
            go.ca.to_str().unwrap(),
            "--all",
            "--username",
            "alice",
            // The test's token service is plain http on loopback.
            "--allow-insecure-token-realm",
            "--public-url",
            &ours.url,
        ],
        &[("NOTARY_IMPORT_PASSWORD", "secret")],
    );
    assert!(ok, "{out}");
    for gun in [a, b, c.as_str()] {
        let r = &report[gun];
        assert_eq!(r["result"], "imported", "{gun}: {r}");
        assert_eq!(r["server_holds_keys"]["timestamp"], false, "{gun}");
        assert!(
            r["next_step"]
                .as_str()
                .unwrap()
                .contains(&format!("notary-rekey --server {} --gun {gun}", ours.url)),
            "{r}"
        );
        assert_eq!(r["expired"], serde_json::json!([]));
    }
    assert_eq!(report[a]["current"]["root"], 2, "{}", report[a]);
    assert!(report[a]["current"]["targets/releases"].as_i64().is_some());
    assert!(
        out.contains("GUN")
            && out.contains("TIMESTAMP EXPIRES")
            && out.contains("3 repositories: 0 failed"),
        "{out}"
    );
    // Byte for byte, every version; one changefeed row per timestamp version, in order.
    let guns = [a, b, c.as_str()];
    let ours_db = ours.db_url.clone().unwrap();
    assert_eq!(rows(&ours_db, &guns).await, rows(&go_db, &guns).await);
    for gun in guns {
        let fv = feed(&ours_db, gun).await;
        let mut sorted = fv.clone();
        sorted.sort();
        assert_eq!(fv, sorted, "{gun}");
        let ts_versions = rows(&ours_db, &[gun])
            .await
            .keys()
            .filter(|k| k.1 == "timestamp")
            .count();
        assert_eq!(fv.len(), ts_versions, "{gun}");
    }
    let listed = run(ours.admin(&["imported"]), b"");
    assert!(
        output_text(&listed).contains("3 imported, 3 awaiting rotation"),
        "{}",
        output_text(&listed)
    );
    // An instance starting on that database warns and exports the gauges.
    let second = Server::start_with_db(&ours_db).await;
    let metrics = eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let metrics =
                String::from_utf8(second.get(&format!("{}/metrics", second.url)).await.1).unwrap();
            match metric_sample(&metrics, "notary_rs_imported_awaiting_rotation") {
                Some("3") => Ok(metrics),
                _ => Err(metrics),
            }
        },
    )
    .await;
    let earliest: i64 = metric_sample(
        &metrics,
        "notary_rs_imported_awaiting_rotation_earliest_expiry_seconds",
    )
    .unwrap()
    .parse()
    .unwrap();
    assert!(earliest > chrono::Utc::now().timestamp(), "{metrics}");
    assert!(
        second
            .log()
            .contains("imported repositories await a rotation"),
        "{}",
        second.log()
    );
    drop(second);

    // The source goes away; clients with the old trust caches use ours.
    go.stop();
    let a_reader = moved(&a_reader, &ours);
    let list = a_reader.ok(&["list", a]);
    assert!(
        list.contains("v1") && list.contains("v2") && list.contains("rel1"),
        "{list}"
    );
    assert!(
        a_reader
            .run_with_input(&["verify", a, "v2"], b"signed content\n")
            .ok
    );
    let d = DockerCli::for_notary(t, &ours.url, &ours.ca);
    d.forget_image(&c_v1);
    assert!(d.ok(true, &["pull", &c_v1]).contains(&format!("as {c_v1}")));

    // A publish needing a key this server lacks: a clear 400 naming the fix.
    let b_owner = moved(&b_owner, &ours);
    b_owner.ok(&["add", b, "v3", f]);
    let r = b_owner.run(&["publish", b]);
    assert!(
        !r.ok && r.output().contains("notary-rekey"),
        "{}",
        r.output()
    );

    // Owner holds the snapshot key: the stock CLI rotates the timestamp key.
    let a_owner = moved(&a_owner, &ours);
    a_owner.ok(&["key", "rotate", a, "timestamp", "-r"]);
    a_owner.ok(&["add", a, "v3", f]);
    a_owner.ok(&["publish", a]);
    assert!(a_reader.ok(&["list", a]).contains("v3"));

    // Both keys were the old server's: notary-rekey with the owner's root key.
    let (ok, out) = rekey(
        &ours,
        b,
        &b_owner.dir,
        &[("NOTARY_ROOT_PASSPHRASE", "root-pass-phrase")],
    );
    assert!(ok, "{out}");
    b_owner.ok(&["publish", b]);
    let b_reader = moved(&b_reader, &ours);
    assert!(b_reader.ok(&["list", b]).contains("v3"));

    // The docker repository: rekey from the docker trust folder, push and pull a new tag.
    let (ok, out) = rekey(
        &ours,
        &c,
        &d.config.join("trust"),
        &[("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "dct-root-pass")],
    );
    assert!(ok, "{out}");
    let c_v2 = format!("{c}:v2");
    d.make_image(t, &c_v2, "image two\n");
    assert!(d.ok(true, &["push", &c_v2]).contains("Successfully signed"));
    d.forget_image(&c_v2);
    assert!(d.ok(true, &["pull", &c_v2]).contains(&format!("as {c_v2}")));
    let listed = run(ours.admin(&["imported"]), b"");
    assert!(
        output_text(&listed).contains("3 imported, 0 awaiting rotation"),
        "{}",
        output_text(&listed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_from_trust_directories_after_the_source_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut go = GoServer::start(&create_go_pg_db().await).await;
    let f = write_file(t, "f.txt", b"from a trust folder\n");
    let f = f.to_str().unwrap();
    let gun = "example.com/import/trustdir";
    let owner = go.notary(&t.join("owner"));
    owner.ok(&["init", gun]);
    for v in ["v1", "v2"] {
        owner.ok(&["add", gun, v, f]);
        owner.ok(&["publish", gun]);
    }
    let reader = go.notary(&t.join("reader"));
    assert!(reader.ok(&["list", gun]).contains("v2"));
    let reg = Registry::start(None);
    let d_go = DockerCli::for_notary(t, &go.url, &go.ca);
    let c = format!("127.0.0.1:{}/import/dir{}", reg.port, std::process::id());
    let c_v1 = format!("{c}:v1");
    d_go.make_image(t, &c_v1, "one\n");
    assert!(d_go
        .ok(true, &["push", &c_v1])
        .contains("Successfully signed"));
    d_go.ok(false, &["trust", "inspect", &c]); // the cache now holds the current chain
    go.stop();

    // The embedded default (SQLite), from the reader's and the docker CLI's trust folders.
    let ours = Server::start().await;
    let docker_trust = d_go.config.join("trust");
    let (ok, out, report) = import(
        &ours,
        &[
            "--from-trust-dir",
            reader.dir.to_str().unwrap(),
            "--from-trust-dir",
            docker_trust.to_str().unwrap(),
            "--all",
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert_eq!(report[gun]["result"], "imported", "{out}");
    assert_eq!(
        report[gun]["current"]["targets"], 3,
        "init, then two publishes"
    );
    assert_eq!(report[c.as_str()]["result"], "imported", "{out}");
    // The same files the old server served.
    let want = std::fs::read(
        reader
            .dir
            .join("tuf")
            .join(gun)
            .join("metadata/targets.json"),
    )
    .unwrap();
    assert_eq!(ours.get(&ours.tuf(gun, "targets.json")).await, (200, want));

    let reader = moved(&reader, &ours);
    assert!(reader.ok(&["list", gun]).contains("v2"));
    assert!(
        reader
            .run_with_input(&["verify", gun, "v1"], b"from a trust folder\n")
            .ok
    );
    let owner = moved(&owner, &ours);
    owner.ok(&["key", "rotate", gun, "timestamp", "-r"]);
    owner.ok(&["add", gun, "v3", f]);
    owner.ok(&["publish", gun]);
    assert!(reader.ok(&["list", gun]).contains("v3"));

    let d = DockerCli::for_notary(t, &ours.url, &ours.ca);
    d.forget_image(&c_v1);
    assert!(d.ok(true, &["pull", &c_v1]).contains(&format!("as {c_v1}")));
    let (ok, out) = rekey(
        &ours,
        &c,
        &docker_trust,
        &[("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "dct-root-pass")],
    );
    assert!(ok, "{out}");
    let c_v2 = format!("{c}:v2");
    d.make_image(t, &c_v2, "two\n");
    assert!(d.ok(true, &["push", &c_v2]).contains("Successfully signed"));
    d.forget_image(&c_v2);
    d.ok(true, &["pull", &c_v2]);
}

/// A plain-HTTP proxy in front of a Notary server that delays every answer and can corrupt one
/// file (a character of its first signature).
fn slow_or_tampering_proxy(
    upstream: &str,
    ca: &Path,
    delay: Duration,
    tamper: Option<String>,
) -> FakeHttp {
    editing_proxy(
        upstream,
        ca,
        delay,
        std::sync::Arc::new(move |req: &Request, status, mut body: Vec<u8>| {
            if tamper.as_deref().is_some_and(|t| req.path.ends_with(t)) {
                let at = body
                    .windows(7)
                    .position(|w| w == b"\"sig\":\"")
                    .unwrap_or_else(|| panic!("{status} {}", String::from_utf8_lossy(&body)))
                    + 12;
                body[at] = if body[at] == b'A' { b'B' } else { b'A' };
            }
            (status, body)
        }),
    )
}

fn count_rows(rows: &BTreeMap<(String, String, i32), Vec<u8>>, gun: &str) -> usize {
    rows.keys().filter(|k| k.0 == gun).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_tampering_and_a_killed_import() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let go_db = create_go_pg_db().await;
    let go = GoServer::start(&go_db).await;
    let f = write_file(t, "f.txt", b"x\n");
    let f = f.to_str().unwrap();
    let guns: Vec<String> = (0..4).map(|i| format!("example.com/import/r{i}")).collect();
    let owner = go.notary(&t.join("owner"));
    for g in &guns {
        owner.ok(&["init", g]);
        for v in ["v1", "v2", "v3"] {
            owner.ok(&["add", g, v, f]);
            owner.ok(&["publish", g]);
        }
    }
    let refs: Vec<&str> = guns.iter().map(String::as_str).collect();
    let ours = Server::start_with_db(&create_pg_db().await).await;
    let ours_db = ours.db_url.clone().unwrap();
    let gun_args: Vec<&str> = guns.iter().flat_map(|g| ["--gun", g.as_str()]).collect();

    // A source that corrupts one old file of r1 (targets v2: its first publish): r1 is refused whole, the others imported.
    let bad = slow_or_tampering_proxy(
        &go.url,
        &go.ca,
        Duration::ZERO,
        Some(format!("/{}/_trust/tuf/2.targets.json", guns[1])),
    );
    let mut args = vec!["--from", bad.url.as_str()];
    args.extend(&gun_args);
    let (ok, out, report) = import(&ours, &args, &[]);
    assert!(!ok, "a failed repository makes the run fail: {out}");
    assert_eq!(report[&guns[1]]["result"], "failed");
    assert!(
        report[&guns[1]]["error"]
            .as_str()
            .unwrap()
            .contains("targets version 2"),
        "{}",
        report[&guns[1]]
    );
    let stored = rows(&ours_db, &refs).await;
    assert_eq!(
        count_rows(&stored, &guns[1]),
        0,
        "nothing of the refused repository"
    );
    for g in [&guns[0], &guns[2], &guns[3]] {
        assert_eq!(report[g]["result"], "imported");
    }

    // Killed mid-run behind a slow source: each repository is whole or absent; a re-run
    // completes it, and everything matches the source byte for byte.
    let slow = slow_or_tampering_proxy(&go.url, &go.ca, Duration::from_millis(40), None);
    let mut cmd = ours.admin(&["import", "--from", &slow.url, "--replace"]);
    cmd.args(&gun_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    while !line.starts_with("[1/") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the import ended before the first repository"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the import finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let source = rows(&go_db, &refs).await;
    let after_kill = rows(&ours_db, &refs).await;
    for g in &guns {
        let n = count_rows(&after_kill, g);
        assert!(
            n == 0 || n == count_rows(&source, g),
            "{g}: {n} of {} files after the kill",
            count_rows(&source, g)
        );
    }
    let mut args = vec![
        "--from",
        go.url.as_str(),
        "--tlscacert",
        go.ca.to_str().unwrap(),
    ];
    args.extend(&gun_args);
    let (ok, out, _) = import(&ours, &args, &[]);
    assert!(ok, "{out}");
    assert_eq!(rows(&ours_db, &refs).await, source);
    for g in &refs {
        assert_eq!(feed(&ours_db, g).await, vec![1, 2, 3], "{g}");
    }

    // A second run copies nothing; after one publish upstream, exactly that publish's files.
    let (ok, out, report) = import(&ours, &args, &[]);
    assert!(ok, "{out}");
    for g in &guns {
        assert_eq!(
            (
                report[g]["result"].as_str(),
                report[g]["files_copied"].as_i64()
            ),
            (Some("up to date"), Some(0)),
            "{g}"
        );
    }
    owner.ok(&["add", &guns[0], "v4", f]);
    owner.ok(&["publish", &guns[0]]);
    let (ok, out, report) = import(&ours, &args, &[]);
    assert!(ok, "{out}");
    let new_upstream =
        count_rows(&rows(&go_db, &refs).await, &guns[0]) - count_rows(&source, &guns[0]);
    assert_eq!(
        report[&guns[0]]["files_copied"].as_u64(),
        Some(new_upstream as u64),
        "{}",
        report[&guns[0]]
    );
    assert_eq!(new_upstream, 3, "targets, snapshot and timestamp");
    assert_eq!(rows(&ours_db, &refs).await, rows(&go_db, &refs).await);
    assert_eq!(report[&guns[1]]["files_copied"], 0);
    // A different history here is refused without --replace, and replaced with it.
    let clash = "example.com/import/clash";
    owner.ok(&["init", clash]);
    owner.ok(&["add", clash, "v1", f]);
    owner.ok(&["publish", clash]);
    init_repo(&ours, clash).await;
    let mine = rows(&ours_db, &[clash]).await;
    let args = [
        "--from",
        go.url.as_str(),
        "--tlscacert",
        go.ca.to_str().unwrap(),
        "--gun",
        clash,
    ];
    let (ok, out, report) = import(&ours, &args, &[]);
    assert!(
        !ok && out.contains("already holds a different history") && out.contains("--replace"),
        "{out}"
    );
    assert_eq!(report[clash]["result"], "failed");
    assert_eq!(rows(&ours_db, &[clash]).await, mine, "left untouched");
    let mut replace = args.to_vec();
    replace.push("--replace");
    let (ok, out, report) = import(&ours, &replace, &[]);
    assert!(ok, "{out}");
    assert_eq!(report[clash]["result"], "imported");
    assert_eq!(rows(&ours_db, &[clash]).await, rows(&go_db, &[clash]).await);
}

/// A repository whose timestamp expired at the source (the server holds no key to re-sign it):
/// imported as it is, expiry reported; reads serve the stored files (the client judges expiry),
/// never an error, and the server says once why it does not re-sign.
#[tokio::test]
async fn an_expired_repository_is_imported_and_served_as_stored() {
    use notary_tuf::builder::{root_body, sign, snapshot_body, targets_body, Signer};
    use notary_tuf::metadata::meta_body;
    use notary_tuf::{FileMeta, PrivateKey};
    let gun = "example.com/import/expired";
    let past = chrono::Utc::now() - chrono::Duration::days(3);
    let (root_key, root_pub) = root_cert(gun);
    let keys: Vec<PrivateKey> = (0..3)
        .map(|_| PrivateKey::generate("ecdsa").unwrap())
        .collect();
    let (targets, snapshot, timestamp) = (&keys[0], &keys[1], &keys[2]);
    let root = root_body(
        &root_pub,
        &targets.public_key(),
        &snapshot.public_key(),
        &timestamp.public_key(),
        1,
        &far_future(),
    );
    let root = sign(
        &root,
        &[Signer {
            key: &root_key,
            public: root_pub.clone(),
        }],
    )
    .unwrap();
    let t = [("v1".to_string(), FileMeta::of(b"one"))]
        .into_iter()
        .collect();
    let targets_file = sign(
        &targets_body(&t, &[], 1, &far_future()),
        &[Signer::plain(targets)],
    )
    .unwrap();
    let snap = sign(
        &snapshot_body(&[("root", &root), ("targets", &targets_file)], 1, &past),
        &[Signer::plain(snapshot)],
    )
    .unwrap();
    let ts_meta = [("snapshot".to_string(), FileMeta::of(&snap))]
        .into_iter()
        .collect();
    let ts_body: Value =
        serde_json::from_slice(&meta_body("Timestamp", 1, &past, &ts_meta).unwrap()).unwrap();
    let ts = sign(&ts_body, &[Signer::plain(timestamp)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("tuf").join(gun).join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    for (name, bytes) in [
        ("root", &root),
        ("targets", &targets_file),
        ("snapshot", &snap),
        ("timestamp", &ts),
    ] {
        std::fs::write(meta.join(format!("{name}.json")), bytes).unwrap();
    }

    let ours = Server::start().await;
    let (ok, out, report) = import(
        &ours,
        &[
            "--from-trust-dir",
            dir.path().to_str().unwrap(),
            "--gun",
            gun,
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert_eq!(
        report[gun]["expired"],
        serde_json::json!(["snapshot", "timestamp"]),
        "{}",
        report[gun]
    );
    assert!(out.contains("(expired)"), "{out}");
    for _ in 0..3 {
        assert_eq!(
            ours.get(&ours.tuf(gun, "timestamp.json")).await,
            (200, ts.clone())
        );
        assert_eq!(
            ours.get(&ours.tuf(gun, "snapshot.json")).await,
            (200, snap.clone())
        );
        assert_eq!(
            ours.get(&ours.tuf(gun, "targets.json")).await,
            (200, targets_file.clone())
        );
    }
    let log = ours.log();
    assert_eq!(
        log.matches("cannot re-sign this repository's expired metadata")
            .count(),
        1,
        "{log}"
    );
}
