//! Cluster mode: the Redis [`Broker`] and [`Presence`] of a node.
//!
//! Presence is per connection (see [`scripts`] for the keys): a connection is added, tagged,
//! identified, kicked and removed by one script each, so the cluster-wide online list and
//! counts change the moment a node decides. A send is one script too: it numbers the push in
//! its stream, appends it to the stream's history, counts the connections its audience holds
//! on every node, and publishes it to the channel of each node that holds one (or once to
//! `P:all` for everyone). So an API call never waits on another node, and a node receives
//! only what concerns its own sockets.
//!
//! Ordering: each node reads its channels on one subscription and applies everything — pushes,
//! its own new connections, tag changes, kicks — in the order Redis published it. A connection
//! is indexed locally when its `attach` message comes through, so it receives exactly the
//! pushes published after it became present, in offset order. The sender's own sockets get
//! stream pushes through the same subscription, for the same reason.
//!
//! Faults: a node that loses its subscription catches up from stream history once it is back;
//! a node whose presence vanished (swept while frozen, or Redis lost its data) closes its
//! sockets with 1012 so their clients reconnect and recover; a node that stops heartbeating is
//! swept by the others within `NODE_TTL` plus one sweep period. While Redis is unreachable the
//! backend answers [`NodeError::Unavailable`] and local sockets keep working.

mod broker;
mod bus;
mod presence;
pub mod queue;
pub mod scripts;

use self::bus::{BusMsg, PendingAttach, PendingIdent, encode_raw, stream_entry_offset};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::websocket::client::Connection;
use crate::websocket::outbox::Outbound;
use async_trait::async_trait;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_sdk::event::EventError;
use switchboard_sdk::protocol::{Envelope, Push, close, code, unix_millis, unix_now};
use switchboard_sdk::{Audience, ClientId, Identity, Tag, UserId};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::AuthService;
use crate::node::rows::{OnlinePage, OnlineQuery, Row};
use crate::node::{
    Attach, Broker, Control, Counts, Disconnect, Greeting, KickOutcome, NodeError, Presence,
    Target, apply_control, token_of,
};
use crate::websocket::Registry;
use crate::websocket::hub::{LocalHub, RecoverReply, RecoverRequest};
use crate::websocket::monitor::NodeFigures;
use crate::websocket::registry::{LimitError, Reservation};

/// A node is alive while its heartbeat is younger than this.
const NODE_TTL: Duration = Duration::from_secs(15);
/// Heartbeat and sweep period.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// How often this node's connections' heartbeat times are written for the online list.
const HEARTBEAT_FLUSH: Duration = Duration::from_secs(5);
/// Stream epoch/offset keys outlive their history by this much.
const META_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest wait for this node's own subscription to apply a change it made.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the Redis backend.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// Redis URL.
    pub redis_url: String,
    /// Key and channel prefix (`switchboard`).
    pub prefix: String,
    /// This node.
    pub node: String,
    /// Entries per stream.
    pub history_size: usize,
    /// History lifetime.
    pub history_ttl: Duration,
    /// `websocket.max_connections_per_user`, enforced cluster-wide (0 = unlimited).
    pub max_per_user: usize,
    /// `websocket.max_tags_per_connection`.
    pub max_tags: usize,
}

/// The Redis backend of one node.
pub struct RedisBackend {
    settings: RedisSettings,
    client: redis::Client,
    conn: ConnectionManager,
    registry: Arc<Registry>,
    auth: Arc<AuthService>,
    attaching: Mutex<HashMap<String, PendingAttach>>,
    identifying: Mutex<HashMap<String, PendingIdent>>,
    tag_waiters: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// The last position of each stream this node delivered, for catching up after a lost
    /// subscription.
    seen: Mutex<HashMap<String, (u64, String)>>,
    next_req: AtomicU64,
    reachable: AtomicBool,
    subscribed: AtomicBool,
}

fn unavailable(e: impl std::fmt::Display) -> NodeError {
    NodeError::Unavailable(e.to_string())
}

impl RedisBackend {
    /// Connects to Redis, subscribes this node's channels, and starts the heartbeat, the sweep
    /// of dead nodes and the heartbeat-time writer. Fails when Redis cannot be reached.
    pub async fn start(
        settings: RedisSettings,
        registry: Arc<Registry>,
        auth: Arc<AuthService>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> anyhow::Result<Arc<RedisBackend>> {
        let client = redis::Client::open(settings.redis_url.as_str())?;
        // Redis's 500 ms default would turn a busy moment into a spurious outage.
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(3)));
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(manager_config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis at start-up"))??;
        let backend = Arc::new(RedisBackend {
            settings,
            client,
            conn,
            registry,
            auth,
            attaching: Mutex::new(HashMap::new()),
            identifying: Mutex::new(HashMap::new()),
            tag_waiters: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
            subscribed: AtomicBool::new(false),
        });
        // A previous process with this node id may have left connections behind.
        let node = backend.settings.node.clone();
        backend.sweep_node(&node).await?;
        backend.heartbeat().await;
        {
            let b = backend.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { b.run_bus(stop).await });
        }
        {
            let b = backend.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { b.run_heartbeat(stop).await });
        }
        {
            let b = backend.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { b.run_heartbeat_flush(stop).await });
        }
        for _ in 0..250 {
            if backend.subscribed.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !backend.subscribed.load(Ordering::Acquire) {
            anyhow::bail!("could not subscribe to the node's Redis channels within 5 s");
        }
        Ok(backend)
    }

    /// A Redis connection for other cluster services (the login limiter).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The Redis client (the queue consumer opens its own blocking connection).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.settings.prefix)
    }

    fn stream_key(&self, stream: &str, part: &str) -> String {
        format!("{}:stream:{stream}:{part}", self.settings.prefix)
    }

    /// Where a stream stands in Redis: `(offset, epoch)`, each `None` when never set.
    async fn stream_position(
        &self,
        c: &mut ConnectionManager,
        stream: &str,
    ) -> redis::RedisResult<(Option<u64>, Option<String>)> {
        redis::pipe()
            .get(self.stream_key(stream, "offset"))
            .get(self.stream_key(stream, "epoch"))
            .query_async(c)
            .await
    }

    /// The history entries after `since` up to and including `until`, as `(offset, added at
    /// unix ms, frame)`, encoded in `epoch`.
    async fn stream_range(
        &self,
        c: &mut ConnectionManager,
        stream: &str,
        epoch: &str,
        since: u64,
        until: u64,
    ) -> redis::RedisResult<Vec<(u64, Option<i64>, Outbound)>> {
        let reply: redis::streams::StreamRangeReply = c
            .xrange(
                self.stream_key(stream, "history"),
                format!("{}-1", since + 1),
                format!("{until}-1"),
            )
            .await?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|e| {
                let offset = stream_entry_offset(&e.id);
                let ev: String = e.get("e").unwrap_or_default();
                let d: String = e.get("d").unwrap_or_default();
                encode_raw(&ev, &d, Some((stream, offset, epoch)))
                    .map(|f| (offset, e.get::<i64>("t"), f))
            })
            .collect())
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn set_reachable(&self, ok: bool) {
        let was = self.reachable.swap(ok, Ordering::Relaxed);
        if was != ok {
            if ok {
                tracing::info!("redis reachable again; cluster mode resumed");
            } else {
                tracing::warn!("redis unreachable; serving local sockets only until it returns");
            }
        }
    }

    /// Runs a script, recording reachability.
    async fn run<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, NodeError> {
        let mut c = self.conn();
        match inv.invoke_async::<T>(&mut c).await {
            Ok(v) => {
                self.set_reachable(true);
                Ok(v)
            }
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.set_reachable(false);
                }
                tracing::debug!(error = %e, "redis script failed");
                Err(unavailable(e))
            }
        }
    }

    fn ensure_ready(&self) -> Result<(), NodeError> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(NodeError::Unavailable("Redis is unreachable".into()))
        }
    }

    fn new_req(&self) -> String {
        format!(
            "{}:{}",
            self.settings.node,
            self.next_req.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn row_json(client: &Connection) -> String {
        let mut row = Row::of(client);
        row.tags.clear();
        serde_json::to_string(&row).unwrap_or_default()
    }

    async fn heartbeat(&self) -> Option<bool> {
        let mut c = self.conn();
        let added: redis::RedisResult<i64> = c
            .zadd(self.key("nodes"), &self.settings.node, unix_millis() as f64)
            .await;
        self.set_reachable(added.is_ok());
        added.ok().map(|n| n == 1)
    }

    /// Keeps this node's monitor figures in `figures` (a hash node → JSON) beside its
    /// heartbeat, where every node's monitor reads them.
    async fn write_figures(&self, own: &NodeFigures) -> Result<(), NodeError> {
        let json = serde_json::to_string(own).map_err(unavailable)?;
        let mut c = self.conn();
        c.hset::<_, _, _, ()>(self.key("figures"), &self.settings.node, json)
            .await
            .map_err(unavailable)
    }

    /// The figures of the nodes whose heartbeat is fresh, this node's being `own`. Entries of
    /// nodes that stopped heartbeating are removed.
    async fn read_figures(&self, own: NodeFigures) -> Result<Vec<NodeFigures>, NodeError> {
        let cutoff = unix_millis() as f64 - NODE_TTL.as_millis() as f64;
        let mut c = self.conn();
        let (live, all): (Vec<String>, HashMap<String, String>) = redis::pipe()
            .zrangebyscore(self.key("nodes"), cutoff, "+inf")
            .hgetall(self.key("figures"))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut out = vec![own];
        let mut stale = Vec::new();
        for (node, json) in all {
            if node == self.settings.node {
                continue;
            }
            if !live.contains(&node) {
                stale.push(node);
                continue;
            }
            if let Ok(f) = serde_json::from_str::<NodeFigures>(&json) {
                out.push(f);
            }
        }
        if !stale.is_empty() {
            let _ = c.hdel::<_, _, ()>(self.key("figures"), stale).await;
        }
        Ok(out)
    }

    async fn sweep_node(&self, node: &str) -> Result<usize, NodeError> {
        let n: usize = self
            .run(
                scripts::SWEEP
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(node),
            )
            .await?;
        if n > 0 {
            tracing::info!(node, connections = n, "removed a dead node's connections");
        }
        Ok(n)
    }

    async fn run_heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = self.sweep_node(&self.settings.node.clone()).await;
                    return;
                }
                _ = tick.tick() => {}
            }
            if self.heartbeat().await == Some(true) {
                // Our entry was gone: the others swept us (we were frozen past NODE_TTL) or
                // Redis lost its data. Our connections are no longer present anywhere and may
                // have missed pushes; their clients reconnect and recover.
                let clients = self.registry.all();
                tracing::warn!(
                    connections = clients.len(),
                    "this node's presence was lost; closing its sockets so clients reconnect"
                );
                for c in clients {
                    c.close(close::SERVICE_RESTART, "presence lost; reconnect", true);
                }
            }
            let cutoff = unix_millis() as f64 - NODE_TTL.as_millis() as f64;
            let mut c = self.conn();
            let dead: Vec<String> = c
                .zrangebyscore(self.key("nodes"), "-inf", cutoff)
                .await
                .unwrap_or_default();
            for node in dead.iter().filter(|n| **n != self.settings.node) {
                let _ = self.sweep_node(node).await;
            }
        }
    }

    /// Writes the heartbeat times that changed, for other nodes' online lists.
    async fn run_heartbeat_flush(self: Arc<Self>, stop: CancellationToken) {
        let mut written: HashMap<ClientId, i64> = HashMap::new();
        let mut tick = tokio::time::interval(HEARTBEAT_FLUSH);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let clients = self.registry.all();
            let mut changed: Vec<(String, i64)> = Vec::new();
            let mut next = HashMap::with_capacity(clients.len());
            for c in &clients {
                let hb = c.heartbeat_time();
                if written.get(c.id()) != Some(&hb) {
                    changed.push((c.id().to_string(), hb));
                }
                next.insert(c.id().clone(), hb);
            }
            if changed.is_empty() {
                written = next;
                continue;
            }
            let mut pipe = redis::pipe();
            for chunk in changed.chunks(500) {
                pipe.hset_multiple(self.key("hb"), chunk).ignore();
            }
            let mut c = self.conn();
            if pipe.query_async::<()>(&mut c).await.is_ok() {
                written = next;
            }
        }
    }
}
