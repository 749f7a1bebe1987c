//! Merchants, products, orders, payments, timers, per the contract.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, Options, TestApp};
use crate::ws::Ws;

pub const MOCKPAY_SECRET: &str = "mockpay-test-secret";

pub fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(MOCKPAY_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub struct Shop {
    pub owner_token: String,
    pub owner_id: i64,
    pub merchant_id: i64,
}

/// A user who owns an approved merchant.
pub async fn shop(app: &TestApp, name: &str) -> Shop {
    let (owner_id, owner_token) = app.register(name).await;
    let r = app
        .post(
            "/api/v1/merchants",
            Some(&owner_token),
            &json!({"name": format!("{name} farm")}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["status"], "pending");
    let merchant_id = m["merchant_id"].as_i64().unwrap();
    let admin = app.admin_token().await;
    let r = app
        .post(
            &format!("/api/v1/admin/merchants/{merchant_id}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    Shop {
        owner_token,
        owner_id,
        merchant_id,
    }
}

pub async fn product(
    app: &TestApp,
    shop: &Shop,
    name: &str,
    category: &str,
    price: i64,
    stock: i64,
) -> i64 {
    let r = app
        .post(
            "/api/v1/products",
            Some(&shop.owner_token),
            &json!({"merchant_id": shop.merchant_id, "name": name, "category": category, "price_cents": price, "stock": stock}),
        )
        .await;
    assert_eq!(r.status(), 201, "create product");
    r.json::<Value>().await.unwrap()["product_id"]
        .as_i64()
        .unwrap()
}

pub async fn stock(app: &TestApp, product_id: i64) -> i64 {
    let v: Value = app
        .get(&format!("/api/v1/products/{product_id}"), None)
        .await
        .json()
        .await
        .unwrap();
    v["stock"].as_i64().unwrap()
}

pub async fn order(app: &TestApp, token: &str, items: Value) -> reqwest::Response {
    app.post("/api/v1/orders", Some(token), &json!({"items": items}))
        .await
}

pub async fn notify(app: &TestApp, body: &Value) -> reqwest::Response {
    let text = body.to_string();
    app.client
        .post(app.url("/api/v1/payments/mockpay/notify"))
        .header("content-type", "application/json")
        .header("x-mockpay-signature", sign(&text))
        .body(text)
        .send()
        .await
        .unwrap()
}

/// Creates, pays and notifies; returns the paid order.
pub async fn paid_order(app: &TestApp, token: &str, items: Value) -> Value {
    let r = order(app, token, items).await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    let id = o["order_id"].as_i64().unwrap();
    let p: Value = app
        .post(&format!("/api/v1/orders/{id}/pay"), Some(token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let r = notify(app, &json!({"payment_id": p["payment_id"], "order_id": id, "amount_cents": p["amount_cents"], "status": "succeeded"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "success");
    app.get(&format!("/api/v1/orders/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap()
}

async fn merchants_and_products(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let (_, user) = app.register("shopper").await;
    let (_, applicant) = app.register("applicant").await;
    let r = app
        .post(
            "/api/v1/merchants",
            Some(&applicant),
            &json!({"name": "Tea House"}),
        )
        .await;
    let mid = r.json::<Value>().await.unwrap()["merchant_id"]
        .as_i64()
        .unwrap();
    assert_problem(
        app.post(
            &format!("/api/v1/admin/merchants/{mid}/approve"),
            Some(&user),
            &json!({}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // A pending merchant cannot list products.
    let r = app
        .post("/api/v1/products", Some(&applicant), &json!({"merchant_id": mid, "name": "x", "category": "tea", "price_cents": 1, "stock": 1}))
        .await;
    assert_problem(r, 403, "forbidden").await;
    let pending: Value = app
        .get("/api/v1/admin/merchants?status=pending", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(pending["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["merchant_id"] == mid));
    let r = app
        .post(
            &format!("/api/v1/admin/merchants/{mid}/reject"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "rejected");
    assert_problem(
        app.post(
            &format!("/api/v1/admin/merchants/{mid}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;

    let s = shop(&app, "farmer").await;
    let me: Value = app
        .get("/api/v1/me", Some(&s.owner_token))
        .await
        .json()
        .await
        .unwrap();
    assert!(me["roles"].as_array().unwrap().contains(&json!("merchant")));
    let m: Value = app
        .get(&format!("/api/v1/merchants/{}", s.merchant_id), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["owner_id"], s.owner_id);
    assert_eq!(m["status"], "approved");
    assert_eq!(m["rating_avg"], Value::Null);
    assert_eq!(m["review_count"], 0);

    let rose = product(&app, &s, "Red Rose Bouquet", "flowers", 9_900, 10).await;
    let _lily = product(&app, &s, "White Lily", "flowers", 5_000, 3).await;
    let _tea = product(&app, &s, "Oolong 100%_pure", "tea", 3_000, 3).await;
    let p: Value = app
        .get(&format!("/api/v1/products/{rose}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        p,
        json!({"product_id": rose, "merchant_id": s.merchant_id, "name": "Red Rose Bouquet", "category": "flowers", "price_cents": 9900, "stock": 10, "active": true, "image": null})
    );
    let list: Value = app
        .get("/api/v1/products?category=flowers", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let list: Value = app
        .get("/api/v1/products?q=ROSE", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "text search ignores case"
    );
    let list: Value = app
        .get("/api/v1/products?q=100%25_", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "wildcards match literally"
    );
    let list: Value = app
        .get(
            &format!("/api/v1/products?merchant_id={}&limit=2", s.merchant_id),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["next_cursor"].is_string());

    // Edits by the owner; others are refused.
    let r = app
        .patch(
            &format!("/api/v1/products/{rose}"),
            Some(&user),
            &json!({"price_cents": 1}),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app
        .patch(
            &format!("/api/v1/products/{rose}"),
            Some(&s.owner_token),
            &json!({"price_cents": 8_800, "stock_delta": -4, "name": "Rose"}),
        )
        .await;
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        (
            p["price_cents"].as_i64(),
            p["stock"].as_i64(),
            p["name"].as_str()
        ),
        (Some(8_800), Some(6), Some("Rose"))
    );
    let r = app
        .patch(
            &format!("/api/v1/products/{rose}"),
            Some(&s.owner_token),
            &json!({"stock_delta": -7}),
        )
        .await;
    assert_problem(r, 409, "out_of_stock").await;
    assert_eq!(stock(&app, rose).await, 6);
    // Out of range either way, the extremes included (found by schemathesis:
    // i64::MIN once overflowed the bound check).
    for delta in [
        i64::MIN,
        i64::MIN + 1,
        -1_000_000_001,
        1_000_000_001,
        i64::MAX,
    ] {
        let path = format!("/api/v1/products/{rose}");
        let r = app
            .patch(&path, Some(&s.owner_token), &json!({"stock_delta": delta}))
            .await;
        assert_problem(r, 400, "invalid_input").await;
    }
    assert_eq!(stock(&app, rose).await, 6);
    let r = app
        .patch(
            &format!("/api/v1/products/{rose}"),
            Some(&s.owner_token),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let list: Value = app
        .get("/api/v1/products?category=flowers", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "inactive products are not listed"
    );
    let r = order(&app, &user, json!([{"product_id": rose, "quantity": 1}])).await;
    assert_eq!(r.status(), 409);

    for bad in [
        json!({"merchant_id": s.merchant_id, "name": "x", "category": "c", "price_cents": -1, "stock": 1}),
        json!({"merchant_id": s.merchant_id, "name": "x", "category": "c", "price_cents": 1, "stock": -1}),
        json!({"merchant_id": s.merchant_id, "name": "", "category": "c", "price_cents": 1, "stock": 1}),
        json!({"merchant_id": s.merchant_id, "name": "x", "category": "c", "price_cents": 1.5, "stock": 1}),
        json!({"merchant_id": s.merchant_id, "name": "x", "category": "c", "price_cents": 1, "stock": 1, "color": "red"}),
    ] {
        assert_problem(
            app.post("/api/v1/products", Some(&s.owner_token), &bad)
                .await,
            400,
            "invalid_input",
        )
        .await;
    }
    assert_problem(app.get("/api/v1/products/0", None).await, 404, "not_found").await;
    assert_problem(
        app.get("/api/v1/merchants/12345", None).await,
        404,
        "not_found",
    )
    .await;
}
both_backends!(merchants_and_products, super::merchants_and_products);

async fn flash_sale_never_oversells(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "flash").await;
    let p = product(&app, &s, "Limited Peony", "flowers", 1_000, 100).await;
    let mut tokens = Vec::new();
    for i in 0..50 {
        tokens.push(app.register(&format!("buyer{i}")).await.1);
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for n in 0..1000 {
        let app = app.clone();
        let token = tokens[n % tokens.len()].clone();
        tasks.push(tokio::spawn(async move {
            let r = order(&app, &token, json!([{"product_id": p, "quantity": 1}])).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created.push(body["order_id"].as_i64().unwrap()),
            409 => assert_eq!(body["code"], "out_of_stock"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 100, "exactly the stock was sold");
    assert_eq!(stock(&app, p).await, 0);
    // Cancelling one gives one back.
    let first = created[0];
    let owner_of_first = {
        let mut found = None;
        for t in &tokens {
            if app
                .get(&format!("/api/v1/orders/{first}"), Some(t))
                .await
                .status()
                == 200
            {
                found = Some(t.clone());
                break;
            }
        }
        found.unwrap()
    };
    let r = app
        .post(
            &format!("/api/v1/orders/{first}/cancel"),
            Some(&owner_of_first),
            &json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(stock(&app, p).await, 1);
    assert_eq!(
        order(&app, &tokens[1], json!([{"product_id": p, "quantity": 1}]))
            .await
            .status(),
        201
    );
    assert_eq!(stock(&app, p).await, 0);
}
both_backends!(
    flash_sale_never_oversells,
    super::flash_sale_never_oversells
);

async fn multi_item_all_or_nothing_and_bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "multi").await;
    let other = shop(&app, "othershop").await;
    let a = product(&app, &s, "A", "misc", 100, 5).await;
    let b = product(&app, &s, "B", "misc", 250, 1).await;
    let c = product(&app, &other, "C", "misc", 100, 5).await;
    let (_, t) = app.register("multibuyer").await;
    let r = order(
        &app,
        &t,
        json!([{"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 2}]),
    )
    .await;
    assert_problem(r, 409, "out_of_stock").await;
    assert_eq!(
        (stock(&app, a).await, stock(&app, b).await),
        (5, 1),
        "nothing reserved"
    );
    let r = order(
        &app,
        &t,
        json!([{"product_id": a, "quantity": 1}, {"product_id": c, "quantity": 1}]),
    )
    .await;
    assert_problem(r, 400, "invalid_input").await;
    assert_eq!((stock(&app, a).await, stock(&app, c).await), (5, 5));
    let r = order(
        &app,
        &t,
        json!([{"product_id": a, "quantity": 1}, {"product_id": 987654321, "quantity": 1}]),
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    assert_eq!(stock(&app, a).await, 5);
    let r = order(
        &app,
        &t,
        json!([{"product_id": b, "quantity": 1}, {"product_id": a, "quantity": 2}]),
    )
    .await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["total_cents"], 450);
    assert_eq!(o["status"], "pending_payment");
    assert_eq!(o["merchant_id"], s.merchant_id);
    assert_eq!(o["refund_requested"], false);
    assert_eq!(o["tracking"], Value::Null);
    assert_eq!(o["items"].as_array().unwrap().len(), 2);
    assert!(o["pay_deadline"].as_str().unwrap() > o["created_at"].as_str().unwrap());
    assert_eq!((stock(&app, a).await, stock(&app, b).await), (3, 0));

    for bad in [
        json!({"items": []}),
        json!({"items": [{"product_id": a, "quantity": 0}]}),
        json!({"items": [{"product_id": a, "quantity": -1}]}),
        json!({"items": [{"product_id": a, "quantity": 1001}]}),
        json!({"items": [{"product_id": a, "quantity": "1"}]}),
        json!({"items": [{"product_id": a, "quantity": 1}, {"product_id": a, "quantity": 1}]}),
        json!({"items": [{"product_id": 0, "quantity": 1}]}),
        json!({"items": [{"product_id": a, "quantity": 1, "discount": 5}]}),
        json!({"items": [{"product_id": a, "quantity": 1}], "gift_message": "no recipient"}),
    ] {
        let r = app.post("/api/v1/orders", Some(&t), &bad).await;
        assert_problem(r, 400, "invalid_input").await;
    }
    let r = app
        .post_raw(
            "/api/v1/orders",
            Some(&t),
            "application/json",
            b"{\"items\": [".to_vec(),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let r = app
        .post(
            "/api/v1/orders",
            None,
            &json!({"items": [{"product_id": a, "quantity": 1}]}),
        )
        .await;
    assert_problem(r, 401, "unauthorized").await;
    assert_eq!(stock(&app, a).await, 3, "bad input changed nothing");
}
both_backends!(
    multi_item_all_or_nothing_and_bad_input,
    super::multi_item_all_or_nothing_and_bad_input
);

async fn idempotency_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "idem").await;
    let p = product(&app, &s, "Tea", "tea", 300, 50).await;
    let (_, t) = app.register("idembuyer").await;
    let (_, t2) = app.register("otherbuyer").await;
    let body = json!({"items": [{"product_id": p, "quantity": 2}]});
    let send = |token: String, key: &'static str, body: Value| {
        let client = app.client.clone();
        let url = app.url("/api/v1/orders");
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r1 = send(t.clone(), "k-1", body.clone()).await;
    assert_eq!(r1.status(), 201);
    let o1: Value = r1.json().await.unwrap();
    let r2 = send(t.clone(), "k-1", body.clone()).await;
    assert!(r2.status() == 200 || r2.status() == 201);
    assert_eq!(
        r2.json::<Value>().await.unwrap()["order_id"],
        o1["order_id"]
    );
    assert_eq!(stock(&app, p).await, 48, "reserved once");
    let r3 = send(
        t.clone(),
        "k-1",
        json!({"items": [{"product_id": p, "quantity": 3}]}),
    )
    .await;
    assert_problem(r3, 422, "idempotency_key_reused").await;
    // Keys are per user.
    let r4 = send(t2.clone(), "k-1", body.clone()).await;
    assert_eq!(r4.status(), 201);
    assert_ne!(
        r4.json::<Value>().await.unwrap()["order_id"],
        o1["order_id"]
    );
    // Ten at once with a fresh key: one order.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.push(tokio::spawn(send(t.clone(), "k-race", body.clone())));
    }
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert!(r.status() == 200 || r.status() == 201, "{}", r.status());
        ids.insert(
            r.json::<Value>().await.unwrap()["order_id"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(ids.len(), 1, "one order for one key");
    assert_eq!(stock(&app, p).await, 44);
    let mine: Value = app
        .get("/api/v1/orders", Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let r = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&t)
        .header("idempotency-key", "has space")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_input").await;
}
both_backends!(idempotency_keys, super::idempotency_keys);

async fn payments_and_notify(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "payshop").await;
    let p = product(&app, &s, "Lamb claim", "animals", 12_345, 10).await;
    let (buyer_id, t) = app.register("payer").await;
    let (_, stranger) = app.register("stranger").await;
    let mut buyer_ws = Ws::connect(&app, &t).await;
    let o: Value = order(&app, &t, json!([{"product_id": p, "quantity": 1}]))
        .await
        .json()
        .await
        .unwrap();
    let id = o["order_id"].as_i64().unwrap();
    assert_problem(
        app.post(
            &format!("/api/v1/orders/{id}/pay"),
            Some(&stranger),
            &json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let pay: Value = app
        .post(&format!("/api/v1/orders/{id}/pay"), Some(&t), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pay["order_id"], id);
    assert_eq!(pay["amount_cents"], 12_345);
    assert_eq!(pay["provider"], "mockpay");
    let again: Value = app
        .post(&format!("/api/v1/orders/{id}/pay"), Some(&t), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, pay, "pay is idempotent");

    let good = json!({"payment_id": pay["payment_id"], "order_id": id, "amount_cents": 12_345, "status": "succeeded", "trade_no": "extra fields are fine"});
    // Bad signature: 401, nothing changes.
    let text = good.to_string();
    let r = app
        .client
        .post(app.url("/api/v1/payments/mockpay/notify"))
        .header("x-mockpay-signature", "00".repeat(32))
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_signature").await;
    let r = app
        .client
        .post(app.url("/api/v1/payments/mockpay/notify"))
        .body(text)
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_signature").await;
    // Wrong amount: 400, nothing changes.
    let r = notify(&app, &json!({"payment_id": pay["payment_id"], "order_id": id, "amount_cents": 1, "status": "succeeded"})).await;
    assert_problem(r, 400, "invalid_input").await;
    // Unknown order / payment.
    let r = notify(&app, &json!({"payment_id": pay["payment_id"], "order_id": 99999999, "amount_cents": 12_345, "status": "succeeded"})).await;
    assert_problem(r, 404, "not_found").await;
    let r = notify(
        &app,
        &json!({"payment_id": 5, "order_id": id, "amount_cents": 12_345, "status": "succeeded"}),
    )
    .await;
    assert_problem(r, 400, "invalid_input").await;
    let o: Value = app
        .get(&format!("/api/v1/orders/{id}"), Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o["status"], "pending_payment");

    // Concurrent replays: all answered `success`, applied once.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = app.client.clone();
        let url = app.url("/api/v1/payments/mockpay/notify");
        let text = good.to_string();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("x-mockpay-signature", sign(&text))
                .body(text)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (200, "success".to_owned()));
    }
    let o: Value = app
        .get(&format!("/api/v1/orders/{id}"), Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o["status"], "paid");
    let n = buyer_ws.recv_type("notification").await;
    assert_eq!(
        (n["kind"].as_str(), n["data"]["order_id"].as_i64()),
        (Some("order.paid"), Some(id))
    );
    assert!(
        buyer_ws.quiet_for(500).await,
        "one notification for ten replays"
    );
    let list: Value = app
        .get("/api/v1/notifications", Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "order.paid")
            .count(),
        1
    );
    let owner_list: Value = app
        .get("/api/v1/notifications", Some(&s.owner_token))
        .await
        .json()
        .await
        .unwrap();
    assert!(owner_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "order.paid"));
    // Paying a paid order is not possible.
    assert_problem(
        app.post(&format!("/api/v1/orders/{id}/pay"), Some(&t), &json!({}))
            .await,
        409,
        "invalid_state",
    )
    .await;
    let _ = buyer_id;

    // A success for a cancelled order is recorded for refund and never pays it.
    let o2: Value = order(&app, &t, json!([{"product_id": p, "quantity": 2}]))
        .await
        .json()
        .await
        .unwrap();
    let id2 = o2["order_id"].as_i64().unwrap();
    let pay2: Value = app
        .post(&format!("/api/v1/orders/{id2}/pay"), Some(&t), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    app.post(
        &format!("/api/v1/orders/{id2}/cancel"),
        Some(&t),
        &json!({}),
    )
    .await;
    let r = notify(&app, &json!({"payment_id": pay2["payment_id"], "order_id": id2, "amount_cents": 24_690, "status": "succeeded"})).await;
    assert_eq!(r.text().await.unwrap(), "success");
    let o2: Value = app
        .get(&format!("/api/v1/orders/{id2}"), Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o2["status"], "cancelled");
    assert_eq!(stock(&app, p).await, 9);
    // A failed payment leaves the order payable.
    let o3: Value = order(&app, &t, json!([{"product_id": p, "quantity": 1}]))
        .await
        .json()
        .await
        .unwrap();
    let id3 = o3["order_id"].as_i64().unwrap();
    let pay3: Value = app
        .post(&format!("/api/v1/orders/{id3}/pay"), Some(&t), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let r = notify(&app, &json!({"payment_id": pay3["payment_id"], "order_id": id3, "amount_cents": 12_345, "status": "failed"})).await;
    assert_eq!(r.text().await.unwrap(), "success");
    let o3: Value = app
        .get(&format!("/api/v1/orders/{id3}"), Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o3["status"], "pending_payment");
}
both_backends!(payments_and_notify, super::payments_and_notify);

async fn lifecycle_transitions_and_authorization(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "life").await;
    let p = product(&app, &s, "Honey", "food", 2_000, 20).await;
    let (_, t) = app.register("lifebuyer").await;
    let (_, stranger) = app.register("nosy").await;
    let o = paid_order(&app, &t, json!([{"product_id": p, "quantity": 2}])).await;
    let id = o["order_id"].as_i64().unwrap();
    let post = |token: String, action: &'static str, body: Value| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/v1/orders/{id}/{action}"),
                Some(&token),
                &body,
            )
            .await
        }
    };
    // Others cannot see it.
    assert_problem(
        app.get(&format!("/api/v1/orders/{id}"), Some(&stranger))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        post(stranger.clone(), "cancel", json!({})).await,
        404,
        "not_found",
    )
    .await;
    // The owner and admins can.
    assert_eq!(
        app.get(&format!("/api/v1/orders/{id}"), Some(&s.owner_token))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/api/v1/orders/{id}"), Some(&admin))
            .await
            .status(),
        200
    );
    // Action routes take an empty body or `{}`; anything else is 400 and changes nothing.
    assert_problem(
        post(t.clone(), "cancel", json!({"now": true})).await,
        400,
        "invalid_input",
    )
    .await;
    let r = app
        .post_raw(
            &format!("/api/v1/orders/{id}/ship"),
            Some(&s.owner_token),
            "application/json",
            b"{\"carrier\": 5}".to_vec(),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let r = app
        .post_raw(
            &format!("/api/v1/orders/{id}/ship"),
            Some(&s.owner_token),
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let r = app
        .post(
            &format!("/api/v1/orders/{id}/ship"),
            Some(&s.owner_token),
            &json!({"carrier": "x", "speed": "fast"}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let v: Value = app
        .get(&format!("/api/v1/orders/{id}"), Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "paid", "bad bodies changed nothing");
    // Illegal moves.
    assert_problem(
        post(t.clone(), "cancel", json!({})).await,
        409,
        "invalid_state",
    )
    .await;
    assert_problem(
        post(t.clone(), "confirm", json!({})).await,
        409,
        "invalid_state",
    )
    .await;
    assert_problem(post(t.clone(), "ship", json!({})).await, 403, "forbidden").await;
    assert_problem(
        post(admin.clone(), "ship", json!({})).await,
        403,
        "forbidden",
    )
    .await;
    // Ship with tracking.
    let r = post(
        s.owner_token.clone(),
        "ship",
        json!({"carrier": "SF Express", "tracking_no": "SF123"}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "shipped");
    assert_eq!(
        v["tracking"],
        json!({"carrier": "SF Express", "tracking_no": "SF123"})
    );
    assert_problem(
        post(s.owner_token.clone(), "ship", json!({})).await,
        409,
        "invalid_state",
    )
    .await;
    assert_problem(
        post(s.owner_token.clone(), "confirm", json!({})).await,
        403,
        "forbidden",
    )
    .await;
    let v: Value = post(t.clone(), "confirm", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "completed");
    // Refund: request, again is 409, buyer cannot approve, owner rejects, request again, admin approves.
    assert_problem(
        post(t.clone(), "refund", json!({})).await,
        400,
        "invalid_input",
    )
    .await;
    let v: Value = post(t.clone(), "refund", json!({"reason": "wilted"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["status"].as_str(), v["refund_requested"].as_bool()),
        (Some("completed"), Some(true))
    );
    assert_eq!(v["refund_reason"], "wilted", "the shop reads why");
    assert_problem(
        post(t.clone(), "refund", json!({"reason": "again"})).await,
        409,
        "invalid_state",
    )
    .await;
    assert_problem(
        post(t.clone(), "refund/approve", json!({})).await,
        403,
        "forbidden",
    )
    .await;
    let v: Value = post(s.owner_token.clone(), "refund/reject", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["status"].as_str(), v["refund_requested"].as_bool()),
        (Some("completed"), Some(false))
    );
    assert!(v["refund_reason"].is_null(), "no reason once decided: {v}");
    assert_problem(
        post(s.owner_token.clone(), "refund/approve", json!({})).await,
        409,
        "invalid_state",
    )
    .await;
    post(t.clone(), "refund", json!({"reason": "really wilted"})).await;
    assert_eq!(stock(&app, p).await, 18);
    let v: Value = post(admin.clone(), "refund/approve", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "refunded");
    assert_eq!(
        stock(&app, p).await,
        20,
        "an approved refund gives stock back"
    );
    assert_problem(
        post(t.clone(), "refund", json!({"reason": "x"})).await,
        409,
        "invalid_state",
    )
    .await;

    // Lists.
    let mine: Value = app
        .get("/api/v1/orders?status=refunded", Some(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_problem(
        app.get("/api/v1/orders?status=lost", Some(&t)).await,
        400,
        "invalid_input",
    )
    .await;
    let theirs: Value = app
        .get(
            &format!("/api/v1/merchants/{}/orders", s.merchant_id),
            Some(&s.owner_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"][0]["order_id"], id);
    assert_problem(
        app.get(
            &format!("/api/v1/merchants/{}/orders", s.merchant_id),
            Some(&t),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.get(
            &format!("/api/v1/merchants/{}/orders", s.merchant_id),
            Some(&admin)
        )
        .await
        .status(),
        200
    );
}
both_backends!(
    lifecycle_transitions_and_authorization,
    super::lifecycle_transitions_and_authorization
);

async fn timers_catch_up_after_restart(backend: Backend) {
    let opts = Options {
        extra_env: vec![
            ("TANDEM_PAY_TIMEOUT_SECS".into(), "2".into()),
            ("TANDEM_AUTO_COMPLETE_SECS".into(), "2".into()),
        ],
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(backend, opts).await;
    let s = shop(&app, "timers").await;
    let p = product(&app, &s, "Egg", "food", 100, 10).await;
    let (_, t) = app.register("sleepy").await;
    let unpaid: Value = order(&app, &t, json!([{"product_id": p, "quantity": 3}]))
        .await
        .json()
        .await
        .unwrap();
    let shipped = paid_order(&app, &t, json!([{"product_id": p, "quantity": 1}])).await;
    let sid = shipped["order_id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/orders/{sid}/ship"),
        Some(&s.owner_token),
        &json!({}),
    )
    .await;
    assert_eq!(stock(&app, p).await, 6);
    // Down while both fall due.
    app.restart_hard_after(std::time::Duration::from_secs(3));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let uid = unpaid["order_id"].as_i64().unwrap();
    loop {
        let a: Value = app
            .get(&format!("/api/v1/orders/{uid}"), Some(&t))
            .await
            .json()
            .await
            .unwrap();
        let b: Value = app
            .get(&format!("/api/v1/orders/{sid}"), Some(&t))
            .await
            .json()
            .await
            .unwrap();
        if a["status"] == "cancelled" && b["status"] == "completed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timers did not catch up within 2 s: {} {}",
            a["status"],
            b["status"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        stock(&app, p).await,
        9,
        "the expired order's stock came back"
    );
}
both_backends!(
    timers_catch_up_after_restart,
    super::timers_catch_up_after_restart
);

async fn acknowledged_orders_survive_kill_9(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let s = shop(&app, "durable").await;
    let p = product(&app, &s, "Rice", "food", 700, 10_000).await;
    let (_, t) = app.register("bulkbuyer").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = app.client.clone();
        let url = app.url("/api/v1/orders");
        let token = t.clone();
        tasks.push(tokio::spawn(async move {
            let q = 1 + (i % 3);
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"items": [{"product_id": p, "quantity": q}]}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap(), q)
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        let (status, body, q) = task.await.unwrap();
        assert_eq!(status, 201);
        acked.push((body["order_id"].as_i64().unwrap(), q));
    }
    app.restart_hard();
    let mut sold = 0;
    for (id, q) in &acked {
        let o: Value = app
            .get(&format!("/api/v1/orders/{id}"), Some(&t))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(o["total_cents"].as_i64().unwrap(), 700 * q, "order {id}");
        sold += q;
    }
    assert_eq!(stock(&app, p).await, 10_000 - sold);
}
both_backends!(
    acknowledged_orders_survive_kill_9,
    super::acknowledged_orders_survive_kill_9
);

async fn gift_orders_notify_the_recipient(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "florist").await;
    let p = product(&app, &s, "Sunflowers", "flowers", 6_600, 5).await;
    let (buyer, t) = app.register("giver").await;
    let (friend, ft) = app.register("friend").await;
    let mut friend_ws = Ws::connect(&app, &ft).await;
    let r = app
        .post("/api/v1/orders", Some(&t), &json!({"items": [{"product_id": p, "quantity": 1}], "gift_to_user_id": friend, "gift_message": "for the trip 🌻", "shipping_address": "Lijiang"}))
        .await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    assert_eq!(
        (o["gift_to_user_id"].as_i64(), o["gift_message"].as_str()),
        (Some(friend), Some("for the trip 🌻"))
    );
    assert_eq!(o["shipping_address"], "Lijiang");
    let id = o["order_id"].as_i64().unwrap();
    assert!(friend_ws.quiet_for(300).await, "nothing before payment");
    let pay: Value = app
        .post(&format!("/api/v1/orders/{id}/pay"), Some(&t), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    notify(&app, &json!({"payment_id": pay["payment_id"], "order_id": id, "amount_cents": 6_600, "status": "succeeded"})).await;
    let n = friend_ws.recv_type("notification").await;
    assert_eq!(n["kind"], "gift.received");
    assert_eq!(
        (
            n["data"]["order_id"].as_i64(),
            n["data"]["from_user_id"].as_i64()
        ),
        (Some(id), Some(buyer))
    );
    // Gifts to nobody are refused and reserve nothing.
    let r = app
        .post(
            "/api/v1/orders",
            Some(&t),
            &json!({"items": [{"product_id": p, "quantity": 1}], "gift_to_user_id": 424242}),
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    assert_eq!(stock(&app, p).await, 4);
    let r = app
        .post(
            "/api/v1/orders",
            Some(&t),
            &json!({"items": [{"product_id": p, "quantity": 1}], "gift_to_user_id": buyer}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
}
both_backends!(
    gift_orders_notify_the_recipient,
    super::gift_orders_notify_the_recipient
);

async fn relay_redelivery_has_no_duplicate_effect(backend: Backend) {
    // The relay publishes every round and never marks: as if it crashed
    // between publish and mark, forever. Consumers must apply each event once.
    let opts = Options {
        extra_env: vec![("TANDEM_FAULT_RELAY_SKIP_MARK".into(), "true".into())],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let s = shop(&app, "redeliver").await;
    let p = product(&app, &s, "Plum", "fruit", 500, 5).await;
    let (_, t) = app.register("replayed").await;
    let o = paid_order(&app, &t, json!([{"product_id": p, "quantity": 1}])).await;
    assert_eq!(o["status"], "paid");
    // Many relay rounds (every 100 ms) republish the same events meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let list: Value = app
        .get("/api/v1/notifications", Some(&t))
        .await
        .json()
        .await
        .unwrap();
    let paid = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "order.paid")
        .count();
    assert_eq!(paid, 1, "redelivered events are applied once");
    let owner: Value = app
        .get("/api/v1/notifications", Some(&s.owner_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        owner["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "order.paid")
            .count(),
        1
    );
}
both_backends!(
    relay_redelivery_has_no_duplicate_effect,
    super::relay_redelivery_has_no_duplicate_effect
);
