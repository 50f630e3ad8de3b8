//! A TUF repository owned by a Rust client: root certificate key, targets key, and pre-signed
//! files built with `notary_tuf::builder`, with snapshot and timestamp managed by the server.

use chrono::{DateTime, Duration, Utc};
use notary_tuf::builder::{root_body, sign, targets_body, Signer};
use notary_tuf::{FileMeta, PrivateKey, PublicKey};

/// An expiry far enough ahead for any test.
pub fn far_future() -> DateTime<Utc> {
    Utc::now() + Duration::days(365)
}

/// A self-signed root certificate with CN = GUN, as the Go client makes it.
pub fn root_cert(gun: &str) -> (PrivateKey, PublicKey) {
    let kp = rcgen::KeyPair::generate().expect("P-256 key");
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, gun);
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2120, 1, 1);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let cert = p.self_signed(&kp).expect("self-signed certificate");
    let key = PrivateKey::from_go_bytes("ecdsa", &kp.serialize_der()).expect("PKCS#8 P-256 key");
    (
        key,
        notary_tuf::keys::cert_key_from_der(cert.der()).expect("certificate key"),
    )
}

/// The public key in a key-endpoint response (`{"keytype":…,"keyval":{"public":…}}`).
pub fn parse_key_response(body: &[u8]) -> Option<PublicKey> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let public = base64::engine::general_purpose::STANDARD
        .decode(v["keyval"]["public"].as_str()?)
        .ok()?;
    Some(PublicKey::new(v["keytype"].as_str()?, public))
}

/// A repository whose root and targets keys are held here, in Rust (the server holds snapshot and timestamp).
pub struct RustRepo {
    /// The repository.
    pub gun: String,
    /// The root key (certificate key, as the Go client makes it).
    pub root_key: PrivateKey,
    /// Its public key (the certificate).
    pub root_pub: PublicKey,
    /// The targets key.
    pub targets_key: PrivateKey,
    /// The server's snapshot key.
    pub snapshot_pub: PublicKey,
    /// The server's timestamp key.
    pub timestamp_pub: PublicKey,
}

impl RustRepo {
    /// New keys for `gun`; `snapshot_pub` and `timestamp_pub` come from the server's key endpoints.
    pub fn new(gun: &str, snapshot_pub: PublicKey, timestamp_pub: PublicKey) -> RustRepo {
        let (root_key, root_pub) = root_cert(gun);
        let targets_key = PrivateKey::generate("ecdsa").expect("ECDSA key");
        RustRepo {
            gun: gun.into(),
            root_key,
            root_pub,
            targets_key,
            snapshot_pub,
            timestamp_pub,
        }
    }

    /// The root at `version`, signed by the root key.
    pub fn root_file(&self, version: i64) -> Vec<u8> {
        let body = root_body(
            &self.root_pub,
            &self.targets_key.public_key(),
            &self.snapshot_pub,
            &self.timestamp_pub,
            version,
            &far_future(),
        );
        sign(
            &body,
            &[Signer {
                key: &self.root_key,
                public: self.root_pub.clone(),
            }],
        )
        .expect("canonical root")
    }

    /// The targets at `version` listing `targets` (name, content), signed by the targets key.
    pub fn targets_file(&self, version: i64, targets: &[(&str, &[u8])]) -> Vec<u8> {
        let t = targets
            .iter()
            .map(|(n, c)| (n.to_string(), FileMeta::of(c)))
            .collect();
        sign(
            &targets_body(&t, &[], version, &far_future()),
            &[Signer::plain(&self.targets_key)],
        )
        .expect("canonical targets")
    }
}

pub use notary_common::multipart::multipart;
