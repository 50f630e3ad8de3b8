//! Test harness: our server binary on a private data folder and port, the real Go `notary`
//! CLI (Debian package `notary` 0.7.0) and a raw HTTPS client trusting the generated CA.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Child>,
    pub data: PathBuf,
    pub port: u16,
    pub url: String,
    pub ca: PathBuf,
    pub http: reqwest::Client,
    tmp: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// Start on the embedded default (SQLite + self-signed TLS) in a fresh folder.
    pub async fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        Self::start_in(tmp, data, free_port()).await
    }

    async fn start_in(tmp: tempfile::TempDir, data: PathBuf, port: u16) -> Server {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(tmp.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_notary-server"))
            .args(["--data-dir", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
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
        let http = reqwest::Client::builder().add_root_certificate(cert).build().unwrap();
        let mut s = Server { child: Some(child), data, port, url, ca, http, tmp };
        loop {
            if let Ok(r) = s.http.get(format!("{}/_notary_server/health", s.url)).send().await {
                if r.status() == 200 {
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

    /// Stop and start again on the same data folder and port.
    pub async fn restart(mut self) -> Server {
        self.stop();
        let tmp = std::mem::replace(&mut self.tmp, tempfile::tempdir().unwrap());
        Self::start_in(tmp, self.data.clone(), self.port).await
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn tmp(&self) -> &Path {
        self.tmp.path()
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
        for f in ["root.json", "targets.json", "snapshot.json", "timestamp.json"] {
            v.push(self.get(&self.tuf(gun, f)).await);
        }
        v.push(self.get(&format!("{}/v2/{gun}/_trust/changefeed?records=100", self.url)).await);
        v
    }

    /// A notary CLI bound to this server and a trust folder.
    pub fn notary(&self, trust_dir: &str) -> Notary {
        Notary { server: self.url.clone(), ca: self.ca.clone(), dir: self.tmp.path().join(trust_dir) }
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
        let mut cmd = Command::new("notary");
        cmd.args(["-s", &self.server, "--tlscacert", self.ca.to_str().unwrap(), "-d", self.dir.to_str().unwrap()])
            .args(args)
            .env("NOTARY_ROOT_PASSPHRASE", "root-pass-phrase")
            .env("NOTARY_TARGETS_PASSPHRASE", "targets-pass-phrase")
            .env("NOTARY_SNAPSHOT_PASSPHRASE", "snapshot-pass-phrase")
            .env("NOTARY_DELEGATION_PASSPHRASE", "delegation-pass-phrase")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the Go `notary` CLI must be installed (Debian package `notary`); .ci/run installs it");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
        Run { ok: status.success(), stdout: String::from_utf8_lossy(&stdout).into(), stderr: String::from_utf8_lossy(&stderr).into() }
    }

    /// Run and require success.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(r.ok, "notary {args:?} failed:\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
        r.stdout
    }
}

/// Multipart upload as the Go client sends it: field `files`, filename = role.
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "notary-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// The sha256 of a snapshot named in a timestamp file.
pub fn snapshot_sha_from_timestamp(ts: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(ts).unwrap();
    let b64 = v["signed"]["meta"]["snapshot"]["hashes"]["sha256"].as_str().unwrap();
    use base64::Engine;
    hex::encode(base64::engine::general_purpose::STANDARD.decode(b64).unwrap())
}
