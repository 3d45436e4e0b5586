//! `/api/websocket/*`: send, online list, kick, server-side tags, stats (operator role or
//! API key). Every send, kick and tag change is recorded in the audit log with who, target,
//! result and count.

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use switchboard_sdk::api::{ApiAuth, ApiError, Delivered, ErrorBody};
use switchboard_sdk::protocol::{MAX_EVENT_LEN, Push};
use switchboard_sdk::{Audience, ClientId, Role, Tag, UserId};

use super::{ApiTags, AppState};
use crate::audit::{AuditEntry, action};
use crate::node::{NodeError, OnlineQuery, Row, Target};

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Unavailable(_) => ApiError::Unavailable(Json(ErrorBody {
                code: "cluster_unavailable".into(),
                message: e.to_string(),
            })),
            NodeError::TooManyTags(_) => ApiError::conflict(e.to_string()),
            NodeError::Limit(_) => ApiError::too_many_requests(e.to_string()),
            NodeError::TooLarge { .. } => {
                ApiError::payload_too_large("push_too_large", e.to_string())
            }
        }
    }
}

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
    fn target(client_id: &Option<String>, user_id: Option<i64>) -> Result<Target, ApiError> {
        match (client_id, user_id) {
            (Some(id), None) => Ok(Target::Client(parse_client_id(id)?)),
            (None, Some(u)) => Ok(Target::User(UserId(u))),
            _ => Err(ApiError::invalid_field(
                "clientId",
                "give exactly one of clientId or userId",
            )),
        }
    }

    /// Sends and records the send (made or refused) in the audit log.
    async fn send(
        &self,
        req: &Request,
        who: &switchboard_sdk::Identity,
        audience: Audience,
        event: String,
        data: Option<Value>,
    ) -> Result<usize, ApiError> {
        let target = match &audience {
            Audience::All => "all".to_string(),
            Audience::Client(id) => format!("client:{id}"),
            Audience::User(u) => format!("user:{u}"),
            Audience::Tag(t) => format!("tag:{t}"),
        };
        // A malformed request changes nothing and is not recorded; a refused send is.
        check_event(&event)?;
        let entry = AuditEntry::new(&who.username, action::SEND, target).detail(event.clone());
        let push = Push::new(event, data.unwrap_or(Value::Null));
        let res = self
            .0
            .ws
            .node
            .send(&audience, &push)
            .await
            .map_err(ApiError::from);
        // A send to one connection that is not online reached nobody: the caller gets 404.
        let res = match (res, &audience) {
            (Ok(0), Audience::Client(id)) => {
                Err(ApiError::not_found(format!("client {id} is not online")))
            }
            (res, _) => res,
        };
        let n = *res.as_ref().unwrap_or(&0);
        self.0.audit(req, entry.count(n).outcome(&res));
        res
    }

    async fn kick_target(
        &self,
        who: &switchboard_sdk::Identity,
        target: &Target,
        reason: &str,
        revoke: bool,
    ) -> Result<usize, ApiError> {
        if revoke {
            // Anyone may kick an admin's sockets; only an admin may revoke an admin's tokens.
            for u in self.0.ws.node.users_of(target).await? {
                self.0.auth.authorize_action_on(who, u.0).await?;
            }
        }
        Ok(self.0.ws.node.kick(target, reason, revoke).await?.closed)
    }

    /// Joins or quits the target's connections to a tag, and records it.
    async fn change_tag(
        &self,
        req: &Request,
        who: &switchboard_sdk::Identity,
        join: bool,
        body: &TagMembership,
    ) -> Result<Json<TagChangeResult>, ApiError> {
        let tag = parse_tag(&body.tag)?;
        let target = Self::target(&body.client_id, body.user_id)?;
        let res = self
            .0
            .ws
            .node
            .change_tag(join, &target, &tag)
            .await
            .map_err(ApiError::from);
        let act = if join {
            action::TAG_JOIN
        } else {
            action::TAG_QUIT
        };
        self.audit_target(req, who, act, &target, format!("tag:{tag}"), &res);
        Ok(Json(TagChangeResult {
            changed: res? as u64,
        }))
    }

    /// Records a kick or tag change of `target`.
    fn audit_target(
        &self,
        req: &Request,
        who: &switchboard_sdk::Identity,
        action: &'static str,
        target: &Target,
        detail: String,
        res: &Result<usize, ApiError>,
    ) {
        let target = match target {
            Target::Client(id) => format!("client:{id}"),
            Target::User(u) => format!("user:{u}"),
        };
        let entry = AuditEntry::new(&who.username, action, target)
            .detail(detail)
            .count(*res.as_ref().unwrap_or(&0));
        self.0.audit(req, entry.outcome(res));
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
        req: &Request,
        auth: ApiAuth,
        body: Json<SendAll>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let body = body.0;
        let n = self
            .send(req, who, Audience::All, body.event, body.data)
            .await?;
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
        req: &Request,
        auth: ApiAuth,
        body: Json<SendClient>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let id = parse_client_id(&body.client_id)?;
        let body = body.0;
        let n = self
            .send(req, who, Audience::Client(id), body.event, body.data)
            .await?;
        Ok(Json(Delivered {
            delivered: n as u64,
        }))
    }

    /// Send to every device of a user
    #[oai(path = "/send/toUser", method = "post", tag = "ApiTags::Send")]
    async fn to_user(
        &self,
        req: &Request,
        auth: ApiAuth,
        body: Json<SendUser>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let body = body.0;
        let audience = Audience::User(UserId(body.user_id));
        let n = self.send(req, who, audience, body.event, body.data).await?;
        Ok(Json(Delivered {
            delivered: n as u64,
        }))
    }

    /// Send to every member of a tag
    #[oai(path = "/send/toTag", method = "post", tag = "ApiTags::Send")]
    async fn to_tag(
        &self,
        req: &Request,
        auth: ApiAuth,
        body: Json<SendTag>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let tag = parse_tag(&body.tag)?;
        let body = body.0;
        let n = self
            .send(req, who, Audience::Tag(tag), body.event, body.data)
            .await?;
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
        let (page, page_size) = super::paging(page.0, page_size.0)?;
        let tag = match &tag.0 {
            Some(t) => Some(parse_tag(t)?),
            None => None,
        };
        let query = OnlineQuery {
            page,
            page_size,
            user: user_id.0.map(UserId),
            tag,
            username: username.0.filter(|s| !s.is_empty()),
            ip: ip.0.filter(|s| !s.is_empty()),
        };
        let found = self.0.ws.node.online(&query).await?;
        let total = found.total as u64;
        let list = found.rows.into_iter().map(OnlineClient::from).collect();
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
        req: &Request,
        auth: ApiAuth,
        body: Json<KickRequest>,
    ) -> Result<Json<KickResult>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let target = Self::target(&body.client_id, body.user_id)?;
        let reason = body
            .reason
            .clone()
            .unwrap_or_else(|| "kicked by an operator".into());
        let revoke = body.revoke.unwrap_or(false);
        let res = self.kick_target(who, &target, &reason, revoke).await;
        let detail = if revoke {
            format!("{reason} (tokens revoked)")
        } else {
            reason
        };
        self.audit_target(req, who, action::KICK, &target, detail, &res);
        Ok(Json(KickResult {
            closed: res? as u64,
        }))
    }

    /// Add connections to a tag (server side; `sys:` tags allowed)
    #[oai(path = "/tags/join", method = "post", tag = "ApiTags::Online")]
    async fn tags_join(
        &self,
        req: &Request,
        auth: ApiAuth,
        body: Json<TagMembership>,
    ) -> Result<Json<TagChangeResult>, ApiError> {
        let who = auth.require(Role::Operator)?;
        self.change_tag(req, who, true, &body).await
    }

    /// Remove connections from a tag
    #[oai(path = "/tags/quit", method = "post", tag = "ApiTags::Online")]
    async fn tags_quit(
        &self,
        req: &Request,
        auth: ApiAuth,
        body: Json<TagMembership>,
    ) -> Result<Json<TagChangeResult>, ApiError> {
        let who = auth.require(Role::Operator)?;
        self.change_tag(req, who, false, &body).await
    }

    /// Tags and their member counts
    #[oai(path = "/tags", method = "get", tag = "ApiTags::Online")]
    async fn tags(&self, auth: ApiAuth) -> Result<Json<Vec<TagInfo>>, ApiError> {
        auth.require(Role::Operator)?;
        let counts = self.0.ws.node.tag_counts().await?;
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
        let counts = self.0.ws.node.counts().await?;
        let m = &self.0.ws.metrics;
        Ok(Json(Stats {
            connections: counts.connections as u64,
            users: counts.users as u64,
            tags: counts.tags as u64,
            messages_in: m.messages_in.get(),
            messages_out: m.messages_out.get(),
            bytes_in: m.bytes_in.get(),
            bytes_out: m.bytes_out.get(),
            drops: m.queue_drops.get(),
            uptime: self.0.started.elapsed().as_secs(),
            node: self.0.ws.node.id().to_string(),
        }))
    }
}

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
