//! Passphrases for keys encrypted at rest, by alias (Go signer: env `NOTARY_SIGNER_<ALIAS>`).

use std::collections::HashMap;

use zeroize::Zeroizing;

use crate::CryptoError;

/// The passphrases keys are encrypted under, by alias (see the module).
pub struct Passphrases {
    default_alias: String,
    fixed: HashMap<String, Zeroizing<String>>,
    env_prefix: Option<String>,
}

impl Passphrases {
    /// Aliases resolved from the environment: `<prefix><ALIAS upper-cased, '.' → '_'>`.
    pub fn from_env(prefix: &str, default_alias: &str) -> Self {
        Passphrases {
            default_alias: default_alias.to_string(),
            fixed: HashMap::new(),
            env_prefix: Some(prefix.to_string()),
        }
    }

    /// One alias with a known passphrase (the server's local trust service).
    pub fn single(alias: &str, passphrase: Zeroizing<String>) -> Self {
        let mut fixed = HashMap::new();
        fixed.insert(alias.to_string(), passphrase);
        Passphrases {
            default_alias: alias.to_string(),
            fixed,
            env_prefix: None,
        }
    }

    /// No passphrase at all (a store opened to look keys up only).
    pub fn none() -> Self {
        Passphrases {
            default_alias: String::new(),
            fixed: HashMap::new(),
            env_prefix: None,
        }
    }

    /// Another alias with a known passphrase.
    /// Know one more alias's passphrase.
    pub fn add(&mut self, alias: &str, passphrase: Zeroizing<String>) {
        self.fixed.insert(alias.to_string(), passphrase);
    }

    /// The alias new keys are encrypted under.
    pub fn default_alias(&self) -> &str {
        &self.default_alias
    }

    /// The passphrase of `alias`: given, or from the environment (`<prefix><ALIAS>`); `Locked`
    /// naming the variable when there is none.
    pub fn get(&self, alias: &str) -> Result<Zeroizing<String>, CryptoError> {
        if let Some(p) = self.fixed.get(alias) {
            return Ok(p.clone());
        }
        if let Some(prefix) = &self.env_prefix {
            let var = format!("{prefix}{}", alias.to_uppercase().replace('.', "_"));
            if let Ok(v) = std::env::var(&var) {
                if !v.is_empty() {
                    return Ok(Zeroizing::new(v));
                }
            }
        }
        Err(CryptoError::Locked(match &self.env_prefix {
            Some(prefix) => format!(
                "no passphrase for key alias {alias:?}: set {prefix}{}",
                alias.to_uppercase().replace('.', "_")
            ),
            None => format!("no passphrase for key alias {alias:?}"),
        }))
    }
}
