//! `mixed`: an evening peak of chat, feed posts and orders in one run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::orders::order_flow;
use crate::api::{run_id, shop, Api};
use crate::report::{drive, report, Report};
use crate::ws::{chat_roundtrip, open_pairs, pairs_consistent};
use crate::Args;

/// A real evening peak in one run: per ten ops, six chat messages, two feed
/// posts (with a timeline read) and two orders (created, paid, notified).
pub(crate) async fn scenario_mixed(args: &Args) -> anyhow::Result<Report> {
    let secret = args
        .mockpay_secret
        .clone()
        .context("--mockpay-secret is needed to sign notifications")?;
    let api = Api::new(&args.target, args.concurrency)?;
    let shop = shop(&api, args, 1_000_000_000, 1_234).await?;
    let buyers = Arc::new(
        api.users(&format!("s{}x", run_id()), args.concurrency.clamp(1, 64))
            .await?,
    );
    let pair_users = api
        .users(
            &format!("s{}y", run_id()),
            2 * (args.concurrency / 4).clamp(4, 256),
        )
        .await?;
    let pairs = Arc::new(open_pairs(&api, &pair_users).await?);
    let created = Arc::new(parking_lot::Mutex::new(Vec::<(usize, i64)>::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let (api2, buyers2, pairs2, created2, product) = (
        api.clone(),
        buyers.clone(),
        pairs.clone(),
        created.clone(),
        shop.product_id,
    );
    let op = move |i: u64| {
        let (api, buyers, pairs, created, counter, secret) = (
            api2.clone(),
            buyers2.clone(),
            pairs2.clone(),
            created2.clone(),
            counter.clone(),
            secret.clone(),
        );
        async move {
            let n = usize::try_from(i).unwrap_or(0);
            match i % 10 {
                0..=5 => {
                    let mut pair = pairs[n % pairs.len()].lock().await;
                    let cid = format!("x{}", counter.fetch_add(1, Ordering::Relaxed));
                    chat_roundtrip(&mut pair, &cid).await
                }
                6 | 7 => {
                    let token = &buyers[n % buyers.len()].1;
                    match api
                        .post(
                            "/api/v1/posts",
                            Some(token),
                            &json!({"body": "evening by the lake"}),
                        )
                        .await?
                    {
                        (201, _) => {}
                        (s, v) => return Err(format!("post {s} {v}")),
                    }
                    match api.get("/api/v1/feed?limit=20", Some(token)).await? {
                        (200, _) => Ok(()),
                        (s, v) => Err(format!("feed {s} {v}")),
                    }
                }
                _ => {
                    let b = n % buyers.len();
                    order_flow(&api, &buyers[b].1, product, &secret, |id| {
                        created.lock().push((b, id))
                    })
                    .await
                }
            }
        }
    };
    api.warm(args.concurrency).await?;
    let (elapsed, stats) = drive(args, None, op).await;
    let mut rep = report("mixed", elapsed, &stats);
    rep.checks.insert(
        "chat_delivered_once_in_seq_order".into(),
        Value::Bool(pairs_consistent(&pairs).await),
    );
    let orders = created.lock().clone();
    let present = futures_util::stream::iter(orders.iter().copied())
        .map(|(b, id)| {
            let api = api.clone();
            let token = buyers[b].1.clone();
            async move { matches!(api.get(&format!("/api/v1/orders/{id}"), Some(&token)).await, Ok((200, o)) if o["total_cents"] == 1_234) }
        })
        .buffer_unordered(64)
        .collect::<Vec<bool>>()
        .await;
    rep.checks.insert(
        "every_acknowledged_order_present_with_right_total".into(),
        Value::Bool(present.iter().all(|x| *x)),
    );
    rep.extras.insert("orders".into(), json!(orders.len()));
    Ok(rep)
}
