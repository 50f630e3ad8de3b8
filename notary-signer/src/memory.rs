//! In-memory key store (tests, and the server's `local` trust service when no database keeps keys).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use notary_tuf::{PrivateKey, PublicKey, Signature};
use tokio::sync::Mutex;

use crate::{check_algorithm, tuf_signature, CryptoError, CryptoService, KeyInfo};

struct Entry {
    key: Arc<PrivateKey>,
    role: String,
    gun: String,
    used: bool,
}

/// Keys in this process's memory only (tests, trials, a server without persistence).
#[derive(Default)]
pub struct MemoryKeyStore {
    keys: Mutex<BTreeMap<String, Entry>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CryptoService for MemoryKeyStore {
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError> {
        check_algorithm(algorithm)?;
        let mut keys = self.keys.lock().await;
        // BTreeMap iterates by key ID: the smallest pending key is reused, as in the Go SQL store.
        if let Some(e) = keys
            .values()
            .find(|e| !e.used && e.role == role && e.gun == gun && e.key.algorithm() == algorithm)
        {
            return Ok(e.key.public_key());
        }
        let key =
            PrivateKey::generate(algorithm).map_err(|e| CryptoError::Unsupported(e.to_string()))?;
        let public = key.public_key();
        keys.insert(
            public.id(),
            Entry {
                key: Arc::new(key),
                role: role.into(),
                gun: gun.into(),
                used: false,
            },
        );
        Ok(public)
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError> {
        let keys = self.keys.lock().await;
        Ok(keys.get(key_id).map(|e| KeyInfo {
            public: e.key.public_key(),
            role: e.role.clone(),
            gun: e.gun.clone(),
        }))
    }

    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError> {
        let key = {
            let mut keys = self.keys.lock().await;
            let e = keys
                .get_mut(key_id)
                .ok_or_else(|| CryptoError::NotFound(key_id.into()))?;
            e.used = true;
            e.key.clone()
        };
        Ok(tuf_signature(key_id, &key, msg))
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError> {
        self.keys.lock().await.remove(key_id);
        Ok(())
    }

    async fn health(&self) -> Result<(), CryptoError> {
        Ok(())
    }
}
