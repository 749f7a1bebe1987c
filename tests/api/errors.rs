//! Bad input of every kind gets an RFC 9457 problem and changes nothing.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, Options, TestApp};

const MALFORMED: &str = "urn:tandem:problem:malformed_body";
const INVALID: &str = "urn:tandem:problem:invalid_input";

async fn malformed_bodies_are_problems(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reg = "/api/v1/auth/register";

    // Malformed JSON: a syntax error, said as one (issue 16, item 8).
    let r = app
        .post_raw(reg, None, "application/json", b"{\"username\": ".to_vec())
        .await;
    let p = assert_problem(r, 400, "invalid_input").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.starts_with("the body is not valid JSON"), "{detail}");
    // The code is the contract's; the problem type tells syntax from values.
    assert_eq!(p["type"], MALFORMED);
    // Wrong types: a validation error, in JSON's words, not Rust's.
    let r = app
        .post(
            reg,
            None,
            &json!({"username": 5, "password": "password-123"}),
        )
        .await;
    let p = assert_problem(r, 400, "invalid_input").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.starts_with("the body does not fit"), "{detail}");
    assert_eq!(p["type"], INVALID);
    assert!(
        !detail.contains("line ") && !detail.contains("i64"),
        "{detail}"
    );
    // A field's own rule, not labelled as bad JSON.
    let r = app
        .post(
            reg,
            None,
            &json!({"username": "someone", "password": "password-123", "invite_code": "zz"}),
        )
        .await;
    let p = assert_problem(r, 400, "invalid_input").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        !detail.contains("JSON") && detail.contains("invite_code"),
        "{detail}"
    );
    assert_eq!(p["type"], INVALID);
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
    let p = assert_problem(r, 400, "invalid_input").await;
    assert_eq!(p["type"], INVALID);
    // Not JSON at all.
    let r = app
        .post_raw(reg, None, "text/plain", b"username=someone".to_vec())
        .await;
    let p = assert_problem(r, 400, "invalid_input").await;
    assert_eq!(p["type"], MALFORMED);
    // A JSON array is not an object, even one that lines up with the fields
    // (serde would read a struct from it by position).
    let r = app
        .post(reg, None, &json!(["someone", "password-123"]))
        .await;
    let p = assert_problem(r, 400, "invalid_input").await;
    assert_eq!(p["detail"], "the body must be a JSON object");
    assert_eq!(p["type"], MALFORMED);
    let r = app
        .post_raw(reg, None, "application/json", b"[1,".to_vec())
        .await;
    let p = assert_problem(r, 400, "invalid_input").await;
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .starts_with("the body is not valid JSON"));
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

/// Behind a listed proxy each client has its own bucket (named by
/// `X-Forwarded-For`); a client speaking directly cannot pick one by sending
/// the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_follow_the_client_behind_a_trusted_proxy() {
    async fn logins_until_limited(app: &TestApp, client: &str) -> usize {
        for n in 0..40 {
            let r = app
                .client
                .post(format!("{}/api/v1/auth/login", app.address))
                .header("content-type", "application/json")
                .header("x-forwarded-for", format!("198.51.100.77, {client}"))
                .body("{")
                .send()
                .await
                .unwrap();
            if r.status() == 429 {
                return n;
            }
            assert_eq!(r.status(), 400);
        }
        panic!("never limited");
    }
    let opts = |proxies: &str| Options {
        rate_limits: true,
        extra_env: vec![("TANDEM_TRUSTED_PROXIES".into(), proxies.into())],
    };
    // 20 a client, plus the bucket's refill of one a second on a slow machine.
    let full = 20..=22;
    let behind = TestApp::spawn_with(Backend::Sqlite, opts("127.0.0.0/8, ::1")).await;
    assert!(full.contains(&logins_until_limited(&behind, "203.0.113.1").await));
    // Another client behind the same proxy still has its 20.
    assert!(full.contains(&logins_until_limited(&behind, "203.0.113.2").await));
    let direct = TestApp::spawn_with(Backend::Sqlite, opts("")).await;
    assert!(full.contains(&logins_until_limited(&direct, "203.0.113.1").await));
    assert!(logins_until_limited(&direct, "203.0.113.2").await <= 2);
}

/// Issue 16, item 9: a known path with another method is 405 with `Allow`;
/// a 401 names its scheme; an action route refuses a body that is not an
/// object (`[]` once passed for "no fields") and changes nothing.
async fn http_semantics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .client
        .delete(app.url("/api/v1/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_problem(r, 405, "method_not_allowed").await;
    let r = app
        .client
        .put(app.url("/api/v1/orders/12"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET");
    assert_problem(r, 405, "method_not_allowed").await;
    assert_problem(
        app.get("/api/v1/no/such/path", None).await,
        404,
        "not_found",
    )
    .await;

    let r = app.get("/api/v1/me", None).await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"tandem\"");
    assert_problem(r, 401, "unauthorized").await;

    let s = crate::orders::shop(&app, "semshop").await;
    let p = crate::orders::product(&app, &s, "Cup", "tea", 500, 5).await;
    let (_, buyer) = app.register("sembuyer").await;
    let o: Value = crate::orders::order(&app, &buyer, json!([{"product_id": p, "quantity": 1}]))
        .await
        .json()
        .await
        .unwrap();
    let id = o["order_id"].as_i64().unwrap();
    for body in ["[]", "[1]", "\"x\"", "3", "null"] {
        let r = app
            .post_raw(
                &format!("/api/v1/orders/{id}/cancel"),
                Some(&buyer),
                "application/json",
                body.as_bytes().to_vec(),
            )
            .await;
        assert_problem(r, 400, "invalid_input").await;
    }
    let now: Value = app
        .get(&format!("/api/v1/orders/{id}"), Some(&buyer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["status"], "pending_payment", "nothing changed");
    let r = app
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&buyer),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "an empty object still does");
}
both_backends!(http_semantics, super::http_semantics);

/// Issue 16, item 9 and CONTRACT v2: CORS for the origins of
/// `TANDEM_CORS_ORIGINS`, none by default.
#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let plain = TestApp::spawn(Backend::Sqlite).await;
    let r = preflight(&plain, "http://app.test").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_problem(r, 403, "forbidden").await;

    let opts = Options {
        extra_env: vec![("TANDEM_CORS_ORIGINS".into(), "http://app.test".into())],
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let r = preflight(&app, "http://app.test").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization") && headers.contains("idempotency-key"));
    let r = preflight(&app, "http://evil.test").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_problem(r, 403, "forbidden").await;
    // The request itself: the listed origin may read the answer, another may not.
    let r = app
        .client
        .get(app.url("/health"))
        .header("origin", "http://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    assert_eq!(r.headers()["vary"], "Origin");
    let r = app
        .client
        .get(app.url("/health"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// Issue 16, item 7: one rule for user text. Invisible-only names, and
/// bidirectional overrides anywhere, are refused and change nothing; emoji
/// sequences with zero-width joiners are text like any other.
async fn one_text_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, token) = app.register("texter").await;
    let patch = |body: Value| {
        app.client
            .patch(app.url("/api/v1/me"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    for bad in [
        json!({"display_name": "\u{200B}\u{200B}"}),
        json!({"display_name": "\u{3164}"}),
        json!({"display_name": "admin\u{202E}nimda"}),
        json!({"bio": "see \u{2066}this\u{2069}"}),
    ] {
        let r = patch(bad.clone()).await.unwrap();
        assert_problem(r, 400, "invalid_input").await;
    }
    let me: Value = app
        .get("/api/v1/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["display_name"], "texter", "nothing changed");
    let family = "👨\u{200D}👩\u{200D}👧";
    let r = patch(json!({"display_name": family})).await.unwrap();
    assert_eq!(r.status(), 200);
    for bad in ["\u{200B}", "odd \u{202D}text"] {
        let r = app
            .post("/api/v1/posts", Some(&token), &json!({"body": bad}))
            .await;
        assert_problem(r, 400, "invalid_input").await;
    }
    let r = app
        .post(
            "/api/v1/merchants",
            Some(&token),
            &json!({"name": "\u{FEFF} "}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
}
both_backends!(one_text_rule, super::one_text_rule);
