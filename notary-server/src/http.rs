//! The Notary HTTP API (docs/api.md): a thin layer over [`RepoService`]. Routing
//! (`routes.rs`) accepts exactly what the Go server's gorilla/mux patterns accept, so GUN
//! matching (slashes, greedy `[^*]+`) behaves identically. The connections themselves are
//! served by `serve.rs`.

use crate::audit::Actor;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Datelike;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::auth::{Access, TokenAuth};
pub use crate::errors::{response, Response};
use crate::errors::{ApiError, Code};
use crate::gun::Gun;
use crate::metrics::Metrics;
use crate::routes::Route;
use crate::service::RepoService;
use crate::storage::StoredFile;
use notary_common::sync::lock;

pub struct AppState {
    pub service: Arc<RepoService>,
    pub max_age_current: i64,
    pub max_age_consistent: i64,
    pub gun_prefixes: Vec<String>,
    pub max_upload_bytes: usize,
    /// Longest a publish body may take to arrive (a slow client holds nothing longer).
    pub upload_timeout: std::time::Duration,
    pub metrics: Arc<Metrics>,
    pub auth: Option<TokenAuth>,
    /// Without token auth: how many keys one client address may create per minute.
    pub key_limiter: Option<KeyLimiter>,
    /// KiB of publish bodies held at once (`server.max_concurrent_upload_bytes`).
    pub upload_budget: Arc<tokio::sync::Semaphore>,
    pub upload_budget_kib: usize,
}

/// Largest part per role: roots and timestamps are small in any real repository (the Go client
/// refuses a timestamp over 1 MiB); snapshots list one entry per delegation. Targets and
/// delegations may be as large as `server.max_upload_bytes`.
fn part_limit(role: &str, max_upload: usize) -> usize {
    match role {
        notary_tuf::metadata::ROOT | notary_tuf::metadata::TIMESTAMP => 1 << 20,
        notary_tuf::metadata::SNAPSHOT => (16 << 20).min(max_upload),
        _ => max_upload,
    }
}

/// The address a request came from (set by `serve.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

/// A fixed one-minute window of key creations per client address.
pub struct KeyLimiter {
    per_minute: u32,
    windows:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (std::time::Instant, u32)>>,
}

impl KeyLimiter {
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
pub struct RequestId(pub String);

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

pub async fn dispatch(req: http::Request<Incoming>, state: &AppState) -> Response {
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
                let f = state.service.by_checksum(&gun, role, checksum).await?;
                Ok(metadata_response(
                    req,
                    f,
                    state.max_age_consistent,
                    false,
                    state.auth.is_some(),
                ))
            }
            Route::ByVersion { gun, version, role } => {
                let gun = read(gun)?.0;
                let v = version.parse::<i64>().map_err(|_| ApiError::not_found())?;
                let f = state.service.by_version(&gun, role, v).await?;
                Ok(metadata_response(
                    req,
                    f,
                    state.max_age_consistent,
                    false,
                    state.auth.is_some(),
                ))
            }
            Route::Current { gun, role } => {
                let gun = read(gun)?.0;
                let f = state.service.current(&gun, role).await?;
                Ok(metadata_response(
                    req,
                    f,
                    state.max_age_current,
                    true,
                    state.auth.is_some(),
                ))
            }
            Route::GetKey { gun, role } => {
                let (gun, subject) = guard(req, state, gun, GunUse::Write, &["push", "pull"])?;
                let k = state
                    .service
                    .get_key(
                        &gun,
                        role,
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
                    .rotate_key(&gun, role, &actor(req, subject))
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

fn with_type(mut r: Response, content_type: &'static str) -> Response {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text_ok(body: impl Into<Bytes>) -> Response {
    with_type(response(StatusCode::OK, body), "text/plain; charset=utf-8")
}

/// A header value made of what we format ourselves (digits, hex, ASCII words).
fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A metadata file's answer. Under token auth it is `private`: a shared cache must not hand a
/// token-protected file to a client without a token (Go answers `public` there too).
fn metadata_response(
    req: &Parts,
    f: StoredFile,
    max_age: i64,
    current: bool,
    private: bool,
) -> Response {
    let etag = format!("\"{}\"", f.sha256);
    let not_modified = if_none_match(&req.headers, &etag);
    // A large file's gzip copy, to a client that takes it (`compression`).
    let compressible = f.compressible();
    let takes_gzip = compressible
        && crate::compression::accepts_gzip(
            req.headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
    let gzip = if takes_gzip && !not_modified {
        f.gzip().cloned()
    } else {
        None
    };
    let compressed = gzip.is_some();
    let mut r = if not_modified {
        response(StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        text_ok(gzip.unwrap_or(f.data))
    };
    let h = r.headers_mut();
    if compressible {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if compressed {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if takes_gzip {
        // The representation a gzip-taking client gets may be compressed: a weak validator.
        h.insert(header::ETAG, value(format!("W/{etag}")));
    } else {
        h.insert(header::ETAG, value(etag));
    }
    h.insert(header::LAST_MODIFIED, value(http_date(f.modified)));
    if max_age == 0 {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, no-cache, no-store"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    } else {
        let scope = if private {
            format!("private, max-age={max_age}")
        } else {
            format!("public, max-age={max_age}, s-maxage={max_age}")
        };
        let revalidate = if current { ", must-revalidate" } else { "" };
        h.insert(header::CACHE_CONTROL, value(format!("{scope}{revalidate}")));
    }
    r
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',').any(|t| {
                // Weak comparison: the gzip representation's `W/` tag matches too.
                let t = t.trim();
                t.strip_prefix("W/").unwrap_or(t) == etag || t == "*"
            })
        })
        .unwrap_or(false)
}

/// The health check names, as Go's server reports them.
const DB_CHECK: &str = "DB operational";
const TRUST_CHECK: &str = "Trust operational";

/// The database and signing-service checks (each bounded: a dependency that does not answer is
/// reported, not waited for): what failed, and why.
async fn health_checks(state: &AppState) -> serde_json::Map<String, serde_json::Value> {
    let limit = std::time::Duration::from_secs(3);
    let mut failures = serde_json::Map::new();
    match tokio::time::timeout(limit, state.service.store.health()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => drop(failures.insert(DB_CHECK.into(), e.to_string().into())),
        Err(_) => {
            drop(failures.insert(DB_CHECK.into(), "database did not answer within 3s".into()))
        }
    }
    match tokio::time::timeout(limit, state.service.crypto.health()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => drop(failures.insert(TRUST_CHECK.into(), e.to_string().into())),
        Err(_) => drop(failures.insert(
            TRUST_CHECK.into(),
            "signing service did not answer within 3s".into(),
        )),
    }
    failures
}

async fn health(state: &AppState) -> Response {
    let failures = health_checks(state).await;
    let status = if failures.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    with_type(
        response(status, serde_json::Value::Object(failures).to_string()),
        "application/json; charset=utf-8",
    )
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
    let v = state.service.changes(gun, change_id, records).await?;
    Ok(text_ok(serde_json::to_vec(&v).map_err(ApiError::internal)?))
}

async fn update(
    req: &Parts,
    gun: &Gun,
    mut body: Incoming,
    state: &AppState,
    actor: &Actor,
) -> Result<Response, ApiError> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .unwrap_or("");
    let boundary =
        multipart_boundary(content_type).ok_or_else(|| ApiError::new(Code::MalformedUpload))?;
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > state.max_upload_bytes) {
        return Err(ApiError::new(Code::TooLarge));
    }
    // The body, its parts and their parsed trees are held until the publish ends: an upload takes
    // what it has received from a shared budget as it arrives (a trickling client holds only what
    // it sent; one upload alone may always grow to the limit).
    let read = async {
        // Sized once from Content-Length: growing by doubling would hold up to twice the body.
        let mut data = bytes::BytesMut::with_capacity(declared.unwrap_or(0));
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::new(Code::MalformedUpload))?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if data.len() + chunk.len() > state.max_upload_bytes {
                return Err(ApiError::new(Code::TooLarge));
            }
            data.extend_from_slice(&chunk);
            let want = (data.len() / 1024 + 1).min(state.upload_budget_kib);
            let have = held.as_ref().map_or(0, |p| p.num_permits());
            if want > have {
                let more = state
                    .upload_budget
                    .clone()
                    .acquire_many_owned((want - have) as u32)
                    .await
                    .map_err(|_| ApiError::new(Code::UploadsBusy))?;
                match &mut held {
                    Some(p) => p.merge(more),
                    None => held = Some(more),
                }
            }
        }
        Ok((data, held))
    };
    let (data, _budget) = tokio::time::timeout(state.upload_timeout, read)
        .await
        .map_err(|_| {
            tracing::info!(
                gun = %gun,
                "upload took longer than the upload timeout (or waited that long for memory)"
            );
            ApiError::new(Code::UploadTimeout)
        })??;
    let parts = parse_multipart(data.freeze(), boundary, state.max_upload_bytes).await?;
    state.service.publish(gun, parts, actor).await?;
    Ok(response(StatusCode::OK, Bytes::new()))
}

/// `multipart/form-data` or `multipart/mixed` with a boundary, as Go's `MultipartReader` accepts.
fn multipart_boundary(content_type: &str) -> Option<String> {
    let mime: mime::Mime = content_type.parse().ok()?;
    if mime.type_() != mime::MULTIPART
        || !(mime.subtype() == mime::FORM_DATA || mime.subtype() == "mixed")
    {
        return None;
    }
    mime.get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_string())
        .filter(|b| !b.is_empty())
}

/// Parts as (role, bytes). The role is the raw `filename` parameter (slashes kept) minus an
/// optional `.json`.
async fn parse_multipart(
    data: Bytes,
    boundary: String,
    max_upload: usize,
) -> Result<Vec<(String, Bytes)>, ApiError> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(data) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::info!(error = %e, "malformed multipart upload");
                return Err(ApiError::new(Code::MalformedUpload));
            }
        };
        let filename = field.file_name().map(str::to_owned).unwrap_or_default();
        if filename.is_empty() {
            return Err(ApiError::new(Code::NoFilename));
        }
        let role = filename
            .strip_suffix(".json")
            .unwrap_or(&filename)
            .to_string();
        if !notary_tuf::metadata::is_valid_role(&role) {
            return Err(ApiError::with(
                Code::InvalidRole,
                serde_json::Value::String(role),
            ));
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|_| ApiError::new(Code::MalformedUpload))?;
        if bytes.len() > part_limit(&role, max_upload) {
            tracing::info!(
                role,
                bytes = bytes.len(),
                "part larger than its role's limit"
            );
            return Err(ApiError::with(
                Code::TooLarge,
                serde_json::Value::String(format!(
                    "{role} larger than {} bytes",
                    part_limit(&role, max_upload)
                )),
            ));
        }
        // (Slices of the body: no copy.)
        parts.push((role, bytes));
    }
    Ok(parts)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); httpdate formats a cached read's date in a
/// tenth of the time chrono's format strings take.
fn http_date(t: chrono::NaiveDateTime) -> String {
    match u64::try_from(t.and_utc().timestamp()) {
        Ok(secs) if t.year() <= 9999 => {
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        }
        _ => t.and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    }
}

#[cfg(test)]
mod tests {
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
