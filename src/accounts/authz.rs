//! Authorization other domains check inside their own executor calls (so
//! there is no check-then-act gap): the accounts domain's public query for
//! roles.

use super::domain::{has_role, Role};
use super::store::{self, UserRow};
use crate::core::error::ApiError;
use crate::core::text::Id;
use crate::storage::DbConn;

/// Checks a role inside the executor; a caller without it gets 403.
pub fn require_role(conn: &mut DbConn, user_id: Id, role: Role) -> Result<UserRow, ApiError> {
    let user = store::find_user(conn, user_id.get())?
        .ok_or_else(|| ApiError::unauthorized("unknown user"))?;
    if !has_role(&user.roles, role) {
        return Err(ApiError::forbidden(format!(
            "requires the {} role",
            role.as_str()
        )));
    }
    Ok(user)
}
