//! In-memory read cache (bounded LRU):
//! - files by (GUN, role, sha256): immutable, so always valid until the GUN is deleted;
//! - each GUN's current chain (timestamp, the snapshot it names, the parsed snapshot meta),
//!   valid while the newest stored timestamp version is the one it was built from (checked with
//!   one index lookup per current read, so no instance ever serves a timestamp older than the
//!   newest committed one).
//!
//! Deletions by other instances reach this cache through the changefeed poller.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset};
use lru::LruCache;
use notary_tuf::metadata::MetaBody;

use crate::storage::StoredFile;

#[derive(Clone)]
pub struct CachedChain {
    pub timestamp_version: i64,
    pub timestamp: StoredFile,
    pub timestamp_expires: DateTime<FixedOffset>,
    pub snapshot: StoredFile,
    pub snapshot_expires: DateTime<FixedOffset>,
    pub meta: Arc<MetaBody>,
}

type FileKey = (String, String, String);

pub struct MetaCache {
    files: Mutex<LruCache<FileKey, StoredFile>>,
    chains: Mutex<LruCache<String, Arc<CachedChain>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MetaCache {
    /// `files`: most cached files; `guns`: most cached chains.
    pub fn new(files: usize, guns: usize) -> Self {
        let n = |v: usize| NonZeroUsize::new(v.max(1)).unwrap();
        MetaCache { files: Mutex::new(LruCache::new(n(files))), chains: Mutex::new(LruCache::new(n(guns))) }
    }

    pub fn file(&self, gun: &str, role: &str, sha: &str) -> Option<StoredFile> {
        lock(&self.files).get(&(gun.to_string(), role.to_string(), sha.to_string())).cloned()
    }

    pub fn put_file(&self, gun: &str, role: &str, f: &StoredFile) {
        lock(&self.files).put((gun.to_string(), role.to_string(), f.sha256.clone()), f.clone());
    }

    pub fn chain(&self, gun: &str) -> Option<Arc<CachedChain>> {
        lock(&self.chains).get(gun).cloned()
    }

    pub fn put_chain(&self, gun: &str, c: Arc<CachedChain>) {
        lock(&self.chains).put(gun.to_string(), c);
    }

    /// Forget everything about a GUN (after a deletion, here or on another instance).
    pub fn forget(&self, gun: &str) {
        lock(&self.chains).pop(gun);
        let mut files = lock(&self.files);
        let stale: Vec<FileKey> = files.iter().filter(|(k, _)| k.0 == gun).map(|(k, _)| k.clone()).collect();
        for k in stale {
            files.pop(&k);
        }
    }
}
