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

/// Every kind of error the API answers, mapped once to its HTTP status and
/// its `code` (CONTRACT.md). Code that must react to an error matches the
/// kind, never the code's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    /// A body that is not JSON, or not a JSON object: the same 400
    /// `invalid_input` as the contract says, with its own problem `type` so
    /// a client can tell a broken request from a refused value.
    MalformedBody,
    Unauthorized,
    InvalidCredentials,
    InvalidSignature,
    Forbidden,
    Blocked,
    NotFound,
    PayloadTooLarge,
    /// The request body did not arrive in time (a slow or stalled sender).
    RequestTimeout,
    IdempotencyKeyReused,
    RateLimited,
    Unavailable,
    Internal,
    InvalidState,
    OutOfStock,
    ProductInactive,
    AlreadyClaimed,
    AlreadyMember,
    AlreadyReported,
    AlreadyReviewed,
    InsufficientFunds,
    NotAMember,
    RequestPending,
    IdempotencyConflict,
    UsernameTaken,
    TripFull,
    RetryInviteCode,
    MethodNotAllowed,
    /// Not a media type Tandem takes (a picture that is not JPEG, PNG or WebP).
    UnsupportedMedia,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput | ErrorKind::MalformedBody => "invalid_input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::InvalidCredentials => "invalid_credentials",
            ErrorKind::InvalidSignature => "invalid_signature",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Blocked => "blocked",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::OutOfStock => "out_of_stock",
            ErrorKind::ProductInactive => "product_inactive",
            ErrorKind::AlreadyClaimed => "already_claimed",
            ErrorKind::AlreadyMember => "already_member",
            ErrorKind::AlreadyReported => "already_reported",
            ErrorKind::AlreadyReviewed => "already_reviewed",
            ErrorKind::InsufficientFunds => "insufficient_funds",
            ErrorKind::NotAMember => "not_a_member",
            ErrorKind::RequestPending => "request_pending",
            ErrorKind::IdempotencyConflict => "idempotency_conflict",
            ErrorKind::UsernameTaken => "username_taken",
            ErrorKind::TripFull => "trip_full",
            ErrorKind::RetryInviteCode => "retry_invite_code",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::UnsupportedMedia => "unsupported_media",
        }
    }

    /// The problem's `type` (RFC 9457): `urn:tandem:problem:` and this. The
    /// code but for a malformed body, which shares `invalid_input` with
    /// values the rules refuse.
    pub fn problem_type(self) -> &'static str {
        match self {
            ErrorKind::MalformedBody => "malformed_body",
            k => k.code(),
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidInput | ErrorKind::MalformedBody => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ErrorKind::InvalidSignature => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Blocked => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::InvalidState => StatusCode::CONFLICT,
            ErrorKind::OutOfStock => StatusCode::CONFLICT,
            ErrorKind::ProductInactive => StatusCode::CONFLICT,
            ErrorKind::AlreadyClaimed => StatusCode::CONFLICT,
            ErrorKind::AlreadyMember => StatusCode::CONFLICT,
            ErrorKind::AlreadyReported => StatusCode::CONFLICT,
            ErrorKind::AlreadyReviewed => StatusCode::CONFLICT,
            ErrorKind::InsufficientFunds => StatusCode::CONFLICT,
            ErrorKind::NotAMember => StatusCode::CONFLICT,
            ErrorKind::RequestPending => StatusCode::CONFLICT,
            ErrorKind::IdempotencyConflict => StatusCode::CONFLICT,
            ErrorKind::UsernameTaken => StatusCode::CONFLICT,
            ErrorKind::TripFull => StatusCode::CONFLICT,
            ErrorKind::RetryInviteCode => StatusCode::CONFLICT,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    detail: String,
    retry_after_secs: Option<u64>,
    /// A database conflict that a retried transaction may not hit again.
    transient: bool,
    /// The cause, kept for logs; never sent to the client.
    source: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ApiError {
            kind,
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
        Self::new(ErrorKind::InvalidInput, detail)
    }
    /// The body is not JSON or not an object (see `ErrorKind::MalformedBody`).
    pub fn malformed_body(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::MalformedBody, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, detail)
    }
    pub fn invalid_credentials() -> Self {
        Self::new(
            ErrorKind::InvalidCredentials,
            "unknown username or wrong password",
        )
    }
    pub fn invalid_signature(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidSignature, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }
    /// 405: the path exists, with other methods (the response names them in `Allow`).
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::MethodNotAllowed, detail)
    }
    /// 409: the request is fine but the state does not allow it.
    pub fn conflict(kind: ErrorKind, detail: impl Into<String>) -> Self {
        debug_assert_eq!(kind.status(), StatusCode::CONFLICT);
        Self::new(kind, detail)
    }
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::PayloadTooLarge, detail)
    }
    pub fn request_timeout(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::RequestTimeout, detail)
    }
    pub fn idempotency_key_reused() -> Self {
        Self::new(
            ErrorKind::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request body",
        )
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(ErrorKind::RateLimited, "too many requests; retry later");
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, detail)
    }
    /// An unexpected failure: logged with its cause, answered with a bare 500.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(ErrorKind::Internal, "internal server error");
        e.source = Some(cause.into());
        e
    }
    /// Service unavailable with a cause kept for the logs.
    pub fn unavailable_because(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::unavailable("a dependency is unavailable; retry later");
        e.source = Some(cause.into());
        e
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status().as_u16(),
            self.code(),
            self.detail
        )?;
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
    /// `urn:tandem:problem:` and the code; a body that is not JSON or not an
    /// object is `urn:tandem:problem:malformed_body` (code `invalid_input`),
    /// so syntax and refused values can be told apart.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
}

pub fn problem_response(
    status: StatusCode,
    (problem_type, code): (&str, &str),
    detail: &str,
    retry_after_secs: Option<u64>,
) -> HttpResponse {
    let body = Problem {
        type_: format!("urn:tandem:problem:{problem_type}"),
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
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6750: which scheme to authenticate with.
        resp.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tandem\""),
        ));
    }
    // Serializing a struct of strings cannot fail; fall back to an empty object anyway.
    resp.body(serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned()))
}

impl ApiError {
    /// (problem type, code) of the answer.
    fn names(&self) -> (&'static str, &'static str) {
        (self.kind.problem_type(), self.kind.code())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.status().is_server_error() {
            // A reference the operator can grep for; the client sees nothing else.
            let reference = crate::core::ids::random_token(12);
            match &self.source {
                Some(src) => {
                    tracing::error!(reference, code = self.code(), error = %format!("{src:#}"), "request failed")
                }
                None => {
                    tracing::warn!(reference, code = self.code(), detail = %self.detail, "request failed")
                }
            }
            let detail = if self.status() == StatusCode::INTERNAL_SERVER_ERROR {
                format!("internal server error (reference {reference})")
            } else {
                format!("{} (reference {reference})", self.detail)
            };
            return problem_response(self.status(), self.names(), &detail, self.retry_after_secs);
        }
        problem_response(
            self.status(),
            self.names(),
            &self.detail,
            self.retry_after_secs,
        )
    }
}

/// Maps actix's own extractor failures to problems, so that malformed JSON,
/// wrong types, unknown fields and oversize bodies never fall through as text.
pub mod extractors {
    use actix_web::error::{PathError, QueryPayloadError};
    use actix_web::HttpRequest;

    use super::ApiError;

    /// What is wrong with a JSON body, in the client's terms: a syntax
    /// error says where (a malformed body); a body that parsed but does not
    /// fit says which field and why, without Rust's type names or serde's
    /// positions (invalid input).
    pub fn body_problem(e: &serde_json::Error) -> ApiError {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof => ApiError::malformed_body(format!(
                "the body is not valid JSON (syntax error at line {}, column {})",
                e.line(),
                e.column()
            )),
            Category::Data | Category::Io => {
                let text = e.to_string();
                // serde appends " at line L column C"; the client wants the why.
                let why = text
                    .rsplit_once(" at line ")
                    .map_or(text.as_str(), |(why, _)| why);
                if why.contains("expected struct") || why.contains("expected a map") {
                    ApiError::malformed_body("the body must be a JSON object")
                } else {
                    ApiError::invalid_input(format!("the body does not fit: {}", plain_types(why)))
                }
            }
        }
    }

    /// serde's type words as a JSON client knows them.
    fn plain_types(why: &str) -> String {
        why.replace("i64", "an integer")
            .replace("u64", "a non-negative integer")
            .replace("i32", "an integer")
            .replace("f64", "a number")
            .replace("a string", "text")
            .replace("a boolean", "true or false")
    }

    pub fn path_error(_err: PathError, req: &HttpRequest) -> actix_web::Error {
        // A malformed id in a path is indistinguishable from an unknown one: 404.
        ApiError::not_found(format!("no such resource: {}", req.path())).into()
    }

    pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
        let why = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::invalid_input(format!(
            "the query string does not fit: {}",
            plain_types(&why)
        ))
        .into()
    }
}
