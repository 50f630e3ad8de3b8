//! `export`: repositories' metadata written as a static tree (`notary_server::publication`).

use std::path::PathBuf;

use notary_server::config::Settings;
use notary_server::gun::Gun;
use notary_server::publication::{self, dir::Directory, Check, Target, Tree};

use crate::wiring::build_service;

pub(crate) async fn export(
    settings: Settings,
    to: Option<PathBuf>,
    guns: Vec<Gun>,
) -> anyhow::Result<()> {
    if let Some(file) = to
        .as_ref()
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
    {
        return bundle(settings, file, guns).await;
    }
    // The configured tree's repositories only (`publish.gun_prefixes`), wherever it goes.
    let gun_prefixes = settings
        .publish
        .as_ref()
        .map(|p| p.gun_prefixes.clone())
        .unwrap_or_default();
    let target: std::sync::Arc<dyn Target> = match (&to, &settings.publish) {
        (Some(dir), _) => std::sync::Arc::new(Directory::new(dir.clone())),
        (None, Some(p)) => p.target.open().await?,
        (None, None) => {
            anyhow::bail!("--to DIR is required: the configuration has no publish block to repair")
        }
    };
    let tree = Tree {
        target,
        gun_prefixes,
    };
    let (_db, service) = build_service(&settings, false).await?;
    let only = (!guns.is_empty()).then_some(guns.as_slice());
    let failed = |e| anyhow::anyhow!("exporting to {}: {e}", tree.target.name());
    let done = if to.is_none() {
        // The configured tree: not while a server writes it.
        publication::repair(
            &service.store,
            &tree,
            only,
            Check::Full,
            std::time::Duration::from_secs(60),
        )
        .await
        .map_err(failed)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: a server held the tree's lock for a minute; try again",
                tree.target.name()
            )
        })?
    } else {
        publication::sync_all(&service.store, &tree, only, Check::Full)
            .await
            .map_err(failed)?
    };
    println!(
        "{}: {} repositories, {} files written, {} removed{}",
        tree.target.name(),
        done.repositories,
        done.written,
        done.removed,
        if done.skipped > 0 {
            format!(
                ", {} skipped (a name that would leave the tree; see the log)",
                done.skipped
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `export --to FILE.tar`: a bundle (`notary_tools::bundle`).
async fn bundle(settings: Settings, file: &std::path::Path, guns: Vec<Gun>) -> anyhow::Result<()> {
    let (_db, service) = build_service(&settings, false).await?;
    let guns = if guns.is_empty() {
        service
            .guns()
            .await
            .map_err(|e| crate::table::failure("listing repositories", e))?
    } else {
        guns
    };
    let source = format!(
        "notary-server {} on {}",
        env!("CARGO_PKG_VERSION"),
        // The database without credentials (user, password, query parameters).
        notary_common::untrusted::strip_userinfo(
            settings
                .storage
                .db_url
                .split('?')
                .next()
                .unwrap_or_default()
        )
    );
    let done = notary_tools::bundle::write(&service.store, &guns, &source, file)
        .await
        .map_err(|e| anyhow::anyhow!("exporting to {}: {e}", file.display()))?;
    println!(
        "{}: {} repositories, {} files ({} bytes), every history verified",
        file.display(),
        done.repositories,
        done.files,
        done.bytes
    );
    Ok(())
}
