//! Latency recording and the JSON shapes results are reported in.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::procfs::{self, Sample};

/// Latencies in microseconds, 1 µs to 2 min at 3 significant digits, spread over shards so that
/// thousands of receiving tasks do not queue on one lock.
pub struct Recorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

const SHARDS: usize = 16;
const MAX_MICROS: u64 = 120_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds")
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
        }
    }
}

impl Recorder {
    pub fn record(&self, shard: usize, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        self.shards[shard % SHARDS]
            .lock()
            .unwrap()
            .saturating_record(micros);
    }

    pub fn record_micros(&self, shard: usize, micros: u64) {
        self.shards[shard % SHARDS]
            .lock()
            .unwrap()
            .saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Merges and empties the shards.
    pub fn take(&self) -> Histogram<u64> {
        let mut total = histogram();
        for shard in &self.shards {
            let mut h = shard.lock().unwrap();
            total.add(&*h).expect("same bounds");
            h.reset();
        }
        total
    }
}

/// p50/p99/p99.9 plus the points the latency-distribution chart draws, all in microseconds.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    let curve: Vec<Value> = [
        0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
    ]
    .iter()
    .map(|&p| json!([p, h.value_at_percentile(p)]))
    .collect();
    json!({
        "count": h.len(),
        "min_us": h.min(),
        "mean_us": (h.mean() * 10.0).round() / 10.0,
        "p50_us": h.value_at_quantile(0.5),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
        "percentiles": curve,
    })
}

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What the server and the load generator spent between two points of a run.
pub struct Meter {
    pid: u32,
    server: Sample,
    client: Sample,
    at: std::time::Instant,
}

impl Meter {
    pub fn start(pid: u32) -> Self {
        Self {
            pid,
            server: procfs::sample(pid),
            client: procfs::sample_self(),
            at: std::time::Instant::now(),
        }
    }

    pub fn stop(&self) -> Usage {
        let server = procfs::sample(self.pid);
        let client = procfs::sample_self();
        Usage {
            elapsed: self.at.elapsed(),
            server_cpu: server.cpu.saturating_sub(self.server.cpu),
            client_cpu: client.cpu.saturating_sub(self.client.cpu),
            server_rss: server.rss_bytes,
        }
    }
}

pub struct Usage {
    pub elapsed: Duration,
    pub server_cpu: Duration,
    pub client_cpu: Duration,
    pub server_rss: u64,
}

impl Usage {
    pub fn json(&self) -> Value {
        json!({
            "elapsed_s": secs(self.elapsed),
            "server_cpu_s": secs(self.server_cpu),
            "server_cpu_util": ratio(secs(self.server_cpu), secs(self.elapsed)),
            "loadgen_cpu_s": secs(self.client_cpu),
            "server_rss_bytes": self.server_rss,
        })
    }

    /// Server CPU microseconds per unit of work (message, delivery, connection).
    pub fn server_cpu_us_per(&self, units: u64) -> f64 {
        ratio(self.server_cpu.as_secs_f64() * 1e6, units as f64)
    }
}

pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 1e4
}

pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        (a / b * 1e3).round() / 1e3
    }
}

/// CPU time of several processes (the nodes of a cluster, Redis) and of the load generator
/// between two points of a run. A pid of 0 always reads zero.
pub struct CpuMeter {
    pids: Vec<u32>,
    start: Vec<Duration>,
    client: Duration,
    at: std::time::Instant,
}

pub struct CpuUsage {
    pub elapsed: Duration,
    /// One entry per pid, in the order given.
    pub cpu: Vec<Duration>,
    pub client_cpu: Duration,
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            start: pids.iter().map(|&p| procfs::sample(p).cpu).collect(),
            client: procfs::sample_self().cpu,
            at: std::time::Instant::now(),
        }
    }

    pub fn stop(&self) -> CpuUsage {
        CpuUsage {
            elapsed: self.at.elapsed(),
            cpu: self
                .pids
                .iter()
                .zip(&self.start)
                .map(|(&p, &s)| procfs::sample(p).cpu.saturating_sub(s))
                .collect(),
            client_cpu: procfs::sample_self().cpu.saturating_sub(self.client),
        }
    }
}
