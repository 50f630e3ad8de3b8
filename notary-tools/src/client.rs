//! A client of another Notary server: the import source (`notary-server import --from`) and the
//! server `notary-rekey` publishes to. It authenticates as the Docker clients do (see
//! `docs/migrating-off-a-notary-service.md`):
//!
//! 1. A request is sent with the token last obtained for its scope, if any.
//! 2. On 401 with `Www-Authenticate: Bearer realm=…,service=…`, a token for the request's own
//!    scope (`repository:<gun>:pull`, `registry:catalog:*`, …) is fetched from the realm,
//!    anonymously first; if that is refused or the token does not get through, again with the
//!    credentials (HTTP basic auth to the realm), if any. Then the request is sent once more.
//! 3. Connection failures and 5xx answers are retried (three tries, backing off): the source may
//!    be a service about to shut down.
//! 4. A realm is not trusted because the server named it ([`TokenPolicy`]): a plain-http realm
//!    for an https server is refused unless allowed, and credentials go to a realm on another
//!    host than the server's only if that host is allowed or the user says so
//!    (`notary-tools/tests/hostile_import.rs::token_realms_are_not_trusted_blindly`).
//!
//! Tested end to end against Debian's Go notary-server with token auth
//! (`notary-tools/tests/import.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use notary_common::sync::lock;
use zeroize::Zeroizing;

/// Largest metadata file accepted (the Go client's default cap).
pub const MAX_FILE: usize = 100 << 20;

/// Why a request to another Notary server failed.
// Each variant reads as its `#[error]` message; its fields are what the message names.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {msg}")]
    Transport { url: String, msg: String },
    #[error("{url}: the server answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: the answer is larger than {max} bytes")]
    TooLarge { url: String, max: u64 },
    #[error("{url}: not authorized ({why})")]
    Unauthorized { url: String, why: String },
    #[error("{realm}: {why}")]
    TokenRealm { realm: String, why: String },
    #[error("{0}")]
    Config(String),
}

/// Where the client may ask for tokens (invariant 4).
#[derive(Default)]
pub struct TokenPolicy {
    /// Accept a plain-http realm for an https server.
    pub allow_insecure_realm: bool,
    /// Hosts, other than the server's, that may receive credentials.
    pub credential_hosts: Vec<String>,
    /// Asked (with the realm's host) before credentials go to another host not listed; `None`
    /// refuses.
    pub ask: Option<AskHost>,
}

/// A question put to the user with a realm's host: may credentials go there?
pub type AskHost = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl TokenPolicy {
    /// The policy of a command-line run: its flags, and a question asked on the terminal (when
    /// standard input is one) before credentials go to another host.
    pub fn for_terminal(allow_insecure_realm: bool, credential_hosts: Vec<String>) -> Self {
        use std::io::IsTerminal;
        let ask: Option<AskHost> = if std::io::stdin().is_terminal() {
            Some(Box::new(|host: &str| {
                ask_yes(&format!(
                    "the server sends you to a token service on another host, {}: send your credentials there?",
                    notary_common::untrusted::escape(host)
                ))
            }))
        } else {
            None
        };
        TokenPolicy {
            allow_insecure_realm,
            credential_hosts,
            ask,
        }
    }
}

/// Ask `question` on standard error and read the answer from standard input: yes only for
/// `y` or `yes` (the commands that sign or send credentials ask this way).
pub fn ask_yes(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes" | "YES")
}

/// Realm hosts that the Docker clients themselves send a server's credentials to.
const KNOWN_REALMS: &[(&str, &str)] = &[("notary.docker.io", "auth.docker.io")];

/// Registry credentials, for the token realm.
#[derive(Clone)]
pub struct Credentials {
    /// The registry user.
    pub username: String,
    /// The password (zeroized when dropped; never logged).
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.username)
    }
}

#[derive(Debug, Clone)]
struct Challenge {
    realm: String,
    service: String,
}

/// A client of one Notary server (see the module): retries, tokens, bounded answers.
pub struct NotaryClient {
    base: String,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    tokens: Mutex<HashMap<String, String>>,
    policy: TokenPolicy,
    /// Realm hosts the user agreed to send credentials to in this run.
    approved: Mutex<Vec<String>>,
}

/// A request body to send with a request (POST).
pub enum Body {
    /// No body.
    None,
    /// A publish body (`notary_common::multipart`).
    Multipart {
        /// Its content type, with the boundary.
        content_type: String,
        /// The body.
        bytes: Vec<u8>,
    },
}

impl NotaryClient {
    /// A client of the server at `base` (`https://notary.example.com`), trusting the system's
    /// roots, or only `ca_pem` when given.
    pub fn new(
        base: &str,
        ca_pem: Option<&[u8]>,
        credentials: Option<Credentials>,
    ) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("notary-rs/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Config(format!("the CA file: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Config(
                    "the CA file holds no certificate".into(),
                ));
            }
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| ClientError::Config(format!("TLS set-up: {e}")))?;
        let base = base.trim_end_matches('/').to_string();
        let shown = notary_common::untrusted::strip_userinfo(&base);
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::Config(format!(
                "{}: expected an https:// (or http://) URL",
                notary_common::untrusted::escape(&shown)
            )));
        }
        if shown != base {
            // Credentials in a URL end up in reports, tables, audit reasons and process lists.
            return Err(ClientError::Config(format!(
                "{}: credentials in the URL are not accepted (they would be stored and printed); \
                 pass --username, with the password on standard input (--password-stdin) or in \
                 the environment",
                notary_common::untrusted::escape(&shown)
            )));
        }
        Ok(NotaryClient {
            base,
            http,
            credentials,
            tokens: Mutex::new(HashMap::new()),
            policy: TokenPolicy::default(),
            approved: Mutex::new(Vec::new()),
        })
    }

    /// The same client under `policy` (the default refuses insecure realms and credentials to
    /// other hosts).
    pub fn with_token_policy(mut self, policy: TokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Check the realm a server named before a token is asked of it (invariant 4).
    fn check_realm(&self, realm: &str, with_credentials: bool) -> Result<(), ClientError> {
        let refuse = |why: String| ClientError::TokenRealm {
            realm: notary_common::untrusted::escape(realm).into_owned(),
            why,
        };
        let url = reqwest::Url::parse(realm).map_err(|e| {
            refuse(format!(
                "the server named a token realm that is not a URL ({e})"
            ))
        })?;
        let base = reqwest::Url::parse(&self.base)
            .map_err(|e| ClientError::Config(format!("{}: {e}", self.base)))?;
        match url.scheme() {
            "https" => {}
            "http" if base.scheme() == "http" || self.policy.allow_insecure_realm => {}
            "http" => {
                return Err(refuse(
                    "a plain-http token realm for an https server: tokens and credentials would \
                     cross the network in clear; refusing (--allow-insecure-token-realm if this \
                     is intended)"
                        .into(),
                ))
            }
            other => return Err(refuse(format!("unsupported realm scheme {other:?}"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("a realm with user info is refused".into()));
        }
        let (host, base_host) = (url.host_str().unwrap_or(""), base.host_str().unwrap_or(""));
        if !with_credentials || host.eq_ignore_ascii_case(base_host) {
            return Ok(());
        }
        let allowed = self
            .policy
            .credential_hosts
            .iter()
            .chain(lock(&self.approved).iter())
            .any(|h| h.eq_ignore_ascii_case(host))
            || KNOWN_REALMS
                .iter()
                .any(|(b, r)| b.eq_ignore_ascii_case(base_host) && r.eq_ignore_ascii_case(host));
        if allowed {
            return Ok(());
        }
        if self.policy.ask.as_ref().is_some_and(|ask| ask(host)) {
            lock(&self.approved).push(host.to_string());
            return Ok(());
        }
        Err(refuse(format!(
            "the token service is on another host ({}) than the server ({}); your credentials \
             are sent there only with --allow-token-host {}",
            notary_common::untrusted::escape(host),
            notary_common::untrusted::escape(base_host),
            notary_common::untrusted::escape(host)
        )))
    }

    /// The server's URL, without credentials.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET <base><path>`: the body, or `None` on 404.
    pub async fn get(&self, path: &str, scope: &str) -> Result<Option<Vec<u8>>, ClientError> {
        self.get_limited(path, scope, MAX_FILE as u64).await
    }

    /// `GET <base><path>` reading at most `max` bytes of the answer (counted as it arrives, so
    /// an endless answer costs `max` bytes, not memory until it ends).
    pub async fn get_limited(
        &self,
        path: &str,
        scope: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        match self
            .send(reqwest::Method::GET, path, scope, &Body::None, max)
            .await
        {
            Ok(b) => Ok(Some(b)),
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST <base><path>`: the body of a 2xx answer.
    pub async fn post(&self, path: &str, scope: &str, body: Body) -> Result<Vec<u8>, ClientError> {
        self.send(reqwest::Method::POST, path, scope, &body, MAX_FILE as u64)
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        scope: &str,
        body: &Body,
        max: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut tried_anonymous = false;
        let mut tried_credentials = false;
        loop {
            let token = lock(&self.tokens).get(scope).cloned();
            let resp = self
                .send_once(&method, &url, token.as_deref(), body)
                .await?;
            let status = resp.status().as_u16();
            if status != 401 {
                return read_body(&url, resp, max).await;
            }
            let Some(challenge) = bearer_challenge(&resp) else {
                return Err(ClientError::Unauthorized {
                    url,
                    why: "401 without a Bearer challenge".into(),
                });
            };
            let creds = if !tried_anonymous {
                tried_anonymous = true;
                None
            } else if !tried_credentials && self.credentials.is_some() {
                tried_credentials = true;
                self.credentials.as_ref()
            } else {
                let why = if self.credentials.is_some() {
                    "the token service's token for these credentials was refused"
                } else {
                    "an anonymous token was refused; give credentials (--username, or the docker config's auths)"
                };
                return Err(ClientError::Unauthorized {
                    url,
                    why: why.into(),
                });
            };
            self.check_realm(&challenge.realm, creds.is_some())?;
            match self.fetch_token(&challenge, scope, creds).await {
                Ok(t) => {
                    lock(&self.tokens).insert(scope.to_string(), t);
                }
                // Refused anonymously: try the credentials next round.
                Err(ClientError::Status {
                    status: 401 | 403, ..
                }) if creds.is_none() => {
                    lock(&self.tokens).remove(scope);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn send_once(
        &self,
        method: &reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: &Body,
    ) -> Result<reqwest::Response, ClientError> {
        let mut wait = Duration::from_millis(500);
        let mut tries = 0;
        loop {
            tries += 1;
            let mut req = self.http.request(method.clone(), url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Body::Multipart {
                content_type,
                bytes,
            } = body
            {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(bytes.clone());
            }
            match req.send().await {
                Ok(r) if r.status().is_server_error() && tries < 3 => {}
                Ok(r) => return Ok(r),
                Err(e) if tries < 3 && !e.is_builder() => {
                    tracing::debug!(url, error = %e, "retrying");
                }
                Err(e) => {
                    return Err(ClientError::Transport {
                        url: url.to_string(),
                        msg: error_chain(&e),
                    })
                }
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    async fn fetch_token(
        &self,
        c: &Challenge,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<String, ClientError> {
        let mut req = self
            .http
            .get(&c.realm)
            .query(&[("service", c.service.as_str()), ("scope", scope)]);
        if let Some(cr) = creds {
            req = req.basic_auth(&cr.username, Some(cr.password.as_str()));
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            url: c.realm.clone(),
            msg: error_chain(&e),
        })?;
        let body = read_body(&c.realm, resp, 1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| ClientError::Transport {
            url: c.realm.clone(),
            msg: format!("the token service's answer is not a token: {e}"),
        })?;
        let t = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if t.is_empty() {
            return Err(ClientError::Transport {
                url: c.realm.clone(),
                msg: "the token service answered no token".into(),
            });
        }
        Ok(t)
    }
}

/// The body of `resp`, refused once more than `max` bytes have arrived (or are announced).
async fn read_body(
    url: &str,
    mut resp: reqwest::Response,
    max: u64,
) -> Result<Vec<u8>, ClientError> {
    let status = resp.status().as_u16();
    let too_large = || ClientError::TooLarge {
        url: url.to_string(),
        max,
    };
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(ClientError::Transport {
                    url: url.to_string(),
                    msg: error_chain(&e),
                })
            }
        }
    }
    if !(200..300).contains(&status) {
        let text: String = String::from_utf8_lossy(&body[..body.len().min(500)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        return Err(ClientError::Status {
            url: url.to_string(),
            status,
            body: text,
        });
    }
    Ok(body)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// `Www-Authenticate: Bearer realm="…",service="…",scope="…"`.
fn bearer_challenge(resp: &reqwest::Response) -> Option<Challenge> {
    let h = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)?
        .to_str()
        .ok()?;
    parse_bearer(h)
}

fn parse_bearer(h: &str) -> Option<Challenge> {
    let (scheme, params) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = String::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = value.to_string(),
            _ => {}
        }
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        realm: realm?,
        service,
    })
}

/// Registry credentials for `host` from a docker config file's `auths` (`auth`: base64 of
/// `user:password`), as `docker login` writes them. Credential helpers are not read.
pub fn docker_config_credentials(config: &[u8], host: &str) -> Option<Credentials> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let mut candidates = vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
    ];
    if host == "notary.docker.io" {
        // Docker Hub's notary takes the Hub login.
        candidates.extend([
            "https://index.docker.io/v1/".to_string(),
            "index.docker.io".to_string(),
            "docker.io".to_string(),
        ]);
    }
    for c in candidates {
        let Some(entry) = auths.get(&c).or_else(|| auths.get(&format!("{c}/"))) else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(entry.get("auth")?.as_str()?)
            .ok()?;
        let raw = Zeroizing::new(String::from_utf8(raw).ok()?);
        let (user, pass) = raw.split_once(':')?;
        return Some(Credentials {
            username: user.to_string(),
            password: Zeroizing::new(pass.to_string()),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c =
            parse_bearer(r#"Bearer realm="https://auth.example.com/token",service="notary.example.com",scope="repository:a/b:push,pull""#)
                .unwrap();
        assert_eq!(c.realm, "https://auth.example.com/token");
        assert_eq!(c.service, "notary.example.com");
        assert!(parse_bearer("Basic realm=\"x\"").is_none());
        assert!(parse_bearer("Bearer service=\"x\"").is_none());
    }

    #[test]
    fn reads_docker_config_auths() {
        let cfg = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcmV0"}}}"#;
        let c = docker_config_credentials(cfg, "notary.docker.io").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(docker_config_credentials(cfg, "other.example.com").is_none());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
