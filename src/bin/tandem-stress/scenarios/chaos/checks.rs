//! The end checks of `chaos`: every acknowledged effect is there exactly
//! once, read back through the API after the last fault.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::chat::ChatPair;
use super::ops::World;
use super::retry::retried;
use crate::api::Api;

/// Most items read from one listing (a bound; far above a run's counts).
const MAX_ITEMS: usize = 1_000_000;
/// Asynchronous effects (rebates, notifications) may trail their cause.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the checks counted.
#[derive(Default, Debug)]
pub(super) struct Tally {
    pub(super) lost: u64,
    pub(super) duplicated: u64,
    /// One line per finding (the first few are printed).
    pub(super) findings: Vec<String>,
}

impl Tally {
    fn lost(&mut self, what: String) {
        self.lost += 1;
        self.findings.push(format!("lost: {what}"));
    }
    fn duplicated(&mut self, what: String) {
        self.duplicated += 1;
        self.findings.push(format!("duplicated: {what}"));
    }
}

/// Every item of a paged listing (`next_cursor`).
pub(super) async fn all_pages(api: &Api, token: &str, path: &str) -> Result<Vec<Value>, String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
            None => format!("{path}{sep}limit=100"),
        };
        let (s, page) = retried(api, "GET", &url, Some(token), None, &[]).await?;
        if s != 200 {
            return Err(format!("GET {url}: {s} {page}"));
        }
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) if items.len() < MAX_ITEMS => cursor = Some(c.to_owned()),
            _ => return Ok(items),
        }
    }
}

/// Every acked message is in history exactly once at its acked seq, history
/// has no gaps, and the receiver applied every acked message.
pub(super) async fn chat(api: &Api, pairs: &[&ChatPair], t: &mut Tally) -> Result<(), String> {
    for pair in pairs {
        if pair.conversation_id == 0 {
            continue;
        }
        let path = format!(
            "/api/v1/conversations/{}/messages?after_seq=0",
            pair.conversation_id
        );
        let history = all_pages(api, pair.sender_token(), &path).await?;
        let mut by_client: HashMap<&str, Vec<i64>> = HashMap::new();
        for (i, m) in history.iter().enumerate() {
            let seq = m["seq"].as_i64().unwrap_or(0);
            if seq != i64::try_from(i).unwrap_or(0) + 1 {
                t.findings.push(format!(
                    "conversation {}: seq {seq} at position {}",
                    pair.conversation_id,
                    i + 1
                ));
                t.lost += 1;
            }
            by_client
                .entry(m["client_id"].as_str().unwrap_or_default())
                .or_default()
                .push(seq);
        }
        for (client_id, seq) in &pair.acked {
            let stored = by_client
                .get(client_id.as_str())
                .map_or(&[][..], Vec::as_slice);
            match stored {
                [] => t.lost(format!(
                    "message {client_id} of conversation {}",
                    pair.conversation_id
                )),
                [s] if s == seq => {}
                [s] => t.lost(format!(
                    "message {client_id} acked at seq {seq}, stored at {s}"
                )),
                many => t.duplicated(format!("message {client_id} stored at seqs {many:?}")),
            }
            let got = usize::try_from(*seq - 1)
                .ok()
                .and_then(|i| pair.applied.get(i));
            if got.map(String::as_str) != Some(client_id.as_str()) {
                t.lost(format!(
                    "message {client_id} (seq {seq}) never reached the receiver"
                ));
            }
        }
        if pair.conflicting_acks > 0 {
            t.duplicated(format!(
                "{} resends acked at another seq in conversation {}",
                pair.conflicting_acks, pair.conversation_id
            ));
        }
    }
    Ok(())
}

/// Orders: each acknowledged one once, in the state of its last acked step;
/// no buyer has more orders than keys it sent; stock matches what is held.
pub(super) async fn orders(w: &World, initial_stock: i64, t: &mut Tally) -> Result<(), String> {
    let (acked, keys) = {
        let l = w.ledger.lock();
        (l.orders.clone(), l.order_keys.clone())
    };
    let mut held = 0_i64;
    let mut found: HashMap<i64, String> = HashMap::new();
    for (b, (_, token)) in w.buyers.iter().enumerate() {
        let items = all_pages(&w.api, token, "/api/v1/orders").await?;
        if items.len() as u64 > keys[b] {
            t.duplicated(format!(
                "buyer {b} has {} orders from {} keys",
                items.len(),
                keys[b]
            ));
        }
        for o in items {
            let status = o["status"].as_str().unwrap_or_default().to_owned();
            if !matches!(status.as_str(), "cancelled" | "refunded") {
                held += 1;
            }
            found.insert(o["order_id"].as_i64().unwrap_or(0), status);
        }
    }
    for o in &acked {
        match found.get(&o.order_id) {
            None => t.lost(format!("order {}", o.order_id)),
            Some(s) if s != o.expect.status() => t.lost(format!(
                "order {} is {s}, acked as {}",
                o.order_id,
                o.expect.status()
            )),
            Some(_) => {}
        }
    }
    let (s, p) = retried(
        &w.api,
        "GET",
        &format!("/api/v1/products/{}", w.product_id),
        None,
        None,
        &[],
    )
    .await?;
    let stock = p["stock"].as_i64().unwrap_or(-1);
    if s != 200 || stock != initial_stock - held {
        t.findings.push(format!(
            "stock {stock}, expected {} ({held} held)",
            initial_stock - held
        ));
        t.lost += 1;
    }
    Ok(())
}

/// One purchase rebate per acknowledged payment, none twice; waits for the
/// asynchronous ones.
pub(super) async fn rebates(w: &World, t: &mut Tally) -> Result<(), String> {
    let acked = w.ledger.lock().orders.clone();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut round = Tally::default();
        for (b, (_, token)) in w.buyers.iter().enumerate() {
            let mut per_order: HashMap<i64, u32> = HashMap::new();
            for r in all_pages(&w.api, token, "/api/v1/rebates").await? {
                if r["kind"] == "purchase" {
                    *per_order
                        .entry(r["order_id"].as_i64().unwrap_or(0))
                        .or_default() += 1;
                }
            }
            for (order, n) in &per_order {
                if *n > 1 {
                    round.duplicated(format!("{n} purchase rebates for order {order}"));
                }
            }
            for o in acked.iter().filter(|o| o.buyer == b && o.expect.paid()) {
                if !per_order.contains_key(&o.order_id) {
                    round.lost(format!("the rebate of paid order {}", o.order_id));
                }
            }
        }
        if round.lost == 0 || Instant::now() >= deadline {
            merge(t, round);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Events through the outbox: each acknowledged follow notified its
/// followee exactly once (the notifier applies each event once).
pub(super) async fn follows(w: &World, t: &mut Tally) -> Result<(), String> {
    let acked = w.ledger.lock().follows.clone();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut round = Tally::default();
        for (g, (_, token)) in w.followees.iter().enumerate() {
            let mut per_follower: HashMap<i64, u32> = HashMap::new();
            for n in all_pages(&w.api, token, "/api/v1/notifications").await? {
                if n["kind"] == "user.followed" {
                    *per_follower
                        .entry(n["data"]["follower_id"].as_i64().unwrap_or(0))
                        .or_default() += 1;
                }
            }
            for (follower, n) in &per_follower {
                if *n > 1 {
                    round.duplicated(format!(
                        "user {follower} followed user {}: {n} notifications",
                        w.followees[g].0
                    ));
                }
            }
            for (f, _) in acked.iter().filter(|(_, gg)| *gg == g) {
                if !per_follower.contains_key(&w.followers[*f].0) {
                    round.lost(format!(
                        "the notification of user {} following {}",
                        w.followers[*f].0, w.followees[g].0
                    ));
                }
            }
        }
        if round.lost == 0 || Instant::now() >= deadline {
            merge(t, round);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Acknowledged posts and withdrawals are there; no buyer has more
/// withdrawals than keys it sent.
pub(super) async fn posts_and_withdrawals(w: &World, t: &mut Tally) -> Result<(), String> {
    let (posts, withdrawals, keys) = {
        let l = w.ledger.lock();
        (
            l.posts.clone(),
            l.withdrawals.clone(),
            l.withdrawal_keys.clone(),
        )
    };
    for (a, (_, token)) in w.authors.iter().enumerate() {
        let feed: Vec<i64> = all_pages(&w.api, token, "/api/v1/feed")
            .await?
            .iter()
            .filter_map(|p| p["post_id"].as_i64())
            .collect();
        for (_, id) in posts.iter().filter(|(aa, _)| *aa == a) {
            if !feed.contains(id) {
                t.lost(format!("post {id}"));
            }
        }
    }
    for (b, (_, token)) in w.buyers.iter().enumerate() {
        let listed: Vec<i64> = all_pages(&w.api, token, "/api/v1/withdrawals")
            .await?
            .iter()
            .filter_map(|x| x["withdrawal_id"].as_i64())
            .collect();
        if listed.len() as u64 > keys[b] {
            t.duplicated(format!(
                "buyer {b} has {} withdrawals from {} keys",
                listed.len(),
                keys[b]
            ));
        }
        for (_, id) in withdrawals.iter().filter(|(bb, _)| *bb == b) {
            if !listed.contains(id) {
                t.lost(format!("withdrawal {id}"));
            }
        }
    }
    Ok(())
}

fn merge(t: &mut Tally, round: Tally) {
    t.lost += round.lost;
    t.duplicated += round.duplicated;
    t.findings.extend(round.findings);
}
