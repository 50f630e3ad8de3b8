//! One database handle for Postgres and SQLite. Queries are written once and run on either
//! pool through [`with_pool!`](crate::with_pool): the body is compiled for each backend.

pub mod hosts;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// A database handle: a pool over Postgres or SQLite, which every store of both programs uses.
#[derive(Clone, Debug)]
pub enum Db {
    /// The embedded default (one file, or memory).
    Sqlite(SqlitePool),
    /// One logical Postgres: a URL, possibly with several hosts ([`hosts`]).
    Postgres(PgPool),
}

/// Run `$body` with `$p` bound to the concrete pool of `$db`.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($p) => $body,
            $crate::db::Db::Postgres($p) => $body,
        }
    };
}

/// Why a database could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Neither a Postgres nor a SQLite URL.
    #[error("unsupported database URL (expected postgres://…, postgresql://… or sqlite:…): {0}")]
    BadUrl(String),
    /// The database answered with an error, or could not be reached.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A SQLite file (or its folder) could not be made or made private.
    #[error("database file {0}: {1}")]
    File(String, std::io::Error),
    /// None of the URL's hosts answered, or fits its `target_session_attrs` ([`hosts`]);
    /// `transient`: worth retrying (not a bad password or a missing database everywhere).
    #[error("{msg}")]
    NoHost {
        /// What each host answered.
        msg: String,
        /// Worth retrying.
        transient: bool,
    },
    /// The URL leads to a connection pooler that shares one Postgres session between clients
    /// (PgBouncer's `pool_mode = transaction` or `statement`): [`session_check`].
    #[error(
        "{0} leads to a connection pooler in transaction or statement pooling mode (two connections \
         were given one Postgres session): this server needs session-level features — LISTEN/NOTIFY \
         for current reads, advisory locks, prepared statements — that such a pooler breaks. Set the \
         pooler's `pool_mode = session` for this database (PgBouncer: in [databases] or [pgbouncer]), \
         or connect to Postgres directly"
    )]
    SharedSession(String),
}

/// How a [`Db`] pools its connections (`storage` in the server's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections kept at most.
    pub max_connections: u32,
    /// How long start-up keeps retrying an unreachable database.
    pub connect_retry: Duration,
    /// Postgres `statement_timeout` of every session (server side; the client side bounds
    /// each call a little above it).
    pub statement_timeout: Duration,
    /// The pool writes (Postgres): after the database answered "read-only" (a standby, or a
    /// primary being demoted), idle connections are checked before use for a while, and
    /// read-only ones are dropped ([`note_read_only`]).
    pub writes: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 16,
            connect_retry: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(30),
            writes: true,
        }
    }
}

impl PoolConfig {
    /// How long one database call may wait on the client side: the `statement_timeout` and 2 s
    /// for the round trip, so that the server gives up on a statement first. Every caller
    /// bounds its calls by it (the server's storage, the lease's announcements, the signer's
    /// key store), so a connection cut off silently costs a call its bound, not minutes.
    pub fn call_limit(&self) -> Duration {
        self.statement_timeout + Duration::from_secs(2)
    }
}

/// The file a `sqlite:` URL keeps its database in; `None` for an in-memory database
/// (`sqlite::memory:`, a `file:` URI, `mode=memory`), which has no file to create or lock.
pub fn sqlite_path(url: &str) -> Result<Option<std::path::PathBuf>, DbError> {
    let opts = SqliteConnectOptions::from_str(url)?;
    let file = opts.get_filename();
    let in_memory = file.as_os_str().is_empty()
        || file.to_str().is_some_and(|f| f.starts_with("file:"))
        || url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p == "mode=memory"));
    Ok((!in_memory).then(|| file.to_path_buf()))
}

/// The URL without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (host, db) = (
        authority.rsplit_once('@').map_or(authority, |(_, h)| h),
        path.split('?').next().unwrap_or(""),
    );
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| u.split(':').next().unwrap_or(""))
        .unwrap_or("");
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("{scheme}://{user}{host}/{db}")
}

/// A pooled connection idle this long is checked (one round trip) before it is used again.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long after a "read-only" answer older connections are checked before a writer gets one.
const READ_ONLY_WATCH: Duration = Duration::from_secs(60);

/// When this process last heard "read-only" from a database it writes to.
static READ_ONLY_SEEN: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// A write failed because the database is read-only (SQLSTATE 25006: a standby, or a primary
/// that is being demoted or is still recovering). Until [`READ_ONLY_WATCH`] has passed, every
/// writing pool checks each connection before handing it out, and drops it if its server is
/// read-only: after a fail-over, a writer is not given a connection to the old node again
/// (`replica::a_read_only_database_is_unavailable_and_left_behind`).
pub fn note_read_only() {
    *crate::sync::lock(&READ_ONLY_SEEN) = Some(std::time::Instant::now());
    hosts::repick().notify_one();
}

/// The database in use stopped answering: with several hosts, look for a fitting one again.
pub fn note_unreachable() {
    hosts::repick().notify_one();
}

/// Whether the server behind this session is read-only: in recovery (a standby), or read-only
/// by default. The one check of host lists, writing pools and connections kept outside them.
pub async fn session_read_only(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'",
    )
    .fetch_one(conn)
    .await
}

/// Whether a database this process writes to answered "read-only" within the last
/// [`READ_ONLY_WATCH`]: connections kept outside a pool must then be checked as
/// [`note_read_only`] has pools do.
pub fn read_only_recently() -> bool {
    watching()
}

/// Whether connections must be checked before a writing pool hands them out: for
/// [`READ_ONLY_WATCH`] after a "read-only" answer. Every connection then, not only older ones:
/// one opened since may lead to the same read-only node, and a read on it could miss a commit
/// this instance has just made on the primary.
fn watching() -> bool {
    crate::sync::lock(&READ_ONLY_SEEN).is_some_and(|seen| seen.elapsed() < READ_ONLY_WATCH)
}

impl Db {
    /// Open the pool `url` names (Postgres, or a SQLite file made private), retrying an
    /// unreachable database for `cfg.connect_retry`.
    pub async fn connect(url: &str, cfg: &PoolConfig) -> Result<Db, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // The statement timeout is set after connecting, not as the startup parameter
            // `options`, which connection poolers (PgBouncer) refuse.
            let hosts = hosts::Hosts::parse(url)?;
            let timeout_ms = cfg.statement_timeout.as_millis();
            let deadline = tokio::time::Instant::now() + cfg.connect_retry;
            let writes = cfg.writes;
            loop {
                let (host, opts) = match hosts.pick(Duration::from_secs(5)).await {
                    Ok((host, opts)) => (host, opts.application_name("notary-rs")),
                    Err(
                        e @ DbError::NoHost {
                            transient: true, ..
                        },
                    ) if tokio::time::Instant::now() < deadline => {
                        tracing::warn!(target: "notary_rs::database", error = %e, "database not reachable yet, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                match PgPoolOptions::new()
                    .max_connections(cfg.max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            // A simple-protocol statement: nothing prepared on the session.
                            use sqlx::Executor;
                            let set = format!("SET statement_timeout = {timeout_ms}");
                            conn.execute(set.as_str()).await?;
                            // Large values (a 20 000-target targets.json is 4 MB) are compressed
                            // by Postgres as it stores them: lz4 costs a fraction of the default
                            // pglz's CPU (docs/performance.md). Only this session's writes use it;
                            // any reader decompresses either. Postgres before 14, or built without
                            // lz4, refuses the setting: then the default stays.
                            let _ = conn.execute("SET default_toast_compression = lz4").await;
                            Ok(())
                        })
                    })
                    // No ping before every use: on a database-bound load it was a second round
                    // trip per statement (docs/performance.md, "Many repositories"). A
                    // connection cut off silently is found by the caller's own bound instead
                    // (every call is bounded by `PoolConfig::call_limit`,
                    // `database_faults::silent_database_partition_fails_fast_and_heals`); one
                    // idle for a while (through a restart or a fail-over, say) is still checked
                    // before use, so a quiet instance's first requests do not fail on it.
                    .test_before_acquire(false)
                    .before_acquire(move |conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= CHECK_IDLE_AFTER {
                                use sqlx::Connection;
                                conn.ping().await?;
                            }
                            if !writes || !watching() {
                                return Ok(true);
                            }
                            Ok(!session_read_only(conn).await?)
                        })
                    })
                    .connect_with(opts.clone())
                    .await
                {
                    Ok(p) => {
                        session_check(&opts).await.map_err(|e| match e {
                            DbError::SharedSession(_) => DbError::SharedSession(redacted(url)),
                            e => e,
                        })?;
                        if hosts.is_list() {
                            hosts::watch(p.clone(), hosts, host);
                        }
                        return Ok(Db::Postgres(p));
                    }
                    Err(e) => {
                        // The pool reports a refused or failing connection as "timed out": one
                        // direct connection names the real cause.
                        let e = match e {
                            sqlx::Error::PoolTimedOut => {
                                use sqlx::Connection;
                                match tokio::time::timeout(
                                    Duration::from_secs(5),
                                    sqlx::PgConnection::connect_with(&opts),
                                )
                                .await
                                {
                                    Ok(Err(direct)) => direct,
                                    _ => e,
                                }
                            }
                            e => e,
                        };
                        if tokio::time::Instant::now() >= deadline || !is_unavailable(&e) {
                            return Err(e.into());
                        }
                        tracing::warn!(target: "notary_rs::database", error = %e, "database not reachable yet, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?;
            let on_disk = sqlite_path(url)?;
            let file = opts.get_filename().to_path_buf();
            let file_err = |e| DbError::File(file.display().to_string(), e);
            let opts = if !cfg.writes {
                // Reads only (an inspection, a read-only copy): nothing is created or changed.
                if on_disk.is_some() && !file.is_file() {
                    return Err(file_err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no database file there",
                    )));
                }
                opts.read_only(true)
            } else {
                if on_disk.is_some() {
                    // The folder the config names is made (private) if missing.
                    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                        crate::private::create_dir(dir).map_err(|e| {
                            DbError::File(format!("creating the folder {}", dir.display()), e)
                        })?;
                    }
                    crate::private::sqlite_file(&file).map_err(file_err)?;
                }
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
            };
            let opts = opts
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(cfg.max_connections.min(8))
                .connect_with(opts)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(DbError::BadUrl(url.to_string()))
        }
    }

    /// `postgres` or `sqlite`, for messages.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}

/// The database cannot serve now but may soon: down, restarting or recovering, a connection cut
/// or a handshake cut short (a balancer with no server behind it), too many clients. Worth
/// retrying; clients get 503, never 500. One list for the server, the signer and start-up.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        // SQLSTATE class 08 (connection exception), 57P01–57P03 (shutting down, cannot connect
        // now), 53300 (too many connections) — but not 08P01, a protocol violation: what a
        // pooler answers to a startup parameter it refuses, a configuration error.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            (c.starts_with("08") && c != "08P01") || c.starts_with("57P") || c == "53300"
        }),
        _ => false,
    }
}

impl DbError {
    /// See [`is_unavailable`].
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Sqlx(e) => is_unavailable(e),
            DbError::NoHost { transient, .. } => *transient,
            _ => false,
        }
    }
}

/// A [`Migration`] from `migrations/<set>sqlite/<file>` and `migrations/<set>postgres/<file>`
/// (`set`: `""` for the server's, `"signer/"` for the key store's).
#[macro_export]
macro_rules! migration {
    ($version:expr, $set:literal, $file:literal) => {
        $crate::db::Migration {
            version: $version,
            sqlite: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../migrations/",
                $set,
                "sqlite/",
                $file
            )),
            postgres: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../migrations/",
                $set,
                "postgres/",
                $file
            )),
        }
    };
}

/// One schema change, in the SQL of each backend. Every migration must be idempotent
/// (`IF NOT EXISTS`), because it may run on a database the Go programs created.
pub struct Migration {
    /// Its place in its set; applied in order, each once.
    pub version: i64,
    /// The SQL for SQLite.
    pub sqlite: &'static str,
    /// The SQL for Postgres.
    pub postgres: &'static str,
}

/// Apply the migrations of `set` not yet recorded, each in its own transaction.
/// Refuse a pooler that shares Postgres sessions between its clients (transaction or statement
/// pooling): there LISTEN would miss notifications (current reads could go stale), advisory locks
/// would be held by whichever client ran next, and prepared statements would collide.
///
/// Two connections of ours at once must see two Postgres sessions, and one connection must keep
/// its session: `pg_backend_pid()` tells. A transaction-mode pooler hands the second connection
/// the session the first has just given back (PgBouncer reuses the most recently used server
/// connection). Plain SQL (simple protocol) only, so nothing is prepared on a shared session.
/// Tested by `poolers.rs` (session mode passes, transaction mode is refused at start).
async fn session_check(opts: &sqlx::postgres::PgConnectOptions) -> Result<(), DbError> {
    use sqlx::{Connection, Row};
    async fn pid(c: &mut sqlx::PgConnection) -> Result<i32, DbError> {
        use sqlx::Executor;
        let row = c.fetch_one("SELECT pg_backend_pid()").await?;
        Ok(row.try_get(0)?)
    }
    let mut first = sqlx::PgConnection::connect_with(opts).await?;
    let mut second = sqlx::PgConnection::connect_with(opts).await?;
    let a = pid(&mut first).await?;
    let b = pid(&mut second).await?;
    let a_again = pid(&mut first).await?;
    let _ = first.close().await;
    let _ = second.close().await;
    if a == b || a != a_again {
        return Err(DbError::SharedSession(String::new()));
    }
    Ok(())
}

/// Apply the migrations of `set` (`server`, `signer`) not yet recorded in
/// `notary_rs_migrations`, in version order.
pub async fn migrate(db: &Db, set: &str, migrations: &[Migration]) -> Result<(), DbError> {
    const TRACK: &str = "CREATE TABLE IF NOT EXISTS notary_rs_migrations (set_name VARCHAR(64) NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (set_name, version))";
    with_pool!(db, p => {
        sqlx::query(TRACK).execute(p).await?;
        for m in migrations {
            let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM notary_rs_migrations WHERE set_name = $1 AND version = $2")
                .bind(set).bind(m.version).fetch_optional(p).await?;
            if done.is_some() {
                continue;
            }
            let sql = if db.backend() == "sqlite" { m.sqlite } else { m.postgres };
            let mut tx = p.begin().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO notary_rs_migrations (set_name, version) VALUES ($1, $2)").bind(set).bind(m.version).execute(&mut *tx).await?;
            tx.commit().await?;
            tracing::info!(target: "notary_rs::database", set, version = m.version, "applied migration");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file_unless_in_memory() {
        assert_eq!(
            sqlite_path("sqlite:/srv/notary/notary.db").unwrap(),
            Some(std::path::PathBuf::from("/srv/notary/notary.db"))
        );
        for memory in [
            "sqlite::memory:",
            "sqlite:file:notary-memory?mode=memory&cache=shared",
        ] {
            assert_eq!(sqlite_path(memory).unwrap(), None, "{memory}");
        }
    }
}
