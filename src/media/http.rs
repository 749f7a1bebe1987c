//! Pictures over HTTP: upload (multipart) and serving.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::handle::MediaView;
use super::model::MAX_UPLOAD_BYTES;
use super::Media;
use crate::accounts::auth::AuthUser;
use crate::core::error::{ApiError, ApiResult, ErrorKind, Problem};

/// Most parts a multipart upload may have (one `file`; a few others ignored
/// would only cost).
const MAX_PARTS: usize = 1;

fn unsupported(why: &str) -> ApiError {
    ApiError::new(ErrorKind::UnsupportedMedia, why.to_owned())
}

/// Most bytes of a whole upload body: the picture and room for the
/// multipart framing around it.
const MAX_BODY_BYTES: usize = MAX_UPLOAD_BYTES + 64 * 1024;

fn too_large() -> ApiError {
    ApiError::payload_too_large("a picture is at most 10 MiB")
}

/// Reads the one `file` part of a `multipart/form-data` body, at most
/// [`MAX_UPLOAD_BYTES`]. The body itself is cut off at [`MAX_BODY_BYTES`]
/// before the multipart parser sees it: the parser buffers what it reads,
/// framing included, so a body without part boundaries would otherwise
/// grow without bound.
fn too_late() -> ApiError {
    ApiError::request_timeout("the upload did not arrive in time (TANDEM_HTTP_BODY_TIMEOUT_MS)")
}

async fn read_file(req: &HttpRequest, payload: web::Payload) -> ApiResult<Vec<u8>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let overflowed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = overflowed.clone();
    let late = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let late_flag = late.clone();
    let mut read = 0usize;
    let limited = payload.map(move |chunk| {
        let chunk = chunk.inspect_err(|e| {
            if crate::core::body_deadline::is_late_body(e) {
                late_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })?;
        read += chunk.len();
        if read > MAX_BODY_BYTES {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(actix_web::error::PayloadError::Overflow);
        }
        Ok(chunk)
    });
    let over = move || overflowed.load(std::sync::atomic::Ordering::Relaxed);
    let late = move || late.load(std::sync::atomic::Ordering::Relaxed);
    let mut parts = actix_multipart::Multipart::new(req.headers(), limited);
    let mut file: Option<Vec<u8>> = None;
    let mut seen = 0;
    while let Some(part) = parts.next().await {
        let mut part = match part {
            Ok(p) => p,
            Err(_) if over() => return Err(too_large()),
            Err(_) if late() => return Err(too_late()),
            Err(e) => {
                let why = format!("send multipart/form-data with one part named file ({e})");
                return Err(unsupported(&why));
            }
        };
        seen += 1;
        let named_file = part.content_disposition().and_then(|d| d.get_name()) == Some("file");
        if seen > MAX_PARTS || !named_file || file.is_some() {
            return Err(ApiError::invalid_input("send exactly one part, named file"));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = part.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(_) if over() => return Err(too_large()),
                Err(_) if late() => return Err(too_late()),
                Err(e) => {
                    let why = format!("the upload broke off: {e}");
                    return Err(ApiError::invalid_input(why));
                }
            };
            if bytes.len() + chunk.len() > MAX_UPLOAD_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some(bytes);
    }
    file.ok_or_else(|| ApiError::invalid_input("send one part, named file"))
}

/// Upload a picture (`multipart/form-data`, one part `file`). JPEG, PNG or
/// WebP as told by its bytes, whatever type is declared; at most 10 MiB and
/// 40 megapixels (413), anything else 415 `unsupported_media`. What is
/// served is re-encoded from the pixels (EXIF, GPS and every other
/// metadata gone; an EXIF orientation applied first), with a thumbnail of
/// at most 320 x 320. Attach it by id, as its uploader, within a day, or
/// it is deleted.
#[utoipa::path(post, path = "/api/v1/media", tag = "media", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "One part named `file`: the picture"),
    responses((status = 201, body = MediaView), (status = 400, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 503, body = Problem)))]
pub async fn upload(
    state: web::Data<Media>,
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let bytes = read_file(&req, payload).await?;
    let view = state.upload(user.user_id.get(), bytes).await?;
    Ok(HttpResponse::Created().json(view))
}

async fn serve(
    state: &Media,
    req: &HttpRequest,
    id: crate::core::ids::MediaId,
    thumbnail: bool,
) -> ApiResult<HttpResponse> {
    let (content_type, tag, bytes) = state.picture(id.get(), thumbnail).await?;
    let etag = format!("\"{tag}\"");
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        // A picture's bytes never change under its id.
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'"));
    if unchanged {
        return Ok(res.finish());
    }
    Ok(res.content_type(content_type).body(bytes))
}

/// A picture (no token needed): `Cache-Control` for a year, `ETag`, 304 on
/// `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media",
    params(("id" = i64, Path)),
    responses((status = 200, description = "The picture", content_type = "image/*"), (status = 304),
        (status = 404, body = Problem)))]
pub async fn picture(
    state: web::Data<Media>,
    req: HttpRequest,
    path: web::Path<(crate::core::ids::MediaId,)>,
) -> ApiResult<HttpResponse> {
    serve(&state, &req, path.into_inner().0, false).await
}

/// A picture's thumbnail (at most 320 x 320; no token needed).
#[utoipa::path(get, path = "/api/v1/media/{id}/thumbnail", tag = "media",
    params(("id" = i64, Path)),
    responses((status = 200, description = "The thumbnail", content_type = "image/*"), (status = 304),
        (status = 404, body = Problem)))]
pub async fn thumbnail(
    state: web::Data<Media>,
    req: HttpRequest,
    path: web::Path<(crate::core::ids::MediaId,)>,
) -> ApiResult<HttpResponse> {
    serve(&state, &req, path.into_inner().0, true).await
}

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/media", web::post().to(upload))
        .route("/media/{id}", web::get().to(picture))
        .route("/media/{id}/thumbnail", web::get().to(thumbnail));
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(upload, picture, thumbnail))]
pub struct Api;
