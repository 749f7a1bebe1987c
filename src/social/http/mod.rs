//! Social over HTTP: follows, blocks, posts, feed, notifications.

pub mod prefs;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::store::edits::{DeleteComment, DeletePost, EditPost, Unlike};
use super::store::profiles::{
    FollowList, GetProfile, ProfileView, SearchUsers, Side, UserSummaryView,
};
use super::store::{
    AddComment, CommentView, CreatePost, Feed, Follow, GetPost, Like, ListNotifications,
    MarkNotificationsRead, PostView, SetBlock, Unfollow,
};
use super::Social;
use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, Problem};
use crate::core::paging::PageQuery;
use crate::core::text::Id;
use crate::realtime::frames::ServerFrame;
use crate::runtime::relay::Nudge;

pub const MAX_POST_CHARS: usize = 2_000;
pub const MAX_COMMENT_CHARS: usize = 1_000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct FollowView {
    user_id: i64,
    following: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BlockView {
    user_id: i64,
    blocked: bool,
}

fn text_body(body: &str, max: usize, what: &str) -> ApiResult<()> {
    crate::core::text::check_text(body, what, max, crate::core::text::Lines::Many, true)
}

/// Follow a user (idempotent); they are notified the first time.
#[utoipa::path(post, path = "/api/v1/users/{id}/follow", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = FollowView), (status = 404, body = Problem)))]
pub async fn follow(
    state: web::Data<Social>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::UserId,)>,
) -> ApiResult<HttpResponse> {
    let followee = path.into_inner().0.get();
    let created = state
        .db
        .call(Follow {
            follower: user.user_id.get(),
            followee,
        })
        .await?;
    if created {
        state.relay.do_send(Nudge);
    }
    Ok(HttpResponse::Ok().json(FollowView {
        user_id: followee,
        following: true,
    }))
}

/// Stop following.
#[utoipa::path(delete, path = "/api/v1/users/{id}/follow", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn unfollow(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::UserId,)>,
) -> ApiResult<HttpResponse> {
    state
        .db
        .call(Unfollow {
            follower: user.user_id.get(),
            followee: path.into_inner().0.get(),
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Block a user: they cannot message you, open a direct conversation with you, or see your posts.
#[utoipa::path(post, path = "/api/v1/users/{id}/block", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = BlockView), (status = 404, body = Problem)))]
pub async fn block(
    state: web::Data<Social>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::UserId,)>,
) -> ApiResult<HttpResponse> {
    let blocked = path.into_inner().0.get();
    state
        .db
        .call(SetBlock {
            blocker: user.user_id.get(),
            blocked,
            on: true,
        })
        .await?;
    Ok(HttpResponse::Ok().json(BlockView {
        user_id: blocked,
        blocked: true,
    }))
}

/// Lift a block.
#[utoipa::path(delete, path = "/api/v1/users/{id}/block", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn unblock(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::UserId,)>,
) -> ApiResult<HttpResponse> {
    state
        .db
        .call(SetBlock {
            blocker: user.user_id.get(),
            blocked: path.into_inner().0.get(),
            on: false,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyRequest {
    /// A post: 1-2,000 characters; a comment: 1-1,000. Not blank.
    #[schema(min_length = 1, max_length = 2000)]
    body: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostRequest {
    /// 1-2,000 characters. Not blank.
    #[schema(min_length = 1, max_length = 2000)]
    body: String,
    /// Pictures the caller uploaded (`POST /api/v1/media`), in order.
    #[schema(value_type = Option<Vec<i64>>, max_items = 9)]
    media_ids: Option<Vec<Id>>,
}

/// Publish a post (with up to 9 pictures); online followers get it pushed.
#[utoipa::path(post, path = "/api/v1/posts", tag = "social", security(("bearer" = [])), request_body = PostRequest,
    responses((status = 201, body = PostView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn create_post(
    state: web::Data<Social>,
    user: AuthUser,
    body: crate::core::extract::Json<PostRequest>,
) -> ApiResult<HttpResponse> {
    let PostRequest { body, media_ids } = body.into_inner();
    text_body(&body, MAX_POST_CHARS, "body")?;
    let media_ids: Vec<i64> = media_ids
        .unwrap_or_default()
        .iter()
        .map(|m| m.get())
        .collect();
    let max = crate::media::tx::MAX_POST_PICTURES;
    if media_ids.len() > max {
        return Err(ApiError::invalid_input(format!(
            "a post has at most {max} pictures"
        )));
    }
    let mut distinct = media_ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != media_ids.len() {
        return Err(ApiError::invalid_input("media_ids names a picture twice"));
    }
    let (post, followers) = state
        .db
        .call(CreatePost {
            author: user.user_id.get(),
            body,
            media_ids,
        })
        .await?;
    let value = serde_json::to_value(&post).map_err(ApiError::internal)?;
    let frame = ServerFrame::Post { post: &value }.encode();
    // Each node pushes to the followers whose sockets it holds.
    state.registry.deliver_to_all(&followers, frame);
    Ok(HttpResponse::Created().json(post))
}

/// One post (404 if its author blocked the caller).
#[utoipa::path(get, path = "/api/v1/posts/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = PostView), (status = 404, body = Problem)))]
pub async fn get_post(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::PostId,)>,
) -> ApiResult<HttpResponse> {
    let post = state
        .db
        .call(GetPost {
            viewer: user.user_id.get(),
            post_id: path.into_inner().0.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(post))
}

/// Posts of the people the caller follows and the caller's own, newest first.
#[utoipa::path(get, path = "/api/v1/feed", tag = "social", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::social::store::PostView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn feed(
    state: web::Data<Social>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(Feed {
            viewer: user.user_id.get(),
            limit: q.limit()?,
            before_id: q.cursor_id()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Like a post (idempotent).
#[utoipa::path(post, path = "/api/v1/posts/{id}/like", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = PostView), (status = 404, body = Problem)))]
pub async fn like(
    state: web::Data<Social>,
    user: AuthUser,
    _body: crate::core::extract::ActionBody<crate::core::extract::NoFields>,
    path: web::Path<(crate::core::ids::PostId,)>,
) -> ApiResult<HttpResponse> {
    let post = state
        .db
        .call(Like {
            user: user.user_id.get(),
            post_id: path.into_inner().0.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(post))
}

/// Comment on a post.
#[utoipa::path(post, path = "/api/v1/posts/{id}/comments", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = BodyRequest,
    responses((status = 201, body = CommentView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn comment(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::PostId,)>,
    body: crate::core::extract::Json<BodyRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner().body;
    text_body(&body, MAX_COMMENT_CHARS, "body")?;
    let c = state
        .db
        .call(AddComment {
            user: user.user_id.get(),
            post_id: path.into_inner().0.get(),
            body,
        })
        .await?;
    Ok(HttpResponse::Created().json(c))
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "social", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::social::store::NotificationView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 400, body = Problem)))]
pub async fn notifications(
    state: web::Data<Social>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = state
        .db
        .call(ListNotifications {
            user: user.user_id.get(),
            limit: q.limit()?,
            before_id: q.cursor_id()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    #[schema(value_type = i64)]
    up_to_id: Id,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadResult {
    marked_read: usize,
}

/// Mark the caller's notifications up to `up_to_id` read.
#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "social", security(("bearer" = [])),
    request_body = ReadRequest, responses((status = 200, body = ReadResult), (status = 400, body = Problem)))]
pub async fn mark_read(
    state: web::Data<Social>,
    user: AuthUser,
    body: crate::core::extract::Json<ReadRequest>,
) -> ApiResult<HttpResponse> {
    let n = state
        .db
        .call(MarkNotificationsRead {
            user: user.user_id.get(),
            up_to_id: body.up_to_id.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(ReadResult { marked_read: n }))
}

/// Change one's own post (`edited_at` records when). Others: 404.
#[utoipa::path(patch, path = "/api/v1/posts/{id}", tag = "social", security(("bearer" = [])), request_body = BodyRequest,
    params(("id" = i64, Path)),
    responses((status = 200, body = PostView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn edit_post(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::PostId,)>,
    body: crate::core::extract::Json<BodyRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner().body;
    text_body(&body, MAX_POST_CHARS, "body")?;
    let post = state
        .db
        .call(EditPost {
            user: user.user_id.get(),
            post_id: path.into_inner().0.get(),
            body,
        })
        .await?;
    Ok(HttpResponse::Ok().json(post))
}

/// Delete a post with its likes and comments (its author or an admin). Others: 404.
#[utoipa::path(delete, path = "/api/v1/posts/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_post(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::PostId,)>,
) -> ApiResult<HttpResponse> {
    state
        .db
        .call(DeletePost {
            user: user.user_id.get(),
            post_id: path.into_inner().0.get(),
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete a comment (its author or an admin). Others: 404.
#[utoipa::path(delete, path = "/api/v1/comments/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_comment(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::CommentId,)>,
) -> ApiResult<HttpResponse> {
    state
        .db
        .call(DeleteComment {
            user: user.user_id.get(),
            comment_id: path.into_inner().0.get(),
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Take back one's like (idempotent: 200 either way).
#[utoipa::path(delete, path = "/api/v1/posts/{id}/like", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = PostView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn unlike(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(crate::core::ids::PostId,)>,
) -> ApiResult<HttpResponse> {
    let post = state
        .db
        .call(Unlike {
            user: user.user_id.get(),
            post_id: path.into_inner().0.get(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(post))
}

/// Most characters of a member search's prefix.
pub const MAX_SEARCH_CHARS: usize = 64;

/// A member: name, bio, counts, and how the caller stands to them. 404 for a
/// member either of the two blocked.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ProfileView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn profile(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(Id,)>,
) -> ApiResult<HttpResponse> {
    let view = state
        .db
        .call(GetProfile {
            viewer: user.user_id.get(),
            user: path.into_inner().0.get(),
            hook: state.profile_hook.clone(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
pub struct UserSearchQuery {
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Members whose username or display name starts with `q` (case-insensitive,
/// any script), by id; members either of the two blocked are left out, as
/// are banned ones.
#[utoipa::path(get, path = "/api/v1/users", tag = "social", security(("bearer" = [])),
    params(("q" = String, Query, description = "1-64 characters: the start of a username or display name"),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<UserSummaryView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"),
        (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn search_users(
    state: web::Data<Social>,
    user: AuthUser,
    q: web::Query<UserSearchQuery>,
) -> ApiResult<HttpResponse> {
    let prefix = q.q.as_deref().map(str::trim).unwrap_or_default();
    let rule = crate::core::text::text_problem(
        prefix,
        MAX_SEARCH_CHARS,
        crate::core::text::Lines::One,
        true,
    );
    if let Some(problem) = rule.or_else(|| prefix.is_empty().then(|| "is required".to_owned())) {
        return Err(ApiError::invalid_input(format!(
            "q (the start of a name, 1-64 characters) {problem}"
        )));
    }
    let page = state
        .db
        .call(SearchUsers {
            viewer: user.user_id.get(),
            prefix: prefix.to_lowercase(),
            after_id: crate::core::paging::cursor_id(q.cursor.as_deref())?,
            limit: crate::core::paging::parse_limit(q.limit.as_deref())?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn follow_list(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    q: web::Query<PageQuery>,
    side: Side,
) -> ApiResult<HttpResponse> {
    let before = q
        .cursor
        .as_deref()
        .map(|c| crate::core::paging::decode_cursor(c, 2).map(|v| (v[0], v[1])))
        .transpose()?;
    let page = state
        .db
        .call(FollowList {
            viewer: user.user_id.get(),
            user: path.into_inner().0.get(),
            side,
            before,
            limit: q.limit()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Who follows the member, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/followers", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<UserSummaryView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn followers(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    follow_list(state, user, path, q, Side::Followers).await
}

/// Whom the member follows, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/following", tag = "social", security(("bearer" = [])),
    params(("id" = i64, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<UserSummaryView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn following(
    state: web::Data<Social>,
    user: AuthUser,
    path: web::Path<(Id,)>,
    q: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    follow_list(state, user, path, q, Side::Following).await
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(search_users))
        .route("/users/{id}", web::get().to(profile))
        .route("/users/{id}/followers", web::get().to(followers))
        .route("/users/{id}/following", web::get().to(following))
        .route("/users/{id}/follow", web::post().to(follow))
        .route("/users/{id}/follow", web::delete().to(unfollow))
        .route("/users/{id}/block", web::post().to(block))
        .route("/users/{id}/block", web::delete().to(unblock))
        .route("/posts", web::post().to(create_post))
        .route("/posts/{id}", web::get().to(get_post))
        .route("/posts/{id}", web::patch().to(edit_post))
        .route("/posts/{id}", web::delete().to(delete_post))
        .route("/posts/{id}/like", web::post().to(like))
        .route("/posts/{id}/like", web::delete().to(unlike))
        .route("/comments/{id}", web::delete().to(delete_comment))
        .route("/posts/{id}/comments", web::post().to(comment))
        .route("/feed", web::get().to(feed))
        .route("/notifications", web::get().to(notifications))
        .route("/notifications/read", web::post().to(mark_read))
        .route(
            "/me/notification-preferences",
            web::get().to(prefs::get_preferences),
        )
        .route(
            "/me/notification-preferences",
            web::put().to(prefs::set_preferences),
        );
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    profile,
    search_users,
    followers,
    following,
    follow,
    unfollow,
    block,
    unblock,
    create_post,
    get_post,
    edit_post,
    delete_post,
    feed,
    like,
    unlike,
    delete_comment,
    comment,
    notifications,
    mark_read,
    prefs::get_preferences,
    prefs::set_preferences,
))]
pub struct Api;
