//! A gift's recipient: sees the gift's order, lists the gifts bought for
//! them, and gives the delivery address; the shop cannot ship before it.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp};
use crate::orders::{notify, product, shop};
use crate::trips::wait_notification;

async fn order_of(app: &TestApp, token: &str, id: i64) -> Value {
    let r = app.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn received(app: &TestApp, token: &str) -> Vec<i64> {
    let r = app.get("/api/v1/gifts/received", Some(token)).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_i64().unwrap())
        .collect()
}

async fn the_recipient_gives_the_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "giftshop").await;
    let p = product(&app, &s, "Tea set", "gifts", 8_800, 5).await;
    let (_, bt) = app.register("giver").await;
    let (friend, ft) = app.register("receiver").await;
    let (_, xt) = app.register("outsider").await;
    let r = app
        .post(
            "/api/v1/orders",
            Some(&bt),
            &json!({"items": [{"product_id": p, "quantity": 1}], "gift_to_user_id": friend}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    let id = o["order_id"].as_i64().unwrap();
    assert!(o["shipping_address"].is_null());

    // The recipient sees it and finds it among their gifts; others do not.
    assert_eq!(order_of(&app, &ft, id).await["gift_to_user_id"], friend);
    let url = format!("/api/v1/orders/{id}");
    assert_problem(app.get(&url, Some(&xt)).await, 404, "not_found").await;
    assert_eq!(received(&app, &ft).await, vec![id]);
    assert!(received(&app, &bt).await.is_empty());
    assert!(received(&app, &xt).await.is_empty());
    let r = app
        .get("/api/v1/gifts/received?status=bogus", Some(&ft))
        .await;
    assert_problem(r, 400, "invalid_input").await;

    // Paid, but without an address the shop cannot ship it.
    let pay: Value = app
        .post(&format!("/api/v1/orders/{id}/pay"), Some(&bt), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let r = notify(&app, &json!({"payment_id": pay["payment_id"], "order_id": id, "amount_cents": 8_800, "status": "succeeded"})).await;
    assert_eq!(r.status(), 200);
    let ship = format!("/api/v1/orders/{id}/ship");
    let r = app
        .post(&ship, Some(&s.owner_token), &json!({"tracking_no": "T1"}))
        .await;
    assert_problem(r, 409, "invalid_state").await;
    assert_eq!(order_of(&app, &bt, id).await["status"], "paid");

    // Only the recipient gives the address, and only a real one.
    let addr = format!("/api/v1/orders/{id}/address");
    let body = json!({"shipping_address": "Dali, Renmin Road 1"});
    assert_problem(app.post(&addr, Some(&bt), &body).await, 403, "forbidden").await;
    assert_problem(
        app.post(&addr, Some(&s.owner_token), &body).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(app.post(&addr, Some(&xt), &body).await, 404, "not_found").await;
    assert_eq!(app.post(&addr, None, &body).await.status(), 401);
    for bad in [
        json!({}),
        json!({"shipping_address": ""}),
        json!({"shipping_address": "   "}),
        json!({"shipping_address": "a\u{0}b"}),
        json!({"shipping_address": "x".repeat(501)}),
        json!({"shipping_address": "Dali", "phone": "1"}),
        json!(["Dali"]),
    ] {
        let r = app.post(&addr, Some(&ft), &bad).await;
        assert_problem(r, 400, "invalid_input").await;
    }
    // The recipient acts on nothing else of the order.
    let cancel = format!("/api/v1/orders/{id}/cancel");
    assert_problem(
        app.post(&cancel, Some(&ft), &json!({})).await,
        403,
        "forbidden",
    )
    .await;
    assert!(order_of(&app, &bt, id).await["shipping_address"].is_null());

    let r = app.post(&addr, Some(&ft), &body).await;
    assert_eq!(r.status(), 200);
    let o: Value = r.json().await.unwrap();
    assert_eq!(
        (o["status"].as_str(), o["shipping_address"].as_str()),
        (Some("paid"), Some("Dali, Renmin Road 1"))
    );
    // The giver and the shop hear of it; the shop ships to it.
    let n = wait_notification(&app, &bt, "order.address_given").await;
    assert_eq!(n["data"]["order_id"], id);
    wait_notification(&app, &s.owner_token, "order.address_given").await;
    let r = app
        .post(&ship, Some(&s.owner_token), &json!({"tracking_no": "T1"}))
        .await;
    assert_eq!(r.status(), 200);
    let o: Value = r.json().await.unwrap();
    assert_eq!(
        (o["status"].as_str(), o["shipping_address"].as_str()),
        (Some("shipped"), Some("Dali, Renmin Road 1"))
    );
    // Once shipped the address is final.
    let r = app
        .post(&addr, Some(&ft), &json!({"shipping_address": "Lijiang"}))
        .await;
    assert_problem(r, 409, "invalid_state").await;
    assert_eq!(
        order_of(&app, &ft, id).await["shipping_address"],
        "Dali, Renmin Road 1"
    );

    // An order that is not a gift has no recipient to give an address.
    let r = app
        .post(
            "/api/v1/orders",
            Some(&bt),
            &json!({"items": [{"product_id": p, "quantity": 1}]}),
        )
        .await;
    let plain = r.json::<Value>().await.unwrap()["order_id"]
        .as_i64()
        .unwrap();
    let r = app
        .post(&format!("/api/v1/orders/{plain}/address"), Some(&bt), &body)
        .await;
    assert_problem(r, 403, "forbidden").await;
}
both_backends!(
    the_recipient_gives_the_address,
    super::the_recipient_gives_the_address
);
