//! Every object route, called by a stranger with another user's ids: 403
//! or 404, and nothing changes. The routes come from the served OpenAPI
//! document, so a route added later without a decision here fails the test:
//! each is either owner-only (called below with a well-formed body) or open
//! to any signed-in user by the contract (listed with why).

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::both_backends;
use crate::community::animal;
use crate::helpers::{Backend, TestApp};
use crate::orders::{order, paid_order, product, shop};
use crate::trips::new_trip;

both_backends!(
    strangers_get_403_or_404_and_change_nothing,
    super::strangers_get_403_or_404_and_change_nothing
);

/// Routes with ids that any signed-in user may call on others' objects.
const OPEN_TO_OTHERS: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/api/v1/animals/{id}/claim",
        "anyone may claim a free animal (an order of their own)",
    ),
    (
        "POST",
        "/api/v1/posts/{id}/comments",
        "anyone who can see a post may comment",
    ),
    (
        "POST",
        "/api/v1/posts/{id}/like",
        "anyone who can see a post may like it",
    ),
    (
        "DELETE",
        "/api/v1/posts/{id}/like",
        "un-liking is one's own like",
    ),
    (
        "GET",
        "/api/v1/posts/{id}",
        "posts are visible to all but blocked users",
    ),
    (
        "POST",
        "/api/v1/trips/{id}/join",
        "anyone may ask to join a public trip",
    ),
    (
        "POST",
        "/api/v1/trips/{id}/leave",
        "one's own membership (409 not_a_member for a stranger)",
    ),
    (
        "GET",
        "/api/v1/users/{id}",
        "profiles are visible to all but blocked users",
    ),
    (
        "GET",
        "/api/v1/users/{id}/followers",
        "follower lists are public",
    ),
    (
        "GET",
        "/api/v1/users/{id}/following",
        "following lists are public",
    ),
    ("POST", "/api/v1/users/{id}/follow", "one's own follow"),
    ("DELETE", "/api/v1/users/{id}/follow", "one's own follow"),
    ("POST", "/api/v1/users/{id}/block", "one's own block"),
    ("DELETE", "/api/v1/users/{id}/block", "one's own block"),
];

/// The objects of A (and of C, A's buyer, member and requester).
struct World {
    ids: HashMap<&'static str, i64>,
}

impl World {
    fn path(&self, template: &str) -> String {
        let mut out = template.to_owned();
        for (name, id) in &self.ids {
            out = out.replace(&format!("{{{name}}}"), &id.to_string());
        }
        assert!(!out.contains('{'), "no id for {template}");
        out
    }
}

/// Owner-only routes: (method, path with named ids, a well-formed body).
/// `{id}` is replaced per route family below.
fn owner_only() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    vec![
        (
            "POST",
            "/api/v1/animals/{id}/updates",
            "animal",
            json!({"body": "fed"}),
        ),
        ("DELETE", "/api/v1/comments/{id}", "comment", Value::Null),
        ("GET", "/api/v1/conversations/{id}", "group", Value::Null),
        (
            "PATCH",
            "/api/v1/conversations/{id}",
            "group",
            json!({"title": "taken"}),
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/members",
            "group",
            json!({"user_ids": [0]}),
        ),
        (
            "DELETE",
            "/api/v1/conversations/{id}/members/{user_id}",
            "group",
            Value::Null,
        ),
        (
            "PATCH",
            "/api/v1/conversations/{id}/members/{user_id}",
            "group",
            json!({"admin": true}),
        ),
        (
            "GET",
            "/api/v1/conversations/{id}/messages",
            "direct",
            Value::Null,
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/mute",
            "direct",
            json!({}),
        ),
        (
            "DELETE",
            "/api/v1/conversations/{id}/mute",
            "direct",
            Value::Null,
        ),
        ("DELETE", "/api/v1/me/sessions/{id}", "session", Value::Null),
        (
            "GET",
            "/api/v1/merchants/{id}/dashboard",
            "merchant",
            Value::Null,
        ),
        (
            "GET",
            "/api/v1/merchants/{id}/orders",
            "merchant",
            Value::Null,
        ),
        ("GET", "/api/v1/orders/{id}", "order", Value::Null),
        (
            "POST",
            "/api/v1/orders/{id}/address",
            "order",
            json!({"shipping_address": "elsewhere"}),
        ),
        ("POST", "/api/v1/orders/{id}/cancel", "order", json!({})),
        ("POST", "/api/v1/orders/{id}/pay", "order", json!({})),
        ("POST", "/api/v1/orders/{id}/confirm", "paid", json!({})),
        (
            "POST",
            "/api/v1/orders/{id}/refund",
            "paid",
            json!({"reason": "mine now"}),
        ),
        (
            "POST",
            "/api/v1/orders/{id}/refund/approve",
            "paid",
            json!({}),
        ),
        (
            "POST",
            "/api/v1/orders/{id}/refund/reject",
            "paid",
            json!({}),
        ),
        (
            "POST",
            "/api/v1/orders/{id}/review",
            "paid",
            json!({"rating": 1, "body": "bad"}),
        ),
        (
            "POST",
            "/api/v1/orders/{id}/ship",
            "paid",
            json!({"carrier": "x", "tracking_no": "1"}),
        ),
        ("DELETE", "/api/v1/posts/{id}", "post", Value::Null),
        (
            "PATCH",
            "/api/v1/posts/{id}",
            "post",
            json!({"body": "taken"}),
        ),
        (
            "PATCH",
            "/api/v1/products/{id}",
            "product",
            json!({"name": "taken", "stock_delta": -1}),
        ),
        ("POST", "/api/v1/trips/{id}/close", "trip", json!({})),
        ("GET", "/api/v1/trips/{id}/requests", "trip", Value::Null),
        (
            "POST",
            "/api/v1/trips/{id}/requests/{request_id}/accept",
            "trip",
            json!({}),
        ),
        (
            "POST",
            "/api/v1/trips/{id}/requests/{request_id}/reject",
            "trip",
            json!({}),
        ),
        (
            "POST",
            "/api/v1/admin/merchants/{id}/approve",
            "merchant",
            json!({}),
        ),
        (
            "POST",
            "/api/v1/admin/merchants/{id}/reject",
            "merchant",
            json!({}),
        ),
        ("POST", "/api/v1/admin/users/{id}/ban", "user", json!({})),
        ("POST", "/api/v1/admin/users/{id}/unban", "user", json!({})),
        // Admin-only, whatever the id: a report or withdrawal id of nobody's.
        (
            "POST",
            "/api/v1/admin/reports/{id}/resolve",
            "user",
            json!({"action": "dismiss"}),
        ),
        (
            "POST",
            "/api/v1/admin/withdrawals/{id}/approve",
            "user",
            json!({}),
        ),
        (
            "POST",
            "/api/v1/admin/withdrawals/{id}/reject",
            "user",
            json!({}),
        ),
    ]
}

async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: &Value) -> u16 {
    let r = match method {
        "GET" => app.get(path, Some(token)).await,
        "DELETE" => app.delete(path, Some(token)).await,
        "PATCH" => app.patch(path, Some(token), body).await,
        "PUT" => app.put(path, Some(token), body).await,
        _ => app.post(path, Some(token), body).await,
    };
    r.status().as_u16()
}

async fn json_of(app: &TestApp, path: &str, token: Option<&str>) -> Value {
    app.get(path, token).await.json().await.unwrap()
}

/// What A and C see of their objects (the check that nothing changed).
async fn snapshot(app: &TestApp, w: &World, a: &str, c: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (path, token) in [
        ("/api/v1/orders/{order}", Some(c)),
        ("/api/v1/orders/{paid}", Some(c)),
        ("/api/v1/conversations/{group}", Some(a)),
        (
            "/api/v1/conversations/{direct}/messages?after_seq=0",
            Some(a),
        ),
        ("/api/v1/posts/{post}", Some(a)),
        ("/api/v1/products/{product}", None),
        ("/api/v1/merchants/{merchant}", None),
        ("/api/v1/trips/{trip}", None),
        ("/api/v1/trips/{trip}/requests", Some(a)),
        ("/api/v1/animals/{animal}/updates", None),
        ("/api/v1/me/sessions", Some(a)),
        ("/api/v1/me", Some(a)),
    ] {
        let mut path = path.to_owned();
        for (name, id) in &w.ids {
            path = path.replace(&format!("{{{name}}}"), &id.to_string());
        }
        let mut v = json_of(app, &path, token).await;
        if let Some(sessions) = v["items"].as_array_mut() {
            // `current` says which session asked, not what changed.
            for s in sessions {
                s.as_object_mut().map(|o| o.remove("current"));
            }
        }
        out.push(v);
    }
    out
}

async fn strangers_get_403_or_404_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "owner_a").await;
    let a = s.owner_token.clone();
    let (c_id, c) = app.register("partner_c").await;
    let (_, b) = app.register("stranger_b").await;
    let p = product(&app, &s, "tea", "food", 900, 50).await;
    let pending = order(&app, &c, json!([{"product_id": p, "quantity": 1}])).await;
    let pending: Value = pending.json().await.unwrap();
    let paid = paid_order(&app, &c, json!([{"product_id": p, "quantity": 1}])).await;
    let n = animal(&app, &s, "Daisy", 500, 30).await;
    let post: Value = app
        .post("/api/v1/posts", Some(&a), &json!({"body": "mine"}))
        .await
        .json()
        .await
        .unwrap();
    let comment: Value = app
        .post(
            &format!("/api/v1/posts/{}/comments", post["post_id"]),
            Some(&c),
            &json!({"body": "nice"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let group: Value = app
        .post(
            "/api/v1/conversations",
            Some(&a),
            &json!({"member_ids": [c_id], "title": "ours"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let trip = new_trip(&app, &a, "Dali", 4).await;
    let request: Value = app
        .post(
            &format!("/api/v1/trips/{}/join", trip["trip_id"]),
            Some(&c),
            &json!({"message": "me"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let direct = {
        let mut ws = crate::ws::Ws::connect(&app, &a).await;
        ws.send(json!({"type": "send", "client_id": "d1", "to_user_id": c_id, "body": "hi"}))
            .await;
        ws.recv_type("ack").await["conversation_id"]
            .as_i64()
            .unwrap()
    };
    let sessions = json_of(&app, "/api/v1/me/sessions", Some(&a)).await;
    let me = json_of(&app, "/api/v1/me", Some(&a)).await;
    let w = World {
        ids: HashMap::from([
            ("order", pending["order_id"].as_i64().unwrap()),
            ("paid", paid["order_id"].as_i64().unwrap()),
            ("animal", n),
            ("post", post["post_id"].as_i64().unwrap()),
            ("comment", comment["comment_id"].as_i64().unwrap()),
            ("group", group["conversation_id"].as_i64().unwrap()),
            ("direct", direct),
            ("trip", trip["trip_id"].as_i64().unwrap()),
            ("request_id", request["request_id"].as_i64().unwrap()),
            ("merchant", s.merchant_id),
            ("product", p),
            (
                "session",
                sessions["items"][0]["session_id"].as_i64().unwrap(),
            ),
            ("user", me["user_id"].as_i64().unwrap()),
            ("user_id", c_id),
        ]),
    };
    assert_every_route_is_decided(&app).await;
    let before = snapshot(&app, &w, &a, &c).await;
    for (method, template, family, body) in owner_only() {
        let path = w.path(&template.replace("{id}", &format!("{{{family}}}")));
        let body = if template.ends_with("/members") {
            json!({"user_ids": [w.ids["user_id"]]})
        } else {
            body
        };
        let status = call(&app, method, &path, &b, &body).await;
        assert!(
            status == 403 || status == 404,
            "{method} {template} by a stranger: {status}"
        );
    }
    assert_eq!(
        snapshot(&app, &w, &a, &c).await,
        before,
        "a stranger changed something"
    );
}

/// Every signed-in route with an id in the OpenAPI document is decided here.
async fn assert_every_route_is_decided(app: &TestApp) {
    let doc: Value = app
        .get("/api-docs/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let decided: BTreeSet<(String, String)> = owner_only()
        .into_iter()
        .map(|(m, p, _, _)| (m.to_owned(), p.to_owned()))
        .chain(
            OPEN_TO_OTHERS
                .iter()
                .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    let mut undecided = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') || !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, op) in ops.as_object().unwrap() {
            let signed_in = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let key = (method.to_uppercase(), path.clone());
            if signed_in && !decided.contains(&key) {
                undecided.push(format!("{} {}", key.0, key.1));
            }
        }
    }
    assert!(
        undecided.is_empty(),
        "routes with ids that no rule here covers: {undecided:?}"
    );
}
