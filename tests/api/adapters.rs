//! The infrastructure adapters against the real services (when configured)
//! and their embedded defaults: the same behaviour behind one trait.

use std::sync::Arc;
use std::time::Duration;

use tandem::runtime::bus::{Event, EventBus, InProcessBus, RabbitBus};
use tandem::runtime::kv::{Kv, MemoryKv, RedisKv, Take};

use crate::helpers::random_suffix;

async fn kv_behaviour(kv: &dyn Kv) {
    kv.ping().await.unwrap();
    kv.set("a", "1", 200).await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some("1"));
    assert_eq!(
        kv.exists_each(&["missing".into(), "a".into()])
            .await
            .unwrap(),
        [false, true]
    );
    assert_eq!(kv.exists_each(&["missing".into()]).await.unwrap(), [false]);
    assert!(kv.exists_each(&[]).await.unwrap().is_empty());
    // A key set only while a witness holds the expected value.
    kv.set("witness", "n1", 1_000).await.unwrap();
    assert!(kv
        .set_if_equal("witness", "n1", "marked", "1", 1_000)
        .await
        .unwrap());
    assert_eq!(kv.get("marked").await.unwrap().as_deref(), Some("1"));
    assert!(!kv
        .set_if_equal("witness", "n2", "other", "1", 1_000)
        .await
        .unwrap());
    assert!(!kv
        .set_if_equal("absent", "n1", "other", "1", 1_000)
        .await
        .unwrap());
    assert_eq!(kv.get("other").await.unwrap(), None);
    kv.delete("a").await.unwrap();
    assert_eq!(kv.get("a").await.unwrap(), None);
    kv.set("b", "2", 100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(kv.get("b").await.unwrap(), None, "expired");

    for _ in 0..3 {
        assert_eq!(kv.take_token("bucket", 3, 1).await.unwrap(), Take::Allowed);
    }
    match kv.take_token("bucket", 3, 1).await.unwrap() {
        Take::RetryAfterMs(ms) => assert!(ms > 0 && ms <= 1000, "{ms}"),
        Take::Allowed => panic!("the bucket should be empty"),
    }
    assert_eq!(kv.take_token("bucket2", 3, 1).await.unwrap(), Take::Allowed);
}

#[tokio::test]
async fn memory_kv() {
    kv_behaviour(&MemoryKv::new()).await;
}

#[tokio::test]
async fn redis_kv() {
    let Ok(url) = std::env::var("TANDEM_TEST_REDIS_URL") else {
        eprintln!("TANDEM_TEST_REDIS_URL not set: Redis variant not run");
        return;
    };
    let kv = RedisKv::connect(&url, &format!("test-{}", random_suffix()))
        .await
        .unwrap();
    kv_behaviour(&kv).await;
}

async fn bus_behaviour(bus: Arc<dyn EventBus>) {
    bus.ping().await.unwrap();
    let orders = bus.subscribe("orders", &["order.*"]).await.unwrap();
    let everything = bus.subscribe("audit", &["#"]).await.unwrap();
    let events: Vec<Event> = (1..=50)
        .map(|i| Event {
            id: i,
            kind: if i % 2 == 0 {
                "order.paid".into()
            } else {
                "rebate.pending".into()
            },
            payload: serde_json::json!({ "n": i }),
            occurred_at_ms: 0,
        })
        .collect();
    let consume = |mut sub: tandem::runtime::bus::Subscription, expect: usize| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while ids.len() < expect {
                let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
                    .await
                    .expect("delivery in time")
                    .expect("subscription open");
                ids.push(d.event.id);
                d.ack().await.unwrap();
            }
            ids
        })
    };
    let a = consume(orders, 25);
    let b = consume(everything, 50);
    bus.publish(&events).await.unwrap();
    let mut a = a.await.unwrap();
    let mut b = b.await.unwrap();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, (1..=50).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    assert_eq!(b, (1..=50).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_bus() {
    bus_behaviour(Arc::new(InProcessBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_bus() {
    let Ok(url) = std::env::var("TANDEM_TEST_AMQP_URL") else {
        eprintln!("TANDEM_TEST_AMQP_URL not set: RabbitMQ variant not run");
        return;
    };
    let bus = RabbitBus::connect(&url, &format!("test-{}", random_suffix()))
        .await
        .unwrap();
    bus_behaviour(bus).await;
}

/// The idempotency store on each database: proceed, record, replay, 422 on
/// another body, and a racing second recorder told to replay the winner.
async fn idempotency_store(backend: crate::helpers::Backend) {
    use tandem::storage::idempotency::{
        check, fingerprint, record, Decision, IdempotencyKey, RecordError, StoredResponse,
    };

    let suffix = random_suffix();
    let dir = std::env::temp_dir().join(format!("tandem-idem-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = crate::helpers::TestDatabase::create(backend, &dir, &suffix);
    let url: tandem::core::config::DatabaseUrl = db.url.parse().unwrap();
    let (pool, applied) = tandem::server::app::migrate(&url).unwrap();
    assert!(applied >= 1);
    let mut conn = pool.get().unwrap();

    let key = IdempotencyKey::parse("key-1").unwrap();
    let body = serde_json::json!({"items": [{"product_id": 1, "quantity": 2}]});
    let hash = fingerprint("orders", &body);
    let now = tandem::core::ids::now_ms();
    assert_eq!(
        check(&mut conn, 7, "orders", &key, &hash, now).unwrap(),
        Decision::Proceed
    );
    let row = StoredResponse {
        user_id: 7,
        scope: "orders".into(),
        idem_key: key.as_str().into(),
        request_hash: hash.clone(),
        status_code: 201,
        response_body: "{\"order_id\":1}".into(),
        created_at_ms: now,
    };
    record(&mut conn, &row).unwrap();
    assert_eq!(
        check(&mut conn, 7, "orders", &key, &hash, now).unwrap(),
        Decision::Replay {
            status_code: 201,
            body: "{\"order_id\":1}".into()
        }
    );
    // Another body under the same key: 422.
    let other = fingerprint("orders", &serde_json::json!({"items": []}));
    let err = check(&mut conn, 7, "orders", &key, &other, now).unwrap_err();
    assert_eq!(err.code(), "idempotency_key_reused");
    assert_eq!(err.status().as_u16(), 422);
    // The same key belongs to nobody else: another user or scope proceeds.
    assert_eq!(
        check(&mut conn, 8, "orders", &key, &hash, now).unwrap(),
        Decision::Proceed
    );
    assert_eq!(
        check(&mut conn, 7, "withdrawals", &key, &hash, now).unwrap(),
        Decision::Proceed
    );
    // A racing recorder loses and is told so.
    assert!(matches!(
        record(&mut conn, &row),
        Err(RecordError::Conflict)
    ));
    // Past retention the key is forgotten.
    let later = now + tandem::storage::idempotency::RETENTION_MS + 1;
    assert_eq!(
        check(&mut conn, 7, "orders", &key, &other, later).unwrap(),
        Decision::Proceed
    );
    drop(conn);
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
}
crate::both_backends!(idempotency_store_on_each_database, super::idempotency_store);
