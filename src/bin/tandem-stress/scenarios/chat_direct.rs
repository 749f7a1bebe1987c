//! `chat-direct`: sender/receiver pairs exchanging direct messages in a closed
//! loop; checks delivery once and in seq order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::bail;
use serde_json::{json, Value};

use crate::api::{run_id, Api};
use crate::report::{drive, report, Report};
use crate::ws::{chat_roundtrip, open_pairs, pairs_consistent};
use crate::{Args, MAX_CONCURRENCY};

pub(crate) async fn scenario_chat_direct(args: &Args) -> anyhow::Result<Report> {
    if args.rate.is_some() {
        bail!("chat-direct runs closed-loop only (one message in flight per pair); drop --rate");
    }
    let api = Api::new(&args.target, 16)?;
    let pairs = args.concurrency.clamp(1, MAX_CONCURRENCY);
    let users = api.users(&format!("s{}c", run_id()), pairs * 2).await?;
    let sockets = Arc::new(open_pairs(&api, &users).await?);
    let s2 = sockets.clone();
    let counter = Arc::new(AtomicU64::new(0));
    // Each worker owns one pair: closed loop, one message in flight.
    let op = move |i: u64| {
        let sockets = s2.clone();
        let counter = counter.clone();
        async move {
            let pair = usize::try_from(i).unwrap_or(0) % sockets.len();
            let mut guard = sockets[pair].lock().await;
            let cid = format!("m{}", counter.fetch_add(1, Ordering::Relaxed));
            chat_roundtrip(&mut guard, &cid).await
        }
    };
    let mut a = args.clone();
    a.concurrency = pairs;
    let (elapsed, stats) = drive(&a, None, op).await;
    let mut rep = report("chat-direct", elapsed, &stats);
    let ordered = pairs_consistent(&sockets).await;
    rep.checks
        .insert("delivered_once_in_seq_order".into(), Value::Bool(ordered));
    rep.extras.insert("pairs".into(), json!(pairs));
    Ok(rep)
}
