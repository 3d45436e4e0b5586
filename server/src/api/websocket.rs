//! `/api/websocket/*`: send, online list, kick, server-side tags, stats (operator role or
//! API key). Every send and kick is audit-logged with who, target and count.

use std::sync::Arc;

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use switchboard_sdk::api::{ApiAuth, ApiError, Delivered};
use switchboard_sdk::protocol::{MAX_EVENT_LEN, Push, close};
use switchboard_sdk::{Client, ClientId, Role, Tag, UserId};

use super::{ApiTags, AppState};
use crate::cluster::presence::Row;

fn check_event(event: &str) -> Result<(), ApiError> {
    if event.is_empty() || event.len() > MAX_EVENT_LEN {
        return Err(ApiError::invalid_field("event", "must be 1-128 bytes"));
    }
    Ok(())
}

fn parse_tag(tag: &str) -> Result<Tag, ApiError> {
    Tag::parse(tag).map_err(|e| ApiError::invalid_field("tag", e))
}

fn parse_client_id(id: &str) -> Result<ClientId, ApiError> {
    ClientId::parse(id).ok_or_else(|| ApiError::invalid_field("clientId", "not a client id"))
}

/// Send to every connection.
#[derive(Object)]
#[oai(example)]
pub struct SendAll {
    /// Event name.
    pub event: String,
    /// Payload, delivered unchanged.
    pub data: Option<Value>,
}

impl Example for SendAll {
    fn example() -> Self {
        SendAll {
            event: "notice".into(),
            data: Some(serde_json::json!({"title": "Maintenance", "text": "at 22:00"})),
        }
    }
}

/// Send to one connection.
#[derive(Object)]
#[oai(example)]
pub struct SendClient {
    /// The connection id (from `connected` or the online list).
    #[oai(rename = "clientId")]
    pub client_id: String,
    /// Event name.
    pub event: String,
    /// Payload, delivered unchanged.
    pub data: Option<Value>,
}

/// Send to every device of a user.
#[derive(Object)]
#[oai(example)]
pub struct SendUser {
    /// The user id.
    #[oai(rename = "userId")]
    pub user_id: i64,
    /// Event name.
    pub event: String,
    /// Payload, delivered unchanged.
    pub data: Option<Value>,
}

impl Example for SendUser {
    fn example() -> Self {
        SendUser {
            user_id: 1,
            event: "notice".into(),
            data: Some(serde_json::json!({"text": "recharge succeeded"})),
        }
    }
}

/// Send to every member of a tag.
#[derive(Object)]
#[oai(example)]
pub struct SendTag {
    /// Tag name.
    pub tag: String,
    /// Event name.
    pub event: String,
    /// Payload, delivered unchanged.
    pub data: Option<Value>,
}

/// One online connection.
#[derive(Object)]
pub struct OnlineClient {
    /// Connection id.
    pub id: String,
    /// User id (null for anonymous clients and API keys).
    #[oai(rename = "userId")]
    pub user_id: Option<i64>,
    /// Username (empty when anonymous).
    pub username: String,
    /// Client IP.
    pub ip: String,
    /// Operating system family.
    pub os: String,
    /// Browser family.
    pub browser: String,
    /// Raw User-Agent.
    #[oai(rename = "userAgent")]
    pub user_agent: String,
    /// Connected at, unix seconds.
    #[oai(rename = "firstTime")]
    pub first_time: i64,
    /// Last inbound frame, unix seconds.
    #[oai(rename = "heartbeatTime")]
    pub heartbeat_time: i64,
    /// Joined tags, sorted.
    pub tags: Vec<String>,
    /// Node holding the socket.
    pub node: String,
}

impl From<Row> for OnlineClient {
    fn from(r: Row) -> Self {
        OnlineClient {
            id: r.id,
            user_id: r.user_id,
            username: r.username,
            ip: r.ip,
            os: r.os,
            browser: r.browser,
            user_agent: r.user_agent,
            first_time: r.first_time,
            heartbeat_time: r.heartbeat_time,
            tags: r.tags,
            node: r.node,
        }
    }
}

/// A page of the online list.
#[derive(Object)]
pub struct OnlinePage {
    /// Rows, sorted by firstTime then id.
    pub list: Vec<OnlineClient>,
    /// Page number (from 1).
    pub page: u64,
    /// Page size.
    #[oai(rename = "pageSize")]
    pub page_size: u64,
    /// Rows matching the filters.
    pub total: u64,
}

/// Kick by connection or by user.
#[derive(Object)]
#[oai(example)]
pub struct KickRequest {
    /// One connection.
    #[oai(rename = "clientId")]
    pub client_id: Option<String>,
    /// Every connection of a user.
    #[oai(rename = "userId")]
    pub user_id: Option<i64>,
    /// Shown to the client in the `kick` event.
    #[oai(validator(max_length = 256))]
    pub reason: Option<String>,
    /// Also invalidate the user's tokens (reconnecting with them gets 401).
    pub revoke: Option<bool>,
}

/// Kick result.
#[derive(Object)]
pub struct KickResult {
    /// Connections closed.
    pub closed: u64,
}

/// Server-side tag membership.
#[derive(Object)]
#[oai(example)]
pub struct TagMembership {
    /// One connection.
    #[oai(rename = "clientId")]
    pub client_id: Option<String>,
    /// Every connection of a user.
    #[oai(rename = "userId")]
    pub user_id: Option<i64>,
    /// Tag (may be a `sys:` tag).
    pub tag: String,
}

/// Tag change result.
#[derive(Object)]
pub struct TagChangeResult {
    /// Connections changed.
    pub changed: u64,
}

/// A tag and its member count.
#[derive(Object)]
pub struct TagInfo {
    /// Tag name.
    pub tag: String,
    /// Connections in it.
    pub members: u64,
}

/// Node statistics.
#[derive(Object)]
pub struct Stats {
    /// Open connections.
    pub connections: u64,
    /// Users with a connection.
    pub users: u64,
    /// Tags with members.
    pub tags: u64,
    /// Inbound frames.
    #[oai(rename = "messagesIn")]
    pub messages_in: u64,
    /// Outbound frames.
    #[oai(rename = "messagesOut")]
    pub messages_out: u64,
    /// Inbound bytes.
    #[oai(rename = "bytesIn")]
    pub bytes_in: u64,
    /// Outbound bytes.
    #[oai(rename = "bytesOut")]
    pub bytes_out: u64,
    /// Pushes dropped at full or closing queues.
    pub drops: u64,
    /// Seconds since start.
    pub uptime: u64,
    /// This node.
    pub node: String,
}

/// `/api/websocket`.
pub struct WebSocketApi(pub Arc<AppState>);

impl WebSocketApi {
    fn targets(
        &self,
        client_id: &Option<String>,
        user_id: Option<i64>,
    ) -> Result<Vec<Arc<Client>>, ApiError> {
        match (client_id, user_id) {
            (Some(id), None) => {
                let id = parse_client_id(id)?;
                Ok(self.0.ws.registry.get(&id).into_iter().collect())
            }
            (None, Some(u)) => Ok(self.0.ws.registry.user_clients(UserId(u))),
            _ => Err(ApiError::invalid_field(
                "clientId",
                "give exactly one of clientId or userId",
            )),
        }
    }
}

#[OpenApi(prefix_path = "/api/websocket")]
impl WebSocketApi {
    /// Send to every connection
    ///
    /// Recipients get `{"event", "data", "code": 0, "timestamp"}` with `data` unchanged.
    #[oai(path = "/send/toAll", method = "post", tag = "ApiTags::Send")]
    async fn to_all(
        &self,
        auth: ApiAuth,
        body: Json<SendAll>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        check_event(&body.event)?;
        let body = body.0;
        let n = self
            .0
            .ws
            .hub
            .send_to_all(Push::new(
                body.event.clone(),
                body.data.unwrap_or(Value::Null),
            ))
            .await;
        tracing::info!(target: "audit", by = %who.username, to = "all", event = %body.event, delivered = n, "send");
        Ok(Json(Delivered {
            delivered: n as u64,
        }))
    }

    /// Send to one connection
    ///
    /// 404 when the connection is not online.
    #[oai(path = "/send/toClient", method = "post", tag = "ApiTags::Send")]
    async fn to_client(
        &self,
        auth: ApiAuth,
        body: Json<SendClient>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        check_event(&body.event)?;
        let id = parse_client_id(&body.client_id)?;
        let body = body.0;
        let n = self
            .0
            .ws
            .hub
            .send_to_client(
                &id,
                Push::new(body.event.clone(), body.data.unwrap_or(Value::Null)),
            )
            .await;
        tracing::info!(target: "audit", by = %who.username, to = %id, event = %body.event, delivered = n, "send");
        if n == 0 {
            return Err(ApiError::not_found(format!("client {id} is not online")));
        }
        Ok(Json(Delivered {
            delivered: n as u64,
        }))
    }

    /// Send to every device of a user
    #[oai(path = "/send/toUser", method = "post", tag = "ApiTags::Send")]
    async fn to_user(
        &self,
        auth: ApiAuth,
        body: Json<SendUser>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        check_event(&body.event)?;
        let body = body.0;
        let n = self
            .0
            .ws
            .hub
            .send_to_user(
                UserId(body.user_id),
                Push::new(body.event.clone(), body.data.unwrap_or(Value::Null)),
            )
            .await;
        tracing::info!(target: "audit", by = %who.username, to = %format!("user:{}", body.user_id), event = %body.event, delivered = n, "send");
        Ok(Json(Delivered {
            delivered: n as u64,
        }))
    }

    /// Send to every member of a tag
    #[oai(path = "/send/toTag", method = "post", tag = "ApiTags::Send")]
    async fn to_tag(
        &self,
        auth: ApiAuth,
        body: Json<SendTag>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        check_event(&body.event)?;
        let tag = parse_tag(&body.tag)?;
        let body = body.0;
        let n = self
            .0
            .ws
            .hub
            .send_to_tag(
                &tag,
                Push::new(body.event.clone(), body.data.unwrap_or(Value::Null)),
            )
            .await;
        tracing::info!(target: "audit", by = %who.username, to = %format!("tag:{tag}"), event = %body.event, delivered = n, "send");
        Ok(Json(Delivered {
            delivered: n as u64,
        }))
    }

    /// Online connections
    ///
    /// Filters combine; `ip` and `username` match substrings. Sorted by firstTime then id.
    #[oai(path = "/online", method = "get", tag = "ApiTags::Online")]
    #[allow(clippy::too_many_arguments)]
    async fn online(
        &self,
        auth: ApiAuth,
        page: Query<Option<u64>>,
        #[oai(name = "pageSize")] page_size: Query<Option<u64>>,
        #[oai(name = "userId")] user_id: Query<Option<i64>>,
        username: Query<Option<String>>,
        ip: Query<Option<String>>,
        tag: Query<Option<String>>,
    ) -> Result<Json<OnlinePage>, ApiError> {
        auth.require(Role::Operator)?;
        let page = page.0.unwrap_or(1);
        let page_size = page_size.0.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::invalid_field("page", "must be at least 1"));
        }
        if !(1..=200).contains(&page_size) {
            return Err(ApiError::invalid_field("pageSize", "must be 1-200"));
        }
        let tag_filter = match &tag.0 {
            Some(t) => Some(parse_tag(t)?),
            None => None,
        };
        let mut rows: Vec<Row> = match &self.0.ws.cluster {
            Some(c) => c.online_rows().await,
            None => {
                let reg = &self.0.ws.registry;
                let clients = match (&tag_filter, user_id.0) {
                    (Some(t), _) => reg.tag_members(t),
                    (None, Some(u)) => reg.user_clients(UserId(u)),
                    (None, None) => reg.all(),
                };
                clients.iter().map(|c| Row::of(c)).collect()
            }
        };
        rows.retain(|r| {
            user_id.0.is_none_or(|u| r.user_id == Some(u))
                && username.0.as_deref().is_none_or(|n| r.username.contains(n))
                && ip.0.as_deref().is_none_or(|p| r.ip.contains(p))
                && tag_filter
                    .as_ref()
                    .is_none_or(|t| r.tags.iter().any(|x| x == t.as_str()))
        });
        rows.sort_by(|a, b| {
            a.first_time
                .cmp(&b.first_time)
                .then_with(|| id_order(&a.id, &b.id))
        });
        let total = rows.len() as u64;
        let start = ((page - 1).saturating_mul(page_size)) as usize;
        let list = rows
            .into_iter()
            .skip(start)
            .take(page_size as usize)
            .map(OnlineClient::from)
            .collect();
        Ok(Json(OnlinePage {
            list,
            page,
            page_size,
            total,
        }))
    }

    /// Kick connections
    ///
    /// Each socket gets `kick {reason}` then close 4001; `revoke: true` also invalidates the
    /// user's tokens.
    #[oai(path = "/kick", method = "post", tag = "ApiTags::Online")]
    async fn kick(
        &self,
        auth: ApiAuth,
        body: Json<KickRequest>,
    ) -> Result<Json<KickResult>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let targets = self.targets(&body.client_id, body.user_id)?;
        let reason = body
            .reason
            .clone()
            .unwrap_or_else(|| "kicked by an operator".into());
        let mut closed = 0u64;
        let mut users = Vec::new();
        for c in &targets {
            if let Some(u) = c.user_id() {
                users.push(u);
            }
        }
        match &self.0.ws.cluster {
            Some(cluster) => {
                closed = cluster
                    .kick(body.client_id.clone(), body.user_id, &reason)
                    .await as u64;
            }
            None => {
                for c in &targets {
                    if c.kick(&reason) {
                        closed += 1;
                    }
                }
            }
        }
        if body.revoke.unwrap_or(false) {
            if let Some(u) = body.user_id {
                users.push(UserId(u));
            }
            users.sort();
            users.dedup();
            for u in users {
                match self.0.auth.revoke_user_tokens(u.0).await {
                    Ok(()) => {}
                    Err(crate::auth::AuthError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                if let Some(cluster) = &self.0.ws.cluster {
                    cluster.user_changed(u.0, None, "tokens revoked").await;
                }
            }
        }
        tracing::info!(target: "audit", by = %who.username, client = ?body.client_id, user = ?body.user_id, closed, revoke = body.revoke.unwrap_or(false), "kick");
        Ok(Json(KickResult { closed }))
    }

    /// Add connections to a tag (server side; `sys:` tags allowed)
    #[oai(path = "/tags/join", method = "post", tag = "ApiTags::Online")]
    async fn tags_join(
        &self,
        auth: ApiAuth,
        body: Json<TagMembership>,
    ) -> Result<Json<TagChangeResult>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let tag = parse_tag(&body.tag)?;
        let mut changed = 0;
        let targets = self.targets(&body.client_id, body.user_id)?;
        if let Some(cluster) = &self.0.ws.cluster {
            changed = cluster
                .tag(true, body.client_id.clone(), body.user_id, &tag)
                .await as u64;
        } else {
            for c in targets {
                match self.0.ws.local.join(c.id(), tag.clone()) {
                    Ok(_) => changed += 1,
                    Err(crate::websocket::registry::TagChangeError::NoClient) => {}
                    Err(e) => return Err(ApiError::conflict(e.to_string())),
                }
            }
        }
        tracing::info!(target: "audit", by = %who.username, tag = %tag, changed, "tags/join");
        Ok(Json(TagChangeResult { changed }))
    }

    /// Remove connections from a tag
    #[oai(path = "/tags/quit", method = "post", tag = "ApiTags::Online")]
    async fn tags_quit(
        &self,
        auth: ApiAuth,
        body: Json<TagMembership>,
    ) -> Result<Json<TagChangeResult>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let tag = parse_tag(&body.tag)?;
        let mut changed = 0;
        let targets = self.targets(&body.client_id, body.user_id)?;
        if let Some(cluster) = &self.0.ws.cluster {
            changed = cluster
                .tag(false, body.client_id.clone(), body.user_id, &tag)
                .await as u64;
        } else {
            for c in targets {
                let had = c.tags_mut().contains(&tag);
                if had && self.0.ws.local.quit(c.id(), &tag).is_ok() {
                    changed += 1;
                }
            }
        }
        tracing::info!(target: "audit", by = %who.username, tag = %tag, changed, "tags/quit");
        Ok(Json(TagChangeResult { changed }))
    }

    /// Tags and their member counts
    #[oai(path = "/tags", method = "get", tag = "ApiTags::Online")]
    async fn tags(&self, auth: ApiAuth) -> Result<Json<Vec<TagInfo>>, ApiError> {
        auth.require(Role::Operator)?;
        let counts: Vec<(String, usize)> = match &self.0.ws.cluster {
            Some(c) => {
                let mut map: std::collections::BTreeMap<String, usize> = Default::default();
                for row in c.online_rows().await {
                    for t in row.tags {
                        *map.entry(t).or_default() += 1;
                    }
                }
                map.into_iter().collect()
            }
            None => self
                .0
                .ws
                .registry
                .tag_counts()
                .into_iter()
                .map(|(t, n)| (t.to_string(), n))
                .collect(),
        };
        Ok(Json(
            counts
                .into_iter()
                .map(|(tag, n)| TagInfo {
                    tag,
                    members: n as u64,
                })
                .collect(),
        ))
    }

    /// Node statistics
    #[oai(path = "/stats", method = "get", tag = "ApiTags::Online")]
    async fn stats(&self, auth: ApiAuth) -> Result<Json<Stats>, ApiError> {
        auth.require(Role::Operator)?;
        let (connections, users, tags) = match &self.0.ws.cluster {
            Some(c) => {
                let rows = c.online_rows().await;
                let users: std::collections::HashSet<i64> =
                    rows.iter().filter_map(|r| r.user_id).collect();
                let tags: std::collections::HashSet<&String> =
                    rows.iter().flat_map(|r| r.tags.iter()).collect();
                (rows.len(), users.len(), tags.len())
            }
            None => self.0.ws.registry.counts(),
        };
        let m = &self.0.ws.metrics;
        Ok(Json(Stats {
            connections: connections as u64,
            users: users as u64,
            tags: tags as u64,
            messages_in: m.messages_in.get(),
            messages_out: m.messages_out.get(),
            bytes_in: m.bytes_in.get(),
            bytes_out: m.bytes_out.get(),
            drops: m.queue_drops.get(),
            uptime: self.0.started.elapsed().as_secs(),
            node: self.0.ws.registry.node().to_string(),
        }))
    }
}

/// Ids are `<prefix>.<n>`: order by prefix, then numerically by counter.
fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| -> (String, u64) {
        match s.rsplit_once('.') {
            Some((p, n)) => (p.to_string(), n.parse().unwrap_or(0)),
            None => (s.to_string(), 0),
        }
    };
    split(a).cmp(&split(b))
}

/// Kicks are closes with 4001; exported for the sdk-level constant check.
pub const KICK_CODE: u16 = close::KICKED;

impl poem_openapi::types::Example for SendClient {
    fn example() -> Self {
        SendClient {
            client_id: "k3f9x2.17".into(),
            event: "notice".into(),
            data: Some(serde_json::json!({"text": "just for this tab"})),
        }
    }
}

impl poem_openapi::types::Example for SendTag {
    fn example() -> Self {
        SendTag {
            tag: "room:42".into(),
            event: "notice".into(),
            data: Some(serde_json::json!({"text": "hello room"})),
        }
    }
}

impl poem_openapi::types::Example for KickRequest {
    fn example() -> Self {
        KickRequest {
            client_id: None,
            user_id: Some(42),
            reason: Some("account under review".into()),
            revoke: Some(true),
        }
    }
}

impl poem_openapi::types::Example for TagMembership {
    fn example() -> Self {
        TagMembership {
            client_id: None,
            user_id: Some(42),
            tag: "sys:vip".into(),
        }
    }
}
