//! Social reads and writes on the database executor.

pub mod edits;
pub mod prefs;
pub mod profiles;

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::tx as accounts;
use crate::core::error::ApiError;
use crate::core::ids::{now_ms, rfc3339};
use crate::core::paging::Page;
use crate::storage::outbox;
use crate::storage::schema::{follows, notifications, post_comments, post_likes, posts};
use crate::storage::{DbConn, DbExecutor};

/// Most followers a new post is pushed to live (the rest see it in their feed).
pub const MAX_LIVE_POST_PUSHES: i64 = 10_000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PostView {
    pub post_id: i64,
    pub author_id: i64,
    pub body: String,
    pub created_at: String,
    pub like_count: i64,
    pub comment_count: i64,
    /// When the author last edited the body; null if never.
    pub edited_at: Option<String>,
    /// The post's pictures, in the order given (at most 9).
    pub media: Vec<PictureRef>,
    /// The caller likes it.
    pub liked_by_me: bool,
}

pub use crate::core::urls::PictureRef;

type PostTuple = (i64, i64, String, i64, i64, i64, Option<i64>, Option<String>);

fn post_view(
    (id, author_id, body, like_count, comment_count, created, edited, media): PostTuple,
) -> PostView {
    let media: Vec<i64> = media
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    PostView {
        post_id: id,
        author_id,
        body,
        created_at: rfc3339(created),
        like_count,
        comment_count,
        edited_at: edited.map(rfc3339),
        media: media.into_iter().map(PictureRef::of).collect(),
        liked_by_me: false,
    }
}

/// Sets `liked_by_me` for `viewer` on a page of posts (one query).
fn mark_liked(conn: &mut DbConn, viewer: i64, posts: &mut [PostView]) -> QueryResult<()> {
    let ids: Vec<i64> = posts.iter().map(|p| p.post_id).collect();
    let liked: std::collections::HashSet<i64> = post_likes::table
        .filter(post_likes::user_id.eq(viewer))
        .filter(post_likes::post_id.eq_any(ids))
        .select(post_likes::post_id)
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    for p in posts {
        p.liked_by_me = liked.contains(&p.post_id);
    }
    Ok(())
}

const POST_COLUMNS: (
    posts::id,
    posts::author_id,
    posts::body,
    posts::like_count,
    posts::comment_count,
    posts::created_at_ms,
    posts::edited_at_ms,
    posts::media_ids,
) = (
    posts::id,
    posts::author_id,
    posts::body,
    posts::like_count,
    posts::comment_count,
    posts::created_at_ms,
    posts::edited_at_ms,
    posts::media_ids,
);

fn ensure_user(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    accounts::find_user(conn, id)?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("no such user"))
}

/// A post the viewer may see (404 if missing or its author blocked the viewer).
pub(super) fn visible_post(
    conn: &mut DbConn,
    post_id: i64,
    viewer: i64,
) -> Result<PostView, ApiError> {
    let row: Option<PostTuple> = posts::table
        .find(post_id)
        .select(POST_COLUMNS)
        .first(conn)
        .optional()?;
    let mut post = row
        .map(post_view)
        .ok_or_else(|| ApiError::not_found("no such post"))?;
    if crate::chat::tx::is_blocked(conn, post.author_id, viewer)? {
        return Err(ApiError::not_found("no such post"));
    }
    mark_liked(conn, viewer, std::slice::from_mut(&mut post))?;
    Ok(post)
}

pub struct Follow {
    pub follower: i64,
    pub followee: i64,
}

impl Message for Follow {
    /// True when this call created the follow (an event was written).
    type Result = Result<bool, ApiError>;
}

impl Handler<Follow> for DbExecutor {
    type Result = Result<bool, ApiError>;

    fn handle(&mut self, msg: Follow, _: &mut Self::Context) -> Self::Result {
        if msg.follower == msg.followee {
            return Err(ApiError::invalid_input("you cannot follow yourself"));
        }
        let mut conn = self.conn()?;
        ensure_user(&mut conn, msg.followee)?;
        if crate::chat::tx::is_blocked(&mut conn, msg.followee, msg.follower)? {
            return Err(ApiError::not_found("no such user"));
        }
        let ids = &self.ids;
        crate::storage::transaction(&mut conn, |c| -> Result<bool, ApiError> {
            let exists: Option<i64> = follows::table
                .find((msg.follower, msg.followee))
                .select(follows::follower_id)
                .first(c)
                .optional()?;
            if exists.is_some() {
                return Ok(false);
            }
            diesel::insert_into(follows::table)
                .values((
                    follows::follower_id.eq(msg.follower),
                    follows::followee_id.eq(msg.followee),
                    follows::created_at_ms.eq(now_ms()),
                ))
                .execute(c)?;
            // The followee is told through the outbox, in this same transaction.
            outbox::enqueue(
                c,
                ids,
                "user.followed",
                &serde_json::json!({
                    "follower_id": msg.follower,
                    "followee_id": msg.followee,
                    "notify": [{"user_id": msg.followee, "kind": "user.followed", "data": {"follower_id": msg.follower}}],
                }),
            )?;
            Ok(true)
        })
    }
}

pub struct Unfollow {
    pub follower: i64,
    pub followee: i64,
}

impl Message for Unfollow {
    type Result = Result<(), ApiError>;
}

impl Handler<Unfollow> for DbExecutor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: Unfollow, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        ensure_user(&mut conn, msg.followee)?;
        diesel::delete(follows::table.find((msg.follower, msg.followee))).execute(&mut conn)?;
        Ok(())
    }
}

pub struct SetBlock {
    pub blocker: i64,
    pub blocked: i64,
    pub on: bool,
}

impl Message for SetBlock {
    type Result = Result<(), ApiError>;
}

impl Handler<SetBlock> for DbExecutor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: SetBlock, _: &mut Self::Context) -> Self::Result {
        if msg.blocker == msg.blocked {
            return Err(ApiError::invalid_input("you cannot block yourself"));
        }
        let mut conn = self.conn()?;
        ensure_user(&mut conn, msg.blocked)?;
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            crate::chat::tx::set_block(c, msg.blocker, msg.blocked, msg.on, now_ms())?;
            if msg.on {
                // A blocked user stops following the blocker.
                diesel::delete(follows::table.find((msg.blocked, msg.blocker))).execute(c)?;
            }
            Ok(())
        })
    }
}

pub struct CreatePost {
    pub author: i64,
    pub body: String,
    /// Pictures the author uploaded (at most 9), in order.
    pub media_ids: Vec<i64>,
}

impl Message for CreatePost {
    /// The post and the followers to push it to.
    type Result = Result<(PostView, Vec<i64>), ApiError>;
}

impl Handler<CreatePost> for DbExecutor {
    type Result = Result<(PostView, Vec<i64>), ApiError>;

    fn handle(&mut self, msg: CreatePost, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let now = now_ms();
        let id = self.ids.next_id();
        let media = (!msg.media_ids.is_empty())
            .then(|| serde_json::Value::from(msg.media_ids.clone()).to_string());
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            crate::media::tx::attach(c, &msg.media_ids, msg.author, now)?;
            diesel::insert_into(posts::table)
                .values((
                    posts::id.eq(id),
                    posts::author_id.eq(msg.author),
                    posts::body.eq(&msg.body),
                    posts::like_count.eq(0_i64),
                    posts::comment_count.eq(0_i64),
                    posts::created_at_ms.eq(now),
                    posts::media_ids.eq(media.clone()),
                ))
                .execute(c)?;
            Ok(())
        })?;
        let followers: Vec<i64> = follows::table
            .filter(follows::followee_id.eq(msg.author))
            .select(follows::follower_id)
            .limit(MAX_LIVE_POST_PUSHES)
            .load(&mut conn)?;
        Ok((
            post_view((id, msg.author, msg.body, 0, 0, now, None, media)),
            followers,
        ))
    }
}

pub struct GetPost {
    pub viewer: i64,
    pub post_id: i64,
}

impl Message for GetPost {
    type Result = Result<PostView, ApiError>;
}

impl Handler<GetPost> for DbExecutor {
    type Result = Result<PostView, ApiError>;

    fn handle(&mut self, msg: GetPost, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        visible_post(&mut conn, msg.post_id, msg.viewer)
    }
}

/// Fan-out on read: the viewer's followees' posts and their own, newest first.
/// `posts (author_id, id)` lets the database walk each followee's newest posts;
/// the id cursor keeps pages stable while new posts arrive.
pub struct Feed {
    pub viewer: i64,
    pub limit: i64,
    pub before_id: Option<i64>,
}

impl Message for Feed {
    type Result = Result<Page<PostView>, ApiError>;
}

impl Handler<Feed> for DbExecutor {
    type Result = Result<Page<PostView>, ApiError>;

    fn handle(&mut self, msg: Feed, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        // Following a blocker is refused and a block ends the follow, so
        // this filter only closes the race of a follow and a block at once;
        // past MAX_BLOCKERS blockers that invariant alone keeps them out.
        let blockers = crate::chat::tx::blockers_of(&mut conn, msg.viewer)?;
        let followees = follows::table
            .filter(follows::follower_id.eq(msg.viewer))
            .select(follows::followee_id);
        let mut q = posts::table
            .filter(
                posts::author_id
                    .eq_any(followees)
                    .or(posts::author_id.eq(msg.viewer)),
            )
            .filter(posts::author_id.ne_all(blockers))
            .into_boxed();
        if let Some(before) = msg.before_id {
            q = q.filter(posts::id.lt(before));
        }
        let mut rows: Vec<PostTuple> = q
            .order(posts::id.desc())
            .limit(msg.limit + 1)
            .select(POST_COLUMNS)
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        let mut items: Vec<PostView> = rows.into_iter().map(post_view).collect();
        mark_liked(&mut conn, msg.viewer, &mut items)?;
        Ok(Page { items, next_cursor })
    }
}

pub struct Like {
    pub user: i64,
    pub post_id: i64,
}

impl Message for Like {
    type Result = Result<PostView, ApiError>;
}

impl Handler<Like> for DbExecutor {
    type Result = Result<PostView, ApiError>;

    fn handle(&mut self, msg: Like, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| -> Result<PostView, ApiError> {
            visible_post(c, msg.post_id, msg.user)?;
            let liked: Option<i64> = post_likes::table
                .find((msg.post_id, msg.user))
                .select(post_likes::user_id)
                .first(c)
                .optional()?;
            if liked.is_none() {
                diesel::insert_into(post_likes::table)
                    .values((
                        post_likes::post_id.eq(msg.post_id),
                        post_likes::user_id.eq(msg.user),
                        post_likes::created_at_ms.eq(now_ms()),
                    ))
                    .execute(c)?;
                diesel::update(posts::table.find(msg.post_id))
                    .set(posts::like_count.eq(posts::like_count + 1))
                    .execute(c)?;
            }
            visible_post(c, msg.post_id, msg.user)
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommentView {
    pub comment_id: i64,
    pub post_id: i64,
    pub author_id: i64,
    pub body: String,
    pub created_at: String,
}

pub struct AddComment {
    pub user: i64,
    pub post_id: i64,
    pub body: String,
}

impl Message for AddComment {
    type Result = Result<CommentView, ApiError>;
}

impl Handler<AddComment> for DbExecutor {
    type Result = Result<CommentView, ApiError>;

    fn handle(&mut self, msg: AddComment, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let id = self.ids.next_id();
        let now = now_ms();
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            visible_post(c, msg.post_id, msg.user)?;
            diesel::insert_into(post_comments::table)
                .values((
                    post_comments::id.eq(id),
                    post_comments::post_id.eq(msg.post_id),
                    post_comments::author_id.eq(msg.user),
                    post_comments::body.eq(&msg.body),
                    post_comments::created_at_ms.eq(now),
                ))
                .execute(c)?;
            diesel::update(posts::table.find(msg.post_id))
                .set(posts::comment_count.eq(posts::comment_count + 1))
                .execute(c)?;
            Ok(())
        })?;
        Ok(CommentView {
            comment_id: id,
            post_id: msg.post_id,
            author_id: msg.user,
            body: msg.body,
            created_at: rfc3339(now),
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub notification_id: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
    pub read: bool,
}

type NotificationTuple = (i64, String, String, i64, bool);

pub fn notification_view((id, kind, data, created, read): NotificationTuple) -> NotificationView {
    NotificationView {
        notification_id: id,
        kind,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        created_at: rfc3339(created),
        read,
    }
}

pub struct ListNotifications {
    pub user: i64,
    pub limit: i64,
    pub before_id: Option<i64>,
}

impl Message for ListNotifications {
    type Result = Result<Page<NotificationView>, ApiError>;
}

impl Handler<ListNotifications> for DbExecutor {
    type Result = Result<Page<NotificationView>, ApiError>;

    fn handle(&mut self, msg: ListNotifications, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        // Kinds the user turned off are not listed (nor pushed).
        let off = prefs::muted_kinds(&mut conn, msg.user)?;
        let mut q = notifications::table
            .filter(notifications::user_id.eq(msg.user))
            .filter(notifications::kind.ne_all(off))
            .into_boxed();
        if let Some(before) = msg.before_id {
            q = q.filter(notifications::id.lt(before));
        }
        let mut rows: Vec<NotificationTuple> = q
            .order(notifications::id.desc())
            .limit(msg.limit + 1)
            .select((
                notifications::id,
                notifications::kind,
                notifications::data,
                notifications::created_at_ms,
                notifications::read,
            ))
            .load(&mut conn)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.0]);
        Ok(Page {
            items: rows.into_iter().map(notification_view).collect(),
            next_cursor,
        })
    }
}

pub struct MarkNotificationsRead {
    pub user: i64,
    pub up_to_id: i64,
}

impl Message for MarkNotificationsRead {
    type Result = Result<usize, ApiError>;
}

impl Handler<MarkNotificationsRead> for DbExecutor {
    type Result = Result<usize, ApiError>;

    fn handle(&mut self, msg: MarkNotificationsRead, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        Ok(diesel::update(
            notifications::table
                .filter(notifications::user_id.eq(msg.user))
                .filter(notifications::id.le(msg.up_to_id))
                .filter(notifications::read.eq(false)),
        )
        .set(notifications::read.eq(true))
        .execute(&mut conn)?)
    }
}

/// One notification row as stored.
#[derive(Insertable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub data: String,
    pub event_id: Option<i64>,
    pub read: bool,
    pub created_at_ms: i64,
}

/// One notification of event `event_id`. Inside a group-commit batch it
/// joins the batch's one multi-row insert (`storage::appends`): nothing reads
/// notifications back inside the transaction that wrote them.
pub fn insert_notification(
    c: &mut DbConn,
    id: i64,
    user_id: i64,
    kind: &str,
    data: &serde_json::Value,
    event_id: i64,
    now_ms: i64,
) -> QueryResult<()> {
    let row = NotificationRow {
        id,
        user_id,
        kind: kind.to_owned(),
        data: data.to_string(),
        event_id: Some(event_id),
        read: false,
        created_at_ms: now_ms,
    };
    crate::storage::appends::append(c, row, write_notifications)
}

/// One cached single-row statement for one row, multi-row inserts otherwise.
fn write_notifications(c: &mut DbConn, rows: &[NotificationRow]) -> QueryResult<()> {
    if let [row] = rows {
        return crate::storage::direct::execute(
            c,
            diesel::insert_into(notifications::table).values((
                notifications::id.eq(row.id),
                notifications::user_id.eq(row.user_id),
                notifications::kind.eq(&row.kind),
                notifications::data.eq(&row.data),
                notifications::event_id.eq(row.event_id),
                notifications::read.eq(row.read),
                notifications::created_at_ms.eq(row.created_at_ms),
            )),
        )
        .map(|_| ());
    }
    crate::storage::direct::insert_set(
        c,
        "INSERT INTO notifications (id, user_id, kind, data, event_id, read, created_at_ms) VALUES ",
        "",
        rows,
        |r| {
            use crate::storage::direct::Val::{Bool, Int, NullInt, Text};
            vec![
                Int(r.id),
                Int(r.user_id),
                Text(&r.kind),
                Text(&r.data),
                NullInt(r.event_id),
                Bool(r.read),
                Int(r.created_at_ms),
            ]
        },
        |b, chunk| diesel::insert_into(notifications::table).values(chunk).execute(b),
    )?;
    Ok(())
}

pub fn post_author(conn: &mut DbConn, post_id: i64) -> QueryResult<Option<i64>> {
    posts::table
        .find(post_id)
        .select(posts::author_id)
        .first(conn)
        .optional()
}

/// Deletes a post with its likes and comments.
pub fn delete_post(conn: &mut DbConn, post_id: i64) -> QueryResult<()> {
    diesel::delete(post_likes::table.filter(post_likes::post_id.eq(post_id))).execute(conn)?;
    diesel::delete(post_comments::table.filter(post_comments::post_id.eq(post_id)))
        .execute(conn)?;
    diesel::delete(posts::table.find(post_id)).execute(conn)?;
    Ok(())
}
