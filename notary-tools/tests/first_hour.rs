//! The first hour of a new operator, round 2 (issue 28, item 7): typos are named, bad values
//! refused with the right culprit, the README's example config starts as written, a failed
//! start leaves nothing behind, existing folders keep their mode, read-only commands inspect a
//! database without writing or needing its keys, and the admin audit subject is the OS user.
//! Needs only our binary (the Go CLI is not used).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// `notary-server <args>` in `cwd`, with `env`; (exit ok, output).
fn server(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notary-server"));
    cmd.args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "0")
        .env_remove("NOTARY_SERVER_KEY_PASSPHRASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), output_text(&out))
}

/// The README's example config, on a free port.
fn readme_config(port: u16) -> serde_json::Value {
    serde_json::json!({
      "server": {"http_addr": format!("127.0.0.1:{port}"), "tls_cert_file": "./server.crt", "tls_key_file": "./server.key"},
      "trust_service": {"type": "local", "key_algorithm": "ecdsa"},
      "storage": {"backend": "sqlite", "db_url": "./data/notary.db"},
      "logging": {"level": "info"},
      "caching": {"max_age": {"current_metadata": 300, "consistent_metadata": 2592000}},
      "repositories": {"gun_prefixes": ["docker.io/"]}
    })
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_readme_example_starts_and_typos_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // --generate-tls in an existing folder: files private, the folder left as it was.
    let (ok, out) = server(dir, &["--generate-tls", "."], &[]);
    assert!(ok, "{out}");
    assert_eq!(mode(dir), 0o755, "the existing folder keeps its mode");
    assert_eq!(mode(&dir.join("server.key")), 0o600);

    // As written: ./data/ does not exist and is made (private).
    let mut cfg = readme_config(free_port());
    // Typos and a Go key this server does not use: started, each named with its source.
    cfg["server"]["readonly"] = serde_json::json!(true);
    cfg["repositories"]["gun_prefix"] = serde_json::json!(["x/"]);
    cfg["retention"] = serde_json::json!({"keep_version": 3});
    cfg["reporting"] = serde_json::json!({"bugsnag": {"api_key": "k"}});
    let (child, _port) =
        try_start_server_in(cfg, dir, dir, &[("NOTARY_SERVER_SERVER_READONLY", "true")])
            .unwrap_or_else(|log| panic!("the README's config did not start: {log}"));
    let mut child = child;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    assert!(dir.join("data/notary.db").is_file());
    assert_eq!(mode(&dir.join("data")), 0o700);
    let log = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    for want in [
        "server.readonly: not a key of this server",
        "repositories.gun_prefix: not a key of this server",
        "retention.keep_version: not a key of this server",
        "reporting: a Go notary-server key this server does not use",
        "NOTARY_SERVER_SERVER_READONLY overrides no configuration key",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
}

#[test]
fn bad_values_are_refused_and_blamed_on_their_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let write = |cfg: serde_json::Value| {
        std::fs::write(dir.join("c.json"), cfg.to_string()).unwrap();
    };
    let mut cfg = readme_config(free_port());
    cfg["logging"]["level"] = serde_json::json!("verbose");
    write(cfg);
    let (ok, out) = server(dir, &["--config", "c.json"], &[]);
    assert!(!ok && out.contains("logging.level \"verbose\""), "{out}");

    write(readme_config(free_port()));
    let (ok, out) = server(
        dir,
        &["--config", "c.json"],
        &[("NOTARY_SERVER_SERVER_READ_ONLY", "yes")],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("environment override NOTARY_SERVER_SERVER_READ_ONLY")
            && out.contains("server.read_only")
            && !out.contains("not valid JSON"),
        "{out}"
    );
    let mut cfg = readme_config(free_port());
    cfg["server"]["read_only"] = serde_json::json!("yes");
    write(cfg);
    let (ok, out) = server(dir, &["--config", "c.json"], &[]);
    assert!(
        !ok && out.contains("c.json: server.read_only: invalid type"),
        "{out}"
    );
}

#[test]
fn a_failed_start_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (ok, out) = server(tmp.path(), &["--data-dir", "d", "--listen", &addr], &[]);
    assert!(
        !ok && out.contains(&format!("listening on {addr}")),
        "{out}"
    );
    assert!(!tmp.path().join("d").exists(), "a data folder was made");
}

#[tokio::test]
async fn read_only_commands_need_no_keys_and_write_nothing() {
    let mut s = Server::start().await;
    let gun = "example.com/first-hour/inspect";
    init_repo(&s, gun).await;
    init_repo(&s, "example.com/first-hour/other").await;
    let (ok, out) = server(
        s.tmp(),
        &[
            "--data-dir",
            s.data.to_str().unwrap(),
            "delete",
            "example.com/first-hour/other",
            "--reason",
            "test",
        ],
        &[("USER", "mallory"), ("LOGNAME", "mallory")],
    );
    assert!(ok, "{out}");
    s.stop();
    // The passphrase is lost; the files must not change.
    std::fs::remove_file(s.data.join("key-passphrase")).unwrap();
    // Every file but SQLite's shared-memory index (-shm: readers take their read marks there).
    let snapshot = || {
        let mut files: Vec<(String, String)> = std::fs::read_dir(&s.data)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().ends_with("-shm"))
            .map(|e| {
                let bytes = std::fs::read(e.path()).unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    notary_tuf::FileMeta::of(&bytes).sha256_hex().unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot();
    let data = s.data.to_str().unwrap();
    let (ok, out) = server(s.tmp(), &["--data-dir", data, "repos"], &[]);
    assert!(
        ok && out.contains(gun) && out.contains("timestamp, snapshot"),
        "{out}"
    );
    let (ok, out) = server(s.tmp(), &["--data-dir", data, "show", gun], &[]);
    assert!(ok && out.contains(gun), "{out}");
    let (ok, out) = server(s.tmp(), &["--data-dir", data, "audit", "--json"], &[]);
    assert!(ok, "{out}");
    let trail: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let who = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let deletion = trail.iter().find(|e| e["action"] == "delete").unwrap();
    assert_eq!(
        deletion["subject"],
        format!("admin:{}", who.trim()),
        "the OS user, not $USER: {deletion}"
    );
    assert_eq!(snapshot(), before, "an inspection wrote to the data folder");
    assert!(!s.data.join("key-passphrase").exists());
}

#[test]
fn a_binary_passphrase_file_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("key-passphrase"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let (ok, out) = server(
        tmp.path(),
        &["--data-dir", "d", "--listen", "127.0.0.1:0"],
        &[],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("key-passphrase: not a passphrase file") && !out.contains("File exists"),
        "{out}"
    );
}

#[tokio::test]
async fn one_server_per_sqlite_database() {
    let s = Server::start().await;
    let (ok, out) = server(
        s.tmp(),
        &[
            "--data-dir",
            s.data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(
        !ok && out.contains("another notary-server already serves the SQLite database"),
        "{out}"
    );
    // Commands still work beside it.
    let (ok, out) = server(
        s.tmp(),
        &["--data-dir", s.data.to_str().unwrap(), "repos"],
        &[],
    );
    assert!(ok, "{out}");
}

/// A name that cannot be a GUN is refused where it enters, naming the rule, before anything is
/// opened (issue 29: the GUN is checked once, as the server checks a request's).
#[test]
fn an_impossible_gun_is_refused_as_an_argument() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["show", "a/../b"][..],
        &["delete", "a//b", "--reason", "typo"],
        &["prune", "--gun", "./x"],
        &["audit", "a/./b"],
    ] {
        let (ok, out) = server(tmp.path(), args, &[]);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains("GUN must be at most 255 characters"),
            "{args:?}: {out}"
        );
    }
    assert!(
        !tmp.path().join("notary-data").exists(),
        "nothing is created for a refused argument"
    );
}
