//! Notification preferences (per kind, on or off) and muted conversations.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp};
use crate::ws::Ws;

const PREFS: &str = "/api/v1/me/notification-preferences";

async fn follow(app: &TestApp, token: &str, who: i64) {
    let r = app
        .post(
            &format!("/api/v1/users/{who}/follow"),
            Some(token),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

/// Waits until `user` has `n` notifications stored (the notifier is asynchronous).
async fn stored(app: &TestApp, user: i64, n: i64) {
    let q = format!("SELECT COUNT(*) AS n FROM notifications WHERE user_id = {user}");
    let until = Instant::now() + Duration::from_secs(10);
    while app.sql_count(&q) < n {
        assert!(Instant::now() < until, "notification {n} not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn listed_kinds(app: &TestApp, token: &str) -> Vec<String> {
    let v: Value = app
        .get("/api/v1/notifications", Some(token))
        .await
        .json()
        .await
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn enabled(v: &Value, kind: &str) -> bool {
    v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap()["enabled"]
        .as_bool()
        .unwrap()
}

async fn kinds_turned_off_are_not_pushed_or_listed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (_, bt) = app.register("bob").await;
    let (_, ct) = app.register("carol").await;
    let (_, dt) = app.register("dave").await;
    let mut a = Ws::connect(&app, &at).await;
    follow(&app, &bt, alice).await;
    assert_eq!(a.recv_type("notification").await["kind"], "user.followed");

    let v: Value = app.get(PREFS, Some(&at)).await.json().await.unwrap();
    assert!(v["kinds"].as_array().unwrap().len() > 10);
    assert!(enabled(&v, "user.followed") && enabled(&v, "order.paid"));

    // Bad input changes nothing.
    for bad in [
        json!({}),
        json!({"nope": false}),
        json!({"user.followed": "no"}),
        json!([]),
    ] {
        assert_problem(app.put(PREFS, Some(&at), &bad).await, 400, "invalid_input").await;
    }
    assert!(enabled(
        &app.get(PREFS, Some(&at)).await.json().await.unwrap(),
        "user.followed"
    ));
    assert_problem(app.get(PREFS, None).await, 401, "unauthorized").await;

    let r = app
        .put(PREFS, Some(&at), &json!({"user.followed": false}))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(!enabled(&v, "user.followed") && enabled(&v, "order.paid"));
    follow(&app, &ct, alice).await;
    stored(&app, alice, 2).await;
    assert!(a.quiet_for(500).await, "a kind turned off was pushed");
    assert!(listed_kinds(&app, &at).await.is_empty());
    // Another member's settings are their own.
    let v: Value = app.get(PREFS, Some(&bt)).await.json().await.unwrap();
    assert!(enabled(&v, "user.followed"));

    // On again: pushed, and listed (the earlier ones too).
    app.put(PREFS, Some(&at), &json!({"user.followed": true}))
        .await;
    follow(&app, &dt, alice).await;
    assert_eq!(a.recv_type("notification").await["kind"], "user.followed");
    assert_eq!(listed_kinds(&app, &at).await.len(), 3);
}
both_backends!(
    kinds_turned_off_are_not_pushed_or_listed,
    super::kinds_turned_off_are_not_pushed_or_listed
);

async fn muted_conversations_still_deliver_and_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (_, ct) = app.register("carol").await;
    let r = app
        .post(
            "/api/v1/conversations",
            Some(&at),
            &json!({"member_ids": [bob]}),
        )
        .await;
    let conv = r.json::<Value>().await.unwrap()["conversation_id"]
        .as_i64()
        .unwrap();
    let mute = format!("/api/v1/conversations/{conv}/mute");
    let r = app.post(&mute, Some(&bt), &json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["muted"], true);
    assert_eq!(app.post(&mute, Some(&bt), &json!({})).await.status(), 200);
    assert_problem(
        app.post(&mute, Some(&ct), &json!({})).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(app.delete(&mute, Some(&ct)).await, 404, "not_found").await;
    let mut a = Ws::connect(&app, &at).await;
    let mut b = Ws::connect(&app, &bt).await;
    a.send(json!({"type": "send", "client_id": "1", "conversation_id": conv, "body": "hi"}))
        .await;
    assert_eq!(b.recv_type("message").await["body"], "hi");
    let list: Value = app
        .get("/api/v1/conversations", Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            list["items"][0]["muted"].as_bool(),
            list["items"][0]["unread"].as_i64()
        ),
        (Some(true), Some(1))
    );
    let other: Value = app
        .get(&format!("/api/v1/conversations/{conv}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["muted"], false);
    assert_eq!(app.delete(&mute, Some(&bt)).await.status(), 204);
    let v: Value = app
        .get(&format!("/api/v1/conversations/{conv}"), Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["muted"], false);
}
both_backends!(
    muted_conversations_still_deliver_and_count,
    super::muted_conversations_still_deliver_and_count
);
