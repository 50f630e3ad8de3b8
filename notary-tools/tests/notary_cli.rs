//! The real Go `notary` CLI (Debian 0.7.0) against our server on the embedded default
//! (SQLite, self-signed TLS, local keys).
#![cfg(feature = "system-tests")]

mod common;

use common::*;
use sha2::{Digest, Sha256};

on_both_backends!(
    init_add_publish_list_verify_lookup,
    delegation_rotation_witness_and_delete,
    server_keys_survive_restart
);

const GUN: &str = "example.com/test/repo";

fn error_code(body: &[u8]) -> String {
    api_error(body).0
}

async fn init_add_publish_list_verify_lookup(backend: Backend) {
    let s = Server::start_backend(backend).await;
    let c1 = s.notary("client1");
    let content = write_file(s.tmp(), "hello.txt", b"hello notary\n");
    c1.ok(&["init", GUN]);
    c1.ok(&["add", GUN, "v1", content.to_str().unwrap()]);
    c1.ok(&["publish", GUN]);

    // A second client with an empty trust folder sees the published target.
    let c2 = s.notary("client2");
    let list = c2.ok(&["list", GUN]);
    let digest = hex::encode(Sha256::digest(b"hello notary\n"));
    assert!(
        list.contains("v1") && list.contains(&digest) && list.contains("targets"),
        "{list}"
    );

    // verify: the right content passes (and is echoed), the wrong one is refused.
    let good = c2.run_with_input(&["verify", GUN, "v1"], b"hello notary\n");
    assert!(good.ok, "{}", good.output());
    assert_eq!(good.stdout, "hello notary\n");
    let bad = c2.run_with_input(&["verify", GUN, "v1"], b"tampered\n");
    assert!(!bad.ok);
    assert!(bad.output().contains("did not match"), "{}", bad.output());

    let lookup = c2.ok(&["lookup", GUN, "v1"]);
    assert_eq!(lookup.trim(), format!("v1 sha256:{digest} 13"));

    // Raw reads: timestamp.json, then snapshot by the hash the timestamp names.
    let (st, ts) = s.get(&s.tuf(GUN, "timestamp.json")).await;
    assert_eq!(st, 200);
    let sha = snapshot_sha_from_timestamp(&ts);
    let (st, snap) = s.get(&s.tuf(GUN, &format!("snapshot.{sha}.json"))).await;
    assert_eq!(st, 200);
    assert_eq!(hex::encode(Sha256::digest(&snap)), sha);
    let (st, body) = s
        .get(&s.tuf(GUN, &format!("snapshot.{}.json", "0".repeat(64))))
        .await;
    assert_eq!((st, error_code(&body)), (404, "METADATA_NOT_FOUND".into()));

    // An unknown GUN is a 404 with the Go envelope, and the CLI says so.
    let (st, body) = s.get(&s.tuf("example.com/nope", "root.json")).await;
    assert_eq!((st, error_code(&body)), (404, "METADATA_NOT_FOUND".into()));
    let r = s.notary("client3").run(&["list", "example.com/nope"]);
    assert!(
        !r.ok
            && r.output()
                .contains("does not have trust data for example.com/nope"),
        "{}",
        r.output()
    );

    // Garbage upload: 4xx, Go envelope, stored state unchanged.
    let before = s.snapshot_of_state(GUN).await;
    let r = s
        .publish_request(GUN, &[("targets", b"this is not json")])
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body = r.bytes().await.unwrap();
    assert_eq!(
        &body[..],
        b"{\"errors\":[{\"code\":\"MALFORMED_JSON\",\"message\":\"JSON sent by the client could not be parsed by the server\"}]}\n"
    );
    assert_eq!(s.snapshot_of_state(GUN).await, before);
    let r = s
        .http
        .post(s.tuf(GUN, ""))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.bytes().await.unwrap()), "MALFORMED_UPLOAD");
    assert_eq!(s.snapshot_of_state(GUN).await, before);
    assert!(c2.ok(&["list", GUN]).contains("v1"));
}

async fn delegation_rotation_witness_and_delete(backend: Backend) {
    let s = Server::start_backend(backend).await;
    let owner = s.notary("owner");
    let f1 = write_file(s.tmp(), "a.txt", b"artifact one\n");
    owner.ok(&["init", GUN]);
    owner.ok(&["add", GUN, "v1", f1.to_str().unwrap()]);
    owner.ok(&["publish", GUN]);

    // Server-managed snapshot and a new timestamp key (rotations the server signs with).
    owner.ok(&["key", "rotate", GUN, "snapshot", "-r"]);
    owner.ok(&["key", "rotate", GUN, "timestamp", "-r"]);
    assert!(s.notary("fresh1").ok(&["list", GUN]).contains("v1"));

    // A delegate holding only its own key publishes into targets/releases.
    let (key, cert) = delegate_cert(s.tmp(), "delegate");
    owner.ok(&[
        "delegation",
        "add",
        GUN,
        "targets/releases",
        cert.to_str().unwrap(),
        "--all-paths",
    ]);
    owner.ok(&["publish", GUN]);
    let delegate = s.notary("delegate");
    delegate.ok(&[
        "key",
        "import",
        key.to_str().unwrap(),
        "--role",
        "targets/releases",
    ]);
    let f2 = write_file(s.tmp(), "b.txt", b"release two\n");
    delegate.ok(&[
        "add",
        GUN,
        "v2",
        f2.to_str().unwrap(),
        "--roles",
        "targets/releases",
    ]);
    delegate.ok(&["publish", GUN]);
    let list = s.notary("fresh2").ok(&["list", GUN]);
    assert!(
        list.contains("v1") && list.contains("v2") && list.contains("targets/releases"),
        "{list}"
    );
    let (st, _) = s.get(&s.tuf(GUN, "targets/releases.json")).await;
    assert_eq!(st, 200);

    // Delegation key add and remove: a second key joins targets/releases, then leaves again.
    // One delegation; its key IDs are listed one per line.
    let key_ids = |out: &str| -> Vec<String> {
        out.split_whitespace()
            .filter(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
            .collect()
    };
    let before = key_ids(&s.notary("fresh-d0").ok(&["delegation", "list", GUN]));
    assert_eq!(before.len(), 1);
    let (_, cert2) = delegate_cert(s.tmp(), "delegate2");
    owner.ok(&[
        "delegation",
        "add",
        GUN,
        "targets/releases",
        cert2.to_str().unwrap(),
    ]);
    owner.ok(&["publish", GUN]);
    let listed = s.notary("fresh-d").ok(&["delegation", "list", GUN]);
    let ids = key_ids(&listed);
    assert_eq!(ids.len(), 2, "{listed}");
    let key2 = ids.iter().find(|id| !before.contains(id)).unwrap().clone();
    let r = owner.run_with_input(
        &["delegation", "remove", GUN, "targets/releases", &key2],
        b"y\n",
    );
    assert!(r.ok, "{}", r.output());
    owner.ok(&["publish", GUN]);
    let listed = s.notary("fresh-d2").ok(&["delegation", "list", GUN]);
    assert!(
        !listed.contains(&key2) && listed.contains("targets/releases"),
        "{listed}"
    );

    // witness: the delegate re-signs its role.
    delegate.ok(&["witness", GUN, "targets/releases"]);
    delegate.ok(&["publish", GUN]);

    // Root key rotation; a client with the old root follows the chain.
    let old = s.notary("fresh2");
    let r = owner.run_with_input(&["key", "rotate", GUN, "root"], b"yes\n");
    assert!(r.ok, "{}", r.output());
    let (st, _) = s.get(&s.tuf(GUN, "3.root.json")).await;
    assert_eq!(st, 200, "root v3 stored by version");
    assert!(old.ok(&["list", GUN]).contains("v2"));

    // Remove a target, then delete the repository remotely.
    owner.ok(&["remove", GUN, "v1"]);
    owner.ok(&["publish", GUN]);
    let list = s.notary("fresh3").ok(&["list", GUN]);
    assert!(!list.contains("v1 ") && list.contains("v2"), "{list}");
    owner.ok(&["delete", GUN, "--remote"]);
    let (st, _) = s.get(&s.tuf(GUN, "root.json")).await;
    assert_eq!(st, 404);
    let r = s.notary("fresh4").run(&["list", GUN]);
    assert!(
        !r.ok && r.output().contains("does not have trust data"),
        "{}",
        r.output()
    );
    // The deletion is in the changefeed.
    let (_, feed) = s
        .get(&format!("{}/v2/{GUN}/_trust/changefeed?records=-1", s.url))
        .await;
    let v: serde_json::Value = serde_json::from_slice(&feed).unwrap();
    assert_eq!(v["records"][0]["Category"], "deletion");
}

async fn server_keys_survive_restart(backend: Backend) {
    // Go's local trust service forgets its keys on restart; ours keeps them (encrypted).
    let s = Server::start_backend(backend).await;
    let c = s.notary("c");
    let f = write_file(s.tmp(), "a.txt", b"one\n");
    c.ok(&["init", GUN]);
    c.ok(&["add", GUN, "v1", f.to_str().unwrap()]);
    c.ok(&["publish", GUN]);
    c.ok(&["key", "rotate", GUN, "snapshot", "-r"]);
    let ts_key_before = s.get(&s.tuf(GUN, "timestamp.key")).await;
    let s = s.restart().await;
    assert_eq!(
        s.get(&s.tuf(GUN, "timestamp.key")).await,
        ts_key_before,
        "timestamp key still held after restart"
    );
    let c = s.notary("c");
    let f = write_file(s.tmp(), "b.txt", b"two\n");
    c.ok(&["add", GUN, "v2", f.to_str().unwrap()]);
    c.ok(&["publish", GUN]);
    let list = s.notary("fresh").ok(&["list", GUN]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");
    if backend == Backend::Sqlite {
        // The embedded default generated its key passphrase, private to the owner.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(s.data.join("key-passphrase"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}
