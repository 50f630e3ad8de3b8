//! `notary-server import`: its arguments and how they become an import run
//! (`notary_tools::import`).

use std::path::PathBuf;

use anyhow::Context;
use notary_server::config::Settings;
use notary_tools::import::source::SourceLimits;
use zeroize::Zeroizing;

use crate::wiring::build_service;

/// Where `--username`'s password may come from, besides standard input.
const IMPORT_PASSWORD_ENV: &str = "NOTARY_IMPORT_PASSWORD";

#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The Notary server to copy from, e.g. https://notary.docker.io.
    #[arg(long, value_name = "URL", conflicts_with = "from_trust_dir")]
    from: Option<String>,
    /// A client trust directory to copy from (~/.docker/trust, ~/.notary), when the server is
    /// gone; repeatable.
    #[arg(long, value_name = "DIR")]
    from_trust_dir: Vec<PathBuf>,
    /// A bundle to copy from (`notary-server export --to FILE.tar`): verified as any source.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "from_trust_dir"])]
    from_bundle: Option<PathBuf>,
    /// A repository to copy (repeatable).
    #[arg(long, value_name = "GUN")]
    gun: Vec<String>,
    /// A file of repositories to copy, one GUN a line (# comments).
    #[arg(long, value_name = "FILE")]
    gun_file: Option<PathBuf>,
    /// Every repository of the source (its changefeed; every GUN in a trust directory).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    server: ServerArgs,
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
    #[command(flatten)]
    limits: LimitArgs,
}

/// How a source server is reached (`import --from`, `mirror --from`).
#[derive(clap::Args, Debug)]
pub(crate) struct ServerArgs {
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
    /// Send credentials to the source's token service on this host, when it is not the
    /// source's host (repeatable; asked on a terminal otherwise).
    #[arg(long, value_name = "HOST")]
    allow_token_host: Vec<String>,
    /// Accept a plain-http token realm for an https source (tokens and credentials then cross
    /// the network in clear).
    #[arg(long)]
    allow_insecure_token_realm: bool,
}

/// What reading a source may cost (`SourceLimits`).
#[derive(clap::Args, Debug)]
pub(crate) struct LimitArgs {
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

impl LimitArgs {
    pub(crate) fn limits(&self) -> SourceLimits {
        SourceLimits {
            max_file_bytes: self.max_file_bytes,
            max_repository_bytes: self.max_repository_bytes,
            max_run_bytes: self.max_run_bytes,
            max_versions: self.max_versions,
            max_repositories: self.max_repositories,
        }
    }
}

impl ServerArgs {
    /// A client of the source server at `url`.
    pub(crate) fn client(&self, url: &str) -> anyhow::Result<notary_tools::client::NotaryClient> {
        let ca = match &self.tlscacert {
            Some(p) => Some(
                std::fs::read(p).with_context(|| format!("reading --tlscacert {}", p.display()))?,
            ),
            None => None,
        };
        let credentials = import_credentials(self, url)?;
        Ok(
            notary_tools::client::NotaryClient::new(url, ca.as_deref(), credentials)?
                .with_token_policy(notary_tools::client::TokenPolicy::for_terminal(
                    self.allow_insecure_token_realm,
                    self.allow_token_host.clone(),
                )),
        )
    }
}

/// `notary-server import`.
pub(crate) async fn import(settings: Settings, a: ImportArgs) -> anyhow::Result<()> {
    use notary_tools::import::{
        self,
        source::{Origin, Source},
    };
    if settings.server.read_only {
        anyhow::bail!("server.read_only is set: import into the primary's storage instead");
    }
    let source = match (&a.from, a.from_trust_dir.is_empty(), &a.from_bundle) {
        (None, true, Some(path)) => Origin::Bundle(notary_tools::bundle::Bundle::open(
            path,
            a.limits.max_file_bytes,
        )?),
        (Some(url), true, None) => Origin::Server(a.server.client(url)?),
        (None, false, None) => {
            for d in &a.from_trust_dir {
                anyhow::ensure!(
                    d.join("tuf").is_dir(),
                    "{}: not a trust directory (no tuf/ folder)",
                    d.display()
                );
            }
            Origin::TrustDirs(a.from_trust_dir.clone())
        }
        _ => anyhow::bail!("name a source: --from URL, --from-trust-dir DIR or --from-bundle FILE"),
    };
    let source = Source::new(source, a.limits.limits());
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
    a: &ServerArgs,
    url: &str,
) -> anyhow::Result<Option<notary_tools::client::Credentials>> {
    use notary_tools::client::{docker_config_credentials, Credentials};
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
