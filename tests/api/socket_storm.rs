//! Hostile clients on the WebSocket: 10,000 sockets opened at once and
//! dropped at once (no close handshake), four times. The server takes them
//! all, keeps serving meanwhile, forgets every one of them (its online users
//! back to none), and its memory does not grow from round to round.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::ws::Ws;

const SOCKETS: usize = 10_000;
const USERS: usize = 20;
/// Handshakes in flight at once.
const OPENING_AT_ONCE: usize = 512;

both_backends!(
    ten_thousand_sockets_opened_and_dropped_at_once,
    super::ten_thousand_sockets_opened_and_dropped_at_once
);

/// A number from the server's `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics"))
}

/// The two backends' variants take turns: 20,000 client sockets at once
/// would pass the test process's open-file limit.
static ONE_STORM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Leave to the allocator from the first two rounds of 10,000 held sockets
/// to the fourth. Held figures vary by up to 10 MB from round to round with
/// nothing leaked; a leak of 1 KB per socket adds 20 MB over two rounds.
const GROWTH_ALLOWED_BYTES: f64 = 20.0 * 1024.0 * 1024.0;

async fn ten_thousand_sockets_opened_and_dropped_at_once(backend: Backend) {
    let _turn = ONE_STORM_AT_A_TIME.lock().await;
    // Ours and the server's descriptors are separate; ours must fit 10,000.
    rlimit::increase_nofile_limit(20_000).unwrap();
    let app = TestApp::spawn(backend).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(app.register(&format!("storm_{i}")).await);
    }
    // Resident memory is compared while each round's 10,000 sockets are
    // held: then it is memory in use. After they are dropped it depends on
    // when the allocator hands freed pages back (a CI run saw 80, 55, 172,
    // 173 MB after rounds one to four with nothing leaked). Whatever a
    // socket leaves behind is still resident when the next round is held,
    // so a leak grows the held figure round by round. The first round
    // may leave what the allocator keeps for next time; the fourth must not
    // add to the larger of the first two.
    let mut held_rss = Vec::new();
    for round in 0..4 {
        held_rss.push(storm(&app, &users, round).await);
    }
    assert!(
        held_rss[3] < held_rss[0].max(held_rss[1]) + GROWTH_ALLOWED_BYTES,
        "resident memory while each round's 10,000 sockets were open: {held_rss:?}"
    );
    assert_eq!(app.get("/health", None).await.status(), 200);
    let me: Value = app
        .get("/api/v1/me", Some(&users[0].1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], users[0].0);
}

/// Opens 10,000 sockets, checks the server still serves, drops them all,
/// and waits until the server has forgotten them. Returns the server's
/// resident memory while it held them.
async fn storm(app: &TestApp, users: &[(i64, String)], round: usize) -> f64 {
    let url = app.address.replacen("http://", "ws://", 1);
    let sockets: Vec<_> = futures_util::stream::iter(0..SOCKETS)
        .map(|i| {
            let url = format!("{url}/api/v1/ws?token={}", users[i % USERS].1);
            async move { tokio_tungstenite::connect_async(url).await.map(|(s, _)| s) }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    let failed: Vec<String> = sockets
        .iter()
        .filter_map(|s| s.as_ref().err())
        .map(|e| e.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {SOCKETS} handshakes failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(metric(app, "tandem_online_users").await, USERS as f64);
    // The server keeps serving while it holds them: a message goes through.
    let mut a = Ws::connect(app, &users[0].1).await;
    let client_id = format!("storm{round}");
    a.send(json!({"type": "send", "client_id": client_id, "to_user_id": users[1].0, "body": "still here"}))
        .await;
    assert_eq!(a.recv_type("ack").await["client_id"], client_id);
    drop(a);
    let held_rss = metric(app, "process_resident_memory_bytes").await;

    drop(sockets); // every connection reset at once, no close frames
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(app, "tandem_online_users").await > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sockets outlived their connections"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    held_rss
}
