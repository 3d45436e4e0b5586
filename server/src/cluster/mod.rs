//! Cluster mode (SPEC §8): nodes share one Redis. Sends, kicks, tag changes and revocations
//! go over a pub/sub bus that every node applies to its own sockets, answering with counts so
//! `delivered`/`closed` are cluster-wide; stream offsets and history live in Redis; each node
//! publishes its connections (presence, with a TTL) for the cluster-wide online list; a
//! consumer group drains the `queue` stream. When Redis is unreachable a node keeps serving its
//! own sockets, reports not-ready, retries with backoff and resynchronises when it returns.

pub mod bus;
pub mod presence;
pub mod queue;
pub mod streams;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_sdk::event::EventError;
use switchboard_sdk::outbox::Outbound;
use switchboard_sdk::protocol::{Push, close, code, unix_millis, unix_now};
use switchboard_sdk::{Client, ClientId, Hub, Tag, UserId};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::bus::{BusMsg, Reply, Target};
use self::streams::{PUBLISH, StreamKeys};
use crate::auth::AuthService;
use crate::websocket::LocalHub;
use crate::websocket::hub::{ALL_STREAM, RecoverReply, RecoverRequest, tag_stream, user_stream};
use crate::websocket::registry::LocalTarget;

/// How long a sender waits for other nodes' counts.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// A node is alive while its heartbeat is younger than this.
const NODE_TTL: Duration = Duration::from_secs(15);
/// Node heartbeat period.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// Stream epoch/offset keys outlive their history by this much.
const META_TTL: Duration = Duration::from_secs(24 * 3600);

/// Settings of the cluster layer.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
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
    /// Queue entries pending this long on a consumer are claimed by another node.
    pub queue_claim_idle: Duration,
}

struct Pending {
    total: u64,
    nodes: Vec<String>,
}

/// The cluster layer of one node.
pub struct Cluster {
    settings: ClusterSettings,
    client: redis::Client,
    conn: ConnectionManager,
    local: Arc<LocalHub>,
    auth: Arc<AuthService>,
    pending: Mutex<HashMap<String, Pending>>,
    waiters: Mutex<HashMap<String, mpsc::UnboundedSender<()>>>,
    next_req: AtomicU64,
    ready: AtomicBool,
    bus_up: AtomicBool,
    nodes_cache: Mutex<Option<(Instant, Vec<String>)>>,
    presence: presence::Presence,
}

fn epoch_candidate() -> String {
    crate::websocket::history::new_epoch()
}

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

/// Encodes a push whose data is raw JSON text (from the bus or Redis history).
fn encode_raw(event: &str, data: &str, pos: Option<(&str, u64, &str)>) -> Option<Outbound> {
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

impl Cluster {
    /// Connects to Redis and starts the bus subscriber, heartbeat, presence writer and queue
    /// consumer. Fails when Redis cannot be reached at start.
    pub async fn start(
        settings: ClusterSettings,
        local: Arc<LocalHub>,
        auth: Arc<AuthService>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> anyhow::Result<Arc<Cluster>> {
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
        let presence = presence::Presence::new(&settings.prefix, &settings.node);
        auth.share_login_limit(crate::auth::service::SharedLimiter::new(
            conn.clone(),
            &settings.prefix,
            auth.config().login_max_failures,
        ));
        let cluster = Arc::new(Cluster {
            settings,
            client,
            conn,
            local,
            auth,
            pending: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(0),
            ready: AtomicBool::new(true),
            bus_up: AtomicBool::new(false),
            nodes_cache: Mutex::new(None),
            presence,
        });
        cluster.heartbeat_once().await;
        {
            let c = cluster.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { c.run_bus(stop).await });
        }
        {
            let c = cluster.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { c.run_heartbeat(stop).await });
        }
        {
            let c = cluster.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { presence::run(c, stop).await });
        }
        {
            let c = cluster.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move { queue::run(c, stop).await });
        }
        // Wait briefly for the bus subscription so our own first sends are seen locally.
        for _ in 0..50 {
            if cluster.bus_up.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(cluster)
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.settings.prefix)
    }

    fn bus_channel(&self) -> String {
        self.key("bus")
    }

    fn reply_channel(&self, node: &str) -> String {
        self.key(&format!("reply:{node}"))
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// The local hub.
    pub fn local(&self) -> &Arc<LocalHub> {
        &self.local
    }

    /// Whether Redis is reachable (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.bus_up.load(Ordering::Relaxed)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn set_ready(&self, ok: bool) {
        let was = self.ready.swap(ok, Ordering::Relaxed);
        if was != ok {
            if ok {
                tracing::info!("redis reachable again; cluster mode resumed");
                self.presence.mark_dirty();
            } else {
                tracing::warn!("redis unreachable; serving local sockets only until it returns");
            }
        }
    }

    /// Checks Redis now.
    pub async fn ping(&self) -> bool {
        let mut c = self.conn();
        let ok = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        self.set_ready(ok);
        ok
    }

    async fn heartbeat_once(&self) {
        let mut c = self.conn();
        let now = unix_millis() as f64;
        let res: redis::RedisResult<()> = redis::pipe()
            .zadd(self.key("nodes"), &self.settings.node, now)
            .ignore()
            .zrembyscore(
                self.key("nodes"),
                0f64,
                now - 10.0 * NODE_TTL.as_millis() as f64,
            )
            .ignore()
            .query_async(&mut c)
            .await;
        self.set_ready(res.is_ok());
    }

    async fn run_heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let mut c = self.conn();
                    let _: redis::RedisResult<()> = c.zrem(self.key("nodes"), &self.settings.node).await;
                    return;
                }
                _ = tick.tick() => self.heartbeat_once().await,
            }
        }
    }

    /// Live nodes (cached for a second).
    pub async fn nodes(&self) -> Vec<String> {
        if let Some((at, nodes)) = &*self.nodes_cache.lock() {
            if at.elapsed() < Duration::from_secs(1) {
                return nodes.clone();
            }
        }
        let now = unix_millis() as f64;
        let mut c = self.conn();
        let nodes: Vec<String> = c
            .zrangebyscore(self.key("nodes"), now - NODE_TTL.as_millis() as f64, "+inf")
            .await
            .unwrap_or_else(|_| vec![self.settings.node.clone()]);
        *self.nodes_cache.lock() = Some((Instant::now(), nodes.clone()));
        nodes
    }

    /// Subscribes to the bus and this node's reply channel; reconnects with backoff.
    async fn run_bus(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if stop.is_cancelled() {
                return;
            }
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    let subscribed = pubsub.subscribe(self.bus_channel()).await.is_ok()
                        && pubsub
                            .subscribe(self.reply_channel(&self.settings.node))
                            .await
                            .is_ok();
                    if subscribed {
                        backoff = Duration::from_millis(100);
                        self.bus_up.store(true, Ordering::Relaxed);
                        self.set_ready(true);
                        let mut messages = pubsub.on_message();
                        loop {
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                msg = messages.next() => match msg {
                                    Some(m) => {
                                        let channel = m.get_channel_name().to_string();
                                        let Ok(payload) = m.get_payload::<String>() else { continue };
                                        if channel == self.bus_channel() {
                                            self.on_bus(&payload).await;
                                        } else {
                                            self.on_reply(&payload);
                                        }
                                    }
                                    None => break,
                                }
                            }
                        }
                    }
                    self.bus_up.store(false, Ordering::Relaxed);
                    self.set_ready(false);
                }
                Err(_) => self.set_ready(false),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn on_reply(&self, payload: &str) {
        let Ok(r) = serde_json::from_str::<Reply>(payload) else {
            return;
        };
        let done = {
            let mut pending = self.pending.lock();
            match pending.get_mut(&r.req) {
                Some(p) => {
                    p.total += r.n;
                    p.nodes.push(r.node);
                    true
                }
                None => false,
            }
        };
        if done {
            if let Some(w) = self.waiters.lock().get(&r.req) {
                let _ = w.send(());
            }
        }
    }

    async fn reply(&self, req: Option<String>, origin: &str, n: usize) {
        let Some(req) = req else { return };
        let body = serde_json::to_string(&Reply {
            req,
            node: self.settings.node.clone(),
            n: n as u64,
        })
        .unwrap_or_default();
        let mut c = self.conn();
        let _: redis::RedisResult<()> = c.publish(self.reply_channel(origin), body).await;
    }

    /// Applies one bus message to local sockets.
    async fn on_bus(&self, payload: &str) {
        let msg: BusMsg = match serde_json::from_str(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed bus message");
                return;
            }
        };
        match msg {
            BusMsg::Deliver {
                req,
                origin,
                target,
                event,
                data,
                stream,
                offset,
                epoch,
            } => {
                let n = self.deliver_local(
                    &target,
                    &event,
                    &data,
                    stream.as_deref(),
                    offset,
                    epoch.as_deref(),
                );
                self.reply(req, &origin, n).await;
            }
            BusMsg::Kick {
                req,
                origin,
                client_id,
                user_id,
                reason,
            } => {
                let n = self
                    .local_targets(client_id.as_deref(), user_id)
                    .iter()
                    .filter(|c| c.kick(&reason))
                    .count();
                self.reply(Some(req), &origin, n).await;
            }
            BusMsg::Tag {
                req,
                origin,
                join,
                client_id,
                user_id,
                tag,
            } => {
                let mut n = 0;
                if let Ok(tag) = Tag::parse(&tag) {
                    for c in self.local_targets(client_id.as_deref(), user_id) {
                        let ok = if join {
                            self.local.join(c.id(), tag.clone()).is_ok()
                        } else {
                            c.tags_mut().contains(&tag) && self.local.quit(c.id(), &tag).is_ok()
                        };
                        if ok {
                            n += 1;
                        }
                    }
                }
                self.presence.mark_dirty();
                self.reply(Some(req), &origin, n).await;
            }
            BusMsg::Revoke { jti, exp, user_id } => {
                self.auth.remember_revoked(&jti, exp);
                self.local.registry().close_token(
                    UserId(user_id),
                    &jti,
                    close::TOKEN_REVOKED,
                    "logged out",
                );
            }
            BusMsg::User {
                user_id,
                close,
                reason,
            } => {
                self.auth.invalidate_user(user_id);
                if let Some(code) = close {
                    self.local.registry().close_user(
                        UserId(user_id),
                        code,
                        reason.as_deref().unwrap_or("credentials changed"),
                    );
                }
            }
        }
    }

    fn local_targets(&self, client_id: Option<&str>, user_id: Option<i64>) -> Vec<Arc<Client>> {
        let reg = self.local.registry();
        match (client_id.and_then(ClientId::parse), user_id) {
            (Some(id), _) => reg.get(&id).into_iter().collect(),
            (None, Some(u)) => reg.user_clients(UserId(u)),
            _ => Vec::new(),
        }
    }

    fn deliver_local(
        &self,
        target: &Target,
        event: &str,
        data: &str,
        stream: Option<&str>,
        offset: Option<u64>,
        epoch: Option<&str>,
    ) -> usize {
        let reg = self.local.registry();
        match (stream, offset, epoch) {
            (Some(stream), Some(offset), Some(epoch)) => {
                let Some(frame) = encode_raw(event, data, Some((stream, offset, epoch))) else {
                    return 0;
                };
                let tag;
                let local_target = match target {
                    Target::All => LocalTarget::All,
                    Target::User { user_id } => LocalTarget::User(UserId(*user_id)),
                    Target::Tag { tag: t, .. } => match Tag::parse(t) {
                        Ok(t) => {
                            tag = t;
                            LocalTarget::Tag(&tag)
                        }
                        Err(_) => return 0,
                    },
                    Target::Client { .. } => return 0,
                };
                let except = match target {
                    Target::Tag { except, .. } => except.as_deref().and_then(ClientId::parse),
                    _ => None,
                };
                // Observe and deliver under the stream's lock, like a local publish.
                let mut g = self.local.history().lock(stream);
                g.observe(stream, offset, epoch);
                let n =
                    reg.deliver_positioned(local_target, &frame, stream, offset, except.as_ref());
                drop(g);
                n
            }
            _ => {
                let Some(frame) = encode_raw(event, data, None) else {
                    return 0;
                };
                match target {
                    Target::Client { client_id } => match ClientId::parse(client_id) {
                        Some(id) => reg.deliver_client(&id, &frame),
                        None => 0,
                    },
                    _ => 0,
                }
            }
        }
    }

    fn new_request(&self) -> (String, mpsc::UnboundedReceiver<()>) {
        let req = format!(
            "{}:{}",
            self.settings.node,
            self.next_req.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = mpsc::unbounded_channel();
        self.pending.lock().insert(
            req.clone(),
            Pending {
                total: 0,
                nodes: Vec::new(),
            },
        );
        self.waiters.lock().insert(req.clone(), tx);
        (req, rx)
    }

    /// Waits until every live node answered `req` (or the timeout) and returns the sum.
    async fn collect(&self, req: &str, mut rx: mpsc::UnboundedReceiver<()>) -> usize {
        let nodes = self.nodes().await;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            let answered = self
                .pending
                .lock()
                .get(req)
                .map(|p| nodes.iter().all(|n| p.nodes.contains(n)))
                .unwrap_or(true);
            if answered {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(())) => continue,
                _ => break,
            }
        }
        self.waiters.lock().remove(req);
        self.pending
            .lock()
            .remove(req)
            .map(|p| p.total as usize)
            .unwrap_or(0)
    }

    async fn publish(&self, msg: &BusMsg) -> bool {
        let body = match serde_json::to_string(msg) {
            Ok(b) => b,
            Err(_) => return false,
        };
        let mut c = self.conn();
        let ok = c
            .publish::<_, _, ()>(self.bus_channel(), body)
            .await
            .is_ok();
        self.set_ready(ok);
        ok
    }

    /// A bus request answered with counts by every node; `None` when Redis is unreachable.
    async fn request(&self, build: impl FnOnce(String) -> BusMsg) -> Option<usize> {
        let (req, rx) = self.new_request();
        let msg = build(req.clone());
        if !self.publish(&msg).await {
            self.waiters.lock().remove(&req);
            self.pending.lock().remove(&req);
            return None;
        }
        Some(self.collect(&req, rx).await)
    }

    /// Sends a stream push through Redis (offset, history, bus) and returns the cluster-wide
    /// count; `None` when Redis is unreachable.
    async fn stream_send(&self, target: Target, stream: &str, push: &Push) -> Option<usize> {
        let data = serde_json::to_string(&push.data).ok()?;
        let (req, rx) = self.new_request();
        let head = serde_json::to_string(&BusMsg::Deliver {
            req: Some(req.clone()),
            origin: self.settings.node.clone(),
            target,
            event: push.event.clone(),
            data: data.clone(),
            stream: Some(stream.to_string()),
            offset: None,
            epoch: None,
        })
        .ok()?;
        let head = &head[..head.len() - 1];
        let keys = StreamKeys::new(&self.settings.prefix, stream);
        let mut c = self.conn();
        let res: redis::RedisResult<(u64, String)> = PUBLISH
            .key(&keys.offset)
            .key(&keys.epoch)
            .key(&keys.history)
            .arg(epoch_candidate())
            .arg(self.settings.history_size)
            .arg(self.settings.history_ttl.as_millis() as u64)
            .arg(META_TTL.as_millis() as u64)
            .arg(&push.event)
            .arg(&data)
            .arg(self.bus_channel())
            .arg(head)
            .invoke_async(&mut c)
            .await;
        if let Err(e) = res {
            tracing::debug!(error = %e, "stream publish failed");
            self.set_ready(false);
            self.waiters.lock().remove(&req);
            self.pending.lock().remove(&req);
            return None;
        }
        Some(self.collect(&req, rx).await)
    }

    /// `publish` from a client: the tag stream, optionally skipping the sender.
    pub async fn publish_tag(&self, tag: &Tag, push: &Push, except: Option<&ClientId>) -> usize {
        let target = Target::Tag {
            tag: tag.to_string(),
            except: except.map(|c| c.to_string()),
        };
        match self.stream_send(target, &tag_stream(tag), push).await {
            Some(n) => n,
            None => self.local.publish_tag(tag, push, except),
        }
    }

    /// Kicks across the cluster; returns how many sockets were closed.
    pub async fn kick(
        &self,
        client_id: Option<String>,
        user_id: Option<i64>,
        reason: &str,
    ) -> usize {
        let origin = self.settings.node.clone();
        let reason_owned = reason.to_string();
        let (cid, uid) = (client_id.clone(), user_id);
        match self
            .request(move |req| BusMsg::Kick {
                req,
                origin,
                client_id: cid,
                user_id: uid,
                reason: reason_owned,
            })
            .await
        {
            Some(n) => n,
            None => self
                .local_targets(client_id.as_deref(), user_id)
                .iter()
                .filter(|c| c.kick(reason))
                .count(),
        }
    }

    /// Server-side tag membership across the cluster; returns connections changed.
    pub async fn tag(
        &self,
        join: bool,
        client_id: Option<String>,
        user_id: Option<i64>,
        tag: &Tag,
    ) -> usize {
        let origin = self.settings.node.clone();
        let t = tag.to_string();
        let (cid, uid) = (client_id.clone(), user_id);
        match self
            .request(move |req| BusMsg::Tag {
                req,
                origin,
                join,
                client_id: cid,
                user_id: uid,
                tag: t,
            })
            .await
        {
            Some(n) => n,
            None => {
                let mut n = 0;
                for c in self.local_targets(client_id.as_deref(), user_id) {
                    let ok = if join {
                        self.local.join(c.id(), tag.clone()).is_ok()
                    } else {
                        self.local.quit(c.id(), tag).is_ok()
                    };
                    n += ok as usize;
                }
                n
            }
        }
    }

    /// Tells every node a token was revoked.
    pub async fn revoked(&self, jti: &str, exp: i64, user_id: i64) {
        let msg = BusMsg::Revoke {
            jti: jti.to_string(),
            exp,
            user_id,
        };
        if !self.publish(&msg).await {
            self.local.registry().close_token(
                UserId(user_id),
                jti,
                close::TOKEN_REVOKED,
                "logged out",
            );
        }
    }

    /// Tells every node a user changed; `close` closes their sockets with that code.
    pub async fn user_changed(&self, user_id: i64, close: Option<u16>, reason: &str) {
        let msg = BusMsg::User {
            user_id,
            close,
            reason: Some(reason.to_string()),
        };
        if !self.publish(&msg).await {
            if let Some(code) = close {
                self.local
                    .registry()
                    .close_user(UserId(user_id), code, reason);
            }
        }
    }

    /// Makes sure this node knows where `streams` stand before a connection starts receiving
    /// them (a node started after traffic began learns the epochs from Redis).
    pub async fn prime(&self, streams: &[String]) {
        let unknown: Vec<&String> = streams
            .iter()
            .filter(|s| !self.local.history().lock(s).is_known(s))
            .collect();
        if unknown.is_empty() {
            return;
        }
        let mut c = self.conn();
        for s in unknown {
            let keys = StreamKeys::new(&self.settings.prefix, s);
            let got: redis::RedisResult<(Option<u64>, Option<String>)> = redis::pipe()
                .get(&keys.offset)
                .get(&keys.epoch)
                .query_async(&mut c)
                .await;
            match got {
                Ok((offset, Some(epoch))) => {
                    self.local
                        .history()
                        .lock(s)
                        .observe(s, offset.unwrap_or(0), &epoch);
                }
                Ok((_, None)) => {
                    // A stream nobody has used: create its epoch now so every node agrees.
                    let candidate = epoch_candidate();
                    let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                        .arg(&keys.epoch)
                        .arg(&candidate)
                        .arg("NX")
                        .arg("GET")
                        .arg("PX")
                        .arg(META_TTL.as_millis() as u64)
                        .query_async(&mut c)
                        .await;
                    if let Ok(prev) = set {
                        let epoch = prev.unwrap_or(candidate);
                        self.local.history().lock(s).observe(s, 0, &epoch);
                    }
                }
                Err(_) => self.set_ready(false),
            }
        }
    }

    /// `recover` in cluster mode: replays from Redis what the client missed on each stream.
    pub async fn recover(&self, client: &Client, req: RecoverRequest) -> Result<Value, EventError> {
        req.check()?;
        let mut reply = RecoverReply::default();
        let mut c = self.conn();
        for (stream, from) in req.streams {
            if !LocalHub::may_read_stream(client, &stream) {
                reply.forbid(stream);
                continue;
            }
            let keys = StreamKeys::new(&self.settings.prefix, &stream);
            let epoch: Option<String> = c.get(&keys.epoch).await.ok().flatten();
            let current: u64 = c
                .get::<_, Option<u64>>(&keys.offset)
                .await
                .ok()
                .flatten()
                .unwrap_or(0);
            let until = client.stream_mark(&stream).unwrap_or(current).min(current);
            let ok = if epoch.as_deref() != Some(from.epoch.as_str()) || from.offset > current {
                false
            } else if from.offset >= until {
                true
            } else {
                let start = format!("{}-1", from.offset + 1);
                let end = format!("{until}-1");
                let reply: redis::RedisResult<redis::streams::StreamRangeReply> =
                    c.xrange(&keys.history, &start, &end).await;
                match reply {
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
                            let epoch = from.epoch.clone();
                            for e in &r.ids {
                                let offset: u64 =
                                    e.id.split('-')
                                        .next()
                                        .and_then(|o| o.parse().ok())
                                        .unwrap_or(0);
                                let ev: String = e.get("e").unwrap_or_default();
                                let d: String = e.get("d").unwrap_or_default();
                                if let Some(f) =
                                    encode_raw(&ev, &d, Some((&stream, offset, &epoch)))
                                {
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
        client.outbox().release();
        Ok(reply.into_value())
    }

    /// Applies a queue command; `Err` is the reason it is dead-lettered.
    pub async fn execute(&self, cmd: bus::QueueCommand) -> Result<usize, String> {
        if cmd.event.is_empty() || cmd.event.len() > switchboard_sdk::protocol::MAX_EVENT_LEN {
            return Err("event must be 1-128 bytes".into());
        }
        let push = Push::new(cmd.event, cmd.data.unwrap_or(Value::Null));
        match cmd.to.as_str() {
            "all" => Ok(self.send_to_all(push).await),
            "user" => {
                let u = cmd.user_id.ok_or("userId is required for to=user")?;
                Ok(self.send_to_user(UserId(u), push).await)
            }
            "tag" => {
                let t = cmd.tag.ok_or("tag is required for to=tag")?;
                let tag = Tag::parse(&t).map_err(|e| format!("tag: {e}"))?;
                Ok(self.send_to_tag(&tag, push).await)
            }
            "client" => {
                let id = cmd.client_id.ok_or("clientId is required for to=client")?;
                let id = ClientId::parse(&id).ok_or("clientId is not a client id")?;
                Ok(self.send_to_client(&id, push).await)
            }
            other => Err(format!(
                "to must be all, client, user or tag (got `{other}`)"
            )),
        }
    }

    /// Presence rows of every live node (this node's straight from memory).
    pub async fn online_rows(&self) -> Vec<presence::Row> {
        let mut rows: Vec<presence::Row> = self
            .local
            .registry()
            .all()
            .iter()
            .map(|c| presence::Row::of(c))
            .collect();
        let nodes = self.nodes().await;
        let mut c = self.conn();
        for n in nodes.iter().filter(|n| **n != self.settings.node) {
            let map: HashMap<String, String> =
                c.hgetall(self.presence.key_of(n)).await.unwrap_or_default();
            rows.extend(map.values().filter_map(|v| serde_json::from_str(v).ok()));
        }
        rows
    }
}

#[async_trait]
impl Hub for Cluster {
    async fn send_to_all(&self, push: Push) -> usize {
        match self.stream_send(Target::All, ALL_STREAM, &push).await {
            Some(n) => n,
            None => self.local.send_to_all(push).await,
        }
    }

    async fn send_to_client(&self, id: &ClientId, push: Push) -> usize {
        let Ok(data) = serde_json::to_string(&push.data) else {
            return 0;
        };
        let origin = self.settings.node.clone();
        let target = Target::Client {
            client_id: id.to_string(),
        };
        let event = push.event.clone();
        match self
            .request(move |req| BusMsg::Deliver {
                req: Some(req),
                origin,
                target,
                event,
                data,
                stream: None,
                offset: None,
                epoch: None,
            })
            .await
        {
            Some(n) => n,
            None => self.local.send_to_client(id, push).await,
        }
    }

    async fn send_to_user(&self, user: UserId, push: Push) -> usize {
        let target = Target::User { user_id: user.0 };
        match self.stream_send(target, &user_stream(user), &push).await {
            Some(n) => n,
            None => self.local.send_to_user(user, push).await,
        }
    }

    async fn send_to_tag(&self, tag: &Tag, push: Push) -> usize {
        self.publish_tag(tag, &push, None).await
    }

    fn client(&self, id: &ClientId) -> Option<Arc<Client>> {
        self.local.client(id)
    }

    fn user_clients(&self, user: UserId) -> Vec<Arc<Client>> {
        self.local.user_clients(user)
    }

    fn node_id(&self) -> &str {
        &self.settings.node
    }
}
