//! The docker CLI's `docker trust` commands (no daemon involved) against our server on Postgres.
#![cfg(feature = "system-tests")]

mod common;

use common::*;

const REPO: &str = "127.0.0.1:5000/test/app";

fn signer_list(d: &DockerCli) -> Vec<(String, Vec<String>)> {
    let v = inspect(d);
    let mut s: Vec<(String, Vec<String>)> = v[0]["Signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Name"].as_str().unwrap().to_string(),
                s["Keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["ID"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    s.sort();
    s
}

/// `docker trust inspect` as JSON (stdout only: docker logs warnings on stderr).
fn inspect(d: &DockerCli) -> serde_json::Value {
    let (ok, out, err) = d.run3(false, &["trust", "inspect", REPO], b"");
    assert!(ok, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("inspect output: {out}"))
}

#[tokio::test]
async fn two_docker_signers_on_one_repository() {
    // Metadata over 64 bytes is served gzip (the docker CLI asks for it): `compression`.
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"caching": {"gzip_min_bytes": 64}}),
    )
    .await;
    // The docker CLI trusts a notary server's CA from <config>/tls/<host:port>/ca.crt.
    let d = DockerCli::new(s.tmp(), &s);
    let config = d.config.clone();
    let keys = s.tmp().join("keys");
    std::fs::create_dir_all(&keys).unwrap();

    for who in ["alice", "bob"] {
        assert!(d
            .ok(
                false,
                &[
                    "trust",
                    "key",
                    "generate",
                    who,
                    "--dir",
                    keys.to_str().unwrap()
                ]
            )
            .contains("Successfully generated"));
    }
    let out = d.ok(
        false,
        &[
            "trust",
            "signer",
            "add",
            "--key",
            keys.join("alice.pub").to_str().unwrap(),
            "alice",
            REPO,
        ],
    );
    assert!(
        out.contains("Successfully initialized")
            && out.contains("Successfully added signer: alice"),
        "{out}"
    );
    let out = d.ok(
        false,
        &[
            "trust",
            "signer",
            "add",
            "--key",
            keys.join("bob.pub").to_str().unwrap(),
            "bob",
            REPO,
        ],
    );
    assert!(out.contains("Successfully added signer: bob"), "{out}");
    let signers = signer_list(&d);
    assert_eq!(
        signers.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    let pretty = d.ok(false, &["trust", "inspect", "--pretty", REPO]);
    assert!(
        pretty.contains("Root Key") && pretty.contains("Repository Key"),
        "{pretty}"
    );

    // Bob signs a tag as `docker trust sign` does, into targets/releases and targets/bob, with
    // only his key (a notary trust folder holding just that key; docker's trust folder is one).
    let bob_id = &signers.iter().find(|s| s.0 == "bob").unwrap().1[0];
    let bob_dir = s.tmp().join("bob-trust");
    std::fs::create_dir_all(bob_dir.join("private")).unwrap();
    std::fs::copy(
        config.join("trust/private").join(format!("{bob_id}.key")),
        bob_dir.join("private").join(format!("{bob_id}.key")),
    )
    .unwrap();
    let bob = Notary {
        server: s.url.clone(),
        ca: s.ca.clone(),
        dir: bob_dir,
    };
    let content = write_file(s.tmp(), "image.txt", b"image manifest stand-in\n");
    let add = bob.run_with_env(
        &[
            "add",
            REPO,
            "latest",
            content.to_str().unwrap(),
            "--roles",
            "targets/releases",
            "--roles",
            "targets/bob",
        ],
        "dct-repo-pass",
    );
    assert!(add.ok, "{}", add.output());
    let publish = bob.run_with_env(&["publish", REPO], "dct-repo-pass");
    assert!(publish.ok, "{}", publish.output());
    let pretty = d.ok(false, &["trust", "inspect", "--pretty", REPO]);
    assert!(
        pretty
            .lines()
            .any(|l| l.starts_with("latest") && l.contains("bob")),
        "{pretty}"
    );
    assert_eq!(
        inspect(&d)[0]["SignedTags"][0]["Signers"],
        serde_json::json!(["bob"])
    );

    // Removing bob: he signed the last release, so docker asks; answering yes removes him.
    let (ok, out) = d.run(false, &["trust", "signer", "remove", "bob", REPO], b"y\n");
    assert!(ok && out.contains("Successfully removed bob"), "{out}");
    assert_eq!(
        signer_list(&d)
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    // As docker warned, the release bob signed no longer verifies: no signed tags remain, and
    // a fresh notary client sees the same.
    assert_eq!(inspect(&d)[0]["SignedTags"], serde_json::json!([]));
    let list = s.notary("fresh").ok(&["list", REPO]);
    assert!(!list.contains("latest"), "{list}");
}
