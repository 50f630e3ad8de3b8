//! Bundles (`notary-tools/src/bundle.rs`): `notary-server export --to FILE.tar` and
//! `notary-server import --from-bundle FILE.tar` between two servers that share nothing,
//! with repositories made by the real Go notary CLI.
#![cfg(feature = "system-tests")]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use common::*;

fn admin(s: &Server, args: &[&str]) -> (bool, String) {
    let out = s.admin(args).output().unwrap();
    (out.status.success(), output_text(&out))
}

/// Every entry of a tar file: name → bytes.
fn entries(tar: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(std::fs::File::open(tar).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// Write `files` as a tar file at `to`.
fn write_tar(to: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let mut b = tar::Builder::new(std::fs::File::create(to).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

/// Two repositories (one with a rotated root and server-rotated keys) exported to a bundle
/// and imported on a server that shares nothing: every file byte for byte, by version, and
/// the Go client reads the copy; the bundle names its source and time.
#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_round_trip_keeps_every_byte() {
    let a = Server::start_with_db(&create_pg_db().await).await;
    let n = a.notary("writer");
    let f = write_file(a.tmp(), "t.txt", b"bundled\n");
    let guns = ["example.com/one", "example.com/two"];
    for gun in guns {
        n.ok(&["init", gun]);
        n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
        n.ok(&["publish", gun]);
    }
    // (The CLI asks before rotating a root key.)
    let rotated = n.run_with_input(&["key", "rotate", guns[0], "root"], b"yes\n");
    assert!(rotated.ok, "{}", rotated.output());
    n.ok(&["key", "rotate", guns[0], "timestamp", "-r"]);
    n.ok(&["add", guns[0], "v2", f.to_str().unwrap()]);
    n.ok(&["publish", guns[0]]);

    let bundle = a.tmp().join("trust.tar");
    let (ok, out) = admin(&a, &["export", "--all", "--to", bundle.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 repositories") && out.contains("every history verified"),
        "{out}"
    );
    assert!(!a.tmp().join("trust.tar.partial").exists());
    let files = entries(&bundle);
    let manifest: serde_json::Value = serde_json::from_slice(&files["bundle.json"]).unwrap();
    assert!(manifest["source"].as_str().unwrap().contains("postgres"));
    assert!(
        !manifest["source"].as_str().unwrap().contains('@'),
        "no credentials: {manifest}"
    );
    assert!(manifest["created"].as_str().unwrap().starts_with("20"));

    // The importing server publishes a static tree: an import reaches it as any write.
    let tree = a.tmp().join("tree");
    let b = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"publish": {"directory": tree, "interval_ms": 100}}),
    )
    .await;
    let (ok, out) = admin(
        &b,
        &["import", "--from-bundle", bundle.to_str().unwrap(), "--all"],
    );
    assert!(ok, "{out}");
    let mut compared = 0;
    for (name, bytes) in &files {
        let Some(rest) = name.strip_prefix("v2/") else {
            continue;
        };
        let (gun, file) = rest.split_once("/_trust/tuf/").unwrap();
        for s in [&a, &b] {
            let (code, served) = s.get(&s.tuf(gun, file)).await;
            assert_eq!((code, &served), (200, bytes), "{name}");
        }
        compared += 1;
    }
    assert!(compared >= 12, "{compared} files");
    assert!(
        files.keys().any(|n| n.ends_with("/2.root.json")),
        "the rotated root is in the bundle"
    );
    eventually(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        async || {
            let ts = tree.join(format!("v2/{}/_trust/tuf/timestamp.json", guns[0]));
            let (_, served) = b.get(&b.tuf(guns[0], "timestamp.json")).await;
            match std::fs::read(&ts) {
                Ok(bytes) if bytes == served => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let reader = moved_reader(&b);
    let list = reader.ok(&["list", guns[0]]);
    assert!(list.contains("v2"), "{list}");
}

fn moved_reader(s: &Server) -> Notary {
    s.notary("reader-of-the-copy")
}

/// A bundle whose file was edited is refused: against its manifest when only the file was
/// changed, by the history check when the manifest was changed to match; nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn an_edited_bundle_is_refused() {
    let a = Server::start_with_db(&create_pg_db().await).await;
    let n = a.notary("writer");
    let f = write_file(a.tmp(), "t.txt", b"bundled\n");
    let gun = "example.com/edited";
    n.ok(&["init", gun]);
    n.ok(&["add", gun, "v1", f.to_str().unwrap()]);
    n.ok(&["publish", gun]);
    let bundle = a.tmp().join("trust.tar");
    let (ok, out) = admin(
        &a,
        &["export", "--gun", gun, "--to", bundle.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let mut files = entries(&bundle);
    let (name, targets) = files
        .iter()
        .filter(|(n, _)| n.ends_with(".targets.json"))
        .max_by_key(|(n, _)| n.len())
        .map(|(n, d)| (n.clone(), d.clone()))
        .unwrap();
    // The target's length, one digit changed: same size, other bytes.
    let text = String::from_utf8(targets).unwrap();
    let edited = text.replacen("\"length\":8", "\"length\":9", 1);
    assert_ne!(edited, text);
    files.insert(name.clone(), edited.clone().into_bytes());

    let b = Server::start_with_db(&create_pg_db().await).await;
    let only_file = a.tmp().join("only-file.tar");
    write_tar(&only_file, &files);
    let (ok, out) = admin(
        &b,
        &[
            "import",
            "--from-bundle",
            only_file.to_str().unwrap(),
            "--all",
        ],
    );
    assert!(!ok && out.contains("differs from its manifest"), "{out}");

    let mut manifest: serde_json::Value = serde_json::from_slice(&files["bundle.json"]).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(edited.as_bytes()))
    };
    for entry in manifest["repositories"][gun].as_array_mut().unwrap() {
        if name.ends_with(&format!(
            "{}.{}.json",
            entry["version"],
            entry["role"].as_str().unwrap()
        )) {
            entry["sha256"] = digest.clone().into();
        }
    }
    files.insert("bundle.json".into(), serde_json::to_vec(&manifest).unwrap());
    let both = a.tmp().join("both.tar");
    write_tar(&both, &files);
    let (ok, out) = admin(
        &b,
        &["import", "--from-bundle", both.to_str().unwrap(), "--all"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("verification failed, nothing stored"), "{out}");
    let (code, _) = b.get(&b.tuf(gun, "root.json")).await;
    assert_eq!(code, 404, "nothing stored");
}
