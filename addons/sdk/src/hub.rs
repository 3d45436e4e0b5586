//! The send functions: what addons and the host call to reach connections.

use async_trait::async_trait;

use crate::client::{Client, ClientId};
use crate::identity::UserId;
use crate::protocol::Push;
use crate::tag::Tag;

/// Who a push is for. The same type is used by the HTTP API, the queue, the cluster bus and
/// the sdk's send functions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Every connection (stream `all`).
    All,
    /// One connection (no stream; not replayable).
    Client(ClientId),
    /// Every device of a user (stream `user:<id>`).
    User(UserId),
    /// Every member of a tag (stream `tag:<name>`).
    Tag(Tag),
}

impl Audience {
    /// The delivery stream of this audience (`None` for a single connection).
    pub fn stream(&self) -> Option<String> {
        match self {
            Audience::All => Some("all".to_string()),
            Audience::Client(_) => None,
            Audience::User(u) => Some(format!("user:{u}")),
            Audience::Tag(t) => Some(format!("tag:{t}")),
        }
    }
}

/// The connection hub. Every send returns how many connections it is addressed to
/// (cluster-wide in cluster mode); none of them waits on a slow socket or a slow node.
///
/// ```no_run
/// # use switchboard_sdk::{Hub, Push, UserId};
/// # use serde_json::json;
/// # async fn demo(hub: &dyn Hub) {
/// let reached = hub.send_to_user(UserId(42), Push::new("notice", json!({"text": "paid"}))).await;
/// println!("reached {reached} devices");
/// # }
/// ```
#[async_trait]
pub trait Hub: Send + Sync + 'static {
    /// Pushes to an audience.
    async fn send(&self, audience: &Audience, push: Push) -> usize;
    /// Pushes to every connection (stream `all`).
    async fn send_to_all(&self, push: Push) -> usize {
        self.send(&Audience::All, push).await
    }
    /// Pushes to one connection (no stream; not replayable).
    async fn send_to_client(&self, id: &ClientId, push: Push) -> usize {
        self.send(&Audience::Client(id.clone()), push).await
    }
    /// Pushes to every device of a user (stream `user:<id>`).
    async fn send_to_user(&self, user: UserId, push: Push) -> usize {
        self.send(&Audience::User(user), push).await
    }
    /// Pushes to every member of a tag (stream `tag:<name>`).
    async fn send_to_tag(&self, tag: &Tag, push: Push) -> usize {
        self.send(&Audience::Tag(tag.clone()), push).await
    }
    /// A connection held by this node.
    fn client(&self, id: &ClientId) -> Option<Client>;
    /// The connections of a user held by this node.
    fn user_clients(&self, user: UserId) -> Vec<Client>;
    /// This node's id.
    fn node_id(&self) -> &str;
}
