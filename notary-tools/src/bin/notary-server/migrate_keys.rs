//! `notary-server migrate-keys`: move repositories' timestamp and snapshot keys from the
//! signer's SQL store to AWS KMS, the only way TUF allows — a new key and a root rotation.
//!
//! The operator cannot sign a root, so the move has two halves. This command does the
//! operator's for every repository (or those named): it finds which store holds each key the
//! current root gives the timestamp and snapshot roles (`notary_signer::migrating`), makes the
//! KMS key a rotation will hand out where a SQL key is still in use, and reports each role as
//! `in kms`, `awaits rotation` (with the new key and the owner's command), `owner's key` (the
//! server holds none: nothing to move) or `failed`. The owner's half is the stock
//! `notary key rotate GUN timestamp -r` (and `snapshot -r`), or `notary-rekey` for both at once.
//!
//! It is safe to stop and run again: nothing is decided from earlier runs; a role already in
//! KMS is skipped; the prepared KMS key of a role awaiting rotation is found again, not made
//! twice (`kms` invariant 2). It signs and writes nothing to the server's storage.
//!
//! Tested by `notary-tools/tests/kms_signer.rs::sql_keys_move_to_kms_by_rotation`.

use std::path::PathBuf;

use anyhow::Context;
use notary_server::config::Settings;
use notary_server::gun::Gun;
use notary_signer::config::Storage;
use notary_signer::migrating::{Holder, MigratingStore};
use notary_signer::CryptoService;
use notary_tuf::metadata::{SNAPSHOT, TIMESTAMP};

use crate::table::{failure, print_table};
use crate::wiring::build_service;

/// `notary-server migrate-keys`.
#[derive(clap::Args, Debug)]
pub(crate) struct MigrateKeysArgs {
    /// The notary-signer config whose `storage` is `awskms` with `migrate_from` (the SQL store
    /// the keys move from). Its stores are opened with the AWS credential chain; no passphrase
    /// is needed (keys are only looked up).
    #[arg(long, value_name = "FILE")]
    signer_config: PathBuf,
    /// Only this repository (repeatable; default: every repository).
    #[arg(long, value_name = "GUN", conflicts_with = "all")]
    gun: Vec<Gun>,
    /// Every repository (the default).
    #[arg(long)]
    all: bool,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One role of one repository in the report.
#[derive(Debug, serde::Serialize)]
struct RoleReport {
    gun: String,
    role: &'static str,
    /// The keys the current root gives the role.
    keys: Vec<String>,
    /// Which store holds each (`kms`, `sql`, or none: the owner's).
    held_by: Vec<Option<Holder>>,
    /// `in kms`, `awaits rotation`, `owner's key` or `failed`.
    status: &'static str,
    /// The KMS key the owner's rotation will receive.
    #[serde(skip_serializing_if = "Option::is_none")]
    new_key: Option<String>,
    /// What the owner runs, or why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

async fn role_report(
    store: &MigratingStore,
    gun: &Gun,
    role: &'static str,
    keys: Vec<String>,
) -> RoleReport {
    let mut r = RoleReport {
        gun: gun.to_string(),
        role,
        keys,
        held_by: Vec::new(),
        status: "failed",
        new_key: None,
        next: None,
    };
    for id in &r.keys {
        match store.holder(id).await {
            Ok(h) => r.held_by.push(h),
            Err(e) => {
                r.next = Some(format!("looking up key {id}: {e}"));
                return r;
            }
        }
    }
    if r.held_by.contains(&Some(Holder::Sql)) {
        match store
            .kms
            .create_key(role, gun.as_str(), notary_tuf::keys::ECDSA)
            .await
        {
            Ok(k) => {
                r.status = "awaits rotation";
                r.new_key = Some(k.id());
                r.next = Some(format!("notary key rotate {gun} {role} -r"));
            }
            Err(e) => r.next = Some(format!("making the KMS key: {e}")),
        }
    } else if r.held_by.contains(&Some(Holder::Kms)) {
        r.status = "in kms";
    } else {
        r.status = "owner's key";
    }
    r
}

pub(crate) async fn migrate_keys(settings: Settings, a: MigrateKeysArgs) -> anyhow::Result<()> {
    let (cfg, base) = notary_signer::config::Config::load(&a.signer_config)?;
    let Storage::AwsKms {
        kms,
        migrate_from: Some(from),
    } = cfg.storage(&base)?
    else {
        anyhow::bail!(
            "{}: storage must be backend \"awskms\" with migrate_from naming the SQL key store \
             the keys move from (docs/key-storage.md)",
            a.signer_config.display()
        );
    };
    let store = MigratingStore::open_for_lookup(&kms, &from)
        .await
        .context("opening AWS KMS and the SQL key store")?;
    let (_db, service) = build_service(&settings, true).await?;
    let guns = if a.gun.is_empty() {
        service
            .guns()
            .await
            .map_err(|e| failure("listing repositories", e))?
    } else {
        a.gun
    };
    let mut report = Vec::new();
    for gun in &guns {
        let root = service
            .current_root(gun)
            .await
            .map_err(|e| failure(&format!("reading the root of {gun}"), e))?;
        let Some(root) = root else { continue };
        for role in [TIMESTAMP, SNAPSHOT] {
            report.push(role_report(&store, gun, role, root.role_keyids(role)).await);
        }
    }
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing --report {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let mut rows = vec![["GUN", "ROLE", "STATUS", "NEW KEY", "NEXT"].map(String::from)];
        for r in &report {
            rows.push([
                r.gun.clone(),
                r.role.to_string(),
                r.status.to_string(),
                r.new_key.clone().unwrap_or_else(|| "-".into()),
                r.next.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        print_table(&rows);
    }
    let count = |s: &str| report.iter().filter(|r| r.status == s).count();
    let failed = count("failed");
    println!(
        "{} repositories: {} roles in KMS, {} await the owner's rotation, {} held by owners, {failed} failed",
        guns.len(),
        count("in kms"),
        count("awaits rotation"),
        count("owner's key"),
    );
    if failed > 0 {
        anyhow::bail!("{failed} role(s) failed (see NEXT); run again to resume");
    }
    Ok(())
}
