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

pub mod queue;
pub mod scripts;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_sdk::event::EventError;
use switchboard_sdk::outbox::Outbound;
use switchboard_sdk::protocol::{Push, close, code, unix_millis, unix_now};
use switchboard_sdk::{Audience, Client, ClientId, Identity, Tag, UserId};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Utf8Bytes;
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
use crate::websocket::registry::{LimitError, LocalTarget, Reservation};

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

/// A message on a node's channels. Pushes are built here; the membership messages are built
/// by the scripts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum BusMsg {
    /// Deliver a push. `offset`/`epoch` are appended by the publish script for stream pushes.
    #[serde(rename_all = "camelCase")]
    Deliver {
        /// `all`, `client`, `user` or `tag`.
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// A connection to skip (`publish` with `excludeSelf`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        event: String,
        /// Payload as raw JSON text, exactly as given (a string, so it survives the tagged
        /// enum's buffering unchanged).
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// One of this node's connections became present at these stream positions.
    Attach {
        id: String,
        pos: Vec<(String, u64, String)>,
    },
    /// One of this node's connections logged in.
    Ident {
        id: String,
        pos: Vec<(String, u64, String)>,
    },
    /// One of this node's connections joined or quit a tag.
    Tag {
        id: String,
        tag: String,
        join: bool,
        pos: (String, u64, String),
        req: String,
    },
    /// Close these connections (4001: a kick).
    Close {
        ids: Vec<String>,
        reason: String,
        code: u16,
    },
    /// A token was revoked.
    #[serde(rename_all = "camelCase")]
    Revoked { jti: String, exp: i64, user_id: i64 },
    /// A user changed.
    #[serde(rename_all = "camelCase")]
    UserChanged {
        user_id: i64,
        #[serde(default)]
        close: Option<u16>,
        reason: String,
    },
}

struct PendingAttach {
    client: Arc<Client>,
    reservation: Reservation,
    greeting: Greeting,
    done: oneshot::Sender<()>,
}

struct PendingIdent {
    client: Arc<Client>,
    identity: Identity,
    done: oneshot::Sender<Result<(), LimitError>>,
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

/// Encodes a push whose data is raw JSON text (from the bus or Redis history).
fn encode_raw(event: &str, data: &str, pos: Option<(&str, u64, &str)>) -> Option<Outbound> {
    #[derive(Serialize)]
    struct RawEnvelope<'a> {
        event: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a RawValue>,
        code: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        stream: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
        timestamp: i64,
    }
    let raw: Option<Box<RawValue>> = match data.trim() {
        "" | "null" => None,
        d => Some(RawValue::from_string(d.to_string()).ok()?),
    };
    let env = RawEnvelope {
        event,
        data: raw.as_deref(),
        code: code::OK,
        stream: pos.map(|p| p.0),
        offset: pos.map(|p| p.1),
        epoch: pos.map(|p| p.2),
        timestamp: unix_now(),
    };
    serde_json::to_string(&env)
        .ok()
        .map(|s| Outbound::Text(Utf8Bytes::from(s)))
}

/// The local recipients of a stream, by name.
enum StreamOwner {
    All,
    User(UserId),
    Tag(Tag),
}

impl StreamOwner {
    fn of(stream: &str) -> Option<StreamOwner> {
        if stream == "all" {
            return Some(StreamOwner::All);
        }
        if let Some(u) = stream.strip_prefix("user:") {
            return u.parse().ok().map(|u| StreamOwner::User(UserId(u)));
        }
        stream
            .strip_prefix("tag:")
            .and_then(|t| Tag::parse(t).ok())
            .map(StreamOwner::Tag)
    }

    fn target(&self) -> LocalTarget<'_> {
        match self {
            StreamOwner::All => LocalTarget::All,
            StreamOwner::User(u) => LocalTarget::User(*u),
            StreamOwner::Tag(t) => LocalTarget::Tag(t),
        }
    }
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

    fn row_json(client: &Client) -> String {
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

    /// Reads this node's channels; reconnects with backoff and catches up from history.
    async fn run_bus(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        let channels = [
            self.key(&format!("node:{}", self.settings.node)),
            self.key("all"),
        ];
        loop {
            if stop.is_cancelled() {
                return;
            }
            if let Ok(mut pubsub) = self.client.get_async_pubsub().await {
                if pubsub.subscribe(&channels).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    if !first {
                        self.catch_up().await;
                    }
                    first = false;
                    self.subscribed.store(true, Ordering::Release);
                    self.set_reachable(true);
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            msg = messages.next() => match msg {
                                Some(m) => {
                                    if let Ok(payload) = m.get_payload::<String>() {
                                        self.on_message(&payload);
                                    }
                                }
                                None => break,
                            }
                        }
                    }
                    tracing::warn!("lost the Redis subscription; resubscribing");
                }
            }
            self.subscribed.store(false, Ordering::Release);
            self.set_reachable(false);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn saw(&self, stream: &str, offset: u64, epoch: &str) {
        let mut seen = self.seen.lock();
        match seen.get_mut(stream) {
            Some((o, e)) if e == epoch => *o = (*o).max(offset),
            Some(entry) => *entry = (offset, epoch.to_string()),
            None => {
                seen.insert(stream.to_string(), (offset, epoch.to_string()));
            }
        }
    }

    fn has_local_recipients(&self, owner: &StreamOwner) -> bool {
        match owner {
            StreamOwner::All => self.registry.counts().0 > 0,
            StreamOwner::User(u) => !self.registry.user_clients(*u).is_empty(),
            StreamOwner::Tag(t) => !self.registry.tag_members(t).is_empty(),
        }
    }

    /// After a lost subscription: replays from history what this node's sockets missed.
    async fn catch_up(&self) {
        let snapshot: Vec<(String, (u64, String))> = self
            .seen
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut c = self.conn();
        let mut replayed = 0usize;
        for (stream, (seen, epoch)) in snapshot {
            let Some(owner) = StreamOwner::of(&stream) else {
                continue;
            };
            if !self.has_local_recipients(&owner) {
                self.seen.lock().remove(&stream);
                continue;
            }
            let base = format!("{}:stream:{stream}", self.settings.prefix);
            let now: redis::RedisResult<(Option<u64>, Option<String>)> = redis::pipe()
                .get(format!("{base}:offset"))
                .get(format!("{base}:epoch"))
                .query_async(&mut c)
                .await;
            let Ok((Some(current), Some(current_epoch))) = now else {
                continue;
            };
            if current_epoch != epoch || current <= seen {
                continue;
            }
            let entries: redis::RedisResult<redis::streams::StreamRangeReply> = c
                .xrange(
                    format!("{base}:history"),
                    format!("{}-1", seen + 1),
                    format!("{current}-1"),
                )
                .await;
            let Ok(entries) = entries else { continue };
            for e in &entries.ids {
                let offset = stream_entry_offset(&e.id);
                let ev: String = e.get("e").unwrap_or_default();
                let d: String = e.get("d").unwrap_or_default();
                if let Some(frame) = encode_raw(&ev, &d, Some((&stream, offset, &epoch))) {
                    replayed += self.registry.deliver_positioned(
                        owner.target(),
                        &frame,
                        &stream,
                        offset,
                        None,
                    );
                    self.saw(&stream, offset, &epoch);
                }
            }
        }
        if replayed > 0 {
            tracing::info!(
                deliveries = replayed,
                "caught up from history after resubscribing"
            );
        }
    }

    /// Applies one message from this node's channels.
    fn on_message(&self, payload: &str) {
        let msg: BusMsg = match serde_json::from_str(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed bus message");
                return;
            }
        };
        match msg {
            BusMsg::Deliver {
                to,
                client_id,
                user_id,
                tag,
                except,
                event,
                data,
                stream,
                offset,
                epoch,
            } => match (stream, offset, epoch) {
                (Some(stream), Some(offset), Some(epoch)) => {
                    let owner = match to.as_str() {
                        "all" => Some(StreamOwner::All),
                        "user" => user_id.map(|u| StreamOwner::User(UserId(u))),
                        "tag" => tag
                            .as_deref()
                            .and_then(|t| Tag::parse(t).ok())
                            .map(StreamOwner::Tag),
                        _ => None,
                    };
                    let (Some(owner), Some(frame)) = (
                        owner,
                        encode_raw(&event, &data, Some((&stream, offset, &epoch))),
                    ) else {
                        return;
                    };
                    let except = except.as_deref().and_then(ClientId::parse);
                    self.registry.deliver_positioned(
                        owner.target(),
                        &frame,
                        &stream,
                        offset,
                        except.as_ref(),
                    );
                    self.saw(&stream, offset, &epoch);
                }
                _ => {
                    if let (Some(id), Some(frame)) = (
                        client_id.as_deref().and_then(ClientId::parse),
                        encode_raw(&event, &data, None),
                    ) {
                        self.registry.deliver_client(&id, &frame);
                    }
                }
            },
            BusMsg::Attach { id, pos } => {
                let Some(p) = self.attaching.lock().remove(&id) else {
                    return;
                };
                let mut positions = serde_json::Map::new();
                for (stream, offset, epoch) in &pos {
                    p.client.set_stream_mark(stream, *offset);
                    self.saw(stream, *offset, epoch);
                    positions.insert(
                        stream.clone(),
                        serde_json::json!({"offset": offset, "epoch": epoch}),
                    );
                }
                p.client
                    .send_success("connected", &(p.greeting)(Value::Object(positions)));
                self.registry.register(p.client, p.reservation);
                let _ = p.done.send(());
            }
            BusMsg::Ident { id, pos } => {
                let Some(p) = self.identifying.lock().remove(&id) else {
                    return;
                };
                let old = p.client.user_id().map(|u| format!("user:{u}"));
                let res = self.registry.set_identity(&p.client, p.identity);
                if res.is_ok() {
                    if let Some(old) = old {
                        p.client.clear_stream_mark(&old);
                    }
                    for (stream, offset, epoch) in &pos {
                        p.client.set_stream_mark(stream, *offset);
                        self.saw(stream, *offset, epoch);
                    }
                }
                let _ = p.done.send(res);
            }
            BusMsg::Tag {
                id,
                tag,
                join,
                pos,
                req,
            } => {
                if let (Some(cid), Ok(tag)) = (ClientId::parse(&id), Tag::parse(&tag)) {
                    let stream = pos.0;
                    if join {
                        if self.registry.join(&cid, tag).is_ok() {
                            if let Some(c) = self.registry.get(&cid) {
                                c.set_stream_mark(&stream, pos.1);
                            }
                            self.saw(&stream, pos.1, &pos.2);
                        }
                    } else if self.registry.quit(&cid, &tag).is_ok() {
                        if let Some(c) = self.registry.get(&cid) {
                            c.clear_stream_mark(&stream);
                        }
                    }
                }
                if let Some(w) = self.tag_waiters.lock().remove(&req) {
                    let _ = w.send(());
                }
            }
            BusMsg::Close { ids, reason, code } => {
                for id in ids {
                    if let Some(c) = ClientId::parse(&id).and_then(|id| self.registry.get(&id)) {
                        if code == close::KICKED {
                            c.kick(&reason);
                        } else {
                            c.close(code, &reason, true);
                        }
                    }
                }
            }
            BusMsg::Revoked { jti, exp, user_id } => apply_control(
                &self.registry,
                &self.auth,
                &Control::Revoked {
                    jti,
                    exp,
                    user: UserId(user_id),
                },
            ),
            BusMsg::UserChanged {
                user_id,
                close,
                reason,
            } => apply_control(
                &self.registry,
                &self.auth,
                &Control::UserChanged {
                    user: UserId(user_id),
                    close,
                    reason,
                },
            ),
        }
    }

    fn mode(target: &Target) -> (&'static str, String) {
        match target {
            Target::Client(id) => ("client", id.to_string()),
            Target::User(u) => ("user", u.to_string()),
        }
    }
}

fn stream_entry_offset(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl Broker for RedisBackend {
    async fn publish(
        &self,
        audience: &Audience,
        push: &Push,
        except: Option<&ClientId>,
    ) -> Result<usize, NodeError> {
        self.ensure_ready()?;
        let data = serde_json::to_string(&push.data).map_err(unavailable)?;
        let (to, client_id, user_id, tag) = match audience {
            Audience::All => ("all", None, None, None),
            Audience::Client(id) => ("client", Some(id.to_string()), None, None),
            Audience::User(u) => ("user", None, Some(u.0), None),
            Audience::Tag(t) => ("tag", None, None, Some(t.to_string())),
        };
        let Some(stream) = audience.stream() else {
            let Audience::Client(id) = audience else {
                unreachable!("only a single connection has no stream")
            };
            let msg = serde_json::to_string(&BusMsg::Deliver {
                to: to.into(),
                client_id,
                user_id: None,
                tag: None,
                except: None,
                event: push.event.clone(),
                data,
                stream: None,
                offset: None,
                epoch: None,
            })
            .map_err(unavailable)?;
            let n: i64 = self
                .run(
                    scripts::TO_CLIENT
                        .prepare_invoke()
                        .arg(&self.settings.prefix)
                        .arg(id.as_str())
                        .arg(&self.settings.node)
                        .arg(msg),
                )
                .await?;
            return Ok(match n {
                -1 => self
                    .registry
                    .deliver_client(id, &crate::websocket::registry::encode(push, None)),
                n => n.max(0) as usize,
            });
        };
        let value = user_id
            .map(|u| u.to_string())
            .or_else(|| tag.clone())
            .unwrap_or_default();
        let head = serde_json::to_string(&BusMsg::Deliver {
            to: to.into(),
            client_id: None,
            user_id,
            tag,
            except: except.map(|c| c.to_string()),
            event: push.event.clone(),
            data: data.clone(),
            stream: Some(stream.clone()),
            offset: None,
            epoch: None,
        })
        .map_err(unavailable)?;
        let head = &head[..head.len() - 1];
        let base = format!("{}:stream:{stream}", self.settings.prefix);
        let (_, _, n): (u64, String, i64) = self
            .run(
                scripts::PUBLISH
                    .key(format!("{base}:offset"))
                    .key(format!("{base}:epoch"))
                    .key(format!("{base}:history"))
                    .arg(&self.settings.prefix)
                    .arg(crate::websocket::history::new_epoch())
                    .arg(self.settings.history_size)
                    .arg(self.settings.history_ttl.as_millis() as u64)
                    .arg(META_TTL.as_millis() as u64)
                    .arg(&push.event)
                    .arg(&data)
                    .arg(to)
                    .arg(value)
                    .arg(except.map(|c| c.as_str()).unwrap_or(""))
                    .arg(head),
            )
            .await?;
        Ok(n.max(0) as usize)
    }

    async fn recover(&self, client: &Client, req: RecoverRequest) -> Result<Value, EventError> {
        req.check()?;
        let mut reply = RecoverReply::default();
        let mut c = self.conn();
        for (stream, from) in req.streams {
            if !LocalHub::may_read_stream(client, &stream) {
                reply.forbid(stream);
                continue;
            }
            let base = format!("{}:stream:{stream}", self.settings.prefix);
            let now: redis::RedisResult<(Option<u64>, Option<String>)> = redis::pipe()
                .get(format!("{base}:offset"))
                .get(format!("{base}:epoch"))
                .query_async(&mut c)
                .await;
            let (current, epoch) = match now {
                Ok((o, e)) => (o.unwrap_or(0), e),
                Err(e) => {
                    client.outbox().release();
                    return Err(EventError::new(
                        code::INTERNAL,
                        format!("the cluster is unavailable: {e}"),
                    ));
                }
            };
            let until = client.stream_mark(&stream).unwrap_or(current).min(current);
            let ok = if epoch.as_deref() != Some(from.epoch.as_str()) || from.offset > current {
                false
            } else if from.offset >= until {
                true
            } else {
                let start = format!("{}-1", from.offset + 1);
                let end = format!("{until}-1");
                let range: redis::RedisResult<redis::streams::StreamRangeReply> =
                    c.xrange(format!("{base}:history"), &start, &end).await;
                match range {
                    Ok(r)
                        if r.ids.len() as u64 == until - from.offset
                            && r.ids.first().is_some_and(|e| e.id == start) =>
                    {
                        let min_ms =
                            unix_now() * 1000 - self.settings.history_ttl.as_millis() as i64;
                        let fresh = r
                            .ids
                            .iter()
                            .all(|e| e.get::<i64>("t").is_none_or(|t| t >= min_ms));
                        if fresh {
                            for e in &r.ids {
                                let ev: String = e.get("e").unwrap_or_default();
                                let d: String = e.get("d").unwrap_or_default();
                                let pos = (
                                    stream.as_str(),
                                    stream_entry_offset(&e.id),
                                    from.epoch.as_str(),
                                );
                                if let Some(f) = encode_raw(&ev, &d, Some(pos)) {
                                    client.send_frame(f);
                                }
                            }
                        }
                        fresh
                    }
                    _ => false,
                }
            };
            reply.set(stream, ok);
        }
        // Replays are queued; held live pushes follow them, in order.
        client.outbox().release();
        Ok(reply.into_value())
    }

    async fn control(&self, msg: Control) -> Result<(), NodeError> {
        let bus = match &msg {
            Control::Revoked { jti, exp, user } => BusMsg::Revoked {
                jti: jti.clone(),
                exp: *exp,
                user_id: user.0,
            },
            Control::UserChanged {
                user,
                close,
                reason,
            } => BusMsg::UserChanged {
                user_id: user.0,
                close: *close,
                reason: reason.clone(),
            },
        };
        let body = serde_json::to_string(&bus).map_err(unavailable)?;
        let mut c = self.conn();
        let sent: redis::RedisResult<()> = c.publish(self.key("all"), body).await;
        if let Err(e) = sent {
            self.set_reachable(false);
            // This node's own sockets still get it.
            apply_control(&self.registry, &self.auth, &msg);
            return Err(unavailable(e));
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        self.reachable.load(Ordering::Relaxed) && self.subscribed.load(Ordering::Acquire)
    }

    async fn check(&self) -> bool {
        let mut c = self.conn();
        let ok = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        self.set_reachable(ok);
        ok && self.is_ready()
    }

    fn is_clustered(&self) -> bool {
        true
    }
}

#[async_trait]
impl Presence for RedisBackend {
    async fn attach(&self, attach: Attach, greeting: Greeting) -> Result<(), NodeError> {
        self.ensure_ready()?;
        let client = attach.client.clone();
        let id = client.id().to_string();
        let (tx, rx) = oneshot::channel();
        self.attaching.lock().insert(
            id.clone(),
            PendingAttach {
                client: attach.client,
                reservation: attach.reservation,
                greeting,
                done: tx,
            },
        );
        let mut inv = scripts::ATTACH.prepare_invoke();
        inv.arg(&self.settings.prefix)
            .arg(&self.settings.node)
            .arg(&id)
            .arg(client.info().first_time)
            .arg(Self::row_json(&client))
            .arg(client.user_id().map(|u| u.to_string()).unwrap_or_default())
            .arg(self.settings.max_per_user)
            .arg(crate::websocket::history::new_epoch())
            .arg(META_TTL.as_millis() as u64)
            .arg(token_of(&client).unwrap_or_default())
            .arg("all");
        if let Some(u) = client.user_id() {
            inv.arg(format!("user:{u}"));
        }
        let res: Result<Vec<String>, NodeError> = self.run(&inv).await;
        match res {
            Ok(v) if v.first().map(String::as_str) == Some("ok") => {}
            Ok(_) => {
                self.attaching.lock().remove(&id);
                return Err(NodeError::Limit(LimitError::PerUser));
            }
            Err(e) => {
                self.attaching.lock().remove(&id);
                return Err(e);
            }
        }
        if tokio::time::timeout(APPLY_TIMEOUT, rx).await.is_err() {
            self.attaching.lock().remove(&id);
            self.detach(&client).await;
            return Err(NodeError::Unavailable(
                "this node's Redis subscription did not deliver in time".into(),
            ));
        }
        Ok(())
    }

    async fn detach(&self, client: &Client) {
        let res: Result<i64, NodeError> = self
            .run(
                scripts::DETACH
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(&self.settings.node)
                    .arg(client.id().as_str()),
            )
            .await;
        if res.is_err() {
            // Swept with the node's lease if Redis stays away; removed at once when it is
            // back and this node resynchronises by closing what it cannot vouch for.
            tracing::debug!(client = %client.id(), "presence removal deferred: Redis unreachable");
        }
    }

    async fn identify(&self, client: &Arc<Client>, identity: Identity) -> Result<(), NodeError> {
        self.ensure_ready()?;
        let Some(user) = identity.user_id else {
            self.registry.set_identity(client, identity)?;
            return Ok(());
        };
        let id = client.id().to_string();
        let jti = match &identity.credential {
            switchboard_sdk::Credential::Token { jti, .. } => jti.clone(),
            switchboard_sdk::Credential::ApiKey { .. } => String::new(),
        };
        let mut row = Row::of(client);
        row.tags.clear();
        row.user_id = Some(user.0);
        row.username = identity.username.clone();
        let (tx, rx) = oneshot::channel();
        self.identifying.lock().insert(
            id.clone(),
            PendingIdent {
                client: client.clone(),
                identity,
                done: tx,
            },
        );
        let res: Result<Vec<String>, NodeError> = self
            .run(
                scripts::IDENTIFY
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(&self.settings.node)
                    .arg(&id)
                    .arg(serde_json::to_string(&row).unwrap_or_default())
                    .arg(user.to_string())
                    .arg(self.settings.max_per_user)
                    .arg(crate::websocket::history::new_epoch())
                    .arg(META_TTL.as_millis() as u64)
                    .arg(jti),
            )
            .await;
        let outcome = match res {
            Ok(v) => match v.first().map(String::as_str) {
                Some("ok") => None,
                Some("per_user") => Some(NodeError::Limit(LimitError::PerUser)),
                _ => Some(NodeError::Unavailable("the connection is gone".into())),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = outcome {
            self.identifying.lock().remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(APPLY_TIMEOUT, rx).await {
            Ok(Ok(res)) => Ok(res?),
            _ => {
                self.identifying.lock().remove(&id);
                Err(NodeError::Unavailable(
                    "this node's Redis subscription did not deliver in time".into(),
                ))
            }
        }
    }

    async fn change_tag(&self, join: bool, target: &Target, tag: &Tag) -> Result<usize, NodeError> {
        self.ensure_ready()?;
        let (mode, value) = Self::mode(target);
        let req = self.new_req();
        // A change to one of our own connections is applied by our subscription, in order
        // with the pushes; wait for it so the caller sees it done.
        let own = match target {
            Target::Client(id) => self.registry.get(id).is_some(),
            Target::User(_) => false,
        };
        let rx = own.then(|| {
            let (tx, rx) = oneshot::channel();
            self.tag_waiters.lock().insert(req.clone(), tx);
            rx
        });
        let res: Result<Vec<String>, NodeError> = self
            .run(
                scripts::TAG
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(mode)
                    .arg(value)
                    .arg(tag.as_str())
                    .arg(if join { "1" } else { "0" })
                    .arg(self.settings.max_tags)
                    .arg(crate::websocket::history::new_epoch())
                    .arg(META_TTL.as_millis() as u64)
                    .arg(&req),
            )
            .await;
        let changed = match res {
            Ok(v) if v.first().map(String::as_str) == Some("ok") => {
                v.get(1).and_then(|n| n.parse().ok()).unwrap_or(0)
            }
            Ok(_) => {
                self.tag_waiters.lock().remove(&req);
                return Err(NodeError::TooManyTags(self.settings.max_tags));
            }
            Err(e) => {
                self.tag_waiters.lock().remove(&req);
                return Err(e);
            }
        };
        match rx {
            Some(rx) if changed > 0 => {
                if tokio::time::timeout(APPLY_TIMEOUT, rx).await.is_err() {
                    self.tag_waiters.lock().remove(&req);
                }
            }
            _ => {
                self.tag_waiters.lock().remove(&req);
            }
        }
        Ok(changed)
    }

    async fn disconnect(
        &self,
        target: &Target,
        how: &Disconnect,
    ) -> Result<KickOutcome, NodeError> {
        self.ensure_ready()?;
        let (mode, value) = Self::mode(target);
        let v: Vec<String> = self
            .run(
                scripts::DISCONNECT
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(mode)
                    .arg(value)
                    .arg(serde_json::to_string(&how.reason).unwrap_or_else(|_| "\"\"".into()))
                    .arg(how.code)
                    .arg(how.token.as_deref().unwrap_or("")),
            )
            .await?;
        Ok(KickOutcome {
            closed: v.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
            users: v
                .iter()
                .skip(2)
                .filter_map(|u| u.parse().ok().map(UserId))
                .collect(),
        })
    }

    async fn online(&self, q: &OnlineQuery) -> Result<OnlinePage, NodeError> {
        self.ensure_ready()?;
        let v: Vec<String> = self
            .run(
                scripts::ONLINE
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(q.user.map(|u| u.to_string()).unwrap_or_default())
                    .arg(q.tag.as_ref().map(|t| t.as_str()).unwrap_or(""))
                    .arg(q.username.as_deref().unwrap_or(""))
                    .arg(q.ip.as_deref().unwrap_or(""))
                    .arg(q.offset())
                    .arg(q.page_size),
            )
            .await?;
        let total = v.first().and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut rows = Vec::new();
        for chunk in v[1.min(v.len())..].chunks(3) {
            let [row, tags, hb] = chunk else { continue };
            let Ok(mut row) = serde_json::from_str::<Row>(row) else {
                continue;
            };
            let mut tags: Vec<String> = tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            tags.sort();
            row.tags = tags;
            if let Ok(hb) = hb.parse() {
                row.heartbeat_time = hb;
            }
            // Our own connections: the freshest heartbeat is in memory.
            if let Some(c) = ClientId::parse(&row.id).and_then(|id| self.registry.get(&id)) {
                row.heartbeat_time = c.heartbeat_time();
            }
            rows.push(row);
        }
        Ok(OnlinePage { rows, total })
    }

    async fn counts(&self) -> Result<Counts, NodeError> {
        self.ensure_ready()?;
        let mut c = self.conn();
        let res: redis::RedisResult<(usize, usize, usize)> = redis::pipe()
            .zcard(self.key("online"))
            .hlen(self.key("users"))
            .zcard(self.key("tags"))
            .query_async(&mut c)
            .await;
        let (connections, users, tags) = res.map_err(|e| {
            self.set_reachable(false);
            unavailable(e)
        })?;
        Ok(Counts {
            connections,
            users,
            tags,
        })
    }

    async fn tag_counts(&self) -> Result<Vec<(String, usize)>, NodeError> {
        self.ensure_ready()?;
        let mut c = self.conn();
        let res: redis::RedisResult<Vec<(String, f64)>> =
            c.zrange_withscores(self.key("tags"), 0, -1).await;
        let mut v: Vec<(String, usize)> = res
            .map_err(|e| {
                self.set_reachable(false);
                unavailable(e)
            })?
            .into_iter()
            .map(|(t, n)| (t, n.max(0.0) as usize))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort();
        Ok(v)
    }
}
