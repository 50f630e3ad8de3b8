//! How `notary-server` is put together from its settings: the database, the key store or
//! signers, the repository service with its background tasks, and the HTTP listener.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use notary_common::db::Db;
use notary_server::coherence::LeaseConfig;
use notary_server::config::{Settings, TrustService};
use notary_server::http::AppState;
use notary_server::metrics::Metrics;
use notary_server::serve::{serve, shutdown_signal, Limits};
use notary_server::service::{RepoService, ServiceOptions};
use notary_server::storage::SqlStore;
use notary_signer::memory::MemoryKeyStore;
use notary_signer::passphrase::Passphrases;
use notary_signer::remote::{FailoverCryptoService, RemoteConfig, RemoteCryptoService, TlsFiles};
use notary_signer::sql::SqlKeyStore;
use notary_signer::CryptoService;
use zeroize::Zeroizing;

/// Where the local trust service's key passphrase may come from.
const PASSPHRASE_ENV: &str = "NOTARY_SERVER_KEY_PASSPHRASE";
/// The passphrase alias of the local trust service's keys.
const LOCAL_ALIAS: &str = "server_local";

/// The passphrase the local trust service encrypts its keys under: the environment, or a
/// random one kept (mode 0600) in the data folder — generated only while the database holds
/// no key encrypted under a passphrase (else a new one would leave them undecryptable).
pub(crate) async fn local_passphrase(
    settings: &Settings,
    db: &Db,
) -> anyhow::Result<Zeroizing<String>> {
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
pub(crate) async fn build_service(
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
    let store = store.with_pool_config(&settings.storage.pool);
    let service = Arc::new(RepoService::new(
        Arc::new(store),
        cache,
        crypto,
        ServiceOptions {
            mirror: settings.server.mirror,
            key_algorithm,
            check_period: std::time::Duration::from_secs(1),
            read_only: settings.server.read_only,
            lease,
        },
    ));
    Ok((db, service))
}

/// The signing service the settings name, and the algorithm of the keys it makes.
pub(crate) async fn crypto_service(
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
                .context("preparing the key store")?
                .with_call_limit(settings.storage.pool.call_limit());
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
pub(crate) fn app_state(
    service: Arc<RepoService>,
    settings: &Settings,
) -> anyhow::Result<AppState> {
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
pub(crate) fn reserve_address(addr: &str) -> anyhow::Result<tokio::net::TcpSocket> {
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
pub(crate) fn sole_sqlite_server(settings: &Settings) -> anyhow::Result<Option<std::fs::File>> {
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
/// `started` runs once the service is built (a mirror starts its follower there).
pub(crate) async fn run(
    settings: Settings,
    socket: tokio::net::TcpSocket,
    started: impl FnOnce(&Arc<RepoService>),
) -> anyhow::Result<()> {
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
    started(&service);
    if !settings.server.read_only && !settings.server.mirror {
        service.spawn_key_binding();
    }
    if let (Some((policy, every)), false) = (
        settings.retention,
        settings.server.read_only || settings.server.mirror,
    ) {
        service.spawn_retention(policy, every);
    }
    if let Some(p) = &settings.publish {
        if settings.server.read_only {
            tracing::warn!("publish is ignored on a read-only instance: a read-write instance on the primary publishes the tree");
        } else {
            let tree = p.tree().await.context("opening the publish target")?;
            tracing::info!(tree = %tree.target.name(), gun_prefixes = ?tree.gun_prefixes, "static publication on");
            notary_server::publication::spawn(service.store.clone(), tree, p.interval);
        }
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
