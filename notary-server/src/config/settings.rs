//! What the server runs with: the config file resolved (paths, defaults, environment
//! overrides) and checked by `Config::settings`.

use std::path::PathBuf;

/// Everything the server needs, resolved and checked, grouped as the config file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Listening, TLS, limits.
    pub server: ServerSettings,
    /// The metadata database.
    pub storage: StorageSettings,
    /// Where timestamp and snapshot keys are kept and used.
    pub trust: TrustService,
    /// Logging.
    pub logging: LoggingSettings,
    /// Cache headers, the read cache, re-signing.
    pub caching: CacheSettings,
    /// `repositories.gun_prefixes`: the GUNs this server accepts (empty: all).
    pub gun_prefixes: Vec<String>,
    /// Where the local trust service reads its passphrase file, if it needs one.
    pub data_dir: Option<PathBuf>,
    /// Token auth (realm, service, issuer, root bundle), when `auth.type` is `token`.
    pub token_auth: Option<TokenAuthSettings>,
    /// Background retention: the policy and how often a pass runs.
    pub retention: Option<(crate::retention::Policy, std::time::Duration)>,
    /// Static publication: where, and how often the changefeed is checked.
    pub publish: Option<PublishSettings>,
    /// See [`Config::warnings`].
    pub warnings: Vec<String>,
}

/// `publish`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSettings {
    /// The tree.
    pub target: PublishTarget,
    /// GUN prefixes of the repositories published (empty: all).
    pub gun_prefixes: Vec<String>,
    /// How often the changefeed is checked for writes to publish.
    pub interval: std::time::Duration,
}

/// Where a tree is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishTarget {
    /// A local directory.
    Directory(PathBuf),
    /// A bucket.
    S3(crate::publication::s3::BucketConfig),
}

impl PublishSettings {
    /// The tree, opened.
    pub async fn tree(
        &self,
    ) -> Result<crate::publication::Tree, crate::publication::PublicationError> {
        Ok(crate::publication::Tree {
            target: self.target.open().await?,
            gun_prefixes: self.gun_prefixes.clone(),
        })
    }
}

impl PublishTarget {
    /// The tree as a [`Target`](crate::publication::Target).
    pub async fn open(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::publication::Target>, crate::publication::PublicationError>
    {
        use crate::publication::{dir::Directory, s3::Bucket};
        Ok(match self {
            PublishTarget::Directory(d) => std::sync::Arc::new(Directory::new(d.clone())),
            PublishTarget::S3(b) => std::sync::Arc::new(Bucket::new(b.clone()).await?),
        })
    }
}

/// `server`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// The listen address.
    pub http_addr: String,
    /// (certificate, key) files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The self-signed CA a client must trust, when the server made its own certificate.
    pub generated_ca: Option<PathBuf>,
    /// Serve reads only (a replica): nothing is written or signed.
    pub read_only: bool,
    /// Serve a mirror's copy (`notary-server mirror`, not a config key): clients' writes are
    /// refused and nothing is signed; the mirror's follower writes.
    pub mirror: bool,
    /// What one client, or all together, may cost.
    pub limits: Limits,
}

/// What one client, or all clients together, may cost (none of these are in Go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest publish body.
    pub max_upload_bytes: usize,
    /// Longest a publish body may take to arrive.
    pub upload_timeout: std::time::Duration,
    /// New server keys one client may ask for per minute (0: no limit; not under token auth).
    pub key_creations_per_minute: u32,
    /// Memory all publish bodies being read may hold together.
    pub max_concurrent_upload_bytes: usize,
}

/// `storage`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// `postgres://…` or `sqlite:<path>`.
    pub db_url: String,
    /// How the database is pooled and how long a statement may run.
    pub pool: notary_common::db::PoolConfig,
}

/// `logging`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingSettings {
    /// The level.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

/// `caching`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// `Cache-Control: max-age` of current and of consistent (by checksum or version) reads.
    pub max_age_current: i64,
    /// (See `max_age_current`.)
    pub max_age_consistent: i64,
    /// Files the read cache holds at most.
    pub files: usize,
    /// Repositories whose chains the read cache holds at most.
    pub repositories: usize,
    /// Bytes the read cache holds at most.
    pub bytes: usize,
    /// Re-sign ahead when this close to expiry (zero: never in the background).
    pub resign_before: std::time::Duration,
    /// How often the background re-signer looks for chains to re-sign.
    pub resign_every: std::time::Duration,
    /// See `CachingConfig::read_lease`.
    pub read_lease: bool,
    /// See `CachingConfig::gzip_min_bytes`.
    pub gzip_min_bytes: usize,
}

/// `auth` with `type: token`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuthSettings {
    /// The token service clients are sent to.
    pub realm: String,
    /// The audience tokens must name.
    pub service: String,
    /// The issuer tokens must name.
    pub issuer: String,
    /// The certificates tokens must be signed under.
    pub rootcertbundle: PathBuf,
    /// Answer 401 with the realm on this server's host.
    pub autoredirect: bool,
}

/// Where timestamp and snapshot keys are kept and used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustService {
    /// In-process keys; `persist` keeps them in the metadata database (encrypted at rest).
    Local {
        /// Algorithm of new keys.
        key_algorithm: String,
        /// Keep keys in the metadata database (else in memory).
        persist: bool,
    },
    /// A notary-signer over gRPC with mutual TLS.
    /// Several signers (sharing one key store) give fail-over: `hostname`/`port` first, then
    /// `addresses` (not in Go).
    Remote {
        /// Signers to use, in order (host, port).
        signers: Vec<(String, u16)>,
        /// Algorithm of new keys.
        key_algorithm: String,
        /// The CAs the signers' certificates must chain to.
        ca: Option<PathBuf>,
        /// This server's client certificate.
        client_cert: Option<PathBuf>,
        /// Its key.
        client_key: Option<PathBuf>,
        /// Deadline of each call.
        timeout: std::time::Duration,
    },
}
