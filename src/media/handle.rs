//! `Media`: what routes and the server use of pictures.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::Digest;

use super::blobs::BlobStore;
use super::model::{self, Refused};
use super::store::requests::{LoadPicture, SaveMedia, SweepUnused};
use super::store::MediaRow;
use crate::core::error::{ApiError, ErrorKind};
use crate::runtime::context::Ctx;
use crate::storage::Db;

/// Uploads decoded at once; more wait for none (503, retry): decoding is
/// CPU-bound and takes up to a few hundred MB for the largest pictures.
pub const MAX_PROCESSING: usize = 2;

/// A stored picture as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MediaView {
    pub media_id: i64,
    /// Served without a token, cached for a year (the bytes never change).
    pub url: String,
    pub thumbnail_url: String,
    pub width: i64,
    pub height: i64,
    #[schema(value_type = super::model::Format, inline)]
    pub content_type: String,
}

impl From<&MediaRow> for MediaView {
    fn from(r: &MediaRow) -> MediaView {
        MediaView {
            media_id: r.id,
            url: super::tx::url(r.id),
            thumbnail_url: super::tx::thumbnail_url(r.id),
            width: r.width,
            height: r.height,
            content_type: r.content_type.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Media {
    pub ctx: Arc<Ctx>,
    pub db: Db,
    pub blobs: Arc<dyn BlobStore>,
    /// Permits for [`MAX_PROCESSING`] decodes.
    pub processing: Arc<tokio::sync::Semaphore>,
}

fn etag(bytes: &[u8]) -> String {
    hex::encode(&sha2::Sha256::digest(bytes)[..16])
}

impl Media {
    /// Checks, re-encodes and stores an upload of `owner`'s.
    pub async fn upload(&self, owner: i64, upload: Vec<u8>) -> Result<MediaView, ApiError> {
        let permit = self.processing.clone().try_acquire_owned().map_err(|_| {
            ApiError::unavailable("pictures are being processed; retry in a moment")
        })?;
        // Off the HTTP worker: decoding a large picture takes a while. The
        // permit goes with the work, not with this future: a request dropped
        // mid-decode still holds its place until the decode ends.
        let processed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            model::process(&upload)
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("picture task: {e}")))?
        .map_err(|r| match r {
            Refused::Unsupported(why) => ApiError::new(ErrorKind::UnsupportedMedia, why),
            Refused::TooLarge(why) => ApiError::payload_too_large(why),
        })?;
        let row = MediaRow {
            id: self.ctx.ids.next_id(),
            owner_id: owner,
            content_type: processed.format.as_str().into(),
            width: i64::from(processed.width),
            height: i64::from(processed.height),
            byte_size: i64::try_from(processed.bytes.len()).unwrap_or(i64::MAX),
            etag: etag(&processed.bytes),
            thumb_etag: etag(&processed.thumbnail),
            attached_at_ms: None,
            created_at_ms: crate::core::ids::now_ms(),
        };
        let view = MediaView::from(&row);
        self.db
            .call(SaveMedia {
                row,
                bytes: processed.bytes,
                thumbnail: processed.thumbnail,
                blobs: self.blobs.clone(),
            })
            .await?;
        Ok(view)
    }

    /// A picture (or its thumbnail): (content type, ETag, bytes).
    pub async fn picture(
        &self,
        id: i64,
        thumbnail: bool,
    ) -> Result<(String, String, Vec<u8>), ApiError> {
        let load = LoadPicture {
            id,
            thumbnail,
            blobs: self.blobs.clone(),
        };
        let (row, bytes) = self
            .db
            .call(load)
            .await?
            .ok_or_else(|| ApiError::not_found("no such picture"))?;
        let tag = if thumbnail { row.thumb_etag } else { row.etag };
        Ok((row.content_type, tag, bytes))
    }

    /// Deletes pictures never used `ttl` after their upload, every
    /// `every`, on the cluster's leader only.
    pub fn start_sweeper(
        &self,
        leader: crate::runtime::cluster::Leadership,
        ttl: Duration,
        every: Duration,
    ) {
        let media = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if !leader.is_leader() {
                    continue;
                }
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                let sweep = SweepUnused {
                    before_ms: crate::core::ids::now_ms().saturating_sub(ttl_ms),
                    blobs: media.blobs.clone(),
                };
                match media.db.call(sweep).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pictures = n, "deleted pictures never used"),
                    Err(e) => tracing::warn!(error = %e, "sweeping unused pictures failed"),
                }
            }
        });
    }
}

impl Media {
    /// Opens the picture store the configuration names (see
    /// `TANDEM_MEDIA_STORE`) and starts the sweep of unused pictures.
    pub fn open(
        config: &crate::core::config::Config,
        ctx: Arc<Ctx>,
        db: Db,
        leader: crate::runtime::cluster::Leadership,
    ) -> anyhow::Result<Media> {
        use crate::core::config::DatabaseUrl;
        let on_sqlite = matches!(config.database_url, DatabaseUrl::Sqlite(_));
        let store =
            config
                .media_store
                .as_deref()
                .unwrap_or(if on_sqlite { "disk" } else { "database" });
        let blobs: Arc<dyn BlobStore> = if store == "database" {
            Arc::new(super::blobs::DatabaseBlobs)
        } else {
            let dir = match (&config.media_dir, &config.database_url) {
                (Some(d), _) => d.clone(),
                (None, DatabaseUrl::Sqlite(path)) => std::path::Path::new(path)
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join("media"),
                (None, _) => "tandem-media".into(),
            };
            Arc::new(super::blobs::DiskBlobs::open(dir)?)
        };
        tracing::info!(store = blobs.name(), "picture store");
        let media = Media {
            ctx,
            db,
            blobs,
            processing: Arc::new(tokio::sync::Semaphore::new(MAX_PROCESSING)),
        };
        media.start_sweeper(
            leader,
            Duration::from_secs(config.media_orphan_ttl_secs),
            Duration::from_secs(config.media_sweep_secs.max(1)),
        );
        Ok(media)
    }
}
