//! What static publication (`publication`) reads and keeps: each tree's changefeed position,
//! the repositories changed since, and a repository's files without their bytes.

use crate::gun::Gun;
use notary_common::with_pool;

use super::{now, SqlStore, StoreError};

/// A stored file as a published tree names it (its bytes are loaded one at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    /// The role (`root`, `targets/releases`, …) as stored.
    pub role: String,
    /// Its version.
    pub version: i64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
}

impl SqlStore {
    /// How far through the changefeed the tree `target` is; `None` for a tree never synced.
    pub(crate) async fn publication_cursor(&self, target: &str) -> Result<Option<i64>, StoreError> {
        self.timed("publication_cursor", async {
            Ok(with_pool!(&self.db, p => sqlx::query_scalar(
                "SELECT change_id FROM notary_rs_publication WHERE target = $1")
                .bind(target).fetch_optional(p).await)?)
        })
        .await
    }

    /// Record that the tree `target` holds every change up to `change_id`.
    pub(crate) async fn set_publication_cursor(
        &self,
        target: &str,
        change_id: i64,
    ) -> Result<(), StoreError> {
        self.timed("set_publication_cursor", async {
            with_pool!(&self.db, p => sqlx::query(
                "INSERT INTO notary_rs_publication (target, change_id, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (target) DO UPDATE SET change_id = excluded.change_id, updated_at = excluded.updated_at")
                .bind(target).bind(change_id).bind(now()).execute(p).await.map(|_| ()))?;
            Ok(())
        })
        .await
    }

    /// The repositories named by up to `limit` changefeed rows after `id` (each once, in the
    /// order first named) and the last row's ID (`id` when there is none). Read on the pool,
    /// apart from the coherence follower's connections and position.
    pub(crate) async fn changed_after(
        &self,
        id: i64,
        limit: i64,
    ) -> Result<(Vec<String>, i64), StoreError> {
        self.timed("changed_after", async {
            let rows: Vec<(i64, String)> = with_pool!(&self.db, p => sqlx::query_as(
                "SELECT CAST(id AS BIGINT), gun FROM changefeed WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(id).bind(limit).fetch_all(p).await)?;
            let last = rows.last().map_or(id, |r| r.0);
            let mut seen = std::collections::HashSet::new();
            let guns = rows
                .into_iter()
                .filter_map(|(_, g)| seen.insert(g.clone()).then_some(g))
                .collect();
            Ok((guns, last))
        })
        .await
    }

    /// The newest changefeed ID (0 when empty), read on the pool (see `changed_after`).
    pub(crate) async fn changefeed_head(&self) -> Result<i64, StoreError> {
        self.timed("changefeed_head", async {
            let id: Option<i64> = with_pool!(&self.db, p => sqlx::query_scalar(
                "SELECT CAST(MAX(id) AS BIGINT) FROM changefeed").fetch_one(p).await)?;
            Ok(id.unwrap_or(0))
        })
        .await
    }

    /// Every stored file of `gun`, without its bytes, oldest version first.
    pub async fn published_files(&self, gun: &Gun) -> Result<Vec<PublishedFile>, StoreError> {
        self.timed("published_files", async {
            let rows: Vec<(String, i64, String, i64)> = with_pool!(&self.db, p => sqlx::query_as(
                "SELECT role, CAST(version AS BIGINT), sha256, CAST(length(data) AS BIGINT) FROM tuf_files \
                 WHERE gun = $1 AND deleted_at IS NULL ORDER BY role, version")
                .bind(gun.as_str()).fetch_all(p).await)?;
            Ok(rows
                .into_iter()
                .map(|(role, version, sha256, len)| PublishedFile {
                    role,
                    version,
                    sha256,
                    len: len.max(0) as u64,
                })
                .collect())
        })
        .await
    }
}
