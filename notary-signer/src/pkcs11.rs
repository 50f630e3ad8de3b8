//! PKCS#11 key store (HSMs, YubiKey via ykcs11, cloud HSM modules; tested on SoftHSM2).
//!
//! Keys are generated inside the token and never leave it: ECDSA P-256 key pairs with the
//! private half `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`. Each
//! object carries `CKA_ID` = the TUF key ID (32 bytes) and `CKA_LABEL` =
//! `notary:<pending|active>:<role>:<gun>`: the pending → active lifecycle of the Go signer's
//! SQL store (a never-used key for the same role and GUN is handed out again) lives in the token.
//!
//! One login (PKCS#11 login state is per application and token), a pool of sessions reused
//! across operations, and every call on a blocking thread.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use notary_tuf::{PublicKey, Signature};
use sha2::{Digest, Sha256};

use crate::{CryptoError, CryptoService, KeyInfo};
use notary_common::sync::lock;

/// DER of the prime256v1 OID (CKA_EC_PARAMS).
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const MAX_IDLE_SESSIONS: usize = 8;
/// The variable the token's user PIN is read from (never the config file or the command line).
pub const PIN_ENV: &str = "NOTARY_SIGNER_PKCS11_PIN";

/// A parsed RFC 7512 URI: `pkcs11:token=<label>?module-path=<lib>[&pin-source=file:<path>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// The token's label.
    pub token: String,
    /// The PKCS#11 module (a shared library).
    pub module_path: PathBuf,
    /// A file holding the PIN, instead of the environment.
    pub pin_source: Option<PathBuf>,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Pkcs11Uri {
    /// Parse `pkcs11:token=…?module-path=…[&pin-source=file:…]`.
    pub fn parse(uri: &str) -> Result<Self, CryptoError> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| CryptoError::Config("a PKCS#11 URI starts with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut token = None;
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            if let Some(v) = attr.strip_prefix("token=") {
                token = Some(pct_decode(v));
            }
        }
        let (mut module_path, mut pin_source) = (None, None);
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k {
                "module-path" => module_path = Some(PathBuf::from(pct_decode(v))),
                "pin-source" => {
                    let v = pct_decode(v);
                    let p = v.strip_prefix("file:").unwrap_or(&v).trim_start_matches("//").to_string();
                    pin_source = Some(PathBuf::from(p));
                }
                "pin-value" => {
                    return Err(CryptoError::Config(format!(
                        "{PIN_ENV} or pin-source must provide the PIN: pin-value would put it in the configuration in clear"
                    )))
                }
                _ => {}
            }
        }
        Ok(Pkcs11Uri {
            token: token
                .ok_or_else(|| CryptoError::Config("the PKCS#11 URI needs token=<label>".into()))?,
            module_path: module_path.ok_or_else(|| {
                CryptoError::Config("the PKCS#11 URI needs ?module-path=<library>".into())
            })?,
            pin_source,
        })
    }

    /// The user PIN: `NOTARY_SIGNER_PKCS11_PIN`, else the `pin-source` file.
    pub fn pin(&self) -> Result<AuthPin, CryptoError> {
        if let Ok(p) = std::env::var(PIN_ENV) {
            if !p.is_empty() {
                return Ok(AuthPin::from(p));
            }
        }
        match &self.pin_source {
            Some(f) => {
                let p = std::fs::read_to_string(f).map_err(|e| {
                    CryptoError::Config(format!("reading the PIN from {}: {e}", f.display()))
                })?;
                Ok(AuthPin::from(p.trim_end_matches(['\r', '\n']).to_string()))
            }
            None => Err(CryptoError::Config(format!(
                "no PIN: set {PIN_ENV} or add pin-source=file:<path> to the URI"
            ))),
        }
    }
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    idle: Mutex<Vec<Session>>,
}

/// Keys made in and never leaving a PKCS#11 token (ECDSA P-256), found again by label.
pub struct Pkcs11KeyStore {
    inner: Arc<Inner>,
}

fn ck(e: CkError) -> CryptoError {
    match e {
        CkError::Pkcs11(
            RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::DeviceError
            | RvError::SessionHandleInvalid,
            _,
        ) => CryptoError::Unavailable(format!("PKCS#11 token: {e}")),
        _ => CryptoError::Internal(format!("PKCS#11: {e}")),
    }
}

fn label(state: &str, role: &str, gun: &str) -> String {
    format!("notary:{state}:{role}:{gun}")
}

/// (state, role, gun) from a label.
fn parse_label(l: &str) -> Option<(String, String, String)> {
    let mut it = l.splitn(4, ':');
    if it.next()? != "notary" {
        return None;
    }
    Some((
        it.next()?.to_string(),
        it.next()?.to_string(),
        it.next()?.to_string(),
    ))
}

/// SPKI of a P-256 public key from CKA_EC_POINT (DER OCTET STRING, or a raw point).
fn spki_from_ec_point(point: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use p256::pkcs8::EncodePublicKey;
    let raw = if point.len() == 67 && point[0] == 0x04 && point[1] == 0x41 {
        &point[2..]
    } else {
        point
    };
    let pk = p256::PublicKey::from_sec1_bytes(raw)
        .map_err(|_| CryptoError::Internal("PKCS#11: CKA_EC_POINT is not a P-256 point".into()))?;
    Ok(pk
        .to_public_key_der()
        .map_err(|e| CryptoError::Internal(e.to_string()))?
        .as_bytes()
        .to_vec())
}

impl Inner {
    /// Run `f` with a logged-in session from the pool.
    fn with_session<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, CkError>,
    ) -> Result<T, CryptoError> {
        let session = match lock(&self.idle).pop() {
            Some(s) => s,
            None => self.ctx.open_rw_session(self.slot).map_err(ck)?,
        };
        let result = match f(&session) {
            Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {
                // The token forgot the login (reset, re-plugged): log in again, once.
                session.login(UserType::User, Some(&self.pin)).map_err(ck)?;
                f(&session)
            }
            r => r,
        };
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
        result.map_err(ck)
    }

    fn find(
        &self,
        s: &Session,
        class: ObjectClass,
        id: &[u8],
    ) -> Result<Option<ObjectHandle>, CkError> {
        Ok(
            s.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?
                .into_iter()
                .next(),
        )
    }

    fn public_of(&self, s: &Session, obj: ObjectHandle) -> Result<(Vec<u8>, String), CkError> {
        let attrs = s.get_attributes(obj, &[AttributeType::EcPoint, AttributeType::Label])?;
        let (mut point, mut lab) = (Vec::new(), String::new());
        for a in attrs {
            match a {
                Attribute::EcPoint(p) => point = p,
                Attribute::Label(l) => lab = String::from_utf8_lossy(&l).into_owned(),
                _ => {}
            }
        }
        Ok((point, lab))
    }
}

impl Pkcs11KeyStore {
    /// Load the module, find the token by label, log in once.
    pub async fn open(uri: &Pkcs11Uri) -> Result<Self, CryptoError> {
        let uri = uri.clone();
        tokio::task::spawn_blocking(move || {
            let pin = uri.pin()?;
            let ctx = Pkcs11::new(&uri.module_path).map_err(|e| {
                CryptoError::Internal(format!(
                    "loading PKCS#11 module {}: {e}",
                    uri.module_path.display()
                ))
            })?;
            match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
                Err(e) => return Err(ck(e)),
            }
            let mut slot = None;
            for s in ctx.get_slots_with_token().map_err(ck)? {
                if ctx.get_token_info(s).map_err(ck)?.label() == uri.token {
                    slot = Some(s);
                    break;
                }
            }
            let slot = slot.ok_or_else(|| {
                CryptoError::Internal(format!("no PKCS#11 token labelled {:?}", uri.token))
            })?;
            let session = ctx.open_rw_session(slot).map_err(ck)?;
            match session.login(UserType::User, Some(&pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) => {
                    return Err(CryptoError::Internal(format!(
                        "PKCS#11 login to token {:?} failed: {e}",
                        uri.token
                    )))
                }
            }
            Ok(Pkcs11KeyStore {
                inner: Arc::new(Inner {
                    ctx,
                    slot,
                    pin,
                    idle: Mutex::new(vec![session]),
                }),
            })
        })
        .await
        .map_err(|e| CryptoError::Internal(e.to_string()))?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, CryptoError> + Send + 'static,
    ) -> Result<T, CryptoError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| CryptoError::Internal(e.to_string()))?
    }
}

fn key_id_bytes(key_id: &str) -> Option<Vec<u8>> {
    hex::decode(key_id).ok().filter(|b| b.len() == 32)
}

#[async_trait]
impl CryptoService for Pkcs11KeyStore {
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError> {
        if algorithm != notary_tuf::keys::ECDSA {
            return Err(CryptoError::Unsupported(format!(
                "{algorithm} (the PKCS#11 store makes ECDSA P-256 keys)"
            )));
        }
        let pending = label("pending", role, gun);
        self.blocking(move |inner| {
            inner.with_session(|s| {
                // Reuse the never-used key with the smallest ID, as the Go SQL store does.
                let mut found = Vec::new();
                for obj in s.find_objects(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Label(pending.clone().into_bytes()),
                ])? {
                    found.push(inner.public_of(s, obj)?.0);
                }
                let mut keys: Vec<PublicKey> = found
                    .iter()
                    .filter_map(|p| spki_from_ec_point(p).ok())
                    .map(|spki| PublicKey::new("ecdsa", spki))
                    .collect();
                keys.sort_by_key(|k| k.id());
                if let Some(k) = keys.into_iter().next() {
                    return Ok(Ok(k));
                }
                let temp_id = {
                    let mut t = vec![0u8; 32];
                    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut t);
                    t
                };
                let lab = pending.clone().into_bytes();
                let public_template = [
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Verify(true),
                    Attribute::EcParams(P256_PARAMS.to_vec()),
                    Attribute::Id(temp_id.clone()),
                    Attribute::Label(lab.clone()),
                ];
                let private_template = [
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                    Attribute::Id(temp_id),
                    Attribute::Label(lab),
                ];
                let (public, private) = s.generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &public_template,
                    &private_template,
                )?;
                let (point, _) = inner.public_of(s, public)?;
                let pk = match spki_from_ec_point(&point) {
                    Ok(spki) => PublicKey::new("ecdsa", spki),
                    Err(e) => return Ok(Err(e)),
                };
                let id = hex::decode(pk.id()).expect("hex key ID");
                s.update_attributes(public, &[Attribute::Id(id.clone())])?;
                s.update_attributes(private, &[Attribute::Id(id)])?;
                Ok(Ok(pk))
            })?
        })
        .await
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError> {
        let Some(id) = key_id_bytes(key_id) else {
            return Ok(None);
        };
        let key_id = key_id.to_string();
        self.blocking(move |inner| {
            let found =
                inner.with_session(|s| match inner.find(s, ObjectClass::PUBLIC_KEY, &id)? {
                    Some(obj) => Ok(Some(inner.public_of(s, obj)?)),
                    None => Ok(None),
                })?;
            let Some((point, lab)) = found else {
                return Ok(None);
            };
            let pk = PublicKey::new("ecdsa", spki_from_ec_point(&point)?);
            if pk.id() != key_id {
                return Ok(None);
            }
            let (_, role, gun) = parse_label(&lab).unwrap_or_default();
            Ok(Some(KeyInfo {
                public: pk,
                role,
                gun,
            }))
        })
        .await
    }

    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError> {
        let id = key_id_bytes(key_id).ok_or_else(|| CryptoError::NotFound(key_id.into()))?;
        let digest = Sha256::digest(msg).to_vec();
        let kid = key_id.to_string();
        let sig = self
            .blocking(move |inner| {
                inner.with_session(|s| {
                    let Some(private) = inner.find(s, ObjectClass::PRIVATE_KEY, &id)? else {
                        return Ok(None);
                    };
                    // CKM_ECDSA over the SHA-256 digest; PKCS#11 returns r‖s, each padded to 32 bytes.
                    let sig = s.sign(&Mechanism::Ecdsa, private, &digest)?;
                    // Mark the key active on first use (it is never handed out again).
                    let lab = s.get_attributes(private, &[AttributeType::Label])?;
                    if let Some(Attribute::Label(l)) = lab.into_iter().next() {
                        if let Some((state, role, gun)) = parse_label(&String::from_utf8_lossy(&l))
                            .filter(|(st, _, _)| st == "pending")
                        {
                            debug_assert_eq!(state, "pending");
                            let active = label("active", &role, &gun).into_bytes();
                            s.update_attributes(private, &[Attribute::Label(active.clone())])?;
                            if let Some(public) = inner.find(s, ObjectClass::PUBLIC_KEY, &id)? {
                                s.update_attributes(public, &[Attribute::Label(active)])?;
                            }
                        }
                    }
                    Ok(Some(sig))
                })
            })
            .await?
            .ok_or_else(|| CryptoError::NotFound(kid.clone()))?;
        if sig.len() != 64 {
            return Err(CryptoError::Internal(format!(
                "PKCS#11 returned a {}-byte ECDSA signature; expected r‖s of 64",
                sig.len()
            )));
        }
        Ok(Signature {
            keyid: kid,
            method: "ecdsa".into(),
            sig,
        })
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError> {
        let Some(id) = key_id_bytes(key_id) else {
            return Ok(());
        };
        self.blocking(move |inner| {
            inner.with_session(|s| {
                for obj in s.find_objects(&[Attribute::Id(id.clone())])? {
                    s.destroy_object(obj)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn health(&self) -> Result<(), CryptoError> {
        self.blocking(|inner| inner.ctx.get_token_info(inner.slot).map(|_| ()).map_err(ck))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=notary%20keys;manufacturer=SoftHSM?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(
            u,
            Pkcs11Uri {
                token: "notary keys".into(),
                module_path: "/usr/lib/softhsm/libsofthsm2.so".into(),
                pin_source: Some("/run/pin".into())
            }
        );
        assert!(
            Pkcs11Uri::parse("pkcs11:token=x?module-path=/m&pin-value=1234")
                .unwrap_err()
                .to_string()
                .contains("in clear")
        );
        assert!(Pkcs11Uri::parse("pkcs11:?module-path=/m").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=x").is_err());
        assert!(Pkcs11Uri::parse("file:/x").is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_label(&label("pending", "timestamp", "docker.io/a:b")),
            Some(("pending".into(), "timestamp".into(), "docker.io/a:b".into()))
        );
        assert_eq!(parse_label("other"), None);
    }
}
