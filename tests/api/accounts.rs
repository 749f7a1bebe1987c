//! Accounts per the contract: register, login, refresh, logout, me, invites,
//! roles, bootstrap admin, bans, tokens.

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_problem, Backend, TestApp, ADMIN, JWT_SECRET};

async fn register_login_me(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "Alice_1", "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let uid = v["user_id"].as_i64().unwrap();
    assert!(uid > 0 && uid < (1_i64 << 53));
    let token = v["token"].as_str().unwrap().to_owned();

    let me: Value = app
        .get("/api/v1/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], uid);
    assert_eq!(me["username"], "Alice_1");
    assert_eq!(me["display_name"], "Alice_1");
    assert_eq!(me["roles"], json!(["user"]));
    assert_eq!(me["inviter_id"], Value::Null);
    assert_eq!(me["invite_code"].as_str().unwrap().len(), 8);

    let r = app.login("Alice_1", "password-123").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user_id"], uid);
    // Usernames are case-insensitive for login and uniqueness.
    assert_eq!(app.login("alice_1", "password-123").await.status(), 200);
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "ALICE_1", "password": "password-456"}),
        )
        .await;
    assert_problem(r, 409, "username_taken").await;

    assert_problem(
        app.login("Alice_1", "wrong-password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.login("nobody_here", "password-123").await,
        401,
        "invalid_credentials",
    )
    .await;
}
both_backends!(register_login_me, super::register_login_me);

async fn invite_codes_bind_the_inviter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a_id, a_token) = app.register("inviter").await;
    let code = app
        .get("/api/v1/me", Some(&a_token))
        .await
        .json::<Value>()
        .await
        .unwrap()["invite_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "invitee", "password": "password-123", "invite_code": code.to_lowercase()}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = app
        .get("/api/v1/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["inviter_id"], a_id);

    // An unknown code is 400 and creates nothing.
    for bad in ["ZZZZZZZZ", "nope", ""] {
        let r = app
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"username": "orphan", "password": "password-123", "invite_code": bad}),
            )
            .await;
        assert_problem(r, 400, "invalid_input").await;
    }
    assert_problem(
        app.login("orphan", "password-123").await,
        401,
        "invalid_credentials",
    )
    .await;
    // PATCH cannot rebind the inviter: the field does not exist there.
    let r = app
        .patch("/api/v1/me", Some(&token), &json!({"inviter_id": 1}))
        .await;
    assert_problem(r, 400, "invalid_input").await;
}
both_backends!(
    invite_codes_bind_the_inviter,
    super::invite_codes_bind_the_inviter
);

async fn profile_updates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, token) = app.register("profiled").await;
    let r = app
        .patch(
            "/api/v1/me",
            Some(&token),
            &json!({"display_name": "小明 Ming", "bio": "hiking\nand tea"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["display_name"], "小明 Ming");
    assert_eq!(v["bio"], "hiking\nand tea");
    for bad in [
        json!({"display_name": ""}),
        json!({"display_name": "   "}),
        json!({"display_name": "x".repeat(65)}),
        json!({"display_name": "bell\u{7}"}),
        json!({"bio": "b".repeat(501)}),
        json!({"display_name": 42}),
    ] {
        let r = app.patch("/api/v1/me", Some(&token), &bad).await;
        assert_problem(r, 400, "invalid_input").await;
    }
    let me: Value = app
        .get("/api/v1/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["display_name"], "小明 Ming",
        "bad patches changed nothing"
    );
    // An empty patch is a no-op that returns the profile.
    let r = app.patch("/api/v1/me", Some(&token), &json!({})).await;
    assert_eq!(r.status(), 200);
}
both_backends!(profile_updates, super::profile_updates);

async fn username_and_password_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bad_names = [
        "ab".to_owned(),
        "a".repeat(33),
        "robert'); DROP TABLE users;--".to_owned(),
        "x' OR '1'='1".to_owned(),
        "tab\tname".to_owned(),
        "nul\u{0}name".to_owned(),
        "名字名字".to_owned(),
        "with space".to_owned(),
    ];
    for name in bad_names {
        let r = app
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"username": name, "password": "password-123"}),
            )
            .await;
        assert_problem(r, 400, "invalid_input").await;
    }
    for pw in ["short".to_owned(), "1234567".to_owned(), "p".repeat(129)] {
        let r = app
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"username": "valid_name", "password": pw}),
            )
            .await;
        assert_problem(r, 400, "invalid_input").await;
    }
    // The limits themselves are accepted.
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "abc", "password": "12345678"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({"username": "a".repeat(32), "password": "p".repeat(128)}),
        )
        .await;
    assert_eq!(r.status(), 201);
    // The SQL-looking name never became a user and the table is intact.
    assert_eq!(app.login("abc", "12345678").await.status(), 200);
}
both_backends!(
    username_and_password_rules,
    super::username_and_password_rules
);

#[derive(serde::Serialize)]
struct TestClaims {
    sub: String,
    sid: i64,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
}

fn sign(claims: &TestClaims, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn tokens_missing_forged_expired(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (uid, token) = app.register("tokened").await;
    assert_problem(app.get("/api/v1/me", None).await, 401, "unauthorized").await;
    assert_problem(
        app.get("/api/v1/me", Some("not-a-jwt")).await,
        401,
        "unauthorized",
    )
    .await;
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;

    let now = chrono::Utc::now().timestamp();
    let good = TestClaims {
        sub: uid.to_string(),
        sid: 1,
        iat: now,
        exp: now + 3600,
        iss: "tandem".into(),
        aud: "tandem-api".into(),
    };
    // Forged: right shape, wrong key.
    let forged = sign(&good, "another-secret-another-secret-another-secret");
    assert_problem(
        app.get("/api/v1/me", Some(&forged)).await,
        401,
        "unauthorized",
    )
    .await;
    // Expired: right key, past expiry.
    let expired = sign(
        &TestClaims {
            iat: now - 7200,
            exp: now - 3600,
            ..good
        },
        JWT_SECRET,
    );
    let p = assert_problem(
        app.get("/api/v1/me", Some(&expired)).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("expired"));
    // Wrong audience / issuer: right key.
    let wrong_aud = sign(
        &TestClaims {
            sub: uid.to_string(),
            sid: 1,
            iat: now,
            exp: now + 60,
            iss: "tandem".into(),
            aud: "other".into(),
        },
        JWT_SECRET,
    );
    assert_problem(
        app.get("/api/v1/me", Some(&wrong_aud)).await,
        401,
        "unauthorized",
    )
    .await;
    let wrong_iss = sign(
        &TestClaims {
            sub: uid.to_string(),
            sid: 1,
            iat: now,
            exp: now + 60,
            iss: "evil".into(),
            aud: "tandem-api".into(),
        },
        JWT_SECRET,
    );
    assert_problem(
        app.get("/api/v1/me", Some(&wrong_iss)).await,
        401,
        "unauthorized",
    )
    .await;
    // Tampered payload with the original signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_problem(
        app.get("/api/v1/me", Some(&parts.join("."))).await,
        401,
        "unauthorized",
    )
    .await;
    // The real token still works.
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.status(), 200);
}
both_backends!(
    tokens_missing_forged_expired,
    super::tokens_missing_forged_expired
);

async fn refresh_and_logout(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let (uid, first) = app.register("sessions").await;
    let r = app
        .post("/api/v1/auth/refresh", Some(&first), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user_id"], uid);
    let second = v["token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);

    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // That token stops at once; the other session is untouched.
    assert_problem(
        app.get("/api/v1/me", Some(&first)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.post("/api/v1/auth/refresh", Some(&first), &json!({}))
            .await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.get("/api/v1/me", Some(&second)).await.status(), 200);

    // The revocation survives a crash (rebuilt from the database on start).
    app.restart_hard();
    assert_problem(
        app.get("/api/v1/me", Some(&first)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.get("/api/v1/me", Some(&second)).await.status(), 200);
}
both_backends!(refresh_and_logout, super::refresh_and_logout);

async fn bootstrap_admin_and_bans(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let me: Value = app
        .get("/api/v1/me", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], ADMIN.0);
    assert!(me["roles"].as_array().unwrap().contains(&json!("admin")));

    let (uid, user_token) = app.register("troublemaker").await;
    let (_, other_token) = app.register("bystander").await;
    // Only admins ban.
    let r = app
        .post(
            &format!("/api/v1/admin/users/{uid}/ban"),
            Some(&other_token),
            &json!({}),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app
        .post(&format!("/api/v1/admin/users/{uid}/ban"), None, &json!({}))
        .await;
    assert_problem(r, 401, "unauthorized").await;

    let r = app
        .post(
            &format!("/api/v1/admin/users/{uid}/ban"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["banned"], true);
    // Tokens stop at once; login is refused.
    assert_problem(
        app.get("/api/v1/me", Some(&user_token)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.login("troublemaker", "password-123").await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.get("/api/v1/me", Some(&other_token)).await.status(),
        200
    );

    // Still banned after a crash.
    app.restart_hard();
    assert_problem(
        app.get("/api/v1/me", Some(&user_token)).await,
        401,
        "unauthorized",
    )
    .await;
    let admin = app.admin_token().await;

    let r = app
        .post(
            &format!("/api/v1/admin/users/{uid}/unban"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.login("troublemaker", "password-123").await.status(),
        200
    );
    // Tokens revoked by the ban stay revoked.
    assert_problem(
        app.get("/api/v1/me", Some(&user_token)).await,
        401,
        "unauthorized",
    )
    .await;
}
both_backends!(bootstrap_admin_and_bans, super::bootstrap_admin_and_bans);

/// CONTRACT v2: a password change ends every other session (tokens 401 at
/// once, sockets closed), keeps this one; sessions are listed and ended one
/// by one; wrong or bad input changes nothing.
async fn password_and_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (uid, phone) = app.register("sessions_1").await;
    let login = |pw: &'static str| {
        let app = &app;
        async move { app.login("sessions_1", pw).await }
    };
    let token_of = |v: Value| v["token"].as_str().unwrap().to_owned();
    let laptop = token_of(login("password-123").await.json().await.unwrap());
    let tablet = token_of(login("password-123").await.json().await.unwrap());
    let (_, other) = app.register("sessions_2").await;

    // Three live sessions, newest first; `current` marks the caller's.
    let page: Value = app
        .get("/api/v1/me/sessions", Some(&laptop))
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let ids: Vec<i64> = items
        .iter()
        .map(|s| s["session_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(
        items[1]["current"], true,
        "the laptop's session is the middle one"
    );
    assert!(items[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let page: Value = app
        .get("/api/v1/me/sessions?limit=2", Some(&laptop))
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest: Value = app
        .get(
            &format!("/api/v1/me/sessions?limit=2&cursor={cursor}"),
            Some(&laptop),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"][0]["session_id"].as_i64(), Some(ids[2]));
    assert!(rest["next_cursor"].is_null());
    assert_problem(
        app.get("/api/v1/me/sessions?limit=0", Some(&laptop)).await,
        400,
        "invalid_input",
    )
    .await;

    // Ending one: its token is refused at once, its socket closes; others live.
    let mut tablet_ws = crate::ws::Ws::connect(&app, &tablet).await;
    let tablet_session = ids[0];
    assert_eq!(
        app.delete(
            &format!("/api/v1/me/sessions/{tablet_session}"),
            Some(&laptop)
        )
        .await
        .status(),
        204
    );
    assert_problem(
        app.get("/api/v1/me", Some(&tablet)).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(matches!(
        tablet_ws.ended_within(5).await,
        crate::ws::Ended::Closed(1008)
    ));
    assert_problem(
        app.post("/api/v1/auth/refresh", Some(&tablet), &json!({}))
            .await,
        401,
        "unauthorized",
    )
    .await;
    let r = app
        .post("/api/v1/auth/refresh", Some(&laptop), &json!({}))
        .await;
    assert_eq!(r.status(), 200, "a live session refreshes");
    let refreshed = token_of(r.json().await.unwrap());
    // Not live any more, someone else's, or nonsense: 404, nothing changes.
    for path in [
        format!("/api/v1/me/sessions/{tablet_session}"),
        "/api/v1/me/sessions/12345".to_owned(),
        "/api/v1/me/sessions/abc".to_owned(),
    ] {
        assert_problem(app.delete(&path, Some(&laptop)).await, 404, "not_found").await;
    }
    let others: Value = app
        .get("/api/v1/me/sessions", Some(&other))
        .await
        .json()
        .await
        .unwrap();
    let theirs = others["items"][0]["session_id"].as_i64().unwrap();
    assert_problem(
        app.delete(&format!("/api/v1/me/sessions/{theirs}"), Some(&laptop))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.get("/api/v1/me", Some(&other)).await.status(), 200);

    // A wrong current password or a bad new one changes nothing.
    let change = |cur: &str, new: &str| json!({"current_password": cur, "new_password": new});
    assert_problem(
        app.post(
            "/api/v1/me/password",
            Some(&laptop),
            &change("wrong-password", "brand-new-pass"),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post(
            "/api/v1/me/password",
            Some(&laptop),
            &change("password-123", "short"),
        )
        .await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.post("/api/v1/me/password", Some(&laptop), &json!({"current_password": "password-123", "new_password": "brand-new-pass", "extra": 1})).await,
        400,
        "invalid_input",
    )
    .await;
    assert_problem(
        app.post(
            "/api/v1/me/password",
            None,
            &change("password-123", "brand-new-pass"),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.get("/api/v1/me", Some(&phone)).await.status(), 200);
    assert_eq!(login("password-123").await.status(), 200);

    // The change: 200 with the profile; the phone's session ends, the laptop's stays.
    let mut phone_ws = crate::ws::Ws::connect(&app, &phone).await;
    let r = app
        .post(
            "/api/v1/me/password",
            Some(&laptop),
            &change("password-123", "brand-new-pass"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["user_id"].as_i64(),
        Some(uid)
    );
    assert_problem(
        app.get("/api/v1/me", Some(&phone)).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(matches!(
        phone_ws.ended_within(5).await,
        crate::ws::Ended::Closed(1008)
    ));
    assert_eq!(app.get("/api/v1/me", Some(&laptop)).await.status(), 200);
    // The session the laptop refreshed into was another session: it ended too.
    assert_problem(
        app.get("/api/v1/me", Some(&refreshed)).await,
        401,
        "unauthorized",
    )
    .await;
    let left: Value = app
        .get("/api/v1/me/sessions", Some(&laptop))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert_eq!(login("password-123").await.status(), 401);
    assert_eq!(login("brand-new-pass").await.status(), 200);
}
both_backends!(password_and_sessions, super::password_and_sessions);

/// Display names stored before search existed get their lowercase form by
/// Unicode rules at start (SQLite's `lower()` in the migration folds ASCII
/// only), once per database.
#[test]
fn display_names_are_lowercased_for_search_once() {
    use diesel::prelude::*;
    use tandem::storage::schema::{settings, users};
    let dir =
        std::env::temp_dir().join(format!("tandem-names-{}", crate::helpers::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let url: tandem::core::config::DatabaseUrl = format!("sqlite:{}", dir.join("n.db").display())
        .parse()
        .unwrap();
    let (pool, _) = tandem::server::app::migrate(&url).unwrap();
    let mut conn = pool.get().unwrap();
    let c: &mut tandem::storage::DbConn = &mut conn;
    // As the migration left a name written before it, on SQLite.
    let row = tandem::accounts::store::UserRow {
        id: 7,
        username: "elodie".into(),
        username_lower: "elodie".into(),
        display_name: "ÉLODIE Ωmega".into(),
        bio: String::new(),
        password_hash: "x".into(),
        roles: "user".into(),
        invite_code: "C7".into(),
        inviter_id: None,
        banned: false,
        created_at_ms: 0,
        display_name_lower: "Élodie Ωmega".into(),
        avatar_media_id: None,
    };
    tandem::accounts::store::insert_user(c, &row).unwrap();
    // Not refilled yet (the server refills at start; `migrate` alone does not).
    diesel::delete(settings::table.filter(settings::name.eq("display_name_lower_refilled")))
        .execute(c)
        .unwrap();
    assert_eq!(
        tandem::accounts::store::refill_display_names_lower(c).unwrap(),
        1
    );
    let lower: String = users::table
        .find(7)
        .select(users::display_name_lower)
        .first(c)
        .unwrap();
    assert_eq!(lower, "élodie ωmega");
    // Once per database.
    diesel::update(users::table.find(7))
        .set(users::display_name_lower.eq("stale"))
        .execute(c)
        .unwrap();
    assert_eq!(
        tandem::accounts::store::refill_display_names_lower(c).unwrap(),
        0
    );
    drop(conn);
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
}
