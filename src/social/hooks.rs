//! What later domains add to social's views. A member's profile counts the
//! trips they organized; trips comes after social in the layering, so it
//! answers through [`ProfileHook`], registered by the server.

use crate::core::error::ApiError;
use crate::storage::DbConn;

/// Figures of other domains on a member's profile, read inside the
/// profile's executor call.
pub trait ProfileHook: Send + Sync {
    /// How many trips `user` organized.
    fn trips_organized(&self, conn: &mut DbConn, user: i64) -> Result<i64, ApiError>;
}
