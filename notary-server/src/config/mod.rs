//! Configuration: the Go notary-server JSON format (docs/api.md, configuration), with `NOTARY_SERVER_*`
//! environment overrides, and the embedded default used when no file is given.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod file;
mod settings;

pub use file::{
    AuthConfig, AuthOptions, CachingConfig, Config, LoggingConfig, MaxAge, PublishConfig,
    RepositoriesConfig, RetentionConfig, S3PublishConfig, ServerConfig, StorageConfig,
    TrustServiceConfig,
};
pub use settings::{
    CacheSettings, Limits, LoggingSettings, PublishSettings, PublishTarget, ServerSettings,
    Settings, StorageSettings, TokenAuthSettings, TrustService,
};

/// Why a configuration cannot be used; each names the file, key or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not JSON.
    #[error("config file {0} is not valid JSON: {1}")]
    Json(PathBuf, String),
    /// A key has a value of the wrong type (the message names the key).
    #[error("config file {0}: {1}")]
    Value(PathBuf, String),
    /// An environment override has a value of the wrong type.
    #[error("environment override {vars}: {error}")]
    Env {
        /// The variables set.
        vars: String,
        /// What is wrong, naming the key.
        error: String,
    },
    /// Values that are each well-typed but cannot be used (together).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

const DEFAULT_MAX_UPLOAD: usize = 128 << 20;
const DEFAULT_CACHE_FILES: usize = 20_000;
const DEFAULT_CACHE_REPOSITORIES: usize = 10_000;
const DEFAULT_UPLOAD_TIMEOUT: u64 = 60;
const DEFAULT_CONCURRENT_UPLOAD: usize = 256 << 20;
/// Far above what publishers need (one key pair per new repository), far below filling a disk.
const DEFAULT_KEY_CREATIONS_PER_MINUTE: u32 = 600;
const DEFAULT_CACHE_BYTES: usize = 32 << 20;
/// Timestamps live 14 days: re-sign the last day.
const DEFAULT_RESIGN_BEFORE: u64 = 86_400;
const DEFAULT_RESIGN_EVERY: u64 = 60;

/// Every key of the config file, dotted (`storage.db_url`): each may be overridden by
/// `NOTARY_SERVER_<KEY>` (upper-cased, dots as underscores). Derived from the config types, so
/// a new key gets its variable with it (`every_config_key_has_an_environment_variable`).
pub fn env_keys() -> Vec<String> {
    notary_common::env::keys_of::<Config>()
}

/// Config keys whose values are strings even when they look like numbers.
fn is_string_key(k: &str) -> bool {
    matches!(
        k,
        "http_addr"
            | "db_url"
            | "hostname"
            | "level"
            | "format"
            | "type"
            | "backend"
            | "key_algorithm"
            | "port"
            | "bucket"
            | "prefix"
            | "region"
    )
}

/// Keys Go's notary-server reads that this server does not use: accepted, with a warning.
const GO_KEYS_UNUSED: &[(&str, &str)] = &[
    ("reporting", "error reporting to Bugsnag is not supported"),
    ("server.client_ca_file", "client certificates are not requested: put a TLS-terminating proxy in front to require them"),
    ("storage.database", "rethinkdb only"),
    ("storage.username", "rethinkdb only"),
    ("storage.password", "rethinkdb only"),
    ("storage.tls_ca_file", "rethinkdb only"),
    ("storage.client_cert_file", "rethinkdb only"),
    ("storage.client_key_file", "rethinkdb only"),
];

/// Environment variables with the `NOTARY_SERVER_` prefix that are not config keys.
const OTHER_VARIABLES: &[&str] = &["NOTARY_SERVER_KEY_PASSPHRASE"];

type TypedError = serde_path_to_error::Error<serde_json::Error>;

/// A config value as a `Config`; the error knows the key of the first bad value.
fn typed(v: Value) -> Result<Config, TypedError> {
    serde_path_to_error::deserialize(v)
}

/// `server.read_only: invalid type: …`.
fn describe(e: TypedError) -> String {
    let path = e.path().to_string();
    format!("{path}: {}", e.into_inner())
}

impl Config {
    /// A Go-format config file with its `NOTARY_SERVER_*` overrides. A bad value is blamed on
    /// the file or on the variables, whichever gave it; unknown keys and variables become
    /// [`Config::warnings`].
    pub fn load(path: &Path) -> Result<(Config, PathBuf), ConfigError> {
        let text = std::fs::read(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| ConfigError::Json(path.to_path_buf(), e.to_string()))?;
        if !v.is_object() {
            return Err(ConfigError::Json(
                path.to_path_buf(),
                "top level must be an object".into(),
            ));
        }
        typed(v.clone()).map_err(|e| ConfigError::Value(path.to_path_buf(), describe(e)))?;
        let mut warnings: Vec<String> = Vec::new();
        let mut known = env_keys();
        known.push("caching.fast_reads".into());
        for key in notary_common::env::unknown_keys(&v, &known) {
            let why = GO_KEYS_UNUSED
                .iter()
                .find(|(k, _)| key == *k || key.starts_with(&format!("{k}.")))
                .map_or_else(
                    || "not a key of this server (a typo?): ignored".to_string(),
                    |(_, why)| {
                        format!("a Go notary-server key this server does not use ({why}): ignored")
                    },
                );
            warnings.push(format!("config file {}: {key}: {why}", path.display()));
        }
        let mut cfg = Self::with_environment(v)?;
        cfg.warnings.splice(0..0, warnings);
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((cfg, base))
    }

    /// `v` with the `NOTARY_SERVER_*` overrides applied, unknown such variables warned of.
    fn with_environment(mut v: Value) -> Result<Config, ConfigError> {
        let keys = env_keys();
        let applied = notary_common::env::apply(&mut v, "NOTARY_SERVER_", &keys, is_string_key);
        let mut cfg = typed(v).map_err(|e| ConfigError::Env {
            vars: applied.join(", "),
            error: describe(e),
        })?;
        for var in notary_common::env::unknown_variables("NOTARY_SERVER_", &keys, OTHER_VARIABLES) {
            cfg.warnings.push(format!(
                "environment: {var} overrides no configuration key (a typo?): ignored"
            ));
        }
        Ok(cfg)
    }

    /// Resolve a Go-format config (relative paths against `base`, the config file's folder).
    pub fn settings(
        &self,
        base: &Path,
        data_dir: Option<PathBuf>,
    ) -> Result<Settings, ConfigError> {
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        Ok(Settings {
            server: self.server_settings(&rel)?,
            storage: self.storage_settings(&rel)?,
            trust: self.trust_settings(&rel)?,
            logging: self.logging_settings()?,
            caching: self.cache_settings()?,
            gun_prefixes: self.gun_prefixes()?,
            data_dir,
            token_auth: self.auth_settings(&rel)?,
            retention: self.retention_settings()?,
            publish: self.publish_settings(&rel)?,
            warnings: self.warnings.clone(),
        })
    }

    fn publish_settings(
        &self,
        rel: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Option<PublishSettings>, ConfigError> {
        let p = &self.publish;
        let target = match (&p.directory, p.s3.bucket.is_empty()) {
            (None, true) => return Ok(None),
            (Some(_), false) => {
                return Err(invalid(
                    "publish: give directory or s3.bucket, not both (run a second server, or `notary-server export`, for a second tree)",
                ))
            }
            (Some(d), true) => PublishTarget::Directory(rel(d)),
            (None, false) => PublishTarget::S3(crate::publication::s3::BucketConfig {
                bucket: p.s3.bucket.clone(),
                endpoint: p.s3.endpoint.clone().filter(|e| !e.is_empty()),
                region: p.s3.region.clone().filter(|r| !r.is_empty()),
                prefix: p.s3.prefix.clone(),
            }),
        };
        let every = p.interval_ms.unwrap_or(1000);
        if every == 0 {
            return Err(invalid("publish.interval_ms must be at least 1"));
        }
        Ok(Some(PublishSettings {
            target,
            gun_prefixes: p.gun_prefixes.clone(),
            interval: std::time::Duration::from_millis(every),
        }))
    }

    fn retention_settings(
        &self,
    ) -> Result<Option<(crate::retention::Policy, std::time::Duration)>, ConfigError> {
        let r = &self.retention;
        if r.keep_versions.is_none() && r.keep_days.is_none() {
            return Ok(None);
        }
        let every = r.interval_seconds.unwrap_or(3600);
        if every == 0 {
            return Err(invalid("retention.interval_seconds must be at least 1"));
        }
        Ok(Some((
            crate::retention::Policy {
                keep_versions: r.keep_versions.unwrap_or(10).max(1),
                keep_days: r.keep_days.unwrap_or(30),
            },
            std::time::Duration::from_secs(every),
        )))
    }

    fn server_settings(
        &self,
        rel: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<ServerSettings, ConfigError> {
        let s = &self.server;
        if s.http_addr.is_empty() {
            return Err(invalid("server.http_addr is required (e.g. \":4443\")"));
        }
        let tls = match (&s.tls_cert_file, &s.tls_key_file) {
            (Some(c), Some(k)) => Some((rel(c), rel(k))),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "server.tls_cert_file and server.tls_key_file must be given together",
                ))
            }
        };
        let secs = std::time::Duration::from_secs;
        Ok(ServerSettings {
            http_addr: normalize_addr(&s.http_addr),
            tls,
            generated_ca: None,
            read_only: s.read_only,
            mirror: false,
            limits: Limits {
                max_upload_bytes: s.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD),
                upload_timeout: secs(
                    s.upload_timeout_seconds
                        .unwrap_or(DEFAULT_UPLOAD_TIMEOUT)
                        .max(1),
                ),
                key_creations_per_minute: s
                    .key_creations_per_minute
                    .unwrap_or(DEFAULT_KEY_CREATIONS_PER_MINUTE),
                max_concurrent_upload_bytes: s
                    .max_concurrent_upload_bytes
                    .unwrap_or(DEFAULT_CONCURRENT_UPLOAD)
                    .max(1 << 20),
            },
        })
    }

    fn storage_settings(
        &self,
        rel: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<StorageSettings, ConfigError> {
        let st = &self.storage;
        let db_url = match st.backend.as_str() {
            "postgres" if st.db_url.is_empty() => {
                return Err(invalid("storage.db_url is required for the postgres backend"))
            }
            "postgres" => st.db_url.clone(),
            "sqlite" | "sqlite3" if st.db_url.is_empty() => {
                return Err(invalid("storage.db_url (a file path) is required for the sqlite backend"))
            }
            "sqlite" | "sqlite3" => {
                let u = st.db_url.strip_prefix("sqlite:").unwrap_or(&st.db_url);
                format!("sqlite:{}", rel(Path::new(u)).display())
            }
            "memory" => "sqlite:file:notary-memory?mode=memory&cache=shared".to_string(),
            "mysql" | "rethinkdb" => {
                return Err(invalid(format!(
                    "storage.backend {:?} is not supported; use postgres or sqlite",
                    st.backend
                )))
            }
            "" => return Err(invalid("storage.backend is required (postgres, sqlite or memory)")),
            other => {
                return Err(invalid(format!(
                    "unknown storage.backend {other:?}: expected postgres, sqlite (or sqlite3) or memory"
                )))
            }
        };
        let d = notary_common::db::PoolConfig::default();
        let pool = notary_common::db::PoolConfig {
            max_connections: st.max_connections.unwrap_or(d.max_connections).max(1),
            connect_retry: st
                .connect_retry_seconds
                .map(std::time::Duration::from_secs)
                .unwrap_or(d.connect_retry),
            statement_timeout: st
                .statement_timeout_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(d.statement_timeout),
            writes: !self.server.read_only,
        };
        Ok(StorageSettings { db_url, pool })
    }

    fn trust_settings(&self, rel: &dyn Fn(&Path) -> PathBuf) -> Result<TrustService, ConfigError> {
        let t = &self.trust_service;
        // Go's local trust service always makes ed25519 keys; a remote one needs the setting.
        let key_algorithm = t.key_algorithm.clone().unwrap_or_else(|| "ed25519".into());
        if !matches!(key_algorithm.as_str(), "ed25519" | "ecdsa") {
            return Err(invalid(format!(
                "trust_service.key_algorithm {key_algorithm:?} is not supported (ecdsa or ed25519)"
            )));
        }
        match t.kind.as_str() {
            "local" => Ok(TrustService::Local {
                key_algorithm,
                persist: self.storage.backend != "memory",
            }),
            "remote" => {
                let (client_cert, client_key) = match (&t.tls_client_cert, &t.tls_client_key) {
                    (Some(c), Some(k)) => (Some(rel(c)), Some(rel(k))),
                    (None, None) => (None, None),
                    _ => return Err(invalid(
                        "trust_service.tls_client_cert and tls_client_key must be given together",
                    )),
                };
                Ok(TrustService::Remote {
                    signers: self.signers()?,
                    key_algorithm,
                    ca: t.tls_ca_file.as_deref().map(rel),
                    client_cert,
                    client_key,
                    timeout: std::time::Duration::from_millis(
                        t.timeout_ms.unwrap_or(10_000).max(100),
                    ),
                })
            }
            "" => Err(invalid("trust_service.type is required (local or remote)")),
            other => Err(invalid(format!("unknown trust_service.type {other:?}"))),
        }
    }

    /// The remote signers: `hostname`/`port` first, then `addresses`.
    fn signers(&self) -> Result<Vec<(String, u16)>, ConfigError> {
        let t = &self.trust_service;
        let mut signers = Vec::new();
        if let Some(h) = t.hostname.clone().filter(|h| !h.is_empty()) {
            let port = match &t.port {
                Some(Value::String(p)) => p.parse::<u16>().ok(),
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                _ => None,
            }
            .ok_or_else(|| invalid("trust_service.port must be a port number (e.g. \"7899\")"))?;
            signers.push((h, port));
        }
        for a in &t.addresses {
            let parsed = a.rsplit_once(':').and_then(|(h, p)| {
                Some((
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse::<u16>().ok()?,
                ))
            });
            match parsed {
                Some((h, p)) if !h.is_empty() => signers.push((h, p)),
                _ => {
                    return Err(invalid(format!(
                        "trust_service.addresses: {a:?} is not host:port"
                    )))
                }
            }
        }
        if signers.is_empty() {
            return Err(invalid(
                "trust_service.hostname (or addresses) is required for a remote signer",
            ));
        }
        Ok(signers)
    }

    fn logging_settings(&self) -> Result<LoggingSettings, ConfigError> {
        // Go's levels (logrus) too: fatal and panic log errors only here.
        let level = match self.logging.level.as_deref().map(str::to_ascii_lowercase) {
            None => "info".to_string(),
            Some(l) => match l.as_str() {
                "trace" | "debug" | "info" | "warn" | "error" => l,
                "warning" => "warn".into(),
                "fatal" | "panic" => "error".into(),
                other => {
                    return Err(invalid(format!(
                        "logging.level {other:?}: expected debug, info, warn or error (or Go's warning, fatal, panic)"
                    )))
                }
            },
        };
        let format = match self.logging.format.as_deref() {
            None | Some("text") => "text",
            Some("json") => "json",
            Some(other) => {
                return Err(invalid(format!(
                    "logging.format {other:?}: expected \"text\" or \"json\""
                )))
            }
        };
        Ok(LoggingSettings {
            level,
            format: format.into(),
        })
    }

    fn cache_settings(&self) -> Result<CacheSettings, ConfigError> {
        let c = &self.caching;
        let max_age = |v: Option<i64>, default: i64, name: &str| -> Result<i64, ConfigError> {
            let v = v.unwrap_or(default);
            if !(0..=31_536_000).contains(&v) {
                return Err(invalid(format!(
                    "caching.max_age.{name} must be between 0 and 31536000"
                )));
            }
            Ok(v)
        };
        let secs = std::time::Duration::from_secs;
        Ok(CacheSettings {
            max_age_current: max_age(c.max_age.current_metadata, 300, "current_metadata")?,
            max_age_consistent: max_age(
                c.max_age.consistent_metadata,
                2_592_000,
                "consistent_metadata",
            )?,
            files: c.max_files.unwrap_or(DEFAULT_CACHE_FILES),
            repositories: c.max_repositories.unwrap_or(DEFAULT_CACHE_REPOSITORIES),
            bytes: c.max_bytes.unwrap_or(DEFAULT_CACHE_BYTES),
            resign_before: secs(
                c.resign_before_expiry_seconds
                    .unwrap_or(DEFAULT_RESIGN_BEFORE),
            ),
            resign_every: secs(
                c.resign_check_seconds
                    .unwrap_or(DEFAULT_RESIGN_EVERY)
                    .max(1),
            ),
            read_lease: c.read_lease.unwrap_or(true),
            gzip_min_bytes: c
                .gzip_min_bytes
                .unwrap_or(crate::compression::DEFAULT_MIN_BYTES),
        })
    }

    fn gun_prefixes(&self) -> Result<Vec<String>, ConfigError> {
        for p in &self.repositories.gun_prefixes {
            if !p.ends_with('/') || p.starts_with('/') || p.starts_with("..") || p.contains("//") {
                return Err(invalid(format!(
                    "invalid GUN prefix {p:?}: must end with '/', not start with '/' or '..'"
                )));
            }
        }
        Ok(self.repositories.gun_prefixes.clone())
    }

    fn auth_settings(
        &self,
        rel: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Option<TokenAuthSettings>, ConfigError> {
        // As in Go, only "token" enables auth; any other value means none.
        if self.auth.kind.as_deref() != Some("token") {
            return Ok(None);
        }
        let o = &self.auth.options;
        if o.rootcertbundle.is_empty() {
            return Err(invalid(
                "auth.options.rootcertbundle is required for token auth",
            ));
        }
        Ok(Some(TokenAuthSettings {
            realm: o.realm.clone(),
            service: o.service.clone(),
            issuer: o.issuer.clone(),
            rootcertbundle: rel(Path::new(&o.rootcertbundle)),
            autoredirect: o.autoredirect,
        }))
    }

    /// The embedded default (no config file): SQLite in `data_dir`, local keys, a certificate
    /// the server makes itself (set by the caller). Every other value is the config file's
    /// default. Keys are ECDSA P-256 here rather than Go's local ed25519: the embedded server is
    /// ours alone, and P-256 is the algorithm every Notary and Docker client has always used
    /// for the server's keys (the Go deployment examples configure it).
    pub fn embedded(data_dir: &Path, http_addr: &str) -> Result<Config, ConfigError> {
        let base = Config {
            server: ServerConfig {
                http_addr: http_addr.into(),
                ..Default::default()
            },
            trust_service: TrustServiceConfig {
                kind: "local".into(),
                key_algorithm: Some("ecdsa".into()),
                ..Default::default()
            },
            storage: StorageConfig {
                backend: "sqlite".into(),
                db_url: data_dir.join("notary.db").display().to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        // The environment overrides it as it would a file (serialising the config types
        // cannot fail: `every_config_key_has_an_environment_variable`).
        Self::with_environment(serde_json::to_value(base).unwrap_or_default())
    }
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Go accepts `:4443`; bind all interfaces then.
fn normalize_addr(a: &str) -> String {
    if a.starts_with(':') {
        format!("0.0.0.0{a}")
    } else {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_key_has_an_environment_variable() {
        let keys = env_keys();
        for k in [
            "server.http_addr",
            "server.read_only",
            "server.key_creations_per_minute",
            "trust_service.addresses",
            "caching.read_lease",
            "caching.max_age.current_metadata",
            "logging.format",
            "repositories.gun_prefixes",
            "auth.options.realm",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        // Typed values from the environment: booleans, numbers, lists; strings stay strings.
        let mut v = serde_json::json!({"server": {"http_addr": ":4443"}});
        let vars = [
            ("NOTARYRS_KEYTEST_SERVER_READ_ONLY", "true"),
            (
                "NOTARYRS_KEYTEST_TRUST_SERVICE_ADDRESSES",
                r#"["a:1","b:2"]"#,
            ),
            ("NOTARYRS_KEYTEST_STORAGE_MAX_CONNECTIONS", "7"),
            ("NOTARYRS_KEYTEST_LOGGING_FORMAT", "json"),
            ("NOTARYRS_KEYTEST_TRUST_SERVICE_PORT", "7899"),
        ];
        for (k, val) in vars {
            std::env::set_var(k, val);
        }
        notary_common::env::apply(&mut v, "NOTARYRS_KEYTEST_", &keys, is_string_key);
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        let c: Config = serde_json::from_value(v).unwrap();
        assert!(c.server.read_only);
        assert_eq!(
            c.trust_service.addresses,
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(c.storage.max_connections, Some(7));
        assert_eq!(c.logging.format.as_deref(), Some("json"));
        assert_eq!(
            c.trust_service.port,
            Some(serde_json::json!("7899")),
            "a port stays a string"
        );
    }

    #[test]
    fn the_embedded_default_is_the_config_files_defaults() {
        let dir = Path::new("/srv/notary");
        let s = Config::embedded(dir, "127.0.0.1:4443")
            .unwrap()
            .settings(Path::new("/"), Some(dir.into()))
            .unwrap();
        let json = load(
            r#"{"server":{"http_addr":"127.0.0.1:4443"},"trust_service":{"type":"local","key_algorithm":"ecdsa"},
            "storage":{"backend":"sqlite","db_url":"/srv/notary/notary.db"}}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            Settings {
                data_dir: Some(dir.into()),
                ..json
            }
        );
        assert_eq!(s.storage.db_url, "sqlite:/srv/notary/notary.db");
        assert!(matches!(s.trust, TrustService::Local { persist: true, .. }));
    }

    fn load(json: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.json");
        std::fs::write(&p, json).unwrap();
        let (c, base) = Config::load(&p)?;
        c.settings(&base, None)
    }

    #[test]
    fn go_config_is_understood() {
        let s = load(
            r#"{"server":{"http_addr":":4443","tls_cert_file":"./tls.crt","tls_key_file":"./tls.key"},
            "trust_service":{"type":"local","hostname":"","port":"","key_algorithm":"ecdsa"},
            "storage":{"backend":"sqlite3","db_url":"data/notary.db"},"logging":{"level":"debug"},
            "caching":{"max_age":{"current_metadata":0}}}"#,
        )
        .unwrap();
        assert_eq!(s.server.http_addr, "0.0.0.0:4443");
        let tls = s.server.tls.as_ref().unwrap();
        assert!(
            tls.0.ends_with("tls.crt") && tls.0.is_absolute() == s.storage.db_url.contains("/tmp")
        );
        let db = &s.storage.db_url;
        assert!(db.starts_with("sqlite:") && db.ends_with("data/notary.db"));
        assert_eq!(s.caching.max_age_current, 0);
        assert_eq!(s.caching.max_age_consistent, 2_592_000);
        assert_eq!(s.logging.level, "debug");
    }

    #[test]
    fn bad_configs_have_clear_errors() {
        let remote = |extra: &str| {
            load(&format!(
                r#"{{"server":{{"http_addr":":1"}},"trust_service":{{"type":"remote","tls_ca_file":"ca.pem"{extra}}},"storage":{{"backend":"memory"}}}}"#
            ))
        };
        assert!(remote("")
            .unwrap_err()
            .to_string()
            .contains("trust_service.hostname (or addresses) is required"));
        assert!(remote(r#","addresses":["signer-b"]"#)
            .unwrap_err()
            .to_string()
            .contains(r#""signer-b" is not host:port"#));
        match remote(r#","hostname":"a","port":"7899","addresses":["b:7900","[::1]:7901"]"#)
            .unwrap()
            .trust
        {
            TrustService::Remote { signers, .. } => {
                assert_eq!(
                    signers,
                    vec![("a".into(), 7899), ("b".into(), 7900), ("::1".into(), 7901)]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(load("{nope")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        assert!(load(
            r#"{"server":{},"trust_service":{"type":"local"},"storage":{"backend":"memory"}}"#
        )
        .unwrap_err()
        .to_string()
        .contains("http_addr"));
        assert!(load(r#"{"server":{"http_addr":":1"},"trust_service":{"type":"bogus"},"storage":{"backend":"memory"}}"#)
            .unwrap_err()
            .to_string()
            .contains("trust_service.type"));
        assert!(load(r#"{"server":{"http_addr":":1"},"trust_service":{"type":"local"},"storage":{"backend":"mysql","db_url":"x"}}"#)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(load(
            r#"{"server":{"http_addr":":1","tls_cert_file":"a"},"trust_service":{"type":"local"},"storage":{"backend":"memory"}}"#
        )
        .unwrap_err()
        .to_string()
        .contains("together"));
        assert!(load(r#"{"server":{"http_addr":":1"},"trust_service":{"type":"local"},"storage":{"backend":"memory"},"caching":{"max_age":{"current_metadata":-1}}}"#).is_err());
    }
}
