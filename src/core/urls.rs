//! Public paths other parts of the API point to (a picture's URL is shown
//! by accounts, social, chat and commerce; the pictures' owner serves it).

/// Where picture `id` is served (no token needed).
pub fn picture_url(id: i64) -> String {
    format!("/api/v1/media/{id}")
}

/// Where picture `id`'s thumbnail is served.
pub fn thumbnail_url(id: i64) -> String {
    format!("/api/v1/media/{id}/thumbnail")
}

/// A picture as the things that show it (posts, products, animals) name it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PictureRef {
    pub media_id: i64,
    pub url: String,
    pub thumbnail_url: String,
}

impl PictureRef {
    pub fn of(id: i64) -> PictureRef {
        PictureRef {
            media_id: id,
            url: picture_url(id),
            thumbnail_url: thumbnail_url(id),
        }
    }
}
