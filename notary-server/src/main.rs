use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use notary_server::config::{self, Config, Settings, TrustService};
use notary_server::http::AppState;
use notary_server::metrics::Metrics;
use notary_server::serve::{serve, shutdown_signal, Limits};
use notary_server::service::RepoService;
use notary_server::storage::{SqlStore, TimedStore};
use notary_signer::db::Db;
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
    /// A Go notary-server JSON configuration file (`-config FILE` works too).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder for the embedded default (database, generated certificate, key passphrase).
    #[arg(long, default_value = "notary-data")]
    data_dir: PathBuf,
    /// Listen address, overriding the config (default 127.0.0.1:4443 without a config).
    #[arg(long)]
    listen: Option<String>,
    /// Write a local CA and a server certificate for localhost into DIR (ca.crt, server.crt,
    /// server.key) and exit: certificates for a trial deployment.
    #[arg(long, value_name = "DIR")]
    generate_tls: Option<PathBuf>,
}

const PASSPHRASE_ENV: &str = "NOTARY_SERVER_KEY_PASSPHRASE";

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
        println!("CA: {}\ncertificate: {}\nkey: {}", g.ca.display(), g.cert.display(), g.key.display());
        return Ok(());
    }
    let mut settings = match &args.config {
        Some(path) => {
            let (cfg, base) = Config::load(path)?;
            cfg.settings(&base, Some(args.data_dir.clone()))?
        }
        None => config::embedded(&args.data_dir, "127.0.0.1:4443"),
    };
    if let Some(l) = &args.listen {
        settings.http_addr = l.clone();
    }
    init_logging(&settings.log_level);
    if args.config.is_none() {
        std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating data folder {}", args.data_dir.display()))?;
        let g = notary_server::tls::ensure_self_signed(&args.data_dir)?;
        settings.tls = Some((g.cert, g.key));
        settings.generated_ca = Some(std::fs::canonicalize(&g.ca)?);
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?.block_on(run(settings))
}

fn init_logging(level: &str) {
    let level = match level {
        "warning" => "warn",
        "fatal" | "panic" => "error",
        l => l,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},sqlx=warn")));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

/// The passphrase the local trust service encrypts its keys under: the environment, or a
/// random one kept (mode 0600) in the data folder.
fn local_passphrase(settings: &Settings) -> anyhow::Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        if !p.is_empty() {
            return Ok(Zeroizing::new(p));
        }
    }
    let dir = settings.data_dir.as_ref().context("the local trust service needs NOTARY_SERVER_KEY_PASSPHRASE or a data folder")?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("key-passphrase");
    if let Ok(p) = std::fs::read_to_string(&path) {
        return Ok(Zeroizing::new(p.trim().to_string()));
    }
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

async fn run(settings: Settings) -> anyhow::Result<()> {
    let db = Db::connect(&settings.db_url, &settings.pool)
        .await
        .with_context(|| format!("the database is not reachable (retried for {}s)", settings.pool.connect_retry.as_secs()))?;
    let store = if settings.read_only {
        SqlStore::read_only(db.clone()).await.context("checking the read-only database")?
    } else {
        SqlStore::new(db.clone()).await.context("preparing the database schema")?
    };
    let (crypto, key_algorithm): (Arc<dyn CryptoService>, String) = match settings.trust.clone() {
        // A read-only instance never signs: no key store (and nothing written to the database).
        TrustService::Local { key_algorithm, .. } if settings.read_only => (Arc::new(MemoryKeyStore::new()), key_algorithm),
        TrustService::Local { key_algorithm, persist: true } => {
            let pass = local_passphrase(&settings)?;
            (
                Arc::new(SqlKeyStore::new(db.clone(), Passphrases::single("server_local", pass)).await.context("preparing the key store")?),
                key_algorithm,
            )
        }
        TrustService::Local { key_algorithm, persist: false } => (Arc::new(MemoryKeyStore::new()), key_algorithm),
        TrustService::Remote { signers, key_algorithm, ca, client_cert, client_key, timeout } => {
            let Some(ca) = ca else {
                anyhow::bail!("trust_service.tls_ca_file is required: the signer's certificate is checked against it")
            };
            // The files are re-read when they change (certificate rotation without a restart).
            let files = TlsFiles { ca, client: client_cert.zip(client_key) };
            let (ca_pem, client_identity) = files.read().map_err(anyhow::Error::msg).context("reading the signer TLS files")?;
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
                members.push((format!("{hostname}:{port}"), RemoteCryptoService::new(cfg).context("configuring the signer connection")?));
            }
            tracing::info!(signers = ?members.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), "using remote notary-signer(s)");
            let failover = FailoverCryptoService::new(members);
            failover.spawn_health_checks(std::time::Duration::from_secs(2));
            (failover, key_algorithm)
        }
    };
    let tls = match &settings.tls {
        Some((c, k)) => {
            let (cfg, cert) = notary_server::tls::server_config(c, k)?;
            cert.spawn_watch();
            Some(cfg)
        }
        None => None,
    };
    let cache = Arc::new(notary_server::cache::MetaCache::new(settings.cache_files, settings.cache_repositories, settings.cache_bytes));
    let service = Arc::new(RepoService::new(
        Arc::new(TimedStore::new(store, settings.pool.statement_timeout + std::time::Duration::from_secs(2))),
        cache,
        crypto,
        key_algorithm,
        std::time::Duration::from_secs(1),
        settings.read_only,
        match &db {
            Db::Postgres(pool) if !settings.read_only => Some(notary_server::freshness::Announcing {
                pool: pool.clone(),
                fast_reads: settings.fast_reads,
                timing: Default::default(),
            }),
            _ => None,
        },
    ));
    service.spawn_resigner(settings.resign_before, settings.resign_every);
    let state = Arc::new(AppState {
        service,
        max_age_current: settings.max_age_current,
        max_age_consistent: settings.max_age_consistent,
        gun_prefixes: settings.gun_prefixes.clone(),
        max_upload_bytes: settings.max_upload_bytes,
        upload_timeout: settings.upload_timeout,
        metrics: Arc::new(Metrics::default()),
        auth: match &settings.token_auth {
            Some(t) => Some(notary_server::auth::TokenAuth::new(&t.realm, &t.service, &t.issuer, &t.rootcertbundle, t.autoredirect)?),
            None => None,
        },
    });
    let listener = std::net::TcpListener::bind(&settings.http_addr).with_context(|| format!("listening on {}", settings.http_addr))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", settings.http_addr.replace("0.0.0.0", "127.0.0.1"));
    tracing::info!(url, db = db.backend(), read_only = settings.read_only, "notary-server ready");
    println!("notary-server listening on {url} (storage: {})", db.backend());
    if let Some(ca) = &settings.generated_ca {
        println!("TLS: self-signed; clients need the CA {}", ca.display());
        println!("  e.g. notary -s {url} --tlscacert {} -d ~/.notary list <gun>", ca.display());
    }
    serve(listener, tls.map(Arc::new), state.clone(), Limits::default(), shutdown_signal()).await;
    state.service.leave().await;
    Ok(())
}
