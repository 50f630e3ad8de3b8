//! Reads: the current chain (cache, or one statement), files by checksum and by version.

use super::*;
use crate::gun::Gun;
use crate::role::Role;

impl RepoService {
    /// The file of `role` that the current snapshot names.
    pub(super) async fn by_meta(
        &self,
        gun: &Gun,
        role: &Role,
        chain: &CachedChain,
    ) -> Result<Option<StoredFile>, ServiceError> {
        let Some(sha) = chain.role_sha256.get(role.as_str()) else {
            return Ok(None);
        };
        self.file_by_checksum(gun, role, sha).await
    }

    /// A file by checksum, through the cache (files by checksum never change).
    pub(super) async fn file_by_checksum(
        &self,
        gun: &Gun,
        role: &Role,
        sha: &str,
    ) -> Result<Option<StoredFile>, ServiceError> {
        if let Some(f) = self.cache.file(gun, role, sha) {
            return Ok(Some(f));
        }
        let ticket = self.cache.ticket();
        let f = self.store.by_checksum(gun, role, sha).await?;
        if let Some(f) = &f {
            self.cache.put_file(ticket, gun, role, f);
        }
        Ok(f)
    }

    /// The current timestamp and the snapshot it names, no older than the newest committed when
    /// this call began (see `coherence`): from the cache, else loaded and cached.
    pub(super) async fn chain(&self, gun: &Gun) -> Result<Option<Arc<CachedChain>>, ServiceError> {
        self.chain_with(gun, None).await
    }

    /// `chain`, and if it is loaded, the newest file of `also` read with it (cached when it is
    /// the one the snapshot names).
    pub(super) async fn chain_with(
        &self,
        gun: &Gun,
        also: Option<&Role>,
    ) -> Result<Option<Arc<CachedChain>>, ServiceError> {
        self.coherence.fresh(gun).await?;
        if let Some(c) = self.cache.chain(gun) {
            return Ok(Some(c));
        }
        self.loadable()?;
        let ticket = self.cache.ticket();
        let latest = self.store.latest_chain(gun, also).await?;
        let (newest_snapshot, newest_also) = (latest.snapshot, latest.also);
        let Some(timestamp) = latest.timestamp else {
            return Ok(None);
        };
        let ts = SignedFile::parse_bytes(timestamp.data.clone()).map_err(ServiceError::internal)?;
        let body: md::MetaBody = ts.body().map_err(ServiceError::internal)?;
        let sha = body
            .meta
            .get(md::SNAPSHOT)
            .and_then(|m| m.sha256_hex())
            .ok_or_else(|| {
                ServiceError::internal(format!("{gun}: timestamp has no snapshot checksum"))
            })?;
        // Usually the newest snapshot, read with the timestamp; else the one it names.
        let snapshot = match newest_snapshot.filter(|s| s.sha256 == sha) {
            Some(s) => {
                self.cache.put_file(ticket, gun, &Role::SNAPSHOT, &s);
                s
            }
            None => match self.file_by_checksum(gun, &Role::SNAPSHOT, &sha).await? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        let chain = Arc::new(
            CachedChain::from_files(timestamp, &ts, snapshot)
                .map_err(|e| ServiceError::internal(format!("{gun}: {e}")))?,
        );
        if let (Some(role), Some(f)) = (also, newest_also) {
            if chain.role_sha256.get(role.as_str()).map(|s| &**s) == Some(f.sha256.as_str()) {
                self.cache.put_file(ticket, gun, role, &f);
            }
        }
        self.cache.put_chain(ticket, gun, chain.clone());
        Ok(Some(chain))
    }

    /// `GET …/<role>.json`.
    pub async fn current(&self, gun: &Gun, role: &Role) -> Result<StoredFile, ServiceError> {
        match role.as_str() {
            md::TIMESTAMP => Ok(self.fresh_chain(gun).await?.timestamp.clone()),
            md::SNAPSHOT => Ok(self.fresh_chain(gun).await?.snapshot.clone()),
            _ => {
                let chain = self
                    .chain_with(gun, Some(role))
                    .await?
                    .ok_or(ServiceError::NotFound)?;
                let mut f = self
                    .by_meta(gun, role, &chain)
                    .await?
                    .ok_or(ServiceError::NotFound)?;
                // "current" reads report when the file became current: the timestamp's time.
                f.modified = f.modified.max(chain.timestamp.modified);
                Ok(f)
            }
        }
    }

    /// `GET …/<role>.<sha256>.json`: a file by checksum (the client verifies it).
    pub async fn by_checksum(
        &self,
        gun: &Gun,
        role: &Role,
        sha256_hex: &str,
    ) -> Result<StoredFile, ServiceError> {
        self.file_by_checksum(gun, role, sha256_hex)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// `GET …/<version>.<role>.json`: immutable once stored, but a deleted and re-created
    /// repository reuses version numbers, so the cache is checked after a changefeed barrier.
    pub async fn by_version(
        &self,
        gun: &Gun,
        role: &Role,
        version: i64,
    ) -> Result<StoredFile, ServiceError> {
        self.coherence.fresh(gun).await?;
        if let Some(f) = self.cache.version(gun, role, version) {
            return Ok(f);
        }
        self.loadable()?;
        let ticket = self.cache.ticket();
        let f = self
            .store
            .by_version(gun, role, version)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.cache.put_version(ticket, gun, role, version, &f);
        Ok(f)
    }

    /// The current timestamp and snapshot, regenerated first if either has expired (Go
    /// `GetOrCreateTimestamp`; with background re-signing this rarely happens on a read).
    pub(super) async fn fresh_chain(&self, gun: &Gun) -> Result<Arc<CachedChain>, ServiceError> {
        let chain = self.chain(gun).await?.ok_or(ServiceError::NotFound)?;
        let now = Utc::now();
        if !self.due(gun, &chain, now) || !self.signs() || self.unsignable.chain(gun, &chain) {
            // (A read-only instance or a mirror serves what its source last signed; a chain this
            // server cannot re-sign is served as stored: the client judges expiry.)
            return Ok(chain);
        }
        match self.regenerate(gun, &chain, now, false).await {
            Ok(_) => self.chain(gun).await?.ok_or(ServiceError::NotFound),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                self.unsignable.mark_chain(gun, &chain, &e);
                Ok(chain)
            }
        }
    }
}
