//! Debian's docker-registry and the docker CLI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Debian's docker-registry on a free loopback port (127.0.0.0/8 is an insecure registry for
/// the daemon by default).
pub(crate) struct Registry {
    child: Child,
    pub port: u16,
    _tmp: tempfile::TempDir,
}

impl Registry {
    /// `token`: (realm, issuer, root bundle) to require bearer tokens for service "registry.test".
    pub(crate) fn start(token: Option<(&str, &str, &Path)>) -> Registry {
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
        wait_for_port(port, "the registry");
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
pub(crate) struct DockerCli {
    pub config: PathBuf,
    notary_url: String,
    images: std::cell::RefCell<Vec<String>>,
}

impl DockerCli {
    pub(crate) fn new(dir: &Path, notary: &Server) -> DockerCli {
        Self::for_notary(dir, &notary.url, &notary.ca)
    }

    /// A docker CLI whose content trust server is `url` (https://127.0.0.1:PORT) with CA `ca`;
    /// clients made with the same `dir` share one config folder (and trust cache).
    pub(crate) fn for_notary(dir: &Path, url: &str, ca: &Path) -> DockerCli {
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
    pub(crate) fn run3(&self, trust: bool, args: &[&str], input: &[u8]) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CONTENT_TRUST", if trust { "1" } else { "0" })
            .env("DOCKER_CONTENT_TRUST_SERVER", &self.notary_url)
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "dct-root-pass")
            .env(
                "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
                "dct-repo-pass",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
    pub(crate) fn run(&self, trust: bool, args: &[&str], input: &[u8]) -> (bool, String) {
        let (ok, out, err) = self.run3(trust, args, input);
        (ok, format!("{out}{err}"))
    }

    pub(crate) fn ok(&self, trust: bool, args: &[&str]) -> String {
        let (ok, out) = self.run(trust, args, b"");
        assert!(ok, "docker {args:?}: {out}");
        out
    }

    /// A one-file image made locally (`docker import`), tagged `name`.
    pub(crate) fn make_image(&self, dir: &Path, name: &str, content: &str) {
        let root = dir.join(format!("rootfs-{}", self.images.borrow().len()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("content.txt"), content).unwrap();
        let tar = dir.join(format!("img-{}.tar", self.images.borrow().len()));
        assert!(Command::new("tar")
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

    pub(crate) fn forget_image(&self, name: &str) {
        let _ = self.run(false, &["rmi", "-f", name], b"");
    }

    /// Remove the cached trust metadata (keys stay): the next pull is a fresh client's.
    pub(crate) fn forget_trust_cache(&self) {
        let _ = std::fs::remove_dir_all(self.config.join("trust/tuf"));
    }
}

impl Drop for DockerCli {
    fn drop(&mut self) {
        for i in self.images.borrow().iter() {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}
