//! Test harness: our server binary on a private data folder and port, the real Go `notary`
//! CLI (Debian package `notary` 0.7.0) and a raw HTTPS client trusting the generated CA.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// Postgres with the Go server's schema, populated by the Go server first.
    GoPopulatedPostgres,
}

/// A fresh, empty database on the test Postgres cluster (started by scripts/test.sh).
pub async fn create_pg_db() -> String {
    use sqlx::Connection;
    let admin = std::env::var("NOTARY_TEST_PG_URL")
        .expect("NOTARY_TEST_PG_URL is not set: run the tests with `bash scripts/test.sh`, which starts a private Postgres");
    let name = format!("notary_test_{}_{}", std::process::id(), rand_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test Postgres");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    t * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub struct Server {
    child: Option<Child>,
    args: Vec<String>,
    pub db_url: Option<String>,
    pub data: PathBuf,
    pub port: u16,
    pub url: String,
    pub ca: PathBuf,
    pub http: reqwest::Client,
    tmp: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Start on the embedded default (SQLite + self-signed TLS) in a fresh folder.
    pub async fn start() -> Server {
        Self::start_backend(Backend::Sqlite).await
    }

    pub async fn start_backend(backend: Backend) -> Server {
        match backend {
            Backend::Sqlite => {
                let tmp = tempfile::tempdir().unwrap();
                let data = tmp.path().join("data");
                let port = free_port();
                let args = vec![
                    "--data-dir".into(),
                    data.display().to_string(),
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                ];
                Self::spawn(tmp, data, port, args, None).await
            }
            Backend::Postgres => Self::start_with_db(&create_pg_db().await).await,
            Backend::GoPopulatedPostgres => Self::start_with_db(&go_populated_db().await).await,
        }
    }

    /// Start from a Go-format config file on the given Postgres database, with TLS files made
    /// up front (as an operator would configure them).
    pub async fn start_with_db(db_url: &str) -> Server {
        Self::start_with_config(db_url, serde_json::json!({})).await
    }

    /// As [`start_with_db`], with `extra` merged into the config file.
    pub async fn start_with_config(db_url: &str, extra: serde_json::Value) -> Server {
        Self::start_with_tls(db_url, extra, None).await
    }

    /// As [`start_with_config`], serving the given certificate (e.g. one shared by several
    /// instances behind a load balancer) instead of one of its own.
    pub async fn start_with_tls(
        db_url: &str,
        extra: serde_json::Value,
        shared: Option<&notary_server::tls::Generated>,
    ) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        if let Some(g) = shared {
            std::fs::create_dir_all(data.join("tls")).unwrap();
            for (from, name) in [
                (&g.ca, "ca.crt"),
                (&g.cert, "server.crt"),
                (&g.key, "server.key"),
            ] {
                std::fs::copy(from, data.join("tls").join(name)).unwrap();
            }
        }
        let tls = notary_server::tls::ensure_self_signed(&data).unwrap();
        let port = free_port();
        let config = serde_json::json!({
            "server": {"http_addr": format!("127.0.0.1:{port}"), "tls_cert_file": tls.cert, "tls_key_file": tls.key},
            "trust_service": {"type": "local", "key_algorithm": "ecdsa"},
            "storage": {"backend": "postgres", "db_url": db_url},
            "logging": {"level": "info"}
        });
        let mut config = config;
        merge(&mut config, extra);
        let path = tmp.path().join("server.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let args = vec!["-config".into(), path.display().to_string()];
        Self::spawn(tmp, data, port, args, Some(db_url.to_string())).await
    }

    async fn spawn(
        tmp: tempfile::TempDir,
        data: PathBuf,
        port: u16,
        args: Vec<String>,
        db_url: Option<String>,
    ) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(tmp.path().join("server.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_notary-server"));
        cmd.args(&args).env_remove("NOTARY_SERVER_KEY_PASSPHRASE");
        if db_url.is_some() {
            // Config-file deployments give the key passphrase through the environment; the
            // embedded default generates one in its data folder.
            cmd.env("NOTARY_SERVER_KEY_PASSPHRASE", "test-server-key-passphrase");
        }
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start notary-server");
        let ca = data.join("tls/ca.crt");
        let url = format!("https://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ca.exists() {
            assert!(Instant::now() < deadline, "server did not create its CA");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let cert = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(cert)
            .build()
            .unwrap();
        let mut s = Server {
            child: Some(child),
            args,
            db_url,
            data,
            port,
            url,
            ca,
            http,
            tmp,
        };
        loop {
            // Ready when it answers the ping (200, or 401 with token auth); health may rightly be
            // 503 (e.g. signer unreachable).
            if let Ok(r) = s.http.get(format!("{}/v2/", s.url)).send().await {
                if r.status() == 200 || r.status() == 401 {
                    break;
                }
            }
            if let Some(st) = s.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited with {st}: {}", s.log());
            }
            assert!(Instant::now() < deadline, "server not healthy: {}", s.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("server.log")).unwrap_or_default()
    }

    /// Stop and start again with the same arguments, data folder and port.
    pub async fn restart(mut self) -> Server {
        self.stop();
        let tmp = std::mem::replace(&mut self.tmp, tempfile::tempdir().unwrap());
        Self::spawn(
            tmp,
            self.data.clone(),
            self.port,
            self.args.clone(),
            self.db_url.clone(),
        )
        .await
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// Wait up to `within` for the server to exit by itself: its exit status, if it did.
    pub async fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Send a signal (e.g. "HUP") to the server process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success());
    }

    /// `notary-server <storage args> <args…>`: a subcommand (import, imported) on this server's
    /// storage, with its key passphrase.
    pub fn admin(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_notary-server"));
        let storage: Vec<&String> = match self.args.iter().position(|a| a == "--listen") {
            Some(i) => self.args[..i].iter().chain(&self.args[i + 2..]).collect(),
            None => self.args.iter().collect(),
        };
        cmd.args(storage)
            .args(args)
            .env_remove("NOTARY_SERVER_KEY_PASSPHRASE")
            .env("RUST_BACKTRACE", "0");
        if self.db_url.is_some() {
            cmd.env("NOTARY_SERVER_KEY_PASSPHRASE", "test-server-key-passphrase");
        }
        cmd
    }

    pub fn tuf(&self, gun: &str, file: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{file}", self.url)
    }

    pub async fn get(&self, url: &str) -> (u16, Vec<u8>) {
        let r = self.http.get(url).send().await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// The repository's state as clients see it: every role file they fetch, and the changefeed.
    pub async fn snapshot_of_state(&self, gun: &str) -> Vec<(u16, Vec<u8>)> {
        let mut v = Vec::new();
        for f in [
            "root.json",
            "targets.json",
            "snapshot.json",
            "timestamp.json",
        ] {
            v.push(self.get(&self.tuf(gun, f)).await);
        }
        v.push(
            self.get(&format!(
                "{}/v2/{gun}/_trust/changefeed?records=100",
                self.url
            ))
            .await,
        );
        v
    }

    /// A notary CLI bound to this server and a trust folder.
    pub fn notary(&self, trust_dir: &str) -> Notary {
        Notary {
            server: self.url.clone(),
            ca: self.ca.clone(),
            dir: self.tmp.path().join(trust_dir),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Notary {
    pub server: String,
    pub ca: PathBuf,
    pub dir: PathBuf,
}

pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// What the user sees: the CLI prints `* fatal: …` on stdout.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Notary {
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, b"")
    }

    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Run {
        self.run_full(args, input, None)
    }

    /// Run with every key passphrase set to `passphrase` (e.g. keys made by `docker trust`).
    pub fn run_with_env(&self, args: &[&str], passphrase: &str) -> Run {
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
    pub fn ok(&self, args: &[&str]) -> String {
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
pub use notary_bench::repo::{far_future, multipart, root_cert, RustRepo};

pub fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// The sha256 of a snapshot named in a timestamp file.
pub fn snapshot_sha_from_timestamp(ts: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(ts).unwrap();
    let b64 = v["signed"]["meta"]["snapshot"]["hashes"]["sha256"]
        .as_str()
        .unwrap();
    use base64::Engine;
    hex::encode(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
}

/// Generate one `#[tokio::test]` per backend for each `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Postgres).await } )*
        }
        mod go_populated_postgres {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::GoPopulatedPostgres).await } )*
        }
    };
}

/// A fresh database with the schema the Go server's migrations create.
pub async fn create_go_pg_db() -> String {
    use sqlx::Connection;
    let url = create_pg_db().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/go-server-postgres-schema.sql"
    ))
    .unwrap();
    sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
    url
}

/// Debian's Go notary-server 0.7.0 (local trust service, TLS) on a Postgres database.
pub struct GoServer {
    child: Option<Child>,
    pub url: String,
    pub ca: PathBuf,
    pub tmp: tempfile::TempDir,
}

impl GoServer {
    pub async fn start(db_url: &str) -> GoServer {
        Self::start_with(db_url, serde_json::json!({})).await
    }

    /// As [`start`], with `extra` merged into its config (e.g. a remote `trust_service`).
    pub async fn start_with(db_url: &str, extra: serde_json::Value) -> GoServer {
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
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut g = GoServer {
            child: Some(child),
            url,
            ca: tls.ca,
            tmp,
        };
        loop {
            if let Ok(r) = http.get(format!("{}/v2/", g.url)).send().await {
                if r.status() == 200 || r.status() == 401 {
                    break;
                }
            }
            assert!(
                g.child.as_mut().unwrap().try_wait().unwrap().is_none(),
                "Go notary-server exited: {}",
                g.log()
            );
            assert!(
                Instant::now() < deadline,
                "Go notary-server not ready: {}",
                g.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        g
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("go-server.log")).unwrap_or_default()
    }

    /// A notary CLI bound to this server; `dir` is a trust folder (may be shared with clients
    /// of our server).
    pub fn notary(&self, dir: &Path) -> Notary {
        Notary {
            server: self.url.clone(),
            ca: self.ca.clone(),
            dir: dir.to_path_buf(),
        }
    }

    pub fn stop(&mut self) {
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

/// Start the server binary with `config` (a Go-format config, written with the log into `dir`;
/// its `server.http_addr` is set to a free port) from the folder `cwd`, with `env` and no key
/// passphrase unless `env` gives one: Ok((child, port)) once it listens, Err(everything it
/// printed) if it exits first.
pub fn try_start_server_in(
    mut config: serde_json::Value,
    dir: &Path,
    cwd: &Path,
    env: &[(&str, &str)],
) -> Result<(Child, u16), String> {
    let port = free_port();
    config["server"]["http_addr"] = serde_json::json!(format!("127.0.0.1:{port}"));
    let cfg = dir.join(format!("server-{port}.json"));
    std::fs::write(&cfg, config.to_string()).unwrap();
    let log = dir.join(format!("server-{port}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notary-server"));
    cmd.arg("--config")
        .arg(&cfg)
        .current_dir(cwd)
        .env_remove("NOTARY_SERVER_KEY_PASSPHRASE")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, port));
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log).unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`try_start_server_in`] with the config, the log and the current folder all in `dir`.
pub fn try_start_server(
    config: serde_json::Value,
    dir: &Path,
    env: &[(&str, &str)],
) -> Result<(Child, u16), String> {
    try_start_server_in(config, dir, dir, env)
}

/// The GUN the Go server writes in [`go_populated_db`], with its targets.
pub const GO_GUN: &str = "example.com/go/written";

/// A Go-created database that the Go server populated through the Go CLI: a repository with a
/// target in `targets` and one in the delegation `targets/releases`.
pub async fn go_populated_db() -> String {
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
pub fn delegate_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
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

/// Initialise a Rust-signed repository on `s`: root v1 and targets v1, with snapshot and
/// timestamp managed by the server.
pub async fn init_repo(s: &Server, gun: &str) -> RustRepo {
    init_repo_at(&s.http, &s.url, gun).await
}

/// [`init_repo`] on any server: `base` is its URL (`https://127.0.0.1:PORT` or `http://…`).
pub async fn init_repo_at(http: &reqwest::Client, base: &str, gun: &str) -> RustRepo {
    let tuf = |file: &str| format!("{base}/v2/{gun}/_trust/tuf/{file}");
    let get = |file: &str| {
        let r = http.get(tuf(file)).send();
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        }
    };
    let (ts, sn) = (get("timestamp.key").await, get("snapshot.key").await);
    let parse = |b: &[u8]| notary_bench::repo::parse_key_response(b).expect("key response");
    let repo = RustRepo::new(gun, parse(&sn), parse(&ts));
    let (ct, body) = multipart(&[
        ("root", &repo.root_file(1)),
        ("targets", &repo.targets_file(1, &[("init", b"init")])),
    ]);
    let r = http
        .post(tuf(""))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    assert_eq!(
        st,
        200,
        "{}",
        String::from_utf8_lossy(&r.bytes().await.unwrap())
    );
    repo
}

impl Server {
    pub async fn post_parts(&self, gun: &str, parts: &[(&str, &[u8])]) -> (u16, Vec<u8>) {
        let (ct, body) = multipart(parts);
        let r = self
            .http
            .post(self.tuf(gun, ""))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }
}

/// Record a fault test's figures: printed by the test command at the end of the run (from
/// `target/reliability-figures.txt`, which it empties first) and quoted in docs/reliability.md.
pub fn report_figures(test: &str, line: &str) {
    use std::io::Write;
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/reliability-figures.txt"
    ));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{test}: {line}");
    }
    println!("{test}: {line}");
}

/// The value of one sample (name and labels exactly) in a Prometheus text page from `/metrics`.
pub fn metric_sample<'a>(metrics: &'a str, sample: &str) -> Option<&'a str> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
}

/// `signed.version` of a metadata file.
pub fn version_of(file: &[u8]) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(file).unwrap();
    v["signed"]["version"].as_i64().unwrap()
}

/// The first error of a Go error envelope: (code, detail).
pub fn api_error(body: &[u8]) -> (String, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not an error envelope: {}", String::from_utf8_lossy(body)));
    (
        v["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        v["errors"][0]["detail"].clone(),
    )
}

/// A sibling binary of the workspace (built by `cargo test --workspace` / scripts/test.sh).
pub fn workspace_bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_notary-server")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A notary-signer process (ours or Go's) with mutual TLS, on a free port.
pub struct SignerProc {
    child: Option<Child>,
    pub port: u16,
    pub tls: notary_server::tls::Generated,
    pub tmp: tempfile::TempDir,
    args: (PathBuf, PathBuf, Vec<(String, String)>),
}

pub const SIGNER_ALIAS: &str = "timestamp_1";
pub const SIGNER_PASSPHRASE: &str = "signer-test-passphrase";

impl SignerProc {
    /// Our signer (`go = false`) or Debian's Go notary-signer (`go = true`); `db_url` None means
    /// the memory store. Certificates come from `tls_dir` (shared with the server so both trust
    /// one CA); mutual TLS is required.
    pub async fn start(
        go: bool,
        db_url: Option<&str>,
        tls: &notary_server::tls::Generated,
    ) -> SignerProc {
        let storage = match db_url {
            None => serde_json::json!({"backend": "memory"}),
            Some(u) => {
                let sep = if u.contains('?') { '&' } else { '?' };
                let url = if go {
                    format!("{u}{sep}sslmode=disable")
                } else {
                    u.to_string()
                };
                serde_json::json!({"backend": "postgres", "db_url": url, "default_alias": SIGNER_ALIAS})
            }
        };
        let bin = if go {
            PathBuf::from("notary-signer")
        } else {
            workspace_bin("notary-signer")
        };
        let env = vec![(
            format!("NOTARY_SIGNER_{}", SIGNER_ALIAS.to_uppercase()),
            SIGNER_PASSPHRASE.to_string(),
        )];
        Self::start_with(bin, storage, env, tls).await
    }

    /// A signer binary with the given `storage` config block and extra environment.
    pub async fn start_with(
        bin: PathBuf,
        storage: serde_json::Value,
        env: Vec<(String, String)>,
        tls: &notary_server::tls::Generated,
    ) -> SignerProc {
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = serde_json::json!({
            "server": {"grpc_addr": format!("127.0.0.1:{port}"), "tls_cert_file": tls.cert, "tls_key_file": tls.key, "client_ca_file": tls.ca},
            "storage": storage,
            "logging": {"level": "info"}
        });
        let path = tmp.path().join("signer.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let mut s = SignerProc {
            child: None,
            port,
            tls: notary_server::tls::Generated {
                ca: tls.ca.clone(),
                cert: tls.cert.clone(),
                key: tls.key.clone(),
            },
            tmp,
            args: (bin, path, env),
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join("signer.log"))
            .unwrap();
        let (bin, path, env) = &self.args;
        let child = Command::new(bin)
            .arg("-config")
            .arg(path)
            .envs(env.iter().cloned())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                self.child.as_mut().unwrap().try_wait().unwrap().is_none(),
                "signer exited: {}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "signer not listening: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("signer.log")).unwrap_or_default()
    }

    /// Send a signal (e.g. "STOP" to hang the process, "CONT" to resume it).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Run the signer binary once with extra arguments (e.g. a subcommand) and the same
    /// config and environment plus `env`.
    pub fn run_command(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let (bin, path, base_env) = &self.args;
        let out = Command::new(bin)
            .arg("--config")
            .arg(path)
            .args(args)
            .envs(base_env.iter().cloned())
            .envs(env.iter().map(|(a, b)| (a.to_string(), b.to_string())))
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Stop, rewrite the config's `storage` block and the environment, and start again:
    /// Err(the log) if the signer exits instead of listening.
    pub async fn reconfigure(
        &mut self,
        storage: serde_json::Value,
        env: Vec<(String, String)>,
    ) -> Result<(), String> {
        self.stop();
        let path = self.args.1.clone();
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        config["storage"] = storage;
        std::fs::write(&path, config.to_string()).unwrap();
        self.args.2 = env;
        let _ = std::fs::remove_file(self.tmp.path().join("signer.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join("signer.log"))
            .unwrap();
        let mut child = Command::new(&self.args.0)
            .arg("-config")
            .arg(&path)
            .envs(self.args.2.iter().cloned())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = Some(child);
        Ok(())
    }

    /// The server's `trust_service` block for this signer.
    pub fn trust_service(&self) -> serde_json::Value {
        serde_json::json!({"type": "remote", "hostname": "127.0.0.1", "port": self.port.to_string(), "key_algorithm": "ecdsa",
            "tls_ca_file": self.tls.ca, "tls_client_cert": self.tls.cert, "tls_client_key": self.tls.key})
    }
}

impl Drop for SignerProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh database with the Go notary-signer's schema (its migrations create `private_keys`;
/// our signer migration is that same table).
pub async fn create_go_signer_db() -> String {
    use sqlx::Connection;
    let url = create_pg_db().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/signer/postgres/0001_private_keys.sql"
    ))
    .unwrap();
    sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (1, false);")
        .execute(&mut conn)
        .await
        .unwrap();
    url
}

/// A token service as registries use (docker/distribution token auth): a CA whose certificate is
/// the `rootcertbundle`, a signing key with a certificate from that CA (sent as `x5c`), and an
/// HTTP endpoint at the realm that grants requested scopes (all of them to anyone who presents
/// a password; only `pull` anonymously).
pub struct TokenService {
    pub bundle: PathBuf,
    pub realm: String,
    pub issuer: String,
    pub service: String,
    ca_key: rcgen::KeyPair,
    ca_der: Vec<u8>,
    signing_key: rcgen::KeyPair,
    signing_der: Vec<u8>,
    /// The realm's thread (with a runtime of its own, so a test may block on a CLI meanwhile).
    server: Option<std::thread::JoinHandle<()>>,
}

pub struct Grant<'a> {
    pub typ: &'a str,
    pub name: &'a str,
    pub actions: &'a [&'a str],
}

impl TokenService {
    pub fn new(dir: &Path, service: &str) -> TokenService {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test token CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let signing_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "token signer");
        let leaf_cert = leaf.signed_by(&signing_key, &ca_cert, &ca_key).unwrap();
        let bundle = dir.join("token-ca.pem");
        std::fs::write(&bundle, ca_cert.pem()).unwrap();
        TokenService {
            bundle,
            realm: String::new(),
            issuer: "test-token-issuer".into(),
            service: service.into(),
            ca_key,
            ca_der: ca_cert.der().to_vec(),
            signing_key,
            signing_der: leaf_cert.der().to_vec(),
            server: None,
        }
    }

    /// A token; `ttl_s` may be negative (expired). Signed by the x5c leaf.
    pub fn token(&self, grants: &[Grant], ttl_s: i64, issuer: &str, audience: &str) -> String {
        use base64::Engine;
        let x5c = vec![base64::engine::general_purpose::STANDARD.encode(&self.signing_der)];
        self.sign(
            &self.signing_key,
            Some(x5c),
            None,
            grants,
            ttl_s,
            issuer,
            audience,
        )
    }

    /// A token naming the CA key by its libtrust key ID (`kid`), signed by the CA key.
    pub fn kid_token(&self, grants: &[Grant]) -> String {
        use der::{Decode, Encode};
        let cert = x509_cert::Certificate::from_der(&self.ca_der).unwrap();
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        let kid = notary_server::auth::libtrust_key_id(&spki);
        self.sign(
            &self.ca_key,
            None,
            Some(kid),
            grants,
            300,
            &self.issuer.clone(),
            &self.service.clone(),
        )
    }

    /// A token signed by a key that does not chain to the bundle.
    pub fn forged_token(&self, grants: &[Grant]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let other = TokenService::new(dir.path(), &self.service);
        use base64::Engine;
        let x5c = vec![base64::engine::general_purpose::STANDARD.encode(&other.signing_der)];
        other.sign(
            &other.signing_key,
            Some(x5c),
            None,
            grants,
            300,
            &self.issuer,
            &self.service,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        key: &rcgen::KeyPair,
        x5c: Option<Vec<String>>,
        kid: Option<String>,
        grants: &[Grant],
        ttl_s: i64,
        issuer: &str,
        audience: &str,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let access: Vec<serde_json::Value> = grants
            .iter()
            .map(|g| serde_json::json!({"type": g.typ, "name": g.name, "actions": g.actions}))
            .collect();
        let claims = serde_json::json!({"iss": issuer, "sub": "alice", "aud": audience, "exp": now + ttl_s, "nbf": now - 5, "iat": now - 5,
            "jti": format!("{}", rand_suffix()), "access": access});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5c = x5c;
        header.kid = kid;
        let enc = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
        jsonwebtoken::encode(&header, &claims, &enc).unwrap()
    }

    /// Serve the realm on a free loopback port (plain HTTP, like a local auth service).
    pub async fn serve(&mut self) {
        let port = free_port();
        self.realm = format!("http://127.0.0.1:{port}/token");
        let me = std::sync::Arc::new(TokenService {
            bundle: self.bundle.clone(),
            realm: self.realm.clone(),
            issuer: self.issuer.clone(),
            service: self.service.clone(),
            ca_key: rcgen::KeyPair::try_from(self.ca_key.serialize_der().as_slice()).unwrap(),
            ca_der: self.ca_der.clone(),
            signing_key: rcgen::KeyPair::try_from(self.signing_key.serialize_der().as_slice())
                .unwrap(),
            signing_der: self.signing_der.clone(),
            server: None,
        });
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let accept = async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let me = me.clone();
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move {
                            let respond = |status: u16, body: String| {
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                        .unwrap(),
                                )
                            };
                            if req.uri().path() != "/token" {
                                return respond(404, String::new());
                            }
                            let q: Vec<(String, String)> =
                                serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
                                    .unwrap();
                            let service = q
                                .iter()
                                .find(|(k, _)| k == "service")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            let authenticated = req.headers().contains_key("authorization");
                            let mut grants = Vec::new();
                            for (_, scope) in q.iter().filter(|(k, _)| k == "scope") {
                                for one in scope.split(' ') {
                                    // type:name:actions — the name may itself hold ':' (host:port).
                                    let (Some((typ, rest)), Some((_, acts))) =
                                        (one.split_once(':'), one.rsplit_once(':'))
                                    else {
                                        continue;
                                    };
                                    let Some((name, _)) = rest.rsplit_once(':') else {
                                        continue;
                                    };
                                    let actions: Vec<String> = acts
                                        .split(',')
                                        .filter(|a| authenticated || *a == "pull")
                                        .map(str::to_owned)
                                        .collect();
                                    grants.push((typ.to_string(), name.to_string(), actions));
                                }
                            }
                            let owned: Vec<(String, String, Vec<&str>)> = grants
                                .iter()
                                .map(|(t, n, a)| {
                                    (t.clone(), n.clone(), a.iter().map(String::as_str).collect())
                                })
                                .collect();
                            let g: Vec<Grant> = owned
                                .iter()
                                .map(|(t, n, a)| Grant {
                                    typ: t,
                                    name: n,
                                    actions: a,
                                })
                                .collect();
                            let token = me.token(&g, 300, &me.issuer, &service);
                            respond(200, serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string())
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service),
                );
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        self.server = Some(std::thread::spawn(move || rt.block_on(accept)));
    }

    /// The server's `auth` config block.
    pub fn auth_config(&self) -> serde_json::Value {
        serde_json::json!({"type": "token", "options": {"realm": self.realm, "service": self.service, "issuer": self.issuer, "rootcertbundle": self.bundle}})
    }
}

/// Debian's docker-registry on a free loopback port (127.0.0.0/8 is an insecure registry for
/// the daemon by default).
pub struct Registry {
    child: Child,
    pub port: u16,
    _tmp: tempfile::TempDir,
}

impl Registry {
    /// `token`: (realm, issuer, root bundle) to require bearer tokens for service "registry.test".
    pub fn start(token: Option<(&str, &str, &Path)>) -> Registry {
        let tmp = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = tmp.path().join("registry.yml");
        let mut yml = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n",
            tmp.path().join("data").display()
        );
        if let Some((realm, issuer, bundle)) = token {
            yml.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: registry.test\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                bundle.display()
            ));
        }
        std::fs::write(&cfg, yml).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's docker-registry must be installed (package docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _tmp: tmp,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The docker CLI with a private config folder, trusting `notary`'s CA.
pub struct DockerCli {
    pub config: PathBuf,
    notary_url: String,
    images: std::cell::RefCell<Vec<String>>,
}

impl DockerCli {
    pub fn new(dir: &Path, notary: &Server) -> DockerCli {
        Self::for_notary(dir, &notary.url, &notary.ca)
    }

    /// A docker CLI whose content trust server is `url` (https://127.0.0.1:PORT) with CA `ca`;
    /// clients made with the same `dir` share one config folder (and trust cache).
    pub fn for_notary(dir: &Path, url: &str, ca: &Path) -> DockerCli {
        let config = dir.join("docker-config");
        let tls = config.join("tls").join(url.trim_start_matches("https://"));
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::copy(ca, tls.join("ca.crt")).unwrap();
        DockerCli {
            config,
            notary_url: url.to_string(),
            images: Default::default(),
        }
    }

    /// (success, stdout, stderr)
    pub fn run3(&self, trust: bool, args: &[&str], input: &[u8]) -> (bool, String, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CONTENT_TRUST", if trust { "1" } else { "0" })
            .env("DOCKER_CONTENT_TRUST_SERVER", &self.notary_url)
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "dct-root-pass")
            .env(
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
                "dct-repo-pass",
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker CLI");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// (success, everything printed)
    pub fn run(&self, trust: bool, args: &[&str], input: &[u8]) -> (bool, String) {
        let (ok, out, err) = self.run3(trust, args, input);
        (ok, format!("{out}{err}"))
    }

    pub fn ok(&self, trust: bool, args: &[&str]) -> String {
        let (ok, out) = self.run(trust, args, b"");
        assert!(ok, "docker {args:?}: {out}");
        out
    }

    /// A one-file image made locally (`docker import`), tagged `name`.
    pub fn make_image(&self, dir: &Path, name: &str, content: &str) {
        let root = dir.join(format!("rootfs-{}", self.images.borrow().len()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("content.txt"), content).unwrap();
        let tar = dir.join(format!("img-{}.tar", self.images.borrow().len()));
        assert!(std::process::Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success());
        self.ok(false, &["import", tar.to_str().unwrap(), name]);
        self.images.borrow_mut().push(name.to_string());
    }

    pub fn forget_image(&self, name: &str) {
        let _ = self.run(false, &["rmi", "-f", name], b"");
    }

    /// Remove the cached trust metadata (keys stay): the next pull is a fresh client's.
    pub fn forget_trust_cache(&self) {
        let _ = std::fs::remove_dir_all(self.config.join("trust/tuf"));
    }
}

impl Drop for DockerCli {
    fn drop(&mut self) {
        for i in self.images.borrow().iter() {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", i])
                .output();
        }
    }
}

/// init, add, publish, rotate the timestamp and snapshot keys to the server, publish again, and
/// list and verify from a fresh client.
pub fn full_flow(n: &Notary, fresh: &Notary, gun: &str, dir: &Path) {
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

/// A TCP forwarder standing in for a network path (to the database, or from a load balancer to
/// an instance); stopping it cuts every connection, as a restart or a network split does.
/// Clones share the same forwarder.
#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    pub upstream: String,
    pub tasks: std::sync::Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Silently drop everything (a partition that sends no reset): connections stay open,
    /// nothing is forwarded.
    blackhole: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    pub fn new(upstream: String) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::with_port(port, upstream)
    }

    /// On a given port (e.g. the port of a stopped proxy, re-pointed elsewhere).
    pub fn with_port(port: u16, upstream: String) -> Proxy {
        Proxy {
            port,
            upstream,
            tasks: Default::default(),
            blackhole: std::sync::Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    pub async fn start(&self) {
        self.blackhole.send_replace(false);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let upstream = self.upstream.clone();
        let tasks = self.tasks.clone();
        let blackhole = self.blackhole.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let mut dark = blackhole.subscribe();
                let conn = tokio::spawn(async move {
                    let is_dark = *dark.borrow();
                    if is_dark {
                        // Accepted, never answered.
                        let _held = client;
                        return std::future::pending::<()>().await;
                    }
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = async { let _ = dark.wait_for(|d| *d).await; } => {
                                // Keep both ends open and silent.
                                std::future::pending::<()>().await
                            }
                        }
                    }
                });
                tasks.lock().await.push(conn);
            }
        });
        self.tasks.lock().await.push(accept);
    }

    /// Stop forwarding without closing anything: packets are "dropped" both ways, new
    /// connections hang. `stop` then `start` heals it (dropping the held connections).
    pub fn blackhole(&self) {
        self.blackhole.send_replace(true);
    }

    pub async fn stop(&self) {
        for t in self.tasks.lock().await.drain(..) {
            t.abort();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// The database URL, routed through this proxy.
    pub fn url(&self, db_url: &str) -> String {
        db_url.replace(&self.upstream, &format!("127.0.0.1:{}", self.port))
    }
}

pub fn host_port(db_url: &str) -> String {
    let after_at = db_url.split('@').nth(1).unwrap();
    after_at.split('/').next().unwrap().to_string()
}
