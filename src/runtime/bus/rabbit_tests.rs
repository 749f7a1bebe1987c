use super::*;

fn event(id: i64, kind: &str) -> Event {
    Event {
        id,
        kind: kind.into(),
        payload: serde_json::json!({"n": id}),
        occurred_at_ms: 0,
    }
}

fn ids(batch: &[&Event]) -> Vec<i64> {
    batch.iter().map(|e| e.id).collect()
}

#[test]
fn batches_are_one_kind_in_order_and_bounded() {
    let events: Vec<Event> = (1..=7)
        .map(|i| event(i, if i % 3 == 0 { "b" } else { "a" }))
        .collect();
    let got: Vec<(String, Vec<i64>)> = batches(&events, 2)
        .iter()
        .map(|b| (b[0].kind.clone(), ids(b)))
        .collect();
    let want = [
        ("a", vec![1, 2]),
        ("a", vec![4, 5]),
        ("a", vec![7]),
        ("b", vec![3, 6]),
    ];
    assert_eq!(got.len(), want.len());
    for ((kind, ids), (want_kind, want_ids)) in got.iter().zip(want) {
        assert_eq!((kind.as_str(), ids), (want_kind, &want_ids));
    }
    assert!(batches(&[], 64).is_empty());
    // A zero bound still makes progress, one event a message.
    assert_eq!(batches(&events[..2], 0).len(), 2);
}

#[test]
fn bodies_are_batches_or_single_events() {
    let batch = serde_json::to_vec(&[event(1, "a"), event(2, "a")]).unwrap();
    assert_eq!(decode(&batch).unwrap(), vec![event(1, "a"), event(2, "a")]);
    let single = serde_json::to_vec(&event(3, "a")).unwrap();
    assert_eq!(decode(&single).unwrap(), vec![event(3, "a")]);
    assert_eq!(decode(b" \n[]").unwrap(), vec![]);
    assert!(decode(b"{\"id\":1}").is_err());
    assert!(decode(b"").is_err());
}

fn amqp_url() -> Option<String> {
    let url = std::env::var("TANDEM_TEST_AMQP_URL").ok();
    if url.is_none() {
        eprintln!("TANDEM_TEST_AMQP_URL not set: RabbitMQ test not run");
    }
    url
}

fn namespace(prefix: &str) -> String {
    format!("{prefix}{}", crate::core::ids::random_token(6))
}

async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a delivery within 5 s")
        .expect("the subscription lives")
}

async fn nothing_more(sub: &mut Subscription) {
    let more = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(more.is_err(), "nothing else arrives");
}

/// A raw channel on its own connection, as another program would use.
async fn raw_channel(url: &str) -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    (conn, channel)
}

/// A pattern an earlier version bound stays bound on the broker until it
/// is retired: after `retire`, events of that kind no longer reach the
/// queue, and the patterns still wanted do.
#[tokio::test]
async fn retired_patterns_stop_reaching_the_queue() {
    let Some(url) = amqp_url() else { return };
    let bus = RabbitBus::connect(&url, &namespace("retire"))
        .await
        .unwrap();
    // As an older version left it: both patterns bound.
    drop(bus.subscribe("n", &["order.#", "user.#"]).await.unwrap());
    bus.retire("n", &["order.#", "gift.#"]).await.unwrap();
    let mut sub = bus.subscribe("n", &["user.#"]).await.unwrap();
    bus.publish(&[event(1, "order.paid"), event(2, "user.followed")])
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event.id, 2, "the retired kind was not delivered");
    d.ack().await.unwrap();
    nothing_more(&mut sub).await;
}

/// One message per kind and `EVENTS_PER_MESSAGE` events, as the broker sees it.
#[tokio::test]
async fn a_publish_sends_few_messages() {
    let Some(url) = amqp_url() else { return };
    let ns = namespace("batches");
    let bus = RabbitBus::connect(&url, &ns).await.unwrap();
    let (_conn, raw) = raw_channel(&url).await;
    let queue = format!("{ns}.raw");
    let exchange = format!("{ns}.event-batches");
    raw.queue_declare(
        &queue,
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let bind = QueueBindOptions::default();
    raw.queue_bind(&queue, &exchange, "#", bind, FieldTable::default())
        .await
        .unwrap();
    let n = i64::try_from(2 * EVENTS_PER_MESSAGE + 2).unwrap();
    let mut events: Vec<Event> = (1..=n).map(|i| event(i, "order.paid")).collect();
    events.push(event(n + 1, "order.created"));
    bus.publish(&events).await.unwrap();

    let mut received = Vec::new();
    let mut messages = 0;
    let get = lapin::options::BasicGetOptions { no_ack: true };
    while let Some(m) = raw.basic_get(&queue, get).await.unwrap() {
        messages += 1;
        let batch = decode(&m.delivery.data).unwrap();
        assert!(batch.len() <= EVENTS_PER_MESSAGE);
        let key = m.delivery.routing_key.as_str();
        assert!(batch.iter().all(|e| e.kind == key), "one kind per message");
        received.extend(batch);
    }
    assert_eq!(
        messages, 4,
        "3 messages of order.paid and 1 of order.created"
    );
    received.sort_by_key(|e| e.id);
    assert_eq!(received, events);
}

/// A message's events are settled together: acked once all are, handed
/// back whole when one is nacked or dropped unsettled.
#[tokio::test]
async fn a_batch_comes_back_whole_unless_every_event_is_acked() {
    let Some(url) = amqp_url() else { return };
    let bus = RabbitBus::connect(&url, &namespace("settle"))
        .await
        .unwrap();
    let mut sub = bus.subscribe("n", &["x.#"]).await.unwrap();
    let events = [event(1, "x.a"), event(2, "x.a"), event(3, "x.a")];
    bus.publish(&events).await.unwrap();
    for unsettle in ["nack", "drop", "none"] {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next(&mut sub).await);
        }
        let mut ids: Vec<i64> = got.iter().map(|d| d.event.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3], "the whole message, round {unsettle}");
        let last = got.pop().unwrap();
        for d in got {
            d.ack().await.unwrap();
        }
        match unsettle {
            "nack" => last.nack().await.unwrap(),
            "drop" => drop(last),
            _ => last.ack().await.unwrap(),
        }
    }
    nothing_more(&mut sub).await;
}

/// During a rolling upgrade an older leader still publishes one event per
/// message to `<namespace>.events`: subscribers of this version get those too.
#[tokio::test]
async fn events_an_older_version_published_still_arrive() {
    let Some(url) = amqp_url() else { return };
    let ns = namespace("legacy");
    let bus = RabbitBus::connect(&url, &ns).await.unwrap();
    let mut sub = bus.subscribe("n", &["x.#"]).await.unwrap();
    let (_conn, raw) = raw_channel(&url).await;
    let body = serde_json::to_vec(&event(9, "x.a")).unwrap();
    let props = BasicProperties::default().with_delivery_mode(2);
    let exchange = format!("{ns}.events");
    raw.basic_publish(
        &exchange,
        "x.a",
        BasicPublishOptions::default(),
        &body,
        props,
    )
    .await
    .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event, event(9, "x.a"));
    d.ack().await.unwrap();
    // And this version's own publishes arrive once, on the batch queue.
    bus.publish(&[event(10, "x.b")]).await.unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event.id, 10);
    d.ack().await.unwrap();
    nothing_more(&mut sub).await;
}

#[test]
fn a_bad_element_costs_only_itself() {
    let body = br#"[{"id":1,"kind":"a","payload":{},"occurred_at_ms":0},{"id":"x"},
        {"id":3,"kind":"a","payload":null,"occurred_at_ms":0}]"#;
    let ids: Vec<i64> = decode(body).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 3]);
    assert!(decode(b"[1, 2").is_err(), "a body that is no JSON at all");
}

/// Events published after `prepare` and before the consumer first
/// subscribes wait in its queue (a broker drops what reaches no queue).
#[tokio::test]
async fn a_prepared_queue_keeps_events_published_before_the_subscription() {
    let Some(url) = amqp_url() else { return };
    let bus = RabbitBus::connect(&url, &namespace("prepare"))
        .await
        .unwrap();
    bus.prepare("n", &["x.#"]).await.unwrap();
    bus.publish(&[event(1, "x.a"), event(2, "x.b")])
        .await
        .unwrap();
    let mut sub = bus.subscribe("n", &["x.#"]).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let d = next(&mut sub).await;
        ids.push(d.event.id);
        d.ack().await.unwrap();
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    nothing_more(&mut sub).await;
}
