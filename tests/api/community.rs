//! Animal claims (认领), reviews, the merchant dashboard, admin stats, order
//! search and moderation, per the contract.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, Options, TestApp};
use crate::orders::{notify, order, paid_order, product, shop, Shop};
use crate::trips::wait_notification;
use crate::ws::{Ended, Ws};

pub async fn animal(app: &TestApp, s: &Shop, name: &str, price: i64, days: i64) -> i64 {
    let r = app
        .post(
            "/api/v1/animals",
            Some(&s.owner_token),
            &json!({"merchant_id": s.merchant_id, "name": name, "species": "sheep",
                "description": "a calm sheep on the hill", "claim_price_cents": price, "claim_days": days}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert!(v["claimed_by"].is_null() && v["claimed_until"].is_null());
    assert_eq!(v["claimed"], false);
    v["animal_id"].as_i64().unwrap()
}

async fn get_animal(app: &TestApp, id: i64) -> Value {
    app.get(&format!("/api/v1/animals/{id}"), None)
        .await
        .json()
        .await
        .unwrap()
}

pub async fn claim(app: &TestApp, token: &str, id: i64) -> reqwest::Response {
    app.post(
        &format!("/api/v1/animals/{id}/claim"),
        Some(token),
        &json!({}),
    )
    .await
}

/// Pays an order created elsewhere (a claim).
pub async fn pay(app: &TestApp, token: &str, order: &Value) {
    let id = order["order_id"].as_i64().unwrap();
    let p: Value = app
        .post(&format!("/api/v1/orders/{id}/pay"), Some(token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let r = notify(
        app,
        &json!({"payment_id": p["payment_id"], "order_id": id,
        "amount_cents": p["amount_cents"], "status": "succeeded"}),
    )
    .await;
    assert_eq!(r.status(), 200);
}

async fn wait_free(app: &TestApp, id: i64) -> Value {
    for _ in 0..80 {
        let a = get_animal(app, id).await;
        if a["claimed"] == false {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("animal {id} still claimed after 8 s");
}

async fn animal_claims(backend: Backend) {
    // One claim day lasts 2 s here, so a 1-day claim ends inside the test.
    let mut app = TestApp::spawn_with(
        backend,
        Options {
            extra_env: vec![("TANDEM_CLAIM_DAY_SECS".into(), "2".into())],
            ..Options::default()
        },
    )
    .await;
    let farm = shop(&app, "farmer").await;
    let (a_id, at) = app.register("alice").await;
    let (b_id, bt) = app.register("bob").await;
    let (_, ct) = app.register("carol").await;

    // Only an approved merchant's owner lists animals; bad input is refused.
    let body = json!({"merchant_id": farm.merchant_id, "name": "Dolly", "species": "sheep",
        "description": "", "claim_price_cents": 9_900, "claim_days": 30});
    assert_problem(
        app.post("/api/v1/animals", Some(&at), &body).await,
        403,
        "forbidden",
    )
    .await;
    for (k, v) in [
        ("claim_days", json!(0)),
        ("claim_days", json!(3651)),
        ("claim_price_cents", json!(-1)),
        ("claim_price_cents", json!(1.5)),
        ("name", json!("")),
    ] {
        let mut b = body.clone();
        b[k] = v;
        assert_problem(
            app.post("/api/v1/animals", Some(&farm.owner_token), &b)
                .await,
            400,
            "invalid_input",
        )
        .await;
    }
    // The category behind animals is reserved.
    let r = app
        .post(
            "/api/v1/products",
            Some(&farm.owner_token),
            &json!({"merchant_id": farm.merchant_id, "name": "x", "category": "animal_claim", "price_cents": 1, "stock": 5}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;

    let long = animal(&app, &farm, "Dolly", 9_900, 3_650).await;
    let list: Value = app.get("/api/v1/animals", None).await.json().await.unwrap();
    assert_eq!(list["items"][0]["animal_id"], long);
    assert_problem(app.get("/api/v1/animals/777", None).await, 404, "not_found").await;

    // A pending claim holds the animal; cancelling frees it.
    let r = claim(&app, &at, long).await;
    assert_eq!(r.status(), 201);
    let a_order: Value = r.json().await.unwrap();
    assert_eq!(a_order["total_cents"], 9_900);
    assert_eq!(a_order["status"], "pending_payment");
    assert_eq!(a_order["merchant_id"], farm.merchant_id);
    assert_eq!(a_order["buyer_id"], a_id);
    assert_problem(claim(&app, &bt, long).await, 409, "already_claimed").await;
    assert!(
        get_animal(&app, long).await["claimed"] == false,
        "unpaid: not shown as claimed"
    );
    let aid = a_order["order_id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/orders/{aid}/cancel"),
            Some(&at),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);

    // Paid: claimed_by until claimed_until; nobody else can claim.
    let r = claim(&app, &bt, long).await;
    assert_eq!(r.status(), 201);
    let b_order: Value = r.json().await.unwrap();
    pay(&app, &bt, &b_order).await;
    let a = get_animal(&app, long).await;
    // Issue 22: everyone sees that it is claimed; only the claimer sees by whom.
    assert_eq!(
        (a["claimed"].as_bool(), a["claimed_by"].as_i64()),
        (Some(true), None)
    );
    assert!(a["claimed_until"].is_string());
    let mine: Value = app
        .get(&format!("/api/v1/animals/{long}"), Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["claimed_by"], b_id);
    let theirs: Value = app
        .get(&format!("/api/v1/animals/{long}"), Some(&ct))
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs["claimed_by"].is_null());
    assert_problem(claim(&app, &ct, long).await, 409, "already_claimed").await;
    // A merchant PATCH cannot add a second unit.
    let list: Value = app
        .get("/api/v1/products?category=animal_claim", None)
        .await
        .json()
        .await
        .unwrap();
    let pid = list["items"][0]["product_id"].as_i64().unwrap();
    assert_problem(
        app.patch(
            &format!("/api/v1/products/{pid}"),
            Some(&farm.owner_token),
            &json!({"stock_delta": 1}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;

    assert_problem(
        app.patch(
            &format!("/api/v1/products/{pid}"),
            Some(&farm.owner_token),
            &json!({"active": false}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;
    // Claim products are listed with their animals, not in the shop.
    let shop_list: Value = app
        .get("/api/v1/products", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(shop_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["category"] != "animal_claim"));

    // Updates reach the claimer; only the merchant posts them.
    assert_problem(
        app.post(
            &format!("/api/v1/animals/{long}/updates"),
            Some(&bt),
            &json!({"body": "hi"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/animals/{long}/updates"),
            Some(&farm.owner_token),
            &json!({"body": "Dolly had a good day on the hill"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let n = wait_notification(&app, &bt, "animal.update").await;
    assert_eq!(n["data"]["animal_id"], long);
    assert_eq!(n["data"]["body"], "Dolly had a good day on the hill");
    let ups: Value = app
        .get(&format!("/api/v1/animals/{long}/updates"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ups["items"].as_array().unwrap().len(), 1);

    // Many claim one free animal at once: exactly one wins.
    let race = animal(&app, &farm, "Shaun", 500, 3_650).await;
    let mut tokens = Vec::new();
    for i in 0..16 {
        tokens.push(app.register(&format!("racer{i}")).await.1);
    }
    let results = futures_util::future::join_all(tokens.iter().map(|t| claim(&app, t, race))).await;
    let mut won = 0;
    for r in results {
        match r.status().as_u16() {
            201 => won += 1,
            409 => assert_eq!(r.json::<Value>().await.unwrap()["code"], "already_claimed"),
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(won, 1);

    // A short claim ends on its own, even when it fell due while the server
    // was down; a refund after the end does not free the animal a second time.
    let short = animal(&app, &farm, "Timmy", 300, 1).await;
    let r = claim(&app, &at, short).await;
    let first: Value = r.json().await.unwrap();
    pay(&app, &at, &first).await;
    let mine: Value = app
        .get(&format!("/api/v1/animals/{short}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["claimed_by"], a_id);
    // The period ends while the server is down (kill -9): caught up at start.
    app.restart_hard_after(Duration::from_millis(2_500));
    let freed = wait_free(&app, short).await;
    assert!(freed["claimed_until"].is_null());
    wait_notification(&app, &at, "animal.claim_ended").await;
    let r = claim(&app, &ct, short).await;
    assert_eq!(r.status(), 201, "free again after the period");
    let fid = first["order_id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/orders/{fid}/refund"),
            Some(&at),
            &json!({"reason": "moved away"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(
            &format!("/api/v1/orders/{fid}/refund/approve"),
            Some(&farm.owner_token),
            &json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "refunded");
    assert_problem(claim(&app, &bt, short).await, 409, "already_claimed").await;

    // A refund while the claim runs frees the animal at once.
    let bid = b_order["order_id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/orders/{bid}/refund"),
        Some(&bt),
        &json!({"reason": "allergic"}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/orders/{bid}/refund/approve"),
            Some(&farm.owner_token),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(get_animal(&app, long).await["claimed_by"].is_null());
    assert_eq!(claim(&app, &ct, long).await.status(), 201);
}
both_backends!(animal_claims_are_exclusive_and_end, super::animal_claims);

async fn complete(app: &TestApp, s: &Shop, token: &str, id: i64) {
    let r = app
        .post(
            &format!("/api/v1/orders/{id}/ship"),
            Some(&s.owner_token),
            &json!({"carrier": "SF", "tracking_no": "SF1"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(
            &format!("/api/v1/orders/{id}/confirm"),
            Some(token),
            &json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "completed");
}

async fn review(app: &TestApp, token: &str, id: i64, body: &Value) -> reqwest::Response {
    app.post(&format!("/api/v1/orders/{id}/review"), Some(token), body)
        .await
}

async fn reviews_and_dashboard(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "teashop").await;
    let tea = product(&app, &s, "Pu'er", "tea", 2_000, 100).await;
    let cup = product(&app, &s, "Cup", "ware", 500, 100).await;
    let (buyer, bt) = app.register("buyer").await;
    let (_, st) = app.register("stranger").await;

    let o1 = paid_order(&app, &bt, json!([{"product_id": tea, "quantity": 2}])).await;
    let id1 = o1["order_id"].as_i64().unwrap();
    assert_problem(
        review(&app, &bt, id1, &json!({"rating": 5, "body": "great"})).await,
        409,
        "invalid_state",
    )
    .await;
    complete(&app, &s, &bt, id1).await;
    for bad in [
        json!({"rating": 0, "body": "x"}),
        json!({"rating": 6, "body": "x"}),
        json!({"rating": "5", "body": "x"}),
        json!({"rating": 5}),
        json!({"rating": 5, "body": "x", "stars": 5}),
    ] {
        assert_problem(review(&app, &bt, id1, &bad).await, 400, "invalid_input").await;
    }
    assert_problem(
        review(&app, &st, id1, &json!({"rating": 1, "body": "spam"})).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        review(
            &app,
            &s.owner_token,
            id1,
            &json!({"rating": 5, "body": "self"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let m: Value = app
        .get(&format!("/api/v1/merchants/{}", s.merchant_id), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(m["rating_avg"].is_null());
    assert_eq!(m["review_count"], 0);
    let r = review(&app, &bt, id1, &json!({"rating": 5, "body": "great tea"})).await;
    assert_eq!(r.status(), 201);
    let rv: Value = r.json().await.unwrap();
    assert_eq!(
        (rv["rating"].as_i64(), rv["buyer_id"].as_i64()),
        (Some(5), Some(buyer))
    );
    // Twice, even at once: 409 and the rating moved once.
    let twice = json!({"rating": 1, "body": "again"});
    let again =
        futures_util::future::join_all((0..4).map(|_| review(&app, &bt, id1, &twice))).await;
    for r in again {
        assert_problem(r, 409, "already_reviewed").await;
    }
    let o2 = paid_order(&app, &bt, json!([{"product_id": cup, "quantity": 1}])).await;
    let id2 = o2["order_id"].as_i64().unwrap();
    complete(&app, &s, &bt, id2).await;
    assert_eq!(
        review(&app, &bt, id2, &json!({"rating": 2, "body": "chipped"}))
            .await
            .status(),
        201
    );
    let m: Value = app
        .get(&format!("/api/v1/merchants/{}", s.merchant_id), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["review_count"], 2);
    assert_eq!(m["rating_avg"].as_f64(), Some(3.5));
    let page: Value = app
        .get(
            &format!("/api/v1/merchants/{}/reviews?limit=1", s.merchant_id),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["body"], "chipped", "newest first");
    // Issue 22, item 3: visitors see a masked name, never buyers or orders.
    let first = &page["items"][0];
    assert!(first.get("order_id").is_none() && first.get("buyer_id").is_none());
    assert_eq!(first["reviewer"], "b**r");
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let page: Value = app
        .get(
            &format!(
                "/api/v1/merchants/{}/reviews?limit=1&cursor={next}",
                s.merchant_id
            ),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["body"], "great tea");
    assert!(page["next_cursor"].is_null());

    // Dashboard: counts by status, paid GMV (refunds out), best sellers.
    let _pending = order(&app, &bt, json!([{"product_id": cup, "quantity": 3}])).await;
    let o3 = paid_order(&app, &bt, json!([{"product_id": tea, "quantity": 1}])).await;
    let id3 = o3["order_id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/orders/{id3}/refund"),
        Some(&bt),
        &json!({"reason": "changed my mind"}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/orders/{id3}/refund/approve"),
            Some(&s.owner_token),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let path = format!("/api/v1/merchants/{}/dashboard", s.merchant_id);
    let d: Value = app
        .get(&path, Some(&s.owner_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        d["orders_by_status"],
        json!({"pending_payment": 1, "paid": 0, "shipped": 0, "completed": 2, "cancelled": 0, "refunded": 1})
    );
    assert_eq!(d["paid_gmv_today_cents"], 4_500);
    assert_eq!(d["paid_gmv_7d_cents"], 4_500);
    assert_eq!(d["top_products"][0]["product_id"], tea);
    assert_eq!(d["top_products"][0]["quantity"], 2);
    assert_eq!(d["top_products"][0]["gmv_cents"], 4_000);
    assert_eq!(d["top_products"][1]["product_id"], cup);
    assert_eq!(d["review_count"], 2);
    assert_problem(app.get(&path, Some(&st)).await, 403, "forbidden").await;
    assert_problem(app.get(&path, None).await, 401, "unauthorized").await;
    let admin = app.admin_token().await;
    assert_eq!(app.get(&path, Some(&admin)).await.status(), 200);
    assert_problem(
        app.get("/api/v1/merchants/4242/dashboard", Some(&admin))
            .await,
        404,
        "not_found",
    )
    .await;

    // Issue 16, item 10: a refunded order's review leaves the rating and the
    // shop's list (the chipped cup, rated 2, is refunded after completion).
    let r = app
        .post(
            &format!("/api/v1/orders/{id2}/refund"),
            Some(&bt),
            &json!({"reason": "chipped"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(
            &format!("/api/v1/orders/{id2}/refund/approve"),
            Some(&s.owner_token),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let m: Value = app
        .get(&format!("/api/v1/merchants/{}", s.merchant_id), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["review_count"], 1);
    assert_eq!(m["rating_avg"].as_f64(), Some(5.0));
    let page: Value = app
        .get(
            &format!("/api/v1/merchants/{}/reviews", s.merchant_id),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let bodies: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["great tea"]);
    app.assert_audit_clean();
}
both_backends!(
    reviews_ratings_and_the_merchant_dashboard,
    super::reviews_and_dashboard
);

async fn admin_stats_and_order_search(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "grocer").await;
    let rice = product(&app, &s, "Rice", "food", 1_234, 100).await;
    let (buyer, bt) = app.register("buyer").await;
    let (other, ot) = app.register("other").await;
    assert_problem(
        app.get("/api/v1/admin/stats", Some(&bt)).await,
        403,
        "forbidden",
    )
    .await;
    let _ws = Ws::connect(&app, &bt).await;
    let _ws2 = Ws::connect(&app, &bt).await;
    let paid = paid_order(&app, &bt, json!([{"product_id": rice, "quantity": 2}])).await;
    let r = order(&app, &ot, json!([{"product_id": rice, "quantity": 1}])).await;
    assert_eq!(r.status(), 201);
    let st: Value = app
        .get("/api/v1/admin/stats", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    // admin, shop owner, buyer, other.
    assert_eq!(st["users"], 4);
    assert_eq!(st["online_users"], 1, "two sockets, one user");
    assert_eq!(st["orders_today"], 2);
    assert_eq!(st["gmv_today_cents"], 2_468);
    assert_eq!(st["rebates_pending_cents"], 0);

    // Order search by status and user.
    let q = |p: &str| format!("/api/v1/admin/orders?{p}");
    let v: Value = app
        .get(&q(&format!("status=paid&user_id={buyer}")), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["order_id"], paid["order_id"]);
    let v: Value = app
        .get(&q(&format!("user_id={other}")), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["items"][0]["status"], "pending_payment");
    let v: Value = app
        .get(
            &q(&format!("merchant_id={}&limit=1", s.merchant_id)),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert!(v["next_cursor"].is_string());
    let v: Value = app
        .get(&q("status=refunded"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(v["items"].as_array().unwrap().is_empty());
    for bad in ["status=lost", "user_id=abc", "limit=500"] {
        assert_problem(app.get(&q(bad), Some(&admin)).await, 400, "invalid_input").await;
    }
    assert_problem(app.get(&q(""), Some(&bt)).await, 403, "forbidden").await;
}
both_backends!(
    admin_stats_and_order_search_work,
    super::admin_stats_and_order_search
);

async fn reports_and_moderation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "market").await;
    let apple = product(&app, &s, "Apple", "fruit", 100, 100).await;
    let (troll, tt) = app.register("troll").await;
    let (victim, vt) = app.register("victim").await;
    let (_, ot) = app.register("onlooker").await;

    let post: Value = app
        .post(
            "/api/v1/posts",
            Some(&tt),
            &json!({"body": "buy fake followers"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let post_id = post["post_id"].as_i64().unwrap();
    let mut vws = Ws::connect(&app, &vt).await;
    let mut tws = Ws::connect(&app, &tt).await;
    tws.send(
        json!({"type": "send", "client_id": "r1", "to_user_id": victim, "body": "you are ugly"}),
    )
    .await;
    let ack = tws.recv_type("ack").await;
    let msg_id = ack["message_id"].as_i64().unwrap();
    let conv = ack["conversation_id"].as_i64().unwrap();
    vws.recv_type("message").await;

    let report = |token: &str, body: Value| {
        let token = token.to_owned();
        let app = &app;
        async move { app.post("/api/v1/reports", Some(&token), &body).await }
    };
    // Bad input and things the reporter cannot see change nothing.
    for (body, status, code) in [
        (
            json!({"target_type": "video", "target_id": post_id, "reason": "x"}),
            400,
            "invalid_input",
        ),
        (
            json!({"target_type": "post", "target_id": post_id, "reason": ""}),
            400,
            "invalid_input",
        ),
        (
            json!({"target_type": "post", "target_id": -1, "reason": "x"}),
            400,
            "invalid_input",
        ),
        (
            json!({"target_type": "post", "target_id": 99999, "reason": "x"}),
            404,
            "not_found",
        ),
        (
            json!({"target_type": "message", "target_id": msg_id, "reason": "not mine"}),
            404,
            "not_found",
        ),
        (
            json!({"target_type": "user", "target_id": troll, "reason": "me", "extra": 1}),
            400,
            "invalid_input",
        ),
    ] {
        assert_problem(report(&ot, body).await, status, code).await;
    }
    assert_problem(
        report(
            &tt,
            json!({"target_type": "user", "target_id": troll, "reason": "me"}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    let queue: Value = app
        .get("/api/v1/admin/reports", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(queue["items"].as_array().unwrap().is_empty());

    let r = report(
        &vt,
        json!({"target_type": "post", "target_id": post_id, "reason": "spam"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let post_report: Value = r.json().await.unwrap();
    assert_eq!(post_report["status"], "open");
    assert_eq!(post_report["target_user_id"], troll);
    assert_problem(
        report(
            &vt,
            json!({"target_type": "post", "target_id": post_id, "reason": "spam!"}),
        )
        .await,
        409,
        "already_reported",
    )
    .await;
    // The same report twice at once: one is filed.
    let same = json!({"target_type": "post", "target_id": post_id, "reason": "scam"});
    let both = futures_util::future::join_all((0..4).map(|_| report(&ot, same.clone()))).await;
    let statuses: Vec<u16> = both.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        3,
        "{statuses:?}"
    );
    let r = report(
        &vt,
        json!({"target_type": "message", "target_id": msg_id, "reason": "abuse"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let msg_report: Value = r.json().await.unwrap();
    let r = report(
        &vt,
        json!({"target_type": "user", "target_id": troll, "reason": "harasses me"}),
    )
    .await;
    let user_report: Value = r.json().await.unwrap();
    let r = report(
        &ot,
        json!({"target_type": "user", "target_id": victim, "reason": "meh"}),
    )
    .await;
    let dismissable: Value = r.json().await.unwrap();

    // The queue: admins only, oldest first.
    assert_problem(
        app.get("/api/v1/admin/reports", Some(&vt)).await,
        403,
        "forbidden",
    )
    .await;
    let queue: Value = app
        .get("/api/v1/admin/reports?status=open", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue["items"].as_array().unwrap().len(), 5);
    assert_eq!(queue["items"][0]["report_id"], post_report["report_id"]);
    assert_problem(
        app.get("/api/v1/admin/reports?status=weird", Some(&admin))
            .await,
        400,
        "invalid_input",
    )
    .await;
    let resolve = |id: &Value, body: Value, token: String| {
        let app = &app;
        let path = format!("/api/v1/admin/reports/{id}/resolve");
        async move { app.post(&path, Some(&token), &body).await }
    };
    assert_problem(
        resolve(
            &dismissable["report_id"],
            json!({"action": "dismiss"}),
            vt.clone(),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        resolve(
            &dismissable["report_id"],
            json!({"action": "shrug"}),
            admin.clone(),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        resolve(
            &user_report["report_id"],
            json!({"action": "remove_content"}),
            admin.clone(),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;

    // Dismiss.
    let r = resolve(
        &dismissable["report_id"],
        json!({"action": "dismiss", "note": "no issue"}),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "dismissed");
    assert_problem(
        resolve(
            &dismissable["report_id"],
            json!({"action": "dismiss"}),
            admin.clone(),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;

    // Remove the post: gone, and both reports on it are closed.
    let r = resolve(
        &post_report["report_id"],
        json!({"action": "remove_content"}),
        admin.clone(),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "removed");
    assert_problem(
        app.get(&format!("/api/v1/posts/{post_id}"), Some(&ot))
            .await,
        404,
        "not_found",
    )
    .await;
    wait_notification(&app, &tt, "moderation.content_removed").await;

    // Remove the message: its seq stays, its body is gone (also from sync).
    let r = resolve(
        &msg_report["report_id"],
        json!({"action": "remove_content"}),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let hist: Value = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&vt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hist["items"][0]["seq"], 1);
    assert_eq!(hist["items"][0]["body"], "");
    vws.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 0}))
        .await;
    let synced = vws.recv_type("message").await;
    assert_eq!(synced["body"], "");

    // Ban through the queue: tokens stop, sockets close with 1008, no orders.
    let r = resolve(
        &user_report["report_id"],
        json!({"action": "ban_user"}),
        admin.clone(),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "banned");
    assert_eq!(tws.ended_within(5).await, Ended::Closed(1008));
    assert_problem(app.get("/api/v1/me", Some(&tt)).await, 401, "unauthorized").await;
    assert_problem(
        order(&app, &tt, json!([{"product_id": apple, "quantity": 1}])).await,
        401,
        "unauthorized",
    )
    .await;
    let queue: Value = app
        .get("/api/v1/admin/reports", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(queue["items"].as_array().unwrap().is_empty(), "{queue}");
    let st: Value = app
        .get("/api/v1/admin/stats", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(st["open_reports"], 0);
    // Unban: they may log in again.
    let r = app
        .post(
            &format!("/api/v1/admin/users/{troll}/unban"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.login("troll", "password-123").await.status(), 200);
}
both_backends!(
    reports_and_the_moderation_queue,
    super::reports_and_moderation
);
