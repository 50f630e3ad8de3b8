//! Our images (built from the workspace, nothing pulled) running as containers on a private
//! Docker network: notary-signer and notary-server with mutual TLS, against a Postgres on the
//! host listening on that network's gateway; the notary CLI from the host. Also validates
//! docker-compose.yml.
#![cfg(feature = "system-tests")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Everything the test starts, removed on drop.
struct Cleanup {
    containers: Vec<String>,
    network: String,
    pg: Option<(String, std::path::PathBuf)>,
    /// Images built for the test, removed after their containers (else they stay, untagged).
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
        if let Some((pg_ctl, data)) = &self.pg {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--", pg_ctl, "-D"])
                .arg(data)
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}

#[test]
fn compose_file_is_valid() {
    sh(Command::new("docker-compose")
        .current_dir(repo_root())
        .args(["-f", "docker-compose.yml", "config", "-q"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_signer_containers_on_a_private_network() {
    let id = std::process::id();
    let tag = format!("test{id}");
    sh(Command::new("bash").current_dir(repo_root()).args([
        "scripts/build-images.sh",
        "--debug",
        "--tag",
        &tag,
    ]));
    // Declared before `cleanup` so it is removed after Postgres has been stopped.
    let tmp = tempfile::tempdir().unwrap();
    let network = format!("notary-rs-test-{id}");
    let images = vec![
        format!("notary-rs/notary-server:{tag}"),
        format!("notary-rs/notary-signer:{tag}"),
    ];
    let mut cleanup = Cleanup {
        containers: vec![],
        network: network.clone(),
        pg: None,
        images,
    };
    sh(Command::new("docker").args(["network", "create", &network]));
    let gateway = sh(Command::new("docker").args([
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        &network,
    ]));

    // Postgres on the host, reachable from the network's gateway address only.
    let pg_bin = sh(Command::new("bash").args([
        "-c",
        "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1",
    ]));
    let pg_dir = tmp.path().join("pg");
    std::fs::create_dir_all(&pg_dir).unwrap();
    sh(Command::new("chown")
        .arg("-R")
        .arg("postgres")
        .arg(tmp.path()));
    sh(Command::new("chmod").arg("755").arg(tmp.path()));
    let data = pg_dir.join("data");
    sh(Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{pg_bin}/initdb"), "-D"])
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres"]));
    let hba = data.join("pg_hba.conf");
    let mut conf = std::fs::read_to_string(&hba).unwrap();
    conf.push_str(&format!("host all all {gateway}/16 trust\n"));
    std::fs::write(&hba, conf).unwrap();
    let pg_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pg_ctl = format!("{pg_bin}/pg_ctl");
    sh(Command::new("runuser")
        .args(["-u", "postgres", "--", &pg_ctl, "-D"])
        .arg(&data)
        .arg("-l")
        .arg(pg_dir.join("log"))
        .args([
            "-w",
            "-o",
            &format!(
                "-p {pg_port} -k {} -c listen_addresses={gateway} -c fsync=off",
                pg_dir.display()
            ),
            "start",
        ]));
    cleanup.pg = Some((pg_ctl, data));
    let psql = format!("{pg_bin}/psql");
    // (From the host, over the Unix socket; containers come from the network's addresses.)
    sh(Command::new(&psql).arg("-h").arg(&pg_dir).args([
        "-p",
        &pg_port.to_string(),
        "-U",
        "postgres",
        "-c",
        "CREATE DATABASE server",
        "-c",
        "CREATE DATABASE signer",
    ]));

    // Certificates and configs, readable by the containers' unprivileged user.
    let certs = notary_server::tls::ensure_tls_files(&tmp.path().join("certs")).unwrap();
    sh(Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(tmp.path().join("certs")));
    let cfg = tmp.path().join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("signer.json"),
        serde_json::json!({"server": {"grpc_addr": ":7899", "tls_cert_file": "/certs/server.crt", "tls_key_file": "/certs/server.key", "client_ca_file": "/certs/ca.crt"},
            "storage": {"backend": "postgres", "db_url": format!("postgres://postgres@{gateway}:{pg_port}/signer"), "default_alias": "timestamp_1"}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        cfg.join("server.json"),
        serde_json::json!({"server": {"http_addr": ":4443", "tls_cert_file": "/certs/server.crt", "tls_key_file": "/certs/server.key"},
            "trust_service": {"type": "remote", "hostname": "notary-signer", "port": "7899", "key_algorithm": "ecdsa",
                "tls_ca_file": "/certs/ca.crt", "tls_client_cert": "/certs/server.crt", "tls_client_key": "/certs/server.key"},
            "storage": {"backend": "postgres", "db_url": format!("postgres://postgres@{gateway}:{pg_port}/server")}})
        .to_string(),
    )
    .unwrap();
    sh(Command::new("chmod").arg("-R").arg("a+rX").arg(&cfg));
    let mounts = |c: &mut Command| {
        c.arg("-v")
            .arg(format!("{}:/certs:ro", tmp.path().join("certs").display()))
            .arg("-v")
            .arg(format!("{}:/config:ro", cfg.display()));
    };

    let signer_name = format!("notary-signer-{id}");
    let mut c = Command::new("docker");
    c.args([
        "run",
        "-d",
        "--name",
        &signer_name,
        "--network",
        &network,
        "--network-alias",
        "notary-signer",
        "-e",
        "NOTARY_SIGNER_TIMESTAMP_1=container-pass",
    ]);
    mounts(&mut c);
    c.arg(format!("notary-rs/notary-signer:{tag}"));
    sh(&mut c);
    cleanup.containers.push(signer_name.clone());

    let server_name = format!("notary-server-{id}");
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = Command::new("docker");
    c.args([
        "run",
        "-d",
        "--name",
        &server_name,
        "--network",
        &network,
        "-p",
        &format!("127.0.0.1:{http_port}:4443"),
    ]);
    mounts(&mut c);
    c.arg(format!("notary-rs/notary-server:{tag}"));
    sh(&mut c);
    cleanup.containers.push(server_name.clone());

    let url = format!("https://127.0.0.1:{http_port}");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let wait_ready = || {
        eventually(
            Duration::from_secs(60),
            Duration::from_millis(250),
            async || {
                if let Ok(r) = http
                    .get(format!("{url}/_notary_server/health"))
                    .send()
                    .await
                {
                    if r.status() == 200 {
                        return Ok(());
                    }
                }
                let logs = Command::new("docker")
                    .args(["logs", &server_name])
                    .output()
                    .unwrap();
                Err(format!(
                    "server container not healthy:\n{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                ))
            },
        )
    };
    wait_ready().await;

    let gun = "example.com/containers/repo";
    let n = |dir: &str| Notary {
        server: url.clone(),
        ca: certs.ca.clone(),
        dir: tmp.path().join(dir),
    };
    let owner = n("owner");
    let f = write_file(tmp.path(), "a.txt", b"from containers\n");
    owner.ok(&["init", gun]);
    owner.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    owner.ok(&["key", "rotate", gun, "snapshot", "-r"]);
    assert!(n("fresh").ok(&["list", gun]).contains("v1"));

    // Kill the server container and start it again: everything is in Postgres and the signer.
    sh(Command::new("docker").args(["kill", &server_name]));
    sh(Command::new("docker").args(["start", &server_name]));
    wait_ready().await;
    owner.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    let list = n("fresh2").ok(&["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");
}
