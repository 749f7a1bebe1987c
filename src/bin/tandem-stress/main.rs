//! `tandem-stress`: load and correctness harness for a running Tandem server.
//!
//! Scenarios: `health`, `orders`, `order-create`, `flash-sale`, `chat-direct`, `chat-group`, `connections`, `mixed`, `chaos`.
//! Loopback targets only; every run stops by itself.

mod api;
mod http;
mod report;
mod scenarios;
mod ws;

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};

use crate::report::Report;
use crate::scenarios::{
    scenario_chaos, scenario_chat_direct, scenario_chat_group, scenario_connections,
    scenario_flash_sale, scenario_health, scenario_mixed, scenario_order_create, scenario_orders,
};

/// The harness shares the machine with the server it measures: the cheaper
/// its allocations, the more of the two cores the server gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tandem-stress",
    about = "Load and correctness harness for Tandem (loopback targets only)"
)]
struct Args {
    /// Server base URL; must be a loopback address. Several (repeated or
    /// comma-separated) are the nodes of a cluster: requests and sockets are
    /// spread over them round-robin.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    target: Vec<String>,
    /// health | orders | order-create | flash-sale | chat-direct | chat-group | connections | mixed | chaos.
    #[arg(long)]
    scenario: String,
    /// Seconds of measured load (flash-sale runs until every buyer has tried).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Closed-loop workers (chat-direct: sender/receiver pairs; chat-group:
    /// sending members, at most 128 and half the group).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop: fixed arrival rate per second; latency counts from the
    /// intended send time. chat-group: messages per second over all senders,
    /// sent without waiting for acks (send-to-delivery latency in
    /// `delivery_latency_ms`).
    #[arg(long)]
    rate: Option<u64>,
    /// flash-sale: units in stock.
    #[arg(long, default_value_t = 1_000)]
    stock: i64,
    /// flash-sale: buy attempts (one per buyer).
    #[arg(long, default_value_t = 20_000)]
    buyers: u64,
    /// chat-group: members per group.
    #[arg(long, default_value_t = 500)]
    group_size: usize,
    /// Admin account for setup (approving the merchant, rebate rules).
    #[arg(long)]
    admin: Option<String>,
    /// The server's TANDEM_MOCKPAY_SECRET, to sign payment notifications.
    #[arg(long)]
    mockpay_secret: Option<String>,
    /// Also run the `health` ceiling in the same invocation and report the ratio.
    #[arg(long)]
    compare: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<String>,
    /// chaos: the shell command that starts the server (the harness starts
    /// it, kills it with SIGKILL and starts it again).
    #[arg(long)]
    server_cmd: Option<String>,
    /// chaos: NAME=CMD, a shell command that restarts a service the server
    /// uses (Redis, RabbitMQ); repeatable, run in turn between kills.
    #[arg(long)]
    restart_cmd: Vec<String>,
    /// chaos: seconds between faults.
    #[arg(long, default_value_t = 15)]
    fault_interval: u64,
    /// chaos: the shell command of the final `tandem audit` (default: the
    /// server command followed by ` audit`).
    #[arg(long)]
    audit_cmd: Option<String>,
}

/// Hard bounds so a run always stops.
const MAX_DURATION_S: u64 = 600;
const MAX_CONCURRENCY: usize = 4_096;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .context("the target must be http://")?;
    let host = rest.split('/').next().unwrap_or_default();
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or_default()
    };
    let ok = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback());
    if !ok {
        bail!("refusing to target {host}: tandem-stress only targets loopback addresses");
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    match args.scenario.as_str() {
        "health" => scenario_health(args).await,
        "orders" => scenario_orders(args).await,
        "order-create" => scenario_order_create(args).await,
        "flash-sale" => scenario_flash_sale(args).await,
        "chat-direct" => scenario_chat_direct(args).await,
        "connections" => scenario_connections(args).await,
        "chat-group" => scenario_chat_group(args).await,
        "mixed" => scenario_mixed(args).await,
        "chaos" => scenario_chaos(args).await,
        other => bail!("unknown scenario {other}"),
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        for t in &args.target {
            ensure_loopback(t)?;
        }
        let mut rep = run(&args).await?;
        if args.compare.as_deref() == Some("health") {
            let mut h = args.clone();
            h.scenario = "health".into();
            h.rate = None;
            let ceiling = scenario_health(&h).await?;
            let c = ceiling.throughput();
            rep.extras.insert("ceiling_per_s".into(), json!(c));
            rep.extras.insert(
                "ratio_to_ceiling".into(),
                json!(if c > 0.0 { rep.throughput() / c } else { 0.0 }),
            );
        } else if let Some(other) = &args.compare {
            bail!("--compare supports only `health`, not {other}");
        }
        anyhow::Ok(rep)
    });
    match result {
        Ok(rep) => {
            rep.print();
            if let Some(path) = &args.json {
                if let Err(e) = std::fs::write(
                    path,
                    serde_json::to_string_pretty(&rep.to_json()).unwrap_or_default(),
                ) {
                    eprintln!("error: writing {path}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            if rep.checks.values().all(|v| v == &Value::Bool(true)) {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!("a correctness check failed");
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
