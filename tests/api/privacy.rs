//! What blocks hide and what public routes give away (issue 22).

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp};

async fn reports_confirm_nothing_a_block_hides(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (x, xt) = app.register("xavier").await;
    let r = app
        .post(
            "/api/v1/posts",
            Some(&at),
            &json!({"body": "only for friends"}),
        )
        .await;
    let post = r.json::<Value>().await.unwrap()["post_id"]
        .as_i64()
        .unwrap();
    // Before the block X may report both.
    let report =
        |kind: &str, id: i64| json!({"target_type": kind, "target_id": id, "reason": "spam"});
    assert_eq!(
        app.post(&format!("/api/v1/users/{x}/block"), Some(&at), &json!({}))
            .await
            .status(),
        200
    );
    assert_problem(
        app.get(&format!("/api/v1/posts/{post}"), Some(&xt)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/reports", Some(&xt), &report("post", post))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/reports", Some(&xt), &report("user", alice))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/reports", Some(&xt), &report("post", 999_999))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.sql_count("SELECT COUNT(*) AS n FROM reports"), 0);
    // The one who blocked can still report the one blocked.
    let r = app
        .post("/api/v1/reports", Some(&at), &report("user", x))
        .await;
    assert_eq!(r.status(), 201);
    // Unblocked, X sees the post and may report it.
    let r = app
        .delete(&format!("/api/v1/users/{x}/block"), Some(&at))
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .post("/api/v1/reports", Some(&xt), &report("post", post))
        .await;
    assert_eq!(r.status(), 201);
}
both_backends!(
    reports_confirm_nothing_a_block_hides,
    super::reports_confirm_nothing_a_block_hides
);

async fn merchant_applications_are_private_until_approved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, ot) = app.register("owner").await;
    let (_, st) = app.register("stranger").await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/api/v1/merchants",
            Some(&ot),
            &json!({"name": "Night market"}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["merchant_id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/merchants/{id}");
    assert_problem(app.get(&path, None).await, 404, "not_found").await;
    assert_problem(app.get(&path, Some(&st)).await, 404, "not_found").await;
    assert_problem(
        app.get(&format!("{path}/reviews"), None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        app.get(&path, Some(&ot))
            .await
            .json::<Value>()
            .await
            .unwrap()["status"],
        "pending"
    );
    assert_eq!(app.get(&path, Some(&admin)).await.status(), 200);
    // Rejected: still private.
    let r = app
        .post(
            &format!("/api/v1/admin/merchants/{id}/reject"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_problem(app.get(&path, None).await, 404, "not_found").await;
    assert_eq!(
        app.get(&path, Some(&ot))
            .await
            .json::<Value>()
            .await
            .unwrap()["status"],
        "rejected"
    );
    // Approved: public.
    let r = app
        .post(
            "/api/v1/merchants",
            Some(&ot),
            &json!({"name": "Day market"}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["merchant_id"]
        .as_i64()
        .unwrap();
    let r = app
        .post(
            &format!("/api/v1/admin/merchants/{id}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = app
        .get(&format!("/api/v1/merchants/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "approved");
    let r = app
        .get(&format!("/api/v1/merchants/{id}/reviews"), None)
        .await;
    assert_eq!(r.status(), 200);
}
both_backends!(
    merchant_applications_are_private_until_approved,
    super::merchant_applications_are_private_until_approved
);

/// Issue 22, item 1, decided: a block made later leaves shared groups as
/// they are (both stay members and read each other there, as in a chat
/// app; either may leave), while nobody can start or grow a group with
/// someone across a block (tests/api/chat_changes.rs).
async fn a_block_leaves_existing_groups_as_they_are(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (x, xt) = app.register("xavier").await;
    let (carol, _) = app.register("carol").await;
    let r = app
        .post(
            "/api/v1/conversations",
            Some(&xt),
            &json!({"member_ids": [alice, carol]}),
        )
        .await;
    let conv = r.json::<Value>().await.unwrap()["conversation_id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.post(&format!("/api/v1/users/{x}/block"), Some(&at), &json!({}))
            .await
            .status(),
        200
    );
    let mut a = crate::ws::Ws::connect(&app, &at).await;
    let mut xs = crate::ws::Ws::connect(&app, &xt).await;
    xs.send(json!({"type": "send", "client_id": "g1", "conversation_id": conv, "body": "still in the group"})).await;
    assert_eq!(xs.recv_type("ack").await["seq"], 1);
    assert_eq!(a.recv_type("message").await["sender_id"], x);
    // Directly, the block holds.
    xs.send(json!({"type": "send", "client_id": "d1", "to_user_id": alice, "body": "hi"}))
        .await;
    assert_eq!(xs.recv_type("error").await["code"], "blocked");
    // Alice may leave the group.
    let r = app
        .delete(
            &format!("/api/v1/conversations/{conv}/members/{alice}"),
            Some(&at),
        )
        .await;
    assert_eq!(r.status(), 204);
}
both_backends!(
    a_block_leaves_existing_groups_as_they_are,
    super::a_block_leaves_existing_groups_as_they_are
);
