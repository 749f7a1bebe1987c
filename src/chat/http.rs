//! Conversations over HTTP.

use std::sync::atomic::{AtomicI64, AtomicUsize};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;

use super::model::{Change, HistoryVisibility, Refusal};
use super::socket::WsConn;
use super::store::requests::{
    ConversationView, CreateGroup, ListConversations, LoadConversation, LoadMessages, SetMuted,
    MAX_GROUP_MEMBERS,
};
use super::Chat;
use crate::accounts::auth::AuthUser;
use crate::core::error::ErrorKind;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::{decode_cursor, encode_cursor, parse_limit, Page, PageQuery};
use crate::core::text::{check_text, Id, Lines};
use crate::realtime::registry::ConnShared;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationRequest {
    #[schema(value_type = Vec<i64>, min_items = 1, max_items = 999)]
    member_ids: Vec<Id>,
    #[schema(max_length = 100)]
    title: Option<String>,
    /// What members added later may read (default `since_join`).
    #[schema(value_type = Option<HistoryVisibility>, inline)]
    history_visibility: Option<String>,
}

fn parse_history(raw: Option<&str>) -> ApiResult<Option<HistoryVisibility>> {
    raw.map(|h| {
        HistoryVisibility::parse(h).ok_or_else(|| {
            ApiError::invalid_input("history_visibility must be \"full\" or \"since_join\"")
        })
    })
    .transpose()
}

/// Create a group conversation of the caller and `member_ids`.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "chat", security(("bearer" = [])),
    request_body = CreateConversationRequest,
    responses((status = 201, body = ConversationView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn create(
    state: web::Data<Chat>,
    user: AuthUser,
    body: crate::core::extract::Json<CreateConversationRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if body.member_ids.is_empty() || body.member_ids.len() >= MAX_GROUP_MEMBERS {
        return Err(ApiError::invalid_input(format!(
            "member_ids must name 1 to {} users",
            MAX_GROUP_MEMBERS - 1
        )));
    }
    if body
        .member_ids
        .iter()
        .all(|m| m.get() == user.user_id.get())
    {
        return Err(ApiError::invalid_input(
            "member_ids must name someone besides you",
        ));
    }
    let title = body.title.unwrap_or_default();
    check_text(&title, "title", 100, Lines::One, false)?;
    let history =
        parse_history(body.history_visibility.as_deref())?.unwrap_or(HistoryVisibility::SinceJoin);
    let view = state
        .db
        .call(CreateGroup {
            creator_id: user.user_id.get(),
            member_ids: body.member_ids.iter().map(|i| i.get()).collect(),
            title,
            kind: "group",
            history,
        })
        .await?;
    state.conversation_created(view.conversation_id, &view.member_ids);
    Ok(HttpResponse::Created().json(view))
}

/// The caller's conversations, most recent activity first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "chat", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::chat::store::requests::ConversationView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn list(
    state: web::Data<Chat>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let limit = q.limit()?;
    let after = match &q.cursor {
        Some(c) => {
            let v = decode_cursor(c, 2)?;
            Some((v[0], v[1]))
        }
        None => None,
    };
    let page = state
        .db
        .call(ListConversations {
            user_id: user.user_id.get(),
            limit,
            after,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    after_seq: Option<String>,
    before_seq: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_seq(raw: Option<&str>, name: &str) -> ApiResult<Option<i64>> {
    raw.map(|s| {
        s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::invalid_input(format!("{name} must be a non-negative integer"))
        })
    })
    .transpose()
}

/// History: `after_seq` ascending, or `before_seq` descending (older pages).
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path), ("after_seq" = Option<i64>, Query), ("before_seq" = Option<i64>, Query),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::realtime::frames::MessageView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 404, body = Problem)))]
pub async fn history(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId,)>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let limit = parse_limit(q.limit.as_deref())?;
    let (mut after, mut before) = (
        parse_seq(q.after_seq.as_deref(), "after_seq")?,
        parse_seq(q.before_seq.as_deref(), "before_seq")?,
    );
    if after.is_some() && before.is_some() {
        return Err(ApiError::invalid_input(
            "give after_seq or before_seq, not both",
        ));
    }
    if let Some(c) = &q.cursor {
        // The cursor carries the direction: [0, seq] after, [1, seq] before.
        let v = decode_cursor(c, 2)?;
        match v[0] {
            0 => (after, before) = (Some(v[1]), None),
            1 => (after, before) = (None, Some(v[1])),
            _ => return Err(ApiError::invalid_input("invalid cursor")),
        }
    }
    let descending = before.is_some();
    let page = state
        .db
        .call(LoadMessages {
            user_id: user.user_id.get(),
            conversation_id: path.into_inner().0.get(),
            after_seq: after,
            before_seq: before,
            // One more than asked tells whether another page exists.
            limit: limit + 1,
        })
        .await?;
    let mut page = page;
    let more = page.items.len() as i64 > limit;
    page.items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| {
            page.items
                .last()
                .map(|m| encode_cursor(&[i64::from(descending), m.seq]))
        })
        .flatten();
    Ok(HttpResponse::Ok().json(Page {
        items: page.items,
        next_cursor,
    }))
}

/// A refusal of the chat writer as a problem.
fn refused((code, message): Refusal) -> ApiError {
    let kind = match code {
        "not_member" | "not_found" => ErrorKind::NotFound,
        "forbidden" => ErrorKind::Forbidden,
        "blocked" => ErrorKind::Blocked,
        "invalid_state" => ErrorKind::InvalidState,
        "invalid_input" => ErrorKind::InvalidInput,
        _ => ErrorKind::Unavailable,
    };
    let message = if code == "not_member" {
        "no such conversation"
    } else {
        message
    };
    ApiError::new(kind, message)
}

/// Runs a group change through the conversation's writer (so it takes its
/// place in the `seq` stream) and answers with the conversation as the
/// caller now sees it.
async fn change_group(
    state: &Chat,
    user: &AuthUser,
    conversation_id: i64,
    change: Change,
) -> ApiResult<Option<ConversationView>> {
    let me = user.user_id.get();
    // Made here, unique: a group change is not resent by clients.
    let client_id = format!("~{}", state.ctx.ids.next_id());
    state
        .writers
        .change(me, conversation_id, client_id, change)
        .await
        .map_err(refused)?;
    let load = LoadConversation {
        user_id: me,
        conversation_id,
    };
    match state.db.call(load).await {
        Ok(view) => Ok(Some(view)),
        // The caller left.
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// One of the caller's conversations.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = Problem)))]
pub async fn get_one(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId,)>,
) -> ApiResult<HttpResponse> {
    let load = LoadConversation {
        user_id: user.user_id.get(),
        conversation_id: path.into_inner().0.get(),
    };
    Ok(HttpResponse::Ok().json(state.db.call(load).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMembersRequest {
    #[schema(value_type = Vec<i64>, min_items = 1, max_items = 999)]
    user_ids: Vec<Id>,
}

/// Add members to a group (its owner or an admin). Members get a `member_added` entry;
/// those already in are skipped. Someone who blocked the owner, or whom the
/// owner blocked, cannot be added (403 `blocked`).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/members", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = AddMembersRequest,
    responses((status = 200, body = ConversationView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn add_members(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId,)>,
    body: crate::core::extract::Json<AddMembersRequest>,
) -> ApiResult<HttpResponse> {
    let ids = &body.user_ids;
    if ids.is_empty() || ids.len() >= MAX_GROUP_MEMBERS {
        let why = format!("user_ids must name 1 to {} users", MAX_GROUP_MEMBERS - 1);
        return Err(ApiError::invalid_input(why));
    }
    let change = Change::AddMembers {
        user_ids: ids.iter().map(|i| i.get()).collect(),
    };
    let conv = path.into_inner().0.get();
    let view = change_group(&state, &user, conv, change).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Remove a member (the owner, or an admin for a member who is neither owner
/// nor admin), or leave (the member itself). The members
/// before it, the removed one included, get a `member_removed` entry; from
/// then on the removed member's sockets get nothing of the conversation and
/// its sends an `error` frame. An owner who leaves hands the group to the
/// member with the lowest id (an `owner_changed` entry).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}/members/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_member(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId, crate::core::ids::UserId)>,
) -> ApiResult<HttpResponse> {
    let (conv, member) = path.into_inner();
    let change = Change::RemoveMember {
        user_id: member.get(),
    };
    change_group(&state, &user, conv.get(), change).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversationRequest {
    #[schema(max_length = 100)]
    title: Option<String>,
    /// Hands the group to another member.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991_i64)]
    owner_id: Option<Id>,
    #[schema(value_type = Option<HistoryVisibility>, inline)]
    history_visibility: Option<String>,
}

/// Rename a group, hand it to another member, or set what members added
/// later may read (the owner; admins may rename). Each change is an entry (`renamed`,
/// `owner_changed`, `history_changed`); a value equal to the current one
/// changes nothing.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = UpdateConversationRequest,
    responses((status = 200, body = ConversationView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId,)>,
    body: crate::core::extract::Json<UpdateConversationRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if body.title.is_none() && body.owner_id.is_none() && body.history_visibility.is_none() {
        return Err(ApiError::invalid_input(
            "give title, owner_id or history_visibility",
        ));
    }
    if let Some(t) = &body.title {
        check_text(t, "title", 100, Lines::One, false)?;
    }
    let change = Change::Update {
        title: body.title,
        owner_id: body.owner_id.map(|o| o.get()),
        history: parse_history(body.history_visibility.as_deref())?,
    };
    let conv = path.into_inner().0.get();
    let view = change_group(&state, &user, conv, change).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /api/v1/ws`: authenticate (header or `?token=`), check Origin, upgrade.
/// Frames are described in CONTRACT.md ("WebSocket").
#[utoipa::path(get, path = "/api/v1/ws", tag = "chat", security(("bearer" = [])),
    params(("token" = Option<String>, Query, description = "The bearer token, for browsers that cannot set headers")),
    responses((status = 101, description = "Switching Protocols: a WebSocket of JSON text frames"),
        (status = 401, body = crate::core::error::Problem), (status = 403, description = "Origin not allowed", body = crate::core::error::Problem)))]
pub async fn ws_route(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<Chat>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    // An Origin that is not text matches no listed origin.
    let origin = req
        .headers()
        .get("origin")
        .map(|o| o.to_str().unwrap_or(""));
    if !state.ctx.config.ws_allowed_origins.allows(origin) {
        return Err(ApiError::forbidden("origin not allowed"));
    }
    let shared = std::sync::Arc::new(ConnShared {
        id: state.registry.next_conn_id(),
        user_id: user.user_id.get(),
        token_session: user.session_id,
        last_seen_ms: AtomicI64::new(crate::core::ids::now_ms()),
        pending_frames: AtomicUsize::new(0),
        pending_bytes: AtomicUsize::new(0),
    });
    let conn = WsConn::new(state.clone(), shared);
    ws::WsResponseBuilder::new(conn, &req, stream)
        .frame_size(super::socket::MAX_FRAME_BYTES)
        .start()
        .map_err(|e| ApiError::invalid_input(format!("WebSocket handshake failed: {e}")))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRoleRequest {
    /// Whether the member manages the group with its owner.
    admin: bool,
}

/// Make a member an admin of the group, or not (the owner). Admins add and
/// remove members (not the owner or other admins) and rename the group; an
/// `admin_changed` entry tells the members.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}/members/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path), ("user_id" = i64, Path)), request_body = MemberRoleRequest,
    responses((status = 200, body = ConversationView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn set_member_role(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId, crate::core::ids::UserId)>,
    body: crate::core::extract::Json<MemberRoleRequest>,
) -> ApiResult<HttpResponse> {
    let (conv, member) = path.into_inner();
    let change = Change::SetAdmin {
        user_id: member.get(),
        admin: body.admin,
    };
    let view = change_group(&state, &user, conv.get(), change).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Mute a conversation for the caller (idempotent): clients raise no alert
/// for its messages; they are still delivered and counted as unread.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/mute", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = Problem)))]
pub async fn mute(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId,)>,
) -> ApiResult<HttpResponse> {
    let (me, conversation_id) = (user.user_id.get(), path.into_inner().0.get());
    let set = SetMuted {
        user_id: me,
        conversation_id,
        muted: true,
    };
    state.db.call(set).await?;
    let load = LoadConversation {
        user_id: me,
        conversation_id,
    };
    Ok(HttpResponse::Ok().json(state.db.call(load).await?))
}

/// Unmute a conversation for the caller (idempotent).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}/mute", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn unmute(
    state: web::Data<Chat>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::ConversationId,)>,
) -> ApiResult<HttpResponse> {
    let set = SetMuted {
        user_id: user.user_id.get(),
        conversation_id: path.into_inner().0.get(),
        muted: false,
    };
    state.db.call(set).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/conversations", web::post().to(create))
        .route("/conversations", web::get().to(list))
        .route("/conversations/{id}", web::get().to(get_one))
        .route("/conversations/{id}", web::patch().to(update))
        .route("/conversations/{id}/members", web::post().to(add_members))
        .route("/conversations/{id}/mute", web::post().to(mute))
        .route("/conversations/{id}/mute", web::delete().to(unmute))
        .route(
            "/conversations/{id}/members/{user_id}",
            web::delete().to(remove_member),
        )
        .route(
            "/conversations/{id}/members/{user_id}",
            web::patch().to(set_member_role),
        )
        .route("/conversations/{id}/messages", web::get().to(history));
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create,
        list,
        get_one,
        update,
        add_members,
        remove_member,
        set_member_role,
        mute,
        unmute,
        history,
    ),
    components(schemas(
        crate::realtime::frames::ClientFrame,
        crate::realtime::frames::ServerFrame
    ))
)]
pub struct Api;
