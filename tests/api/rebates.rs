//! Rebates, referral commissions, the wallet and withdrawals. `tandem audit`
//! runs after every scenario.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, Options, TestApp};
use crate::orders::{notify, order, paid_order, product, shop, Shop};

pub async fn invite_code(app: &TestApp, token: &str) -> String {
    let me: Value = app
        .get("/api/v1/me", Some(token))
        .await
        .json()
        .await
        .unwrap();
    me["invite_code"].as_str().unwrap().to_owned()
}

pub async fn register_invited(app: &TestApp, name: &str, code: &str) -> (i64, String) {
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": name, "password": "password-123", "invite_code": code}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["user_id"].as_i64().unwrap(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

pub async fn put_rules(app: &TestApp, admin: &str, rules: Value) -> reqwest::Response {
    app.client
        .put(app.url("/api/v1/admin/rebate-rules"))
        .bearer_auth(admin)
        .json(&rules)
        .send()
        .await
        .unwrap()
}

pub async fn wallet(app: &TestApp, token: &str) -> Value {
    app.get("/api/v1/wallet", Some(token))
        .await
        .json()
        .await
        .unwrap()
}

async fn rebates_of(app: &TestApp, token: &str) -> Vec<Value> {
    let v: Value = app
        .get("/api/v1/rebates?limit=200", Some(token))
        .await
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

/// Waits (up to 2 s, the contract's bound) until `check` holds.
async fn within_2s<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2_500);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within 2 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn rule_validation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let (_, user) = app.register("notadmin").await;
    let good = json!({"rules": [{"name": "base", "rate_bps": 100}], "referral_levels_bps": [100], "hold_seconds": 0});
    assert_problem(put_rules(&app, &user, good.clone()).await, 403, "forbidden").await;
    for bad in [
        json!({"rules": [], "referral_levels_bps": [1, 1, 1, 1], "hold_seconds": 0}),
        json!({"rules": [{"name": "x", "rate_bps": 10_001}], "referral_levels_bps": [], "hold_seconds": 0}),
        json!({"rules": [{"name": "x", "rate_bps": -1}], "referral_levels_bps": [], "hold_seconds": 0}),
        json!({"rules": [], "referral_levels_bps": [10_001], "hold_seconds": 0}),
        json!({"rules": [{"name": "x", "rate_bps": 1, "starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}], "referral_levels_bps": [], "hold_seconds": 0}),
        json!({"rules": [{"name": "x", "rate_bps": 1, "starts_at": "yesterday"}], "referral_levels_bps": [], "hold_seconds": 0}),
        json!({"rules": [{"name": "x", "rate_bps": 1, "bonus": 1}], "referral_levels_bps": [], "hold_seconds": 0}),
        json!({"rules": [], "referral_levels_bps": [], "hold_seconds": -1}),
        json!({"rules": [{"name": "x", "rate_bps": 1.5}], "referral_levels_bps": [], "hold_seconds": 0}),
    ] {
        assert_problem(put_rules(&app, &admin, bad).await, 400, "invalid_input").await;
    }
    let r = put_rules(&app, &admin, good.clone()).await;
    assert_eq!(r.status(), 200);
    let got: Value = app
        .get("/api/v1/admin/rebate-rules", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["rules"][0]["name"], "base");
    assert_eq!(got["referral_levels_bps"], json!([100]));
    assert!(got["version"].is_i64());

    // Issue 16, item 5: a set that could pay out more than the whole order
    // (TANDEM_REBATE_MAX_PAYOUT_BPS, default 10,000) is refused with the
    // reason, and the set in force stays.
    for too_much in [
        json!({"rules": [], "referral_levels_bps": [6_000, 6_000], "hold_seconds": 0}),
        json!({"rules": [{"name": "x", "rate_bps": 9_000}, {"name": "y", "rate_bps": 10}], "referral_levels_bps": [500, 500, 1], "hold_seconds": 0}),
    ] {
        let body = assert_problem(
            put_rules(&app, &admin, too_much).await,
            400,
            "invalid_input",
        )
        .await;
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("basis points of an order")),
            "{body}"
        );
    }
    let at_limit = json!({"rules": [{"name": "x", "rate_bps": 9_000}], "referral_levels_bps": [500, 500], "hold_seconds": 0});
    assert_eq!(put_rules(&app, &admin, at_limit).await.status(), 200);
    let got: Value = app
        .get("/api/v1/admin/rebate-rules", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["rules"][0]["rate_bps"], 9_000,
        "the last accepted set is in force"
    );
}
both_backends!(rule_validation, super::rule_validation);

async fn referral_chain_settlement_and_refunds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "rebshop").await;
    let p = product(&app, &s, "Orchid", "flowers", 9_999, 100).await;
    // A invites B invites C invites D invites E; E buys. The 4th level (A) gets nothing.
    let (_, a) = app.register("lvl_a").await;
    let (_, b) = register_invited(&app, "lvl_b", &invite_code(&app, &a).await).await;
    let (_, c) = register_invited(&app, "lvl_c", &invite_code(&app, &b).await).await;
    let (_, d) = register_invited(&app, "lvl_d", &invite_code(&app, &c).await).await;
    let (e_id, e) = register_invited(&app, "lvl_e", &invite_code(&app, &d).await).await;
    let rules = json!({
        "rules": [
            {"name": "global", "rate_bps": 300, "fixed_cents": 5, "cap_cents": 1_000},
            {"name": "shop", "merchant_id": s.merchant_id, "rate_bps": 500},
            {"name": "flowers", "category": "flowers", "rate_bps": 400},
            {"name": "big only", "rate_bps": 8_000, "priority": 9, "min_order_cents": 1_000_000}
        ],
        "referral_levels_bps": [1_000, 500, 200],
        "hold_seconds": 1
    });
    assert_eq!(put_rules(&app, &admin, rules).await.status(), 200);
    let o = paid_order(&app, &e, json!([{"product_id": p, "quantity": 1}])).await;
    let id = o["order_id"].as_i64().unwrap();
    within_2s("pending rebates", || async {
        rebates_of(&app, &e).await.len() == 1
    })
    .await;
    let mine = rebates_of(&app, &e).await;
    // The merchant rule wins over category and global (same priority); 9,999 * 5 % = 499.95 -> 499.
    assert_eq!(mine[0]["kind"], "purchase");
    assert_eq!(mine[0]["rule_name"], "shop");
    assert_eq!(
        (mine[0]["amount_cents"].as_i64(), mine[0]["status"].as_str()),
        (Some(499), Some("pending"))
    );
    assert_eq!(mine[0]["order_id"], id);
    assert_eq!(mine[0]["user_id"], e_id);
    let expect = [
        (&d, "referral_1", 999),
        (&c, "referral_2", 499),
        (&b, "referral_3", 199),
    ];
    for (token, kind, amount) in expect {
        within_2s("referral record", || async {
            !rebates_of(&app, token).await.is_empty()
        })
        .await;
        let r = rebates_of(&app, token).await;
        assert_eq!(
            (r[0]["kind"].as_str(), r[0]["amount_cents"].as_i64()),
            (Some(kind), Some(amount))
        );
        assert_eq!(wallet(&app, token).await["pending_cents"], amount);
    }
    assert!(
        rebates_of(&app, &a).await.is_empty(),
        "the 4th level gets nothing"
    );
    app.assert_audit_clean();

    // Completion plus the hold makes them available.
    app.post(
        &format!("/api/v1/orders/{id}/ship"),
        Some(&s.owner_token),
        &json!({}),
    )
    .await;
    app.post(
        &format!("/api/v1/orders/{id}/confirm"),
        Some(&e),
        &json!({}),
    )
    .await;
    within_2s("settlement", || async {
        wallet(&app, &e).await["available_cents"] == 499
    })
    .await;
    let w = wallet(&app, &d).await;
    within_2s("settlement of referrals", || async {
        wallet(&app, &d).await["available_cents"] == 999
    })
    .await;
    let _ = w;
    assert_eq!(wallet(&app, &e).await["pending_cents"], 0);
    app.assert_audit_clean();

    // A withdrawal, then a refund after settlement: reversed, clawed back below zero.
    let r = app
        .post(
            "/api/v1/withdrawals",
            Some(&d),
            &json!({"amount_cents": 900}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let wd: Value = r.json().await.unwrap();
    assert_eq!(wd["status"], "pending");
    assert_eq!(
        wallet(&app, &d).await,
        json!({"pending_cents": 0, "available_cents": 99, "withdrawing_cents": 900, "withdrawn_cents": 0})
    );
    app.post(
        &format!("/api/v1/orders/{id}/refund"),
        Some(&e),
        &json!({"reason": "bad"}),
    )
    .await;
    app.post(
        &format!("/api/v1/orders/{id}/refund/approve"),
        Some(&s.owner_token),
        &json!({}),
    )
    .await;
    within_2s("reversal", || async {
        wallet(&app, &d).await["available_cents"] == -900
    })
    .await;
    within_2s("reversal of purchase", || async {
        rebates_of(&app, &e).await[0]["status"] == "reversed"
    })
    .await;
    // The 900 held for the withdrawal includes money the reversal took back:
    // not paid while available is negative (issue 21, item 9); rejecting
    // returns it to available.
    let wid = wd["withdrawal_id"].as_i64().unwrap();
    assert_problem(
        app.post(
            &format!("/api/v1/admin/withdrawals/{wid}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await,
        409,
        "insufficient_funds",
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/admin/withdrawals/{wid}/reject"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "rejected");
    assert_eq!(
        wallet(&app, &d).await,
        json!({"pending_cents": 0, "available_cents": 0, "withdrawing_cents": 0, "withdrawn_cents": 0})
    );
    assert_problem(
        app.post(
            &format!("/api/v1/admin/withdrawals/{wid}/reject"),
            Some(&admin),
            &json!({}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;
    app.assert_audit_clean();

    // A refund before settlement cancels.
    let o2 = paid_order(&app, &e, json!([{"product_id": p, "quantity": 2}])).await;
    let id2 = o2["order_id"].as_i64().unwrap();
    within_2s("second pending", || async {
        rebates_of(&app, &e).await.len() == 2
    })
    .await;
    app.post(
        &format!("/api/v1/orders/{id2}/refund"),
        Some(&e),
        &json!({"reason": "changed mind"}),
    )
    .await;
    app.post(
        &format!("/api/v1/orders/{id2}/refund/approve"),
        Some(&admin),
        &json!({}),
    )
    .await;
    within_2s("cancellation", || async {
        rebates_of(&app, &e)
            .await
            .iter()
            .any(|r| r["order_id"] == id2 && r["status"] == "cancelled")
    })
    .await;
    assert_eq!(wallet(&app, &e).await["pending_cents"], 0);
    let rewards: Value = app
        .get("/api/v1/me/rewards", Some(&c))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rewards["invitee_count"], 1);
    assert!(rewards["by_kind"]["referral_2"].is_object());
    let inv: Value = app
        .get("/api/v1/me/invitees", Some(&d))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inv["items"][0]["user_id"], e_id);
    assert_eq!(inv["items"][0]["order_count"], 2);
    app.assert_audit_clean();
}
both_backends!(
    referral_chain_settlement_and_refunds,
    super::referral_chain_settlement_and_refunds
);

async fn concurrent_withdrawals_never_overdraw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "wshop").await;
    let p = product(&app, &s, "Tea set", "tea", 10_000, 10).await;
    let (_, buyer) = app.register("wbuyer").await;
    put_rules(&app, &admin, json!({"rules": [{"name": "all", "rate_bps": 1_000}], "referral_levels_bps": [], "hold_seconds": 0})).await;
    let o = paid_order(&app, &buyer, json!([{"product_id": p, "quantity": 1}])).await;
    let id = o["order_id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/orders/{id}/ship"),
        Some(&s.owner_token),
        &json!({}),
    )
    .await;
    app.post(
        &format!("/api/v1/orders/{id}/confirm"),
        Some(&buyer),
        &json!({}),
    )
    .await;
    within_2s("available", || async {
        wallet(&app, &buyer).await["available_cents"] == 1_000
    })
    .await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = app.client.clone();
        let url = app.url("/api/v1/withdrawals");
        let t = buyer.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(t)
                .json(&json!({"amount_cents": 300}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => ok += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 3, "1000 available allows three withdrawals of 300");
    assert_eq!(
        wallet(&app, &buyer).await,
        json!({"pending_cents": 0, "available_cents": 100, "withdrawing_cents": 900, "withdrawn_cents": 0})
    );
    // Idempotency-Key on withdrawals.
    let send = |key: &'static str, amount: i64| {
        let client = app.client.clone();
        let url = app.url("/api/v1/withdrawals");
        let t = buyer.clone();
        async move {
            client
                .post(url)
                .bearer_auth(t)
                .header("idempotency-key", key)
                .json(&json!({"amount_cents": amount}))
                .send()
                .await
                .unwrap()
        }
    };
    let first: Value = send("w-1", 50).await.json().await.unwrap();
    let again: Value = send("w-1", 50).await.json().await.unwrap();
    assert_eq!(first["withdrawal_id"], again["withdrawal_id"]);
    assert_problem(send("w-1", 60).await, 422, "idempotency_key_reused").await;
    assert_eq!(wallet(&app, &buyer).await["available_cents"], 50);
    for bad in [
        json!({"amount_cents": 0}),
        json!({"amount_cents": -5}),
        json!({"amount_cents": "5"}),
        json!({}),
    ] {
        assert_problem(
            app.post("/api/v1/withdrawals", Some(&buyer), &bad).await,
            400,
            "invalid_input",
        )
        .await;
    }
    assert_problem(
        app.post(
            "/api/v1/withdrawals",
            Some(&buyer),
            &json!({"amount_cents": 51}),
        )
        .await,
        409,
        "insufficient_funds",
    )
    .await;
    // Admin: list pending, reject one (back to available).
    let pending: Value = app
        .get("/api/v1/admin/withdrawals?status=pending", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["items"].as_array().unwrap().len(), 4);
    let wid = pending["items"][0]["withdrawal_id"].as_i64().unwrap();
    assert_problem(
        app.post(
            &format!("/api/v1/admin/withdrawals/{wid}/reject"),
            Some(&buyer),
            &json!({}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let r: Value = app
        .post(
            &format!("/api/v1/admin/withdrawals/{wid}/reject"),
            Some(&admin),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "rejected");
    assert_eq!(wallet(&app, &buyer).await["available_cents"], 350);
    // The caller's own withdrawals (CONTRACT v2): newest first, paged, and
    // nobody else's.
    let page = |token: String, query: String| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/withdrawals{query}"), Some(&token))
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = page(buyer.clone(), "?limit=3".into()).await;
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let ids: Vec<i64> = items
        .iter()
        .map(|w| w["withdrawal_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(items[0]["amount_cents"], 50, "the last one requested");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let rest = page(buyer.clone(), format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let statuses: Vec<Value> = items
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|w| w["status"].clone())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "rejected").count(), 1);
    let (_, other) = app.register("wother").await;
    assert_eq!(page(other, String::new()).await["items"], json!([]));
    assert_problem(
        app.get("/api/v1/withdrawals?limit=0", Some(&buyer)).await,
        400,
        "invalid_input",
    )
    .await;
    app.assert_audit_clean();
    // The audit is not vacuous: a balance changed behind the journal's back is caught.
    let url: tandem::core::config::DatabaseUrl = app.database_url().parse().unwrap();
    let (pool, _) = tandem::server::app::migrate(&url).unwrap();
    let mut conn = pool.get().unwrap();
    diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE wallets SET available_cents = available_cents + 1"),
        &mut *conn,
    )
    .unwrap();
    let (ok, text) = app.audit();
    assert!(!ok && text.contains("journal"), "{text}");
}
both_backends!(
    concurrent_withdrawals_never_overdraw,
    super::concurrent_withdrawals_never_overdraw
);

/// A paid order of one unit of `product`, shipped and confirmed; returns its id.
async fn completed_order(app: &TestApp, s: &Shop, buyer: &str, product: i64) -> i64 {
    let o = paid_order(app, buyer, json!([{"product_id": product, "quantity": 1}])).await;
    let id = o["order_id"].as_i64().unwrap();
    let v: Value = app
        .post(
            &format!("/api/v1/orders/{id}/ship"),
            Some(&s.owner_token),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "shipped");
    let v: Value = app
        .post(
            &format!("/api/v1/orders/{id}/confirm"),
            Some(buyer),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "completed");
    id
}

/// `action` (approve or reject) on withdrawal `wid`, as `admin`.
async fn decide(app: &TestApp, admin: &str, wid: i64, action: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/admin/withdrawals/{wid}/{action}"),
        Some(admin),
        &json!({}),
    )
    .await
}

/// Issue 21, item 9: a withdrawal requested before a clawback is not paid
/// while the reversal has left available negative (part of what it holds
/// was taken back). Approval is 409 and changes nothing; the withdrawal
/// stays pending and is paid once new rebates bring available back to zero
/// or more.
async fn approval_refused_while_a_clawback_left_available_negative(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "clawshop").await;
    let p = product(&app, &s, "Kettle", "tea", 10_000, 10).await;
    let (_, buyer) = app.register("clawbuyer").await;
    // 10 %, available as soon as the order completes.
    let rules = json!({"rules": [{"name": "all", "rate_bps": 1_000}], "referral_levels_bps": [], "hold_seconds": 0});
    assert_eq!(put_rules(&app, &admin, rules).await.status(), 200);
    let first = completed_order(&app, &s, &buyer, p).await;
    within_2s("available", || async {
        wallet(&app, &buyer).await["available_cents"] == 1_000
    })
    .await;
    // The withdrawal holds 800 of the 1,000.
    let r = app
        .post(
            "/api/v1/withdrawals",
            Some(&buyer),
            &json!({"amount_cents": 800}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let wid = r.json::<Value>().await.unwrap()["withdrawal_id"]
        .as_i64()
        .unwrap();
    // Refunded afterwards: the reversal takes back all 1,000.
    let v: Value = app
        .post(
            &format!("/api/v1/orders/{first}/refund"),
            Some(&buyer),
            &json!({"reason": "it leaks"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["refund_requested"], true);
    let v: Value = app
        .post(
            &format!("/api/v1/orders/{first}/refund/approve"),
            Some(&s.owner_token),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "refunded");
    within_2s("reversal", || async {
        wallet(&app, &buyer).await["available_cents"] == -800
    })
    .await;
    let held = json!({"pending_cents": 0, "available_cents": -800, "withdrawing_cents": 800, "withdrawn_cents": 0});
    assert_eq!(wallet(&app, &buyer).await, held);

    // Approval is refused and changes nothing.
    let problem = assert_problem(
        decide(&app, &admin, wid, "approve").await,
        409,
        "insufficient_funds",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("negative"),
        "{problem}"
    );
    assert_eq!(wallet(&app, &buyer).await, held);
    let pending: Value = app
        .get("/api/v1/admin/withdrawals?status=pending", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let items = pending["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pending}");
    assert_eq!(items[0]["withdrawal_id"], wid);
    assert_eq!(items[0]["status"], "pending");
    app.assert_audit_clean();

    // A new settled rebate brings available back above zero: now it is paid.
    completed_order(&app, &s, &buyer, p).await;
    within_2s("recovery", || async {
        wallet(&app, &buyer).await["available_cents"] == 200
    })
    .await;
    let v: Value = decide(&app, &admin, wid, "approve")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "paid");
    assert_eq!(
        wallet(&app, &buyer).await,
        json!({"pending_cents": 0, "available_cents": 200, "withdrawing_cents": 0, "withdrawn_cents": 800})
    );
    assert_problem(
        decide(&app, &admin, wid, "reject").await,
        409,
        "invalid_state",
    )
    .await;
    app.assert_audit_clean();
}
both_backends!(
    approval_refused_while_a_clawback_left_available_negative,
    super::approval_refused_while_a_clawback_left_available_negative
);

async fn settlement_catches_up_after_restart(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, Options::default()).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "sshop").await;
    let p = product(&app, &s, "Jam", "food", 5_000, 10).await;
    let (_, buyer) = app.register("sbuyer").await;
    put_rules(&app, &admin, json!({"rules": [{"name": "all", "rate_bps": 200, "min_order_cents": 5_000}], "referral_levels_bps": [], "hold_seconds": 2})).await;
    // Below the minimum: no purchase rebate.
    let small = order(&app, &buyer, json!([{"product_id": p, "quantity": 1}])).await;
    assert_eq!(small.status(), 201);
    let o = paid_order(&app, &buyer, json!([{"product_id": p, "quantity": 2}])).await;
    let id = o["order_id"].as_i64().unwrap();
    within_2s("pending", || async {
        wallet(&app, &buyer).await["pending_cents"] == 200
    })
    .await;
    app.post(
        &format!("/api/v1/orders/{id}/ship"),
        Some(&s.owner_token),
        &json!({}),
    )
    .await;
    app.post(
        &format!("/api/v1/orders/{id}/confirm"),
        Some(&buyer),
        &json!({}),
    )
    .await;
    // Down while the hold ends.
    app.restart_hard_after(std::time::Duration::from_secs(3));
    within_2s("settlement after restart", || async {
        wallet(&app, &buyer).await["available_cents"] == 200
    })
    .await;
    app.assert_audit_clean();
    let _ = notify;
}
both_backends!(
    settlement_catches_up_after_restart,
    super::settlement_catches_up_after_restart
);

/// Runs one SQL statement on the app's database, behind the API's back.
fn exec_sql(app: &TestApp, sql: &str) {
    let url: tandem::core::config::DatabaseUrl = app.database_url().parse().unwrap();
    let (pool, _) = tandem::server::app::migrate(&url).unwrap();
    let mut conn = pool.get().unwrap();
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut *conn).unwrap();
}

/// The rebates of a paid order are computed inside the paid transition's own
/// transaction. When that step cannot run (here: a stored rule set that no
/// longer parses), the payment still commits and the event says so; the
/// rebate consumer retries, and pays exactly once when it can.
async fn rebates_deferred_when_the_inline_step_fails(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "defshop").await;
    let p = product(&app, &s, "Lily", "flowers", 10_000, 10).await;
    let (_, buyer) = app.register("defbuyer").await;
    let rules = json!({"rules": [{"name": "all", "rate_bps": 100}], "referral_levels_bps": [], "hold_seconds": 3600});
    assert_eq!(put_rules(&app, &admin, rules).await.status(), 200);
    // The inline path first: paid and rebated in one commit.
    paid_order(&app, &buyer, json!([{"product_id": p, "quantity": 1}])).await;
    let first = rebates_of(&app, &buyer).await;
    assert_eq!(first.len(), 1, "recorded with the payment: {first:?}");
    // Now break the stored rule set (keeping its text to restore it).
    exec_sql(
        &app,
        "UPDATE rebate_rule_sets SET rules = 'broken:' || rules",
    );
    let o = paid_order(&app, &buyer, json!([{"product_id": p, "quantity": 2}])).await;
    assert_eq!(
        o["status"], "paid",
        "a rebate failure never holds a payment back"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(
        rebates_of(&app, &buyer).await.len(),
        1,
        "nothing recorded while broken"
    );
    assert_eq!(wallet(&app, &buyer).await["pending_cents"], 100);
    // Repaired: the consumer's retry records the deferred rebate, once.
    exec_sql(&app, "UPDATE rebate_rule_sets SET rules = substr(rules, 8)");
    within_2s("the deferred rebate", || async {
        rebates_of(&app, &buyer).await.len() == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let all = rebates_of(&app, &buyer).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let second = all
        .iter()
        .find(|r| r["order_id"] == o["order_id"])
        .expect("the deferred order's rebate");
    assert_eq!(second["amount_cents"], 200);
    assert_eq!(wallet(&app, &buyer).await["pending_cents"], 300);
    app.assert_audit_clean();
}
both_backends!(
    rebates_deferred_when_the_inline_step_fails,
    super::rebates_deferred_when_the_inline_step_fails
);
