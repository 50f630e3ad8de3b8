//! Publishing: validate an upload against the stored chain, sign what the server owns,
//! store everything in one announced write.

use super::*;
use crate::gun::Gun;
use crate::role::Role;

impl RepoService {
    /// Validate, sign what the server owns, and store everything in one transaction.
    pub async fn publish(
        &self,
        gun: &Gun,
        parts: Vec<(String, bytes::Bytes)>,
        actor: &Actor,
    ) -> Result<u32, ServiceError> {
        self.writable()?;
        // Parsing and checking a large upload is CPU work (`offload`).
        let upload_bytes: usize = parts.iter().map(|(_, b)| b.len()).sum();
        let uploads = crate::offload::run(upload_bytes, move || {
            let mut uploads = BTreeMap::new();
            for (role, bytes) in parts {
                let file = SignedFile::parse_bytes(bytes)
                    .map_err(|e| ServiceError::MalformedJson(format!("{role}: {e}")))?;
                // Go decodes every part, then ignores an uploaded timestamp: the server makes
                // its own.
                if role != md::TIMESTAMP {
                    uploads.insert(role, file); // duplicates: last one wins, as in Go
                }
            }
            Ok::<_, ServiceError>(uploads)
        })
        .await?;
        let stored = self
            .stored_repo(gun, roles_needed(uploads.keys().map(|s| s.as_str())))
            .await?;
        let now = Utc::now();
        let (plan, uploads) = crate::offload::run(upload_bytes, {
            let gun = gun.clone();
            move || {
                let plan = validation::validate_update(&gun, &uploads, &stored, now);
                (plan, uploads)
            }
        })
        .await;
        let plan = plan?;
        if let Some(root) = uploads.get(md::ROOT) {
            self.check_root_keys(gun, root).await?;
        }
        let mut updates = plan.updates;

        let snapshot_bytes = match plan.snapshot {
            Some(to_sign) => {
                let Some(update) = self.sign_snapshot(gun, to_sign).await? else {
                    return Err(ServiceError::from(ValidationError::BadHierarchy {
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
            timestamp_body(plan.prev_timestamp_version, &snapshot_bytes, now)?;
        let ts = ToSign {
            role: plan.timestamp_role,
            version: ts_version,
            body: ts_body,
        };
        let ts_file = self.sign_timestamp(gun, &ts).await?;
        updates.push(Update {
            role: md::TIMESTAMP.into(),
            version: ts_version,
            data: ts_file.into(),
        });

        let record = Record {
            action: Action::Publish,
            gun,
            roles: roles_of(updates.iter().map(|u| (u.role.as_str(), u.version))),
            actor,
        };
        self.commit(gun, &updates, None, Some(&record)).await?;
        record.log();
        tracing::info!(gun = %gun, timestamp_version = ts_version, roles = ?updates.iter().map(|u| u.role.as_str()).collect::<Vec<_>>(), "updated repository");
        Ok(ts_version as u32)
    }

    /// Store `updates` (the new timestamp among them) and let the changefeed check that reaches
    /// their row install what they make current in the cache (`MetaCache::expect`), so that
    /// this instance need not read its own write back. `unchanged_snapshot`: the current
    /// snapshot, when `updates` has none.
    pub(super) async fn commit(
        &self,
        gun: &Gun,
        updates: &[Update],
        unchanged_snapshot: Option<&StoredFile>,
        audit: Option<&Record<'_>>,
    ) -> Result<(), StoreError> {
        let at = crate::storage::now();
        let mut files: Vec<(Role, StoredFile)> = updates
            .iter()
            .map(|u| {
                (
                    Role::stored(&u.role),
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
            (Some(ts), Some(snap)) => match SignedFile::parse_bytes(ts.data.clone())
                .map_err(|e| StoreError::Db(format!("new timestamp: {e}")))
                .and_then(|parsed| CachedChain::from_files(ts, &parsed, snap.clone()))
            {
                Ok(chain) => Some(chain),
                Err(e) => {
                    tracing::warn!(gun = %gun, error = %e, "new chain not cached");
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
    pub(super) async fn sign_snapshot(
        &self,
        gun: &Gun,
        to_sign: ToSign,
    ) -> Result<Option<Update>, ServiceError> {
        let to_sign = self.own_keys(gun, to_sign).await?;
        match sign_role(self.crypto.as_ref(), &to_sign).await {
            Ok(sigs) => Ok(Some(Update {
                role: md::SNAPSHOT.into(),
                version: to_sign.version,
                data: envelope(&to_sign.body, &sigs).into(),
            })),
            Err(SignRoleError::Insufficient { .. }) => Ok(None),
            Err(SignRoleError::Crypto(c)) => Err(ServiceError::from(c)),
        }
    }

    pub(super) async fn sign_timestamp(
        &self,
        gun: &Gun,
        ts: &ToSign,
    ) -> Result<Vec<u8>, ServiceError> {
        let ts = &self.own_keys(gun, ts.clone()).await?;
        let sigs = sign_role(self.crypto.as_ref(), ts).await.map_err(|e| match e {
            // sic: two spaces, as the Go server words it; then what to do about it.
            SignRoleError::Insufficient { .. } => ServiceError::from(ValidationError::BadRoot(format!(
                "no  timestamp keys exist on the server for {gun}: if this repository was imported from another server, \
                 rotate its timestamp key with `notary -s <this server> key rotate {gun} timestamp -r` (you hold the snapshot key) \
                 or `notary-rekey --server <this server> --gun {gun}` (the old server held it too)"
            ))),
            SignRoleError::Crypto(c) => ServiceError::from(c),
        })?;
        Ok(envelope(&ts.body, &sigs))
    }

    /// The stored files validation needs, resolved through the current timestamp → snapshot.
    pub(super) async fn stored_repo(
        &self,
        gun: &Gun,
        needed: std::collections::BTreeSet<String>,
    ) -> Result<StoredRepo, ServiceError> {
        let mut repo = StoredRepo::default();
        let Some(chain) = self.chain(gun).await? else {
            return Ok(repo);
        };
        for role in needed
            .iter()
            .filter(|r| *r != md::SNAPSHOT && *r != md::TIMESTAMP)
        {
            if let Some(f) = self.by_meta(gun, &Role::stored(role), &chain).await? {
                repo.files.insert(role.clone(), f.data.clone());
            }
        }
        repo.files
            .insert(md::SNAPSHOT.into(), chain.snapshot.data.clone());
        repo.files
            .insert(md::TIMESTAMP.into(), chain.timestamp.data.clone());
        Ok(repo)
    }

    /// The root the chain's snapshot names, parsed.
    pub(super) async fn chain_root(
        &self,
        gun: &Gun,
        chain: &CachedChain,
    ) -> Result<Option<SignedFile>, ServiceError> {
        match self.by_meta(gun, &Role::ROOT, chain).await? {
            Some(f) => Ok(Some(
                SignedFile::parse_bytes(f.data.clone()).map_err(ServiceError::internal)?,
            )),
            None => Ok(None),
        }
    }
}
