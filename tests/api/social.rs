//! Follows, posts, the feed, likes, comments, notifications.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp};
use crate::ws::Ws;

async fn post(app: &TestApp, token: &str, body: &str) -> Value {
    let r = app
        .post("/api/v1/posts", Some(token), &json!({"body": body}))
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn feed_push_and_paging(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    for who in [bob, carol] {
        let r = app
            .post(
                &format!("/api/v1/users/{who}/follow"),
                Some(&at),
                &json!({}),
            )
            .await;
        assert_eq!(r.status(), 200);
        // Idempotent.
        assert_eq!(
            app.post(
                &format!("/api/v1/users/{who}/follow"),
                Some(&at),
                &json!({})
            )
            .await
            .status(),
            200
        );
    }
    let mut a = Ws::connect(&app, &at).await;
    let p = post(&app, &bt, "sunrise at the summit").await;
    assert_eq!(p["author_id"], bob);
    assert_eq!(
        (p["like_count"].as_i64(), p["comment_count"].as_i64()),
        (Some(0), Some(0))
    );
    let pushed = a.recv_type("post").await;
    assert_eq!(pushed["post"], p);

    let mut expected = vec![p["post_id"].as_i64().unwrap()];
    for i in 0..4 {
        let author = if i % 2 == 0 { &ct } else { &at };
        expected.push(
            post(&app, author, &format!("post {i}")).await["post_id"]
                .as_i64()
                .unwrap(),
        );
    }
    let (_, dt) = app.register("dave").await;
    post(&app, &dt, "not followed").await;
    expected.reverse();
    // Newest first, two per page, a new post arriving midway does not disturb paging.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/feed?limit=2&cursor={c}"),
            None => "/api/v1/feed?limit=2".to_owned(),
        };
        let page: Value = app.get(&path, Some(&at)).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["post_id"].as_i64().unwrap());
        }
        if cursor.is_none() {
            post(&app, &bt, "arrives while paging").await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    // Exactly a page's worth left: the last page says so (next_cursor null).
    let all: Value = app
        .get("/api/v1/feed?limit=200", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    let n = all["items"].as_array().unwrap().len();
    let exact: Value = app
        .get(&format!("/api/v1/feed?limit={n}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(exact["items"].as_array().unwrap().len(), n);
    assert_eq!(
        exact["next_cursor"],
        Value::Null,
        "no cursor when nothing is left"
    );
    assert_problem(
        app.get("/api/v1/feed?limit=201", Some(&at)).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.get("/api/v1/feed?cursor=%%%", Some(&at)).await,
        400,
        "invalid_input",
    )
    .await;
    // Unknown query parameters are ignored.
    assert_eq!(
        app.get("/api/v1/feed?whatever=1", Some(&at)).await.status(),
        200
    );

    // Unfollow removes them from the feed.
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/users/{carol}/follow")))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let page: Value = app
        .get("/api/v1/feed?limit=200", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["author_id"] != carol));
}
both_backends!(feed_push_and_paging, super::feed_push_and_paging);

async fn likes_comments_and_bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (_, bt) = app.register("bob").await;
    let p = post(&app, &at, "hello").await;
    let id = p["post_id"].as_i64().unwrap();
    for _ in 0..2 {
        let r = app
            .post(&format!("/api/v1/posts/{id}/like"), Some(&bt), &json!({}))
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["like_count"], 1, "likes are idempotent");
        assert_eq!(v["liked_by_me"], true);
    }
    // Each reader sees whether they like it: bob does, alice (the author) not.
    let as_bob: Value = app
        .get(&format!("/api/v1/posts/{id}"), Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    let as_alice: Value = app
        .get(&format!("/api/v1/posts/{id}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            as_bob["liked_by_me"].as_bool(),
            as_alice["liked_by_me"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let feed: Value = app
        .get("/api/v1/feed", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["items"][0]["liked_by_me"], false, "{feed}");
    app.post(&format!("/api/v1/posts/{id}/like"), Some(&at), &json!({}))
        .await;
    let feed: Value = app
        .get("/api/v1/feed", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["items"][0]["liked_by_me"], true, "{feed}");
    let unliked: Value = app
        .delete(&format!("/api/v1/posts/{id}/like"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            unliked["liked_by_me"].as_bool(),
            unliked["like_count"].as_i64()
        ),
        (Some(false), Some(1))
    );
    let r = app
        .post(
            &format!("/api/v1/posts/{id}/comments"),
            Some(&bt),
            &json!({"body": "nice"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["post_id"], id);
    let p: Value = app
        .get(&format!("/api/v1/posts/{id}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (p["like_count"].as_i64(), p["comment_count"].as_i64()),
        (Some(1), Some(1))
    );
    for bad in [
        json!({"body": ""}),
        json!({"body": "  "}),
        json!({"body": "x".repeat(2001)}),
        json!({"body": 1}),
        json!({"text": "hi"}),
    ] {
        assert_problem(
            app.post("/api/v1/posts", Some(&at), &bad).await,
            400,
            "invalid_input",
        )
        .await;
    }
    assert_problem(
        app.post("/api/v1/posts/999999/like", Some(&bt), &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/users/999999/follow", Some(&bt), &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/posts", None, &json!({"body": "anon"}))
            .await,
        401,
        "unauthorized",
    )
    .await;
}
both_backends!(
    likes_comments_and_bad_input,
    super::likes_comments_and_bad_input
);

async fn blocked_users_cannot_see_posts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    app.post(
        &format!("/api/v1/users/{bob}/follow"),
        Some(&at),
        &json!({}),
    )
    .await;
    let p = post(&app, &bt, "bob's post").await;
    let id = p["post_id"].as_i64().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/posts/{id}"), Some(&at))
            .await
            .status(),
        200
    );
    app.post(
        &format!("/api/v1/users/{alice}/block"),
        Some(&bt),
        &json!({}),
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/posts/{id}"), Some(&at)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post(&format!("/api/v1/posts/{id}/like"), Some(&at), &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    let page: Value = app
        .get("/api/v1/feed", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert!(page["items"].as_array().unwrap().is_empty());
    assert_problem(
        app.post(
            &format!("/api/v1/users/{bob}/follow"),
            Some(&at),
            &json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}
both_backends!(
    blocked_users_cannot_see_posts,
    super::blocked_users_cannot_see_posts
);

async fn notifications_from_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let mut b = Ws::connect(&app, &bt).await;
    app.post(
        &format!("/api/v1/users/{bob}/follow"),
        Some(&at),
        &json!({}),
    )
    .await;
    // Through the outbox, the bus and the notifier, pushed live...
    let n = b.recv_type("notification").await;
    assert_eq!(n["kind"], "user.followed");
    assert_eq!(n["data"]["follower_id"], alice);
    // ...and stored once, however often the follow is repeated.
    app.post(
        &format!("/api/v1/users/{bob}/follow"),
        Some(&at),
        &json!({}),
    )
    .await;
    let list: Value = app
        .get("/api/v1/notifications", Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["notification_id"], n["notification_id"]);
    assert_eq!(items[0]["read"], false);
    let up_to = items[0]["notification_id"].as_i64().unwrap();
    let r = app
        .post(
            "/api/v1/notifications/read",
            Some(&bt),
            &json!({"up_to_id": up_to}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let list: Value = app
        .get("/api/v1/notifications", Some(&bt))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["read"], true);
    assert_problem(
        app.post(
            "/api/v1/notifications/read",
            Some(&bt),
            &json!({"up_to_id": -1}),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    // Alice has none.
    let list: Value = app
        .get("/api/v1/notifications", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
}
both_backends!(notifications_from_events, super::notifications_from_events);

/// CONTRACT v2: profiles with counts, member search by name (any script,
/// wildcards literal), followers and following; blocks hide both ways.
async fn profiles_search_and_follow_lists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (carol, ct) = app.register("carol").await;
    let (dave, dt) = app.register("dave").await;
    let (under, _) = app.register("under_score").await;
    let (_, _) = app.register("underxscore").await;
    let follow = |who: i64, token: String| {
        let app = &app;
        async move {
            let r = app
                .post(
                    &format!("/api/v1/users/{who}/follow"),
                    Some(&token),
                    &json!({}),
                )
                .await;
            assert_eq!(r.status(), 200);
        }
    };
    follow(bob, at.clone()).await;
    follow(bob, ct.clone()).await;
    follow(bob, dt.clone()).await;
    follow(carol, bt.clone()).await;
    post(&app, &bt, "a first post").await;
    let r = app
        .patch(
            "/api/v1/me",
            Some(&dt),
            &json!({"display_name": "Élodie 张伟", "bio": "walks"}),
        )
        .await;
    assert_eq!(r.status(), 200);

    // A profile and how the caller stands to it.
    let p: Value = app
        .get(&format!("/api/v1/users/{bob}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            p["user_id"].as_i64(),
            p["username"].as_str(),
            p["display_name"].as_str()
        ),
        (Some(bob), Some("bob"), Some("bob"))
    );
    assert_eq!(
        (
            p["followers"].as_i64(),
            p["following"].as_i64(),
            p["posts"].as_i64(),
            p["trips_organized"].as_i64()
        ),
        (Some(3), Some(1), Some(1), Some(0))
    );
    assert_eq!(
        (p["followed_by_me"].as_bool(), p["blocked_by_me"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(p["avatar_url"].is_null());
    let d: Value = app
        .get(&format!("/api/v1/users/{dave}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (d["bio"].as_str(), d["followed_by_me"].as_bool()),
        (Some("walks"), Some(false))
    );

    // Search: username or display name, case-insensitive in any script.
    let names = |v: Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user_id"].as_i64().unwrap())
            .collect()
    };
    let search = |q: &str| {
        let (app, at, q) = (&app, at.clone(), q.to_owned());
        async move {
            let r = app
                .get(&format!("/api/v1/users?q={}", urlencode(&q)), Some(&at))
                .await;
            assert_eq!(r.status(), 200, "{q}");
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(names(search("BO").await), vec![bob]);
    assert_eq!(names(search("élo").await), vec![dave]);
    assert_eq!(names(search("ÉLODIE").await), vec![dave]);
    assert_eq!(names(search("da").await), vec![dave]);
    assert_eq!(names(search("under_").await), vec![under], "_ is literal");
    assert!(names(search("%").await).is_empty(), "% is literal");
    let item = &search("bob").await["items"][0];
    assert_eq!(item["username"], "bob");
    assert!(item.as_object().unwrap().contains_key("avatar_url"));
    let page: Value = app
        .get("/api/v1/users?q=under&limit=1", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(
            &format!("/api/v1/users?q=under&limit=1&cursor={next}"),
            Some(&at),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_ne!(rest["items"][0]["user_id"], page["items"][0]["user_id"]);

    // Follow lists, newest first, paged.
    let f: Value = app
        .get(&format!("/api/v1/users/{bob}/followers"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(f), vec![dave, carol, alice]);
    let g: Value = app
        .get(&format!("/api/v1/users/{bob}/following"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(g), vec![carol]);
    let f1: Value = app
        .get(&format!("/api/v1/users/{bob}/followers?limit=2"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    let next = f1["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(names(f1), vec![dave, carol]);
    let f2: Value = app
        .get(
            &format!("/api/v1/users/{bob}/followers?limit=2&cursor={next}"),
            Some(&at),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(f2.clone()), vec![alice]);
    assert!(f2["next_cursor"].is_null());

    // Carol blocks Alice: they see nothing of each other.
    let r = app
        .post(
            &format!("/api/v1/users/{alice}/block"),
            Some(&ct),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_problem(
        app.get(&format!("/api/v1/users/{carol}"), Some(&at)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/users/{alice}"), Some(&ct)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/users/{carol}/followers"), Some(&at))
            .await,
        404,
        "not_found",
    )
    .await;
    assert!(names(search("carol").await).is_empty());
    let f: Value = app
        .get(&format!("/api/v1/users/{bob}/followers"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(f), vec![dave, alice]);
    let mine: Value = app
        .get(&format!("/api/v1/users/{alice}"), Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["blocked_by_me"], false);
    let theirs: Value = app
        .get(&format!("/api/v1/users/{bob}"), Some(&ct))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        theirs["followers"], 3,
        "counts are the member's, not the viewer's"
    );

    // Bad input: 400 or 404, nothing changes.
    for q in ["", "%20%20", &"x".repeat(65), "a%0Ab"] {
        assert_problem(
            app.get(&format!("/api/v1/users?q={q}"), Some(&at)).await,
            400,
            "invalid_input",
        )
        .await;
    }
    assert_problem(
        app.get("/api/v1/users", Some(&at)).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.get("/api/v1/users?q=bo&limit=0", Some(&at)).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.get("/api/v1/users?q=bo&cursor=zz", Some(&at)).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.get(
            &format!("/api/v1/users/{bob}/followers?cursor=zz"),
            Some(&at),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.get("/api/v1/users/abc", Some(&at)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/users/999999", Some(&at)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/users/999999/following", Some(&at)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/users/{bob}"), None).await,
        401,
        "unauthorized",
    )
    .await;
}
both_backends!(
    profiles_search_and_follow_lists,
    super::profiles_search_and_follow_lists
);

/// Percent-encodes a query value (UTF-8 bytes).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// CONTRACT v2: the author edits a post; the author or an admin deletes a
/// post or a comment; a like is taken back. Others get 404 and nothing changes.
async fn edits_deletions_and_unlikes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, at) = app.register("alice").await;
    let (bob, bt) = app.register("bob").await;
    let (_, ct) = app.register("carol").await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            &format!("/api/v1/users/{bob}/follow"),
            Some(&at),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p = post(&app, &bt, "first words").await;
    let id = p["post_id"].as_i64().unwrap();
    assert!(p["edited_at"].is_null());
    let get = |token: String| {
        let app = &app;
        async move { app.get(&format!("/api/v1/posts/{id}"), Some(&token)).await }
    };
    assert_eq!(
        app.post(&format!("/api/v1/posts/{id}/like"), Some(&at), &json!({}))
            .await
            .status(),
        200
    );
    let comment = |token: String, body: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post(
                    &format!("/api/v1/posts/{id}/comments"),
                    Some(&token),
                    &json!({"body": body}),
                )
                .await;
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["comment_id"]
                .as_i64()
                .unwrap()
        }
    };
    let c1 = comment(at.clone(), "nice").await;
    let c2 = comment(ct.clone(), "spam").await;

    // Editing: the author only; bad bodies change nothing.
    let path = format!("/api/v1/posts/{id}");
    assert_problem(
        app.patch(&path, Some(&at), &json!({"body": "hijacked"}))
            .await,
        404,
        "not_found",
    )
    .await;
    for bad in [
        json!({"body": "  "}),
        json!({"body": "x".repeat(2_001)}),
        json!({"body": "b", "x": 1}),
        json!({}),
    ] {
        assert_problem(
            app.patch(&path, Some(&bt), &bad).await,
            400,
            "invalid_input",
        )
        .await;
    }
    assert_eq!(
        get(at.clone()).await.json::<Value>().await.unwrap()["body"],
        "first words"
    );
    let r = app
        .patch(&path, Some(&bt), &json!({"body": "better words"}))
        .await;
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(edited["body"], "better words");
    assert!(edited["edited_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (
            edited["like_count"].as_i64(),
            edited["comment_count"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let feed: Value = app
        .get("/api/v1/feed", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["items"][0]["body"], "better words");

    // Unlike: idempotent, for anyone who can see the post.
    for token in [&at, &at, &ct] {
        let r = app
            .delete(&format!("/api/v1/posts/{id}/like"), Some(token))
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["like_count"], 0);
    }

    // Comments: the author or an admin.
    assert_problem(
        app.delete(&format!("/api/v1/comments/{c1}"), Some(&ct))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.delete(&format!("/api/v1/comments/{c1}"), Some(&bt))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        app.delete(&format!("/api/v1/comments/{c1}"), Some(&at))
            .await
            .status(),
        204
    );
    assert_problem(
        app.delete(&format!("/api/v1/comments/{c1}"), Some(&at))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        app.delete(&format!("/api/v1/comments/{c2}"), Some(&admin))
            .await
            .status(),
        204
    );
    assert_eq!(
        get(at.clone()).await.json::<Value>().await.unwrap()["comment_count"],
        0
    );
    for bad in [
        "/api/v1/comments/abc",
        "/api/v1/comments/0",
        "/api/v1/posts/abc",
    ] {
        assert_problem(app.delete(bad, Some(&at)).await, 404, "not_found").await;
    }

    // Posts: the author or an admin; gone from the feed and every route.
    assert_problem(app.delete(&path, Some(&at)).await, 404, "not_found").await;
    assert_eq!(get(at.clone()).await.status(), 200);
    assert_eq!(app.delete(&path, Some(&bt)).await.status(), 204);
    assert_problem(get(at.clone()).await, 404, "not_found").await;
    assert_problem(app.delete(&path, Some(&bt)).await, 404, "not_found").await;
    assert_problem(
        app.patch(&path, Some(&bt), &json!({"body": "again"})).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.post(&format!("{path}/like"), Some(&at), &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.delete(&format!("{path}/like"), Some(&at)).await,
        404,
        "not_found",
    )
    .await;
    let feed: Value = app
        .get("/api/v1/feed", Some(&at))
        .await
        .json()
        .await
        .unwrap();
    assert!(feed["items"].as_array().unwrap().is_empty());
    let other = post(&app, &ct, "off topic").await["post_id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/posts/{other}"), Some(&admin))
            .await
            .status(),
        204
    );
    assert_problem(app.delete(&path, None).await, 401, "unauthorized").await;
}
both_backends!(
    edits_deletions_and_unlikes,
    super::edits_deletions_and_unlikes
);
