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

use super::chat_group::{client_id, parse_client_id, record_since, Group};
use crate::report::{new_histogram, Report};
use crate::ws::Fields;
use crate::{Args, MAX_DURATION_S, REQUEST_TIMEOUT};

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
    // However slow the sends, the writers stop by then.
    let hard_stop =
        start + Duration::from_secs(args.duration.min(MAX_DURATION_S)) + REQUEST_TIMEOUT;
    let (mut writers, mut readers) = (Vec::new(), Vec::new());
    for (k, ws) in std::mem::take(&mut group.senders).into_iter().enumerate() {
        let (mut sink, stream) = ws.split();
        let mine = Mine {
            k: k as u64,
            n,
            acked: vec![false; usize::try_from(total / n + 1).unwrap_or(0)],
        };
        readers.push(tokio::spawn(read_acks(
            stream,
            mine,
            stop_rx.clone(),
            tally.clone(),
            epoch,
        )));
        let tally = tally.clone();
        writers.push(tokio::spawn(async move {
            for i in (k as u64..total).step_by(usize::try_from(n).unwrap_or(1)) {
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                if Instant::now() >= hard_stop {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let due_us = u64::try_from((due - epoch).as_micros()).unwrap_or(0);
                let frame = json!({"type": "send", "client_id": client_id(i, due_us),
                    "conversation_id": conv, "body": "to everyone"});
                tally.sent.fetch_add(1, Ordering::Relaxed);
                // Bounded: a server that stops reading must not hold the run.
                let sent = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    sink.send(Message::text(frame.to_string())),
                )
                .await;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return tally.error(&e.to_string()),
                    Err(_) => return tally.error("a send timed out"),
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
    rep.checks.insert(
        "every_scheduled_message_sent".into(),
        Value::Bool(sent == total),
    );
    rep.extras.insert("offered_rate_per_s".into(), json!(rate));
    rep.extras.insert("sent".into(), json!(sent));
    group.finish(n as usize, acked, &mut rep).await;
    Ok(rep)
}

/// The messages one sender sends (k, k + n, ...) and which were acked.
struct Mine {
    k: u64,
    n: u64,
    acked: Vec<bool>,
}

impl Mine {
    /// True the first time message `i` of this sender is acked.
    fn first_ack(&mut self, i: u64) -> bool {
        if i % self.n != self.k {
            return false;
        }
        let slot = usize::try_from(i / self.n)
            .ok()
            .and_then(|j| self.acked.get_mut(j));
        match slot {
            Some(seen) if !*seen => {
                *seen = true;
                true
            }
            _ => false,
        }
    }
}

/// A sender's incoming side: acks (each of its messages counted once and
/// timed from the send time in its `client_id`; a repeated or foreign ack is
/// an error) and refusals; the other senders' messages are ignored.
async fn read_acks<S>(
    mut stream: S,
    mut mine: Mine,
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
                    let Ok(v) = serde_json::from_str::<Fields>(t.as_str()) else { continue };
                    match v.kind.as_ref() {
                        "ack" => {
                            let parsed = v.client_id.as_deref().and_then(parse_client_id);
                            let Some((_, sent)) = parsed.filter(|(i, _)| mine.first_ack(*i)) else {
                                tally.error(&format!("an ack repeated or not ours: {t}"));
                                continue;
                            };
                            tally.acked.fetch_add(1, Ordering::Relaxed);
                            record_since(&mut latency, epoch, sent);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_of_a_senders_messages_is_acked_once() {
        let mut mine = Mine {
            k: 1,
            n: 3,
            acked: vec![false; 4],
        };
        assert!(mine.first_ack(1));
        assert!(!mine.first_ack(1), "a repeat");
        assert!(!mine.first_ack(2), "another sender's");
        assert!(mine.first_ack(10));
        assert!(!mine.first_ack(13), "past the schedule");
    }
}
