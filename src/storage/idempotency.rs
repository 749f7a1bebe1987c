//! Idempotency keys with Stripe's semantics: the first response to a key is
//! stored in the same transaction as the effect it describes, and replayed
//! for every retry with the same body; another body under the same key is 422.
//! Keys are kept at least [`RETENTION_MS`].

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use sha2::{Digest, Sha256};

use crate::core::error::ApiError;
use crate::storage::schema::idempotency_keys;
use crate::storage::DbConn;

/// How long a key is remembered (the contract asks for at least 24 h).
pub const RETENTION_MS: i64 = 48 * 3_600_000;
pub const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header: 1-255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::invalid_input(
                "Idempotency-Key must be 1-255 visible ASCII characters",
            ));
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Extracts the optional header; a malformed one is 400.
pub struct MaybeIdempotencyKey(pub Option<IdempotencyKey>);

impl FromRequest for MaybeIdempotencyKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get("idempotency-key") {
            None => Ok(MaybeIdempotencyKey(None)),
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::invalid_input("Idempotency-Key must be ASCII"))
                .and_then(IdempotencyKey::parse)
                .map(|k| MaybeIdempotencyKey(Some(k))),
        };
        std::future::ready(parsed)
    }
}

/// SHA-256 of what identifies "the same request": its scope and canonical body.
pub fn fingerprint(scope: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    // serde_json::Value prints object keys in sorted order: a stable canonical form.
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub struct StoredResponse {
    pub user_id: i64,
    pub scope: String,
    pub idem_key: String,
    pub request_hash: String,
    pub status_code: i32,
    pub response_body: String,
    pub created_at_ms: i64,
}

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// First time: perform it, then [`record`] in the same transaction.
    Proceed,
    /// Seen with the same body: answer this again.
    Replay { status_code: u16, body: String },
}

/// Looks the key up; 422 if it was used with another body.
pub fn check(
    conn: &mut DbConn,
    user_id: i64,
    scope: &str,
    key: &IdempotencyKey,
    request_hash: &str,
    now_ms: i64,
) -> Result<Decision, ApiError> {
    let stored: Option<StoredResponse> = idempotency_keys::table
        .find((user_id, scope, key.as_str()))
        .select(StoredResponse::as_select())
        .first(conn)
        .optional()?;
    match stored {
        Some(s) if s.created_at_ms + RETENTION_MS > now_ms => {
            if s.request_hash != request_hash {
                return Err(ApiError::idempotency_key_reused());
            }
            Ok(Decision::Replay {
                status_code: u16::try_from(s.status_code).unwrap_or(200),
                body: s.response_body,
            })
        }
        Some(_) => {
            // Past retention: forget it and treat the key as new.
            diesel::delete(idempotency_keys::table.find((user_id, scope, key.as_str())))
                .execute(conn)?;
            Ok(Decision::Proceed)
        }
        None => Ok(Decision::Proceed),
    }
}

/// Records the response. Call inside the transaction that made the effect,
/// so the effect and its key commit together or not at all. A concurrent
/// request that recorded first makes this fail with `Conflict`; roll back and
/// call [`check`] again to replay the winner.
pub fn record(conn: &mut DbConn, row: &StoredResponse) -> Result<(), RecordError> {
    match diesel::insert_into(idempotency_keys::table)
        .values(row)
        .execute(conn)
    {
        Ok(_) => Ok(()),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Err(RecordError::Conflict)
        }
        Err(e) => Err(RecordError::Db(e)),
    }
}

#[derive(Debug)]
pub enum RecordError {
    Conflict,
    Db(DieselError),
}

/// Deletes keys past retention; returns how many.
pub fn purge(conn: &mut DbConn, now_ms: i64) -> QueryResult<usize> {
    diesel::delete(
        idempotency_keys::table.filter(idempotency_keys::created_at_ms.lt(now_ms - RETENTION_MS)),
    )
    .execute(conn)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(IdempotencyKey::parse("order-123_abc").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let a = serde_json::json!({"a": 1, "b": [1, 2]});
        let b: serde_json::Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
        let c = serde_json::json!({"a": 2, "b": [1, 2]});
        assert_eq!(fingerprint("orders", &a), fingerprint("orders", &b));
        assert_ne!(fingerprint("orders", &a), fingerprint("orders", &c));
        assert_ne!(fingerprint("orders", &a), fingerprint("withdrawals", &a));
    }
}
