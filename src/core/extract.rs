//! Request extractors shared by every domain's routes.

use actix_web::{web, HttpRequest};

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
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code()
                    == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                {
                    ApiError::payload_too_large("the request body is too large")
                } else {
                    ApiError::invalid_input(format!("could not read the body: {e}"))
                }
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(ActionBody(T::default()));
            }
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::invalid_input(format!("the body is not JSON: {e}")))?;
            if !value.is_object() {
                return Err(ApiError::invalid_input(
                    "the body must be a JSON object (or empty)",
                ));
            }
            serde_json::from_value(value)
                .map(ActionBody)
                .map_err(|e| ApiError::invalid_input(format!("invalid body: {e}")))
        })
    }
}
