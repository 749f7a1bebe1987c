//! The journeys of issue 19, played in Chromium against the real server, on
//! both backends: chat (live messages, typing, read receipts, recovery after
//! going offline), buying and paying on the checkout page with the referrer's
//! rebate, a trip from request to group chat, a ban that logs an open page
//! out, and a rebate rule refused in place.

use serde_json::{json, Value};

use super::{available, Browser, Driver, DESKTOP, PHONE};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(chat_live_and_recovery, super::chat_journey);
both_backends!(buy_pay_and_rebate, super::purchase_journey);
both_backends!(trip_request_to_group_chat, super::trip_journey);
both_backends!(admin_bans_and_rule_errors, super::admin_journey);

/// Signs a browser in with a token (the login form is played in the chat journey).
async fn sign_in(b: &Browser, app: &TestApp, token: &str, path: &str) {
    b.goto(&app.url("/assets/icon.svg")).await;
    b.js(
        "localStorage.setItem('tandem.token', arguments[0])",
        json!([token]),
    )
    .await;
    b.goto(&app.url(path)).await;
}

async fn message_bodies(b: &Browser) -> Vec<String> {
    let v = b.js("return [...document.querySelectorAll('#messages li.msg .body')].map(e => e.textContent)", json!([])).await;
    serde_json::from_value(v).unwrap_or_default()
}

async fn chat_journey(backend: Backend) {
    if !available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let driver = Driver::start().await;
    let (a, b) = (driver.browser(PHONE).await, driver.browser(PHONE).await);

    // A signs up in the app; B (registered elsewhere) logs in with the form.
    a.goto(&app.url("/#/signup")).await;
    a.fill("#signup-username", "amei").await;
    a.fill("#signup-password", "password-123").await;
    a.click("#signup button[type=submit]").await;
    a.find("#conversations").await;
    let (b_id, _) = app.register("bolin").await;
    b.goto(&app.url("/")).await;
    b.fill("#login-username", "bolin").await;
    b.fill("#login-password", "password-123").await;
    b.click("#login button[type=submit]").await;
    b.find("#conversations").await;

    // A finds B and writes: B's list shows it unread, live.
    a.goto(&app.url(&format!("/#/user/{b_id}"))).await;
    a.click("#message-user").await;
    a.fill("#composer-input", "hello from amei").await;
    a.click("#send").await;
    a.wait_text("#messages", "hello from amei").await;
    b.wait_text("#conversations .unread", "1").await;
    b.screenshot("member-chats-phone").await;
    b.click("#conversations li.conversation a").await;
    b.wait_text("#messages", "hello from amei").await;

    // B read it: A sees the receipt. B types: A sees it. B answers: A reads it live.
    a.wait_text("#messages li.mine .receipt", "Read").await;
    b.fill("#composer-input", "hi").await;
    a.wait_text("#typing", "bolin is typing").await;
    b.fill("#composer-input", "hi amei").await;
    b.click("#send").await;
    a.wait_text("#messages", "hi amei").await;
    a.screenshot("member-chat-phone").await;

    // B loses the network; A writes three messages; B comes back and has
    // each exactly once, in order, without reloading the page.
    b.set_offline(true).await;
    b.wait_js(
        "B's socket closed",
        "return document.body.classList.contains('offline')",
    )
    .await;
    for m in ["while away 1", "while away 2", "while away 3"] {
        a.fill("#composer-input", m).await;
        a.click("#send").await;
        a.wait_text("#messages", m).await;
    }
    assert!(
        !message_bodies(&b)
            .await
            .iter()
            .any(|m| m.starts_with("while away")),
        "B was offline"
    );
    b.set_offline(false).await;
    b.wait_text("#messages", "while away 3").await;
    let expected = [
        "hello from amei",
        "hi amei",
        "while away 1",
        "while away 2",
        "while away 3",
    ];
    assert_eq!(message_bodies(&b).await, expected);
    // A reload shows the same history, still once each.
    b.goto(&app.url("/#/chats")).await;
    b.click("#conversations li.conversation a").await;
    b.wait_text("#messages", "while away 3").await;
    assert_eq!(message_bodies(&b).await, expected);
}

async fn purchase_journey(backend: Backend) {
    if !available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let rules = json!({"rules": [{"name": "all", "rate_bps": 500}], "referral_levels_bps": [1000], "hold_seconds": 3600});
    let r = crate::rebates::put_rules(&app, &admin, rules).await;
    assert_eq!(r.status(), 200);
    let (_, referrer) = app.register("referrer").await;
    let me: Value = app
        .get("/api/v1/me", Some(&referrer))
        .await
        .json()
        .await
        .unwrap();
    let code = me["invite_code"].as_str().unwrap().to_owned();
    let shop = crate::orders::shop(&app, "teashop").await;
    let pid = crate::orders::product(&app, &shop, "Longjing tea", "tea", 10_000, 5).await;

    let driver = Driver::start().await;
    let buyer = driver.browser(PHONE).await;
    // The invite link opens sign-up with the code filled in.
    buyer.goto(&app.url(&format!("/?invite={code}"))).await;
    let filled = buyer
        .js(
            "return document.getElementById('signup-invite_code').value",
            json!([]),
        )
        .await;
    assert_eq!(filled, Value::String(code.clone()));
    buyer.fill("#signup-username", "buyer").await;
    buyer.fill("#signup-password", "password-123").await;
    buyer.click("#signup button[type=submit]").await;
    buyer.find("#conversations").await;

    buyer.goto(&app.url(&format!("/#/product/{pid}"))).await;
    buyer
        .fill("#buy-shipping_address", "1 Nanjing Road, Shanghai")
        .await;
    buyer.screenshot("member-product-phone").await;
    buyer.click("#buy button[type=submit]").await;
    buyer.wait_text("#order-status", "Awaiting payment").await;
    buyer.click("#pay").await;
    buyer.wait_text("#checkout-amount", "¥100.00").await;
    buyer.screenshot("checkout-phone").await;
    buyer.click("#confirm-payment").await;
    buyer.wait_text("#order-status", "Paid").await;
    buyer.screenshot("member-order-paid-phone").await;
    if std::env::var("TANDEM_SCREENSHOTS_DIR").is_ok() {
        // The admin console's charts, with this order in them.
        let stats = driver.browser(DESKTOP).await;
        sign_in(&stats, &app, &admin, "/admin#/stats").await;
        stats.find("#chart-gmv").await;
        stats.screenshot("admin-stats-desktop").await;
    }

    // The referrer's wallet shows the pending commission (10 % of 100.00).
    let wallet = driver.browser(PHONE).await;
    sign_in(&wallet, &app, &referrer, "/#/wallet").await;
    let deadline = std::time::Instant::now() + super::WAIT;
    while !wallet.text("#wallet-pending").await.contains("¥10.00") {
        assert!(
            std::time::Instant::now() < deadline,
            "no pending rebate: {}",
            wallet.body_text().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        wallet.js("location.reload()", json!([])).await;
    }
    wallet.wait_text("#main", "Invitee's order").await;
    wallet.screenshot("member-wallet-phone").await;

    // The shop ships it from the merchant console.
    let console = driver.browser(DESKTOP).await;
    sign_in(&console, &app, &shop.owner_token, "/merchant").await;
    console.click("#shops a").await;
    console.find("#dashboard").await;
    console.screenshot("merchant-dashboard-desktop").await;
    console
        .goto(&app.url(&format!("/merchant#/orders/{}/paid", shop.merchant_id)))
        .await;
    console.find("li.order form").await;
    let form = console
        .js(
            "return document.querySelector('li.order form').id",
            json!([]),
        )
        .await;
    let form = form.as_str().unwrap().to_owned();
    console
        .fill(&format!("#{form}-carrier"), "SF Express")
        .await;
    console
        .fill(&format!("#{form}-tracking_no"), "SF123456")
        .await;
    console.click(&format!("#{form} button[type=submit]")).await;
    console
        .wait_js(
            "the order left the paid list",
            "return !document.querySelector('li.order form')",
        )
        .await;
    let path = format!(
        "/api/v1/merchants/{}/orders?status=shipped",
        shop.merchant_id
    );
    let shipped: Value = app
        .get(&path, Some(&shop.owner_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shipped["items"].as_array().map(Vec::len),
        Some(1),
        "{shipped}"
    );
    assert_eq!(
        shipped["items"][0]["tracking"]["tracking_no"], "SF123456",
        "{shipped}"
    );
    console.resize(PHONE).await;
    console
        .goto(&app.url(&format!("/merchant#/shop/{}", shop.merchant_id)))
        .await;
    console.find("#dashboard").await;
    console.screenshot("merchant-dashboard-phone").await;
}

async fn trip_journey(backend: Backend) {
    if !available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (_, organizer) = app.register("organizer").await;
    let (_, member) = app.register("traveller").await;
    let driver = Driver::start().await;
    let (o, m) = (driver.browser(PHONE).await, driver.browser(DESKTOP).await);

    sign_in(&o, &app, &organizer, "/#/trips").await;
    o.click("details summary").await;
    o.fill("#new-trip-destination", "Lijiang").await;
    o.js(
        "document.getElementById('new-trip-start_date').value = '2027-05-01';
         document.getElementById('new-trip-end_date').value = '2027-05-07';",
        json!([]),
    )
    .await;
    o.click("#new-trip button[type=submit]").await;
    o.find("#trip-members").await;
    let url = o.url().await;
    let trip_id = url.rsplit('/').next().unwrap().to_owned();

    sign_in(&m, &app, &member, "/#/trips").await;
    m.wait_text("#main", "Lijiang").await;
    m.screenshot("member-trips-desktop").await;
    m.goto(&app.url(&format!("/#/trip/{trip_id}"))).await;
    m.fill("#join-message", "I love hiking").await;
    m.click("#join button[type=submit]").await;
    m.find("#join-requested").await;

    o.js("location.reload()", json!([])).await;
    o.wait_text("li.request", "I love hiking").await;
    o.click("li.request button.accept").await;
    o.wait_text("#trip-members", "traveller").await;

    m.js("location.reload()", json!([])).await;
    m.click("#trip-chat").await;
    m.find("#composer-input").await;
    m.fill("#composer-input", "see you in Lijiang").await;
    m.click("#send").await;
    m.wait_text("#messages", "see you in Lijiang").await;
    o.click("#trip-chat").await;
    o.wait_text("#messages", "see you in Lijiang").await;
    o.fill("#composer-input", "welcome!").await;
    o.click("#send").await;
    m.wait_text("#messages", "welcome!").await;
}

async fn admin_journey(backend: Backend) {
    if !available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (member_id, member) = app.register("rulebreaker").await;
    let driver = Driver::start().await;
    let (page, admin) = (driver.browser(PHONE).await, driver.browser(DESKTOP).await);
    sign_in(&page, &app, &member, "/#/chats").await;
    page.find("#conversations").await;

    admin.goto(&app.url("/admin")).await;
    admin.fill("#login-username", crate::helpers::ADMIN.0).await;
    admin.fill("#login-password", crate::helpers::ADMIN.1).await;
    admin.click("#login button[type=submit]").await;
    admin.find("#chart-orders").await;
    admin.goto(&app.url("/admin#/users")).await;
    admin.fill("#user-search-q", "rulebreaker").await;
    admin.click("#user-search button[type=submit]").await;
    admin
        .click(&format!("li[data-user=\"{member_id}\"] button.ban"))
        .await;
    // The member's open page is logged out and says why.
    page.wait_text("#session-ended", "banned").await;
    let r = app.get("/api/v1/me", Some(&member)).await;
    assert_eq!(r.status(), 401);

    // A rule with an invalid rate: the error shows beside that field, and
    // the rule set is unchanged.
    let token = app.admin_token().await;
    let before: Value = app
        .get("/api/v1/admin/rebate-rules", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    admin.goto(&app.url("/admin#/rules")).await;
    admin.find("#rules-form").await;
    if admin
        .js(
            "return document.querySelectorAll('fieldset.rule').length",
            json!([]),
        )
        .await
        == json!(0)
    {
        admin.click("#rules-form button.secondary").await;
    }
    admin
        .fill("[data-path=\"rules[0].name\"] input", "everything")
        .await;
    admin
        .fill("[data-path=\"rules[0].rate_bps\"] input", "20000")
        .await;
    admin.click("#save-rules").await;
    admin
        .wait_text("[data-path=\"rules[0].rate_bps\"] .field-error", "10000")
        .await;
    let invalid = admin.js("return document.querySelector('[data-path=\"rules[0].rate_bps\"] input').getAttribute('aria-invalid')", json!([])).await;
    assert_eq!(invalid, json!("true"));
    admin.screenshot("admin-rules-error-desktop").await;
    let after: Value = app
        .get("/api/v1/admin/rebate-rules", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, after, "a refused rule set changes nothing");
    admin.resize(PHONE).await;
    admin.goto(&app.url("/admin#/stats")).await;
    admin.find("#chart-gmv").await;
    admin.screenshot("admin-stats-phone").await;
}

/// At 360 px (the narrowest phone the apps promise) no screen scrolls
/// sideways, and every field has a label a screen reader can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_screens_and_labels() {
    if !available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, member) = app.register("narrowmember").await;
    let admin = app.admin_token().await;
    let driver = Driver::start().await;
    let b = driver.browser((360, 740)).await;
    let check = "const overflow = document.documentElement.scrollWidth - window.innerWidth;
        const unlabelled = [...document.querySelectorAll('input, select, textarea')]
          .filter(e => !e.getAttribute('aria-label') && !(e.id && document.querySelector(`label[for=\"${e.id}\"]`)))
          .map(e => e.outerHTML);
        return {overflow, unlabelled, text: document.getElementById('main').innerText.length};";
    let screens = [
        (
            member.as_str(),
            vec![
                "/#/chats",
                "/#/feed",
                "/#/trips",
                "/#/shop",
                "/#/me",
                "/#/wallet",
                "/#/promo",
                "/#/animals",
                "/#/flowers",
                "/merchant",
            ],
        ),
        (
            admin.as_str(),
            vec![
                "/admin#/stats",
                "/admin#/users",
                "/admin#/merchants",
                "/admin#/orders",
                "/admin#/rules",
                "/admin#/withdrawals",
                "/admin#/reports",
            ],
        ),
    ];
    for (token, paths) in screens {
        sign_in(&b, &app, token, paths[0]).await;
        for path in paths {
            b.goto(&app.url(path)).await;
            b.wait_js(
                "the screen rendered",
                "return !!document.querySelector('#main h1')",
            )
            .await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let v = b.js(check, json!([])).await;
            assert!(
                v["overflow"].as_i64().unwrap() <= 0,
                "{path} scrolls sideways at 360 px: {v}"
            );
            assert_eq!(
                v["unlabelled"],
                json!([]),
                "{path} has fields without a label"
            );
        }
    }
}

both_backends!(feed_and_flowers, super::feed_and_flowers_journey);
both_backends!(refund_and_withdrawal, super::refund_and_withdrawal_journey);

/// Following, a post arriving live, liking it; flowers sent as a gift whose
/// recipient gives the address.
async fn feed_and_flowers_journey(backend: Backend) {
    if !available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (a_id, a_token) = app.register("fan").await;
    let (b_id, b_token) = app.register("poet").await;
    let shop = crate::orders::shop(&app, "florist").await;
    crate::orders::product(&app, &shop, "Eleven roses", "flowers", 9_900, 10).await;
    let driver = Driver::start().await;
    let (a, b) = (driver.browser(PHONE).await, driver.browser(PHONE).await);

    sign_in(&a, &app, &a_token, &format!("/#/user/{b_id}")).await;
    a.click("#follow").await;
    a.wait_text("#follow", "Unfollow").await;
    a.goto(&app.url("/#/feed")).await;
    a.find("#new-post").await;

    sign_in(&b, &app, &b_token, "/#/feed").await;
    b.fill("#new-post-body", "Moonrise over Erhai lake").await;
    b.click("#new-post button[type=submit]").await;
    // Live on the follower's open feed, without a reload.
    a.wait_text("#fresh-posts", "Moonrise over Erhai lake")
        .await;
    a.click("#fresh-posts li.post button.like").await;
    a.wait_text("#fresh-posts li.post button.like", "1").await;
    a.screenshot("member-feed-phone").await;
    let feed: Value = app
        .get("/api/v1/feed", Some(&a_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            feed["items"][0]["like_count"].as_i64(),
            feed["items"][0]["liked_by_me"].as_bool()
        ),
        (Some(1), Some(true))
    );

    // Flowers for the poet, paid on the checkout page.
    a.goto(&app.url("/#/flowers")).await;
    a.find("li.product form").await;
    let form = a
        .js(
            "return document.querySelector('li.product form').id",
            json!([]),
        )
        .await;
    let form = form.as_str().unwrap().to_owned();
    a.fill(&format!("#{form}-recipient"), "poet").await;
    a.fill(&format!("#{form}-message"), "For your poem").await;
    a.click(&format!("#{form} button[type=submit]")).await;
    a.click("#pay").await;
    a.click("#confirm-payment").await;
    a.wait_text("#order-status", "Paid").await;

    // The poet finds the gift and gives the address; the order has it.
    b.goto(&app.url("/#/orders")).await;
    b.wait_text("#main", "For your poem").await;
    let gift = b.js("return [...document.querySelectorAll('#main a')].find(a => a.textContent.includes('For your poem')).getAttribute('href')", json!([])).await;
    b.goto(&app.url(&format!("/{}", gift.as_str().unwrap())))
        .await;
    b.fill("#gift-address-shipping_address", "3 Renmin Road, Dali")
        .await;
    b.click("#gift-address button[type=submit]").await;
    b.wait_text("#main", "3 Renmin Road, Dali").await;
    let id = gift
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let o: Value = app
        .get(&format!("/api/v1/orders/{id}"), Some(&a_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            o["gift_to_user_id"].as_i64(),
            o["shipping_address"].as_str()
        ),
        (Some(b_id), Some("3 Renmin Road, Dali"))
    );
    assert_eq!(o["buyer_id"], a_id);
}

/// A refund asked in the app and approved in the merchant console; a
/// withdrawal asked in the wallet and approved in the admin console.
async fn refund_and_withdrawal_journey(backend: Backend) {
    if !available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let rules = json!({"rules": [{"name": "all", "rate_bps": 1000}], "referral_levels_bps": [], "hold_seconds": 0});
    assert_eq!(
        crate::rebates::put_rules(&app, &admin, rules)
            .await
            .status(),
        200
    );
    let shop = crate::orders::shop(&app, "kiteshop").await;
    let kite = crate::orders::product(&app, &shop, "Kite", "toys", 5_000, 10).await;
    let lamp = crate::orders::product(&app, &shop, "Lamp", "home", 20_000, 10).await;
    let (_, buyer) = app.register("kitebuyer").await;
    // One order to refund; one to complete, so its rebate becomes available.
    let refund =
        crate::orders::paid_order(&app, &buyer, json!([{"product_id": kite, "quantity": 1}])).await;
    let keep =
        crate::orders::paid_order(&app, &buyer, json!([{"product_id": lamp, "quantity": 1}])).await;
    let keep_id = keep["order_id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/orders/{keep_id}/ship"),
            Some(&shop.owner_token),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(
            &format!("/api/v1/orders/{keep_id}/confirm"),
            Some(&buyer),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let driver = Driver::start().await;
    let (member, console) = (driver.browser(PHONE).await, driver.browser(DESKTOP).await);
    sign_in(
        &member,
        &app,
        &buyer,
        &format!("/#/order/{}", refund["order_id"]),
    )
    .await;
    member.fill("#refund-reason", "It arrived torn").await;
    member.click("#refund button[type=submit]").await;
    member.find("#main .muted").await;

    sign_in(
        &console,
        &app,
        &shop.owner_token,
        &format!("/merchant#/refunds/{}", shop.merchant_id),
    )
    .await;
    console.wait_text("#refunds", "It arrived torn").await;
    console.click("#refunds button.approve").await;
    console.wait_text("#refunds", "No refunds to decide").await;
    let o: Value = app
        .get(
            &format!("/api/v1/orders/{}", refund["order_id"]),
            Some(&buyer),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o["status"], "refunded");

    // The completed order's rebate (10 % of 200.00) settles at once (hold 0).
    let deadline = std::time::Instant::now() + super::WAIT;
    while crate::rebates::wallet(&app, &buyer).await["available_cents"] != 2_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            crate::rebates::wallet(&app, &buyer).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    member.goto(&app.url("/#/wallet")).await;
    member.wait_text("#wallet-available", "¥20.00").await;
    member.fill("#withdraw-amount", "12.50").await;
    member.click("#withdraw button[type=submit]").await;
    member.wait_text("#wallet-withdrawing", "¥12.50").await;

    sign_in(&console, &app, &admin, "/admin#/withdrawals").await;
    console.click("li[data-withdrawal] button.approve").await;
    console
        .wait_js(
            "the withdrawal left the pending list",
            "return !document.querySelector('li[data-withdrawal]')",
        )
        .await;
    let w = crate::rebates::wallet(&app, &buyer).await;
    assert_eq!(
        (w["available_cents"].as_i64(), w["withdrawn_cents"].as_i64()),
        (Some(750), Some(1_250)),
        "{w}"
    );
    app.assert_audit_clean();
}
