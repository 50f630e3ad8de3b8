//! The Go notary-signer JSON configuration (`docs/signer-protocol.md`), with `NOTARY_SIGNER_*`
//! environment overrides for every key. Unlike Go, mutual TLS is mandatory: `server.client_ca_file` is required.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CryptoError;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub logging: LoggingConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct ServerConfig {
    pub grpc_addr: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct StorageConfig {
    pub backend: String,
    pub db_url: String,
    pub default_alias: Option<String>,
    /// RFC 7512 URI of the token, for the `pkcs11` backend.
    pub pkcs11_uri: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct LoggingConfig {
    pub level: Option<String>,
    /// `text` (default) or `json` (not in Go).
    pub format: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_addr: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: PathBuf,
    pub storage: Storage,
    pub log_level: String,
    pub log_format: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Memory,
    Pkcs11(crate::pkcs11::Pkcs11Uri),
    Sql {
        db_url: String,
        default_alias: String,
    },
}

fn invalid(msg: impl Into<String>) -> CryptoError {
    CryptoError::Config(msg.into())
}

impl Config {
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

    pub fn settings(&self, base: &Path) -> Result<Settings, CryptoError> {
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
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
        let storage = match self.storage.backend.as_str() {
            "memory" => Storage::Memory,
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
                    let u = self
                        .storage
                        .db_url
                        .strip_prefix("sqlite:")
                        .unwrap_or(&self.storage.db_url);
                    format!("sqlite:{}", rel(Path::new(u)).display())
                };
                Storage::Sql {
                    db_url,
                    default_alias,
                }
            }
            "" => {
                return Err(invalid(
                    "storage.backend is required (memory, postgres or sqlite)",
                ))
            }
            other => {
                return Err(invalid(format!(
                "storage.backend {other:?} is not supported (memory, postgres, sqlite or pkcs11)"
            )))
            }
        };
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
}
