//! Cross-instance freshness of the read cache, without a database round trip per read.
//!
//! Every instance follows the shared changefeed (each publish, re-sign and deletion writes one
//! row; on Postgres rows get their IDs in commit order, see `storage::CHANGEFEED_LOCK`). A
//! *check* reads the rows after the last one applied and drops the cache entries of the GUNs
//! they name. A read that needs current metadata waits for a check that **started after the
//! read arrived** (a read barrier, as Raft's ReadIndex): whatever was committed before the
//! request arrived — through any instance — is then visible to it, so no instance ever serves a
//! timestamp older than the newest one committed when the request arrived.
//!
//! Checks are shared: a read that arrives while a check is in flight waits for the next one,
//! which starts as soon as the current one ends; under load one small indexed query answers a
//! whole batch of reads. With no reads a check still runs every `period` (deletions reach the
//! by-checksum cache). On Postgres a check is one round trip on a connection of its own
//! (`SqlStore::changes_after`), not a pooled query, which would cost two more.
//!
//! On Postgres, an instance holding a read lease skips the barrier for repositories with no
//! write in flight: writes are announced and commit only once every lease holder has
//! acknowledged them (`announce.rs`); `fresh` chooses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::announce::{Announcer, Timing, WriteFuture};
use crate::cache::MetaCache;
use crate::storage::{MetaStore, StoreError};

/// Rows read per query; a longer backlog is read in several.
const PAGE: i64 = 1000;
/// Checks that may run at once. One is best measured (notary-bench, 16 and 64 connections):
/// overlapping checks shorten the wait a little but cost more queries than they save.
pub(crate) const MAX_IN_FLIGHT: usize = 1;

struct State {
    /// Checks started so far (the epoch of the newest one).
    started: u64,
    /// Highest epoch some read waits for.
    wanted: u64,
    in_flight: usize,
    /// Every changefeed row up to this ID is applied to the cache (`None`: not read yet).
    applied: Option<i64>,
    /// Newest finished epoch, and the outcome of the newest finished check.
    finished: u64,
}

pub struct Freshness {
    /// On a replica: also watch that the database is not behind what was already applied.
    monotonic: bool,
    /// The database was last seen behind the changefeed position this instance already applied
    /// (a lagging replica, or a fail-over to one): nothing may be loaded from it meanwhile.
    behind: std::sync::atomic::AtomicBool,
    store: Arc<dyn MetaStore>,
    cache: Arc<MetaCache>,
    state: Mutex<State>,
    /// (newest finished epoch, its outcome)
    done: watch::Sender<(u64, Result<(), StoreError>)>,
    /// Postgres, writable: write announcements and read leases (`announce.rs`).
    announcer: OnceLock<Arc<Announcer>>,
    /// Reads made fresh under the read lease, and by a barrier; changefeed checks run.
    leased_reads: AtomicU64,
    barrier_reads: AtomicU64,
    checks: AtomicU64,
}

/// How writes are announced and whether reads may skip the barrier (`announce.rs`).
pub struct Announcing {
    pub pool: sqlx::PgPool,
    /// Serve current reads from the cache without a changefeed check while holding a lease.
    pub fast_reads: bool,
    pub timing: Timing,
}

impl Freshness {
    /// Start following the changefeed of `store` for `cache`.
    pub fn spawn(
        store: Arc<dyn MetaStore>,
        cache: Arc<MetaCache>,
        period: Duration,
        monotonic: bool,
        announcing: Option<Announcing>,
    ) -> Arc<Self> {
        let me = Arc::new(Freshness {
            monotonic,
            behind: false.into(),
            store,
            cache,
            state: Mutex::new(State {
                started: 0,
                wanted: 0,
                in_flight: 0,
                applied: None,
                finished: 0,
            }),
            done: watch::channel((0, Ok(()))).0,
            announcer: OnceLock::new(),
            leased_reads: AtomicU64::new(0),
            barrier_reads: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        });
        if let Some(a) = announcing {
            let _ = me
                .announcer
                .set(Announcer::start(a.pool, a.fast_reads, a.timing, &me));
        }
        let ticker = Arc::downgrade(&me);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(me) = ticker.upgrade() else { return };
                if let Err(e) = me.barrier().await {
                    tracing::debug!(error = %e, "changefeed check failed");
                }
            }
        });
        me
    }

    /// See `behind`: loading from the database now could serve older metadata than was served.
    pub fn is_behind(&self) -> bool {
        self.behind.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make the cache current for a read of `gun`: nothing to do while this instance holds a
    /// read lease and no write to `gun` is in flight (`announce.rs`), else a barrier.
    pub async fn fresh(self: &Arc<Self>, gun: &str) -> Result<(), StoreError> {
        if self.announcer.get().is_some_and(|a| a.fast(gun)) {
            self.leased_reads.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.barrier_reads.fetch_add(1, Ordering::Relaxed);
        self.barrier().await
    }

    /// Counters of how reads were made fresh, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let lease = self.announcer.get().is_some_and(|a| a.holds_lease());
        format!(
            "# HELP notary_rs_fresh_reads_total Current-metadata reads, by how they were made fresh: under this instance's read lease (no database round trip) or by waiting for a changefeed check.\n\
             # TYPE notary_rs_fresh_reads_total counter\n\
             notary_rs_fresh_reads_total{{by=\"lease\"}} {}\nnotary_rs_fresh_reads_total{{by=\"changefeed_check\"}} {}\n\
             # HELP notary_rs_changefeed_checks_total Changefeed checks run.\n# TYPE notary_rs_changefeed_checks_total counter\nnotary_rs_changefeed_checks_total {}\n\
             # HELP notary_rs_read_lease 1 while this instance serves current reads under its read lease.\n# TYPE notary_rs_read_lease gauge\nnotary_rs_read_lease {}\n",
            self.leased_reads.load(Ordering::Relaxed),
            self.barrier_reads.load(Ordering::Relaxed),
            self.checks.load(Ordering::Relaxed),
            u8::from(lease)
        )
    }

    /// Run the write `op` on `gun`, announced to the instances holding read leases.
    pub async fn write<'a, T>(
        &self,
        gun: &str,
        mut op: impl FnMut(Option<Vec<String>>) -> WriteFuture<'a, T>,
    ) -> Result<T, StoreError> {
        match self.announcer.get() {
            Some(a) => a.write(gun, op).await,
            None => op(None).await,
        }
    }

    /// Give up this instance's read lease (at shutdown).
    pub async fn leave(&self) {
        if let Some(a) = self.announcer.get() {
            a.leave().await;
        }
    }

    /// Every changefeed row up to this ID is applied to the cache.
    pub fn applied(&self) -> Option<i64> {
        self.lock().applied
    }

    /// Wait until a changefeed check that started after this call has been applied to the cache.
    pub async fn barrier(self: &Arc<Self>) -> Result<(), StoreError> {
        let mut rx = self.done.subscribe();
        let target = {
            let mut s = self.lock();
            let t = s.started + 1;
            s.wanted = s.wanted.max(t);
            t
        };
        self.start_checks();
        let done = rx
            .wait_for(|(epoch, _)| *epoch >= target)
            .await
            .map_err(|_| StoreError::Db("cache follower stopped".into()))?;
        done.1.clone()
    }

    /// Start a check if some read waits for one that has not started and there is room.
    fn start_checks(self: &Arc<Self>) {
        let next = Self::claim(&mut self.lock());
        if let Some((epoch, from)) = next {
            self.spawn_check(epoch, from);
        }
    }

    /// Count a new check as started if one is wanted and there is room: its (epoch, from).
    fn claim(s: &mut State) -> Option<(u64, Option<i64>)> {
        if s.wanted <= s.started || s.in_flight >= MAX_IN_FLIGHT {
            return None;
        }
        s.started += 1;
        s.in_flight += 1;
        Some((s.started, s.applied))
    }

    fn spawn_check(self: &Arc<Self>, epoch: u64, from: Option<i64>) {
        let me = self.clone();
        tokio::spawn(async move {
            let outcome = me.check(from).await;
            let mut s = me.lock();
            s.in_flight -= 1;
            if let Ok(Some(id)) = &outcome {
                s.applied = Some(s.applied.map_or(*id, |a| a.max(*id)));
            }
            // The next check (for the reads that arrived during this one) is spawned before this
            // one's readers are woken: tasks run in the order they were woken or spawned, so its
            // query goes out before this batch's responses are written, not after them.
            if let Some((next, from)) = Self::claim(&mut s) {
                me.spawn_check(next, from);
            }
            // A check covers every commit before it started: finishing epoch N answers all
            // reads waiting for N or less, even if an older check is still running.
            if epoch > s.finished {
                s.finished = epoch;
                let _previous = me.done.send_replace((epoch, outcome.map(|_| ())));
            }
        });
    }

    /// Apply the rows after `from` to the cache; returns the newest row ID applied.
    async fn check(&self, from: Option<i64>) -> Result<Option<i64>, StoreError> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        // Nothing is cached before the first check: start from the newest row.
        let Some(mut from) = from else {
            return Ok(Some(self.store.last_change_id().await?));
        };
        loop {
            let rows = self.store.changes_after(from, PAGE).await?;
            for r in &rows {
                if let Some(a) = self.announcer.get() {
                    a.observed(&r.gun, r.id);
                }
                if r.deletion {
                    self.cache.forget(&r.gun);
                } else {
                    self.cache.apply_update(&r.gun, r.sha256.as_deref());
                }
                from = r.id;
            }
            if (rows.len() as i64) < PAGE {
                if self.monotonic {
                    let newest = if rows.is_empty() {
                        self.store.last_change_id().await?
                    } else {
                        from
                    };
                    let behind = newest < from;
                    if behind
                        != self
                            .behind
                            .swap(behind, std::sync::atomic::Ordering::SeqCst)
                    {
                        if behind {
                            tracing::warn!(
                                database = newest,
                                applied = from,
                                "the database is behind what this instance already served; serving only from the cache until it catches up"
                            );
                        } else {
                            tracing::info!("the database caught up");
                        }
                    }
                }
                return Ok(Some(from));
            }
        }
    }
}
