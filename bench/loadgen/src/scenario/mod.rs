//! The scenarios and what they share: opening many connections, and receiving timestamped
//! pushes on all of them.

pub mod api;
pub mod cluster;
pub mod echo;
pub mod fanout;
pub mod idle;
pub mod soak;
pub mod storm;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::stats::{Recorder, summary, unix_nanos};
use crate::target::{Conn, Target, User};

/// Everything a scenario needs from the command line and the outside world.
pub struct Ctx {
    pub target: Arc<Target>,
    /// The server's pid, whose RSS and CPU time are sampled; 0 when not given.
    pub pid: u32,
}

pub struct Opened {
    pub conns: Vec<Conn>,
    pub failures: u64,
    pub errors: Vec<String>,
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
}

impl Opened {
    pub fn json(&self) -> Value {
        json!({
            "requested": self.conns.len() as u64 + self.failures,
            "opened": self.conns.len(),
            "failures": self.failures,
            "first_errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "connects_per_s": (self.conns.len() as f64 / self.elapsed.as_secs_f64()).round(),
            "connect_latency": summary(&self.latency),
        })
    }
}

/// Opens `n` connections, at most `concurrency` handshakes at a time, connection `i` as user
/// `users[i % len]`. Failures are counted, not fatal.
pub async fn open_many(
    target: &Arc<Target>,
    users: &[User],
    n: usize,
    concurrency: usize,
) -> Opened {
    let recorder = Arc::new(Recorder::default());
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (target, gate, recorder) = (target.clone(), gate.clone(), recorder.clone());
            let user = users[i % users.len()].clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("never closed");
                let at = Instant::now();
                let conn = target.connect(&user).await;
                if conn.is_ok() {
                    recorder.record(i, at.elapsed());
                }
                conn
            })
        })
        .collect();
    let mut opened = Opened {
        conns: Vec::with_capacity(n),
        failures: 0,
        errors: Vec::new(),
        latency: Histogram::new(3).unwrap(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await.expect("connect task panicked") {
            Ok(conn) => opened.conns.push(conn),
            Err(e) => {
                opened.failures += 1;
                if opened.errors.len() < 5 {
                    opened.errors.push(format!("{e:#}"));
                }
            }
        }
    }
    opened.elapsed = started.elapsed();
    opened.latency = recorder.take();
    opened
}

/// Joins the first `members` connections to `tag`, waiting for each reply.
pub async fn join_tag(target: &Target, conns: &mut [Conn], tag: &str) -> anyhow::Result<()> {
    for conn in conns.iter_mut() {
        conn.send(target.join_frame(tag)).await?;
    }
    for conn in conns.iter_mut() {
        await_join_reply(target, conn).await?;
    }
    Ok(())
}

/// Reads until the reply to a join (tag or channel subscription), skipping other frames.
pub async fn await_join_reply(target: &Target, conn: &mut Conn) -> anyhow::Result<()> {
    loop {
        let reply = conn
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed while joining"))?;
        if target.is_join_reply(&reply)? {
            return Ok(());
        }
    }
}

/// Pushes carry `"t": <unix ns at the send call>`; receivers record now − t.
#[derive(Default)]
pub struct Deliveries {
    pub latency: Recorder,
    pub received: AtomicU64,
    pub other_frames: AtomicU64,
}

/// One task per connection, recording each timestamped push until the connection ends or the
/// task is aborted.
pub fn spawn_receivers(conns: Vec<Conn>, deliveries: &Arc<Deliveries>) -> Vec<JoinHandle<()>> {
    conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let d = deliveries.clone();
            tokio::spawn(async move {
                while let Some(text) = conn.recv().await {
                    match conn.sent_at(&text) {
                        Some(sent) => {
                            d.latency
                                .record_micros(i, unix_nanos().saturating_sub(sent) / 1000);
                            d.received.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            d.other_frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect()
}

/// Waits until `received` reaches `expected` or nothing has arrived for `quiet`.
pub async fn await_deliveries(d: &Deliveries, expected: u64, quiet: Duration) -> Instant {
    let mut last = d.received.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        let now = d.received.load(Ordering::Relaxed);
        if now >= expected {
            return Instant::now();
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > quiet {
            return last_change;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A padding string of `n` bytes that needs no JSON escaping.
pub fn padding(n: usize) -> String {
    "x".repeat(n)
}
