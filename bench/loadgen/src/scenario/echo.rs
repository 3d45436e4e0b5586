//! Echo: a fixed number of connections, each keeping `inflight` requests outstanding (pipelined),
//! measured for a fixed time after a warm-up. Messages per second, round-trip latency, and the
//! server's CPU per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::{Ctx, open_many, padding};
use crate::stats::{Meter, Recorder, ratio, summary};
use crate::target::find_u64;

#[derive(Args, Debug)]
pub struct EchoArgs {
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    #[arg(long, default_value_t = 16)]
    pub inflight: usize,
    /// Bytes of padding in each request's data.
    #[arg(long, default_value_t = 16)]
    pub payload: usize,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// The phase is WARMUP (0, the default) until measuring starts.
#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    latency: Recorder,
    measured: AtomicU64,
    mismatched: AtomicU64,
    reordered: AtomicU64,
    first_mismatch: std::sync::Mutex<Option<String>>,
}

pub async fn run(ctx: &Ctx, args: &EchoArgs) -> anyhow::Result<Value> {
    let target = ctx.target.clone();
    let opened = open_many(&target, &[target.default_user()], args.connections, 64).await;
    if opened.conns.is_empty() {
        anyhow::bail!("no connection opened: {:?}", opened.errors);
    }
    let open_json = opened.json();
    let shared = Arc::new(Shared::default());
    let payload = Arc::new(padding(args.payload));
    let tasks: Vec<_> = opened
        .conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let (shared, target, payload, inflight) = (
                shared.clone(),
                target.clone(),
                payload.clone(),
                args.inflight,
            );
            tokio::spawn(async move {
                // Outstanding requests by seq. Replies may come back out of order (socketioxide runs
                // each event in its own task), so they are matched by seq, not by position.
                let mut pending: Vec<(u64, Instant)> = Vec::with_capacity(inflight);
                let mut seq = 0u64;
                for _ in 0..inflight {
                    seq += 1;
                    pending.push((seq, Instant::now()));
                    if conn.feed(target.echo_frame(seq, &payload)).await.is_err() {
                        return;
                    }
                }
                if conn.flush().await.is_err() {
                    return;
                }
                // Replies that have already arrived are handled together and their successors
                // written with one flush: the load generator shares two cores with the server and
                // must not spend them on a syscall per message.
                let mut batch = Vec::with_capacity(inflight);
                'conn: while let Some(first) = conn.recv().await {
                    batch.clear();
                    batch.push(first);
                    let mut closed = false;
                    while batch.len() < inflight {
                        match conn.try_recv() {
                            Some(Some(reply)) => batch.push(reply),
                            Some(None) => {
                                closed = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    let mut to_send = 0;
                    for reply in &batch {
                        let got = find_u64(reply, "\"s\":");
                        let sent =
                            match pending.iter().position(|&(s, _)| Some(s) == got) {
                                Some(at) => {
                                    if at != 0 {
                                        shared.reordered.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Some(pending.remove(at).1)
                                }
                                None => {
                                    // Not a well-formed answer (an error reply, say). It still ends one
                                    // request: the one its seqno names, else the oldest.
                                    shared.mismatched.fetch_add(1, Ordering::Relaxed);
                                    shared.first_mismatch.lock().unwrap().get_or_insert_with(
                                        || reply.as_str().chars().take(300).collect(),
                                    );
                                    let seqno = find_u64(reply, "\"seqno\":");
                                    let at = pending
                                        .iter()
                                        .position(|&(s, _)| Some(s) == seqno)
                                        .unwrap_or(0);
                                    if at < pending.len() {
                                        pending.remove(at);
                                    }
                                    None
                                }
                            };
                        match shared.phase.load(Ordering::Relaxed) {
                            MEASURE => {
                                if let Some(sent) = sent {
                                    shared.latency.record(i, sent.elapsed());
                                    shared.measured.fetch_add(1, Ordering::Relaxed);
                                }
                                to_send += 1;
                            }
                            STOP => {}
                            _ => to_send += 1,
                        }
                    }
                    if closed
                        || (shared.phase.load(Ordering::Relaxed) == STOP && pending.is_empty())
                    {
                        break 'conn;
                    }
                    for _ in 0..to_send {
                        seq += 1;
                        pending.push((seq, Instant::now()));
                        if conn.feed(target.echo_frame(seq, &payload)).await.is_err() {
                            break 'conn;
                        }
                    }
                    if to_send > 0 && conn.flush().await.is_err() {
                        break;
                    }
                }
                conn.close().await;
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let meter = Meter::start(ctx.pid);
    shared.phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    shared.phase.store(STOP, Ordering::Relaxed);
    let usage = meter.stop();
    let measured = shared.measured.load(Ordering::Relaxed);
    // Drain what is still in flight, but never wait forever on a stuck server.
    let drain = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    let drained = tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_ok();
    Ok(json!({
        "connect": open_json,
        "connections": args.connections,
        "inflight": args.inflight,
        "payload_bytes": args.payload,
        "messages": measured,
        "msgs_per_s": ratio(measured as f64, usage.elapsed.as_secs_f64()).round(),
        "server_cpu_us_per_msg": usage.server_cpu_us_per(measured),
        "mismatched_replies": shared.mismatched.load(Ordering::Relaxed),
        "reordered_replies": shared.reordered.load(Ordering::Relaxed),
        "first_mismatch": shared.first_mismatch.lock().unwrap().clone(),
        "drained": drained,
        "latency": summary(&shared.latency.take()),
        "usage": usage.json(),
    }))
}
