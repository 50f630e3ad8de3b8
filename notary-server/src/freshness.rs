//! Cross-instance freshness of the read cache, without a database round trip per read.
//!
//! Every instance follows the shared changefeed (each publish, re-sign and deletion writes one
//! row; on Postgres rows get their IDs in commit order, see `storage::CHANGEFEED_LOCK`). A
//! *check* reads the rows after the last one seen and drops the cache entries of the GUNs they
//! name. A read that needs current metadata waits for a check that **started after the read
//! arrived** (a read barrier, as Raft's ReadIndex): so whatever was committed before the request
//! arrived — through any instance — is visible to it, and no instance ever serves a timestamp
//! older than the newest one committed when the request arrived.
//!
//! Checks are shared: one runs at a time, and every read that arrived while one was running is
//! answered by the next one, so under load one small query serves a whole batch of reads. With
//! no reads a check still runs every `period` (deletions reach the by-checksum cache, the
//! database's health is seen).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::cache::MetaCache;
use crate::storage::{MetaStore, StoreError};

/// Rows read per query; a longer backlog is read in several.
const PAGE: i64 = 1000;

#[derive(Default)]
struct Demand {
    /// Checks started so far (the epoch of the newest one).
    started: u64,
    /// Highest epoch some read waits for.
    wanted: u64,
}

/// Epoch of the newest finished check and its outcome.
type Done = (u64, Result<(), String>);

pub struct Freshness {
    demand: Mutex<Demand>,
    wake: Notify,
    done: watch::Sender<Done>,
}

impl Freshness {
    /// Start following the changefeed of `store` for `cache`.
    pub fn spawn(store: Arc<dyn MetaStore>, cache: Arc<MetaCache>, period: Duration) -> Arc<Self> {
        let me = Arc::new(Freshness { demand: Mutex::new(Demand::default()), wake: Notify::new(), done: watch::channel((0, Ok(()))).0 });
        let worker = me.clone();
        tokio::spawn(async move { worker.run(store, cache, period).await });
        me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Demand> {
        self.demand.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until a changefeed check that started after this call has been applied to the cache.
    pub async fn barrier(&self) -> Result<(), StoreError> {
        let target = {
            let mut d = self.lock();
            let t = d.started + 1;
            d.wanted = d.wanted.max(t);
            t
        };
        self.wake.notify_one();
        let mut rx = self.done.subscribe();
        let done = rx.wait_for(|(epoch, _)| *epoch >= target).await.map_err(|_| StoreError::Db("cache follower stopped".into()))?;
        done.1.clone().map_err(StoreError::Db)
    }

    async fn run(self: Arc<Self>, store: Arc<dyn MetaStore>, cache: Arc<MetaCache>, period: Duration) {
        // Nothing is cached yet: start from the newest row.
        let mut last: Option<i64> = None;
        loop {
            let wanted = {
                let d = self.lock();
                d.wanted > d.started
            };
            if !wanted {
                let _ = tokio::time::timeout(period, self.wake.notified()).await;
            }
            let epoch = {
                let mut d = self.lock();
                d.started += 1;
                d.started
            };
            let outcome = Self::check(store.as_ref(), &cache, &mut last).await;
            if let Err(e) = &outcome {
                tracing::debug!(error = %e, "changefeed check failed");
            }
            let _previous = self.done.send_replace((epoch, outcome.map_err(|e| e.to_string())));
        }
    }

    async fn check(store: &dyn MetaStore, cache: &MetaCache, last: &mut Option<i64>) -> Result<(), StoreError> {
        let Some(mut from) = *last else {
            *last = Some(store.last_change_id().await?);
            return Ok(());
        };
        loop {
            let rows = store.changes_after(from, PAGE).await?;
            for r in &rows {
                if r.deletion {
                    cache.forget(&r.gun);
                } else {
                    cache.invalidate(&r.gun);
                }
                from = r.id;
            }
            *last = Some(from);
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }
}
