//! Reading clients' trust directories (`~/.docker/trust`, `~/.notary`) as a source: a walk
//! that never leaves the directory (`source`, invariant 4).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use notary_tuf::metadata as md;

use super::limits::{keep, version_of, Budget, SourceError};
use super::spill::Spill;

/// A walk below a trust directory that follows symbolic links only to places inside it, and
/// visits each folder once (a link loop ends).
pub(super) struct TreeWalk {
    root: PathBuf,
    visited: HashSet<PathBuf>,
}

/// What a path of the walk is.
enum Entry {
    Dir(PathBuf),
    File(PathBuf),
    Skip,
}

impl TreeWalk {
    pub(super) fn new(root: &Path) -> Result<TreeWalk, SourceError> {
        let root = std::fs::canonicalize(root).map_err(|e| SourceError::Io {
            path: root.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(TreeWalk {
            root,
            visited: HashSet::new(),
        })
    }

    /// Resolve `path`: its real place if inside the tree, `Skip` for anything else (a link out
    /// of the tree or into a loop, a FIFO, a device, a folder already visited).
    fn resolve(&mut self, path: &Path) -> Entry {
        let Ok(real) = std::fs::canonicalize(path) else {
            tracing::warn!(path = %path.display(), "not read: a broken or looping symbolic link");
            return Entry::Skip;
        };
        if !real.starts_with(&self.root) {
            tracing::warn!(path = %path.display(), "not read: a symbolic link out of the trust directory");
            return Entry::Skip;
        }
        match std::fs::metadata(&real) {
            Ok(m) if m.is_dir() => {
                if self.visited.insert(real.clone()) {
                    Entry::Dir(real)
                } else {
                    Entry::Skip
                }
            }
            Ok(m) if m.is_file() => Entry::File(real),
            _ => Entry::Skip,
        }
    }
}

/// Every `<role>.json` below a trust directory's `metadata` folder (delegations in sub-folders).
pub(super) fn read_trust_dir(
    trust_dir: &Path,
    dir: &Path,
    spill: &mut Spill,
    budget: &mut Budget<'_>,
) -> Result<(), SourceError> {
    fn walk(
        tree: &mut TreeWalk,
        base: &Path,
        dir: &Path,
        spill: &mut Spill,
        budget: &mut Budget<'_>,
    ) -> Result<(), SourceError> {
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
            let Some(role) = path
                .strip_prefix(base)
                .ok()
                .and_then(|p| p.to_str())
                .map(String::from)
            else {
                continue;
            };
            match tree.resolve(&path) {
                // Roles are named by their path: a folder reached through a link is not read.
                Entry::Dir(real) if real == path => walk(tree, base, &real, spill, budget)?,
                Entry::Dir(_) => {
                    tracing::warn!(path = %path.display(), "not read: a folder reached through a symbolic link");
                }
                Entry::File(real) => {
                    let Some(role) = role.strip_suffix(".json") else {
                        continue;
                    };
                    if !md::is_valid_role(role) {
                        continue;
                    }
                    let bytes = budget.read(&real)?;
                    keep(spill, role, version_of(role, &bytes)?, &bytes)?;
                }
                Entry::Skip => {}
            }
        }
        Ok(())
    }
    let mut tree = TreeWalk::new(trust_dir)?;
    let Entry::Dir(real) = tree.resolve(dir) else {
        return Ok(());
    };
    walk(&mut tree, &real, &real, spill, budget)
}

/// GUNs under a trust directory's `tuf/` folder: the paths of folders holding `metadata/`.
pub(super) fn find_guns(
    tree: &mut TreeWalk,
    tuf: &Path,
    dir: &Path,
    out: &mut BTreeSet<String>,
    max: usize,
) -> Result<(), SourceError> {
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
        // Only real folders: a GUN's path is where it is, never reached through a link.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Entry::Dir(_) = tree.resolve(&path) else {
            continue;
        };
        if path.file_name().is_some_and(|n| n == "metadata") && path.join("root.json").exists() {
            if let Some(gun) = dir.strip_prefix(tuf).ok().and_then(|p| p.to_str()) {
                out.insert(gun.to_string());
                if out.len() > max {
                    return Err(SourceError::TooManyRepositories(max));
                }
            }
        } else {
            find_guns(tree, tuf, &path, out, max)?;
        }
    }
    Ok(())
}
