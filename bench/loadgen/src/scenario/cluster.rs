//! Cluster: connections spread round-robin over several nodes of one system (connection `i` on
//! node `i mod n`), `toAll` and `toUser` sent through ONE node's HTTP API at fixed rates. Run once
//! against a cluster (nodes on one Redis) and once against a single node holding the same
//! connections, the two results give the cost of going through Redis: server CPU per delivery
//! summed over the nodes, Redis's CPU beside it, and what the API call itself costs. Each node's
//! receipts are counted against what it should have received, so a message that did not cross
//! from the API node to the others shows as lost on theirs.
//!
//! Users: connection `j` of every node belongs to user `j mod users`, so each user holds the same
//! number of devices on every node (9,000 connections, 300 users: 30 devices, 10 per node). A
//! `toUser` send therefore reaches every node — the routing worst case, one PUBLISH per node —
//! and its cost is mostly per send (HTTP, script, publish), not per socket, which is what a
//! cluster adds. `toAll` is the per-socket side: one PUBLISH, every socket of every node.
//!
//! Pusher (sockudo) addresses channels, not users: every connection is on the channel `all`
//! (`toAll` triggers it) and also subscribes its user's channel `user-<id>` (`toUser` triggers
//! that), the way Pusher apps reach one user's devices. A trigger's answer (`{"ok":true}`) has
//! no `delivered` count to check, only the receipts.
//!
//! Sends are open loop (each at its slot, from several keep-alive HTTP clients); a send that
//! starts more than one interval after its slot is counted as late, because the API latency of a
//! backed-up sender would otherwise hide the queueing. Each push carries the wall-clock time of
//! its send call, so delivery latency runs from the send call to each receipt.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::{Ctx, Deliveries, await_deliveries, await_join_reply, open_many, padding};
use crate::http::HttpClient;
use crate::stats::{CpuMeter, Recorder, ratio, secs, summary, unix_nanos};
use crate::target::{Audience, Conn, Target, User};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Every node to spread connections over, round-robin; default: --addr alone. Sends all go
    /// through --addr (for Switchboard with its admin token, valid on every node).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<SocketAddr>,
    /// The nodes' server pids (their CPU is summed); default: --pid.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// redis-server's pid, for its CPU; 0 = no Redis (single node).
    #[arg(long, default_value_t = 0)]
    pub redis_pid: u32,
    /// Connections in all, spread over the nodes.
    #[arg(long, default_value_t = 9_000)]
    pub connections: usize,
    /// Users owning the connections; each holds connections / users devices, spread evenly
    /// over the nodes.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// `toAll` sends per second, tried in order; the climb stops at the first rate that loses
    /// deliveries or whose delivery p99 passes --p99-limit-ms.
    #[arg(long, value_delimiter = ',', default_value = "1,2,5")]
    pub all_rates: Vec<f64>,
    /// `toUser` sends per second, each to the next user in turn; all are run.
    #[arg(long, value_delimiter = ',', default_value = "20,100,200")]
    pub user_rates: Vec<f64>,
    /// Seconds of sending per rate.
    #[arg(long, default_value_t = 5.0)]
    pub step: f64,
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    #[arg(long, default_value_t = 200.0)]
    pub p99_limit_ms: f64,
    /// Keep-alive HTTP clients sending concurrently to --addr.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ToAll,
    ToUser,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ToAll => "toAll",
            Kind::ToUser => "toUser",
        }
    }
}

/// What every step shares: the receivers' counters and the fleet's shape.
struct Fleet {
    deliveries: Arc<Deliveries>,
    per_node: Arc<Vec<AtomicU64>>,
    /// Connections open on each node.
    open: Vec<u64>,
    /// Devices open per node and user: `devices[node][user]`, users indexed like `users`.
    devices: Arc<Vec<Vec<u64>>>,
    users: Arc<Vec<User>>,
    pids: Vec<u32>,
    redis_pid: u32,
}

pub async fn run(ctx: &Ctx, args: &ClusterArgs, sources: usize) -> anyhow::Result<Value> {
    let api = ctx.target.clone();
    let nodes = if args.nodes.is_empty() {
        vec![api.addr]
    } else {
        args.nodes.clone()
    };
    let pids = if args.pids.is_empty() {
        vec![ctx.pid]
    } else {
        args.pids.clone()
    };
    anyhow::ensure!(
        pids.len() == nodes.len(),
        "{} pids for {} nodes",
        pids.len(),
        nodes.len()
    );
    let users = api.users(args.users.max(1)).await?;

    // Node k gets connections k, k + n, k + 2n, …; its j-th is user j mod users (open_many's
    // assignment), so every user has devices on every node.
    let mut conns: Vec<(usize, Conn)> = Vec::with_capacity(args.connections);
    let mut connect = Vec::new();
    let mut devices = vec![vec![0u64; users.len()]; nodes.len()];
    let mut open = vec![0u64; nodes.len()];
    for (k, &addr) in nodes.iter().enumerate() {
        let share =
            args.connections / nodes.len() + usize::from(k < args.connections % nodes.len());
        let target = Arc::new(api.at(addr, sources));
        let mut opened = open_many(&target, &users, share, 256).await;
        join_users(&target, &mut opened.conns, &users).await?;
        connect.push(json!({"node": addr.to_string(), "connect": opened.json()}));
        // open_many keeps the order of the connections that opened; with failures the mapping
        // to users is lost, and the shortfall shows as lost deliveries and connect failures.
        for j in 0..opened.conns.len() {
            devices[k][j % users.len()] += 1;
        }
        open[k] = opened.conns.len() as u64;
        conns.extend(opened.conns.into_iter().map(|c| (k, c)));
    }
    let fleet = Fleet {
        deliveries: Arc::new(Deliveries::default()),
        per_node: Arc::new((0..nodes.len()).map(|_| AtomicU64::new(0)).collect()),
        open,
        devices: Arc::new(devices),
        users: Arc::new(users),
        pids,
        redis_pid: args.redis_pid,
    };
    let total_open: u64 = fleet.open.iter().sum();
    let receivers = spawn_receivers(conns, &fleet);
    let pad = padding(args.payload);

    let mut steps = Vec::new();
    for &rate in &args.all_rates {
        let step = run_step(ctx, args, &fleet, Kind::ToAll, rate, &pad).await;
        let ok = step["ok"].as_bool() == Some(true);
        steps.push(step);
        if !ok {
            break;
        }
    }
    for &rate in &args.user_rates {
        steps.push(run_step(ctx, args, &fleet, Kind::ToUser, rate, &pad).await);
    }
    for r in &receivers {
        r.abort();
    }
    Ok(json!({
        "nodes": nodes.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "api_node": api.addr.to_string(),
        "redis": args.redis_pid != 0,
        "connections": args.connections,
        "open": total_open,
        "open_per_node": fleet.open,
        "users": args.users,
        "devices_per_user": ratio(total_open as f64, args.users.max(1) as f64),
        "counts_reported": api.reports_deliveries(),
        "p99_limit_ms": args.p99_limit_ms,
        "connect": connect,
        "steps": steps,
    }))
}

/// Makes each connection reachable by sends to its user where the protocol needs a subscription
/// for that (Pusher: the user's channel); connection `j` is user `j mod users`, as `open_many`
/// assigned them. All the requests go out first, then every answer is awaited.
async fn join_users(target: &Target, conns: &mut [Conn], users: &[User]) -> anyhow::Result<()> {
    let mut joined = Vec::with_capacity(conns.len());
    for (j, conn) in conns.iter_mut().enumerate() {
        if let Some(frame) = target.user_join_frame(&users[j % users.len()]) {
            conn.send(frame).await?;
            joined.push(j);
        }
    }
    for j in joined {
        await_join_reply(target, &mut conns[j]).await?;
    }
    Ok(())
}

/// One task per connection: records each timestamped push, counted per node.
fn spawn_receivers(conns: Vec<(usize, Conn)>, fleet: &Fleet) -> Vec<tokio::task::JoinHandle<()>> {
    conns
        .into_iter()
        .enumerate()
        .map(|(i, (node, mut conn))| {
            let (d, per_node) = (fleet.deliveries.clone(), fleet.per_node.clone());
            tokio::spawn(async move {
                while let Some(text) = conn.recv().await {
                    match conn.sent_at(&text) {
                        Some(sent) => {
                            d.latency
                                .record_micros(i, unix_nanos().saturating_sub(sent) / 1000);
                            d.received.fetch_add(1, Ordering::Relaxed);
                            per_node[node].fetch_add(1, Ordering::Relaxed);
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

/// Counters the senders of one step share.
struct Sent {
    api_latency: Recorder,
    ok: AtomicU64,
    errors: AtomicU64,
    late: AtomicU64,
    reported: AtomicU64,
    /// Deliveries the sends that succeeded should make, from the fleet's shape.
    expected: AtomicU64,
    /// The same, node by node.
    expected_per_node: Vec<AtomicU64>,
    first_error: std::sync::Mutex<Option<String>>,
}

async fn run_step(
    ctx: &Ctx,
    args: &ClusterArgs,
    fleet: &Fleet,
    kind: Kind,
    rate: f64,
    pad: &str,
) -> Value {
    let count = ((rate * args.step).round() as u64).max(1);
    let d = &fleet.deliveries;
    d.latency.take();
    d.received.store(0, Ordering::Relaxed);
    for n in fleet.per_node.iter() {
        n.store(0, Ordering::Relaxed);
    }
    let sent = Arc::new(Sent {
        api_latency: Recorder::default(),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        late: AtomicU64::new(0),
        reported: AtomicU64::new(0),
        expected: AtomicU64::new(0),
        expected_per_node: fleet.open.iter().map(|_| AtomicU64::new(0)).collect(),
        first_error: std::sync::Mutex::new(None),
    });
    let mut pids = fleet.pids.clone();
    pids.push(fleet.redis_pid);
    let meter = CpuMeter::start(&pids);
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let nsend = args.senders.max(1) as u64;
    let senders: Vec<_> = (0..nsend)
        .map(|w| {
            let (target, sent, users, devices) = (
                ctx.target.clone(),
                sent.clone(),
                fleet.users.clone(),
                fleet.devices.clone(),
            );
            let (pad, open) = (pad.to_owned(), fleet.open.clone());
            tokio::spawn(async move {
                let mut http = HttpClient::new(target.addr);
                let mut i = w;
                while i < count {
                    let slot = start + interval * i as u32;
                    tokio::time::sleep_until(slot).await;
                    if tokio::time::Instant::now() > slot + interval {
                        sent.late.fetch_add(1, Ordering::Relaxed);
                    }
                    let data = json!({"t": unix_nanos(), "p": pad});
                    // What this send should reach on each node.
                    let (to, expect): (_, Vec<u64>) = match kind {
                        Kind::ToAll => (Audience::All, open.clone()),
                        Kind::ToUser => {
                            let u = i as usize % users.len();
                            (
                                Audience::User(&users[u]),
                                devices.iter().map(|node| node[u]).collect(),
                            )
                        }
                    };
                    let (path, body, bearer) = target.broadcast(to, &data);
                    let at = Instant::now();
                    match http.post(&path, bearer, body.as_bytes()).await {
                        Ok(r) if r.status == 200 => {
                            sent.api_latency.record(w as usize, at.elapsed());
                            sent.ok.fetch_add(1, Ordering::Relaxed);
                            for (n, e) in sent.expected_per_node.iter().zip(&expect) {
                                n.fetch_add(*e, Ordering::Relaxed);
                            }
                            sent.expected
                                .fetch_add(expect.iter().sum(), Ordering::Relaxed);
                            let n = r.json()["delivered"].as_u64().unwrap_or(0);
                            sent.reported.fetch_add(n, Ordering::Relaxed);
                        }
                        other => {
                            sent.errors.fetch_add(1, Ordering::Relaxed);
                            let text = match other {
                                Ok(r) => {
                                    format!("{} {}", r.status, String::from_utf8_lossy(&r.body))
                                }
                                Err(e) => format!("{e:#}"),
                            };
                            sent.first_error.lock().unwrap().get_or_insert(text);
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
    let expected = sent.expected.load(Ordering::Relaxed);
    let last = await_deliveries(d, expected, Duration::from_secs(3)).await;
    let usage = meter.stop();
    let received = d.received.load(Ordering::Relaxed);
    let latency = d.latency.take();
    let p99_ms = latency.value_at_quantile(0.99) as f64 / 1000.0;
    let window = last
        .max(sent_at)
        .duration_since(start.into_std())
        .as_secs_f64();
    let (nodes_cpu, redis_cpu) = usage.cpu.split_at(fleet.pids.len());
    let server_cpu: Duration = nodes_cpu.iter().sum();
    let redis_cpu = redis_cpu[0];
    let per = |cpu: Duration| ratio(cpu.as_secs_f64() * 1e6, received as f64);
    // Without a count in the answer there is nothing to compare: null, not a false "inexact".
    let reports = ctx.target.reports_deliveries();
    let reported = sent.reported.load(Ordering::Relaxed);
    json!({
        "kind": kind.name(),
        "rate_per_s": rate,
        "sends": count,
        "sends_ok": sent.ok.load(Ordering::Relaxed),
        "http_errors": sent.errors.load(Ordering::Relaxed),
        "first_error": sent.first_error.lock().unwrap().clone(),
        "late_sends": sent.late.load(Ordering::Relaxed),
        "expected_deliveries": expected,
        "delivered_reported": reports.then_some(reported),
        "counts_exact": reports.then_some(reported == expected),
        "received": received,
        "expected_per_node": sent.expected_per_node.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        "received_per_node": fleet.per_node.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        "lost": expected.saturating_sub(received),
        "deliveries_per_s": ratio(received as f64, window).round(),
        "delivery_latency": summary(&latency),
        "api_latency": summary(&sent.api_latency.take()),
        "elapsed_s": secs(usage.elapsed),
        "server_cpu_s_per_node": nodes_cpu.iter().map(|&c| secs(c)).collect::<Vec<_>>(),
        "server_cpu_s": secs(server_cpu),
        "redis_cpu_s": secs(redis_cpu),
        "loadgen_cpu_s": secs(usage.client_cpu),
        "server_cpu_us_per_delivery": per(server_cpu),
        "redis_cpu_us_per_delivery": per(redis_cpu),
        "server_and_redis_cpu_us_per_delivery": per(server_cpu + redis_cpu),
        "ok": received >= expected && expected > 0 && p99_ms <= args.p99_limit_ms,
    })
}
