//! Request extractors shared by every domain's routes.

use actix_web::{web, FromRequest as _, HttpRequest};

use crate::core::error::ApiError;

/// The body of an action route (`.../cancel`, `.../approve`, ...): empty, or a
/// JSON object without unknown fields. Anything else is a 400 (`[]` too: serde
/// reads a struct from a sequence, so the object is checked first).
pub struct ActionBody<T>(pub T);

/// An action that takes no fields: only an empty body or `{}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

impl<T> actix_web::FromRequest for ActionBody<T>
where
    T: serde::de::DeserializeOwned + Default + 'static,
{
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = read_object(req, payload);
        Box::pin(async move {
            match body.await? {
                Some(v) => Ok(ActionBody(v)),
                None => Ok(ActionBody(T::default())),
            }
        })
    }
}

/// A JSON body that must be an object. `web::Json` also reads a struct from
/// an array, field by field in order (`["name", "password-123"]` would
/// register), which no client means; this one refuses anything but an
/// object, with the same size limit, content type and error details.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> actix_web::FromRequest for Json<T>
where
    T: serde::de::DeserializeOwned + 'static,
{
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let json = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .is_some_and(|m| m.eq_ignore_ascii_case("application/json") || m.ends_with("+json"));
        let body = read_object(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::malformed_body(
                    "expected a JSON body with Content-Type: application/json",
                ));
            }
            body.await?
                .map(Json)
                .ok_or_else(|| ApiError::malformed_body("the body must be a JSON object"))
        })
    }
}

/// Why a body could not be read: too large (413), too slow (408), else 400.
fn body_error(e: actix_web::Error) -> ApiError {
    let late = e
        .as_error::<actix_web::error::PayloadError>()
        .is_some_and(crate::core::body_deadline::is_late_body);
    if late {
        ApiError::request_timeout("the request body did not arrive in time")
    } else if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
    {
        ApiError::payload_too_large("the request body is too large")
    } else {
        ApiError::invalid_input(format!("could not read the body: {e}"))
    }
}

/// Reads the body (within the `PayloadConfig` limit) as a JSON object of `T`;
/// `None` for an empty body.
fn read_object<T>(
    req: &HttpRequest,
    payload: &mut actix_web::dev::Payload,
) -> impl std::future::Future<Output = Result<Option<T>, ApiError>>
where
    T: serde::de::DeserializeOwned + 'static,
{
    let bytes = web::Bytes::from_request(req, payload);
    async move {
        let bytes = bytes.await.map_err(body_error)?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Ok(None), // An empty body: the caller decides.
            Some(b'{') => {}
            Some(_) => {
                // Not an object: say whether it is JSON at all.
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                        Ok(_) => ApiError::malformed_body("the body must be a JSON object"),
                        Err(e) => crate::core::error::extractors::body_problem(&e),
                    },
                );
            }
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::core::error::extractors::body_problem(&e))
    }
}

/// The raw body as bytes (within the `PayloadConfig` limit), for routes that
/// verify a signature over it; a body too large is 413, one too slow 408.
pub struct RawBody(pub web::Bytes);

impl actix_web::FromRequest for RawBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move { bytes.await.map(RawBody).map_err(body_error) })
    }
}
