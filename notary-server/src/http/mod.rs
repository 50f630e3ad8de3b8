//! The Notary HTTP API (docs/api.md): a thin layer over [`RepoService`]. Routing
//! (`routes.rs`) accepts exactly what the Go server's gorilla/mux patterns accept, so GUN
//! matching (slashes, greedy `[^*]+`) behaves identically. The connections themselves are
//! served by `serve.rs`.

use crate::audit::Actor;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use hyper::body::Incoming;

use crate::auth::{Access, TokenAuth};
pub use crate::errors::{response, Response};
use crate::errors::{ApiError, Code};
use crate::gun::Gun;
use crate::metrics::Metrics;
use crate::role::Role;
use crate::routes::Route;
use crate::service::RepoService;
use notary_common::sync::lock;

mod answer;
mod upload;

use answer::{health, health_checks, metadata_response, text_ok, with_type, DB_CHECK, TRUST_CHECK};
use upload::update;

/// What every request needs: the service, and the limits, headers and auth of the settings.
pub struct AppState {
    /// The repository operations.
    pub service: Arc<RepoService>,
    /// `Cache-Control` max-age of current metadata (seconds).
    pub max_age_current: i64,
    /// `Cache-Control` max-age of metadata by checksum or version (seconds).
    pub max_age_consistent: i64,
    /// Only GUNs with one of these prefixes are served (all when empty).
    pub gun_prefixes: Vec<String>,
    /// Largest publish body.
    pub max_upload_bytes: usize,
    /// Longest a publish body may take to arrive (a slow client holds nothing longer).
    pub upload_timeout: std::time::Duration,
    /// The request metrics.
    pub metrics: Arc<Metrics>,
    /// Token authentication, when configured.
    pub auth: Option<TokenAuth>,
    /// Without token auth: how many keys one client address may create per minute.
    pub key_limiter: Option<KeyLimiter>,
    /// KiB of publish bodies held at once (`server.max_concurrent_upload_bytes`).
    pub upload_budget: Arc<tokio::sync::Semaphore>,
    /// (See `upload_budget`.)
    pub upload_budget_kib: usize,
}

/// The address a request came from (set by `serve.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub std::net::IpAddr);

/// A fixed one-minute window of key creations per client address.
pub struct KeyLimiter {
    per_minute: u32,
    windows:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (std::time::Instant, u32)>>,
}

impl KeyLimiter {
    /// A limiter allowing `per_minute` new keys per client address; none for 0.
    pub fn new(per_minute: u32) -> Option<KeyLimiter> {
        (per_minute > 0).then(|| KeyLimiter {
            per_minute,
            windows: Default::default(),
        })
    }

    /// Count one creation for `client`; an error once its minute's allowance is spent.
    fn take(&self, client: Option<std::net::IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = client else { return Ok(()) };
        let now = std::time::Instant::now();
        let minute = std::time::Duration::from_secs(60);
        let mut w = lock(&self.windows);
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < minute);
        }
        let entry = w.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= minute {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            tracing::warn!(client = %ip, per_minute = self.per_minute, "key creation refused: too many new keys from this client");
            return Err(ApiError::new(Code::TooManyKeys));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// Admit the request (token auth, when configured): Ok(the token's subject, if any).
fn authorize(
    req: &Parts,
    state: &AppState,
    required: Vec<Access>,
) -> Result<Option<String>, ApiError> {
    match &state.auth {
        Some(a) => a.check(&req.headers, &required),
        None => Ok(None),
    }
}

/// This request's id (`audit`, invariant 3).
#[derive(Clone)]
pub(crate) struct RequestId(pub String);

/// Who makes a write: the token's subject, the client's address, the request id.
fn actor(req: &Parts, subject: Option<String>) -> Actor {
    Actor {
        subject,
        client: req.extensions.get::<ClientAddr>().map(|c| c.0.to_string()),
        request_id: req.extensions.get::<RequestId>().map(|r| r.0.clone()),
        reason: None,
    }
}

/// Go `path.Clean`, keeping a trailing slash as gorilla's `cleanPath` does.
fn clean_path(p: &str) -> std::borrow::Cow<'_, str> {
    // Most paths are clean already: no copy for them.
    let clean = p.starts_with('/')
        && !p.contains("//")
        && !p.contains("/./")
        && !p.contains("/../")
        && !p.ends_with("/.")
        && !p.ends_with("/..");
    if clean {
        return p.into();
    }
    walk_clean(p).into()
}

/// `path.Clean` segment by segment (the slow path of `clean_path`).
fn walk_clean(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut cleaned = format!("/{}", out.join("/"));
    if p.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    cleaned
}

/// Longest request path served: a GUN (255 bytes) and a deep delegation role fit many times.
pub const MAX_PATH: usize = 8192;

/// What a redirect's path percent-encodes: controls, non-ASCII, and what would end the path
/// or change how a browser reads it.
const LOCATION_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Answer one request (see the module and `routes.rs`).
pub(crate) async fn dispatch(req: http::Request<Incoming>, state: &AppState) -> Response {
    let arrived = std::time::Instant::now();
    let (mut req, body) = req.into_parts();
    let request_id = crate::audit::accept_request_id(
        req.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    req.extensions.insert(RequestId(request_id.clone()));
    let request_size = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let method = req.method.clone();
    if ![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::HEAD,
        Method::DELETE,
    ]
    .contains(&method)
    {
        return response(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
    }
    let raw = req.uri.path();
    if raw.len() > MAX_PATH {
        return ApiError::new(Code::UriTooLong).response();
    }
    let path = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let cleaned = clean_path(&path);
    if cleaned != path {
        // Re-encoded as a URL path (as Go's url.URL does): a control character or a backslash
        // left raw would let a browser read `/\t/evil.example/` or `/\evil.example/` as
        // another host. The query is passed on as it came.
        let mut loc = percent_encoding::utf8_percent_encode(&cleaned, LOCATION_PATH).to_string();
        if let Some(q) = req.uri.query() {
            loc = format!("{loc}?{q}");
        }
        let mut r = response(StatusCode::MOVED_PERMANENTLY, Bytes::new());
        r.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&loc).unwrap_or_else(|_| HeaderValue::from_static("/")),
        );
        return r;
    }
    let (op, result) = route(&req, &method, &path, body, state).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            e.log();
            e.response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Some(op) = op {
        use hyper::body::Body;
        state.metrics.observe(
            op,
            method.as_str(),
            resp.status().as_u16(),
            arrived.elapsed(),
            (request_size, resp.body().size_hint().exact().unwrap_or(0)),
        );
    }
    resp
}

type Routed = (Option<&'static str>, Result<Response, ApiError>);

async fn route(
    req: &Parts,
    method: &Method,
    path: &str,
    body: Incoming,
    state: &AppState,
) -> Routed {
    let route = Route::parse(method, path);
    let op = route.operation();
    let read = |gun| guard(req, state, gun, GunUse::Read, &["pull"]);
    let result = async {
        match route {
            Route::Ping => authorize(req, state, Access::catalog()).map(|_| text_ok(&b"{}"[..])),
            Route::Health => Ok(health(state).await),
            Route::Metrics => {
                let failures = health_checks(state).await;
                let up = (
                    !failures.contains_key(DB_CHECK),
                    !failures.contains_key(TRUST_CHECK),
                );
                let body = crate::metrics::render(
                    &state.metrics,
                    state.service.cache.len(),
                    state.service.coherence_counts(),
                    state.service.rotation_counts(),
                    crate::publication::round_counts(),
                    up,
                );
                let r = response(StatusCode::OK, body);
                Ok(with_type(r, "text/plain; version=0.0.4; charset=utf-8"))
            }
            Route::Changefeed { gun: None } => {
                authorize(req, state, Access::catalog())?;
                changefeed(req, None, state).await
            }
            Route::Changefeed { gun: Some(gun) } => {
                let gun = read(gun)?.0;
                changefeed(req, Some(&gun), state).await
            }
            Route::Update { gun } => {
                let (gun, subject) = guard(req, state, gun, GunUse::Update, &["push", "pull"])?;
                update(req, &gun, body, state, &actor(req, subject)).await
            }
            Route::Delete { gun } => {
                let (gun, subject) = guard(req, state, gun, GunUse::Write, &["*"])?;
                state.service.delete(&gun, &actor(req, subject)).await?;
                Ok(response(StatusCode::OK, Bytes::new()))
            }
            Route::ByHash {
                gun,
                role,
                checksum,
            } => {
                let gun = read(gun)?.0;
                let role = stored_role(role)?;
                let f = state.service.by_checksum(&gun, &role, checksum).await?;
                Ok(metadata_response(
                    req,
                    f,
                    state.max_age_consistent,
                    false,
                    state.auth.is_some(),
                )
                .await)
            }
            Route::ByVersion { gun, version, role } => {
                let gun = read(gun)?.0;
                let v = version.parse::<i64>().map_err(|_| ApiError::not_found())?;
                let role = stored_role(role)?;
                let f = state.service.by_version(&gun, &role, v).await?;
                Ok(metadata_response(
                    req,
                    f,
                    state.max_age_consistent,
                    false,
                    state.auth.is_some(),
                )
                .await)
            }
            Route::Current { gun, role } => {
                let gun = read(gun)?.0;
                let role = stored_role(role)?;
                let f = state.service.current(&gun, &role).await?;
                Ok(
                    metadata_response(req, f, state.max_age_current, true, state.auth.is_some())
                        .await,
                )
            }
            Route::GetKey { gun, role } => {
                let (gun, subject) = guard(req, state, gun, GunUse::Write, &["push", "pull"])?;
                let k = state
                    .service
                    .get_key(
                        &gun,
                        &key_role(role)?,
                        || may_create_key(req, state),
                        &actor(req, subject),
                    )
                    .await?;
                Ok(text_ok(k.to_go_json().into_bytes()))
            }
            Route::RotateKey { gun, role } => {
                let (gun, subject) = guard(req, state, gun, GunUse::Write, &["*"])?;
                may_create_key(req, state)?;
                let k = state
                    .service
                    .rotate_key(&gun, &key_role(role)?, &actor(req, subject))
                    .await?;
                Ok(text_ok(k.to_go_json().into_bytes()))
            }
            // 404 METADATA_NOT_FOUND without detail (after a catalog check, as in Go).
            Route::NotFound => authorize(req, state, Access::catalog())
                .and(Err(ApiError::new(Code::MetadataNotFound))),
        }
    };
    (op, result.await)
}

/// The role of a metadata read: a name that cannot be a role names nothing stored (404, as a
/// role never published).
fn stored_role(role: &str) -> Result<Role, ApiError> {
    Role::new(role).map_err(|_| ApiError::not_found())
}

/// The role of a key route (the route already allows only `timestamp` and `snapshot`).
fn key_role(role: &str) -> Result<Role, ApiError> {
    Role::new(role).map_err(|e| ApiError::with(Code::InvalidRole, serde_json::json!(e.to_string())))
}

/// A new server-managed key may be created for this client (`server.key_creations_per_minute`).
fn may_create_key(req: &Parts, state: &AppState) -> Result<(), ApiError> {
    let client = req.extensions.get::<ClientAddr>().map(|c| c.0);
    state
        .key_limiter
        .as_ref()
        .map_or(Ok(()), |l| l.take(client))
}

/// What a route does with its GUN: which error a bad one gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GunUse {
    /// Reads: a GUN that cannot exist is 404.
    Read,
    /// Deletion and the key routes: 400 `INVALID_GUN` (outside the prefixes: 404, as Go).
    Write,
    /// Publish: 400 `INVALID_GUN` either way.
    Update,
}

/// The checks every GUN route runs first: the GUN grammar (`gun.rs`: nothing that fails it
/// reaches the service), then, in Go's order, the GUN prefix filter and the token. The GUN
/// and the token's subject.
fn guard(
    req: &Parts,
    state: &AppState,
    gun: &str,
    usage: GunUse,
    actions: &[&'static str],
) -> Result<(Gun, Option<String>), ApiError> {
    let gun = Gun::new(gun).map_err(|e| match usage {
        GunUse::Read => ApiError::not_found(),
        GunUse::Write | GunUse::Update => {
            ApiError::with(Code::InvalidGun, serde_json::Value::String(e.to_string()))
        }
    })?;
    if let Some(e) = prefix_error(&gun, state, usage == GunUse::Update) {
        return Err(e);
    }
    let subject = authorize(req, state, Access::repo(&gun, actions))?;
    Ok((gun, subject))
}

fn prefix_error(gun: &str, state: &AppState, is_update: bool) -> Option<ApiError> {
    if state.gun_prefixes.is_empty()
        || state
            .gun_prefixes
            .iter()
            .any(|p| gun.starts_with(p.as_str()))
    {
        return None;
    }
    Some(if is_update {
        ApiError::with(
            Code::InvalidGun,
            serde_json::Value::String(format!(
                "Require GUNs with prefix: [{}]",
                state.gun_prefixes.join(" ")
            )),
        )
    } else {
        ApiError::new(Code::MetadataNotFound)
    })
}

async fn changefeed(
    req: &Parts,
    gun: Option<&Gun>,
    state: &AppState,
) -> Result<Response, ApiError> {
    let q = serde_urlencoded::from_str::<std::collections::HashMap<String, String>>(
        req.uri.query().unwrap_or(""),
    )
    .map_err(|_| ApiError::empty_detail(Code::InvalidParameters))?;
    // Go's parameters: `records` is required (its strconv message in the detail), an empty
    // `change_id` is 0.
    let records = q.get("records").map(String::as_str).unwrap_or("");
    let records: i32 = records.parse().map_err(|_| {
        ApiError::with(
            Code::InvalidParameters,
            serde_json::json!(format!(
                "invalid records parameter: strconv.ParseInt: parsing {records:?}: invalid syntax"
            )),
        )
    })?;
    let change_id = match q.get("change_id").map(String::as_str).unwrap_or("") {
        "" => 0,
        id => id
            .parse::<i32>()
            .map_err(|_| ApiError::empty_detail(Code::InvalidParameters))?,
    };
    let page = state.service.changes(gun, change_id, records).await?;
    Ok(text_ok(page.json.clone()))
}

#[cfg(test)]
mod tests {
    use super::answer::http_date;
    use super::upload::multipart_boundary;
    use super::*;

    #[test]
    fn http_dates() {
        let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        for s in [
            "1994-11-06 08:49:37",
            "2026-02-28 23:59:59",
            "1970-01-01 00:00:00",
            "1969-12-31 23:59:59",
            "9999-12-31 23:59:59",
        ] {
            assert_eq!(
                http_date(t(s)),
                t(s).and_utc()
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string(),
                "{s}"
            );
        }
    }

    #[test]
    fn path_cleaning() {
        assert_eq!(clean_path("/v2/"), "/v2/");
        assert_eq!(clean_path("/v2//x/./y/../_trust/tuf/"), "/v2/x/_trust/tuf/");
        assert_eq!(clean_path("/"), "/");
        // The no-copy path answers exactly as the segment walk (Go's path.Clean) does.
        for p in [
            "",
            "/",
            "/v2/",
            "v2/x",
            "/v2/x",
            "/v2/x/",
            "/v2//x",
            "/v2/./x",
            "/v2/../x",
            "/v2/x/.",
            "/v2/x/..",
            "/v2/.x/..y/...",
            "/.",
            "/..",
            "//",
            "/v2/x/_trust/tuf/root.json",
        ] {
            assert_eq!(clean_path(p), walk_clean(p), "{p:?}");
            if walk_clean(p) == p {
                assert!(
                    matches!(clean_path(p), std::borrow::Cow::Borrowed(_)),
                    "{p:?}"
                );
            }
        }
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            multipart_boundary("multipart/mixed; boundary=\"x y\"").as_deref(),
            Some("x y")
        );
        assert!(multipart_boundary("application/json").is_none());
        assert!(multipart_boundary("multipart/form-data").is_none());
    }
}
