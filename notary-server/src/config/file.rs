//! The config file as Go's notary-server reads it (every key optional; unknown keys are
//! reported by `Config::load`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub trust_service: TrustServiceConfig,
    pub storage: StorageConfig,
    pub logging: LoggingConfig,
    pub caching: CachingConfig,
    pub repositories: RepositoriesConfig,
    pub auth: AuthConfig,
    /// Not in Go: prune old versions in the background (`retention`).
    pub retention: RetentionConfig,
    /// What loading noticed and the operator should see (unknown keys and variables), logged
    /// once logging is set up.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `retention`: on when `keep_versions` or `keep_days` is given; one instance at a time runs a
/// pass every `interval_seconds` (default 3600), as `notary-server prune` would.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct RetentionConfig {
    pub keep_versions: Option<u32>,
    pub keep_days: Option<u32>,
    pub interval_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct AuthConfig {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub options: AuthOptions,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct AuthOptions {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub rootcertbundle: String,
    pub autoredirect: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct ServerConfig {
    pub http_addr: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Largest accepted upload (not in Go, which has no limit).
    pub max_upload_bytes: Option<usize>,
    /// Longest a publish body may take to arrive (not in Go, which waits forever).
    pub upload_timeout_seconds: Option<u64>,
    /// New timestamp/snapshot keys one client address may have created per minute, without
    /// token auth (0: no limit) — not in Go.
    pub key_creations_per_minute: Option<u32>,
    /// Bytes of publish bodies held at once across requests (default 256 MiB) — not in Go.
    pub max_concurrent_upload_bytes: Option<usize>,
    /// Serve reads only, e.g. from a streaming replica (not in Go): publishes, deletions and
    /// key creation are refused (405 UNSUPPORTED), nothing is written or migrated.
    pub read_only: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct TrustServiceConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub hostname: Option<String>,
    pub port: Option<Value>,
    pub key_algorithm: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    /// Deadline of each call to a remote signer (not in Go, which waits forever).
    pub timeout_ms: Option<u64>,
    /// More signers, "host:port", tried in order after `hostname`/`port` (not in Go).
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct StorageConfig {
    pub backend: String,
    pub db_url: String,
    /// Connection pool size (not in Go).
    pub max_connections: Option<u32>,
    /// How long start-up retries an unreachable database (not in Go).
    pub connect_retry_seconds: Option<u64>,
    /// Per-statement timeout on Postgres (not in Go).
    pub statement_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct LoggingConfig {
    pub level: Option<String>,
    /// `text` (default) or `json` (not in Go).
    pub format: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct CachingConfig {
    pub max_age: MaxAge,
    /// In-memory cache bounds (not in Go): files by checksum, and repositories' current chains.
    pub max_files: Option<usize>,
    pub max_repositories: Option<usize>,
    /// Most bytes of metadata the cache holds (files and chains together).
    pub max_bytes: Option<usize>,
    /// Background re-signing (not in Go): cached repositories whose timestamp or snapshot
    /// expires within this many seconds are re-signed ahead of time (0: only on read, as Go).
    pub resign_before_expiry_seconds: Option<u64>,
    /// How often to look for such repositories.
    pub resign_check_seconds: Option<u64>,
    /// Postgres (not in Go): serve current metadata from the cache with no database round trip
    /// while this instance holds a read lease, every write being announced to and acknowledged
    /// by the instances that hold one (default true; `coherence`). Turn off when servers that
    /// do not announce their writes (the Go notary-server) write to the same database meanwhile.
    /// (`fast_reads` is this key's earlier name, still read.)
    #[serde(alias = "fast_reads")]
    pub read_lease: Option<bool>,
    /// Not in Go: files at least this large keep a gzip copy for clients that accept it
    /// (`compression`; default 8192, 0 = never).
    pub gzip_min_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct MaxAge {
    pub current_metadata: Option<i64>,
    pub consistent_metadata: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct RepositoriesConfig {
    pub gun_prefixes: Vec<String>,
}
