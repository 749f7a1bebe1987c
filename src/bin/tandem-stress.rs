//! `tandem-stress`: load and correctness harness for a running Tandem server.
//!
//! Scenarios: `health`, `orders`, `flash-sale`, `chat-direct`, `chat-group`, `connections`, `mixed`.
//! Loopback targets only; every run stops by itself.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message;

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
    /// Server base URL; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// health | orders | flash-sale | chat-direct | chat-group | connections | mixed.
    #[arg(long)]
    scenario: String,
    /// Seconds of measured load (flash-sale runs until every buyer has tried).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Closed-loop workers (chat-direct: sender/receiver pairs; chat-group:
    /// sending members, at most 128 and half the group).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop: fixed arrival rate per second; latency counts from the intended send time.
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

#[derive(Default)]
struct Stats {
    ops: AtomicU64,
    errors: AtomicU64,
    hist: parking_lot::Mutex<Option<Histogram<u64>>>,
}

impl Stats {
    fn new() -> Arc<Self> {
        let s = Stats::default();
        *s.hist.lock() = Histogram::new_with_bounds(1, 600_000_000, 3).ok();
        Arc::new(s)
    }
    fn merge(&self, h: &Histogram<u64>) {
        if let Some(all) = self.hist.lock().as_mut() {
            let _ = all.add(h);
        }
    }
}

struct Report {
    scenario: String,
    duration_s: f64,
    ops: u64,
    errors: u64,
    latency_us: Option<Histogram<u64>>,
    checks: serde_json::Map<String, Value>,
    extras: serde_json::Map<String, Value>,
}

impl Report {
    fn throughput(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.ops as f64 / self.duration_s
        } else {
            0.0
        }
    }

    fn to_json(&self) -> Value {
        let q = |p: f64| {
            self.latency_us
                .as_ref()
                .map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
        };
        let mut v = json!({
            "scenario": self.scenario,
            "duration_s": self.duration_s,
            "ops": self.ops,
            "errors": self.errors,
            "throughput_per_s": self.throughput(),
            "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
                "max": self.latency_us.as_ref().map_or(0.0, |h| h.max() as f64 / 1000.0)},
            "checks": self.checks,
        });
        if let Some(obj) = v.as_object_mut() {
            for (k, x) in &self.extras {
                obj.insert(k.clone(), x.clone());
            }
        }
        v
    }

    fn print(&self) {
        let v = self.to_json();
        println!("scenario            {}", self.scenario);
        println!("duration            {:.2} s", self.duration_s);
        println!("ops                 {}", self.ops);
        println!("errors              {}", self.errors);
        println!("throughput          {:.0} /s", self.throughput());
        let l = &v["latency_ms"];
        println!(
            "latency ms          p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l["p50"], l["p90"], l["p99"], l["p999"], l["max"]
        );
        for (k, x) in &self.checks {
            println!(
                "check {k:<30} {}",
                if x == &Value::Bool(true) {
                    "ok"
                } else {
                    "FAILED"
                }
            );
        }
        for (k, x) in &self.extras {
            println!("{k:<19} {x}");
        }
    }
}

/// Runs `op` under closed-loop (`concurrency` workers until the deadline or
/// `max_ops`) or open-loop (`rate` per second, latency from the intended time).
async fn drive<F, Fut>(args: &Args, max_ops: Option<u64>, op: F) -> (f64, Arc<Stats>)
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let stats = Stats::new();
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration.min(MAX_DURATION_S));
    let hard_deadline = start + Duration::from_secs(MAX_DURATION_S);
    let interval_ns = args.rate.map(|r| 1_000_000_000 / r.max(1));
    let printed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.clamp(1, MAX_CONCURRENCY) {
        let (op, stats, counter, printed) =
            (op.clone(), stats.clone(), counter.clone(), printed.clone());
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).ok();
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if max_ops.is_some_and(|m| i >= m) {
                    break;
                }
                let intended = match interval_ns {
                    Some(ns) => {
                        let t = start + Duration::from_nanos(ns.saturating_mul(i));
                        if t >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(t.into()).await;
                        t
                    }
                    None => {
                        let now = Instant::now();
                        if max_ops.is_none() && now >= deadline || now >= hard_deadline {
                            break;
                        }
                        now
                    }
                };
                match op(i).await {
                    Ok(()) => {
                        stats.ops.fetch_add(1, Ordering::Relaxed);
                        if let Some(h) = h.as_mut() {
                            let _ = h.record(
                                u64::try_from(intended.elapsed().as_micros())
                                    .unwrap_or(u64::MAX)
                                    .max(1),
                            );
                        }
                    }
                    Err(e) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        if printed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("error: {e}");
                        }
                    }
                }
            }
            if let Some(h) = h {
                stats.merge(&h);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    (start.elapsed().as_secs_f64(), stats)
}

fn report(name: &str, elapsed: f64, stats: &Stats) -> Report {
    Report {
        scenario: name.to_owned(),
        duration_s: elapsed,
        ops: stats.ops.load(Ordering::Relaxed),
        errors: stats.errors.load(Ordering::Relaxed),
        latency_us: stats.hist.lock().clone(),
        checks: serde_json::Map::new(),
        extras: serde_json::Map::new(),
    }
}

/// A small API client for setup, the measured requests and the checks.
#[derive(Clone)]
struct Api {
    base: String,
    http: Arc<LeanHttp>,
}

impl Api {
    fn new(base: &str, pool: usize) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        Ok(Api {
            http: Arc::new(LeanHttp::new(&base, pool)?),
            base,
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        let bytes = match body {
            Some(b) => {
                headers.push(("Content-Type", "application/json"));
                serde_json::to_vec(b).map_err(|e| e.to_string())?
            }
            None => Vec::new(),
        };
        let (status, text) = self.http.request(method, path, &headers, &bytes).await?;
        Ok((
            status,
            serde_json::from_slice(&text)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&text).into_owned())),
        ))
    }

    /// Opens the connections of a measured run before it starts.
    async fn warm(&self, n: usize) -> anyhow::Result<()> {
        self.http.warm(n).await.map_err(anyhow::Error::msg)
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value), String> {
        self.call("POST", path, token, Some(body)).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, Value), String> {
        self.call("GET", path, token, None).await
    }

    async fn token(
        &self,
        path: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<(i64, String)> {
        let (s, v) = self
            .post(
                path,
                None,
                &json!({"username": username, "password": password}),
            )
            .await
            .map_err(anyhow::Error::msg)?;
        if s != 200 && s != 201 {
            bail!("{path} {username}: {s} {v}");
        }
        Ok((
            v["user_id"].as_i64().unwrap_or(0),
            v["token"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    async fn users(&self, prefix: &str, n: usize) -> anyhow::Result<Vec<(i64, String)>> {
        let out = futures_util::stream::iter(0..n)
            .map(|i| {
                let api = self.clone();
                let name = format!("{prefix}{i}");
                async move {
                    api.token("/api/v1/auth/register", &name, "stress-password-1")
                        .await
                }
            })
            .buffered(8)
            .collect::<Vec<_>>()
            .await;
        out.into_iter().collect()
    }
}

fn run_id() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            % 0xffff_ffff
    )
}

struct Shop {
    product_id: i64,
    admin: String,
}

async fn shop(api: &Api, args: &Args, stock: i64, price: i64) -> anyhow::Result<Shop> {
    let admin = args
        .admin
        .as_deref()
        .context("--admin USER:PASS is needed for this scenario's setup")?;
    let (user, pass) = admin.split_once(':').context("--admin must be USER:PASS")?;
    let (_, admin) = api.token("/api/v1/auth/login", user, pass).await?;
    let (_, owner) = api
        .token(
            "/api/v1/auth/register",
            &format!("s{}m", run_id()),
            "stress-password-1",
        )
        .await?;
    let (_, m) = api
        .post(
            "/api/v1/merchants",
            Some(&owner),
            &json!({"name": "stress shop"}),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    let mid = m["merchant_id"].as_i64().context("merchant")?;
    let (s, v) = api
        .post(
            &format!("/api/v1/admin/merchants/{mid}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    if s != 200 {
        bail!("approving the merchant: {s} {v}");
    }
    let (s, p) = api
        .post("/api/v1/products", Some(&owner), &json!({"merchant_id": mid, "name": "stress item", "category": "stress", "price_cents": price, "stock": stock}))
        .await
        .map_err(anyhow::Error::msg)?;
    if s != 201 {
        bail!("creating the product: {s} {p}");
    }
    Ok(Shop {
        product_id: p["product_id"].as_i64().context("product")?,
        admin,
    })
}

fn sign(secret: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("any key length works"));
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn scenario_health(args: &Args) -> anyhow::Result<Report> {
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

async fn scenario_orders(args: &Args) -> anyhow::Result<Report> {
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

async fn scenario_flash_sale(args: &Args) -> anyhow::Result<Report> {
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

/// One order created, paid and notified (signed like the provider would);
/// `on_created` gets the id as soon as the 201 is in.
async fn order_flow(
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

/// A sender socket, a receiver socket, their direct conversation, the last seq
/// the receiver saw, and whether everything so far arrived once and in order.
type Pair = (Ws, Ws, i64, i64, bool);

/// One message sent, acked to the sender and delivered to the receiver.
async fn chat_roundtrip(pair: &mut Pair, cid: &str) -> Result<(), String> {
    let (sa, sb, conv, last_seq, in_order) = pair;
    sa.send(Message::text(json!({"type": "send", "client_id": cid, "conversation_id": *conv, "body": "stress message"}).to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        if !delivered {
            let v = next_json(sb).await?;
            if v["type"] == "message" {
                let seq = v["seq"].as_i64().unwrap_or(0);
                if seq != *last_seq + 1 || v["client_id"] != cid {
                    *in_order = false;
                }
                *last_seq = seq;
                delivered = true;
            }
            continue;
        }
        let v = next_json(sa).await?;
        if v["type"] == "ack" && v["client_id"] == cid {
            acked = true;
        } else if v["type"] == "error" {
            return Err(format!("send refused: {v}"));
        }
    }
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(base: &str, token: &str) -> anyhow::Result<Ws> {
    let url = format!(
        "{}/api/v1/ws?token={token}",
        base.replacen("http://", "ws://", 1)
    );
    Ok(
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), false)
            .await?
            .0,
    )
}

/// Client sockets read small frames: tungstenite's default 128 KiB read buffer
/// is zero-filled on every read, which made `memset` a quarter of the machine's
/// CPU in `chat-group` (496 receiving sockets) and starved the server.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

async fn next_json(s: &mut Ws) -> Result<Value, String> {
    loop {
        match tokio::time::timeout(REQUEST_TIMEOUT, s.next()).await {
            Err(_) => return Err("timed out waiting for a frame".into()),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| e.to_string())
            }
            Ok(Some(Ok(Message::Close(f)))) => return Err(format!("closed: {f:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("socket ended".into()),
        }
    }
}

async fn scenario_chat_direct(args: &Args) -> anyhow::Result<Report> {
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

/// One sender/receiver pair per two users, their direct conversation opened
/// outside the measurement.
async fn open_pairs(
    api: &Api,
    users: &[(i64, String)],
) -> anyhow::Result<Vec<tokio::sync::Mutex<Pair>>> {
    let mut pairs = Vec::with_capacity(users.len() / 2);
    for p in users.chunks_exact(2) {
        let (a, b) = (&p[0], &p[1]);
        let mut sa = ws(&api.base, &a.1).await?;
        let mut sb = ws(&api.base, &b.1).await?;
        sa.send(Message::text(
            json!({"type": "send", "client_id": "open", "to_user_id": b.0, "body": "hi"})
                .to_string(),
        ))
        .await?;
        let conv = loop {
            let v = next_json(&mut sa).await.map_err(anyhow::Error::msg)?;
            if v["type"] == "ack" {
                break v["conversation_id"].as_i64().unwrap_or(0);
            }
        };
        loop {
            let v = next_json(&mut sb).await.map_err(anyhow::Error::msg)?;
            if v["type"] == "message" {
                break;
            }
        }
        pairs.push(tokio::sync::Mutex::new((sa, sb, conv, 1_i64, true)));
    }
    Ok(pairs)
}

/// Every pair saw its messages once and in seq order, and nothing more arrives.
async fn pairs_consistent(pairs: &[tokio::sync::Mutex<Pair>]) -> bool {
    let mut ok = true;
    for p in pairs {
        let mut g = p.lock().await;
        ok &= g.4;
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), g.1.next()).await
        {
            if t.as_str().contains("\"message\"") {
                ok = false;
            }
        }
    }
    ok
}

/// A real evening peak in one run: per ten ops, six chat messages, two feed
/// posts (with a timeline read) and two orders (created, paid, notified).
async fn scenario_mixed(args: &Args) -> anyhow::Result<Report> {
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

/// `--group-size` members in one group, each with a socket that counts what it
/// receives; `--concurrency` of them (at most 16) send in a closed loop. One op
/// is a message acked; `deliveries_per_s` counts frames received by members.
/// The fields of a server frame that the group receivers check.
#[derive(serde::Deserialize)]
struct SeenFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    seq: Option<i64>,
}

async fn scenario_chat_group(args: &Args) -> anyhow::Result<Report> {
    if args.rate.is_some() {
        bail!("chat-group runs closed-loop only; drop --rate");
    }
    let size = args.group_size.clamp(2, 1_000);
    let senders = args.concurrency.clamp(1, 128).min(size / 2);
    let api = Api::new(&args.target, 16)?;
    let users = api.users(&format!("s{}g", run_id()), size).await?;
    let ids: Vec<i64> = users[1..].iter().map(|u| u.0).collect();
    let (s, g) = api
        .post(
            "/api/v1/conversations",
            Some(&users[0].1),
            &json!({"member_ids": ids, "title": "stress"}),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    if s != 201 {
        bail!("creating the group: {s} {g}");
    }
    let conv = g["conversation_id"].as_i64().context("conversation")?;
    // Receivers: every member's socket counts deliveries and checks seq order.
    let deliveries = Arc::new(AtomicU64::new(0));
    let disorder = Arc::new(AtomicU64::new(0));
    // A watch, not a Notify: a receiver busy with a frame when we stop still sees it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::new();
    let mut sender_sockets = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let ws = ws(&api.base, token).await?;
        if i < senders {
            // A sender's own socket gets only acks (its messages are not echoed to it),
            // plus the other senders' messages.
            sender_sockets.push(ws);
            continue;
        }
        let (deliveries, disorder, mut stop) =
            (deliveries.clone(), disorder.clone(), stop_rx.clone());
        receivers.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut last = 0_i64;
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            // Only the two fields the check needs, borrowed: a full
                            // `Value` per frame made the harness's 496 receivers the
                            // largest CPU user on the shared machine.
                            let Ok(v) = serde_json::from_str::<SeenFrame>(t.as_str()) else { continue };
                            if v.kind == "message" {
                                let seq = v.seq.unwrap_or(0);
                                if seq <= last { disorder.fetch_add(1, Ordering::Relaxed); }
                                last = seq;
                                deliveries.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => { disorder.fetch_add(1_000_000, Ordering::Relaxed); break; }
                    }
                }
            }
        }));
    }
    let sockets = Arc::new(
        sender_sockets
            .into_iter()
            .map(tokio::sync::Mutex::new)
            .collect::<Vec<_>>(),
    );
    let counter = Arc::new(AtomicU64::new(0));
    let s2 = sockets.clone();
    let op = move |i: u64| {
        let (sockets, counter) = (s2.clone(), counter.clone());
        async move {
            let k = usize::try_from(i).unwrap_or(0) % sockets.len();
            let mut ws = sockets[k].lock().await;
            let cid = format!("g{}", counter.fetch_add(1, Ordering::Relaxed));
            ws.send(Message::text(json!({"type": "send", "client_id": cid, "conversation_id": conv, "body": "to everyone"}).to_string()))
                .await
                .map_err(|e| e.to_string())?;
            loop {
                let v = next_json(&mut ws).await?;
                match v["type"].as_str() {
                    Some("ack") if v["client_id"] == cid.as_str() => return Ok(()),
                    Some("error") => return Err(format!("send refused: {v}")),
                    _ => {}
                }
            }
        }
    };
    let mut a = args.clone();
    a.concurrency = senders;
    let (elapsed, stats) = drive(&a, None, op).await;
    // Let the last fan-outs arrive, then stop the receivers.
    let acked = stats.ops.load(Ordering::Relaxed);
    let expected = acked * (size - senders) as u64;
    let settle = Instant::now();
    while deliveries.load(Ordering::Relaxed) < expected
        && settle.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    for r in receivers {
        let _ = r.await;
    }
    let got = deliveries.load(Ordering::Relaxed);
    let mut rep = report("chat-group", elapsed, &stats);
    rep.checks.insert(
        "every_acked_message_delivered_to_every_member_once_in_order".into(),
        Value::Bool(got == expected && disorder.load(Ordering::Relaxed) == 0),
    );
    rep.extras
        .insert("deliveries_per_s".into(), json!(got as f64 / elapsed));
    rep.extras.insert("group_size".into(), json!(size));
    rep.extras
        .insert("receiving_members".into(), json!(size - senders));
    rep.extras.insert("senders".into(), json!(senders));
    Ok(rep)
}

/// Most sockets one harness process opens (a process here may hold 20,000 files).
const MAX_SOCKETS: usize = 19_000;
/// Loopback source addresses the sockets are spread over (past the ephemeral-port limit of one).
const SOURCE_ADDRESSES: u8 = 16;

async fn server_rss(api: &Api) -> anyhow::Result<u64> {
    let (status, body) = api
        .http
        .request("GET", "/metrics", &[], &[])
        .await
        .map_err(anyhow::Error::msg)?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("the server's /metrics has no process_resident_memory_bytes")
}

/// Opens `--concurrency` idle WebSockets, holds them for `--duration`, and
/// reports the server's resident memory per connection.
async fn scenario_connections(args: &Args) -> anyhow::Result<Report> {
    let want = args.concurrency.min(MAX_SOCKETS);
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if limit < (want as u64) + 64 {
        bail!("this machine allows the harness {limit} open files, fewer than {want} sockets: the machine, not the server, is the limit");
    }
    let api = Api::new(&args.target, 8)?;
    let users = Arc::new(api.users(&format!("s{}w", run_id()), 32).await?);
    let host_port = args
        .target
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let server: std::net::SocketAddr = tokio::net::lookup_host(&host_port)
        .await?
        .next()
        .context("resolving the target")?;
    let before = server_rss(&api).await?;
    let hist = Arc::new(parking_lot::Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        600_000_000,
        3,
    )?));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let sockets: Vec<Ws> = futures_util::stream::iter(0..want)
        .map(|i| {
            let (users, hist, errors, base) = (
                users.clone(),
                hist.clone(),
                errors.clone(),
                api.base.clone(),
            );
            async move {
                let t0 = Instant::now();
                let src = std::net::Ipv4Addr::new(
                    127,
                    0,
                    0,
                    1 + u8::try_from(i % usize::from(SOURCE_ADDRESSES)).unwrap_or(0),
                );
                let result = async {
                    let sock = tokio::net::TcpSocket::new_v4()?;
                    sock.bind(std::net::SocketAddr::new(src.into(), 0))?;
                    let stream = sock.connect(server).await?;
                    let url = format!(
                        "{}/api/v1/ws?token={}",
                        base.replacen("http://", "ws://", 1),
                        users[i % users.len()].1
                    );
                    let (ws, _) = tokio_tungstenite::client_async_with_config(
                        url,
                        tokio_tungstenite::MaybeTlsStream::Plain(stream),
                        Some(ws_config()),
                    )
                    .await?;
                    anyhow::Ok(ws)
                }
                .await;
                match result {
                    Ok(ws) => {
                        let _ = hist.lock().record(
                            u64::try_from(t0.elapsed().as_micros())
                                .unwrap_or(u64::MAX)
                                .max(1),
                        );
                        Some(ws)
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("error: opening socket {i}: {e:#}");
                        }
                        None
                    }
                }
            }
        })
        .buffer_unordered(128)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    let opened = sockets.len();
    let open_s = start.elapsed().as_secs_f64();
    // Hold them; a reader per socket answers the server's pings.
    let alive = Arc::new(AtomicUsize::new(opened));
    let hold = Duration::from_secs(args.duration.min(MAX_DURATION_S));
    let mut tasks = Vec::with_capacity(opened);
    for mut ws in sockets {
        let alive = alive.clone();
        tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + hold;
            loop {
                match tokio::time::timeout_at(deadline, ws.next()).await {
                    Err(_) => break,
                    Ok(Some(Ok(_))) => continue,
                    Ok(_) => {
                        alive.fetch_sub(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
            Some(ws)
        }));
    }
    tokio::time::sleep(hold.min(Duration::from_secs(2))).await;
    let during = server_rss(&api).await?;
    let mut kept = Vec::new();
    for t in tasks {
        if let Ok(Some(ws)) = t.await {
            kept.push(ws);
        }
    }
    let held = alive.load(Ordering::Relaxed);
    drop(kept);
    let per_conn = if held > 0 {
        during.saturating_sub(before) / held as u64
    } else {
        0
    };
    let mut rep = Report {
        scenario: "connections".into(),
        duration_s: open_s,
        ops: opened as u64,
        errors: errors.load(Ordering::Relaxed),
        latency_us: Some(hist.lock().clone()),
        checks: serde_json::Map::new(),
        extras: serde_json::Map::new(),
    };
    rep.checks
        .insert("all_connections_held".into(), Value::Bool(held == want));
    rep.extras.insert("connections_held".into(), json!(held));
    rep.extras
        .insert("server_bytes_per_connection".into(), json!(per_conn));
    rep.extras
        .insert("server_rss_before_bytes".into(), json!(before));
    rep.extras
        .insert("server_rss_held_bytes".into(), json!(during));
    Ok(rep)
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    match args.scenario.as_str() {
        "health" => scenario_health(args).await,
        "orders" => scenario_orders(args).await,
        "flash-sale" => scenario_flash_sale(args).await,
        "chat-direct" => scenario_chat_direct(args).await,
        "connections" => scenario_connections(args).await,
        "chat-group" => scenario_chat_group(args).await,
        "mixed" => scenario_mixed(args).await,
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
        ensure_loopback(&args.target)?;
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

/// A minimal HTTP/1.1 keep-alive client for the measured requests: one write
/// and usually one read per request, no URL parsing, no per-request header
/// map. reqwest spent more CPU per request than the server it measured (57 %
/// of the machine in `flash-sale`, URL and IDNA parsing, header maps, its
/// pool), so the server never got the cores the ceiling assumes.
struct LeanHttp {
    addr: std::net::SocketAddr,
    host: String,
    max_idle: usize,
    idle: parking_lot::Mutex<Vec<LeanConn>>,
}

struct LeanConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// Largest response the harness accepts (the biggest it reads is `/metrics`).
const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Headers parsed per response.
const MAX_RESPONSE_HEADERS: usize = 32;

impl LeanHttp {
    fn new(base: &str, max_idle: usize) -> anyhow::Result<Self> {
        use std::net::ToSocketAddrs;
        let host = base
            .strip_prefix("http://")
            .context("the target must be http://")?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let addr = host
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        Ok(LeanHttp {
            addr,
            host,
            max_idle: max_idle.clamp(1, MAX_CONCURRENCY),
            idle: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// Opens connections up to `n` idle ones before a measured run, so the
    /// first second does not measure TCP handshakes (setup, not load).
    async fn warm(&self, n: usize) -> Result<(), String> {
        let want = n.min(self.max_idle).saturating_sub(self.idle.lock().len());
        for _ in 0..want {
            let conn = LeanConn::connect(self.addr).await?;
            self.idle.lock().push(conn);
        }
        Ok(())
    }

    /// One request: `(status, body)`. A reused connection the server has
    /// closed meanwhile (keep-alive timeout) fails before any byte of a
    /// response arrives; the request then goes once more on a new one.
    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);
        let reused = self.idle.lock().pop();
        let retry_allowed = reused.is_some();
        let conn = match reused {
            Some(c) => c,
            None => LeanConn::connect(self.addr).await?,
        };
        let mut attempt = tokio::time::timeout(REQUEST_TIMEOUT, conn.exchange(&wire)).await;
        if retry_allowed && matches!(attempt, Ok(Err(Exchange::Stale))) {
            let fresh = LeanConn::connect(self.addr).await?;
            attempt = tokio::time::timeout(REQUEST_TIMEOUT, fresh.exchange(&wire)).await;
        }
        let (conn, status, body) = match attempt {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(format!("{path}: {e}")),
            Err(_) => return Err(format!("{path}: timed out")),
        };
        if let Some(conn) = conn {
            let mut idle = self.idle.lock();
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        Ok((status, body))
    }
}

enum Exchange {
    /// The connection was closed before any response byte: safe to resend.
    Stale,
    Failed(String),
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exchange::Stale => f.write_str("connection closed before a response"),
            Exchange::Failed(e) => f.write_str(e),
        }
    }
}

impl LeanConn {
    async fn connect(addr: std::net::SocketAddr) -> Result<LeanConn, String> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr}: timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(LeanConn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Writes the request and reads one response (Content-Length framed, as
    /// the server sends every body). Gives the connection back unless the
    /// server said it closes it.
    async fn exchange(mut self, wire: &[u8]) -> Result<(Option<LeanConn>, u16, Vec<u8>), Exchange> {
        use tokio::io::AsyncWriteExt;
        self.buf.clear();
        if self.stream.write_all(wire).await.is_err() {
            return Err(Exchange::Stale);
        }
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut res = httparse::Response::new(&mut headers);
            match res.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = res.code.unwrap_or(0);
                    let mut length = None;
                    let mut close = res.version == Some(0);
                    for h in res.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            return Err(Exchange::Failed(
                                "a chunked response (the harness reads sized bodies only)".into(),
                            ));
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    let length = length.unwrap_or(0);
                    if head_len + length > MAX_RESPONSE_BYTES {
                        return Err(Exchange::Failed("response too large".into()));
                    }
                    while self.buf.len() < head_len + length {
                        self.read_more().await?;
                    }
                    let body = self.buf[head_len..head_len + length].to_vec();
                    let keep = (!close && self.buf.len() == head_len + length).then_some(self);
                    return Ok((keep, status, body));
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_RESPONSE_BYTES {
                        return Err(Exchange::Failed("response head too large".into()));
                    }
                    let first = self.buf.is_empty();
                    match self.read_more().await {
                        Err(_) if first => return Err(Exchange::Stale),
                        r => r?,
                    }
                }
                Err(e) => return Err(Exchange::Failed(format!("bad response: {e}"))),
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), Exchange> {
        use tokio::io::AsyncReadExt;
        // Into the vector's spare capacity: nothing is zero-filled per read.
        self.buf.reserve(8192);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Exchange::Failed("connection closed mid-response".into())),
            Ok(_) => Ok(()),
            Err(e) => Err(Exchange::Failed(e.to_string())),
        }
    }
}
