//! Token authentication as the Go server does it (docker/distribution "token" access
//! controller, docs/api.md): Bearer JWTs signed by a key whose certificate chains to
//! `rootcertbundle` (x5c) or is named by its libtrust key ID (kid); issuer, audience, expiry and
//! not-before checked (60 s leeway); the token's `access` must cover every action the route needs.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use der::{Decode, Encode};
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls::pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::errors::{ApiError, Code};

/// One required permission: `type:name:action` (e.g. `repository:docker.io/x:pull`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `repository`, or `registry` for the catalog.
    pub typ: &'static str,
    /// The GUN, or `catalog`.
    pub name: String,
    /// `pull`, `push` or `*`.
    pub action: &'static str,
}

impl Access {
    /// What a repository route needs: one of `actions` on `gun`.
    pub fn repo(gun: &str, actions: &[&'static str]) -> Vec<Access> {
        actions
            .iter()
            .map(|a| Access {
                typ: "repository",
                name: gun.to_string(),
                action: a,
            })
            .collect()
    }
    /// What the catalog routes (ping, changefeed of every GUN) need.
    pub fn catalog() -> Vec<Access> {
        vec![Access {
            typ: "registry",
            name: "catalog".into(),
            action: "*",
        }]
    }
}

#[derive(Debug, Deserialize)]
struct ResourceActions {
    #[serde(rename = "type", default)]
    typ: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    access: Vec<ResourceActions>,
    /// Who the token was issued to (recorded in the audit trail).
    #[serde(default)]
    sub: Option<String>,
}

struct Key {
    der: DecodingKey,
    ec: bool,
}

/// Token authentication as docker/distribution does it: bearer JWTs signed under `rootcertbundle`.
pub struct TokenAuth {
    realm: String,
    /// Go's `autoredirect`: advertise `https://<Host header>/auth/token` as the realm.
    autoredirect: bool,
    service: String,
    issuer: String,
    roots: Vec<CertificateDer<'static>>,
    /// libtrust key ID → key, for tokens that name their key with `kid`.
    by_kid: HashMap<String, Key>,
}

/// Why a bearer token was refused (sent back as the challenge's `error_description`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenRejected {
    /// Not a JWT.
    #[error("malformed token: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    /// The `x5c` chain cannot be read.
    #[error("x5c: {0}")]
    X5c(String),
    /// The chain does not lead to `rootcertbundle`.
    #[error("x5c chain does not verify against rootcertbundle: {0}")]
    Untrusted(String),
    /// The leaf's key is neither ECDSA nor RSA.
    #[error("x5c leaf key type not supported")]
    UnsupportedKey,
    /// A `kid` no bundle key has.
    #[error("unknown kid {0}")]
    UnknownKid(String),
    /// Neither `x5c` nor `kid`.
    #[error("token names no signing key (x5c or kid)")]
    NoKey,
    /// An algorithm that does not fit the key.
    #[error("algorithm {0:?} does not fit the key")]
    Algorithm(Algorithm),
    /// The signature, expiry, issuer or audience does not hold.
    #[error("token rejected: {0}")]
    Rejected(jsonwebtoken::errors::Error),
}

/// Token authentication that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A required option is missing.
    #[error("auth.options.{0} is required for token auth")]
    Missing(&'static str),
    /// The root certificate bundle cannot be read.
    #[error("auth.options.rootcertbundle {0}: {1}")]
    Bundle(String, String),
}

/// EKU policy for token-signing certificates: none required (issuers use various ones).
struct AnyEku;
impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, _iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// The key of a DER certificate, as jsonwebtoken wants it (EC: SEC1 point; RSA: PKCS#1).
fn cert_key(der: &[u8]) -> Option<(Key, Vec<u8>)> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let raw = spki.subject_public_key.raw_bytes();
    let spki_der = spki.to_der().ok()?;
    let key = match spki.algorithm.oid.to_string().as_str() {
        "1.2.840.10045.2.1" => Key {
            der: DecodingKey::from_ec_der(raw),
            ec: true,
        },
        "1.2.840.113549.1.1.1" => Key {
            der: DecodingKey::from_rsa_der(raw),
            ec: false,
        },
        _ => return None,
    };
    Some((key, spki_der))
}

/// libtrust's key ID: SHA-256 of the SPKI, first 240 bits, base32, groups of four joined by ':'.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = Sha256::digest(spki_der);
    let bytes = &h[..30];
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    out.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

impl TokenAuth {
    /// Token authentication with the `auth.options` of the config.
    pub fn new(
        realm: &str,
        service: &str,
        issuer: &str,
        bundle: &Path,
        autoredirect: bool,
    ) -> Result<Self, AuthConfigError> {
        for (name, v) in [("realm", realm), ("service", service), ("issuer", issuer)] {
            if v.is_empty() {
                return Err(AuthConfigError::Missing(name));
            }
        }
        let pem = std::fs::read(bundle)
            .map_err(|e| AuthConfigError::Bundle(bundle.display().to_string(), e.to_string()))?;
        use rustls::pki_types::pem::PemObject;
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| AuthConfigError::Bundle(bundle.display().to_string(), e.to_string()))?;
        if roots.is_empty() {
            return Err(AuthConfigError::Bundle(
                bundle.display().to_string(),
                "no certificate found".into(),
            ));
        }
        let mut by_kid = HashMap::new();
        for c in &roots {
            if let Some((key, spki)) = cert_key(c) {
                by_kid.insert(libtrust_key_id(&spki), key);
            }
        }
        Ok(TokenAuth {
            realm: realm.into(),
            autoredirect,
            service: service.into(),
            issuer: issuer.into(),
            roots,
            by_kid,
        })
    }

    fn challenge(&self, headers: &HeaderMap, required: &[Access], error: Option<&str>) -> String {
        // scope = type:name:action,action (one resource per type/name, space-separated).
        let mut scopes: Vec<(String, Vec<&str>)> = Vec::new();
        for a in required {
            let res = format!("{}:{}", a.typ, a.name);
            match scopes.iter_mut().find(|(r, _)| *r == res) {
                Some((_, acts)) => acts.push(a.action),
                None => scopes.push((res, vec![a.action])),
            }
        }
        let scope = scopes
            .iter()
            .map(|(r, a)| format!("{r}:{}", a.join(",")))
            .collect::<Vec<_>>()
            .join(" ");
        let realm = match (
            self.autoredirect,
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
        ) {
            (true, Some(host)) => format!("https://{host}/auth/token"),
            _ => self.realm.clone(),
        };
        let mut h = format!(
            "Bearer realm=\"{realm}\",service=\"{}\",scope=\"{}\"",
            self.service, scope
        );
        if let Some(e) = error {
            h.push_str(&format!(",error=\"{e}\""));
        }
        h
    }

    fn deny(
        &self,
        headers: &HeaderMap,
        required: &[Access],
        error: Option<&str>,
        why: &str,
    ) -> ApiError {
        tracing::info!(reason = why, "unauthorized request");
        let detail: Vec<serde_json::Value> =
            required.iter().map(|a| serde_json::json!({"Type": a.typ, "Class": "", "Name": a.name, "Action": a.action})).collect();
        let mut e = ApiError::with(Code::Unauthorized, serde_json::Value::Array(detail));
        e.challenge = Some(self.challenge(headers, required, error));
        e
    }

    /// Accept the request if it carries a valid token granting every `required` access.
    /// Admit the request if its token grants every `required` access: Ok(the token's subject).
    pub fn check(
        &self,
        headers: &HeaderMap,
        required: &[Access],
    ) -> Result<Option<String>, ApiError> {
        let Some(h) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(self.deny(headers, required, None, "no token"));
        };
        let parts: Vec<&str> = h.split(' ').collect();
        if parts.len() != 2 || !parts[0].eq_ignore_ascii_case("bearer") {
            return Err(self.deny(
                headers,
                required,
                Some("invalid_token"),
                "not a bearer token",
            ));
        }
        let claims = self
            .verify(parts[1])
            .map_err(|why| self.deny(headers, required, Some("invalid_token"), &why.to_string()))?;
        for r in required {
            let granted = claims.access.iter().any(|a| {
                a.typ == r.typ && a.name == r.name && a.actions.iter().any(|x| x == r.action)
            });
            if !granted {
                return Err(self.deny(
                    headers,
                    required,
                    Some("insufficient_scope"),
                    "token lacks a required action",
                ));
            }
        }
        Ok(claims.sub)
    }

    fn verify(&self, token: &str) -> Result<Claims, TokenRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(TokenRejected::Malformed)?;
        let key = if let Some(chain) = header.x5c.as_ref().filter(|c| !c.is_empty()) {
            let ders: Vec<CertificateDer<'static>> = chain
                .iter()
                .map(|c| {
                    B64.decode(c)
                        .map(CertificateDer::from)
                        .map_err(|e| TokenRejected::X5c(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let anchors: Vec<_> = self
                .roots
                .iter()
                .filter_map(|r| webpki::anchor_from_trusted_cert(r).ok())
                .collect();
            let leaf = webpki::EndEntityCert::try_from(&ders[0])
                .map_err(|e| TokenRejected::X5c(format!("leaf: {e:?}")))?;
            leaf.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &ders[1..],
                UnixTime::now(),
                AnyEku,
                None,
                None,
            )
            .map_err(|e| TokenRejected::Untrusted(format!("{e:?}")))?;
            cert_key(&ders[0]).ok_or(TokenRejected::UnsupportedKey)?.0
        } else if let Some(kid) = &header.kid {
            let k = self
                .by_kid
                .get(kid)
                .ok_or_else(|| TokenRejected::UnknownKid(kid.clone()))?;
            Key {
                der: k.der.clone(),
                ec: k.ec,
            }
        } else {
            return Err(TokenRejected::NoKey);
        };
        let allowed: &[Algorithm] = if key.ec {
            &[Algorithm::ES256, Algorithm::ES384]
        } else {
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
            ]
        };
        if !allowed.contains(&header.alg) {
            return Err(TokenRejected::Algorithm(header.alg));
        }
        let mut v = Validation::new(header.alg);
        v.leeway = 60;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.service]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Claims>(token, &key.der, &v)
            .map(|d| d.claims)
            .map_err(TokenRejected::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtrust_ids_have_twelve_groups() {
        let id = libtrust_key_id(b"some spki");
        assert_eq!(id.split(':').count(), 12);
        assert!(id.split(':').all(|g| g.len() == 4
            && g.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))));
    }
}
