//! The repository service: publish, reads, key endpoints, delete and changefeed, independent of
//! HTTP. Validation is `notary_tuf::validation`; signing goes through `CryptoService`.
//!
//! One home per operation: `publish`, `read` (current and consistent reads), `resign`
//! (re-signing and what cannot be re-signed), `keys` (server keys and their bindings), `admin`
//! (import, listings, prune, retention, audit); this file holds the service, its options and
//! what several of them use.

mod admin;
mod changefeed;
mod error;
mod keys;
mod publish;
mod read;
mod resign;

use crate::audit::{roles_of, Action, Actor, Record};
use crate::gun::Gun;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use notary_common::sync::lock;
use notary_signer::{sign_role, CryptoService, SignRoleError};
use notary_tuf::metadata::{self as md, envelope, SignedFile};
use notary_tuf::validation::{
    self, roles_needed, timestamp_body, StoredRepo, ToSign, Update, ValidationError,
};
use notary_tuf::PublicKey;

use crate::cache::{CachedChain, Expected, MetaCache};
use crate::coherence::{Coherence, LeaseConfig, WriteFuture};
use crate::metrics::RotationCounts;
use crate::storage::{Change, Imported, KeyBinding, SqlStore, StoreError, StoredFile};
pub use changefeed::PAGE_BYTES;
pub use error::ServiceError;

/// The repository operations: publish, reads, re-signing, keys, deletion, import, listings,
/// retention (one file each under `service/`).
pub struct RepoService {
    /// The metadata store.
    pub store: Arc<SqlStore>,
    /// The read cache.
    pub cache: Arc<MetaCache>,
    coherence: Coherence,
    /// The signing service.
    pub crypto: Arc<dyn CryptoService>,
    /// Algorithm of server-created timestamp/snapshot keys.
    pub key_algorithm: String,
    /// Reads only (e.g. on a streaming replica): nothing is written or signed.
    pub read_only: bool,
    /// A mirror (see [`ServiceOptions::mirror`]).
    pub mirror: bool,
    /// What this instance cannot re-sign (`resign`).
    unsignable: resign::Unsignable,
    /// Last check of the imported repositories.
    rotation: std::sync::Mutex<Option<RotationCounts>>,
    /// Key bindings read so far (key ID → GUN, role): they never change.
    bindings: std::sync::Mutex<lru::LruCache<String, KeyBinding>>,
    /// Every server key that stored roots list is bound (see [`RepoService::spawn_key_binding`]);
    /// until then a root naming a held key that no record ties to a repository waits (503).
    bindings_complete: std::sync::atomic::AtomicBool,
    /// Changefeed pages built so far (`changefeed`).
    pages: changefeed::Pages,
}

/// Whether this server holds the keys an imported repository's current root gives the roles
/// the server signs (see `notary-server imported`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    /// The repository.
    pub gun: Gun,
    /// Where it was imported from.
    pub source: String,
    /// When (RFC 3339).
    pub(crate) imported_at: String,
    /// Its current timestamp's version, if any.
    pub timestamp_version: Option<i64>,
    /// When that timestamp expires.
    pub timestamp_expires: Option<DateTime<Utc>>,
    /// This server holds a key the root gives the timestamp role.
    pub holds_timestamp_key: bool,
    /// This server holds a key the root gives the snapshot role.
    pub holds_snapshot_key: bool,
}

impl KeyStatus {
    /// Publishing needs a key rotation first: this server cannot sign the timestamp.
    pub fn awaits_rotation(&self) -> bool {
        !self.holds_timestamp_key
    }
}

/// A repository as `notary-server repos` / `show` report it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoStatus {
    /// The repository.
    pub gun: Gun,
    /// Per role (root, targets, snapshot, timestamp, delegations): newest version, versions
    /// stored, their bytes.
    pub roles: BTreeMap<String, RoleStatus>,
    /// When its current timestamp expires.
    pub timestamp_expires: Option<DateTime<Utc>>,
    /// Files stored over every role and version, and their bytes.
    pub files: i64,
    /// (See `files`.)
    pub bytes: i64,
    /// This server holds a key the root gives the timestamp role.
    pub holds_timestamp_key: bool,
    /// This server holds a key the root gives the snapshot role.
    pub holds_snapshot_key: bool,
}

/// One role of a repository, over its stored versions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleStatus {
    /// Its newest version.
    pub newest: i64,
    /// How many versions are stored.
    pub versions: i64,
    /// Their bytes together.
    pub bytes: i64,
}

/// What `prune` removed (or would remove) of one repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pruned {
    /// The repository.
    pub gun: Gun,
    /// Versions removed (or that would be).
    pub removed: u64,
    /// Versions kept.
    pub kept: u64,
    /// Role → versions removed.
    pub by_role: BTreeMap<String, u64>,
}

/// Most changefeed rows one request returns.
pub(crate) const MAX_CHANGEFEED_RECORDS: i64 = 1000;

/// A changefeed page, serialised with Go's field order.
#[derive(serde::Serialize)]
pub(crate) struct ChangeList {
    /// Rows in this page.
    pub count: usize,
    /// The rows, oldest first.
    pub records: Vec<Change>,
}

/// How a [`RepoService`] runs.
pub struct ServiceOptions {
    /// Algorithm of server-created timestamp/snapshot keys.
    pub key_algorithm: String,
    /// A changefeed check runs at least this often (`coherence`).
    pub check_period: std::time::Duration,
    /// Reads only (e.g. on a streaming replica): nothing is written or signed.
    pub read_only: bool,
    /// A mirror of another service (`notary-server mirror`): clients' writes are refused and
    /// nothing is signed here; only [`RepoService::import`] and
    /// [`RepoService::delete_mirrored`] write.
    pub mirror: bool,
    /// The read lease (Postgres, writable).
    pub lease: Option<LeaseConfig>,
}

impl RepoService {
    /// The service, following the changefeed for its cache.
    pub fn new(
        store: Arc<SqlStore>,
        cache: Arc<MetaCache>,
        crypto: Arc<dyn CryptoService>,
        opts: ServiceOptions,
    ) -> Self {
        let ServiceOptions {
            key_algorithm,
            check_period,
            read_only,
            mirror,
            lease,
        } = opts;
        let coherence =
            Coherence::start(store.clone(), cache.clone(), check_period, read_only, lease);
        RepoService {
            store,
            cache,
            coherence,
            crypto,
            key_algorithm,
            read_only,
            mirror,
            unsignable: Default::default(),
            rotation: Default::default(),
            bindings: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(100_000).expect("non-zero"),
            )),
            bindings_complete: std::sync::atomic::AtomicBool::new(false),
            pages: changefeed::Pages::new(),
        }
    }

    /// Whether clients (and operators) may write: not on a read-only instance or a mirror.
    fn writable(&self) -> Result<(), ServiceError> {
        if self.read_only || self.mirror {
            return Err(ServiceError::ReadOnly);
        }
        Ok(())
    }

    /// Whether this instance signs (re-signs expiring timestamps, creates keys).
    fn signs(&self) -> bool {
        !self.read_only && !self.mirror
    }

    /// A cache miss is about to load from the database: refused while it is behind.
    fn loadable(&self) -> Result<(), ServiceError> {
        if self.coherence.is_behind() {
            return Err(ServiceError::NotYet(
                "this instance's changefeed checks are behind",
            ));
        }
        Ok(())
    }

    /// Delete every file of the GUN (the API's `DELETE`, or an operator's `notary-server
    /// delete`); true if there was any.
    pub async fn delete(&self, gun: &Gun, actor: &Actor) -> Result<bool, ServiceError> {
        self.writable()?;
        self.delete_unchecked(gun, actor).await
    }

    /// A mirror follows its source's deletion of `gun` (see [`ServiceOptions::mirror`]).
    pub async fn delete_mirrored(&self, gun: &Gun, actor: &Actor) -> Result<bool, ServiceError> {
        if self.read_only {
            return Err(ServiceError::ReadOnly);
        }
        self.delete_unchecked(gun, actor).await
    }

    async fn delete_unchecked(&self, gun: &Gun, actor: &Actor) -> Result<bool, ServiceError> {
        let store = &self.store;
        let record = Record {
            action: Action::Delete,
            gun,
            roles: String::new(),
            actor,
        };
        let audit = &record;
        let deleted = self
            .coherence
            .write(gun, |acked: Option<Vec<String>>| -> WriteFuture<'_, bool> {
                Box::pin(async move { store.delete(gun, acked.as_deref(), Some(audit)).await })
            })
            .await;
        self.cache.forget(gun);
        let deleted = deleted?;
        if deleted {
            record.log();
            tracing::info!(gun = %gun, "deleted repository");
        }
        Ok(deleted)
    }

    /// How current reads were made fresh (for the metrics).
    pub(crate) fn coherence_counts(&self) -> crate::coherence::CoherenceCounts {
        self.coherence.counts()
    }

    /// Give up this instance's read lease (at shutdown).
    pub async fn leave(&self) {
        self.coherence.leave().await;
    }
}

#[cfg(test)]
mod tests;
