//! The Notary HTTP API (server-api.md §2–§3): a thin layer over [`RepoService`]. Routing
//! (`routes.rs`) accepts exactly what the Go server's gorilla/mux patterns accept, so GUN
//! matching (slashes, greedy `[^*]+`) behaves identically.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Datelike;
use futures_util::StreamExt;

use crate::auth::{Access, TokenAuth};
use crate::errors::{ApiError, Code};
use crate::metrics::Metrics;
use crate::routes;
use crate::service::RepoService;
use crate::storage::StoredFile;

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
}

fn authorize(req: &HttpRequest, state: &AppState, required: Vec<Access>) -> Result<(), ApiError> {
    match &state.auth {
        Some(a) => a.check(req, &required),
        None => Ok(()),
    }
}

/// Go `path.Clean`, keeping a trailing slash as gorilla's `cleanPath` does.
fn clean_path(p: &str) -> String {
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

/// GUNs we accept: the Go column limit, no control characters, no `..`/empty segments.
fn gun_is_acceptable(gun: &str) -> bool {
    gun.len() <= 255 && !gun.chars().any(char::is_control) && !gun.split('/').any(|s| s.is_empty() || s == "." || s == "..")
}

pub async fn dispatch(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let arrived = std::time::Instant::now();
    let method = req.method().clone();
    if ![Method::GET, Method::POST, Method::PUT, Method::HEAD, Method::DELETE].contains(&method) {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let raw = req.uri().path();
    let path = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    let cleaned = clean_path(&path);
    if cleaned != path {
        let mut loc = cleaned;
        if let Some(q) = req.uri().query() {
            loc = format!("{loc}?{q}");
        }
        return HttpResponse::MovedPermanently().insert_header((header::LOCATION, loc)).finish();
    }
    let (op, result) = route(&req, &method, &path, body, &state).await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => actix_web::ResponseError::error_response(&e),
    };
    if let Some(op) = op {
        state.metrics.observe(op, method.as_str(), resp.status().as_u16(), arrived.elapsed());
    }
    resp
}

type Routed = (Option<&'static str>, Result<HttpResponse, ApiError>);

async fn route(req: &HttpRequest, method: &Method, path: &str, body: web::Payload, state: &AppState) -> Routed {
    let get = method == Method::GET;
    if get && path == "/v2/" {
        return (None, authorize(req, state, Access::catalog()).map(|_| text_ok(b"{}".to_vec())));
    }
    if get && path == "/_notary_server/health" {
        return (None, Ok(health(state).await));
    }
    if get && path == "/metrics" {
        let (files, chains, bytes) = state.service.cache.len();
        let body = format!(
            "{}# HELP notary_rs_cache_files Metadata files held by the read cache.\n# TYPE notary_rs_cache_files gauge\nnotary_rs_cache_files {files}\n\
             # HELP notary_rs_cache_repositories Repositories whose current chain is cached.\n# TYPE notary_rs_cache_repositories gauge\nnotary_rs_cache_repositories {chains}\n\
             # HELP notary_rs_cache_bytes Approximate bytes held by the read cache.\n# TYPE notary_rs_cache_bytes gauge\nnotary_rs_cache_bytes {bytes}\n",
            state.metrics.render()
        );
        return (None, Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body)));
    }
    if get && path == "/v2/_trust/changefeed" {
        return (
            Some("Changefeed"),
            async {
                authorize(req, state, Access::catalog())?;
                changefeed(req, None, state).await
            }
            .await,
        );
    }
    if method == Method::POST {
        if let Some(gun) = routes::update(path) {
            let res = async {
                guard(req, state, gun, true, &["push", "pull"])?;
                update(req, gun, body, state).await
            };
            return (Some("UpdateTUF"), res.await);
        }
    }
    if get {
        if let Some((gun, role, checksum)) = routes::by_hash(path) {
            let res = async {
                guard(req, state, gun, false, &["pull"])?;
                let f = state.service.by_checksum(gun, role, checksum).await?;
                Ok(metadata_response(req, f, state.max_age_consistent, false))
            };
            return (Some("GetRoleByHash"), res.await);
        }
        if let Some((gun, version, role)) = routes::by_version(path) {
            let res = async {
                guard(req, state, gun, false, &["pull"])?;
                let v = version.parse::<i64>().map_err(|_| ApiError::not_found())?;
                let f = state.service.by_version(gun, role, v).await?;
                Ok(metadata_response(req, f, state.max_age_consistent, false))
            };
            return (Some("GetRoleByVersion"), res.await);
        }
        if let Some((gun, role)) = routes::current(path) {
            let res = async {
                guard(req, state, gun, false, &["pull"])?;
                let f = state.service.current(gun, role).await?;
                Ok(metadata_response(req, f, state.max_age_current, true))
            };
            return (Some("GetRole"), res.await);
        }
    }
    if let Some((gun, role)) = routes::key(path) {
        if get || method == Method::POST {
            let res = async {
                guard(req, state, gun, false, if get { &["push", "pull"] } else { &["*"] })?;
                if !gun_is_acceptable(gun) {
                    return Err(ApiError::new(Code::InvalidGun));
                }
                let k = if get { state.service.get_key(gun, role).await? } else { state.service.rotate_key(gun, role).await? };
                Ok(text_ok(k.to_go_json().into_bytes()))
            };
            return (Some(if get { "GetKey" } else { "RotateKey" }), res.await);
        }
    }
    if method == Method::DELETE {
        if let Some(gun) = routes::update(path) {
            let res = async {
                guard(req, state, gun, false, &["*"])?;
                state.service.delete(gun).await?;
                Ok(HttpResponse::Ok().finish())
            };
            return (Some("DeleteTUF"), res.await);
        }
    }
    if get {
        if let Some(gun) = routes::changefeed(path) {
            let res = async {
                guard(req, state, gun, false, &["pull"])?;
                changefeed(req, Some(gun), state).await
            };
            return (Some("Changefeed"), res.await);
        }
    }
    // The catch-all: 404 METADATA_NOT_FOUND without detail (after a catalog check, as in Go).
    (None, authorize(req, state, Access::catalog()).and(Err(ApiError::new(Code::MetadataNotFound))))
}

/// The checks every GUN route runs first, in Go's order: the GUN prefix filter, then the token.
fn guard(req: &HttpRequest, state: &AppState, gun: &str, is_update: bool, actions: &[&'static str]) -> Result<(), ApiError> {
    if let Some(e) = prefix_error(gun, state, is_update) {
        return Err(e);
    }
    authorize(req, state, Access::repo(gun, actions))
}

fn prefix_error(gun: &str, state: &AppState, is_update: bool) -> Option<ApiError> {
    if state.gun_prefixes.is_empty() || state.gun_prefixes.iter().any(|p| gun.starts_with(p.as_str())) {
        return None;
    }
    Some(if is_update {
        ApiError::with(Code::InvalidGun, serde_json::Value::String(format!("Require GUNs with prefix: [{}]", state.gun_prefixes.join(" "))))
    } else {
        ApiError::new(Code::MetadataNotFound)
    })
}

fn text_ok(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(body)
}

fn metadata_response(req: &HttpRequest, f: StoredFile, max_age: i64, current: bool) -> HttpResponse {
    let etag = format!("\"{}\"", f.sha256);
    let not_modified = if_none_match(req, &etag);
    let mut b = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    b.insert_header((header::ETAG, etag));
    b.insert_header((header::LAST_MODIFIED, http_date(f.modified)));
    if max_age == 0 {
        b.insert_header((header::CACHE_CONTROL, "max-age=0, no-cache, no-store"));
        b.insert_header((header::PRAGMA, "no-cache"));
    } else if current {
        b.insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}, s-maxage={max_age}, must-revalidate")));
    } else {
        b.insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}, s-maxage={max_age}")));
    }
    if not_modified {
        return b.finish();
    }
    b.content_type("text/plain; charset=utf-8").body(f.data)
}

fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        .unwrap_or(false)
}

async fn health(state: &AppState) -> HttpResponse {
    // Each check is bounded: a database that does not answer is reported, not waited for.
    let limit = std::time::Duration::from_secs(3);
    let mut failures = serde_json::Map::new();
    match tokio::time::timeout(limit, state.service.store.health()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => drop(failures.insert("DB operational".into(), e.to_string().into())),
        Err(_) => drop(failures.insert("DB operational".into(), "database did not answer within 3s".into())),
    }
    match tokio::time::timeout(limit, state.service.crypto.health()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => drop(failures.insert("Trust operational".into(), e.to_string().into())),
        Err(_) => drop(failures.insert("Trust operational".into(), "signing service did not answer within 3s".into())),
    }
    let status = if failures.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).content_type("application/json; charset=utf-8").body(serde_json::Value::Object(failures).to_string())
}

async fn changefeed(req: &HttpRequest, gun: Option<&str>, state: &AppState) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::empty_detail(Code::InvalidParameters))?;
    let records = q.get("records").map(String::as_str).unwrap_or("");
    let change_id = q.get("change_id").map(String::as_str).unwrap_or("");
    let v = state.service.changes(gun, change_id, records).await?;
    Ok(text_ok(serde_json::to_vec(&v).map_err(ApiError::internal)?))
}

async fn update(req: &HttpRequest, gun: &str, mut body: web::Payload, state: &AppState) -> Result<HttpResponse, ApiError> {
    if !gun_is_acceptable(gun) {
        return Err(ApiError::with(
            Code::InvalidGun,
            serde_json::Value::String(
                "GUN must be at most 255 characters, without control characters or empty, '.' or '..' segments".into(),
            ),
        ));
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("");
    let boundary = multipart_boundary(content_type).ok_or_else(|| ApiError::new(Code::MalformedUpload))?;
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok()) {
        if len > state.max_upload_bytes {
            return Err(ApiError::new(Code::TooLarge));
        }
    }
    let read = async {
        let mut data = web::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| ApiError::new(Code::MalformedUpload))?;
            if data.len() + chunk.len() > state.max_upload_bytes {
                return Err(ApiError::new(Code::TooLarge));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    };
    let data = tokio::time::timeout(state.upload_timeout, read).await.map_err(|_| {
        tracing::info!(gun, "upload took longer than the upload timeout");
        ApiError::new(Code::UploadTimeout)
    })??;
    let parts = parse_multipart(data.freeze(), boundary).await?;
    state.service.publish(gun, parts).await?;
    Ok(HttpResponse::Ok().finish())
}

/// `multipart/form-data` or `multipart/mixed` with a boundary, as Go's `MultipartReader` accepts.
fn multipart_boundary(content_type: &str) -> Option<String> {
    let mime: mime::Mime = content_type.parse().ok()?;
    if mime.type_() != mime::MULTIPART || !(mime.subtype() == mime::FORM_DATA || mime.subtype() == "mixed") {
        return None;
    }
    mime.get_param(mime::BOUNDARY).map(|b| b.as_str().to_string()).filter(|b| !b.is_empty())
}

/// Parts as (role, bytes). The role is the raw `filename` parameter (slashes kept) minus an
/// optional `.json`.
async fn parse_multipart(data: bytes::Bytes, boundary: String) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
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
        let role = filename.strip_suffix(".json").unwrap_or(&filename).to_string();
        if !notary_tuf::metadata::is_valid_role(&role) {
            return Err(ApiError::with(Code::InvalidRole, serde_json::Value::String(role)));
        }
        let bytes = field.bytes().await.map_err(|_| ApiError::new(Code::MalformedUpload))?;
        parts.push((role, bytes.to_vec()));
    }
    Ok(parts)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); httpdate formats a cached read's date in a
/// tenth of the time chrono's format strings take.
fn http_date(t: chrono::NaiveDateTime) -> String {
    match u64::try_from(t.and_utc().timestamp()) {
        Ok(secs) if t.year() <= 9999 => httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)),
        _ => t.and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        for s in ["1994-11-06 08:49:37", "2026-02-28 23:59:59", "1970-01-01 00:00:00", "1969-12-31 23:59:59", "9999-12-31 23:59:59"] {
            assert_eq!(http_date(t(s)), t(s).and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string(), "{s}");
        }
    }

    #[test]
    fn path_cleaning() {
        assert_eq!(clean_path("/v2/"), "/v2/");
        assert_eq!(clean_path("/v2//x/./y/../_trust/tuf/"), "/v2/x/_trust/tuf/");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn gun_checks() {
        assert!(gun_is_acceptable("docker.io/library/alpine"));
        assert!(gun_is_acceptable("localhost:5000/a"));
        assert!(!gun_is_acceptable("a/../b"));
        assert!(!gun_is_acceptable("a\nb"));
        assert!(!gun_is_acceptable(&"a".repeat(256)));
    }

    #[test]
    fn boundaries() {
        assert_eq!(multipart_boundary("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(multipart_boundary("multipart/mixed; boundary=\"x y\"").as_deref(), Some("x y"));
        assert!(multipart_boundary("application/json").is_none());
        assert!(multipart_boundary("multipart/form-data").is_none());
    }
}
