//! The signer's listening side: mutual TLS (mandatory) with a certificate and a client-CA
//! bundle that both reload, and TLS handshakes completed concurrently for tonic.

use std::path::Path;
use std::sync::Arc;

use notary_common::tls::{ReloadingCert, ReloadingClientVerifier, TlsError};

use crate::CryptoError;

/// The gRPC TLS configuration: mutual TLS against `client_ca`, its own certificate and the
/// client CA bundle both reloading (call `spawn_watch` on each), HTTP/2 only.
pub fn grpc_server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<
    (
        rustls::ServerConfig,
        Arc<ReloadingCert>,
        Arc<ReloadingClientVerifier>,
    ),
    CryptoError,
> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = ReloadingCert::load(cert, key, provider.clone())?;
    let verifier = ReloadingClientVerifier::load(client_ca, provider.clone())?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls("TLS versions", e))?
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
