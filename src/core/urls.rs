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
