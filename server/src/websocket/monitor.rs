//! The monitor events `admin/monitor/trends` and `admin/monitor/runInfo` (operator role).
//!
//! Every [`INTERVAL`] each node samples its own figures — connections, users, messages and
//! bytes per second, closes by code, send latency, CPU, memory, uptime — shares them with the
//! other nodes through the [`Node`] (a cluster keeps them in Redis beside its heartbeat), reads
//! every live node's latest figures back, and sums them. The result is one [`Point`]; the last
//! [`HISTORY`] points are kept for `trends`.
//!
//! A connection that asks for either event joins the tag [`TAG`]. Each node pushes the new
//! point to its own members of that tag (`admin/monitor/trends` with the new point, then
//! `admin/monitor/runInfo`), so in a cluster every subscriber gets one push per interval, not
//! one per node. The pushes are not numbered in a stream: a missed figure is simply replaced by
//! the next one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_sdk::Tag;
use switchboard_sdk::protocol::{Push, unix_millis, unix_now};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::node::{Node, NodeError};

/// How often figures are sampled and pushed.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Points kept for `admin/monitor/trends` (two minutes).
pub const HISTORY: usize = 60;
/// The subscriber tag.
pub const TAG: &str = "sys:monitor";
/// The two events.
pub const TRENDS: &str = "admin/monitor/trends";
/// See [`TRENDS`].
pub const RUN_INFO: &str = "admin/monitor/runInfo";

/// One node's figures (or their sum, with `node` = `"total"`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Object)]
#[serde(rename_all = "camelCase", default)]
#[oai(rename = "MonitorNodeFigures", rename_all = "camelCase")]
pub struct NodeFigures {
    /// The node's id.
    pub node: String,
    /// When sampled, unix milliseconds.
    pub at: i64,
    /// Open connections.
    pub connections: u64,
    /// Users with a connection.
    pub users: u64,
    /// Inbound frames per second over the last interval.
    pub messages_in_per_sec: f64,
    /// Outbound frames per second.
    pub messages_out_per_sec: f64,
    /// Inbound payload bytes per second.
    pub bytes_in_per_sec: f64,
    /// Outbound payload bytes per second.
    pub bytes_out_per_sec: f64,
    /// Inbound frames since start.
    pub messages_in: u64,
    /// Outbound frames since start.
    pub messages_out: u64,
    /// Inbound payload bytes since start.
    pub bytes_in: u64,
    /// Outbound payload bytes since start.
    pub bytes_out: u64,
    /// Connections closed since start, by close code (`"other"` for codes without a label).
    pub closes: BTreeMap<String, u64>,
    /// Sends per second over the last interval.
    pub sends_per_sec: f64,
    /// Mean time to route one send over the last interval, milliseconds (0 without sends).
    pub send_latency_ms: f64,
    /// CPU used by the process over the last interval, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, bytes (0 where the platform does not tell).
    pub memory_bytes: u64,
    /// Seconds since start.
    pub uptime: u64,
    /// Start time, unix seconds.
    pub started_at: i64,
    /// Process id.
    pub pid: u32,
    /// Server version.
    pub version: String,
}

/// Every live node's figures at one moment, and their sum.
#[derive(Clone, Debug, Serialize, PartialEq, Object)]
#[oai(rename = "MonitorPoint")]
pub struct Point {
    /// Unix milliseconds.
    pub at: i64,
    /// The sum over nodes; `connections` and `users` are the exact cluster-wide counts (a
    /// user connected to two nodes is one user).
    pub total: NodeFigures,
    /// One entry per live node, sorted by id.
    pub nodes: Vec<NodeFigures>,
}

/// The `admin/monitor/trends` answer and push: points, oldest first.
#[derive(Clone, Debug, Serialize, PartialEq, Object)]
#[oai(rename = "MonitorTrends")]
pub struct Trends {
    /// Seconds between points.
    pub interval: u64,
    /// The kept points (a push carries only the newest).
    pub points: Vec<Point>,
}

/// Counter readings of the previous sample.
struct Reading {
    at: Instant,
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    sends: u64,
    send_micros: u64,
    cpu_micros: u64,
}

/// The monitor of one node.
pub struct Monitor {
    node: Arc<Node>,
    metrics: Arc<Metrics>,
    started: Instant,
    started_at: i64,
    last: Mutex<Reading>,
    own: Mutex<NodeFigures>,
    points: Mutex<VecDeque<Point>>,
}

fn per_sec(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 / secs
}

impl Monitor {
    /// A monitor of `node`; its first sample is taken now.
    pub fn new(node: Arc<Node>, metrics: Arc<Metrics>, started: Instant) -> Arc<Monitor> {
        let m = Monitor {
            last: Mutex::new(Self::read(&metrics)),
            node,
            metrics,
            started,
            started_at: unix_now() - started.elapsed().as_secs() as i64,
            own: Mutex::new(NodeFigures::default()),
            points: Mutex::new(VecDeque::with_capacity(HISTORY)),
        };
        m.sample();
        Arc::new(m)
    }

    fn read(metrics: &Metrics) -> Reading {
        Reading {
            at: Instant::now(),
            messages_in: metrics.messages_in.get(),
            messages_out: metrics.messages_out.get(),
            bytes_in: metrics.bytes_in.get(),
            bytes_out: metrics.bytes_out.get(),
            sends: metrics.send_seconds.count(),
            send_micros: metrics.send_seconds.sum_micros(),
            cpu_micros: process::cpu_micros(),
        }
    }

    /// Takes this node's figures: rates since the previous sample.
    fn sample(&self) -> NodeFigures {
        let now = Self::read(&self.metrics);
        let mut last = self.last.lock();
        let secs = now.at.duration_since(last.at).as_secs_f64();
        let sends = now.sends.saturating_sub(last.sends);
        let send_micros = now.send_micros.saturating_sub(last.send_micros);
        let registry = self.node.registry();
        let (connections, users, _) = registry.counts();
        let mut closes: BTreeMap<String, u64> = self
            .metrics
            .closes()
            .into_iter()
            .map(|(code, n)| (code.to_string(), n))
            .collect();
        if self.metrics.closes_other() > 0 {
            closes.insert("other".into(), self.metrics.closes_other());
        }
        let f = NodeFigures {
            node: self.node.id().to_string(),
            at: unix_millis(),
            connections: connections as u64,
            users: users as u64,
            messages_in_per_sec: per_sec(now.messages_in, last.messages_in, secs),
            messages_out_per_sec: per_sec(now.messages_out, last.messages_out, secs),
            bytes_in_per_sec: per_sec(now.bytes_in, last.bytes_in, secs),
            bytes_out_per_sec: per_sec(now.bytes_out, last.bytes_out, secs),
            messages_in: now.messages_in,
            messages_out: now.messages_out,
            bytes_in: now.bytes_in,
            bytes_out: now.bytes_out,
            closes,
            sends_per_sec: per_sec(now.sends, last.sends, secs),
            send_latency_ms: if sends == 0 {
                0.0
            } else {
                send_micros as f64 / sends as f64 / 1000.0
            },
            cpu_percent: per_sec(now.cpu_micros, last.cpu_micros, secs) / 1e4,
            memory_bytes: process::resident_bytes(),
            uptime: self.started.elapsed().as_secs(),
            started_at: self.started_at,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        *last = now;
        *self.own.lock() = f.clone();
        f
    }

    /// This node's figures now: counts and totals as they stand, rates from the last sample.
    fn current(&self) -> NodeFigures {
        let mut f = self.own.lock().clone();
        let (connections, users, _) = self.node.registry().counts();
        f.connections = connections as u64;
        f.users = users as u64;
        f.messages_in = self.metrics.messages_in.get();
        f.messages_out = self.metrics.messages_out.get();
        f.bytes_in = self.metrics.bytes_in.get();
        f.bytes_out = self.metrics.bytes_out.get();
        f.uptime = self.started.elapsed().as_secs();
        f
    }

    /// Every live node's latest figures and their sum.
    pub async fn point(&self) -> Result<Point, NodeError> {
        let own = self.current();
        let mut nodes = self.node.node_figures(own).await?;
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        let counts = self.node.counts().await?;
        let mut total = NodeFigures {
            node: "total".into(),
            at: unix_millis(),
            connections: counts.connections as u64,
            users: counts.users as u64,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: i64::MAX,
            ..NodeFigures::default()
        };
        let mut latency_weight = 0.0;
        for n in &nodes {
            total.messages_in_per_sec += n.messages_in_per_sec;
            total.messages_out_per_sec += n.messages_out_per_sec;
            total.bytes_in_per_sec += n.bytes_in_per_sec;
            total.bytes_out_per_sec += n.bytes_out_per_sec;
            total.messages_in += n.messages_in;
            total.messages_out += n.messages_out;
            total.bytes_in += n.bytes_in;
            total.bytes_out += n.bytes_out;
            for (code, c) in &n.closes {
                *total.closes.entry(code.clone()).or_default() += c;
            }
            total.sends_per_sec += n.sends_per_sec;
            latency_weight += n.send_latency_ms * n.sends_per_sec;
            total.cpu_percent += n.cpu_percent;
            total.memory_bytes += n.memory_bytes;
            total.uptime = total.uptime.max(n.uptime);
            total.started_at = total.started_at.min(n.started_at);
        }
        if total.sends_per_sec > 0.0 {
            total.send_latency_ms = latency_weight / total.sends_per_sec;
        }
        if nodes.is_empty() {
            total.started_at = self.started_at;
        }
        Ok(Point {
            at: total.at,
            total,
            nodes,
        })
    }

    /// The `admin/monitor/trends` answer: the kept points, oldest first.
    pub async fn trends(&self) -> Result<Value, NodeError> {
        let mut points: Vec<Point> = self.points.lock().iter().cloned().collect();
        if points.is_empty() {
            points.push(self.point().await?);
        }
        Ok(serde_json::to_value(Trends {
            interval: INTERVAL.as_secs(),
            points,
        })
        .unwrap_or(Value::Null))
    }

    /// The `admin/monitor/runInfo` answer: the figures now.
    pub async fn run_info(&self) -> Result<Value, NodeError> {
        Ok(serde_json::to_value(self.point().await?).unwrap_or(Value::Null))
    }

    /// One tick: sample, share, sum, keep, push to this node's subscribers.
    async fn tick(&self) {
        let own = self.sample();
        if let Err(e) = self.node.share_figures(&own).await {
            tracing::debug!(error = %e, "monitor figures not shared");
        }
        let point = match self.point().await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "monitor figures unavailable");
                return;
            }
        };
        {
            let mut points = self.points.lock();
            if points.len() == HISTORY {
                points.pop_front();
            }
            points.push_back(point.clone());
        }
        let tag = Tag::parse(TAG).expect("the monitor tag is valid");
        if !self.node.registry().tag_members(&tag).is_empty() {
            let info = serde_json::to_value(&point).unwrap_or(Value::Null);
            let trends = Trends {
                interval: INTERVAL.as_secs(),
                points: vec![point],
            };
            let trends = serde_json::to_value(&trends).unwrap_or(Value::Null);
            self.node
                .push_to_local_tag(&tag, &Push::new(TRENDS, trends));
            self.node
                .push_to_local_tag(&tag, &Push::new(RUN_INFO, info));
        }
    }

    /// Samples and pushes every [`INTERVAL`] until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once: the other nodes see this one from its start.
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.tick().await,
            }
        }
    }
}

/// What the operating system tells about this process.
mod process {
    /// User plus system CPU time of the process, microseconds.
    pub fn cpu_micros() -> u64 {
        // SAFETY: getrusage only writes into the struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return 0;
        }
        let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        micros(usage.ru_utime) + micros(usage.ru_stime)
    }

    /// Resident set size, bytes (Linux: `/proc/self/statm`; elsewhere 0).
    pub fn resident_bytes() -> u64 {
        let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
            return 0;
        };
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages * u64::try_from(page).unwrap_or(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reports_cpu_and_memory() {
        let before = process::cpu_micros();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(process::cpu_micros() > before);
        assert!(process::resident_bytes() > 1024 * 1024);
    }

    #[test]
    fn figures_serialise_in_camel_case_and_read_back() {
        let f = NodeFigures {
            node: "n1".into(),
            messages_in_per_sec: 1.5,
            ..Default::default()
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["messagesInPerSec"], 1.5);
        assert!(v.get("sendLatencyMs").is_some());
        let back: NodeFigures = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }
}
