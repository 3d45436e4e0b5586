//! Idle: N connections that only answer heartbeats, held for a while. What does a connection cost
//! the server when nothing happens — memory (RSS per connection) and CPU (µs per connection-second,
//! mostly the server's pings)?

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::{Ctx, Deliveries, open_many, spawn_receivers};
use crate::procfs;
use crate::stats::{Meter, ratio};

#[derive(Args, Debug)]
pub struct IdleArgs {
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Seconds to hold the connections idle while measuring.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

pub async fn run(ctx: &Ctx, args: &IdleArgs) -> anyhow::Result<Value> {
    let before = procfs::sample(ctx.pid);
    let opened = open_many(
        &ctx.target,
        &[ctx.target.default_user()],
        args.connections,
        args.concurrency,
    )
    .await;
    let n = opened.conns.len() as u64;
    let open_json = opened.json();
    let deliveries = Arc::new(Deliveries::default());
    let tasks = spawn_receivers(opened.conns, &deliveries);
    // Let allocator caches and the servers' lazy structures settle before the window opens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = procfs::sample(ctx.pid);
    let meter = Meter::start(ctx.pid);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let usage = meter.stop();
    let alive = tasks.iter().filter(|t| !t.is_finished()).count();
    for t in &tasks {
        t.abort();
    }
    let grown = usage.server_rss.saturating_sub(before.rss_bytes);
    let conn_seconds = n as f64 * usage.elapsed.as_secs_f64();
    Ok(json!({
        "connect": open_json,
        "connections": n,
        "still_open_at_end": alive,
        "frames_received": deliveries.other_frames.load(Ordering::Relaxed),
        "server_rss_before_bytes": before.rss_bytes,
        "server_rss_settled_bytes": settled.rss_bytes,
        "server_rss_end_bytes": usage.server_rss,
        "rss_per_connection_bytes": ratio(grown as f64, n as f64),
        "cpu_us_per_connection_second": ratio(usage.server_cpu.as_secs_f64() * 1e6, conn_seconds),
        "usage": usage.json(),
    }))
}
