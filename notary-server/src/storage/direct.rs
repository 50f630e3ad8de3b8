//! Postgres connections the store keeps itself, outside sqlx's pool, for the statements that
//! sit on a read's path: a cache miss's load and the changefeed checks of the read barrier.
//!
//! 1. One round trip per statement. sqlx's pool tests every connection it takes back with a
//!    round trip of its own (a `Sync`, after every use, not configurable): on a cache miss that
//!    woke Postgres and this server twice per read (docs/performance.md, "Many repositories").
//!    A connection here is handed back as it is after a statement that answered.
//! 2. A statement that fails, or whose caller gave up (the store's client-side bound), drops
//!    its connection instead of handing it back with an unread answer in it; the next caller
//!    opens a new one. A connection idle for [`CHECK_IDLE_AFTER`] is checked (one round trip)
//!    before use, as pooled ones are; a writer's after a "read-only" answer too
//!    (`notary_common::db::note_read_only`).
//! 3. At most `max` are open at once (callers wait for one, within their bound); `keep` are
//!    kept idle. Their sessions get the pool's `statement_timeout` and generic plans (Postgres
//!    re-plans a parameterised statement at every bind otherwise, for nothing: every statement
//!    here is an index lookup whatever its parameters).
//!
//! Tests: the fault tests (`database_faults.rs`, `patroni.rs`, `replica.rs`) and
//! `multi_instance.rs` run every read through them.

use std::time::{Duration, Instant};

use notary_common::sync::lock;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::StoreError;

/// A connection idle this long is checked before it is used again (as the pool's are).
pub(super) const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// A set of connections (see the module).
pub(super) struct Direct {
    idle: std::sync::Mutex<Vec<(PgConnection, Instant)>>,
    slots: Semaphore,
    keep: usize,
    statement_timeout: Duration,
}

/// A connection taken out of a [`Direct`] set: handed back after a statement that answered;
/// dropped, it is closed.
struct Held<'a> {
    conn: PgConnection,
    _slot: SemaphorePermit<'a>,
}

impl Direct {
    /// At most `max` connections open, `keep` kept idle, sessions with `statement_timeout`.
    pub(super) fn new(max: usize, keep: usize, statement_timeout: Duration) -> Self {
        Direct {
            idle: std::sync::Mutex::new(Vec::new()),
            slots: Semaphore::new(max.max(1)),
            keep,
            statement_timeout,
        }
    }

    /// Run `statement` on a connection of the set, to where `pool` connects now (its host list
    /// followed); the connection is handed back if it answered, else dropped (invariant 2).
    /// `replica`: a read-only instance's (its loads check their position instead).
    pub(super) async fn run<T>(
        &self,
        pool: &PgPool,
        replica: bool,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut held = self.get(pool, replica).await?;
        let answer = statement(&mut held.conn).await?;
        let mut idle = lock(&self.idle);
        if idle.len() < self.keep {
            idle.push((held.conn, Instant::now()));
        }
        Ok(answer)
    }

    /// An idle connection, or a new one (see [`Direct::run`]).
    async fn get(&self, pool: &PgPool, replica: bool) -> Result<Held<'_>, StoreError> {
        let slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("closing".into()))?;
        let idle = lock(&self.idle).pop();
        if let Some((mut conn, since)) = idle {
            let fits = if !replica && notary_common::db::read_only_recently() {
                matches!(
                    notary_common::db::session_read_only(&mut conn).await,
                    Ok(false)
                )
            } else if since.elapsed() >= CHECK_IDLE_AFTER {
                conn.ping().await.is_ok()
            } else {
                true
            };
            if fits {
                return Ok(Held { conn, _slot: slot });
            }
        }
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        // Simple-protocol statements: nothing prepared on the session for them.
        use sqlx::Executor;
        let set = format!(
            "SET statement_timeout = {}",
            self.statement_timeout.as_millis()
        );
        conn.execute(set.as_str()).await?;
        // Postgres before 12 has no such setting; it then plans as before.
        let _ = conn
            .execute("SET plan_cache_mode = force_generic_plan")
            .await;
        Ok(Held { conn, _slot: slot })
    }
}
