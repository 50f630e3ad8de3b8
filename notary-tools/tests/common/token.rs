//! A registry token service (docker/distribution token auth).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A token service as registries use (docker/distribution token auth): a CA whose certificate is
/// the `rootcertbundle`, a signing key with a certificate from that CA (sent as `x5c`), and an
/// HTTP endpoint at the realm that grants requested scopes (all of them to anyone who presents
/// a password; only `pull` anonymously).
pub(crate) struct TokenService {
    pub bundle: PathBuf,
    pub realm: String,
    pub issuer: String,
    pub service: String,
    ca_key: rcgen::KeyPair,
    ca_der: Vec<u8>,
    signing_key: rcgen::KeyPair,
    signing_der: Vec<u8>,
    /// The realm's thread (with a runtime of its own, so a test may block on a CLI meanwhile).
    server: Option<std::thread::JoinHandle<()>>,
    /// The `sub` claim of the tokens it signs.
    pub subject: String,
}

pub(crate) struct Grant<'a> {
    pub typ: &'a str,
    pub name: &'a str,
    pub actions: &'a [&'a str],
}

impl TokenService {
    pub(crate) fn new(dir: &Path, service: &str) -> TokenService {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test token CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let signing_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "token signer");
        let leaf_cert = leaf.signed_by(&signing_key, &ca_cert, &ca_key).unwrap();
        let bundle = dir.join("token-ca.pem");
        std::fs::write(&bundle, ca_cert.pem()).unwrap();
        TokenService {
            bundle,
            realm: String::new(),
            issuer: "test-token-issuer".into(),
            service: service.into(),
            ca_key,
            ca_der: ca_cert.der().to_vec(),
            signing_key,
            signing_der: leaf_cert.der().to_vec(),
            server: None,
            subject: "alice".into(),
        }
    }

    /// A token; `ttl_s` may be negative (expired). Signed by the x5c leaf.
    pub(crate) fn token(
        &self,
        grants: &[Grant],
        ttl_s: i64,
        issuer: &str,
        audience: &str,
    ) -> String {
        use base64::Engine;
        let x5c = vec![base64::engine::general_purpose::STANDARD.encode(&self.signing_der)];
        self.sign(
            &self.signing_key,
            Some(x5c),
            None,
            grants,
            ttl_s,
            issuer,
            audience,
        )
    }

    /// A token naming the CA key by its libtrust key ID (`kid`), signed by the CA key.
    pub(crate) fn kid_token(&self, grants: &[Grant]) -> String {
        use der::{Decode, Encode};
        let cert = x509_cert::Certificate::from_der(&self.ca_der).unwrap();
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        let kid = notary_server::auth::libtrust_key_id(&spki);
        self.sign(
            &self.ca_key,
            None,
            Some(kid),
            grants,
            300,
            &self.issuer.clone(),
            &self.service.clone(),
        )
    }

    /// A token signed by a key that does not chain to the bundle.
    pub(crate) fn forged_token(&self, grants: &[Grant]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let other = TokenService::new(dir.path(), &self.service);
        use base64::Engine;
        let x5c = vec![base64::engine::general_purpose::STANDARD.encode(&other.signing_der)];
        other.sign(
            &other.signing_key,
            Some(x5c),
            None,
            grants,
            300,
            &self.issuer,
            &self.service,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        key: &rcgen::KeyPair,
        x5c: Option<Vec<String>>,
        kid: Option<String>,
        grants: &[Grant],
        ttl_s: i64,
        issuer: &str,
        audience: &str,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let access: Vec<serde_json::Value> = grants
            .iter()
            .map(|g| serde_json::json!({"type": g.typ, "name": g.name, "actions": g.actions}))
            .collect();
        let claims = serde_json::json!({"iss": issuer, "sub": self.subject, "aud": audience, "exp": now + ttl_s, "nbf": now - 5, "iat": now - 5,
            "jti": format!("{}", rand_suffix()), "access": access});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5c = x5c;
        header.kid = kid;
        let enc = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
        jsonwebtoken::encode(&header, &claims, &enc).unwrap()
    }

    /// Serve the realm on a free loopback port (plain HTTP, like a local auth service).
    pub(crate) async fn serve(&mut self) {
        let port = free_port();
        self.realm = format!("http://127.0.0.1:{port}/token");
        let me = std::sync::Arc::new(TokenService {
            bundle: self.bundle.clone(),
            realm: self.realm.clone(),
            issuer: self.issuer.clone(),
            service: self.service.clone(),
            ca_key: rcgen::KeyPair::try_from(self.ca_key.serialize_der().as_slice()).unwrap(),
            ca_der: self.ca_der.clone(),
            signing_key: rcgen::KeyPair::try_from(self.signing_key.serialize_der().as_slice())
                .unwrap(),
            signing_der: self.signing_der.clone(),
            server: None,
            subject: self.subject.clone(),
        });
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let accept = async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let me = me.clone();
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move {
                            let respond = |status: u16, body: String| {
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                        .unwrap(),
                                )
                            };
                            if req.uri().path() != "/token" {
                                return respond(404, String::new());
                            }
                            let q: Vec<(String, String)> =
                                serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
                                    .unwrap();
                            let service = q
                                .iter()
                                .find(|(k, _)| k == "service")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            let authenticated = req.headers().contains_key("authorization");
                            let mut grants = Vec::new();
                            for (_, scope) in q.iter().filter(|(k, _)| k == "scope") {
                                for one in scope.split(' ') {
                                    // type:name:actions — the name may itself hold ':' (host:port).
                                    let (Some((typ, rest)), Some((_, acts))) =
                                        (one.split_once(':'), one.rsplit_once(':'))
                                    else {
                                        continue;
                                    };
                                    let Some((name, _)) = rest.rsplit_once(':') else {
                                        continue;
                                    };
                                    let actions: Vec<String> = acts
                                        .split(',')
                                        .filter(|a| authenticated || *a == "pull")
                                        .map(str::to_owned)
                                        .collect();
                                    grants.push((typ.to_string(), name.to_string(), actions));
                                }
                            }
                            let owned: Vec<(String, String, Vec<&str>)> = grants
                                .iter()
                                .map(|(t, n, a)| {
                                    (t.clone(), n.clone(), a.iter().map(String::as_str).collect())
                                })
                                .collect();
                            let g: Vec<Grant> = owned
                                .iter()
                                .map(|(t, n, a)| Grant {
                                    typ: t,
                                    name: n,
                                    actions: a,
                                })
                                .collect();
                            let token = me.token(&g, 300, &me.issuer, &service);
                            respond(200, serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string())
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service),
                );
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        self.server = Some(std::thread::spawn(move || rt.block_on(accept)));
    }

    /// The server's `auth` config block.
    pub(crate) fn auth_config(&self) -> serde_json::Value {
        serde_json::json!({"type": "token", "options": {"realm": self.realm, "service": self.service, "issuer": self.issuer, "rootcertbundle": self.bundle}})
    }
}

/// A serving token service (its files in `dir`) and our server with token auth on it, on a
/// fresh Postgres database.
pub(crate) async fn server_with_token_auth(dir: &Path) -> (TokenService, Server) {
    let mut ts = TokenService::new(dir, "notary.test");
    ts.serve().await;
    let s = Server::start_with_config(
        &create_pg_db().await,
        serde_json::json!({"auth": ts.auth_config()}),
    )
    .await;
    (ts, s)
}
