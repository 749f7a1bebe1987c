//! `connections`: many idle WebSockets held open, reporting the server's
//! resident memory per connection.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::api::{run_id, server_rss, Api};
use crate::report::Report;
use crate::ws::{ws_config, Ws};
use crate::{Args, MAX_DURATION_S};

/// Most sockets one harness process opens (a process here may hold 20,000 files).
const MAX_SOCKETS: usize = 19_000;
/// Loopback source addresses the sockets are spread over (past the ephemeral-port limit of one).
const SOURCE_ADDRESSES: u8 = 16;

/// Opens `--concurrency` idle WebSockets, holds them for `--duration`, and
/// reports the server's resident memory per connection.
pub(crate) async fn scenario_connections(args: &Args) -> anyhow::Result<Report> {
    let want = args.concurrency.min(MAX_SOCKETS);
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if limit < (want as u64) + 64 {
        bail!("this machine allows the harness {limit} open files, fewer than {want} sockets: the machine, not the server, is the limit");
    }
    let api = Api::new(&args.target, 8)?;
    let users = Arc::new(api.users(&format!("s{}w", run_id()), 32).await?);
    // Socket i goes to node i % nodes (round-robin over the targets).
    let mut servers: Vec<(std::net::SocketAddr, String)> = Vec::new();
    for base in &api.bases {
        let host_port = base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let addr = tokio::net::lookup_host(&host_port)
            .await?
            .next()
            .context("resolving the target")?;
        servers.push((addr, base.clone()));
    }
    let servers = Arc::new(servers);
    let before = server_rss(&api).await?;
    let hist = Arc::new(parking_lot::Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        600_000_000,
        3,
    )?));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // Two halves, with the server's memory read between them: the second
    // half's growth is what one more socket costs, free of the memory the
    // server had freed before the run (setup's password hashing) and that
    // the first sockets reuse.
    let half = want / 2;
    let open = |range: std::ops::Range<usize>| {
        open_sockets(
            range,
            users.clone(),
            servers.clone(),
            hist.clone(),
            errors.clone(),
        )
    };
    let mut sockets = open(0..half).await;
    let opened_half = sockets.len();
    let mid = server_rss(&api).await?;
    sockets.extend(open(half..want).await);
    let opened = sockets.len();
    let open_s = start.elapsed().as_secs_f64();
    let held_rss = server_rss(&api).await?;
    let marginal = (held_rss.saturating_sub(mid)) / (opened - opened_half).max(1) as u64;
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
        .insert("server_bytes_per_added_connection".into(), json!(marginal));
    rep.extras
        .insert("server_rss_before_bytes".into(), json!(before));
    rep.extras
        .insert("server_rss_held_bytes".into(), json!(during));
    Ok(rep)
}

/// Opens the sockets numbered `range` (socket i to node i mod n, from one of
/// `SOURCE_ADDRESSES` loopback addresses), 128 at a time.
async fn open_sockets(
    range: std::ops::Range<usize>,
    users: Arc<Vec<(i64, String)>>,
    servers: Arc<Vec<(std::net::SocketAddr, String)>>,
    hist: Arc<parking_lot::Mutex<Histogram<u64>>>,
    errors: Arc<AtomicU64>,
) -> Vec<Ws> {
    futures_util::stream::iter(range)
        .map(|i| {
            let (users, hist, errors) = (users.clone(), hist.clone(), errors.clone());
            let (server, base) = servers[i % servers.len()].clone();
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
        .await
}
