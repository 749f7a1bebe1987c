//! Prometheus metrics, hand-rolled: per-route request counts and latency
//! histograms, plus gauges read at scrape time (queue depths, pool, memory).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Distinct (method, route) series kept; unknown routes share one series so a
/// scanner cannot grow this map.
const MAX_ROUTE_SERIES: usize = 512;

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_S.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Depth of one bounded queue (a batcher's pending plus in-flight work),
/// updated by its owner, read at scrape time.
#[derive(Clone)]
pub struct QueueGauge {
    depth: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub capacity: usize,
}

impl QueueGauge {
    pub fn new(capacity: usize) -> Self {
        QueueGauge {
            depth: std::sync::Arc::default(),
            capacity,
        }
    }
    pub fn set(&self, depth: usize) {
        self.depth.store(depth, Ordering::Relaxed);
    }
    pub fn get(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: DashMap<(String, String, u16), AtomicU64>,
    latency: DashMap<(String, String), Histogram>,
    queues: parking_lot::Mutex<Vec<(String, QueueGauge)>>,
    /// Events parked by bus consumers (see `infra::dead_letter`), as last seen.
    pub dead_letters: std::sync::Arc<AtomicU64>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe_request(
        &self,
        method: &str,
        route: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        let route = route.unwrap_or("unmatched");
        let route = if self.latency.len() >= MAX_ROUTE_SERIES
            && !self
                .latency
                .contains_key(&(method.to_owned(), route.to_owned()))
        {
            "other"
        } else {
            route
        };
        self.requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
        let h = self
            .latency
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS_S.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A queue whose depth `/metrics` reports as `tandem_mailbox_depth{actor=name}`.
    pub fn queue(&self, name: &str, capacity: usize) -> QueueGauge {
        let g = QueueGauge::new(capacity);
        self.queues.lock().push((name.to_owned(), g.clone()));
        g
    }

    /// (name, depth, capacity) of every registered queue.
    pub fn queues(&self) -> Vec<(String, usize, usize)> {
        self.queues
            .lock()
            .iter()
            .map(|(n, g)| (n.clone(), g.get(), g.capacity))
            .collect()
    }

    pub fn render_http(&self, out: &mut String) {
        out.push_str(
            "# HELP tandem_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE tandem_http_requests_total counter\n");
        for e in &self.requests {
            let (m, r, s) = e.key();
            let _ = writeln!(
                out,
                "tandem_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {}",
                escape(r),
                e.value().load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP tandem_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE tandem_http_request_duration_seconds histogram\n");
        for e in &self.latency {
            let (m, r) = e.key();
            let r = escape(r);
            let h = e.value();
            for (i, bound) in BUCKETS_S.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tandem_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"{bound}\"}} {}",
                    h.buckets[i].load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tandem_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "tandem_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\"}} {}",
                h.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "tandem_http_request_duration_seconds_count{{method=\"{m}\",route=\"{r}\"}} {count}"
            );
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Writes one gauge with its help line.
pub fn gauge(out: &mut String, name: &str, help: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// Resident set size of this process in bytes (Linux), from /proc/self/statm.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Open file descriptors of this process (Linux).
pub fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}
