//! `chat-group --rate R`: the open-loop senders. Each sender socket is split:
//! a writer sends its share of the schedule at the intended times without
//! waiting for acks, a reader counts and times the acks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::chat_group::{client_id, new_histogram, record_since, sent_us, Group, SeenFrame};
use crate::report::Report;
use crate::{Args, MAX_DURATION_S};

/// The highest offered rate, messages per second in all.
const MAX_RATE_PER_S: u64 = 100_000;
/// How long the last acks may take after the schedule ends.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Refusals printed at most (all are counted).
const MAX_PRINTED_ERRORS: u64 = 5;

/// Counters shared by the writers and readers.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn error(&self, what: &str) {
        if self.errors.fetch_add(1, Ordering::Relaxed) < MAX_PRINTED_ERRORS {
            eprintln!("error: {what}");
        }
    }

    fn settled(&self) -> bool {
        let done = self.acked.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed);
        done >= self.sent.load(Ordering::Relaxed)
    }
}

/// `rate` × `--duration` messages; message `i` is due at `start + i / rate`; sender `k`
/// of `n` sends messages k, k + n, k + 2n, ... (the time a send takes, or the
/// server pushing back, delays it, and the delay counts as latency).
pub(super) async fn open_loop(args: &Args, mut group: Group, rate: u64) -> anyhow::Result<Report> {
    let rate = rate.clamp(1, MAX_RATE_PER_S);
    let total = rate * args.duration.min(MAX_DURATION_S);
    let n = group.senders.len() as u64;
    let (conv, epoch) = (group.conv, group.epoch);
    let tally = Arc::new(Tally::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let (mut writers, mut readers) = (Vec::new(), Vec::new());
    for (k, ws) in std::mem::take(&mut group.senders).into_iter().enumerate() {
        let (mut sink, stream) = ws.split();
        readers.push(tokio::spawn(read_acks(
            stream,
            stop_rx.clone(),
            tally.clone(),
            epoch,
        )));
        let tally = tally.clone();
        writers.push(tokio::spawn(async move {
            for i in (k as u64..total).step_by(usize::try_from(n).unwrap_or(1)) {
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                tokio::time::sleep_until(due.into()).await;
                let due_us = u64::try_from((due - epoch).as_micros()).unwrap_or(0);
                let frame = json!({"type": "send", "client_id": client_id(i, due_us),
                    "conversation_id": conv, "body": "to everyone"});
                tally.sent.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = sink.send(Message::text(frame.to_string())).await {
                    tally.error(&e.to_string());
                    break;
                }
            }
        }));
    }
    for w in writers {
        let _ = w.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let settle = Instant::now();
    while !tally.settled() && settle.elapsed() < ACK_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let mut ack_latency = new_histogram();
    for r in readers {
        if let (Ok(Some(h)), Some(all)) = (r.await, ack_latency.as_mut()) {
            let _ = all.add(&h);
        }
    }
    let (sent, acked) = (
        tally.sent.load(Ordering::Relaxed),
        tally.acked.load(Ordering::Relaxed),
    );
    let mut rep = Report {
        scenario: "chat-group".into(),
        duration_s: elapsed,
        ops: acked,
        errors: tally.errors.load(Ordering::Relaxed),
        latency_us: ack_latency,
        checks: serde_json::Map::new(),
        extras: serde_json::Map::new(),
    };
    rep.checks.insert(
        "every_sent_message_acked".into(),
        Value::Bool(acked == sent && rep.errors == 0),
    );
    rep.extras.insert("offered_rate_per_s".into(), json!(rate));
    rep.extras.insert("sent".into(), json!(sent));
    group.finish(n as usize, acked, &mut rep).await;
    Ok(rep)
}

/// A sender's incoming side: acks (timed from the send time in their
/// `client_id`) and refusals; the other senders' messages are ignored.
async fn read_acks<S>(
    mut stream: S,
    mut stop: tokio::sync::watch::Receiver<bool>,
    tally: Arc<Tally>,
    epoch: Instant,
) -> Option<Histogram<u64>>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut latency = new_histogram();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<SeenFrame>(t.as_str()) else { continue };
                    match v.kind.as_ref() {
                        "ack" => {
                            tally.acked.fetch_add(1, Ordering::Relaxed);
                            if let Some(sent) = v.client_id.as_deref().and_then(sent_us) {
                                record_since(&mut latency, epoch, sent);
                            }
                        }
                        "error" => tally.error(&format!("send refused: {t}")),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                other => { tally.error(&format!("a sender's socket ended: {other:?}")); break; }
            }
        }
    }
    latency
}
