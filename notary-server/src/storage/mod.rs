//! Metadata storage: the `tuf_files` and `changefeed` tables of the Go server, on SQLite (the
//! embedded default) or Postgres. One implementation, [`SqlStore`], serves both through
//! `with_pool!`; its operations are split by concern:
//! `files` (the metadata files: loads, publishes, deletions, listings, pruned rows),
//! `changefeed` (following and paging it), `audit` (the audit trail), `imports` (imported
//! histories), `keys` (which repository a server-held key serves); locks and the health check
//! are here.
//!
//! 1. Every database call is bounded on the client side, once, where it runs: each operation
//!    runs inside [`SqlStore::timed`], so a network that silently drops packets (a partition,
//!    no reset) makes it `Unavailable` within the limit instead of holding a request until TCP
//!    gives up, minutes later; the server-side `statement_timeout` cannot help when the
//!    statement never arrives (`database_faults.rs`, `patroni.rs`).

use async_trait::async_trait;
use chrono::{NaiveDateTime, Utc};
use notary_common::db::{migrate, Db, Migration};
use notary_common::with_pool;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use std::time::Duration;
use tokio::sync::Mutex;

use crate::gun::Gun;

/// The metadata schema: Go's tables, and this server's own (`notary_rs_*`).
pub const MIGRATIONS: &[Migration] = &[
    notary_common::migration!(1, "", "0001_tuf_files_changefeed.sql"),
    notary_common::migration!(2, "", "0002_go_migrate_marker.sql"),
    notary_common::migration!(3, "", "0003_instances_write_guard.sql"),
    notary_common::migration!(4, "", "0004_imports.sql"),
    notary_common::migration!(5, "", "0005_server_keys.sql"),
    notary_common::migration!(6, "", "0006_audit.sql"),
    notary_common::migration!(7, "", "0007_changefeed_gun_id.sql"),
    notary_common::migration!(8, "", "0008_publication.sql"),
];

/// Connections open at once for cache misses' loads (`direct`), besides the pool.
pub(crate) const READERS: usize = 8;

/// Connections open at once for changefeed checks (`direct`), besides the pool.
const FOLLOWERS: usize = 4;

/// Idle connections kept for changefeed checks: as many as checks may overlap
/// (`coherence::MAX_CHECKS_IN_FLIGHT`, checked at compile time there).
pub(crate) const IDLE_FOLLOWERS: usize = 1;

/// Key of the transaction-level advisory lock that orders changefeed writes on Postgres: taken
/// before a changefeed row gets its ID and held until its transaction has committed, so IDs are
/// assigned in commit order and a reader paging by ID never skips a row committed later.
const CHANGEFEED_LOCK: i64 = 0x6e6f_7461_7279;

/// The `sha256` of the changefeed row a prune writes (see `remove_files`; the SQL there and in
/// `changes` spells it too).
const PRUNE_MARK: &str = "prune";

/// See `SqlStore::latest_chain`.
#[derive(Debug, Default)]
pub struct LatestChain {
    /// The newest timestamp.
    pub timestamp: Option<StoredFile>,
    /// The newest snapshot.
    pub snapshot: Option<StoredFile>,
    /// The newest file of the role asked for besides.
    pub also: Option<StoredFile>,
}

/// A stored metadata file: its exact bytes and when it was stored.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// The exact stored bytes (shared, not copied, when served from the cache).
    pub data: bytes::Bytes,
    /// `updated_at` for "current" reads, `created_at` for reads by checksum or version.
    pub modified: NaiveDateTime,
    /// Lower-case hex SHA-256 of `data`.
    pub sha256: String,
    /// A large file's gzip copy, made when first asked for and shared by every clone
    /// (`compression`).
    gzip: Arc<std::sync::OnceLock<Option<bytes::Bytes>>>,
}

impl StoredFile {
    /// A file of these bytes (its checksum computed here), stored at `modified`.
    pub fn from_bytes(data: impl Into<bytes::Bytes>, modified: Option<NaiveDateTime>) -> Self {
        let data: bytes::Bytes = data.into();
        let sha256 = crate::offload::in_place(data.len(), || hex::encode(Sha256::digest(&data)));
        StoredFile {
            data,
            modified: modified.unwrap_or_default(),
            sha256,
            gzip: Default::default(),
        }
    }

    /// Whether this file gets a gzip copy (`compression`).
    pub(crate) fn compressible(&self) -> bool {
        crate::compression::eligible(self.data.len())
    }

    /// Make the gzip copy now if it is not made yet, off the request threads for a large file
    /// (`offload`); [`StoredFile::gzip`] then finds it.
    pub(crate) async fn gzip_ready(&self) {
        if !self.compressible() || self.gzip.get().is_some() {
            return;
        }
        let (data, copy) = (self.data.clone(), self.gzip.clone());
        crate::offload::run(data.len(), move || {
            copy.get_or_init(|| crate::compression::gzip_copy(&data));
        })
        .await;
    }

    /// The gzip copy, made now if it was not yet (`None`: too small, or incompressible).
    pub fn gzip(&self) -> Option<&bytes::Bytes> {
        self.gzip
            .get_or_init(|| {
                crate::offload::in_place(self.data.len(), || {
                    crate::compression::gzip_copy(&self.data)
                })
            })
            .as_ref()
    }

    /// Bytes this file may hold: its own, and for a compressible one, its copy at its upper
    /// bound (the file's size).
    pub(crate) fn held_bytes(&self) -> usize {
        self.data.len() * if self.compressible() { 2 } else { 1 }
    }
}

/// A changefeed row as the API serves it (Go's field names).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// The row's ID (Go serialises it as a string).
    #[serde(rename = "ID")]
    pub id: String,
    /// When it was written (RFC 3339).
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    /// The repository.
    #[serde(rename = "GUN")]
    pub gun: String,
    /// The timestamp version an update stored (0 for a deletion).
    #[serde(rename = "Version")]
    pub version: i64,
    /// The timestamp's SHA-256 (hex; empty for a deletion).
    #[serde(rename = "SHA256")]
    pub sha256: String,
    /// `update` or `deletion`.
    #[serde(rename = "Category")]
    pub category: String,
}

/// What a changefeed row tells a cache: which GUN changed, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRef {
    /// The row's ID.
    pub id: i64,
    /// The repository.
    pub gun: Gun,
    /// Whether the repository was deleted (or pruned: its cached files must go).
    pub deletion: bool,
    /// SHA-256 (hex) of the timestamp an update row records.
    pub sha256: Option<String>,
}

/// What a storage operation can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A stored version of one of the roles is already ≥ the new one (Go `ErrOldVersion`).
    #[error("a newer version of metadata is already available")]
    OldVersion,
    /// The database cannot be reached right now (connection lost or refused, pool exhausted,
    /// server shutting down): worth retrying, answered 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused a write because it is read-only (SQLSTATE 25006: a standby, or a
    /// primary being demoted or still recovering): nothing was written; answered 503.
    #[error("the database is read-only (a standby, or a primary during a fail-over): {0}")]
    ReadOnly(String),
    /// Any other database error, with its message.
    #[error("storage error: {0}")]
    Db(String),
    /// Nothing was written: an instance holding a lease had not acknowledged the write's
    /// announcement (it registered meanwhile). The writer announces again and retries.
    #[error("an instance has not acknowledged the write announcement")]
    Unacknowledged,
    /// An import met a stored file of the same role and version with other bytes.
    #[error("{0}")]
    Conflict(String),
}

/// What [`SqlStore::import`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    /// Files stored (the others were here already, byte for byte).
    pub stored: usize,
    /// Files removed first (`replace` over a different history).
    pub replaced: usize,
}

/// One role of a repository, summed over its stored versions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleSummary {
    /// The repository.
    pub gun: Gun,
    /// The role.
    pub role: String,
    /// Its newest version.
    pub newest: i64,
    /// How many versions are stored.
    pub versions: i64,
    /// Their bytes together.
    pub bytes: i64,
}

/// The repository and role a server-held key serves (`notary_rs_server_keys`; the signer's own
/// record for keys made before bindings existed, which may name no repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyBinding {
    /// The repository (empty: unknown).
    pub gun: String,
    /// The role (empty: unknown).
    pub role: String,
}

/// An imported repository, as recorded in `notary_rs_imports`.
#[derive(Debug, Clone)]
pub struct ImportRecord {
    /// The repository.
    pub gun: Gun,
    /// Where it was imported from (a URL or trust directory, without credentials).
    pub source: String,
    /// When.
    pub(crate) imported_at: NaiveDateTime,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::OldVersion,
            // 25006: the database is read-only — a standby, or a primary being demoted or still
            // recovering (during a fail-over). Unavailable, and writers leave its connections.
            sqlx::Error::Database(d) if d.code().as_deref() == Some("25006") => {
                notary_common::db::note_read_only();
                StoreError::ReadOnly(e.to_string())
            }
            e if notary_common::db::is_unavailable(e) => {
                notary_common::db::note_unreachable();
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Db(e.to_string()),
        }
    }
}

/// Insert one audit record with `$exec` (a pool or a transaction, either backend).
macro_rules! insert_record {
    ($exec:expr, $at:expr, $a:expr) => {{
        let a: &Record<'_> = $a;
        sqlx::query(
            "INSERT INTO notary_rs_audit (at, action, gun, roles, subject, client, request_id, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($at)
        .bind(a.action.as_str())
        .bind(a.gun)
        .bind(a.roles.as_str())
        .bind(a.actor.subject.as_deref())
        .bind(a.actor.client.as_deref())
        .bind(a.actor.request_id.as_deref())
        .bind(a.actor.reason.as_deref())
        .execute($exec)
        .await
        .map(|_| ())
    }};
}

mod audit;
mod changefeed;
mod direct;
mod files;
mod imports;
mod keys;
mod publication;
pub(crate) use publication::PublishedFile;

/// The changefeed as a cache follows it (`coherence`): all the read path needs of the store.
#[async_trait]
pub trait Changefeed: Send + Sync {
    /// Highest changefeed ID (0 when empty).
    async fn last_change_id(&self) -> Result<i64, StoreError>;
    /// At most `limit` changefeed rows after `id`, oldest first (one index range scan).
    async fn changes_after(&self, id: i64, limit: i64) -> Result<Vec<ChangeRef>, StoreError>;
}

/// One file of an import, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// The role.
    pub role: String,
    /// The version.
    pub version: i64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

/// The files of an import ([`SqlStore::import`]): listed up front, each read only when it is
/// stored, so that a repository's history need not fit in memory (`import::spill`).
pub trait ImportFiles: Send + Sync {
    /// Every file, without its bytes.
    fn listing(&self) -> Vec<ListedFile>;
    /// One listed file's bytes.
    fn read(&self, role: &str, version: i64) -> Result<Vec<u8>, StoreError>;
}

/// See [`SqlStore::try_lock`]: dropping it ends the transaction, which releases the lock.
pub struct HeldLock(#[allow(dead_code)] Option<sqlx::Transaction<'static, sqlx::Postgres>>);

/// Advisory lock class of [`SqlStore::try_lock`] (the second key is `hashtext(name)`).
const NAMED_LOCK_CLASS: i32 = 0x6e6f_7461;

/// The metadata store over Postgres or SQLite (see the module).
pub struct SqlStore {
    db: Db,
    /// SQLite allows one writer: serialise this process's write transactions instead of
    /// letting deferred transactions fail to upgrade their locks.
    write_lock: Mutex<()>,
    /// Postgres: connections of its own (`direct`) for the changefeed checks of the read
    /// barrier, which puts one check's latency on every current read (both of a check's
    /// queries, `changes_after` and `last_change_id`, use them).
    followers: direct::Direct,
    /// Postgres: connections of its own (`direct`) for the loads of a cache miss.
    readers: direct::Direct,
    /// A read-only instance (Postgres): the highest changefeed ID its checks have seen. A load
    /// reads the changefeed position in the same statement and is refused (503) below it: a
    /// pooled connection may lead to another replica, staler than the one the check used (a
    /// balancer spreading connections over replicas), and must not serve older metadata than
    /// was served (`coherence`, invariant 7).
    seen: Option<std::sync::atomic::AtomicI64>,
    /// How long one operation may wait for the database (invariant 1).
    limit: Duration,
}

impl SqlStore {
    /// The store on `db`, its schema migrated.
    pub async fn new(db: Db) -> Result<Self, StoreError> {
        migrate(&db, "server", MIGRATIONS)
            .await
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(SqlStore::with_db(db))
    }

    fn with_db(db: Db) -> Self {
        SqlStore::with_db_and(db, &notary_common::db::PoolConfig::default())
    }

    fn with_db_and(db: Db, pool: &notary_common::db::PoolConfig) -> Self {
        let statement_timeout = pool.statement_timeout;
        SqlStore {
            db,
            write_lock: Mutex::new(()),
            followers: direct::Direct::new(FOLLOWERS, IDLE_FOLLOWERS, statement_timeout),
            readers: direct::Direct::new(READERS, READERS, statement_timeout),
            seen: None,
            limit: pool.call_limit(),
        }
    }

    /// Bound every operation by `PoolConfig::call_limit` of `pool` (invariant 1), and give the
    /// store's own connections its `statement_timeout` (the default pool's until then).
    pub fn with_pool_config(self, pool: &notary_common::db::PoolConfig) -> Self {
        SqlStore {
            seen: self.seen,
            ..SqlStore::with_db_and(self.db, pool)
        }
    }

    /// Run one operation on the database within the call limit (invariant 1): no answer in
    /// time is `Unavailable` naming `what`.
    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.limit, what, f).await
    }

    /// On a database this instance must not write (a read replica): check the schema is there
    /// instead of migrating.
    pub async fn read_only(db: Db) -> Result<Self, StoreError> {
        with_pool!(&db, p => sqlx::query("SELECT id, gun, category FROM changefeed LIMIT 1").fetch_optional(p).await.map(|_| ())).map_err(
            |e| {
                StoreError::Db(format!("the read-only database has no notary schema (run a read-write instance on its primary first): {e}"))
            },
        )?;
        Ok(SqlStore {
            seen: Some(std::sync::atomic::AtomicI64::new(0)),
            ..SqlStore::with_db(db)
        })
    }

    /// Note a changefeed position a check saw (see `seen`).
    fn saw(&self, id: i64) {
        if let Some(s) = &self.seen {
            s.fetch_max(id, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Now, as the tables store it (UTC, no zone).
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// `f`, a database call, bounded by `limit` on the client side (invariant 1): no answer
/// in time is `Unavailable`.
pub async fn within<T, E: Into<StoreError>>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(StoreError::Unavailable(format!(
            "{what}: no answer from the database within {limit:?}"
        ))),
    }
}

impl SqlStore {
    /// Whether the database answers.
    pub async fn health(&self) -> Result<(), StoreError> {
        self.timed("health", async {
            with_pool!(&self.db, p => sqlx::query("SELECT 1 FROM tuf_files LIMIT 1").fetch_optional(p).await.map(|_| ()))?;
            Ok(())
        })
        .await
    }

    /// An exclusive lock on `name` among every instance on this database, held until dropped;
    /// `None` when another instance holds it (Postgres: a transaction-level advisory lock).
    pub async fn try_lock(&self, name: &str) -> Result<Option<HeldLock>, StoreError> {
        self.timed("try_lock", async {
            match &self.db {
                // One SQLite file has one server: nothing to share.
                Db::Sqlite(_) => Ok(Some(HeldLock(None))),
                Db::Postgres(p) => {
                    let mut tx = p.begin().await?;
                    let (got,): (bool,) =
                        sqlx::query_as("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
                            .bind(NAMED_LOCK_CLASS)
                            .bind(name)
                            .fetch_one(&mut *tx)
                            .await?;
                    Ok(got.then_some(HeldLock(Some(tx))))
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests;
