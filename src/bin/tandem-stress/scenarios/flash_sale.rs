//! `flash-sale`: many buyers race for limited stock; checks nothing is
//! oversold and every acknowledged order exists.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::api::{run_id, shop, Api};
use crate::report::{drive, report, Report};
use crate::{Args, MAX_DURATION_S};

pub(crate) async fn scenario_flash_sale(args: &Args) -> anyhow::Result<Report> {
    let api = Api::new(&args.target, args.concurrency)?;
    let shop = shop(&api, args, args.stock, 999).await?;
    let accounts = Arc::new(
        api.users(&format!("s{}f", run_id()), args.concurrency.clamp(1, 256))
            .await?,
    );
    let sold = Arc::new(parking_lot::Mutex::new(Vec::<(usize, i64)>::new()));
    let (p, api2, sold2, accounts2) =
        (shop.product_id, api.clone(), sold.clone(), accounts.clone());
    let op = move |i: u64| {
        let (api, sold, accounts) = (api2.clone(), sold2.clone(), accounts2.clone());
        async move {
            let a = usize::try_from(i).unwrap_or(0) % accounts.len();
            match api
                .post(
                    "/api/v1/orders",
                    Some(&accounts[a].1),
                    &json!({"items": [{"product_id": p, "quantity": 1}]}),
                )
                .await?
            {
                (201, o) => {
                    sold.lock().push((a, o["order_id"].as_i64().unwrap_or(0)));
                    Ok(())
                }
                (409, v) if v["code"] == "out_of_stock" => Ok(()),
                (s, v) => Err(format!("buy attempt {s} {v}")),
            }
        }
    };
    let mut a = args.clone();
    a.duration = MAX_DURATION_S;
    api.warm(args.concurrency).await?;
    let (elapsed, stats) = drive(&a, Some(args.buyers), op).await;
    let mut rep = report("flash-sale", elapsed, &stats);
    let sold = sold.lock().clone();
    let (_, product) = api
        .get(&format!("/api/v1/products/{p}"), None)
        .await
        .map_err(anyhow::Error::msg)?;
    let left = product["stock"].as_i64().unwrap_or(-1);
    let n = i64::try_from(sold.len()).unwrap_or(i64::MAX);
    rep.checks.insert(
        "sold_equals_stock".into(),
        Value::Bool(
            n == args
                .stock
                .min(i64::try_from(args.buyers).unwrap_or(i64::MAX))
                && left == args.stock - n,
        ),
    );
    rep.checks.insert(
        "never_oversold".into(),
        Value::Bool(n <= args.stock && left >= 0),
    );
    let present = futures_util::stream::iter(sold.iter().copied())
        .map(|(a, id)| {
            let api = api.clone();
            let token = accounts[a].1.clone();
            async move {
                matches!(
                    api.get(&format!("/api/v1/orders/{id}"), Some(&token)).await,
                    Ok((200, _))
                )
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<bool>>()
        .await;
    rep.checks.insert(
        "every_acknowledged_order_present".into(),
        Value::Bool(present.iter().all(|x| *x)),
    );
    rep.extras.insert("sold".into(), json!(n));
    Ok(rep)
}
