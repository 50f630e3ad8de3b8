//! Current reads with no database round trip, across instances (Postgres): write announcements
//! acknowledged by every instance that holds a read lease.
//!
//! Without this, a current read waits for a changefeed check that started after it arrived
//! (`freshness.rs`): one round trip to Postgres shared by the reads of a batch. With it:
//!
//! - **Leases.** An instance that serves fast reads holds a lease in `notary_rs_instances`,
//!   renewed every `renew_every` for `lease`, and only after its listener connection has heard
//!   its own heartbeat (so a deaf listener stops the renewals). Locally it counts the lease from
//!   the moment it *sent* the renewal, minus `margin`: it stops serving fast reads before the
//!   database's copy of the lease ends.
//! - **Announcements.** Every write (publish, re-signed timestamp, deletion) first announces
//!   itself on the `notary_rs` channel and learns which instances hold a lease; each of them
//!   marks the repository *in flux* — its reads go through the changefeed barrier again — and
//!   then acknowledges. The write statement itself carries the list of instances that
//!   acknowledged: `notary_rs_write_guard` (migration 3) stores nothing unless every instance
//!   holding a lease at that moment is on it, so a write never commits while an instance that
//!   may serve fast reads has not heard of it. A writer re-announces until all acknowledge or
//!   their leases end (an instance that stopped, crashed or was cut off holds writes up by at
//!   most `lease`), and gives up with 503 after `write_deadline`.
//! - **Registration.** A (re-)registering instance listens first, then writes its lease, then
//!   takes the guard's lock exclusively once — waiting out every write that checked the leases
//!   before it registered — then runs a changefeed check (covering everything committed so
//!   far), and only then serves fast reads.
//! - **Done.** After a write with a definite outcome the writer announces that it is done; each
//!   instance (the writer too) runs a changefeed check that started after hearing it, then takes
//!   the repository out of flux. A write whose outcome is unknown (no answer from the database)
//!   leaves it in flux for `flux_ttl`.
//! - **Foreign writers.** A changefeed row nobody announced (the Go notary-server writing to the
//!   same database, say) turns fast reads off for `foreign_backoff`, with a warning.
//!
//! So a read served without a round trip is still never older than the newest timestamp
//! committed when it arrived: such a commit's guard saw this instance's lease, so this instance
//! had marked the repository in flux before it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPool};
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, watch, Notify};

use crate::freshness::Freshness;
use crate::storage::{within, StoreError, REGISTRATION_LOCK};

/// A write to run once announced: gets the instances that acknowledged it (`None`: unguarded).
pub type WriteFuture<'a, T> = futures_util::future::BoxFuture<'a, Result<T, StoreError>>;

/// The notification channel of announcements, acknowledgements and heartbeats.
pub const CHANNEL: &str = "notary_rs";

#[derive(Debug, Clone)]
pub struct Timing {
    /// How long a registration or renewal holds in the database.
    pub lease: Duration,
    pub renew_every: Duration,
    /// Fast reads stop this long before the database's copy of the lease ends.
    pub margin: Duration,
    /// A write announced but never reported done keeps its repository in flux this long.
    pub flux_ttl: Duration,
    /// A writer re-announces after waiting this long for acknowledgements.
    pub retry: Duration,
    /// A write not acknowledged by then fails (503).
    pub write_deadline: Duration,
    /// Fast reads stay off this long after an unannounced write.
    pub foreign_backoff: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
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

/// A write waiting for acknowledgements.
struct Waiter {
    acked: HashSet<String>,
    wake: Arc<Notify>,
}

pub struct Announcer {
    /// This process's instance ID (random).
    me: String,
    pool: PgPool,
    /// Register and serve fast reads (else only announce this instance's writes).
    fast_reads: bool,
    t: Timing,
    base: Instant,
    /// Fast reads allowed until (nanoseconds since `base`; 0: not allowed).
    valid_until: AtomicU64,
    /// Fast reads off until (nanoseconds since `base`) after an unannounced write.
    foreign_until: AtomicU64,
    /// Repositories in flux: GUN → tokens of writes not yet known done, with when heard.
    in_flux: Mutex<HashMap<String, Vec<(String, Instant)>>>,
    /// Last announcement heard per GUN (for unannounced-write detection).
    announced: Mutex<HashMap<String, Instant>>,
    /// Changefeed rows after this ID must have been announced (`i64::MAX`: not checked).
    detect_from: AtomicI64,
    waiters: Mutex<HashMap<String, Waiter>>,
    /// Newest heartbeat sequence number this instance's listener heard from itself.
    heard: watch::Sender<u64>,
    /// (listening epoch, listening now)
    listening: watch::Sender<(u64, bool)>,
    /// Makes the listener reconnect (its connection stopped hearing).
    restart: Notify,
    acks: mpsc::UnboundedSender<String>,
    seq: AtomicU64,
    freshness: Weak<Freshness>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection of its own for notifications (their commits need not wait for the disk).
async fn connect(pool: &PgPool) -> Result<PgConnection, StoreError> {
    let mut c = PgConnection::connect_with(&pool.connect_options()).await?;
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut c)
        .await?;
    Ok(c)
}

impl Announcer {
    /// Start listening (and, with `fast_reads`, registering) for the instance whose cache
    /// `freshness` follows.
    pub fn start(
        pool: PgPool,
        fast_reads: bool,
        t: Timing,
        freshness: &Arc<Freshness>,
    ) -> Arc<Self> {
        let (acks, acks_rx) = mpsc::unbounded_channel();
        let me = Arc::new(Announcer {
            me: format!(
                "{:016x}",
                rand_core::RngCore::next_u64(&mut rand_core::OsRng)
            ),
            pool,
            fast_reads,
            t,
            base: Instant::now(),
            valid_until: AtomicU64::new(0),
            foreign_until: AtomicU64::new(0),
            in_flux: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            detect_from: AtomicI64::new(i64::MAX),
            waiters: Mutex::new(HashMap::new()),
            heard: watch::channel(0).0,
            listening: watch::channel((0, false)).0,
            restart: Notify::new(),
            acks,
            seq: AtomicU64::new(0),
            freshness: Arc::downgrade(freshness),
        });
        tokio::spawn(me.clone().listen_loop());
        tokio::spawn(me.clone().ack_loop(acks_rx));
        tokio::spawn(me.clone().sweep_loop());
        if fast_reads {
            tokio::spawn(me.clone().keep_loop());
        }
        me
    }

    fn nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn until(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// Does this instance serve current reads under its read lease now (it holds one, and no
    /// unannounced write turned them off)?
    pub fn holds_lease(&self) -> bool {
        let now = self.nanos();
        self.fast_reads
            && now < self.valid_until.load(Ordering::SeqCst)
            && now >= self.foreign_until.load(Ordering::SeqCst)
    }

    /// May a current read of `gun` be served from the cache without a changefeed check?
    pub fn fast(&self, gun: &str) -> bool {
        self.holds_lease() && !lock(&self.in_flux).contains_key(gun)
    }

    fn mark_flux(&self, gun: &str, token: &str) {
        lock(&self.in_flux)
            .entry(gun.to_string())
            .or_default()
            .push((token.to_string(), Instant::now()));
        lock(&self.announced).insert(gun.to_string(), Instant::now());
    }

    fn unflux(&self, gun: &str, token: &str) {
        let mut f = lock(&self.in_flux);
        if let Some(tokens) = f.get_mut(gun) {
            tokens.retain(|(t, _)| t != token);
            if tokens.is_empty() {
                f.remove(gun);
            }
        }
    }

    /// Take `gun` out of flux for `token` once a changefeed check that starts now has been
    /// applied (it covers the write, which has ended).
    fn unflux_after_check(self: &Arc<Self>, gun: String, token: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let Some(f) = me.freshness.upgrade() else {
                return;
            };
            match f.barrier().await {
                Ok(()) => me.unflux(&gun, &token),
                Err(e) => {
                    tracing::debug!(gun, error = %e, "changefeed check failed; the repository stays in flux")
                }
            }
        });
    }

    /// A changefeed row (update or deletion of `gun`) was applied: if nobody announced it,
    /// some writer does not announce, and fast reads are not safe for a while.
    /// Only judged while the lease holds: every write committed meanwhile needed this
    /// instance's acknowledgement, so its announcement was heard before its row could be read
    /// (a frozen instance may read rows before the announcements queued for it).
    pub fn observed(&self, gun: &str, id: i64) {
        if !self.fast_reads
            || id <= self.detect_from.load(Ordering::SeqCst)
            || self.nanos() >= self.valid_until.load(Ordering::SeqCst)
        {
            return;
        }
        let heard = lock(&self.announced)
            .get(gun)
            .is_some_and(|at| at.elapsed() < self.t.flux_ttl);
        if !heard {
            let until = self.nanos() + self.t.foreign_backoff.as_nanos() as u64;
            if self.foreign_until.swap(until, Ordering::SeqCst) <= self.nanos() {
                tracing::warn!(
                    gun,
                    change_id = id,
                    "a write reached the database without an announcement (another kind of server writing to it?): \
                     current reads check the changefeed on every request for the next {:?}",
                    self.t.foreign_backoff
                );
            }
        }
    }

    fn on_message(self: &Arc<Self>, payload: &str) {
        let mut p = payload.splitn(4, ' ');
        match (p.next(), p.next(), p.next(), p.next()) {
            // (An instance without fast reads holds no lease: nobody waits for it.)
            (Some("p"), Some(writer), Some(token), Some(gun))
                if writer != self.me && self.fast_reads =>
            {
                self.mark_flux(gun, token);
                let _ = self.acks.send(token.to_string());
            }
            (Some("d"), Some(writer), Some(token), Some(gun))
                if writer != self.me && self.fast_reads =>
            {
                self.unflux_after_check(gun.to_string(), token.to_string());
            }
            (Some("a"), Some(token), Some(instance), None) => {
                if let Some(w) = lock(&self.waiters).get_mut(token) {
                    w.acked.insert(instance.to_string());
                    w.wake.notify_one();
                }
            }
            (Some("h"), Some(instance), Some(seq), None) if instance == self.me => {
                if let Ok(seq) = seq.parse::<u64>() {
                    self.heard.send_if_modified(|s| {
                        let newer = seq > *s;
                        *s = (*s).max(seq);
                        newer
                    });
                }
            }
            _ => {}
        }
    }

    fn set_listening(&self, on: bool) {
        if !on {
            self.valid_until.store(0, Ordering::SeqCst);
        }
        self.listening.send_modify(|(epoch, l)| {
            if on {
                *epoch += 1;
            }
            *l = on;
        });
    }

    async fn listen_loop(self: Arc<Self>) {
        loop {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the announcement listener; current reads check the changefeed meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            listener.eager_reconnect(false);
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "cannot listen for announcements");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            self.set_listening(true);
            loop {
                tokio::select! {
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => self.on_message(n.payload()),
                        Ok(None) => { tracing::warn!("announcement listener lost its connection"); break }
                        Err(e) => { tracing::warn!(error = %e, "announcement listener failed"); break }
                    },
                    _ = self.restart.notified() => { tracing::warn!("announcement listener stopped hearing; reconnecting"); break }
                }
            }
            self.set_listening(false);
            drop(listener);
            if self.pool.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Send the acknowledgements the listener queued, several per statement.
    async fn ack_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<String>) {
        let mut conn: Option<PgConnection> = None;
        while let Some(first) = rx.recv().await {
            let mut payloads = vec![format!("a {first} {}", self.me)];
            while let Ok(t) = rx.try_recv() {
                payloads.push(format!("a {t} {}", self.me));
            }
            for _attempt in 0..3 {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match within(self.t.lease, "connecting", connect(&self.pool)).await {
                        Ok(c) => conn.insert(c),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                    .bind(CHANNEL)
                    .bind(&payloads)
                    .execute(c);
                match within(self.t.lease, "acknowledging", sent).await {
                    Ok(_) => break,
                    // The writers announce again; these are acknowledged then.
                    _ => conn = None,
                }
            }
        }
    }

    /// Expire writes never reported done, and old announcements.
    async fn sweep_loop(self: Arc<Self>) {
        let me = Arc::downgrade(&self);
        drop(self);
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let Some(me) = me.upgrade() else { return };
            let ttl = me.t.flux_ttl;
            let stale: Vec<(String, String)> = lock(&me.in_flux)
                .iter()
                .flat_map(|(g, ts)| {
                    ts.iter()
                        .filter(|(_, at)| at.elapsed() > ttl)
                        .map(|(t, _)| (g.clone(), t.clone()))
                })
                .collect();
            for (gun, token) in stale {
                me.unflux_after_check(gun, token);
            }
            lock(&me.announced).retain(|_, at| at.elapsed() < ttl);
        }
    }

    /// Register, then renew while the listener hears; on any failure fast reads stop and the
    /// instance registers again.
    async fn keep_loop(self: Arc<Self>) {
        let mut rx = self.listening.subscribe();
        loop {
            let epoch = match rx.wait_for(|(_, on)| *on).await {
                Ok(v) => v.0,
                Err(_) => return,
            };
            if let Err(e) = self.register_and_renew(epoch).await {
                tracing::warn!(error = %e, "read lease lost; current reads check the changefeed until it is renewed");
            }
            self.valid_until.store(0, Ordering::SeqCst);
            self.detect_from.store(i64::MAX, Ordering::SeqCst);
            if self.pool.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn still_listening(&self, epoch: u64) -> bool {
        *self.listening.borrow() == (epoch, true)
    }

    async fn timed<T, E: Into<StoreError>>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, StoreError> {
        within(self.t.lease, what, f).await
    }

    async fn register_and_renew(&self, epoch: u64) -> Result<(), StoreError> {
        let lease_ms = self.t.lease.as_millis() as f64;
        let mut c = self.timed("connecting", connect(&self.pool)).await?;
        let sent = Instant::now();
        self.timed(
            "registering",
            sqlx::query(
                "WITH old AS (DELETE FROM notary_rs_instances WHERE lease_until < clock_timestamp() - interval '1 hour') \
                 INSERT INTO notary_rs_instances (id, lease_until) VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond') \
                 ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until",
            )
            .bind(&self.me)
            .bind(lease_ms)
            .execute(&mut c),
        )
        .await?;
        // Wait out the writes that checked the leases before this one was written.
        self.timed(
            "waiting out writes",
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(REGISTRATION_LOCK)
                .execute(&mut c),
        )
        .await?;
        self.timed(
            "waiting out writes",
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(REGISTRATION_LOCK)
                .execute(&mut c),
        )
        .await?;
        let Some(freshness) = self.freshness.upgrade() else {
            return Ok(());
        };
        freshness.barrier().await?;
        self.detect_from
            .store(freshness.applied().unwrap_or(i64::MAX), Ordering::SeqCst);
        drop(freshness);
        if !self.grant(epoch, sent) {
            return Ok(());
        }
        tracing::info!(instance = %self.me, "serving current reads from the cache under a read lease");
        let mut heard = self.heard.subscribe();
        loop {
            tokio::time::sleep(self.t.renew_every).await;
            if !self.still_listening(epoch) {
                return Ok(());
            }
            // The listener must hear this instance's own heartbeat before the lease is renewed.
            let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
            self.timed(
                "heartbeat",
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(format!("h {} {seq}", self.me))
                    .execute(&mut c),
            )
            .await?;
            if tokio::time::timeout(self.t.lease / 2, heard.wait_for(|s| *s >= seq))
                .await
                .is_err()
            {
                self.restart.notify_one();
                return Err(StoreError::Unavailable(
                    "the announcement listener did not hear the heartbeat".into(),
                ));
            }
            let sent = Instant::now();
            let renewed = self
                .timed(
                    "renewing",
                    sqlx::query(
                        "UPDATE notary_rs_instances SET lease_until = clock_timestamp() + $2 * interval '1 millisecond' \
                         WHERE id = $1 AND lease_until > clock_timestamp()",
                    )
                    .bind(&self.me)
                    .bind(lease_ms)
                    .execute(&mut c),
                )
                .await?
                .rows_affected();
            if renewed == 0 {
                return Err(StoreError::Unavailable(
                    "the lease ended before it was renewed".into(),
                ));
            }
            if !self.grant(epoch, sent) {
                return Ok(());
            }
        }
    }

    /// Allow fast reads until the lease (re)newed at `sent` ends, unless the listener of
    /// `epoch` stopped meanwhile (checked after the store: a listener that stops sets 0 after).
    fn grant(&self, epoch: u64, sent: Instant) -> bool {
        self.valid_until.store(
            self.until(sent + self.t.lease - self.t.margin),
            Ordering::SeqCst,
        );
        if !self.still_listening(epoch) {
            self.valid_until.store(0, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Give up the lease (at shutdown), so that writers need not wait for it to end.
    pub async fn leave(&self) {
        self.valid_until.store(0, Ordering::SeqCst);
        let gone = sqlx::query("DELETE FROM notary_rs_instances WHERE id = $1")
            .bind(&self.me)
            .execute(&self.pool);
        let _ = tokio::time::timeout(Duration::from_secs(2), gone).await;
    }

    /// Run the write `op` on `gun` once every instance holding a lease acknowledged its
    /// announcement; `op` gets the instances that did.
    pub async fn write<'a, T>(
        self: &Arc<Self>,
        gun: &str,
        mut op: impl FnMut(Option<Vec<String>>) -> WriteFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let token = format!("{}.{}", self.me, self.seq.fetch_add(1, Ordering::SeqCst));
        let wake = Arc::new(Notify::new());
        lock(&self.waiters).insert(
            token.clone(),
            Waiter {
                acked: HashSet::new(),
                wake: wake.clone(),
            },
        );
        self.mark_flux(gun, &token);
        let mut uncertain = false;
        let outcome = self
            .announce_and_write(gun, &token, &wake, &mut op, &mut uncertain)
            .await;
        lock(&self.waiters).remove(&token);
        if uncertain {
            // Perhaps stored, perhaps not, perhaps later: in flux until `flux_ttl`.
            return outcome;
        }
        // Reported in the background: the client need not wait for it.
        let me = self.clone();
        let gun = gun.to_string();
        tokio::spawn(async move {
            let done = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(format!("d {} {token} {gun}", me.me))
                .execute(&me.pool);
            if let Err(e) = within(me.t.lease, "announcing the end of a write", done).await {
                tracing::debug!(gun, error = %e, "could not announce the end of a write; other instances keep the repository in flux");
            }
            me.unflux_after_check(gun, token);
        });
        outcome
    }

    async fn announce_and_write<'a, T>(
        &self,
        gun: &str,
        token: &str,
        wake: &Notify,
        op: &mut impl FnMut(Option<Vec<String>>) -> WriteFuture<'a, T>,
        uncertain: &mut bool,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.t.write_deadline;
        let announcement = format!("p {} {token} {gun}", self.me);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let others: Vec<String> = within(
                left,
                "announcing a write",
                sqlx::query_scalar(
                    "SELECT ARRAY(SELECT id FROM notary_rs_instances WHERE lease_until > clock_timestamp() AND id <> $3) \
                     FROM (SELECT pg_notify($1, $2)) n",
                )
                .bind(CHANNEL)
                .bind(&announcement)
                .bind(&self.me)
                .fetch_one(&self.pool),
            )
            .await?;
            let retry_at = (Instant::now() + self.t.retry).min(deadline);
            let acked = loop {
                let acked = lock(&self.waiters)
                    .get(token)
                    .map(|w| w.acked.clone())
                    .unwrap_or_default();
                if others.iter().all(|o| acked.contains(o)) {
                    break Some(acked);
                }
                let now = Instant::now();
                if now >= retry_at {
                    break None;
                }
                let _ = tokio::time::timeout(retry_at - now, wake.notified()).await;
            };
            let Some(acked) = acked else {
                if Instant::now() >= deadline {
                    let missing: Vec<&String> = others
                        .iter()
                        .filter(|o| {
                            !lock(&self.waiters)
                                .get(token)
                                .is_some_and(|w| w.acked.contains(*o))
                        })
                        .collect();
                    return Err(StoreError::Unavailable(format!(
                        "instances {missing:?} hold read leases but did not acknowledge the write"
                    )));
                }
                continue;
            };
            let mut list: Vec<String> = acked.into_iter().collect();
            list.push(self.me.clone());
            let outcome = op(Some(list)).await;
            // No answer from the database: the statement may still commit.
            *uncertain = matches!(outcome, Err(StoreError::Unavailable(_)));
            match outcome {
                Err(StoreError::Unacknowledged) if Instant::now() < deadline => continue,
                Err(StoreError::Unacknowledged) => return Err(StoreError::Unavailable(
                    "an instance registered during the write and did not acknowledge it in time"
                        .into(),
                )),
                other => return other,
            }
        }
    }
}
