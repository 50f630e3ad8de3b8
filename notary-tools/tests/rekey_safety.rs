//! `notary-rekey` does not trust the server it publishes to: it signs only a change of the root
//! the owner's trust directory already holds (`notary_tools::rekey`). A server (or a man in the
//! middle) that edits the root, or offers a key that is not a well-formed public key, gets
//! nothing signed; off a terminal nothing is signed without `--yes`.
#![cfg(feature = "system-tests")]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `notary-rekey` against `url`; (exit ok, output).
fn rekey(
    url: &str,
    ca: &std::path::Path,
    gun: &str,
    trust_dir: &std::path::Path,
    yes: bool,
) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notary-rekey"));
    cmd.args([
        "--server",
        url,
        "--tlscacert",
        ca.to_str().unwrap(),
        "--gun",
        gun,
    ])
    .arg("--trust-dir")
    .arg(trust_dir)
    .env("NOTARY_ROOT_PASSPHRASE", "root-pass-phrase")
    .stdin(Stdio::null());
    if yes {
        cmd.arg("--yes");
    }
    let out = cmd.output().unwrap();
    (out.status.success(), output_text(&out))
}

/// The root an attacker would like signed: its own key added to the root and targets roles.
fn add_attacker_key(root: &[u8]) -> Vec<u8> {
    let attacker = notary_tuf::PrivateKey::generate("ecdsa")
        .unwrap()
        .public_key();
    let mut v: Value = serde_json::from_slice(root).unwrap();
    let id = attacker.id();
    v["signed"]["keys"][&id] = serde_json::from_str(&attacker.to_go_json()).unwrap();
    for role in ["root", "targets"] {
        v["signed"]["roles"][role]["keyids"]
            .as_array_mut()
            .unwrap()
            .push(json!(id));
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_signs_only_a_change_of_the_trusted_root() {
    let ours = Server::start().await;
    let gun = "example.com/rekey/safety";
    let f = write_file(ours.tmp(), "f.txt", b"content\n");
    let owner = ours.notary("owner");
    owner.ok(&["init", gun]);
    owner.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    let root_before = ours.get(&ours.tuf(gun, "root.json")).await;
    assert_eq!(root_before.0, 200);
    let unchanged =
        || async { assert_eq!(ours.get(&ours.tuf(gun, "root.json")).await, root_before) };

    // A server that edits the root it returns: refused, nothing signed or published.
    let editing = editing_proxy(
        &ours.url,
        &ours.ca,
        Duration::ZERO,
        Arc::new(|req: &Request, status, body: Vec<u8>| {
            if req.method == "GET" && req.path.ends_with("/root.json") && status == 200 {
                (status, add_attacker_key(&body))
            } else {
                (status, body)
            }
        }),
    );
    let (ok, out) = rekey(&editing.url, &ours.ca, gun, &owner.dir, true);
    assert!(!ok, "{out}");
    assert!(
        out.contains("differs from the one trusted")
            && out.contains("role root")
            && out.contains("role targets"),
        "{out}"
    );
    unchanged().await;

    // A server that offers something other than a well-formed public key: refused.
    for (what, key) in [
        (
            "garbage",
            json!({"keytype": "ecdsa", "keyval": {"public": "AAAA", "private": null}}),
        ),
        (
            "a certificate type",
            json!({"keytype": "ecdsa-x509", "keyval": {"public": "AAAA", "private": null}}),
        ),
    ] {
        let bad_key = editing_proxy(
            &ours.url,
            &ours.ca,
            Duration::ZERO,
            Arc::new(move |req: &Request, status, body: Vec<u8>| {
                if req.method == "POST" && req.path.ends_with("/timestamp.key") {
                    (status, serde_json::to_vec(&key).unwrap())
                } else {
                    (status, body)
                }
            }),
        );
        let (ok, out) = rekey(&bad_key.url, &ours.ca, gun, &owner.dir, true);
        assert!(
            !ok && out.contains("new timestamp key is refused"),
            "{what}: {out}"
        );
        unchanged().await;
    }

    // Off a terminal without --yes: refused before the server is even asked.
    let counting = editing_proxy(
        &ours.url,
        &ours.ca,
        Duration::ZERO,
        Arc::new(|_: &Request, s, b| (s, b)),
    );
    let (ok, out) = rekey(&counting.url, &ours.ca, gun, &owner.dir, false);
    assert!(!ok && out.contains("--yes"), "{out}");
    assert_eq!(counting.hits(), 0, "nothing was asked of the server");
    unchanged().await;

    // The honest server: the change is shown, signed and published; the owner publishes on.
    let (ok, out) = rekey(&ours.url, &ours.ca, gun, &owner.dir, true);
    assert!(ok, "{out}");
    assert!(
        out.contains("root version 1 (trusted) -> 2")
            && out.contains("timestamp key:")
            && out.contains("snapshot key:"),
        "{out}"
    );
    owner.ok(&["add", gun, "v2", f.to_str().unwrap()]);
    owner.ok(&["publish", gun]);
    let reader = ours.notary("reader");
    let list = reader.ok(&["list", gun]);
    assert!(list.contains("v1") && list.contains("v2"), "{list}");
}
