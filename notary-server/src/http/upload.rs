//! A publish's body: the multipart upload read within the size, time and memory budgets
//! (`server.limits`), and split into one part per role.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{AppState, Response};
use crate::audit::Actor;
use crate::errors::{response, ApiError, Code};
use crate::gun::Gun;

/// Largest part per role: roots and timestamps are small in any real repository (the Go client
/// refuses a timestamp over 1 MiB); snapshots list one entry per delegation. Targets and
/// delegations may be as large as `server.max_upload_bytes`.
pub(super) fn part_limit(role: &str, max_upload: usize) -> usize {
    match role {
        notary_tuf::metadata::ROOT | notary_tuf::metadata::TIMESTAMP => 1 << 20,
        notary_tuf::metadata::SNAPSHOT => (16 << 20).min(max_upload),
        _ => max_upload,
    }
}

pub(super) async fn update(
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
pub(super) fn multipart_boundary(content_type: &str) -> Option<String> {
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
pub(super) async fn parse_multipart(
    data: Bytes,
    boundary: String,
    max_upload: usize,
) -> Result<Vec<(String, Bytes)>, ApiError> {
    let body_len = data.len();
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
    Ok(compact(parts, body_len))
}

/// Parts stay slices of the request body through validation, storage and into the cache, so
/// the cache holds the whole body for them. A body mostly made of what is not kept (an
/// uploaded timestamp, which the server replaces, a part repeated under one role, whose last
/// copy wins) has its kept parts copied out instead: no cached file holds more than 64 KiB
/// beyond what the cache counts for it.
fn compact(mut parts: Vec<(String, Bytes)>, body_len: usize) -> Vec<(String, Bytes)> {
    let mut kept = std::collections::BTreeMap::new();
    for (role, bytes) in &parts {
        if role != notary_tuf::metadata::TIMESTAMP {
            kept.insert(role.as_str(), bytes.len());
        }
    }
    if body_len > kept.values().sum::<usize>() + 64 * 1024 {
        for (_, bytes) in &mut parts {
            *bytes = Bytes::copy_from_slice(bytes);
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `part` still points into `body`.
    fn shares(body: &Bytes, part: &Bytes) -> bool {
        body.as_ptr_range().contains(&part.as_ptr())
    }

    #[test]
    fn parts_stay_slices_of_the_body_unless_most_of_it_is_not_kept() {
        let body = Bytes::from(vec![b'x'; 300 * 1024]);
        let parts = |spec: &[(&str, std::ops::Range<usize>)]| {
            spec.iter()
                .map(|(role, r)| (role.to_string(), body.slice(r.clone())))
                .collect::<Vec<_>>()
        };
        let k = 1024;
        // targets and snapshot are the whole body: kept as slices.
        let p = compact(
            parts(&[("targets", 0..250 * k), ("snapshot", 250 * k..300 * k)]),
            body.len(),
        );
        assert!(p.iter().all(|(_, b)| shares(&body, b)));
        // A 200 KiB uploaded timestamp the server replaces: the rest is copied out.
        let p = compact(
            parts(&[("targets", 0..100 * k), ("timestamp", 100 * k..300 * k)]),
            body.len(),
        );
        assert!(p.iter().all(|(_, b)| !shares(&body, b)));
        assert_eq!(p[0].1.len(), 100 * k);
        // targets twice: only the last counts.
        let p = compact(
            parts(&[("targets", 0..150 * k), ("targets", 150 * k..300 * k)]),
            body.len(),
        );
        assert!(p.iter().all(|(_, b)| !shares(&body, b)));
    }
}
