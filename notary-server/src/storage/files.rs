//! The metadata files (`tuf_files`): loads of the current chain and of files by checksum or
//! version, publishes and deletions as one statement each, listings, and the rows `prune` removes.

use crate::gun::Gun;
use crate::role::Role;
use chrono::NaiveDateTime;
use notary_common::db::Db;
use notary_common::with_pool;
use notary_tuf::validation::Update;

use super::{now, LatestChain, RoleSummary, SqlStore, StoreError, StoredFile, CHANGEFEED_LOCK};
use crate::audit::Record;
use crate::retention::FileRow;
use sha2::{Digest, Sha256};

/// A publish on Postgres, as one statement (its own transaction): every file, all or none, and
/// the changefeed row of the new timestamp. `$3..$6`: roles, versions, contents, checksums.
/// Nothing is stored if any role already has a version as new (`NOT EXISTS`, on the statement's
/// snapshot; a concurrent publish of the same version fails on the unique index instead). Being
/// one statement, the changefeed lock is held only while Postgres finishes it and commits,
/// never across a round trip to this process: with the lock held through a client round trip
/// (a `BEGIN … COMMIT` from here) concurrent publishes queued behind it for milliseconds each,
/// waiting for busy server threads to send the `COMMIT` (measured: 22 ms of a 36 ms publish at 16
/// connections). One round trip in all, where a transaction took six. `$8`: the instances that
/// acknowledged the write's announcement (`coherence`, invariant 2); nothing is stored, and the
/// first
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
                let (position, data, at): (i64, Option<Vec<u8>>, Option<NaiveDateTime>) = $self
                    .readers
                    .run(p, true, async |c| sqlx::query_as(&sql)$(.bind($bind))*.fetch_one(c).await)
                    .await?;
                let floor = seen.load(std::sync::atomic::Ordering::SeqCst);
                if position < floor {
                    return Err(StoreError::Unavailable(format!(
                        "this replica is behind what was already served (changefeed {position} < {floor})"
                    )));
                }
                data.map(|d| (d, at))
            }
            (Db::Postgres(p), None) => $self
                .readers
                .run(p, false, async |c| {
                    sqlx::query_as::<_, (Vec<u8>, Option<NaiveDateTime>)>($sql)
                        $(.bind($bind))*.fetch_optional(c).await
                })
                .await?,
            (Db::Sqlite(p), _) => sqlx::query_as::<_, (Vec<u8>, Option<NaiveDateTime>)>($sql)
                $(.bind($bind))*.fetch_optional(p).await?,
        }
    }};
}

impl SqlStore {
    /// Highest version of a role.
    pub async fn latest(&self, gun: &Gun, role: &Role) -> Result<Option<StoredFile>, StoreError> {
        self.timed("latest", async {
            let row = load!(self,
                "SELECT data, updated_at FROM tuf_files WHERE gun = $1 AND role = $2 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1",
                gun.as_str(), role.as_str());
            Ok(row.map(|(data, t)| StoredFile::from_bytes(data, t)))
        })
        .await
    }

    /// The newest timestamp (as `latest`), and the newest snapshot and newest `also` (dated as
    /// `by_checksum` dates them), read together: what loading a repository's chain (and the
    /// file asked for) needs when, as usual, the timestamp names the newest snapshot and that
    /// the newest files — one round trip instead of two or three on a database-bound load
    /// (docs/performance.md, "Many repositories"). A read-only instance, which positions each
    /// load on its own (`load!`), gives the timestamp only; the caller then loads what the
    /// timestamp and snapshot name by checksum.
    pub async fn latest_chain(
        &self,
        gun: &Gun,
        also: Option<&Role>,
    ) -> Result<LatestChain, StoreError> {
        self.timed("latest_chain", async {
            if self.seen.is_some() {
                // A read-only instance positions each load (`load!`): one file at a time.
                return Ok(LatestChain {
                    timestamp: self.latest(gun, &Role::TIMESTAMP).await?,
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
            let also = also.map_or("", Role::as_str);
            let rows: Vec<Row> = match &self.db {
                Db::Postgres(p) => {
                    self.readers
                        .run(p, false, async |c| {
                            sqlx::query_as(SQL)
                                .bind(gun.as_str())
                                .bind(also)
                                .fetch_all(c)
                                .await
                        })
                        .await?
                }
                Db::Sqlite(p) => {
                    sqlx::query_as(SQL)
                        .bind(gun.as_str())
                        .bind(also)
                        .fetch_all(p)
                        .await?
                }
            };
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
        })
        .await
    }

    /// The stored file of a role with this SHA-256 (hex), dated when it was stored.
    pub async fn by_checksum(
        &self,
        gun: &Gun,
        role: &Role,
        sha256_hex: &str,
    ) -> Result<Option<StoredFile>, StoreError> {
        self.timed("by_checksum", async {
            let row = load!(self,
                // No `ORDER BY id`: with it, Postgres may walk the primary key from the first row
                // filtering every row of the table (it guessed a match comes early; a repository
                // stored late then costs seconds). The bytes carry their version, which is unique
                // per (gun, role): at most one live row matches.
                "SELECT data, created_at FROM tuf_files WHERE gun = $1 AND role = $2 AND sha256 = $3 AND deleted_at IS NULL LIMIT 1",
                gun.as_str(), role.as_str(), sha256_hex);
            Ok(row.map(|(data, t)| StoredFile::from_bytes(data, t)))
        })
        .await
    }

    /// The stored file of a role at this version.
    pub async fn by_version(
        &self,
        gun: &Gun,
        role: &Role,
        version: i64,
    ) -> Result<Option<StoredFile>, StoreError> {
        self.timed("by_version", async {
            let Ok(version) = i32::try_from(version) else {
                return Ok(None);
            };
            let row = load!(self,
                // (gun, role, version) is unique: no `ORDER BY id` (see `by_checksum`).
                "SELECT data, created_at FROM tuf_files WHERE gun = $1 AND role = $2 AND version = $3 AND deleted_at IS NULL LIMIT 1",
                gun.as_str(), role.as_str(), version);
            Ok(row.map(|(data, t)| StoredFile::from_bytes(data, t)))
        })
        .await
    }

    /// Store all updates or none, created and updated `at`; each must be newer than every
    /// stored version of its role. `acked` (Postgres): the instances that acknowledged the
    /// write's announcement; `Unacknowledged` if one holding a lease is missing (`coherence`,
    /// invariant 2).
    /// `audit`: the record stored with the write, in the same statement (`audit`, invariant 2).
    pub async fn update_many(
        &self,
        gun: &Gun,
        updates: &[Update],
        t: NaiveDateTime,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<(), StoreError> {
        self.timed("update_many", async {
            let actor = audit.map(|a| a.actor);
            let mut roles = Vec::with_capacity(updates.len());
            let mut versions = Vec::with_capacity(updates.len());
            let mut data = Vec::with_capacity(updates.len());
            let mut shas = Vec::with_capacity(updates.len());
            for u in updates {
                roles.push(u.role.as_str());
                versions.push(i32::try_from(u.version).map_err(|_| StoreError::OldVersion)?);
                data.push(&u.data[..]);
                shas.push(hex::encode(Sha256::digest(&u.data)));
            }
            match &self.db {
                Db::Postgres(p) => {
                    let (guard_ok, inserted): (bool, i64) = sqlx::query_as(PG_UPDATE_MANY)
                        .bind(t)
                        .bind(gun.as_str())
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
                        .bind(gun.as_str())
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
                            .bind(gun.as_str())
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
        })
        .await
    }

    /// Remove every file of the GUN; true if anything was removed. `acked`, `audit`: as for
    /// `update_many` (the record is stored only if something was removed).
    pub async fn delete(
        &self,
        gun: &Gun,
        acked: Option<&[String]>,
        audit: Option<&Record<'_>>,
    ) -> Result<bool, StoreError> {
        self.timed("delete", async {
            let t = now();
            let actor = audit.map(|a| a.actor);
            match &self.db {
                Db::Postgres(p) => {
                    let (guard_ok, deleted): (bool, i64) = sqlx::query_as(PG_DELETE)
                        .bind(t)
                        .bind(gun.as_str())
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
                        .bind(gun.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n > 0 {
                        sqlx::query("INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, 0, '', 'deletion')")
                            .bind(t)
                            .bind(gun.as_str())
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
        })
        .await
    }

    /// Every repository with stored files: per role, the newest version, how many versions and
    /// their bytes.
    pub async fn repositories(&self, gun: Option<&Gun>) -> Result<Vec<RoleSummary>, StoreError> {
        self.timed("repositories", async {
            let rows: Vec<(String, String, i64, i64, i64)> = with_pool!(&self.db, p => sqlx::query_as(
                "SELECT gun, role, CAST(MAX(version) AS BIGINT), CAST(COUNT(*) AS BIGINT), \
                 CAST(SUM(LENGTH(data)) AS BIGINT) FROM tuf_files \
                 WHERE deleted_at IS NULL AND ($1 IS NULL OR gun = $1) GROUP BY gun, role ORDER BY gun, role")
                .bind(gun.map(Gun::as_str)).fetch_all(p).await)?;
            Ok(rows
                .into_iter()
                .map(|(gun, role, newest, versions, bytes)| RoleSummary {
                    gun: Gun::stored(gun),
                    role,
                    newest,
                    versions,
                    bytes,
                })
                .collect())
        })
        .await
    }

    /// Every GUN with stored files.
    pub async fn guns(&self) -> Result<Vec<Gun>, StoreError> {
        self.timed("guns", async {
            let guns: Vec<String> = with_pool!(&self.db, p => sqlx::query_scalar(
                "SELECT DISTINCT gun FROM tuf_files WHERE deleted_at IS NULL ORDER BY gun")
                .fetch_all(p).await)?;
            Ok(guns.into_iter().map(Gun::stored).collect())
        })
        .await
    }

    /// Every stored file of a GUN without its bytes (`retention`); a file the Go server stored
    /// without a time counts as stored at the epoch.
    pub async fn file_rows(&self, gun: &Gun) -> Result<Vec<FileRow>, StoreError> {
        self.timed("file_rows", async {
            let rows: Vec<(i64, String, i64, Option<NaiveDateTime>)> = with_pool!(&self.db, p => sqlx::query_as(
                "SELECT CAST(id AS BIGINT), role, CAST(version AS BIGINT), created_at FROM tuf_files \
                 WHERE gun = $1 AND deleted_at IS NULL")
                .bind(gun.as_str()).fetch_all(p).await)?;
            Ok(rows
                .into_iter()
                .map(|(id, role, version, created_at)| FileRow {
                    id,
                    role,
                    version,
                    created_at: created_at.unwrap_or_default(),
                })
                .collect())
        })
        .await
    }

    /// Remove these files of the GUN and store `audit`, in one transaction; how many went.
    pub(crate) async fn remove_files(
        &self,
        gun: &Gun,
        ids: &[i64],
        audit: &Record<'_>,
        acked: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        self.timed("remove_files", async {
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
                        .bind(gun.as_str())
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
                        .bind(gun.as_str())
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
                            .bind(gun.as_str())
                            .bind(id)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    sqlx::query(FEED)
                        .bind(t)
                        .bind(gun.as_str())
                        .execute(&mut *tx)
                        .await?;
                    insert_record!(&mut *tx, t, audit)?;
                    tx.commit().await?;
                    Ok(n)
                }
            }
        })
        .await
    }
}
