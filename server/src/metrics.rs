//! Prometheus metrics, kept as plain atomics so the hot path pays one relaxed add.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Whether a close code keeps its own metric label: the codes the protocol defines and the ones
/// the server sends. Anything else a client chose is counted as `other`, so a peer cannot grow
/// the label set (and the scrape) without bound.
pub fn is_known_close_code(code: u16) -> bool {
    matches!(
        code,
        1000..=1003 | 1005..=1011 | 4001 | 4003 | 4008 | 4009 | 4029
    )
}

/// Why an `accept` failed, as the label of `switchboard_accept_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptErrorKind {
    /// The process is at its open-files limit (`EMFILE`).
    ProcessFiles,
    /// The system is at its open-files limit (`ENFILE`).
    SystemFiles,
    /// The kernel is out of buffers or memory (`ENOBUFS`, `ENOMEM`).
    Memory,
    /// The peer gave up on the connection before it was accepted.
    Aborted,
    /// Anything else.
    Other,
}

impl AcceptErrorKind {
    /// Every kind, in label order.
    pub const ALL: [AcceptErrorKind; 5] = [
        AcceptErrorKind::ProcessFiles,
        AcceptErrorKind::SystemFiles,
        AcceptErrorKind::Memory,
        AcceptErrorKind::Aborted,
        AcceptErrorKind::Other,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            AcceptErrorKind::ProcessFiles => "emfile",
            AcceptErrorKind::SystemFiles => "enfile",
            AcceptErrorKind::Memory => "nomem",
            AcceptErrorKind::Aborted => "aborted",
            AcceptErrorKind::Other => "other",
        }
    }
}

/// A monotonically increasing counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// +1.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// +n.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Sets it.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations, microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric of the node.
#[derive(Default)]
pub struct Metrics {
    /// Open connections.
    pub connections: Gauge,
    /// Users with at least one connection.
    pub users: Gauge,
    /// Tags with at least one member.
    pub tags: Gauge,
    /// Inbound frames.
    pub messages_in: Counter,
    /// Outbound frames queued.
    pub messages_out: Counter,
    /// Inbound bytes.
    pub bytes_in: Counter,
    /// Outbound bytes queued.
    pub bytes_out: Counter,
    /// Pushes refused because a queue was full or closing.
    pub queue_drops: Counter,
    /// Inbound frames refused by the rate limit.
    pub rate_limited: Counter,
    /// Sends refused because the push was larger than a send queue can take.
    pub oversized_pushes: Counter,
    /// Connections accepted since start.
    pub connects: Counter,
    /// Failed `accept` calls, by [`AcceptErrorKind`] (in [`AcceptErrorKind::ALL`] order).
    accept_errors: [Counter; 5],
    /// Audit rows not stored: the writer's queue was full, or the database refused them.
    pub audit_dropped: Counter,
    /// Closes by code, for the codes that keep a label (see [`is_known_close_code`]).
    closes: Mutex<Vec<(u16, u64)>>,
    /// Closes with any other code.
    closes_other: Counter,
    /// Time to fan a send out to local queues.
    pub send_seconds: Histogram,
    /// HTTP API latency.
    pub api_seconds: Histogram,
}

impl Metrics {
    /// Counts a failed `accept`.
    pub fn accept_error(&self, kind: AcceptErrorKind) {
        self.accept_errors[kind as usize].inc();
    }

    /// Failed `accept` calls of one kind.
    pub fn accept_errors(&self, kind: AcceptErrorKind) -> u64 {
        self.accept_errors[kind as usize].get()
    }

    /// Counts a close.
    pub fn closed(&self, code: u16) {
        if !is_known_close_code(code) {
            self.closes_other.inc();
            return;
        }
        let mut c = self.closes.lock();
        match c.iter_mut().find(|(k, _)| *k == code) {
            Some((_, n)) => *n += 1,
            None => c.push((code, 1)),
        }
    }

    /// Closes by code (known codes only; see [`Metrics::closes_other`]).
    pub fn closes(&self) -> Vec<(u16, u64)> {
        let mut v = self.closes.lock().clone();
        v.sort();
        v
    }

    /// Closes with a code that has no label of its own.
    pub fn closes_other(&self) -> u64 {
        self.closes_other.get()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "switchboard_connections",
            "Open WebSocket connections.",
            self.connections.get(),
        );
        gauge(
            &mut out,
            "switchboard_users",
            "Users with at least one connection.",
            self.users.get(),
        );
        gauge(
            &mut out,
            "switchboard_tags",
            "Tags with at least one member.",
            self.tags.get(),
        );
        counter(
            &mut out,
            "switchboard_messages_in_total",
            "Inbound WebSocket frames.",
            self.messages_in.get(),
        );
        counter(
            &mut out,
            "switchboard_messages_out_total",
            "Outbound WebSocket frames queued.",
            self.messages_out.get(),
        );
        counter(
            &mut out,
            "switchboard_bytes_in_total",
            "Inbound WebSocket payload bytes.",
            self.bytes_in.get(),
        );
        counter(
            &mut out,
            "switchboard_bytes_out_total",
            "Outbound WebSocket payload bytes queued.",
            self.bytes_out.get(),
        );
        counter(
            &mut out,
            "switchboard_queue_drops_total",
            "Pushes dropped because a send queue was full or closing.",
            self.queue_drops.get(),
        );
        counter(
            &mut out,
            "switchboard_rate_limited_total",
            "Inbound frames refused by the rate limit.",
            self.rate_limited.get(),
        );
        counter(
            &mut out,
            "switchboard_oversized_pushes_total",
            "Sends refused because the push was larger than a send queue can take.",
            self.oversized_pushes.get(),
        );
        counter(
            &mut out,
            "switchboard_connects_total",
            "Connections accepted.",
            self.connects.get(),
        );
        counter(
            &mut out,
            "switchboard_audit_dropped_total",
            "Audit rows not stored (queue full or database error); their log lines were written.",
            self.audit_dropped.get(),
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_accept_errors_total Failed accepts of new TCP connections, by kind.\n# TYPE switchboard_accept_errors_total counter"
        );
        for kind in AcceptErrorKind::ALL {
            let _ = writeln!(
                out,
                "switchboard_accept_errors_total{{kind=\"{}\"}} {}",
                kind.label(),
                self.accept_errors(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_closes_total Connections closed, by close code.\n# TYPE switchboard_closes_total counter"
        );
        for (code, n) in self.closes() {
            let _ = writeln!(out, "switchboard_closes_total{{code=\"{code}\"}} {n}");
        }
        let other = self.closes_other();
        if other > 0 {
            let _ = writeln!(out, "switchboard_closes_total{{code=\"other\"}} {other}");
        }
        self.send_seconds.render(
            &mut out,
            "switchboard_send_fanout_seconds",
            "Time to queue one send to all local recipients.",
        );
        self.api_seconds.render(
            &mut out,
            "switchboard_api_request_seconds",
            "HTTP API request latency.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_close_codes_share_one_label() {
        let m = Metrics::default();
        for code in [1000, 4001, 4500, 4501, 3000, 65535, 4001] {
            m.closed(code);
        }
        assert_eq!(m.closes(), vec![(1000, 1), (4001, 2)]);
        assert_eq!(m.closes_other(), 4);
        let text = m.render();
        assert!(
            text.contains("switchboard_closes_total{code=\"other\"} 4"),
            "{text}"
        );
        assert!(!text.contains("4500"), "{text}");
    }
}
