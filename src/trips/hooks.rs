//! Trips' answers to other domains' hooks (registered by the server).

use crate::core::error::ApiError;
use crate::social::hooks::ProfileHook;
use crate::storage::DbConn;

use super::store;

/// A member's profile counts the trips they organized.
pub struct TripsOnProfiles;

impl ProfileHook for TripsOnProfiles {
    fn trips_organized(&self, conn: &mut DbConn, user: i64) -> Result<i64, ApiError> {
        Ok(store::count_organized(conn, user)?)
    }
}
