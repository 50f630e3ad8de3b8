//! Debian's Go programs: the `notary` CLI and `notary-server`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

pub(crate) struct Notary {
    pub server: String,
    pub ca: PathBuf,
    pub dir: PathBuf,
}

pub(crate) struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// What the user sees: the CLI prints `* fatal: …` on stdout.
    pub(crate) fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Notary {
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, b"")
    }

    pub(crate) fn run_with_input(&self, args: &[&str], input: &[u8]) -> Run {
        self.run_full(args, input, None)
    }

    /// Run with every key passphrase set to `passphrase` (e.g. keys made by `docker trust`).
    pub(crate) fn run_with_env(&self, args: &[&str], passphrase: &str) -> Run {
        self.run_full(args, b"", Some(passphrase))
    }

    fn run_full(&self, args: &[&str], input: &[u8], passphrase: Option<&str>) -> Run {
        let mut cmd = Command::new("notary");
        cmd.args([
            "-s",
            &self.server,
            "--tlscacert",
            self.ca.to_str().unwrap(),
            "-d",
            self.dir.to_str().unwrap(),
        ])
        .args(args)
        .env("NOTARY_ROOT_PASSPHRASE", "root-pass-phrase")
        .env("NOTARY_TARGETS_PASSPHRASE", "targets-pass-phrase")
        .env("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass-phrase")
        .env("NOTARY_DELEGATION_PASSPHRASE", "delegation-pass-phrase")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(p) = passphrase {
            for role in ["ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"] {
                cmd.env(format!("NOTARY_{role}_PASSPHRASE"), p);
            }
        }
        let mut child = cmd.spawn().expect(
            "the Go `notary` CLI must be installed (Debian package `notary`); .ci/run installs it",
        );
        child.stdin.take().unwrap().write_all(input).unwrap();
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        Run {
            ok: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into(),
            stderr: String::from_utf8_lossy(&stderr).into(),
        }
    }

    /// Run and require success.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.ok,
            "notary {args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }
}

#[allow(unused_imports)] // each test binary uses a different subset
pub(crate) use notary_bench::repo::{far_future, multipart, root_cert, RustRepo};

/// Debian's Go notary-server 0.7.0 (local trust service, TLS) on a Postgres database.
pub(crate) struct GoServer {
    child: Option<Child>,
    pub url: String,
    pub ca: PathBuf,
    pub tmp: tempfile::TempDir,
}

impl GoServer {
    pub(crate) async fn start(db_url: &str) -> GoServer {
        Self::start_with(db_url, serde_json::json!({})).await
    }

    /// As [`start`], with `extra` merged into its config (e.g. a remote `trust_service`).
    pub(crate) async fn start_with(db_url: &str, extra: serde_json::Value) -> GoServer {
        let tmp = tempfile::tempdir().unwrap();
        let tls = notary_server::tls::ensure_self_signed(tmp.path()).unwrap();
        let port = free_port();
        let sep = if db_url.contains('?') { '&' } else { '?' };
        let config = serde_json::json!({
            "server": {"http_addr": format!("127.0.0.1:{port}"), "tls_cert_file": tls.cert, "tls_key_file": tls.key},
            "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"},
            "storage": {"backend": "postgres", "db_url": format!("{db_url}{sep}sslmode=disable")},
            "logging": {"level": "info"}
        });
        let mut config = config;
        merge(&mut config, extra);
        let path = tmp.path().join("go-server.json");
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let log = std::fs::File::create(tmp.path().join("go-server.log")).unwrap();
        let child = Command::new("notary-server")
            .arg("-config")
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("Debian's Go notary-server must be installed (package `notary`)");
        let url = format!("https://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&tls.ca).unwrap()).unwrap(),
            )
            .build()
            .unwrap();
        let mut g = GoServer {
            child: Some(child),
            url,
            ca: tls.ca,
            tmp,
        };
        let (url, log) = (&g.url, g.tmp.path().join("go-server.log"));
        started(
            "Go notary-server",
            g.child.as_mut().unwrap(),
            &log,
            Duration::from_millis(100),
            async || answers_ping(&http, url).await,
        )
        .await;
        g
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("go-server.log")).unwrap_or_default()
    }

    /// A notary CLI bound to this server; `dir` is a trust folder (may be shared with clients
    /// of our server).
    pub(crate) fn notary(&self, dir: &Path) -> Notary {
        Notary {
            server: self.url.clone(),
            ca: self.ca.clone(),
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The GUN the Go server writes in [`go_populated_db`], with its targets.
pub(crate) const GO_GUN: &str = "example.com/go/written";

/// A Go-created database that the Go server populated through the Go CLI: a repository with a
/// target in `targets` and one in the delegation `targets/releases`.
pub(crate) async fn go_populated_db() -> String {
    let db = create_go_pg_db().await;
    let go = GoServer::start(&db).await;
    let owner = go.notary(&go.tmp.path().join("owner"));
    let f = write_file(go.tmp.path(), "go.txt", b"written through the Go server\n");
    owner.ok(&["init", GO_GUN]);
    owner.ok(&["add", GO_GUN, "go-v1", f.to_str().unwrap()]);
    owner.ok(&["publish", GO_GUN]);
    let (key, cert) = delegate_cert(go.tmp.path(), "go-delegate");
    owner.ok(&[
        "delegation",
        "add",
        GO_GUN,
        "targets/releases",
        cert.to_str().unwrap(),
        "--all-paths",
    ]);
    owner.ok(&["publish", GO_GUN]);
    owner.ok(&["key", "rotate", GO_GUN, "snapshot", "-r"]); // the Go server signs snapshots (ed25519)
    let delegate = go.notary(&go.tmp.path().join("delegate"));
    delegate.ok(&[
        "key",
        "import",
        key.to_str().unwrap(),
        "--role",
        "targets/releases",
    ]);
    delegate.ok(&[
        "add",
        GO_GUN,
        "go-release",
        f.to_str().unwrap(),
        "--roles",
        "targets/releases",
    ]);
    delegate.ok(&["publish", GO_GUN]);
    assert!(go
        .notary(&go.tmp.path().join("check"))
        .ok(&["list", GO_GUN])
        .contains("go-release"));
    db
}

/// An RSA-2048 delegation key and self-signed certificate made with openssl.
pub(crate) fn delegate_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-sha256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, cert)
}

/// init, add, publish, rotate the timestamp and snapshot keys to the server, publish again, and
/// list and verify from a fresh client.
pub(crate) fn full_flow(n: &Notary, fresh: &Notary, gun: &str, dir: &Path) {
    let f = write_file(dir, "flow.txt", b"signed through a remote signer\n");
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    n.ok(&["key", "rotate", gun, "timestamp", "-r"]);
    n.ok(&["key", "rotate", gun, "snapshot", "-r"]);
    n.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    let list = fresh.ok(&["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");
    let v = fresh.run_with_input(&["verify", gun, "v2"], b"signed through a remote signer\n");
    assert!(v.ok, "{}", v.output());
}
