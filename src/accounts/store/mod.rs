//! Account queries. Portable diesel only: they run on both backends.

pub mod requests;
pub mod security;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::storage::schema::{sessions, settings, users};
use crate::storage::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub username_lower: String,
    pub display_name: String,
    pub bio: String,
    pub password_hash: String,
    pub roles: String,
    pub invite_code: String,
    pub inviter_id: Option<i64>,
    pub banned: bool,
    pub created_at_ms: i64,
    /// `display_name` lowercased (Unicode), for search.
    pub display_name_lower: String,
    pub avatar_media_id: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: i64,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked: bool,
}

/// What a unique-constraint violation on `users` was about.
pub enum UserConflict {
    Username,
    InviteCode,
}

pub fn classify_user_conflict(e: &DieselError) -> Option<UserConflict> {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let text = format!(
                "{} {}",
                info.message(),
                info.constraint_name().unwrap_or("")
            );
            if text.contains("invite_code") {
                Some(UserConflict::InviteCode)
            } else {
                Some(UserConflict::Username)
            }
        }
        _ => None,
    }
}

pub fn insert_user(conn: &mut DbConn, row: &UserRow) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find_user(conn: &mut DbConn, id: i64) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_user_by_username(
    conn: &mut DbConn,
    username_lower: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::username_lower.eq(username_lower))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_user_by_invite_code(conn: &mut DbConn, code: &str) -> QueryResult<Option<i64>> {
    users::table
        .filter(users::invite_code.eq(code))
        .select(users::id)
        .first(conn)
        .optional()
}

pub fn update_profile(
    conn: &mut DbConn,
    id: i64,
    display_name: Option<&str>,
    bio: Option<&str>,
) -> QueryResult<()> {
    if let Some(name) = display_name {
        diesel::update(users::table.find(id))
            .set((
                users::display_name.eq(name),
                users::display_name_lower.eq(name.to_lowercase()),
            ))
            .execute(conn)?;
    }
    if let Some(bio) = bio {
        diesel::update(users::table.find(id))
            .set(users::bio.eq(bio))
            .execute(conn)?;
    }
    Ok(())
}

pub fn set_avatar(conn: &mut DbConn, id: i64, media_id: i64) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::avatar_media_id.eq(Some(media_id)))
        .execute(conn)
        .map(|_| ())
}

pub fn set_password_and_roles(
    conn: &mut DbConn,
    id: i64,
    hash: &str,
    roles: &str,
) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::roles.eq(roles)))
        .execute(conn)
        .map(|_| ())
}

pub fn set_banned(conn: &mut DbConn, id: i64, banned: bool) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::banned.eq(banned))
        .execute(conn)
        .map(|_| ())
}

pub fn insert_session(conn: &mut DbConn, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find_session(conn: &mut DbConn, id: i64) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

pub fn revoke_session(conn: &mut DbConn, id: i64) -> QueryResult<()> {
    diesel::update(sessions::table.find(id))
        .set(sessions::revoked.eq(true))
        .execute(conn)
        .map(|_| ())
}

/// Revokes every live session of a user; returns them with their expiries.
pub fn revoke_user_sessions(
    conn: &mut DbConn,
    user_id: i64,
    now_ms: i64,
) -> QueryResult<Vec<SessionRow>> {
    let live: Vec<SessionRow> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked.eq(false))
        .filter(sessions::expires_at_ms.gt(now_ms))
        .select(SessionRow::as_select())
        .load(conn)?;
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked.eq(false)),
    )
    .set(sessions::revoked.eq(true))
    .execute(conn)?;
    Ok(live)
}

/// Revoked sessions whose tokens could still be presented.
pub fn live_revoked_sessions(conn: &mut DbConn, now_ms: i64) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::revoked.eq(true))
        .filter(sessions::expires_at_ms.gt(now_ms))
        .select(SessionRow::as_select())
        .load(conn)
}

pub fn banned_user_ids(conn: &mut DbConn) -> QueryResult<Vec<i64>> {
    users::table
        .filter(users::banned.eq(true))
        .select(users::id)
        .load(conn)
}

/// Removes sessions that expired more than a day ago (housekeeping).
pub fn purge_expired_sessions(conn: &mut DbConn, now_ms: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at_ms.lt(now_ms - 86_400_000)))
        .execute(conn)
}

pub fn get_setting(conn: &mut DbConn, name: &str) -> QueryResult<Option<String>> {
    settings::table
        .find(name)
        .select(settings::value)
        .first(conn)
        .optional()
}

/// Stores `value` unless the setting exists; returns the value in force.
/// Two nodes starting at once agree: the loser's insert fails and it reads the winner's.
pub fn get_or_insert_setting(conn: &mut DbConn, name: &str, value: &str) -> QueryResult<String> {
    if let Some(v) = get_setting(conn, name)? {
        return Ok(v);
    }
    match diesel::insert_into(settings::table)
        .values((settings::name.eq(name), settings::value.eq(value)))
        .execute(conn)
    {
        Ok(_) => Ok(value.to_owned()),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            get_setting(conn, name)?.ok_or(DieselError::NotFound)
        }
        Err(e) => Err(e),
    }
}

/// How many of `ids` name a user (at most a conversation's members).
pub fn count_users(conn: &mut DbConn, ids: &[i64]) -> QueryResult<i64> {
    users::table
        .filter(users::id.eq_any(ids))
        .count()
        .get_result(conn)
}

pub fn set_roles(conn: &mut DbConn, id: i64, roles: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::roles.eq(roles))
        .execute(conn)
        .map(|_| ())
}

/// The user's referral binding: `None` if there is no such user,
/// `Some(None)` if nobody invited them.
pub fn inviter_binding(conn: &mut DbConn, id: i64) -> QueryResult<Option<Option<i64>>> {
    crate::storage::direct::first(conn, users::table.find(id).select(users::inviter_id))
}

/// One page of the people `inviter` invited, oldest first: (id, username,
/// joined at), `limit + 1` rows so the caller can tell whether more follow.
pub fn invitees_page(
    conn: &mut DbConn,
    inviter: i64,
    after_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<(i64, String, i64)>> {
    let mut q = users::table
        .filter(users::inviter_id.eq(inviter))
        .into_boxed();
    if let Some(a) = after_id {
        q = q.filter(users::id.gt(a));
    }
    q.order(users::id.asc())
        .limit(limit.saturating_add(1))
        .select((users::id, users::username, users::created_at_ms))
        .load(conn)
}

pub fn count_invitees(conn: &mut DbConn, inviter: i64) -> QueryResult<i64> {
    users::table
        .filter(users::inviter_id.eq(inviter))
        .count()
        .get_result(conn)
}

pub fn user_exists(conn: &mut DbConn, id: i64) -> QueryResult<bool> {
    let found: Option<i64> =
        crate::storage::direct::first(conn, users::table.find(id).select(users::id))?;
    Ok(found.is_some())
}

pub fn count_all_users(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn set_password(conn: &mut DbConn, id: i64, hash: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::password_hash.eq(hash))
        .execute(conn)
        .map(|_| ())
}

/// Revokes every live session of the user but `keep`; returns those revoked.
pub fn revoke_other_sessions(
    conn: &mut DbConn,
    user_id: i64,
    keep: i64,
    now_ms: i64,
) -> QueryResult<Vec<SessionRow>> {
    let live: Vec<SessionRow> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::id.ne(keep))
        .filter(sessions::revoked.eq(false))
        .filter(sessions::expires_at_ms.gt(now_ms))
        .select(SessionRow::as_select())
        .load(conn)?;
    let ids: Vec<i64> = live.iter().map(|s| s.id).collect();
    for chunk in ids.chunks(500) {
        diesel::update(sessions::table.filter(sessions::id.eq_any(chunk)))
            .set(sessions::revoked.eq(true))
            .execute(conn)?;
    }
    Ok(live)
}

/// One page of the user's live sessions, newest first (ids grow with
/// time), `limit + 1` rows so the caller can tell whether more follow.
pub fn live_sessions_page(
    conn: &mut DbConn,
    user_id: i64,
    now_ms: i64,
    before_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<SessionRow>> {
    let mut q = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked.eq(false))
        .filter(sessions::expires_at_ms.gt(now_ms))
        .into_boxed();
    if let Some(b) = before_id {
        q = q.filter(sessions::id.lt(b));
    }
    q.order(sessions::id.desc())
        .limit(limit.saturating_add(1))
        .select(SessionRow::as_select())
        .load(conn)
}

/// Revokes the user's live session `id`; `None` if it is not theirs or not live.
pub fn revoke_own_session(
    conn: &mut DbConn,
    user_id: i64,
    id: i64,
    now_ms: i64,
) -> QueryResult<Option<SessionRow>> {
    let n = diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked.eq(false))
            .filter(sessions::expires_at_ms.gt(now_ms)),
    )
    .set(sessions::revoked.eq(true))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    find_session(conn, id)
}

/// What lists of members show of each.
#[derive(Debug, Clone, Queryable)]
pub struct UserSummaryRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub avatar_media_id: Option<i64>,
}

/// These users (any order; missing ids are left out).
pub fn user_summaries(conn: &mut DbConn, ids: &[i64]) -> QueryResult<Vec<UserSummaryRow>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        out.extend(
            users::table
                .filter(users::id.eq_any(chunk))
                .select((
                    users::id,
                    users::username,
                    users::display_name,
                    users::avatar_media_id,
                ))
                .load::<UserSummaryRow>(conn)?,
        );
    }
    Ok(out)
}

/// `LIKE` pattern for "starts with `prefix`", its wildcards escaped with `\`.
fn starts_with_pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// One page of members whose username or display name starts with
/// `prefix_lower` (already lowercased), by id, leaving out `hidden` and
/// banned members; `limit + 1` rows.
pub fn search_users(
    conn: &mut DbConn,
    prefix_lower: &str,
    hidden: &[i64],
    after_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<UserSummaryRow>> {
    let pattern = starts_with_pattern(prefix_lower);
    let mut q = users::table
        .filter(
            users::username_lower
                .like(pattern.clone())
                .escape('\\')
                .or(users::display_name_lower.like(pattern).escape('\\')),
        )
        .filter(users::banned.eq(false))
        .filter(users::id.ne_all(hidden.to_vec()))
        .into_boxed();
    if let Some(a) = after_id {
        q = q.filter(users::id.gt(a));
    }
    q.order(users::id.asc())
        .limit(limit.saturating_add(1))
        .select((
            users::id,
            users::username,
            users::display_name,
            users::avatar_media_id,
        ))
        .load(conn)
}

/// Locks the user's row for the rest of the transaction (PostgreSQL: a row
/// lock; SQLite: the database's write lock) by writing it unchanged, so
/// session changes of one user take turns.
pub fn lock_user(conn: &mut DbConn, id: i64) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::banned.eq(users::banned))
        .execute(conn)
        .map(|_| ())
}

/// Sets `display_name_lower` by Unicode rules on every row where it differs
/// (migration 000011 filled it with SQL `lower()`, which on SQLite folds
/// ASCII only). Runs once per database, remembered in `settings`; safe to
/// run again. Returns the rows changed.
pub fn refill_display_names_lower(conn: &mut DbConn) -> QueryResult<usize> {
    const DONE: &str = "display_name_lower_refilled";
    const PAGE: i64 = 1_000;
    if get_setting(conn, DONE)?.is_some() {
        return Ok(0);
    }
    let (mut after, mut changed) = (i64::MIN, 0);
    loop {
        let rows: Vec<(i64, String, String)> = users::table
            .filter(users::id.gt(after))
            .order(users::id.asc())
            .limit(PAGE)
            .select((users::id, users::display_name, users::display_name_lower))
            .load(conn)?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, name, lower) in rows {
            let want = name.to_lowercase();
            if want != lower {
                diesel::update(users::table.find(id))
                    .set(users::display_name_lower.eq(want))
                    .execute(conn)?;
                changed += 1;
            }
        }
    }
    get_or_insert_setting(conn, DONE, "1")?;
    Ok(changed)
}
