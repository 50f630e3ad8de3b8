//! Which repository and role a server-held key serves (`notary_rs_server_keys`), and the
//! background binding of keys stored roots list.

use crate::gun::Gun;
use crate::role::Role;
use notary_common::db::Db;
use notary_common::with_pool;

use super::{KeyBinding, SqlStore, StoreError};

impl SqlStore {
    /// Bind a server-managed key to the GUN and role it serves (the first binding stays).
    pub(crate) async fn bind_key(
        &self,
        key_id: &str,
        gun: &Gun,
        role: &Role,
    ) -> Result<(), StoreError> {
        self.timed("bind_key", async {
            with_pool!(&self.db, p => sqlx::query("INSERT INTO notary_rs_server_keys (key_id, gun, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(key_id).bind(gun.as_str()).bind(role.as_str()).execute(p).await.map(|_| ()))?;
            Ok(())
        })
        .await
    }

    /// The repository and role a server-managed key is bound to.
    pub(crate) async fn key_binding(&self, key_id: &str) -> Result<Option<KeyBinding>, StoreError> {
        self.timed("key_binding", async {
            let row: Option<(String, String)> = with_pool!(&self.db, p => sqlx::query_as(
                "SELECT gun, role FROM notary_rs_server_keys WHERE key_id = $1")
                .bind(key_id).fetch_optional(p).await)?;
            Ok(row.map(|(gun, role)| KeyBinding { gun, role }))
        })
        .await
    }

    /// One step of binding the timestamp and snapshot keys that stored roots list to their GUN
    /// and role (keys created before bindings existed, by an older build or the Go server):
    /// the next `batch` roots after the recorded position, in one transaction. `true` once every
    /// root is done (recorded as the migration `server-keys-backfill` 1). Resumable, and safe
    /// to run on several instances at once (the first binding stays).
    pub(crate) async fn bind_stored_keys(&self, batch: i64) -> Result<bool, StoreError> {
        self.timed("bind_stored_keys", async {
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
        })
        .await
    }
}
