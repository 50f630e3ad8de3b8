//! Our server binary on a private data folder and port, and what tests read from it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    /// Postgres with the Go server's schema, populated by the Go server first.
    GoPopulatedPostgres,
}

pub(crate) fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub(crate) struct Server {
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

impl Server {
    /// Start on the embedded default (SQLite + self-signed TLS) in a fresh folder.
    pub(crate) async fn start() -> Server {
        Self::start_backend(Backend::Sqlite).await
    }

    pub(crate) async fn start_backend(backend: Backend) -> Server {
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
    pub(crate) async fn start_with_db(db_url: &str) -> Server {
        Self::start_with_config(db_url, serde_json::json!({})).await
    }

    /// As [`start_with_db`], with `extra` merged into the config file.
    pub(crate) async fn start_with_config(db_url: &str, extra: serde_json::Value) -> Server {
        Self::start_with_tls(db_url, extra, None).await
    }

    /// As [`start_with_config`], serving the given certificate (e.g. one shared by several
    /// instances behind a load balancer) instead of one of its own.
    pub(crate) async fn start_with_tls(
        db_url: &str,
        extra: serde_json::Value,
        shared: Option<&notary_server::tls::Generated>,
    ) -> Server {
        Self::start_command(db_url, extra, shared, &[]).await
    }

    /// As [`start_with_config`], running `notary-server <command…>` (a serving command:
    /// `mirror`).
    pub(crate) async fn start_command(
        db_url: &str,
        extra: serde_json::Value,
        shared: Option<&notary_server::tls::Generated>,
        command: &[&str],
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
        let mut args = vec!["-config".into(), path.display().to_string()];
        args.extend(command.iter().map(|a| a.to_string()));
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
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || match ca.exists() {
                true => Ok(()),
                false => Err("the server did not create its CA".to_string()),
            },
        )
        .await;
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
        let (http, url, log) = (&s.http, &s.url, s.tmp.path().join("server.log"));
        started(
            "notary-server",
            s.child.as_mut().unwrap(),
            &log,
            Duration::from_millis(100),
            async || answers_ping(http, url).await,
        )
        .await;
        s
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("server.log")).unwrap_or_default()
    }

    /// Stop and start again with the same arguments, data folder and port.
    pub(crate) async fn restart(mut self) -> Server {
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

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// Wait up to `within` for the server to exit by itself: its exit status, if it did.
    pub(crate) async fn exited_within(
        &mut self,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
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
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Send a signal (e.g. "HUP") to the server process.
    pub(crate) fn signal(&self, sig: &str) {
        signal(self.child.as_ref().expect("running"), sig);
    }

    /// `notary-server <storage args> <args…>`: a subcommand (import, imported) on this server's
    /// storage, with its key passphrase.
    pub(crate) fn admin(&self, args: &[&str]) -> Command {
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

    pub(crate) fn tuf(&self, gun: &str, file: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{file}", self.url)
    }

    pub(crate) async fn get(&self, url: &str) -> (u16, Vec<u8>) {
        let r = self.http.get(url).send().await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// The repository's state as clients see it: every role file they fetch, and the changefeed.
    pub(crate) async fn snapshot_of_state(&self, gun: &str) -> Vec<(u16, Vec<u8>)> {
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
    pub(crate) fn notary(&self, trust_dir: &str) -> Notary {
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

/// The peak resident memory of a running process (`VmHWM`), if it still runs.
pub(crate) fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()
}

/// What a command printed, standard output then standard error.
pub(crate) fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// The sha256 of a snapshot named in a timestamp file.
pub(crate) fn snapshot_sha_from_timestamp(ts: &[u8]) -> String {
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

/// Start the server binary with `config` (a Go-format config, written with the log into `dir`;
/// its `server.http_addr` is set to a free port) from the folder `cwd`, with `env` and no key
/// passphrase unless `env` gives one: Ok((child, port)) once it listens, Err(everything it
/// printed) if it exits first.
pub(crate) fn try_start_server_in(
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
pub(crate) fn try_start_server(
    config: serde_json::Value,
    dir: &Path,
    env: &[(&str, &str)],
) -> Result<(Child, u16), String> {
    try_start_server_in(config, dir, dir, env)
}

/// Initialise a Rust-signed repository on `s`: root v1 and targets v1, with snapshot and
/// timestamp managed by the server.
pub(crate) async fn init_repo(s: &Server, gun: &str) -> RustRepo {
    init_repo_at(&s.http, &s.url, gun).await
}

/// [`init_repo`] on any server: `base` is its URL (`https://127.0.0.1:PORT` or `http://…`).
pub(crate) async fn init_repo_at(http: &reqwest::Client, base: &str, gun: &str) -> RustRepo {
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
    pub(crate) async fn post_parts(&self, gun: &str, parts: &[(&str, &[u8])]) -> (u16, Vec<u8>) {
        let r = self.publish_request(gun, parts).await;
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// Publish version `v` of `repo`'s targets, listing one target `t` whose content is `[v]`
    /// (the publish the multi-instance tests repeat): (status, body).
    pub(crate) async fn publish_version(&self, repo: &RustRepo, v: i64) -> (u16, Vec<u8>) {
        let file = repo.targets_file(v, &[("t", &[v as u8])]);
        self.post_parts(&repo.gun, &[("targets", &file)]).await
    }

    /// A publish of `parts` to `gun` (multipart, as the clients send it): the whole answer.
    pub(crate) async fn publish_request(
        &self,
        gun: &str,
        parts: &[(&str, &[u8])],
    ) -> reqwest::Response {
        let (ct, body) = multipart(parts);
        self.http
            .post(self.tuf(gun, ""))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Record a fault test's figures: printed by the test command at the end of the run (from
/// `target/reliability-figures.txt`, which it empties first) and quoted in docs/reliability.md.
pub(crate) fn report_figures(test: &str, line: &str) {
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
pub(crate) fn metric_sample<'a>(metrics: &'a str, sample: &str) -> Option<&'a str> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
}

/// `signed.version` of a metadata file.
pub(crate) fn version_of(file: &[u8]) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(file).unwrap();
    v["signed"]["version"].as_i64().unwrap()
}

/// The first error of a Go error envelope: (code, detail).
pub(crate) fn api_error(body: &[u8]) -> (String, serde_json::Value) {
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
pub(crate) fn workspace_bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_notary-server")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `gun`'s chain on `s` is whole for versions 1..=`newest` of targets, snapshot and timestamp
/// (one publish each): snapshot vN names targets vN by hash, timestamp vN names snapshot vN.
pub(crate) async fn assert_chain_whole(s: &Server, gun: &str, newest: i64) {
    use sha2::{Digest, Sha256};
    for v in 1..=newest {
        let mut files = Vec::new();
        for role in ["targets", "snapshot", "timestamp"] {
            files.push(s.get(&s.tuf(gun, &format!("{v}.{role}.json"))).await);
        }
        let [(st_t, t), (st_sn, sn), (st_ts, ts)] = <[_; 3]>::try_from(files).unwrap();
        assert_eq!((st_t, st_sn, st_ts), (200, 200, 200), "v{v} on {}", s.url);
        assert_eq!(
            notary_bench::load::meta_sha(&sn, "targets").unwrap(),
            hex::encode(Sha256::digest(&t)),
            "snapshot v{v} on {}",
            s.url
        );
        assert_eq!(
            notary_bench::load::meta_sha(&ts, "snapshot").unwrap(),
            hex::encode(Sha256::digest(&sn)),
            "timestamp v{v} on {}",
            s.url
        );
    }
}
