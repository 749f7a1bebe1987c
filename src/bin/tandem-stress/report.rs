//! Measurement: the load driver (closed or open loop), the counters and
//! latency histogram it fills, and the report printed and written as JSON.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::{Args, MAX_CONCURRENCY, MAX_DURATION_S};

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) ops: AtomicU64,
    errors: AtomicU64,
    hist: parking_lot::Mutex<Option<Histogram<u64>>>,
}

impl Stats {
    fn new() -> Arc<Self> {
        let s = Stats::default();
        *s.hist.lock() = new_histogram();
        Arc::new(s)
    }
    fn merge(&self, h: &Histogram<u64>) {
        if let Some(all) = self.hist.lock().as_mut() {
            let _ = all.add(h);
        }
    }
}

/// A latency histogram in µs, 1 µs to 10 min, 3 significant digits.
pub(crate) fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).ok()
}

pub(crate) struct Report {
    pub(crate) scenario: String,
    pub(crate) duration_s: f64,
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) latency_us: Option<Histogram<u64>>,
    pub(crate) checks: serde_json::Map<String, Value>,
    pub(crate) extras: serde_json::Map<String, Value>,
}

impl Report {
    pub(crate) fn throughput(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.ops as f64 / self.duration_s
        } else {
            0.0
        }
    }

    pub(crate) fn to_json(&self) -> Value {
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

    pub(crate) fn print(&self) {
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
pub(crate) async fn drive<F, Fut>(args: &Args, max_ops: Option<u64>, op: F) -> (f64, Arc<Stats>)
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
            let mut h = new_histogram();
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

pub(crate) fn report(name: &str, elapsed: f64, stats: &Stats) -> Report {
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
