//! Database errors as API errors (once, here: the only layer that sees them).

use crate::core::error::ApiError;

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => ApiError::not_found("not found"),
            diesel::result::Error::QueryBuilderError(b) if b.is::<super::appends::Refused>() => {
                match b.downcast::<super::appends::Refused>() {
                    Ok(r) => ApiError::conflict(r.kind, r.detail),
                    Err(b) => ApiError::internal(anyhow::anyhow!("{b}")),
                }
            }
            other => {
                let transient = super::is_transient(&other);
                ApiError::internal(other).transient(transient)
            }
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        ApiError::unavailable_because(e)
    }
}

/// True when the connection failed, not a statement: nothing the statement
/// carried is at fault, and a retry on another connection may succeed.
pub fn is_connection_lost(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        err,
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        ) | Error::BrokenTransactionManager
    )
}
