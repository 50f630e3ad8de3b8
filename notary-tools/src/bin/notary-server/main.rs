//! `notary-server`: with no command it serves (see `wiring`); its commands are the operator's
//! tools over the same storage (`import`, `imported`, `repos`, `show`, `delete`, `audit`,
//! `prune`, `export`, `mirror`, and `migrate-keys` with the signer's key stores).

mod export;
mod import;
mod inspect;
mod maintain;
mod migrate_keys;
mod mirror;
mod table;
mod wiring;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use notary_server::config::Config;
use notary_server::gun::Gun;

use crate::import::ImportArgs;

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
        gun: Gun,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a repository (every version of every role), e.g. for an owner who lost the root
    /// key: clients then see it as new, and the owner can initialise it again. Other instances
    /// stop serving it at once. Recorded in the audit trail with the reason.
    Delete {
        gun: Gun,
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
        gun: Vec<Gun>,
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
    /// Serve a read-only copy of another Notary service and keep it current: its changefeed is
    /// followed and what is new copied with the importer's verification; a source that forks
    /// a history is refused and reported, never served. Runs until stopped; serves as the
    /// server does (the config's listen address, TLS, auth and `publish` block).
    Mirror(Box<mirror::MirrorArgs>),
    /// Write repositories' metadata as a static tree, exactly as clients ask for it
    /// (`v2/<gun>/_trust/tuf/…`), for any web server, bucket or CDN to serve. A tree already
    /// there is compared and repaired: missing or different files written, files no longer
    /// stored removed. Without --to: the configuration's `publish` tree. To a `.tar` file: a
    /// bundle, every repository's whole history verified, for `import --from-bundle`.
    Export {
        /// The folder to write the tree to, or a bundle file (`.tar`).
        #[arg(long, value_name = "DIR|FILE.tar")]
        to: Option<PathBuf>,
        /// Only this repository (repeatable; default: every repository, and those the tree
        /// holds that are no longer stored are removed from it).
        #[arg(long, value_name = "GUN", conflicts_with = "all")]
        gun: Vec<Gun>,
        /// Every repository (the default).
        #[arg(long)]
        all: bool,
    },
    /// Move repositories' timestamp and snapshot keys from the signer's SQL store to AWS KMS:
    /// for each, which store holds the keys its root names, and where a SQL key is still in
    /// use, the KMS key the owner's rotation (`notary key rotate GUN timestamp -r`) will
    /// receive, made now. Reports every role; safe to stop and run again.
    MigrateKeys(Box<migrate_keys::MigrateKeysArgs>),
    /// Read the audit trail: every write (publish, deletion, key creation and rotation,
    /// import) with who made it.
    Audit {
        /// Only this repository.
        gun: Option<Gun>,
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
    let follower = match &args.command {
        Some(Command::Mirror(m)) => {
            settings.server.mirror = true;
            Some(m.follower()?)
        }
        _ => None,
    };
    if args.command.is_some() && follower.is_none() {
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
                | Command::Export { .. }
                | Command::MigrateKeys(_)
        )
    );
    if inspect {
        // Reads only: a read-only copy can be inspected; nothing is created.
        settings.server.read_only = true;
        settings.storage.pool.writes = false;
    } else if args.command.is_some() && follower.is_none() && args.config.is_none() {
        notary_common::private::create_dir(&data_dir)
            .with_context(|| format!("creating data folder {}", data_dir.display()))?;
    }
    match args.command {
        Some(Command::Import(a)) => return runtime.block_on(import::import(settings, *a)),
        Some(Command::Imported { json }) => {
            return runtime.block_on(inspect::imported(settings, json))
        }
        Some(Command::Repos { json }) => return runtime.block_on(inspect::repos(settings, json)),
        Some(Command::Show { gun, json }) => {
            return runtime.block_on(inspect::show(settings, &gun, json))
        }
        Some(Command::Delete { gun, reason }) => {
            return runtime.block_on(maintain::delete(settings, &gun, &reason))
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
            return runtime.block_on(maintain::prune(
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
            return runtime.block_on(inspect::audit(
                settings,
                gun.as_ref(),
                since.as_deref(),
                limit,
                json,
            ))
        }
        Some(Command::Export { to, gun, all: _ }) => {
            return runtime.block_on(export::export(settings, to, gun))
        }
        Some(Command::MigrateKeys(a)) => {
            return runtime.block_on(migrate_keys::migrate_keys(settings, *a))
        }
        None | Some(Command::Mirror(_)) => {}
    }
    let socket = wiring::reserve_address(&settings.server.http_addr)?;
    if args.config.is_none() {
        notary_common::private::create_dir(&data_dir)
            .with_context(|| format!("creating data folder {}", data_dir.display()))?;
        let g = notary_server::tls::ensure_self_signed(&data_dir)?;
        settings.server.tls = Some((g.cert, g.key));
        settings.server.generated_ca = Some(std::fs::canonicalize(&g.ca)?);
    }
    runtime.block_on(wiring::run(settings, socket, |service| {
        if let Some(f) = follower {
            f.spawn(service);
        }
    }))
}
