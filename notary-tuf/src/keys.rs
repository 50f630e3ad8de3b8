//! TUF public keys as Notary writes them, key IDs, certificates, verification and signing
//! (docs/wire-format.md §4–§5).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use der::{Decode, Encode, EncodePem};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// `keytype` of an Ed25519 key (32 raw bytes).
pub const ED25519: &str = "ed25519";
/// `keytype` of an ECDSA key (SPKI DER).
pub const ECDSA: &str = "ecdsa";
/// `keytype` of an ECDSA key in an x509 certificate (PEM).
pub const ECDSA_X509: &str = "ecdsa-x509";
/// `keytype` of an RSA key (SPKI DER).
pub const RSA: &str = "rsa";
/// `keytype` of an RSA key in an x509 certificate (PEM).
pub const RSA_X509: &str = "rsa-x509";

/// Minimum RSA modulus size accepted by Go (`MinRSABitSize`).
pub const MIN_RSA_BITS: usize = 2048;

#[derive(Clone, Debug, PartialEq, Eq)]
/// A public key as metadata lists it: `keytype` and the public bytes (`docs/wire-format.md` §4).
pub struct PublicKey {
    /// One of the `keytype` constants of this module (others are kept, never verify).
    pub keytype: String,
    /// The bytes behind `keyval.public` (SPKI DER, raw ed25519, or PEM text for x509 types).
    pub public: Vec<u8>,
}

impl PublicKey {
    /// A key of `keytype` with these public bytes.
    pub fn new(keytype: impl Into<String>, public: Vec<u8>) -> Self {
        PublicKey {
            keytype: keytype.into(),
            public,
        }
    }

    /// TUF key ID: sha256 of the canonical `{"keytype":T,"keyval":{"private":null,"public":B64}}`.
    pub fn id(&self) -> String {
        key_id(&self.keytype, &self.public)
    }

    /// Notary's "canonical" key ID: for certificates, the ID of the bare SPKI key.
    pub fn canonical_id(&self) -> String {
        match self.keytype.as_str() {
            ECDSA_X509 | RSA_X509 => match first_cert(&self.public)
                .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok())
            {
                Some(spki) => key_id(
                    if self.keytype == ECDSA_X509 {
                        ECDSA
                    } else {
                        RSA
                    },
                    &spki,
                ),
                None => self.id(),
            },
            _ => self.id(),
        }
    }

    /// Whether this is a well-formed bare online key as a Notary server hands out for its
    /// timestamp and snapshot roles: an `ecdsa` P-256 SPKI whose point is on the curve, or a
    /// valid 32-byte `ed25519` point. Certificates, RSA and anything unparsable are not.
    pub fn is_well_formed_online_key(&self) -> bool {
        use p256::pkcs8::DecodePublicKey;
        match self.keytype.as_str() {
            ECDSA => p256::ecdsa::VerifyingKey::from_public_key_der(&self.public).is_ok(),
            ED25519 => <[u8; 32]>::try_from(self.public.as_slice())
                .is_ok_and(|pk| ed25519_dalek::VerifyingKey::from_bytes(&pk).is_ok()),
            _ => false,
        }
    }

    /// The JSON a Go server returns from the key endpoints (stdlib order: public before private).
    pub fn to_go_json(&self) -> String {
        format!(
            r#"{{"keytype":"{}","keyval":{{"public":"{}","private":null}}}}"#,
            self.keytype,
            B64.encode(&self.public)
        )
    }

    /// Verify one signature as Go's verifiers do. Returns false for an unknown method, a key type
    /// the method does not accept, a wrong length or a bad signature.
    pub fn verify(&self, method: &str, msg: &[u8], sig: &[u8]) -> bool {
        match method {
            "ecdsa" => match self.keytype.as_str() {
                ECDSA => verify_ecdsa_spki(&self.public, msg, sig),
                ECDSA_X509 => first_cert_spki(&self.public)
                    .map(|s| verify_ecdsa_spki(&s, msg, sig))
                    .unwrap_or(false),
                _ => false,
            },
            "eddsa" => self.keytype == ED25519 && verify_ed25519(&self.public, msg, sig),
            "rsapss" => rsa_key(self)
                .map(|k| verify_rsa_pss(&k, msg, sig))
                .unwrap_or(false),
            "rsapkcs1v15" => rsa_key(self)
                .map(|k| verify_rsa_pkcs1(&k, msg, sig))
                .unwrap_or(false),
            "pycrypto-pkcs#1 pss" => {
                // Legacy: keytype `rsa` whose public bytes are a PEM SPKI.
                if self.keytype != RSA {
                    return false;
                }
                use rsa::pkcs8::DecodePublicKey;
                std::str::from_utf8(&self.public)
                    .ok()
                    .and_then(|p| rsa::RsaPublicKey::from_public_key_pem(p).ok())
                    .filter(|k| rsa::traits::PublicKeyParts::size(k) * 8 >= MIN_RSA_BITS)
                    .map(|k| verify_rsa_pss(&k, msg, sig))
                    .unwrap_or(false)
            }
            _ => false,
        }
    }
}

/// The TUF key ID of a key of `keytype` with these public bytes.
pub fn key_id(keytype: &str, public: &[u8]) -> String {
    let mut pre = Vec::with_capacity(64 + public.len() * 4 / 3);
    pre.extend_from_slice(b"{\"keytype\":");
    // keytype comes from untrusted JSON: write it with the canonical string rules. A control
    // character cannot make a valid key anyway; hash the raw bytes in that case.
    if crate::cjson::write_string(&mut pre, keytype).is_err() {
        pre.extend_from_slice(keytype.as_bytes());
    }
    pre.extend_from_slice(b",\"keyval\":{\"private\":null,\"public\":\"");
    pre.extend_from_slice(B64.encode(public).as_bytes());
    pre.extend_from_slice(b"\"}}");
    hex::encode(Sha256::digest(&pre))
}

/// The first CERTIFICATE block (Go `LoadCertFromPEM`: other blocks are skipped).
fn first_cert(pem: &[u8]) -> Option<Certificate> {
    let (_, der) = pem_blocks(pem)
        .ok()?
        .into_iter()
        .find(|(label, _)| label == "CERTIFICATE")?;
    <Certificate as Decode>::from_der(&der).ok()
}

fn first_cert_spki(pem: &[u8]) -> Option<Vec<u8>> {
    first_cert(pem)?
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .ok()
}

fn verify_ecdsa_spki(spki: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use p256::pkcs8::DecodePublicKey;
    if sig.len() != 64 {
        return false;
    }
    // p256 parses and checks the key (a P-256 SPKI, a point on the curve); ring checks the
    // signature (r ‖ s, as Go's notary writes it; SHA-256 of the message).
    let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) else {
        return false;
    };
    let point = vk.to_encoded_point(false);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        point.as_bytes(),
    )
    .verify(msg, sig)
    .is_ok()
}

fn verify_ed25519(public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(pk) = <[u8; 32]>::try_from(public) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(sig) else {
        return false;
    };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    // Go's crypto/ed25519 is cofactorless and requires a canonical S; dalek's `verify` is the same.
    use ed25519_dalek::Verifier;
    vk.verify(msg, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok()
}

fn rsa_key(k: &PublicKey) -> Option<rsa::RsaPublicKey> {
    use rsa::pkcs8::DecodePublicKey;
    let spki = match k.keytype.as_str() {
        RSA => k.public.clone(),
        RSA_X509 => first_cert_spki(&k.public)?,
        _ => return None,
    };
    let key = rsa::RsaPublicKey::from_public_key_der(&spki).ok()?;
    (rsa::traits::PublicKeyParts::size(&key) * 8 >= MIN_RSA_BITS).then_some(key)
}

fn verify_rsa_pss(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
    if sig.len() < 256 {
        return false;
    }
    let digest = Sha256::digest(msg);
    key.verify(rsa::Pss::new_with_salt::<Sha256>(32), &digest, sig)
        .is_ok()
}

fn verify_rsa_pkcs1(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
    let digest = Sha256::digest(msg);
    key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, sig)
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// Certificates (root keys and x509 delegation keys)

#[derive(Debug, Clone)]
/// A parsed x509 certificate and what the checks need of it.
pub struct CertInfo {
    /// The certificate.
    pub cert: Certificate,
    /// Its subject's common name.
    pub common_name: Option<String>,
    /// Whether its basic constraints make it a CA.
    pub is_ca: bool,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

/// The PEM blocks of `pem`, in order: (label, DER). Text around blocks is ignored.
///
/// Blocks are split here and decoded one by one: x509-cert's `load_pem_chain` panics
/// (integer underflow) on some malformed input — found by the property tests — and a client's
/// upload must never be able to do that.
fn pem_blocks(pem: &[u8]) -> Result<Vec<(String, Vec<u8>)>, crate::Error> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    let text =
        std::str::from_utf8(pem).map_err(|_| crate::Error::CertBundle("not PEM text".into()))?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let from_begin = &rest[start..];
        let end = from_begin
            .find(END)
            .ok_or_else(|| crate::Error::CertBundle("unterminated PEM block".into()))?;
        let after_end = &from_begin[end + END.len()..];
        let close = after_end
            .find("-----")
            .ok_or_else(|| crate::Error::CertBundle("unterminated PEM block".into()))?;
        let len = end + END.len() + close + "-----".len();
        let (label, der) = der::pem::decode_vec(&from_begin.as_bytes()[..len])
            .map_err(|e| crate::Error::CertBundle(e.to_string()))?;
        blocks.push((label.to_string(), der));
        rest = &from_begin[len..];
    }
    Ok(blocks)
}

/// Parse a PEM bundle (leaf first, then intermediates) as Go's `LoadCertBundleFromPEM` does:
/// every block must be a CERTIFICATE.
pub fn load_cert_bundle(pem: &[u8]) -> Result<Vec<CertInfo>, crate::Error> {
    let mut certs = Vec::new();
    for (label, der) in pem_blocks(pem)? {
        if label != "CERTIFICATE" {
            return Err(crate::Error::PemType(label));
        }
        let cert = <Certificate as Decode>::from_der(&der)
            .map_err(|e| crate::Error::CertBundle(e.to_string()))?;
        certs.push(cert_info(cert));
    }
    if certs.is_empty() {
        return Err(crate::Error::NoCertificates);
    }
    Ok(certs)
}

fn cert_info(cert: Certificate) -> CertInfo {
    let tbs = &cert.tbs_certificate;
    let mut common_name = None;
    for rdn in tbs.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == const_oid_cn() {
                common_name = std::str::from_utf8(atv.value.value())
                    .ok()
                    .map(str::to_owned);
            }
        }
    }
    let mut is_ca = false;
    if let Some(exts) = &tbs.extensions {
        for ext in exts {
            if ext.extn_id == der::oid::ObjectIdentifier::new_unwrap("2.5.29.19") {
                if let Ok(bc) =
                    x509_cert::ext::pkix::BasicConstraints::from_der(ext.extn_value.as_bytes())
                {
                    is_ca = bc.ca;
                }
            }
        }
    }
    let not_before = tbs.validity.not_before.to_unix_duration().as_secs() as i64;
    let not_after = tbs.validity.not_after.to_unix_duration().as_secs() as i64;
    CertInfo {
        cert,
        common_name,
        is_ca,
        not_before,
        not_after,
    }
}

fn const_oid_cn() -> der::oid::ObjectIdentifier {
    der::oid::ObjectIdentifier::new_unwrap("2.5.4.3")
}

impl CertInfo {
    /// Go `utils.ValidateCertificate`.
    pub fn validate(&self, check_expiry: bool, now_unix: i64) -> Result<(), crate::Error> {
        if self.not_before > self.not_after {
            return Err(crate::Error::CertWindow);
        }
        let sha1_algs = [
            "1.2.840.113549.1.1.5",
            "1.2.840.10040.4.3",
            "1.2.840.10045.4.1",
        ];
        let alg = self.cert.signature_algorithm.oid.to_string();
        if sha1_algs.contains(&alg.as_str()) {
            return Err(crate::Error::CertSha1);
        }
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid.to_string() == "1.2.840.113549.1.1.1" {
            use rsa::pkcs8::DecodePublicKey;
            let der = spki
                .to_der()
                .map_err(|e| crate::Error::CertKey(e.to_string()))?;
            let key = rsa::RsaPublicKey::from_public_key_der(&der)
                .map_err(|e| crate::Error::CertKey(e.to_string()))?;
            if rsa::traits::PublicKeyParts::size(&key) * 8 < MIN_RSA_BITS {
                return Err(crate::Error::RsaTooShort);
            }
        }
        if check_expiry {
            let tomorrow = now_unix + 24 * 3600;
            if tomorrow < self.not_before || now_unix > self.not_after {
                return Err(crate::Error::CertExpired {
                    cn: self.common_name.clone().unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// The bare key type of the certificate's public key (`ecdsa` or `rsa`), if supported.
    pub fn key_type(&self) -> Option<&'static str> {
        match self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .algorithm
            .oid
            .to_string()
            .as_str()
        {
            "1.2.840.10045.2.1" => Some(ECDSA_X509),
            "1.2.840.113549.1.1.1" => Some(RSA_X509),
            _ => None,
        }
    }

    /// The certificate as Go's `pem.Encode` writes it.
    pub fn to_pem(&self) -> Option<String> {
        self.cert.to_pem(der::pem::LineEnding::LF).ok()
    }
}

/// Go `utils.CertBundleToKey`: the key rebuilt from a leaf and its intermediates, re-PEM-encoded.
pub fn cert_bundle_to_key(leaf: &CertInfo, intermediates: &[CertInfo]) -> Option<PublicKey> {
    let mut pem = leaf.to_pem()?;
    for c in intermediates {
        pem.push_str(&c.to_pem()?);
    }
    Some(PublicKey::new(leaf.key_type()?, pem.into_bytes()))
}

/// The `ecdsa-x509`/`rsa-x509` key of a DER certificate, PEM-encoded exactly as Go's
/// `pem.Encode` writes it (so its key ID matches what Go computes).
pub fn cert_key_from_der(der: &[u8]) -> Option<PublicKey> {
    let info = cert_info(Certificate::from_der(der).ok()?);
    cert_bundle_to_key(&info, &[])
}

// ---------------------------------------------------------------------------------------------
// Private keys (server-managed: ECDSA P-256 and Ed25519)

/// A private key this library signs with.
pub enum PrivateKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::SigningKey),
    /// An ECDSA P-256 key.
    EcdsaP256(p256::ecdsa::SigningKey),
}

pub use crate::error::KeyError;

impl PrivateKey {
    /// A new random key of `algorithm` (`ecdsa` or `ed25519`).
    pub fn generate(algorithm: &str) -> Result<Self, KeyError> {
        let mut rng = rand_core::OsRng;
        match algorithm {
            ED25519 => Ok(PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(
                &mut rng,
            ))),
            ECDSA => Ok(PrivateKey::EcdsaP256(p256::ecdsa::SigningKey::random(
                &mut rng,
            ))),
            other => Err(KeyError::UnsupportedAlgorithm(other.to_string())),
        }
    }

    /// Its algorithm, as a `keytype`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PrivateKey::Ed25519(_) => ED25519,
            PrivateKey::EcdsaP256(_) => ECDSA,
        }
    }

    /// The TUF signature method Go writes for this key type.
    pub fn method(&self) -> &'static str {
        match self {
            PrivateKey::Ed25519(_) => "eddsa",
            PrivateKey::EcdsaP256(_) => "ecdsa",
        }
    }

    /// Its public key as metadata lists it.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Ed25519(k) => {
                PublicKey::new(ED25519, k.verifying_key().to_bytes().to_vec())
            }
            PrivateKey::EcdsaP256(k) => {
                use p256::pkcs8::EncodePublicKey;
                let der = k
                    .verifying_key()
                    .to_public_key_der()
                    .expect("P-256 SPKI encoding cannot fail");
                PublicKey::new(ECDSA, der.as_bytes().to_vec())
            }
        }
    }

    /// Sign the exact message (the canonical `signed` bytes). ECDSA: SHA-256, raw r||s.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            PrivateKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(msg).to_bytes().to_vec()
            }
            PrivateKey::EcdsaP256(k) => {
                use p256::ecdsa::signature::Signer;
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
        }
    }

    /// The private bytes the Go signer stores (JWE plaintext): SEC1 DER for ECDSA,
    /// `pub ‖ seed ‖ pub` (96 bytes) for Ed25519.
    pub fn to_go_bytes(&self) -> Zeroizing<Vec<u8>> {
        match self {
            PrivateKey::Ed25519(k) => {
                let pubk = k.verifying_key().to_bytes();
                let mut v = Zeroizing::new(Vec::with_capacity(96));
                v.extend_from_slice(&pubk);
                v.extend_from_slice(k.as_bytes());
                v.extend_from_slice(&pubk);
                v
            }
            PrivateKey::EcdsaP256(k) => {
                // Go's x509.ParseECPrivateKey requires the [0] namedCurve parameters and
                // MarshalECPrivateKey writes the [1] public key: write both.
                let sk = p256::SecretKey::from(k);
                let secret = Zeroizing::new(sk.to_bytes());
                let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &sk.public_key(),
                    false,
                );
                let ec = sec1::EcPrivateKey {
                    private_key: &secret[..],
                    parameters: Some(sec1::EcParameters::NamedCurve(
                        der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
                    )),
                    public_key: Some(public.as_bytes()),
                };
                Zeroizing::new(ec.to_der().expect("SEC1 encoding cannot fail"))
            }
        }
    }

    /// A key from the bytes Go's signer stores (`docs/key-storage.md`).
    pub fn from_go_bytes(algorithm: &str, bytes: &[u8]) -> Result<Self, KeyError> {
        match algorithm {
            ED25519 => {
                // Go accepts the 96-byte blob (pub ‖ seed ‖ pub); a bare 32-byte seed or the
                // 64-byte Go private key are accepted too.
                let seed: [u8; 32] = match bytes.len() {
                    96 => bytes[32..64].try_into().unwrap(),
                    64 | 32 => bytes[..32].try_into().unwrap(),
                    _ => return Err(KeyError::InvalidKey(algorithm.into())),
                };
                let seed = Zeroizing::new(seed);
                Ok(PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                    &seed,
                )))
            }
            ECDSA => {
                use p256::pkcs8::DecodePrivateKey;
                let sk = p256::SecretKey::from_sec1_der(bytes)
                    .or_else(|_| p256::SecretKey::from_pkcs8_der(bytes))
                    .map_err(|_| KeyError::InvalidKey(algorithm.into()))?;
                Ok(PrivateKey::EcdsaP256(sk.into()))
            }
            other => Err(KeyError::UnsupportedAlgorithm(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by tests/properties.rs): x509-cert's `load_pem_chain` panicked with an
    /// integer underflow on an empty bundle — reachable with a root whose x509 key is empty.
    #[test]
    fn malformed_bundles_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\n",
            b"\r\n\n",
            b" ",
            b"-----BEGIN CERTIFICATE-----",
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            b"\xff\xfe",
        ] {
            assert!(
                load_cert_bundle(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            load_cert_bundle(b"\n").unwrap_err().to_string(),
            "no certificates found in PEM data"
        );
        // The same inputs as x509 key material: no key, no panic.
        for bad in [
            &b""[..],
            b"\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(first_cert(bad).is_none());
            assert!(!PublicKey::new(ECDSA_X509, bad.to_vec()).verify("ecdsa", b"m", &[0u8; 64]));
        }
    }

    #[test]
    fn key_ids_match_go_vectors() {
        // a Go-made key and its ID (fixtures/)
        let public = B64
            .decode("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZKFFI+3g0NH+9mitd5bRO3hkH3PG2cniXVrzqKKfRyc5QvmNc6W8wZ5IGlls6ZZX/GgKRzcpIttDidrOGiGlwQ==")
            .unwrap();
        assert_eq!(
            PublicKey::new(ECDSA, public).id(),
            "f694343ec1d508b2840d86aec5387d7b4d62a39647e33566b2b2abf96029750c"
        );
        // the ed25519 encoding of docs/key-storage.md
        let ed = hex::decode("0b36da6ca5c851d1e3b1003690bf0f9917bb07ba32be64dd8adcc75c1ae8b0ec")
            .unwrap();
        assert_eq!(
            PublicKey::new(ED25519, ed).id(),
            "ab2607856f6286ce0dd44049e4cbd98bb9b0579b404114d9ee8dd2dce145a76a"
        );
        let ec = hex::decode("3059301306072a8648ce3d020106082a8648ce3d03010703420004c2bb0d86ef2f73906c3cc7fcbd1d83860a693a84c1242d47c1c2944bf3794dc190208c23ed545383f7300aff40173ed42a53e6ee452fbc38d1b38aa22ed222be").unwrap();
        assert_eq!(
            PublicKey::new(ECDSA, ec).id(),
            "b77237f8239dd8c370496fb3b35e916d222641e9ecb53df593c5d97561eaa8ba"
        );
    }

    #[test]
    fn ed25519_go_blob_roundtrip_and_deterministic_signature() {
        let seed = hex::decode("b65f1c8bb1ee77ec588ed73d7c295fcb4b130df5fcc24ca7d1b2540db56591e7")
            .unwrap();
        let k = PrivateKey::from_go_bytes(ED25519, &seed).unwrap();
        assert_eq!(
            hex::encode(&k.public_key().public),
            "0b36da6ca5c851d1e3b1003690bf0f9917bb07ba32be64dd8adcc75c1ae8b0ec"
        );
        let blob = k.to_go_bytes();
        assert_eq!(blob.len(), 96);
        let k2 = PrivateKey::from_go_bytes(ED25519, &blob).unwrap();
        let msg = br#"{"_type":"Timestamp","expires":"2030-01-01T00:00:00Z","version":1}"#;
        let sig = k2.sign(msg);
        assert_eq!(hex::encode(&sig), "8bdc2b3ac6ba517d4eb9b51a505ef63ec7852cbef7714e90b1bd41d6c0f53aeadb0e4fa427701a0f285d4d9b5473169957d7f4bbe2087a2164fa8d92bb08110b");
        assert!(k2.public_key().verify("eddsa", msg, &sig));
        assert!(
            !k2.public_key().verify("ed25519", msg, &sig),
            "ed25519 is not a Go method name"
        );
        assert!(!k2.public_key().verify("eddsa", b"other", &sig));
    }

    #[test]
    fn ecdsa_sign_verify_raw_rs_and_sec1_roundtrip() {
        let k = PrivateKey::generate(ECDSA).unwrap();
        let pk = k.public_key();
        assert_eq!(pk.public.len(), 91);
        let sig = k.sign(b"message");
        assert_eq!(sig.len(), 64);
        assert!(pk.verify("ecdsa", b"message", &sig));
        assert!(!pk.verify("ecdsa", b"message2", &sig));
        assert!(
            !pk.verify("rsapss", b"message", &sig),
            "method/key-type confusion must fail"
        );
        let sec1_der = k.to_go_bytes();
        assert_eq!(
            sec1_der.len(),
            121,
            "Go's MarshalECPrivateKey size for P-256"
        );
        let parsed = sec1::EcPrivateKey::from_der(&sec1_der).unwrap();
        assert_eq!(
            parsed
                .parameters
                .and_then(|p| p.named_curve())
                .map(|o| o.to_string())
                .as_deref(),
            Some("1.2.840.10045.3.1.7")
        );
        // The [1] public key is the uncompressed point, which ends the SPKI too.
        assert!(pk.public.ends_with(parsed.public_key.unwrap()));
        let back = PrivateKey::from_go_bytes(ECDSA, &sec1_der).unwrap();
        assert_eq!(back.public_key(), pk);
        // DER-encoded signature (not raw r||s) is refused, as in Go.
        let der = p256::ecdsa::Signature::from_slice(&sig).unwrap().to_der();
        assert!(!pk.verify("ecdsa", b"message", der.as_bytes()));
    }
}
