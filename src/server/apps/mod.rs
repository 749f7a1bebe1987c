//! The apps people use: the member app (`/`), the merchant console
//! (`/merchant`), the admin console (`/admin`) and mockpay's checkout page
//! (`/checkout/mockpay`). Plain HTML, CSS and JavaScript modules, embedded in
//! the binary at build time, so the server needs no second host, CDN or Node
//! toolchain. They are clients like any other: they speak only the public
//! HTTP API and the WebSocket protocol.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::core::error::ApiError;

/// Every embedded file, by the name it is served under (`/assets/{name}`).
macro_rules! embed {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("assets/", $name)) as &[u8])),*]
    };
}

static FILES: &[(&str, &[u8])] = embed![
    "member.html",
    "merchant.html",
    "admin.html",
    "checkout.html",
    "app.css",
    "api.js",
    "i18n.js",
    "ui.js",
    "socket.js",
    "console.js",
    "member.js",
    "member-core.js",
    "member-shop.js",
    "member-trips.js",
    "merchant.js",
    "admin.js",
    "checkout.js",
    "icon.svg",
];

/// What the pages may load and where they may connect: only this server.
/// No inline script or style; no framing (clickjacking).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    /// A strong validator: the first 16 bytes of the SHA-256, quoted.
    etag: String,
}

static ASSETS: LazyLock<Vec<(&'static str, Asset)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, bytes)| {
            let digest = Sha256::digest(bytes);
            let asset = Asset {
                bytes,
                content_type: content_type(name),
                etag: format!("\"{}\"", hex::encode(&digest[..16])),
            };
            (*name, asset)
        })
        .collect()
});

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|(n, _)| *n == name).map(|(_, a)| a)
}

/// The pages and `/assets/{name}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(member_app))
        .route("/merchant", web::get().to(merchant_console))
        .route("/admin", web::get().to(admin_console))
        .route("/checkout/mockpay", web::get().to(mockpay_checkout_page))
        .route("/assets/{name}", web::get().to(asset));
}

/// The pages' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    member_app,
    merchant_console,
    admin_console,
    mockpay_checkout_page,
    asset
))]
pub struct Api;

/// The member app (chat, feed, trips, claims, shop, wallet, promotion).
#[utoipa::path(get, path = "/", tag = "apps", responses((status = 200, content_type = "text/html", body = String)))]
pub async fn member_app(req: HttpRequest) -> HttpResponse {
    page(&req, "member.html")
}

/// The merchant console (application, products, orders, refunds, dashboard).
#[utoipa::path(get, path = "/merchant", tag = "apps", responses((status = 200, content_type = "text/html", body = String)))]
pub async fn merchant_console(req: HttpRequest) -> HttpResponse {
    page(&req, "merchant.html")
}

/// The admin console (users, merchants, orders, rules, withdrawals, reports, statistics).
#[utoipa::path(get, path = "/admin", tag = "apps", responses((status = 200, content_type = "text/html", body = String)))]
pub async fn admin_console(req: HttpRequest) -> HttpResponse {
    page(&req, "admin.html")
}

/// Mockpay's checkout page (`?order_id=`): the buyer confirms or declines.
#[utoipa::path(get, path = "/checkout/mockpay", tag = "apps", responses((status = 200, content_type = "text/html", body = String)))]
pub async fn mockpay_checkout_page(req: HttpRequest) -> HttpResponse {
    page(&req, "checkout.html")
}

fn page(req: &HttpRequest, file: &'static str) -> HttpResponse {
    match find(file) {
        Some(a) => serve(req, a),
        None => not_found(file),
    }
}

/// A script, style sheet or icon of the apps (`no-cache` with an `ETag`).
#[utoipa::path(get, path = "/assets/{name}", tag = "apps", params(("name" = String, Path)),
    responses((status = 200, description = "the file", content_type = "text/javascript", body = String),
        (status = 304, description = "not modified (If-None-Match)"), (status = 404, body = crate::core::error::Problem)))]
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match find(&name) {
        Some(a) => serve(&req, a),
        None => not_found(&name),
    }
}

fn not_found(name: &str) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::not_found(format!("no asset {name}")))
}

/// Revalidated on every load (`no-cache` with a strong `ETag`), so a new
/// binary's apps are seen at once and an unchanged file costs a 304.
fn serve(req: &HttpRequest, a: &Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag));
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, a.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        return resp.finish();
    }
    resp.content_type(a.content_type).body(a.bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn text(name: &str) -> &'static str {
        std::str::from_utf8(find(name).map(|a| a.bytes).unwrap_or_default()).unwrap_or_default()
    }

    /// The keys of `const NAME = { "key": "text", ... };` in i18n.js.
    fn dictionary(name: &str) -> BTreeSet<String> {
        let src = text("i18n.js");
        let start = src
            .find(&format!("const {name} = {{"))
            .unwrap_or_else(|| panic!("no {name}"));
        let body = &src[start..];
        let body = &body[..body.find("\n};").unwrap_or(body.len())];
        let mut keys = BTreeSet::new();
        let mut rest = body;
        while let Some(open) = rest.find('"') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('"') else { break };
            let (word, tail) = (&after[..close], &after[close + 1..]);
            if tail.starts_with(':') {
                keys.insert(word.to_owned());
            }
            rest = tail;
        }
        keys
    }

    #[test]
    fn both_languages_have_every_text() {
        let (en, zh) = (dictionary("en"), dictionary("zh"));
        assert!(en.len() > 100, "{}", en.len());
        assert_eq!(
            en.difference(&zh).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "missing in zh-CN"
        );
        assert_eq!(
            zh.difference(&en).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "missing in en-US"
        );
        // Every literal key a script asks for exists.
        for (name, _) in FILES.iter().filter(|(n, _)| n.ends_with(".js")) {
            let src = text(name);
            for (i, _) in src.match_indices("t(\"") {
                // `t(` itself, not the end of `get(` or `post(`.
                if src[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.') {
                    continue;
                }
                let key = &src[i + 3..];
                let key = &key[..key.find('"').unwrap_or(0)];
                assert!(
                    en.contains(key),
                    "{name} asks for {key:?}, which i18n.js lacks"
                );
            }
        }
    }

    /// The pages' files.
    const PAGES: [&str; 4] = [
        "member.html",
        "merchant.html",
        "admin.html",
        "checkout.html",
    ];

    #[test]
    fn every_page_and_asset_is_embedded_with_a_type() {
        for file in PAGES {
            assert!(find(file).is_some(), "{file}");
        }
        for (name, a) in ASSETS.iter() {
            assert!(!a.bytes.is_empty(), "{name}");
            assert_ne!(a.content_type, "application/octet-stream", "{name}");
        }
    }
}
