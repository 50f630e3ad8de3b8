//! The config file as Go's notary-server reads it (every key optional; unknown keys are
//! reported by `Config::load`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The server's config file, as Go's notary-server reads it (every key optional).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct Config {
    /// `server`: listen address and TLS.
    pub server: ServerConfig,
    /// `trust_service`: where timestamp and snapshot keys are kept and used.
    pub trust_service: TrustServiceConfig,
    /// `storage`: the metadata database.
    pub storage: StorageConfig,
    /// `logging`.
    pub logging: LoggingConfig,
    /// `caching`: client cache headers, this server's read cache and re-signing.
    pub caching: CachingConfig,
    /// `repositories`: which GUNs this server accepts.
    pub repositories: RepositoriesConfig,
    /// `auth`: token authentication.
    pub auth: AuthConfig,
    /// Not in Go: prune old versions in the background (`retention`).
    pub retention: RetentionConfig,
    /// Not in Go: write every repository's metadata as a static tree (`publication`).
    pub publish: PublishConfig,
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
    /// `keep_versions`: newest versions of each role always kept.
    pub keep_versions: Option<u32>,
    /// `keep_days`: versions stored within this many days are kept.
    pub keep_days: Option<u32>,
    /// `interval_seconds`: how often a pass runs.
    pub interval_seconds: Option<u64>,
}

/// `publish`: on when `directory` or `s3.bucket` is given (one of them); one instance at a
/// time follows the changefeed into the tree, checking every `interval_ms` (default 1000).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct PublishConfig {
    /// `directory`: a local folder for a web server to serve.
    pub directory: Option<PathBuf>,
    /// `s3`: an S3-compatible bucket.
    pub s3: S3PublishConfig,
    /// `interval_ms`: how often the changefeed is checked for writes to publish.
    pub interval_ms: Option<u64>,
    /// `gun_prefixes`: publish only repositories whose GUN starts with one of these (a tree
    /// has no access control: keep private repositories out). Empty: all.
    pub gun_prefixes: Vec<String>,
}

/// `publish.s3` (credentials from the AWS chain, never here).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct S3PublishConfig {
    /// `bucket`.
    pub bucket: String,
    /// `endpoint`: an S3-compatible service (path-style URLs), instead of AWS's.
    pub endpoint: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `prefix`: where in the bucket the tree starts (`notary/`).
    pub prefix: String,
}

/// `auth`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct AuthConfig {
    /// `type`: `token`, or nothing.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `options`.
    pub options: AuthOptions,
}

/// `auth.options` of token authentication (docker/distribution's).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct AuthOptions {
    /// `realm`: the token service clients are sent to.
    pub realm: String,
    /// `service`: the audience tokens must name.
    pub service: String,
    /// `issuer`: the issuer tokens must name.
    pub issuer: String,
    /// `rootcertbundle`: the certificates tokens must be signed under.
    pub rootcertbundle: String,
    /// `autoredirect`: answer 401 with the realm on this server's host.
    pub autoredirect: bool,
}

/// `server`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct ServerConfig {
    /// `http_addr`: the listen address (`:4443` listens on every interface).
    pub http_addr: String,
    /// `tls_cert_file`: the HTTPS certificate (plain HTTP without one).
    pub tls_cert_file: Option<PathBuf>,
    /// `tls_key_file`: its key.
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

/// `trust_service`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct TrustServiceConfig {
    /// `type`: `local` or `remote`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `hostname`: the notary-signer (remote).
    pub hostname: Option<String>,
    /// `port`: its port (a number or a string, as Go accepts).
    pub port: Option<Value>,
    /// `key_algorithm`: `ecdsa` or `ed25519` (default, as Go).
    pub key_algorithm: Option<String>,
    /// `tls_ca_file`: the CAs the signer's certificate must chain to.
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_client_cert`: this server's client certificate for the signer.
    pub tls_client_cert: Option<PathBuf>,
    /// `tls_client_key`: its key.
    pub tls_client_key: Option<PathBuf>,
    /// Deadline of each call to a remote signer (not in Go, which waits forever).
    pub timeout_ms: Option<u64>,
    /// More signers, "host:port", tried in order after `hostname`/`port` (not in Go).
    pub addresses: Vec<String>,
}

/// `storage`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct StorageConfig {
    /// `backend`: `postgres`, `sqlite` or `memory` (`mysql` is refused).
    pub backend: String,
    /// `db_url`: the database.
    pub db_url: String,
    /// Connection pool size (not in Go).
    pub max_connections: Option<u32>,
    /// How long start-up retries an unreachable database (not in Go).
    pub connect_retry_seconds: Option<u64>,
    /// Per-statement timeout on Postgres (not in Go).
    pub statement_timeout_ms: Option<u64>,
}

/// `logging`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct LoggingConfig {
    /// `level`: Go's level names.
    pub level: Option<String>,
    /// `text` (default) or `json` (not in Go).
    pub format: Option<String>,
}

/// `caching`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct CachingConfig {
    /// `max_age`: `Cache-Control` max-age of metadata.
    pub max_age: MaxAge,
    /// In-memory cache bounds (not in Go): files by checksum, and repositories' current chains.
    pub max_files: Option<usize>,
    /// `max_repositories`: repositories whose chains the read cache holds.
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

/// `caching.max_age`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct MaxAge {
    /// `current_metadata`: seconds, for current metadata (Go's default 300).
    pub current_metadata: Option<i64>,
    /// `consistent_metadata`: seconds, for metadata by checksum or version (Go's default 31536000).
    pub consistent_metadata: Option<i64>,
}

/// `repositories`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct RepositoriesConfig {
    /// `gun_prefixes`: only GUNs with one of these prefixes are served (all when empty).
    pub gun_prefixes: Vec<String>,
}
