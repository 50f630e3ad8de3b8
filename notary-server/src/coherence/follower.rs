//! The changefeed follower and its read barrier (invariants 5–7 of [`super`]).
//!
//! Every instance follows the shared changefeed. A *check* reads the rows after the last one
//! applied and drops the cache entries of the GUNs they name (installing what this instance
//! wrote itself, see `cache.rs`). [`Follower::barrier`] waits for a check that **started after
//! it was called**. Checks are shared: a barrier called while a check is in flight waits for the
//! next one, which starts as soon as the current one ends; under load one small indexed query
//! answers a whole batch of reads. With no reads a check still runs every `period` (deletions
//! reach the by-checksum cache).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::cache::MetaCache;
use crate::storage::{Changefeed, StoreError};
use notary_common::sync::lock;

/// Rows read per query; a longer backlog is read in several.
const PAGE: i64 = 1000;
/// Checks that may run at once. One is best measured (notary-bench, 16 and 64 connections):
/// overlapping checks shorten the wait a little but cost more queries than they save.
pub(crate) const MAX_CHECKS_IN_FLIGHT: usize = 1;
// Each check in flight has an idle connection waiting for it.
const _: () = assert!(crate::storage::IDLE_FOLLOWERS >= MAX_CHECKS_IN_FLIGHT);

/// What the read lease needs of the follower (so that the lease holds no reference back to it).
#[async_trait]
pub(crate) trait Barrier: Send + Sync {
    /// Wait until a changefeed check that started after this call has been applied.
    async fn barrier(&self) -> Result<(), StoreError>;
    /// Every changefeed row up to this ID is applied (`None`: no check has finished yet).
    fn applied(&self) -> Option<i64>;
}

/// Called with (GUN, row ID) for every changefeed row applied.
pub(super) type RowObserver = Box<dyn Fn(&str, i64) + Send + Sync>;

struct State {
    /// Checks started so far (the epoch of the newest one).
    started: u64,
    /// Highest epoch some barrier waits for.
    wanted: u64,
    in_flight: usize,
    /// Every changefeed row up to this ID is applied to the cache (`None`: not read yet).
    applied: Option<i64>,
    /// Newest finished epoch.
    finished: u64,
}

/// The changefeed barrier: checks that make a cached read current (invariants 5–7).
pub struct Follower {
    me: Weak<Follower>,
    /// Watch that the database does not go behind what was already applied (a read-only
    /// instance on a replica, which may lag or be replaced by a staler one: invariant 7).
    read_only: bool,
    /// The database was last seen behind the changefeed position this instance already applied:
    /// nothing may be loaded from it meanwhile.
    behind: AtomicBool,
    feed: Arc<dyn Changefeed>,
    cache: Arc<MetaCache>,
    state: Mutex<State>,
    /// (newest finished epoch, its outcome)
    done: watch::Sender<(u64, Result<(), StoreError>)>,
    observer: OnceLock<RowObserver>,
    checks: AtomicU64,
}

impl Follower {
    /// Start following `feed` for `cache`, checking at least every `period`.
    pub fn spawn(
        feed: Arc<dyn Changefeed>,
        cache: Arc<MetaCache>,
        period: Duration,
        read_only: bool,
    ) -> Arc<Self> {
        let me = Arc::new_cyclic(|me| Follower {
            me: me.clone(),
            read_only,
            behind: AtomicBool::new(false),
            feed,
            cache,
            state: Mutex::new(State {
                started: 0,
                wanted: 0,
                in_flight: 0,
                applied: None,
                finished: 0,
            }),
            done: watch::channel((0, Ok(()))).0,
            observer: OnceLock::new(),
            checks: AtomicU64::new(0),
        });
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

    /// Have `f` called for every row applied from now on (once; later calls are ignored).
    pub(crate) fn observe_rows(&self, f: RowObserver) {
        let _ = self.observer.set(f);
    }

    /// See `behind`: loading from the database now could serve older metadata than was served.
    pub(crate) fn is_behind(&self) -> bool {
        self.behind.load(Ordering::SeqCst)
    }

    /// Changefeed checks run so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Start a check if some barrier waits for one that has not started and there is room.
    fn start_checks(&self) {
        let next = Self::claim(&mut lock(&self.state));
        if let Some((epoch, from)) = next {
            self.spawn_check(epoch, from);
        }
    }

    /// Count a new check as started if one is wanted and there is room: its (epoch, from).
    fn claim(s: &mut State) -> Option<(u64, Option<i64>)> {
        if s.wanted <= s.started || s.in_flight >= MAX_CHECKS_IN_FLIGHT {
            return None;
        }
        s.started += 1;
        s.in_flight += 1;
        Some((s.started, s.applied))
    }

    fn spawn_check(&self, epoch: u64, from: Option<i64>) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let outcome = me.check(from).await;
            let mut s = lock(&me.state);
            s.in_flight -= 1;
            if let Ok(Some(id)) = &outcome {
                s.applied = Some(s.applied.map_or(*id, |a| a.max(*id)));
            }
            // The next check (for the barriers called during this one) is spawned before this
            // one's waiters are woken: tasks run in the order they were woken or spawned, so its
            // query goes out before this batch's responses are written, not after them.
            if let Some((next, from)) = Self::claim(&mut s) {
                me.spawn_check(next, from);
            }
            // A check covers every commit before it started: finishing epoch N answers all
            // barriers waiting for N or less, even if an older check is still running.
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
            return Ok(Some(self.feed.last_change_id().await?));
        };
        loop {
            let rows = self.feed.changes_after(from, PAGE).await?;
            for r in &rows {
                if let Some(observe) = self.observer.get() {
                    observe(&r.gun, r.id);
                }
                if r.deletion {
                    self.cache.forget(&r.gun);
                } else {
                    self.cache.apply_update(&r.gun, r.sha256.as_deref());
                }
                from = r.id;
            }
            if (rows.len() as i64) < PAGE {
                if self.read_only {
                    let newest = if rows.is_empty() {
                        self.feed.last_change_id().await?
                    } else {
                        from
                    };
                    self.note_behind(newest, from);
                }
                return Ok(Some(from));
            }
        }
    }

    fn note_behind(&self, newest: i64, applied: i64) {
        let behind = newest < applied;
        if behind != self.behind.swap(behind, Ordering::SeqCst) {
            if behind {
                tracing::warn!(
                    database = newest,
                    applied,
                    "the database is behind what this instance already served; serving only from the cache until it catches up"
                );
            } else {
                tracing::info!("the database caught up");
            }
        }
    }
}

#[async_trait]
impl Barrier for Follower {
    async fn barrier(&self) -> Result<(), StoreError> {
        let mut rx = self.done.subscribe();
        let target = {
            let mut s = lock(&self.state);
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

    fn applied(&self) -> Option<i64> {
        lock(&self.state).applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CachedChain;
    use crate::gun::gun;
    use crate::storage::{ChangeRef, StoredFile};

    /// An in-memory changefeed: rows can be appended (a commit) or the whole feed replaced by
    /// a shorter one (a replica that is behind); each query can be slowed down.
    #[derive(Default)]
    struct MemFeed {
        rows: Mutex<Vec<ChangeRef>>,
        queries: AtomicU64,
        delay_ms: AtomicU64,
    }

    impl MemFeed {
        fn commit(&self, name: &str, deletion: bool) -> i64 {
            let mut rows = lock(&self.rows);
            let id = rows.last().map_or(1, |r| r.id + 1);
            rows.push(ChangeRef {
                id,
                gun: gun(name),
                deletion,
                sha256: None,
            });
            id
        }
    }

    #[async_trait]
    impl Changefeed for MemFeed {
        async fn last_change_id(&self) -> Result<i64, StoreError> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            Ok(lock(&self.rows).last().map_or(0, |r| r.id))
        }
        async fn changes_after(&self, id: i64, limit: i64) -> Result<Vec<ChangeRef>, StoreError> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            let rows: Vec<ChangeRef> = lock(&self.rows)
                .iter()
                .filter(|r| r.id > id)
                .take(limit as usize)
                .cloned()
                .collect();
            let delay = self.delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Ok(rows)
        }
    }

    fn chain(ts: &str) -> Arc<CachedChain> {
        let f = |d: &str| StoredFile::from_bytes(d.as_bytes().to_vec(), None);
        let expires = chrono::DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z").unwrap();
        Arc::new(CachedChain {
            timestamp: f(ts),
            timestamp_expires: expires,
            snapshot: f("snap"),
            snapshot_expires: expires,
            role_sha256: Default::default(),
        })
    }

    fn setup(read_only: bool) -> (Arc<MemFeed>, Arc<MetaCache>, Arc<Follower>) {
        let feed = Arc::new(MemFeed::default());
        let cache = Arc::new(MetaCache::new(10, 10, 1 << 20));
        let f = Follower::spawn(
            feed.clone(),
            cache.clone(),
            Duration::from_secs(3600),
            read_only,
        );
        (feed, cache, f)
    }

    /// Invariant 5: after a barrier, a commit made before it was called is visible.
    #[tokio::test]
    async fn a_barrier_sees_every_commit_made_before_it_was_called() {
        let (feed, cache, f) = setup(false);
        f.barrier().await.unwrap(); // the first check only learns the position
        cache.put_chain(cache.ticket(), &gun("g"), chain("ts1"));
        cache.put_chain(cache.ticket(), &gun("h"), chain("ts1"));
        feed.commit("g", false);
        assert!(
            cache.chain(&gun("g")).is_some(),
            "nothing applied before a barrier"
        );
        f.barrier().await.unwrap();
        assert!(cache.chain(&gun("g")).is_none(), "the update invalidated g");
        assert!(cache.chain(&gun("h")).is_some(), "h was not touched");
        assert_eq!(f.applied(), Some(1));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        f.observe_rows(Box::new(move |gun, id| {
            lock(&s).push((gun.to_string(), id))
        }));
        feed.commit("h", true);
        f.barrier().await.unwrap();
        assert!(cache.chain(&gun("h")).is_none(), "the deletion forgot h");
        assert_eq!(*lock(&seen), vec![("h".to_string(), 2)]);
    }

    /// Invariant 6: barriers called together share checks; a barrier never takes a check that
    /// started before it was called.
    #[tokio::test]
    async fn concurrent_barriers_share_checks() {
        let (feed, cache, f) = setup(false);
        f.barrier().await.unwrap();
        feed.delay_ms.store(50, Ordering::SeqCst);
        let before = f.checks();
        let mut waiting = Vec::new();
        for _ in 0..100 {
            let f = f.clone();
            waiting.push(tokio::spawn(async move { f.barrier().await }));
        }
        // A commit while the first check runs: every barrier above was called before it, but
        // one called now must see it.
        tokio::time::sleep(Duration::from_millis(10)).await;
        cache.put_chain(cache.ticket(), &gun("g"), chain("ts1"));
        feed.commit("g", false);
        f.barrier().await.unwrap();
        assert!(
            cache.chain(&gun("g")).is_none(),
            "a barrier used a check started before it"
        );
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        let ran = f.checks() - before;
        assert!(ran <= 3, "{ran} checks for 101 barriers");
    }

    /// Invariant 7: a read-only instance notices a database behind what it already applied.
    #[tokio::test]
    async fn a_database_behind_the_applied_position_is_noticed() {
        let (feed, _cache, f) = setup(true);
        feed.commit("g", false);
        feed.commit("g", false);
        f.barrier().await.unwrap();
        assert!(!f.is_behind());
        // A fail-over to a replica that had only the first row.
        lock(&feed.rows).truncate(1);
        f.barrier().await.unwrap();
        assert!(f.is_behind(), "the staler database went unnoticed");
        feed.commit("g", false);
        feed.commit("g", false);
        f.barrier().await.unwrap();
        assert!(!f.is_behind(), "caught up");
    }
}
