//! The repository service: publish, reads, key endpoints, delete and changefeed, independent of
//! HTTP. Validation is `notary_tuf::validation`; signing goes through `CryptoService`.

use crate::audit::{roles_of, Action, Actor, Record};
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use notary_common::sync::lock;
use notary_signer::{sign_role, CryptoService, SignRoleError};
use notary_tuf::metadata::{self as md, envelope, SignedFile};
use notary_tuf::validation::{
    self, roles_needed, timestamp_body, StoredRepo, ToSign, Update, ValidationError,
};
use notary_tuf::PublicKey;
use serde_json::json;

use crate::cache::{CachedChain, Expected, MetaCache};
use crate::coherence::{Coherence, LeaseConfig, WriteFuture};
use crate::errors::{ApiError, Code};
use crate::metrics::RotationCounts;
use crate::storage::{Change, Imported, MetaStore, StoreError, StoredFile};

pub struct RepoService {
    pub store: Arc<dyn MetaStore>,
    pub cache: Arc<MetaCache>,
    coherence: Coherence,
    pub crypto: Arc<dyn CryptoService>,
    /// Algorithm of server-created timestamp/snapshot keys.
    pub key_algorithm: String,
    /// Reads only (e.g. on a streaming replica): nothing is written or signed.
    pub read_only: bool,
    /// Repositories whose expired timestamp this server cannot re-sign (it holds no key for it,
    /// or their root has expired): GUN → the timestamp's SHA-256. Their stored chain is served
    /// as it is (clients judge expiry) and signing is not tried again until the chain changes.
    unsignable: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Repositories whose expired snapshot this server cannot re-sign (the owner holds its
    /// key): GUN → the snapshot's SHA-256. Timestamps are still signed over it.
    snapshot_unsignable: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Last check of the imported repositories.
    rotation: std::sync::Mutex<Option<RotationCounts>>,
    /// Key bindings read so far (key ID → GUN, role): they never change.
    bindings: std::sync::Mutex<lru::LruCache<String, (String, String)>>,
    /// Every server key that stored roots list is bound (see [`RepoService::spawn_key_binding`]);
    /// until then a root naming a held key that no record ties to a repository waits (503).
    bindings_complete: std::sync::atomic::AtomicBool,
}

/// Whether this server holds the keys an imported repository's current root gives the roles
/// the server signs (see `notary-server imported`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    pub gun: String,
    pub source: String,
    pub imported_at: String,
    pub timestamp_version: Option<i64>,
    pub timestamp_expires: Option<DateTime<Utc>>,
    pub holds_timestamp_key: bool,
    pub holds_snapshot_key: bool,
}

impl KeyStatus {
    /// Publishing needs a key rotation first: this server cannot sign the timestamp.
    pub fn awaits_rotation(&self) -> bool {
        !self.holds_timestamp_key
    }
}

/// A repository as `notary-server repos` / `show` report it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoStatus {
    pub gun: String,
    /// Per role (root, targets, snapshot, timestamp, delegations): newest version, versions
    /// stored, their bytes.
    pub roles: BTreeMap<String, RoleStatus>,
    pub timestamp_expires: Option<DateTime<Utc>>,
    /// Files stored over every role and version, and their bytes.
    pub files: i64,
    pub bytes: i64,
    pub holds_timestamp_key: bool,
    pub holds_snapshot_key: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleStatus {
    pub newest: i64,
    pub versions: i64,
    pub bytes: i64,
}

/// What `prune` removed (or would remove) of one repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pruned {
    pub gun: String,
    pub removed: u64,
    pub kept: u64,
    /// Role → versions removed.
    pub by_role: BTreeMap<String, u64>,
}

/// Most changefeed rows one request returns.
pub const MAX_CHANGEFEED_RECORDS: i64 = 1000;

/// A changefeed page, serialised with Go's field order.
#[derive(serde::Serialize)]
pub struct ChangeList {
    pub count: usize,
    pub records: Vec<Change>,
}

/// How a [`RepoService`] runs.
pub struct ServiceOptions {
    /// Algorithm of server-created timestamp/snapshot keys.
    pub key_algorithm: String,
    /// A changefeed check runs at least this often (`coherence`).
    pub check_period: std::time::Duration,
    /// Reads only (e.g. on a streaming replica): nothing is written or signed.
    pub read_only: bool,
    /// The read lease (Postgres, writable).
    pub lease: Option<LeaseConfig>,
}

impl RepoService {
    /// The service, following the changefeed for its cache.
    pub fn new(
        store: Arc<dyn MetaStore>,
        cache: Arc<MetaCache>,
        crypto: Arc<dyn CryptoService>,
        opts: ServiceOptions,
    ) -> Self {
        let ServiceOptions {
            key_algorithm,
            check_period,
            read_only,
            lease,
        } = opts;
        let coherence =
            Coherence::start(store.clone(), cache.clone(), check_period, read_only, lease);
        RepoService {
            store,
            cache,
            coherence,
            crypto,
            key_algorithm,
            read_only,
            unsignable: Default::default(),
            snapshot_unsignable: Default::default(),
            rotation: Default::default(),
            bindings: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(100_000).expect("non-zero"),
            )),
            bindings_complete: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Bind the server keys that stored roots list to their repositories, in the background
    /// (500 roots a step, resumable: a Go database's first start serves at once, however many
    /// repositories it holds); steps that fail are retried.
    pub fn spawn_key_binding(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut steps = 0u64;
            loop {
                match me.store.bind_stored_keys(500).await {
                    Ok(true) => break,
                    Ok(false) => steps += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "binding stored server keys to their repositories; retrying in 5 s");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                }
            }
            me.bindings_complete
                .store(true, std::sync::atomic::Ordering::SeqCst);
            if steps > 0 {
                tracing::info!(
                    roots = steps * 500,
                    seconds = started.elapsed().as_secs_f64(),
                    "bound the server keys that stored roots list to their repositories"
                );
            }
        });
    }

    fn writable(&self) -> Result<(), ApiError> {
        if self.read_only {
            return Err(ApiError::new(Code::ReadOnly));
        }
        Ok(())
    }

    /// A cache miss is about to load from the database: refused while it is behind.
    fn loadable(&self) -> Result<(), ApiError> {
        if self.coherence.is_behind() {
            return Err(ApiError::new(Code::StorageUnavailable));
        }
        Ok(())
    }

    /// Validate, sign what the server owns, and store everything in one transaction.
    pub async fn publish(
        &self,
        gun: &str,
        parts: Vec<(String, bytes::Bytes)>,
        actor: &Actor,
    ) -> Result<u32, ApiError> {
        self.writable()?;
        let mut uploads = BTreeMap::new();
        for (role, bytes) in parts {
            let file = SignedFile::parse(&bytes).map_err(|e| {
                tracing::info!(gun, role, error = %e, "malformed upload");
                ApiError::new(Code::MalformedJson)
            })?;
            // Go decodes every part, then ignores an uploaded timestamp: the server makes its own.
            if role != md::TIMESTAMP {
                uploads.insert(role, file); // duplicates: last one wins, as in Go
            }
        }
        let stored = self
            .stored_repo(gun, roles_needed(uploads.keys().map(|s| s.as_str())))
            .await?;
        let now = Utc::now();
        let plan =
            validation::validate_update(gun, &uploads, &stored, now).map_err(ApiError::from)?;
        if let Some(root) = uploads.get(md::ROOT) {
            self.check_root_keys(gun, root).await?;
        }
        let mut updates = plan.updates;

        let snapshot_bytes = match plan.snapshot {
            Some(to_sign) => {
                let Some(update) = self.sign_snapshot(gun, to_sign).await? else {
                    return Err(ApiError::from(ValidationError::BadHierarchy {
                        missing: md::SNAPSHOT.into(),
                        msg: format!(
                            "no snapshot was included in update and server does not hold current snapshot key for repository {gun}: \
                             if you hold the snapshot key, publish with it; if the server this repository was imported from held it, \
                             replace the snapshot and timestamp keys with `notary-rekey --server <this server> --gun {gun}` and your root key"
                        ),
                    }));
                };
                let file = update.data.clone();
                updates.push(update);
                file
            }
            None => plan
                .uploaded_snapshot
                .expect("validated plan has an uploaded snapshot when none is generated"),
        };

        let (ts_version, ts_body) =
            timestamp_body(plan.prev_timestamp_version, &snapshot_bytes, now)
                .map_err(ApiError::from)?;
        let ts = ToSign {
            role: plan.timestamp_role,
            version: ts_version,
            body: ts_body,
        };
        let ts_file = self.sign_timestamp(gun, &ts).await?;
        updates.push(Update {
            role: md::TIMESTAMP.into(),
            version: ts_version,
            data: ts_file,
        });

        let record = Record {
            action: Action::Publish,
            gun,
            roles: roles_of(updates.iter().map(|u| (u.role.as_str(), u.version))),
            actor,
        };
        self.commit(gun, &updates, None, Some(&record)).await?;
        record.log();
        tracing::info!(gun, timestamp_version = ts_version, roles = ?updates.iter().map(|u| u.role.as_str()).collect::<Vec<_>>(), "updated repository");
        Ok(ts_version as u32)
    }

    /// Store `updates` (the new timestamp among them) and let the changefeed check that reaches
    /// their row install what they make current in the cache (`MetaCache::expect`), so that
    /// this instance need not read its own write back. `unchanged_snapshot`: the current
    /// snapshot, when `updates` has none.
    async fn commit(
        &self,
        gun: &str,
        updates: &[Update],
        unchanged_snapshot: Option<&StoredFile>,
        audit: Option<&Record<'_>>,
    ) -> Result<(), StoreError> {
        let at = crate::storage::now();
        let mut files: Vec<(String, StoredFile)> = updates
            .iter()
            .map(|u| {
                (
                    u.role.clone(),
                    StoredFile::from_bytes(u.data.clone(), Some(at)),
                )
            })
            .collect();
        let timestamp = files
            .iter()
            .position(|(role, _)| role == md::TIMESTAMP)
            .map(|i| files.remove(i).1);
        let snapshot = files
            .iter()
            .find(|(role, _)| role == md::SNAPSHOT)
            .map(|(_, f)| f)
            .or(unchanged_snapshot);
        let expected = match (timestamp, snapshot) {
            (Some(ts), Some(snap)) => match SignedFile::parse(&ts.data)
                .map_err(|e| StoreError::Db(format!("new timestamp: {e}")))
                .and_then(|parsed| CachedChain::from_files(ts, &parsed, snap.clone()))
            {
                Ok(chain) => Some(chain),
                Err(e) => {
                    tracing::warn!(gun, error = %e, "new chain not cached");
                    None
                }
            },
            _ => None,
        };
        let store = &self.store;
        let write = |acked: Option<Vec<String>>| -> WriteFuture<'_, ()> {
            Box::pin(async move {
                store
                    .update_many(gun, updates, at, acked.as_deref(), audit)
                    .await
            })
        };
        let Some(chain) = expected else {
            return self.coherence.write(gun, write).await;
        };
        let sha = chain.timestamp.sha256.clone();
        self.cache.expect(
            gun,
            &sha,
            Expected {
                chain: Arc::new(chain),
                files,
            },
        );
        let stored = self.coherence.write(gun, write).await;
        if stored.is_err() {
            self.cache.unexpect(gun, &sha);
        }
        stored
    }

    /// Sign a snapshot the server makes with the keys it holds (the one place snapshots are
    /// signed): the file to store, or `None` if it holds fewer than the role's threshold (the
    /// owner holds the snapshot key).
    async fn sign_snapshot(&self, gun: &str, to_sign: ToSign) -> Result<Option<Update>, ApiError> {
        let to_sign = self.own_keys(gun, to_sign).await?;
        match sign_role(self.crypto.as_ref(), &to_sign).await {
            Ok(sigs) => Ok(Some(Update {
                role: md::SNAPSHOT.into(),
                version: to_sign.version,
                data: envelope(&to_sign.body, &sigs),
            })),
            Err(SignRoleError::Insufficient { .. }) => Ok(None),
            Err(SignRoleError::Crypto(c)) => Err(ApiError::from(c)),
        }
    }

    async fn sign_timestamp(&self, gun: &str, ts: &ToSign) -> Result<Vec<u8>, ApiError> {
        let ts = &self.own_keys(gun, ts.clone()).await?;
        let sigs = sign_role(self.crypto.as_ref(), ts).await.map_err(|e| match e {
            // sic: two spaces, as the Go server words it; then what to do about it.
            SignRoleError::Insufficient { .. } => ApiError::from(ValidationError::BadRoot(format!(
                "no  timestamp keys exist on the server for {gun}: if this repository was imported from another server, \
                 rotate its timestamp key with `notary -s <this server> key rotate {gun} timestamp -r` (you hold the snapshot key) \
                 or `notary-rekey --server <this server> --gun {gun}` (the old server held it too)"
            ))),
            SignRoleError::Crypto(c) => ApiError::from(c),
        })?;
        Ok(envelope(&ts.body, &sigs))
    }

    /// The stored files validation needs, resolved through the current timestamp → snapshot.
    async fn stored_repo(
        &self,
        gun: &str,
        needed: std::collections::BTreeSet<String>,
    ) -> Result<StoredRepo, ApiError> {
        let mut repo = StoredRepo::default();
        let Some(chain) = self.chain(gun).await? else {
            return Ok(repo);
        };
        for role in needed
            .iter()
            .filter(|r| *r != md::SNAPSHOT && *r != md::TIMESTAMP)
        {
            if let Some(f) = self.by_meta(gun, role, &chain).await? {
                repo.files.insert(role.clone(), f.data.to_vec());
            }
        }
        repo.files
            .insert(md::SNAPSHOT.into(), chain.snapshot.data.to_vec());
        repo.files
            .insert(md::TIMESTAMP.into(), chain.timestamp.data.to_vec());
        Ok(repo)
    }

    /// The root the chain's snapshot names, parsed.
    async fn chain_root(
        &self,
        gun: &str,
        chain: &CachedChain,
    ) -> Result<Option<SignedFile>, ApiError> {
        match self.by_meta(gun, md::ROOT, chain).await? {
            Some(f) => Ok(Some(
                SignedFile::parse(&f.data).map_err(ApiError::internal)?,
            )),
            None => Ok(None),
        }
    }

    /// The file of `role` that the current snapshot names.
    async fn by_meta(
        &self,
        gun: &str,
        role: &str,
        chain: &CachedChain,
    ) -> Result<Option<StoredFile>, ApiError> {
        let Some(sha) = chain.role_sha256.get(role) else {
            return Ok(None);
        };
        self.file_by_checksum(gun, role, sha).await
    }

    /// A file by checksum, through the cache (files by checksum never change).
    async fn file_by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha: &str,
    ) -> Result<Option<StoredFile>, ApiError> {
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
    async fn chain(&self, gun: &str) -> Result<Option<Arc<CachedChain>>, ApiError> {
        self.chain_with(gun, None).await
    }

    /// `chain`, and if it is loaded, the newest file of `also` read with it (cached when it is
    /// the one the snapshot names).
    async fn chain_with(
        &self,
        gun: &str,
        also: Option<&str>,
    ) -> Result<Option<Arc<CachedChain>>, ApiError> {
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
        let ts = SignedFile::parse(&timestamp.data).map_err(ApiError::internal)?;
        let body: md::MetaBody = ts.body().map_err(ApiError::internal)?;
        let sha = body
            .meta
            .get(md::SNAPSHOT)
            .and_then(|m| m.sha256_hex())
            .ok_or_else(|| {
                ApiError::internal(format!("{gun}: timestamp has no snapshot checksum"))
            })?;
        // Usually the newest snapshot, read with the timestamp; else the one it names.
        let snapshot = match newest_snapshot.filter(|s| s.sha256 == sha) {
            Some(s) => {
                self.cache.put_file(ticket, gun, md::SNAPSHOT, &s);
                s
            }
            None => match self.file_by_checksum(gun, md::SNAPSHOT, &sha).await? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        let chain = Arc::new(
            CachedChain::from_files(timestamp, &ts, snapshot)
                .map_err(|e| ApiError::internal(format!("{gun}: {e}")))?,
        );
        if let (Some(role), Some(f)) = (also, newest_also) {
            if chain.role_sha256.get(role).map(|s| &**s) == Some(f.sha256.as_str()) {
                self.cache.put_file(ticket, gun, role, &f);
            }
        }
        self.cache.put_chain(ticket, gun, chain.clone());
        Ok(Some(chain))
    }

    /// `GET …/<role>.json`.
    pub async fn current(&self, gun: &str, role: &str) -> Result<StoredFile, ApiError> {
        match role {
            md::TIMESTAMP => Ok(self.fresh_chain(gun).await?.timestamp.clone()),
            md::SNAPSHOT => Ok(self.fresh_chain(gun).await?.snapshot.clone()),
            _ => {
                let chain = self
                    .chain_with(gun, Some(role))
                    .await?
                    .ok_or_else(ApiError::not_found)?;
                let mut f = self
                    .by_meta(gun, role, &chain)
                    .await?
                    .ok_or_else(ApiError::not_found)?;
                // "current" reads report when the file became current: the timestamp's time.
                f.modified = f.modified.max(chain.timestamp.modified);
                Ok(f)
            }
        }
    }

    pub async fn by_checksum(
        &self,
        gun: &str,
        role: &str,
        sha256_hex: &str,
    ) -> Result<StoredFile, ApiError> {
        self.file_by_checksum(gun, role, sha256_hex)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// `GET …/<version>.<role>.json`: immutable once stored, but a deleted and re-created
    /// repository reuses version numbers, so the cache is checked after a changefeed barrier.
    pub async fn by_version(
        &self,
        gun: &str,
        role: &str,
        version: i64,
    ) -> Result<StoredFile, ApiError> {
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
            .ok_or_else(ApiError::not_found)?;
        self.cache.put_version(ticket, gun, role, version, &f);
        Ok(f)
    }

    /// The current timestamp and snapshot, regenerated first if either has expired (Go
    /// `GetOrCreateTimestamp`; with background re-signing this rarely happens on a read).
    async fn fresh_chain(&self, gun: &str) -> Result<Arc<CachedChain>, ApiError> {
        let chain = self.chain(gun).await?.ok_or_else(ApiError::not_found)?;
        let now = Utc::now();
        if !self.due(gun, &chain, now) || self.read_only || self.is_unsignable(gun, &chain) {
            // (A read-only instance serves what the primary region last signed; a chain this
            // server cannot re-sign is served as stored: the client judges expiry.)
            return Ok(chain);
        }
        match self.regenerate(gun, &chain, now, false).await {
            Ok(_) => self.chain(gun).await?.ok_or_else(ApiError::not_found),
            Err(e) if matches!(e.code, Code::SignerUnavailable | Code::StorageUnavailable) => {
                Err(e)
            }
            Err(e) => {
                self.mark_unsignable(gun, &chain, &e);
                Ok(chain)
            }
        }
    }

    /// Whether `chain` needs re-signing before `deadline`: its timestamp expires, or its snapshot
    /// does and this server can sign one.
    fn due(&self, gun: &str, chain: &CachedChain, deadline: DateTime<Utc>) -> bool {
        chain.timestamp_expires < deadline
            || (chain.snapshot_expires < deadline && !self.is_snapshot_unsignable(gun, chain))
    }

    fn is_snapshot_unsignable(&self, gun: &str, chain: &CachedChain) -> bool {
        lock(&self.snapshot_unsignable).get(gun) == Some(&chain.snapshot.sha256)
    }

    /// Remember (and log once) that `gun`'s snapshot cannot be re-signed here.
    fn mark_snapshot_unsignable(&self, gun: &str, chain: &CachedChain) {
        let mut u = lock(&self.snapshot_unsignable);
        if u.insert(gun.to_string(), chain.snapshot.sha256.clone())
            .as_ref()
            != Some(&chain.snapshot.sha256)
        {
            tracing::warn!(
                gun,
                snapshot_expires = %chain.snapshot_expires,
                "this repository's snapshot expired and this server holds no key for it; timestamps are signed over the stored snapshot (clients judge its expiry) until its owner publishes a new one"
            );
        }
    }

    fn is_unsignable(&self, gun: &str, chain: &CachedChain) -> bool {
        lock(&self.unsignable).get(gun) == Some(&chain.timestamp.sha256)
    }

    /// Remember (and log once) that `gun`'s current chain cannot be re-signed here.
    fn mark_unsignable(&self, gun: &str, chain: &CachedChain, why: &ApiError) {
        let mut u = lock(&self.unsignable);
        if u.insert(gun.to_string(), chain.timestamp.sha256.clone())
            .as_ref()
            != Some(&chain.timestamp.sha256)
        {
            let why = why
                .detail
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default();
            tracing::warn!(
                gun,
                timestamp_expires = %chain.timestamp_expires,
                why,
                "cannot re-sign this repository's expired metadata; serving it as stored (clients judge expiry) until its owner publishes or rotates keys"
            );
        }
    }

    /// Sign and store a new timestamp (and a new snapshot if it expires before `deadline`).
    /// Returns false when another instance stored a newer one first.
    async fn regenerate(
        &self,
        gun: &str,
        chain: &CachedChain,
        deadline: DateTime<Utc>,
        ahead: bool,
    ) -> Result<bool, ApiError> {
        let now = Utc::now();
        let ts = SignedFile::parse(&chain.timestamp.data).map_err(ApiError::internal)?;
        let snap = SignedFile::parse(&chain.snapshot.data).map_err(ApiError::internal)?;
        // The root in force (the one this chain names) must not be expired.
        let root_file = self
            .chain_root(gun, chain)
            .await?
            .ok_or_else(|| ApiError::internal(format!("{gun}: no current root")))?;
        let root = validation::load_root(gun, &root_file, None, 1, false, now).map_err(|e| {
            ApiError::with(
                Code::InvalidUpdate,
                json!(format!("the root in force cannot be used: {e}")),
            )
        })?;
        let mut updates = Vec::new();
        let snapshot_bytes = if snap.expired(deadline) && !self.is_snapshot_unsignable(gun, chain) {
            let to_sign =
                validation::refreshed_snapshot(&root, &snap, now).map_err(ApiError::internal)?;
            match self.sign_snapshot(gun, to_sign).await? {
                Some(update) => {
                    let file = update.data.clone();
                    updates.push(update);
                    file
                }
                // The owner holds the snapshot key: the timestamp is signed over the stored one.
                None => {
                    self.mark_snapshot_unsignable(gun, chain);
                    if !ts.expired(deadline) {
                        return Ok(false);
                    }
                    chain.snapshot.data.to_vec()
                }
            }
        } else {
            chain.snapshot.data.to_vec()
        };
        let (v, body) = timestamp_body(Some(ts.common.version), &snapshot_bytes, now)
            .map_err(ApiError::internal)?;
        let role = root.base_role(md::TIMESTAMP).map_err(ApiError::internal)?;
        let ts_file = self
            .sign_timestamp(
                gun,
                &ToSign {
                    role,
                    version: v,
                    body,
                },
            )
            .await?;
        updates.push(Update {
            role: md::TIMESTAMP.into(),
            version: v,
            data: ts_file,
        });
        let unchanged_snapshot = (updates.len() == 1).then_some(&chain.snapshot);
        match self.commit(gun, &updates, unchanged_snapshot, None).await {
            Ok(()) => {
                tracing::info!(
                    gun,
                    timestamp_version = v,
                    snapshot = updates.len() > 1,
                    ahead,
                    "re-signed timestamp"
                );
                Ok(true)
            }
            // Another instance refreshed it first: serve theirs.
            Err(StoreError::OldVersion) => {
                tracing::info!(
                    gun,
                    timestamp_version = v,
                    ahead,
                    "another instance re-signed the timestamp first"
                );
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Re-sign, ahead of expiry, the timestamps (and snapshots) of cached repositories that
    /// expire within `before`, checking every `every`. Per repository only the instance holding
    /// its re-sign lock does it; it re-reads the chain under the lock (after a barrier), so
    /// a repository another instance just refreshed is left alone.
    pub fn spawn_resigner(
        self: &Arc<Self>,
        before: std::time::Duration,
        every: std::time::Duration,
    ) {
        if before.is_zero() || self.read_only {
            return;
        }
        let me = self.clone();
        let before = chrono::Duration::from_std(before).unwrap_or(chrono::Duration::days(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for gun in me.cache.chains_due(Utc::now() + before) {
                    // (Chains this server cannot re-sign stay due: skipped without taking the lock.)
                    if me.cache.chain(&gun).is_some_and(|c| {
                        !me.due(&gun, &c, Utc::now() + before) || me.is_unsignable(&gun, &c)
                    }) {
                        continue;
                    }
                    if let Err(e) = me.resign_ahead(&gun, before).await {
                        tracing::warn!(gun, error = ?e, "background re-signing failed; reads will re-sign on expiry");
                    }
                }
            }
        });
    }

    async fn resign_ahead(&self, gun: &str, before: chrono::Duration) -> Result<(), ApiError> {
        let Some(_lock) = self.store.try_lock(&format!("resign {gun}")).await? else {
            tracing::debug!(gun, "another instance holds the re-signing lock");
            return Ok(());
        };
        let Some(chain) = self.chain(gun).await? else {
            return Ok(());
        };
        let deadline = Utc::now() + before;
        if !self.due(gun, &chain, deadline) || self.is_unsignable(gun, &chain) {
            return Ok(());
        }
        match self.regenerate(gun, &chain, deadline, true).await {
            Err(e) if !matches!(e.code, Code::SignerUnavailable | Code::StorageUnavailable) => {
                self.mark_unsignable(gun, &chain, &e);
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Store an imported history (verified by the caller, `notary_tuf::history`), announced to
    /// the other instances as any write is.
    pub async fn import(
        &self,
        gun: &str,
        files: &dyn crate::storage::ImportFiles,
        source: &str,
        replace: bool,
        actor: &Actor,
    ) -> Result<Imported, StoreError> {
        self.writable()
            .map_err(|_| StoreError::Db("this instance is read-only".into()))?;
        let store = &self.store;
        let done = self
            .coherence
            .write(
                gun,
                |acked: Option<Vec<String>>| -> WriteFuture<'_, Imported> {
                    Box::pin(async move {
                        store
                            .import(gun, files, source, replace, acked.as_deref())
                            .await
                    })
                },
            )
            .await;
        self.cache.forget(gun);
        if done.is_ok() {
            let listing = files.listing();
            let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
            for (role, version, _) in &listing {
                let v = newest.entry(role.as_str()).or_default();
                *v = (*v).max(*version);
            }
            let record = Record {
                action: Action::Import,
                gun,
                roles: roles_of(newest),
                actor,
            };
            self.store.record(crate::storage::now(), &record).await?;
            record.log();
        }
        done
    }

    /// Whether this server holds the timestamp and snapshot keys of the root `chain` (`gun`'s
    /// current one, which the caller has fetched) names.
    pub async fn holds_keys(
        &self,
        gun: &str,
        chain: Option<&CachedChain>,
    ) -> Result<(bool, bool), ApiError> {
        let Some(chain) = chain else {
            return Ok((false, false));
        };
        let Some(file) = self.chain_root(gun, chain).await? else {
            return Ok((false, false));
        };
        let root: md::Root = file.body().map_err(ApiError::internal)?;
        Ok((
            self.holds_any(&root.role_keyids(md::TIMESTAMP)).await?,
            self.holds_any(&root.role_keyids(md::SNAPSHOT)).await?,
        ))
    }

    /// Whether the trust service holds any of these keys.
    pub async fn holds_any(&self, key_ids: &[String]) -> Result<bool, ApiError> {
        for id in key_ids {
            if self
                .crypto
                .get_key(id)
                .await
                .map_err(ApiError::from)?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every imported repository with the keys this server holds for it.
    pub async fn imported(&self) -> Result<Vec<KeyStatus>, ApiError> {
        let mut out = Vec::new();
        for rec in self.store.imports().await? {
            let chain = self.chain(&rec.gun).await?;
            let (holds_timestamp_key, holds_snapshot_key) =
                self.holds_keys(&rec.gun, chain.as_deref()).await?;
            out.push(KeyStatus {
                timestamp_version: chain
                    .as_ref()
                    .and_then(|c| SignedFile::parse(&c.timestamp.data).ok())
                    .map(|f| f.common.version),
                timestamp_expires: chain
                    .as_ref()
                    .map(|c| c.timestamp_expires.with_timezone(&Utc)),
                gun: rec.gun,
                source: rec.source,
                imported_at: rec
                    .imported_at
                    .and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                holds_timestamp_key,
                holds_snapshot_key,
            });
        }
        Ok(out)
    }

    /// Every repository stored here (or only `gun`), by GUN.
    pub async fn repositories(&self, gun: Option<&str>) -> Result<Vec<RepoStatus>, ApiError> {
        let mut by_gun: BTreeMap<String, BTreeMap<String, RoleStatus>> = BTreeMap::new();
        for r in self.store.repositories(gun).await? {
            by_gun.entry(r.gun).or_default().insert(
                r.role,
                RoleStatus {
                    newest: r.newest,
                    versions: r.versions,
                    bytes: r.bytes,
                },
            );
        }
        let mut out = Vec::with_capacity(by_gun.len());
        for (gun, roles) in by_gun {
            let chain = self.chain(&gun).await?;
            let (holds_timestamp_key, holds_snapshot_key) =
                self.holds_keys(&gun, chain.as_deref()).await?;
            out.push(RepoStatus {
                timestamp_expires: chain
                    .as_ref()
                    .map(|c| c.timestamp_expires.with_timezone(&Utc)),
                files: roles.values().map(|r| r.versions).sum(),
                bytes: roles.values().map(|r| r.bytes).sum(),
                gun,
                roles,
                holds_timestamp_key,
                holds_snapshot_key,
            });
        }
        Ok(out)
    }

    /// Remove `gun`'s versions that `policy` lets go (`retention`); with `dry_run`, only count
    /// them. The audit record lists how many of each role went.
    pub async fn prune(
        &self,
        gun: &str,
        policy: crate::retention::Policy,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<Pruned, ApiError> {
        let files = self.store.file_rows(gun).await?;
        let protected = self.current_references(gun).await?;
        let ids = crate::retention::removable(&files, &protected, policy, crate::storage::now());
        let gone: std::collections::HashSet<i64> = ids.iter().copied().collect();
        let mut removed: BTreeMap<String, u64> = BTreeMap::new();
        for f in files.iter().filter(|f| gone.contains(&f.id)) {
            *removed.entry(f.role.clone()).or_default() += 1;
        }
        let summary = removed
            .iter()
            .map(|(r, n)| format!("{r}:{n}"))
            .collect::<Vec<_>>()
            .join(",");
        if !dry_run && !ids.is_empty() {
            self.writable()?;
            let actor = Actor {
                reason: Some(format!(
                    "retention: keep the {} newest versions of each role and those of the last {} days",
                    policy.keep_versions.max(1),
                    policy.keep_days
                )),
                ..actor.clone()
            };
            let record = Record {
                action: Action::Prune,
                gun,
                roles: summary,
                actor: &actor,
            };
            // Announced and followed as any write (`coherence`): running instances forget the
            // GUN's cached files, so no instance serves a removed version afterwards.
            let (store, ids, audit) = (&self.store, &ids, &record);
            let removed = self
                .coherence
                .write(gun, |acked: Option<Vec<String>>| -> WriteFuture<'_, u64> {
                    Box::pin(
                        async move { store.remove_files(gun, ids, audit, acked.as_deref()).await },
                    )
                })
                .await;
            self.cache.forget(gun);
            removed?;
            record.log();
        }
        Ok(Pruned {
            gun: gun.to_string(),
            removed: ids.len() as u64,
            kept: (files.len() - ids.len()) as u64,
            by_role: removed,
        })
    }

    /// The (role, version) pairs the current chain references: the newest timestamp, the
    /// snapshot it names, what that snapshot names (`retention`, invariant 3).
    async fn current_references(
        &self,
        gun: &str,
    ) -> Result<std::collections::HashSet<(String, i64)>, ApiError> {
        let mut out = std::collections::HashSet::new();
        let Some(ts) = self.store.latest(gun, md::TIMESTAMP).await? else {
            return Ok(out);
        };
        let parse = |data: &[u8]| -> Result<(i64, md::MetaBody), ApiError> {
            let f = SignedFile::parse(data).map_err(ApiError::internal)?;
            Ok((f.common.version, f.body().map_err(ApiError::internal)?))
        };
        let (version, ts_meta) = parse(&ts.data)?;
        out.insert((md::TIMESTAMP.to_string(), version));
        let Some(sha) = ts_meta.meta.get(md::SNAPSHOT).and_then(|m| m.sha256_hex()) else {
            return Ok(out);
        };
        let Some(sn) = self.store.by_checksum(gun, md::SNAPSHOT, &sha).await? else {
            return Ok(out);
        };
        let (version, sn_meta) = parse(&sn.data)?;
        out.insert((md::SNAPSHOT.to_string(), version));
        for (role, m) in sn_meta.meta {
            let Some(sha) = m.sha256_hex() else { continue };
            if let Some(f) = self.store.by_checksum(gun, &role, &sha).await? {
                out.insert((role, parse(&f.data)?.0));
            }
        }
        Ok(out)
    }

    /// Remove audit records older than `before` (`prune --audit-older-than`).
    pub async fn prune_audit(&self, before: chrono::NaiveDateTime) -> Result<u64, ApiError> {
        self.writable()?;
        Ok(self.store.prune_audit(before).await?)
    }

    /// Run retention every `every` (the `retention` config block): a pass prunes every
    /// repository under `policy`, on one instance at a time (a database lock; others skip
    /// that pass).
    pub fn spawn_retention(
        self: &Arc<Self>,
        policy: crate::retention::Policy,
        every: std::time::Duration,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            let actor = Actor {
                subject: Some("retention".into()),
                ..Actor::default()
            };
            loop {
                tokio::time::sleep(every).await;
                let held = match me.store.try_lock("retention").await {
                    Ok(Some(held)) => held,
                    Ok(None) => continue, // another instance runs this pass
                    Err(e) => {
                        tracing::warn!(error = %e, "retention: cannot take the lock; skipping this pass");
                        continue;
                    }
                };
                let (mut repos, mut removed) = (0, 0);
                match me.guns().await {
                    Ok(guns) => {
                        for gun in guns {
                            match me.prune(&gun, policy, false, &actor).await {
                                Ok(p) => {
                                    repos += 1;
                                    removed += p.removed;
                                }
                                Err(e) => {
                                    tracing::warn!(gun, error = ?e.code, "retention: pruning failed")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e.code, "retention: cannot list repositories")
                    }
                }
                drop(held);
                if removed > 0 {
                    tracing::info!(repositories = repos, removed, "retention pass");
                }
            }
        });
    }

    /// Every GUN stored here.
    pub async fn guns(&self) -> Result<Vec<String>, ApiError> {
        Ok(self.store.guns().await?)
    }

    /// The audit trail (`audit`): of one GUN or all, since a time, oldest first, at most
    /// `limit` records.
    pub async fn audit(
        &self,
        gun: Option<&str>,
        since: Option<chrono::NaiveDateTime>,
        limit: i64,
    ) -> Result<Vec<crate::audit::Entry>, ApiError> {
        Ok(self.store.audit_entries(gun, since, limit).await?)
    }

    /// Check the imported repositories now and every `every`: a warning at start when some
    /// await a key rotation, and the counts behind the gauges ([`RepoService::rotation_counts`]).
    pub fn spawn_rotation_watch(self: &Arc<Self>, every: std::time::Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                match me.imported().await {
                    Ok(list) => {
                        let awaiting: Vec<&KeyStatus> =
                            list.iter().filter(|k| k.awaits_rotation()).collect();
                        let earliest = awaiting.iter().filter_map(|k| k.timestamp_expires).min();
                        if first && !awaiting.is_empty() {
                            tracing::warn!(
                                repositories = awaiting.len(),
                                earliest_timestamp_expiry = ?earliest,
                                "imported repositories await a rotation of timestamp keys this server does not hold; \
                                 their owners cannot publish until they rotate (list them with `notary-server imported`)"
                            );
                        }
                        *lock(&me.rotation) = Some((list.len(), awaiting.len(), earliest));
                        first = false;
                    }
                    Err(e) => tracing::debug!(error = ?e, "could not check imported repositories"),
                }
                tokio::time::sleep(every).await;
            }
        });
    }

    /// The last count of imported repositories and those awaiting a key rotation.
    pub fn rotation_counts(&self) -> Option<RotationCounts> {
        *lock(&self.rotation)
    }

    /// `GET …/{timestamp,snapshot}.key`: the key the root lists for the role if the signer
    /// holds it, else a (pending) new key, if `may_create` allows one.
    pub async fn get_key(
        &self,
        gun: &str,
        role: &str,
        may_create: impl FnOnce() -> Result<(), ApiError>,
        actor: &Actor,
    ) -> Result<PublicKey, ApiError> {
        let root_file = match self.chain(gun).await? {
            Some(chain) => self.chain_root(gun, &chain).await?,
            None => None,
        };
        if let Some(file) = root_file {
            let root: md::Root = file.body().map_err(ApiError::internal)?;
            if let Some(Some(r)) = root.roles.get(role) {
                for id in &r.keyids {
                    if let Some(info) = self.crypto.get_key(id).await.map_err(ApiError::from)? {
                        return Ok(info.public);
                    }
                }
            }
        }
        self.writable()?;
        may_create()?;
        self.create_key(gun, role, Action::KeyCreate, actor).await
    }

    /// A new server key for (GUN, role), bound to them, and its audit record (`role:key ID`).
    async fn create_key(
        &self,
        gun: &str,
        role: &str,
        action: Action,
        actor: &Actor,
    ) -> Result<PublicKey, ApiError> {
        let key = self
            .crypto
            .create_key(role, gun, &self.key_algorithm)
            .await
            .map_err(ApiError::from)?;
        self.store.bind_key(&key.id(), gun, role).await?;
        let record = Record {
            action,
            gun,
            roles: format!("{role}:{}", key.id()),
            actor,
        };
        self.store.record(crate::storage::now(), &record).await?;
        record.log();
        Ok(key)
    }

    /// The GUN and role a server key is bound to, if any (from the store, or the trust
    /// service's own record for keys made before bindings existed, which it then binds).
    async fn binding(&self, key_id: &str) -> Result<Option<(String, String)>, ApiError> {
        if let Some(b) = lock(&self.bindings).get(key_id) {
            return Ok(Some(b.clone()));
        }
        let b = self.store.key_binding(key_id).await?;
        if let Some(b) = &b {
            lock(&self.bindings).put(key_id.to_string(), b.clone());
        }
        Ok(b)
    }

    /// Refuse a root that gives the timestamp or snapshot role a server key of another
    /// repository or role (its ID is public: without this check the server would sign this
    /// repository's metadata with another repository's key). Keys the server does not hold
    /// are the owner's; a held key nobody bound yet is bound to this GUN and role now.
    async fn check_root_keys(&self, gun: &str, root: &SignedFile) -> Result<(), ApiError> {
        let root: md::Root = root
            .body()
            .map_err(|_| ApiError::new(Code::MalformedJson))?;
        for role in [md::TIMESTAMP, md::SNAPSHOT] {
            for id in root.role_keyids(role) {
                let owner = match self.binding(&id).await? {
                    Some(b) => Some(b),
                    None => match self.crypto.get_key(&id).await.map_err(ApiError::from)? {
                        None => continue,
                        // No record ties this held key to a repository, and the stored roots
                        // are not all read yet: one of them may list it.
                        Some(info)
                            if info.gun.is_empty()
                                && !self
                                    .bindings_complete
                                    .load(std::sync::atomic::Ordering::SeqCst) =>
                        {
                            tracing::warn!(gun, role, key = id, "a root names a server key not bound yet; the stored roots are still being read (first start on this database): try again shortly");
                            return Err(ApiError::new(Code::StorageUnavailable));
                        }
                        Some(info)
                            if (info.gun.is_empty() || info.gun == gun)
                                && (info.role.is_empty() || info.role == role) =>
                        {
                            self.store.bind_key(&id, gun, role).await?;
                            continue;
                        }
                        Some(info) => Some((info.gun, info.role)),
                    },
                };
                if let Some((g, r)) = owner.filter(|(g, r)| g != gun || r != role) {
                    tracing::warn!(
                        gun,
                        role,
                        key = id,
                        bound_to = g,
                        bound_role = r,
                        "refused a root listing another repository's server key"
                    );
                    return Err(ApiError::from(ValidationError::BadRoot(format!(
                        "key {id} is a server-managed {r} key of another repository: a root may give the {role} role only this \
                         repository's own key (GET …/{role}.key)"
                    ))));
                }
            }
        }
        Ok(())
    }

    /// `to_sign` without the keys bound to another repository or role: they never sign here.
    async fn own_keys(&self, gun: &str, mut to_sign: ToSign) -> Result<ToSign, ApiError> {
        let role = to_sign.role.name.clone();
        let mut foreign = Vec::new();
        for id in to_sign.role.keys.keys() {
            if let Some((g, r)) = self.binding(id).await? {
                if g != gun || r != role {
                    tracing::warn!(
                        gun,
                        role,
                        key = id,
                        bound_to = g,
                        "not signing with another repository's key"
                    );
                    foreign.push(id.clone());
                }
            }
        }
        for id in foreign {
            to_sign.role.keys.remove(&id);
        }
        Ok(to_sign)
    }

    /// `POST …/{timestamp,snapshot}.key`: a new key; it becomes active once a root lists it.
    pub async fn rotate_key(
        &self,
        gun: &str,
        role: &str,
        actor: &Actor,
    ) -> Result<PublicKey, ApiError> {
        self.writable()?;
        self.create_key(gun, role, Action::KeyRotate, actor).await
    }

    /// Delete every file of the GUN (the API's `DELETE`, or an operator's `notary-server
    /// delete`); true if there was any.
    pub async fn delete(&self, gun: &str, actor: &Actor) -> Result<bool, ApiError> {
        self.writable()?;
        let store = &self.store;
        let record = Record {
            action: Action::Delete,
            gun,
            roles: String::new(),
            actor,
        };
        let audit = &record;
        let deleted = self
            .coherence
            .write(gun, |acked: Option<Vec<String>>| -> WriteFuture<'_, bool> {
                Box::pin(async move { store.delete(gun, acked.as_deref(), Some(audit)).await })
            })
            .await;
        self.cache.forget(gun);
        let deleted = deleted?;
        if deleted {
            record.log();
            tracing::info!(gun, "deleted repository");
        }
        Ok(deleted)
    }

    /// How current reads were made fresh (for the metrics).
    pub fn coherence_counts(&self) -> crate::coherence::CoherenceCounts {
        self.coherence.counts()
    }

    /// Give up this instance's read lease (at shutdown).
    pub async fn leave(&self) {
        self.coherence.leave().await;
    }

    pub async fn changes(
        &self,
        gun: Option<&str>,
        change_id: &str,
        records: &str,
    ) -> Result<ChangeList, ApiError> {
        let records: i32 = records.parse().map_err(|_| {
            ApiError::with(
                Code::InvalidParameters,
                json!(format!("invalid records parameter: strconv.ParseInt: parsing {records:?}: invalid syntax")),
            )
        })?;
        let change_id: i32 = if change_id.is_empty() {
            0
        } else {
            change_id
                .parse()
                .map_err(|_| ApiError::empty_detail(Code::InvalidParameters))?
        };
        // Go has no upper bound; a page here holds at most MAX_CHANGEFEED_RECORDS rows (clients
        // page on by the last ID).
        let records = if records == 0 {
            100
        } else {
            (records as i64).clamp(-MAX_CHANGEFEED_RECORDS, MAX_CHANGEFEED_RECORDS)
        };
        let rows: Vec<Change> = self.store.changes(gun, change_id as i64, records).await?;
        Ok(ChangeList {
            count: rows.len(),
            records: rows,
        })
    }
}
