//! The Go notary-signer JSON configuration (`docs/signer-protocol.md`), with `NOTARY_SIGNER_*`
//! environment overrides for every key. Unlike Go, mutual TLS is mandatory: `server.client_ca_file` is required.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CryptoError;
use serde_json::Value;

/// The config file, as Go's notary-signer reads it.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct Config {
    /// `server`: where and how the gRPC service listens.
    pub server: ServerConfig,
    /// `storage`: where the keys are.
    pub storage: StorageConfig,
    /// `logging`.
    pub logging: LoggingConfig,
}

/// `server`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct ServerConfig {
    /// `grpc_addr`: the listen address (`:7899` listens on every interface).
    pub grpc_addr: String,
    /// `tls_cert_file`: the service's certificate.
    pub tls_cert_file: Option<PathBuf>,
    /// `tls_key_file`: its key.
    pub tls_key_file: Option<PathBuf>,
    /// `client_ca_file`: the CAs client certificates must chain to (required here).
    pub client_ca_file: Option<PathBuf>,
}

/// `storage`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct StorageConfig {
    /// `backend`: `memory`, `postgres`, `sqlite` (`mysql` is refused) or `pkcs11`.
    pub backend: String,
    /// `db_url`: the database of the SQL backends.
    pub db_url: String,
    /// `default_alias`: the passphrase alias new keys are encrypted under.
    pub default_alias: Option<String>,
    /// RFC 7512 URI of the token, for the `pkcs11` backend.
    pub pkcs11_uri: Option<String>,
    /// The AWS region, for the `awskms` backend (default: the AWS chain's, e.g. `AWS_REGION`).
    pub region: Option<String>,
    /// A KMS-compatible endpoint instead of AWS's, for the `awskms` backend.
    pub endpoint: Option<String>,
    /// For the `awskms` backend while keys move there: the `db_url` (`postgres://…` or
    /// `sqlite:…`) of the SQL key store whose keys still sign until each repository's rotation
    /// (passphrases as for that store; `docs/key-storage.md`).
    pub migrate_from: Option<String>,
}

/// `logging`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct LoggingConfig {
    /// `level`: Go's names (`debug`, `info`, `warn`, `error`, …).
    pub level: Option<String>,
    /// `text` (default) or `json` (not in Go).
    pub format: Option<String>,
}

/// What the signer runs with: the config resolved (paths against the file's folder) and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The listen address.
    pub grpc_addr: String,
    /// The service's certificate.
    pub tls_cert: PathBuf,
    /// Its key.
    pub tls_key: PathBuf,
    /// The CAs client certificates must chain to.
    pub client_ca: PathBuf,
    /// The key store.
    pub storage: Storage,
    /// The log level.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: String,
}

/// The key store the signer keeps its keys in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory: lost at exit (tests, trials).
    Memory,
    /// A PKCS#11 token.
    Pkcs11(crate::pkcs11::Pkcs11Uri),
    /// AWS KMS (credentials from the AWS chain).
    AwsKms {
        /// Where KMS is.
        kms: crate::kms::KmsConfig,
        /// The SQL key store keys are moving from (`crate::migrating`).
        migrate_from: Option<SqlStorage>,
    },
    /// Go's `private_keys` table, keys encrypted under alias passphrases.
    Sql(SqlStorage),
}

/// A SQL key store: Go's `private_keys` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlStorage {
    /// The database.
    pub db_url: String,
    /// The alias new keys are encrypted under (empty for a store keys only move from).
    pub default_alias: String,
}

/// A SQL store's URL: Postgres as it is; SQLite (`sqlite:PATH`) with its path resolved against
/// `base`.
fn sql_url(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite:") {
        Some(path) => format!("sqlite:{}", base.join(path).display()),
        None => url.to_string(),
    }
}

fn invalid(msg: impl Into<String>) -> CryptoError {
    CryptoError::Config(msg.into())
}

impl Config {
    /// Read a config file with its environment overrides; also the folder its relative paths
    /// are resolved against.
    pub fn load(path: &Path) -> Result<(Config, PathBuf), CryptoError> {
        let text = std::fs::read(path)
            .map_err(|e| invalid(format!("cannot read config file {}: {e}", path.display())))?;
        let mut v: Value = serde_json::from_slice(&text).map_err(|e| {
            invalid(format!(
                "config file {} is not valid JSON: {e}",
                path.display()
            ))
        })?;
        let keys = notary_common::env::keys_of::<Config>();
        notary_common::env::apply(&mut v, "NOTARY_SIGNER_", &keys, |_| true);
        let cfg: Config = serde_json::from_value(v)
            .map_err(|e| invalid(format!("config file {}: {e}", path.display())))?;
        Ok((
            cfg,
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
        ))
    }

    /// The key store the config names (paths relative to `base`).
    pub fn storage(&self, base: &Path) -> Result<Storage, CryptoError> {
        Ok(match self.storage.backend.as_str() {
            "memory" => Storage::Memory,
            "awskms" => Storage::AwsKms {
                kms: crate::kms::KmsConfig {
                    region: self.storage.region.clone().filter(|r| !r.is_empty()),
                    endpoint: self.storage.endpoint.clone().filter(|e| !e.is_empty()),
                },
                migrate_from: match self.storage.migrate_from.as_deref() {
                    None | Some("") => None,
                    Some(url) => Some(SqlStorage {
                        db_url: sql_url(url, base),
                        default_alias: String::new(),
                    }),
                },
            },
            "pkcs11" => {
                let uri = self.storage.pkcs11_uri.as_deref().ok_or_else(|| {
                    invalid("storage.pkcs11_uri is required for the pkcs11 backend")
                })?;
                Storage::Pkcs11(crate::pkcs11::Pkcs11Uri::parse(uri).map_err(|e| match e {
                    CryptoError::Config(m) => invalid(format!("storage.pkcs11_uri: {m}")),
                    other => other,
                })?)
            }
            "postgres" | "sqlite" | "sqlite3" => {
                if self.storage.db_url.is_empty() {
                    return Err(invalid("storage.db_url is required"));
                }
                let default_alias = self
                    .storage
                    .default_alias
                    .clone()
                    .or_else(|| std::env::var("NOTARY_SIGNER_DEFAULT_ALIAS").ok())
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        invalid("storage.default_alias (or NOTARY_SIGNER_DEFAULT_ALIAS) is required for a database key store")
                    })?;
                let db_url = if self.storage.backend == "postgres" {
                    self.storage.db_url.clone()
                } else {
                    sql_url(
                        &format!(
                            "sqlite:{}",
                            self.storage
                                .db_url
                                .strip_prefix("sqlite:")
                                .unwrap_or(&self.storage.db_url)
                        ),
                        base,
                    )
                };
                Storage::Sql(SqlStorage {
                    db_url,
                    default_alias,
                })
            }
            "" => {
                return Err(invalid(
                    "storage.backend is required (memory, postgres or sqlite)",
                ))
            }
            other => {
                return Err(invalid(format!(
                "storage.backend {other:?} is not supported (memory, postgres, sqlite, pkcs11 or awskms)"
            )))
            }
        })
    }

    /// Resolve and check the config (paths relative to `base`).
    pub fn settings(&self, base: &Path) -> Result<Settings, CryptoError> {
        let rel = |p: &Path| base.join(p);
        let s = &self.server;
        if s.grpc_addr.is_empty() {
            return Err(invalid("server.grpc_addr is required (e.g. \":7899\")"));
        }
        let (Some(cert), Some(key)) = (&s.tls_cert_file, &s.tls_key_file) else {
            return Err(invalid("server.tls_cert_file and server.tls_key_file are required: the signer only speaks TLS"));
        };
        let Some(ca) = &s.client_ca_file else {
            return Err(invalid("server.client_ca_file is required: the signer only accepts clients with a certificate from that CA"));
        };
        let storage = self.storage(base)?;
        let addr = if s.grpc_addr.starts_with(':') {
            format!("0.0.0.0{}", s.grpc_addr)
        } else {
            s.grpc_addr.clone()
        };
        Ok(Settings {
            grpc_addr: addr,
            tls_cert: rel(cert),
            tls_key: rel(key),
            client_ca: rel(ca),
            storage,
            log_level: self.logging.level.clone().unwrap_or_else(|| "info".into()),
            log_format: self.logging.format.clone().unwrap_or_else(|| "text".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_key_has_an_environment_variable() {
        let keys = notary_common::env::keys_of::<Config>();
        for k in [
            "server.grpc_addr",
            "server.client_ca_file",
            "storage.default_alias",
            "storage.pkcs11_uri",
            "storage.migrate_from",
            "logging.format",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn mutual_tls_is_required() {
        let cfg: Config =
            serde_json::from_value(serde_json::json!({"server": {"grpc_addr": ":7899", "tls_cert_file": "c", "tls_key_file": "k"},
            "storage": {"backend": "memory"}}))
            .unwrap();
        assert!(cfg
            .settings(Path::new("/"))
            .unwrap_err()
            .to_string()
            .contains("client_ca_file is required"));
    }

    #[test]
    fn keys_move_to_kms_from_a_sql_store_resolved_as_the_backend_would_be() {
        let storage = |migrate_from: &str| {
            let cfg: Config = serde_json::from_value(serde_json::json!({
                "storage": {"backend": "awskms", "region": "eu-west-1", "migrate_from": migrate_from}}))
            .unwrap();
            cfg.storage(Path::new("/etc/notary")).unwrap()
        };
        let Storage::AwsKms { kms, migrate_from } = storage("sqlite:keys.db") else {
            panic!("not awskms")
        };
        assert_eq!(kms.region.as_deref(), Some("eu-west-1"));
        assert_eq!(migrate_from.unwrap().db_url, "sqlite:/etc/notary/keys.db");
        let Storage::AwsKms { migrate_from, .. } = storage("postgres://signer@db/keys") else {
            panic!("not awskms")
        };
        assert_eq!(migrate_from.unwrap().db_url, "postgres://signer@db/keys");
        let Storage::AwsKms { migrate_from, .. } = storage("") else {
            panic!("not awskms")
        };
        assert_eq!(migrate_from, None);
    }
}
