//! `notary-rekey`: the owner's way to give an imported repository timestamp and snapshot keys
//! that this server holds, when both were held by the server it came from (Docker Hub's usual
//! set-up) — which the stock notary CLI cannot do, since each of its `key rotate … -r` is a
//! publish that needs a signature by the other, lost key.
//!
//! It runs on the owner's machine and publishes through the normal API. The server is not
//! trusted: what is signed is built from state the owner already trusts.
//! 1. reads the root the owner trusts from their notary / docker trust directory
//!    (`tuf/<gun>/metadata/root.json`, bounded, a regular file) and finds the owner's root
//!    private key there (`private/<id>.key`, PKCS#8 encrypted under the root passphrase, as the
//!    Go client writes it; the key never leaves the machine); the cached root must verify under
//!    the keys the owner holds;
//! 2. reads the server's current root and refuses it unless it equals the trusted one but for
//!    its version (not older);
//! 3. asks the server for new timestamp and snapshot keys (`POST …/{timestamp,snapshot}.key`)
//!    and refuses anything but a well-formed bare ECDSA P-256 or Ed25519 public key not
//!    already in the root;
//! 4. shows the change (the only change: those two roles' keys and the version) and asks for
//!    confirmation (`--yes` off a terminal), then publishes one new root version, signed by the
//!    root key (so clients holding the old root follow the rotation); the server then signs a
//!    new snapshot and timestamp with the keys it holds.
//!
//! Tests: `notary-tools/tests/import.rs::imports_go_repositories_with_token_auth` (end to end
//! with Debian's Go CLI holding the old trust cache) and `notary-tools/tests/rekey_safety.rs`
//! (a server that edits the root or offers a bad key; a run off a terminal without `--yes`).

use std::path::{Path, PathBuf};

use notary_tuf::builder::{sign, Signer};
use notary_tuf::metadata::{self as md, Root, SignedFile};
use notary_tuf::{PrivateKey, PublicKey};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::client::{Body, ClientError, NotaryClient};

/// Why a re-key did not happen (nothing was signed or published).
// Each variant reads as its `#[error]` message; its fields are what the message names.
#[allow(missing_docs)]
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
    #[error(
        "no trusted root of {gun} in {dirs} (tuf/{gun}/metadata/root.json): notary-rekey signs \
         only a change of the root your client already trusts; pass the trust directory that \
         initialised or last used the repository with --trust-dir"
    )]
    NoTrustedRoot { gun: String, dirs: String },
    #[error(
        "the server's root of {gun} differs from the one trusted in {dir} ({what}): refusing to \
         sign it. If you changed the root elsewhere, first update this trust directory \
         (`notary list {gun}` verifies the change against the root you hold)"
    )]
    ServerRootDiffers {
        gun: String,
        dir: String,
        what: String,
    },
    #[error("not confirmed: nothing was signed")]
    Declined,
}

/// Why a key file cannot be used.
// Each variant reads as its `#[error]` message; its fields are what the message names.
#[allow(missing_docs)]
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
    /// The version of the root published.
    pub root_version: i64,
    /// The new timestamp key's ID.
    pub timestamp_key: String,
    /// The new snapshot key's ID.
    pub snapshot_key: String,
}

/// The change `rekey` is about to sign, shown to the owner before anything is signed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The repository.
    pub gun: String,
    /// The trusted root's version, and the version of the root to be signed.
    pub from_version: i64,
    /// (See `from_version`.)
    pub root_version: i64,
    /// Root key IDs that will sign.
    pub signing_keys: Vec<String>,
    /// (role, key IDs before, key ID after) for timestamp and snapshot.
    pub changes: Vec<(&'static str, Vec<String>, String)>,
    /// When the new root expires.
    pub expires: String,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use notary_common::untrusted::escape;
        writeln!(
            f,
            "{}: root version {} (trusted) -> {}, signed with root key {}",
            escape(&self.gun),
            self.from_version,
            self.root_version,
            self.signing_keys.join(", ")
        )?;
        for (role, before, after) in &self.changes {
            writeln!(
                f,
                "  {role} key: {} -> {after} (held by the server)",
                if before.is_empty() {
                    "-".to_string()
                } else {
                    before.join(", ")
                }
            )?;
        }
        writeln!(
            f,
            "  unchanged: the root and targets keys and thresholds, every other field"
        )?;
        write!(f, "  expires: {}", escape(&self.expires))
    }
}

/// The key the server offers for `role`: a well-formed bare ECDSA P-256 or Ed25519 public key
/// (never a certificate or a key the root already uses).
fn parse_key(role: &str, body: &[u8], root: &Root) -> Result<PublicKey, RekeyError> {
    use base64::Engine;
    let bad = |why: &str| {
        RekeyError::Repository(format!(
            "the server's new {role} key is refused: {why}; nothing was signed"
        ))
    };
    if body.len() > 64 << 10 {
        return Err(bad("the answer is larger than 64 KiB"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    if !v["keyval"]["private"].is_null() {
        return Err(bad("it carries a private part"));
    }
    let public = base64::engine::general_purpose::STANDARD
        .decode(
            v["keyval"]["public"]
                .as_str()
                .ok_or_else(|| bad("no public key"))?,
        )
        .map_err(|_| bad("the public key is not base64"))?;
    let key = PublicKey::new(
        v["keytype"].as_str().ok_or_else(|| bad("no key type"))?,
        public,
    );
    if !key.is_well_formed_online_key() {
        return Err(bad("not a well-formed ecdsa (P-256) or ed25519 public key"));
    }
    if root.keys.contains_key(&key.id()) {
        return Err(bad("the root already lists this key"));
    }
    Ok(key)
}

/// Largest root file read from a trust directory.
const MAX_ROOT: u64 = 10 << 20;

/// The root of `gun` the owner already trusts: the trust directory's cached `root.json`,
/// with the directory it came from.
fn trusted_root(
    gun: &str,
    trust_dirs: &[PathBuf],
) -> Result<(PathBuf, SignedFile, Root), RekeyError> {
    for dir in trust_dirs {
        let path = dir.join("tuf").join(gun).join("metadata").join("root.json");
        let raw = match notary_common::untrusted::read_regular_file(&path, MAX_ROOT) {
            Ok(raw) => raw,
            Err(notary_common::untrusted::ReadError::Io(e))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => return Err(RekeyError::Repository(format!("{}: {e}", path.display()))),
        };
        let bad =
            |e: &dyn std::fmt::Display| RekeyError::Repository(format!("{}: {e}", path.display()));
        let file = SignedFile::parse(&raw).map_err(|e| bad(&e))?;
        let root: Root = file.body().map_err(|e| bad(&e))?;
        return Ok((dir.clone(), file, root));
    }
    Err(RekeyError::NoTrustedRoot {
        gun: gun.to_string(),
        dirs: display_dirs(trust_dirs),
    })
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the server's root differs from the trusted one, ignoring `version` (empty: the same).
pub fn root_differences(trusted: &Value, server: &Value) -> Vec<String> {
    let (Some(t), Some(s)) = (trusted.as_object(), server.as_object()) else {
        return vec!["the server's root is not an object".into()];
    };
    let mut out = Vec::new();
    let fields: std::collections::BTreeSet<&String> = t.keys().chain(s.keys()).collect();
    for field in fields {
        if field == "version" || t.get(field) == s.get(field) {
            continue;
        }
        match (field.as_str(), t.get(field), s.get(field)) {
            ("roles", Some(Value::Object(tr)), Some(Value::Object(sr))) => {
                let roles: std::collections::BTreeSet<&String> =
                    tr.keys().chain(sr.keys()).collect();
                for r in roles.into_iter().filter(|r| tr.get(*r) != sr.get(*r)) {
                    out.push(format!("role {}", notary_common::untrusted::escape(r)));
                }
            }
            ("keys", Some(Value::Object(tk)), Some(Value::Object(sk))) => {
                let added = sk.keys().filter(|k| !tk.contains_key(*k)).count();
                let removed = tk.keys().filter(|k| !sk.contains_key(*k)).count();
                out.push(format!(
                    "keys ({added} added, {removed} removed or changed)"
                ));
            }
            _ => out.push(notary_common::untrusted::escape(field).into_owned()),
        }
    }
    out
}

/// Replace the timestamp and snapshot keys of `gun` on the server `client` talks to, signing
/// the new root with the root key(s) found in `trust_dirs` (decrypted with `passphrase`).
///
/// What is signed is built from the root the owner already trusts — the trust directory's
/// cached `root.json`, verified against the owner's own root key — never from what the server
/// sends: the server's root must equal it but for its version, the keys the server offers
/// must be well-formed online keys, and `confirm` is shown the change before anything is
/// signed (`tests/rekey_safety.rs`).
pub async fn rekey(
    client: &NotaryClient,
    gun: &str,
    trust_dirs: &[PathBuf],
    passphrase: &dyn Fn() -> std::io::Result<Zeroizing<String>>,
    confirm: &dyn Fn(&Plan) -> bool,
) -> Result<Rekeyed, RekeyError> {
    let (dir, trusted_file, trusted) = trusted_root(gun, trust_dirs)?;
    let role = trusted
        .roles
        .get(md::ROOT)
        .cloned()
        .flatten()
        .ok_or_else(|| RekeyError::Repository("the trusted root has no root role".into()))?;

    // The owner's root keys: files named by the bare key's ID (Notary's canonical ID).
    let listed: Vec<PublicKey> = role
        .keyids
        .iter()
        .filter_map(|id| trusted.keys.get(id).cloned())
        .collect();
    let mut signers_keys: Vec<(PrivateKey, PublicKey)> = Vec::new();
    let mut pass: Option<Zeroizing<String>> = None;
    for public in &listed {
        let ids = vec![public.canonical_id(), public.id()];
        let Some(path) = find_key_files(&dir, &ids).into_iter().next() else {
            continue;
        };
        let key_err = |source| RekeyError::Key {
            path: path.clone(),
            source,
        };
        let pem = Zeroizing::new(
            notary_common::untrusted::read_regular_file(&path, 64 << 10)
                .map_err(|e| key_err(KeyFileError::Read(std::io::Error::other(e))))?,
        );
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
            dirs: display_dirs(trust_dirs),
            ids: listed
                .iter()
                .map(|k| k.canonical_id())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // The cached root must be signed as its own root role requires, by the keys the owner holds.
    let held_role = notary_tuf::verify::BaseRole {
        name: md::ROOT.into(),
        keys: signers_keys
            .iter()
            .map(|(_, p)| (p.id(), p.clone()))
            .collect(),
        threshold: role.threshold.max(1),
    };
    notary_tuf::verify::verify_signatures(&trusted_file, &held_role).map_err(|e| {
        RekeyError::Repository(format!(
            "the root cached in {} is not signed by your root key ({e}): refusing to build on it",
            dir.display()
        ))
    })?;

    // The server's root must be the trusted one, but for its version.
    let pull = format!("repository:{gun}:pull");
    let tuf = |f: &str| format!("/v2/{gun}/_trust/tuf/{f}");
    let raw = client
        .get(&tuf("root.json"), &pull)
        .await?
        .ok_or_else(|| RekeyError::Repository(format!("the server has no repository {gun}")))?;
    let server_file = SignedFile::parse(&raw)
        .map_err(|e| RekeyError::Repository(format!("the server's root.json: {e}")))?;
    let trusted_value = trusted_file
        .signed_value()
        .map_err(|e| RekeyError::Repository(format!("the trusted root: {e}")))?;
    let server_value = server_file
        .signed_value()
        .map_err(|e| RekeyError::Repository(format!("the server's root.json: {e}")))?;
    let differences = root_differences(&trusted_value, &server_value);
    if !differences.is_empty() || server_file.common.version < trusted_file.common.version {
        return Err(RekeyError::ServerRootDiffers {
            gun: gun.to_string(),
            dir: dir.display().to_string(),
            what: if differences.is_empty() {
                format!(
                    "its version {} is older than the trusted {}",
                    server_file.common.version, trusted_file.common.version
                )
            } else {
                differences.join(", ")
            },
        });
    }

    // New server keys, then the new root listing them, shown before it is signed.
    let admin = format!("repository:{gun}:*");
    let ts = parse_key(
        md::TIMESTAMP,
        &client
            .post(&tuf("timestamp.key"), &admin, Body::None)
            .await?,
        &trusted,
    )?;
    let sn = parse_key(
        md::SNAPSHOT,
        &client
            .post(&tuf("snapshot.key"), &admin, Body::None)
            .await?,
        &trusted,
    )?;
    if ts.id() == sn.id() {
        return Err(RekeyError::Repository(
            "the server offered one key for both timestamp and snapshot; nothing was signed".into(),
        ));
    }
    // One past the server's (the trusted root's version or newer): the version it accepts.
    let version = server_file.common.version + 1;
    let body = next_root(&trusted_value, &ts, &sn, version)?;
    let plan = Plan {
        gun: gun.to_string(),
        from_version: trusted_file.common.version,
        root_version: version,
        signing_keys: signers_keys.iter().map(|(_, p)| p.canonical_id()).collect(),
        changes: vec![
            (md::TIMESTAMP, trusted.role_keyids(md::TIMESTAMP), ts.id()),
            (md::SNAPSHOT, trusted.role_keyids(md::SNAPSHOT), sn.id()),
        ],
        expires: body["expires"].as_str().unwrap_or_default().to_string(),
    };
    if !confirm(&plan) {
        return Err(RekeyError::Declined);
    }
    let signers: Vec<Signer> = signers_keys
        .iter()
        .map(|(k, p)| Signer {
            key: k,
            public: p.clone(),
        })
        .collect();
    let new_root = sign(&body, &signers)
        .map_err(|e| RekeyError::Repository(format!("canonical JSON: {e}")))?;
    let (content_type, bytes) = notary_common::multipart::multipart(&[(md::ROOT, &new_root)]);
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
/// uses any more dropped, `version`, and an expiry at least a year away.
pub fn next_root(
    prev: &Value,
    timestamp: &PublicKey,
    snapshot: &PublicKey,
    version: i64,
) -> Result<Value, RekeyError> {
    use base64::Engine;
    let mut body = prev.clone();
    let bad = |what: &str| RekeyError::Repository(format!("its root has no {what}"));
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
    body["version"] = json!(version);
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
        let next = next_root(&prev, &ts, &sn, 4).unwrap();
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
