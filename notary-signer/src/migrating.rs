//! Keys moving from the SQL store to AWS KMS (`storage.backend = "awskms"` with
//! `storage.migrate_from`). TUF moves a repository's timestamp or snapshot key only by a new
//! key and a root rotation the owner signs, so for a while both stores hold keys in use:
//!
//! 1. New keys are made in KMS only; a never-used KMS key for the same role and GUN is handed
//!    out again (`kms` invariant 2), so the key `notary-server migrate-keys` prepared is the
//!    one the owner's `notary key rotate GUN timestamp -r` receives.
//! 2. A key held by the SQL store still signs, until the owner's rotation replaces it in the
//!    root; every other key is looked up and used in KMS. Which store holds a key is learnt
//!    at its first use in the process.
//! 3. Deleting a key deletes it from whichever store holds it.
//! 4. The store is healthy when both stores answer.
//!
//! Tests: `notary-tools/tests/kms_signer.rs::sql_keys_move_to_kms_by_rotation`.

use std::collections::HashMap;

use async_trait::async_trait;
use notary_tuf::{PublicKey, Signature};

use crate::config::SqlStorage;
use crate::kms::{KmsConfig, KmsKeyStore};
use crate::sql::SqlKeyStore;
use crate::{CryptoError, CryptoService, KeyInfo};

/// The store that holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    /// AWS KMS.
    Kms,
    /// The SQL store keys move from.
    Sql,
}

/// KMS, and the SQL store keys move from (see the module).
pub struct MigratingStore {
    /// Where keys are made and moved to.
    pub kms: KmsKeyStore,
    /// Where keys still in use come from.
    pub from: SqlKeyStore,
    held: std::sync::Mutex<HashMap<String, Holder>>,
}

impl MigratingStore {
    /// Both stores, the SQL store's passphrases checked now.
    pub async fn open(kms: &KmsConfig, from: &SqlStorage) -> Result<Self, CryptoError> {
        Ok(MigratingStore {
            kms: KmsKeyStore::open(kms).await?,
            from: SqlKeyStore::open(from).await?,
            held: Default::default(),
        })
    }

    /// Both stores, the SQL store opened to look keys up only (no passphrase needed): what
    /// `notary-server migrate-keys` uses to find which store holds a key and to make the KMS
    /// key a rotation will hand out.
    pub async fn open_for_lookup(kms: &KmsConfig, from: &SqlStorage) -> Result<Self, CryptoError> {
        let db =
            notary_common::db::Db::connect(&from.db_url, &notary_common::db::PoolConfig::default())
                .await?;
        Ok(MigratingStore {
            kms: KmsKeyStore::open(kms).await?,
            from: SqlKeyStore::for_lookup(db),
            held: Default::default(),
        })
    }

    /// Which store holds `key_id`, if either does (the SQL store asked first: one local query).
    pub async fn holder(&self, key_id: &str) -> Result<Option<Holder>, CryptoError> {
        if let Some(h) = notary_common::sync::lock(&self.held).get(key_id) {
            return Ok(Some(*h));
        }
        let h = if self.from.get_key(key_id).await?.is_some() {
            Holder::Sql
        } else if self.kms.get_key(key_id).await?.is_some() {
            Holder::Kms
        } else {
            return Ok(None);
        };
        notary_common::sync::lock(&self.held).insert(key_id.to_string(), h);
        Ok(Some(h))
    }

    fn store(&self, h: Holder) -> &dyn CryptoService {
        match h {
            Holder::Kms => &self.kms,
            Holder::Sql => &self.from,
        }
    }
}

#[async_trait]
impl CryptoService for MigratingStore {
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError> {
        self.kms.create_key(role, gun, algorithm).await
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError> {
        match self.holder(key_id).await? {
            Some(h) => self.store(h).get_key(key_id).await,
            None => Ok(None),
        }
    }

    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError> {
        match self.holder(key_id).await? {
            Some(h) => self.store(h).sign(key_id, msg).await,
            None => Err(CryptoError::NotFound(key_id.to_string())),
        }
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError> {
        notary_common::sync::lock(&self.held).remove(key_id);
        self.from.delete_key(key_id).await?;
        self.kms.delete_key(key_id).await
    }

    async fn health(&self) -> Result<(), CryptoError> {
        self.kms.health().await?;
        self.from.health().await
    }
}
