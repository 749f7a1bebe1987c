//! Executor messages for the account's own security: changing the password
//! and seeing or ending sessions (CONTRACT v2, "Accounts and profiles").
//! Each answers with the sessions it revoked, for the caller to mirror into
//! the shared cache and to close their sockets.

use actix::{Handler, Message};
use serde::Serialize;

use super::{self as store, SessionRow};
use crate::accounts::auth::{hash_password, verify_password};
use crate::accounts::domain::Password;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339, UserId};
use crate::core::paging::{trim_page, Page};
use crate::storage::DbExecutor;

/// One of the caller's sessions (each login, registration or refresh opens one).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub session_id: i64,
    pub created_at: String,
    /// The session of the token this request came with.
    pub current: bool,
}

pub struct ChangePassword {
    pub user_id: UserId,
    /// The session that asks: it stays; every other one is revoked.
    pub session_id: i64,
    pub current_password: String,
    pub new_password: Password,
}

impl Message for ChangePassword {
    type Result = Result<Vec<SessionRow>, ApiError>;
}

impl Handler<ChangePassword> for DbExecutor {
    type Result = Result<Vec<SessionRow>, ApiError>;

    fn handle(&mut self, msg: ChangePassword, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let user = store::find_user(&mut conn, msg.user_id.get())?
            .ok_or_else(|| ApiError::unauthorized("unknown user"))?;
        // 403, not 401: the token is fine; a 401 would tell clients to sign in again.
        if !verify_password(&msg.current_password, &user.password_hash) {
            return Err(ApiError::forbidden("the current password is wrong"));
        }
        let hash = hash_password(msg.new_password.as_str()).map_err(ApiError::internal)?;
        let now = now_ms();
        crate::storage::transaction(&mut conn, |c| -> Result<Vec<SessionRow>, ApiError> {
            // Writing the user's row locks it first: a concurrent refresh
            // waits, then finds its session revoked (see `Refresh`).
            store::set_password(c, user.id, &hash)?;
            Ok(store::revoke_other_sessions(
                c,
                user.id,
                msg.session_id,
                now,
            )?)
        })
    }
}

pub struct MySessions {
    pub user_id: UserId,
    pub current: i64,
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Message for MySessions {
    type Result = Result<Page<SessionView>, ApiError>;
}

impl Handler<MySessions> for DbExecutor {
    type Result = Result<Page<SessionView>, ApiError>;

    fn handle(&mut self, msg: MySessions, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut rows = store::live_sessions_page(
            &mut conn,
            msg.user_id.get(),
            now_ms(),
            msg.before_id,
            msg.limit,
        )?;
        let next_cursor = trim_page(&mut rows, msg.limit, |s| vec![s.id]);
        let items = rows
            .into_iter()
            .map(|s| SessionView {
                session_id: s.id,
                created_at: rfc3339(s.created_at_ms),
                current: s.id == msg.current,
            })
            .collect();
        Ok(Page { items, next_cursor })
    }
}

pub struct EndSession {
    pub user_id: UserId,
    pub session_id: i64,
}

impl Message for EndSession {
    type Result = Result<SessionRow, ApiError>;
}

impl Handler<EndSession> for DbExecutor {
    type Result = Result<SessionRow, ApiError>;

    fn handle(&mut self, msg: EndSession, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| -> Result<SessionRow, ApiError> {
            // Ordered against a refresh of the same session (see `Refresh`).
            store::lock_user(c, msg.user_id.get())?;
            store::revoke_own_session(c, msg.user_id.get(), msg.session_id, now_ms())?
                .ok_or_else(|| ApiError::not_found("no such session"))
        })
    }
}
