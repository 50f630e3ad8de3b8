//! In-memory read cache (bounded LRU):
//! - files by (GUN, role, sha256) and by (GUN, role, version): immutable, valid until the GUN
//!   is deleted;
//! - each GUN's current chain (timestamp, the snapshot it names, the parsed snapshot meta),
//!   valid until a newer timestamp is committed.
//!
//! Entries are dropped by the changefeed follower (`coherence`), which follows the changefeed and
//! makes every current read wait for a changefeed check that started after the read arrived.
//! A loader that read the database before an invalidation must not put its (possibly older)
//! result back afterwards: it takes a [`Ticket`] before reading and the put is refused if
//! anything was invalidated in between.
//!
//! What this instance itself writes need not be read back: before storing, a publish tells the
//! cache what it will make current ([`MetaCache::expect`]); when the changefeed check reaches
//! the publish's row it installs that chain and those files in place of the GUN's old chain
//! ([`MetaCache::apply_update`]). The check applies rows in commit order, so what it installs is
//! exactly what the database holds at that point of the feed; a later row replaces it as usual.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use lru::LruCache;
use notary_tuf::metadata::{self as md, SignedFile};

use crate::gun::Gun;
use crate::role::Role;
use crate::storage::{StoreError, StoredFile};
use notary_common::sync::lock;

/// A repository's current chain as the read path needs it: the timestamp and the snapshot it names,
/// with their expiries, and what the snapshot names of each role.
#[derive(Clone)]
pub struct CachedChain {
    /// The current timestamp.
    pub timestamp: StoredFile,
    /// When it expires.
    pub timestamp_expires: DateTime<FixedOffset>,
    /// The snapshot it names.
    pub snapshot: StoredFile,
    /// When that expires.
    pub(crate) snapshot_expires: DateTime<FixedOffset>,
    /// SHA-256 (hex) of each role the snapshot lists: all a read needs of the snapshot meta.
    pub(crate) role_sha256: std::collections::BTreeMap<Box<str>, Box<str>>,
}

impl CachedChain {
    /// The chain of a timestamp (`ts`: its file, parsed) and the snapshot it names (whose
    /// checksum the caller checked).
    pub(crate) fn from_files(
        timestamp: StoredFile,
        ts: &SignedFile,
        snapshot: StoredFile,
    ) -> Result<CachedChain, StoreError> {
        let bad = |e: md::ParseError| StoreError::Db(format!("stored snapshot: {e}"));
        let snap = SignedFile::parse_bytes(snapshot.data.clone()).map_err(bad)?;
        let meta: md::MetaBody = snap.body().map_err(bad)?;
        Ok(CachedChain {
            timestamp_expires: ts.common.expires,
            timestamp,
            snapshot_expires: snap.common.expires,
            snapshot,
            role_sha256: meta
                .meta
                .iter()
                .filter_map(|(role, m)| Some((role.as_str().into(), m.sha256_hex()?.into())))
                .collect(),
        })
    }
}

/// What a write of this instance makes current once committed (see the module docs): the
/// chain, and the new files other than the timestamp.
pub struct Expected {
    /// The new chain.
    pub chain: Arc<CachedChain>,
    /// The other new files, by role.
    pub files: Vec<(Role, StoredFile)>,
}

/// Writes awaited at most (each holds its new files until its changefeed row is applied); an
/// entry whose row is never applied (the instance's first check started after it) is dropped
/// after `EXPECTED_TTL`.
const MAX_EXPECTED: usize = 1024;
const EXPECTED_TTL: Duration = Duration::from_secs(60);

/// (GUN, role, sha256 hex or "v<version>")
type FileKey = (Box<str>, Box<str>, Box<str>);

fn key(gun: &str, role: &str, id: &str) -> FileKey {
    (gun.into(), role.into(), id.into())
}

fn version_id(version: i64) -> String {
    format!("v{version}")
}

struct Inner {
    files: LruCache<FileKey, StoredFile>,
    chains: LruCache<Box<str>, Arc<CachedChain>>,
    /// Bumped by every invalidation.
    generation: u64,
    /// Approximate bytes held by files and by chains, and the budget for both.
    file_bytes: usize,
    chain_bytes: usize,
    max_bytes: usize,
    /// (GUN, SHA-256 of the new timestamp) → what its row installs.
    expected: HashMap<(Box<str>, Box<str>), (Instant, Expected)>,
}

/// Bookkeeping per entry beyond the metadata bytes (keys, hash, LRU node).
const ENTRY_OVERHEAD: usize = 256;

fn file_cost(k: &FileKey, f: &StoredFile) -> usize {
    f.held_bytes() + k.0.len() + k.1.len() + k.2.len() + ENTRY_OVERHEAD
}

fn chain_cost(gun: &str, c: &CachedChain) -> usize {
    // The snapshot bytes may be shared with the file cache; counted here too (upper bound).
    let shas: usize = c
        .role_sha256
        .iter()
        .map(|(r, s)| r.len() + s.len() + 64)
        .sum();
    c.timestamp.held_bytes() + c.snapshot.held_bytes() + shas + gun.len() + 3 * ENTRY_OVERHEAD
}

impl Inner {
    fn put_file(&mut self, k: FileKey, f: StoredFile) {
        self.file_bytes += file_cost(&k, &f);
        if let Some((old_k, old)) = self.files.push(k, f) {
            self.file_bytes -= file_cost(&old_k, &old);
        }
        self.shrink();
    }

    fn push_chain(&mut self, gun: &str, c: Arc<CachedChain>) {
        self.chain_bytes += chain_cost(gun, &c);
        if let Some((old_gun, old)) = self.chains.push(gun.into(), c) {
            self.chain_bytes -= chain_cost(&old_gun, &old);
        }
        self.shrink();
    }

    fn pop_chain(&mut self, gun: &str) {
        if let Some(c) = self.chains.pop(gun) {
            self.chain_bytes -= chain_cost(gun, &c);
        }
    }

    /// Evict least recently used files, then chains, until within the byte budget.
    fn shrink(&mut self) {
        while self.file_bytes + self.chain_bytes > self.max_bytes {
            if let Some((k, f)) = self.files.pop_lru() {
                self.file_bytes -= file_cost(&k, &f);
            } else if let Some((g, c)) = self.chains.pop_lru() {
                self.chain_bytes -= chain_cost(&g, &c);
            } else {
                break;
            }
        }
    }
}

/// The read cache: current chains and files by checksum and by version, bounded in count and bytes
/// (see the module for when what it holds is current).
pub struct MetaCache {
    inner: Mutex<Inner>,
}

/// The cache generation observed before a database read (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

impl MetaCache {
    /// `files`: most cached files; `guns`: most cached chains; `max_bytes`: most bytes held
    /// by both (least recently used files go first).
    pub fn new(files: usize, guns: usize, max_bytes: usize) -> Self {
        let n = |v: usize| NonZeroUsize::new(v.max(1)).unwrap();
        MetaCache {
            inner: Mutex::new(Inner {
                files: LruCache::new(n(files)),
                chains: LruCache::new(n(guns)),
                generation: 0,
                file_bytes: 0,
                chain_bytes: 0,
                max_bytes,
                expected: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The generation to put back under after a database read (see the module docs).
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// A file by checksum, if cached.
    pub fn file(&self, gun: &Gun, role: &Role, sha: &str) -> Option<StoredFile> {
        self.lock().files.get(&key(gun, role, sha)).cloned()
    }

    /// Cache a file by checksum, unless a write made the ticket stale.
    pub(crate) fn put_file(&self, t: Ticket, gun: &Gun, role: &Role, f: &StoredFile) {
        let mut g = self.lock();
        if g.generation == t.0 {
            g.put_file(key(gun, role, &f.sha256), f.clone());
        }
    }

    /// A file by version, if cached.
    pub fn version(&self, gun: &Gun, role: &Role, version: i64) -> Option<StoredFile> {
        self.lock()
            .files
            .get(&key(gun, role, &version_id(version)))
            .cloned()
    }

    /// Cache a file by version, unless a write made the ticket stale.
    pub(crate) fn put_version(
        &self,
        t: Ticket,
        gun: &Gun,
        role: &Role,
        version: i64,
        f: &StoredFile,
    ) {
        let mut g = self.lock();
        if g.generation == t.0 {
            g.put_file(key(gun, role, &version_id(version)), f.clone());
        }
    }

    /// A repository's current chain, if cached.
    pub fn chain(&self, gun: &Gun) -> Option<Arc<CachedChain>> {
        self.lock().chains.get(gun.as_str()).cloned()
    }

    /// Cache a chain, unless a write made the ticket stale.
    pub(crate) fn put_chain(&self, t: Ticket, gun: &Gun, c: Arc<CachedChain>) {
        let mut g = self.lock();
        if g.generation == t.0 {
            g.push_chain(gun, c);
        }
    }

    /// A write is about to store a timestamp with this SHA-256 for `gun`: when the changefeed
    /// row of that timestamp is applied, install `e` (see the module docs). Call before
    /// storing; [`MetaCache::unexpect`] if the write fails.
    pub fn expect(&self, gun: &Gun, timestamp_sha256: &str, e: Expected) {
        let mut g = self.lock();
        if g.expected.len() >= MAX_EXPECTED {
            g.expected.retain(|_, (at, _)| at.elapsed() < EXPECTED_TTL);
            if g.expected.len() >= MAX_EXPECTED {
                return; // the row then only invalidates, and the next read loads from the database
            }
        }
        g.expected.insert(
            (gun.as_str().into(), timestamp_sha256.into()),
            (Instant::now(), e),
        );
    }

    /// Forget what a write expected to make current (it failed).
    pub(crate) fn unexpect(&self, gun: &Gun, timestamp_sha256: &str) {
        self.lock()
            .expected
            .remove(&(gun.as_str().into(), timestamp_sha256.into()));
    }

    /// The changefeed says a timestamp with this SHA-256 (`None`: not recorded, as in rows the
    /// Go server migrated) was committed for `gun`: its cached chain is stale (files stay
    /// valid); if this instance wrote it, the new chain and files take its place.
    pub(crate) fn apply_update(&self, gun: &Gun, timestamp_sha256: Option<&str>) {
        let mut g = self.lock();
        g.generation += 1;
        g.pop_chain(gun);
        let Some(sha) = timestamp_sha256 else { return };
        if let Some((_, e)) = g.expected.remove(&(gun.as_str().into(), sha.into())) {
            for (role, f) in e.files {
                g.put_file(key(gun, &role, &f.sha256), f);
            }
            g.push_chain(gun, e.chain);
        }
    }

    /// GUNs whose cached timestamp or snapshot expires before `deadline`.
    pub(crate) fn chains_due(&self, deadline: DateTime<chrono::Utc>) -> Vec<Gun> {
        let g = self.lock();
        g.chains
            .iter()
            .filter(|(_, c)| c.timestamp_expires < deadline || c.snapshot_expires < deadline)
            .map(|(k, _)| Gun::stored(k.to_string()))
            .collect()
    }

    /// Forget everything about a GUN (after a deletion, here or on another instance).
    pub(crate) fn forget(&self, gun: &Gun) {
        let mut g = self.lock();
        g.generation += 1;
        g.pop_chain(gun);
        let stale: Vec<FileKey> = g
            .files
            .iter()
            .filter(|(k, _)| *k.0 == **gun)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(f) = g.files.pop(&k) {
                g.file_bytes -= file_cost(&k, &f);
            }
        }
    }

    /// Number of cached (files, chains) and the bytes they account for.
    pub fn len(&self) -> (usize, usize, usize) {
        let g = self.lock();
        (g.files.len(), g.chains.len(), g.file_bytes + g.chain_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gun::gun;

    fn file(data: &str) -> StoredFile {
        StoredFile::from_bytes(data.as_bytes().to_vec(), None)
    }

    #[test]
    fn a_put_after_an_invalidation_is_refused() {
        let c = MetaCache::new(10, 10, 1 << 20);
        let t = c.ticket();
        c.apply_update(&gun("g"), None);
        c.put_file(t, &gun("g"), &Role::ROOT, &file("old"));
        c.put_version(t, &gun("g"), &Role::ROOT, 1, &file("old"));
        assert!(c
            .file(&gun("g"), &Role::ROOT, &file("old").sha256)
            .is_none());
        assert!(c.version(&gun("g"), &Role::ROOT, 1).is_none());
        let t = c.ticket();
        c.put_version(t, &gun("g"), &Role::ROOT, 1, &file("new"));
        assert_eq!(
            &c.version(&gun("g"), &Role::ROOT, 1).unwrap().data[..],
            b"new"
        );
    }

    fn chain(ts: &str, snap: &str) -> Arc<CachedChain> {
        let expires = DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z").unwrap();
        Arc::new(CachedChain {
            timestamp: file(ts),
            timestamp_expires: expires,
            snapshot: file(snap),
            snapshot_expires: expires,
            role_sha256: Default::default(),
        })
    }

    #[test]
    fn an_expected_write_is_installed_when_its_row_is_applied() {
        let c = MetaCache::new(10, 10, 1 << 20);
        c.put_chain(c.ticket(), &gun("g"), chain("ts1", "snap1"));
        let new = chain("ts2", "snap2");
        let sha = new.timestamp.sha256.clone();
        c.expect(
            &gun("g"),
            &sha,
            Expected {
                chain: new,
                files: vec![(Role::TARGETS, file("targets2"))],
            },
        );
        // Another GUN's row, and a row of "g" with another timestamp, only invalidate.
        c.apply_update(&gun("h"), Some(&sha));
        assert!(c.chain(&gun("g")).is_some());
        c.apply_update(&gun("g"), Some(&file("ts-other").sha256));
        assert!(c.chain(&gun("g")).is_none());
        // A loader that read before the row was applied may not put its result back.
        let before = c.ticket();
        c.apply_update(&gun("g"), Some(&sha));
        assert_eq!(&c.chain(&gun("g")).unwrap().timestamp.data[..], b"ts2");
        assert!(c
            .file(&gun("g"), &Role::TARGETS, &file("targets2").sha256)
            .is_some());
        c.put_chain(before, &gun("g"), chain("ts1", "snap1"));
        assert_eq!(&c.chain(&gun("g")).unwrap().timestamp.data[..], b"ts2");
        // Installed once: the same row applied again (or a later one) invalidates.
        c.apply_update(&gun("g"), Some(&sha));
        assert!(c.chain(&gun("g")).is_none());
    }

    #[test]
    fn a_failed_write_is_not_installed() {
        let c = MetaCache::new(10, 10, 1 << 20);
        let new = chain("ts2", "snap2");
        let sha = new.timestamp.sha256.clone();
        c.expect(
            &gun("g"),
            &sha,
            Expected {
                chain: new,
                files: vec![],
            },
        );
        c.unexpect(&gun("g"), &sha);
        c.apply_update(&gun("g"), Some(&sha));
        assert!(c.chain(&gun("g")).is_none());
    }

    #[test]
    fn forget_drops_files_by_checksum_and_version() {
        let c = MetaCache::new(10, 10, 1 << 20);
        let t = c.ticket();
        c.put_file(t, &gun("g"), &Role::ROOT, &file("a"));
        c.put_version(t, &gun("g"), &Role::ROOT, 1, &file("a"));
        c.put_file(t, &gun("h"), &Role::ROOT, &file("a"));
        c.forget(&gun("g"));
        assert_eq!(c.len().0, 1);
        assert!(c.file(&gun("h"), &Role::ROOT, &file("a").sha256).is_some());
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use crate::gun::gun;

    #[test]
    fn the_byte_budget_evicts_least_recently_used_files() {
        let c = MetaCache::new(1000, 1000, 10 * 1024);
        let t = c.ticket();
        for i in 0..100 {
            c.put_file(
                t,
                &gun(&format!("g{i}")),
                &Role::ROOT,
                &StoredFile::from_bytes(vec![b'x'; 1000 + i], None),
            );
        }
        let (files, _, bytes) = c.len();
        assert!(bytes <= 10 * 1024, "{bytes} bytes held");
        assert!((5..=10).contains(&files), "{files} files held");
        // The newest is kept, the oldest gone.
        assert!(c
            .file(
                &gun("g99"),
                &Role::ROOT,
                &StoredFile::from_bytes(vec![b'x'; 1099], None).sha256
            )
            .is_some());
        assert!(c
            .file(
                &gun("g0"),
                &Role::ROOT,
                &StoredFile::from_bytes(vec![b'x'; 1000], None).sha256
            )
            .is_none());
        c.forget(&gun("g99"));
        assert!(c.len().2 < bytes);
    }
}
