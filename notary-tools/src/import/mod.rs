//! `notary-server import`: bring signed repositories, with their history, from another Notary
//! server (or from clients' trust directories) into this server's storage.
//!
//! Invariants (tests: `notary-tools/tests/import.rs`):
//! 1. Files are stored byte for byte (signatures stay valid), with one changefeed row per
//!    timestamp version, in version order (`imports_go_repositories_with_token_auth`).
//! 2. Nothing is stored that `notary_tuf::history::verify_history` refuses, and a repository
//!    that fails is not stored at all; the others go on (`a_tampering_source_is_refused`).
//! 3. One transaction per repository, announced to running instances like any write: a killed
//!    import leaves each repository whole or absent (`a_killed_import_resumes_cleanly`).
//! 4. Idempotent: a second run stores nothing; after one publish upstream it stores exactly
//!    that publish's files (`a_second_run_copies_only_what_is_new`).
//! 5. A GUN holding a different history here is refused, unless `--replace`.
//! 6. A source is bounded while it is read (`source`, its invariants), and a repository's files
//!    wait on disk (`spill`), verified and stored one at a time: memory holds about one file
//!    (`hostile_import.rs`).

mod limits;
pub mod source;
pub mod spill;
mod trust_dirs;

use std::collections::BTreeMap;
use std::io::IsTerminal;

use chrono::Utc;
use notary_common::untrusted::escape;
use notary_tuf::history::verify_history;
use notary_tuf::metadata as md;
use serde::Serialize;

use notary_server::role::Role;
use notary_server::service::RepoService;
use notary_server::storage::StoreError;
use source::Source;
use spill::Spill;

/// How an import run behaves (its flags).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overwrite a different history stored here for the same GUN.
    pub replace: bool,
    /// Fetch and verify only; store nothing.
    pub dry_run: bool,
    /// This server's URL as clients reach it, for the commands the report prints.
    pub public_url: Option<String>,
}

/// What happened to one repository: one row of the summary and of `--report`.
#[derive(Debug, Clone, Serialize)]
pub struct GunReport {
    /// The repository.
    pub gun: String,
    /// `imported`, `up to date`, `verified` (dry run) or `failed`.
    pub result: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Files the source and this server hold for the GUN together, and how many were stored now.
    pub files: usize,
    /// (See `files`.)
    pub files_copied: usize,
    /// Files of a different history removed first (`--replace`).
    #[serde(skip_serializing_if = "is_zero")]
    pub files_replaced: usize,
    /// Version of each role in the current chain.
    pub current: BTreeMap<String, i64>,
    /// The oldest root version the history holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_root_version: Option<i64>,
    /// When the current timestamp expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_expires: Option<String>,
    /// Roles of the current chain that have expired.
    pub expired: Vec<String>,
    /// Server-managed roles this server holds the current keys for.
    pub server_holds_keys: HeldKeys,
    /// What the owner must do next, as a command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    /// Anything else worth knowing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Whether this server holds the current timestamp and snapshot keys of an imported repository.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HeldKeys {
    /// The timestamp key.
    pub timestamp: bool,
    /// The snapshot key.
    pub snapshot: bool,
}

impl GunReport {
    fn failed(gun: &str, error: String) -> GunReport {
        GunReport {
            gun: gun.to_string(),
            result: "failed",
            error: Some(error),
            files: 0,
            files_copied: 0,
            files_replaced: 0,
            current: BTreeMap::new(),
            first_root_version: None,
            timestamp_expires: None,
            expired: Vec::new(),
            server_holds_keys: HeldKeys::default(),
            next_step: None,
            notes: Vec::new(),
        }
    }
}

/// The commands that give `gun` timestamp (and snapshot) keys this server holds.
pub fn rotation_hint(gun: &str, server: &str) -> String {
    format!(
        "rotate the server-managed keys before publishing here: `notary -s {server} key rotate {gun} timestamp -r` if you hold \
         the snapshot key, else `notary-rekey --server {server} --gun {gun}` with your root key"
    )
}

/// Import one repository; failures are reported, not returned.
pub async fn import_one(
    service: &RepoService,
    source: &Source,
    gun: &str,
    opts: &Options,
) -> GunReport {
    match try_import(service, source, gun, opts).await {
        Ok(r) => r,
        Err(e) => GunReport::failed(gun, e.to_string()),
    }
}

/// Why a repository was not imported (nothing of it was stored).
// Each variant reads as its `#[error]` message; its fields are what the message names.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a valid GUN (at most 255 characters, no control characters, no empty, '.' or '..' segments)")]
    InvalidGun,
    #[error("reading this server's copy: {0}")]
    ReadingHere(StoreError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(
        "this server already holds a different history for {gun} ({what}); run with --replace to overwrite it with the source's"
    )]
    DifferentHistory { gun: String, what: String },
    #[error("verification failed, nothing stored: {0}")]
    Verification(#[from] notary_tuf::history::HistoryError),
    #[error("storing: {0}")]
    Storing(StoreError),
    #[error("keeping the repository's files on disk while importing: {0}")]
    Spill(std::io::Error),
    #[error("asking the trust service which keys it holds: {0}")]
    KeyLookup(notary_server::service::ServiceError),
}

async fn try_import(
    service: &RepoService,
    source: &Source,
    gun: &str,
    opts: &Options,
) -> Result<GunReport, ImportError> {
    let gun = &notary_server::gun::Gun::new(gun).map_err(|_| ImportError::InvalidGun)?;
    // What this server stores of the GUN, then what the source adds, on disk (`spill`): one
    // file in memory at a time, however long the history.
    let mut spill = Spill::new().map_err(ImportError::Spill)?;
    if !opts.replace {
        let rows = service
            .store
            .file_rows(gun)
            .await
            .map_err(ImportError::ReadingHere)?;
        for row in rows {
            let f = service
                .store
                .by_version(gun, &Role::stored(&row.role), row.version)
                .await
                .map_err(ImportError::ReadingHere)?;
            if let Some(f) = f {
                let added = spill
                    .add(&row.role, row.version, &f.data, spill::Origin::Here)
                    .map_err(ImportError::Spill)?;
                debug_assert!(added.is_ok(), "one stored file per version");
            }
        }
    }
    match source.fetch(gun, &mut spill).await {
        Err(source::SourceError::DiffersHere { role, version }) => {
            return Err(ImportError::DifferentHistory {
                gun: gun.to_string(),
                what: format!("{role} version {version} differs"),
            })
        }
        other => other?,
    }
    let verified = verify_history(gun, &spill, Utc::now())?;
    let new_files = spill.counts().1;
    let (result, stored) = if opts.dry_run {
        ("verified", Default::default())
    } else if new_files == 0 {
        ("up to date", Default::default())
    } else {
        match service
            .import(
                gun,
                &spill.from_source(),
                &source.label(),
                opts.replace,
                &notary_server::audit::Actor::admin(Some(format!(
                    "imported from {}",
                    source.label()
                ))),
            )
            .await
        {
            Ok(done) if done.stored == 0 && done.replaced == 0 => ("up to date", done),
            Ok(done) => ("imported", done),
            Err(StoreError::Conflict(what)) => {
                return Err(ImportError::DifferentHistory {
                    gun: gun.to_string(),
                    what,
                })
            }
            Err(e) => return Err(ImportError::Storing(e)),
        }
    };
    let held = HeldKeys {
        timestamp: service
            .holds_any(&verified.timestamp_keys)
            .await
            .map_err(ImportError::KeyLookup)?,
        snapshot: service
            .holds_any(&verified.snapshot_keys)
            .await
            .map_err(ImportError::KeyLookup)?,
    };
    let server = opts
        .public_url
        .clone()
        .unwrap_or_else(|| "<this server's URL>".into());
    let mut notes = verified.notes.clone();
    if verified.first_root > 1 {
        notes.push(format!(
            "root versions before {} were not available: clients whose trust cache holds an older root must re-initialise their trust",
            verified.first_root
        ));
    }
    Ok(GunReport {
        gun: gun.to_string(),
        result,
        error: None,
        files: spill.counts().0,
        files_copied: stored.stored,
        files_replaced: stored.replaced,
        current: verified.current.clone(),
        first_root_version: Some(verified.first_root),
        timestamp_expires: Some(
            verified
                .timestamp_expires
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        expired: verified.expired.clone(),
        server_holds_keys: held,
        next_step: (!held.timestamp).then(|| rotation_hint(gun, &server)),
        notes,
    })
}

/// Import every GUN in turn, showing progress: a bar on a terminal, a line per GUN otherwise.
pub async fn import_all(
    service: &RepoService,
    source: &Source,
    guns: &[String],
    opts: &Options,
) -> Vec<GunReport> {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(guns.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} {elapsed_precise} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let terminal = std::io::stderr().is_terminal();
    let mut out = Vec::with_capacity(guns.len());
    for (i, gun) in guns.iter().enumerate() {
        bar.set_message(escape(gun).into_owned());
        let r = import_one(service, source, gun, opts).await;
        let line = format!(
            "[{}/{}] {}: {}{}",
            i + 1,
            guns.len(),
            escape(gun),
            r.result,
            match (&r.error, r.files_copied) {
                (Some(e), _) => format!(" — {}", escape(e)),
                (None, 0) => String::new(),
                (None, n) => format!(" ({n} files)"),
            }
        );
        if terminal {
            bar.println(line);
        } else {
            eprintln!("{line}");
        }
        bar.inc(1);
        out.push(r);
    }
    bar.finish_and_clear();
    out
}

/// The summary table printed at the end.
pub fn summary_table(reports: &[GunReport]) -> String {
    let header = [
        "GUN",
        "RESULT",
        "COPIED",
        "ROOT",
        "TARGETS",
        "SNAPSHOT",
        "TIMESTAMP",
        "TIMESTAMP EXPIRES",
        "KEYS HERE",
    ];
    let v = |r: &GunReport, role: &str| {
        r.current
            .get(role)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<[String; 9]> = reports
        .iter()
        .map(|r| {
            let keys = match (r.server_holds_keys.timestamp, r.server_holds_keys.snapshot) {
                _ if r.result == "failed" => "-".to_string(),
                (true, true) => "timestamp, snapshot".into(),
                (true, false) => "timestamp".into(),
                (false, true) => "snapshot (rotate timestamp)".into(),
                (false, false) => "none (rotate)".into(),
            };
            let expires = match &r.timestamp_expires {
                Some(t) if r.expired.iter().any(|e| e == md::TIMESTAMP) => format!("{t} (expired)"),
                Some(t) => t.clone(),
                None => "-".into(),
            };
            [
                r.gun.clone(),
                r.result.to_string(),
                r.files_copied.to_string(),
                v(r, md::ROOT),
                v(r, md::TARGETS),
                v(r, md::SNAPSHOT),
                v(r, md::TIMESTAMP),
                expires,
                keys,
            ]
        })
        .collect();
    let mut table_rows = vec![header.map(String::from)];
    table_rows.extend(rows);
    let mut out = notary_common::untrusted::table(&table_rows);
    let failed = reports.iter().filter(|r| r.result == "failed").count();
    out.push_str(&format!(
        "{} repositories: {} failed\n",
        reports.len(),
        failed
    ));
    for r in reports {
        for line in [&r.error, &r.next_step].into_iter().flatten() {
            out.push_str(&format!("{}: {}\n", escape(&r.gun), escape(line)));
        }
    }
    out
}
