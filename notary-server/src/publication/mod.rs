//! Static publication: every repository's metadata written as a static tree, exactly as
//! clients ask for it, so that any web server, bucket or CDN can serve reads (clients verify
//! what they read; nothing here is trusted by them). Targets: a directory ([`dir`]) or an
//! S3-compatible bucket ([`s3`]). See `docs/static-publication.md`.
//!
//! 1. The tree of a repository is `v2/<gun>/_trust/tuf/` holding, for every stored file,
//!    `<role>.<sha256>.json` and `<version>.<role>.json`, and for each role's newest version
//!    `<role>.json`, byte for byte as the server serves them (`publication.rs`,
//!    `serves_the_same_bytes_as_the_server`).
//! 2. Order (TUF's): files named by checksum or version first, then the current files other
//!    than `snapshot.json` and `timestamp.json`, then `snapshot.json`, then `timestamp.json`
//!    last, and only then old files are removed; a reader never sees a timestamp naming a file
//!    that is not there yet. A deleted repository loses `timestamp.json` first
//!    (`publication.rs`, `follows_every_write_in_order`).
//! 3. A tree follows the changefeed: every write (publish, deletion, key rotation, import,
//!    re-sign, prune) writes a changefeed row, and [`spawn`] syncs each repository the rows
//!    name, then records the tree's position (`notary_rs_publication`). One instance writes a
//!    tree at a time (a named lock per tree); an instance that dies between uploads has not
//!    recorded the position, so the next one redoes the sync (uploads are idempotent, and a
//!    file written half-way is never visible: temp file and rename, or a single PUT)
//!    (`publication.rs`, `an_interrupted_sync_is_completed_by_the_next_instance`).
//! 4. A tree never synced, or [`sync_all`] (`notary-server export`), compares every file of
//!    the tree with storage and repairs it: missing or different files written, files and
//!    repositories no longer stored removed (`publication.rs`, `a_full_sync_repairs_a_tree`).
//! 5. Only names that stay inside the tree are written: a GUN or role read from storage (a
//!    Go-made database) that has a `.`, `..` or empty segment, a control character, or a
//!    `_trust` segment in a GUN, is skipped with a warning (`tests::unsafe_names_are_skipped`).
//! 6. The Go client pings `<server>/v2/` and goes offline unless it gets a 2xx or a 401: each
//!    tree holds `v2/index.html` (empty), and a bucket also the object `v2/`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::gun::Gun;
use crate::role::Role;
use crate::storage::{PublishedFile, SqlStore, StoreError};

pub mod dir;
pub mod s3;

/// Why a tree could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PublicationError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A directory target.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A bucket.
    #[error("S3 {op} {key}: {msg}")]
    S3 {
        /// The S3 operation.
        op: &'static str,
        /// The object key (or prefix).
        key: String,
        /// The SDK's error, with its causes.
        msg: String,
    },
    /// The configuration of a target.
    #[error("publish: {0}")]
    Config(String),
}

/// What kind of file a path holds: its name says which bytes it has (by checksum or version:
/// never rewritten, cached long) or it is a role's current file (rewritten, cached briefly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `<role>.<sha256>.json`, `<version>.<role>.json`.
    Immutable,
    /// `<role>.json`, and the `v2/` ping.
    Current,
}

/// A file a tree holds, as its listing tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its length.
    pub len: u64,
    /// A bucket's ETag (an MD5 of the bytes for a single PUT), when listed from one.
    pub etag: Option<String>,
}

/// Where a tree is written (a directory or a bucket); paths are relative, `/`-separated.
#[async_trait]
pub trait Target: Send + Sync {
    /// The tree's name: where its changefeed position is kept, and in logs.
    fn name(&self) -> String;
    /// Make the tree's root and its `v2/` ping (invariant 6).
    async fn prepare(&self) -> Result<(), PublicationError>;
    /// Every file under the folder `dir` (ending in `/`), recursively, by path relative to it.
    async fn list(&self, dir: &str) -> Result<BTreeMap<String, Held>, PublicationError>;
    /// Whether the file at `path`, listed as `held`, has exactly `data`.
    async fn holds(&self, path: &str, held: &Held, data: &[u8]) -> Result<bool, PublicationError>;
    /// Write `data` at `path`, all or nothing.
    async fn put(&self, path: &str, data: Bytes, kind: Kind) -> Result<(), PublicationError>;
    /// Remove `path` (gone already is fine).
    async fn delete(&self, path: &str) -> Result<(), PublicationError>;
}

/// A tree, and which repositories it holds: a tree has no access control, so only
/// repositories anyone may read belong in it (`publish.gun_prefixes`; invariant 7).
#[derive(Clone)]
pub struct Tree {
    /// Where it is written.
    pub target: Arc<dyn Target>,
    /// GUN prefixes of the repositories it holds (empty: all).
    pub gun_prefixes: Vec<String>,
}

impl Tree {
    /// Whether the tree holds `gun`'s files.
    pub fn holds(&self, gun: &Gun) -> bool {
        self.gun_prefixes.is_empty()
            || self
                .gun_prefixes
                .iter()
                .any(|p| gun.starts_with(p.as_str()))
    }
}

/// How thoroughly a sync compares what a tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// After a change: a file named by checksum or version that is there with its length is
    /// taken as right; current files are compared.
    Changed,
    /// A repair (invariant 4): every file compared.
    Full,
}

/// What a sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Repositories synced.
    pub repositories: u64,
    /// Files written.
    pub written: u64,
    /// Files removed.
    pub removed: u64,
    /// Repositories skipped for a name that would leave the tree (invariant 5).
    pub skipped: u64,
}

impl std::ops::AddAssign for Synced {
    fn add_assign(&mut self, o: Synced) {
        self.repositories += o.repositories;
        self.written += o.written;
        self.removed += o.removed;
        self.skipped += o.skipped;
    }
}

/// The folder of a repository's files in a tree.
pub fn folder(gun: &Gun) -> String {
    format!("v2/{gun}/_trust/tuf/")
}

/// Whether a GUN read from storage can name a folder of a tree (invariant 5).
fn publishable_gun(gun: &str) -> bool {
    Gun::new(gun).is_ok() && !gun.split('/').any(|s| s == "_trust")
}

/// Whether a role read from storage can name files of a tree (invariant 5).
fn publishable_role(role: &str) -> bool {
    match role.strip_prefix("targets/") {
        None => [Role::ROOT, Role::TARGETS, Role::SNAPSHOT, Role::TIMESTAMP]
            .iter()
            .any(|r| r.as_str() == role),
        Some(rest) => !rest
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == ".." || s.chars().any(char::is_control)),
    }
}

/// One file to be in the tree: its name under the repository's folder, which stored file it
/// is, and when it is written (invariant 2).
struct Wanted<'a> {
    name: String,
    file: &'a PublishedFile,
    kind: Kind,
    phase: u8,
}

/// Where a file goes in the order of invariant 2.
fn phase(name_kind: Kind, role: &str) -> u8 {
    match (name_kind, role) {
        (Kind::Immutable, _) => 0,
        (Kind::Current, "snapshot") => 2,
        (Kind::Current, "timestamp") => 3,
        (Kind::Current, _) => 1,
    }
}

/// The files the tree of a repository holding `files` has (invariant 1), in writing order.
fn wanted(files: &[PublishedFile]) -> Vec<Wanted<'_>> {
    let mut newest: BTreeMap<&str, &PublishedFile> = BTreeMap::new();
    let mut out = Vec::new();
    for f in files.iter().filter(|f| publishable_role(&f.role)) {
        for name in [
            format!("{}.{}.json", f.role, f.sha256),
            format!("{}.{}.json", f.version, f.role),
        ] {
            out.push(Wanted {
                name,
                file: f,
                kind: Kind::Immutable,
                phase: 0,
            });
        }
        let e = newest.entry(&f.role).or_insert(f);
        if f.version > e.version {
            *e = f;
        }
    }
    for (role, f) in newest {
        out.push(Wanted {
            name: format!("{role}.json"),
            file: f,
            kind: Kind::Current,
            phase: phase(Kind::Current, role),
        });
    }
    out.sort_by_key(|w| w.phase);
    out
}

/// Bring the tree of `gun` in line with storage (invariants 1, 2, 5). `gun` is a name read from
/// storage (a Go-made database may hold any text), checked here before it names a folder.
pub(crate) async fn sync_gun(
    store: &SqlStore,
    tree: &Tree,
    gun: &str,
    check: Check,
) -> Result<Synced, PublicationError> {
    let target = tree.target.as_ref();
    if !publishable_gun(gun) {
        tracing::warn!(
            gun,
            "not published: the GUN would name a path outside its folder"
        );
        return Ok(Synced {
            skipped: 1,
            ..Synced::default()
        });
    }
    let gun = Gun::stored(gun.to_string());
    let base = folder(&gun);
    let files = if tree.holds(&gun) {
        store.published_files(&gun).await?
    } else {
        Vec::new()
    };
    let mut held = target.list(&base).await?;
    let mut done = Synced {
        repositories: 1,
        ..Synced::default()
    };
    // The last file loaded: a role's current file is usually the one just written by name.
    let mut loaded: Option<(String, i64, Bytes)> = None;
    // A file gone since the listing (a prune, a deletion): the tree may still need the files
    // its current timestamp names, so nothing is removed this time.
    let mut incomplete = false;
    for w in wanted(&files) {
        let path = format!("{base}{}", w.name);
        let there = held.remove(&w.name);
        if let (Some(h), Kind::Immutable, Check::Changed) = (&there, w.kind, check) {
            if h.len == w.file.len {
                continue;
            }
        }
        let data = match &loaded {
            Some((r, v, d)) if *r == w.file.role && *v == w.file.version => d.clone(),
            _ => {
                let Some(d) = load(store, &gun, w.file).await? else {
                    // Pruned or replaced since the listing: the changefeed row of that write
                    // brings this repository back.
                    incomplete = true;
                    continue;
                };
                loaded = Some((w.file.role.clone(), w.file.version, d.clone()));
                d
            }
        };
        if let Some(h) = &there {
            if h.len == data.len() as u64 && target.holds(&path, h, &data).await? {
                continue;
            }
        }
        target.put(&path, data, w.kind).await?;
        done.written += 1;
    }
    // What is left is no longer stored: the timestamp first, so that no reader is sent to a
    // snapshot about to go (invariant 2).
    if incomplete {
        return Ok(done);
    }
    let mut stale: Vec<String> = held.into_keys().collect();
    stale.sort_by_key(|n| match n.as_str() {
        "timestamp.json" => 0,
        "snapshot.json" => 1,
        _ => 2,
    });
    for name in stale {
        target.delete(&format!("{base}{name}")).await?;
        done.removed += 1;
    }
    Ok(done)
}

/// A stored file's bytes, checked against the listing (`None`: no longer as listed).
async fn load(
    store: &SqlStore,
    gun: &Gun,
    f: &PublishedFile,
) -> Result<Option<Bytes>, PublicationError> {
    let role = Role::stored(&f.role);
    Ok(store
        .by_version(gun, &role, f.version)
        .await?
        .filter(|s| s.sha256 == f.sha256)
        .map(|s| s.data))
}

/// Every repository of storage and of the tree, compared and repaired (invariant 4); `only`
/// limits it to those GUNs.
pub async fn sync_all(
    store: &SqlStore,
    tree: &Tree,
    only: Option<&[Gun]>,
    check: Check,
) -> Result<Synced, PublicationError> {
    let target = tree.target.as_ref();
    target.prepare().await?;
    let mut guns: BTreeSet<String> = match only {
        Some(g) => g.iter().map(|g| g.to_string()).collect(),
        None => store
            .guns()
            .await?
            .into_iter()
            .map(|g| g.to_string())
            .collect(),
    };
    if only.is_none() {
        // Repositories the tree holds that storage no longer has.
        for path in target.list("v2/").await?.into_keys() {
            if let Some((gun, _)) = path.split_once("/_trust/tuf/") {
                guns.insert(gun.to_string());
            }
        }
    }
    let mut done = Synced::default();
    for gun in guns {
        done += sync_gun(store, tree, &gun, check).await?;
    }
    Ok(done)
}

/// [`sync_all`] under the tree's lock (invariant 3), waiting up to `wait` for an instance
/// that holds it to finish its round: what `notary-server export` runs on the configured tree.
pub async fn repair(
    store: &SqlStore,
    tree: &Tree,
    only: Option<&[Gun]>,
    check: Check,
    wait: Duration,
) -> Result<Option<Synced>, PublicationError> {
    let name = tree.target.name();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(_held) = store.try_lock(&lock_name(&name)).await? {
            return sync_all(store, tree, only, check).await.map(Some);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The named lock one instance holds while it writes a tree (invariant 3).
fn lock_name(tree: &str) -> String {
    format!("publication {tree}")
}

/// Rows read from the changefeed per round.
const ROWS_PER_ROUND: i64 = 1000;

/// One round of following (invariant 3): a full sync for a tree never synced, else every
/// repository named since the tree's position; `None` when another instance holds the tree.
pub(crate) async fn follow_once(
    store: &SqlStore,
    tree: &Tree,
) -> Result<Option<Synced>, PublicationError> {
    let name = tree.target.name();
    let Some(_held) = store.try_lock(&lock_name(&name)).await? else {
        return Ok(None);
    };
    let mut done = Synced::default();
    let mut at = match store.publication_cursor(&name).await? {
        Some(at) => at,
        None => {
            let head = store.changefeed_head().await?;
            done += sync_all(store, tree, None, Check::Full).await?;
            store.set_publication_cursor(&name, head).await?;
            head
        }
    };
    loop {
        let (guns, last) = store.changed_after(at, ROWS_PER_ROUND).await?;
        if last == at {
            return Ok(Some(done));
        }
        for gun in guns {
            done += sync_gun(store, tree, &gun, Check::Changed).await?;
        }
        store.set_publication_cursor(&name, last).await?;
        at = last;
    }
}

/// What this process's publication rounds did (`/metrics`; one tree per server).
struct Rounds {
    on: std::sync::atomic::AtomicBool,
    synced: std::sync::atomic::AtomicU64,
    elsewhere: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    last_synced: std::sync::atomic::AtomicI64,
}

static ROUNDS: Rounds = Rounds {
    on: std::sync::atomic::AtomicBool::new(false),
    synced: std::sync::atomic::AtomicU64::new(0),
    elsewhere: std::sync::atomic::AtomicU64::new(0),
    failed: std::sync::atomic::AtomicU64::new(0),
    last_synced: std::sync::atomic::AtomicI64::new(0),
};

/// This server's publication rounds: completed here, skipped because another instance held
/// the tree, failed; and the Unix time the last one completed here (0: none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundCounts {
    /// Rounds completed here.
    pub synced: u64,
    /// Rounds another instance held the tree for.
    pub elsewhere: u64,
    /// Rounds that failed (retried).
    pub failed: u64,
    /// Unix time of the last round completed here (0: none yet).
    pub(crate) last_synced: i64,
}

/// The counts, when this server publishes a tree.
pub(crate) fn round_counts() -> Option<RoundCounts> {
    use std::sync::atomic::Ordering::Relaxed;
    ROUNDS.on.load(Relaxed).then(|| RoundCounts {
        synced: ROUNDS.synced.load(Relaxed),
        elsewhere: ROUNDS.elsewhere.load(Relaxed),
        failed: ROUNDS.failed.load(Relaxed),
        last_synced: ROUNDS.last_synced.load(Relaxed),
    })
}

/// Follow the changefeed into `target` every `interval` until the process ends (invariant 3);
/// a failed round is logged and retried.
pub fn spawn(store: Arc<SqlStore>, tree: Tree, interval: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    ROUNDS.on.store(true, Relaxed);
    tokio::spawn(async move {
        let name = tree.target.name();
        if let Err(e) = tree.target.prepare().await {
            tracing::warn!(target = %name, error = %e, "static publication: preparing the tree failed; retrying");
        }
        let mut failing = false;
        loop {
            let round = follow_once(&store, &tree).await;
            match &round {
                Ok(Some(_)) => {
                    ROUNDS.synced.fetch_add(1, Relaxed);
                    ROUNDS
                        .last_synced
                        .store(chrono::Utc::now().timestamp(), Relaxed);
                }
                Ok(None) => {
                    ROUNDS.elsewhere.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    ROUNDS.failed.fetch_add(1, Relaxed);
                }
            }
            match round {
                Ok(Some(s)) if s.written + s.removed > 0 => {
                    tracing::info!(target = %name, repositories = s.repositories, written = s.written, removed = s.removed, "static publication: tree updated");
                    failing = false;
                }
                Ok(_) => failing = false,
                Err(e) => {
                    // Once per outage at warn, then at debug.
                    if failing {
                        tracing::debug!(target = %name, error = %e, "static publication: still failing");
                    } else {
                        tracing::warn!(target = %name, error = %e, "static publication: sync failed; retrying");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(interval).await;
        }
    });
}

#[cfg(test)]
mod tests;
