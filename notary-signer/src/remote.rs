//! [`CryptoService`] over gRPC to a notary-signer (ours or Go's), with mutual TLS, deadlines,
//! lazy reconnection and health checks (docs/signer-protocol.md).

use std::time::Duration;

use async_trait::async_trait;
use notary_common::reload::Reloading;
use notary_common::sync::lock;
use notary_tuf::{PublicKey, Signature};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

use crate::grpc::proto::{
    key_management_client::KeyManagementClient, signer_client::SignerClient, CreateKeyRequest,
    KeyId, SignatureRequest,
};
use crate::service::{HEALTH_KEY_MANAGEMENT, HEALTH_SIGNER};
use crate::{CryptoError, CryptoService, KeyInfo};

/// How to reach one notary-signer (`trust_service` in the server's config).
pub struct RemoteConfig {
    /// The signer's host name (also the name its certificate must carry).
    pub hostname: String,
    /// Its gRPC port.
    pub port: u16,
    /// PEM CA bundle the signer's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// PEM client certificate and key (mutual TLS).
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Deadline of every call.
    pub timeout: Duration,
    /// Where `ca_pem` and `client_identity` were read from: re-read when they change (see
    /// [`RemoteCryptoService::reload_if_changed`]).
    pub files: Option<TlsFiles>,
}

/// A PEM certificate (chain) and its private key.
pub type PemPair = (Vec<u8>, Vec<u8>);

/// The files a signer connection's TLS comes from, re-read when they change.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA bundle the signer's certificate must chain to.
    pub ca: std::path::PathBuf,
    /// The client certificate and key (mutual TLS).
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl TlsFiles {
    fn paths(&self) -> Vec<std::path::PathBuf> {
        let mut v = vec![self.ca.clone()];
        if let Some((c, k)) = &self.client {
            v.push(c.clone());
            v.push(k.clone());
        }
        v
    }

    /// Read the CA bundle and the client certificate and key. The pair is checked to match
    /// here (a bad pair fails now, not at the next handshake).
    pub fn read(&self) -> Result<(Vec<u8>, Option<PemPair>), CryptoError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| CryptoError::Config(format!("reading {}: {e}", p.display())))
        };
        let ca = read(&self.ca)?;
        let identity = match &self.client {
            Some((c, k)) => {
                notary_common::tls::read_certified_key(
                    c,
                    k,
                    &rustls::crypto::ring::default_provider(),
                )?;
                Some((read(c)?, read(k)?))
            }
            None => None,
        };
        Ok((ca, identity))
    }
}

fn build_channel(
    hostname: &str,
    port: u16,
    ca_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
    timeout: Duration,
) -> Result<Channel, CryptoError> {
    let mut tls = ClientTlsConfig::new()
        .domain_name(hostname.to_string())
        .ca_certificate(Certificate::from_pem(ca_pem));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let host = if hostname.contains(':') {
        format!("[{hostname}]")
    } else {
        hostname.to_string()
    };
    let endpoint = Endpoint::from_shared(format!("https://{host}:{port}"))
        .map_err(|e| CryptoError::Internal(format!("signer address: {e}")))?
        .tls_config(tls)
        .map_err(|e| CryptoError::Internal(format!("signer TLS configuration: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// The channel to one signer: fixed, or rebuilt when its TLS files change (calls in flight
/// keep the channel they started on).
enum Link {
    Fixed(Channel),
    Reloading(std::sync::Arc<Reloading<Channel>>),
}

/// One notary-signer over gRPC with mutual TLS, as a [`CryptoService`].
pub struct RemoteCryptoService {
    link: Link,
    /// Deadline of every call.
    timeout: Duration,
    /// Public keys seen (by ID): a key's public part never changes. Bounded (LRU).
    keys: std::sync::Mutex<lru::LruCache<String, PublicKey>>,
}

fn status_error(s: tonic::Status, what: &str) -> CryptoError {
    match s.code() {
        Code::NotFound => CryptoError::NotFound(what.into()),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => {
            CryptoError::Unavailable(format!("{what}: {}", s.message()))
        }
        Code::Unknown if s.message().contains("not supported") => {
            CryptoError::Unsupported(s.message().into())
        }
        Code::FailedPrecondition => CryptoError::Locked(format!("signer: {what}: {}", s.message())),
        // tonic reports a connection lost mid-call (signer killed, network cut) as Unknown
        // "transport error": the call may be retried elsewhere.
        Code::Unknown | Code::Internal
            if s.message().contains("transport error") || s.message().contains("connection") =>
        {
            CryptoError::Unavailable(format!("{what}: {}", s.message()))
        }
        _ => CryptoError::Internal(format!("{what}: {:?} {}", s.code(), s.message())),
    }
}

impl RemoteCryptoService {
    /// Configure the channel; it connects on first use and reconnects after failures.
    pub fn new(cfg: RemoteConfig) -> Result<Self, CryptoError> {
        let link = match cfg.files {
            Some(files) => {
                let (host, port, timeout) = (cfg.hostname.clone(), cfg.port, cfg.timeout);
                let what = "the signer TLS files (CA bundle, client certificate)";
                let r = Reloading::new(what, files.paths(), move || {
                    let (ca, identity) = files.read()?;
                    let identity = identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
                    Ok(build_channel(&host, port, &ca, identity, timeout)?)
                })
                .map_err(|e| CryptoError::Config(e.to_string()))?;
                Link::Reloading(r)
            }
            None => {
                let identity = cfg
                    .client_identity
                    .as_ref()
                    .map(|(c, k)| (c.as_slice(), k.as_slice()));
                let ch =
                    build_channel(&cfg.hostname, cfg.port, &cfg.ca_pem, identity, cfg.timeout)?;
                Link::Fixed(ch)
            }
        };
        Ok(RemoteCryptoService {
            link,
            timeout: cfg.timeout,
            keys: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(16_384).expect("non-zero"),
            )),
        })
    }

    /// The gRPC channel (for callers that need the raw services).
    pub fn channel(&self) -> Channel {
        match &self.link {
            Link::Fixed(c) => c.clone(),
            Link::Reloading(r) => (*r.get()).clone(),
        }
    }

    /// Re-read the CA bundle and client certificate/key if their files changed (or `force`):
    /// new calls use a new channel; calls in flight finish on the old one. A pair that cannot
    /// be used is logged and the previous files stay in use. Returns whether it reloaded.
    pub fn reload_if_changed(&self, force: bool) -> bool {
        match &self.link {
            Link::Fixed(_) => false,
            Link::Reloading(r) => r.reload_if_changed(force),
        }
    }

    fn km(&self) -> KeyManagementClient<Channel> {
        KeyManagementClient::new(self.channel())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, PublicKey>> {
        lock(&self.keys)
    }

    fn remember(&self, pk: &PublicKey) {
        self.known().put(pk.id(), pk.clone());
    }

    async fn public_key(&self, key_id: &str) -> Result<Option<PublicKey>, CryptoError> {
        if let Some(pk) = self.known().get(key_id).cloned() {
            return Ok(Some(pk));
        }
        Ok(self.get_key(key_id).await?.map(|i| i.public))
    }
}

#[async_trait]
impl CryptoService for RemoteCryptoService {
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError> {
        let r = self
            .km()
            .create_key(CreateKeyRequest {
                algorithm: algorithm.into(),
                gun: gun.into(),
                role: role.into(),
            })
            .await
            .map_err(|s| status_error(s, "CreateKey"))?
            .into_inner();
        let alg = r
            .key_info
            .and_then(|k| k.algorithm)
            .map(|a| a.algorithm)
            .unwrap_or_default();
        // The ID is recomputed from the key, as the Go server does.
        let pk = PublicKey::new(alg, r.public_key);
        self.remember(&pk);
        Ok(pk)
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError> {
        let r = match self.km().get_key_info(KeyId { id: key_id.into() }).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(status_error(s, "GetKeyInfo")),
        };
        let alg = r
            .key_info
            .and_then(|k| k.algorithm)
            .map(|a| a.algorithm)
            .unwrap_or_default();
        let pk = PublicKey::new(alg, r.public_key);
        if pk.id() != key_id {
            tracing::warn!(key_id, got = %pk.id(), "signer returned a different key");
            return Ok(None);
        }
        self.remember(&pk);
        Ok(Some(KeyInfo {
            public: pk,
            role: r.role,
            gun: String::new(),
        }))
    }

    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError> {
        let pk = self
            .public_key(key_id)
            .await?
            .ok_or_else(|| CryptoError::NotFound(key_id.into()))?;
        let r = SignerClient::new(self.channel())
            .sign(SignatureRequest {
                key_id: Some(KeyId { id: key_id.into() }),
                content: msg.to_vec(),
            })
            .await
            .map_err(|s| status_error(s, "Sign"))?
            .into_inner();
        // The method follows from the key type, never from the response; and a signature that
        // does not verify is refused here rather than published.
        let method = match pk.keytype.as_str() {
            notary_tuf::keys::ED25519 => "eddsa",
            notary_tuf::keys::RSA => "rsapss",
            _ => "ecdsa",
        };
        if !pk.verify(method, msg, &r.content) {
            return Err(CryptoError::Internal(format!(
                "signer returned an invalid signature for key {key_id}"
            )));
        }
        Ok(Signature {
            keyid: key_id.into(),
            method: method.into(),
            sig: r.content,
        })
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError> {
        self.km()
            .delete_key(KeyId { id: key_id.into() })
            .await
            .map_err(|s| status_error(s, "DeleteKey"))?;
        self.known().pop(key_id);
        Ok(())
    }

    async fn health(&self) -> Result<(), CryptoError> {
        let mut h = tonic_health::pb::health_client::HealthClient::new(self.channel());
        for service in [HEALTH_KEY_MANAGEMENT, HEALTH_SIGNER] {
            let mut req = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            });
            req.set_timeout(self.timeout);
            let r = h
                .check(req)
                .await
                .map_err(|s| status_error(s, "health check"))?
                .into_inner();
            if r.status != tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
                return Err(CryptoError::Unavailable(format!(
                    "{service} is not serving"
                )));
            }
        }
        Ok(())
    }
}

/// Several signers that share one key store (SQL database or HSM): each call goes to the first
/// signer believed up, in configured order, and moves on to the next when one is unavailable
/// (down, hung past the deadline, or reporting NOT_SERVING). A health loop keeps the beliefs
/// current, so after a failure calls stop waiting on the dead signer. Signing is idempotent;
/// a repeated CreateKey at worst leaves an unused pending key.
pub struct FailoverCryptoService {
    members: Vec<Member>,
}

struct Member {
    name: String,
    svc: RemoteCryptoService,
    up: std::sync::atomic::AtomicBool,
}

/// Try each member (up ones first) until one gives an answer other than "unavailable".
macro_rules! failover {
    ($self:ident, $s:ident => $call:expr) => {{
        let mut last = String::from("no signer configured");
        for m in $self.order() {
            let $s = &m.svc;
            match $call.await {
                Err(CryptoError::Unavailable(e)) => {
                    $self.mark(m, false, &e);
                    last = format!("{}: {e}", m.name);
                }
                other => {
                    $self.mark(m, true, "");
                    return other;
                }
            }
        }
        Err(CryptoError::Unavailable(last))
    }};
}

impl FailoverCryptoService {
    /// Several signers (name, connection), tried in order of health.
    pub fn new(members: Vec<(String, RemoteCryptoService)>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(FailoverCryptoService {
            members: members
                .into_iter()
                .map(|(name, svc)| Member {
                    name,
                    svc,
                    up: true.into(),
                })
                .collect(),
        })
    }

    /// Check every signer's health every `every` (in the background), and reload the TLS
    /// files when they change or on SIGHUP.
    pub fn spawn_health_checks(self: &std::sync::Arc<Self>, every: Duration) {
        let me = std::sync::Arc::downgrade(self);
        notary_common::reload::every_or_on_sighup(every, move |forced| {
            let me = me.upgrade();
            async move {
                let Some(me) = me else { return false };
                for m in &me.members {
                    m.svc.reload_if_changed(forced);
                }
                let _ = me.health().await;
                true
            }
        });
    }

    fn order(&self) -> Vec<&Member> {
        let up = |m: &&Member| m.up.load(std::sync::atomic::Ordering::Relaxed);
        self.members
            .iter()
            .filter(up)
            .chain(self.members.iter().filter(|m| !up(m)))
            .collect()
    }

    fn mark(&self, m: &Member, up: bool, why: &str) {
        let was = m.up.swap(up, std::sync::atomic::Ordering::Relaxed);
        if was && !up && self.members.len() > 1 {
            tracing::warn!(signer = %m.name, error = %why, "signer unavailable; using the others");
        } else if was && !up {
            tracing::warn!(signer = %m.name, error = %why, "signer unavailable; signing fails (503) until it is back");
        } else if !was && up {
            tracing::info!(signer = %m.name, "signer available again");
        }
    }
}

#[async_trait]
impl CryptoService for FailoverCryptoService {
    async fn create_key(
        &self,
        role: &str,
        gun: &str,
        algorithm: &str,
    ) -> Result<PublicKey, CryptoError> {
        failover!(self, s => s.create_key(role, gun, algorithm))
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyInfo>, CryptoError> {
        failover!(self, s => s.get_key(key_id))
    }

    async fn sign(&self, key_id: &str, msg: &[u8]) -> Result<Signature, CryptoError> {
        failover!(self, s => s.sign(key_id, msg))
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CryptoError> {
        failover!(self, s => s.delete_key(key_id))
    }

    /// Healthy while any signer is; checks them all (concurrently) and records which are up.
    async fn health(&self) -> Result<(), CryptoError> {
        let results =
            futures_util::future::join_all(self.members.iter().map(|m| m.svc.health())).await;
        let mut last = None;
        for (m, r) in self.members.iter().zip(results) {
            match r {
                Ok(()) => self.mark(m, true, ""),
                Err(e) => {
                    self.mark(m, false, &e.to_string());
                    last = Some(e);
                }
            }
        }
        if self
            .members
            .iter()
            .any(|m| m.up.load(std::sync::atomic::Ordering::Relaxed))
        {
            Ok(())
        } else {
            Err(last.unwrap_or_else(|| CryptoError::Unavailable("no signer configured".into())))
        }
    }
}
