//! Switchboard's load generator. One process opens many WebSocket connections to one system under
//! test, drives one scenario, samples the server's RSS and CPU time from /proc, and prints the
//! result as one JSON document on stdout. `bench/run.sh` calls it once per system and scenario.
//!
//! ```text
//! loadgen --target switchboard --addr 127.0.0.1:18100 --pid 1234 --password pw echo --payload 4096
//! ```

mod http;
mod net;
mod procfs;
mod pusher;
mod scenario;
mod stats;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::scenario::Ctx;
use crate::target::{Kind, Target};

#[derive(Parser, Debug)]
#[command(about = "WebSocket load generator for Switchboard and its peers")]
struct Cli {
    /// Which system is listening at --addr (selects the protocol adapter).
    #[arg(long, value_enum)]
    target: Kind,
    #[arg(long, default_value = "127.0.0.1:18100")]
    addr: SocketAddr,
    /// The server's process id, for RSS and CPU time; 0 = do not sample.
    #[arg(long, default_value_t = 0)]
    pid: u32,
    /// Admin credentials (Switchboard only).
    #[arg(long, default_value = "admin")]
    username: String,
    #[arg(long, env = "BENCH_ADMIN_PASSWORD", default_value = "bench-admin-pw")]
    password: String,
    /// Loopback source addresses to spread client sockets over (127.0.0.2 …); 0 = let the kernel pick.
    #[arg(long, default_value_t = 8)]
    sources: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Idle connections: RSS per connection, CPU per connection-second.
    Idle(scenario::idle::IdleArgs),
    /// Pipelined echo through the event router: msgs/s, latency, CPU per message.
    Echo(scenario::echo::EchoArgs),
    /// Broadcasts to all or to a tag at rising rates: delivery latency, CPU per delivery.
    Fanout(scenario::fanout::FanoutArgs),
    /// Connections opened as fast as possible: connects/s, failures.
    Storm(scenario::storm::StormArgs),
    /// POST …/send/toUser under load: requests/s, end-to-end latency.
    Api(scenario::api::ApiArgs),
    /// toAll and toUser through one node while connections are spread over several nodes:
    /// CPU per delivery summed over the nodes, Redis CPU, API latency (Switchboard; sockudo with
    /// a channel per user).
    Cluster(scenario::cluster::ClusterArgs),
    /// Long mixed load with churn, kicks and slow clients, every answer checked (Switchboard only).
    Soak(scenario::soak::SoakArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fd_limit = net::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    if !cli.target.has_request_reply()
        && matches!(
            cli.scenario,
            Scenario::Echo(_) | Scenario::Api(_) | Scenario::Soak(_)
        )
    {
        anyhow::bail!(
            "not applicable: {} has no request/reply and no addressing by user",
            cli.target.name()
        );
    }
    let result = runtime.block_on(async {
        let sources = net::Sources::new(cli.addr, cli.sources);
        let target =
            Target::new(cli.target, cli.addr, &cli.username, &cli.password, sources).await?;
        let ctx = Ctx {
            target: Arc::new(target),
            pid: cli.pid,
        };
        let (name, params, result) = match &cli.scenario {
            Scenario::Idle(a) => ("idle", format!("{a:?}"), scenario::idle::run(&ctx, a).await),
            Scenario::Echo(a) => ("echo", format!("{a:?}"), scenario::echo::run(&ctx, a).await),
            Scenario::Fanout(a) => (
                "fanout",
                format!("{a:?}"),
                scenario::fanout::run(&ctx, a).await,
            ),
            Scenario::Storm(a) => (
                "storm",
                format!("{a:?}"),
                scenario::storm::run(&ctx, a).await,
            ),
            Scenario::Api(a) => ("api", format!("{a:?}"), scenario::api::run(&ctx, a).await),
            Scenario::Cluster(a) => (
                "cluster",
                format!("{a:?}"),
                scenario::cluster::run(&ctx, a, cli.sources).await,
            ),
            Scenario::Soak(a) => (
                "soak",
                format!("{a:?}"),
                scenario::soak::run(&ctx, a, cli.sources).await,
            ),
        };
        let (result, error) = match result {
            Ok(v) => (v, None),
            Err(e) => (serde_json::Value::Null, Some(format!("{e:#}"))),
        };
        anyhow::Ok(json!({
            "target": cli.target.name(),
            "scenario": name,
            "params": params,
            "fd_limit": fd_limit,
            "result": result,
            "error": error,
        }))
    })?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    // Thousands of open sockets: let the process exit close them rather than awaiting each.
    std::process::exit(0)
}
