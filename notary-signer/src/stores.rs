//! Opening the key store a signer config names ([`crate::config::Storage`]): the signer's
//! service and the operator commands that work on its keys open it the same way.

use std::sync::Arc;

use notary_common::db::{Db, PoolConfig};

use crate::config::{SqlStorage, Storage};
use crate::memory::MemoryKeyStore;
use crate::migrating::MigratingStore;
use crate::passphrase::Passphrases;
use crate::sql::SqlKeyStore;
use crate::{CryptoError, CryptoService};

/// The store `storage` names, ready to sign (a SQL store's passphrases checked now).
pub async fn open(storage: &Storage) -> Result<Arc<dyn CryptoService>, CryptoError> {
    Ok(match storage {
        Storage::Memory => Arc::new(MemoryKeyStore::new()),
        Storage::AwsKms {
            kms,
            migrate_from: None,
        } => {
            tracing::info!(region = ?kms.region, endpoint = ?kms.endpoint, "using AWS KMS");
            Arc::new(crate::kms::KmsKeyStore::open(kms).await?)
        }
        Storage::AwsKms {
            kms,
            migrate_from: Some(from),
        } => {
            tracing::info!(region = ?kms.region, endpoint = ?kms.endpoint,
                "using AWS KMS; keys of the SQL store named by storage.migrate_from still sign");
            Arc::new(MigratingStore::open(kms, from).await?)
        }
        Storage::Pkcs11(uri) => {
            tracing::info!(token = %uri.token, module = %uri.module_path.display(), "using a PKCS#11 token");
            Arc::new(crate::pkcs11::Pkcs11KeyStore::open(uri).await?)
        }
        Storage::Sql(sql) => Arc::new(open_sql(sql).await?),
    })
}

/// A SQL key store whose every stored key decrypts now, not at its first signature; with a
/// default alias, that alias's passphrase is required too.
pub async fn open_sql(sql: &SqlStorage) -> Result<SqlKeyStore, CryptoError> {
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
