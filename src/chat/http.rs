//! Conversations over HTTP.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::store::requests::{
    ConversationView, CreateGroup, ListConversations, LoadMessages, MAX_GROUP_MEMBERS,
};
use super::Chat;
use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::{decode_cursor, encode_cursor, parse_limit, Page, PageQuery};
use crate::core::text::{check_text, Id, Lines};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationRequest {
    #[schema(value_type = Vec<i64>, min_items = 1, max_items = 999)]
    member_ids: Vec<Id>,
    #[schema(max_length = 100)]
    title: Option<String>,
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
    let view = state
        .db
        .call(CreateGroup {
            creator_id: user.user_id.get(),
            member_ids: body.member_ids.iter().map(|i| i.get()).collect(),
            title,
            kind: "group",
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

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/conversations", web::post().to(create))
        .route("/conversations", web::get().to(list))
        .route("/conversations/{id}/messages", web::get().to(history));
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, history,),
    components(schemas(
        crate::realtime::frames::ClientFrame,
        crate::realtime::frames::ServerFrame
    ))
)]
pub struct Api;
