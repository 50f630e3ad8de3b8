//! A notary-signer process (ours or Go's) with mutual TLS.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A notary-signer process (ours or Go's) with mutual TLS, on a free port.
pub(crate) struct SignerProc {
    child: Option<Child>,
    pub port: u16,
    pub tls: notary_server::tls::Generated,
    pub tmp: tempfile::TempDir,
    args: (PathBuf, PathBuf, Vec<(String, String)>),
}

pub(crate) const SIGNER_ALIAS: &str = "timestamp_1";

pub(crate) const SIGNER_PASSPHRASE: &str = "signer-test-passphrase";

impl SignerProc {
    /// Our signer (`go = false`) or Debian's Go notary-signer (`go = true`); `db_url` None means
    /// the memory store. Certificates come from `tls_dir` (shared with the server so both trust
    /// one CA); mutual TLS is required.
    pub(crate) async fn start(
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
    pub(crate) async fn start_with(
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
        let port = self.port;
        let child = self.child.insert(child);
        started(
            "notary-signer",
            child,
            &self.tmp.path().join("signer.log"),
            Duration::from_millis(50),
            async || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        )
        .await;
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("signer.log")).unwrap_or_default()
    }

    /// Send a signal (e.g. "STOP" to hang the process, "CONT" to resume it).
    pub(crate) fn signal(&self, sig: &str) {
        signal(self.child.as_ref().expect("running"), sig);
    }

    /// Run the signer binary once with extra arguments (e.g. a subcommand) and the same
    /// config and environment plus `env`.
    pub(crate) fn run_command(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
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

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Stop, rewrite the config's `storage` block and the environment, and start again:
    /// Err(the log) if the signer exits instead of listening.
    pub(crate) async fn reconfigure(
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
    pub(crate) fn trust_service(&self) -> serde_json::Value {
        serde_json::json!({"type": "remote", "hostname": "127.0.0.1", "port": self.port.to_string(), "key_algorithm": "ecdsa",
            "tls_ca_file": self.tls.ca, "tls_client_cert": self.tls.cert, "tls_client_key": self.tls.key})
    }
}

impl Drop for SignerProc {
    fn drop(&mut self) {
        self.stop();
    }
}
