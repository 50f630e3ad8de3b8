//! notary-signer: the gRPC signing service (mutual TLS) for notary-server, wire-compatible with
//! the Go notary-signer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use notary_common::db::{Db, PoolConfig};
use notary_signer::config::{Config, SqlStorage, Storage};
use notary_signer::grpc::proto::{
    key_management_server::KeyManagementServer, signer_server::SignerServer,
};
use notary_signer::passphrase::Passphrases;
use notary_signer::service::{health_service, SignerService};
use notary_signer::sql::SqlKeyStore;
use notary_signer::CryptoService;
use tonic::transport::Server;

/// The signing service behind notary-server, a drop-in replacement for Docker's Go
/// notary-signer: gRPC with mutual TLS, keys in Postgres or SQLite encrypted at rest (JWE under
/// passphrase aliases) or in a PKCS#11 token. Takes the Go notary-signer's JSON config.
#[derive(Parser, Debug)]
#[command(name = "notary-signer", version)]
struct Args {
    /// A Go notary-signer JSON configuration file (`-config FILE` works too).
    #[arg(long)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Re-encrypt every key stored under one passphrase alias with another alias's passphrase
    /// (both read from NOTARY_SIGNER_<ALIAS>), in one transaction, then exit.
    Reencrypt {
        #[arg(long)]
        from_alias: String,
        #[arg(long)]
        to_alias: String,
    },
}

fn main() -> anyhow::Result<()> {
    let argv = std::env::args().map(|a| {
        if a == "-config" {
            "--config".to_string()
        } else {
            a
        }
    });
    let args = Args::parse_from(argv);
    let (cfg, base) = Config::load(&args.config)?;
    let settings = cfg.settings(&base)?;
    notary_common::logging::init(
        &settings.log_level,
        &settings.log_format,
        "sqlx=warn,h2=warn",
    );
    // Keep key material out of core dumps and away from ptrace, as the Go signer does.
    // The one unsafe call of the workspace (a libc function with no safe wrapper here).
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.command {
        None => rt.block_on(run(settings)),
        Some(Cmd::Reencrypt {
            from_alias,
            to_alias,
        }) => rt.block_on(reencrypt(settings, &from_alias, &to_alias)),
    }
}

async fn reencrypt(s: notary_signer::config::Settings, from: &str, to: &str) -> anyhow::Result<()> {
    let Storage::Sql(SqlStorage { db_url, .. }) = &s.storage else {
        anyhow::bail!("re-encryption applies to a database key store (postgres or sqlite)")
    };
    let db = Db::connect(db_url, &PoolConfig::default())
        .await
        .context("connecting to the key database")?;
    let store = SqlKeyStore::new(db, Passphrases::from_env("NOTARY_SIGNER_", to)).await?;
    let n = store.reencrypt(from, to).await.with_context(|| {
        format!("re-encrypting keys from alias {from:?} to {to:?} (nothing was changed)")
    })?;
    println!("re-encrypted {n} key(s) from alias {from:?} to {to:?}");
    Ok(())
}

async fn run(s: notary_signer::config::Settings) -> anyhow::Result<()> {
    let crypto: Arc<dyn CryptoService> = notary_signer::stores::open(&s.storage)
        .await
        .context("opening the key store")?;
    // Mutual TLS; the signer's certificate and the client CA bundle are re-read on SIGHUP and
    // when their files change.
    let (tls, cert, clients) =
        notary_signer::listen::grpc_server_config(&s.tls_cert, &s.tls_key, &s.client_ca)?;
    cert.spawn_watch();
    clients.spawn_watch();
    let health = health_service(crypto.clone(), Duration::from_secs(10)).await;
    let svc = Arc::new(SignerService::new(crypto));
    let addr: std::net::SocketAddr = s
        .grpc_addr
        .parse()
        .with_context(|| format!("server.grpc_addr {:?}", s.grpc_addr))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "notary-signer ready (mutual TLS required)");
    println!("notary-signer listening on {local}");
    Server::builder()
        .add_service(health)
        .add_service(KeyManagementServer::from_arc(svc.clone()))
        .add_service(SignerServer::from_arc(svc))
        .serve_with_incoming(notary_signer::listen::tls_incoming(listener, tls))
        .await
        .context("signer failed")
}
