//! The changefeed: what a cache follows (`Changefeed`, on the follower connections) and the
//! pages the API serves.

use crate::gun::Gun;
use async_trait::async_trait;
use chrono::NaiveDateTime;
use notary_common::db::Db;
use notary_common::with_pool;

use super::{Change, ChangeRef, Changefeed, SqlStore, StoreError, PRUNE_MARK};

#[async_trait]
impl Changefeed for SqlStore {
    async fn last_change_id(&self) -> Result<i64, StoreError> {
        self.timed("last_change_id", async {
            const SQL: &str = "SELECT MAX(id) FROM changefeed";
            let row: (Option<i32>,) = match &self.db {
                Db::Sqlite(p) => sqlx::query_as(SQL).fetch_one(p).await?,
                Db::Postgres(p) => {
                    self.followers
                        .run(p, self.seen.is_some(), async |c| {
                            sqlx::query_as(SQL).fetch_one(c).await
                        })
                        .await?
                }
            };
            let id = row.0.unwrap_or(0) as i64;
            self.saw(id);
            Ok(id)
        })
        .await
    }

    async fn changes_after(&self, id: i64, limit: i64) -> Result<Vec<ChangeRef>, StoreError> {
        self.timed("changes_after", async {
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
                    self.followers
                        .run(p, self.seen.is_some(), async |c| {
                            sqlx::query_as(SQL).bind(id).bind(limit).fetch_all(c).await
                        })
                        .await?
                }
            };
            if let Some(last) = rows.last() {
                self.saw(last.0 as i64);
            }
            Ok(rows
                .into_iter()
                .map(|(id, gun, category, sha256)| ChangeRef {
                    id: id as i64,
                    gun: Gun::stored(gun),
                    // A deletion, or a prune's row (Go's CHAR(64) column pads it): forget every
                    // cached file of the GUN.
                    deletion: category == "deletion"
                        || sha256.as_deref().map(str::trim_end) == Some(PRUNE_MARK),
                    sha256,
                })
                .collect())
        })
        .await
    }
}

impl SqlStore {
    /// A changefeed page as the API serves it (Go's semantics, docs/api.md): up to `records`
    /// rows after `change_id`, or before it (from the end when `change_id` is negative) when
    /// either is negative; of one repository or all; oldest first.
    pub async fn changes(
        &self,
        gun: Option<&Gun>,
        change_id: i64,
        records: i64,
    ) -> Result<Vec<Change>, StoreError> {
        self.timed("changes", async {
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
                    q = q.bind(g.as_str());
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
        })
        .await
    }
}
