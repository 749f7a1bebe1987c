//! Several nodes on one PostgreSQL, Redis and RabbitMQ (CONTRACT v2,
//! "Several nodes"; issue 17). PostgreSQL only: a cluster shares a server.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{assert_problem, postgres_configured, Backend, Options, TestApp};
use crate::orders::{product, shop};
use crate::ws::Ws;

macro_rules! postgres_only {
    () => {
        if !postgres_configured() {
            eprintln!("TANDEM_TEST_DATABASE_URL not set: cluster test not run");
            return;
        }
    };
}

/// Nodes with small pools: three of them (and another test's) stay well
/// inside PostgreSQL's 100 connections.
fn small(mut extra: Vec<(String, String)>) -> Options {
    extra.push(("TANDEM_DB_POOL_SIZE".into(), "6".into()));
    extra.push(("TANDEM_DB_THREADS".into(), "2".into()));
    extra.push(("TANDEM_COMMITTERS".into(), "2".into()));
    Options {
        extra_env: extra,
        ..Options::default()
    }
}

/// Lets the nodes hear where new sockets are (a few ms over the node link):
/// a frame sent before that is not pushed there, and the client would sync.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn group(app: &TestApp, token: &str, members: &[i64]) -> i64 {
    let r = app
        .post(
            "/api/v1/conversations",
            Some(token),
            &json!({"member_ids": members, "title": "across"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["conversation_id"]
        .as_i64()
        .unwrap()
}

/// Frames, presence, typing and bans cross nodes; node ids are unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_reach_sockets_on_every_node() {
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let b = a.join(1);
    let c = a.join(2);
    // A second node 1 refuses to start, and says why.
    let (status, log) = a.join_refused(1);
    assert!(!status.success(), "{log}");
    assert!(log.contains("TANDEM_NODE_ID 1 is held"), "{log}");

    let (_, at) = a.register("alice").await;
    let (bob, bt) = b.register("bob").await;
    let (carol, ct) = c.register("carol").await;
    let mut wa = Ws::connect(&a, &at).await;
    let mut wb = Ws::connect(&b, &bt).await;
    let mut wc = Ws::connect(&c, &ct).await;
    settle().await;

    // Direct: sent on A, delivered on B.
    wa.send(json!({"type": "send", "client_id": "d1", "to_user_id": bob, "body": "hi from A"}))
        .await;
    let ack = wa.recv_type("ack").await;
    let m = wb.recv_type("message").await;
    assert_eq!(
        (m["body"].as_str(), m["seq"].as_i64(), &m["conversation_id"]),
        (Some("hi from A"), Some(1), &ack["conversation_id"])
    );
    // Typing crosses nodes too.
    let direct = ack["conversation_id"].as_i64().unwrap();
    wb.send(json!({"type": "typing", "conversation_id": direct}))
        .await;
    assert_eq!(
        wa.recv_type("typing").await,
        json!({"type": "typing", "conversation_id": direct, "user_id": bob})
    );
    // Presence: a second socket of bob's on C, opened and closed, changes
    // nothing for alice: he is online on B all along.
    let wb2 = Ws::connect(&c, &bt).await;
    settle().await;
    wb2.close().await;
    settle().await;
    assert!(wa.quiet_for(500).await, "bob is still online on B");

    // Group: bob sends on B, alice (A) and carol (C) get every message once,
    // in seq order.
    let g = group(&a, &at, &[bob, carol]).await;
    for i in 1..=5 {
        wb.send(json!({"type": "send", "client_id": format!("g{i}"), "conversation_id": g, "body": format!("m{i}")}))
            .await;
    }
    for ws in [&mut wa, &mut wc] {
        let mut seqs = Vec::new();
        while seqs.len() < 5 {
            let m = ws.recv_type("message").await;
            if m["conversation_id"] == g {
                seqs.push(m["seq"].as_i64().unwrap());
            }
        }
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert!(ws.quiet_for(500).await, "no duplicate");
    }

    // Bob's last socket closes (on B): alice (on A) hears he is offline.
    wb.close().await;
    let p = loop {
        let f = wa.recv_type("presence").await;
        if f["user_id"] == bob {
            break f;
        }
    };
    assert_eq!(p["online"], false);

    // A ban made on A closes carol's socket on C with 1008 `banned`.
    let admin = a.admin_token().await;
    let r = a
        .post(
            &format!("/api/v1/admin/users/{carol}/ban"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        wc.close_frame_within(10).await,
        Some((1008, "banned".to_owned()))
    );
    // A logout on B revokes bob's token on every node.
    let r = b
        .client
        .post(b.url("/api/v1/auth/logout"))
        .bearer_auth(&bt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(a.get("/api/v1/me", Some(&bt)).await, 401, "unauthorized").await;
}

/// The timers' node dies; another node expires a due unpaid order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fail_over_when_their_node_dies() {
    postgres_only!();
    let opts = small(vec![("TANDEM_PAY_TIMEOUT_SECS".into(), "2".into())]);
    // A starts first and leads.
    let mut a = TestApp::spawn_with(Backend::Postgres, opts).await;
    let b = a.join(1);
    let s = shop(&b, "timershop").await;
    let p = product(&b, &s, "Pear", "fruit", 300, 5).await;
    let (_, t) = b.register("latepayer").await;
    let r = b
        .post(
            "/api/v1/orders",
            Some(&t),
            &json!({"items": [{"product_id": p, "quantity": 2}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["order_id"]
        .as_i64()
        .unwrap();
    // One leader, shown in /metrics.
    let leads = |text: String| text.lines().any(|l| l == "tandem_cluster_leader 1");
    assert!(leads(a.get("/metrics", None).await.text().await.unwrap()));
    assert!(!leads(b.get("/metrics", None).await.text().await.unwrap()));
    // The leader dies with its locks; B takes over the timers.
    let killed_at = std::time::Instant::now();
    a.kill_hard();
    let deadline = std::time::Instant::now() + Duration::from_secs(2 + 5);
    loop {
        let o: Value = b
            .get(&format!("/api/v1/orders/{id}"), Some(&t))
            .await
            .json()
            .await
            .unwrap();
        if o["status"] == "cancelled" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not expired {:?} after the leader died",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(leads(b.get("/metrics", None).await.text().await.unwrap()));
    // Its stock came back.
    let v: Value = b
        .get(&format!("/api/v1/products/{p}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stock"], 5);
}

/// A flash sale spread over three nodes sells exactly its stock, with no 5xx,
/// and payments made on one node are applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_over_three_nodes_sells_exactly_its_stock() {
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let nodes = [&a, &a.join(1), &a.join(2)];
    let s = shop(&a, "flashshop").await;
    let p = product(&a, &s, "Lychee", "fruit", 1_000, 20).await;
    let mut buyers = Vec::new();
    for i in 0..60 {
        buyers.push(nodes[i % 3].register(&format!("racer{i}")).await.1);
    }
    let mut tasks = Vec::new();
    for (i, t) in buyers.iter().enumerate() {
        let node = nodes[i % 3];
        let (url, client, t) = (node.url("/api/v1/orders"), node.client.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(t)
                .json(&json!({"items": [{"product_id": p, "quantity": 1}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            201 => created += 1,
            409 => {}
            other => panic!("a racer got {other}"),
        }
    }
    assert_eq!(created, 20, "exactly the stock sold");
    assert_eq!(
        a.sql_count(&format!("SELECT COALESCE(SUM(quantity), 0)::bigint AS n FROM order_items WHERE product_id = {p}")),
        20
    );
    // Every node shows what is left.
    for node in nodes {
        let v: Value = node
            .get(&format!("/api/v1/products/{p}"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["stock"], 0, "{}", node.address);
    }
    a.assert_audit_clean();
}

/// A client whose node dies reconnects to another node and syncs: every
/// acknowledged message once, in order, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_node_dies_syncs_on_another() {
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let mut b = a.join(1);
    let (_, at) = a.register("sender").await;
    let (bob, bt) = a.register("reader").await;
    let mut wa = Ws::connect(&a, &at).await;
    let mut wb = Ws::connect(&b, &bt).await;
    settle().await;
    let mut conv = 0;
    // Three messages while bob is on B: he sees them live.
    for i in 1..=3 {
        wa.send(json!({"type": "send", "client_id": format!("c{i}"), "to_user_id": bob, "body": format!("m{i}")}))
            .await;
        conv = wa.recv_type("ack").await["conversation_id"]
            .as_i64()
            .unwrap();
    }
    let mut last_seen = 0;
    while last_seen < 3 {
        last_seen = wb.recv_type("message").await["seq"].as_i64().unwrap();
    }
    // B dies; three more are acknowledged while bob has no socket.
    b.kill_hard();
    for i in 4..=6 {
        wa.send(json!({"type": "send", "client_id": format!("c{i}"), "to_user_id": bob, "body": format!("m{i}")}))
            .await;
        assert_eq!(wa.recv_type("ack").await["seq"], i);
    }
    // Bob reconnects to A and syncs from what he saw.
    let mut again = Ws::connect(&a, &bt).await;
    again
        .send(json!({"type": "sync", "conversation_id": conv, "after_seq": last_seen}))
        .await;
    let mut got = Vec::new();
    loop {
        let f = again.recv().await;
        match f["type"].as_str() {
            Some("message") if f["conversation_id"] == conv => got.push((
                f["seq"].as_i64().unwrap(),
                f["body"].as_str().unwrap().to_owned(),
            )),
            Some("synced") => {
                assert_eq!(f["last_seq"], 6);
                break;
            }
            _ => {}
        }
    }
    let want: Vec<(i64, String)> = (4..=6).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(got, want, "each missed message once, in order");
    // And live again, on the new node.
    wa.send(json!({"type": "send", "client_id": "c7", "to_user_id": bob, "body": "m7"}))
        .await;
    assert_eq!(again.recv_type("message").await["seq"], 7);
    // Nothing of the conversation twice (a peer's presence may still come).
    let later = again.frames_until_quiet(300).await;
    assert!(
        !later.iter().any(|f| f["type"] == "message"),
        "no duplicate: {later:?}"
    );
}

/// `tandem-stress` with several targets spreads its clients over the nodes,
/// and its checks hold on a cluster: a chat between sockets on different
/// nodes, a group chat sent open-loop, and a flash sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_spreads_over_nodes() {
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let b = a.join(1);
    let targets = format!("{},{}", a.url(""), b.url(""));
    let (name, password) = crate::helpers::ADMIN;
    let admin = format!("{name}:{password}");
    let runs: [&[&str]; 3] = [
        &[
            "--scenario",
            "chat-direct",
            "--duration",
            "2",
            "--concurrency",
            "4",
        ],
        // Open loop: sends at fixed times without waiting for acks.
        &[
            "--scenario",
            "chat-group",
            "--group-size",
            "12",
            "--concurrency",
            "3",
            "--rate",
            "60",
            "--duration",
            "2",
        ],
        &[
            "--scenario",
            "flash-sale",
            "--concurrency",
            "16",
            "--stock",
            "20",
            "--buyers",
            "120",
            "--admin",
            &admin,
        ],
    ];
    for args in runs {
        let dir = std::env::temp_dir().join(format!("stress-{}", crate::helpers::random_suffix()));
        let json = dir.with_extension("json");
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem-stress"))
            .args(["--target", &targets, "--json", json.to_str().unwrap()])
            .args(args)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let _ = std::fs::remove_file(&json);
        let checks = report["checks"].as_object().unwrap();
        assert!(
            !checks.is_empty() && checks.values().all(|v| v == true),
            "{report}"
        );
        assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
        if args.contains(&"--rate") {
            // 60 messages a second for 2 s, every one acked and timed at the members.
            assert_eq!(report["sent"], 120, "{report}");
            assert!(report["delivery_latency_ms"]["p99"].as_f64().unwrap() > 0.0);
        }
    }
    // Both nodes took orders of the flash sale.
    for node in [&a, &b] {
        let m = node.get("/metrics", None).await.text().await.unwrap();
        let orders: f64 = m
            .lines()
            .filter(|l| {
                l.starts_with("tandem_http_requests_total{method=\"POST\",route=\"/api/v1/orders\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(orders > 0.0, "{} took no order: {m}", node.address);
    }
}

/// One group written from three nodes at once: every message is
/// acknowledged (no writer conflicts between nodes) and the seqs are
/// 1..=n without a gap or a duplicate; a member's socket on each node gets
/// every message once and in seq order, though consecutive seqs were
/// committed on different nodes and travel different paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_written_from_three_nodes_at_once() {
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let (b, c) = (a.join(1), a.join(2));
    let nodes = [&a, &b, &c];
    let mut users = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        users.push(node.register(&format!("member{i}")).await);
    }
    let mut readers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        readers.push(node.register(&format!("reader{i}")).await);
    }
    let others: Vec<i64> = users[1..].iter().chain(&readers).map(|u| u.0).collect();
    let g = group(&a, &users[0].1, &others).await;
    const EACH: i64 = 20;
    let mut listening = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut ws = Ws::connect(node, &readers[i].1).await;
        listening.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            while seqs.len() < usize::try_from(3 * EACH).unwrap() {
                let f = ws.recv().await;
                if f["type"] == "message" {
                    seqs.push(f["seq"].as_i64().unwrap());
                }
            }
            assert!(ws.quiet_for(400).await, "nothing more arrives");
            seqs
        }));
    }
    settle().await;
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut ws = Ws::connect(node, &users[i].1).await;
        tasks.push(tokio::spawn(async move {
            for k in 0..EACH {
                ws.send(json!({"type": "send", "client_id": format!("n{i}-{k}"), "conversation_id": g, "body": "x"}))
                    .await;
            }
            let mut seqs = Vec::new();
            while seqs.len() < usize::try_from(EACH).unwrap() {
                let f = ws.recv().await;
                match f["type"].as_str() {
                    Some("ack") => seqs.push(f["seq"].as_i64().unwrap()),
                    Some("error") => panic!("a send failed: {f}"),
                    _ => {}
                }
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let every: Vec<i64> = (1..=3 * EACH).collect();
    assert_eq!(all, every);
    for (node, l) in listening.into_iter().enumerate() {
        assert_eq!(l.await.unwrap(), every, "the reader on node {node}");
    }
}

/// Closes `name`'s connection on the local RabbitMQ, as a broker restart or
/// a network cut would (`rabbitmqctl`: the test runs beside the broker).
fn close_broker_connection(name: &str) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl runs here, beside the broker");
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = text
        .lines()
        .find(|l| l.contains(&format!("\"{name}\"")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no connection {name} in:\n{text}"));
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["-q", "close_connection", pid, "a test cuts the node link"])
        .status()
        .expect("rabbitmqctl");
    assert!(closed.success());
}

/// The node link opens again after it broke, and frames cross again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_link_reopens_after_the_broker_drops_it() {
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let b = a.join(1);
    let (_, ta) = a.register("cutsender").await;
    let (vb, tb) = b.register("cutreader").await;
    let mut wa = Ws::connect(&a, &ta).await;
    let mut wb = Ws::connect(&b, &tb).await;
    settle().await;
    let namespace = b.env_value("TANDEM_NAMESPACE").expect("a namespace");
    close_broker_connection(&format!("{namespace}-node-link-1"));
    let metric = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = b.get("/metrics", None).await.text().await.unwrap();
        if metric(&text, "tandem_node_link_reconnects_total").as_deref() == Some("1") {
            assert_eq!(metric(&text, "tandem_node_link_up").as_deref(), Some("1"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the link did not reopen: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A frame from A reaches B's socket again.
    wa.send(
        json!({"type": "send", "client_id": "after-cut", "to_user_id": vb, "body": "still there?"}),
    )
    .await;
    assert_eq!(wa.recv_type("ack").await["client_id"], "after-cut");
    let m = wb.recv_type("message").await;
    assert_eq!(m["body"], "still there?");
}

/// Read receipts, feed pushes and notifications made on one node reach a
/// socket on another; a node that stops closes its sockets with 1001 and its
/// users go offline for their peers on the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_posts_notifications_and_a_stop_cross_nodes() {
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let mut b = a.join(1);
    let (ua, ta) = a.register("crossa").await;
    let (ub, tb) = b.register("crossb").await;
    let mut wa = Ws::connect(&a, &ta).await;
    let mut wb = Ws::connect(&b, &tb).await;
    settle().await;
    // A direct message from B, read on A: B's socket hears of it.
    wb.send(json!({"type": "send", "client_id": "r1", "to_user_id": ua, "body": "seen?"}))
        .await;
    let ack = wb.recv_type("ack").await;
    let m = wa.recv_type("message").await;
    assert_eq!(m["seq"], ack["seq"]);
    wa.send(json!({"type": "read", "conversation_id": m["conversation_id"], "seq": m["seq"]}))
        .await;
    let read = wb.recv_type("read").await;
    assert_eq!(
        (read["user_id"].as_i64(), read["seq"].as_i64()),
        (Some(ua), m["seq"].as_i64())
    );
    // B follows A (a request to node B): A's socket gets the notification,
    // whichever node's consumer applies the event.
    let r = b
        .post(&format!("/api/v1/users/{ua}/follow"), Some(&tb), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let n = wa.recv_type("notification").await;
    assert_eq!(
        (n["kind"].as_str(), n["data"]["follower_id"].as_i64()),
        (Some("user.followed"), Some(ub))
    );
    // A posts on node A: the follower's socket on node B gets the post.
    let r = a
        .post("/api/v1/posts", Some(&ta), &json!({"body": "from node A"}))
        .await;
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    assert_eq!(wb.recv_type("post").await["post"]["post_id"], p["post_id"]);
    // B stops: its socket is told to go elsewhere, and A hears B left.
    assert!(b.stop_gracefully().success());
    assert!(matches!(
        wb.ended_within(10).await,
        crate::ws::Ended::Closed(1001)
    ));
    // (An `online` frame from when the pair met may come first.)
    let gone = loop {
        let f = wa.recv_type("presence").await;
        if f["online"] == false {
            break f;
        }
    };
    assert_eq!(gone["user_id"].as_i64(), Some(ub));
}

/// A node cut off from PostgreSQL whose id another session took meanwhile
/// serves on but never leads (and says so once), and takes its id and the
/// leadership back when the id comes free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_id_was_taken_serves_but_never_leads() {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    postgres_only!();
    let a = TestApp::spawn_with(Backend::Postgres, small(Vec::new())).await;
    let leads = |text: String| text.lines().any(|l| l == "tandem_cluster_leader 1");
    assert!(leads(a.get("/metrics", None).await.text().await.unwrap()));
    let space = tandem::storage::lease::namespace_key(a.env_value("TANDEM_NAMESPACE").unwrap());
    // Advisory locks of two int4 keys: classid is the first key's bits, objid the second.
    let classid = i64::from(u32::from_ne_bytes(space.to_ne_bytes()));
    let mut thief = PgConnection::establish(&a.database_url()).unwrap();
    // Cut node 0's lock connection and take its id before it reconnects (the
    // blocking lock waits for the ended backend to let go).
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
         AND classid = {classid}::oid AND objid = 0 AND objsubid = 2"
    ))
    .execute(&mut thief)
    .unwrap();
    diesel::sql_query(format!("SELECT pg_advisory_lock({space}, 0)"))
        .execute(&mut thief)
        .unwrap();
    // The node stops leading and keeps serving.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while leads(a.get("/metrics", None).await.text().await.unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "still leading without its id"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!leads(a.get("/metrics", None).await.text().await.unwrap()));
    assert_eq!(a.get("/health", None).await.status(), 200);
    let (_, t) = a.register("stillserved").await;
    assert_eq!(a.get("/api/v1/me", Some(&t)).await.status(), 200);
    // The id comes free: the node takes it and the leadership back.
    diesel::sql_query(format!("SELECT pg_advisory_unlock({space}, 0)"))
        .execute(&mut thief)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    while !leads(a.get("/metrics", None).await.text().await.unwrap()) {
        assert!(std::time::Instant::now() < deadline, "did not lead again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = a.server_log();
    assert_eq!(
        log.matches("another live node took this node's id").count(),
        1,
        "said once: {log}"
    );
}
