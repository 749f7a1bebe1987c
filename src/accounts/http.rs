//! HTTP routes of accounts. Handlers parse and authenticate, then send a
//! typed message to the database executor and await the reply.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::AuthUser;
use super::domain::{Bio, DisplayName, InviteCode, Password, Username};
use super::revocations::{mirror_ban, mirror_revoked_session};
use super::store::requests::{
    AdminUserView, GetMe, Login, Logout, MeView, NewSession, Refresh, Register, SetBanned, UpdateMe,
};
use super::store::security::{ChangePassword, EndSession, MySessions, SessionView};
use super::store::SessionRow;
use super::Accounts;
use crate::core::error::{ApiError, ApiResult, Problem};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(value_type = String, min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_]+$")]
    username: Username,
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    password: Password,
    /// 8 characters of `ABCDEFGHJKLMNPQRSTUVWXYZ23456789`, any case.
    #[schema(value_type = Option<String>, min_length = 8, max_length = 8)]
    invite_code: Option<InviteCode>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(max_length = 32)]
    username: String,
    #[schema(max_length = 128)]
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub user_id: i64,
    pub token: String,
    pub expires_at: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    display_name: Option<DisplayName>,
    #[schema(value_type = Option<String>, max_length = 500)]
    bio: Option<Bio>,
    /// A picture the caller uploaded (`POST /api/v1/media`).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991_i64)]
    avatar_media_id: Option<crate::core::ids::MediaId>,
}

fn token_response(state: &Accounts, s: &NewSession) -> ApiResult<TokenResponse> {
    let token = state
        .tokens
        .issue(s.user_id, s.session_id, s.issued_at_ms)
        .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        user_id: s.user_id,
        token,
        expires_at: crate::core::ids::rfc3339(state.tokens.expires_at_ms(s.issued_at_ms)),
    })
}

/// Create an account (optionally bound for good to the inviter of `invite_code`).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "accounts", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 400, body = Problem), (status = 409, description = "username_taken", body = Problem)))]
pub async fn register(
    state: web::Data<Accounts>,
    body: crate::core::extract::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let session = state
        .db
        .call(Register {
            username: body.username,
            password: body.password,
            invite_code: body.invite_code,
            tokens: state.tokens.clone(),
        })
        .await?;
    Ok(HttpResponse::Created().json(token_response(&state, &session)?))
}

/// Exchange username and password for a token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid_credentials", body = Problem)))]
pub async fn login(
    state: web::Data<Accounts>,
    body: crate::core::extract::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    // Anything longer than the limits cannot be a valid account: skip the hash.
    if body.username.len() > 32 || body.password.chars().count() > 128 {
        return Err(ApiError::invalid_credentials());
    }
    let account_bucket = format!("rl:login-account:{}", body.username.to_lowercase());
    take_login_attempt(&state, &account_bucket).await?;
    let session = state
        .db
        .call(Login {
            username: body.username,
            password: body.password,
            tokens: state.tokens.clone(),
        })
        .await?;
    // The right password: the account's guesses start afresh.
    if state.ctx.config.rate_limits_enabled() {
        let _ = state.ctx.kv.delete(&account_bucket).await;
    }
    Ok(HttpResponse::Ok().json(token_response(&state, &session)?))
}

/// Password guesses at one account, whatever addresses they come from: a
/// burst of this many...
const LOGIN_ATTEMPTS_PER_ACCOUNT: u32 = 10;
/// ...then one more per this long (60 an hour); a success starts afresh.
const LOGIN_ATTEMPT_EVERY_MS: u64 = 60_000;

/// One guess at an account, from its own bucket (beside the per-address
/// one): many addresses cannot share out a brute force of one account. It
/// fails closed: without the cache, no guess is allowed.
async fn take_login_attempt(state: &Accounts, bucket: &str) -> ApiResult<()> {
    if !state.ctx.config.rate_limits_enabled() {
        return Ok(());
    }
    let take = state
        .ctx
        .kv
        .take_token_every(bucket, LOGIN_ATTEMPTS_PER_ACCOUNT, LOGIN_ATTEMPT_EVERY_MS)
        .await
        .map_err(|e| ApiError::unavailable(format!("the rate limiter cannot be reached: {e}")))?;
    match take {
        crate::runtime::kv::Take::Allowed => Ok(()),
        crate::runtime::kv::Take::RetryAfterMs(ms) => {
            Err(ApiError::rate_limited(ms.div_ceil(1000)))
        }
    }
}

/// A fresh token for a valid one.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
pub async fn refresh(
    state: web::Data<Accounts>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
) -> ApiResult<HttpResponse> {
    let session = state
        .db
        .call(Refresh {
            user_id: user.user_id,
            session_id: user.session_id,
            tokens: state.tokens.clone(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(token_response(&state, &session)?))
}

/// Revoke the presented token at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(
    state: web::Data<Accounts>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
) -> ApiResult<HttpResponse> {
    let expires_at_ms = state
        .db
        .call(Logout {
            session_id: user.session_id,
        })
        .await?;
    // The revocation is durable; a cache that missed it is rebuilt, and
    // until then this node asks the database.
    if let Err(e) =
        mirror_revoked_session(state.ctx.kv.as_ref(), user.session_id, expires_at_ms).await
    {
        state.mirror_failed(&e);
    }
    state
        .registry
        .close_user(user.user_id.get(), Some(user.session_id), "session ended");
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
pub async fn me(state: web::Data<Accounts>, user: AuthUser) -> ApiResult<web::Json<MeView>> {
    Ok(web::Json(
        state
            .db
            .call(GetMe {
                user_id: user.user_id,
            })
            .await?,
    ))
}

/// Update display name, bio and/or avatar.
#[utoipa::path(patch, path = "/api/v1/me", tag = "accounts", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses((status = 200, body = MeView), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn update_me(
    state: web::Data<Accounts>,
    user: AuthUser,
    body: crate::core::extract::Json<UpdateMeRequest>,
) -> ApiResult<web::Json<MeView>> {
    let body = body.into_inner();
    Ok(web::Json(
        state
            .db
            .call(UpdateMe {
                user_id: user.user_id,
                display_name: body.display_name,
                bio: body.bio,
                avatar_media_id: body.avatar_media_id.map(|m| m.get()),
                pictures: state.pictures.clone(),
            })
            .await?,
    ))
}

pub async fn set_banned(
    state: &Accounts,
    admin: AuthUser,
    target: crate::core::ids::UserId,
    banned: bool,
) -> ApiResult<AdminUserView> {
    let (view, revoked) = state
        .db
        .call(SetBanned {
            admin_id: admin.user_id,
            target,
            banned,
        })
        .await?;
    let kv = state.ctx.kv.as_ref();
    let mut mirrored = mirror_ban(kv, target.get(), banned, state.tokens.ttl_secs).await;
    if !banned {
        // A lifted ban left in the cache refuses too much, never too little;
        // a rebuild only adds revocations, so the admin is asked to retry.
        mirrored.map_err(ApiError::unavailable_because)?;
        mirrored = Ok(());
    }
    for s in &revoked {
        if mirrored.is_ok() {
            mirrored = mirror_revoked_session(kv, s.id, s.expires_at_ms).await;
        }
    }
    if let Err(e) = mirrored {
        state.mirror_failed(&e);
    }
    if banned {
        // Open sockets close with 1008 `banned` at once (CONTRACT v2).
        state.registry.close_user(target.get(), None, "banned");
    }
    Ok(view)
}

/// Ban a user: their tokens stop working at once (admin).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/ban", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = AdminUserView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn ban(
    state: web::Data<Accounts>,
    admin: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::UserId,)>,
) -> ApiResult<web::Json<AdminUserView>> {
    Ok(web::Json(
        set_banned(&state, admin, path.into_inner().0, true).await?,
    ))
}

/// Lift a ban (admin). Tokens revoked by the ban stay revoked.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/unban", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = AdminUserView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unban(
    state: web::Data<Accounts>,
    admin: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::UserId,)>,
) -> ApiResult<web::Json<AdminUserView>> {
    Ok(web::Json(
        set_banned(&state, admin, path.into_inner().0, false).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 128)]
    current_password: String,
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    new_password: Password,
}

/// Mirrors revoked sessions into the shared cache (every node refuses
/// their tokens at once) and closes their sockets on every node. The
/// database has them all revoked; a cache that missed one is rebuilt, and
/// until then this node checks tokens against the database.
async fn end_sessions(state: &Accounts, user_id: i64, ended: &[SessionRow]) -> ApiResult<()> {
    for s in ended {
        state
            .registry
            .close_user(user_id, Some(s.id), "session ended");
        if let Err(e) = mirror_revoked_session(state.ctx.kv.as_ref(), s.id, s.expires_at_ms).await {
            state.mirror_failed(&e);
            break;
        }
    }
    Ok(())
}

/// Change the password; every other session of the user ends (their tokens
/// get 401 at once, their sockets close). This session stays.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "accounts", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses((status = 200, body = MeView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, description = "the current password is wrong", body = Problem)))]
pub async fn change_password(
    state: web::Data<Accounts>,
    user: AuthUser,
    body: crate::core::extract::Json<ChangePasswordRequest>,
) -> ApiResult<web::Json<MeView>> {
    let body = body.into_inner();
    let ended = state
        .db
        .call(ChangePassword {
            user_id: user.user_id,
            session_id: user.session_id,
            current_password: body.current_password,
            new_password: body.new_password,
        })
        .await?;
    end_sessions(&state, user.user_id.get(), &ended).await?;
    me(state, user).await
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "accounts", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<SessionView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"),
        (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn my_sessions(
    state: web::Data<Accounts>,
    user: AuthUser,
    q: web::Query<crate::core::paging::PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(MySessions {
            user_id: user.user_id,
            current: user.session_id,
            before_id: q.cursor_id()?,
            limit: q.limit()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// End one of the caller's sessions (this one too: like logging out).
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem),
        (status = 404, description = "not a live session of the caller", body = Problem)))]
pub async fn end_session(
    state: web::Data<Accounts>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::SessionId,)>,
) -> ApiResult<HttpResponse> {
    let ended = state
        .db
        .call(EndSession {
            user_id: user.user_id,
            session_id: path.into_inner().0.get(),
        })
        .await?;
    end_sessions(&state, user.user_id.get(), &[ended]).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/me", web::get().to(me))
        .route("/me", web::patch().to(update_me))
        .route("/me/password", web::post().to(change_password))
        .route("/me/sessions", web::get().to(my_sessions))
        .route("/me/sessions/{id}", web::delete().to(end_session))
        .route("/admin/users/{id}/ban", web::post().to(ban))
        .route("/admin/users/{id}/unban", web::post().to(unban));
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    login,
    refresh,
    logout,
    me,
    update_me,
    change_password,
    my_sessions,
    end_session,
    ban,
    unban,
))]
pub struct Api;
