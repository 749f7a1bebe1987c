//! `health`: `GET /health` under load, the ceiling other scenarios compare to.

use crate::api::Api;
use crate::report::{drive, report, Report};
use crate::Args;

pub(crate) async fn scenario_health(args: &Args) -> anyhow::Result<Report> {
    let api = Api::new(&args.target, args.concurrency)?;
    api.warm(args.concurrency).await?;
    let op = move |_| {
        let api = api.clone();
        async move {
            match api.get("/health", None).await? {
                (200, _) => Ok(()),
                (s, v) => Err(format!("health {s} {v}")),
            }
        }
    };
    let (elapsed, stats) = drive(args, None, op).await;
    Ok(report("health", elapsed, &stats))
}
