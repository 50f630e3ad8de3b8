//! `notary-rekey`: the owner's way to give an imported repository timestamp and snapshot keys
//! that this server holds, when both were held by the server it came from (Docker Hub's usual
//! set-up) — which the stock notary CLI cannot do, since each of its `key rotate … -r` is a
//! publish that needs a signature by the other, lost key.
//!
//! It runs on the owner's machine and publishes through the normal API:
//! 1. reads the repository's current root from the server;
//! 2. finds the owner's root private key in their notary / docker trust directory
//!    (`private/<id>.key`, PKCS#8 encrypted under the root passphrase, as the Go client writes
//!    it; the key never leaves the machine);
//! 3. asks the server for new timestamp and snapshot keys (`POST …/{timestamp,snapshot}.key`);
//! 4. publishes one new root version listing them, signed by the root key (so it is signed by
//!    the previous root's keys and its own: clients holding the old root follow the rotation);
//!    the server then signs a new snapshot and timestamp with the keys it holds.
//!
//! Tested end to end with Debian's Go CLI holding the old trust cache
//! (`notary-server/tests/import.rs::owners_rekey_when_the_old_server_held_both_keys`).

use std::path::{Path, PathBuf};

use notary_tuf::builder::{sign, Signer};
use notary_tuf::metadata::{self as md, Root, SignedFile};
use notary_tuf::{PrivateKey, PublicKey};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::client::{Body, ClientError, NotaryClient};

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Repository(String),
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyFileError },
    #[error("{path}: no passphrase for the root key: {source}")]
    Passphrase {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no root private key of {gun} in {dirs}: the root lists key(s) {ids}; \
         pass the trust directory that initialised the repository with --trust-dir"
    )]
    NoRootKey {
        gun: String,
        dirs: String,
        ids: String,
    },
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("not a PEM key file: {0}")]
    NotPem(String),
    #[error("not PKCS#8: {0}")]
    NotPkcs8(String),
    #[error("wrong passphrase (or an unsupported encryption)")]
    WrongPassphrase,
    #[error("unsupported key block {0:?} (older notary key formats: re-import the key with a newer notary)")]
    UnsupportedBlock(String),
    #[error("legacy PEM encryption (Proc-Type) is not supported: export the key with notary 0.6 or later")]
    LegacyEncryption,
    #[error("not an ECDSA P-256 or Ed25519 key (RSA root keys cannot be used here)")]
    UnsupportedKey,
    #[error("this key does not match the root's certificate")]
    NotTheRootKey,
    #[error("{0}")]
    Read(std::io::Error),
}

/// Decrypt a private key file written by the Go notary client or `docker trust`: PEM
/// `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2) with `role:`/`gun:` headers, or an unencrypted
/// `PRIVATE KEY` / `EC PRIVATE KEY`. ECDSA P-256 and Ed25519 root keys can sign.
pub fn decrypt_key_file(pem_bytes: &[u8], passphrase: &str) -> Result<PrivateKey, KeyFileError> {
    let block = pem::parse(pem_bytes).map_err(|e| KeyFileError::NotPem(e.to_string()))?;
    let der: Zeroizing<Vec<u8>> = match block.tag() {
        "ENCRYPTED PRIVATE KEY" => {
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(block.contents())
                .map_err(|e| KeyFileError::NotPkcs8(e.to_string()))?;
            let doc = info
                .decrypt(passphrase)
                .map_err(|_| KeyFileError::WrongPassphrase)?;
            Zeroizing::new(doc.as_bytes().to_vec())
        }
        "PRIVATE KEY" | "EC PRIVATE KEY" => Zeroizing::new(block.contents().to_vec()),
        other => return Err(KeyFileError::UnsupportedBlock(other.to_string())),
    };
    if block.headers().get("Proc-Type").is_some() {
        return Err(KeyFileError::LegacyEncryption);
    }
    let unsupported = || KeyFileError::UnsupportedKey;
    if let Ok(k) = PrivateKey::from_go_bytes(notary_tuf::keys::ECDSA, &der) {
        return Ok(k);
    }
    // The Go client writes PKCS#8 version 1 without the public key that version requires
    // (RFC 5958), which the pkcs8 crate refuses: read it as version 0, which it is in substance.
    let mut der = der;
    let header = match der.get(1) {
        Some(0x81) => 3,
        Some(0x82) => 4,
        Some(n) if *n < 0x80 => 2,
        _ => return Err(unsupported()),
    };
    if der.get(header..header + 3) == Some(&[0x02, 0x01, 0x01]) {
        der[header + 2] = 0;
    }
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).map_err(|_| unsupported())?;
    const EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
        pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
    match info.algorithm.oid {
        EC_PUBLIC_KEY => PrivateKey::from_go_bytes(notary_tuf::keys::ECDSA, info.private_key)
            .map_err(|_| unsupported()),
        // Ed25519 PKCS#8: the private key is an OCTET STRING holding the 32-byte seed.
        ED25519 => {
            let seed = info
                .private_key
                .strip_prefix(&[0x04, 0x20])
                .unwrap_or(info.private_key);
            PrivateKey::from_go_bytes(notary_tuf::keys::ED25519, seed).map_err(|_| unsupported())
        }
        _ => Err(unsupported()),
    }
}

/// Key files below `dir/private` (flat, or the older `root_keys/` and `tuf_keys/` folders) whose
/// name is one of `ids`.
pub fn find_key_files(dir: &Path, ids: &[String]) -> Vec<PathBuf> {
    fn walk(dir: &Path, ids: &[String], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, ids, out);
            } else if p
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| ids.iter().any(|id| id == s))
                && p.extension().is_some_and(|x| x == "key")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("private"), ids, &mut out);
    out
}

/// What `rekey` did.
#[derive(Debug, Clone)]
pub struct Rekeyed {
    pub root_version: i64,
    pub timestamp_key: String,
    pub snapshot_key: String,
}

fn parse_key(body: &[u8]) -> Result<PublicKey, RekeyError> {
    use base64::Engine;
    let bad = || RekeyError::Repository("the server's key answer is not a public key".into());
    let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    let public = base64::engine::general_purpose::STANDARD
        .decode(v["keyval"]["public"].as_str().ok_or_else(bad)?)
        .map_err(|_| bad())?;
    Ok(PublicKey::new(
        v["keytype"].as_str().ok_or_else(bad)?,
        public,
    ))
}

/// Replace the timestamp and snapshot keys of `gun` on the server `client` talks to, signing
/// the new root with the root key(s) found in `trust_dirs` (decrypted with `passphrase`).
pub async fn rekey(
    client: &NotaryClient,
    gun: &str,
    trust_dirs: &[PathBuf],
    passphrase: &dyn Fn() -> std::io::Result<Zeroizing<String>>,
) -> Result<Rekeyed, RekeyError> {
    let pull = format!("repository:{gun}:pull");
    let tuf = |f: &str| format!("/v2/{gun}/_trust/tuf/{f}");
    let raw = client
        .get(&tuf("root.json"), &pull)
        .await?
        .ok_or_else(|| RekeyError::Repository(format!("the server has no repository {gun}")))?;
    let file = SignedFile::parse(&raw)
        .map_err(|e| RekeyError::Repository(format!("its root.json: {e}")))?;
    let root: Root = file
        .body()
        .map_err(|e| RekeyError::Repository(format!("its root.json: {e}")))?;
    let role = root
        .roles
        .get(md::ROOT)
        .cloned()
        .flatten()
        .ok_or_else(|| RekeyError::Repository("its root has no root role".into()))?;

    // The owner's root keys: files named by the bare key's ID (Notary's canonical ID).
    let listed: Vec<(String, PublicKey)> = role
        .keyids
        .iter()
        .filter_map(|id| root.keys.get(id).map(|k| (id.clone(), k.clone())))
        .collect();
    let mut signers_keys: Vec<(PrivateKey, PublicKey)> = Vec::new();
    let mut pass: Option<Zeroizing<String>> = None;
    for (_, public) in &listed {
        let ids = vec![public.canonical_id(), public.id()];
        let Some(path) = trust_dirs
            .iter()
            .flat_map(|d| find_key_files(d, &ids))
            .next()
        else {
            continue;
        };
        let key_err = |source| RekeyError::Key {
            path: path.clone(),
            source,
        };
        let pem = Zeroizing::new(std::fs::read(&path).map_err(|e| key_err(KeyFileError::Read(e)))?);
        if pass.is_none() {
            pass = Some(passphrase().map_err(|source| RekeyError::Passphrase {
                path: path.clone(),
                source,
            })?);
        }
        let key = decrypt_key_file(
            &pem,
            pass.as_deref().map(String::as_str).unwrap_or_default(),
        )
        .map_err(key_err)?;
        if key.public_key().id() != public.canonical_id() {
            return Err(key_err(KeyFileError::NotTheRootKey));
        }
        signers_keys.push((key, public.clone()));
    }
    if (signers_keys.len() as i64) < role.threshold.max(1) {
        return Err(RekeyError::NoRootKey {
            gun: gun.to_string(),
            dirs: trust_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            ids: listed
                .iter()
                .map(|(_, k)| k.canonical_id())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    // New server keys, then the new root listing them.
    let admin = format!("repository:{gun}:*");
    let ts = parse_key(
        &client
            .post(&tuf("timestamp.key"), &admin, Body::None)
            .await?,
    )?;
    let sn = parse_key(
        &client
            .post(&tuf("snapshot.key"), &admin, Body::None)
            .await?,
    )?;
    let prev = file
        .signed_value()
        .map_err(|e| RekeyError::Repository(format!("its root.json: {e}")))?;
    let body = next_root(&prev, &ts, &sn)?;
    let signers: Vec<Signer> = signers_keys
        .iter()
        .map(|(k, p)| Signer {
            key: k,
            public: p.clone(),
        })
        .collect();
    let new_root = sign(&body, &signers)
        .map_err(|e| RekeyError::Repository(format!("canonical JSON: {e}")))?;
    let version = file.common.version + 1;
    let (content_type, bytes) = notary_tuf::builder::multipart(&[(md::ROOT, &new_root)]);
    client
        .post(
            &format!("/v2/{gun}/_trust/tuf/"),
            &format!("repository:{gun}:push,pull"),
            Body::Multipart {
                content_type,
                bytes,
            },
        )
        .await?;
    Ok(Rekeyed {
        root_version: version,
        timestamp_key: ts.id(),
        snapshot_key: sn.id(),
    })
}

/// The next root body: `prev` with new timestamp and snapshot keys (threshold 1), keys no role
/// uses any more dropped, the version incremented, and an expiry at least a year away.
pub fn next_root(
    prev: &Value,
    timestamp: &PublicKey,
    snapshot: &PublicKey,
) -> Result<Value, RekeyError> {
    use base64::Engine;
    let mut body = prev.clone();
    let bad = |what: &str| RekeyError::Repository(format!("its root has no {what}"));
    let version = body["version"].as_i64().ok_or_else(|| bad("version"))?;
    let roles = body["roles"].as_object_mut().ok_or_else(|| bad("roles"))?;
    roles.insert(
        md::TIMESTAMP.into(),
        json!({"keyids": [timestamp.id()], "threshold": 1}),
    );
    roles.insert(
        md::SNAPSHOT.into(),
        json!({"keyids": [snapshot.id()], "threshold": 1}),
    );
    let used: std::collections::BTreeSet<String> = roles
        .values()
        .filter_map(|r| r["keyids"].as_array())
        .flatten()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    let keys = body["keys"].as_object_mut().ok_or_else(|| bad("keys"))?;
    keys.retain(|id, _| used.contains(id));
    for k in [timestamp, snapshot] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&k.public);
        keys.insert(
            k.id(),
            json!({"keytype": k.keytype, "keyval": {"private": null, "public": b64}}),
        );
    }
    body["version"] = json!(version + 1);
    let expires = body["expires"]
        .as_str()
        .and_then(notary_tuf::time::parse_rfc3339)
        .map(|t| t.with_timezone(&chrono::Utc));
    let year = chrono::Utc::now() + chrono::Duration::days(365);
    if expires.is_none_or(|t| t < year) {
        body["expires"] = json!(notary_tuf::time::format_go(
            &(chrono::Utc::now() + chrono::Duration::days(3650))
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root key as Debian's notary 0.7.0 wrote it (`notary init`, passphrase "rp"): PKCS#8
    /// version 1, PBES2 (PBKDF2-SHA1, AES-256-CBC), a `role: root` header.
    const GO_ROOT_KEY: &str =
        include_str!("../../fixtures/go-notary-0.7/root-key-passphrase-rp.pem");

    #[test]
    fn decrypts_a_go_client_root_key() {
        let Ok(k) = decrypt_key_file(GO_ROOT_KEY.as_bytes(), "rp") else {
            panic!("the Go key decrypts")
        };
        assert_eq!(k.algorithm(), "ecdsa");
        assert!(matches!(
            decrypt_key_file(GO_ROOT_KEY.as_bytes(), "wrong"),
            Err(KeyFileError::WrongPassphrase)
        ));
    }

    #[test]
    fn next_root_swaps_the_server_keys_and_bumps_the_version() {
        let (ts, sn) = (
            PrivateKey::generate("ecdsa").unwrap().public_key(),
            PrivateKey::generate("ecdsa").unwrap().public_key(),
        );
        let prev = json!({"_type": "Root", "version": 3, "expires": "2020-01-01T00:00:00Z", "consistent_snapshot": false,
            "keys": {"r": {}, "t": {}, "old-ts": {}, "old-sn": {}},
            "roles": {"root": {"keyids": ["r"], "threshold": 1}, "targets": {"keyids": ["t"], "threshold": 1},
                      "timestamp": {"keyids": ["old-ts"], "threshold": 1}, "snapshot": {"keyids": ["old-sn"], "threshold": 1}}});
        let next = next_root(&prev, &ts, &sn).unwrap();
        assert_eq!(next["version"], 4);
        assert_eq!(next["roles"]["timestamp"]["keyids"][0], ts.id());
        let mut ids: Vec<&String> = next["keys"].as_object().unwrap().keys().collect();
        ids.sort();
        let mut want = ["r".to_string(), "t".to_string(), ts.id(), sn.id()];
        want.sort();
        assert_eq!(ids, want.iter().collect::<Vec<_>>());
        assert!(next["expires"].as_str().unwrap() > "2030");
    }
}
