//! The apps over plain HTTP: pages and assets (types, validators, security
//! headers), mockpay's hosted checkout, a member's own shops, and the daily
//! figures behind the admin console's charts. The journeys in a real browser
//! are in `browser/`.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp};
use crate::orders::{product, shop};

both_backends!(pages_and_assets, super::pages_and_assets);
both_backends!(hosted_checkout, super::hosted_checkout);
both_backends!(
    own_shops_and_daily_figures,
    super::own_shops_and_daily_figures
);

/// The `/assets/...` files a page loads.
fn referenced_assets(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

async fn pages_and_assets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut assets = Vec::new();
    for page in ["/", "/merchant", "/admin", "/checkout/mockpay"] {
        let r = app.get(page, None).await;
        assert_eq!(r.status(), 200, "{page}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with("text/html"),
            "{page}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        let html = r.text().await.unwrap();
        assert!(html.contains("<html lang=\"zh-CN\">"), "{page}");
        assets.extend(referenced_assets(&html));
    }
    assets.sort();
    assets.dedup();
    assert!(assets.len() >= 6, "{assets:?}");
    for path in &assets {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        let want = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset {other:?}"),
        };
        assert!(ct.starts_with(want), "{path}: {ct}");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        // Revalidation: the same validator is a 304 with no body.
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // Every module a script imports is served too.
    let member = app
        .get("/assets/member.js", None)
        .await
        .text()
        .await
        .unwrap();
    for module in member
        .split('"')
        .filter(|s| s.starts_with("./") && s.ends_with(".js"))
    {
        let r = app.get(&format!("/assets/{}", &module[2..]), None).await;
        assert_eq!(r.status(), 200, "{module}");
    }
    assert_problem(app.get("/assets/nope.js", None).await, 404, "not_found").await;
    assert_problem(app.get("/assets/..%2Fmod.rs", None).await, 404, "not_found").await;
    // The pages are in the API document.
    let doc: Value = app
        .get("/api-docs/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    for p in [
        "/",
        "/merchant",
        "/admin",
        "/checkout/mockpay",
        "/assets/{name}",
        "/api/v1/payments/mockpay/checkout",
        "/api/v1/me/merchants",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
}

async fn order_of(app: &TestApp, token: &str, product_id: i64) -> i64 {
    let r = app
        .post(
            "/api/v1/orders",
            Some(token),
            &json!({"items": [{"product_id": product_id, "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["order_id"]
        .as_i64()
        .unwrap()
}

async fn checkout(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/payments/mockpay/checkout", Some(token), &body)
        .await
}

async fn status_of(app: &TestApp, token: &str, id: i64) -> Value {
    let o: Value = app
        .get(&format!("/api/v1/orders/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    o["status"].clone()
}

async fn hosted_checkout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "checkoutshop").await;
    let pid = product(&app, &s, "Peony", "flowers", 1_990, 10).await;
    let (_, buyer) = app.register("checkoutbuyer").await;
    let (_, stranger) = app.register("checkoutstranger").await;
    let id = order_of(&app, &buyer, pid).await;

    // Bad input is refused and changes nothing.
    assert_problem(
        app.post(
            "/api/v1/payments/mockpay/checkout",
            None,
            &json!({"order_id": id, "outcome": "succeeded"}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    for bad in [
        json!({"order_id": id}),
        json!({"order_id": id, "outcome": "maybe"}),
        json!({"order_id": id, "outcome": "succeeded", "amount_cents": 1}),
        json!({"order_id": "x", "outcome": "succeeded"}),
        json!([]),
    ] {
        assert_problem(
            checkout(&app, &buyer, bad.clone()).await,
            400,
            "invalid_input",
        )
        .await;
    }
    assert_problem(
        checkout(&app, &buyer, json!({"order_id": 0, "outcome": "succeeded"})).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        checkout(
            &app,
            &buyer,
            json!({"order_id": 999_999_999, "outcome": "succeeded"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // Someone else's order: not theirs to pay (as `pay` answers them).
    let r = checkout(
        &app,
        &stranger,
        json!({"order_id": id, "outcome": "succeeded"}),
    )
    .await;
    assert!(matches!(r.status().as_u16(), 403 | 404), "{}", r.status());
    assert_eq!(status_of(&app, &buyer, id).await, "pending_payment");

    // Declined: the order still waits for payment.
    let r = checkout(&app, &buyer, json!({"order_id": id, "outcome": "failed"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["status"],
        "pending_payment"
    );

    // Confirmed: paid, once; confirming again is 409 and changes nothing.
    let r = checkout(
        &app,
        &buyer,
        json!({"order_id": id, "outcome": "succeeded"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["total_cents"], 1_990);
    assert_problem(
        checkout(
            &app,
            &buyer,
            json!({"order_id": id, "outcome": "succeeded"}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;
    let payments = app.sql_count(&format!(
        "SELECT COUNT(*) AS n FROM payments WHERE order_id = {id}"
    ));
    assert_eq!(payments, 1);
    let paid = app.sql_count(&format!(
        "SELECT COUNT(*) AS n FROM payments WHERE order_id = {id} AND status = 'succeeded'"
    ));
    assert_eq!(paid, 1);
    app.assert_audit_clean();
}

async fn own_shops_and_daily_figures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "ownshop").await;
    let (_, other) = app.register("othermember").await;
    let r = app
        .post(
            "/api/v1/merchants",
            Some(&other),
            &json!({"name": "pending stall"}),
        )
        .await;
    assert_eq!(r.status(), 201);

    let mine: Value = app
        .get("/api/v1/me/merchants", Some(&s.owner_token))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["merchant_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![s.merchant_id]);
    assert_eq!(mine["items"][0]["status"], "approved");
    let theirs: Value = app
        .get("/api/v1/me/merchants?status=pending", Some(&other))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["items"][0]["name"], "pending stall");
    let none: Value = app
        .get("/api/v1/me/merchants?status=approved", Some(&other))
        .await
        .json()
        .await
        .unwrap();
    assert!(none["items"].as_array().unwrap().is_empty());
    assert_problem(
        app.get("/api/v1/me/merchants?status=open", Some(&other))
            .await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.get("/api/v1/me/merchants", None).await,
        401,
        "unauthorized",
    )
    .await;

    // Today's bar counts the order created and the money paid.
    let pid = product(&app, &s, "Rose", "flowers", 2_500, 5).await;
    let (_, buyer) = app.register("dailybuyer").await;
    crate::orders::paid_order(&app, &buyer, json!([{"product_id": pid, "quantity": 2}])).await;
    order_of(&app, &buyer, pid).await;
    let admin = app.admin_token().await;
    let stats: Value = app
        .get("/api/v1/admin/stats", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let daily = stats["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 14, "{stats}");
    let today = daily.last().unwrap();
    assert_eq!(
        today["date"].as_str().unwrap(),
        &stats["generated_at"].as_str().unwrap()[..10]
    );
    assert_eq!(today["orders"], 2, "{stats}");
    assert_eq!(today["gmv_cents"], 5_000, "{stats}");
    assert_eq!(stats["gmv_today_cents"], 5_000);
    assert!(
        daily[..13]
            .iter()
            .all(|d| d["orders"] == 0 && d["gmv_cents"] == 0),
        "{stats}"
    );
    let dates: Vec<&str> = daily.iter().map(|d| d["date"].as_str().unwrap()).collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted, "oldest first");
}

both_backends!(
    demo_on_a_new_database_only,
    super::demo_on_a_new_database_only
);

async fn catalog_counts(app: &TestApp) -> (usize, usize, usize) {
    let count = |v: Value| v["items"].as_array().map_or(0, Vec::len);
    let products = count(
        app.get("/api/v1/products?limit=200", None)
            .await
            .json()
            .await
            .unwrap(),
    );
    let flowers = count(
        app.get("/api/v1/products?category=flowers", None)
            .await
            .json()
            .await
            .unwrap(),
    );
    let animals = count(app.get("/api/v1/animals", None).await.json().await.unwrap());
    (products, flowers, animals)
}

async fn demo_on_a_new_database_only(backend: Backend) {
    // A configured database (as every test's) gets no demo by default.
    let plain = TestApp::spawn(backend).await;
    assert_eq!(catalog_counts(&plain).await, (0, 0, 0));
    drop(plain);

    let opts = crate::helpers::Options {
        extra_env: vec![("TANDEM_DEMO".into(), "on".into())],
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(backend, opts).await;
    let (products, flowers, animals) = catalog_counts(&app).await;
    assert!(products >= 6, "{products}");
    assert_eq!((flowers, animals), (3, 2));
    let admin = app.admin_token().await;
    let rules: Value = app
        .get("/api/v1/admin/rebate-rules", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(rules["version"].is_i64(), "{rules}");
    assert_eq!(rules["referral_levels_bps"], json!([1000, 500, 200]));
    // The shop owner exists (password printed once, unknown here) and owns the approved shop.
    let found: Value = app
        .get("/api/v1/users?q=demo_shop", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    // A member buys in the demo shop and the rule pays a 3 % rebate.
    let (_, buyer) = app.register("demobuyer").await;
    let roses: Value = app
        .get("/api/v1/products?category=flowers&q=roses", None)
        .await
        .json()
        .await
        .unwrap();
    let pid = roses["items"][0]["product_id"].as_i64().expect("roses");
    crate::orders::paid_order(&app, &buyer, json!([{"product_id": pid, "quantity": 1}])).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let w = crate::rebates::wallet(&app, &buyer).await;
        if w["pending_cents"] == 297 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{w}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Started again on the same database: nothing is added twice.
    app.restart_hard();
    assert_eq!(catalog_counts(&app).await, (products, flowers, animals));
    app.assert_audit_clean();
}
