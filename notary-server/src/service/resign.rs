//! Re-signing: expired timestamps and snapshots regenerated on read or ahead of expiry in
//! the background, and the repositories this server cannot re-sign (remembered, logged once).

use super::*;
use crate::gun::Gun;

/// What this instance knows it cannot re-sign, each remembered (and logged) once per chain:
/// repositories whose expired timestamp it holds no key for, or whose root has expired (GUN →
/// the timestamp's SHA-256: served as stored, clients judge expiry, not tried again until the
/// chain changes); repositories whose expired snapshot the owner signs (GUN → the snapshot's
/// SHA-256: timestamps are still signed over it).
#[derive(Default)]
pub(super) struct Unsignable {
    timestamps: std::sync::Mutex<std::collections::HashMap<String, String>>,
    snapshots: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Unsignable {
    pub(super) fn chain(&self, gun: &Gun, chain: &CachedChain) -> bool {
        lock(&self.timestamps).get(gun.as_str()) == Some(&chain.timestamp.sha256)
    }

    pub(super) fn snapshot(&self, gun: &Gun, chain: &CachedChain) -> bool {
        lock(&self.snapshots).get(gun.as_str()) == Some(&chain.snapshot.sha256)
    }

    /// Remember (and log once) that `gun`'s current chain cannot be re-signed here.
    pub(super) fn mark_chain(&self, gun: &Gun, chain: &CachedChain, why: &ServiceError) {
        let mut u = lock(&self.timestamps);
        if u.insert(gun.to_string(), chain.timestamp.sha256.clone())
            .as_ref()
            != Some(&chain.timestamp.sha256)
        {
            let why = why.to_string();
            tracing::warn!(
                gun = %gun,
                timestamp_expires = %chain.timestamp_expires,
                why,
                "cannot re-sign this repository's expired metadata; serving it as stored (clients judge expiry) until its owner publishes or rotates keys"
            );
        }
    }

    /// Remember (and log once) that `gun`'s snapshot cannot be re-signed here.
    pub(super) fn mark_snapshot(&self, gun: &Gun, chain: &CachedChain) {
        let mut u = lock(&self.snapshots);
        if u.insert(gun.to_string(), chain.snapshot.sha256.clone())
            .as_ref()
            != Some(&chain.snapshot.sha256)
        {
            tracing::warn!(
                gun = %gun,
                snapshot_expires = %chain.snapshot_expires,
                "this repository's snapshot expired and this server holds no key for it; timestamps are signed over the stored snapshot (clients judge its expiry) until its owner publishes a new one"
            );
        }
    }
}

impl RepoService {
    /// Whether `chain` needs re-signing before `deadline`: its timestamp expires, or its snapshot
    /// does and this server can sign one.
    pub(super) fn due(&self, gun: &Gun, chain: &CachedChain, deadline: DateTime<Utc>) -> bool {
        chain.timestamp_expires < deadline
            || (chain.snapshot_expires < deadline && !self.unsignable.snapshot(gun, chain))
    }

    /// Sign and store a new timestamp (and a new snapshot if it expires before `deadline`).
    /// Returns false when another instance stored a newer one first.
    pub(super) async fn regenerate(
        &self,
        gun: &Gun,
        chain: &CachedChain,
        deadline: DateTime<Utc>,
        ahead: bool,
    ) -> Result<bool, ServiceError> {
        let now = Utc::now();
        let ts = SignedFile::parse_bytes(chain.timestamp.data.clone())
            .map_err(ServiceError::internal)?;
        let snap =
            SignedFile::parse_bytes(chain.snapshot.data.clone()).map_err(ServiceError::internal)?;
        // The root in force (the one this chain names) must not be expired.
        let root_file = self
            .chain_root(gun, chain)
            .await?
            .ok_or_else(|| ServiceError::internal(format!("{gun}: no current root")))?;
        let root = validation::load_root(gun, &root_file, None, 1, false, now).map_err(|e| {
            ServiceError::Unsignable(format!("the root in force cannot be used: {e}"))
        })?;
        let mut updates = Vec::new();
        let snapshot_bytes = if snap.expired(deadline) && !self.unsignable.snapshot(gun, chain) {
            let to_sign = validation::refreshed_snapshot(&root, &snap, now)
                .map_err(ServiceError::internal)?;
            match self.sign_snapshot(gun, to_sign).await? {
                Some(update) => {
                    let file = update.data.clone();
                    updates.push(update);
                    file
                }
                // The owner holds the snapshot key: the timestamp is signed over the stored one.
                None => {
                    self.unsignable.mark_snapshot(gun, chain);
                    if !ts.expired(deadline) {
                        return Ok(false);
                    }
                    chain.snapshot.data.clone()
                }
            }
        } else {
            chain.snapshot.data.clone()
        };
        let (v, body) = timestamp_body(Some(ts.common.version), &snapshot_bytes, now)
            .map_err(ServiceError::internal)?;
        let role = root
            .base_role(md::TIMESTAMP)
            .map_err(ServiceError::internal)?;
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
            data: ts_file.into(),
        });
        let unchanged_snapshot = (updates.len() == 1).then_some(&chain.snapshot);
        match self.commit(gun, &updates, unchanged_snapshot, None).await {
            Ok(()) => {
                tracing::info!(
                    gun = %gun,
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
                    gun = %gun,
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
        if before.is_zero() || !self.signs() {
            return;
        }
        let me = self.clone();
        let before = chrono::Duration::from_std(before).unwrap_or(chrono::Duration::days(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // (The cache holds only chains of checked GUNs.)
                for gun in me.cache.chains_due(Utc::now() + before) {
                    // (Chains this server cannot re-sign stay due: skipped without taking the lock.)
                    if me.cache.chain(&gun).is_some_and(|c| {
                        !me.due(&gun, &c, Utc::now() + before) || me.unsignable.chain(&gun, &c)
                    }) {
                        continue;
                    }
                    if let Err(e) = me.resign_ahead(&gun, before).await {
                        tracing::warn!(gun = %gun, error = ?e, "background re-signing failed; reads will re-sign on expiry");
                    }
                }
            }
        });
    }

    pub(super) async fn resign_ahead(
        &self,
        gun: &Gun,
        before: chrono::Duration,
    ) -> Result<(), ServiceError> {
        let Some(_lock) = self.store.try_lock(&format!("resign {gun}")).await? else {
            tracing::debug!(gun = %gun, "another instance holds the re-signing lock");
            return Ok(());
        };
        let Some(chain) = self.chain(gun).await? else {
            return Ok(());
        };
        let deadline = Utc::now() + before;
        if !self.due(gun, &chain, deadline) || self.unsignable.chain(gun, &chain) {
            return Ok(());
        }
        match self.regenerate(gun, &chain, deadline, true).await {
            Err(e) if !e.is_transient() => {
                self.unsignable.mark_chain(gun, &chain, &e);
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}
