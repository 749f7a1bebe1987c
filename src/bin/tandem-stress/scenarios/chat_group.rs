//! `chat-group`: one large group, a few senders, every other member's socket
//! counting deliveries; checks every acked message reached every member once, in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::api::{run_id, Api};
use crate::report::{drive, report, Report};
use crate::ws::{next_json, ws};
use crate::Args;

/// The fields of a server frame that the group receivers check.
#[derive(serde::Deserialize)]
struct SeenFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    seq: Option<i64>,
}

/// `--group-size` members in one group, each with a socket that counts what it
/// receives; `--concurrency` of them (at most 16) send in a closed loop. One op
/// is a message acked; `deliveries_per_s` counts frames received by members.
pub(crate) async fn scenario_chat_group(args: &Args) -> anyhow::Result<Report> {
    if args.rate.is_some() {
        bail!("chat-group runs closed-loop only; drop --rate");
    }
    let size = args.group_size.clamp(2, 1_000);
    let senders = args.concurrency.clamp(1, 128).min(size / 2);
    let api = Api::new(&args.target, 16)?;
    let users = api.users(&format!("s{}g", run_id()), size).await?;
    let ids: Vec<i64> = users[1..].iter().map(|u| u.0).collect();
    let (s, g) = api
        .post(
            "/api/v1/conversations",
            Some(&users[0].1),
            &json!({"member_ids": ids, "title": "stress"}),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    if s != 201 {
        bail!("creating the group: {s} {g}");
    }
    let conv = g["conversation_id"].as_i64().context("conversation")?;
    // Receivers: every member's socket counts deliveries and checks seq order.
    let deliveries = Arc::new(AtomicU64::new(0));
    let disorder = Arc::new(AtomicU64::new(0));
    // A watch, not a Notify: a receiver busy with a frame when we stop still sees it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::new();
    let mut sender_sockets = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let ws = ws(api.base_for(i), token).await?;
        if i < senders {
            // A sender's own socket gets only acks (its messages are not echoed to it),
            // plus the other senders' messages.
            sender_sockets.push(ws);
            continue;
        }
        let (deliveries, disorder, mut stop) =
            (deliveries.clone(), disorder.clone(), stop_rx.clone());
        receivers.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut last = 0_i64;
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            // Only the two fields the check needs, borrowed: a full
                            // `Value` per frame made the harness's 496 receivers the
                            // largest CPU user on the shared machine.
                            let Ok(v) = serde_json::from_str::<SeenFrame>(t.as_str()) else { continue };
                            if v.kind == "message" {
                                let seq = v.seq.unwrap_or(0);
                                if seq <= last { disorder.fetch_add(1, Ordering::Relaxed); }
                                last = seq;
                                deliveries.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => { disorder.fetch_add(1_000_000, Ordering::Relaxed); break; }
                    }
                }
            }
        }));
    }
    // On a cluster a node learns where new sockets are a few ms after they
    // opened: let it, before anything is sent.
    if api.bases.len() > 1 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let sockets = Arc::new(
        sender_sockets
            .into_iter()
            .map(tokio::sync::Mutex::new)
            .collect::<Vec<_>>(),
    );
    let counter = Arc::new(AtomicU64::new(0));
    let s2 = sockets.clone();
    let op = move |i: u64| {
        let (sockets, counter) = (s2.clone(), counter.clone());
        async move {
            let k = usize::try_from(i).unwrap_or(0) % sockets.len();
            let mut ws = sockets[k].lock().await;
            let cid = format!("g{}", counter.fetch_add(1, Ordering::Relaxed));
            ws.send(Message::text(json!({"type": "send", "client_id": cid, "conversation_id": conv, "body": "to everyone"}).to_string()))
                .await
                .map_err(|e| e.to_string())?;
            loop {
                let v = next_json(&mut ws).await?;
                match v["type"].as_str() {
                    Some("ack") if v["client_id"] == cid.as_str() => return Ok(()),
                    Some("error") => return Err(format!("send refused: {v}")),
                    _ => {}
                }
            }
        }
    };
    let mut a = args.clone();
    a.concurrency = senders;
    let (elapsed, stats) = drive(&a, None, op).await;
    // Let the last fan-outs arrive, then stop the receivers.
    let acked = stats.ops.load(Ordering::Relaxed);
    let expected = acked * (size - senders) as u64;
    let settle = Instant::now();
    while deliveries.load(Ordering::Relaxed) < expected
        && settle.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    for r in receivers {
        let _ = r.await;
    }
    let got = deliveries.load(Ordering::Relaxed);
    let mut rep = report("chat-group", elapsed, &stats);
    rep.checks.insert(
        "every_acked_message_delivered_to_every_member_once_in_order".into(),
        Value::Bool(got == expected && disorder.load(Ordering::Relaxed) == 0),
    );
    rep.extras
        .insert("deliveries_per_s".into(), json!(got as f64 / elapsed));
    rep.extras.insert("group_size".into(), json!(size));
    rep.extras
        .insert("receiving_members".into(), json!(size - senders));
    rep.extras.insert("senders".into(), json!(senders));
    Ok(rep)
}
