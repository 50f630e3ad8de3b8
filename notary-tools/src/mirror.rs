//! `notary-server mirror`: a read-only copy of another Notary service, kept current by
//! following its changefeed and copying only what is new with the importer's verification.
//!
//! 1. Nothing the source sends is served before the importer has verified the repository's
//!    whole history (`import`, invariant 2); a repository is copied whole or not at all.
//! 2. A source that forks a history (another file for a version the copy holds) is refused,
//!    and one that rewinds (serves an older timestamp than the copy holds) changes nothing;
//!    both are reported in the log at each change, and the copy keeps serving what it verified
//!    (`tests/mirror.rs::follows_a_go_server_and_refuses_a_fork`).
//! 3. The changefeed position starts at the source's newest row, read before the first full
//!    copy, so that no write is missed; each page must advance past the ID asked for
//!    (`source`, invariant 3), and is read within `source::PAGE_BYTES`. A source whose newest ID
//!    falls below the position (restored from a backup) is copied again from scratch.
//! 4. A deletion at the source deletes the copy; clients cannot write to a mirror, and it
//!    signs nothing (`RepoService`'s `mirror` option).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use notary_server::audit::Actor;
use notary_server::gun::Gun;
use notary_server::role::Role;
use notary_server::service::RepoService;
use notary_tuf::metadata::SignedFile;

use crate::client::NotaryClient;
use crate::import::source::{changefeed_page as page, Origin, Source, SourceError};
use crate::import::{import_one, Options};

/// Rows asked for per page.
const PAGE_ROWS: usize = 1000;

/// Which repositories a mirror follows.
#[derive(Debug, Clone)]
pub enum Following {
    /// Every repository the source's changefeed names.
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl Following {
    fn wants(&self, gun: &str) -> bool {
        match self {
            Following::All => true,
            Following::Only(g) => g.contains(gun),
        }
    }
}

/// The ID of the source's newest changefeed row ("0" when it has none).
async fn head(c: &NotaryClient) -> Result<String, SourceError> {
    Ok(page(c, "change_id=-1&records=1")
        .await?
        .pop()
        .map_or_else(|| "0".to_string(), |r| r.id))
}

/// The rows after `id`: (GUN → whether a deletion is among its rows, and whether its last row
/// is an update), in first-named order, and the last row's ID (invariant 3).
async fn changes_after(
    c: &NotaryClient,
    id: &str,
) -> Result<(Vec<(String, bool, bool)>, String), SourceError> {
    let records = page(c, &format!("change_id={id}&records={PAGE_ROWS}")).await?;
    let Some(last) = records.last().map(|r| r.id.clone()) else {
        return Ok((Vec::new(), id.to_string()));
    };
    let advanced = match (last.parse::<i64>(), id.parse::<i64>()) {
        (Ok(l), Ok(i)) => l > i,
        _ => false,
    };
    if !advanced {
        return Err(SourceError::ChangefeedStuck(id.to_string()));
    }
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for r in records {
        let deletion = r.category == "deletion";
        let e = by.entry(r.gun.clone()).or_insert_with(|| {
            order.push(r.gun.clone());
            (false, false)
        });
        e.0 |= deletion;
        e.1 = !deletion;
    }
    let out = order
        .into_iter()
        .map(|g| {
            let (deleted, updated) = by[&g];
            (g, deleted, updated)
        })
        .collect();
    Ok((out, last))
}

/// Copy `gun` from the source (or delete the copy first, when the source deleted it).
async fn follow_gun(
    service: &RepoService,
    source: &Source,
    gun: &str,
    deleted: bool,
    updated: bool,
) {
    if deleted {
        let Ok(g) = Gun::new(gun) else {
            tracing::warn!(gun, "mirror: the source names an invalid GUN; ignored");
            return;
        };
        let actor = Actor::admin(Some(format!("mirror: deleted at {}", source.label())));
        match service.delete_mirrored(&g, &actor).await {
            Ok(true) => tracing::info!(gun, "mirror: deleted, as at the source"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(gun, error = %e, "mirror: deleting the copy failed; retried at the source's next change")
            }
        }
    }
    if !updated {
        return;
    }
    let report = import_one(service, source, gun, &Options::default()).await;
    match report.result {
        "failed" => tracing::warn!(
            gun,
            source = %source.label(),
            error = report.error.as_deref().unwrap_or(""),
            "mirror: refused the source's repository; the copy keeps what it verified before"
        ),
        "imported" => tracing::info!(
            gun,
            files = report.files_copied,
            "mirror: copied what is new"
        ),
        _ => {}
    }
    if report.result != "failed" {
        check_rewind(service, source, gun).await;
    }
}

/// Report a source that serves an older timestamp than the copy holds (invariant 2): the
/// importer found nothing new, and the copy keeps the newer one.
async fn check_rewind(service: &RepoService, source: &Source, gun: &str) {
    let (Origin::Server(c), Ok(g)) = (&source.origin, Gun::new(gun)) else {
        return;
    };
    let version = |b: &[u8]| SignedFile::parse(b).ok().map(|f| f.common.version);
    let path = format!("/v2/{gun}/_trust/tuf/timestamp.json");
    let scope = format!("repository:{gun}:pull");
    let Ok(Some(theirs)) = c
        .get_limited(&path, &scope, crate::client::MAX_FILE as u64)
        .await
    else {
        return;
    };
    let Ok(Some(ours)) = service.store.latest(&g, &Role::TIMESTAMP).await else {
        return;
    };
    if let (Some(t), Some(o)) = (version(&theirs), version(&ours.data)) {
        if t < o {
            tracing::warn!(
                gun,
                source = %source.label(),
                source_version = t,
                copy_version = o,
                "mirror: the source rewound the repository (an older timestamp than the copy holds); the copy keeps the newer one"
            );
        }
    }
}

/// Copy every repository followed (the first copy, and after the source's changefeed went
/// back); how many.
async fn copy_all(
    service: &RepoService,
    source: &Source,
    following: &Following,
    interval: Duration,
) -> usize {
    let guns: Vec<String> = match following {
        Following::Only(g) => g.iter().cloned().collect(),
        Following::All => loop {
            match source.all_guns().await {
                Ok(g) => break g,
                Err(e) => {
                    tracing::warn!(error = %e, "mirror: listing the source's repositories failed; retrying");
                    tokio::time::sleep(interval).await;
                }
            }
        },
    };
    for gun in &guns {
        source.reset_run();
        follow_gun(service, source, gun, false, true).await;
    }
    guns.len()
}

/// Follow the source into `service` every `interval` until the process ends (see the module).
/// Errors reaching the source are logged and retried.
pub async fn follow(
    service: Arc<RepoService>,
    source: Source,
    following: Following,
    interval: Duration,
) {
    let Origin::Server(client) = &source.origin else {
        tracing::error!("mirror: the source must be a Notary server");
        return;
    };
    let mut cursor = loop {
        match head(client).await {
            Ok(h) => break h,
            Err(e) => {
                tracing::warn!(error = %e, "mirror: reading the source's changefeed failed; retrying");
                tokio::time::sleep(interval).await;
            }
        }
    };
    let n = copy_all(&service, &source, &following, interval).await;
    tracing::info!(repositories = n, source = %source.label(), "mirror: first copy done; following the source's changefeed");
    loop {
        tokio::time::sleep(interval).await;
        loop {
            let (changed, last) = match changes_after(client, &cursor).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "mirror: reading the source's changefeed failed; retrying");
                    break;
                }
            };
            if changed.is_empty() {
                // A source restored from a backup numbers its changefeed from an older ID:
                // start again from its newest row, after copying everything again.
                if let Ok(h) = head(client).await {
                    if let (Ok(at), Ok(mine)) = (h.parse::<i64>(), cursor.parse::<i64>()) {
                        if at < mine {
                            tracing::warn!(source = %source.label(), source_head = at, position = mine, "mirror: the source's changefeed went back (restored from a backup?); copying everything again");
                            cursor = h;
                            copy_all(&service, &source, &following, interval).await;
                        }
                    }
                }
                break;
            }
            for (gun, deleted, updated) in changed {
                if following.wants(&gun) {
                    source.reset_run();
                    follow_gun(&service, &source, &gun, deleted, updated).await;
                }
            }
            cursor = last;
        }
    }
}
