//! API: `POST /api/websocket/send/toUser` from several keep-alive HTTP clients as fast as they are
//! answered, while N connections of U users are online. Requests per second, the request's own
//! latency, and end-to-end latency from the send call to each receipt on the user's devices.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::{Ctx, Deliveries, await_deliveries, open_many, padding, spawn_receivers};
use crate::http::HttpClient;
use crate::stats::{Meter, Recorder, ratio, summary, unix_nanos};

#[derive(Args, Debug)]
pub struct ApiArgs {
    #[arg(long, default_value_t = 1_000)]
    pub connections: usize,
    /// Distinct users; each has connections / users devices online.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// HTTP clients sending concurrently, each waiting for its answer before the next request.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
}

pub async fn run(ctx: &Ctx, args: &ApiArgs) -> anyhow::Result<Value> {
    let target = ctx.target.clone();
    let users = target.users(args.users.max(1)).await?;
    let opened = open_many(&target, &users, args.connections, 128).await;
    let open_json = opened.json();
    let deliveries = Arc::new(Deliveries::default());
    let receivers = spawn_receivers(opened.conns, &deliveries);
    let users = Arc::new(users);
    let http_latency = Arc::new(Recorder::default());
    let (requests, errors, reported) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let pad = padding(args.payload);
    let meter = Meter::start(ctx.pid);
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let clients: Vec<_> = (0..args.concurrency.max(1))
        .map(|w| {
            let (target, users, pad) = (target.clone(), users.clone(), pad.clone());
            let (http_latency, requests, errors, reported, first_error) =
                (http_latency.clone(), requests.clone(), errors.clone(), reported.clone(), first_error.clone());
            tokio::spawn(async move {
                let mut http = HttpClient::new(target.addr);
                let mut i = w;
                while Instant::now() < deadline {
                    let user = &users[i % users.len()];
                    i += 7; // walk the users in a different order per client
                    let body = json!({"userId": user.id, "event": "bench", "data": {"t": unix_nanos(), "p": pad}});
                    let at = Instant::now();
                    match http.post("/api/websocket/send/toUser", target.bearer(), body.to_string().as_bytes()).await {
                        Ok(r) if r.status == 200 => {
                            http_latency.record(w, at.elapsed());
                            requests.fetch_add(1, Ordering::Relaxed);
                            reported.fetch_add(r.json()["delivered"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        }
                        other => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            let text = match other {
                                Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
                                Err(e) => format!("{e:#}"),
                            };
                            first_error.lock().unwrap().get_or_insert(text);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        let _ = c.await;
    }
    let sending = meter.stop();
    let expected = reported.load(Ordering::Relaxed);
    await_deliveries(&deliveries, expected, Duration::from_secs(3)).await;
    for r in &receivers {
        r.abort();
    }
    let received = deliveries.received.load(Ordering::Relaxed);
    let done = requests.load(Ordering::Relaxed);
    Ok(json!({
        "connect": open_json,
        "connections": args.connections,
        "users": args.users,
        "concurrency": args.concurrency,
        "requests": done,
        "requests_per_s": ratio(done as f64, sending.elapsed.as_secs_f64()).round(),
        "errors": errors.load(Ordering::Relaxed),
        "first_error": first_error.lock().unwrap().clone(),
        "delivered_reported": expected,
        "received": received,
        "lost": expected.saturating_sub(received),
        "server_cpu_us_per_request": sending.server_cpu_us_per(done),
        "http_latency": summary(&http_latency.take()),
        "delivery_latency": summary(&deliveries.latency.take()),
        "usage": sending.json(),
    }))
}
