//! Cache coherence across instances: when a current read (`timestamp.json`, `snapshot.json`,
//! any role without a checksum or version) may be answered from this instance's cache.
//!
//! Every instance caches; several share one database; any of them may write. The promise:
//! **a current read never serves a timestamp older than the newest one committed — through
//! any instance — when the read arrived.** Two mechanisms keep it, the changefeed barrier
//! (always) and the read lease (Postgres, on by default: `caching.read_lease`), by these
//! invariants. Each names the tests that check it (unit tests in this module's files, the
//! others in `notary-tools/tests/`).
//!
//! 1. **Lease.** A read skips the barrier only while this instance holds a *read lease*: its
//!    row in `notary_rs_instances` (migration 3), renewed every `renew_every` for `lease`, and
//!    renewed only after its listener connection heard this instance's own heartbeat (a deaf
//!    listener stops the renewals). Locally the lease is counted from when the renewal was
//!    *sent*, minus `margin`, so it ends here before it ends in the database. A lost listener
//!    revokes it at once. — `book::a_grant_holds_until_the_lease_less_the_margin`,
//!    `read_leases::current_reads_skip_the_database_under_a_lease`,
//!    `read_leases::a_frozen_instance_serves_no_stale_timestamp_when_it_thaws`,
//!    `read_leases::killed_listener_connections_are_replaced_without_stale_reads`.
//! 2. **Announcement before commit.** Every write (publish, re-signed timestamp, deletion,
//!    import) first sends [`Message::Write`] and learns which instances hold a lease; each of
//!    them marks the repository *in flux* (its reads take the barrier again) and then sends
//!    [`Message::Ack`]. The write statement carries the list of instances that acknowledged,
//!    and `notary_rs_write_guard` stores nothing unless every instance holding a lease at that
//!    moment is on it. The writer announces again until all acknowledge or their leases end,
//!    and answers 503 after `write_deadline`. — `book::a_repository_in_flux_is_not_covered_until_every_write_is_done`,
//!    `read_leases::a_write_commits_only_with_every_lease_holders_acknowledgement`.
//! 3. **Registration.** A (re-)registering instance listens first, then writes its lease, then
//!    takes [`REGISTRATION_LOCK`] exclusively once — waiting out every write whose guard checked
//!    the leases before the registration — then passes a barrier, and only then holds the
//!    lease. — `lease::the_registration_lock_is_the_migrations`,
//!    `read_leases::killed_listener_connections_are_replaced_without_stale_reads`.
//! 4. **Done.** After a write with a definite outcome the writer sends [`Message::Done`]; each
//!    instance (the writer too) takes the repository out of flux after a barrier that started
//!    after hearing it. A write whose outcome is unknown (no answer from the database) leaves
//!    it in flux for `flux_ttl`. — `book::writes_never_reported_done_expire_after_the_flux_ttl`,
//!    `multi_instance::instances_see_each_others_writes_at_once`.
//! 5. **Barrier.** Otherwise a current read waits for a changefeed check that *started after
//!    the read arrived* (as Raft's ReadIndex). Changefeed IDs are assigned in commit order
//!    (`storage`'s `CHANGEFEED_LOCK`), so such a check sees every earlier commit. —
//!    `follower::a_barrier_sees_every_commit_made_before_it_was_called`,
//!    `multi_instance::concurrent_reads_never_lag_acknowledged_publishes`,
//!    `storage_writes::writes_are_all_or_nothing_with_one_changefeed_row`.
//! 6. **Shared checks.** Barriers called while a check runs share the next one; at most
//!    [`MAX_CHECKS_IN_FLIGHT`] run at once, each one indexed query on a connection of its own.
//!    — `follower::concurrent_barriers_share_checks`.
//! 7. **Monotonic on a replica.** A read-only instance notices a database behind the position
//!    it already applied (a lagging replica, a fail-over to a staler one) and then serves only
//!    from its cache. Each of its loads reads the changefeed position in the same statement and
//!    is refused below what its checks saw (a pooled connection may reach a staler replica than
//!    the check's: `storage::SqlStore`'s `seen`). —
//!    `follower::a_database_behind_the_applied_position_is_noticed`,
//!    `replica::read_only_instance_on_a_replica_serves_monotonic_reads`,
//!    `patroni::publishes_and_reads_survive_patroni_fail_overs`.
//! 8. **Foreign writers.** A changefeed row nobody announced (the Go notary-server writing to
//!    the same database) suspends the lease for `foreign_backoff`, with a warning. —
//!    `book::an_unannounced_row_suspends_the_lease`,
//!    `read_leases::an_unannounced_writer_turns_leased_reads_off`.
//! 9. **No stale put-back.** A loader that read the database before an invalidation cannot
//!    put its result into the cache after it (`cache::Ticket`); what this instance writes is
//!    installed when the check reaches its row, exactly as the database holds it there. —
//!    `cache::tests::a_put_after_an_invalidation_is_refused`,
//!    `cache::tests::an_expected_write_is_installed_when_its_row_is_applied`,
//!    `multi_instance::the_writer_serves_its_own_write_as_the_database_holds_it`.
//! 10. **Leaving.** A stopping instance deletes its lease, so writers need not wait for it to
//!     end. — `read_leases::a_stopped_instance_gives_its_lease_up`.
//!
//! Hence the promise: a commit after the read's arrival is irrelevant; one before it either
//! passed a guard that saw this instance's lease — so the repository was in flux here before
//! the commit, until a barrier after it (2, 4) — or happened while no lease was held, and then
//! the read takes a barrier (5).
//!
//! Files: `message.rs` (the wire messages), `follower.rs` (changefeed checks and the barrier),
//! `lease.rs` (the read lease and write announcements); this file joins them. The follower
//! knows nothing of the lease (the lease reaches it through the [`Barrier`] trait).

mod book;
mod follower;
mod lease;
mod message;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use book::LeaseTiming;
pub(crate) use follower::Barrier;
pub use follower::Follower;
pub(crate) use lease::{ReadLease, WriteFuture};

use crate::cache::MetaCache;
use crate::gun::Gun;
use crate::storage::{Changefeed, StoreError};

/// The read lease's settings (Postgres, writable database).
pub struct LeaseConfig {
    /// The pool the lease's own connections come from.
    pub pool: sqlx::PgPool,
    /// Take a read lease (`caching.read_lease`); without, writes are still announced.
    pub enabled: bool,
    /// How long the lease holds, how often it is renewed, and the other times of the protocol.
    pub timing: LeaseTiming,
}

/// How current reads were made fresh, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CoherenceCounts {
    /// Current reads that skipped the database under the lease.
    pub(crate) leased_reads: u64,
    /// Current reads that waited for a changefeed check.
    pub(crate) barrier_reads: u64,
    /// Changefeed checks made.
    pub checks: u64,
    /// Whether this instance holds its lease now.
    pub(crate) lease_held: bool,
}

/// When a cached read is current (see the module): the changefeed follower, and the read lease on
/// Postgres.
pub(crate) struct Coherence {
    follower: Arc<Follower>,
    lease: Option<Arc<ReadLease>>,
    leased_reads: AtomicU64,
    barrier_reads: AtomicU64,
}

impl Coherence {
    /// Follow `feed` for `cache` (a check at least every `period`), with a read lease if
    /// `lease` is given. `read_only`: watch for a database going behind (invariant 7).
    pub(crate) fn start(
        feed: Arc<dyn Changefeed>,
        cache: Arc<MetaCache>,
        period: Duration,
        read_only: bool,
        lease: Option<LeaseConfig>,
    ) -> Self {
        let follower = Follower::spawn(feed, cache, period, read_only);
        let lease = lease.map(|l| {
            let barrier: Arc<dyn Barrier> = follower.clone();
            let lease = ReadLease::start(l.pool, l.enabled, l.timing, Arc::downgrade(&barrier));
            let observer = Arc::downgrade(&lease);
            follower.observe_rows(Box::new(move |gun, id| {
                if let Some(l) = observer.upgrade() {
                    l.observed(gun, id);
                }
            }));
            lease
        });
        Coherence {
            follower,
            lease,
            leased_reads: AtomicU64::new(0),
            barrier_reads: AtomicU64::new(0),
        }
    }

    /// Make the cache current for a read of `gun`: nothing to do under the read lease with no
    /// write to `gun` in flux, else a barrier.
    pub(crate) async fn fresh(&self, gun: &Gun) -> Result<(), StoreError> {
        if self.lease.as_ref().is_some_and(|l| l.covers(gun)) {
            self.leased_reads.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.barrier_reads.fetch_add(1, Ordering::Relaxed);
        self.follower.barrier().await
    }

    /// The changefeed position a read arriving now must reflect: every row up to it is
    /// applied here, and every commit made before the read is at or before it — under the read
    /// lease with no write in flux anywhere, the applied position as it is (a write committed
    /// meanwhile would have been announced, invariant 2), else after a barrier (invariant 5).
    /// `None`: the changefeed was never read.
    pub(crate) async fn position(&self) -> Result<Option<i64>, StoreError> {
        if self.lease.as_ref().is_some_and(|l| l.covers_all()) {
            if let Some(p) = self.follower.applied() {
                self.leased_reads.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(p));
            }
        }
        self.barrier_reads.fetch_add(1, Ordering::Relaxed);
        self.follower.barrier().await?;
        Ok(self.follower.applied())
    }

    /// Run the write `op` on `gun`, announced to the lease holders (invariant 2).
    pub(crate) async fn write<'a, T>(
        &self,
        gun: &Gun,
        mut op: impl FnMut(Option<Vec<String>>) -> WriteFuture<'a, T>,
    ) -> Result<T, StoreError> {
        match &self.lease {
            Some(l) => l.write(gun, op).await,
            None => op(None).await,
        }
    }

    /// Give up the read lease (at shutdown).
    pub(crate) async fn leave(&self) {
        if let Some(l) = &self.lease {
            l.leave().await;
        }
    }

    /// Loading from the database now could serve older metadata than was served (invariant 7).
    pub(crate) fn is_behind(&self) -> bool {
        self.follower.is_behind()
    }

    /// How current reads were made fresh so far.
    pub(crate) fn counts(&self) -> CoherenceCounts {
        CoherenceCounts {
            leased_reads: self.leased_reads.load(Ordering::Relaxed),
            barrier_reads: self.barrier_reads.load(Ordering::Relaxed),
            checks: self.follower.checks(),
            lease_held: self.lease.as_ref().is_some_and(|l| l.held()),
        }
    }
}
