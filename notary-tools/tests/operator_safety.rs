//! Nothing an operator can do by following the docs may make keys unusable (issue: operator
//! safety): the key passphrase is found the same way from any folder, is never replaced while
//! keys depend on it, and a key that cannot be decrypted is a clear 503, not a 500.
#![cfg(feature = "system-tests")]

mod common;

use std::process::Child;

use common::*;

struct Plain {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Plain {
    fn start(
        config: serde_json::Value,
        cwd: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Result<Plain, String> {
        let (child, port) = try_start_server(config, cwd, env)?;
        Ok(Plain {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        })
    }

    async fn get(&self, gun: &str, file: &str) -> (u16, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}/v2/{gun}/_trust/tuf/{file}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    async fn post(&self, gun: &str, parts: &[(&str, &[u8])]) -> (u16, Vec<u8>) {
        let (ct, body) = multipart(parts);
        let r = self
            .http
            .post(format!("{}/v2/{gun}/_trust/tuf/", self.url))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// A new repository (see [`init_repo`]).
    async fn init(&self, gun: &str) -> RustRepo {
        init_repo_at(&self.http, &self.url, gun).await
    }
}

/// With `--config`, the generated key passphrase lives beside the config file whatever the
/// current folder; without it (or with the wrong one) the server refuses to start, naming the
/// file, instead of generating a new one.
#[tokio::test]
async fn the_key_passphrase_does_not_move_with_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("etc");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&conf, &a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let config = serde_json::json!({"server": {}, "trust_service": {"type": "local"},
        "storage": {"backend": "sqlite", "db_url": conf.join("notary.db")}});
    // The config file lives in `conf`; the server starts from `a`, then from `b`.
    let start = |cwd: &std::path::Path, env: &[(&str, &str)]| {
        let (child, port) = try_start_server_in(config.clone(), &conf, cwd, env)?;
        Ok::<_, String>(Plain {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        })
    };
    let s = start(&a, &[]).unwrap();
    let repo = s.init("example.com/ops/pass").await;
    drop(s);
    let pass_file = conf.join("notary-data/key-passphrase");
    assert!(
        pass_file.exists(),
        "the passphrase is beside the config file"
    );
    assert!(
        !a.join("notary-data").exists(),
        "nothing in the current folder"
    );

    let s = start(&b, &[]).unwrap();
    let (st, body) = s
        .post(
            "example.com/ops/pass",
            &[("targets", &repo.targets_file(2, &[("b", b"b")]))],
        )
        .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    drop(s);

    std::fs::rename(&pass_file, tmp.path().join("moved-away")).unwrap();
    let log = start(&b, &[])
        .err()
        .expect("refuses to start without the passphrase");
    assert!(
        log.contains("holds 2 server signing keys")
            && log.contains(&pass_file.display().to_string()),
        "{log}"
    );
    assert!(!pass_file.exists(), "no new passphrase generated");
    let log = start(&b, &[("NOTARY_SERVER_KEY_PASSPHRASE", "not-the-one")])
        .err()
        .expect("refuses a wrong passphrase");
    assert!(
        log.contains("cannot be decrypted") && log.contains("does not decrypt"),
        "{log}"
    );
    std::fs::rename(tmp.path().join("moved-away"), &pass_file).unwrap();
    let s = start(&a, &[]).unwrap();
    assert_eq!(s.get("example.com/ops/pass", "timestamp.json").await.0, 200);
}

/// Two instances on one database with different passphrases (a misconfiguration that the start
/// check cannot see on an empty database): a publish needing the other's key is a 503 naming
/// the cause, and the log says which key and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_cannot_be_decrypted_is_a_503() {
    let tmp = tempfile::tempdir().unwrap();
    let db = create_pg_db().await;
    let config = serde_json::json!({"server": {}, "trust_service": {"type": "local"}, "storage": {"backend": "postgres", "db_url": db}});
    let one = Plain::start(
        config.clone(),
        tmp.path(),
        &[("NOTARY_SERVER_KEY_PASSPHRASE", "one")],
    )
    .unwrap();
    let two = Plain::start(
        config,
        tmp.path(),
        &[("NOTARY_SERVER_KEY_PASSPHRASE", "two")],
    )
    .unwrap();
    let repo = one.init("example.com/ops/locked").await;
    let (st, body) = two
        .post(
            "example.com/ops/locked",
            &[("targets", &repo.targets_file(2, &[("b", b"b")]))],
        )
        .await;
    let (code, _) = api_error(&body);
    assert_eq!((st, code.as_str()), (503, "UNAVAILABLE"));
    assert!(
        String::from_utf8_lossy(&body).contains("passphrase"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let logs: String = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        logs.contains("cannot be decrypted with the configured passphrase"),
        "{logs}"
    );
}

/// The passphrase rotation of docs/signer.md, with `reencrypt` run while the signer serves: the
/// running signer creates no key under the retired alias (503 naming it, where it used to create
/// keys nobody could decrypt later), the documented next steps succeed, and a signer missing an
/// alias's passphrase refuses to start, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_passphrase_rotation_while_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = notary_server::tls::ensure_tls_files(&tmp.path().join("mtls")).unwrap();
    let db = create_pg_db().await;
    let storage = |alias: &str| serde_json::json!({"backend": "postgres", "db_url": db, "default_alias": alias});
    let env = |vars: &[(&str, &str)]| {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let mut signer = SignerProc::start_with(
        workspace_bin("notary-signer"),
        storage("old"),
        env(&[("NOTARY_SIGNER_OLD", "first")]),
        &tls,
    )
    .await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"trust_service": signer.trust_service()}),
    )
    .await;
    let a = init_repo(&s, "example.com/rotate/a").await;

    // Step 2 while serving (the new variable given to the command only).
    let (ok, out) = signer.run_command(
        &["reencrypt", "--from-alias", "old", "--to-alias", "new"],
        &[("NOTARY_SIGNER_NEW", "second")],
    );
    assert!(ok, "{out}");
    let (st, body) = s.get(&s.tuf("example.com/rotate/b", "timestamp.key")).await;
    assert_eq!(
        (st, api_error(&body).0.as_str()),
        (503, "UNAVAILABLE"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        s.log().contains("retired"),
        "the server log names the cause: {}",
        s.log()
    );

    // A signer that lacks the new alias's passphrase refuses to start, naming it.
    let log = signer
        .reconfigure(storage("new"), env(&[("NOTARY_SIGNER_OLD", "first")]))
        .await
        .expect_err("must not start");
    assert!(
        log.contains("\"new\"") && log.contains("NOTARY_SIGNER_NEW"),
        "{log}"
    );
    // Steps 3 and 4: default alias `new`, only its variable.
    signer
        .reconfigure(storage("new"), env(&[("NOTARY_SIGNER_NEW", "second")]))
        .await
        .unwrap();
    assert_eq!(
        s.get(&s.tuf("example.com/rotate/b", "timestamp.key"))
            .await
            .0,
        200
    );
    let (st, body) = s
        .post_parts(
            "example.com/rotate/a",
            &[("targets", &a.targets_file(2, &[("v2", b"v2")]))],
        )
        .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
}

/// Start-up checks come before state: a missing certificate (HTTPS or the signer's) leaves no
/// database, no migration and no passphrase behind; an unknown backend lists the valid ones.
#[tokio::test]
async fn startup_checks_touch_no_state() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("notary.db");
    let missing = tmp.path().join("missing.pem");
    for extra in [
        serde_json::json!({"server": {"tls_cert_file": missing, "tls_key_file": missing}}),
        serde_json::json!({"trust_service": {"type": "remote", "hostname": "127.0.0.1", "port": "1", "tls_ca_file": missing}}),
    ] {
        let mut config = serde_json::json!({"server": {}, "trust_service": {"type": "local"}, "storage": {"backend": "sqlite", "db_url": db}});
        for (k, v) in extra.as_object().unwrap() {
            for (k2, v2) in v.as_object().unwrap() {
                config[k][k2] = v2.clone();
            }
        }
        let log = try_start_server(config, tmp.path(), &[]).expect_err("refuses to start");
        assert!(log.contains("missing.pem"), "{log}");
        assert!(!db.exists(), "no database created: {log}");
        assert!(
            !tmp.path().join("notary-data").exists(),
            "no passphrase written: {log}"
        );
    }
    let config = serde_json::json!({"server": {}, "trust_service": {"type": "local"}, "storage": {"backend": "mysql2", "db_url": "x"}});
    let log = try_start_server(config, tmp.path(), &[]).expect_err("refuses to start");
    assert!(
        log.contains("postgres, sqlite (or sqlite3) or memory"),
        "{log}"
    );
}
