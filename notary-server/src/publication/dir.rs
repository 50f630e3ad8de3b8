//! A tree in a local directory, for nginx or any web server to serve (`docs/static-publication.md`
//! has a tested nginx config).
//!
//! 1. A file appears whole or not at all: written to a hidden temporary file in its folder,
//!    then renamed over the old one (`tests::a_put_is_whole_and_world_readable`).
//! 2. Metadata is public: files are 0644 and folders 0755 whatever the umask, so that the web
//!    server's user can read them (the same test).
//! 3. Listing never follows a symbolic link and sees only regular files; temporary files are
//!    not listed (a sync removes them only by writing over their final name).

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Held, Kind, PublicationError, Target};

/// A tree rooted at a directory.
pub struct Directory {
    root: PathBuf,
}

impl Directory {
    /// The tree at `root` (made on [`Target::prepare`] if missing).
    pub fn new(root: impl Into<PathBuf>) -> Directory {
        Directory { root: root.into() }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublicationError + '_ {
    move |source| PublicationError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Make `dir` and its missing parents, 0755 (invariant 2).
fn make_dirs(dir: &Path) -> Result<(), PublicationError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io(dir))
}

/// Write `data` at `path` whole (invariant 1), 0644 (invariant 2).
fn write_whole(path: &Path, data: &[u8]) -> Result<(), PublicationError> {
    use rand_core::RngCore;
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    make_dirs(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand_core::OsRng.next_u64()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(data).map_err(io(&tmp))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Every regular file under `dir`, by path relative to `base` (invariant 3).
fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Held>) -> Result<(), PublicationError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        // `file_type` does not follow a symbolic link.
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            walk(base, &path, out)?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
            let Ok(rel) = path.strip_prefix(base) else {
                continue;
            };
            let Some(rel) = rel.to_str() else { continue };
            let len = entry.metadata().map_err(io(&path))?.len();
            out.insert(rel.to_string(), Held { len, etag: None });
        }
    }
    Ok(())
}

#[async_trait]
impl Target for Directory {
    fn name(&self) -> String {
        format!("directory {}", self.root.display())
    }

    async fn prepare(&self) -> Result<(), PublicationError> {
        let ping = self.root.join("v2").join("index.html");
        tokio::task::spawn_blocking(move || {
            if ping.is_file() {
                Ok(())
            } else {
                write_whole(&ping, b"")
            }
        })
        .await
        .map_err(|e| PublicationError::Config(format!("preparing the directory: {e}")))?
    }

    async fn list(&self, dir: &str) -> Result<BTreeMap<String, Held>, PublicationError> {
        let base = self.root.join(dir);
        tokio::task::spawn_blocking(move || {
            let mut out = BTreeMap::new();
            walk(&base, &base, &mut out)?;
            Ok(out)
        })
        .await
        .map_err(|e| PublicationError::Config(format!("listing the directory: {e}")))?
    }

    async fn holds(&self, path: &str, held: &Held, data: &[u8]) -> Result<bool, PublicationError> {
        let path = self.root.join(path);
        if held.len != data.len() as u64 {
            return Ok(false);
        }
        let limit = data.len() as u64 + 1;
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = Vec::new();
            match std::fs::File::open(&path) {
                Ok(f) => f
                    .take(limit)
                    .read_to_end(&mut buf)
                    .map(|_| Some(buf))
                    .map_err(io(&path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(&path)(e)),
            }
        })
        .await
        .map_err(|e| PublicationError::Config(format!("reading the directory: {e}")))??;
        Ok(read.as_deref() == Some(data))
    }

    async fn put(&self, path: &str, data: Bytes, _kind: Kind) -> Result<(), PublicationError> {
        let path = self.root.join(path);
        tokio::task::spawn_blocking(move || write_whole(&path, &data))
            .await
            .map_err(|e| PublicationError::Config(format!("writing the directory: {e}")))?
    }

    async fn delete(&self, path: &str) -> Result<(), PublicationError> {
        let path = self.root.join(path);
        let stop = self.root.join("v2");
        tokio::task::spawn_blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            // Folders left empty go too (a deleted repository leaves nothing), up to `v2/`.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == stop || !d.starts_with(&stop) || std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(|e| PublicationError::Config(format!("writing the directory: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_put_is_whole_and_world_readable() {
        let tmp = tempfile::tempdir().unwrap();
        let d = Directory::new(tmp.path().join("tree"));
        d.prepare().await.unwrap();
        d.put(
            "v2/a/b/_trust/tuf/root.json",
            Bytes::from_static(b"{}"),
            Kind::Current,
        )
        .await
        .unwrap();
        let file = tmp.path().join("tree/v2/a/b/_trust/tuf/root.json");
        assert_eq!(std::fs::read(&file).unwrap(), b"{}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o644);
        assert_eq!(mode(file.parent().unwrap()), 0o755);
        let listed = d.list("v2/a/b/_trust/tuf/").await.unwrap();
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            ["root.json"],
            "no temporary file"
        );
        assert!(d
            .holds("v2/a/b/_trust/tuf/root.json", &listed["root.json"], b"{}")
            .await
            .unwrap());
        assert!(!d
            .holds("v2/a/b/_trust/tuf/root.json", &listed["root.json"], b"[]")
            .await
            .unwrap());
        d.delete("v2/a/b/_trust/tuf/root.json").await.unwrap();
        assert!(
            !tmp.path().join("tree/v2/a").exists(),
            "empty folders removed"
        );
        assert!(
            tmp.path().join("tree/v2/index.html").exists(),
            "the ping stays"
        );
    }
}
