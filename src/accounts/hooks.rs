//! What accounts asks of later domains. A member's avatar is a picture,
//! and pictures come after accounts in the layering (their routes know who
//! is signed in), so they answer through [`Pictures`], set by the server.

use crate::core::error::ApiError;
use crate::storage::DbConn;

pub trait Pictures: Send + Sync {
    /// Attaches pictures `owner` uploaded, inside the caller's transaction;
    /// 404 for an id that names none of theirs.
    fn attach(&self, conn: &mut DbConn, ids: &[i64], owner: i64) -> Result<(), ApiError>;
}
