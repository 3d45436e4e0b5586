//! Presence: each node keeps a Redis hash of its connections (one JSON row per connection)
//! with a TTL it refreshes, so the online list is cluster-wide and a dead node's connections
//! vanish on their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard_sdk::Client;
use tokio_util::sync::CancellationToken;

use super::Cluster;

/// Presence hashes expire this long after the node's last refresh.
const PRESENCE_TTL: Duration = Duration::from_secs(30);
/// Rewritten at least this often (heartbeat times), and within a second of any change.
const REFRESH: Duration = Duration::from_secs(5);

/// One connection as the online list shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Connection id.
    pub id: String,
    /// User id.
    pub user_id: Option<i64>,
    /// Username.
    pub username: String,
    /// Client IP.
    pub ip: String,
    /// OS family.
    pub os: String,
    /// Browser family.
    pub browser: String,
    /// Raw User-Agent.
    pub user_agent: String,
    /// Connected at.
    pub first_time: i64,
    /// Last inbound frame.
    pub heartbeat_time: i64,
    /// Tags.
    pub tags: Vec<String>,
    /// Node.
    pub node: String,
}

impl Row {
    /// The row of a local connection.
    pub fn of(c: &Client) -> Row {
        let info = c.info();
        Row {
            id: c.id().to_string(),
            user_id: c.user_id().map(|u| u.0),
            username: c.username(),
            ip: info.ip.clone(),
            os: info.os.clone(),
            browser: info.browser.clone(),
            user_agent: info.user_agent.clone(),
            first_time: info.first_time,
            heartbeat_time: c.heartbeat_time(),
            tags: c.tags().into_iter().map(|t| t.to_string()).collect(),
            node: info.node.to_string(),
        }
    }
}

/// This node's presence writer state.
pub struct Presence {
    prefix: String,
    node: String,
    dirty: AtomicBool,
}

impl Presence {
    /// For `node` under `prefix`.
    pub fn new(prefix: &str, node: &str) -> Self {
        Presence {
            prefix: prefix.to_string(),
            node: node.to_string(),
            dirty: AtomicBool::new(true),
        }
    }

    /// The presence hash of a node.
    pub fn key_of(&self, node: &str) -> String {
        format!("{}:presence:{node}", self.prefix)
    }

    /// Asks for a rewrite soon.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }
}

/// Rewrites this node's presence hash whenever the registry changed (checked every second) and
/// at least every few seconds; removes it on shutdown.
pub async fn run(cluster: Arc<Cluster>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_write = Instant::now() - REFRESH;
    let mut last_generation = u64::MAX;
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let mut c = cluster.conn();
                let _: redis::RedisResult<()> = redis::cmd("DEL")
                    .arg(cluster.presence.key_of(&cluster.presence.node))
                    .query_async(&mut c)
                    .await;
                return;
            }
            _ = tick.tick() => {}
        }
        let generation = cluster.local.registry().generation();
        let dirty = cluster.presence.dirty.swap(false, Ordering::Relaxed);
        if !dirty && generation == last_generation && last_write.elapsed() < REFRESH {
            continue;
        }
        if write(&cluster).await {
            last_generation = generation;
            last_write = Instant::now();
        } else {
            cluster.presence.mark_dirty();
        }
    }
}

async fn write(cluster: &Cluster) -> bool {
    let key = cluster.presence.key_of(&cluster.presence.node);
    let tmp = format!("{key}:tmp");
    let rows: Vec<(String, String)> = cluster
        .local
        .registry()
        .all()
        .iter()
        .filter_map(|c| {
            serde_json::to_string(&Row::of(c))
                .ok()
                .map(|r| (c.id().to_string(), r))
        })
        .collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.del(&tmp).ignore();
    if rows.is_empty() {
        pipe.del(&key).ignore();
    } else {
        for chunk in rows.chunks(500) {
            pipe.hset_multiple(&tmp, chunk).ignore();
        }
        pipe.rename(&tmp, &key).ignore();
        pipe.pexpire(&key, PRESENCE_TTL.as_millis() as i64).ignore();
    }
    let mut c = cluster.conn();
    let ok = pipe.query_async::<()>(&mut c).await.is_ok();
    cluster.set_ready(ok);
    ok
}
