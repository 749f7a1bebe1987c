//! Chat v2: edits, deletions and groups that change, each an entry of the
//! conversation's `seq` stream (CONTRACT "v2 additions").

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp};
use crate::ws::Ws;

async fn history(app: &TestApp, token: &str, conv: i64) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(token),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn user_id(app: &TestApp, token: &str) -> i64 {
    let r = app.get("/api/v1/me", Some(token)).await;
    r.json::<Value>().await.unwrap()["user_id"]
        .as_i64()
        .unwrap()
}

/// Sends `frame` and returns the first ack or error frame for it.
async fn ask(ws: &mut Ws, frame: Value) -> Value {
    ws.send(frame).await;
    loop {
        let f = ws.recv().await;
        if f["type"] == "ack" || f["type"] == "error" {
            return f;
        }
    }
}

async fn edits_and_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let mut a = Ws::connect(&app, &at).await;
    let mut b = Ws::connect(&app, &bt).await;
    let ack = ask(
        &mut a,
        json!({"type": "send", "client_id": "m1", "to_user_id": bob, "body": "see you at 9"}),
    )
    .await;
    let conv = ack["conversation_id"].as_i64().unwrap();
    let m = b.recv_type("message").await;
    assert_eq!(
        (m["kind"].as_str(), m["deleted"].as_bool()),
        (Some("text"), Some(false))
    );
    assert!(m["edited_at"].is_null());
    ask(
        &mut a,
        json!({"type": "send", "client_id": "m2", "conversation_id": conv, "body": "bring water"}),
    )
    .await;
    b.recv_type("message").await;

    // The author edits: an `edit` entry with the next seq, live to the peer.
    let edit = json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": "see you at 10", "client_id": "e1"});
    let ack = ask(&mut a, edit.clone()).await;
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_i64()),
        (Some("ack"), Some(3))
    );
    assert_eq!(ack["client_id"], "e1");
    let m = b.recv_type("message").await;
    assert_eq!(
        (
            m["kind"].as_str(),
            m["target_seq"].as_i64(),
            m["seq"].as_i64(),
            m["body"].as_str()
        ),
        (Some("edit"), Some(1), Some(3), Some("see you at 10"))
    );
    // A resend of the same client_id returns the first ack and stores nothing.
    let again = ask(&mut a, edit).await;
    assert_eq!(again["seq"], 3);
    // An edit without a client_id is acked too, with one the server made.
    let ack = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": "see you at 10:30"}),
    )
    .await;
    assert_eq!(ack["seq"], 4);
    assert!(!ack["client_id"].as_str().unwrap().is_empty());
    b.recv_type("message").await;

    // Only the author edits; only messages that exist; only text; only in the window.
    let e = ask(&mut b, json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": "hacked", "client_id": "x"})).await;
    assert_eq!(
        (e["code"].as_str(), e["client_id"].as_str()),
        (Some("forbidden"), Some("x"))
    );
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 99, "body": "?"}),
    )
    .await;
    assert_eq!(e["code"], "not_found");
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 3, "body": "?"}),
    )
    .await;
    assert_eq!(e["code"], "invalid_state");
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": ""}),
    )
    .await;
    assert_eq!(e["code"], "invalid_input");
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 0, "body": "x"}),
    )
    .await;
    assert_eq!(e["code"], "invalid_input");
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": "x", "pin": true}),
    )
    .await;
    assert_eq!(e["code"], "invalid_input");
    let e = ask(
        &mut b,
        json!({"type": "delete", "conversation_id": conv, "seq": 2}),
    )
    .await;
    assert_eq!(e["code"], "forbidden");
    let (_, ct) = app.register("carol").await;
    let mut c = Ws::connect(&app, &ct).await;
    let e = ask(
        &mut c,
        json!({"type": "delete", "conversation_id": conv, "seq": 2}),
    )
    .await;
    assert_eq!(e["code"], "not_member");
    app.sql(&format!(
        "UPDATE messages SET sent_at_ms = sent_at_ms - 16 * 60 * 1000 WHERE conversation_id = {conv} AND seq = 2"
    ));
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 2, "body": "late"}),
    )
    .await;
    assert_eq!(e["code"], "invalid_state");

    // Delete for everyone: any time, once; the seq stays, the body goes.
    let ack = ask(
        &mut a,
        json!({"type": "delete", "conversation_id": conv, "seq": 2, "client_id": "d1"}),
    )
    .await;
    assert_eq!(ack["seq"], 5);
    let m = b.recv_type("message").await;
    assert_eq!(
        (m["kind"].as_str(), m["target_seq"].as_i64()),
        (Some("delete"), Some(2))
    );
    let e = ask(
        &mut a,
        json!({"type": "delete", "conversation_id": conv, "seq": 2}),
    )
    .await;
    assert_eq!(e["code"], "invalid_state");
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 2, "body": "undo"}),
    )
    .await;
    assert_eq!(e["code"], "invalid_state");

    // History shows each message in its latest state, and every entry.
    let items = history(&app, &bt, conv).await;
    let seqs: Vec<i64> = items.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(items[0]["body"], "see you at 10:30");
    assert!(items[0]["edited_at"].is_string());
    assert_eq!(
        (items[1]["deleted"].as_bool(), items[1]["body"].as_str()),
        (Some(true), Some(""))
    );
    assert_eq!(items[4]["kind"], "delete");

    // So does sync, from memory or the database alike.
    for _ in 0..2 {
        let mut b2 = Ws::connect(&app, &bt).await;
        b2.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 0}))
            .await;
        let mut got = Vec::new();
        loop {
            let f = b2.recv().await;
            if f["type"] == "synced" {
                assert_eq!(f["last_seq"], 5);
                break;
            }
            if f["type"] == "message" {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 5);
        assert_eq!(got[0]["body"], "see you at 10:30");
        assert_eq!(got[1]["deleted"], true);
        assert_eq!(got[1]["body"], "");
    }

    // Deleting an edited message takes its edits' text with it.
    let ack = ask(
        &mut a,
        json!({"type": "delete", "conversation_id": conv, "seq": 1}),
    )
    .await;
    assert_eq!(ack["seq"], 6);
    let items = history(&app, &bt, conv).await;
    for edit in [&items[2], &items[3]] {
        assert_eq!(
            (edit["kind"].as_str(), edit["body"].as_str()),
            (Some("edit"), Some(""))
        );
    }
    let mut b3 = Ws::connect(&app, &bt).await;
    b3.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 2}))
        .await;
    assert_eq!(b3.recv_type("message").await["body"], "");
    assert_eq!(b3.recv_type("message").await["body"], "");
}
both_backends!(edits_and_deletes, super::edits_and_deletes);

async fn admins_delete_any_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let admin = app.admin_token().await;
    let admin_id = user_id(&app, &admin).await;
    let r = app
        .post(
            "/api/v1/conversations",
            Some(&at),
            &json!({"member_ids": [admin_id]}),
        )
        .await;
    let conv = r.json::<Value>().await.unwrap()["conversation_id"]
        .as_i64()
        .unwrap();
    let mut a = Ws::connect(&app, &at).await;
    ask(
        &mut a,
        json!({"type": "send", "client_id": "s", "conversation_id": conv, "body": "spam"}),
    )
    .await;
    let mut m = Ws::connect(&app, &admin).await;
    let e = ask(
        &mut m,
        json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": "x"}),
    )
    .await;
    assert_eq!(e["code"], "forbidden");
    let ack = ask(
        &mut m,
        json!({"type": "delete", "conversation_id": conv, "seq": 1}),
    )
    .await;
    assert_eq!(ack["seq"], 2);
    let d = a.recv_type("message").await;
    assert_eq!(
        (d["kind"].as_str(), d["sender_id"].as_i64()),
        (Some("delete"), Some(admin_id))
    );
    assert_eq!(history(&app, &at, conv).await[0]["deleted"], true);
    let _ = alice;
}
both_backends!(admins_delete_any_message, super::admins_delete_any_message);

async fn blocks_stop_edits_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let mut a = Ws::connect(&app, &at).await;
    let ack = ask(
        &mut a,
        json!({"type": "send", "client_id": "1", "to_user_id": bob, "body": "hi"}),
    )
    .await;
    let conv = ack["conversation_id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/users/{alice}/block"),
            Some(&bt),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let e = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": "still here"}),
    )
    .await;
    assert_eq!(e["code"], "blocked");
    // Taking one's own message back stays possible.
    let ack = ask(
        &mut a,
        json!({"type": "delete", "conversation_id": conv, "seq": 1}),
    )
    .await;
    assert_eq!(ack["seq"], 2);
}
both_backends!(blocks_stop_edits_too, super::blocks_stop_edits_too);

async fn create(app: &TestApp, token: &str, members: &[i64], extra: Value) -> reqwest::Response {
    let mut body = json!({"member_ids": members, "title": "Lijiang"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.post("/api/v1/conversations", Some(token), &body).await
}

async fn groups_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    let (dave, dt) = app.register("dave").await;
    let r = create(&app, &at, &[bob], json!({})).await;
    assert_eq!(r.status(), 201);
    let g: Value = r.json().await.unwrap();
    let conv = g["conversation_id"].as_i64().unwrap();
    assert_eq!(
        (g["owner_id"].as_i64(), g["history_visibility"].as_str()),
        (Some(alice), Some("since_join"))
    );
    let mut a = Ws::connect(&app, &at).await;
    let mut b = Ws::connect(&app, &bt).await;
    let mut c = Ws::connect(&app, &ct).await;
    ask(
        &mut a,
        json!({"type": "send", "client_id": "1", "conversation_id": conv, "body": "before carol"}),
    )
    .await;
    b.recv_type("message").await;

    // Only the owner adds; strangers see nothing.
    let add = |ids: Vec<i64>| json!({ "user_ids": ids });
    let path = format!("/api/v1/conversations/{conv}/members");
    assert_problem(
        app.post(&path, Some(&bt), &add(vec![carol])).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post(&path, Some(&ct), &add(vec![carol])).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post(&path, Some(&at), &add(vec![])).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.post(&path, Some(&at), &add(vec![999_999])).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post(
            &path,
            Some(&at),
            &json!({"user_ids": [carol], "role": "admin"}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    let r = app.post(&path, Some(&at), &add(vec![carol, bob])).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["member_ids"], json!([alice, bob, carol]));
    for ws in [&mut b, &mut c] {
        let m = ws.recv_type("message").await;
        assert_eq!(
            (
                m["kind"].as_str(),
                m["seq"].as_i64(),
                m["sender_id"].as_i64()
            ),
            (Some("member_added"), Some(2), Some(alice))
        );
        assert_eq!(m["data"]["user_ids"], json!([carol]));
    }
    // Since join: carol reads from the entry that added her, over HTTP and sync.
    let items = history(&app, &ct, conv).await;
    assert_eq!(
        items
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![2]
    );
    let r = app
        .get(
            &format!("/api/v1/conversations/{conv}/messages?before_seq=3"),
            Some(&ct),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    c.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 0}))
        .await;
    let first = c.recv_type("message").await;
    assert_eq!(first["seq"], 2);
    assert_eq!(c.recv_type("synced").await["last_seq"], 2);
    let list: Value = app
        .get("/api/v1/conversations", Some(&ct))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["unread"], 1);

    // Rename (owner only), then full history for later members.
    let one = format!("/api/v1/conversations/{conv}");
    assert_problem(
        app.patch(&one, Some(&bt), &json!({"title": "mine"})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.patch(&one, Some(&at), &json!({})).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.patch(&one, Some(&at), &json!({"owner_id": dave})).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.patch(&one, Some(&at), &json!({"history_visibility": "some"}))
            .await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.patch(&one, Some(&at), &json!({"title": "a\u{0}b"}))
            .await,
        400,
        "invalid_input",
    )
    .await;
    let r = app
        .patch(
            &one,
            Some(&at),
            &json!({"title": "Dali", "history_visibility": "full"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["title"].as_str(), v["history_visibility"].as_str()),
        (Some("Dali"), Some("full"))
    );
    let m = b.recv_type("message").await;
    assert_eq!(
        (m["kind"].as_str(), m["data"]["title"].as_str()),
        (Some("renamed"), Some("Dali"))
    );
    assert_eq!(b.recv_type("message").await["kind"], "history_changed");
    assert_eq!(
        app.post(&path, Some(&at), &add(vec![dave])).await.status(),
        200
    );
    let items = history(&app, &dt, conv).await;
    assert_eq!(items[0]["body"], "before carol");

    // A removed member is cut off at once: no more frames, sends refused, no history.
    let r = app.delete(&format!("{path}/{carol}"), Some(&bt)).await;
    assert_problem(r, 403, "forbidden").await;
    let r = app.delete(&format!("{path}/{bob}"), Some(&at)).await;
    assert_eq!(r.status(), 204);
    loop {
        let m = b.recv_type("message").await;
        if m["kind"] == "member_removed" {
            assert_eq!(m["data"]["user_id"], bob);
            break;
        }
    }
    ask(
        &mut a,
        json!({"type": "send", "client_id": "2", "conversation_id": conv, "body": "bob is gone"}),
    )
    .await;
    assert!(
        b.quiet_for(400).await,
        "a removed member got a frame of the conversation"
    );
    let e = ask(
        &mut b,
        json!({"type": "send", "client_id": "b9", "conversation_id": conv, "body": "let me in"}),
    )
    .await;
    assert_eq!(e["code"], "not_member");
    let e = ask(&mut b, json!({"type": "typing", "conversation_id": conv})).await;
    assert_eq!(e["code"], "not_member");
    let r = app
        .get(&format!("/api/v1/conversations/{conv}/messages"), Some(&bt))
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app.get(&one, Some(&bt)).await;
    assert_problem(r, 404, "not_found").await;

    // Leaving, and handing the group on.
    assert_eq!(
        app.delete(&format!("{path}/{carol}"), Some(&ct))
            .await
            .status(),
        204
    );
    let r = app.patch(&one, Some(&at), &json!({"owner_id": dave})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["owner_id"], dave);
    assert_problem(
        app.post(&path, Some(&at), &add(vec![carol])).await,
        403,
        "forbidden",
    )
    .await;
    // The owner leaving hands it to the lowest remaining id.
    assert_eq!(
        app.delete(&format!("{path}/{dave}"), Some(&dt))
            .await
            .status(),
        204
    );
    let v: Value = app.get(&one, Some(&at)).await.json().await.unwrap();
    assert_eq!(
        (v["owner_id"].as_i64(), v["member_ids"].clone()),
        (Some(alice), json!([alice]))
    );
    let kinds: Vec<String> = history(&app, &at, conv)
        .await
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "text",
            "member_added",
            "renamed",
            "history_changed",
            "member_added",
            "member_removed",
            "text",
            "member_removed",
            "owner_changed",
            "member_removed",
            "owner_changed"
        ]
    );
}
both_backends!(groups_change, super::groups_change);

async fn only_groups_change_and_blocks_hold(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (eve, et) = app.register("eve").await;
    let mut a = Ws::connect(&app, &at).await;
    let ack = ask(
        &mut a,
        json!({"type": "send", "client_id": "d", "to_user_id": bob, "body": "hi"}),
    )
    .await;
    let direct = ack["conversation_id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/conversations/{direct}"),
            Some(&at),
            &json!({"title": "us"}),
        )
        .await;
    assert_problem(r, 409, "invalid_state").await;
    let r = app
        .post(
            &format!("/api/v1/conversations/{direct}/members"),
            Some(&at),
            &json!({"user_ids": [eve]}),
        )
        .await;
    assert_problem(r, 409, "invalid_state").await;
    let r = app
        .delete(
            &format!("/api/v1/conversations/{direct}/members/{bob}"),
            Some(&at),
        )
        .await;
    assert_problem(r, 409, "invalid_state").await;

    // Eve blocks alice: alice can neither start a group with her nor add her.
    assert_eq!(
        app.post(
            &format!("/api/v1/users/{alice}/block"),
            Some(&et),
            &json!({})
        )
        .await
        .status(),
        200
    );
    let before: Value = app
        .get("/api/v1/conversations", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_problem(create(&app, &at, &[eve], json!({})).await, 403, "blocked").await;
    assert_problem(
        create(&app, &et, &[alice, bob], json!({})).await,
        403,
        "blocked",
    )
    .await;
    let after: Value = app
        .get("/api/v1/conversations", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        before["items"].as_array().unwrap().len(),
        after["items"].as_array().unwrap().len()
    );
    let g: Value = create(&app, &at, &[bob], json!({"history_visibility": "full"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["history_visibility"], "full");
    let conv = g["conversation_id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/conversations/{conv}/members"),
            Some(&at),
            &json!({"user_ids": [eve]}),
        )
        .await;
    assert_problem(r, 403, "blocked").await;
    let v: Value = app
        .get(&format!("/api/v1/conversations/{conv}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["member_ids"], json!([alice, bob]));
    assert_eq!(v["last_seq"], 0);
    assert_problem(
        create(&app, &at, &[bob], json!({"history_visibility": "never"})).await,
        400,
        "invalid_input",
    )
    .await;
    let _ = bt;
}
both_backends!(
    only_groups_change_and_blocks_hold,
    super::only_groups_change_and_blocks_hold
);

async fn group_admins_manage_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    let (dave, dt) = app.register("dave").await;
    let g: Value = create(&app, &at, &[bob, carol], json!({}))
        .await
        .json()
        .await
        .unwrap();
    let conv = g["conversation_id"].as_i64().unwrap();
    let members = format!("/api/v1/conversations/{conv}/members");
    let one = format!("/api/v1/conversations/{conv}");
    // Only the owner names admins, and not itself.
    let r = app
        .patch(
            &format!("{members}/{bob}"),
            Some(&ct),
            &json!({"admin": true}),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app
        .patch(
            &format!("{members}/{alice}"),
            Some(&at),
            &json!({"admin": true}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let r = app
        .patch(
            &format!("{members}/{dave}"),
            Some(&at),
            &json!({"admin": true}),
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .patch(
            &format!("{members}/{bob}"),
            Some(&at),
            &json!({"admin": "yes"}),
        )
        .await;
    assert_problem(r, 400, "invalid_input").await;
    let mut c = Ws::connect(&app, &ct).await;
    let r = app
        .patch(
            &format!("{members}/{bob}"),
            Some(&at),
            &json!({"admin": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["admin_ids"], json!([bob]));
    let m = c.recv_type("message").await;
    assert_eq!(
        (
            m["kind"].as_str(),
            m["data"]["user_id"].as_i64(),
            m["data"]["admin"].as_bool()
        ),
        (Some("admin_changed"), Some(bob), Some(true))
    );

    // An admin adds, renames and removes members, but not the owner or other admins.
    assert_eq!(
        app.post(&members, Some(&bt), &json!({"user_ids": [dave]}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.patch(&one, Some(&bt), &json!({"title": "by bob"}))
            .await
            .status(),
        200
    );
    assert_problem(
        app.patch(&one, Some(&bt), &json!({"owner_id": bob})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.patch(&one, Some(&bt), &json!({"history_visibility": "full"}))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.delete(&format!("{members}/{alice}"), Some(&bt)).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post(&members, Some(&ct), &json!({"user_ids": [dave]}))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.delete(&format!("{members}/{carol}"), Some(&bt))
            .await
            .status(),
        204
    );
    // Demoted, bob manages nothing; an admin who leaves is no admin.
    let r = app
        .patch(
            &format!("{members}/{bob}"),
            Some(&at),
            &json!({"admin": false}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["admin_ids"], json!([]));
    assert_problem(
        app.delete(&format!("{members}/{dave}"), Some(&bt)).await,
        403,
        "forbidden",
    )
    .await;
    app.patch(
        &format!("{members}/{dave}"),
        Some(&at),
        &json!({"admin": true}),
    )
    .await;
    assert_eq!(
        app.delete(&format!("{members}/{dave}"), Some(&dt))
            .await
            .status(),
        204
    );
    let v: Value = app.get(&one, Some(&at)).await.json().await.unwrap();
    assert_eq!(
        (v["admin_ids"].clone(), v["member_ids"].clone()),
        (json!([]), json!([alice, bob]))
    );
}
both_backends!(
    group_admins_manage_members,
    super::group_admins_manage_members
);

async fn late_members_do_not_read_edits_of_earlier_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    let g: Value = create(&app, &at, &[bob], json!({}))
        .await
        .json()
        .await
        .unwrap();
    let conv = g["conversation_id"].as_i64().unwrap();
    let mut a = Ws::connect(&app, &at).await;
    ask(&mut a, json!({"type": "send", "client_id": "s", "conversation_id": conv, "body": "the secret plan"})).await;
    let r = app
        .post(
            &format!("/api/v1/conversations/{conv}/members"),
            Some(&at),
            &json!({"user_ids": [carol]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut c = Ws::connect(&app, &ct).await;
    let mut b = Ws::connect(&app, &bt).await;
    let ack = ask(
        &mut a,
        json!({"type": "edit", "conversation_id": conv, "seq": 1, "body": "the new secret plan"}),
    )
    .await;
    assert_eq!(ack["seq"], 3);
    // A member since the start gets it; the one who joined at seq 2 does not.
    assert_eq!(b.recv_type("message").await["body"], "the new secret plan");
    assert!(
        c.quiet_for(400).await,
        "a late member got an edit of an earlier message"
    );
    let items = history(&app, &ct, conv).await;
    assert_eq!(
        items
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(
        (items[1]["kind"].as_str(), items[1]["body"].as_str()),
        (Some("edit"), Some(""))
    );
    c.send(json!({"type": "sync", "conversation_id": conv, "after_seq": 0}))
        .await;
    assert_eq!(c.recv_type("message").await["seq"], 2);
    let edit = c.recv_type("message").await;
    assert_eq!(
        (edit["seq"].as_i64(), edit["body"].as_str()),
        (Some(3), Some(""))
    );
    // Bob still reads it in full.
    assert_eq!(
        history(&app, &bt, conv).await[2]["body"],
        "the new secret plan"
    );
}
both_backends!(
    late_members_do_not_read_edits_of_earlier_messages,
    super::late_members_do_not_read_edits_of_earlier_messages
);
