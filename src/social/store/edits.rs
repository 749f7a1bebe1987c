//! Taking back and changing what one wrote (CONTRACT v2, "Posts, comments,
//! likes"): the author edits a post; the author or an admin deletes a post or
//! a comment; a like is taken back. Anyone else gets 404, as if the thing
//! were not there, and nothing changes. Counters move in the same
//! transaction as the rows they count.

use actix::{Handler, Message};
use diesel::prelude::*;

use super::{visible_post, PostView};
use crate::accounts::tx as accounts;
use crate::core::error::ApiError;
use crate::core::ids::now_ms;
use crate::storage::schema::{post_comments, post_likes, posts};
use crate::storage::{DbConn, DbExecutor};

/// The post's author, if `user` may change the post: its author, or (when
/// `admin_may`) an admin. Otherwise 404.
fn may_change(
    c: &mut DbConn,
    author: Option<i64>,
    user: i64,
    admin_may: bool,
    what: &str,
) -> Result<(), ApiError> {
    match author {
        Some(a) if a == user => Ok(()),
        Some(_) if admin_may && accounts::is_admin(c, user)? => Ok(()),
        _ => Err(ApiError::not_found(format!("no such {what}"))),
    }
}

pub struct EditPost {
    pub user: i64,
    pub post_id: i64,
    pub body: String,
}

impl Message for EditPost {
    type Result = Result<PostView, ApiError>;
}

impl Handler<EditPost> for DbExecutor {
    type Result = Result<PostView, ApiError>;

    fn handle(&mut self, msg: EditPost, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| -> Result<PostView, ApiError> {
            let author = super::post_author(c, msg.post_id)?;
            may_change(c, author, msg.user, false, "post")?;
            diesel::update(posts::table.find(msg.post_id))
                .set((posts::body.eq(&msg.body), posts::edited_at_ms.eq(now_ms())))
                .execute(c)?;
            visible_post(c, msg.post_id, msg.user)
        })
    }
}

pub struct DeletePost {
    pub user: i64,
    pub post_id: i64,
}

impl Message for DeletePost {
    type Result = Result<(), ApiError>;
}

impl Handler<DeletePost> for DbExecutor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: DeletePost, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            let author = super::post_author(c, msg.post_id)?;
            may_change(c, author, msg.user, true, "post")?;
            Ok(super::delete_post(c, msg.post_id)?)
        })
    }
}

pub struct DeleteComment {
    pub user: i64,
    pub comment_id: i64,
}

impl Message for DeleteComment {
    type Result = Result<(), ApiError>;
}

impl Handler<DeleteComment> for DbExecutor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: DeleteComment, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            let row: Option<(i64, i64)> = post_comments::table
                .find(msg.comment_id)
                .select((post_comments::post_id, post_comments::author_id))
                .first(c)
                .optional()?;
            may_change(c, row.map(|r| r.1), msg.user, true, "comment")?;
            let Some((post_id, _)) = row else {
                return Err(ApiError::not_found("no such comment"));
            };
            // Two deletes of one comment may both pass the check above: only
            // the one whose DELETE removed the row moves the counter.
            let removed = diesel::delete(post_comments::table.find(msg.comment_id)).execute(c)?;
            if removed == 0 {
                return Err(ApiError::not_found("no such comment"));
            }
            diesel::update(posts::table.find(post_id))
                .set(posts::comment_count.eq(posts::comment_count - 1))
                .execute(c)?;
            Ok(())
        })
    }
}

pub struct Unlike {
    pub user: i64,
    pub post_id: i64,
}

impl Message for Unlike {
    type Result = Result<PostView, ApiError>;
}

impl Handler<Unlike> for DbExecutor {
    type Result = Result<PostView, ApiError>;

    fn handle(&mut self, msg: Unlike, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::storage::transaction(&mut conn, |c| -> Result<PostView, ApiError> {
            visible_post(c, msg.post_id, msg.user)?;
            // Taking back a like that is not there changes nothing (idempotent).
            let removed =
                diesel::delete(post_likes::table.find((msg.post_id, msg.user))).execute(c)?;
            if removed > 0 {
                diesel::update(posts::table.find(msg.post_id))
                    .set(posts::like_count.eq(posts::like_count - 1))
                    .execute(c)?;
            }
            visible_post(c, msg.post_id, msg.user)
        })
    }
}
