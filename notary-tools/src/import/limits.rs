//! What reading one source may cost, and why reading it failed: the bounds of `source`'s
//! invariant 1 ([`SourceLimits`], the import's `--max-*` flags), the running [`Budget`] of a
//! repository and a run, and [`SourceError`]; shared by the readers of each kind of source
//! (`source`, `trust_dirs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use notary_common::untrusted::{read_regular_file, ReadError};
use notary_tuf::metadata::SignedFile;

use super::spill::{Clash, Origin as From, Spill};
use crate::client::{ClientError, NotaryClient};

/// Why a source's files could not be read.
// Each variant reads as its `#[error]` message; its fields are what the message names.
#[allow(missing_docs)]
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
    #[error("{file}: more than the {max} bytes left under {flag}; nothing of the repository was stored (raise {flag} if the source is trusted to be this large)")]
    Limit {
        file: String,
        flag: &'static str,
        max: u64,
    },
    #[error(
        "{role}: more than {max} versions (--max-versions); nothing of the repository was stored"
    )]
    TooManyVersions { role: String, max: u64 },
    #[error("the source answered {asked} with a file that says it is version {found}: refusing the repository")]
    WrongVersion { asked: String, found: i64 },
    #[error("the source's changefeed does not advance past change {0}: refusing to list it")]
    ChangefeedStuck(String),
    #[error("the source's changefeed names more than {0} repositories (--max-repositories)")]
    TooManyRepositories(usize),
    #[error("{role} version {version} here differs from the source's")]
    DiffersHere { role: String, version: i64 },
    #[error("keeping the fetched files on disk: {0}")]
    Spill(std::io::Error),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
}

/// Hold a file read from the source in `spill` (a second, different file for one version is
/// refused: the source's own, or against this server's).
pub(super) fn keep(
    spill: &mut Spill,
    role: &str,
    version: i64,
    bytes: &[u8],
) -> Result<(), SourceError> {
    match spill
        .add(role, version, bytes, From::Source)
        .map_err(SourceError::Spill)?
    {
        Ok(()) => Ok(()),
        Err(Clash { with: From::Here }) => Err(SourceError::DiffersHere {
            role: role.to_string(),
            version,
        }),
        Err(Clash { with: From::Source }) => Err(SourceError::Inconsistent {
            role: role.to_string(),
            version,
        }),
    }
}

/// What an import reads from one source at most (the `--max-*` flags of `notary-server import`).
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    /// One metadata file (`--max-file-bytes`).
    pub max_file_bytes: u64,
    /// Every file of one repository together (`--max-repository-bytes`).
    pub max_repository_bytes: u64,
    /// Everything the run reads (`--max-run-bytes`).
    pub max_run_bytes: u64,
    /// Versions of one role walked back (`--max-versions`).
    pub max_versions: u64,
    /// Repositories a changefeed or trust directory may list (`--max-repositories`).
    pub max_repositories: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            max_file_bytes: crate::client::MAX_FILE as u64,
            max_repository_bytes: 1 << 30,
            max_run_bytes: 64 << 30,
            max_versions: 100_000,
            max_repositories: 10_000_000,
        }
    }
}

/// The bytes one repository may still read: the least of what is left of the file, repository
/// and run bounds, and which flag that is.
pub(super) struct Budget<'a> {
    limits: SourceLimits,
    repository: u64,
    run: &'a AtomicU64,
}

impl<'a> Budget<'a> {
    /// A repository's budget within `limits`, charging the run's count `run` too.
    pub(super) fn new(limits: SourceLimits, run: &'a AtomicU64) -> Budget<'a> {
        Budget {
            limits,
            repository: 0,
            run,
        }
    }

    pub(super) fn next(&self) -> (u64, &'static str) {
        let run_left = self
            .limits
            .max_run_bytes
            .saturating_sub(self.run.load(Ordering::Relaxed));
        let repo_left = self
            .limits
            .max_repository_bytes
            .saturating_sub(self.repository);
        [
            (self.limits.max_file_bytes, "--max-file-bytes"),
            (repo_left, "--max-repository-bytes"),
            (run_left, "--max-run-bytes"),
        ]
        .into_iter()
        .min_by_key(|(n, _)| *n)
        .unwrap_or((0, "--max-file-bytes"))
    }

    pub(super) fn charge(&mut self, n: usize) {
        self.repository += n as u64;
        self.run.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `GET` a file of the source within the budget.
    pub(super) async fn get(
        &mut self,
        c: &NotaryClient,
        path: &str,
        scope: &str,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let (max, flag) = self.next();
        match c.get_limited(path, scope, max).await {
            Ok(b) => {
                self.charge(b.as_ref().map_or(0, Vec::len));
                Ok(b)
            }
            Err(ClientError::TooLarge { .. }) => Err(SourceError::Limit {
                file: path.to_string(),
                flag,
                max,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Read a trust directory's file within the budget.
    pub(super) fn read(&mut self, path: &Path) -> Result<Vec<u8>, SourceError> {
        let (max, flag) = self.next();
        match read_regular_file(path, max) {
            Ok(b) => {
                self.charge(b.len());
                Ok(b)
            }
            Err(ReadError::TooLarge { .. }) => Err(SourceError::Limit {
                file: path.display().to_string(),
                flag,
                max,
            }),
            Err(e) => Err(SourceError::Io {
                path: path.to_path_buf(),
                msg: e.to_string(),
            }),
        }
    }
}

pub(super) fn version_of(role: &str, bytes: &[u8]) -> Result<i64, SourceError> {
    SignedFile::parse(bytes)
        .map(|f| f.common.version)
        .map_err(|e| SourceError::Malformed {
            role: role.to_string(),
            msg: e.to_string(),
        })
}
