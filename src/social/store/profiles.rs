//! Members as others see them (CONTRACT v2, "Accounts and profiles"): a
//! profile with its counts, member search by name, and who follows whom.
//! Two members of whom either blocked the other see nothing of each other:
//! the profile is 404, and neither appears in the other's lists.
//!
//! The rows come from their owners: users through `accounts::tx`, blocks
//! through `chat::tx`, trips through the profile hook (trips is a later
//! domain); follows and posts are social's own.

use actix::{Handler, Message};
use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::tx as accounts;
use crate::chat::tx as chat;
use crate::core::error::ApiError;
use crate::core::paging::{trim_page, Page};
use crate::storage::schema::{follows, posts};
use crate::storage::{DbConn, DbExecutor};

/// A member in a list (search, followers, following).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserSummaryView {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    /// Null until the member sets an avatar (`PATCH /api/v1/me`).
    pub avatar_url: Option<String>,
}

impl From<accounts::UserSummaryRow> for UserSummaryView {
    fn from(u: accounts::UserSummaryRow) -> Self {
        UserSummaryView {
            user_id: u.id,
            username: u.username,
            display_name: u.display_name,
            avatar_url: u.avatar_media_id.map(crate::core::urls::picture_url),
        }
    }
}

/// `GET /api/v1/users/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileView {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub followers: i64,
    pub following: i64,
    pub posts: i64,
    pub trips_organized: i64,
    pub followed_by_me: bool,
    pub blocked_by_me: bool,
}

/// Whether either of the two blocked the other.
fn apart(conn: &mut DbConn, a: i64, b: i64) -> Result<bool, ApiError> {
    Ok(a != b && (chat::is_blocked(conn, a, b)? || chat::is_blocked(conn, b, a)?))
}

pub struct GetProfile {
    pub viewer: i64,
    pub user: i64,
    /// What later domains add to a profile.
    pub hook: std::sync::Arc<dyn crate::social::hooks::ProfileHook>,
}

impl Message for GetProfile {
    type Result = Result<ProfileView, ApiError>;
}

impl Handler<GetProfile> for DbExecutor {
    type Result = Result<ProfileView, ApiError>;

    fn handle(&mut self, msg: GetProfile, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let c = &mut conn;
        let no_such = || ApiError::not_found("no such user");
        let user = accounts::find_user(c, msg.user)?.ok_or_else(no_such)?;
        if apart(c, msg.viewer, msg.user)? {
            return Err(no_such());
        }
        let followers = follows::table
            .filter(follows::followee_id.eq(msg.user))
            .count()
            .get_result(c)?;
        let following = follows::table
            .filter(follows::follower_id.eq(msg.user))
            .count()
            .get_result(c)?;
        let post_count = posts::table
            .filter(posts::author_id.eq(msg.user))
            .count()
            .get_result(c)?;
        let followed_by_me = follows::table
            .find((msg.viewer, msg.user))
            .count()
            .get_result::<i64>(c)?
            > 0;
        Ok(ProfileView {
            user_id: user.id,
            username: user.username,
            display_name: user.display_name,
            bio: user.bio,
            avatar_url: user.avatar_media_id.map(crate::core::urls::picture_url),
            followers,
            following,
            posts: post_count,
            trips_organized: msg.hook.trips_organized(c, msg.user)?,
            followed_by_me,
            blocked_by_me: msg.viewer != msg.user && chat::is_blocked(c, msg.viewer, msg.user)?,
        })
    }
}

pub struct SearchUsers {
    pub viewer: i64,
    /// Already lowercased.
    pub prefix: String,
    pub after_id: Option<i64>,
    pub limit: i64,
}

impl Message for SearchUsers {
    type Result = Result<Page<UserSummaryView>, ApiError>;
}

impl Handler<SearchUsers> for DbExecutor {
    type Result = Result<Page<UserSummaryView>, ApiError>;

    fn handle(&mut self, msg: SearchUsers, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let hidden = chat::blocked_either(&mut conn, msg.viewer)?;
        let mut rows =
            accounts::search_users(&mut conn, &msg.prefix, &hidden, msg.after_id, msg.limit)?;
        let next_cursor = trim_page(&mut rows, msg.limit, |u| vec![u.id]);
        Ok(Page {
            items: rows.into_iter().map(UserSummaryView::from).collect(),
            next_cursor,
        })
    }
}

/// Which of a member's follow lists.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// Who follows them.
    Followers,
    /// Whom they follow.
    Following,
}

pub struct FollowList {
    pub viewer: i64,
    pub user: i64,
    pub side: Side,
    /// (followed at, user id) of the last row of the previous page.
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

impl Message for FollowList {
    type Result = Result<Page<UserSummaryView>, ApiError>;
}

impl Handler<FollowList> for DbExecutor {
    type Result = Result<Page<UserSummaryView>, ApiError>;

    fn handle(&mut self, msg: FollowList, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let c = &mut conn;
        if accounts::find_user(c, msg.user)?.is_none() || apart(c, msg.viewer, msg.user)? {
            return Err(ApiError::not_found("no such user"));
        }
        let mut rows = follow_page(c, msg.user, msg.side, msg.before, msg.limit)?;
        let next_cursor = trim_page(&mut rows, msg.limit, |(id, at)| vec![*at, *id]);
        // The cursor follows the rows read; members hidden from the viewer
        // leave a page shorter, not a gap.
        let hidden = chat::blocked_either(c, msg.viewer)?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| hidden.binary_search(id).is_err())
            .collect();
        let mut found: std::collections::HashMap<i64, accounts::UserSummaryRow> =
            accounts::user_summaries(c, &ids)?
                .into_iter()
                .map(|u| (u.id, u))
                .collect();
        let items = ids
            .iter()
            .filter_map(|id| found.remove(id))
            .map(UserSummaryView::from)
            .collect();
        Ok(Page { items, next_cursor })
    }
}

/// (other member, followed at) of one side of `user`'s follows, newest
/// first, `limit + 1` rows.
fn follow_page(
    conn: &mut DbConn,
    user: i64,
    side: Side,
    before: Option<(i64, i64)>,
    limit: i64,
) -> QueryResult<Vec<(i64, i64)>> {
    let take = limit.saturating_add(1);
    match side {
        Side::Followers => {
            let mut q = follows::table
                .filter(follows::followee_id.eq(user))
                .into_boxed();
            if let Some((at, id)) = before {
                q = q.filter(
                    follows::created_at_ms.lt(at).or(follows::created_at_ms
                        .eq(at)
                        .and(follows::follower_id.lt(id))),
                );
            }
            q.order((follows::created_at_ms.desc(), follows::follower_id.desc()))
                .limit(take)
                .select((follows::follower_id, follows::created_at_ms))
                .load(conn)
        }
        Side::Following => {
            let mut q = follows::table
                .filter(follows::follower_id.eq(user))
                .into_boxed();
            if let Some((at, id)) = before {
                q = q.filter(
                    follows::created_at_ms.lt(at).or(follows::created_at_ms
                        .eq(at)
                        .and(follows::followee_id.lt(id))),
                );
            }
            q.order((follows::created_at_ms.desc(), follows::followee_id.desc()))
                .limit(take)
                .select((follows::followee_id, follows::created_at_ms))
                .load(conn)
        }
    }
}
