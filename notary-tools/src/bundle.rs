//! Bundles: repositories with their whole history in one tar file, for sites that move trust
//! data by file (`notary-server export --to FILE.tar`, `notary-server import --from-bundle`).
//!
//! 1. A bundle holds `v2/<gun>/_trust/tuf/<version>.<role>.json` for every stored file, byte
//!    for byte, then [`MANIFEST`]: its source, when it was made, and each file's SHA-256 and
//!    length (`tests/bundles.rs::a_bundle_round_trip_keeps_every_byte`).
//! 2. Each repository's history passes `verify_history` before any of it is written, and the
//!    file appears under its name only when complete (written as `FILE.tar.partial`, then
//!    renamed): a bundle on disk is whole and was verified (same test).
//! 3. Reading one trusts nothing in it: only regular-file entries under the names of
//!    invariant 1 (GUN and role checked as the server checks them) and the manifest, each
//!    file within `--max-file-bytes`, the manifest within [`MAX_MANIFEST_BYTES`], at most
//!    [`MAX_ENTRIES`] entries; a file whose bytes, or a listing that, differs from the
//!    manifest is refused; the importer then verifies the history as from any source
//!    (`tests/bundles.rs::an_edited_bundle_is_refused`).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use notary_server::gun::Gun;
use notary_server::role::Role;
use notary_server::storage::SqlStore;
use notary_tuf::history::{verify_history, HistoryError, HistoryFiles};
use notary_tuf::metadata as md;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::import::spill::{Origin, Spill};

/// The manifest's name in a bundle (its last entry).
pub const MANIFEST: &str = "bundle.json";
/// The manifest's `format`.
pub const FORMAT: &str = "notary-rs-bundle/1";
/// Largest manifest read (about 100 bytes per file: a million files).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;
/// Most entries read from a bundle.
pub const MAX_ENTRIES: u64 = 10_000_000;

/// Why a bundle could not be written or read.
// Each variant reads as its `#[error]` message; its fields are what the message names.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database: {0}")]
    Store(#[from] notary_server::storage::StoreError),
    #[error("{gun}: the stored history does not verify, nothing written: {source}")]
    Unverified { gun: String, source: HistoryError },
    #[error("{gun}: {role} version {version} changed while it was exported; run again")]
    Changed {
        gun: String,
        role: String,
        version: i64,
    },
    #[error("the bundle {0}: refusing it")]
    Refused(String),
}

/// The manifest (invariant 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// What the bundle was exported from.
    pub source: String,
    /// When (RFC 3339).
    pub created: String,
    /// GUN → its files.
    pub repositories: BTreeMap<String, Vec<BundledFile>>,
}

/// One file of a bundle, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledFile {
    /// Its role.
    pub role: String,
    /// Its version.
    pub version: i64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its length.
    pub len: u64,
}

fn entry_name(gun: &str, role: &str, version: i64) -> String {
    format!("v2/{gun}/_trust/tuf/{version}.{role}.json")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`write`] put in a bundle.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    /// Repositories.
    pub repositories: usize,
    /// Files.
    pub files: usize,
    /// Bytes of the files.
    pub bytes: u64,
}

/// Write `guns` from `store`, with their whole history, as a bundle at `to` (invariants 1, 2).
pub async fn write(
    store: &SqlStore,
    guns: &[Gun],
    source: &str,
    to: &Path,
) -> Result<Written, BundleError> {
    let now = chrono::Utc::now();
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    let file = std::fs::File::create(&partial).map_err(io(&partial))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut manifest = Manifest {
        format: FORMAT.into(),
        source: source.into(),
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        repositories: BTreeMap::new(),
    };
    let mut done = Written::default();
    let result: Result<(), BundleError> = async {
        for gun in guns {
            let files = store.published_files(gun).await?;
            let mut spill = Spill::new().map_err(io(Path::new("the spill folder")))?;
            for f in &files {
                let stored = store
                    .by_version(gun, &Role::stored(&f.role), f.version)
                    .await?
                    .filter(|s| s.sha256 == f.sha256)
                    .ok_or_else(|| BundleError::Changed {
                        gun: gun.to_string(),
                        role: f.role.clone(),
                        version: f.version,
                    })?;
                let _ = spill
                    .add(&f.role, f.version, &stored.data, Origin::Here)
                    .map_err(io(Path::new("the spill folder")))?;
            }
            verify_history(gun, &spill, now).map_err(|source| BundleError::Unverified {
                gun: gun.to_string(),
                source,
            })?;
            let mut listed = Vec::with_capacity(files.len());
            for f in &files {
                let data =
                    spill
                        .load(&f.role, f.version)
                        .map_err(|source| BundleError::Unverified {
                            gun: gun.to_string(),
                            source,
                        })?;
                append(&mut tar, &entry_name(gun, &f.role, f.version), &data, now)
                    .map_err(io(&partial))?;
                done.files += 1;
                done.bytes += data.len() as u64;
                listed.push(BundledFile {
                    role: f.role.clone(),
                    version: f.version,
                    sha256: f.sha256.clone(),
                    len: data.len() as u64,
                });
            }
            manifest.repositories.insert(gun.to_string(), listed);
            done.repositories += 1;
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        append(&mut tar, MANIFEST, &json, now).map_err(io(&partial))?;
        let file = tar
            .into_inner()
            .map_err(io(&partial))?
            .into_inner()
            .map_err(|e| io(&partial)(e.into_error()))?;
        file.sync_all().map_err(io(&partial))?;
        std::fs::rename(&partial, to).map_err(io(to))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map(|()| done)
}

fn append<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(at.timestamp().max(0) as u64);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
}

/// Where a file of a bundle is.
#[derive(Debug, Clone)]
pub struct Located {
    /// Its role.
    pub role: String,
    /// Its version.
    pub version: i64,
    offset: u64,
    len: u64,
    sha256: String,
}

impl Located {
    /// Its length in bytes, as the bundle's index gives it.
    pub fn bytes(&self) -> u64 {
        self.len
    }
}

/// A bundle opened for reading: its manifest, and where each file is (invariant 3).
pub struct Bundle {
    path: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    index: BTreeMap<String, Vec<Located>>,
}

/// A bundle entry's name parsed: (GUN, role, version), if it is one of invariant 1's.
fn parse_name(name: &str) -> Option<(String, String, i64)> {
    let rest = name.strip_prefix("v2/")?;
    let (gun, file) = rest.split_once("/_trust/tuf/")?;
    let (version, role) = file.strip_suffix(".json")?.split_once('.')?;
    let version: i64 = version.parse().ok().filter(|v| *v >= 0)?;
    let ok = Gun::new(gun).is_ok()
        && !gun.split('/').any(|s| s == "_trust")
        && md::is_valid_role(role)
        && !role
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    ok.then(|| (gun.to_string(), role.to_string(), version))
}

impl Bundle {
    /// Index the bundle at `path` (invariant 3); files are read later, one at a time.
    pub fn open(path: &Path, max_file_bytes: u64) -> Result<Bundle, BundleError> {
        let refuse = |why: String| BundleError::Refused(format!("{}: {why}", path.display()));
        let file = std::fs::File::open(path).map_err(io(path))?;
        let mut archive = tar::Archive::new(file);
        let mut index: BTreeMap<String, Vec<Located>> = BTreeMap::new();
        let mut manifest: Option<Manifest> = None;
        let mut count = 0u64;
        for entry in archive.entries_with_seek().map_err(io(path))? {
            let mut entry = entry.map_err(io(path))?;
            count += 1;
            if count > MAX_ENTRIES {
                return Err(refuse(format!("more than {MAX_ENTRIES} entries")));
            }
            let name = entry
                .path()
                .map_err(io(path))?
                .to_string_lossy()
                .into_owned();
            let shown = notary_common::untrusted::escape(&name);
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(refuse(format!("{shown} is not a regular file")));
            }
            let len = entry.size();
            if name == MANIFEST {
                if len > MAX_MANIFEST_BYTES || manifest.is_some() {
                    return Err(refuse("its manifest is too large, or given twice".into()));
                }
                let mut raw = Vec::with_capacity(len as usize);
                entry
                    .by_ref()
                    .take(MAX_MANIFEST_BYTES)
                    .read_to_end(&mut raw)
                    .map_err(io(path))?;
                let m: Manifest = serde_json::from_slice(&raw)
                    .map_err(|e| refuse(format!("its manifest is not readable: {e}")))?;
                if m.format != FORMAT {
                    return Err(refuse(format!(
                        "format {:?}, not {FORMAT}",
                        notary_common::untrusted::escape(&m.format)
                    )));
                }
                manifest = Some(m);
                continue;
            }
            let Some((gun, role, version)) = parse_name(&name) else {
                return Err(refuse(format!("{shown} is not a repository's file")));
            };
            if len > max_file_bytes {
                return Err(refuse(format!(
                    "{shown}: {len} bytes, over --max-file-bytes ({max_file_bytes})"
                )));
            }
            index.entry(gun).or_default().push(Located {
                role,
                version,
                offset: entry.raw_file_position(),
                len,
                sha256: String::new(),
            });
        }
        let manifest = manifest.ok_or_else(|| refuse(format!("no {MANIFEST}")))?;
        // The listing and the manifest name the same files; each file takes the checksum the
        // manifest gives it.
        let listed: usize = manifest.repositories.values().map(Vec::len).sum();
        let held: usize = index.values().map(Vec::len).sum();
        if listed != held || manifest.repositories.len() != index.len() {
            return Err(refuse(format!(
                "its manifest lists {listed} files of {} repositories, the bundle holds {held} of {}",
                manifest.repositories.len(),
                index.len()
            )));
        }
        for (gun, files) in &mut index {
            let Some(m) = manifest.repositories.get(gun) else {
                return Err(refuse(format!("{gun} is not in its manifest")));
            };
            let by: BTreeMap<(&str, i64), &BundledFile> = m
                .iter()
                .map(|f| ((f.role.as_str(), f.version), f))
                .collect();
            for f in files.iter_mut() {
                let Some(b) = by
                    .get(&(f.role.as_str(), f.version))
                    .filter(|b| b.len == f.len)
                else {
                    return Err(refuse(format!(
                        "{gun}: {} version {} differs from its manifest",
                        f.role, f.version
                    )));
                };
                f.sha256 = b.sha256.clone();
            }
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            manifest,
            index,
        })
    }

    /// A label for reports: the file, and the source and time its manifest names.
    pub fn label(&self) -> String {
        format!(
            "bundle:{} (from {}, made {})",
            self.path.display(),
            notary_common::untrusted::escape(&self.manifest.source),
            notary_common::untrusted::escape(&self.manifest.created)
        )
    }

    /// The GUNs the bundle holds.
    pub fn guns(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }

    /// The files of `gun` (empty: not in the bundle).
    pub fn files(&self, gun: &str) -> &[Located] {
        self.index.get(gun).map_or(&[], Vec::as_slice)
    }

    /// The bytes of one file, checked against the manifest (invariant 3).
    pub fn read(&self, f: &Located) -> Result<Vec<u8>, BundleError> {
        let mut file = std::fs::File::open(&self.path).map_err(io(&self.path))?;
        file.seek(SeekFrom::Start(f.offset))
            .map_err(io(&self.path))?;
        let mut data = Vec::with_capacity(f.len as usize);
        file.take(f.len)
            .read_to_end(&mut data)
            .map_err(io(&self.path))?;
        if data.len() as u64 != f.len || hex::encode(Sha256::digest(&data)) != f.sha256 {
            return Err(BundleError::Refused(format!(
                "{}: {} version {} differs from its manifest (edited?)",
                self.path.display(),
                f.role,
                f.version
            )));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_a_repository_are_refused() {
        assert_eq!(
            parse_name("v2/a/b/_trust/tuf/3.targets/releases.json"),
            Some(("a/b".into(), "targets/releases".into(), 3))
        );
        for bad in [
            "v2/a/../b/_trust/tuf/1.root.json",
            "v2/a/_trust/tuf/x/_trust/tuf/1.root.json",
            "v2/a/_trust/tuf/1.targets/../../x.json",
            "v2/a/_trust/tuf/root.json",
            "v2/a/_trust/tuf/-1.root.json",
            "etc/passwd",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
