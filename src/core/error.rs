//! The one error type at the HTTP boundary. Every failure becomes an RFC 9457
//! problem document with a stable `code`; user faults (4xx) say what was wrong,
//! unexpected faults (5xx) are logged with their cause and a reference, and the
//! body never shows internals.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after_secs: Option<u64>,
    /// A database conflict that a retried transaction may not hit again.
    transient: bool,
    /// The cause, kept for logs; never sent to the client.
    source: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after_secs: None,
            transient: false,
            source: None,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// Marks a database conflict that a retried transaction may not hit again.
    pub fn transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    pub fn invalid_input(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "unknown username or wrong password",
        )
    }
    pub fn invalid_signature(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_signature", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }
    pub fn idempotency_key_reused() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body",
        )
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later",
        );
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
    /// An unexpected failure: logged with its cause, answered with a bare 500.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        );
        e.source = Some(cause.into());
        e
    }
    /// Service unavailable with a cause kept for the logs.
    pub fn unavailable_because(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::unavailable("a dependency is unavailable; retry later");
        e.source = Some(cause.into());
        e
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)?;
        if let Some(src) = &self.source {
            write!(f, " (cause: {src:#})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// RFC 9457 problem details with Tandem's `code` extension.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
}

pub fn problem_response(
    status: StatusCode,
    code: &str,
    detail: &str,
    retry_after_secs: Option<u64>,
) -> HttpResponse {
    let body = Problem {
        type_: format!("urn:tandem:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        code: code.to_owned(),
    };
    let mut resp = HttpResponse::build(status);
    resp.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    ));
    if let Some(secs) = retry_after_secs {
        resp.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    // Serializing a struct of strings cannot fail; fall back to an empty object anyway.
    resp.body(serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned()))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            // A reference the operator can grep for; the client sees nothing else.
            let reference = crate::core::ids::random_token(12);
            match &self.source {
                Some(src) => {
                    tracing::error!(reference, code = self.code, error = %format!("{src:#}"), "request failed")
                }
                None => {
                    tracing::warn!(reference, code = self.code, detail = %self.detail, "request failed")
                }
            }
            let detail = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
                format!("internal server error (reference {reference})")
            } else {
                format!("{} (reference {reference})", self.detail)
            };
            return problem_response(self.status, self.code, &detail, self.retry_after_secs);
        }
        problem_response(self.status, self.code, &self.detail, self.retry_after_secs)
    }
}

/// Maps actix's own extractor failures to problems, so that malformed JSON,
/// wrong types, unknown fields and oversize bodies never fall through as text.
pub mod extractors {
    use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
    use actix_web::HttpRequest;

    use super::ApiError;

    pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
        let api = match &err {
            JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::payload_too_large(
                format!("body of {length} bytes exceeds the limit of {limit} bytes"),
            ),
            JsonPayloadError::Overflow { limit } => {
                ApiError::payload_too_large(format!("body exceeds the limit of {limit} bytes"))
            }
            JsonPayloadError::Payload(PayloadError::Overflow) => {
                ApiError::payload_too_large("body exceeds the size limit")
            }
            JsonPayloadError::ContentType => {
                ApiError::invalid_input("expected a JSON body with Content-Type: application/json")
            }
            JsonPayloadError::Deserialize(e) => {
                ApiError::invalid_input(format!("invalid JSON body: {e}"))
            }
            other => ApiError::invalid_input(format!("could not read the body: {other}")),
        };
        api.into()
    }

    pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
        // A malformed id in a path is indistinguishable from an unknown one: 404.
        ApiError::not_found(format!("no such resource ({err})")).into()
    }

    pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
        ApiError::invalid_input(format!("invalid query string: {err}")).into()
    }
}
