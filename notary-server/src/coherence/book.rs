//! The read lease's bookkeeping, without I/O (invariants 1, 2, 4 and 8 of [`super`]): whether
//! the lease is held, which repositories are in flux, which announcements were heard. Times
//! are passed in, so that it is tested alone; `lease.rs` does the talking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use notary_common::sync::lock;

/// The times of the read-lease protocol (tests shorten them).
#[derive(Debug, Clone)]
pub struct LeaseTiming {
    /// How long a registration or renewal holds in the database.
    pub lease: Duration,
    /// How often the lease is renewed.
    pub(crate) renew_every: Duration,
    /// Reads stop skipping the barrier this long before the database's copy of the lease ends.
    pub margin: Duration,
    /// A write announced but never reported done keeps its repository in flux this long.
    pub(crate) flux_ttl: Duration,
    /// A writer re-announces after waiting this long for acknowledgements.
    pub retry: Duration,
    /// A write not acknowledged by then fails (503).
    pub(crate) write_deadline: Duration,
    /// The lease is suspended this long after an unannounced write (invariant 8).
    pub(crate) foreign_backoff: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            lease: Duration::from_secs(3),
            renew_every: Duration::from_millis(500),
            margin: Duration::from_millis(500),
            flux_ttl: Duration::from_secs(300),
            retry: Duration::from_millis(200),
            write_deadline: Duration::from_secs(10),
            foreign_backoff: Duration::from_secs(600),
        }
    }
}

/// The lease's bookkeeping, without I/O: whether it is held, which repositories are in flux,
/// which announcements were heard. Times are passed in, so that it can be tested alone.
pub(super) struct Book {
    pub(super) t: LeaseTiming,
    pub(super) base: Instant,
    /// The lease holds until (nanoseconds since `base`; 0: not held).
    valid_until: AtomicU64,
    /// Suspended until (nanoseconds since `base`) after an unannounced write.
    foreign_until: AtomicU64,
    /// Repositories in flux: GUN → tokens of writes not yet known done, with when heard.
    in_flux: Mutex<HashMap<String, Vec<(String, Instant)>>>,
    /// Last announcement heard per GUN (for unannounced-write detection).
    announced: Mutex<HashMap<String, Instant>>,
    /// Changefeed rows after this ID must have been announced (`i64::MAX`: not checked).
    detect_from: AtomicI64,
}

impl Book {
    pub(super) fn new(t: LeaseTiming) -> Self {
        Book {
            t,
            base: Instant::now(),
            valid_until: AtomicU64::new(0),
            foreign_until: AtomicU64::new(0),
            in_flux: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            detect_from: AtomicI64::new(i64::MAX),
        }
    }

    pub(super) fn at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// Is the lease held at `now` (granted, not ended, not suspended)?
    pub(super) fn held(&self, now: Instant) -> bool {
        let now = self.at(now);
        now < self.valid_until.load(Ordering::SeqCst)
            && now >= self.foreign_until.load(Ordering::SeqCst)
    }

    /// May a current read of `gun` skip the barrier at `now`?
    pub(super) fn covers(&self, gun: &str, now: Instant) -> bool {
        self.held(now) && !lock(&self.in_flux).contains_key(gun)
    }

    /// May a read of the whole changefeed skip the barrier at `now` (no write in flux anywhere)?
    pub(super) fn covers_all(&self, now: Instant) -> bool {
        self.held(now) && lock(&self.in_flux).is_empty()
    }

    /// The lease (re)newed by a statement sent at `sent` holds until `sent + lease - margin`.
    pub(super) fn grant(&self, sent: Instant) {
        let until = self.at(sent + self.t.lease - self.t.margin);
        self.valid_until.store(until, Ordering::SeqCst);
    }

    pub(super) fn revoke(&self) {
        self.valid_until.store(0, Ordering::SeqCst);
    }

    /// Judge changefeed rows after `id` (`None`: stop judging).
    pub(super) fn detect_after(&self, id: Option<i64>) {
        self.detect_from
            .store(id.unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    pub(super) fn mark_flux(&self, gun: &str, token: &str, now: Instant) {
        lock(&self.in_flux)
            .entry(gun.to_string())
            .or_default()
            .push((token.to_string(), now));
        lock(&self.announced).insert(gun.to_string(), now);
    }

    pub(super) fn unflux(&self, gun: &str, token: &str) {
        let mut f = lock(&self.in_flux);
        if let Some(tokens) = f.get_mut(gun) {
            tokens.retain(|(t, _)| t != token);
            if tokens.is_empty() {
                f.remove(gun);
            }
        }
    }

    /// A changefeed row `id` of `gun` was applied at `now`: true if nobody announced it, in
    /// which case the lease is suspended for `foreign_backoff` (true only for the first such
    /// row of a suspension). Only judged while the lease holds: every write committed meanwhile
    /// needed this instance's acknowledgement, so its announcement was heard before its row
    /// could be read (a frozen instance may read rows before the announcements queued for it).
    pub(super) fn observed(&self, gun: &str, id: i64, now: Instant) -> bool {
        if id <= self.detect_from.load(Ordering::SeqCst)
            || self.at(now) >= self.valid_until.load(Ordering::SeqCst)
        {
            return false;
        }
        let heard = lock(&self.announced)
            .get(gun)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.t.flux_ttl);
        if heard {
            return false;
        }
        let until = self.at(now + self.t.foreign_backoff);
        self.foreign_until.swap(until, Ordering::SeqCst) <= self.at(now)
    }

    /// Writes in flux for longer than `flux_ttl` at `now` (never reported done); announcements
    /// older than that are forgotten.
    pub(super) fn expired(&self, now: Instant) -> Vec<(String, String)> {
        let ttl = self.t.flux_ttl;
        let old = |at: &Instant| now.saturating_duration_since(*at) > ttl;
        lock(&self.announced).retain(|_, at| !old(at));
        lock(&self.in_flux)
            .iter()
            .flat_map(|(g, ts)| {
                ts.iter()
                    .filter(|(_, at)| old(at))
                    .map(|(t, _)| (g.clone(), t.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> (Book, Instant) {
        let t = LeaseTiming::default();
        let b = Book::new(t);
        let now = b.base + Duration::from_secs(1);
        (b, now)
    }

    /// Invariant 1: the lease is counted from when its statement was sent, minus the margin.
    #[test]
    fn a_grant_holds_until_the_lease_less_the_margin() {
        let (b, now) = book();
        assert!(!b.held(now), "held before any grant");
        b.grant(now);
        assert!(b.held(now + Duration::from_millis(2_400)));
        assert!(
            !b.held(now + Duration::from_millis(2_500)),
            "margin ignored"
        );
        b.grant(now + Duration::from_secs(2));
        assert!(
            b.held(now + Duration::from_millis(4_400)),
            "renewal ignored"
        );
        b.revoke();
        assert!(!b.held(now));
    }

    /// Invariants 2 and 4: a repository with a write in flux is not covered until every
    /// write in flux on it is done; other repositories stay covered.
    #[test]
    fn a_repository_in_flux_is_not_covered_until_every_write_is_done() {
        let (b, now) = book();
        b.grant(now);
        assert!(b.covers("g", now));
        b.mark_flux("g", "w1", now);
        b.mark_flux("g", "w2", now);
        assert!(!b.covers("g", now));
        assert!(b.covers("h", now));
        b.unflux("g", "w1");
        assert!(!b.covers("g", now), "one of two writes done");
        b.unflux("g", "w2");
        assert!(b.covers("g", now));
    }

    /// Invariant 4: a write never reported done leaves flux only after `flux_ttl`.
    #[test]
    fn writes_never_reported_done_expire_after_the_flux_ttl() {
        let (b, now) = book();
        b.mark_flux("g", "w1", now);
        assert!(b.expired(now + Duration::from_secs(299)).is_empty());
        assert_eq!(
            b.expired(now + Duration::from_secs(301)),
            vec![("g".to_string(), "w1".to_string())]
        );
    }

    /// Invariant 8: a row nobody announced suspends the lease for `foreign_backoff`; announced
    /// rows, rows before detection started and rows seen without a lease do not.
    #[test]
    fn an_unannounced_row_suspends_the_lease() {
        let (b, now) = book();
        b.grant(now);
        b.detect_after(Some(10));
        assert!(
            !b.observed("g", 9, now),
            "a row from before the registration"
        );
        b.mark_flux("h", "w", now);
        assert!(!b.observed("h", 11, now), "an announced row");
        assert!(b.held(now));
        assert!(b.observed("g", 12, now), "an unannounced row");
        assert!(!b.held(now));
        assert!(!b.observed("g", 13, now), "warned once per suspension");
        let later = now + Duration::from_secs(601);
        b.grant(later);
        assert!(b.held(later), "the suspension ended");
        b.revoke();
        assert!(
            !b.observed("x", 20, later),
            "judged only while the lease holds"
        );
    }
}
