//! Imported histories: stored in one transaction, and recorded (`notary_rs_imports`).

use crate::gun::Gun;
use chrono::NaiveDateTime;
use notary_common::db::Db;
use notary_common::with_pool;

use super::{
    now, ImportFiles, ImportRecord, Imported, ListedFile, SqlStore, StoreError, CHANGEFEED_LOCK,
};

impl SqlStore {
    /// Store an imported history in one transaction: every file of `files` not stored yet, and
    /// one changefeed row per stored timestamp, in version order; `Conflict` (nothing stored) if
    /// a stored file of the same role and version differs, unless `replace`, which first removes
    /// every file of the GUN. Records the import (`source`). `acked`: as for `update_many`.
    pub async fn import(
        &self,
        gun: &Gun,
        files: &dyn ImportFiles,
        source: &str,
        replace: bool,
        acked: Option<&[String]>,
    ) -> Result<Imported, StoreError> {
        self.timed("import", async {
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
                        .bind(gun.as_str()).fetch_all(&mut *tx).await?;
                let stored: std::collections::BTreeMap<(String, i64), String> =
                    stored.into_iter().map(|(r, v, s)| ((r, v as i64), s.unwrap_or_default().trim_end().to_string())).collect();
                let mut todo: Vec<&ListedFile> = Vec::new();
                let mut conflict = None;
                for f in &listing {
                    let ListedFile { role, version, sha256 } = f;
                    match stored.get(&(role.clone(), *version)) {
                        Some(s) if s == sha256 => {}
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
                    done.replaced = sqlx::query("DELETE FROM tuf_files WHERE gun = $1").bind(gun.as_str()).execute(&mut *tx).await?.rows_affected() as usize;
                    sqlx::query("INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, 0, '', 'deletion')")
                        .bind(t).bind(gun.as_str()).execute(&mut *tx).await?;
                    todo = listing.iter().collect();
                }
                // Timestamps last and oldest first, so changefeed rows follow version order.
                todo.sort_by_key(|f| (f.role == notary_tuf::metadata::TIMESTAMP, f.version));
                for ListedFile { role, version, sha256: sha } in todo.iter().copied() {
                    let version_i32 = i32::try_from(*version).map_err(|_| StoreError::Conflict(format!("{role} version {version} is too large")))?;
                    // Read only now: one file in memory at a time.
                    let data = files.read(role, *version)?;
                    sqlx::query("INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES ($1, $1, $2, $3, $4, $5, $6)")
                        .bind(t).bind(gun.as_str()).bind(role).bind(version_i32).bind(data.as_slice()).bind(sha).execute(&mut *tx).await?;
                    drop(data);
                    let version = version_i32;
                    if role == notary_tuf::metadata::TIMESTAMP {
                        sqlx::query("INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, $3, $4, 'update')")
                            .bind(t).bind(gun.as_str()).bind(version).bind(sha).execute(&mut *tx).await?;
                    }
                }
                done.stored = todo.len();
                if done.stored > 0 || done.replaced > 0 {
                    sqlx::query("DELETE FROM notary_rs_imports WHERE gun = $1").bind(gun.as_str()).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO notary_rs_imports (gun, source, imported_at, files) VALUES ($1, $2, $3, $4)")
                        .bind(gun.as_str()).bind(source).bind(t).bind(listing.len() as i32).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(done)
            })
        })
        .await
    }

    /// Every import recorded, by GUN.
    pub async fn imports(&self) -> Result<Vec<ImportRecord>, StoreError> {
        self.timed("imports", async {
            let rows: Vec<(String, String, NaiveDateTime)> = with_pool!(&self.db, p =>
                sqlx::query_as("SELECT gun, source, imported_at FROM notary_rs_imports ORDER BY gun").fetch_all(p).await)?;
            Ok(rows
                .into_iter()
                .map(|(gun, source, imported_at)| ImportRecord {
                    gun: Gun::stored(gun),
                    source,
                    imported_at,
                })
                .collect())
        })
        .await
    }
}
