//! The commands that change stored state outside the API: `delete` and `prune`.

use notary_server::config::Settings;
use notary_server::gun::Gun;

use crate::table::{failure, print_table};
use crate::wiring::build_service;

pub(crate) async fn delete(settings: Settings, gun: &Gun, reason: &str) -> anyhow::Result<()> {
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it is recorded in the audit trail)");
    }
    let (_db, service) = build_service(&settings, false).await?;
    let actor = notary_server::audit::Actor::admin(Some(reason.to_string()));
    let deleted = service
        .delete(gun, &actor)
        .await
        .map_err(|e| failure("deleting the repository", e))?;
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

pub(crate) async fn prune(
    settings: Settings,
    policy: notary_server::retention::Policy,
    guns: Vec<Gun>,
    dry_run: bool,
    audit_older_than: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, false).await?;
    let guns = if guns.is_empty() {
        service
            .guns()
            .await
            .map_err(|e| failure("listing repositories", e))?
    } else {
        guns
    };
    let actor = notary_server::audit::Actor::admin(None);
    let mut reports = Vec::with_capacity(guns.len());
    for gun in &guns {
        let r = service
            .prune(gun, policy, dry_run, &actor)
            .await
            .map_err(|e| failure(&format!("pruning {gun} (earlier repositories are done)"), e))?;
        reports.push(r);
    }
    let audit_removed = match audit_older_than {
        Some(days) if !dry_run => Some(
            service
                .prune_audit(chrono::Utc::now().naive_utc() - chrono::Duration::days(days.into()))
                .await
                .map_err(|e| failure("pruning the audit trail", e))?,
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
            r.gun.to_string(),
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
