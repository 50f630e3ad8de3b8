//! `notary-rekey`: replace an imported repository's timestamp and snapshot keys with keys the
//! new server holds, signed with the owner's root key (see `notary_tools::rekey`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use zeroize::Zeroizing;

/// Give a repository moved to a new Notary server timestamp and snapshot keys that server
/// holds, when the old server held both (e.g. Docker Hub). Signs one new root version with your
/// root key, read from your trust directory; the key never leaves this machine. Clients that
/// trusted the old keys follow the rotation.
#[derive(Parser, Debug)]
#[command(name = "notary-rekey", version)]
struct Args {
    /// The new Notary server, e.g. https://notary.example.com.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The repository (GUN), e.g. docker.io/acme/app.
    #[arg(long)]
    gun: String,
    /// Trust directory holding your root key (repeatable; default ~/.docker/trust and ~/.notary).
    #[arg(long, value_name = "DIR")]
    trust_dir: Vec<PathBuf>,
    /// CA certificates (PEM) to trust for the server instead of the system's.
    #[arg(long, value_name = "FILE")]
    tlscacert: Option<PathBuf>,
    /// Registry user for the server's token service; the password comes from
    /// NOTARY_AUTH_PASSWORD or a prompt, never from the command line.
    #[arg(long)]
    username: Option<String>,
    /// Send credentials to the server's token service on this host, when it is not the
    /// server's host (repeatable; asked on a terminal otherwise).
    #[arg(long, value_name = "HOST")]
    allow_token_host: Vec<String>,
    /// Accept a plain-http token realm for an https server.
    #[arg(long)]
    allow_insecure_token_realm: bool,
    /// Sign the change shown without asking (required when standard input is not a terminal).
    #[arg(long)]
    yes: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    use std::io::IsTerminal;
    let terminal = std::io::stdin().is_terminal();
    anyhow::ensure!(
        args.yes || terminal,
        "standard input is not a terminal: notary-rekey shows the change to your root and asks \
         before signing it; run it on a terminal, or pass --yes to sign without asking"
    );
    notary_common::logging::init("warn", "text", "sqlx=warn");
    let dirs = if args.trust_dir.is_empty() {
        let home =
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set: give --trust-dir")?);
        vec![home.join(".docker/trust"), home.join(".notary")]
    } else {
        args.trust_dir.clone()
    };
    let ca = match &args.tlscacert {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("reading --tlscacert {}", p.display()))?)
        }
        None => None,
    };
    let credentials = match &args.username {
        Some(u) => Some(notary_tools::client::Credentials {
            username: u.clone(),
            password: match std::env::var("NOTARY_AUTH_PASSWORD") {
                Ok(p) => Zeroizing::new(p),
                Err(_) => Zeroizing::new(
                    rpassword::prompt_password(format!("password for {u}: "))
                        .context("reading the password")?,
                ),
            },
        }),
        None => None,
    };
    let client = notary_tools::client::NotaryClient::new(&args.server, ca.as_deref(), credentials)?
        .with_token_policy(notary_tools::client::TokenPolicy::for_terminal(
            args.allow_insecure_token_realm,
            args.allow_token_host.clone(),
        ));
    // The root key's passphrase: as the notary and docker CLIs take it, or a prompt.
    let passphrase = || -> std::io::Result<Zeroizing<String>> {
        for var in [
            "NOTARY_ROOT_PASSPHRASE",
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
        ] {
            if let Ok(p) = std::env::var(var) {
                return Ok(Zeroizing::new(p));
            }
        }
        rpassword::prompt_password("passphrase of your root key: ")
            .map(Zeroizing::new)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "set NOTARY_ROOT_PASSPHRASE (or DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE), \
                         or run on a terminal ({e})"
                    ),
                )
            })
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let yes = args.yes;
    let confirm = |plan: &notary_tools::rekey::Plan| -> bool {
        eprintln!("{plan}");
        if yes {
            return true;
        }
        notary_tools::client::ask_yes("sign and publish this root?")
    };
    let done = runtime.block_on(notary_tools::rekey::rekey(
        &client,
        &args.gun,
        &dirs,
        &passphrase,
        &confirm,
    ))?;
    println!(
        "{}: root version {} published; the server now signs timestamps with key {} and snapshots with key {}",
        notary_common::untrusted::escape(&args.gun), done.root_version, done.timestamp_key, done.snapshot_key
    );
    println!(
        "publish as usual, e.g. `notary -s {} publish {}`",
        notary_common::untrusted::escape(&args.server),
        notary_common::untrusted::escape(&args.gun)
    );
    Ok(())
}
