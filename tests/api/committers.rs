//! Several group-commit committers (issue 15): a concurrent mix of orders,
//! payments, cancellations, refunds, completions, reviews, rebates and
//! withdrawals on shared wallets and SKUs never deadlocks, never answers 5xx,
//! and leaves every invariant standing: stock conserved, each rebate once,
//! the journal and wallets in agreement.
//!
//! The mix is random from a seed (printed; `TANDEM_TEST_SEED` replays one).

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};
use crate::orders::{notify, product, shop, Shop};
use crate::rebates::{invite_code, put_rules, register_invited};

const BUYERS: usize = 32;
const ORDERS_PER_BUYER: usize = 8;
/// Stock of each SKU; the last one is short, so some orders find none.
const STOCKS: [i64; 3] = [1_000, 1_000, 30];

/// A small deterministic generator (xorshift), so a failing mix can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    std::env::var("TANDEM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

/// POSTs and returns the status and body; a 5xx fails the test at once.
async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, Some(token), &body).await;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status < 500, "{path} answered {status}: {v}");
    (status, v)
}

/// One buyer's run: orders of random SKUs, then a random fate for each.
async fn buyer(app: &TestApp, shop: &Shop, products: &[i64], token: String, mut rng: Rng) {
    for n in 0..ORDERS_PER_BUYER {
        // Several SKUs in a random order: the releases of a cancelled or
        // refunded order then touch them in that order.
        let mut items = Vec::new();
        let first = rng.below(products.len() as u64) as usize;
        for k in 0..products.len() {
            let p = products[(first + products.len() - k) % products.len()];
            if k == 0 || rng.below(3) > 0 {
                items.push(json!({"product_id": p, "quantity": 1 + rng.below(2)}));
            }
        }
        let r = app
            .client
            .post(app.url("/api/v1/orders"))
            .bearer_auth(&token)
            .header("idempotency-key", format!("mix-{n}"))
            .json(&json!({"items": items}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let o: Value = r.json().await.unwrap();
        if status == 409 {
            assert_eq!(o["code"], "out_of_stock", "{o}");
            continue;
        }
        assert_eq!(status, 201, "{o}");
        let id = o["order_id"].as_i64().unwrap();
        fate(app, shop, &token, id, rng.below(5)).await;
    }
}

async fn fate(app: &TestApp, shop: &Shop, token: &str, id: i64, pick: u64) {
    let at = |action: &str| format!("/api/v1/orders/{id}/{action}");
    if pick == 0 {
        let (s, v) = post(app, &at("cancel"), token, json!({})).await;
        assert_eq!(s, 200, "{v}");
        return;
    }
    let (s, p) = post(app, &at("pay"), token, json!({})).await;
    assert!(s == 200 || s == 201, "{p}");
    let r = notify(
        app,
        &json!({"payment_id": p["payment_id"], "order_id": id,
        "amount_cents": p["amount_cents"], "status": "succeeded"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    match pick {
        1 => {
            let (s, v) = post(app, &at("refund"), token, json!({"reason": "mix"})).await;
            assert_eq!(s, 200, "{v}");
            let (s, v) = post(app, &at("refund/approve"), &shop.owner_token, json!({})).await;
            assert_eq!(s, 200, "{v}");
        }
        2 | 3 => {
            let (s, v) = post(app, &at("ship"), &shop.owner_token, json!({})).await;
            assert_eq!(s, 200, "{v}");
            let (s, v) = post(app, &at("confirm"), token, json!({})).await;
            assert_eq!(s, 200, "{v}");
            if pick == 3 {
                let review = json!({"rating": 4, "body": "fine"});
                let (s, v) = post(app, &at("review"), token, review).await;
                assert_eq!(s, 201, "{v}");
            }
        }
        _ => {} // Stays paid.
    }
}

/// A referrer withdrawing now and then while commissions move their wallet;
/// the admin approves some (refused while a clawback left it negative).
async fn withdrawer(app: &TestApp, admin: &str, token: String, mut rng: Rng) {
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(50 + rng.below(100))).await;
        let amount = 1 + rng.below(300);
        let (s, w) = post(
            app,
            "/api/v1/withdrawals",
            &token,
            json!({"amount_cents": amount}),
        )
        .await;
        match s {
            201 if rng.below(2) == 0 => {
                let wid = w["withdrawal_id"].as_i64().unwrap();
                let path = format!("/api/v1/admin/withdrawals/{wid}/approve");
                let (s, v) = post(app, &path, admin, json!({})).await;
                assert!(s == 200 || s == 409, "{v}");
            }
            201 => {}
            _ => assert_eq!(w["code"], "insufficient_funds", "{w}"),
        }
    }
}

fn deadlocks(metrics: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("tandem_db_conflicts_total{kind=\"deadlock\"} "))
        .and_then(|n| n.parse().ok())
        .expect("the deadlock counter is exported")
}

async fn a_concurrent_mix_on_shared_wallets_and_skus_holds(backend: Backend) {
    let seed = seed();
    eprintln!("committers mix: TANDEM_TEST_SEED={seed}");
    let opts = Options {
        extra_env: vec![("TANDEM_COMMITTERS".into(), "4".into())],
        ..Options::default()
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let admin = app.admin_token().await;
    let s = shop(&app, "mixshop").await;
    let mut products = Vec::new();
    for (i, stock) in STOCKS.iter().enumerate() {
        products.push(product(&app, &s, &format!("sku {i}"), "tea", 1_000, *stock).await);
    }
    // root invites r1 invites r2, who invites every buyer: three wallets
    // every paid order moves, besides the buyer's own.
    let (_, root) = app.register("mixroot").await;
    let (_, r1) = register_invited(&app, "mixr1", &invite_code(&app, &root).await).await;
    let (_, r2) = register_invited(&app, "mixr2", &invite_code(&app, &r1).await).await;
    let code = invite_code(&app, &r2).await;
    let rules = json!({"rules": [{"name": "all", "rate_bps": 1_000}],
        "referral_levels_bps": [1_000, 500, 200], "hold_seconds": 0});
    assert_eq!(put_rules(&app, &admin, rules).await.status(), 200);
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        buyers.push(
            register_invited(&app, &format!("mixbuyer{i}"), &code)
                .await
                .1,
        );
    }

    let mut rng = Rng(seed);
    let mut runs = Vec::new();
    for token in buyers {
        let sub = Rng(rng.below(u64::MAX) | 1);
        runs.push(Box::pin(buyer(&app, &s, &products, token, sub))
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>);
    }
    for token in [root, r1, r2] {
        let sub = Rng(rng.below(u64::MAX) | 1);
        runs.push(Box::pin(withdrawer(&app, &admin, token, sub)));
    }
    futures_util::future::join_all(runs).await;

    // Rebates follow their orders' events; wait until none is left to move.
    let unsettled = "SELECT COUNT(*) AS n FROM rebates r JOIN orders o ON o.id = r.order_id \
        WHERE (o.status = 'refunded' AND r.status IN ('pending', 'available')) \
        OR (o.status = 'completed' AND r.status = 'pending')";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.sql_count(unsettled) > 0 {
        assert!(std::time::Instant::now() < deadline, "rebates settle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(
        deadlocks(&metrics),
        0,
        "no deadlock under several committers"
    );
    for (p, initial) in products.iter().zip(STOCKS) {
        let held = app.sql_count(&format!(
            "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) AS n FROM order_items i \
             JOIN orders o ON o.id = i.order_id WHERE i.product_id = {p} \
             AND o.status NOT IN ('cancelled', 'refunded')"
        ));
        let left = app.sql_count(&format!("SELECT stock AS n FROM products WHERE id = {p}"));
        assert_eq!(left + held, initial, "stock of {p} is conserved");
        assert!(left >= 0);
    }
    let twice = "SELECT COUNT(*) AS n FROM (SELECT order_id, user_id, kind FROM rebates \
        GROUP BY order_id, user_id, kind HAVING COUNT(*) > 1) d";
    assert_eq!(app.sql_count(twice), 0, "no rebate recorded twice");
    let paid = app.sql_count(
        "SELECT COUNT(*) AS n FROM orders WHERE status IN ('paid', 'shipped', 'completed', 'refunded')",
    );
    let records = app.sql_count("SELECT COUNT(*) AS n FROM rebates");
    assert_eq!(
        records,
        paid * 4,
        "the buyer and three levels, per paid order"
    );
    let reviews = app.sql_count("SELECT COUNT(*) AS n FROM reviews");
    let counted = app.sql_count("SELECT review_count AS n FROM merchants");
    assert_eq!(reviews, counted, "the merchant counts every review once");
    app.assert_audit_clean();
}
both_backends!(
    a_concurrent_mix_on_shared_wallets_and_skus_holds,
    super::a_concurrent_mix_on_shared_wallets_and_skus_holds
);
