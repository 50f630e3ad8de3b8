//! What operators run: import, listings, prune and the retention task, the audit trail, and
//! the watch of imported repositories awaiting a key rotation.

use super::*;
use crate::gun::Gun;
use crate::role::Role;

impl RepoService {
    /// Store an imported history (verified by the caller, `notary_tuf::history`), announced to
    /// the other instances as any write is.
    pub async fn import(
        &self,
        gun: &Gun,
        files: &dyn crate::storage::ImportFiles,
        source: &str,
        replace: bool,
        actor: &Actor,
    ) -> Result<Imported, StoreError> {
        if self.read_only {
            return Err(StoreError::Db("this instance is read-only".into()));
        }
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
            for f in &listing {
                let v = newest.entry(f.role.as_str()).or_default();
                *v = (*v).max(f.version);
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
    async fn holds_keys(
        &self,
        gun: &Gun,
        chain: Option<&CachedChain>,
    ) -> Result<(bool, bool), ServiceError> {
        let Some(chain) = chain else {
            return Ok((false, false));
        };
        let Some(root) = self.root_of(gun, chain).await? else {
            return Ok((false, false));
        };
        Ok((
            self.holds_any(&root.role_keyids(md::TIMESTAMP)).await?,
            self.holds_any(&root.role_keyids(md::SNAPSHOT)).await?,
        ))
    }

    /// `gun`'s current root, if it has one.
    pub async fn current_root(&self, gun: &Gun) -> Result<Option<md::Root>, ServiceError> {
        match self.chain(gun).await? {
            Some(chain) => self.root_of(gun, &chain).await,
            None => Ok(None),
        }
    }

    /// The root `chain`'s snapshot names, read as a root.
    async fn root_of(
        &self,
        gun: &Gun,
        chain: &CachedChain,
    ) -> Result<Option<md::Root>, ServiceError> {
        match self.chain_root(gun, chain).await? {
            Some(file) => Ok(Some(file.body().map_err(ServiceError::internal)?)),
            None => Ok(None),
        }
    }

    /// Whether the trust service holds any of these keys.
    pub async fn holds_any(&self, key_ids: &[String]) -> Result<bool, ServiceError> {
        for id in key_ids {
            if self.crypto.get_key(id).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every imported repository with the keys this server holds for it.
    pub async fn imported(&self) -> Result<Vec<KeyStatus>, ServiceError> {
        let mut out = Vec::new();
        for rec in self.store.imports().await? {
            let chain = self.chain(&rec.gun).await?;
            let (holds_timestamp_key, holds_snapshot_key) =
                self.holds_keys(&rec.gun, chain.as_deref()).await?;
            out.push(KeyStatus {
                timestamp_version: chain
                    .as_ref()
                    .and_then(|c| SignedFile::parse_bytes(c.timestamp.data.clone()).ok())
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
    pub async fn repositories(&self, gun: Option<&Gun>) -> Result<Vec<RepoStatus>, ServiceError> {
        let mut by_gun: BTreeMap<Gun, BTreeMap<String, RoleStatus>> = BTreeMap::new();
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
        gun: &Gun,
        policy: crate::retention::Policy,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<Pruned, ServiceError> {
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
            gun: gun.clone(),
            removed: ids.len() as u64,
            kept: (files.len() - ids.len()) as u64,
            by_role: removed,
        })
    }

    /// The (role, version) pairs the current chain references: the newest timestamp, the
    /// snapshot it names, what that snapshot names (`retention`, invariant 3).
    pub(super) async fn current_references(
        &self,
        gun: &Gun,
    ) -> Result<std::collections::HashSet<(String, i64)>, ServiceError> {
        let mut out = std::collections::HashSet::new();
        let Some(ts) = self.store.latest(gun, &Role::TIMESTAMP).await? else {
            return Ok(out);
        };
        let parse = |data: &[u8]| -> Result<(i64, md::MetaBody), ServiceError> {
            let f = SignedFile::parse(data).map_err(ServiceError::internal)?;
            Ok((f.common.version, f.body().map_err(ServiceError::internal)?))
        };
        let (version, ts_meta) = parse(&ts.data)?;
        out.insert((md::TIMESTAMP.to_string(), version));
        let Some(sha) = ts_meta.meta.get(md::SNAPSHOT).and_then(|m| m.sha256_hex()) else {
            return Ok(out);
        };
        let Some(sn) = self.store.by_checksum(gun, &Role::SNAPSHOT, &sha).await? else {
            return Ok(out);
        };
        let (version, sn_meta) = parse(&sn.data)?;
        out.insert((md::SNAPSHOT.to_string(), version));
        for (role, m) in sn_meta.meta {
            let Some(sha) = m.sha256_hex() else { continue };
            if let Some(f) = self
                .store
                .by_checksum(gun, &Role::stored(&role), &sha)
                .await?
            {
                out.insert((role, parse(&f.data)?.0));
            }
        }
        Ok(out)
    }

    /// Remove audit records older than `before` (`prune --audit-older-than`).
    pub async fn prune_audit(&self, before: chrono::NaiveDateTime) -> Result<u64, ServiceError> {
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
                                    tracing::warn!(gun = %gun, error = %e, "retention: pruning failed")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "retention: cannot list repositories")
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
    pub async fn guns(&self) -> Result<Vec<Gun>, ServiceError> {
        Ok(self.store.guns().await?)
    }

    /// The audit trail (`audit`): of one GUN or all, since a time, oldest first, at most
    /// `limit` records.
    pub async fn audit(
        &self,
        gun: Option<&Gun>,
        since: Option<chrono::NaiveDateTime>,
        limit: i64,
    ) -> Result<Vec<crate::audit::Entry>, ServiceError> {
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
    pub(crate) fn rotation_counts(&self) -> Option<RotationCounts> {
        *lock(&self.rotation)
    }
}
