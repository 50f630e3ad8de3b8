//! TLS files that reload from disk without a restart (server HTTPS, signer gRPC): the
//! certificate a server presents and the client-CA bundle it verifies clients against, each a
//! [`Reloading`] value.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;

use crate::reload::{BuildError, Reloading};

/// How often the files' modification times are checked.
const WATCH_PERIOD: Duration = Duration::from_secs(2);

/// Why TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("reading {0}: {1}")]
    Read(String, String),
    /// A certificate file holds no certificate.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// The key is not the certificate's.
    #[error("TLS certificate {0} and key {1} do not match: {2}")]
    Mismatch(String, String, rustls::Error),
    /// rustls refused the configuration.
    #[error("{0}: {1}")]
    Rustls(&'static str, rustls::Error),
    /// The client CA bundle cannot verify clients.
    #[error("client CA bundle {0}: {1}")]
    Verifier(String, String),
    /// A file could not be written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Making a self-signed certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(String),
    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl TlsError {
    /// The error of a first build (a `TlsError` in a box).
    fn unbox(e: BuildError) -> TlsError {
        match e.downcast::<TlsError>() {
            Ok(e) => *e,
            Err(e) => TlsError::Other(e.to_string()),
        }
    }
}

/// A PEM certificate chain and its key, checked to match.
pub fn read_certified_key(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Read(format!("TLS certificate {}", shown(cert)), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(shown(cert)));
    }
    let pkey = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        TlsError::Read(
            format!(
                "TLS key {} (no private key found, or unreadable)",
                shown(key)
            ),
            e.to_string(),
        )
    })?;
    CertifiedKey::from_der(certs, pkey, provider)
        .map_err(|e| TlsError::Mismatch(shown(cert), shown(key), e))
}

/// The server certificate, re-read from its files on SIGHUP and when they change. New
/// connections get the new certificate; established ones are untouched, so nothing in flight
/// is dropped.
#[derive(Debug)]
pub struct ReloadingCert(Arc<Reloading<CertifiedKey>>);

impl ReloadingCert {
    /// Load the certificate and key, rebuilt when either file changes.
    pub fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Arc<Self>, TlsError> {
        let (c, k) = (cert.to_path_buf(), key.to_path_buf());
        let files = vec![c.clone(), k.clone()];
        let r = Reloading::new("the TLS certificate", files, move || {
            Ok(read_certified_key(&c, &k, &provider)?)
        })
        .map_err(TlsError::unbox)?;
        Ok(Arc::new(ReloadingCert(r)))
    }

    /// Re-read the files if they changed (or `force`); true if replaced.
    pub fn reload_if_changed(&self, force: bool) -> bool {
        self.0.reload_if_changed(force)
    }

    /// Reload on SIGHUP and when the files change (checked every two seconds).
    pub fn spawn_watch(&self) {
        self.0.spawn_watch(WATCH_PERIOD);
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }
}

fn client_verifier(
    ca: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let shown = ca.display().to_string();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).map_err(|e| TlsError::Read(shown.clone(), e.to_string()))?;
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|e| TlsError::Read(shown.clone(), e.to_string()))?;
        roots
            .add(c)
            .map_err(|e| TlsError::Rustls("client CA certificate", e))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate(shown));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(shown, e.to_string()))
}

/// Client-certificate verification against a CA bundle that is re-read when its file changes
/// (or on SIGHUP): adding a new client CA, then removing the old one, rotates client
/// certificates without a restart. Certificates are checked at each handshake; established
/// connections are untouched.
#[derive(Debug)]
pub struct ReloadingClientVerifier(Arc<Reloading<Arc<dyn ClientCertVerifier>>>);

impl ReloadingClientVerifier {
    /// Load the client CA bundle, rebuilt when the file changes.
    pub fn load(
        ca: &Path,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Arc<Self>, TlsError> {
        let path = ca.to_path_buf();
        let r = Reloading::new("the client CA bundle", vec![path.clone()], move || {
            Ok(client_verifier(&path, &provider)?)
        })
        .map_err(TlsError::unbox)?;
        Ok(Arc::new(ReloadingClientVerifier(r)))
    }

    fn inner(&self) -> Arc<Arc<dyn ClientCertVerifier>> {
        self.0.get()
    }

    /// Re-read the bundle if it changed (or `force`); true if replaced.
    pub fn reload_if_changed(&self, force: bool) -> bool {
        self.0.reload_if_changed(force)
    }

    /// Reload on SIGHUP and when the file changes (checked every two seconds).
    pub fn spawn_watch(&self) {
        self.0.spawn_watch(WATCH_PERIOD);
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // No hints (they would borrow from a bundle that may be replaced): clients send the
        // certificate they are configured with, as Go's and ours do.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.inner()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner().supported_verify_schemes()
    }
}
