//! The queue consumer (the hydra api → queue → ws pattern): backend services `XADD
//! <prefix>:queue * payload '<json send command>'`; a consumer group hands each entry to one
//! node, which delivers it and only then acknowledges it. Entries a dead consumer left pending
//! are claimed by another node; an invalid entry is moved to `<prefix>:queue:dead` with the
//! reason and acknowledged, so it never blocks the queue.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::bus::QueueCommand;

/// Consumer group name.
pub const GROUP: &str = "switchboard";
/// How long one read waits for entries.
const BLOCK: Duration = Duration::from_secs(1);

/// Runs until shutdown; reconnects with backoff when Redis goes away.
pub async fn run(cluster: Arc<Cluster>, stop: CancellationToken) {
    let queue = cluster.key("queue");
    let dead = cluster.key("queue:dead");
    let consumer = cluster.node().to_string();
    let claim_idle = cluster.settings.queue_claim_idle;
    let mut backoff = Duration::from_millis(200);
    loop {
        if stop.is_cancelled() {
            return;
        }
        // A connection of its own: XREADGROUP blocks it. Its response timeout must outlast the
        // BLOCK time: a read abandoned by a client-side timeout still hands entries to this
        // consumer, which would then sit pending until they are claimed.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
        let conn = match cluster
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => c,
            Err(_) => {
                if sleep_or_stop(&stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut conn = conn;
        let created: redis::RedisResult<()> = conn.xgroup_create_mkstream(&queue, GROUP, "0").await;
        if let Err(e) = created {
            if !e.to_string().contains("BUSYGROUP") {
                if sleep_or_stop(&stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        backoff = Duration::from_millis(200);
        let mut last_claim = tokio::time::Instant::now();
        loop {
            if last_claim.elapsed() >= (claim_idle / 3).max(Duration::from_millis(200)) {
                last_claim = tokio::time::Instant::now();
                let opts = StreamAutoClaimOptions::default().count(32);
                let claimed: redis::RedisResult<redis::streams::StreamAutoClaimReply> = conn
                    .xautoclaim_options(
                        &queue,
                        GROUP,
                        &consumer,
                        claim_idle.as_millis() as u64,
                        "0-0",
                        opts,
                    )
                    .await;
                if let Ok(reply) = claimed {
                    for entry in reply.claimed {
                        handle(&cluster, &mut conn, &queue, &dead, entry).await;
                    }
                }
            }
            let opts = StreamReadOptions::default()
                .group(GROUP, &consumer)
                .count(32)
                .block(BLOCK.as_millis() as usize);
            let keys = [queue.as_str()];
            let ids = [">"];
            let read = tokio::select! {
                _ = stop.cancelled() => return,
                r = conn.xread_options::<_, _, StreamReadReply>(&keys, &ids, &opts) => r,
            };
            match read {
                Ok(reply) => {
                    for key in reply.keys {
                        for entry in key.ids {
                            handle(&cluster, &mut conn, &queue, &dead, entry).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "queue read failed; reconnecting");
                    break;
                }
            }
        }
        if sleep_or_stop(&stop, backoff).await {
            return;
        }
    }
}

async fn sleep_or_stop(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

async fn handle(
    cluster: &Cluster,
    conn: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    dead: &str,
    entry: StreamId,
) {
    let payload: Option<String> = entry.get("payload");
    let outcome = match payload.as_deref() {
        None => Err("entry has no `payload` field".to_string()),
        Some(p) => match serde_json::from_str::<QueueCommand>(p) {
            Ok(cmd) => cluster.execute(cmd).await,
            Err(e) => Err(format!("payload is not a send command: {e}")),
        },
    };
    match outcome {
        Ok(n) => {
            tracing::debug!(id = %entry.id, delivered = n, "queue entry delivered");
        }
        Err(reason) => {
            tracing::warn!(id = %entry.id, %reason, "queue entry moved to the dead-letter stream");
            let moved: redis::RedisResult<String> = conn
                .xadd(
                    dead,
                    "*",
                    &[
                        ("id", entry.id.as_str()),
                        ("payload", payload.as_deref().unwrap_or("")),
                        ("reason", reason.as_str()),
                        ("node", cluster.node()),
                    ],
                )
                .await;
            if moved.is_err() {
                // Not acknowledged: it stays pending and is retried or claimed later.
                return;
            }
        }
    }
    let _: redis::RedisResult<u64> = conn.xack(queue, GROUP, &[&entry.id]).await;
}
