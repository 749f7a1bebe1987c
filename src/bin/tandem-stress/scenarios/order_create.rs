//! `order-create`: orders created only (durable before their 201), so
//! creation is measured apart from the lifecycle; then checked: every
//! acknowledged order present with the right total, the stock down by
//! exactly what was acknowledged (never oversold).

use std::sync::Arc;

use anyhow::Context as _;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::api::{run_id, shop, Api};
use crate::report::{drive, report, Report};
use crate::Args;

/// Units in stock: far more than a run can sell, so no order is refused for
/// stock and the count still proves nothing was oversold.
const STOCK: i64 = 1_000_000_000;
const PRICE_CENTS: i64 = 1_234;

pub(crate) async fn scenario_order_create(args: &Args) -> anyhow::Result<Report> {
    let api = Api::new(&args.target, args.concurrency)?;
    let shop = shop(&api, args, STOCK, PRICE_CENTS).await?;
    let buyers = Arc::new(
        api.users(&format!("s{}c", run_id()), args.concurrency.clamp(1, 256))
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
        let (api, created, buyers) = (api2.clone(), created2.clone(), buyers2.clone());
        async move {
            let b = usize::try_from(i).unwrap_or(0) % buyers.len();
            let (s, o) = api
                .post(
                    "/api/v1/orders",
                    Some(&buyers[b].1),
                    &json!({"items": [{"product_id": p, "quantity": 1}]}),
                )
                .await?;
            if s != 201 {
                return Err(format!("order {s} {o}"));
            }
            created
                .lock()
                .push((b, o["order_id"].as_i64().unwrap_or(0)));
            Ok(())
        }
    };
    api.warm(args.concurrency).await?;
    let (elapsed, stats) = drive(args, None, op).await;
    let mut rep = report("order-create", elapsed, &stats);
    // Checks, outside the measured window.
    let orders = created.lock().clone();
    let present = futures_util::stream::iter(orders.iter().copied())
        .map(|(b, id)| {
            let api = api.clone();
            let token = buyers[b].1.clone();
            async move {
                matches!(api.get(&format!("/api/v1/orders/{id}"), Some(&token)).await,
                    Ok((200, o)) if o["total_cents"] == PRICE_CENTS)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<bool>>()
        .await;
    rep.checks.insert(
        "every_acknowledged_order_present_with_right_total".into(),
        Value::Bool(present.iter().all(|x| *x)),
    );
    let (_, product) = api
        .get(&format!("/api/v1/products/{p}"), None)
        .await
        .map_err(anyhow::Error::msg)?;
    let left = product["stock"]
        .as_i64()
        .context("the product has no stock")?;
    let sold = i64::try_from(orders.len()).unwrap_or(i64::MAX);
    // Unpaid orders hold their units until their pay deadline, which is far
    // beyond the run: the stock is down by exactly what was acknowledged.
    rep.checks.insert(
        "stock_down_by_exactly_the_acknowledged".into(),
        Value::Bool(left == STOCK - sold),
    );
    Ok(rep)
}
