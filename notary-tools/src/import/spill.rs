//! Where an import keeps a repository's files while it verifies and stores them: a private
//! folder on disk, so that memory holds about one file at a time however long the history
//! (`notary_tuf::history`, invariant 6).
//!
//! 1. Each file is written once, 0600 in a 0700 folder made for it and removed when the spill
//!    is dropped; the folders of killed imports are removed by the next one
//!    (`spill::tests::a_killed_import_leaves_nothing_for_long`).
//! 2. A file is known by (role, version) with its SHA-256 and its origin (stored here, or read
//!    from the source); a second file for the same version with other bytes is a [`Clash`],
//!    never an overwrite (`spill::tests::a_clash_is_named_not_overwritten`).
//! 3. It is read back whole only when verified or stored
//!    (`notary-tools/tests/hostile_import.rs::a_large_history_is_imported_in_bounded_memory`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use notary_tuf::history::{HistoryError, HistoryFiles};
use notary_tuf::FileMeta;
use sha2::{Digest, Sha256};

use notary_server::storage::{ImportFiles, ListedFile, StoreError};

/// Where a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This server's storage.
    Here,
    /// The source being imported.
    Source,
}

/// A second, different file for a version already held (invariant 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clash {
    /// Where the file already held came from.
    pub with: Origin,
}

struct Entry {
    path: PathBuf,
    sha256: String,
    len: usize,
    origin: Origin,
}

/// A repository's files on disk while it is imported (see the module).
pub struct Spill {
    dir: PathBuf,
    entries: BTreeMap<String, BTreeMap<i64, Entry>>,
    next: u64,
}

const PREFIX: &str = "notary-import-";

impl Spill {
    /// A new spill folder in the system's temporary folder (made here, never an existing one),
    /// after removing those of imports whose process is gone (killed before they could).
    pub fn new() -> std::io::Result<Spill> {
        Spill::new_in(&std::env::temp_dir())
    }

    /// [`Spill::new`] in the folder `tmp` instead of the system's.
    fn new_in(tmp: &std::path::Path) -> std::io::Result<Spill> {
        use rand_core::RngCore;
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        remove_stale(tmp);
        let dir = tmp.join(format!(
            "{PREFIX}{}-{:016x}",
            std::process::id(),
            rand_core::OsRng.next_u64()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Spill {
            dir,
            entries: BTreeMap::new(),
            next: 0,
        })
    }

    /// Hold `bytes` as `role` at `version` (from `origin`); the same bytes again are a no-op.
    pub fn add(
        &mut self,
        role: &str,
        version: i64,
        bytes: &[u8],
        origin: Origin,
    ) -> Result<Result<(), Clash>, std::io::Error> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(e) = self.entries.get(role).and_then(|r| r.get(&version)) {
            return Ok(if e.sha256 == sha256 {
                Ok(())
            } else {
                Err(Clash { with: e.origin })
            });
        }
        self.next += 1;
        let path = self.dir.join(self.next.to_string());
        notary_common::private::write_file(&path, bytes, 0o600)?;
        self.entries.entry(role.to_string()).or_default().insert(
            version,
            Entry {
                path,
                sha256,
                len: bytes.len(),
                origin,
            },
        );
        Ok(Ok(()))
    }

    /// Where the file of `role` at `version` came from, if held.
    pub fn origin(&self, role: &str, version: i64) -> Option<Origin> {
        self.entries.get(role)?.get(&version).map(|e| e.origin)
    }

    /// Every role held.
    pub fn roles(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Versions of `role` from `origin`, ascending.
    pub fn versions_from(&self, role: &str, origin: Origin) -> Vec<i64> {
        self.entries
            .get(role)
            .into_iter()
            .flatten()
            .filter(|(_, e)| e.origin == origin)
            .map(|(v, _)| *v)
            .collect()
    }

    /// How many files, and how many of them from the source.
    pub fn counts(&self) -> (usize, usize) {
        let all = self.entries.values().flat_map(BTreeMap::values);
        let source = all.clone().filter(|e| e.origin == Origin::Source).count();
        (all.count(), source)
    }

    /// The bytes of `role` at `version`.
    pub fn read(&self, role: &str, version: i64) -> std::io::Result<Vec<u8>> {
        let e = self
            .entries
            .get(role)
            .and_then(|r| r.get(&version))
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not held"))?;
        std::fs::read(&e.path)
    }

    /// The newest version of `role` whose bytes match `meta` (hashes and length). Versions whose
    /// SHA-256 or length already differ are passed over without being read (older snapshots
    /// name files of a long history: reading each candidate would be quadratic).
    pub fn matching(&self, role: &str, meta: &FileMeta) -> std::io::Result<Option<i64>> {
        let sha256 = meta.sha256_hex();
        for (v, e) in self
            .entries
            .get(role)
            .into_iter()
            .flat_map(|r| r.iter().rev())
        {
            if e.len as i64 != meta.length || sha256.as_ref().is_some_and(|s| *s != e.sha256) {
                continue;
            }
            if meta.check(&self.read(role, *v)?, role).is_ok() {
                return Ok(Some(*v));
            }
        }
        Ok(None)
    }

    /// The files read from the source, to store.
    pub fn from_source(&self) -> SourceFiles<'_> {
        SourceFiles(self)
    }
}

/// Remove the spill folders (real folders, not links) of imports whose process no longer runs.
fn remove_stale(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if gone && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl HistoryFiles for Spill {
    fn versions(&self) -> BTreeMap<String, Vec<i64>> {
        self.entries
            .iter()
            .map(|(r, v)| (r.clone(), v.keys().copied().collect()))
            .collect()
    }

    fn load(&self, role: &str, version: i64) -> Result<Cow<'_, [u8]>, HistoryError> {
        self.read(role, version)
            .map(Cow::Owned)
            .map_err(|e| HistoryError::File {
                role: role.to_string(),
                version,
                msg: format!("reading the import's spill: {e}"),
            })
    }
}

/// The files of a [`Spill`] read from the source.
pub struct SourceFiles<'a>(&'a Spill);

impl ImportFiles for SourceFiles<'_> {
    fn listing(&self) -> Vec<ListedFile> {
        self.0
            .entries
            .iter()
            .flat_map(|(role, versions)| {
                versions
                    .iter()
                    .filter(|(_, e)| e.origin == Origin::Source)
                    .map(move |(v, e)| ListedFile {
                        role: role.clone(),
                        version: *v,
                        sha256: e.sha256.clone(),
                    })
            })
            .collect()
    }

    fn read(&self, role: &str, version: i64) -> Result<Vec<u8>, StoreError> {
        self.0
            .read(role, version)
            .map_err(|e| StoreError::Db(format!("reading the import's spill: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clash_is_named_not_overwritten() {
        let mut s = Spill::new().unwrap();
        let dir = s.dir.clone();
        assert_eq!(s.add("targets", 1, b"one", Origin::Here).unwrap(), Ok(()));
        assert_eq!(s.add("targets", 1, b"one", Origin::Source).unwrap(), Ok(()));
        assert_eq!(
            s.add("targets", 1, b"two", Origin::Source).unwrap(),
            Err(Clash { with: Origin::Here })
        );
        assert_eq!(s.read("targets", 1).unwrap(), b"one");
        assert_eq!(
            s.matching("targets", &FileMeta::of(b"one")).unwrap(),
            Some(1)
        );
        assert_eq!(s.matching("targets", &FileMeta::of(b"two")).unwrap(), None);
        assert_eq!(s.add("targets", 2, b"two", Origin::Source).unwrap(), Ok(()));
        assert_eq!(s.counts(), (2, 1));
        assert_eq!(s.from_source().listing().len(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        drop(s);
        assert!(!dir.exists(), "removed when dropped");
    }

    #[test]
    fn a_killed_import_leaves_nothing_for_long() {
        // In a folder of its own: another test's spill in the shared temporary folder would
        // remove the stale folder while it is being made.
        let tmp = tempfile::tempdir().unwrap();
        // The folder of an import whose process is gone (no such PID) …
        let stale = tmp.path().join(format!("{PREFIX}4294967295-0"));
        std::fs::create_dir_all(stale.join("x")).unwrap();
        let live = Spill::new_in(tmp.path()).unwrap();
        assert!(!stale.exists(), "removed by the next import");
        assert!(live.dir.exists(), "this process's own folder stays");
    }
}
