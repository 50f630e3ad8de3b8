//! Where an import reads a repository from: another Notary server over its HTTP API, or the
//! trust directories of clients (`~/.docker/trust`, `~/.notary`) when the server is gone.
//!
//! From a server (the routes are the Go server's, see `docs/migrating-off-a-notary-service.md`):
//! the current `timestamp.json` and `root.json`; the snapshot the timestamp names and every file
//! that snapshot names, by checksum; then each role's older versions by version number
//! (`<v>.<role>.json`) down from the current one until the source answers 404 or the version is
//! already stored here (so a second run fetches only what is new); last, any file an older
//! snapshot names by checksum that was not reached by version.
//!
//! A source is not trusted, and what it sends is bounded while it arrives ([`SourceLimits`], the
//! import's `--max-*` flags; `notary-tools/tests/hostile_import.rs`):
//! 1. every file by bytes (an endless answer costs `max_file_bytes`, not memory), every
//!    repository and the whole run by bytes, each role's history walk by count;
//! 2. a file fetched as version `v` must say it is version `v`;
//! 3. a changefeed page must advance past the ID asked for, and listing is linear in records;
//! 4. a trust directory is read without following symbolic links out of it or in loops, only
//!    regular files, each within `max_file_bytes`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use notary_tuf::metadata::{self as md, MetaBody, SignedFile};

use super::limits::{keep, version_of, Budget};
pub use super::limits::{SourceError, SourceLimits};
use super::spill::{Origin as From, Spill};
use super::trust_dirs::{find_guns, read_trust_dir, TreeWalk};
use crate::client::{ClientError, NotaryClient};

/// Where repositories come from.
pub enum Origin {
    /// A Notary server.
    Server(NotaryClient),
    /// Client trust directories (`~/.docker/trust`, `~/.notary`).
    TrustDirs(Vec<PathBuf>),
    /// A bundle (`crate::bundle`).
    Bundle(crate::bundle::Bundle),
}

/// A source of repositories, read within [`SourceLimits`].
pub struct Source {
    /// Where repositories come from.
    pub origin: Origin,
    /// What reading them may cost.
    pub limits: SourceLimits,
    /// Bytes read so far in this run.
    run_bytes: AtomicU64,
}

impl Source {
    /// A source reading from `origin` within `limits`.
    pub fn new(origin: Origin, limits: SourceLimits) -> Source {
        Source {
            origin,
            limits,
            run_bytes: AtomicU64::new(0),
        }
    }

    /// Start counting `--max-run-bytes` again (a mirror's run never ends: each of its rounds
    /// is a run).
    pub fn reset_run(&self) {
        self.run_bytes.store(0, Ordering::Relaxed);
    }

    fn budget(&self) -> Budget<'_> {
        Budget::new(self.limits, &self.run_bytes)
    }

    /// A label for reports and the `notary_rs_imports` table.
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Server(c) => notary_common::untrusted::strip_userinfo(c.base()),
            Origin::TrustDirs(d) => d
                .iter()
                .map(|p| format!("trust-dir:{}", p.display()))
                .collect::<Vec<_>>()
                .join(","),
            Origin::Bundle(b) => b.label(),
        }
    }

    /// Add to `spill` (which holds what this server stores of `gun`) the files of `gun` the
    /// source holds and this server does not.
    pub async fn fetch(&self, gun: &str, spill: &mut Spill) -> Result<(), SourceError> {
        let mut budget = self.budget();
        match &self.origin {
            Origin::Server(c) => {
                fetch_from_server(c, gun, spill, &mut budget, self.limits.max_versions).await
            }
            Origin::TrustDirs(dirs) => {
                let before = spill.counts().1;
                for d in dirs {
                    let metadata = d.join("tuf").join(gun).join("metadata");
                    read_trust_dir(d, &metadata, spill, &mut budget)?;
                }
                if spill.counts().1 == before {
                    return Err(SourceError::NotFound(gun.to_string()));
                }
                Ok(())
            }
            Origin::Bundle(b) => {
                let files = b.files(gun);
                if files.is_empty() {
                    return Err(SourceError::NotFound(gun.to_string()));
                }
                for f in files {
                    let (max, flag) = budget.next();
                    if f.bytes() > max {
                        return Err(SourceError::Limit {
                            file: format!("{gun} {} version {}", f.role, f.version),
                            flag,
                            max,
                        });
                    }
                    let data = b.read(f)?;
                    budget.charge(data.len());
                    if version_of(&f.role, &data)? != f.version {
                        return Err(SourceError::WrongVersion {
                            asked: format!("{}.{}.json", f.version, f.role),
                            found: version_of(&f.role, &data)?,
                        });
                    }
                    keep(spill, &f.role, f.version, &data)?;
                }
                Ok(())
            }
        }
    }

    /// Every GUN the source holds: the changefeed of a server (where it allows reading it), the
    /// `tuf/` folders of trust directories.
    pub async fn all_guns(&self) -> Result<Vec<String>, SourceError> {
        let max = self.limits.max_repositories;
        match &self.origin {
            Origin::Server(c) => changefeed_guns(c, max).await,
            Origin::TrustDirs(dirs) => {
                let mut guns = BTreeSet::new();
                for d in dirs {
                    let tuf = d.join("tuf");
                    let mut walk = TreeWalk::new(d)?;
                    find_guns(&mut walk, &tuf, &tuf, &mut guns, max)?;
                }
                Ok(guns.into_iter().collect())
            }
            Origin::Bundle(b) => Ok(b.guns()),
        }
    }
}

async fn fetch_from_server(
    c: &NotaryClient,
    gun: &str,
    spill: &mut Spill,
    budget: &mut Budget<'_>,
    max_versions: u64,
) -> Result<(), SourceError> {
    let scope = format!("repository:{gun}:pull");
    let url = |file: &str| format!("/v2/{gun}/_trust/tuf/{file}");
    let ts = budget
        .get(c, &url("timestamp.json"), &scope)
        .await?
        .ok_or_else(|| SourceError::NotFound(gun.to_string()))?;
    keep(spill, md::TIMESTAMP, version_of(md::TIMESTAMP, &ts)?, &ts)?;
    if let Some(root) = budget.get(c, &url("root.json"), &scope).await? {
        keep(spill, md::ROOT, version_of(md::ROOT, &root)?, &root)?;
    }
    // The current chain, by checksum, as clients read it.
    let ts_body: MetaBody = body(md::TIMESTAMP, &ts)?;
    drop(ts);
    if let Some(sha) = ts_body.meta.get(md::SNAPSHOT).and_then(|m| m.sha256_hex()) {
        if let Some(snap) = budget
            .get(c, &url(&format!("snapshot.{sha}.json")), &scope)
            .await?
        {
            let snap_body: MetaBody = body(md::SNAPSHOT, &snap)?;
            keep(spill, md::SNAPSHOT, version_of(md::SNAPSHOT, &snap)?, &snap)?;
            drop(snap);
            fetch_named(c, gun, &scope, &snap_body, spill, budget).await?;
        }
    }
    // Older versions, newest first, down to what is stored here or what the source lacks.
    for role in spill.roles() {
        let Some(current) = spill.versions_from(&role, From::Source).last().copied() else {
            continue;
        };
        let mut v = current - 1;
        let mut walked = 0u64;
        while v >= 1 && spill.origin(&role, v) != Some(From::Here) {
            if spill.origin(&role, v).is_none() {
                walked += 1;
                if walked > max_versions {
                    return Err(SourceError::TooManyVersions {
                        role: role.clone(),
                        max: max_versions,
                    });
                }
                // Stored under the version asked for: a file that says otherwise is refused.
                let path = url(&format!("{v}.{role}.json"));
                match budget.get(c, &path, &scope).await? {
                    Some(b) => {
                        let found = version_of(&role, &b)?;
                        if found != v {
                            return Err(SourceError::WrongVersion { asked: path, found });
                        }
                        keep(spill, &role, v, &b)?;
                    }
                    None => break,
                }
            }
            v -= 1;
        }
    }
    // Files that older snapshots name and no version number reached.
    for v in spill.versions_from(md::SNAPSHOT, From::Source) {
        let snap = spill.read(md::SNAPSHOT, v).map_err(SourceError::Spill)?;
        if let Ok(b) = body::<MetaBody>(md::SNAPSHOT, &snap) {
            drop(snap);
            fetch_named(c, gun, &scope, &b, spill, budget).await?;
        }
    }
    Ok(())
}

/// Fetch by checksum each file `snapshot` names that `spill` does not hold.
async fn fetch_named(
    c: &NotaryClient,
    gun: &str,
    scope: &str,
    snapshot: &MetaBody,
    spill: &mut Spill,
    budget: &mut Budget<'_>,
) -> Result<(), SourceError> {
    for (role, meta) in &snapshot.meta {
        if !md::is_valid_role(role)
            || role == md::TIMESTAMP
            || spill
                .matching(role, meta)
                .map_err(SourceError::Spill)?
                .is_some()
        {
            continue;
        }
        let Some(sha) = meta.sha256_hex() else {
            continue;
        };
        if let Some(b) = budget
            .get(c, &format!("/v2/{gun}/_trust/tuf/{role}.{sha}.json"), scope)
            .await?
        {
            keep(spill, role, version_of(role, &b)?, &b)?;
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

/// A changefeed row as a source serves it (Go's field names).
#[derive(serde::Deserialize)]
pub(crate) struct ChangeRecord {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    #[serde(rename = "GUN")]
    pub(crate) gun: String,
    #[serde(rename = "Category")]
    pub(crate) category: String,
}

/// Largest changefeed page read (1 000 rows of about 200 bytes, with room).
pub(crate) const PAGE_BYTES: u64 = 16 << 20;

/// One page of a source's global changefeed (`query`: its parameters), read within
/// [`PAGE_BYTES`]; a source without one is an error telling to name the repositories.
pub(crate) async fn changefeed_page(
    c: &NotaryClient,
    query: &str,
) -> Result<Vec<ChangeRecord>, SourceError> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        records: Option<Vec<ChangeRecord>>,
    }
    let path = format!("/v2/_trust/changefeed?{query}");
    let page = c
        .get_limited(&path, "registry:catalog:*", PAGE_BYTES)
        .await?
        .ok_or_else(|| {
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
    Ok(page.records.unwrap_or_default())
}

async fn changefeed_guns(c: &NotaryClient, max: usize) -> Result<Vec<String>, SourceError> {
    // GUN → present (its last record is not a deletion): linear in the records read.
    let mut guns: HashMap<String, bool> = HashMap::new();
    let mut id = String::from("0");
    let mut seen_ids: HashSet<String> = HashSet::new();
    loop {
        let records = changefeed_page(c, &format!("change_id={id}&records=1000")).await?;
        let Some(last) = records.last() else { break };
        // A page must move on: its last ID is new, and not the one asked for.
        if last.id == id || !seen_ids.insert(last.id.clone()) {
            return Err(SourceError::ChangefeedStuck(id));
        }
        id = last.id.clone();
        for r in records {
            guns.insert(r.gun, r.category != "deletion");
            if guns.len() > max {
                return Err(SourceError::TooManyRepositories(max));
            }
        }
    }
    let mut out: Vec<String> = guns
        .into_iter()
        .filter_map(|(g, present)| present.then_some(g))
        .collect();
    out.sort();
    Ok(out)
}
