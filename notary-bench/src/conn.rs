//! A lean HTTP/1.1 client for the read measurements: each load task owns one keep-alive
//! connection (hyper's connection-level API over rustls), as wrk does, with no pool, no
//! redirects and no per-request allocation beyond the request itself. The load generator
//! shares the machine with the server under test; the less CPU it takes, the less of the
//! server's latency is really the client's. (The reqwest client it replaced cost about a third
//! more CPU per request than the server did.)

use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;

/// Where to connect, and the TLS settings for it.
#[derive(Clone)]
pub struct Target {
    host: String,
    port: u16,
    /// `host[:port]` as the Host header carries it.
    authority: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Target {
    /// `url`: `https://host[:port]` (or `http://`); `ca_pem`: the CA bundle to trust (TLS).
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Target> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("parsing {url}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("{url}: expected an http:// or https:// URL"),
        };
        let host = uri
            .host()
            .context("URL without a host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let tls = if https {
            let mut roots = rustls::RootCertStore::empty();
            use rustls::pki_types::pem::PemObject;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(
                ca_pem.context("an https URL needs --ca")?,
            ) {
                roots.add(cert.context("reading the CA bundle")?)?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())?;
            Some((Arc::new(cfg), name))
        } else {
            None
        };
        Ok(Target {
            host,
            port,
            authority,
            tls,
        })
    }

    /// Open one keep-alive connection; its I/O is driven by a task of its own.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let send = match &self.tls {
            Some((cfg, name)) => {
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name.clone(), tcp)
                    .await?;
                handshake(tls).await?
            }
            None => handshake(tcp).await?,
        };
        Ok(Conn {
            send,
            authority: self.authority.clone(),
        })
    }
}

async fn handshake<T>(io: T) -> anyhow::Result<SendRequest<Empty<Bytes>>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// One keep-alive connection, one request at a time.
pub struct Conn {
    send: SendRequest<Empty<Bytes>>,
    authority: String,
}

/// What a GET returned.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The `ETag`, if any.
    pub etag: Option<String>,
}

impl Conn {
    /// GET `path` (absolute, with any query), accepting gzip, reading the whole body.
    pub async fn get(&mut self, path: &str, if_none_match: Option<&str>) -> anyhow::Result<Reply> {
        // As Go's HTTP client (the notary CLI, docker) does: large files may come compressed.
        let mut req = hyper::Request::get(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT_ENCODING, "gzip");
        if let Some(tag) = if_none_match {
            req = req.header(hyper::header::IF_NONE_MATCH, tag);
        }
        self.send.ready().await?;
        let resp = self.send.send_request(req.body(Empty::new())?).await?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(hyper::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        resp.into_body().collect().await?;
        Ok(Reply { status, etag })
    }
}

/// The path (with query) of an absolute URL, as a request line carries it.
pub fn path_of(url: &str) -> anyhow::Result<String> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("parsing {url}"))?;
    Ok(uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into()))
}
