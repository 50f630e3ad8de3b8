//! What the server runs with: the config file resolved (paths, defaults, environment
//! overrides) and checked by `Config::settings`.

use std::path::PathBuf;

/// Everything the server needs, resolved and checked, grouped as the config file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub trust: TrustService,
    pub logging: LoggingSettings,
    pub caching: CacheSettings,
    /// `repositories.gun_prefixes`: the GUNs this server accepts (empty: all).
    pub gun_prefixes: Vec<String>,
    /// Where the local trust service reads its passphrase file, if it needs one.
    pub data_dir: Option<PathBuf>,
    /// Token auth (realm, service, issuer, root bundle), when `auth.type` is `token`.
    pub token_auth: Option<TokenAuthSettings>,
    /// Background retention: the policy and how often a pass runs.
    pub retention: Option<(crate::retention::Policy, std::time::Duration)>,
    /// See [`Config::warnings`].
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub http_addr: String,
    /// (certificate, key) files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The self-signed CA a client must trust, when the server made its own certificate.
    pub generated_ca: Option<PathBuf>,
    pub read_only: bool,
    pub limits: Limits,
}

/// What one client, or all clients together, may cost (none of these are in Go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_upload_bytes: usize,
    pub upload_timeout: std::time::Duration,
    pub key_creations_per_minute: u32,
    pub max_concurrent_upload_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// `postgres://…` or `sqlite:<path>`.
    pub db_url: String,
    pub pool: notary_common::db::PoolConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingSettings {
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// `Cache-Control: max-age` of current and of consistent (by checksum or version) reads.
    pub max_age_current: i64,
    pub max_age_consistent: i64,
    pub files: usize,
    pub repositories: usize,
    pub bytes: usize,
    /// Re-sign ahead when this close to expiry (zero: never in the background).
    pub resign_before: std::time::Duration,
    pub resign_every: std::time::Duration,
    /// See `CachingConfig::read_lease`.
    pub read_lease: bool,
    /// See `CachingConfig::gzip_min_bytes`.
    pub gzip_min_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuthSettings {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub rootcertbundle: PathBuf,
    pub autoredirect: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustService {
    /// In-process keys; `persist` keeps them in the metadata database (encrypted at rest).
    Local {
        key_algorithm: String,
        persist: bool,
    },
    /// A notary-signer over gRPC with mutual TLS.
    /// Several signers (sharing one key store) give fail-over: `hostname`/`port` first, then
    /// `addresses` (not in Go).
    Remote {
        signers: Vec<(String, u16)>,
        key_algorithm: String,
        ca: Option<PathBuf>,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        /// Deadline of each call.
        timeout: std::time::Duration,
    },
}
