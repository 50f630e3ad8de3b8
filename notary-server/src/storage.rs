//! Metadata storage: the `tuf_files` and `changefeed` tables of the Go server, on SQLite (the
//! embedded default) or Postgres. One implementation serves both through `with_pool!`.

use async_trait::async_trait;
use chrono::{NaiveDateTime, Utc};
use notary_common::db::{migrate, Db, Migration};
use notary_common::sync::lock;
use notary_common::with_pool;
use notary_tuf::validation::Update;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::audit::{Entry, Record};
use crate::retention::FileRow;
use tokio::sync::Mutex;

pub const MIGRATIONS: &[Migration] = &[
    notary_common::migration!(1, "", "0001_tuf_files_changefeed.sql"),
    notary_common::migration!(2, "", "0002_go_migrate_marker.sql"),
    notary_common::migration!(3, "", "0003_instances_write_guard.sql"),
    notary_common::migration!(4, "", "0004_imports.sql"),
    notary_common::migration!(5, "", "0005_server_keys.sql"),
    notary_common::migration!(6, "", "0006_audit.sql"),
    notary_common::migration!(7, "", "0007_changefeed_gun_id.sql"),
];

/// Idle connections kept for changefeed checks: as many as checks may overlap
/// (`coherence::MAX_CHECKS_IN_FLIGHT`, checked at compile time there).
pub const IDLE_FOLLOWERS: usize = 1;

/// Key of the transaction-level advisory lock that orders changefeed writes on Postgres: taken
/// before a changefeed row gets its ID and held until its transaction has committed, so IDs are
/// assigned in commit order and a reader paging by ID never skips a row committed later.
const CHANGEFEED_LOCK: i64 = 0x6e6f_7461_7279;

/// The `sha256` of the changefeed row a prune writes (see `remove_files`; the SQL there and in
/// `changes` spells it too).
const PRUNE_MARK: &str = "prune";

/// A publish on Postgres, as one statement (its own transaction): every file, all or none, and
/// the changefeed row of the new timestamp. `$3..$6`: roles, versions, contents, checksums.
/// Nothing is stored if any role already has a version as new (`NOT EXISTS`, on the statement's
/// snapshot; a concurrent publish of the same version fails on the unique index instead). Being
/// one statement, the changefeed lock is held only while Postgres finishes it and commits,
/// never across a round trip to this process: with the lock held through a client round trip
/// (a `BEGIN … COMMIT` from here) concurrent publishes queued behind it for milliseconds each,
/// waiting for busy server threads to send the `COMMIT` (measured: 22 ms of a 36 ms publish at 16
/// connections). One round trip in all, where a transaction took six. `$8`: the instances that
/// acknowledged the write's announcement (`coherence`, invariant 2); nothing is stored, and the first
/// column is false, if an instance holding a lease is not among them (NULL: unguarded).
const PG_UPDATE_MANY: &str = "\
WITH g AS MATERIALIZED (SELECT CASE WHEN $8::text[] IS NULL THEN true ELSE notary_rs_write_guard($8::text[]) END AS ok), \
new AS (SELECT u.* FROM unnest($3::text[], $4::int4[], $5::bytea[], $6::text[]) AS u (role, version, data, sha256), g WHERE g.ok), \
ins AS (INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) \
    SELECT $1, $1, $2, role, version, data, sha256 FROM new \
    WHERE NOT EXISTS (SELECT 1 FROM new n JOIN tuf_files f ON f.gun = $2 AND f.role = n.role AND f.version >= n.version) \
    RETURNING role, version, sha256), \
feed AS (INSERT INTO changefeed (created_at, gun, version, sha256, category) \
    SELECT $1, $2, ins.version, ins.sha256, 'update' FROM ins, (SELECT pg_advisory_xact_lock($7)) l WHERE ins.role = 'timestamp'), \
audit AS (INSERT INTO notary_rs_audit (at, action, gun, roles, subject, client, request_id, reason) \
    SELECT $1, $9, $2, $10, $11, $12, $13, $14 WHERE $9::text IS NOT NULL AND EXISTS (SELECT 1 FROM ins)) \
SELECT (SELECT ok FROM g), count(*) FROM ins";

/// A deletion on Postgres, as one statement (see `PG_UPDATE_MANY`): every file of the GUN and,
/// if there was any, a changefeed row. Returns how many files were deleted. `$4`: as `$8` of
/// `PG_UPDATE_MANY`.
const PG_DELETE: &str = "\
WITH g AS MATERIALIZED (SELECT CASE WHEN $4::text[] IS NULL THEN true ELSE notary_rs_write_guard($4::text[]) END AS ok), \
d AS (DELETE FROM tuf_files WHERE gun = $2 AND (SELECT ok FROM g) RETURNING 1), \
feed AS (INSERT INTO changefeed (created_at, gun, version, sha256, category) \
    SELECT $1, $2, 0, '', 'deletion' FROM (SELECT pg_advisory_xact_lock($3)) l WHERE EXISTS (SELECT 1 FROM d)), \
audit AS (INSERT INTO notary_rs_audit (at, action, gun, roles, subject, client, request_id, reason) \
    SELECT $1, $5, $2, '', $6, $7, $8, $9 WHERE $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM d)) \
SELECT (SELECT ok FROM g), count(*) FROM d";

/// See `MetaStore::latest_chain`.
#[derive(Debug, Default)]
pub struct LatestChain {
    pub timestamp: Option<StoredFile>,
    pub snapshot: Option<StoredFile>,
    pub also: Option<StoredFile>,
}

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
    pub fn from_bytes(data: Vec<u8>, modified: Option<NaiveDateTime>) -> Self {
        let sha256 = hex::encode(Sha256::digest(&data));
        StoredFile {
            data: data.into(),
            modified: modified.unwrap_or_default(),
            sha256,
            gzip: Default::default(),
        }
    }

    /// Whether this file gets a gzip copy (`compression`).
    pub fn compressible(&self) -> bool {
        crate::compression::eligible(self.data.len())
    }

    /// The gzip copy, made now if it was not yet (`None`: too small, or incompressible).
    pub fn gzip(&self) -> Option<&bytes::Bytes> {
        self.gzip
            .get_or_init(|| crate::compression::gzip_copy(&self.data))
            .as_ref()
    }

    /// Bytes this file may hold: its own, and for a compressible one, its copy at its upper
    /// bound (the file's size).
    pub fn held_bytes(&self) -> usize {
        self.data.len() * if self.compressible() { 2 } else { 1 }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "GUN")]
    pub gun: String,
    #[serde(rename = "Version")]
    pub version: i64,
    #[serde(rename = "SHA256")]
    pub sha256: String,
    #[serde(rename = "Category")]
    pub category: String,
}

/// What a changefeed row tells a cache: which GUN changed, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRef {
    pub id: i64,
    pub gun: String,
    pub deletion: bool,
    /// SHA-256 (hex) of the timestamp an update row records.
    pub sha256: Option<String>,
}

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

/// What [`MetaStore::import`] did.
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
    pub gun: String,
    pub role: String,
    pub newest: i64,
    pub versions: i64,
    pub bytes: i64,
}

/// An imported repository, as recorded in `notary_rs_imports`.
#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub gun: String,
    pub source: String,
    pub imported_at: NaiveDateTime,
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

/// The changefeed as a cache follows it (`coherence`): all the read path needs of the store.
#[async_trait]
pub trait Changefeed: Send + Sync {
    /// Highest changefeed ID (0 when empty).
    async fn last_change_id(&self) -> Result<i64, StoreError>;
    /// At most `limit` changefeed rows after `id`, oldest first (one index range scan).
    async fn changes_after(&self, id: i64, limit: i64) -> Result<Vec<ChangeRef>, StoreError>;
}

#[async_trait]
pub trait MetaStore: Changefeed {
    /// Highest version of a role.
    async fn latest(&self, gun: &str, role: &str) -> Result<Option<StoredFile>, StoreError>;
    /// The newest timestamp (as `latest`), and the newest snapshot and newest `also` (dated as
    /// `by_checksum` dates them), read together: what loading a repository's chain (and the
    /// file asked for) needs when, as usual, the timestamp names the newest snapshot and that
    /// the newest files — one round trip instead of two or three on a database-bound load
    /// (docs/performance.md, "Many repositories"). A store that cannot read them at once gives
    /// the timestamp only; the caller loads what the timestamp and snapshot name by checksum.
    async fn latest_chain(&self, gun: &str, also: Option<&str>) -> Result<LatestChain, StoreError> {
        let _ = also;
        Ok(LatestChain {
            timestamp: self.latest(gun, notary_tuf::metadata::TIMESTAMP).await?,
            ..LatestChain::default()
        })
    }
    async fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256_hex: &str,
    ) -> Result<Option<StoredFile>, StoreError>;
    async fn by_version(
        &self,
        gun: &str,
        role: &str,
        version: i64,
    ) -> Result<Option<StoredFile>, StoreError>;
    /// Store all updates or none, created and updated `at`; each must be newer than every
    /// stored version of its role. `acked` (Postgres): the instances that acknowledged the
    /// write's announcement; `Unacknowledged` if one holding a lease is missing (`coherence`, invariant 2).
    /// `audit`: the record stored with the write, in the same statement (`audit`, invariant 2).
    async fn update_many(
        &self,
        gun: &str,
        updates: &[Update],
        at: NaiveDateTime,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<(), StoreError>;
    /// Remove every file of the GUN; true if anything was removed. `acked`, `audit`: as for
    /// `update_many` (the record is stored only if something was removed).
    async fn delete(
        &self,
        gun: &str,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<bool, StoreError>;
    /// Store an audit record of a write made elsewhere (a key in the signer, an import).
    async fn record(&self, at: NaiveDateTime, audit: &Record<'_>) -> Result<(), StoreError>;
    /// Audit records, oldest first: of one GUN or all, since a time, at most `limit`.
    async fn audit_entries(
        &self,
        gun: Option<&str>,
        since: Option<NaiveDateTime>,
        limit: i64,
    ) -> Result<Vec<Entry>, StoreError>;
    /// Every repository with stored files: per role, the newest version, how many versions and
    /// their bytes.
    async fn repositories(&self, gun: Option<&str>) -> Result<Vec<RoleSummary>, StoreError>;
    /// Every GUN with stored files.
    async fn guns(&self) -> Result<Vec<String>, StoreError>;
    /// Every stored file of a GUN without its bytes (`retention`); a file the Go server stored
    /// without a time counts as stored at the epoch.
    async fn file_rows(&self, gun: &str) -> Result<Vec<FileRow>, StoreError>;
    /// Remove these files of the GUN and store `audit`, in one transaction; how many went.
    async fn remove_files(
        &self,
        gun: &str,
        ids: &[i64],
        audit: &Record<'_>,
        acked: Option<&[String]>,
    ) -> Result<u64, StoreError>;
    /// Remove audit records older than `before`; how many went.
    async fn prune_audit(&self, before: NaiveDateTime) -> Result<u64, StoreError>;
    async fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StoreError>;
    async fn health(&self) -> Result<(), StoreError>;
    /// An exclusive lock on `name` among every instance on this database, held until dropped;
    /// `None` when another instance holds it (Postgres: a transaction-level advisory lock).
    async fn try_lock(&self, name: &str) -> Result<Option<HeldLock>, StoreError>;
    /// Store an imported history in one transaction: every file of `files` not stored yet, and
    /// one changefeed row per stored timestamp, in version order; `Conflict` (nothing stored) if
    /// a stored file of the same role and version differs, unless `replace`, which first removes
    /// every file of the GUN. Records the import (`source`). `acked`: as for `update_many`.
    async fn import(
        &self,
        gun: &str,
        files: &dyn ImportFiles,
        source: &str,
        replace: bool,
        acked: Option<&[String]>,
    ) -> Result<Imported, StoreError>;
    /// Every import recorded, by GUN.
    async fn imports(&self) -> Result<Vec<ImportRecord>, StoreError>;
    /// Bind a server-managed key to the GUN and role it serves (the first binding stays).
    async fn bind_key(&self, key_id: &str, gun: &str, role: &str) -> Result<(), StoreError>;
    /// The (GUN, role) a server-managed key is bound to.
    async fn key_binding(&self, key_id: &str) -> Result<Option<(String, String)>, StoreError>;
    /// One step of binding the timestamp and snapshot keys that stored roots list to their GUN
    /// and role (keys created before bindings existed, by an older build or the Go server):
    /// the next `batch` roots after the recorded position, in one transaction. `true` once every
    /// root is done (recorded as the migration `server-keys-backfill` 1). Resumable, and safe
    /// to run on several instances at once (the first binding stays).
    async fn bind_stored_keys(&self, batch: i64) -> Result<bool, StoreError>;
}

/// The files of an import ([`MetaStore::import`]): listed up front, each read only when it is
/// stored, so that a repository's history need not fit in memory (`import::spill`).
pub trait ImportFiles: Send + Sync {
    /// (role, version, lower-case hex SHA-256) of every file.
    fn listing(&self) -> Vec<(String, i64, String)>;
    /// One listed file's bytes.
    fn read(&self, role: &str, version: i64) -> Result<Vec<u8>, StoreError>;
}

/// See [`MetaStore::try_lock`]: dropping it ends the transaction, which releases the lock.
pub struct HeldLock(#[allow(dead_code)] Option<sqlx::Transaction<'static, sqlx::Postgres>>);

/// Advisory lock class of [`MetaStore::try_lock`] (the second key is `hashtext(name)`).
const NAMED_LOCK_CLASS: i32 = 0x6e6f_7461;

pub struct SqlStore {
    db: Db,
    /// SQLite allows one writer: serialise this process's write transactions instead of
    /// letting deferred transactions fail to upgrade their locks.
    write_lock: Mutex<()>,
    /// Postgres: a connection of its own for the changefeed checks of the read barrier, outside
    /// the pool. A pooled query costs two more round trips (sqlx pings a connection when it
    /// leaves the pool and again when it comes back); the barrier puts one check's latency on
    /// every current read, so it gets one round trip (both of its queries, `changes_after` and
    /// `last_change_id`, use it). Taken out while in use: a check cancelled half-way (deadline)
    /// drops the connection instead of leaving an unread answer in it.
    followers: std::sync::Mutex<Vec<sqlx::PgConnection>>,
    /// A read-only instance (Postgres): the highest changefeed ID its checks have seen. A load
    /// reads the changefeed position in the same statement and is refused (503) below it: a
    /// pooled connection may lead to another replica, staler than the one the check used (a
    /// balancer spreading connections over replicas), and must not serve older metadata than
    /// was served (`coherence`, invariant 7).
    seen: Option<std::sync::atomic::AtomicI64>,
}

/// `sql` (a load selecting `data` and a time) with the changefeed position of the same
/// snapshot first; one row whatever the load finds.
fn positioned(sql: &str) -> String {
    format!(
        "SELECT CAST((SELECT COALESCE(MAX(id), 0) FROM changefeed) AS BIGINT), t.data, t.at \
         FROM (SELECT 1) one LEFT JOIN LATERAL ({sql}) t(data, at) ON true"
    )
}

/// Run a load (`$sql` selecting `data` and a time, with `$bind`s): on a read-only Postgres
/// store, positioned and checked against `seen` (see there).
macro_rules! load {
    ($self:expr, $sql:expr $(, $bind:expr)*) => {{
        match (&$self.db, &$self.seen) {
            (Db::Postgres(p), Some(seen)) => {
                let sql = positioned($sql);
                let (position, data, at): (i64, Option<Vec<u8>>, Option<NaiveDateTime>) =
                    sqlx::query_as(&sql)$(.bind($bind))*.fetch_one(p).await?;
                let floor = seen.load(std::sync::atomic::Ordering::SeqCst);
                if position < floor {
                    return Err(StoreError::Unavailable(format!(
                        "this replica is behind what was already served (changefeed {position} < {floor})"
                    )));
                }
                data.map(|d| (d, at))
            }
            _ => with_pool!(&$self.db, p => sqlx::query_as::<_, (Vec<u8>, Option<NaiveDateTime>)>($sql)
                $(.bind($bind))*.fetch_optional(p).await)?,
        }
    }};
}

impl SqlStore {
    pub async fn new(db: Db) -> Result<Self, StoreError> {
        migrate(&db, "server", MIGRATIONS)
            .await
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(SqlStore::with_db(db))
    }

    fn with_db(db: Db) -> Self {
        SqlStore {
            db,
            write_lock: Mutex::new(()),
            followers: std::sync::Mutex::new(Vec::new()),
            seen: None,
        }
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

    /// A connection for a changefeed check (see `followers`): an idle one, or a new one.
    async fn follower(&self, pool: &sqlx::PgPool) -> Result<sqlx::PgConnection, StoreError> {
        use sqlx::Connection;
        let idle = lock(&self.followers).pop();
        if let Some(mut c) = idle {
            // A writer's checks must see its own commits: after a fail-over (a "read-only"
            // answer) a connection opened before may still lead to the old, now read-only node.
            if self.seen.is_some() || !notary_common::db::read_only_recently() {
                return Ok(c);
            }
            if let Ok(false) = notary_common::db::session_read_only(&mut c).await {
                return Ok(c);
            }
        }
        let mut c = sqlx::PgConnection::connect_with(&pool.connect_options()).await?;
        // Postgres re-plans `id > $1 … LIMIT $2` at every bind (its custom plans look cheaper
        // than the generic one, an index scan either way): a fifth of a millisecond of planning
        // for a check that runs in a fiftieth. Postgres before 12 has no such setting; it then
        // plans as before.
        let _ = sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut c)
            .await;
        Ok(c)
    }

    /// Give back a follower connection that answered (one that failed, or whose check was
    /// cancelled, is dropped instead: the next check reconnects).
    fn follower_done(&self, conn: sqlx::PgConnection) {
        let mut idle = lock(&self.followers);
        if idle.len() < IDLE_FOLLOWERS {
            idle.push(conn);
        }
    }
}

/// Now, as the tables store it (UTC, no zone).
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

#[async_trait]
impl Changefeed for SqlStore {
    async fn last_change_id(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT MAX(id) FROM changefeed";
        let row: (Option<i32>,) = match &self.db {
            Db::Sqlite(p) => sqlx::query_as(SQL).fetch_one(p).await?,
            Db::Postgres(p) => {
                let mut conn = self.follower(p).await?;
                let row = sqlx::query_as(SQL).fetch_one(&mut conn).await?;
                self.follower_done(conn);
                row
            }
        };
        let id = row.0.unwrap_or(0) as i64;
        self.saw(id);
        Ok(id)
    }

    async fn changes_after(&self, id: i64, limit: i64) -> Result<Vec<ChangeRef>, StoreError> {
        const SQL: &str =
            "SELECT id, gun, category, sha256 FROM changefeed WHERE id > $1 ORDER BY id LIMIT $2";
        let rows: Vec<(i32, String, String, Option<String>)> = match &self.db {
            Db::Sqlite(p) => {
                sqlx::query_as(SQL)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(p)
                    .await?
            }
            Db::Postgres(p) => {
                let mut conn = self.follower(p).await?;
                let rows = sqlx::query_as(SQL)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(&mut conn)
                    .await?;
                self.follower_done(conn);
                rows
            }
        };
        if let Some(last) = rows.last() {
            self.saw(last.0 as i64);
        }
        Ok(rows
            .into_iter()
            .map(|(id, gun, category, sha256)| ChangeRef {
                id: id as i64,
                gun,
                // A deletion, or a prune's row (Go's CHAR(64) column pads it): forget every
                // cached file of the GUN.
                deletion: category == "deletion"
                    || sha256.as_deref().map(str::trim_end) == Some(PRUNE_MARK),
                sha256,
            })
            .collect())
    }
}

#[async_trait]
impl MetaStore for SqlStore {
    async fn latest(&self, gun: &str, role: &str) -> Result<Option<StoredFile>, StoreError> {
        let row = load!(self,
            "SELECT data, updated_at FROM tuf_files WHERE gun = $1 AND role = $2 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1",
            gun, role);
        Ok(row.map(|(data, t)| StoredFile::from_bytes(data, t)))
    }

    async fn latest_chain(&self, gun: &str, also: Option<&str>) -> Result<LatestChain, StoreError> {
        if self.seen.is_some() {
            // A read-only instance positions each load (`load!`): one file at a time.
            return Ok(LatestChain {
                timestamp: self.latest(gun, notary_tuf::metadata::TIMESTAMP).await?,
                ..LatestChain::default()
            });
        }
        // One branch per role (`$2`: the role asked for, or none), each the newest row by the
        // (gun, role, version) index; the third is empty when `$2` is timestamp or snapshot.
        const SQL: &str = "SELECT t.role, t.data, t.updated_at, t.created_at FROM \
            (SELECT role, data, updated_at, created_at FROM tuf_files WHERE gun = $1 AND role = 'timestamp' AND deleted_at IS NULL ORDER BY version DESC LIMIT 1) AS t \
            UNION ALL SELECT s.role, s.data, s.updated_at, s.created_at FROM \
            (SELECT role, data, updated_at, created_at FROM tuf_files WHERE gun = $1 AND role = 'snapshot' AND deleted_at IS NULL ORDER BY version DESC LIMIT 1) AS s \
            UNION ALL SELECT a.role, a.data, a.updated_at, a.created_at FROM \
            (SELECT role, data, updated_at, created_at FROM tuf_files WHERE gun = $1 AND role = $2 AND role NOT IN ('timestamp', 'snapshot') AND deleted_at IS NULL ORDER BY version DESC LIMIT 1) AS a";
        type Row = (
            String,
            Vec<u8>,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
        );
        let also = also.unwrap_or("");
        let rows: Vec<Row> =
            with_pool!(&self.db, p => sqlx::query_as(SQL).bind(gun).bind(also).fetch_all(p).await)?;
        let mut chain = LatestChain::default();
        for (role, data, updated, created) in rows {
            match role.as_str() {
                notary_tuf::metadata::TIMESTAMP => {
                    chain.timestamp = Some(StoredFile::from_bytes(data, updated))
                }
                notary_tuf::metadata::SNAPSHOT => {
                    chain.snapshot = Some(StoredFile::from_bytes(data, created))
                }
                _ => chain.also = Some(StoredFile::from_bytes(data, created)),
            }
        }
        Ok(chain)
    }

    async fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256_hex: &str,
    ) -> Result<Option<StoredFile>, StoreError> {
        let row = load!(self,
            // No `ORDER BY id`: with it, Postgres may walk the primary key from the first row
            // filtering every row of the table (it guessed a match comes early; a repository
            // stored late then costs seconds). The bytes carry their version, which is unique
            // per (gun, role): at most one live row matches.
            "SELECT data, created_at FROM tuf_files WHERE gun = $1 AND role = $2 AND sha256 = $3 AND deleted_at IS NULL LIMIT 1",
            gun, role, sha256_hex);
        Ok(row.map(|(data, t)| StoredFile::from_bytes(data, t)))
    }

    async fn by_version(
        &self,
        gun: &str,
        role: &str,
        version: i64,
    ) -> Result<Option<StoredFile>, StoreError> {
        let Ok(version) = i32::try_from(version) else {
            return Ok(None);
        };
        let row = load!(self,
            // (gun, role, version) is unique: no `ORDER BY id` (see `by_checksum`).
            "SELECT data, created_at FROM tuf_files WHERE gun = $1 AND role = $2 AND version = $3 AND deleted_at IS NULL LIMIT 1",
            gun, role, version);
        Ok(row.map(|(data, t)| StoredFile::from_bytes(data, t)))
    }

    async fn update_many(
        &self,
        gun: &str,
        updates: &[Update],
        t: NaiveDateTime,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<(), StoreError> {
        let actor = audit.map(|a| a.actor);
        let mut roles = Vec::with_capacity(updates.len());
        let mut versions = Vec::with_capacity(updates.len());
        let mut data = Vec::with_capacity(updates.len());
        let mut shas = Vec::with_capacity(updates.len());
        for u in updates {
            roles.push(u.role.as_str());
            versions.push(i32::try_from(u.version).map_err(|_| StoreError::OldVersion)?);
            data.push(u.data.as_slice());
            shas.push(hex::encode(Sha256::digest(&u.data)));
        }
        match &self.db {
            Db::Postgres(p) => {
                let (guard_ok, inserted): (bool, i64) = sqlx::query_as(PG_UPDATE_MANY)
                    .bind(t)
                    .bind(gun)
                    .bind(&roles)
                    .bind(&versions)
                    .bind(&data)
                    .bind(&shas)
                    .bind(CHANGEFEED_LOCK)
                    .bind(acked)
                    .bind(audit.map(|a| a.action.as_str()))
                    .bind(audit.map(|a| a.roles.as_str()))
                    .bind(actor.and_then(|a| a.subject.as_deref()))
                    .bind(actor.and_then(|a| a.client.as_deref()))
                    .bind(actor.and_then(|a| a.request_id.as_deref()))
                    .bind(actor.and_then(|a| a.reason.as_deref()))
                    .fetch_one(p)
                    .await?;
                if !guard_ok {
                    return Err(StoreError::Unacknowledged);
                }
                // All rows or none (one statement): none means a stored version was as new.
                if inserted == 0 && !updates.is_empty() {
                    return Err(StoreError::OldVersion);
                }
                Ok(())
            }
            Db::Sqlite(p) => {
                let _guard = self.write_lock.lock().await;
                let mut tx = p.begin().await?;
                for (i, role) in roles.iter().enumerate() {
                    // Stored only if no version of the role is as new (else ErrOldVersion).
                    let inserted = sqlx::query(
                        "INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) \
                         SELECT $1, $1, $2, $3, $4, $5, $6 \
                         WHERE NOT EXISTS (SELECT 1 FROM tuf_files WHERE gun = $2 AND role = $3 AND version >= $4)",
                    )
                    .bind(t)
                    .bind(gun)
                    .bind(role)
                    .bind(versions[i])
                    .bind(data[i])
                    .bind(&shas[i])
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        return Err(StoreError::OldVersion);
                    }
                    if *role == notary_tuf::metadata::TIMESTAMP {
                        sqlx::query(
                            "INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, $3, $4, 'update')",
                        )
                        .bind(t)
                        .bind(gun)
                        .bind(versions[i])
                        .bind(&shas[i])
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                if let Some(a) = audit {
                    insert_record!(&mut *tx, t, a)?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    async fn delete(
        &self,
        gun: &str,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<bool, StoreError> {
        let t = now();
        let actor = audit.map(|a| a.actor);
        match &self.db {
            Db::Postgres(p) => {
                let (guard_ok, deleted): (bool, i64) = sqlx::query_as(PG_DELETE)
                    .bind(t)
                    .bind(gun)
                    .bind(CHANGEFEED_LOCK)
                    .bind(acked)
                    .bind(audit.map(|a| a.action.as_str()))
                    .bind(actor.and_then(|a| a.subject.as_deref()))
                    .bind(actor.and_then(|a| a.client.as_deref()))
                    .bind(actor.and_then(|a| a.request_id.as_deref()))
                    .bind(actor.and_then(|a| a.reason.as_deref()))
                    .fetch_one(p)
                    .await?;
                if !guard_ok {
                    return Err(StoreError::Unacknowledged);
                }
                Ok(deleted > 0)
            }
            Db::Sqlite(p) => {
                let _guard = self.write_lock.lock().await;
                let mut tx = p.begin().await?;
                let n = sqlx::query("DELETE FROM tuf_files WHERE gun = $1")
                    .bind(gun)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    sqlx::query("INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, 0, '', 'deletion')")
                        .bind(t)
                        .bind(gun)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(a) = audit {
                        insert_record!(&mut *tx, t, a)?;
                    }
                }
                tx.commit().await?;
                Ok(n > 0)
            }
        }
    }

    async fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StoreError> {
        // Go semantics (docs/api.md, changefeed): reversed when change_id < 0 or records < 0; the
        // change_id row itself is always excluded; the result is oldest → newest.
        let reversed = change_id < 0 || records < 0;
        let n = records.unsigned_abs() as i64;
        let mut sql = String::from(
            "SELECT id, created_at, gun, version, sha256, category FROM changefeed WHERE sha256 IS DISTINCT FROM 'prune'",
        );
        let mut next = 1;
        if gun.is_some() {
            sql.push_str(&format!(" AND gun = ${next}"));
            next += 1;
        }
        let use_id = !reversed || change_id > 0;
        if use_id {
            sql.push_str(&format!(
                " AND id {} ${next}",
                if reversed { "<" } else { ">" }
            ));
            next += 1;
        }
        sql.push_str(&format!(
            " ORDER BY id {} LIMIT ${next}",
            if reversed { "DESC" } else { "ASC" }
        ));
        type Row = (
            i32,
            Option<NaiveDateTime>,
            String,
            i32,
            Option<String>,
            String,
        );
        let mut rows: Vec<Row> = with_pool!(&self.db, p => {
            let mut q = sqlx::query_as(&sql);
            if let Some(g) = gun {
                q = q.bind(g);
            }
            if use_id {
                q = q.bind(change_id);
            }
            q.bind(n).fetch_all(p).await
        })?;
        if reversed {
            rows.reverse();
        }
        Ok(rows
            .into_iter()
            .map(|(id, t, gun, version, sha, category)| Change {
                id: id.to_string(),
                created_at: t
                    .map(|t| {
                        t.and_utc()
                            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    })
                    .unwrap_or_default(),
                gun,
                version: version as i64,
                sha256: sha.map(|s| s.trim_end().to_string()).unwrap_or_default(),
                category,
            })
            .collect())
    }

    async fn try_lock(&self, name: &str) -> Result<Option<HeldLock>, StoreError> {
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
    }

    async fn import(
        &self,
        gun: &str,
        files: &dyn ImportFiles,
        source: &str,
        replace: bool,
        acked: Option<&[String]>,
    ) -> Result<Imported, StoreError> {
        let t = now();
        let listing = files.listing();
        let _serial = match &self.db {
            Db::Sqlite(_) => Some(self.write_lock.lock().await),
            Db::Postgres(_) => None,
        };
        with_pool!(&self.db, p => {
            let mut tx = p.begin().await?;
            if let (Db::Postgres(_), Some(acked)) = (&self.db, acked) {
                // (Instance IDs are hex: a comma-joined list binds the same way on both backends.)
                let (ok,): (bool,) = sqlx::query_as("SELECT notary_rs_write_guard(string_to_array($1, ','))")
                    .bind(acked.join(","))
                    .fetch_one(&mut *tx)
                    .await?;
                if !ok {
                    return Err(StoreError::Unacknowledged);
                }
            }
            if let Db::Postgres(_) = &self.db {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGEFEED_LOCK).execute(&mut *tx).await?;
            }
            let stored: Vec<(String, i32, Option<String>)> =
                sqlx::query_as("SELECT role, version, sha256 FROM tuf_files WHERE gun = $1 AND deleted_at IS NULL")
                    .bind(gun).fetch_all(&mut *tx).await?;
            let stored: std::collections::BTreeMap<(String, i64), String> =
                stored.into_iter().map(|(r, v, s)| ((r, v as i64), s.unwrap_or_default().trim_end().to_string())).collect();
            let mut todo: Vec<&(String, i64, String)> = Vec::new();
            let mut conflict = None;
            for f in &listing {
                let (role, version, sha) = f;
                match stored.get(&(role.clone(), *version)) {
                    Some(s) if s == sha => {}
                    Some(_) => {
                        conflict.get_or_insert_with(|| format!("{role} version {version} here differs from the source's"));
                        todo.push(f);
                    }
                    None => todo.push(f),
                }
            }
            let mut done = Imported::default();
            if let Some(c) = conflict {
                if !replace {
                    return Err(StoreError::Conflict(c));
                }
                done.replaced = sqlx::query("DELETE FROM tuf_files WHERE gun = $1").bind(gun).execute(&mut *tx).await?.rows_affected() as usize;
                sqlx::query("INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, 0, '', 'deletion')")
                    .bind(t).bind(gun).execute(&mut *tx).await?;
                todo = listing.iter().collect();
            }
            // Timestamps last and oldest first, so changefeed rows follow version order.
            todo.sort_by_key(|(role, version, _)| (role == notary_tuf::metadata::TIMESTAMP, *version));
            for (role, version, sha) in todo.iter().copied() {
                let version_i32 = i32::try_from(*version).map_err(|_| StoreError::Conflict(format!("{role} version {version} is too large")))?;
                // Read only now: one file in memory at a time.
                let data = files.read(role, *version)?;
                sqlx::query("INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES ($1, $1, $2, $3, $4, $5, $6)")
                    .bind(t).bind(gun).bind(role).bind(version_i32).bind(data.as_slice()).bind(sha).execute(&mut *tx).await?;
                drop(data);
                let version = version_i32;
                if role == notary_tuf::metadata::TIMESTAMP {
                    sqlx::query("INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, $3, $4, 'update')")
                        .bind(t).bind(gun).bind(version).bind(sha).execute(&mut *tx).await?;
                }
            }
            done.stored = todo.len();
            if done.stored > 0 || done.replaced > 0 {
                sqlx::query("DELETE FROM notary_rs_imports WHERE gun = $1").bind(gun).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO notary_rs_imports (gun, source, imported_at, files) VALUES ($1, $2, $3, $4)")
                    .bind(gun).bind(source).bind(t).bind(listing.len() as i32).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    async fn imports(&self) -> Result<Vec<ImportRecord>, StoreError> {
        let rows: Vec<(String, String, NaiveDateTime)> = with_pool!(&self.db, p =>
            sqlx::query_as("SELECT gun, source, imported_at FROM notary_rs_imports ORDER BY gun").fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(gun, source, imported_at)| ImportRecord {
                gun,
                source,
                imported_at,
            })
            .collect())
    }

    async fn bind_key(&self, key_id: &str, gun: &str, role: &str) -> Result<(), StoreError> {
        with_pool!(&self.db, p => sqlx::query("INSERT INTO notary_rs_server_keys (key_id, gun, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(key_id).bind(gun).bind(role).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    async fn key_binding(&self, key_id: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(
            with_pool!(&self.db, p => sqlx::query_as("SELECT gun, role FROM notary_rs_server_keys WHERE key_id = $1")
            .bind(key_id).fetch_optional(p).await)?,
        )
    }

    async fn bind_stored_keys(&self, batch: i64) -> Result<bool, StoreError> {
        const DONE: &str = "server-keys-backfill";
        const AT: &str = "server-keys-backfill-at";
        let marks: Vec<(String, i64)> = with_pool!(&self.db, p => sqlx::query_as(
            "SELECT set_name, MAX(version) FROM notary_rs_migrations WHERE set_name IN ($1, $2) GROUP BY set_name")
            .bind(DONE).bind(AT).fetch_all(p).await)?;
        if marks.iter().any(|(m, _)| m == DONE) {
            return Ok(true);
        }
        let at = marks.iter().find(|(m, _)| m == AT).map_or(0, |(_, v)| *v);
        let rows: Vec<(i32, String, Vec<u8>)> = with_pool!(&self.db, p => sqlx::query_as(
            "SELECT id, gun, data FROM tuf_files WHERE role = 'root' AND id > $1 ORDER BY id LIMIT $2")
            .bind(at as i32).bind(batch).fetch_all(p).await)?;
        let Some((last, _, _)) = rows.last() else {
            with_pool!(&self.db, p => sqlx::query(
                "INSERT INTO notary_rs_migrations (set_name, version) VALUES ($1, 1) ON CONFLICT DO NOTHING")
                .bind(DONE).execute(p).await.map(|_| ()))?;
            return Ok(true);
        };
        let last = i64::from(*last);
        let (mut ids, mut guns, mut roles) = (Vec::new(), Vec::new(), Vec::new());
        for (_, gun, data) in &rows {
            let Ok(root) = serde_json::from_slice::<serde_json::Value>(data) else {
                continue;
            };
            for role in [
                notary_tuf::metadata::TIMESTAMP,
                notary_tuf::metadata::SNAPSHOT,
            ] {
                for id in root["signed"]["roles"][role]["keyids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str())
                {
                    ids.push(id.to_string());
                    guns.push(gun.clone());
                    roles.push(role.to_string());
                }
            }
        }
        // The bindings of the batch and the new position, together: a step is whole or absent.
        // (The table's key is (set_name, version): the position is the largest row.)
        const ADVANCE: &str = "INSERT INTO notary_rs_migrations (set_name, version) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        const FORGET: &str =
            "DELETE FROM notary_rs_migrations WHERE set_name = $1 AND version < $2";
        match &self.db {
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                // In id order, so the first root to list a key keeps it.
                sqlx::query(
                    "INSERT INTO notary_rs_server_keys (key_id, gun, role) \
                     SELECT k, g, r FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(k, g, r, n) \
                     ORDER BY n ON CONFLICT DO NOTHING",
                )
                .bind(&ids)
                .bind(&guns)
                .bind(&roles)
                .execute(&mut *tx)
                .await?;
                for q in [ADVANCE, FORGET] {
                    sqlx::query(q).bind(AT).bind(last).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Db::Sqlite(p) => {
                let _w = self.write_lock.lock().await;
                let mut tx = p.begin().await?;
                for ((k, g), r) in ids.iter().zip(&guns).zip(&roles) {
                    sqlx::query("INSERT INTO notary_rs_server_keys (key_id, gun, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(k).bind(g).bind(r).execute(&mut *tx).await?;
                }
                for q in [ADVANCE, FORGET] {
                    sqlx::query(q).bind(AT).bind(last).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(false)
    }

    async fn record(&self, at: NaiveDateTime, audit: &Record<'_>) -> Result<(), StoreError> {
        match &self.db {
            Db::Postgres(p) => insert_record!(p, at, audit)?,
            Db::Sqlite(p) => insert_record!(p, at, audit)?,
        }
        Ok(())
    }

    async fn audit_entries(
        &self,
        gun: Option<&str>,
        since: Option<NaiveDateTime>,
        limit: i64,
    ) -> Result<Vec<Entry>, StoreError> {
        type Row = (
            i64,
            NaiveDateTime,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let since = since.unwrap_or_default();
        let rows: Vec<Row> = with_pool!(&self.db, p => sqlx::query_as(
            "SELECT id, at, action, gun, roles, subject, client, request_id, reason FROM notary_rs_audit \
             WHERE ($1 IS NULL OR gun = $1) AND at >= $2 ORDER BY id LIMIT $3")
            .bind(gun).bind(since).bind(limit).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, action, gun, roles, subject, client, request_id, reason)| Entry {
                    id,
                    at,
                    action,
                    gun,
                    roles,
                    subject,
                    client,
                    request_id,
                    reason,
                },
            )
            .collect())
    }

    async fn repositories(&self, gun: Option<&str>) -> Result<Vec<RoleSummary>, StoreError> {
        let rows: Vec<(String, String, i64, i64, i64)> = with_pool!(&self.db, p => sqlx::query_as(
            "SELECT gun, role, CAST(MAX(version) AS BIGINT), CAST(COUNT(*) AS BIGINT), \
             CAST(SUM(LENGTH(data)) AS BIGINT) FROM tuf_files \
             WHERE deleted_at IS NULL AND ($1 IS NULL OR gun = $1) GROUP BY gun, role ORDER BY gun, role")
            .bind(gun).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(gun, role, newest, versions, bytes)| RoleSummary {
                gun,
                role,
                newest,
                versions,
                bytes,
            })
            .collect())
    }

    async fn guns(&self) -> Result<Vec<String>, StoreError> {
        Ok(with_pool!(&self.db, p => sqlx::query_scalar(
            "SELECT DISTINCT gun FROM tuf_files WHERE deleted_at IS NULL ORDER BY gun")
            .fetch_all(p).await)?)
    }

    async fn file_rows(&self, gun: &str) -> Result<Vec<FileRow>, StoreError> {
        let rows: Vec<(i64, String, i64, Option<NaiveDateTime>)> = with_pool!(&self.db, p => sqlx::query_as(
            "SELECT CAST(id AS BIGINT), role, CAST(version AS BIGINT), created_at FROM tuf_files \
             WHERE gun = $1 AND deleted_at IS NULL")
            .bind(gun).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(id, role, version, created_at)| FileRow {
                id,
                role,
                version,
                created_at: created_at.unwrap_or_default(),
            })
            .collect())
    }

    async fn remove_files(
        &self,
        gun: &str,
        ids: &[i64],
        audit: &Record<'_>,
        acked: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let t = now();
        // A changefeed row tells every instance to forget the GUN's cached files (`coherence`):
        // an `update` at the current timestamp version (Go's categories are fixed by a foreign
        // key) marked by [`PRUNE_MARK`] instead of a checksum; the public changefeed omits it.
        const FEED: &str = "INSERT INTO changefeed (created_at, gun, version, sha256, category) \
            SELECT $1, $2, COALESCE(MAX(version), 0), 'prune', 'update' FROM tuf_files WHERE gun = $2 AND role = 'timestamp'";
        match &self.db {
            Db::Postgres(p) => {
                let ids: Vec<i32> = ids.iter().filter_map(|i| i32::try_from(*i).ok()).collect();
                let mut tx = p.begin().await?;
                let (guard_ok,): (bool,) = sqlx::query_as(
                    "SELECT CASE WHEN $1::text[] IS NULL THEN true ELSE notary_rs_write_guard($1::text[]) END",
                )
                .bind(acked)
                .fetch_one(&mut *tx)
                .await?;
                if !guard_ok {
                    return Err(StoreError::Unacknowledged);
                }
                let n = sqlx::query("DELETE FROM tuf_files WHERE gun = $1 AND id = ANY($2)")
                    .bind(gun)
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(CHANGEFEED_LOCK)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(FEED)
                    .bind(t)
                    .bind(gun)
                    .execute(&mut *tx)
                    .await?;
                insert_record!(&mut *tx, t, audit)?;
                tx.commit().await?;
                Ok(n)
            }
            Db::Sqlite(p) => {
                let _guard = self.write_lock.lock().await;
                let mut tx = p.begin().await?;
                let mut n = 0;
                for id in ids {
                    n += sqlx::query("DELETE FROM tuf_files WHERE gun = $1 AND id = $2")
                        .bind(gun)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                sqlx::query(FEED)
                    .bind(t)
                    .bind(gun)
                    .execute(&mut *tx)
                    .await?;
                insert_record!(&mut *tx, t, audit)?;
                tx.commit().await?;
                Ok(n)
            }
        }
    }

    async fn prune_audit(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        Ok(
            with_pool!(&self.db, p => sqlx::query("DELETE FROM notary_rs_audit WHERE at < $1")
            .bind(before).execute(p).await.map(|r| r.rows_affected()))?,
        )
    }

    async fn health(&self) -> Result<(), StoreError> {
        with_pool!(&self.db, p => sqlx::query("SELECT 1 FROM tuf_files LIMIT 1").fetch_optional(p).await.map(|_| ()))?;
        Ok(())
    }
}

/// Bounds every database call on the client side. A network that silently drops packets (a
/// partition, no reset) would otherwise hold a request until TCP gives up, minutes later; the
/// server-side `statement_timeout` cannot help when the statement never arrives.
pub struct TimedStore<S> {
    inner: S,
    limit: std::time::Duration,
}

impl<S> TimedStore<S> {
    pub fn new(inner: S, limit: std::time::Duration) -> Self {
        TimedStore { inner, limit }
    }

    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.limit, what, f).await
    }
}

/// `f`, a database call, bounded by `limit` on the client side (see `TimedStore`): no answer
/// in time is `Unavailable`.
pub async fn within<T, E: Into<StoreError>>(
    limit: std::time::Duration,
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

#[async_trait]
impl<S: Changefeed> Changefeed for TimedStore<S> {
    async fn last_change_id(&self) -> Result<i64, StoreError> {
        self.timed("last_change_id", self.inner.last_change_id())
            .await
    }
    async fn changes_after(&self, id: i64, limit: i64) -> Result<Vec<ChangeRef>, StoreError> {
        self.timed("changes_after", self.inner.changes_after(id, limit))
            .await
    }
}

#[async_trait]
impl<S: MetaStore> MetaStore for TimedStore<S> {
    async fn latest(&self, gun: &str, role: &str) -> Result<Option<StoredFile>, StoreError> {
        self.timed("latest", self.inner.latest(gun, role)).await
    }
    async fn latest_chain(&self, gun: &str, also: Option<&str>) -> Result<LatestChain, StoreError> {
        self.timed("latest_chain", self.inner.latest_chain(gun, also))
            .await
    }
    async fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256_hex: &str,
    ) -> Result<Option<StoredFile>, StoreError> {
        self.timed("by_checksum", self.inner.by_checksum(gun, role, sha256_hex))
            .await
    }
    async fn by_version(
        &self,
        gun: &str,
        role: &str,
        version: i64,
    ) -> Result<Option<StoredFile>, StoreError> {
        self.timed("by_version", self.inner.by_version(gun, role, version))
            .await
    }
    async fn update_many(
        &self,
        gun: &str,
        updates: &[Update],
        at: NaiveDateTime,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<(), StoreError> {
        // A timed-out commit may still have happened: the client is told 503 (retry), and a
        // retry of the same versions then gets VERSION if it had.
        self.timed(
            "update_many",
            self.inner.update_many(gun, updates, at, acked, audit),
        )
        .await
    }
    async fn delete(
        &self,
        gun: &str,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<bool, StoreError> {
        self.timed("delete", self.inner.delete(gun, acked, audit))
            .await
    }
    async fn record(&self, at: NaiveDateTime, audit: &Record<'_>) -> Result<(), StoreError> {
        self.timed("record", self.inner.record(at, audit)).await
    }
    async fn audit_entries(
        &self,
        gun: Option<&str>,
        since: Option<NaiveDateTime>,
        limit: i64,
    ) -> Result<Vec<Entry>, StoreError> {
        self.timed("audit_entries", self.inner.audit_entries(gun, since, limit))
            .await
    }
    async fn repositories(&self, gun: Option<&str>) -> Result<Vec<RoleSummary>, StoreError> {
        self.timed("repositories", self.inner.repositories(gun))
            .await
    }
    async fn guns(&self) -> Result<Vec<String>, StoreError> {
        self.timed("guns", self.inner.guns()).await
    }
    async fn file_rows(&self, gun: &str) -> Result<Vec<FileRow>, StoreError> {
        self.timed("file_rows", self.inner.file_rows(gun)).await
    }
    async fn remove_files(
        &self,
        gun: &str,
        ids: &[i64],
        audit: &Record<'_>,
        acked: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        self.timed(
            "remove_files",
            self.inner.remove_files(gun, ids, audit, acked),
        )
        .await
    }
    async fn prune_audit(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        self.timed("prune_audit", self.inner.prune_audit(before))
            .await
    }
    async fn changes(
        &self,
        gun: Option<&str>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StoreError> {
        self.timed("changes", self.inner.changes(gun, change_id, records))
            .await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.timed("health", self.inner.health()).await
    }
    async fn try_lock(&self, name: &str) -> Result<Option<HeldLock>, StoreError> {
        self.timed("try_lock", self.inner.try_lock(name)).await
    }
    async fn import(
        &self,
        gun: &str,
        files: &dyn ImportFiles,
        source: &str,
        replace: bool,
        acked: Option<&[String]>,
    ) -> Result<Imported, StoreError> {
        self.timed(
            "import",
            self.inner.import(gun, files, source, replace, acked),
        )
        .await
    }
    async fn imports(&self) -> Result<Vec<ImportRecord>, StoreError> {
        self.timed("imports", self.inner.imports()).await
    }
    async fn bind_key(&self, key_id: &str, gun: &str, role: &str) -> Result<(), StoreError> {
        self.timed("bind_key", self.inner.bind_key(key_id, gun, role))
            .await
    }
    async fn key_binding(&self, key_id: &str) -> Result<Option<(String, String)>, StoreError> {
        self.timed("key_binding", self.inner.key_binding(key_id))
            .await
    }
    async fn bind_stored_keys(&self, batch: i64) -> Result<bool, StoreError> {
        self.timed("bind_stored_keys", self.inner.bind_stored_keys(batch))
            .await
    }
}
