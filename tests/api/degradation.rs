//! Degradation, not failure: with Redis or RabbitMQ cut off from one server
//! (a TCP proxy in between that the test takes down: every connection cut,
//! new ones refused), what can work goes on, `/ready` names the missing
//! part, and everything catches up when it returns. PostgreSQL only: on
//! SQLite the cache and the bus are in the process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{assert_problem, postgres_configured, Backend, Options, TestApp};
use crate::orders::{order, product, shop};
use crate::ws::Ws;

/// A TCP proxy to a service that can be taken down and brought back.
struct FaultProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    live: Arc<parking_lot::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let live = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (up2, live2) = (up.clone(), live.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                live2.lock().push(task.abort_handle());
            }
        });
        FaultProxy {
            addr,
            up,
            live,
            accept,
        }
    }

    /// Cuts every connection and refuses new ones.
    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.live.lock().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.down();
        self.accept.abort();
    }
}

/// host:port of a service URL such as `redis://127.0.0.1:6379/`.
fn service_addr(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

/// A PostgreSQL server whose Redis (or RabbitMQ) goes through a proxy.
async fn spawn_behind(proxied: &str, proxy: &FaultProxy, rate_limits: bool) -> TestApp {
    let real = std::env::var(proxied).unwrap();
    let (scheme, rest) = real.split_once("://").unwrap();
    let (auth, after) = rest.rsplit_once('@').map_or(("", rest), |(a, b)| (a, b));
    let path = after.split_once('/').map_or("", |(_, p)| p);
    let at = if auth.is_empty() {
        String::new()
    } else {
        format!("{auth}@")
    };
    let url = format!("{scheme}://{at}{}/{path}", proxy.addr);
    let key = if proxied.contains("REDIS") {
        "TANDEM_REDIS_URL"
    } else {
        "TANDEM_AMQP_URL"
    };
    TestApp::spawn_with(
        Backend::Postgres,
        Options {
            extra_env: vec![(key.into(), url)],
            rate_limits,
        },
    )
    .await
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let r = app.get("/ready", None).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Polls `/ready` until it answers `status` (within `secs`).
async fn ready_becomes(app: &TestApp, status: u16, secs: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (s, v) = ready(app).await;
        if s == status {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready stayed {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn chat_once(app: &TestApp, from: &str, to: (i64, &str), client_id: &str) {
    let mut a = Ws::connect(app, from).await;
    let mut b = Ws::connect(app, to.1).await;
    a.send(
        json!({"type": "send", "client_id": client_id, "to_user_id": to.0, "body": "still here"}),
    )
    .await;
    let ack = a.recv_type("ack").await;
    assert!(ack["seq"].as_i64().unwrap() >= 1, "{ack}");
    let m = b.recv_type("message").await;
    assert_eq!(m["client_id"], client_id);
}

async fn create_order(app: &TestApp, token: &str, product_id: i64) -> i64 {
    let r = order(
        app,
        token,
        json!([{"product_id": product_id, "quantity": 1}]),
    )
    .await;
    assert_eq!(r.status(), 201, "order while degraded");
    r.json::<Value>().await.unwrap()["order_id"]
        .as_i64()
        .unwrap()
}

// Multi-threaded: starting a server blocks the calling thread while the
// proxy, on this runtime, must carry the server's first connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_orders_and_chat_go_on_and_revoked_tokens_stay_refused() {
    if !postgres_configured() {
        eprintln!("TANDEM_TEST_DATABASE_URL not set: degradation test not run");
        return;
    }
    let redis = std::env::var("TANDEM_TEST_REDIS_URL").unwrap();
    let proxy = FaultProxy::start(service_addr(&redis)).await;
    // With rate limits on: they fail open, but the login buckets fail closed.
    let app = spawn_behind("TANDEM_TEST_REDIS_URL", &proxy, true).await;
    let s = shop(&app, "degraded_shop").await;
    let p = product(&app, &s, "rice", "food", 500, 10).await;
    let (_, alice) = app.register("degraded_alice").await;
    let bob = app.register("degraded_bob").await;
    let r = app.login("degraded_alice", "password-123").await;
    let second: String = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .into();
    assert_eq!(
        app.post("/api/v1/auth/logout", Some(&second), &json!({}))
            .await
            .status(),
        204
    );
    let r = app.login("degraded_alice", "password-123").await;
    let third: String = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .into();

    proxy.down();
    let v = ready_becomes(&app, 503, 15).await;
    assert_eq!(v["cache"], "unavailable", "{v}");
    // Guessing passwords needs the brute-force buckets: refused, and says why.
    let r = app.login("degraded_alice", "password-123").await;
    let problem = assert_problem(r, 503, "unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("rate limiter"),
        "{problem}"
    );
    assert_eq!(v["database"], "ok", "{v}");
    // Signed-in requests are checked against the database instead.
    let order = create_order(&app, &alice, p).await;
    let r = app
        .post(
            &format!("/api/v1/orders/{order}/pay"),
            Some(&alice),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    chat_once(&app, &alice, (bob.0, &bob.1), "while-redis-down").await;
    // Revocations hold without the cache.
    assert_problem(
        app.get("/api/v1/me", Some(&second)).await,
        401,
        "unauthorized",
    )
    .await;
    // A logout while the cache is down still ends the session at once.
    assert_eq!(
        app.post("/api/v1/auth/logout", Some(&third), &json!({}))
            .await
            .status(),
        204
    );
    assert_problem(
        app.get("/api/v1/me", Some(&third)).await,
        401,
        "unauthorized",
    )
    .await;

    proxy.restore();
    ready_becomes(&app, 200, 15).await;
    assert_eq!(app.get("/api/v1/me", Some(&alice)).await.status(), 200);
    assert_eq!(
        app.login("degraded_alice", "password-123").await.status(),
        200
    );
    assert_problem(
        app.get("/api/v1/me", Some(&third)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/orders/{order}"), Some(&alice))
            .await
            .status(),
        200
    );
    app.assert_audit_clean();
}

#[tokio::test]
async fn a_cache_that_lost_its_keys_cannot_let_a_revoked_token_back_in() {
    if !postgres_configured() {
        eprintln!("TANDEM_TEST_DATABASE_URL not set: degradation test not run");
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let (_, alice) = app.register("forgetful_alice").await;
    let r = app.login("forgetful_alice", "password-123").await;
    let second: String = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .into();
    assert_eq!(
        app.post("/api/v1/auth/logout", Some(&second), &json!({}))
            .await
            .status(),
        204
    );
    // A Redis restart without persistence, for this server's namespace only
    // (other tests share the instance).
    let namespace = app.env_value("TANDEM_NAMESPACE").unwrap().to_owned();
    let deleted = redis_delete_namespace(&namespace).await;
    assert!(
        deleted >= 2,
        "the revocation and the marker were in the cache: {deleted}"
    );
    assert_problem(
        app.get("/api/v1/me", Some(&second)).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.get("/api/v1/me", Some(&alice)).await.status(), 200);
    // The mirror is rebuilt: the revocation is in the cache again.
    let key = format!("{namespace}:rev:mirrored");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !redis_exists(&key).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror was not rebuilt"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_problem(
        app.get("/api/v1/me", Some(&second)).await,
        401,
        "unauthorized",
    )
    .await;
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let url = std::env::var("TANDEM_TEST_REDIS_URL").unwrap();
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn redis_delete_namespace(namespace: &str) -> usize {
    let mut c = redis_connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    if keys.is_empty() {
        return 0;
    }
    redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut c)
        .await
        .unwrap()
}

async fn redis_exists(key: &str) -> bool {
    let mut c = redis_connection().await;
    let n: u64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap();
    n == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rabbitmq_down_events_wait_in_the_outbox_and_arrive_once() {
    if !postgres_configured() {
        eprintln!("TANDEM_TEST_DATABASE_URL not set: degradation test not run");
        return;
    }
    let amqp = std::env::var("TANDEM_TEST_AMQP_URL").unwrap();
    let proxy = FaultProxy::start(service_addr(&amqp)).await;
    let app = spawn_behind("TANDEM_TEST_AMQP_URL", &proxy, false).await;
    let s = shop(&app, "brokerless_shop").await;
    let p = product(&app, &s, "tea", "food", 700, 10).await;
    let (_, alice) = app.register("brokerless_alice").await;
    let bob = app.register("brokerless_bob").await;

    proxy.down();
    let v = ready_becomes(&app, 503, 15).await;
    assert_eq!(v["bus"], "unavailable", "{v}");
    assert_eq!(v["database"], "ok", "{v}");
    // The follow commits; its event waits in the outbox.
    let r = app
        .post(
            &format!("/api/v1/users/{}/follow", bob.0),
            Some(&alice),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    create_order(&app, &alice, p).await;
    chat_once(&app, &alice, (bob.0, &bob.1), "while-broker-down").await;

    proxy.restore();
    ready_becomes(&app, 200, 30).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list: Value = app
            .get("/api/v1/notifications", Some(&bob.1))
            .await
            .json()
            .await
            .unwrap();
        let followed = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "user.followed")
            .count();
        if followed > 0 {
            assert_eq!(followed, 1, "applied once: {list}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event never left the outbox"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.assert_audit_clean();
}
