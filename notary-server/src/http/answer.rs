//! Answers: metadata with its validators and cache headers, the health check, and the small
//! helpers every route answers with.

use bytes::Bytes;
use chrono::Datelike;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::StatusCode;

use super::AppState;
use crate::errors::{response, Response};
use crate::storage::StoredFile;

pub(super) fn with_type(mut r: Response, content_type: &'static str) -> Response {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(super) fn text_ok(body: impl Into<Bytes>) -> Response {
    with_type(response(StatusCode::OK, body), "text/plain; charset=utf-8")
}

/// A header value made of what we format ourselves (digits, hex, ASCII words).
pub(super) fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A metadata file's answer. Under token auth it is `private`: a shared cache must not hand a
/// token-protected file to a client without a token (Go answers `public` there too).
pub(super) async fn metadata_response(
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
        f.gzip_ready().await;
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

pub(super) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
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
pub(super) const DB_CHECK: &str = "DB operational";
pub(super) const TRUST_CHECK: &str = "Trust operational";

/// The database and signing-service checks (each bounded: a dependency that does not answer is
/// reported, not waited for): what failed, and why.
pub(super) async fn health_checks(state: &AppState) -> serde_json::Map<String, serde_json::Value> {
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

pub(super) async fn health(state: &AppState) -> Response {
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

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); httpdate formats a cached read's date in a
/// tenth of the time chrono's format strings take.
pub(super) fn http_date(t: chrono::NaiveDateTime) -> String {
    match u64::try_from(t.and_utc().timestamp()) {
        Ok(secs) if t.year() <= 9999 => {
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        }
        _ => t.and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    }
}
