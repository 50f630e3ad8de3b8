//! The docker CLI's `docker trust` commands (no daemon involved) against our server on Postgres.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const REPO: &str = "127.0.0.1:5000/test/app";

struct Docker<'a> {
    config: &'a Path,
    server: &'a str,
}

impl Docker<'_> {
    /// (success, stdout, stderr)
    fn run3(&self, args: &[&str], input: &[u8]) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", self.config)
            .env("DOCKER_CONTENT_TRUST_SERVER", self.server)
            .env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "docker-root-pass")
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "docker-repo-pass")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the docker CLI must be installed");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    /// (success, everything printed)
    fn run(&self, args: &[&str], input: &[u8]) -> (bool, String) {
        let (ok, out, err) = self.run3(args, input);
        (ok, format!("{out}{err}"))
    }

    fn inspect(&self) -> serde_json::Value {
        let (ok, out, err) = self.run3(&["trust", "inspect", REPO], b"");
        assert!(ok, "{out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("inspect output: {out}"))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args, b"");
        assert!(ok, "docker {args:?}: {out}");
        out
    }

    fn signers(&self) -> Vec<(String, Vec<String>)> {
        let v = self.inspect();
        let mut s: Vec<(String, Vec<String>)> = v[0]["Signers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["Name"].as_str().unwrap().to_string(),
                    s["Keys"].as_array().unwrap().iter().map(|k| k["ID"].as_str().unwrap().to_string()).collect(),
                )
            })
            .collect();
        s.sort();
        s
    }
}

#[tokio::test]
async fn two_docker_signers_on_one_repository() {
    let s = Server::start_backend(Backend::Postgres).await;
    let config = s.tmp().join("docker-config");
    // The docker CLI trusts a notary server's CA from <config>/tls/<host:port>/ca.crt.
    let tls = config.join("tls").join(format!("127.0.0.1:{}", s.port));
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&s.ca, tls.join("ca.crt")).unwrap();
    let d = Docker { config: &config, server: &s.url };
    let keys = s.tmp().join("keys");
    std::fs::create_dir_all(&keys).unwrap();

    for who in ["alice", "bob"] {
        assert!(d.ok(&["trust", "key", "generate", who, "--dir", keys.to_str().unwrap()]).contains("Successfully generated"));
    }
    let out = d.ok(&["trust", "signer", "add", "--key", keys.join("alice.pub").to_str().unwrap(), "alice", REPO]);
    assert!(out.contains("Successfully initialized") && out.contains("Successfully added signer: alice"), "{out}");
    let out = d.ok(&["trust", "signer", "add", "--key", keys.join("bob.pub").to_str().unwrap(), "bob", REPO]);
    assert!(out.contains("Successfully added signer: bob"), "{out}");
    let signers = d.signers();
    assert_eq!(signers.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    let pretty = d.ok(&["trust", "inspect", "--pretty", REPO]);
    assert!(pretty.contains("Root Key") && pretty.contains("Repository Key"), "{pretty}");

    // Bob signs a tag as `docker trust sign` does, into targets/releases and targets/bob, with
    // only his key (a notary trust folder holding just that key; docker's trust folder is one).
    let bob_id = &signers.iter().find(|s| s.0 == "bob").unwrap().1[0];
    let bob_dir = s.tmp().join("bob-trust");
    std::fs::create_dir_all(bob_dir.join("private")).unwrap();
    std::fs::copy(config.join("trust/private").join(format!("{bob_id}.key")), bob_dir.join("private").join(format!("{bob_id}.key")))
        .unwrap();
    let bob = Notary { server: s.url.clone(), ca: s.ca.clone(), dir: bob_dir };
    let content = write_file(s.tmp(), "image.txt", b"image manifest stand-in\n");
    let add = bob.run_with_env(
        &["add", REPO, "latest", content.to_str().unwrap(), "--roles", "targets/releases", "--roles", "targets/bob"],
        "docker-repo-pass",
    );
    assert!(add.ok, "{}", add.output());
    let publish = bob.run_with_env(&["publish", REPO], "docker-repo-pass");
    assert!(publish.ok, "{}", publish.output());
    let pretty = d.ok(&["trust", "inspect", "--pretty", REPO]);
    assert!(pretty.lines().any(|l| l.starts_with("latest") && l.contains("bob")), "{pretty}");
    assert_eq!(d.inspect()[0]["SignedTags"][0]["Signers"], serde_json::json!(["bob"]));

    // Removing bob: he signed the last release, so docker asks; answering yes removes him.
    let (ok, out) = d.run(&["trust", "signer", "remove", "bob", REPO], b"y\n");
    assert!(ok && out.contains("Successfully removed bob"), "{out}");
    assert_eq!(d.signers().iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["alice"]);
    // As docker warned, the release bob signed no longer verifies: no signed tags remain, and
    // a fresh notary client sees the same.
    assert_eq!(d.inspect()[0]["SignedTags"], serde_json::json!([]));
    let list = s.notary("fresh").ok(&["list", REPO]);
    assert!(!list.contains("latest"), "{list}");
}
