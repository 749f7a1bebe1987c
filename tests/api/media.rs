//! Pictures: upload (sniffed, bounded, stripped, thumbnailed), serving with
//! caching headers, attaching by id, and the sweep of unused ones.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, RgbImage};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, Options, TestApp};
use crate::ws::Ws;

const BOUNDARY: &str = "tandem-test-boundary";

fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    }));
    let img = if format == ImageFormat::WebP {
        DynamicImage::ImageRgba8(img.to_rgba8())
    } else {
        img
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG carrying an EXIF segment with GPS text, right after its start.
fn jpeg_with_gps(w: u32, h: u32) -> Vec<u8> {
    let plain = picture(w, h, ImageFormat::Jpeg);
    let mut exif =
        b"Exif\0\0MM\0\x2a\0\0\0\x08GPSLatitude 31.2304 N; GPSLongitude 121.4737 E".to_vec();
    exif.resize(96, 0);
    let len = u16::try_from(exif.len() + 2).unwrap().to_be_bytes();
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1, len[0], len[1]]);
    out.extend_from_slice(&exif);
    out.extend_from_slice(&plain[2..]);
    out
}

fn multipart(name: &str, declared_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"p\"\r\nContent-Type: {declared_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_as(
    app: &TestApp,
    token: &str,
    name: &str,
    declared: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    app.post_raw(
        "/api/v1/media",
        Some(token),
        &ct,
        multipart(name, declared, bytes),
    )
    .await
}

async fn upload(app: &TestApp, token: &str, bytes: &[u8]) -> Value {
    let r = upload_as(app, token, "file", "application/octet-stream", bytes).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn pictures_are_checked_stripped_and_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let original = jpeg_with_gps(640, 480);
    assert!(contains(&original, b"GPSLatitude"));
    let v = upload(&app, &at, &original).await;
    assert_eq!(
        (
            v["content_type"].as_str(),
            v["width"].as_i64(),
            v["height"].as_i64()
        ),
        (Some("image/jpeg"), Some(640), Some(480))
    );
    let id = v["media_id"].as_i64().unwrap();
    assert_eq!(v["url"], format!("/api/v1/media/{id}"));

    // Served without a token, cached, without the metadata.
    let r = app.get(v["url"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], "image/jpeg");
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let served = r.bytes().await.unwrap();
    assert!(!contains(&served, b"GPSLatitude") && !contains(&served, b"Exif"));
    let decoded = image::load_from_memory(&served).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 480));
    let r = app
        .client
        .get(app.url(v["url"].as_str().unwrap()))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = app.get(v["thumbnail_url"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), 200);
    let thumb = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 240));

    // The bytes decide the type, not the declared one.
    let png = upload_as(
        &app,
        &at,
        "file",
        "image/jpeg",
        &picture(30, 20, ImageFormat::Png),
    )
    .await;
    assert_eq!(png.status(), 201);
    assert_eq!(
        png.json::<Value>().await.unwrap()["content_type"],
        "image/png"
    );
    let webp = upload(&app, &at, &picture(16, 16, ImageFormat::WebP)).await;
    assert_eq!(webp["content_type"], "image/webp");
    let r = app.get(webp["url"].as_str().unwrap(), None).await;
    assert_eq!(r.headers()["content-type"], "image/webp");

    // Refused, and nothing stored.
    let before = app.sql_count("SELECT COUNT(*) AS n FROM media");
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    assert_problem(
        upload_as(&app, &at, "file", "image/png", gif).await,
        415,
        "unsupported_media",
    )
    .await;
    let truncated = &picture(64, 64, ImageFormat::Png)[..60];
    assert_problem(
        upload_as(&app, &at, "file", "image/png", truncated).await,
        415,
        "unsupported_media",
    )
    .await;
    let mut bomb = picture(1, 1, ImageFormat::Png);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let r = upload_as(&app, &at, "file", "image/png", &bomb).await;
    assert!(
        r.status() == 413 || r.status() == 415,
        "a decompression bomb got {}",
        r.status()
    );
    // A body far over the limit is refused from its length, unread.
    let r = app
        .post_raw(
            "/api/v1/media",
            Some(&at),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            vec![b'x'; 12 * 1024 * 1024],
        )
        .await;
    assert_problem(r, 413, "payload_too_large").await;
    let huge = vec![0xFFu8; 10 * 1024 * 1024 + 10];
    assert_problem(
        upload_as(&app, &at, "file", "image/jpeg", &huge).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_problem(
        upload_as(
            &app,
            &at,
            "avatar",
            "image/png",
            &picture(4, 4, ImageFormat::Png),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    let r = app
        .post("/api/v1/media", Some(&at), &json!({"file": "x"}))
        .await;
    assert_problem(r, 415, "unsupported_media").await;
    let r = app
        .post_raw(
            "/api/v1/media",
            None,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart("file", "image/png", &picture(4, 4, ImageFormat::Png)),
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(app.sql_count("SELECT COUNT(*) AS n FROM media"), before);
    assert_problem(app.get("/api/v1/media/12345", None).await, 404, "not_found").await;
    assert_problem(app.get("/api/v1/media/abc", None).await, 404, "not_found").await;
}
both_backends!(
    pictures_are_checked_stripped_and_served,
    super::pictures_are_checked_stripped_and_served
);

async fn pictures_attach_by_id_to_their_uploader_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let a1 = upload(&app, &at, &picture(40, 40, ImageFormat::Png)).await["media_id"]
        .as_i64()
        .unwrap();
    let a2 = upload(&app, &at, &picture(40, 30, ImageFormat::Jpeg)).await["media_id"]
        .as_i64()
        .unwrap();
    let b1 = upload(&app, &bt, &picture(10, 10, ImageFormat::Png)).await["media_id"]
        .as_i64()
        .unwrap();

    // Avatar.
    let r = app
        .patch("/api/v1/me", Some(&at), &json!({"avatar_media_id": a1}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["avatar_url"],
        format!("/api/v1/media/{a1}")
    );
    let p: Value = app
        .get(&format!("/api/v1/users/{alice}"), Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["avatar_url"], format!("/api/v1/media/{a1}"));
    let r = app
        .patch(
            "/api/v1/me",
            Some(&bt),
            &json!({"avatar_media_id": a1, "bio": "mine now"}),
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let me: Value = app.get("/api/v1/me", Some(&bt)).await.json().await.unwrap();
    assert!(me["avatar_url"].is_null());
    assert_eq!(me["bio"], "");

    // A post's pictures.
    let r = app
        .post(
            "/api/v1/posts",
            Some(&at),
            &json!({"body": "玉龙雪山", "media_ids": [a2, a1]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let post: Value = r.json().await.unwrap();
    assert_eq!(post["media"][0]["media_id"], a2);
    assert_eq!(
        post["media"][1]["thumbnail_url"],
        format!("/api/v1/media/{a1}/thumbnail")
    );
    let feed: Value = app
        .get("/api/v1/feed", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["items"][0]["media"].as_array().unwrap().len(), 2);
    let r = app
        .post(
            "/api/v1/posts",
            Some(&bt),
            &json!({"body": "stolen", "media_ids": [a2]}),
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .post(
            "/api/v1/posts",
            Some(&at),
            &json!({"body": "many", "media_ids": vec![a1; 10]}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let r = app
        .post(
            "/api/v1/posts",
            Some(&at),
            &json!({"body": "twice", "media_ids": [a1, a1]}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    assert_eq!(
        app.sql_count(&format!(
            "SELECT COUNT(*) AS n FROM posts WHERE author_id = {bob}"
        )),
        0
    );

    // A chat message of kind image.
    let mut a = Ws::connect(&app, &at).await;
    let mut b = Ws::connect(&app, &bt).await;
    a.send(json!({"type": "send", "client_id": "p1", "to_user_id": bob, "media_id": a2}))
        .await;
    let ack = a.recv_type("ack").await;
    let conv = ack["conversation_id"].as_i64().unwrap();
    let m = b.recv_type("message").await;
    assert_eq!(
        (m["kind"].as_str(), m["body"].as_str()),
        (Some("image"), Some(""))
    );
    assert_eq!(m["data"]["url"], format!("/api/v1/media/{a2}"));
    b.send(json!({"type": "send", "client_id": "p2", "conversation_id": conv, "media_id": a1, "body": "look"})).await;
    assert_eq!(b.recv_type("error").await["code"], "not_found");
    b.send(json!({"type": "send", "client_id": "p3", "conversation_id": conv, "media_id": b1, "body": "mine"})).await;
    assert_eq!(b.recv_type("ack").await["seq"], 2);
    // Blocked, a picture does not get through either.
    let b2 = upload(&app, &bt, &picture(6, 6, ImageFormat::Png)).await["media_id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.post(&format!("/api/v1/users/{bob}/block"), Some(&at), &json!({}))
            .await
            .status(),
        200
    );
    b.send(json!({"type": "send", "client_id": "p4", "conversation_id": conv, "media_id": b2}))
        .await;
    assert_eq!(b.recv_type("error").await["code"], "blocked");
    assert_eq!(
        app.delete(&format!("/api/v1/users/{bob}/block"), Some(&at))
            .await
            .status(),
        204
    );
    a.send(json!({"type": "delete", "conversation_id": conv, "seq": 1}))
        .await;
    a.recv_type("ack").await;
    let r = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&bt))
        .await;
    let items: Value = r.json().await.unwrap();
    assert_eq!(items["items"][0]["deleted"], true);
    assert!(items["items"][0].get("data").is_none());
}
both_backends!(
    pictures_attach_by_id_to_their_uploader_only,
    super::pictures_attach_by_id_to_their_uploader_only
);

async fn unused_pictures_are_swept(backend: Backend) {
    let opts = Options {
        extra_env: vec![
            ("TANDEM_MEDIA_ORPHAN_TTL_SECS".into(), "1".into()),
            ("TANDEM_MEDIA_SWEEP_SECS".into(), "1".into()),
        ],
        ..Options::default()
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let (_, at) = app.register("alice").await;
    let unused = upload(&app, &at, &picture(8, 8, ImageFormat::Png)).await;
    let used = upload(&app, &at, &picture(8, 8, ImageFormat::Png)).await;
    let r = app
        .patch(
            "/api/v1/me",
            Some(&at),
            &json!({"avatar_media_id": used["media_id"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get(unused["url"].as_str().unwrap(), None).await;
        if r.status() == 404 {
            break;
        }
        assert!(Instant::now() < until, "an unused picture was not swept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.get(unused["thumbnail_url"].as_str().unwrap(), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(used["url"].as_str().unwrap(), None).await.status(),
        200
    );
    assert_eq!(
        app.get(used["thumbnail_url"].as_str().unwrap(), None)
            .await
            .status(),
        200
    );
}
both_backends!(unused_pictures_are_swept, super::unused_pictures_are_swept);

async fn products_and_animals_show_their_pictures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let shop = crate::orders::shop(&app, "farmer").await;
    let (_, stranger) = app.register("stranger").await;
    let st = &shop.owner_token;
    let p1 = upload(&app, st, &picture(50, 50, ImageFormat::Jpeg)).await["media_id"]
        .as_i64()
        .unwrap();
    let p2 = upload(&app, st, &picture(60, 40, ImageFormat::Png)).await["media_id"]
        .as_i64()
        .unwrap();
    let theirs = upload(&app, &stranger, &picture(5, 5, ImageFormat::Png)).await["media_id"]
        .as_i64()
        .unwrap();
    let new_product = |image: i64| json!({"merchant_id": shop.merchant_id, "name": "枣", "category": "food", "price_cents": 1200, "stock": 5, "image_media_id": image});
    let r = app
        .post("/api/v1/products", Some(st), &new_product(theirs))
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .post("/api/v1/products", Some(st), &new_product(p1))
        .await;
    assert_eq!(r.status(), 201);
    let product: Value = r.json().await.unwrap();
    assert_eq!(product["image"]["url"], format!("/api/v1/media/{p1}"));
    let id = product["product_id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/products/{id}"),
            Some(st),
            &json!({"image_media_id": p2}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = app
        .get(&format!("/api/v1/products/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["image"]["media_id"], p2);
    let r = app
        .patch(
            &format!("/api/v1/products/{id}"),
            Some(st),
            &json!({"image_media_id": theirs}),
        )
        .await;
    assert_problem(r, 404, "not_found").await;

    let animal = |image: i64| json!({"merchant_id": shop.merchant_id, "name": "花花", "species": "sheep", "description": "", "claim_price_cents": 9900, "claim_days": 30, "image_media_id": image});
    assert_problem(
        app.post("/api/v1/animals", Some(st), &animal(theirs)).await,
        404,
        "not_found",
    )
    .await;
    let r = app.post("/api/v1/animals", Some(st), &animal(p1)).await;
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.unwrap();
    assert_eq!(
        a["image"]["thumbnail_url"],
        format!("/api/v1/media/{p1}/thumbnail")
    );
    let v: Value = app
        .get(&format!("/api/v1/animals/{}", a["animal_id"]), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["image"]["media_id"], p1);
}
both_backends!(
    products_and_animals_show_their_pictures,
    super::products_and_animals_show_their_pictures
);
