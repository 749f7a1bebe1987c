//! The media tables: pictures' rows (`media`) and, when the database is the
//! picture store, their bytes (`media_blobs`).

pub mod requests;

use diesel::prelude::*;

use crate::storage::schema::{media, media_blobs};
use crate::storage::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = media)]
pub struct MediaRow {
    pub id: i64,
    pub owner_id: i64,
    pub content_type: String,
    pub width: i64,
    pub height: i64,
    pub byte_size: i64,
    pub etag: String,
    pub thumb_etag: String,
    pub attached_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

pub fn insert(conn: &mut DbConn, row: &MediaRow) -> QueryResult<()> {
    diesel::insert_into(media::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<MediaRow>> {
    media::table
        .find(id)
        .select(MediaRow::as_select())
        .first(conn)
        .optional()
}

/// Marks `owner`'s pictures among `ids` used (the first use keeps its
/// time) and counts how many of `ids` are now `owner`'s and used. The mark
/// comes first: on PostgreSQL it locks the rows, so the sweep (which deletes
/// only unused rows) either waits and then leaves them, or deleted them
/// before, and then they are not counted.
pub fn attach_owned(conn: &mut DbConn, ids: &[i64], owner: i64, now_ms: i64) -> QueryResult<i64> {
    diesel::update(
        media::table
            .filter(media::id.eq_any(ids))
            .filter(media::owner_id.eq(owner))
            .filter(media::attached_at_ms.is_null()),
    )
    .set(media::attached_at_ms.eq(Some(now_ms)))
    .execute(conn)?;
    media::table
        .filter(media::id.eq_any(ids))
        .filter(media::owner_id.eq(owner))
        .filter(media::attached_at_ms.is_not_null())
        .count()
        .get_result(conn)
}

/// Pictures never used and made before `before_ms` (at most `limit`).
pub fn unattached_before(conn: &mut DbConn, before_ms: i64, limit: i64) -> QueryResult<Vec<i64>> {
    media::table
        .filter(media::attached_at_ms.is_null())
        .filter(media::created_at_ms.lt(before_ms))
        .order(media::created_at_ms.asc())
        .select(media::id)
        .limit(limit)
        .load(conn)
}

/// Deletes a picture's row if it is still unused; whether it did.
pub fn delete_unattached(conn: &mut DbConn, id: i64) -> QueryResult<bool> {
    let n = diesel::delete(
        media::table
            .filter(media::id.eq(id))
            .filter(media::attached_at_ms.is_null()),
    )
    .execute(conn)?;
    Ok(n == 1)
}

pub fn put_blob(conn: &mut DbConn, key: &str, bytes: &[u8]) -> QueryResult<()> {
    diesel::insert_into(media_blobs::table)
        .values((media_blobs::blob_key.eq(key), media_blobs::bytes.eq(bytes)))
        .execute(conn)
        .map(|_| ())
}

pub fn get_blob(conn: &mut DbConn, key: &str) -> QueryResult<Option<Vec<u8>>> {
    media_blobs::table
        .find(key)
        .select(media_blobs::bytes)
        .first(conn)
        .optional()
}

pub fn delete_blob(conn: &mut DbConn, key: &str) -> QueryResult<()> {
    diesel::delete(media_blobs::table.find(key))
        .execute(conn)
        .map(|_| ())
}
