//! Bad input of every kind gets an RFC 9457 problem and changes nothing.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, Options, TestApp};

async fn malformed_bodies_are_problems(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reg = "/api/v1/auth/register";

    // Malformed JSON.
    let r = app
        .post_raw(reg, None, "application/json", b"{\"username\": ".to_vec())
        .await;
    assert_problem(r, 400, "invalid_input").await;
    // Wrong types.
    let r = app
        .post(
            reg,
            None,
            &json!({"username": 5, "password": "password-123"}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    // Unknown field.
    let r = app
        .post(
            reg,
            None,
            &json!({"username": "someone", "password": "password-123", "admin": true}),
        )
        .await;
    let p = assert_problem(r, 400, "invalid_input").await;
    assert!(
        p["detail"].as_str().unwrap().contains("unknown field"),
        "{p}"
    );
    // Missing field.
    let r = app.post(reg, None, &json!({"username": "someone"})).await;
    assert_problem(r, 400, "invalid_input").await;
    // Not JSON at all.
    let r = app
        .post_raw(reg, None, "text/plain", b"username=someone".to_vec())
        .await;
    assert_problem(r, 400, "invalid_input").await;
    // Huge body.
    let huge = format!(
        "{{\"username\":\"someone\",\"password\":\"{}\"}}",
        "x".repeat(200_000)
    );
    let r = app
        .post_raw(reg, None, "application/json", huge.into_bytes())
        .await;
    assert_problem(r, 413, "payload_too_large").await;

    // None of that created the account.
    let r = app.login("someone", "password-123").await;
    assert_problem(r, 401, "invalid_credentials").await;
    app.register("someone").await;
}
both_backends!(
    malformed_bodies_are_problems,
    super::malformed_bodies_are_problems
);

async fn unknown_routes_and_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.get("/api/v1/nothing-here", None).await;
    assert_problem(r, 404, "not_found").await;
    let admin = app.admin_token().await;
    for bad in ["0", "-3", "abc", "9007199254740992", "1.5"] {
        let r = app
            .post(
                &format!("/api/v1/admin/users/{bad}/ban"),
                Some(&admin),
                &json!({}),
            )
            .await;
        assert_problem(r, 404, "not_found").await;
    }
    let r = app
        .post(
            "/api/v1/admin/users/123456789/ban",
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_problem(r, 404, "not_found").await;
}
both_backends!(unknown_routes_and_ids, super::unknown_routes_and_ids);

async fn rate_limits_answer_429(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            rate_limits: true,
            ..Default::default()
        },
    )
    .await;
    let mut limited = None;
    for _ in 0..40 {
        // Malformed on purpose: the limiter runs before the handler, so this is cheap.
        let r = app
            .post_raw(
                "/api/v1/auth/login",
                None,
                "application/json",
                b"{".to_vec(),
            )
            .await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 400);
    }
    let r = limited.expect("the auth bucket (20 per address) ran out");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_problem(r, 429, "rate_limited").await;
    // Other routes have their own bucket.
    assert_eq!(app.get("/health", None).await.status(), 200);
}
both_backends!(rate_limits_answer_429, super::rate_limits_answer_429);
