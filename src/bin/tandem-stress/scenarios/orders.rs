//! `orders`: orders created, paid and notified under load, then checked for
//! presence, totals and rebates; `order_flow` is shared with `mixed`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::api::{run_id, shop, sign, Api};
use crate::report::{drive, report, Report};
use crate::Args;

pub(crate) async fn scenario_orders(args: &Args) -> anyhow::Result<Report> {
    let secret = args
        .mockpay_secret
        .clone()
        .context("--mockpay-secret is needed to sign notifications")?;
    let api = Api::new(&args.target, args.concurrency)?;
    let shop = shop(&api, args, 1_000_000_000, 1_234).await?;
    // A rebate rule, so every paid order must produce a purchase rebate.
    let rules = json!({"rules": [{"name": "stress", "rate_bps": 100}], "referral_levels_bps": [], "hold_seconds": 3600});
    let (s, v) = api
        .call(
            "PUT",
            "/api/v1/admin/rebate-rules",
            Some(&shop.admin),
            Some(&rules),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    if !(200..300).contains(&s) {
        bail!("setting rebate rules: {s} {v}");
    }
    let buyers = Arc::new(
        api.users(&format!("s{}b", run_id()), args.concurrency.clamp(1, 256))
            .await?,
    );
    let created = Arc::new(parking_lot::Mutex::new(Vec::<(usize, i64)>::new()));
    let (p, api2, created2, buyers2) = (
        shop.product_id,
        api.clone(),
        created.clone(),
        buyers.clone(),
    );
    let op = move |i: u64| {
        let (api, created, buyers, secret) = (
            api2.clone(),
            created2.clone(),
            buyers2.clone(),
            secret.clone(),
        );
        async move {
            let b = usize::try_from(i).unwrap_or(0) % buyers.len();
            order_flow(&api, &buyers[b].1, p, &secret, |id| {
                created.lock().push((b, id))
            })
            .await
        }
    };
    api.warm(args.concurrency).await?;
    let (elapsed, stats) = drive(args, None, op).await;
    let mut rep = report("orders", elapsed, &stats);
    // Checks, outside the measured window.
    let orders = created.lock().clone();
    let mut per_buyer = vec![0_usize; buyers.len()];
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
    for (b, _) in &orders {
        per_buyer[*b] += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut rebates_ok = true;
    for (b, (_, token)) in buyers.iter().enumerate() {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/rebates?limit=200&cursor={c}"),
                None => "/api/v1/rebates?limit=200".to_owned(),
            };
            let Ok((200, page)) = api.get(&path, Some(token)).await else {
                rebates_ok = false;
                break;
            };
            count += page["items"].as_array().map_or(0, Vec::len);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        // Orders acknowledged but whose payment step failed have no rebate; count paid ones only.
        if count < per_buyer[b].saturating_sub(usize::try_from(rep.errors).unwrap_or(usize::MAX)) {
            rebates_ok = false;
        }
    }
    rep.checks.insert(
        "every_paid_order_has_its_rebate".into(),
        Value::Bool(rebates_ok),
    );
    Ok(rep)
}

/// One order created, paid and notified (signed like the provider would);
/// `on_created` gets the id as soon as the 201 is in.
pub(super) async fn order_flow(
    api: &Api,
    token: &str,
    product: i64,
    secret: &str,
    on_created: impl FnOnce(i64),
) -> Result<(), String> {
    let (s, o) = api
        .post(
            "/api/v1/orders",
            Some(token),
            &json!({"items": [{"product_id": product, "quantity": 1}]}),
        )
        .await?;
    if s != 201 {
        return Err(format!("order {s} {o}"));
    }
    let id = o["order_id"].as_i64().unwrap_or(0);
    on_created(id);
    let (s, pay) = api
        .post(&format!("/api/v1/orders/{id}/pay"), Some(token), &json!({}))
        .await?;
    if s != 200 {
        return Err(format!("pay {s} {pay}"));
    }
    let body = json!({"payment_id": pay["payment_id"], "order_id": id, "amount_cents": pay["amount_cents"], "status": "succeeded"}).to_string();
    let signature = sign(secret, &body);
    let (s, _) = api
        .http
        .request(
            "POST",
            "/api/v1/payments/mockpay/notify",
            &[
                ("Content-Type", "application/json"),
                ("x-mockpay-signature", &signature),
            ],
            body.as_bytes(),
        )
        .await?;
    if s != 200 {
        return Err(format!("notify {s}"));
    }
    Ok(())
}
