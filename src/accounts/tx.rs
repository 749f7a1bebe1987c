//! Accounts' in-transaction API: what other domains read or change of users
//! inside their own executor call or group-commit job (so there is no
//! check-then-act gap between, say, "the owner is an admin" and the write it
//! allows). The SQL stays in accounts' store; this is its published face.

use super::domain::{has_role, with_role, Role};
use super::store;
use crate::core::error::ApiError;
use crate::storage::DbConn;

pub use super::store::UserRow;

/// Checks a role inside the executor; a caller without it gets 403.
pub fn require_role(
    conn: &mut DbConn,
    user_id: crate::core::ids::UserId,
    role: Role,
) -> Result<UserRow, ApiError> {
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

pub fn find_user(conn: &mut DbConn, id: i64) -> Result<Option<UserRow>, ApiError> {
    Ok(store::find_user(conn, id)?)
}

/// The user, or 404 with `what` as the detail.
pub fn existing_user(conn: &mut DbConn, id: i64, what: &str) -> Result<UserRow, ApiError> {
    find_user(conn, id)?.ok_or_else(|| ApiError::not_found(what.to_owned()))
}

pub fn user_exists(conn: &mut DbConn, id: i64) -> Result<bool, ApiError> {
    Ok(store::user_exists(conn, id)?)
}

pub fn is_admin(conn: &mut DbConn, id: i64) -> Result<bool, ApiError> {
    Ok(find_user(conn, id)?.is_some_and(|u| has_role(&u.roles, Role::Admin)))
}

/// Whether every one of `ids` (distinct) names a user.
pub fn all_exist(conn: &mut DbConn, ids: &[i64]) -> Result<bool, ApiError> {
    let found = store::count_users(conn, ids)?;
    Ok(usize::try_from(found).unwrap_or(0) == ids.len())
}

/// Adds `role` to the user's roles (a merchant's approval makes its owner a merchant).
pub fn grant_role(conn: &mut DbConn, id: i64, role: Role) -> Result<(), ApiError> {
    let user = existing_user(conn, id, "no such user")?;
    store::set_roles(conn, id, &with_role(&user.roles, role))?;
    Ok(())
}

/// Who invited `id`, the referral binding made at registration (`None`
/// if nobody did or there is no such user).
pub fn inviter_of(conn: &mut DbConn, id: i64) -> Result<Option<i64>, ApiError> {
    Ok(store::inviter_binding(conn, id)?.flatten())
}

/// Referral bindings remembered. Bindings are written once, with the user,
/// and never change (no route or job updates `inviter_id`), so a binding read
/// once stays true, on every node: a paid order's referral chain (up to three
/// reads on the committer thread) comes from memory. A user not found is not
/// remembered (they may be registering on another node). One per database:
/// whoever holds it (the rebate hook) is built for one.
#[derive(Default)]
pub struct Inviters {
    known: dashmap::DashMap<i64, Option<i64>>,
}

/// Most referral bindings remembered (about 40 bytes each).
const MAX_REMEMBERED_INVITERS: usize = 1_000_000;

impl Inviters {
    pub fn inviter_of(&self, conn: &mut DbConn, id: i64) -> Result<Option<i64>, ApiError> {
        if let Some(known) = self.known.get(&id) {
            return Ok(*known);
        }
        let Some(inviter) = store::inviter_binding(conn, id)? else {
            return Ok(None);
        };
        if self.known.len() >= MAX_REMEMBERED_INVITERS {
            // Bounded: start over rather than track recency; a miss costs one read.
            self.known.clear();
        }
        self.known.insert(id, inviter);
        Ok(inviter)
    }
}

/// A page of the people `inviter` invited: (id, username, joined at ms),
/// `limit + 1` rows at most.
pub fn invitees_page(
    conn: &mut DbConn,
    inviter: i64,
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, String, i64)>, ApiError> {
    Ok(store::invitees_page(conn, inviter, after_id, limit)?)
}

pub fn count_invitees(conn: &mut DbConn, inviter: i64) -> Result<i64, ApiError> {
    Ok(store::count_invitees(conn, inviter)?)
}

/// Every account (admin figures).
pub fn count_users(conn: &mut DbConn) -> Result<i64, ApiError> {
    Ok(store::count_all_users(conn)?)
}

pub use super::store::UserSummaryRow;

pub fn user_summaries(conn: &mut DbConn, ids: &[i64]) -> Result<Vec<UserSummaryRow>, ApiError> {
    Ok(store::user_summaries(conn, ids)?)
}

/// Members whose username or display name starts with `prefix_lower`
/// (see `store::search_users`).
pub fn search_users(
    conn: &mut DbConn,
    prefix_lower: &str,
    hidden: &[i64],
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<UserSummaryRow>, ApiError> {
    Ok(store::search_users(
        conn,
        prefix_lower,
        hidden,
        after_id,
        limit,
    )?)
}
