//! Where an import reads a repository from: another Notary server over its HTTP API, or the
//! trust directories of clients (`~/.docker/trust`, `~/.notary`) when the server is gone.
//!
//! From a server (the routes are the Go server's, see `docs/migrating-off-a-notary-service.md`):
//! the current `timestamp.json` and `root.json`; the snapshot the timestamp names and every file
//! that snapshot names, by checksum; then each role's older versions by version number
//! (`<v>.<role>.json`) down from the current one until the source answers 404 or the version is
//! already stored here (so a second run fetches only what is new); last, any file an older
//! snapshot names by checksum that was not reached by version.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notary_tuf::history::History;
use notary_tuf::metadata::{self as md, MetaBody, SignedFile};

use crate::client::{ClientError, NotaryClient};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the source has no repository {0} (timestamp.json: 404)")]
    NotFound(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{role} from the source is not TUF metadata: {msg}")]
    Malformed { role: String, msg: String },
    #[error("{path}: {msg}")]
    Io { path: PathBuf, msg: String },
    #[error("the source served two different files as {role} version {version} (by version and by checksum): refusing the repository")]
    Inconsistent { role: String, version: i64 },
}

/// A source of repositories.
pub enum Source {
    Server(NotaryClient),
    TrustDirs(Vec<PathBuf>),
}

fn version_of(role: &str, bytes: &[u8]) -> Result<i64, SourceError> {
    SignedFile::parse(bytes)
        .map(|f| f.common.version)
        .map_err(|e| SourceError::Malformed {
            role: role.to_string(),
            msg: e.to_string(),
        })
}

impl Source {
    /// A label for reports and the `notary_rs_imports` table.
    pub fn label(&self) -> String {
        match self {
            Source::Server(c) => notary_common::untrusted::strip_userinfo(c.base()),
            Source::TrustDirs(d) => d
                .iter()
                .map(|p| format!("trust-dir:{}", p.display()))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The files of `gun` the source holds and `here` does not (all of them when `here` is empty).
    pub async fn fetch(&self, gun: &str, here: &History) -> Result<History, SourceError> {
        match self {
            Source::Server(c) => fetch_from_server(c, gun, here).await,
            Source::TrustDirs(dirs) => {
                let mut h = History::default();
                for d in dirs {
                    read_trust_dir(&d.join("tuf").join(gun).join("metadata"), &mut h)?;
                }
                if h.is_empty() {
                    return Err(SourceError::NotFound(gun.to_string()));
                }
                Ok(h)
            }
        }
    }

    /// Every GUN the source holds: the changefeed of a server (where it allows reading it), the
    /// `tuf/` folders of trust directories.
    pub async fn all_guns(&self) -> Result<Vec<String>, SourceError> {
        match self {
            Source::Server(c) => changefeed_guns(c).await,
            Source::TrustDirs(dirs) => {
                let mut guns = BTreeSet::new();
                for d in dirs {
                    let tuf = d.join("tuf");
                    find_guns(&tuf, &tuf, &mut guns)?;
                }
                Ok(guns.into_iter().collect())
            }
        }
    }
}

async fn fetch_from_server(
    c: &NotaryClient,
    gun: &str,
    here: &History,
) -> Result<History, SourceError> {
    let scope = format!("repository:{gun}:pull");
    let url = |file: &str| format!("/v2/{gun}/_trust/tuf/{file}");
    let mut h = History::default();
    let ts = c
        .get(&url("timestamp.json"), &scope)
        .await?
        .ok_or_else(|| SourceError::NotFound(gun.to_string()))?;
    h.insert(md::TIMESTAMP, version_of(md::TIMESTAMP, &ts)?, ts.clone());
    if let Some(root) = c.get(&url("root.json"), &scope).await? {
        h.insert(md::ROOT, version_of(md::ROOT, &root)?, root);
    }
    // The current chain, by checksum, as clients read it.
    let ts_body: MetaBody = body(md::TIMESTAMP, &ts)?;
    if let Some(sha) = ts_body.meta.get(md::SNAPSHOT).and_then(|m| m.sha256_hex()) {
        if let Some(snap) = c.get(&url(&format!("snapshot.{sha}.json")), &scope).await? {
            let snap_body: MetaBody = body(md::SNAPSHOT, &snap)?;
            h.insert(md::SNAPSHOT, version_of(md::SNAPSHOT, &snap)?, snap);
            fetch_named(c, gun, &scope, &snap_body, here, &mut h).await?;
        }
    }
    // Older versions, newest first, down to what is stored here or what the source lacks.
    let roles: Vec<String> = h
        .roles
        .keys()
        .chain(here.roles.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for role in &roles {
        let Some((current, _)) = h.newest(role) else {
            continue;
        };
        let mut v = current - 1;
        while v >= 1 && here.get(role, v).is_none() {
            if h.get(role, v).is_none() {
                // Stored under the version asked for: a file that says otherwise is refused.
                match c.get(&url(&format!("{v}.{role}.json")), &scope).await? {
                    Some(b) => h.insert(role, v, b),
                    None => break,
                }
            }
            v -= 1;
        }
    }
    // Files that older snapshots name and no version number reached.
    let snapshots: Vec<Vec<u8>> = h
        .roles
        .get(md::SNAPSHOT)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for snap in snapshots {
        if let Ok(b) = body::<MetaBody>(md::SNAPSHOT, &snap) {
            fetch_named(c, gun, &scope, &b, here, &mut h).await?;
        }
    }
    Ok(h)
}

/// Fetch by checksum each file `snapshot` names that neither `h` nor `here` holds.
async fn fetch_named(
    c: &NotaryClient,
    gun: &str,
    scope: &str,
    snapshot: &MetaBody,
    here: &History,
    h: &mut History,
) -> Result<(), SourceError> {
    for (role, meta) in &snapshot.meta {
        if !md::is_valid_role(role)
            || role == md::TIMESTAMP
            || h.matching(role, meta).is_some()
            || here.matching(role, meta).is_some()
        {
            continue;
        }
        let Some(sha) = meta.sha256_hex() else {
            continue;
        };
        if let Some(b) = c
            .get(&format!("/v2/{gun}/_trust/tuf/{role}.{sha}.json"), scope)
            .await?
        {
            let v = version_of(role, &b)?;
            if h.get(role, v).is_some_and(|other| other != b.as_slice()) {
                return Err(SourceError::Inconsistent {
                    role: role.clone(),
                    version: v,
                });
            }
            h.insert(role, v, b);
        }
    }
    Ok(())
}

fn body<T: for<'de> serde::Deserialize<'de>>(role: &str, bytes: &[u8]) -> Result<T, SourceError> {
    let malformed = |msg: String| SourceError::Malformed {
        role: role.to_string(),
        msg,
    };
    SignedFile::parse(bytes)
        .map_err(|e| malformed(e.to_string()))?
        .body()
        .map_err(|e| malformed(e.to_string()))
}

async fn changefeed_guns(c: &NotaryClient) -> Result<Vec<String>, SourceError> {
    #[derive(serde::Deserialize)]
    struct Record {
        #[serde(rename = "ID")]
        id: String,
        #[serde(rename = "GUN")]
        gun: String,
        #[serde(rename = "Category")]
        category: String,
    }
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        records: Option<Vec<Record>>,
    }
    let mut guns: Vec<String> = Vec::new();
    let mut id = String::from("0");
    loop {
        let path = format!("/v2/_trust/changefeed?change_id={id}&records=1000");
        let page = c.get(&path, "registry:catalog:*").await?.ok_or_else(|| {
            SourceError::Client(ClientError::Status {
                url: path.clone(),
                status: 404,
                body: "no changefeed: name the repositories with --gun".into(),
            })
        })?;
        let page: Page = serde_json::from_slice(&page).map_err(|e| SourceError::Malformed {
            role: "changefeed".into(),
            msg: e.to_string(),
        })?;
        let records = page.records.unwrap_or_default();
        let Some(last) = records.last() else { break };
        id = last.id.clone();
        for r in records {
            guns.retain(|g| *g != r.gun);
            if r.category != "deletion" {
                guns.push(r.gun);
            }
        }
    }
    guns.sort();
    Ok(guns)
}

/// Every `<role>.json` below a trust directory's `metadata` folder (delegations in sub-folders).
fn read_trust_dir(dir: &Path, h: &mut History) -> Result<(), SourceError> {
    fn walk(base: &Path, dir: &Path, h: &mut History) -> Result<(), SourceError> {
        let io = |e: std::io::Error| SourceError::Io {
            path: dir.to_path_buf(),
            msg: e.to_string(),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                walk(base, &path, h)?;
                continue;
            }
            let Some(role) = path
                .strip_prefix(base)
                .ok()
                .and_then(|p| p.to_str())
                .and_then(|p| p.strip_suffix(".json"))
            else {
                continue;
            };
            if !md::is_valid_role(role) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| SourceError::Io {
                path: path.clone(),
                msg: e.to_string(),
            })?;
            h.insert(role, version_of(role, &bytes)?, bytes);
        }
        Ok(())
    }
    walk(dir, dir, h)
}

/// GUNs under a trust directory's `tuf/` folder: the paths of folders holding `metadata/`.
fn find_guns(tuf: &Path, dir: &Path, out: &mut BTreeSet<String>) -> Result<(), SourceError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(SourceError::Io {
                path: dir.to_path_buf(),
                msg: e.to_string(),
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "metadata") && path.join("root.json").exists() {
            if let Some(gun) = dir.strip_prefix(tuf).ok().and_then(|p| p.to_str()) {
                out.insert(gun.to_string());
            }
        } else {
            find_guns(tuf, &path, out)?;
        }
    }
    Ok(())
}
