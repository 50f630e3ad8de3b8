//! The commands that only read: `imported`, `repos`, `show`, `audit` (the database opened
//! read-only, keys only looked up: see `wiring::build_service`).

use notary_server::config::Settings;
use notary_server::gun::Gun;

use crate::table::{failure, human_bytes, keys_held, print_table, when};
use crate::wiring::build_service;

/// `notary-server imported`.
pub(crate) async fn imported(settings: Settings, json: bool) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, true).await?;
    let list = service
        .imported()
        .await
        .map_err(|e| failure("listing imported repositories", e))?;
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
            k.gun.to_string(),
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

pub(crate) async fn repos(settings: Settings, json: bool) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, true).await?;
    let list = service
        .repositories(None)
        .await
        .map_err(|e| failure("listing repositories", e))?;
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
            r.gun.to_string(),
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

pub(crate) async fn show(settings: Settings, gun: &Gun, json: bool) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, true).await?;
    let Some(repo) = service
        .repositories(Some(gun))
        .await
        .map_err(|e| failure("reading the repository", e))?
        .pop()
    else {
        anyhow::bail!("no repository {gun:?} here (`notary-server repos` lists them)");
    };
    let audit = service
        .audit(Some(gun), None, i64::MAX)
        .await
        .map_err(|e| failure("reading the audit trail", e))?;
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

/// `--since`: RFC 3339, or an age such as 30m, 12h, 7d.
pub(crate) fn parse_since(s: &str) -> anyhow::Result<chrono::NaiveDateTime> {
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

pub(crate) fn print_audit(entries: &[notary_server::audit::Entry]) {
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

pub(crate) async fn audit(
    settings: Settings,
    gun: Option<&Gun>,
    since: Option<&str>,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    let since = since.map(parse_since).transpose()?;
    let (_db, service) = build_service(&settings, true).await?;
    let entries = service
        .audit(gun, since, limit)
        .await
        .map_err(|e| failure("reading the audit trail", e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print_audit(&entries);
        println!("{} records", entries.len());
    }
    Ok(())
}
