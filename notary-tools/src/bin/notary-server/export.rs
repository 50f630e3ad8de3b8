//! `export`: repositories' metadata written as a static tree (`notary_server::publication`).

use std::path::PathBuf;

use notary_server::config::Settings;
use notary_server::gun::Gun;
use notary_server::publication::{self, dir::Directory, Check, Target};

use crate::wiring::build_service;

pub(crate) async fn export(
    settings: Settings,
    to: Option<PathBuf>,
    guns: Vec<Gun>,
) -> anyhow::Result<()> {
    let target: std::sync::Arc<dyn Target> = match (&to, &settings.publish) {
        (Some(dir), _) => std::sync::Arc::new(Directory::new(dir.clone())),
        (None, Some(p)) => p.target.open().await?,
        (None, None) => {
            anyhow::bail!("--to DIR is required: the configuration has no publish block to repair")
        }
    };
    let (_db, service) = build_service(&settings, false).await?;
    let only = (!guns.is_empty()).then_some(guns.as_slice());
    let done = publication::sync_all(&service.store, target.as_ref(), only, Check::Full)
        .await
        .map_err(|e| anyhow::anyhow!("exporting to {}: {e}", target.name()))?;
    println!(
        "{}: {} repositories, {} files written, {} removed{}",
        target.name(),
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
