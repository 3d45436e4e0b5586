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

use serde::Deserialize;
use serde_json::Value;
use switchboard_sdk::protocol::{MAX_EVENT_LEN, Push};
use switchboard_sdk::{Audience, ClientId, Tag, UserId};

use crate::node::{Node, NodeError};

/// A send command on the queue stream (the hydra api → queue → ws pattern).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueCommand {
    /// `all`, `client`, `user` or `tag`.
    pub to: String,
    /// For `client`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// For `user`.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// For `tag`.
    #[serde(default)]
    pub tag: Option<String>,
    /// Event name.
    pub event: String,
    /// Payload.
    #[serde(default)]
    pub data: Option<Value>,
}

impl QueueCommand {
    /// Who the command is for and what to send; `Err` is why it is dead-lettered.
    pub fn into_send(self) -> Result<(Audience, Push), String> {
        if self.event.is_empty() || self.event.len() > MAX_EVENT_LEN {
            return Err(format!("event must be 1-{MAX_EVENT_LEN} bytes"));
        }
        let audience = match self.to.as_str() {
            "all" => Audience::All,
            "user" => Audience::User(UserId(
                self.user_id.ok_or("userId is required for to=user")?,
            )),
            "tag" => {
                let t = self.tag.ok_or("tag is required for to=tag")?;
                Audience::Tag(Tag::parse(&t).map_err(|e| format!("tag: {e}"))?)
            }
            "client" => {
                let id = self.client_id.ok_or("clientId is required for to=client")?;
                Audience::Client(ClientId::parse(&id).ok_or("clientId is not a client id")?)
            }
            other => {
                return Err(format!(
                    "to must be all, client, user or tag (got `{other}`)"
                ));
            }
        };
        Ok((
            audience,
            Push::new(self.event, self.data.unwrap_or(Value::Null)),
        ))
    }
}

/// What the consumer needs.
pub struct QueueConsumer {
    /// For its own blocking connection.
    pub client: redis::Client,
    /// Key prefix.
    pub prefix: String,
    /// Consumer name (the node id).
    pub consumer: String,
    /// Pending entries older than this are claimed from dead consumers.
    pub claim_idle: Duration,
    /// Where sends go.
    pub node: Arc<Node>,
}

/// Consumer group name.
pub const GROUP: &str = "switchboard";
/// How long one read waits for entries.
const BLOCK: Duration = Duration::from_secs(1);

/// Runs until shutdown; reconnects with backoff when Redis goes away.
pub async fn run(q: QueueConsumer, stop: CancellationToken) {
    let queue = format!("{}:queue", q.prefix);
    let dead = format!("{}:queue:dead", q.prefix);
    let consumer = q.consumer.clone();
    let claim_idle = q.claim_idle;
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
        let conn = match q
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
                        handle(&q.node, &mut conn, &queue, &dead, entry).await;
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
                            handle(&q.node, &mut conn, &queue, &dead, entry).await;
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
    node: &Node,
    conn: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    dead: &str,
    entry: StreamId,
) {
    let payload: Option<String> = entry.get("payload");
    let outcome = match payload.as_deref() {
        None => Err("entry has no `payload` field".to_string()),
        Some(p) => match serde_json::from_str::<QueueCommand>(p) {
            Ok(cmd) => match cmd.into_send() {
                // Not acknowledged while the cluster is down: it stays pending and is retried.
                Ok((audience, push)) => match node.send(&audience, &push).await {
                    Ok(n) => Ok(n),
                    // No retry can make it fit: moved aside like any bad entry.
                    Err(e @ NodeError::TooLarge { .. }) => Err(e.to_string()),
                    Err(e) => {
                        tracing::debug!(id = %entry.id, error = %e, "queue entry left pending");
                        return;
                    }
                },
                Err(reason) => Err(reason),
            },
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
                        ("node", node.id()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_commands_are_strict() {
        let parse = |s: &str| serde_json::from_str::<QueueCommand>(s);
        assert!(parse(r#"{"to":"user","userId":1,"event":"n"}"#).is_ok());
        assert!(parse(r#"{"to":"user","userId":1}"#).is_err());
        assert!(parse(r#"{"to":"user","event":"n","x":1}"#).is_err());
        let missing = parse(r#"{"to":"user","event":"n"}"#).unwrap().into_send();
        assert_eq!(missing.unwrap_err(), "userId is required for to=user");
        let (audience, _) = parse(r#"{"to":"tag","tag":"room","event":"n"}"#)
            .unwrap()
            .into_send()
            .unwrap();
        assert_eq!(audience, Audience::Tag(Tag::parse("room").unwrap()));
    }
}
