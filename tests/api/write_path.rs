//! Defects of the write path (issue 21): each test failed before its fix.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::community::{animal, claim, pay};
use crate::helpers::{assert_problem, Backend, Options, TestApp};
use crate::orders::{notify, order, paid_order, product, shop, stock};
use crate::ws::Ws;

async fn notifications(app: &TestApp, token: &str) -> Vec<Value> {
    let v: Value = app
        .get("/api/v1/notifications?limit=200", Some(token))
        .await
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

fn count_kind(list: &[Value], kind: &str, order_id: i64) -> usize {
    list.iter()
        .filter(|n| n["kind"] == kind && n["data"]["order_id"].as_i64() == Some(order_id))
        .count()
}

/// Waits up to `secs` for `check`; panics naming `what` if it never holds.
async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Item 1: the owner is buyer, gift recipient or claimer of their own shop's
/// order: the payment goes through, and each kind of notice arrives once.
async fn an_owner_buying_from_their_own_shop_can_pay(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "selfbuyer").await;
    let p = product(&app, &s, "Own tea", "tea", 1_200, 10).await;

    let o = paid_order(
        &app,
        &s.owner_token,
        json!([{"product_id": p, "quantity": 1}]),
    )
    .await;
    assert_eq!(o["status"], "paid");
    let id = o["order_id"].as_i64().unwrap();
    let mine = notifications(&app, &s.owner_token).await;
    assert_eq!(count_kind(&mine, "order.paid", id), 1, "{mine:?}");

    // A gift to the shop's owner: told of the sale and of the gift.
    let (_, t) = app.register("giftgiver").await;
    let r = app
        .post(
            "/api/v1/orders",
            Some(&t),
            &json!({"items": [{"product_id": p, "quantity": 1}], "gift_to_user_id": s.owner_id}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let g: Value = r.json().await.unwrap();
    let gid = g["order_id"].as_i64().unwrap();
    let pay_r: Value = app
        .post(&format!("/api/v1/orders/{gid}/pay"), Some(&t), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let r = notify(&app, &json!({"payment_id": pay_r["payment_id"], "order_id": gid, "amount_cents": 1_200, "status": "succeeded"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "success");
    let mine = notifications(&app, &s.owner_token).await;
    assert_eq!(count_kind(&mine, "order.paid", gid), 1, "{mine:?}");
    assert_eq!(count_kind(&mine, "gift.received", gid), 1, "{mine:?}");

    // The owner claims their own animal.
    let a = animal(&app, &s, "Own sheep", 900, 30).await;
    let r = claim(&app, &s.owner_token, a).await;
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    pay(&app, &s.owner_token, &c).await;
    let cid = c["order_id"].as_i64().unwrap();
    let v: Value = app
        .get(&format!("/api/v1/orders/{cid}"), Some(&s.owner_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "paid");
    app.assert_audit_clean();
}
both_backends!(
    an_owner_buying_from_their_own_shop_can_pay,
    super::an_owner_buying_from_their_own_shop_can_pay
);

fn slow_inventory_loads(ms: u64) -> Options {
    Options {
        extra_env: vec![(
            "TANDEM_FAULT_INVENTORY_LOAD_DELAY_MS".into(),
            ms.to_string(),
        )],
        ..Default::default()
    }
}

/// Item 3: a stock release that commits while the SKU's actor is loading
/// reaches the actor (it is registered before it reads).
async fn a_release_during_an_inventory_load_is_not_lost(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, slow_inventory_loads(1_500)).await;
    let s = shop(&app, "slowload").await;
    let p = product(&app, &s, "Last lamb", "farm", 500, 1).await;
    let (_, a) = app.register("firstbuyer").await;
    let (_, b) = app.register("secondbuyer").await;
    let r = order(&app, &a, json!([{"product_id": p, "quantity": 1}])).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    let first_id = first["order_id"].as_i64().unwrap();
    // After a restart no inventory actor is loaded.
    app.restart_hard();
    // The owner's edit starts the load (it reads stock 0: A holds the unit) ...
    let (rename, nothing) = (json!({"name": "The last lamb"}), json!({}));
    let (edit_path, cancel_path) = (
        format!("/api/v1/products/{p}"),
        format!("/api/v1/orders/{first_id}/cancel"),
    );
    let edit = app.patch(&edit_path, Some(&s.owner_token), &rename);
    let cancel = async {
        // ... and while it loads, A's cancel commits the unit back.
        tokio::time::sleep(Duration::from_millis(400)).await;
        app.post(&cancel_path, Some(&a), &nothing).await
    };
    let (edited, cancelled) = tokio::join!(edit, cancel);
    assert_eq!(edited.status(), 200);
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        stock(&app, p).await,
        1,
        "the release reached the loaded actor"
    );
    let r = order(&app, &b, json!([{"product_id": p, "quantity": 1}])).await;
    assert_eq!(r.status(), 201, "the released unit is for sale again");
    assert_eq!(stock(&app, p).await, 0);
    let (_, c) = app.register("thirdbuyer").await;
    let r = order(&app, &c, json!([{"product_id": p, "quantity": 1}])).await;
    assert_problem(r, 409, "out_of_stock").await;
}
both_backends!(
    a_release_during_an_inventory_load_is_not_lost,
    super::a_release_during_an_inventory_load_is_not_lost
);

/// Item 6: a client that goes away while its order is half reserved gets
/// nothing, and takes nothing: the units it reserved are for sale again.
async fn a_dropped_order_request_gives_its_reservations_back(backend: Backend) {
    let app = TestApp::spawn_with(backend, slow_inventory_loads(1_500)).await;
    let s = shop(&app, "dropper").await;
    let first = product(&app, &s, "Apricot", "fruit", 100, 1).await;
    let second = product(&app, &s, "Banana", "fruit", 100, 5).await;
    // Load the first SKU ahead (an edit goes through its actor).
    let r = app
        .patch(
            &format!("/api/v1/products/{first}"),
            Some(&s.owner_token),
            &json!({"name": "Apricots"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, impatient) = app.register("impatient").await;
    // The first unit is reserved at once; the second SKU loads for 1.5 s,
    // and the client resets the connection after 0.5 s.
    let body = json!({"items": [{"product_id": first, "quantity": 1}, {"product_id": second, "quantity": 1}]}).to_string();
    let request = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {impatient}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Linger 0: closing sends RST, a connection reset.
    // Deprecated because a non-zero linger blocks the dropping thread; zero
    // does not block.
    #[allow(deprecated)]
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop(socket);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let mine: Value = app
        .get("/api/v1/orders", Some(&impatient))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        mine["items"].as_array().unwrap().len(),
        0,
        "no order was made"
    );
    assert_eq!(stock(&app, first).await, 1, "the reservation came back");
    let (_, patient) = app.register("patient").await;
    let r = order(
        &app,
        &patient,
        json!([{"product_id": first, "quantity": 1}]),
    )
    .await;
    assert_eq!(r.status(), 201, "the unit can be bought");
}
both_backends!(
    a_dropped_order_request_gives_its_reservations_back,
    super::a_dropped_order_request_gives_its_reservations_back
);

/// Item 4: a message the database could not store (NUL) fails alone: the
/// edge refuses it, and the others of its batch are stored.
async fn a_nul_in_one_chat_message_fails_only_that_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("nul_alice").await;
    let (bob, bt) = app.register("nul_bob").await;
    let mut a = Ws::connect(&app, &at).await;
    let mut b = Ws::connect(&app, &bt).await;
    a.send(json!({"type": "send", "client_id": "bad", "to_user_id": bob, "body": "hi\u{0000}"}))
        .await;
    b.send(json!({"type": "send", "client_id": "good", "to_user_id": alice, "body": "hello"}))
        .await;
    let e = a.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["client_id"].as_str()),
        (Some("invalid_input"), Some("bad"))
    );
    let ack = b.recv_type("ack").await;
    assert_eq!(ack["client_id"], "good");
    // Line breaks and tabs are fine; the sender can go on.
    a.send(json!({"type": "send", "client_id": "ok", "to_user_id": bob, "body": "two\nlines\tand a tab"}))
        .await;
    let ack = a.recv_type("ack").await;
    assert_eq!(ack["client_id"], "ok");
    let conv = ack["conversation_id"].as_i64().unwrap();
    let history: Value = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    let bodies: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert!(!bodies.iter().any(|b| b.contains('\u{0}')), "{bodies:?}");
    assert!(
        bodies.contains(&"hello") && bodies.contains(&"two\nlines\tand a tab"),
        "{bodies:?}"
    );
}
both_backends!(
    a_nul_in_one_chat_message_fails_only_that_message,
    super::a_nul_in_one_chat_message_fails_only_that_message
);

/// Item 8: units sold by another process (here: taken in the database behind
/// this node's back) make an order 409 `out_of_stock`, not 500.
async fn a_shortfall_seen_only_by_the_database_is_out_of_stock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "twonodes").await;
    let p = product(&app, &s, "Cherry", "fruit", 100, 5).await;
    let (_, t) = app.register("nodebuyer").await;
    let r = order(&app, &t, json!([{"product_id": p, "quantity": 1}])).await;
    assert_eq!(r.status(), 201);
    // Another node sold the other four.
    assert_eq!(
        app.sql(&format!("UPDATE products SET stock = 0 WHERE id = {p}")),
        1
    );
    let r = order(&app, &t, json!([{"product_id": p, "quantity": 1}])).await;
    assert_problem(r, 409, "out_of_stock").await;
    let orders = app.sql_count(&format!(
        "SELECT COUNT(*) AS n FROM order_items WHERE product_id = {p}"
    ));
    assert_eq!(orders, 1, "nothing stored for the refused order");
}
both_backends!(
    a_shortfall_seen_only_by_the_database_is_out_of_stock,
    super::a_shortfall_seen_only_by_the_database_is_out_of_stock
);

/// Item 7: an event whose effect fails every time is parked with its error
/// (visible to admins and in /metrics), the outbox drains past it, and it is
/// applied once the cause is repaired.
async fn a_poisoned_event_is_parked_and_the_rest_flow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let rules = json!({"rules": [{"name": "base", "rate_bps": 1000}], "referral_levels_bps": [], "hold_seconds": 0});
    let r = app
        .client
        .put(app.url("/api/v1/admin/rebate-rules"))
        .bearer_auth(&admin)
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let good = app.sql_count("SELECT COUNT(*) AS n FROM rebate_rule_sets");
    assert_eq!(good, 1);
    // The stored rule set no longer parses: every reconcile of a paid order fails.
    assert_eq!(
        app.sql("UPDATE rebate_rule_sets SET rules = 'x' || rules"),
        1
    );
    let s = shop(&app, "poison").await;
    let p = product(&app, &s, "Durian", "fruit", 10_000, 5).await;
    let (_, t) = app.register("poisoned").await;
    let o = paid_order(&app, &t, json!([{"product_id": p, "quantity": 1}])).await;
    assert_eq!(o["status"], "paid");
    let order_id = o["order_id"].as_i64().unwrap();

    let parked = || async {
        let v: Value = app
            .get("/api/v1/admin/dead-letters", Some(&admin))
            .await
            .json()
            .await
            .unwrap();
        v["items"].as_array().unwrap().clone()
    };
    eventually("the failing event is parked", 15, || async {
        !parked().await.is_empty()
    })
    .await;
    let list = parked().await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["consumer"], "rebates");
    assert_eq!(list[0]["kind"], "order.paid");
    assert_eq!(list[0]["payload"]["order_id"].as_i64(), Some(order_id));
    assert!(list[0]["attempts"].as_i64().unwrap() >= 3);
    assert!(!list[0]["error"].as_str().unwrap().is_empty());
    let (_, member) = app.register("nosy").await;
    assert_problem(
        app.get("/api/v1/admin/dead-letters", Some(&member)).await,
        403,
        "forbidden",
    )
    .await;
    eventually("the metric counts it", 5, || async {
        let m = app.get("/metrics", None).await.text().await.unwrap();
        m.lines().any(|l| l == "tandem_dead_letters 1")
    })
    .await;
    // Later events are delivered and the outbox drains past the bad one.
    let (_, follower) = app.register("follower").await;
    let buyer_id = o["buyer_id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/users/{buyer_id}/follow"),
            Some(&follower),
            &json!({}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    eventually("the follow is notified", 10, || async {
        notifications(&app, &t)
            .await
            .iter()
            .any(|n| n["kind"] == "user.followed")
    })
    .await;
    eventually("the outbox drains", 10, || async {
        app.sql_count("SELECT COUNT(*) AS n FROM outbox WHERE published_at_ms IS NULL") == 0
    })
    .await;
    // Repaired: the retrier applies the parked event (backoff 1-2 s) and
    // forgets it; the rebate exists once.
    assert_eq!(
        app.sql("UPDATE rebate_rule_sets SET rules = substr(rules, 2)"),
        1
    );
    eventually("the parked event is applied", 20, || async {
        parked().await.is_empty()
    })
    .await;
    let rebates: Value = app
        .get("/api/v1/rebates", Some(&t))
        .await
        .json()
        .await
        .unwrap();
    let items = rebates["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["amount_cents"], 1_000);
    eventually("the metric is back to zero", 5, || async {
        let m = app.get("/metrics", None).await.text().await.unwrap();
        m.lines().any(|l| l == "tandem_dead_letters 0")
    })
    .await;
    app.assert_audit_clean();
}
both_backends!(
    a_poisoned_event_is_parked_and_the_rest_flow,
    super::a_poisoned_event_is_parked_and_the_rest_flow
);

/// The relay reads recent ids on most rounds (issue 15: a scan from the
/// lowest id walked every row published since the last vacuum). An event
/// that commits long after its id was made, or one left from before a
/// restart, is still published: by the sweep, within seconds. The event
/// reaches its consumer too.
async fn an_event_with_an_old_id_is_still_published(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (user, token) = app.register("late_event").await;
    // Busy rounds first, so the relay is past its first sweep.
    for i in 0..3 {
        app.register(&format!("late_other{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = tandem::core::ids::first_id_at(tandem::core::ids::now_ms() - 60_000);
    let payload = json!({"notify": [{"user_id": user, "kind": "user.late", "data": {"x": 1}}]});
    app.sql(&format!(
        "INSERT INTO outbox (id, kind, payload, created_at_ms) VALUES ({id}, 'user.late', '{payload}', 0)"
    ));
    eventually("the late event is published", 6, || async {
        app.sql_count(&format!("SELECT COUNT(*) AS n FROM outbox WHERE id = {id}")) == 0
    })
    .await;
    eventually("its notification is stored", 5, || async {
        notifications(&app, &token)
            .await
            .iter()
            .any(|n| n["kind"] == "user.late")
    })
    .await;
}
both_backends!(
    an_event_with_an_old_id_is_still_published,
    super::an_event_with_an_old_id_is_still_published
);

/// Issue 15: on PostgreSQL the tables every order and chat message write
/// carry no foreign keys (migration 000017); `tandem audit` checks those references instead.
/// A paid order with its rebate is clean; a row naming a user, an order or a
/// product that does not exist, written behind the server's back, is named
/// by the audit, one line per broken reference.
async fn the_audit_names_references_that_point_nowhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = shop(&app, "refshop").await;
    let p = product(&app, &s, "Ref tea", "tea", 700, 10).await;
    let (_, buyer) = app.register("refbuyer").await;
    let o = paid_order(&app, &buyer, json!([{"product_id": p, "quantity": 1}])).await;
    let id = o["order_id"].as_i64().unwrap();
    app.assert_audit_clean();

    let missing = 9_000_000_000_i64;
    if backend == Backend::Postgres {
        let kept = app.sql_count(
            "SELECT COUNT(*) AS n FROM pg_constraint WHERE contype = 'f' \
             AND conrelid::regclass::text IN ('orders', 'order_items', 'payments', \
             'rebates', 'ledger_entries', 'notifications', 'messages') \
             AND conname <> 'orders_gift_to_user_id_fkey'",
        );
        assert_eq!(
            kept, 0,
            "the write path's tables keep no foreign key but the gift's"
        );
        let wallets = app.sql_count(
            "SELECT COUNT(*) AS n FROM pg_constraint WHERE conname = 'wallets_user_id_fkey'",
        );
        assert_eq!(wallets, 1, "cold tables keep theirs");
    }
    app.sql_unchecked(&format!(
        "INSERT INTO notifications (id, user_id, kind, data, event_id, read, created_at_ms) \
         VALUES ({missing}, {missing}, 'test', '{{}}', {missing}, FALSE, 1)"
    ));
    app.sql_unchecked(&format!(
        "INSERT INTO order_items (order_id, product_id, quantity, price_cents) \
         VALUES ({id}, {}, 1, 1)",
        missing + 1
    ));
    let (ok, text) = app.audit();
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "notifications.user_id: 1 row(s) name no users row (the smallest: {missing})"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "order_items.product_id: 1 row(s) name no products row (the smallest: {})",
            missing + 1
        )),
        "{text}"
    );
    assert_eq!(text.matches("mismatch:").count(), 2, "{text}");
}
both_backends!(
    the_audit_names_references_that_point_nowhere,
    super::the_audit_names_references_that_point_nowhere
);

/// Issue 15: committers and chat writers keep their connection between
/// batches (`storage::held`), untested. When the database drops it (a
/// restart, a killed backend), the next batch fails at BEGIN and runs again
/// on a connection the pool tests: the order is created and the message
/// acknowledged, no 503 and no "could not be stored".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_whose_kept_connection_died_go_on_with_a_fresh_one() {
    if !crate::helpers::postgres_configured() {
        eprintln!("TANDEM_TEST_DATABASE_URL not set: kept-connection test not run");
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let s = shop(&app, "keptshop").await;
    let p = product(&app, &s, "Kept tea", "tea", 500, 50).await;
    let (_, at) = app.register("kept_alice").await;
    let (bob, _) = app.register("kept_bob").await;
    let mut a = Ws::connect(&app, &at).await;
    let items = json!([{"product_id": p, "quantity": 1}]);
    for round in 0..3 {
        // Every writer has just committed on its kept connection ...
        assert_eq!(order(&app, &at, items.clone()).await.status(), 201);
        let sent = format!("before-{round}");
        a.send(json!({"type": "send", "client_id": sent, "to_user_id": bob, "body": "hi"}))
            .await;
        assert_eq!(a.recv_type("ack").await["client_id"], sent.as_str());
        // ... which the database now drops, with every other of the server's.
        let killed = app.sql_count(
            "SELECT COUNT(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
        );
        assert!(killed > 0, "no server connection to kill");
        let r = order(&app, &at, items.clone()).await;
        let status = r.status();
        assert_eq!(status, 201, "{}", r.text().await.unwrap());
        let sent = format!("after-{round}");
        a.send(json!({"type": "send", "client_id": sent, "to_user_id": bob, "body": "hi"}))
            .await;
        let ack = a.recv_type("ack").await;
        assert_eq!(ack["client_id"], sent.as_str(), "{ack}");
    }
    assert!(
        app.server_log()
            .contains("kept connection failed BEGIN; running the batch on a pooled one"),
        "the committer's retry did not run"
    );
    app.assert_audit_clean();
}
