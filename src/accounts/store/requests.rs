//! Typed messages the account routes send to the database executor. All
//! blocking work (argon2, diesel) happens here, on executor threads.

use std::sync::Arc;

use actix::{Handler, Message};
use serde::Serialize;

use super::{self as store, SessionRow, UserConflict, UserRow};
use crate::accounts::auth::{dummy_hash, hash_password, verify_password, TokenKeys};
use crate::accounts::domain::{
    parse_roles, Bio, DisplayName, InviteCode, Password, Role, Username,
};
use crate::accounts::tx::require_role;
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::storage::{DbConn, DbExecutor};

/// A newly opened session, ready to be signed into a token.
#[derive(Debug)]
pub struct NewSession {
    pub user_id: i64,
    pub session_id: i64,
    pub issued_at_ms: i64,
}

/// `GET /api/v1/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeView {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub bio: String,
    pub roles: Vec<String>,
    pub invite_code: String,
    pub inviter_id: Option<i64>,
    pub created_at: String,
    /// The picture set with `avatar_media_id` (null: none).
    pub avatar_url: Option<String>,
}

impl From<UserRow> for MeView {
    fn from(u: UserRow) -> Self {
        MeView {
            user_id: u.id,
            username: u.username,
            display_name: u.display_name,
            bio: u.bio,
            roles: parse_roles(&u.roles),
            invite_code: u.invite_code,
            inviter_id: u.inviter_id,
            created_at: crate::core::ids::rfc3339(u.created_at_ms),
            avatar_url: u.avatar_media_id.map(crate::core::urls::picture_url),
        }
    }
}

/// A user as an admin sees them after a moderation action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    pub user_id: i64,
    pub username: String,
    pub roles: Vec<String>,
    pub banned: bool,
}

fn open_session(
    exec: &DbExecutor,
    conn: &mut DbConn,
    user_id: i64,
    tokens: &TokenKeys,
) -> Result<NewSession, ApiError> {
    let now = now_ms();
    let session_id = exec.ids.next_id();
    store::insert_session(
        conn,
        &SessionRow {
            id: session_id,
            user_id,
            created_at_ms: now,
            expires_at_ms: tokens.expires_at_ms(now),
            revoked: false,
        },
    )?;
    Ok(NewSession {
        user_id,
        session_id,
        issued_at_ms: now,
    })
}

pub struct Register {
    pub username: Username,
    pub password: Password,
    pub invite_code: Option<InviteCode>,
    /// Whose lifetime the new session gets.
    pub tokens: Arc<TokenKeys>,
}

impl Message for Register {
    type Result = Result<NewSession, ApiError>;
}

impl Handler<Register> for DbExecutor {
    type Result = Result<NewSession, ApiError>;

    fn handle(&mut self, msg: Register, _: &mut Self::Context) -> Self::Result {
        let hash = hash_password(msg.password.as_str()).map_err(ApiError::internal)?;
        let mut conn = self.conn()?;
        // A fresh invite code collides with an existing one about once in 10^12
        // registrations; retry with another rather than fail the user.
        for _ in 0..5 {
            let row = UserRow {
                id: self.ids.next_id(),
                username: msg.username.as_str().to_owned(),
                username_lower: msg.username.lower(),
                display_name: msg.username.as_str().to_owned(),
                bio: String::new(),
                password_hash: hash.clone(),
                roles: Role::User.as_str().to_owned(),
                invite_code: InviteCode::generate(),
                inviter_id: None,
                banned: false,
                created_at_ms: now_ms(),
                display_name_lower: msg.username.lower(),
                avatar_media_id: None,
            };
            let result =
                crate::storage::transaction(&mut conn, |c| -> Result<NewSession, ApiError> {
                    let inviter_id = match &msg.invite_code {
                        Some(code) => Some(
                            store::find_user_by_invite_code(c, code.as_str())?
                                .ok_or_else(|| ApiError::invalid_input("unknown invite_code"))?,
                        ),
                        None => None,
                    };
                    let row = UserRow {
                        inviter_id,
                        ..row.clone()
                    };
                    store::insert_user(c, &row).map_err(RegisterError::from_diesel)?;
                    open_session(self, c, row.id, &msg.tokens)
                });
            match result {
                Err(e) if e.kind() == crate::core::error::ErrorKind::RetryInviteCode => continue,
                other => return other,
            }
        }
        Err(ApiError::internal(anyhow::anyhow!(
            "could not allocate an invite code"
        )))
    }
}

struct RegisterError;

impl RegisterError {
    fn from_diesel(e: diesel::result::Error) -> ApiError {
        match store::classify_user_conflict(&e) {
            Some(UserConflict::Username) => ApiError::conflict(
                crate::core::error::ErrorKind::UsernameTaken,
                "that username is taken",
            ),
            Some(UserConflict::InviteCode) => ApiError::conflict(
                crate::core::error::ErrorKind::RetryInviteCode,
                "invite code collision",
            ),
            None => ApiError::from(e),
        }
    }
}

pub struct Login {
    pub username: String,
    pub password: String,
    pub tokens: Arc<TokenKeys>,
}

impl Message for Login {
    type Result = Result<NewSession, ApiError>;
}

impl Handler<Login> for DbExecutor {
    type Result = Result<NewSession, ApiError>;

    fn handle(&mut self, msg: Login, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let user = store::find_user_by_username(&mut conn, &msg.username.to_ascii_lowercase())?;
        let Some(user) = user else {
            // Same work as a real check, so timing does not reveal which usernames exist.
            let _ = verify_password(&msg.password, dummy_hash());
            return Err(ApiError::invalid_credentials());
        };
        if !verify_password(&msg.password, &user.password_hash) {
            return Err(ApiError::invalid_credentials());
        }
        if user.banned {
            return Err(ApiError::forbidden("this account is banned"));
        }
        open_session(self, &mut conn, user.id, &msg.tokens)
    }
}

pub struct Refresh {
    pub user_id: crate::core::ids::UserId,
    /// The session of the token presented: it must still be live.
    pub session_id: i64,
    pub tokens: Arc<TokenKeys>,
}

impl Message for Refresh {
    type Result = Result<NewSession, ApiError>;
}

impl Handler<Refresh> for DbExecutor {
    type Result = Result<NewSession, ApiError>;

    fn handle(&mut self, msg: Refresh, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let user = store::find_user(&mut conn, msg.user_id.get())?
            .ok_or_else(|| ApiError::unauthorized("unknown user"))?;
        if user.banned {
            return Err(ApiError::unauthorized("token revoked"));
        }
        // The user's row lock orders this against a password change or a
        // session's end (which take it first): a token whose session one of
        // them revoked cannot open a new session between the revocation's
        // commit and its mirror in the cache, and a session opened just
        // before is among those the change revokes.
        crate::storage::transaction(&mut conn, |c| -> Result<NewSession, ApiError> {
            store::lock_user(c, user.id)?;
            let live = store::find_session(c, msg.session_id)?
                .is_some_and(|s| s.user_id == user.id && !s.revoked && s.expires_at_ms > now_ms());
            if !live {
                return Err(ApiError::unauthorized("token revoked"));
            }
            open_session(self, c, user.id, &msg.tokens)
        })
    }
}

pub struct Logout {
    pub session_id: i64,
}

impl Message for Logout {
    /// The session's expiry, so the caller can mirror the revocation.
    type Result = Result<i64, ApiError>;
}

impl Handler<Logout> for DbExecutor {
    type Result = Result<i64, ApiError>;

    fn handle(&mut self, msg: Logout, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        store::revoke_session(&mut conn, msg.session_id)?;
        let session = store::find_session(&mut conn, msg.session_id)?;
        Ok(session.map_or_else(now_ms, |s| s.expires_at_ms))
    }
}

pub struct GetMe {
    pub user_id: crate::core::ids::UserId,
}

impl Message for GetMe {
    type Result = Result<MeView, ApiError>;
}

impl Handler<GetMe> for DbExecutor {
    type Result = Result<MeView, ApiError>;

    fn handle(&mut self, msg: GetMe, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        store::find_user(&mut conn, msg.user_id.get())?
            .map(MeView::from)
            .ok_or_else(|| ApiError::not_found("no such user"))
    }
}

pub struct UpdateMe {
    pub user_id: crate::core::ids::UserId,
    pub display_name: Option<DisplayName>,
    pub bio: Option<Bio>,
    /// A picture the user uploaded, attached through `pictures`.
    pub avatar_media_id: Option<i64>,
    pub pictures: std::sync::Arc<dyn crate::accounts::hooks::Pictures>,
}

impl Message for UpdateMe {
    type Result = Result<MeView, ApiError>;
}

impl Handler<UpdateMe> for DbExecutor {
    type Result = Result<MeView, ApiError>;

    fn handle(&mut self, msg: UpdateMe, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let uid = msg.user_id.get();
        let name = msg.display_name.map(DisplayName::into_inner);
        let bio = msg.bio.map(Bio::into_inner);
        crate::storage::transaction(&mut conn, |c| -> Result<MeView, ApiError> {
            store::update_profile(c, uid, name.as_deref(), bio.as_deref())?;
            if let Some(media) = msg.avatar_media_id {
                msg.pictures.attach(c, &[media], uid)?;
                store::set_avatar(c, uid, media)?;
            }
            store::find_user(c, uid)?
                .map(MeView::from)
                .ok_or_else(|| ApiError::not_found("no such user"))
        })
    }
}

/// Bans or unbans a user (admin only). Returns the sessions to mirror as revoked.
pub struct SetBanned {
    pub admin_id: crate::core::ids::UserId,
    pub target: crate::core::ids::UserId,
    pub banned: bool,
}

impl Message for SetBanned {
    type Result = Result<(AdminUserView, Vec<SessionRow>), ApiError>;
}

impl Handler<SetBanned> for DbExecutor {
    type Result = Result<(AdminUserView, Vec<SessionRow>), ApiError>;

    fn handle(&mut self, msg: SetBanned, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        require_role(&mut conn, msg.admin_id, Role::Admin)?;
        if msg.admin_id == msg.target && msg.banned {
            return Err(ApiError::conflict(
                crate::core::error::ErrorKind::InvalidState,
                "an admin cannot ban themselves",
            ));
        }
        crate::storage::transaction(&mut conn, |c| -> Result<_, ApiError> {
            let user = store::find_user(c, msg.target.get())?
                .ok_or_else(|| ApiError::not_found("no such user"))?;
            store::set_banned(c, user.id, msg.banned)?;
            let revoked = if msg.banned {
                store::revoke_user_sessions(c, user.id, now_ms())?
            } else {
                Vec::new()
            };
            Ok((
                AdminUserView {
                    user_id: user.id,
                    username: user.username,
                    roles: parse_roles(&user.roles),
                    banned: msg.banned,
                },
                revoked,
            ))
        })
    }
}
