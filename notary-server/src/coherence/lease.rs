//! The read lease (invariants 1–4 and 8 of [`super`]): registration and renewal, the
//! announcement of writes and their acknowledgement, and the bookkeeping that decides whether a
//! repository's current read may skip the barrier.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPool};
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, watch, Notify};

use super::book::{Book, LeaseTiming};
use super::follower::Barrier;
use super::message::{Message, CHANNEL};
use crate::storage::{within, StoreError};
use notary_common::sync::lock;

/// A write to run once announced: gets the instances that acknowledged it (`None`: unguarded).
pub(crate) type WriteFuture<'a, T> = futures_util::future::BoxFuture<'a, Result<T, StoreError>>;

/// Key of the advisory lock of `notary_rs_write_guard` (Postgres migration 3, where it is
/// written in decimal; `the_registration_lock_is_the_migrations`): every guarded write holds it
/// shared until it commits; an instance that has just registered takes it exclusively once,
/// which waits out the writes that checked the leases before its registration (invariant 3).
pub(crate) const REGISTRATION_LOCK: i64 = 0x6e6f_7461_7273;

/// A write waiting for acknowledgements.
struct Waiter {
    acked: HashSet<String>,
    wake: Arc<Notify>,
}

/// This instance's read lease and its side of the announcement protocol (Postgres only).
pub(crate) struct ReadLease {
    /// This process's instance ID (random).
    me: String,
    pool: PgPool,
    /// Take a lease (else only announce this instance's writes, and hold none).
    enabled: bool,
    book: Book,
    waiters: Mutex<HashMap<String, Waiter>>,
    /// Newest heartbeat sequence number this instance's listener heard from itself.
    heard: watch::Sender<u64>,
    /// (listening epoch, listening now)
    listening: watch::Sender<(u64, bool)>,
    /// Makes the listener reconnect (its connection stopped hearing).
    restart: Notify,
    acks: mpsc::UnboundedSender<String>,
    seq: AtomicU64,
    follower: Weak<dyn Barrier>,
}

/// A connection of its own for notifications (their commits need not wait for the disk).
async fn connect(pool: &PgPool) -> Result<PgConnection, StoreError> {
    let mut c = PgConnection::connect_with(&pool.connect_options()).await?;
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut c)
        .await?;
    Ok(c)
}

impl ReadLease {
    /// Start listening (and, if `enabled`, taking the lease) for the instance whose cache
    /// `follower` keeps.
    pub(crate) fn start(
        pool: PgPool,
        enabled: bool,
        t: LeaseTiming,
        follower: Weak<dyn Barrier>,
    ) -> Arc<Self> {
        let (acks, acks_rx) = mpsc::unbounded_channel();
        let me = Arc::new(ReadLease {
            me: format!(
                "{:016x}",
                rand_core::RngCore::next_u64(&mut rand_core::OsRng)
            ),
            pool,
            enabled,
            book: Book::new(t),
            waiters: Mutex::new(HashMap::new()),
            heard: watch::channel(0).0,
            listening: watch::channel((0, false)).0,
            restart: Notify::new(),
            acks,
            seq: AtomicU64::new(0),
            follower,
        });
        tokio::spawn(me.clone().listen_loop());
        tokio::spawn(me.clone().ack_loop(acks_rx));
        tokio::spawn(me.clone().sweep_loop());
        if enabled {
            tokio::spawn(me.clone().keep_loop());
        }
        me
    }

    /// Is the lease held now?
    pub(crate) fn held(&self) -> bool {
        self.enabled && self.book.held(Instant::now())
    }

    /// May a current read of `gun` skip the barrier now?
    pub(crate) fn covers(&self, gun: &str) -> bool {
        self.enabled && self.book.covers(gun, Instant::now())
    }

    /// May a read of the whole changefeed skip the barrier now?
    pub(crate) fn covers_all(&self) -> bool {
        self.enabled && self.book.covers_all(Instant::now())
    }

    /// A changefeed row was applied (see [`Book::observed`]).
    pub(crate) fn observed(&self, gun: &str, id: i64) {
        if self.enabled && self.book.observed(gun, id, Instant::now()) {
            tracing::warn!(
                gun,
                change_id = id,
                "a write reached the database without an announcement (another kind of server writing to it?): \
                 current reads check the changefeed on every request for the next {:?}",
                self.book.t.foreign_backoff
            );
        }
    }

    /// Take `gun` out of flux for `token` once a changefeed check that starts now has been
    /// applied (it covers the write, which has ended).
    fn unflux_after_check(self: &Arc<Self>, gun: String, token: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let Some(f) = me.follower.upgrade() else {
                return;
            };
            match f.barrier().await {
                Ok(()) => me.book.unflux(&gun, &token),
                Err(e) => {
                    tracing::debug!(gun, error = %e, "changefeed check failed; the repository stays in flux")
                }
            }
        });
    }

    fn on_message(self: &Arc<Self>, payload: &str) {
        match Message::parse(payload) {
            // (An instance without a lease is not waited for.)
            Some(Message::Write { writer, token, gun }) if writer != self.me && self.enabled => {
                self.book.mark_flux(gun, token, Instant::now());
                let _ = self.acks.send(token.to_string());
            }
            Some(Message::Done { writer, token, gun }) if writer != self.me && self.enabled => {
                self.unflux_after_check(gun.to_string(), token.to_string());
            }
            Some(Message::Ack { token, instance }) => {
                if let Some(w) = lock(&self.waiters).get_mut(token) {
                    w.acked.insert(instance.to_string());
                    w.wake.notify_one();
                }
            }
            Some(Message::Heartbeat { instance, seq }) if instance == self.me => {
                self.heard.send_if_modified(|s| {
                    let newer = seq > *s;
                    *s = (*s).max(seq);
                    newer
                });
            }
            _ => {}
        }
    }

    fn set_listening(&self, on: bool) {
        if !on {
            self.book.revoke();
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
            let lease = self.book.t.lease;
            let mut listener = match within(
                lease,
                "opening the listener",
                PgListener::connect_with(&self.pool),
            )
            .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the announcement listener; current reads check the changefeed meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            listener.eager_reconnect(false);
            if let Err(e) = within(lease, "listening", listener.listen(CHANNEL)).await {
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
        let lease = self.book.t.lease;
        while let Some(first) = rx.recv().await {
            let ack = |token: &str| {
                Message::Ack {
                    token,
                    instance: &self.me,
                }
                .to_string()
            };
            let mut payloads = vec![ack(&first)];
            while let Ok(t) = rx.try_recv() {
                payloads.push(ack(&t));
            }
            for _attempt in 0..3 {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match within(lease, "connecting", connect(&self.pool)).await {
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
                match within(lease, "acknowledging", sent).await {
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
            for (gun, token) in me.book.expired(Instant::now()) {
                me.unflux_after_check(gun, token);
            }
        }
    }

    /// Register, then renew while the listener hears; on any failure the lease is dropped and
    /// the instance registers again.
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
            self.book.revoke();
            self.book.detect_after(None);
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
        within(self.book.t.lease, what, f).await
    }

    async fn register_and_renew(&self, epoch: u64) -> Result<(), StoreError> {
        let lease_ms = self.book.t.lease.as_millis() as f64;
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
        for sql in [
            "SELECT pg_advisory_lock($1)",
            "SELECT pg_advisory_unlock($1)",
        ] {
            let q = sqlx::query(sql).bind(REGISTRATION_LOCK).execute(&mut c);
            self.timed("waiting out writes", q).await?;
        }
        let Some(follower) = self.follower.upgrade() else {
            return Ok(());
        };
        follower.barrier().await?;
        self.book.detect_after(follower.applied());
        drop(follower);
        if !self.grant(epoch, sent) {
            return Ok(());
        }
        tracing::info!(instance = %self.me, "serving current reads from the cache under a read lease");
        let mut heard = self.heard.subscribe();
        loop {
            tokio::time::sleep(self.book.t.renew_every).await;
            if !self.still_listening(epoch) {
                return Ok(());
            }
            // The listener must hear this instance's own heartbeat before the lease is renewed.
            let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
            let beat = Message::Heartbeat {
                instance: &self.me,
                seq,
            };
            self.timed(
                "heartbeat",
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(beat.to_string())
                    .execute(&mut c),
            )
            .await?;
            if tokio::time::timeout(self.book.t.lease / 2, heard.wait_for(|s| *s >= seq))
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

    /// Hold the lease until the renewal sent at `sent` ends, unless the listener of `epoch`
    /// stopped meanwhile (checked after the grant: a listener that stops revokes after).
    fn grant(&self, epoch: u64, sent: Instant) -> bool {
        self.book.grant(sent);
        if !self.still_listening(epoch) {
            self.book.revoke();
            return false;
        }
        true
    }

    /// Give up the lease (at shutdown), so that writers need not wait for it to end.
    pub(crate) async fn leave(&self) {
        self.book.revoke();
        let gone = sqlx::query("DELETE FROM notary_rs_instances WHERE id = $1")
            .bind(&self.me)
            .execute(&self.pool);
        let _ = tokio::time::timeout(Duration::from_secs(2), gone).await;
    }

    /// Run the write `op` on `gun` once every instance holding a lease acknowledged its
    /// announcement; `op` gets the instances that did.
    pub(crate) async fn write<'a, T>(
        self: &Arc<Self>,
        gun: &str,
        mut op: impl FnMut(Option<Vec<String>>) -> WriteFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let token = format!("{}.{}", self.me, self.seq.fetch_add(1, Ordering::SeqCst));
        let wake = Arc::new(Notify::new());
        let waiter = Waiter {
            acked: HashSet::new(),
            wake: wake.clone(),
        };
        lock(&self.waiters).insert(token.clone(), waiter);
        self.book.mark_flux(gun, &token, Instant::now());
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
            let done = Message::Done {
                writer: &me.me,
                token: &token,
                gun: &gun,
            }
            .to_string();
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(done)
                .execute(&me.pool);
            if let Err(e) = within(me.book.t.lease, "announcing the end of a write", sent).await {
                tracing::debug!(gun, error = %e, "could not announce the end of a write; other instances keep the repository in flux");
            }
            me.unflux_after_check(gun, token);
        });
        outcome
    }

    fn acked(&self, token: &str) -> HashSet<String> {
        lock(&self.waiters)
            .get(token)
            .map(|w| w.acked.clone())
            .unwrap_or_default()
    }

    async fn announce_and_write<'a, T>(
        &self,
        gun: &str,
        token: &str,
        wake: &Notify,
        op: &mut impl FnMut(Option<Vec<String>>) -> WriteFuture<'a, T>,
        uncertain: &mut bool,
    ) -> Result<T, StoreError> {
        let t = &self.book.t;
        let deadline = Instant::now() + t.write_deadline;
        let announcement = Message::Write {
            writer: &self.me,
            token,
            gun,
        }
        .to_string();
        loop {
            // One statement: bounded as a lease renewal is, and by what is left of the write's.
            let left = deadline.saturating_duration_since(Instant::now());
            let others: Vec<String> = within(
                left.min(t.lease),
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
            let retry_at = (Instant::now() + t.retry).min(deadline);
            let acked = loop {
                let acked = self.acked(token);
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
                    let acked = self.acked(token);
                    let missing: Vec<&String> =
                        others.iter().filter(|o| !acked.contains(*o)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registration_lock_is_the_migrations() {
        let sql = include_str!("../../../migrations/postgres/0003_instances_write_guard.sql");
        assert!(
            sql.contains(&format!(
                "pg_advisory_xact_lock_shared({REGISTRATION_LOCK})"
            )),
            "migration 3 does not take lock {REGISTRATION_LOCK}"
        );
    }
}
