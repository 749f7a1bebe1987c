//! `chat-group`: one large group, a few senders, every other member's socket
//! counting deliveries; checks every acked message reached every member once,
//! in order, and measures send-to-delivery latency at the members.
//!
//! Closed loop (default): each sender waits for its ack before the next send.
//! Open loop (`--rate R`): R messages per second in all, spread over the
//! senders at fixed intended times whatever the server's pace, so a slow
//! server shows as latency (counted from the intended time), not as a lower
//! offered load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::chat_group_open::open_loop;
use crate::api::{run_id, Api};
use crate::report::{drive, new_histogram, report, Report};
use crate::ws::{next_json, ws, Fields, Ws};
use crate::Args;

/// Senders at most (and at most half the group).
const MAX_SENDERS: usize = 128;
/// How long the last fan-outs may take to arrive after the load stops.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A message's `client_id`: its number and its intended send time in µs
/// since the run's epoch, so that every member can time its delivery.
pub(super) fn client_id(n: u64, sent_us: u64) -> String {
    format!("g{n}.{sent_us}")
}

/// A `client_id`'s message number and intended send time (µs since the
/// epoch); `None` for any other client id.
pub(super) fn parse_client_id(client_id: &str) -> Option<(u64, u64)> {
    let (n, sent_us) = client_id.strip_prefix('g')?.split_once('.')?;
    Some((n.parse().ok()?, sent_us.parse().ok()?))
}

/// The intended send time (µs since the epoch) carried by a `client_id`.
pub(super) fn sent_us(client_id: &str) -> Option<u64> {
    parse_client_id(client_id).map(|(_, us)| us)
}

/// Records `now - sent` in µs (at least 1).
pub(super) fn record_since(h: &mut Option<Histogram<u64>>, epoch: Instant, sent_us: u64) {
    if let Some(h) = h.as_mut() {
        let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = h.record(now.saturating_sub(sent_us).max(1));
    }
}

/// p50/p90/p99/max in ms of a latency histogram in µs.
pub(super) fn quantiles_ms(h: &Option<Histogram<u64>>) -> Value {
    let q = |p: f64| {
        h.as_ref()
            .map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
    };
    json!({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
        "max": h.as_ref().map_or(0.0, |h| h.max() as f64 / 1000.0)})
}

/// The group, its sockets and the members' counters, set up before the load.
pub(super) struct Group {
    pub(super) conv: i64,
    pub(super) size: usize,
    pub(super) senders: Vec<Ws>,
    /// The time origin of every `client_id`'s send time.
    pub(super) epoch: Instant,
    deliveries: Arc<AtomicU64>,
    disorder: Arc<AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
    /// Each member's delivery latencies and count of messages received.
    receivers: Vec<JoinHandle<(Option<Histogram<u64>>, u64)>>,
}

impl Group {
    /// `--group-size` members in one group, every member's socket open; the
    /// first `--concurrency` (at most 128 and half the group) are the senders,
    /// the others count and time what they receive.
    async fn open(args: &Args) -> anyhow::Result<Self> {
        let size = args.group_size.clamp(2, 1_000);
        let senders = args.concurrency.clamp(1, MAX_SENDERS).min(size / 2);
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
        // A watch, not a Notify: a receiver busy with a frame when we stop still sees it.
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut group = Group {
            conv,
            size,
            senders: Vec::with_capacity(senders),
            epoch: Instant::now(),
            deliveries: Arc::new(AtomicU64::new(0)),
            disorder: Arc::new(AtomicU64::new(0)),
            stop,
            receivers: Vec::with_capacity(size - senders),
        };
        for (i, (_, token)) in users.iter().enumerate() {
            let ws = ws(api.base_for(i), token).await?;
            if i < senders {
                // A sender's own socket gets only acks (its messages are not
                // echoed to it), plus the other senders' messages.
                group.senders.push(ws);
            } else {
                let task = group.receive(ws, stop_rx.clone());
                group.receivers.push(tokio::spawn(task));
            }
        }
        // On a cluster a node learns where new sockets are a few ms after they
        // opened: let it, before anything is sent.
        if api.bases.len() > 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(group)
    }

    /// A member's socket: counts message frames, checks each seq follows the
    /// one before it (no gap, repeat or reversal), and times each from the
    /// send time in its `client_id`.
    fn receive(
        &self,
        mut ws: Ws,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = (Option<Histogram<u64>>, u64)> {
        let (deliveries, disorder, epoch) =
            (self.deliveries.clone(), self.disorder.clone(), self.epoch);
        async move {
            let mut latency = new_histogram();
            let (mut last, mut count) = (None::<i64>, 0_u64);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            let Ok(v) = serde_json::from_str::<Fields>(t.as_str()) else { continue };
                            if v.kind != "message" { continue; }
                            let seq = v.seq.unwrap_or(0);
                            if last.is_some_and(|l| seq != l + 1) { disorder.fetch_add(1, Ordering::Relaxed); }
                            last = Some(seq);
                            count += 1;
                            deliveries.fetch_add(1, Ordering::Relaxed);
                            if let Some(sent) = v.client_id.as_deref().and_then(sent_us) {
                                record_since(&mut latency, epoch, sent);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => { disorder.fetch_add(1_000_000, Ordering::Relaxed); break; }
                    }
                }
            }
            (latency, count)
        }
    }

    /// Waits (bounded) for `acked` messages to reach every receiving member,
    /// stops the receivers, and reports the check and the delivery latency.
    pub(super) async fn finish(self, senders: usize, acked: u64, rep: &mut Report) {
        let expected = acked * (self.size - senders) as u64;
        let settle = Instant::now();
        while self.deliveries.load(Ordering::Relaxed) < expected
            && settle.elapsed() < SETTLE_TIMEOUT
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.stop.send(true);
        let mut latency = new_histogram();
        // Every member got exactly the acked messages: a member short of one
        // cannot hide behind another that got one too many.
        let mut every_member_complete = true;
        for r in self.receivers {
            let Ok((h, count)) = r.await else {
                every_member_complete = false;
                continue;
            };
            every_member_complete &= count == acked;
            if let (Some(h), Some(all)) = (h, latency.as_mut()) {
                let _ = all.add(&h);
            }
        }
        let got = self.deliveries.load(Ordering::Relaxed);
        rep.checks.insert(
            "every_acked_message_delivered_to_every_member_once_in_order".into(),
            Value::Bool(
                got == expected
                    && every_member_complete
                    && self.disorder.load(Ordering::Relaxed) == 0,
            ),
        );
        rep.extras.insert(
            "deliveries_per_s".into(),
            json!(got as f64 / rep.duration_s),
        );
        rep.extras
            .insert("delivery_latency_ms".into(), quantiles_ms(&latency));
        rep.extras.insert("group_size".into(), json!(self.size));
        rep.extras
            .insert("receiving_members".into(), json!(self.size - senders));
        rep.extras.insert("senders".into(), json!(senders));
    }
}

/// One op is a message acked; `latency_ms` is send-to-ack at the sender,
/// `delivery_latency_ms` send-to-delivery at the members, and
/// `deliveries_per_s` counts frames received by members.
pub(crate) async fn scenario_chat_group(args: &Args) -> anyhow::Result<Report> {
    let mut group = Group::open(args).await?;
    if let Some(rate) = args.rate {
        return open_loop(args, group, rate).await;
    }
    let senders = group.senders.len();
    let sockets = Arc::new(
        std::mem::take(&mut group.senders)
            .into_iter()
            .map(tokio::sync::Mutex::new)
            .collect::<Vec<_>>(),
    );
    let (conv, epoch) = (group.conv, group.epoch);
    let counter = Arc::new(AtomicU64::new(0));
    let s2 = sockets.clone();
    let op = move |i: u64| {
        let (sockets, counter) = (s2.clone(), counter.clone());
        async move {
            let k = usize::try_from(i).unwrap_or(0) % sockets.len();
            // Timed from before the lock, as `drive` times the ack.
            let now_us = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(0);
            let mut ws = sockets[k].lock().await;
            let cid = client_id(counter.fetch_add(1, Ordering::Relaxed), now_us);
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
    let mut rep = report("chat-group", elapsed, &stats);
    let acked = stats.ops.load(Ordering::Relaxed);
    group.finish(senders, acked, &mut rep).await;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_carries_its_send_time() {
        assert_eq!(sent_us(&client_id(7, 1_234_567)), Some(1_234_567));
        assert_eq!(
            parse_client_id(&client_id(7, 1_234_567)),
            Some((7, 1_234_567))
        );
        assert_eq!(sent_us("open"), None);
        assert_eq!(sent_us("g7"), None);
    }
}
