//! SQL key store on the Go signer's `private_keys` schema: private keys encrypted at rest as
//! JWE under alias passphrases, pending keys reused until first use, soft delete.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{NaiveDateTime, Utc};
use notary_tuf::{PrivateKey, PublicKey, Signature};

use crate::passphrase::Passphrases;
use crate::{check_algorithm, jwe, tuf_signature, CryptoError, CryptoService, KeyInfo};
use notary_common::db::{migrate, Db, DbError, Migration, PoolConfig};
use notary_common::sync::lock;
use notary_common::with_pool;

/// The signer's schema: Go's `private_keys`, and the aliases retired by a passphrase rotation.
pub const MIGRATIONS: &[Migration] = &[
    notary_common::migration!(1, "signer/", "0001_private_keys.sql"),
    notary_common::migration!(2, "signer/", "0002_retired_aliases.sql"),
];

struct Cached {
    key: PrivateKey,
    marked_used: AtomicBool,
}

/// Go's `private_keys` table: each key encrypted (JWE) under its alias's passphrase.
pub struct SqlKeyStore {
    db: Db,
    passphrases: Passphrases,
    /// Decrypted keys recently used (bounded: decrypting costs a PBKDF2 derivation, keeping
    /// every key of a large fleet would cost memory without bound).
    cache: std::sync::Mutex<lru::LruCache<String, Arc<Cached>>>,
    /// How long one statement may wait for the database (see [`SqlKeyStore::timed`]).
    limit: std::time::Duration,
}

/// Decrypted keys kept in memory.
const KEY_CACHE: usize = 4096;

/// A key-database error: unavailable (retryable, the server answers 503) when the database is
/// down or failing over, internal otherwise.
fn db_err(e: impl Into<DbError>) -> CryptoError {
    let e = e.into();
    if e.is_unavailable() {
        CryptoError::Unavailable(format!("key database: {e}"))
    } else {
        CryptoError::Internal(format!("key database: {e}"))
    }
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

impl SqlKeyStore {
    /// The store for looking keys up only (`get_key`): no migration, no passphrase, so
    /// nothing is written or decrypted; signing and key creation fail.
    pub fn for_lookup(db: Db) -> Self {
        let cache = lru::LruCache::new(std::num::NonZeroUsize::new(KEY_CACHE).expect("non-zero"));
        SqlKeyStore {
            db,
            passphrases: Passphrases::none(),
            cache: std::sync::Mutex::new(cache),
            limit: PoolConfig::default().call_limit(),
        }
    }

    /// The store on `db` (migrated), decrypting with `passphrases`.
    pub async fn new(db: Db, passphrases: Passphrases) -> Result<Self, CryptoError> {
        migrate(&db, "signer", MIGRATIONS).await.map_err(db_err)?;
        let cache = lru::LruCache::new(std::num::NonZeroUsize::new(KEY_CACHE).expect("non-zero"));
        Ok(SqlKeyStore {
            db,
            passphrases,
            cache: std::sync::Mutex::new(cache),
            limit: PoolConfig::default().call_limit(),
        })
    }

    /// A SQL key store whose every stored key decrypts now, not at its first signature; with a
    /// default alias, that alias's passphrase is required too.
    pub async fn open(sql: &crate::config::SqlStorage) -> Result<SqlKeyStore, CryptoError> {
        let db = Db::connect(&sql.db_url, &PoolConfig::default()).await?;
        let passphrases = Passphrases::from_env("NOTARY_SIGNER_", &sql.default_alias);
        if !sql.default_alias.is_empty() {
            passphrases.get(&sql.default_alias).map_err(|_| {
                CryptoError::Config(format!(
                    "set NOTARY_SIGNER_{} to the passphrase of alias {:?}",
                    sql.default_alias.to_uppercase(),
                    sql.default_alias
                ))
            })?;
        }
        let store = SqlKeyStore::new(db, passphrases).await?;
        store.check_aliases().await.map_err(|e| {
            CryptoError::Config(format!(
                "the key database holds keys this signer cannot decrypt: {e}"
            ))
        })?;
        Ok(store)
    }

    /// Bound every statement by `limit` instead of the default pool's (the server's local
    /// trust service uses its storage's).
    pub fn with_call_limit(mut self, limit: std::time::Duration) -> Self {
        self.limit = limit;
        self
    }

    /// One statement, bounded on the client side: a database cut off silently (packets
    /// dropped, no reset) makes it `Unavailable` within `limit` instead of holding the
    /// signature until TCP gives up; its `statement_timeout` cannot fire on a statement that
    /// never arrives (`database_faults::silent_database_partition_fails_fast_and_heals`).
    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, CryptoError> {
        match tokio::time::timeout(self.limit, f).await {
            Ok(r) => r.map_err(db_err),
            Err(_) => Err(CryptoError::Unavailable(format!(
                "key database: {what}: no answer within {:?}",
                self.limit
            ))),
        }
    }

    async fn load_private(&self, key_id: &str) -> Result<Arc<Cached>, CryptoError> {
        if let Some(c) = self.cache().get(key_id) {
            return Ok(c.clone());
        }
        let row: Option<(String, String, Vec<u8>, Option<NaiveDateTime>)> = self.timed("loading a key", async { with_pool!(&self.db, p => sqlx::query_as(
            "SELECT algorithm, passphrase_alias, private, last_used FROM private_keys WHERE deleted_at IS NULL AND key_id = $1 ORDER BY id LIMIT 1")
            .bind(key_id).fetch_optional(p).await) }).await?;
        let (algorithm, alias, private, last_used) =
            row.ok_or_else(|| CryptoError::NotFound(key_id.into()))?;
        let passphrase = self.passphrases.get(&alias)?;
        let token = std::str::from_utf8(&private).map_err(|_| {
            CryptoError::Internal(format!("key {key_id}: stored key is not a JWE token"))
        })?;
        let plain = jwe::decrypt(token, passphrase.as_bytes()).map_err(|e| {
            CryptoError::Locked(format!("key {key_id} (alias {alias:?}) cannot be decrypted with the configured passphrase: {e}"))
        })?;
        let key = PrivateKey::from_go_bytes(&algorithm, &plain)
            .map_err(|e| CryptoError::Internal(format!("key {key_id}: {e}")))?;
        let cached = Arc::new(Cached {
            key,
            marked_used: AtomicBool::new(last_used.is_some()),
        });
        self.cache().put(key_id.to_string(), cached.clone());
        Ok(cached)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, Arc<Cached>>> {
        lock(&self.cache)
    }
}

/// Live keys per passphrase alias in a key database (creating the table if missing).
pub async fn keys_by_alias(db: &Db) -> Result<Vec<(String, i64)>, CryptoError> {
    migrate(db, "signer", MIGRATIONS).await.map_err(db_err)?;
    with_pool!(db, p => sqlx::query_as(
        "SELECT passphrase_alias, COUNT(*) FROM private_keys WHERE deleted_at IS NULL GROUP BY passphrase_alias ORDER BY passphrase_alias")
        .fetch_all(p).await)
    .map_err(db_err)
}

impl SqlKeyStore {
    /// Check that every alias the store's live keys use has a passphrase that decrypts its
    /// newest key: a misconfiguration is found at start, not at the first signature.
    pub async fn check_aliases(&self) -> Result<(), CryptoError> {
        for (alias, count) in keys_by_alias(&self.db).await? {
            let passphrase = self
                .passphrases
                .get(&alias)
                .map_err(|e| CryptoError::Locked(format!("{e} ({count} keys use it)")))?;
            let (key_id, private): (String, Vec<u8>) = self.timed("checking the passphrases", async { with_pool!(&self.db, p => sqlx::query_as(
                "SELECT key_id, private FROM private_keys WHERE deleted_at IS NULL AND passphrase_alias = $1 ORDER BY id DESC LIMIT 1")
                .bind(&alias).fetch_one(p).await) }).await?;
            let token = std::str::from_utf8(&private).map_err(|_| {
                CryptoError::Internal(format!("key {key_id}: stored key is not a JWE token"))
            })?;
            jwe::decrypt(token, passphrase.as_bytes()).map_err(|e| {
                CryptoError::Locked(format!(
                    "the passphrase for key alias {alias:?} does not decrypt its keys ({count} keys; key {key_id}: {e})"
                ))
            })?;
        }
        Ok(())
    }

    /// Re-encrypt every live key stored under `from` with the passphrase of `to`, in one
    /// transaction (all keys move or none). Returns how many keys moved.
    pub async fn reencrypt(&self, from: &str, to: &str) -> Result<usize, CryptoError> {
        let old = self.passphrases.get(from)?;
        let new = self.passphrases.get(to)?;
        let t = now();
        with_pool!(&self.db, p => {
            let mut tx = p.begin().await.map_err(db_err)?;
            let rows: Vec<(i32, String, Vec<u8>)> = sqlx::query_as(
                "SELECT id, key_id, private FROM private_keys WHERE deleted_at IS NULL AND passphrase_alias = $1 ORDER BY id")
                .bind(from).fetch_all(&mut *tx).await.map_err(db_err)?;
            for (id, key_id, private) in &rows {
                let token = std::str::from_utf8(private).map_err(|_| CryptoError::Internal(format!("key {key_id}: stored key is not a JWE token")))?;
                let plain = jwe::decrypt(token, old.as_bytes()).map_err(|e| CryptoError::Internal(format!("key {key_id}: {e}")))?;
                let token = jwe::encrypt(&plain, new.as_bytes());
                sqlx::query("UPDATE private_keys SET private = $1, passphrase_alias = $2, updated_at = $3 WHERE id = $4")
                    .bind(token.as_bytes()).bind(to).bind(t).bind(id).execute(&mut *tx).await.map_err(db_err)?;
            }
            // Running signers whose default is still `from` stop creating keys under it.
            sqlx::query("DELETE FROM notary_rs_retired_aliases WHERE alias = $1 OR alias = $2").bind(from).bind(to).execute(&mut *tx).await.map_err(db_err)?;
            sqlx::query("INSERT INTO notary_rs_retired_aliases (alias, replaced_by, retired_at) VALUES ($1, $2, $3)")
                .bind(from).bind(to).bind(t).execute(&mut *tx).await.map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(rows.len())
        })
    }
}

#[async_trait]
impl CryptoService for SqlKeyStore {
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError> {
        check_algorithm(algorithm)?;
        let pending: Option<(Vec<u8>,)> = self.timed("finding a pending key", async { with_pool!(&self.db, p => sqlx::query_as(
            "SELECT public FROM private_keys WHERE deleted_at IS NULL AND role = $1 AND gun = $2 AND algorithm = $3 AND last_used IS NULL ORDER BY key_id, id LIMIT 1")
            .bind(role).bind(gun).bind(algorithm).fetch_optional(p).await) }).await?;
        if let Some((public,)) = pending {
            return Ok(PublicKey::new(algorithm, public));
        }
        let alias = self.passphrases.default_alias().to_string();
        let retired: Option<(String,)> = self.timed("checking the alias", async { with_pool!(&self.db, p => sqlx::query_as(
            "SELECT replaced_by FROM notary_rs_retired_aliases WHERE alias = $1").bind(&alias).fetch_optional(p).await) }).await?;
        if let Some((to,)) = retired {
            return Err(CryptoError::Locked(format!(
                "key alias {alias:?} was retired by `notary-signer reencrypt` (keys now use {to:?}): restart this signer with default_alias {to:?}"
            )));
        }
        let key =
            PrivateKey::generate(algorithm).map_err(|e| CryptoError::Unsupported(e.to_string()))?;
        let public = key.public_key();
        let passphrase = self.passphrases.get(&alias)?;
        let token = jwe::encrypt(&key.to_go_bytes(), passphrase.as_bytes());
        let t = now();
        self.timed("storing a new key", async { with_pool!(&self.db, p => sqlx::query(
            "INSERT INTO private_keys (created_at, updated_at, key_id, encryption_alg, keywrap_alg, algorithm, passphrase_alias, public, private, gun, role) \
             VALUES ($1, $1, $2, 'A256GCM', 'PBES2-HS256+A128KW', $3, $4, $5, $6, $7, $8)")
            .bind(t).bind(public.id()).bind(algorithm).bind(&alias).bind(&public.public).bind(token.as_bytes()).bind(gun).bind(role)
            .execute(p).await.map(|_| ())) }).await?;
        Ok(public)
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError> {
        let row: Option<(String, Vec<u8>, String, String)> = self.timed("looking a key up", async { with_pool!(&self.db, p => sqlx::query_as(
            "SELECT algorithm, public, role, gun FROM private_keys WHERE deleted_at IS NULL AND key_id = $1 ORDER BY id LIMIT 1")
            .bind(key_id).fetch_optional(p).await) }).await?;
        Ok(row.map(|(algorithm, public, role, gun)| KeyInfo {
            public: PublicKey::new(algorithm, public),
            role,
            gun,
        }))
    }

    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError> {
        let cached = self.load_private(key_id).await?;
        let sig = tuf_signature(key_id, &cached.key, msg);
        if !cached.marked_used.load(Ordering::Acquire) {
            let t = now();
            self.timed("marking a key used", async { with_pool!(&self.db, p => sqlx::query("UPDATE private_keys SET last_used = $1, updated_at = $1 WHERE deleted_at IS NULL AND key_id = $2")
                .bind(t).bind(key_id).execute(p).await.map(|_| ())) }).await?;
            cached.marked_used.store(true, Ordering::Release);
        }
        Ok(sig)
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError> {
        let t = now();
        self.timed("deleting a key", async { with_pool!(&self.db, p => sqlx::query("UPDATE private_keys SET deleted_at = $1 WHERE deleted_at IS NULL AND key_id = $2")
            .bind(t).bind(key_id).execute(p).await.map(|_| ())) }).await?;
        self.cache().pop(key_id);
        Ok(())
    }

    async fn health(&self) -> Result<(), CryptoError> {
        self.timed("health", async { with_pool!(&self.db, p => sqlx::query("SELECT 1 FROM private_keys LIMIT 1").fetch_optional(p).await.map(|_| ())) }).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    async fn store() -> (SqlKeyStore, tempfile_dir::Dir) {
        let dir = tempfile_dir::Dir::new();
        let db = Db::connect(
            &format!("sqlite:{}/keys.db", dir.0.display()),
            &Default::default(),
        )
        .await
        .unwrap();
        (
            SqlKeyStore::new(
                db,
                Passphrases::single("alias1", Zeroizing::new("pw".into())),
            )
            .await
            .unwrap(),
            dir,
        )
    }

    mod tempfile_dir {
        pub(super) struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "notary-signer-test-{}-{}",
                    std::process::id(),
                    rand_core::RngCore::next_u64(&mut rand_core::OsRng)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn pending_key_reused_until_first_signature() {
        let (s, _d) = store().await;
        let k1 = s
            .create_key("timestamp", "example.com/a", "ecdsa")
            .await
            .unwrap();
        let k2 = s
            .create_key("timestamp", "example.com/a", "ecdsa")
            .await
            .unwrap();
        assert_eq!(k1, k2, "a never-used key is handed out again");
        let other = s
            .create_key("snapshot", "example.com/a", "ecdsa")
            .await
            .unwrap();
        assert_ne!(k1, other);
        let sig = s.sign(&k1.id(), b"msg").await.unwrap();
        assert!(k1.verify(&sig.method, b"msg", &sig.sig));
        let k3 = s
            .create_key("timestamp", "example.com/a", "ecdsa")
            .await
            .unwrap();
        assert_ne!(k1, k3, "a used key is never handed out again");
        assert_eq!(
            s.get_key(&k1.id()).await.unwrap().unwrap().role,
            "timestamp"
        );
        s.delete_key(&k1.id()).await.unwrap();
        assert!(s.get_key(&k1.id()).await.unwrap().is_none());
        assert!(matches!(
            s.sign(&k1.id(), b"m").await,
            Err(CryptoError::NotFound(_))
        ));
        assert!(matches!(
            s.create_key("timestamp", "g", "rsa").await,
            Err(CryptoError::Unsupported(_))
        ));
    }

    #[tokio::test]
    async fn reencrypt_moves_every_key_to_the_new_alias() {
        let dir = tempfile_dir::Dir::new();
        let url = format!("sqlite:{}/keys.db", dir.0.display());
        let db = Db::connect(&url, &Default::default()).await.unwrap();
        let both = || {
            let mut p = Passphrases::single("old", Zeroizing::new("old-pass".into()));
            p.add("new", Zeroizing::new("new-pass".into()));
            p
        };
        let s = SqlKeyStore::new(db.clone(), both()).await.unwrap();
        let k1 = s.create_key("timestamp", "g", "ecdsa").await.unwrap();
        let k2 = s.create_key("snapshot", "g", "ed25519").await.unwrap();
        assert_eq!(s.reencrypt("old", "new").await.unwrap(), 2);
        assert_eq!(s.reencrypt("old", "new").await.unwrap(), 0);
        // Only the new passphrase is needed now.
        let only_new = SqlKeyStore::new(
            db,
            Passphrases::single("new", Zeroizing::new("new-pass".into())),
        )
        .await
        .unwrap();
        for k in [k1, k2] {
            let sig = only_new.sign(&k.id(), b"m").await.unwrap();
            assert!(k.verify(&sig.method, b"m", &sig.sig));
        }
        // A wrong passphrase for the source alias moves nothing.
        let mut wrong = Passphrases::single("new", Zeroizing::new("not-it".into()));
        wrong.add("x", Zeroizing::new("x".into()));
        let w = SqlKeyStore::new(only_new.db.clone(), wrong).await.unwrap();
        assert!(w.reencrypt("new", "x").await.is_err());
        let aliases: Vec<(String,)> =
            with_pool!(&w.db, p => sqlx::query_as("SELECT passphrase_alias FROM private_keys").fetch_all(p).await).unwrap();
        assert!(aliases.iter().all(|(a,)| a == "new"));
        // A store still defaulting to the retired alias creates no key under it.
        let stale = SqlKeyStore::new(w.db.clone(), both()).await.unwrap();
        assert!(
            matches!(stale.create_key("timestamp", "g2", "ecdsa").await, Err(CryptoError::Locked(m)) if m.contains("retired"))
        );
        only_new.check_aliases().await.unwrap();
    }

    #[tokio::test]
    async fn keys_are_encrypted_at_rest_and_survive_reopen() {
        let (s, d) = store().await;
        let k = s.create_key("timestamp", "g", "ed25519").await.unwrap();
        let (private,): (Vec<u8>,) = with_pool!(&s.db, p => sqlx::query_as("SELECT private FROM private_keys").fetch_one(p).await).unwrap();
        assert!(std::str::from_utf8(&private)
            .unwrap()
            .starts_with("eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJlbmMiOiJBMjU2R0NNIi"));
        drop(s);
        let db = Db::connect(
            &format!("sqlite:{}/keys.db", d.0.display()),
            &Default::default(),
        )
        .await
        .unwrap();
        let wrong = SqlKeyStore::new(
            db.clone(),
            Passphrases::single("alias1", Zeroizing::new("nope".into())),
        )
        .await
        .unwrap();
        assert!(matches!(
            wrong.sign(&k.id(), b"m").await,
            Err(CryptoError::Locked(_))
        ));
        assert!(
            matches!(wrong.check_aliases().await, Err(CryptoError::Locked(m)) if m.contains("\"alias1\""))
        );
        let right = SqlKeyStore::new(
            db,
            Passphrases::single("alias1", Zeroizing::new("pw".into())),
        )
        .await
        .unwrap();
        let sig = right.sign(&k.id(), b"m").await.unwrap();
        assert!(k.verify("eddsa", b"m", &sig.sig));
    }
}
