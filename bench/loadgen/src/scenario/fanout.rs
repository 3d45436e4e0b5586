//! Fan-out: N connections; broadcasts through the HTTP send API — to all, or to a tag of M members —
//! at increasing rates. Each push carries the wall-clock time of its send call, so latency is
//! measured from the send call to each receipt. Per rate: delivery latency, deliveries/s, and the
//! server's CPU per delivery (on loopback the kernel's send path dominates, so CPU is the fairer
//! yardstick). Rates stop rising once p99 passes the limit or deliveries go missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::{Ctx, Deliveries, await_deliveries, join_tag, open_many, padding, spawn_receivers};
use crate::http::HttpClient;
use crate::stats::{Meter, Recorder, ratio, summary, unix_nanos};
use crate::target::Audience;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    All,
    Tag,
}

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    #[arg(long, value_enum, default_value_t = Mode::All)]
    pub mode: Mode,
    /// Members of the tag in `--mode tag`.
    #[arg(long, default_value_t = 1_000)]
    pub tag_members: usize,
    /// Broadcasts per second, tried in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,5,10,20,50")]
    pub rates: Vec<f64>,
    /// Seconds of sending per rate.
    #[arg(long, default_value_t = 5.0)]
    pub step: f64,
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// A rate whose p99 delivery latency exceeds this (ms) ends the climb.
    #[arg(long, default_value_t = 200.0)]
    pub p99_limit_ms: f64,
    /// Concurrent HTTP connections sending (open loop: a slow answer does not delay the next send).
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
}

const TAG: &str = "bench-tag";

pub async fn run(ctx: &Ctx, args: &FanoutArgs) -> anyhow::Result<Value> {
    let target = ctx.target.clone();
    let mut opened = open_many(&target, &[target.default_user()], args.connections, 256).await;
    let open_json = opened.json();
    let recipients = match args.mode {
        Mode::All => opened.conns.len(),
        Mode::Tag => {
            let members = args.tag_members.min(opened.conns.len());
            join_tag(&target, &mut opened.conns[..members], TAG).await?;
            members
        }
    } as u64;
    let deliveries = Arc::new(Deliveries::default());
    let receivers = spawn_receivers(opened.conns, &deliveries);
    let pad = padding(args.payload);
    let mut steps = Vec::new();
    let mut best: Option<Value> = None;
    for &rate in &args.rates {
        let step = run_step(ctx, args, rate, recipients, &deliveries, &pad).await;
        let ok = step["ok"].as_bool() == Some(true);
        if ok {
            best = Some(step.clone());
        }
        steps.push(step);
        if !ok {
            break;
        }
    }
    for r in &receivers {
        r.abort();
    }
    Ok(json!({
        "connect": open_json,
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "connections": args.connections,
        "recipients_per_broadcast": recipients,
        "p99_limit_ms": args.p99_limit_ms,
        "steps": steps,
        "best": best,
    }))
}

async fn run_step(
    ctx: &Ctx,
    args: &FanoutArgs,
    rate: f64,
    recipients: u64,
    d: &Arc<Deliveries>,
    pad: &str,
) -> Value {
    let count = ((rate * args.step).round() as u64).max(1);
    d.latency.take();
    d.received.store(0, Ordering::Relaxed);
    let http_latency = Arc::new(Recorder::default());
    let delivered_reported = Arc::new(AtomicU64::new(0));
    let http_errors = Arc::new(AtomicU64::new(0));
    let meter = Meter::start(ctx.pid);
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let senders: Vec<_> = (0..args.senders.max(1) as u64)
        .map(|w| {
            let target = ctx.target.clone();
            let (http_latency, delivered_reported, http_errors) = (
                http_latency.clone(),
                delivered_reported.clone(),
                http_errors.clone(),
            );
            let (pad, mode, nsend) = (pad.to_owned(), args.mode, args.senders.max(1) as u64);
            tokio::spawn(async move {
                let mut http = HttpClient::new(target.addr);
                let mut i = w;
                while i < count {
                    tokio::time::sleep_until(start + interval * i as u32).await;
                    let to = match mode {
                        Mode::All => Audience::All,
                        Mode::Tag => Audience::Tag(TAG),
                    };
                    let (path, body, bearer) =
                        target.broadcast(to, &json!({"t": unix_nanos(), "p": pad}));
                    let at = Instant::now();
                    match http.post(&path, bearer, body.as_bytes()).await {
                        Ok(r) if r.status == 200 => {
                            http_latency.record(w as usize, at.elapsed());
                            delivered_reported.fetch_add(
                                r.json()["delivered"].as_u64().unwrap_or(0),
                                Ordering::Relaxed,
                            );
                        }
                        _ => {
                            http_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += nsend;
                }
            })
        })
        .collect();
    for s in senders {
        let _ = s.await;
    }
    let sent_at = Instant::now();
    let expected = (count - http_errors.load(Ordering::Relaxed)) * recipients;
    let last = await_deliveries(d, expected, Duration::from_secs(3)).await;
    let usage = meter.stop();
    let received = d.received.load(Ordering::Relaxed);
    let latency = d.latency.take();
    let p99_ms = latency.value_at_quantile(0.99) as f64 / 1000.0;
    let window = last
        .max(sent_at)
        .duration_since(start.into_std())
        .as_secs_f64();
    json!({
        "rate_per_s": rate,
        "broadcasts": count,
        "http_errors": http_errors.load(Ordering::Relaxed),
        "expected_deliveries": expected,
        "delivered_reported": delivered_reported.load(Ordering::Relaxed),
        "received": received,
        "lost": expected.saturating_sub(received),
        "deliveries_per_s": ratio(received as f64, window).round(),
        "server_cpu_us_per_delivery": usage.server_cpu_us_per(received),
        "delivery_latency": summary(&latency),
        "http_latency": summary(&http_latency.take()),
        "ok": received >= expected && expected > 0 && p99_ms <= args.p99_limit_ms,
        "usage": usage.json(),
    })
}
