//! `notary-server mirror`: serve a read-only copy of another Notary service and keep it
//! current (`notary_tools::mirror`).

use std::collections::BTreeSet;

use notary_tools::import::source::{Origin, Source};
use notary_tools::mirror::Following;

use crate::import::{LimitArgs, ServerArgs};

#[derive(clap::Args, Debug)]
pub(crate) struct MirrorArgs {
    /// The Notary service to follow, e.g. https://notary.example.com.
    #[arg(long, value_name = "URL")]
    from: String,
    /// A repository to follow (repeatable).
    #[arg(
        long,
        value_name = "GUN",
        conflicts_with = "all",
        required_unless_present = "all"
    )]
    gun: Vec<String>,
    /// Every repository of the source (its changefeed).
    #[arg(long)]
    all: bool,
    /// How often the source's changefeed is checked, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    interval_ms: u64,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The follower, ready to start once the service is up.
pub(crate) struct Follower {
    source: Source,
    following: Following,
    interval: std::time::Duration,
}

impl MirrorArgs {
    pub(crate) fn follower(&self) -> anyhow::Result<Follower> {
        anyhow::ensure!(self.interval_ms > 0, "--interval-ms must be at least 1");
        let source = Source::new(
            Origin::Server(self.server.client(&self.from)?),
            self.limits.limits(),
        );
        let following = if self.all {
            Following::All
        } else {
            Following::Only(self.gun.iter().cloned().collect::<BTreeSet<_>>())
        };
        Ok(Follower {
            source,
            following,
            interval: std::time::Duration::from_millis(self.interval_ms),
        })
    }
}

impl Follower {
    pub(crate) fn spawn(self, service: &std::sync::Arc<notary_server::service::RepoService>) {
        tracing::info!(source = %self.source.label(), "mirror: following");
        tokio::spawn(notary_tools::mirror::follow(
            service.clone(),
            self.source,
            self.following,
            self.interval,
        ));
    }
}
