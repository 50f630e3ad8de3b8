use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use notary_common::db::Db;
use notary_server::coherence::LeaseConfig;
use notary_server::config::{Config, Settings, TrustService};
use notary_server::http::AppState;
use notary_server::import::source::SourceLimits;
use notary_server::metrics::Metrics;
use notary_server::serve::{serve, shutdown_signal, Limits};
use notary_server::service::{RepoService, ServiceOptions};
use notary_server::storage::{SqlStore, TimedStore};
use notary_signer::memory::MemoryKeyStore;
use notary_signer::passphrase::Passphrases;
use notary_signer::remote::{FailoverCryptoService, RemoteConfig, RemoteCryptoService, TlsFiles};
use notary_signer::sql::SqlKeyStore;
use notary_signer::CryptoService;
use zeroize::Zeroizing;

/// A drop-in replacement for Docker's notary-server. With no arguments it serves over HTTPS
/// on 127.0.0.1:4443, storing everything in ./notary-data (SQLite, self-signed certificate).
#[derive(Parser, Debug)]
#[command(name = "notary-server", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// A Go notary-server JSON configuration file (`-config FILE` works too).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data folder (database and certificate of the embedded default, generated key
    /// passphrase). Default: `notary-data` in the current folder, or, with --config, beside the
    /// config file (every path of a config is relative to the config file's folder).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Listen address, overriding the config (default 127.0.0.1:4443 without a config).
    #[arg(long)]
    listen: Option<String>,
    /// Write a local CA (ca.crt) and one certificate and key (server.crt, server.key) into DIR
    /// and exit. The certificate serves both TLS server and client authentication for
    /// localhost, 127.0.0.1, notary-server, notary-signer and this host's name: enough for the
    /// server's HTTPS, the signer's TLS and the server's client certificate to the signer in a
    /// trial deployment (docs/signer.md).
    #[arg(long, value_name = "DIR")]
    generate_tls: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Copy signed repositories, with their history, from another Notary server or from client
    /// trust directories into this server's storage (the one --config / --data-dir name).
    /// Verified before stored; one transaction per repository; safe to re-run.
    Import(Box<ImportArgs>),
    /// List the imported repositories: current timestamp, its expiry, and whether this server
    /// holds their timestamp and snapshot keys (if not, the owner must rotate them to publish).
    Imported {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List every repository: newest version of each role, timestamp expiry, versions and
    /// bytes stored, whether this server holds its timestamp and snapshot keys.
    Repos {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One repository: its roles, keys held here, and its latest audit records.
    Show {
        gun: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a repository (every version of every role), e.g. for an owner who lost the root
    /// key: clients then see it as new, and the owner can initialise it again. Other instances
    /// stop serving it at once. Recorded in the audit trail with the reason.
    Delete {
        gun: String,
        /// Why (recorded in the audit trail; required).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Remove old versions: of each role, those beyond the --keep-versions newest and older
    /// than --keep-days. Root versions and whatever the current chain references are never
    /// removed. One transaction per repository; recorded in the audit trail.
    Prune {
        /// Newest versions of each role always kept (at least 1).
        #[arg(long, default_value_t = 10)]
        keep_versions: u32,
        /// Versions stored within this many days are kept.
        #[arg(long, default_value_t = 30)]
        keep_days: u32,
        /// Only this repository (repeatable; default: every repository).
        #[arg(long, value_name = "GUN")]
        gun: Vec<String>,
        /// Count what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove audit records older than this many days (kept otherwise).
        #[arg(long, value_name = "DAYS")]
        audit_older_than: Option<u32>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read the audit trail: every write (publish, deletion, key creation and rotation,
    /// import) with who made it.
    Audit {
        /// Only this repository.
        gun: Option<String>,
        /// Only records since this time: RFC 3339 (2026-12-01T10:00:00Z) or an age (30m, 12h,
        /// 7d).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// At most this many records (the oldest first).
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// The Notary server to copy from, e.g. https://notary.docker.io.
    #[arg(long, value_name = "URL", conflicts_with = "from_trust_dir")]
    from: Option<String>,
    /// A client trust directory to copy from (~/.docker/trust, ~/.notary), when the server is
    /// gone; repeatable.
    #[arg(long, value_name = "DIR")]
    from_trust_dir: Vec<PathBuf>,
    /// A repository to copy (repeatable).
    #[arg(long, value_name = "GUN")]
    gun: Vec<String>,
    /// A file of repositories to copy, one GUN a line (# comments).
    #[arg(long, value_name = "FILE")]
    gun_file: Option<PathBuf>,
    /// Every repository of the source (its changefeed; every GUN in a trust directory).
    #[arg(long)]
    all: bool,
    /// Registry user for the source's token service; the password comes from standard input
    /// (--password-stdin) or NOTARY_IMPORT_PASSWORD, never from the command line.
    #[arg(long)]
    username: Option<String>,
    /// Read the password from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// The docker config whose `auths` entry for the source is used when --username is not
    /// given (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// CA certificates (PEM) to trust for the source instead of the system's.
    #[arg(long, value_name = "FILE")]
    tlscacert: Option<PathBuf>,
    /// Overwrite a repository that holds a different history here.
    #[arg(long)]
    replace: bool,
    /// Fetch and verify only; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write a JSON report, one entry per repository, to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// This server's URL as clients reach it (used in the commands the report suggests).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Send credentials to the source's token service on this host, when it is not the
    /// source's host (repeatable; asked on a terminal otherwise).
    #[arg(long, value_name = "HOST")]
    allow_token_host: Vec<String>,
    /// Accept a plain-http token realm for an https source (tokens and credentials then cross
    /// the network in clear).
    #[arg(long)]
    allow_insecure_token_realm: bool,
    /// Limit: bytes of one metadata file from the source (counted as it arrives).
    #[arg(long, value_name = "BYTES", default_value_t = SourceLimits::default().max_file_bytes)]
    max_file_bytes: u64,
    /// Limit: bytes of every file of one repository together (its whole history).
    #[arg(long, value_name = "BYTES", default_value_t = SourceLimits::default().max_repository_bytes)]
    max_repository_bytes: u64,
    /// Limit: bytes read from the source in the whole run.
    #[arg(long, value_name = "BYTES", default_value_t = SourceLimits::default().max_run_bytes)]
    max_run_bytes: u64,
    /// Limit: older versions of one role fetched (the history walk).
    #[arg(long, value_name = "N", default_value_t = SourceLimits::default().max_versions)]
    max_versions: u64,
    /// Limit: repositories the source's changefeed or trust directories may list (--all).
    #[arg(long, value_name = "N", default_value_t = SourceLimits::default().max_repositories)]
    max_repositories: usize,
}

const PASSPHRASE_ENV: &str = "NOTARY_SERVER_KEY_PASSPHRASE";
/// The passphrase alias of the local trust service's keys.
const LOCAL_ALIAS: &str = "server_local";
const IMPORT_PASSWORD_ENV: &str = "NOTARY_IMPORT_PASSWORD";

fn main() -> anyhow::Result<()> {
    // Accept Go's single-dash long flags.
    let argv = std::env::args().map(|a| match a.as_str() {
        "-config" => "--config".to_string(),
        s if s.starts_with("-config=") => format!("-{s}"),
        _ => a,
    });
    let args = Args::parse_from(argv);
    if let Some(dir) = &args.generate_tls {
        let g = notary_server::tls::ensure_tls_files(dir)?;
        println!(
            "CA: {}\ncertificate: {}\nkey: {}",
            g.ca.display(),
            g.cert.display(),
            g.key.display()
        );
        return Ok(());
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("notary-data"));
    let mut settings = match &args.config {
        Some(path) => {
            let (cfg, base) = Config::load(path)?;
            let data_dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| base.join("notary-data"));
            cfg.settings(&base, Some(data_dir))?
        }
        None => Config::embedded(&data_dir, "127.0.0.1:4443")?
            .settings(std::path::Path::new(""), Some(data_dir.clone()))?,
    };
    if let Some(l) = &args.listen {
        settings.server.http_addr = l.clone();
    }
    if args.command.is_some() {
        // A command serves no reads: it holds no read lease (one left behind by its exit would
        // make every write wait for it to expire), but its writes are announced as any.
        settings.caching.read_lease = false;
        // Subcommands print their own output; the log shows only what needs attention.
        let level = if settings.logging.level == "info" {
            "warn"
        } else {
            &settings.logging.level
        };
        notary_common::logging::init(level, &settings.logging.format, "sqlx=warn");
    } else {
        notary_common::logging::init(
            &settings.logging.level,
            &settings.logging.format,
            "sqlx=warn",
        );
    }
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let inspect = matches!(
        args.command,
        Some(
            Command::Imported { .. }
                | Command::Repos { .. }
                | Command::Show { .. }
                | Command::Audit { .. }
        )
    );
    if inspect {
        // Reads only: a read-only copy can be inspected; nothing is created.
        settings.server.read_only = true;
        settings.storage.pool.writes = false;
    } else if args.command.is_some() && args.config.is_none() {
        notary_common::private::create_dir(&data_dir)
            .with_context(|| format!("creating data folder {}", data_dir.display()))?;
    }
    match args.command {
        Some(Command::Import(a)) => return runtime.block_on(import(settings, *a)),
        Some(Command::Imported { json }) => return runtime.block_on(imported(settings, json)),
        Some(Command::Repos { json }) => return runtime.block_on(repos(settings, json)),
        Some(Command::Show { gun, json }) => return runtime.block_on(show(settings, &gun, json)),
        Some(Command::Delete { gun, reason }) => {
            return runtime.block_on(delete(settings, &gun, &reason))
        }
        Some(Command::Prune {
            keep_versions,
            keep_days,
            gun,
            dry_run,
            audit_older_than,
            json,
        }) => {
            let policy = notary_server::retention::Policy {
                keep_versions,
                keep_days,
            };
            return runtime.block_on(prune(
                settings,
                policy,
                gun,
                dry_run,
                audit_older_than,
                json,
            ));
        }
        Some(Command::Audit {
            gun,
            since,
            limit,
            json,
        }) => {
            return runtime.block_on(audit(
                settings,
                gun.as_deref(),
                since.as_deref(),
                limit,
                json,
            ))
        }
        None => {}
    }
    let socket = reserve_address(&settings.server.http_addr)?;
    if args.config.is_none() {
        notary_common::private::create_dir(&data_dir)
            .with_context(|| format!("creating data folder {}", data_dir.display()))?;
        let g = notary_server::tls::ensure_self_signed(&data_dir)?;
        settings.server.tls = Some((g.cert, g.key));
        settings.server.generated_ca = Some(std::fs::canonicalize(&g.ca)?);
    }
    runtime.block_on(run(settings, socket))
}

/// The passphrase the local trust service encrypts its keys under: the environment, or a
/// random one kept (mode 0600) in the data folder — generated only while the database holds
/// no key encrypted under a passphrase (else a new one would leave them undecryptable).
async fn local_passphrase(settings: &Settings, db: &Db) -> anyhow::Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        if !p.is_empty() {
            return Ok(Zeroizing::new(p));
        }
    }
    let dir = settings
        .data_dir
        .as_ref()
        .context("the local trust service needs NOTARY_SERVER_KEY_PASSPHRASE or a data folder")?;
    let path = dir.join("key-passphrase");
    match notary_common::untrusted::read_regular_file(&path, 64 << 10) {
        Ok(raw) => {
            let raw = Zeroizing::new(raw);
            let text = std::str::from_utf8(&raw).map_err(|_| {
                anyhow::anyhow!(
                    "{}: not a passphrase file (it holds bytes that are not text); restore the file written when the first key was made, or set {PASSPHRASE_ENV}",
                    path.display()
                )
            })?;
            return Ok(Zeroizing::new(text.trim().to_string()));
        }
        Err(notary_common::untrusted::ReadError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
    }
    // Before 2026-12 the file was resolved against the current folder even with --config; if
    // it is there, use it (its keys are checked right after) and say where it belongs.
    let legacy = PathBuf::from("notary-data/key-passphrase");
    if legacy != path {
        if let Ok(p) = std::fs::read_to_string(&legacy) {
            tracing::warn!(found = %legacy.display(), expected = %path.display(), "using the key passphrase file of the current folder; move it beside the config file");
            return Ok(Zeroizing::new(p.trim().to_string()));
        }
    }
    let held: i64 = notary_signer::sql::keys_by_alias(db)
        .await?
        .iter()
        .filter(|(a, _)| a == LOCAL_ALIAS)
        .map(|(_, n)| n)
        .sum();
    if held > 0 {
        anyhow::bail!(
            "the database holds {held} server signing keys encrypted under a passphrase this server does not have: \
             expected {PASSPHRASE_ENV}, or the file {} (written when the first key was made; relative data folders are \
             resolved against the config file's folder). Restore that file or variable; a new passphrase would leave \
             every repository unsignable",
            path.display()
        );
    }
    notary_common::private::create_dir(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    use rand_core::RngCore;
    let mut raw = Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(raw.as_mut());
    let p = Zeroizing::new(hex::encode(raw.as_ref()));
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(p.as_bytes())?;
    tracing::warn!(path = %path.display(), "generated a passphrase for the server's signing keys; set {PASSPHRASE_ENV} to manage it yourself");
    Ok(p)
}

/// The repository service over the configured storage and trust service, as the server runs it.
/// `inspect`: for the commands that only read (`repos`, `show`, `audit`, `imported`): the
/// database is opened read-only and keys are only looked up, so a read-only copy or a database
/// whose key passphrase is lost can be inspected (nothing is migrated, written or decrypted).
async fn build_service(
    settings: &Settings,
    inspect: bool,
) -> anyhow::Result<(Db, Arc<RepoService>)> {
    // Files first, state after: a missing signer certificate must not leave a migrated
    // database or a generated passphrase behind.
    if let TrustService::Remote {
        ca,
        client_cert,
        client_key,
        ..
    } = &settings.trust
    {
        let ca = ca.clone().context(
            "trust_service.tls_ca_file is required: the signer's certificate is checked against it",
        )?;
        TlsFiles {
            ca,
            client: client_cert.clone().zip(client_key.clone()),
        }
        .read()
        .context("reading the signer TLS files")?;
    }
    let db = match Db::connect(&settings.storage.db_url, &settings.storage.pool).await {
        Ok(db) => db,
        // Reachable, but behind a pooler this server cannot work through: the message says why.
        Err(e @ notary_common::db::DbError::SharedSession(_)) => return Err(e.into()),
        Err(e) => {
            let url = notary_common::db::redacted(&settings.storage.db_url);
            let context = if e.is_unavailable() {
                format!(
                    "the database at {url} is not reachable (connection errors are retried for {}s; see the cause below)",
                    settings.storage.pool.connect_retry.as_secs()
                )
            } else if matches!(e, notary_common::db::DbError::File(..)) {
                format!("opening the database at {url}")
            } else {
                // Refused at once (credentials, a missing database, a pooler refusing the
                // start-up): retrying would not help.
                format!("the database at {url} refused the connection (see the cause below)")
            };
            return Err(anyhow::Error::new(e).context(context));
        }
    };
    notary_server::compression::set_min_bytes(settings.caching.gzip_min_bytes);
    let store = if settings.server.read_only {
        SqlStore::read_only(db.clone())
            .await
            .context("checking the read-only database")?
    } else {
        SqlStore::new(db.clone())
            .await
            .context("preparing the database schema")?
    };
    let (crypto, key_algorithm) = crypto_service(settings, &db, inspect).await?;
    let cache = Arc::new(notary_server::cache::MetaCache::new(
        settings.caching.files,
        settings.caching.repositories,
        settings.caching.bytes,
    ));
    let lease = match &db {
        Db::Postgres(pool) if !settings.server.read_only => Some(LeaseConfig {
            pool: pool.clone(),
            enabled: settings.caching.read_lease,
            timing: Default::default(),
        }),
        _ => None,
    };
    let store = TimedStore::new(
        store,
        settings.storage.pool.statement_timeout + std::time::Duration::from_secs(2),
    );
    let service = Arc::new(RepoService::new(
        Arc::new(store),
        cache,
        crypto,
        ServiceOptions {
            key_algorithm,
            check_period: std::time::Duration::from_secs(1),
            read_only: settings.server.read_only,
            lease,
        },
    ));
    Ok((db, service))
}

/// The signing service the settings name, and the algorithm of the keys it makes.
async fn crypto_service(
    settings: &Settings,
    db: &Db,
    inspect: bool,
) -> anyhow::Result<(Arc<dyn CryptoService>, String)> {
    Ok(match settings.trust.clone() {
        // Which keys are held, without a passphrase: nothing is decrypted or signed.
        TrustService::Local {
            key_algorithm,
            persist: true,
        } if inspect => (Arc::new(SqlKeyStore::for_lookup(db.clone())), key_algorithm),
        // A read-only instance never signs: no key store (and nothing written to the database).
        TrustService::Local { key_algorithm, .. } if settings.server.read_only => {
            (Arc::new(MemoryKeyStore::new()), key_algorithm)
        }
        TrustService::Local {
            key_algorithm,
            persist: true,
        } => {
            let pass = local_passphrase(settings, db).await?;
            let keys = SqlKeyStore::new(db.clone(), Passphrases::single(LOCAL_ALIAS, pass))
                .await
                .context("preparing the key store")?;
            keys.check_aliases().await.with_context(|| {
                format!("the server's signing keys cannot be decrypted: check {PASSPHRASE_ENV} or the data folder's key-passphrase")
            })?;
            (Arc::new(keys), key_algorithm)
        }
        TrustService::Local {
            key_algorithm,
            persist: false,
        } => (Arc::new(MemoryKeyStore::new()), key_algorithm),
        TrustService::Remote {
            signers,
            key_algorithm,
            ca,
            client_cert,
            client_key,
            timeout,
        } => {
            let Some(ca) = ca else {
                anyhow::bail!("trust_service.tls_ca_file is required: the signer's certificate is checked against it")
            };
            // The files are re-read when they change (certificate rotation without a restart).
            let files = TlsFiles {
                ca,
                client: client_cert.zip(client_key),
            };
            let (ca_pem, client_identity) = files.read().context("reading the signer TLS files")?;
            let mut members = Vec::new();
            for (hostname, port) in signers {
                let cfg = RemoteConfig {
                    hostname: hostname.clone(),
                    port,
                    ca_pem: ca_pem.clone(),
                    client_identity: client_identity.clone(),
                    timeout,
                    files: Some(files.clone()),
                };
                members.push((
                    format!("{hostname}:{port}"),
                    RemoteCryptoService::new(cfg).context("configuring the signer connection")?,
                ));
            }
            tracing::info!(signers = ?members.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), "using remote notary-signer(s)");
            let failover = FailoverCryptoService::new(members);
            failover.spawn_health_checks(std::time::Duration::from_secs(2));
            (failover, key_algorithm)
        }
    })
}

/// What the HTTP layer needs: the service and the limits, headers and auth of the settings.
fn app_state(service: Arc<RepoService>, settings: &Settings) -> anyhow::Result<AppState> {
    Ok(AppState {
        service,
        max_age_current: settings.caching.max_age_current,
        max_age_consistent: settings.caching.max_age_consistent,
        gun_prefixes: settings.gun_prefixes.clone(),
        max_upload_bytes: settings.server.limits.max_upload_bytes,
        upload_timeout: settings.server.limits.upload_timeout,
        metrics: Arc::new(Metrics::default()),
        auth: match &settings.token_auth {
            Some(t) => Some(notary_server::auth::TokenAuth::new(
                &t.realm,
                &t.service,
                &t.issuer,
                &t.rootcertbundle,
                t.autoredirect,
            )?),
            None => None,
        },
        upload_budget: Arc::new(tokio::sync::Semaphore::new(
            settings.server.limits.max_concurrent_upload_bytes / 1024,
        )),
        upload_budget_kib: settings.server.limits.max_concurrent_upload_bytes / 1024,
        // Token auth decides who may create keys; without it, a per-address allowance.
        key_limiter: match &settings.token_auth {
            Some(_) => None,
            None => notary_server::http::KeyLimiter::new(
                settings.server.limits.key_creations_per_minute,
            ),
        },
    })
}

/// Reserve the listen address (bound, not yet listening): a port in use is found before
/// anything is created (data folder, certificate, passphrase, database), and no client is
/// accepted before the server is ready.
fn reserve_address(addr: &str) -> anyhow::Result<tokio::net::TcpSocket> {
    use std::net::ToSocketAddrs;
    let sa = addr
        .to_socket_addrs()
        .with_context(|| format!("listen address {addr}"))?
        .next()
        .with_context(|| format!("listen address {addr}: resolves to nothing"))?;
    let socket = if sa.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(sa)
        .with_context(|| format!("listening on {addr}"))?;
    Ok(socket)
}

/// One server per SQLite database: its background work (re-signing, retention, key binding) is
/// coordinated between instances only on Postgres. A lock beside the database file, held for
/// the process's life (commands such as `import` may still open the database meanwhile).
fn sole_sqlite_server(settings: &Settings) -> anyhow::Result<Option<std::fs::File>> {
    if !settings.storage.db_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let Some(path) = notary_common::db::sqlite_path(&settings.storage.db_url)? else {
        return Ok(None); // in memory
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        notary_common::private::create_dir(dir)
            .with_context(|| format!("creating the folder {}", dir.display()))?;
    }
    let lock_path = path.with_file_name(format!(
        "{}.server-lock",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("notary.db")
    ));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another notary-server already serves the SQLite database {} (it holds {}): one server \
             per SQLite database; run several instances on Postgres",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking {}", lock_path.display())))
        }
    }
}

/// Serve on `socket` (see [`reserve_address`]).
async fn run(settings: Settings, socket: tokio::net::TcpSocket) -> anyhow::Result<()> {
    let tls = match &settings.server.tls {
        Some((c, k)) => {
            let (cfg, cert) = notary_server::tls::server_config(c, k)?;
            cert.spawn_watch();
            Some(cfg)
        }
        None => None,
    };
    let _sole = sole_sqlite_server(&settings)?;
    let (db, service) = build_service(&settings, false).await?;
    service.spawn_resigner(
        settings.caching.resign_before,
        settings.caching.resign_every,
    );
    service.spawn_rotation_watch(std::time::Duration::from_secs(300));
    if !settings.server.read_only {
        service.spawn_key_binding();
    }
    if let (Some((policy, every)), false) = (settings.retention, settings.server.read_only) {
        service.spawn_retention(policy, every);
    }
    let state = Arc::new(app_state(service, &settings)?);
    let listener = socket
        .listen(1024)
        .with_context(|| format!("listening on {}", settings.server.http_addr))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}",
        settings.server.http_addr.replace("0.0.0.0", "127.0.0.1")
    );
    tracing::info!(
        url,
        db = db.backend(),
        read_only = settings.server.read_only,
        "notary-server ready"
    );
    println!(
        "notary-server listening on {url} (storage: {})",
        db.backend()
    );
    if let Some(ca) = &settings.server.generated_ca {
        println!("TLS: self-signed; clients need the CA {}", ca.display());
        println!(
            "  e.g. notary -s {url} --tlscacert {} -d ~/.notary list <gun>",
            ca.display()
        );
    }
    serve(
        listener,
        tls.map(Arc::new),
        state.clone(),
        Limits::default(),
        shutdown_signal(),
    )
    .await;
    state.service.leave().await;
    Ok(())
}

/// `notary-server import`.
async fn import(settings: Settings, a: ImportArgs) -> anyhow::Result<()> {
    use notary_server::import::{
        self,
        source::{Origin, Source},
    };
    if settings.server.read_only {
        anyhow::bail!("server.read_only is set: import into the primary's storage instead");
    }
    let source = match (&a.from, a.from_trust_dir.is_empty()) {
        (Some(url), true) => {
            let ca = match &a.tlscacert {
                Some(p) => Some(
                    std::fs::read(p)
                        .with_context(|| format!("reading --tlscacert {}", p.display()))?,
                ),
                None => None,
            };
            let credentials = import_credentials(&a, url)?;
            Origin::Server(
                notary_server::client::NotaryClient::new(url, ca.as_deref(), credentials)?
                    .with_token_policy(notary_server::client::TokenPolicy::for_terminal(
                        a.allow_insecure_token_realm,
                        a.allow_token_host.clone(),
                    )),
            )
        }
        (None, false) => {
            for d in &a.from_trust_dir {
                anyhow::ensure!(
                    d.join("tuf").is_dir(),
                    "{}: not a trust directory (no tuf/ folder)",
                    d.display()
                );
            }
            Origin::TrustDirs(a.from_trust_dir.clone())
        }
        _ => anyhow::bail!("name a source: --from URL or --from-trust-dir DIR"),
    };
    let source = Source::new(
        source,
        SourceLimits {
            max_file_bytes: a.max_file_bytes,
            max_repository_bytes: a.max_repository_bytes,
            max_run_bytes: a.max_run_bytes,
            max_versions: a.max_versions,
            max_repositories: a.max_repositories,
        },
    );
    let mut guns = a.gun.clone();
    if let Some(f) = &a.gun_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading --gun-file {}", f.display()))?;
        guns.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if a.all {
        guns.extend(
            source
                .all_guns()
                .await
                .context("listing the source's repositories (--all)")?,
        );
    }
    let mut seen = std::collections::HashSet::new();
    guns.retain(|g| seen.insert(g.clone()));
    anyhow::ensure!(
        !guns.is_empty(),
        "no repository to import: give --gun GUN, --gun-file FILE or --all"
    );
    let (_db, service) = build_service(&settings, false).await?;
    let opts = import::Options {
        replace: a.replace,
        dry_run: a.dry_run,
        public_url: a.public_url.clone(),
    };
    let reports = import::import_all(&service, &source, &guns, &opts).await;
    print!("{}", import::summary_table(&reports));
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)
            .with_context(|| format!("writing --report {}", path.display()))?;
    }
    let failed = reports.iter().filter(|r| r.result == "failed").count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} repositories failed (nothing of them was stored)",
        reports.len()
    );
    Ok(())
}

/// The source's registry credentials: --username with a password from standard input or the
/// environment, else the docker config's `auths` entry for the source's host, else none.
fn import_credentials(
    a: &ImportArgs,
    url: &str,
) -> anyhow::Result<Option<notary_server::client::Credentials>> {
    use notary_server::client::{docker_config_credentials, Credentials};
    if let Some(user) = &a.username {
        let password = if a.password_stdin {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
        } else {
            Zeroizing::new(std::env::var(IMPORT_PASSWORD_ENV).with_context(|| {
                format!("--username needs a password: --password-stdin, or the environment variable {IMPORT_PASSWORD_ENV}")
            })?)
        };
        return Ok(Some(Credentials {
            username: user.clone(),
            password,
        }));
    }
    let path = match &a.docker_config {
        Some(p) => p.clone(),
        None => match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => PathBuf::from(d).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".docker/config.json"),
                None => return Ok(None),
            },
        },
    };
    let Ok(config) = std::fs::read(&path) else {
        return Ok(None);
    };
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    Ok(docker_config_credentials(&config, host))
}

/// `notary-server imported`.
async fn imported(settings: Settings, json: bool) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, true).await?;
    let list = service
        .imported()
        .await
        .map_err(|e| api_failure("listing imported repositories", e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let mut rows = vec![[
        "GUN",
        "TIMESTAMP",
        "EXPIRES",
        "KEYS HERE",
        "STATUS",
        "SOURCE",
    ]
    .map(String::from)];
    for k in &list {
        rows.push([
            k.gun.clone(),
            k.timestamp_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            when(k.timestamp_expires),
            keys_held(k.holds_timestamp_key, k.holds_snapshot_key).into(),
            if k.awaits_rotation() {
                "awaits rotation"
            } else {
                "ok"
            }
            .into(),
            k.source.clone(),
        ]);
    }
    print_table(&rows);
    let awaiting = list.iter().filter(|k| k.awaits_rotation()).count();
    println!("{} imported, {awaiting} awaiting rotation", list.len());
    Ok(())
}

/// Rows as aligned columns (the first row is the header), every cell escaped: GUNs, token
/// subjects and reasons are untrusted text.
fn print_table<R: AsRef<[String]>>(rows: &[R]) {
    print!("{}", notary_common::untrusted::table(rows));
}

fn api_failure(what: &str, e: notary_server::errors::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{what}: {:?}", e.code)
}

/// Bytes for people: 812 B, 4.2 KiB, 1.3 MiB, 2.0 GiB.
fn human_bytes(n: i64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!()
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

fn keys_held(ts: bool, sn: bool) -> &'static str {
    match (ts, sn) {
        (true, true) => "timestamp, snapshot",
        (true, false) => "timestamp",
        (false, true) => "snapshot",
        (false, false) => "none",
    }
}

async fn repos(settings: Settings, json: bool) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, true).await?;
    let list = service
        .repositories(None)
        .await
        .map_err(|e| api_failure("listing repositories", e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let mut rows = vec![[
        "GUN",
        "ROOT",
        "TARGETS",
        "SNAPSHOT",
        "TIMESTAMP",
        "EXPIRES",
        "FILES",
        "SIZE",
        "KEYS HERE",
    ]
    .map(String::from)];
    let newest = |r: &notary_server::service::RepoStatus, role: &str| {
        r.roles
            .get(role)
            .map_or("-".to_string(), |s| s.newest.to_string())
    };
    for r in &list {
        rows.push([
            r.gun.clone(),
            newest(r, "root"),
            newest(r, "targets"),
            newest(r, "snapshot"),
            newest(r, "timestamp"),
            when(r.timestamp_expires),
            r.files.to_string(),
            human_bytes(r.bytes),
            keys_held(r.holds_timestamp_key, r.holds_snapshot_key).into(),
        ]);
    }
    print_table(&rows);
    println!(
        "{} repositories, {} files, {}",
        list.len(),
        list.iter().map(|r| r.files).sum::<i64>(),
        human_bytes(list.iter().map(|r| r.bytes).sum())
    );
    Ok(())
}

async fn show(settings: Settings, gun: &str, json: bool) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, true).await?;
    let Some(repo) = service
        .repositories(Some(gun))
        .await
        .map_err(|e| api_failure("reading the repository", e))?
        .pop()
    else {
        anyhow::bail!("no repository {gun:?} here (`notary-server repos` lists them)");
    };
    let audit = service
        .audit(Some(gun), None, i64::MAX)
        .await
        .map_err(|e| api_failure("reading the audit trail", e))?;
    let recent = &audit[audit.len().saturating_sub(10)..];
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"repository": repo, "audit": recent})
            )?
        );
        return Ok(());
    }
    println!("{}", notary_common::untrusted::escape(&repo.gun));
    println!("  timestamp expires: {}", when(repo.timestamp_expires));
    println!(
        "  keys held here: {}",
        keys_held(repo.holds_timestamp_key, repo.holds_snapshot_key)
    );
    println!(
        "  stored: {} files, {}",
        repo.files,
        human_bytes(repo.bytes)
    );
    let mut rows = vec![["ROLE", "NEWEST", "VERSIONS", "SIZE"].map(String::from)];
    for (role, r) in &repo.roles {
        rows.push([
            role.clone(),
            r.newest.to_string(),
            r.versions.to_string(),
            human_bytes(r.bytes),
        ]);
    }
    print_table(&rows);
    println!("latest audit records ({} in all):", audit.len());
    print_audit(recent);
    Ok(())
}

async fn delete(settings: Settings, gun: &str, reason: &str) -> anyhow::Result<()> {
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it is recorded in the audit trail)");
    }
    let (_db, service) = build_service(&settings, false).await?;
    let actor = notary_server::audit::Actor::admin(Some(reason.to_string()));
    let deleted = service
        .delete(gun, &actor)
        .await
        .map_err(|e| api_failure("deleting the repository", e))?;
    if !deleted {
        anyhow::bail!(
            "no repository {gun:?} here (`notary-server repos` lists them); nothing deleted"
        );
    }
    println!(
        "deleted {}; recorded in the audit trail (request id {})",
        notary_common::untrusted::escape(gun),
        actor.request_id.as_deref().unwrap_or("-")
    );
    Ok(())
}

/// `--since`: RFC 3339, or an age such as 30m, 12h, 7d.
fn parse_since(s: &str) -> anyhow::Result<chrono::NaiveDateTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.naive_utc());
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| {
        anyhow::anyhow!(
            "--since {s:?}: give RFC 3339 (2026-12-01T10:00:00Z) or an age (30m, 12h, 7d)"
        )
    })?;
    let age = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => anyhow::bail!("--since {s:?}: an age ends in s, m, h or d"),
    };
    Ok(chrono::Utc::now().naive_utc() - age)
}

fn print_audit(entries: &[notary_server::audit::Entry]) {
    let mut rows = vec![[
        "AT",
        "ACTION",
        "GUN",
        "ROLES",
        "SUBJECT",
        "CLIENT",
        "REQUEST ID",
        "REASON",
    ]
    .map(String::from)];
    let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    for e in entries {
        rows.push([
            e.at.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            e.action.clone(),
            e.gun.clone(),
            if e.roles.is_empty() {
                "-".into()
            } else {
                e.roles.clone()
            },
            or_dash(&e.subject),
            or_dash(&e.client),
            or_dash(&e.request_id),
            or_dash(&e.reason),
        ]);
    }
    print_table(&rows);
}

async fn audit(
    settings: Settings,
    gun: Option<&str>,
    since: Option<&str>,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    let since = since.map(parse_since).transpose()?;
    let (_db, service) = build_service(&settings, true).await?;
    let entries = service
        .audit(gun, since, limit)
        .await
        .map_err(|e| api_failure("reading the audit trail", e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print_audit(&entries);
        println!("{} records", entries.len());
    }
    Ok(())
}

async fn prune(
    settings: Settings,
    policy: notary_server::retention::Policy,
    guns: Vec<String>,
    dry_run: bool,
    audit_older_than: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, false).await?;
    let guns = if guns.is_empty() {
        service
            .guns()
            .await
            .map_err(|e| api_failure("listing repositories", e))?
    } else {
        guns
    };
    let actor = notary_server::audit::Actor::admin(None);
    let mut reports = Vec::with_capacity(guns.len());
    for gun in &guns {
        let r = service
            .prune(gun, policy, dry_run, &actor)
            .await
            .map_err(|e| {
                api_failure(&format!("pruning {gun} (earlier repositories are done)"), e)
            })?;
        reports.push(r);
    }
    let audit_removed = match audit_older_than {
        Some(days) if !dry_run => Some(
            service
                .prune_audit(chrono::Utc::now().naive_utc() - chrono::Duration::days(days.into()))
                .await
                .map_err(|e| api_failure("pruning the audit trail", e))?,
        ),
        _ => None,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dry_run": dry_run,
                "policy": policy,
                "repositories": reports,
                "audit_records_removed": audit_removed,
            }))?
        );
        return Ok(());
    }
    let mut rows = vec![["GUN", "REMOVED", "KEPT", "BY ROLE"].map(String::from)];
    for r in &reports {
        rows.push([
            r.gun.clone(),
            r.removed.to_string(),
            r.kept.to_string(),
            r.by_role
                .iter()
                .map(|(role, n)| format!("{role} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    print_table(&rows);
    println!(
        "{} {} versions of {} repositories{}",
        if dry_run { "would remove" } else { "removed" },
        reports.iter().map(|r| r.removed).sum::<u64>(),
        reports.len(),
        audit_removed.map_or(String::new(), |n| format!("; {n} audit records removed"))
    );
    Ok(())
}
