//! The audit trail (`notary_rs_audit`): records of writes made elsewhere, reading, pruning.

use crate::gun::Gun;
use chrono::NaiveDateTime;
use notary_common::db::Db;
use notary_common::with_pool;

use super::{SqlStore, StoreError};
use crate::audit::{Entry, Record};

impl SqlStore {
    /// Store an audit record of a write made elsewhere (a key in the signer, an import).
    pub async fn record(&self, at: NaiveDateTime, audit: &Record<'_>) -> Result<(), StoreError> {
        self.timed("record", async {
            match &self.db {
                Db::Postgres(p) => insert_record!(p, at, audit)?,
                Db::Sqlite(p) => insert_record!(p, at, audit)?,
            }
            Ok(())
        })
        .await
    }

    /// Audit records, oldest first: of one GUN or all, since a time, at most `limit`.
    pub(crate) async fn audit_entries(
        &self,
        gun: Option<&Gun>,
        since: Option<NaiveDateTime>,
        limit: i64,
    ) -> Result<Vec<Entry>, StoreError> {
        self.timed("audit_entries", async {
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
                .bind(gun.map(Gun::as_str)).bind(since).bind(limit).fetch_all(p).await)?;
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
        })
        .await
    }

    /// Remove audit records older than `before`; how many went.
    pub async fn prune_audit(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        self.timed("prune_audit", async {
            Ok(
                with_pool!(&self.db, p => sqlx::query("DELETE FROM notary_rs_audit WHERE at < $1")
                .bind(before).execute(p).await.map(|r| r.rows_affected()))?,
            )
        })
        .await
    }
}
