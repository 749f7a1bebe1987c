//! The infrastructure adapters against the real services (when configured)
//! and their embedded defaults: the same behaviour behind one trait.

use std::sync::Arc;
use std::time::Duration;

use tandem::infra::bus::{Event, EventBus, InProcessBus, RabbitBus};
use tandem::infra::kv::{Kv, MemoryKv, RedisKv, Take};

use crate::helpers::random_suffix;

async fn kv_behaviour(kv: &dyn Kv) {
    kv.ping().await.unwrap();
    kv.set("a", "1", 200).await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some("1"));
    assert!(kv
        .exists_any(&["missing".into(), "a".into()])
        .await
        .unwrap());
    assert!(!kv.exists_any(&["missing".into()]).await.unwrap());
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
    let consume = |mut sub: tandem::infra::bus::Subscription, expect: usize| {
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
