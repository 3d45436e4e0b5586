//! Connect storm: N authenticated connections opened as fast as the server accepts them (bounded
//! only by `concurrency` handshakes in flight). A connection counts once the server has said it is
//! registered (Switchboard's `connected`, Socket.IO's namespace ack).

use clap::Args;
use serde_json::{Value, json};

use super::{Ctx, open_many};
use crate::stats::Meter;

#[derive(Args, Debug)]
pub struct StormArgs {
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

pub async fn run(ctx: &Ctx, args: &StormArgs) -> anyhow::Result<Value> {
    let meter = Meter::start(ctx.pid);
    let opened = open_many(
        &ctx.target,
        &[ctx.target.default_user()],
        args.connections,
        args.concurrency,
    )
    .await;
    let usage = meter.stop();
    let result = json!({
        "connect": opened.json(),
        "concurrency": args.concurrency,
        "server_cpu_us_per_connect": usage.server_cpu_us_per(opened.conns.len() as u64),
        "usage": usage.json(),
    });
    drop(opened);
    Ok(result)
}
