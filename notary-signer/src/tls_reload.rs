//! TLS certificates that reload from disk without a restart (server HTTPS, signer gRPC).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A PEM certificate chain and its key, checked to match.
pub fn read_certified_key(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate found in {}", cert.display());
    }
    let key: PrivateKeyDer<'static> = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "reading TLS key {} (no private key found, or unreadable)",
            key.display()
        )
    })?;
    CertifiedKey::from_der(certs, key, provider).context("TLS certificate and key do not match")
}

/// The server certificate, re-read from its files on SIGHUP and when they change (checked every
/// two seconds). New connections get the new certificate; established ones are untouched, so
/// nothing in flight is dropped. A bad new pair (unreadable, or key and certificate that do not
/// match — e.g. caught half-written) is logged and the previous pair stays in use.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: std::sync::Mutex<Option<(SystemTime, SystemTime)>>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

fn mtimes(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    Some((
        std::fs::metadata(cert).ok()?.modified().ok()?,
        std::fs::metadata(key).ok()?.modified().ok()?,
    ))
}

impl ReloadingCert {
    pub fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> anyhow::Result<Arc<Self>> {
        let ck = read_certified_key(cert, key, &provider)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(ck)),
            stamp: std::sync::Mutex::new(mtimes(cert, key)),
        }))
    }

    /// Re-read the files now; on error the previous certificate stays in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let stamp = mtimes(&self.cert, &self.key);
        let ck = read_certified_key(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ck);
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
        Ok(())
    }

    fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => {
                tracing::info!(cert = %self.cert.display(), why, "reloaded the TLS certificate")
            }
            Err(e) => {
                tracing::error!(cert = %self.cert.display(), why, error = format!("{e:#}"), "TLS certificate not reloaded; keeping the previous one")
            }
        }
    }

    /// Reload on SIGHUP and when the files' modification times change.
    pub fn spawn_watch(self: &Arc<Self>) {
        let me = self.clone();
        every_or_on_sighup(std::time::Duration::from_secs(2), move |forced| {
            if forced {
                me.reload_logged("SIGHUP");
            } else {
                let now = mtimes(&me.cert, &me.key);
                if now.is_some() && now != *me.stamp.lock().unwrap_or_else(|e| e.into_inner()) {
                    me.reload_logged("files changed");
                }
            }
            std::future::ready(true)
        });
    }
}

/// Run `f(false)` every `period` and `f(true)` on each SIGHUP, in the background, one at a
/// time, until it yields false. (Certificate reloads, the signer health loop.)
pub fn every_or_on_sighup<F, Fut>(period: std::time::Duration, mut f: F)
where
    F: FnMut(bool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let forced = tokio::select! {
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => true,
                _ = tokio::time::sleep(period) => false,
            };
            if !f(forced).await {
                return;
            }
        }
    });
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn client_verifier(
    ca: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    for c in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(c.with_context(|| format!("parsing {}", ca.display()))?)
            .context("client CA certificate")?;
    }
    if roots.is_empty() {
        bail!("no certificate found in {}", ca.display());
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("client certificate verifier")
}

/// Client-certificate verification against a CA bundle that is re-read when its file changes
/// (or on SIGHUP): adding a new client CA, then removing the old one, rotates client
/// certificates without a restart. Certificates are checked at each handshake; established
/// connections are untouched. A bundle that cannot be read is logged and the previous stays.
#[derive(Debug)]
pub struct ReloadingClientVerifier {
    ca: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    stamp: std::sync::Mutex<Option<SystemTime>>,
}

impl ReloadingClientVerifier {
    pub fn load(
        ca: &Path,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> anyhow::Result<Arc<Self>> {
        let v = client_verifier(ca, &provider)?;
        let stamp = std::fs::metadata(ca).ok().and_then(|m| m.modified().ok());
        Ok(Arc::new(ReloadingClientVerifier {
            ca: ca.to_path_buf(),
            provider,
            current: RwLock::new(v),
            stamp: std::sync::Mutex::new(stamp),
        }))
    }

    fn inner(&self) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-read the bundle if it changed (or `force`).
    pub fn reload_if_changed(&self, force: bool) {
        let now = std::fs::metadata(&self.ca)
            .ok()
            .and_then(|m| m.modified().ok());
        if !force && (now.is_none() || now == *self.stamp.lock().unwrap_or_else(|e| e.into_inner()))
        {
            return;
        }
        match client_verifier(&self.ca, &self.provider) {
            Ok(v) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = v;
                *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = now;
                tracing::info!(ca = %self.ca.display(), "reloaded the client CA bundle");
            }
            Err(e) => {
                tracing::error!(ca = %self.ca.display(), error = format!("{e:#}"), "client CA bundle not reloaded; keeping the previous one")
            }
        }
    }

    /// Reload on SIGHUP and when the file changes (checked every two seconds).
    pub fn spawn_watch(self: &Arc<Self>) {
        let me = self.clone();
        every_or_on_sighup(std::time::Duration::from_secs(2), move |forced| {
            me.reload_if_changed(forced);
            std::future::ready(true)
        });
    }
}

impl rustls::server::danger::ClientCertVerifier for ReloadingClientVerifier {
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

/// The signer's gRPC TLS: mutual TLS against `client_ca` (mandatory), its own certificate and
/// the client CA bundle both reloading (call `spawn_watch` on each), HTTP/2 only.
pub fn grpc_server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> anyhow::Result<(
    rustls::ServerConfig,
    Arc<ReloadingCert>,
    Arc<ReloadingClientVerifier>,
)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = ReloadingCert::load(cert, key, provider.clone())?;
    let verifier = ReloadingClientVerifier::load(client_ca, provider.clone())?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok((cfg, resolver, verifier))
}

/// Accept TCP connections and complete TLS handshakes concurrently (a slow or silent client
/// holds only its own task, for at most 10 s), yielding established streams for tonic.
pub fn tls_incoming(
    listener: tokio::net::TcpListener,
    cfg: rustls::ServerConfig,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (tx, rx) = tokio::sync::mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
