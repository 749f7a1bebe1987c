//! Realtime chat over WebSocket, per the contract's WebSocket section.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, Options, TestApp};
use crate::ws::{Ended, Ws};

async fn group(app: &TestApp, token: &str, members: &[i64]) -> i64 {
    let r = app
        .post(
            "/api/v1/conversations",
            Some(token),
            &json!({"member_ids": members, "title": "trip"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["conversation_id"]
        .as_i64()
        .unwrap()
}

async fn direct_and_group_delivery(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    let mut a1 = Ws::connect(&app, &at).await;
    let mut a2 = Ws::connect(&app, &at).await;
    let mut b = Ws::connect(&app, &bt).await;

    // Direct, created on first use.
    a1.send(json!({"type": "send", "client_id": "m1", "to_user_id": bob, "body": "你好 bob"}))
        .await;
    let ack = a1.recv_type("ack").await;
    assert_eq!(ack["client_id"], "m1");
    assert_eq!(ack["seq"], 1);
    let conv = ack["conversation_id"].as_i64().unwrap();
    let msg = b.recv_type("message").await;
    assert_eq!(
        msg,
        json!({
            "type": "message", "conversation_id": conv, "message_id": ack["message_id"], "seq": 1,
            "sender_id": alice, "body": "你好 bob", "sent_at": msg["sent_at"], "client_id": "m1",
            "kind": "text", "edited_at": null, "deleted": false
        })
    );
    assert!(msg["sent_at"].as_str().unwrap().ends_with('Z'));
    // The sender's other device gets the message; the sending connection only
    // the ack (and bob's presence: the new conversation made him a peer).
    let other = a2.recv_type("message").await;
    assert_eq!(other["message_id"], ack["message_id"]);
    assert!(
        a1.quiet_except(300, &["presence"]).await,
        "the sending connection gets only the ack"
    );

    // The reply goes into the same conversation.
    b.send(json!({"type": "send", "client_id": "r1", "to_user_id": alice, "body": "hi"}))
        .await;
    let ack2 = b.recv_type("ack").await;
    assert_eq!(
        (
            ack2["conversation_id"].as_i64().unwrap(),
            ack2["seq"].as_i64().unwrap()
        ),
        (conv, 2)
    );
    assert_eq!(a1.recv_type("message").await["seq"], 2);
    assert_eq!(a2.recv_type("message").await["seq"], 2);

    // Group.
    let g = group(&app, &at, &[bob, carol]).await;
    let mut c = Ws::connect(&app, &ct).await;
    b.send(json!({"type": "send", "client_id": "g1", "conversation_id": g, "body": "group hello"}))
        .await;
    assert_eq!(b.recv_type("ack").await["seq"], 1);
    for ws in [&mut a1, &mut a2, &mut c] {
        let m = ws.recv_type("message").await;
        assert_eq!(
            (
                m["conversation_id"].as_i64().unwrap(),
                m["sender_id"].as_i64().unwrap()
            ),
            (g, bob)
        );
    }

    // History over HTTP, both directions, members only.
    let h: Value = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages?after_seq=0"),
            Some(&bt),
        )
        .await
        .json()
        .await
        .unwrap();
    let seqs: Vec<i64> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(h["next_cursor"], Value::Null);
    let h: Value = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages?before_seq=3&limit=1"),
            Some(&at),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(h["items"][0]["seq"], 2);
    let next = h["next_cursor"].as_str().unwrap().to_owned();
    let h: Value = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages?limit=1&cursor={next}"),
            Some(&at),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(h["items"][0]["seq"], 1);
    let r = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&ct))
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages?limit=0"),
            Some(&at),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let r = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages?cursor=nonsense"),
            Some(&at),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
}
both_backends!(direct_and_group_delivery, super::direct_and_group_delivery);

async fn duplicate_client_id_returns_original_ack(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let mut a = Ws::connect(&app, &at).await;
    let mut b = Ws::connect(&app, &bt).await;
    a.send(json!({"type": "send", "client_id": "same", "to_user_id": bob, "body": "first"}))
        .await;
    let first = a.recv_type("ack").await;
    a.send(
        json!({"type": "send", "client_id": "same", "to_user_id": bob, "body": "different body"}),
    )
    .await;
    let again = a.recv_type("ack").await;
    assert_eq!(first, again);
    // And from a fresh connection after reconnecting.
    a.close().await;
    let mut a = Ws::connect(&app, &at).await;
    a.send(json!({"type": "send", "client_id": "same", "to_user_id": bob, "body": "third"}))
        .await;
    assert_eq!(a.recv_type("ack").await, first);
    a.send(
        json!({"type": "send", "client_id": "next", "to_user_id": bob, "body": "second message"}),
    )
    .await;
    assert_eq!(a.recv_type("ack").await["seq"], 2);
    // Bob saw each message once.
    assert_eq!(b.recv_type("message").await["body"], "first");
    assert_eq!(b.recv_type("message").await["body"], "second message");
    let conv = first["conversation_id"].as_i64().unwrap();
    let h: Value = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(h["items"].as_array().unwrap().len(), 2);
}
both_backends!(
    duplicate_client_id_returns_original_ack,
    super::duplicate_client_id_returns_original_ack
);

async fn concurrent_senders_get_gapless_seqs(backend: Backend) {
    const SENDERS: usize = 8;
    const EACH: usize = 200;
    let app = TestApp::spawn(backend).await;
    let (_, watcher_token) = app.register("watcher").await;
    let mut users = Vec::new();
    for i in 0..SENDERS {
        users.push(app.register(&format!("sender{i}")).await);
    }
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    let conv = group(&app, &watcher_token, &ids).await;
    let mut watcher = Ws::connect(&app, &watcher_token).await;

    let mut tasks = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let mut ws = Ws::connect(&app, token).await;
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                ws.send(json!({"type": "send", "client_id": format!("s{i}-{n}"), "conversation_id": conv, "body": format!("{i}:{n}")})).await;
            }
            let mut seqs = Vec::new();
            while seqs.len() < EACH {
                let v = ws.recv_within(30).await;
                if v["type"] == "ack" {
                    seqs.push(v["seq"].as_i64().unwrap());
                }
            }
            seqs
        }));
    }
    let mut all: Vec<i64> = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        // Each sender's own messages are acked in the order sent.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "acks in order");
        all.extend(seqs);
    }
    all.sort_unstable();
    let total = (SENDERS * EACH) as i64;
    assert_eq!(
        all,
        (1..=total).collect::<Vec<_>>(),
        "seqs 1..=1600, no gap, no duplicate"
    );
    // A member sees every message once, in seq order.
    for expected in 1..=total {
        let m = watcher.recv_type("message").await;
        assert_eq!(m["seq"].as_i64().unwrap(), expected);
    }
}
both_backends!(
    concurrent_senders_get_gapless_seqs,
    super::concurrent_senders_get_gapless_seqs
);

async fn sync_after_disconnect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let mut a = Ws::connect(&app, &at).await;
    let b = Ws::connect(&app, &bt).await;
    a.send(json!({"type": "send", "client_id": "c0", "to_user_id": bob, "body": "before"}))
        .await;
    let conv = a.recv_type("ack").await["conversation_id"]
        .as_i64()
        .unwrap();
    b.close().await;
    for i in 1..=5 {
        a.send(json!({"type": "send", "client_id": format!("c{i}"), "conversation_id": conv, "body": format!("missed {i}")})).await;
        a.recv_type("ack").await;
    }
    let mut b = Ws::connect(&app, &bt).await;
    // A live frame may reach the new socket before it asks to sync (only
    // frames after the sync request are held back): let those pass first.
    while !b.quiet_for(300).await {}
    b.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 1}))
        .await;
    for seq in 2..=6 {
        let m = b.recv_type("message").await;
        assert_eq!(m["seq"], seq);
        assert_eq!(m["body"], format!("missed {}", seq - 1));
    }
    let synced = b.recv_type("synced").await;
    if backend == Backend::Sqlite {
        // One node writes every conversation: a recent sync comes from memory.
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(
            !metrics.contains("tandem_chat_sync_total{source=\"memory\"} 0"),
            "a recent sync is served from memory:\n{metrics}"
        );
    }
    assert_eq!(
        synced,
        json!({"type": "synced", "conversation_id": conv, "last_seq": 6})
    );
    // Non-members cannot sync.
    let (_, et) = app.register("eve").await;
    let mut e = Ws::connect(&app, &et).await;
    e.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 0}))
        .await;
    let err = e.recv_type("error").await;
    assert_eq!(err["code"], "not_member");
}
both_backends!(sync_after_disconnect, super::sync_after_disconnect);

async fn acked_message_survives_kill_9(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let mut a = Ws::connect(&app, &at).await;
    for i in 1..=20 {
        a.send(json!({"type": "send", "client_id": format!("k{i}"), "to_user_id": bob, "body": format!("durable {i}")})).await;
    }
    let mut last = json!(null);
    for _ in 0..20 {
        last = a.recv_type("ack").await;
    }
    let conv = last["conversation_id"].as_i64().unwrap();
    app.restart_hard();
    let h: Value = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        h["items"].as_array().unwrap().len(),
        20,
        "every acked message is there"
    );
    // The counter continues where it was.
    let mut a = Ws::connect(&app, &at).await;
    a.send(json!({"type": "send", "client_id": "after", "conversation_id": conv, "body": "after restart"})).await;
    assert_eq!(a.recv_type("ack").await["seq"], 21);
    // After the restart the ring holds only message 21: a sync from 15 must
    // come from the database, complete and in order.
    a.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 15}))
        .await;
    let mut seqs = Vec::new();
    loop {
        let v = a.recv().await;
        match v["type"].as_str() {
            Some("message") => seqs.push(v["seq"].as_i64().unwrap()),
            Some("synced") => {
                assert_eq!(v["last_seq"], 21);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seqs, (16..=21).collect::<Vec<_>>());
    // And client ids are still remembered.
    a.send(json!({"type": "send", "client_id": "k20", "conversation_id": conv, "body": "dup"}))
        .await;
    assert_eq!(a.recv_type("ack").await, last);
}
both_backends!(
    acked_message_survives_kill_9,
    super::acked_message_survives_kill_9
);

async fn bad_frames_and_non_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, _) = app.register("bob").await;
    // Issue 16, item 10: a group of only its creator is refused, and nothing is made.
    for members in [json!([alice]), json!([alice, alice])] {
        let r = app
            .post(
                "/api/v1/conversations",
                Some(&at),
                &json!({"member_ids": members}),
            )
            .await;
        assert_problem(r, 400, "invalid_input").await;
    }
    let mine: Value = app
        .get("/api/v1/conversations", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"], json!([]));
    let (_, et) = app.register("eve").await;
    let g = group(&app, &at, &[bob]).await;
    let mut e = Ws::connect(&app, &et).await;
    let cases = [
        ("{not json".to_owned(), "invalid_input"),
        (json!({"type": "shout"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "body": "no target"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "body": "hi", "extra": 1}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "", "conversation_id": g, "body": "hi"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x".repeat(65), "conversation_id": g, "body": "hi"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "body": ""}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "body": "b".repeat(4001)}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "to_user_id": bob, "body": "both"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": "7", "body": "string id"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "body": "not mine"}).to_string(), "not_member"),
        (json!({"type": "send", "client_id": "x", "conversation_id": 424242, "body": "nowhere"}).to_string(), "not_member"),
        (json!({"type": "typing", "conversation_id": g}).to_string(), "not_member"),
        (json!({"type": "read", "conversation_id": g, "seq": 1}).to_string(), "not_member"),
        // Issue 16, item 7: the one text rule, in chat too.
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "body": "pay \u{202E}0001"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "body": "\u{200B}\u{200B}"}).to_string(), "invalid_input"),
        (json!({"type": "send", "client_id": "x", "conversation_id": g, "body": " \n "}).to_string(), "invalid_input"),
    ];
    for (frame, code) in cases {
        e.send_raw(frame.clone()).await;
        let v = e.recv_type("error").await;
        assert_eq!(v["code"], code, "frame {frame} -> {v}");
        assert!(v["message"].is_string());
    }
    e.send(json!({"type": "send", "client_id": "x", "to_user_id": 424242, "body": "nobody"}))
        .await;
    assert_eq!(e.recv_type("error").await["code"], "not_found");
    // The connection is still open and serving.
    e.send(json!({"type": "ping"})).await;
    assert_eq!(e.recv().await, json!({"type": "pong"}));
    // Exactly 4000 characters is fine (and 4000 multi-byte characters too).
    let mut a = Ws::connect(&app, &at).await;
    a.send(json!({"type": "send", "client_id": "long", "conversation_id": g, "body": "長".repeat(4000)})).await;
    assert_eq!(a.recv_type("ack").await["seq"], 1);
    // Fragmented messages are assembled...
    {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::Message;
        let mut raw = Ws::connect(&app, &et).await.into_inner();
        use futures_util::SinkExt;
        raw.send(Message::Frame(Frame::message(
            b"{\"type\":".to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
        raw.send(Message::Frame(Frame::message(
            b"\"ping\"}".to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
        let mut fragmented = crate::ws::Ws::from_stream(raw);
        assert_eq!(fragmented.recv().await, json!({"type": "pong"}));
        // ...and a fragmented message over 65,536 bytes in all closes with 1009 too.
        let mut raw = fragmented.into_inner();
        raw.send(Message::Frame(Frame::message(
            vec![b' '; 40_000],
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
        raw.send(Message::Frame(Frame::message(
            vec![b' '; 40_000],
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
        let mut fragmented = crate::ws::Ws::from_stream(raw);
        assert_eq!(fragmented.ended_within(10).await, Ended::Closed(1009));
    }
    // A frame over 65,536 bytes closes with 1009.
    e.send_raw(format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(70_000)
    ))
    .await;
    assert_eq!(e.ended_within(10).await, Ended::Closed(1009));
    // Without a token there is no socket at all.
    let url = format!("{}/api/v1/ws", app.address.replacen("http://", "ws://", 1));
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    let url = format!(
        "{}/api/v1/ws?token=forged",
        app.address.replacen("http://", "ws://", 1)
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}
both_backends!(
    bad_frames_and_non_members,
    super::bad_frames_and_non_members
);

async fn slow_reader_is_disconnected_fast_one_keeps_up(backend: Backend) {
    // Enough to fill the kernel's socket buffers of the slow client and then
    // the server's bound; each group-commit batch (up to 512) stays inside it.
    const MESSAGES: usize = 12_000;
    let opts = Options {
        extra_env: vec![
            ("TANDEM_WS_OUTBOUND_MAX_FRAMES".into(), "2048".into()),
            ("TANDEM_WS_OUTBOUND_MAX_BYTES".into(), "1048576".into()),
        ],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let (_, st) = app.register("sender").await;
    let (fast_id, ft) = app.register("fast").await;
    let (slow_id, slowt) = app.register("slow").await;
    let conv = group(&app, &st, &[fast_id, slow_id]).await;
    let slow = Ws::connect(&app, &slowt).await; // never reads until the end
    let mut fast = Ws::connect(&app, &ft).await;
    let sender = Ws::connect(&app, &st).await;
    let (mut tx, mut rx) = futures_util::StreamExt::split(sender.into_inner());
    let body = "x".repeat(500);
    let send_task = tokio::spawn(async move {
        use futures_util::SinkExt;
        for i in 0..MESSAGES {
            let f = json!({"type": "send", "client_id": format!("f{i}"), "conversation_id": conv, "body": body});
            tx.send(tokio_tungstenite::tungstenite::Message::text(f.to_string()))
                .await
                .unwrap();
        }
        tx
    });
    let ack_task = tokio::spawn(async move {
        let mut acks = 0;
        while acks < MESSAGES {
            match futures_util::StreamExt::next(&mut rx).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))
                    if t.as_str().contains("\"ack\"") =>
                {
                    acks += 1
                }
                Some(Ok(_)) => {}
                other => panic!("sender socket ended: {other:?}"),
            }
        }
        acks
    });
    for expected in 1..=MESSAGES as i64 {
        let m = fast.recv_type("message").await;
        assert_eq!(m["seq"].as_i64().unwrap(), expected);
    }
    assert_eq!(ack_task.await.unwrap(), MESSAGES);
    let _tx = send_task.await.unwrap();
    // The slow client was cut off: reading now, it finds fewer messages, then 1008.
    let mut slow = slow.into_inner();
    let mut got = 0;
    let end = loop {
        match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_util::StreamExt::next(&mut slow),
        )
        .await
        {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))) => got += 1,
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f)))) => {
                break f.map(|f| u16::from(f.code))
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break None,
            Err(_) => panic!("slow socket neither closed nor dropped"),
        }
    };
    assert!(
        got < MESSAGES,
        "the slow client did not get everything ({got})"
    );
    assert!(
        matches!(end, Some(1008) | Some(1013) | None),
        "close code {end:?}"
    );
}
both_backends!(
    slow_reader_is_disconnected_fast_one_keeps_up,
    super::slow_reader_is_disconnected_fast_one_keeps_up
);

async fn idle_connections_are_closed(backend: Backend) {
    let opts = Options {
        extra_env: vec![("TANDEM_WS_IDLE_TIMEOUT_SECS".into(), "2".into())],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let (_, t) = app.register("idler").await;
    // This client never reads, so it never answers the server's pings.
    let idle = Ws::connect(&app, &t).await;
    // This one keeps talking.
    let mut live = Ws::connect(&app, &t).await;
    for _ in 0..8 {
        live.send(json!({"type": "ping"})).await;
        assert_eq!(live.recv_type("pong").await["type"], "pong");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let mut idle = idle;
    let end = idle.ended_within(10).await;
    assert!(matches!(end, Ended::Closed(_) | Ended::Dropped), "{end:?}");
    live.send(json!({"type": "ping"})).await;
    assert_eq!(live.recv_type("pong").await["type"], "pong");
}
both_backends!(
    idle_connections_are_closed,
    super::idle_connections_are_closed
);

async fn presence_typing_reads_unread(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    let mut a = Ws::connect(&app, &at).await;
    a.send(json!({"type": "send", "client_id": "p1", "to_user_id": bob, "body": "one"}))
        .await;
    let conv = a.recv_type("ack").await["conversation_id"]
        .as_i64()
        .unwrap();
    a.send(json!({"type": "send", "client_id": "p2", "conversation_id": conv, "body": "two"}))
        .await;
    a.recv_type("ack").await;

    // Bob comes online: alice (a direct peer) hears of it, and bob's new
    // socket hears that alice is online already.
    let mut b = Ws::connect(&app, &bt).await;
    assert_eq!(
        a.recv_type("presence").await,
        json!({"type": "presence", "user_id": bob, "online": true})
    );
    assert_eq!(
        b.recv_type("presence").await,
        json!({"type": "presence", "user_id": alice, "online": true})
    );
    // So does a second socket of his; carol (no peer of his) is not named.
    let mut b2 = Ws::connect(&app, &bt).await;
    assert_eq!(
        b2.recv_type("presence").await,
        json!({"type": "presence", "user_id": alice, "online": true})
    );
    assert!(
        b2.quiet_for(300).await,
        "one presence frame per online peer"
    );
    b2.close().await;

    // Unread counts.
    let list: Value = app
        .get("/api/v1/conversations", Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    let c = &list["items"][0];
    assert_eq!(
        (
            c["conversation_id"].as_i64().unwrap(),
            c["kind"].as_str().unwrap()
        ),
        (conv, "direct")
    );
    assert_eq!(
        (
            c["last_seq"].as_i64().unwrap(),
            c["unread"].as_i64().unwrap()
        ),
        (2, 2)
    );
    let mut members: Vec<i64> = c["member_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    members.sort_unstable();
    let mut expected = vec![alice, bob];
    expected.sort_unstable();
    assert_eq!(members, expected);
    let alice_view: Value = app
        .get("/api/v1/conversations", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        alice_view["items"][0]["unread"], 0,
        "own messages count as read"
    );

    // Read receipt: stored and forwarded.
    b.send(json!({"type": "read", "conversation_id": conv, "seq": 1}))
        .await;
    assert_eq!(
        a.recv_type("read").await,
        json!({"type": "read", "conversation_id": conv, "user_id": bob, "seq": 1})
    );
    let list: Value = app
        .get("/api/v1/conversations", Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["unread"], 1);

    // Typing goes to the others, never stored.
    b.send(json!({"type": "typing", "conversation_id": conv}))
        .await;
    assert_eq!(
        a.recv_type("typing").await,
        json!({"type": "typing", "conversation_id": conv, "user_id": bob})
    );

    // Most recent activity first.
    let g = group(&app, &ct, &[bob]).await;
    let mut c_ws = Ws::connect(&app, &ct).await;
    c_ws.send(json!({"type": "send", "client_id": "g", "conversation_id": g, "body": "newest"}))
        .await;
    c_ws.recv_type("ack").await;
    let list: Value = app
        .get("/api/v1/conversations?limit=1", Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["conversation_id"], g);
    let next = list["next_cursor"].as_str().unwrap().to_owned();
    let list: Value = app
        .get(
            &format!("/api/v1/conversations?limit=1&cursor={next}"),
            Some(&bt),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["conversation_id"], conv);

    // A direct conversation opened while both are online: presence follows it.
    let mut c2 = Ws::connect(&app, &ct).await;
    c2.send(json!({"type": "send", "client_id": "hello-alice", "to_user_id": alice, "body": "hi"}))
        .await;
    // Each learns at once that the other is online, whatever the order of
    // that and the ack or message.
    for (ws, other, also) in [(&mut c2, alice, "ack"), (&mut a, carol, "message")] {
        let (mut presence, mut seen) = (false, false);
        while !(presence && seen) {
            let f = ws.recv().await;
            match f["type"].as_str() {
                Some("presence") => {
                    assert_eq!(
                        f,
                        json!({"type": "presence", "user_id": other, "online": true})
                    );
                    presence = true;
                }
                Some(t) if t == also => seen = true,
                _ => {}
            }
        }
    }
    c_ws.close().await;
    c2.close().await;
    assert_eq!(
        a.recv_type("presence").await,
        json!({"type": "presence", "user_id": carol, "online": false})
    );
    // Bob's last socket closes: alice hears he is offline.
    b.close().await;
    assert_eq!(
        a.recv_type("presence").await,
        json!({"type": "presence", "user_id": bob, "online": false})
    );
}
both_backends!(
    presence_typing_reads_unread,
    super::presence_typing_reads_unread
);

async fn blocking_stops_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    let mut a = Ws::connect(&app, &at).await;
    a.send(json!({"type": "send", "client_id": "b1", "to_user_id": bob, "body": "hi"}))
        .await;
    let conv = a.recv_type("ack").await["conversation_id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.post(
            &format!("/api/v1/users/{alice}/block"),
            Some(&bt),
            &json!({})
        )
        .await
        .status(),
        200
    );
    a.send(
        json!({"type": "send", "client_id": "b2", "conversation_id": conv, "body": "still there?"}),
    )
    .await;
    let e = a.recv_type("error").await;
    assert_eq!(
        (
            e["code"].as_str().unwrap(),
            e["client_id"].as_str().unwrap()
        ),
        ("blocked", "b2")
    );
    // Nor can a blocked user open a new direct conversation.
    let mut c = Ws::connect(&app, &ct).await;
    assert_eq!(
        app.post(
            &format!("/api/v1/users/{carol}/block"),
            Some(&bt),
            &json!({})
        )
        .await
        .status(),
        200
    );
    c.send(json!({"type": "send", "client_id": "c1", "to_user_id": bob, "body": "hello?"}))
        .await;
    assert_eq!(c.recv_type("error").await["code"], "blocked");
    // The blocker can still write; unblocking restores the blocked one.
    let mut b = Ws::connect(&app, &bt).await;
    b.send(json!({"type": "send", "client_id": "x1", "conversation_id": conv, "body": "one way"}))
        .await;
    assert_eq!(b.recv_type("ack").await["seq"], 2);
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/users/{alice}/block")))
        .bearer_auth(&bt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    a.send(json!({"type": "send", "client_id": "b3", "conversation_id": conv, "body": "thanks"}))
        .await;
    assert_eq!(a.recv_type("ack").await["seq"], 3);
}
both_backends!(blocking_stops_messages, super::blocking_stops_messages);

async fn ban_and_logout_close_sockets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let (uid, t1) = app.register("leaver").await;
    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "leaver", "password": "password-123"}),
        )
        .await;
    let t2 = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut s1 = Ws::connect(&app, &t1).await;
    let mut s2 = Ws::connect(&app, &t2).await;
    // Logout closes the sockets of that token only.
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s1.ended_within(10).await, Ended::Closed(1008));
    s2.send(json!({"type": "ping"})).await;
    assert_eq!(s2.recv_type("pong").await["type"], "pong");
    // A ban closes every socket with 1008 and the reason `banned` (CONTRACT v2).
    let r = app
        .post(
            &format!("/api/v1/admin/users/{uid}/ban"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        s2.close_frame_within(10).await,
        Some((1008, "banned".to_owned()))
    );
}
both_backends!(
    ban_and_logout_close_sockets,
    super::ban_and_logout_close_sockets
);

/// Issue 16, item 1: with `TANDEM_WS_ALLOWED_ORIGINS` unset, a browser's
/// handshake (it always sends `Origin`) opens, from any origin.
async fn websocket_opens_from_any_origin_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, t) = app.register("browser").await;
    let ws_url = format!(
        "{}/api/v1/ws?token={t}",
        app.address.replacen("http://", "ws://", 1)
    );
    for origin in [app.address.as_str(), "https://elsewhere.example"] {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                ws_url.as_str(),
            )
            .unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        let (mut stream, resp) = tokio_tungstenite::connect_async(req)
            .await
            .unwrap_or_else(|e| panic!("origin {origin} refused: {e:?}"));
        assert_eq!(resp.status(), 101);
        use futures_util::SinkExt;
        stream
            .send(tokio_tungstenite::tungstenite::Message::Text(
                r#"{"type":"ping"}"#.into(),
            ))
            .await
            .unwrap();
        // The socket works: the ping is answered (other frames may come first).
        use futures_util::StreamExt;
        let mut ponged = false;
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await
        {
            if m.to_text().is_ok_and(|t| t.contains("\"pong\"")) {
                ponged = true;
                break;
            }
        }
        assert!(ponged, "no pong on the socket opened from {origin}");
    }
}
both_backends!(
    websocket_opens_from_any_origin_by_default,
    super::websocket_opens_from_any_origin_by_default
);

async fn websocket_rate_limit_and_origin(backend: Backend) {
    let opts = Options {
        rate_limits: true,
        extra_env: vec![(
            "TANDEM_WS_ALLOWED_ORIGINS".into(),
            "https://app.example,https://m.example".into(),
        )],
    };
    let app = TestApp::spawn_with(backend, opts).await;
    let (_, t) = app.register("chatty").await;
    let ws_url = format!(
        "{}/api/v1/ws?token={t}",
        app.address.replacen("http://", "ws://", 1)
    );
    // A foreign Origin is refused at the handshake; a listed one is accepted.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "https://m.example".parse().unwrap());
    let (stream, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("allowed origin");
    drop(stream);

    // Frames beyond the per-connection budget get `rate_limited`; the socket stays open.
    let mut ws = Ws::connect(&app, &t).await;
    for _ in 0..150 {
        ws.send(json!({"type": "ping"})).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..150 {
        let v = ws.recv().await;
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") if v["code"] == "rate_limited" => limited += 1,
            _ => panic!("unexpected {v}"),
        }
    }
    assert!(
        pongs >= 60 && limited > 0,
        "pongs {pongs}, limited {limited}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "pong"}),
        "the budget refills"
    );
}
both_backends!(
    websocket_rate_limit_and_origin,
    super::websocket_rate_limit_and_origin
);
