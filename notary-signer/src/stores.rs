//! Opening the key store a signer config names ([`crate::config::Storage`]): the signer's
//! service and the operator commands that work on its keys open it the same way.

use std::sync::Arc;

use crate::config::Storage;
use crate::memory::MemoryKeyStore;
use crate::migrating::MigratingStore;
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
        Storage::Sql(sql) => Arc::new(SqlKeyStore::open(sql).await?),
    })
}
