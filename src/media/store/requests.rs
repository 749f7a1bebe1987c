//! Media reads and writes on the database executor (each picture's row and
//! bytes in one transaction).

use std::sync::Arc;

use actix::{Handler, Message};

use super::MediaRow;
use crate::core::error::ApiError;
use crate::media::blobs::BlobStore;
use crate::storage::DbExecutor;

/// The key of a picture's bytes, or of its thumbnail's.
pub fn blob_key(id: i64, thumbnail: bool) -> String {
    if thumbnail {
        format!("{id}.thumb")
    } else {
        id.to_string()
    }
}

fn blob_error(e: anyhow::Error) -> ApiError {
    ApiError::unavailable_because(e.context("the picture store"))
}

/// Stores a new picture: its row and both images.
pub struct SaveMedia {
    pub row: MediaRow,
    pub bytes: Vec<u8>,
    pub thumbnail: Vec<u8>,
    pub blobs: Arc<dyn BlobStore>,
}

impl Message for SaveMedia {
    type Result = Result<(), ApiError>;
}

impl Handler<SaveMedia> for DbExecutor {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: SaveMedia, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let id = msg.row.id;
        crate::storage::transaction(&mut conn, |c| -> Result<(), ApiError> {
            msg.blobs
                .put(c, &blob_key(id, false), &msg.bytes)
                .map_err(blob_error)?;
            msg.blobs
                .put(c, &blob_key(id, true), &msg.thumbnail)
                .map_err(blob_error)?;
            super::insert(c, &msg.row)?;
            Ok(())
        })
    }
}

/// A picture's row and bytes (or its thumbnail's); `None` if there is none.
pub struct LoadPicture {
    pub id: i64,
    pub thumbnail: bool,
    pub blobs: Arc<dyn BlobStore>,
}

impl Message for LoadPicture {
    type Result = Result<Option<(MediaRow, Vec<u8>)>, ApiError>;
}

impl Handler<LoadPicture> for DbExecutor {
    type Result = Result<Option<(MediaRow, Vec<u8>)>, ApiError>;

    fn handle(&mut self, msg: LoadPicture, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let Some(row) = super::find(&mut conn, msg.id)? else {
            return Ok(None);
        };
        let key = blob_key(msg.id, msg.thumbnail);
        let bytes = msg.blobs.get(&mut conn, &key).map_err(blob_error)?;
        Ok(bytes.map(|b| (row, b)))
    }
}

/// Most unused pictures one sweep deletes.
pub const SWEEP_LIMIT: i64 = 1_000;

/// Deletes pictures never used and uploaded before `before_ms`.
pub struct SweepUnused {
    pub before_ms: i64,
    pub blobs: Arc<dyn BlobStore>,
}

impl Message for SweepUnused {
    type Result = Result<usize, ApiError>;
}

impl Handler<SweepUnused> for DbExecutor {
    type Result = Result<usize, ApiError>;

    fn handle(&mut self, msg: SweepUnused, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let ids = super::unattached_before(&mut conn, msg.before_ms, SWEEP_LIMIT)?;
        let mut deleted = 0;
        for id in ids {
            // One at a time: a picture attached meanwhile keeps its row
            // (the delete is conditional) and so its bytes.
            let gone = crate::storage::transaction(&mut conn, |c| -> Result<bool, ApiError> {
                if !super::delete_unattached(c, id)? {
                    return Ok(false);
                }
                for thumbnail in [false, true] {
                    msg.blobs
                        .delete(c, &blob_key(id, thumbnail))
                        .map_err(blob_error)?;
                }
                Ok(true)
            })?;
            deleted += usize::from(gone);
        }
        Ok(deleted)
    }
}
