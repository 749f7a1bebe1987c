//! Companion trips (结伴), per the contract, and the flower gift between companions.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp};
use crate::orders::{product, shop};
use crate::ws::Ws;

/// The date `offset` days from today (UTC), as the API writes dates.
pub fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

/// Polls the caller's notifications (the contract allows 2 s) for one of `kind`.
pub async fn wait_notification(app: &TestApp, token: &str, kind: &str) -> Value {
    for _ in 0..40 {
        let list: Value = app
            .get("/api/v1/notifications?limit=200", Some(token))
            .await
            .json()
            .await
            .unwrap();
        if let Some(n) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
        {
            return n.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} notification within 4 s");
}

pub async fn new_trip(app: &TestApp, token: &str, destination: &str, capacity: i64) -> Value {
    let r = app
        .post(
            "/api/v1/trips",
            Some(token),
            &json!({"destination": destination, "start_date": day(30), "end_date": day(36),
                "capacity": capacity, "description": "hiking and tea"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn join(app: &TestApp, token: &str, trip: i64) -> i64 {
    let r = app
        .post(
            &format!("/api/v1/trips/{trip}/join"),
            Some(token),
            &json!({"message": "may I come?"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "pending");
    v["request_id"].as_i64().unwrap()
}

async fn accept(app: &TestApp, token: &str, trip: i64, request: i64) -> reqwest::Response {
    app.post(
        &format!("/api/v1/trips/{trip}/requests/{request}/accept"),
        Some(token),
        &json!({}),
    )
    .await
}

fn ids(v: &Value) -> Vec<i64> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trip_id"].as_i64().unwrap())
        .collect()
}

async fn trip_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organizer, ot) = app.register("organizer").await;
    let (friend, ft) = app.register("friend").await;
    let (_, st) = app.register("stranger").await;

    // Bad input changes nothing.
    let good = json!({"destination": "云南大理 Dali", "start_date": day(30), "end_date": day(36), "capacity": 4});
    for (patch, why) in [
        (json!({"end_date": day(29)}), "end before start"),
        (json!({"capacity": 1}), "capacity below 2"),
        (json!({"capacity": 51}), "capacity above 50"),
        (json!({"start_date": "2031-5-1"}), "not YYYY-MM-DD"),
        (json!({"start_date": "2031-02-30"}), "no such day"),
        (json!({"destination": "  "}), "blank destination"),
        (json!({"capacity": "4"}), "wrong type"),
        (
            json!({"start_date": day(-2), "end_date": day(3)}),
            "starts in the past",
        ),
        (json!({"surprise": 1}), "unknown field"),
    ] {
        let mut body = good.clone();
        body.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        let r = app.post("/api/v1/trips", Some(&ot), &body).await;
        assert_eq!(r.status(), 400, "{why}");
    }
    assert_problem(
        app.post("/api/v1/trips", None, &good).await,
        401,
        "unauthorized",
    )
    .await;
    let empty: Value = app.get("/api/v1/trips", None).await.json().await.unwrap();
    assert_eq!(ids(&empty).len(), 0, "nothing was created by bad input");

    let r = app.post("/api/v1/trips", Some(&ot), &good).await;
    assert_eq!(r.status(), 201);
    let trip: Value = r.json().await.unwrap();
    let tid = trip["trip_id"].as_i64().unwrap();
    let conv = trip["conversation_id"].as_i64().unwrap();
    assert_eq!(trip["status"], "open");
    assert_eq!(trip["member_ids"], json!([organizer]));
    assert_eq!(trip["organizer_id"], organizer);
    // Public read, exact shape.
    let got: Value = app
        .get(&format!("/api/v1/trips/{tid}"), None)
        .await
        .json()
        .await
        .unwrap();
    for k in [
        "trip_id",
        "organizer_id",
        "destination",
        "start_date",
        "end_date",
        "capacity",
        "member_ids",
        "status",
        "conversation_id",
    ] {
        assert!(got.get(k).is_some(), "trip has {k}: {got}");
    }
    assert_eq!(got["start_date"], day(30));
    assert_eq!(got["capacity"], 4);
    // The organizer is in the trip's group conversation.
    let convs: Value = app
        .get("/api/v1/conversations", Some(&ot))
        .await
        .json()
        .await
        .unwrap();
    let c = convs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation_id"] == conv)
        .expect("trip conversation listed")
        .clone();
    assert_eq!(c["kind"], "trip");
    assert_eq!(c["member_ids"], json!([organizer]));

    // Search: destination text (any case, any script) and date overlap.
    let other = new_trip(&app, &st, "Lijiang", 3).await;
    let lj = other["trip_id"].as_i64().unwrap();
    for (q, expect) in [
        ("destination=dali".to_owned(), vec![tid]),
        ("destination=DALI".to_owned(), vec![tid]),
        ("destination=大理".to_owned(), vec![tid]),
        ("destination=理".to_owned(), vec![tid]),
        ("destination=jiang".to_owned(), vec![lj]),
        ("destination=paris".to_owned(), vec![]),
        (
            format!("destination=dali&from={}&to={}", day(36), day(60)),
            vec![tid],
        ),
        (format!("destination=dali&from={}", day(37)), vec![]),
        (
            format!("destination=dali&from={}&to={}", day(1), day(29)),
            vec![],
        ),
        (
            format!("destination=dali&from={}&to={}", day(1), day(30)),
            vec![tid],
        ),
        (format!("from={}&to={}", day(31), day(31)), vec![tid, lj]),
        ("destination=100%25".to_owned(), vec![]),
    ] {
        let v: Value = app
            .get(&format!("/api/v1/trips?{q}"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(ids(&v), expect, "search {q}");
    }
    let both: Value = app
        .get("/api/v1/trips?limit=1", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&both).len(), 1);
    let cursor = both["next_cursor"].as_str().unwrap().to_owned();
    let rest: Value = app
        .get(&format!("/api/v1/trips?limit=1&cursor={cursor}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&rest).len(), 1);
    assert_ne!(ids(&rest), ids(&both));
    assert!(rest["next_cursor"].is_null());
    for q in [
        "from=2031-13-01".to_owned(),
        format!("from={}&to={}", day(2), day(1)),
        "cursor=zz".to_owned(),
        "limit=0".to_owned(),
    ] {
        assert_problem(
            app.get(&format!("/api/v1/trips?{q}"), None).await,
            400,
            "invalid_input",
        )
        .await;
    }
    assert_problem(
        app.get("/api/v1/trips/999999", None).await,
        404,
        "not_found",
    )
    .await;

    // Join: the organizer hears of it.
    let rid = join(&app, &ft, tid).await;
    let n = wait_notification(&app, &ot, "trip.join_requested").await;
    assert_eq!(n["data"]["trip_id"], tid);
    assert_eq!(n["data"]["request_id"], rid);
    assert_eq!(n["data"]["user_id"], friend);
    assert_problem(
        app.post(&format!("/api/v1/trips/{tid}/join"), Some(&ft), &json!({}))
            .await,
        409,
        "request_pending",
    )
    .await;
    assert_problem(
        app.post(&format!("/api/v1/trips/{tid}/join"), Some(&ot), &json!({}))
            .await,
        409,
        "already_member",
    )
    .await;
    assert_problem(
        app.post(
            &format!("/api/v1/trips/{tid}/join"),
            Some(&st),
            &json!({"message": 5}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    // Only the organizer sees and decides requests.
    assert_problem(accept(&app, &ft, tid, rid).await, 403, "forbidden").await;
    assert_problem(accept(&app, &st, tid, rid).await, 403, "forbidden").await;
    assert_problem(
        app.get(&format!("/api/v1/trips/{tid}/requests"), Some(&st))
            .await,
        403,
        "forbidden",
    )
    .await;
    let reqs: Value = app
        .get(
            &format!("/api/v1/trips/{tid}/requests?status=pending"),
            Some(&ot),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reqs["items"][0]["request_id"], rid);
    assert_problem(accept(&app, &ot, tid, 424242).await, 404, "not_found").await;
    assert_problem(
        accept(&app, &ot, other["trip_id"].as_i64().unwrap(), rid).await,
        403,
        "forbidden",
    )
    .await;

    let mut fws = Ws::connect(&app, &ft).await;
    let r = accept(&app, &ot, tid, rid).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["member_ids"], json!([organizer, friend]));
    assert_eq!(t["status"], "open");
    assert_problem(accept(&app, &ot, tid, rid).await, 409, "invalid_state").await;
    let n = wait_notification(&app, &ft, "trip.join_accepted").await;
    assert_eq!(n["data"]["conversation_id"], conv);
    // The new member is in the conversation: messages reach them live.
    let mut ows = Ws::connect(&app, &ot).await;
    ows.send(
        json!({"type": "send", "client_id": "t1", "conversation_id": conv, "body": "welcome!"}),
    )
    .await;
    let ack = ows.recv_type("ack").await;
    assert_eq!(ack["seq"], 1);
    let m = fws.recv_type("message").await;
    assert_eq!(
        (m["conversation_id"].as_i64(), m["body"].as_str()),
        (Some(conv), Some("welcome!"))
    );
    let hist: Value = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&ft))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hist["items"].as_array().unwrap().len(), 1);

    // Leave: the seat frees up and the conversation no longer includes them.
    assert_problem(
        app.post(&format!("/api/v1/trips/{tid}/leave"), Some(&ot), &json!({}))
            .await,
        409,
        "invalid_state",
    )
    .await;
    assert_problem(
        app.post(&format!("/api/v1/trips/{tid}/leave"), Some(&st), &json!({}))
            .await,
        409,
        "not_a_member",
    )
    .await;
    let r = app
        .post(&format!("/api/v1/trips/{tid}/leave"), Some(&ft), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["member_ids"], json!([organizer]));
    assert_problem(
        app.get(&format!("/api/v1/conversations/{conv}/messages"), Some(&ft))
            .await,
        404,
        "not_found",
    )
    .await;
    ows.send(json!({"type": "send", "client_id": "t2", "conversation_id": conv, "body": "bye"}))
        .await;
    assert_eq!(ows.recv_type("ack").await["seq"], 2);
    assert!(fws.quiet_for(500).await, "a former member gets nothing");
    fws.send(
        json!({"type": "send", "client_id": "x", "conversation_id": conv, "body": "still here?"}),
    )
    .await;
    assert_eq!(fws.recv_type("error").await["client_id"], "x");

    // No token: 401 before anything else is looked at, even a bad body.
    let r = app
        .post_raw(
            &format!("/api/v1/trips/{tid}/close"),
            None,
            "application/json",
            b"not json".to_vec(),
        )
        .await;
    assert_problem(r, 401, "unauthorized").await;

    // Close: organizer only; then no joins, and search no longer offers it.
    let rid2 = join(&app, &st, tid).await;
    assert_problem(
        app.post(&format!("/api/v1/trips/{tid}/close"), Some(&st), &json!({}))
            .await,
        403,
        "forbidden",
    )
    .await;
    let r = app
        .post(&format!("/api/v1/trips/{tid}/close"), Some(&ot), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "closed");
    assert_problem(accept(&app, &ot, tid, rid2).await, 409, "invalid_state").await;
    assert_problem(
        app.post(&format!("/api/v1/trips/{tid}/join"), Some(&ft), &json!({}))
            .await,
        409,
        "invalid_state",
    )
    .await;
    let v: Value = app
        .get("/api/v1/trips?destination=dali", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(ids(&v).is_empty());
    wait_notification(&app, &st, "trip.closed").await;
}
both_backends!(
    trip_lifecycle_search_and_authorization,
    super::trip_lifecycle
);

async fn trip_capacity_race(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, ot) = app.register("organizer").await;
    let trip = new_trip(&app, &ot, "Guilin", 3).await;
    let tid = trip["trip_id"].as_i64().unwrap();
    let mut requests = Vec::new();
    for i in 0..12 {
        let (uid, t) = app.register(&format!("rider{i}")).await;
        requests.push((uid, t.clone(), join(&app, &t, tid).await));
    }
    // Twelve accepts at once for two free seats.
    let accepts = requests
        .iter()
        .map(|(_, _, rid)| accept(&app, &ot, tid, *rid));
    let results = futures_util::future::join_all(accepts).await;
    let mut ok = 0;
    let mut full = 0;
    for r in results {
        match r.status().as_u16() {
            200 => ok += 1,
            409 => {
                assert_eq!(r.json::<Value>().await.unwrap()["code"], "trip_full");
                full += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((ok, full), (2, 10));
    let t: Value = app
        .get(&format!("/api/v1/trips/{tid}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["status"], "full");
    assert_eq!(t["member_ids"].as_array().unwrap().len(), 3);
    let conv = t["conversation_id"].as_i64().unwrap();
    let convs: Value = app
        .get("/api/v1/conversations", Some(&ot))
        .await
        .json()
        .await
        .unwrap();
    let c = convs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation_id"] == conv)
        .unwrap()
        .clone();
    assert_eq!(c["member_ids"].as_array().unwrap().len(), 3);
    // Full: a new join is refused, and so is a further accept.
    let (_, late) = app.register("late").await;
    assert_problem(
        app.post(
            &format!("/api/v1/trips/{tid}/join"),
            Some(&late),
            &json!({}),
        )
        .await,
        409,
        "trip_full",
    )
    .await;
    // A member leaves: the trip opens again and one more accept fits.
    let member = t["member_ids"][1].as_i64().unwrap();
    let (_, mt, _) = requests.iter().find(|(u, _, _)| *u == member).unwrap();
    let r = app
        .post(&format!("/api/v1/trips/{tid}/leave"), Some(mt), &json!({}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "open");
    let waiting = requests
        .iter()
        .find(|(u, _, _)| !t["member_ids"].as_array().unwrap().contains(&json!(u)))
        .unwrap();
    // Its earlier request was answered 409 but is still pending: accept it now.
    let r = accept(&app, &ot, tid, waiting.2).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "full");
}
both_backends!(
    trip_capacity_holds_under_racing_accepts,
    super::trip_capacity_race
);

/// 送花: browse flowers, send a bouquet to a companion met on a trip; the
/// companion is told at once (notification stored and pushed).
async fn flowers_to_a_companion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let florist = shop(&app, "florist").await;
    let roses = product(&app, &florist, "Red roses", "flowers", 5_200, 10).await;
    product(&app, &florist, "Green tea", "tea", 900, 10).await;
    let (_, ot) = app.register("organizer").await;
    let (companion, ct) = app.register("companion").await;
    let trip = new_trip(&app, &ot, "Xishuangbanna", 2).await;
    let tid = trip["trip_id"].as_i64().unwrap();
    let rid = join(&app, &ct, tid).await;
    assert_eq!(accept(&app, &ot, tid, rid).await.status(), 200);
    let t: Value = app
        .get(&format!("/api/v1/trips/{tid}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(t["member_ids"]
        .as_array()
        .unwrap()
        .contains(&json!(companion)));

    let flowers: Value = app
        .get("/api/v1/products?category=flowers", None)
        .await
        .json()
        .await
        .unwrap();
    let items = flowers["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["product_id"], roses);

    let mut cws = Ws::connect(&app, &ct).await;
    let r = app
        .post(
            "/api/v1/orders",
            Some(&ot),
            &json!({"items": [{"product_id": roses, "quantity": 1}], "gift_to_user_id": companion,
                "gift_message": "thanks for the trip 🌹"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["gift_to_user_id"], companion);
    let id = o["order_id"].as_i64().unwrap();
    let p: Value = app
        .post(&format!("/api/v1/orders/{id}/pay"), Some(&ot), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let r = crate::orders::notify(
        &app,
        &json!({"payment_id": p["payment_id"], "order_id": id,
        "amount_cents": 5_200, "status": "succeeded"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    // The acceptance notification may still be on its way: skip to the gift.
    let pushed = loop {
        let n = cws.recv_type("notification").await;
        if n["kind"] != "trip.join_accepted" {
            break n;
        }
    };
    assert_eq!(pushed["kind"], "gift.received");
    assert_eq!(pushed["data"]["order_id"], id);
    let n = wait_notification(&app, &ct, "gift.received").await;
    assert_eq!(n["data"]["message"], "thanks for the trip 🌹");
    // The recipient sees the gift's order (and gives its address: `gifts.rs`).
    let r = app.get(&format!("/api/v1/orders/{id}"), Some(&ct)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["gift_to_user_id"],
        companion
    );
}
both_backends!(
    flowers_sent_to_a_trip_companion,
    super::flowers_to_a_companion
);
