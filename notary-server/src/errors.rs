//! The Go error envelope (docker/distribution errcode) with Notary's codes, statuses and
//! messages (`docs/api.md`), the HTTP response type, and the one mapping of the service's
//! errors ([`ServiceError`]: storage, signing, validation) to what the client gets. The cause
//! travels with the [`ApiError`] and is logged once, by `http::dispatch`, when it is answered.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::StatusCode;
use http_body_util::Full;
use notary_signer::CryptoError;
use serde_json::{json, Value};

use crate::service::ServiceError;
use crate::storage::StoreError;

/// Every response has its whole body at hand: metadata files are small and cached.
pub type Response = http::Response<Full<Bytes>>;

/// A response with this status and body, and no headers yet.
pub fn response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    NoFilename,
    InvalidRole,
    MalformedJson,
    Updating,
    Version,
    MetadataNotFound,
    InvalidUpdate,
    MalformedUpload,
    InvalidGun,
    InvalidParameters,
    Unknown,
    Unauthorized,
    /// Not a Go code: the signing service is down (Go answers 400/500 here).
    SignerUnavailable,
    /// Not a Go code: the upload exceeds the configured size limit.
    TooLarge,
    UploadTimeout,
    StorageUnavailable,
    ReadOnly,
    /// Not a Go code: a request path longer than any Notary route needs.
    UriTooLong,
    /// Not a Go code: this client created too many keys in the last minute.
    TooManyKeys,
    /// Not a Go code: the uploads being processed already hold the configured memory budget.
    UploadsBusy,
    /// Not a Go code: a signing key cannot be decrypted with the configured passphrase.
    KeyLocked,
}

impl Code {
    pub fn parts(self) -> (&'static str, u16, &'static str) {
        match self {
            Code::NoFilename => ("NO_FILENAME", 400, "No file/role name provided."),
            Code::InvalidRole => ("INVALID_ROLE", 400, "The role you are attempting to operate on is invalid."),
            Code::MalformedJson => ("MALFORMED_JSON", 400, "JSON sent by the client could not be parsed by the server"),
            Code::Updating => ("UPDATING", 500, "An error has occurred while updating the TUF repository."),
            Code::Version => ("VERSION", 400, "A newer version of metadata is already available."),
            Code::MetadataNotFound => ("METADATA_NOT_FOUND", 404, "You have requested metadata that does not exist."),
            Code::InvalidUpdate => ("INVALID_UPDATE", 400, "Update sent by the client is invalid."),
            Code::MalformedUpload => ("MALFORMED_UPLOAD", 400, "The body of your request is malformed."),
            Code::InvalidGun => ("INVALID_GUN", 400, "The server does not support actions on images of this name."),
            Code::InvalidParameters => ("INVALID_PARAMETERS", 400, "The parameters provided are not valid."),
            Code::Unknown => ("UNKNOWN", 500, "unknown error"),
            Code::Unauthorized => ("UNAUTHORIZED", 401, "authentication required"),
            Code::SignerUnavailable => ("UNAVAILABLE", 503, "The signing service is unavailable; try again later."),
            Code::TooLarge => ("MALFORMED_UPLOAD", 413, "The body of your request is too large."),
            Code::ReadOnly => ("UNSUPPORTED", 405, "This instance is read-only; publish through a primary instance."),
            Code::StorageUnavailable => ("UNAVAILABLE", 503, "The metadata database is unavailable; try again later."),
            Code::UriTooLong => ("URI_TOO_LONG", 414, "The request path is longer than 8192 bytes."),
            Code::KeyLocked => (
                "UNAVAILABLE",
                503,
                "The signing keys' passphrase configuration does not allow this operation; the operator must fix it (see the server log).",
            ),
            Code::UploadsBusy => ("UNAVAILABLE", 503, "Too many large uploads are being processed; try again later."),
            Code::TooManyKeys => ("TOO_MANY_REQUESTS", 429, "Too many new keys from this client; try again in a minute."),
            Code::UploadTimeout => ("MALFORMED_UPLOAD", 408, "The body of your request arrived too slowly."),
        }
    }
}

/// What the log says about a failed request (see [`ApiError::log`]).
#[derive(Debug, Clone)]
pub struct Cause {
    /// How loud: a client's mistake is `INFO`, an outage `WARN`, a bug `ERROR`.
    pub level: tracing::Level,
    /// What happened, as the log message.
    pub what: &'static str,
    /// Why, with its cause chain.
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub detail: Option<Value>,
    /// `Www-Authenticate` challenge of a 401.
    pub challenge: Option<String>,
    /// What went wrong and how loud to log it (see [`ApiError::log`]); not sent.
    pub cause: Option<Cause>,
}

impl ApiError {
    pub fn new(code: Code) -> Self {
        ApiError {
            code,
            detail: None,
            challenge: None,
            cause: None,
        }
    }
    pub fn with(code: Code, detail: Value) -> Self {
        ApiError {
            code,
            detail: Some(detail),
            challenge: None,
            cause: None,
        }
    }
    /// Go's "empty struct" detail, serialised as `{}`.
    pub(crate) fn empty_detail(code: Code) -> Self {
        Self::with(code, json!({}))
    }
    pub fn not_found() -> Self {
        Self::empty_detail(Code::MetadataNotFound)
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Self::empty_detail(Code::Unknown).because(INTERNAL.0, INTERNAL.1, msg)
    }

    /// The same answer, with what the log says about it: `what` happened, because of `error`.
    pub fn because(
        mut self,
        level: tracing::Level,
        what: &'static str,
        error: impl std::fmt::Display,
    ) -> Self {
        self.cause = Some(Cause {
            level,
            what,
            error: error.to_string(),
        });
        self
    }

    /// Log the cause, if any, at its level (once per answer: `http::dispatch`).
    pub fn log(&self) {
        let Some(Cause { level, what, error }) = &self.cause else {
            return;
        };
        match *level {
            tracing::Level::ERROR => tracing::error!(error = %error, "{what}"),
            tracing::Level::WARN => tracing::warn!(error = %error, "{what}"),
            _ => tracing::info!(error = %error, "{what}"),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        // Go's field order: code, message, detail (omitted when nil); a trailing newline.
        let (code, _, message) = self.code.parts();
        let q = |s: &str| serde_json::to_string(s).expect("string JSON");
        let mut out = format!(
            "{{\"errors\":[{{\"code\":{},\"message\":{}",
            q(code),
            q(message)
        );
        if let Some(d) = &self.detail {
            out.push_str(",\"detail\":");
            out.push_str(&d.to_string());
        }
        out.push_str("}]}\n");
        out.into_bytes()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code.parts().0)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.parts().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response: the status, the envelope as JSON and, on a 401, the challenge.
    pub fn response(&self) -> Response {
        let mut r = response(self.status(), self.body());
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(c) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            r.headers_mut().insert(WWW_AUTHENTICATE, c);
        }
        r
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use tracing::Level;
        // The answer, and what the log says about it (the cause is formatted only then: a 404
        // or a version conflict logs nothing and costs no string).
        let (answer, log) = match &e {
            ServiceError::NotFound => (ApiError::not_found(), None),
            ServiceError::MalformedJson(_) => (
                ApiError::new(Code::MalformedJson),
                Some((Level::INFO, "malformed upload")),
            ),
            ServiceError::Invalid(v) => (
                match v.detail() {
                    Some(d) => ApiError::with(Code::InvalidUpdate, d),
                    None => ApiError::new(Code::InvalidUpdate),
                },
                Some((Level::INFO, "rejected update")),
            ),
            ServiceError::Unsignable(why) => (
                ApiError::with(Code::InvalidUpdate, json!(why)),
                Some((Level::INFO, "rejected update")),
            ),
            ServiceError::ReadOnly => (ApiError::new(Code::ReadOnly), None),
            ServiceError::NotYet(_) => (
                ApiError::new(Code::StorageUnavailable),
                Some((Level::INFO, "temporarily unavailable")),
            ),
            ServiceError::Store(s) => match s {
                StoreError::OldVersion => (ApiError::empty_detail(Code::Version), None),
                StoreError::Unavailable(_) => (
                    ApiError::new(Code::StorageUnavailable),
                    Some((Level::WARN, "database unavailable")),
                ),
                // (`coherence` retries these, then reports them as unavailable: nothing to add.)
                StoreError::Unacknowledged => (ApiError::new(Code::StorageUnavailable), None),
                StoreError::ReadOnly(_) => (
                    ApiError::new(Code::StorageUnavailable),
                    Some((Level::WARN, "database read-only")),
                ),
                StoreError::Db(_) | StoreError::Conflict(_) => {
                    (ApiError::empty_detail(Code::Unknown), Some(INTERNAL))
                }
            },
            ServiceError::Crypto(c) => match c {
                CryptoError::Unavailable(_) => (
                    ApiError::new(Code::SignerUnavailable),
                    Some((Level::WARN, "signing service unavailable")),
                ),
                CryptoError::Locked(_) => (
                    ApiError::new(Code::KeyLocked),
                    Some((
                        Level::ERROR,
                        "a signing key cannot be decrypted: fix the key passphrase configuration",
                    )),
                ),
                _ => (ApiError::empty_detail(Code::Unknown), Some(INTERNAL)),
            },
            ServiceError::Internal(_) => (ApiError::empty_detail(Code::Unknown), Some(INTERNAL)),
        };
        match log {
            Some((level, what)) => answer.because(level, what, e),
            None => answer,
        }
    }
}

/// How an internal error is logged (see [`ApiError::internal`]).
const INTERNAL: (tracing::Level, &str) = (tracing::Level::ERROR, "internal error");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_go() {
        let e = ApiError::not_found();
        assert_eq!(
            String::from_utf8(e.body()).unwrap(),
            "{\"errors\":[{\"code\":\"METADATA_NOT_FOUND\",\"message\":\"You have requested metadata that does not exist.\",\"detail\":{}}]}\n"
        );
    }
}
