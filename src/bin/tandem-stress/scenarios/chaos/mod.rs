//! `chaos`: a mixed load of retrying clients (chat, posts, follows, orders,
//! payments, refunds, withdrawals) while the harness kills the server with
//! SIGKILL and starts it again, and restarts the services it names in
//! between; then it checks that nothing acknowledged was lost or applied
//! twice and that `tandem audit` is clean.

mod chat;
mod checks;
mod faults;
mod ops;
mod retry;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use self::chat::ChatPair;
use self::faults::{Injected, Server};
use self::ops::{Ledger, World};
use crate::api::{run_id, shop, Api};
use crate::report::{drive, report, Report};
use crate::{Args, MAX_DURATION_S};

const PRICE_CENTS: i64 = 1_234;
const INITIAL_STOCK: i64 = 1_000_000_000;
/// The longest a restart may keep the service away (the contract's check).
const MAX_RECOVERY_MS: u64 = 5_000;
/// After the load, the server must be ready again within this.
const FINAL_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// `tandem audit` may take this long.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(300);
/// People of a run (follows are each follower x followee pair once).
const BUYERS_MAX: usize = 32;
const AUTHORS: usize = 8;
const FOLLOWERS: usize = 384;
const FOLLOWEES: usize = 384;
const PAIRS_MAX: usize = 64;

pub(crate) async fn scenario_chaos(args: &Args) -> anyhow::Result<Report> {
    let server_cmd = args.server_cmd.clone().context("--server-cmd is needed")?;
    let restarts = faults::parse_restarts(&args.restart_cmd)?;
    let secret = args
        .mockpay_secret
        .clone()
        .context("--mockpay-secret is needed to sign notifications")?;
    if args.fault_interval == 0 {
        bail!("--fault-interval must be at least 1 s");
    }
    let api = Api::new(&args.target, args.concurrency)?;
    let log_path = std::env::temp_dir().join(format!("tandem-chaos-{}.log", run_id()));
    println!("server log: {}", log_path.display());
    let mut server = Server::new(&server_cmd, log_path);
    faults::first_start(&mut server, &api).await?;
    print_schedule(args, &restarts);

    let world = Arc::new(setup(&api, args, secret).await?);
    let pairs = Arc::new(open_pairs(&api, args).await?);
    let op = operation(world.clone(), pairs.clone());

    let start = Instant::now();
    let until = start + Duration::from_secs(args.duration.min(MAX_DURATION_S));
    let interval = Duration::from_secs(args.fault_interval);
    let fault_api = api.clone();
    let injector = tokio::spawn(async move {
        let log = faults::inject(&mut server, &fault_api, &restarts, interval, start, until).await;
        (server, log)
    });
    let (elapsed, stats) = drive(args, None, op).await;
    let (mut server, injected) = injector.await.context("the fault injector failed")?;
    faults::wait_ready(&api, &mut server, FINAL_READY_TIMEOUT).await?;

    let mut rep = report("chaos", elapsed, &stats);
    let tally = check(&api, &world, &pairs).await?;
    let audit = faults::run_shell(
        &args
            .audit_cmd
            .clone()
            .unwrap_or(format!("{server_cmd} audit")),
        AUDIT_TIMEOUT,
    )
    .await;
    if let Err(e) = &audit {
        eprintln!("tandem audit: {e:#}");
    }
    record(&mut rep, &world, &pairs, &injected, &tally, audit.is_ok()).await;
    drop(server);
    Ok(rep)
}

fn print_schedule(args: &Args, restarts: &[faults::Fault]) {
    let n =
        usize::try_from(args.duration.min(MAX_DURATION_S).saturating_sub(1) / args.fault_interval)
            .unwrap_or(0);
    println!("faults, one every {} s:", args.fault_interval);
    for k in 0..n {
        println!(
            "  at {:>4} s: {}",
            (k as u64 + 1) * args.fault_interval,
            faults::fault_at(k, restarts)
        );
    }
}

/// The shop, a rebate rule with no hold (so completed orders' rebates can
/// be withdrawn), and the people.
async fn setup(api: &Api, args: &Args, secret: String) -> anyhow::Result<World> {
    let shop = shop(api, args, INITIAL_STOCK, PRICE_CENTS).await?;
    let rules = json!({"rules": [{"name": "chaos", "rate_bps": 100}], "referral_levels_bps": [], "hold_seconds": 0});
    let (s, v) = retry::retried(
        api,
        "PUT",
        "/api/v1/admin/rebate-rules",
        Some(&shop.admin),
        Some(&rules),
        &[],
    )
    .await
    .map_err(anyhow::Error::msg)?;
    if !(200..300).contains(&s) {
        bail!("setting rebate rules: {s} {v}");
    }
    let run = run_id();
    let buyers = api
        .users(&format!("c{run}b"), args.concurrency.clamp(1, BUYERS_MAX))
        .await?;
    let ledger = Ledger {
        order_keys: vec![0; buyers.len()],
        withdrawal_keys: vec![0; buyers.len()],
        ..Ledger::default()
    };
    Ok(World {
        api: api.clone(),
        secret,
        product_id: shop.product_id,
        owner: shop.owner,
        buyers,
        authors: api.users(&format!("c{run}a"), AUTHORS).await?,
        followers: api.users(&format!("c{run}f"), FOLLOWERS).await?,
        followees: api.users(&format!("c{run}g"), FOLLOWEES).await?,
        ledger: parking_lot::Mutex::new(ledger),
        run,
    })
}

async fn open_pairs(api: &Api, args: &Args) -> anyhow::Result<Vec<tokio::sync::Mutex<ChatPair>>> {
    let n = (args.concurrency / 2).clamp(2, PAIRS_MAX);
    let users = api.users(&format!("c{}p", run_id()), 2 * n).await?;
    Ok(users
        .chunks_exact(2)
        .enumerate()
        .map(|(i, p)| {
            tokio::sync::Mutex::new(ChatPair::new(api.base_for(i), p[0].clone(), p[1].clone()))
        })
        .collect())
}

type Pairs = Arc<Vec<tokio::sync::Mutex<ChatPair>>>;

/// Per ten ops: five chat messages, a post, a follow and three orders (in
/// turn paid, refunded, completed with a withdrawal, cancelled).
fn operation(
    world: Arc<World>,
    pairs: Pairs,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
       + Send
       + Sync
       + Clone
       + 'static {
    let follows = Arc::new(AtomicUsize::new(0));
    move |i: u64| {
        let (world, pairs, follows) = (world.clone(), pairs.clone(), follows.clone());
        Box::pin(async move {
            let n = usize::try_from(i / 10).unwrap_or(0);
            match i % 10 {
                0..=4 => {
                    let slot = (n * 5 + usize::try_from(i % 10).unwrap_or(0)) % pairs.len();
                    pairs[slot].lock().await.send_one().await
                }
                5 => world.post(i).await,
                6 => world.follow(follows.fetch_add(1, Ordering::Relaxed)).await,
                _ => world.order(i, (i / 10 + i % 10) % 4).await,
            }
        })
    }
}

async fn check(api: &Api, world: &World, pairs: &Pairs) -> anyhow::Result<checks::Tally> {
    let mut tally = checks::Tally::default();
    let mut guards = Vec::with_capacity(pairs.len());
    for p in pairs.iter() {
        guards.push(p.lock().await);
    }
    let snapshot: Vec<&ChatPair> = guards.iter().map(|g| &**g).collect();
    checks::chat(api, &snapshot, &mut tally)
        .await
        .map_err(anyhow::Error::msg)?;
    checks::orders(world, INITIAL_STOCK, &mut tally)
        .await
        .map_err(anyhow::Error::msg)?;
    checks::rebates(world, &mut tally)
        .await
        .map_err(anyhow::Error::msg)?;
    checks::follows(world, &mut tally)
        .await
        .map_err(anyhow::Error::msg)?;
    checks::posts_and_withdrawals(world, &mut tally)
        .await
        .map_err(anyhow::Error::msg)?;
    for f in tally.findings.iter().take(20) {
        eprintln!("{f}");
    }
    Ok(tally)
}

async fn record(
    rep: &mut Report,
    world: &World,
    pairs: &Pairs,
    injected: &[Injected],
    tally: &checks::Tally,
    audit_ok: bool,
) {
    let (mut messages, mut redelivered) = (0_u64, 0_u64);
    for p in pairs.iter() {
        let p = p.lock().await;
        messages += p.acked.len() as u64;
        redelivered += p.redelivered;
    }
    let (steps, orders, paid, others) = {
        let l = world.ledger.lock();
        let count = |e: ops::Expect| l.orders.iter().filter(|o| o.expect == e).count();
        let others = json!({"refunded": count(ops::Expect::Refunded), "completed": count(ops::Expect::Completed),
            "cancelled": count(ops::Expect::Cancelled), "withdrawals": l.withdrawals.len(), "posts": l.posts.len(), "follows": l.follows.len()});
        (
            l.steps_acked,
            l.orders.len(),
            l.orders.iter().filter(|o| o.expect.paid()).count(),
            others,
        )
    };
    let recoveries: Vec<Option<u64>> = injected.iter().map(|f| f.recovery_ms).collect();
    let max_recovery = recoveries
        .iter()
        .map(|r| r.unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0);
    let c = &mut rep.checks;
    c.insert(
        "nothing_acknowledged_lost".into(),
        Value::Bool(tally.lost == 0),
    );
    c.insert(
        "nothing_applied_twice".into(),
        Value::Bool(tally.duplicated == 0),
    );
    c.insert("audit_clean".into(), Value::Bool(audit_ok));
    c.insert(
        "ready_within_5s_of_each_fault".into(),
        Value::Bool(max_recovery <= MAX_RECOVERY_MS),
    );
    c.insert(
        "every_operation_completed".into(),
        Value::Bool(rep.errors == 0),
    );
    c.insert("faults_injected".into(), Value::Bool(!injected.is_empty()));
    let e = &mut rep.extras;
    e.insert("faults_injected".into(), json!(injected.len()));
    e.insert("acknowledged".into(), json!(messages + steps));
    e.insert("lost".into(), json!(tally.lost));
    e.insert("duplicated".into(), json!(tally.duplicated));
    e.insert(
        "max_recovery_ms".into(),
        json!(if max_recovery == u64::MAX {
            Value::Null
        } else {
            json!(max_recovery)
        }),
    );
    e.insert("messages_acked".into(), json!(messages));
    e.insert(
        "messages_redelivered_and_dropped".into(),
        json!(redelivered),
    );
    e.insert("orders_acked".into(), json!(orders));
    e.insert("payments_acked".into(), json!(paid));
    e.insert("also_acked".into(), others);
    e.insert(
        "faults".into(),
        json!(injected
            .iter()
            .map(|f| json!({"at_s": f.at_s, "fault": f.fault, "recovery_ms": f.recovery_ms}))
            .collect::<Vec<_>>()),
    );
}
