//! The node: the one way anything reaches connections.
//!
//! The HTTP API, the built-in events, addons (through the sdk's [`Hub`]) and the queue consumer
//! all send, kick, change tags, list online connections and recover through [`Node`]. Behind
//! it sit two seams:
//!
//! - a [`Broker`]: numbers a push in its stream, keeps history, routes it to the nodes holding
//!   its recipients, replays history for `recover`, and carries control messages (revocations,
//!   user changes) to every node;
//! - a [`Presence`]: who is connected where, cluster-wide — the online list, the counts, tag
//!   membership and its limits, and kicks.
//!
//! A single node uses [`memory::MemoryBackend`] for both; a cluster uses
//! [`crate::cluster::RedisBackend`]. Only the composition root (`app.rs`) chooses. Whichever
//! backend runs, delivery to this node's sockets takes one path: the local [`Registry`].
//!
//! Counts (`delivered`, `closed`, `changed`) come from presence — the connections the audience
//! holds at the moment of the send, on every node — so no call waits for other nodes to answer.

pub mod memory;
pub mod rows;

use std::sync::Arc;

use crate::websocket::client::Connection;
use async_trait::async_trait;
use serde_json::Value;
use switchboard_sdk::event::EventError;
use switchboard_sdk::protocol::Push;
use switchboard_sdk::{Audience, ClientId, Hub, Identity, Tag, UserId};

use crate::auth::AuthService;
use crate::metrics::Metrics;
use crate::websocket::Registry;
use crate::websocket::hub::RecoverRequest;
use crate::websocket::monitor::NodeFigures;
use crate::websocket::registry::{LimitError, Reservation};

pub use rows::{OnlinePage, OnlineQuery, Row};

/// Whose connections a kick or a server-side tag change is for.
///
/// A strict subset of [`Audience`], kept as its own type on purpose: a kick or a tag change
/// names connections by who they are (one connection, or one user's), never "everyone" or "a
/// tag's members", so the type rules those out instead of every caller refusing them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One connection.
    Client(ClientId),
    /// Every connection of a user.
    User(UserId),
}

/// What a node operation could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The cluster backend (Redis) cannot be reached; local sockets keep working.
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
    /// A connection already holds the most tags it may.
    #[error("at most {0} tags per connection")]
    TooManyTags(usize),
    /// A connection limit was reached.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The push, encoded, is larger than a connection's send queue can ever hold: sent, it
    /// would close every recipient with 4008, so it is refused before it is numbered.
    #[error(
        "the push is {size} bytes encoded; a connection's send queue takes frames of at most \
         {limit} bytes (websocket.send_queue_bytes)"
    )]
    TooLarge {
        /// Its encoded size, as a recipient would get it.
        size: usize,
        /// The largest frame a send queue can take.
        limit: usize,
    },
}

/// Cluster-wide totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Open connections.
    pub connections: usize,
    /// Users with at least one connection.
    pub users: usize,
    /// Tags with at least one member.
    pub tags: usize,
}

/// How to close a target's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Close code; 4001 (kicked) sends `kick {reason}` first.
    pub code: u16,
    /// Close reason (and the kick's reason).
    pub reason: String,
    /// Only the connections opened with this token.
    pub token: Option<String>,
}

/// The token id a connection was opened (or logged in) with.
pub fn token_of(client: &Connection) -> Option<String> {
    client.identity().and_then(|i| match &i.credential {
        switchboard_sdk::Credential::Token { jti, .. } => Some(jti.clone()),
        switchboard_sdk::Credential::ApiKey { .. } => None,
    })
}

/// What a kick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KickOutcome {
    /// Connections closed.
    pub closed: usize,
    /// The users those connections belonged to (for `revoke`).
    pub users: Vec<UserId>,
}

/// A message every node applies to its own sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A token was revoked (logout): forget it and close the sockets opened with it.
    Revoked {
        /// Token id.
        jti: String,
        /// Its expiry (unix seconds).
        exp: i64,
        /// Its user.
        user: UserId,
    },
    /// A user changed (roles, password, disabled, deleted, tokens revoked): drop cached state
    /// and, with `close`, close their sockets with that code.
    UserChanged {
        /// The user.
        user: UserId,
        /// Close code for their sockets.
        close: Option<u16>,
        /// Close reason.
        reason: String,
    },
}

/// The `connected` greeting, built from where the connection's streams stand.
pub type Greeting = Box<dyn FnOnce(Value) -> Value + Send>;

/// Publishing, history and control messages.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `push` to `audience` (numbered in the audience's stream, except for a single
    /// connection) and returns how many connections it is addressed to, cluster-wide.
    async fn publish(
        &self,
        audience: &Audience,
        push: &Push,
        except: Option<&ClientId>,
    ) -> Result<usize, NodeError>;

    /// Replays to `client` what it missed on the streams of `req`.
    async fn recover(&self, client: &Connection, req: RecoverRequest) -> Result<Value, EventError>;

    /// Delivers a control message to every node, this one included.
    async fn control(&self, msg: Control) -> Result<(), NodeError>;

    /// Whether the broker is live (subscriptions up, backend reachable).
    fn is_ready(&self) -> bool;

    /// Checks the backend now (for `/readyz`).
    async fn check(&self) -> bool;

    /// Whether this broker spans several nodes (`/readyz` then reports on it).
    fn is_clustered(&self) -> bool {
        false
    }
}

/// A connection about to go live.
pub struct Attach {
    /// The connection.
    pub client: Arc<Connection>,
    /// Its slot against the node's limits.
    pub reservation: Reservation,
}

/// Cluster-wide presence: membership, counts, the online list, kicks.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Makes a connection visible everywhere and starts its delivery: the greeting is queued
    /// first, and every push counted for the connection after this returns reaches it.
    async fn attach(&self, attach: Attach, greeting: Greeting) -> Result<(), NodeError>;

    /// Removes a connection from every index (idempotent).
    async fn detach(&self, client: &Connection);

    /// Gives an anonymous connection an identity (socket `login`).
    async fn identify(&self, client: &Arc<Connection>, identity: Identity)
    -> Result<(), NodeError>;

    /// Joins (or quits) the target's connections to `tag`; returns how many changed. Over the
    /// tag limit nothing changes and the answer is [`NodeError::TooManyTags`].
    async fn change_tag(&self, join: bool, target: &Target, tag: &Tag) -> Result<usize, NodeError>;

    /// Closes the target's connections (removing them from presence at once).
    async fn disconnect(&self, target: &Target, how: &Disconnect)
    -> Result<KickOutcome, NodeError>;

    /// The user a connection (on any node) belongs to; `None` when it is anonymous or gone.
    async fn user_of(&self, id: &ClientId) -> Result<Option<UserId>, NodeError>;

    /// One page of the online list.
    async fn online(&self, query: &OnlineQuery) -> Result<OnlinePage, NodeError>;

    /// Cluster-wide totals.
    async fn counts(&self) -> Result<Counts, NodeError>;

    /// Every tag with members, and how many, sorted by name.
    async fn tag_counts(&self) -> Result<Vec<(String, usize)>, NodeError>;

    /// Whether `client` (one of this node's) is a member of `tag`.
    fn holds_tag(&self, client: &Connection, tag: &Tag) -> bool {
        client.tags().iter().any(|t| t == tag)
    }

    /// Makes this node's monitor figures readable by every node. A single node has nobody to
    /// tell; a cluster keeps them in Redis beside the node's heartbeat.
    async fn share_figures(&self, _own: &NodeFigures) -> Result<(), NodeError> {
        Ok(())
    }

    /// The latest monitor figures of every live node, `own` standing for this one. A single
    /// node is the whole deployment.
    async fn node_figures(&self, own: NodeFigures) -> Result<Vec<NodeFigures>, NodeError> {
        Ok(vec![own])
    }
}

/// The facade.
pub struct Node {
    id: Arc<str>,
    registry: Arc<Registry>,
    broker: Arc<dyn Broker>,
    presence: Arc<dyn Presence>,
    auth: Arc<AuthService>,
    metrics: Arc<Metrics>,
    /// The largest encoded push a recipient's send queue can take.
    largest_push: usize,
}

/// Room the stream fields (`stream`, `offset`, `epoch`) of a numbered push may take beyond
/// the stream's name: the keys and quotes, a `u64` offset and an epoch name, which the history
/// layers keep far shorter than the 64 bytes allowed for it here.
const POSITION_ROOM: usize = r#","stream":"","offset":,"epoch":"""#.len() + 20 + 64;

/// Counts the bytes a serialiser writes, without keeping them.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size of `push` as a recipient of `audience` gets it, at most (the stream fields are
/// counted at their largest).
pub fn encoded_size(audience: &Audience, push: &Push) -> usize {
    let mut count = ByteCount(0);
    let envelope = switchboard_sdk::protocol::Envelope::new(&push.event, &push.data);
    // Serialising strings, numbers and JSON values into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, &envelope);
    let position = audience
        .stream()
        .map_or(0, |stream| stream.len() + POSITION_ROOM);
    count.0 + position
}

impl Node {
    /// Composes a node from its parts.
    pub fn new(
        registry: Arc<Registry>,
        broker: Arc<dyn Broker>,
        presence: Arc<dyn Presence>,
        auth: Arc<AuthService>,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Connections a delivery cut off (slow consumers) leave presence at once, not when
        // their stuck socket task gets round to it.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Connection>>(1024);
        registry.set_cut_listener(tx);
        let cut_presence = presence.clone();
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                cut_presence.detach(&c).await;
            }
        });
        Node {
            id: registry.node().clone(),
            registry,
            broker,
            presence,
            auth,
            metrics,
            largest_push: usize::MAX,
        }
    }

    /// Refuses pushes larger than a send queue of `send_queue_bytes` can take.
    pub fn with_send_queue_bytes(mut self, send_queue_bytes: usize) -> Self {
        self.largest_push = crate::websocket::outbox::Outbox::largest_frame(send_queue_bytes);
        self
    }

    /// Every send passes here: a push no recipient could take is refused before the broker
    /// numbers it in its stream or anything is delivered.
    async fn publish(
        &self,
        audience: &Audience,
        push: &Push,
        except: Option<&ClientId>,
    ) -> Result<usize, NodeError> {
        let size = encoded_size(audience, push);
        if size > self.largest_push {
            self.metrics.oversized_pushes.inc();
            return Err(NodeError::TooLarge {
                size,
                limit: self.largest_push,
            });
        }
        let start = std::time::Instant::now();
        let res = self.broker.publish(audience, push, except).await;
        self.metrics.send_seconds.observe(start.elapsed());
        res
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This node's sockets.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether the node can serve cluster-wide operations.
    pub fn is_ready(&self) -> bool {
        self.broker.is_ready()
    }

    /// Checks the backend now.
    pub async fn check(&self) -> bool {
        self.broker.check().await
    }

    /// Whether this node is one of a cluster.
    pub fn is_clustered(&self) -> bool {
        self.broker.is_clustered()
    }

    /// Sends a push; returns how many connections it is addressed to, cluster-wide.
    pub async fn send(&self, audience: &Audience, push: &Push) -> Result<usize, NodeError> {
        self.publish(audience, push, None).await
    }

    /// `publish` from a client: the tag stream, optionally skipping the sender.
    pub async fn publish_from(
        &self,
        tag: &Tag,
        push: &Push,
        except: Option<&ClientId>,
    ) -> Result<usize, NodeError> {
        self.publish(&Audience::Tag(tag.clone()), push, except)
            .await
    }

    /// Kicks the target's connections; with `revoke`, also invalidates the tokens of every user
    /// whose connection was targeted (and of `Target::User` even when none is online).
    pub async fn kick(
        &self,
        target: &Target,
        reason: &str,
        revoke: bool,
    ) -> Result<KickOutcome, NodeError> {
        let how = Disconnect {
            code: switchboard_sdk::protocol::close::KICKED,
            reason: reason.to_string(),
            token: None,
        };
        let mut outcome = self.presence.disconnect(target, &how).await?;
        if let Target::User(u) = target {
            outcome.users.push(*u);
        }
        outcome.users.sort();
        outcome.users.dedup();
        if revoke {
            for u in &outcome.users {
                match self.auth.revoke_user_tokens(u.0).await {
                    Ok(()) | Err(crate::auth::AuthError::NotFound(_)) => {}
                    Err(e) => return Err(NodeError::Unavailable(e.to_string())),
                }
                self.broker
                    .control(Control::UserChanged {
                        user: *u,
                        close: None,
                        reason: "tokens revoked".into(),
                    })
                    .await?;
            }
        }
        Ok(outcome)
    }

    /// The users whose tokens a kick with `revoke` of `target` would invalidate.
    pub async fn users_of(&self, target: &Target) -> Result<Vec<UserId>, NodeError> {
        match target {
            Target::User(u) => Ok(vec![*u]),
            Target::Client(id) => Ok(self.presence.user_of(id).await?.into_iter().collect()),
        }
    }

    /// Joins or quits the target's connections to a tag.
    pub async fn change_tag(
        &self,
        join: bool,
        target: &Target,
        tag: &Tag,
    ) -> Result<usize, NodeError> {
        self.presence.change_tag(join, target, tag).await
    }

    /// A connection's own `join`/`quit`: applied before this returns; answers its tag list.
    pub async fn change_own_tag(
        &self,
        client: &Connection,
        join: bool,
        tag: &Tag,
    ) -> Result<Vec<Tag>, NodeError> {
        self.presence
            .change_tag(join, &Target::Client(client.id().clone()), tag)
            .await?;
        Ok(client.tags())
    }

    /// Whether one of this node's connections is in `tag`.
    pub fn holds_tag(&self, client: &Connection, tag: &Tag) -> bool {
        self.presence.holds_tag(client, tag)
    }

    /// One page of the online list.
    pub async fn online(&self, query: &OnlineQuery) -> Result<OnlinePage, NodeError> {
        self.presence.online(query).await
    }

    /// Cluster-wide totals.
    pub async fn counts(&self) -> Result<Counts, NodeError> {
        self.presence.counts().await
    }

    /// Tags with members.
    pub async fn tag_counts(&self) -> Result<Vec<(String, usize)>, NodeError> {
        self.presence.tag_counts().await
    }

    /// Shares this node's monitor figures with the other nodes (see [`Node::node_figures`]).
    pub async fn share_figures(&self, own: &NodeFigures) -> Result<(), NodeError> {
        self.presence.share_figures(own).await
    }

    /// The monitor figures of every live node, this one's being `own`: just `own` on a single
    /// node, and what each node last shared in a cluster.
    pub async fn node_figures(&self, own: NodeFigures) -> Result<Vec<NodeFigures>, NodeError> {
        self.presence.node_figures(own).await
    }

    /// Pushes to this node's own members of `tag` only, outside any stream (no offset, no
    /// history). For per-node pushes such as the monitor's, where every node serves its own
    /// subscribers and a lost push is replaced by the next.
    pub fn push_to_local_tag(&self, tag: &Tag, push: &Push) -> usize {
        self.registry
            .deliver_tag(tag, &crate::websocket::registry::encode(push, None), None)
    }

    /// Registers a new connection (see [`Presence::attach`]).
    pub async fn attach(&self, attach: Attach, greeting: Greeting) -> Result<(), NodeError> {
        self.presence.attach(attach, greeting).await
    }

    /// Removes a connection from every index.
    pub async fn detach(&self, client: &Connection) {
        self.registry.unregister(client);
        self.presence.detach(client).await;
    }

    /// Socket `login` on an anonymous connection.
    pub async fn identify(
        &self,
        client: &Arc<Connection>,
        identity: Identity,
    ) -> Result<(), NodeError> {
        self.presence.identify(client, identity).await
    }

    /// `recover`.
    pub async fn recover(
        &self,
        client: &Connection,
        req: RecoverRequest,
    ) -> Result<Value, EventError> {
        self.broker.recover(client, req).await
    }

    /// A token was revoked (logout): every node forgets it, and the sockets opened with it
    /// close with 4003. Returns how many closed.
    pub async fn token_revoked(
        &self,
        jti: &str,
        exp: i64,
        user: UserId,
    ) -> Result<usize, NodeError> {
        let how = Disconnect {
            code: switchboard_sdk::protocol::close::TOKEN_REVOKED,
            reason: "logged out".into(),
            token: Some(jti.to_string()),
        };
        let closed = self.presence.disconnect(&Target::User(user), &how).await?;
        self.broker
            .control(Control::Revoked {
                jti: jti.to_string(),
                exp,
                user,
            })
            .await?;
        Ok(closed.closed)
    }

    /// A user changed: every node drops cached state and, with `close`, closes their sockets.
    pub async fn user_changed(
        &self,
        user: UserId,
        close: Option<u16>,
        reason: &str,
    ) -> Result<(), NodeError> {
        self.broker
            .control(Control::UserChanged {
                user,
                close,
                reason: reason.to_string(),
            })
            .await
    }
}

/// Addons send through the same node; a send the backend could not make is logged and counts 0.
#[async_trait]
impl Hub for Node {
    async fn send(&self, audience: &Audience, push: Push) -> usize {
        match Node::send(self, audience, &push).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, event = %push.event, "an addon's send was not made");
                0
            }
        }
    }

    fn client(&self, id: &ClientId) -> Option<switchboard_sdk::Client> {
        self.registry.get(id).map(|c| c.handle())
    }

    fn user_clients(&self, user: UserId) -> Vec<switchboard_sdk::Client> {
        self.registry
            .user_clients(user)
            .iter()
            .map(Connection::handle)
            .collect()
    }

    fn node_id(&self) -> &str {
        &self.id
    }
}

/// Applies a control message to this node's sockets (every backend delivers them here).
pub(crate) fn apply_control(registry: &Registry, auth: &AuthService, msg: &Control) {
    use switchboard_sdk::protocol::close;
    match msg {
        Control::Revoked { jti, exp, user } => {
            auth.remember_revoked(jti, *exp);
            registry.close_token(*user, jti, close::TOKEN_REVOKED, "logged out");
        }
        Control::UserChanged {
            user,
            close,
            reason,
        } => {
            auth.invalidate_user(user.0);
            if let Some(code) = close {
                registry.close_user(*user, *code, reason);
            }
        }
    }
}
