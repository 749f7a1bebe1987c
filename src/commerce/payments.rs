//! Payment providers. `mockpay` is the first; Alipay and WeChat Pay adapters
//! implement the same trait (verify a callback, name the provider).

use actix_web::http::header::HeaderMap;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::model::{PaymentStatus, PaymentView};
use crate::core::error::ApiError;

/// A verified provider notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub payment_id: i64,
    pub order_id: i64,
    pub amount_cents: i64,
    pub succeeded: bool,
}

pub trait PaymentProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Checks the signature over the raw body, then parses it.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Notification, ApiError>;
    /// What the provider expects back once the notification is applied.
    fn ack_body(&self) -> &'static str;
    /// For a provider whose checkout page this server hosts (mockpay): the
    /// notification it sends once the payer confirms or declines, with its
    /// signature. The secret stays on the server; real providers host their
    /// own page and answer `None`.
    fn hosted_checkout(
        &self,
        _payment: &PaymentView,
        _succeeded: bool,
    ) -> Option<(Vec<u8>, String)> {
        None
    }
}

pub struct Mockpay {
    secret: Vec<u8>,
}

impl Mockpay {
    pub fn new(secret: &str) -> Self {
        Mockpay {
            secret: secret.as_bytes().to_vec(),
        }
    }

    /// Lowercase hex HMAC-SHA256 of `body` (what a provider would send).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable_hmac());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> Hmac<Sha256> {
    #[allow(clippy::unwrap_used)]
    Hmac::<Sha256>::new_from_slice(b"k").unwrap()
}

#[derive(Deserialize)]
struct MockpayBody {
    payment_id: i64,
    order_id: i64,
    amount_cents: i64,
    status: String,
}

impl PaymentProvider for Mockpay {
    fn name(&self) -> &'static str {
        "mockpay"
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Notification, ApiError> {
        let sig = headers
            .get("x-mockpay-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::invalid_signature("missing X-Mockpay-Signature"))?;
        let sig =
            hex::decode(sig.trim()).map_err(|_| ApiError::invalid_signature("bad signature"))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable_hmac());
        mac.update(body);
        // Constant-time comparison.
        mac.verify_slice(&sig)
            .map_err(|_| ApiError::invalid_signature("bad signature"))?;
        // Extra fields are tolerated: real providers add them.
        let b: MockpayBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid_input(format!("invalid notification: {e}")))?;
        let succeeded = match PaymentStatus::parse(&b.status) {
            Some(PaymentStatus::Succeeded) => true,
            Some(PaymentStatus::Failed) => false,
            _ => {
                return Err(ApiError::invalid_input(format!(
                    "status must be succeeded or failed, got {:?}",
                    b.status
                )))
            }
        };
        Ok(Notification {
            payment_id: b.payment_id,
            order_id: b.order_id,
            amount_cents: b.amount_cents,
            succeeded,
        })
    }

    fn ack_body(&self) -> &'static str {
        "success"
    }

    fn hosted_checkout(&self, payment: &PaymentView, succeeded: bool) -> Option<(Vec<u8>, String)> {
        let status = if succeeded { "succeeded" } else { "failed" };
        let body = serde_json::json!({
            "payment_id": payment.payment_id,
            "order_id": payment.order_id,
            "amount_cents": payment.amount_cents,
            "status": status,
        })
        .to_string()
        .into_bytes();
        let signature = self.sign(&body);
        Some((body, signature))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn verifies_signatures() {
        let m = Mockpay::new("s3cret");
        let body = br#"{"payment_id":1,"order_id":2,"amount_cents":300,"status":"succeeded","extra":"ok"}"#;
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-mockpay-signature"),
            HeaderValue::from_str(&m.sign(body)).unwrap(),
        );
        assert_eq!(
            m.verify(&h, body).unwrap(),
            Notification {
                payment_id: 1,
                order_id: 2,
                amount_cents: 300,
                succeeded: true
            }
        );
        let forged = Mockpay::new("other").sign(body);
        h.insert(
            HeaderName::from_static("x-mockpay-signature"),
            HeaderValue::from_str(&forged).unwrap(),
        );
        assert_eq!(m.verify(&h, body).unwrap_err().code(), "invalid_signature");
        assert_eq!(
            m.verify(&HeaderMap::new(), body).unwrap_err().code(),
            "invalid_signature"
        );
    }
}
