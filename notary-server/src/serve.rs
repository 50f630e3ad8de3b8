//! Serving HTTP/1.1 connections (over TLS or not) on a work-stealing runtime.
//!
//! Every connection is a task of the multi-threaded tokio runtime, next to the changefeed
//! checks and the database connections: an idle worker thread takes over runnable tasks from a
//! busy one, and all socket readiness comes from one reactor. (Before, actix-web pinned each
//! connection to one of its single-threaded workers: at load a burst queued on one core while
//! the other idled, and the changefeed connection's events crossed threads.)

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::http::{dispatch, AppState};

/// Limits that keep a slow or idle client from holding a connection.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A TLS handshake must finish within this.
    pub(crate) tls_handshake: Duration,
    /// A request's headers must arrive within this, counted from when the connection is idle
    /// (so an idle keep-alive connection is closed after it too).
    pub(crate) header_read: Duration,
    /// Open connections at most; more wait in the listen queue.
    pub max_connections: usize,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(30),
            max_connections: 25_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serve `listener` until `shutdown` resolves; then stop accepting, let in-flight requests
/// finish (up to `limits.shutdown_grace`) and return.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // At the connection limit, stop accepting until one closes.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => connection(tls, peer.ip(), state, &limits, watcher).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => connection(stream, peer.ip(), state, &limits, watcher).await,
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period were dropped");
    }
}

async fn connection<S>(
    io: S,
    peer: std::net::IpAddr,
    state: Arc<AppState>,
    limits: &Limits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let state = state.clone();
            req.extensions_mut().insert(crate::http::ClientAddr(peer));
            async move { Ok::<_, Infallible>(dispatch(req, &state).await) }
        });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        // Header names as Go's net/http writes them (`Content-Type`, `Etag`).
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
}
