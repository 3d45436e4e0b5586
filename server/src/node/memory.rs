//! The single-node backend: presence is this node's registry, the broker is its in-memory
//! history. Nothing here can be unavailable.

use std::sync::Arc;

use crate::websocket::client::Connection;
use async_trait::async_trait;
use serde_json::Value;
use switchboard_sdk::event::EventError;
use switchboard_sdk::protocol::Push;
use switchboard_sdk::{Audience, ClientId, Identity, Tag, UserId};

use super::rows::{OnlinePage, OnlineQuery, Row, sort_rows};
use super::{
    Attach, Broker, Control, Counts, Disconnect, Greeting, KickOutcome, NodeError, Presence,
    Target, apply_control, token_of,
};
use crate::auth::AuthService;
use crate::websocket::LocalHub;
use crate::websocket::hub::RecoverRequest;
use crate::websocket::registry::TagChangeError;

/// Broker and presence of a node that runs alone.
pub struct MemoryBackend {
    local: Arc<LocalHub>,
    auth: Arc<AuthService>,
    max_tags: usize,
}

impl MemoryBackend {
    /// Over this node's registry and history.
    pub fn new(local: Arc<LocalHub>, auth: Arc<AuthService>, max_tags: usize) -> Self {
        MemoryBackend {
            local,
            auth,
            max_tags,
        }
    }

    fn targets(&self, target: &Target) -> Vec<Arc<Connection>> {
        let reg = self.local.registry();
        match target {
            Target::Client(id) => reg.get(id).into_iter().collect(),
            Target::User(u) => reg.user_clients(*u),
        }
    }
}

#[async_trait]
impl Broker for MemoryBackend {
    async fn publish(
        &self,
        audience: &Audience,
        push: &Push,
        except: Option<&ClientId>,
    ) -> Result<usize, NodeError> {
        Ok(self.local.publish(audience, push, except))
    }

    async fn recover(&self, client: &Connection, req: RecoverRequest) -> Result<Value, EventError> {
        self.local.recover(client, req)
    }

    async fn control(&self, msg: Control) -> Result<(), NodeError> {
        apply_control(self.local.registry(), &self.auth, &msg);
        Ok(())
    }

    fn is_ready(&self) -> bool {
        true
    }

    async fn check(&self) -> bool {
        true
    }
}

#[async_trait]
impl Presence for MemoryBackend {
    async fn attach(&self, attach: Attach, greeting: Greeting) -> Result<(), NodeError> {
        self.local
            .register(attach.client, attach.reservation, greeting);
        Ok(())
    }

    async fn detach(&self, _client: &Connection) {
        // The registry was the presence; `Node::detach` already removed the connection.
    }

    async fn identify(
        &self,
        client: &Arc<Connection>,
        identity: Identity,
    ) -> Result<(), NodeError> {
        Ok(self.local.set_identity(client, identity)?)
    }

    async fn change_tag(&self, join: bool, target: &Target, tag: &Tag) -> Result<usize, NodeError> {
        let targets = self.targets(target);
        if join
            && targets
                .iter()
                .any(|c| !c.has_tag(tag) && c.tag_count() >= self.max_tags)
        {
            return Err(NodeError::TooManyTags(self.max_tags));
        }
        let mut changed = 0;
        for c in targets {
            let had = c.has_tag(tag);
            if join == had {
                continue;
            }
            let res = if join {
                self.local.join(c.id(), tag.clone())
            } else {
                self.local.quit(c.id(), tag)
            };
            match res {
                Ok(_) => changed += 1,
                Err(TagChangeError::NoClient) => {}
                Err(TagChangeError::TooMany(n)) => return Err(NodeError::TooManyTags(n)),
            }
        }
        Ok(changed)
    }

    async fn disconnect(
        &self,
        target: &Target,
        how: &Disconnect,
    ) -> Result<KickOutcome, NodeError> {
        let mut out = KickOutcome::default();
        for c in self.targets(target) {
            if how.token.is_some() && token_of(&c) != how.token {
                continue;
            }
            if c.disconnect(how.code, &how.reason) {
                out.closed += 1;
                if let Some(u) = c.user_id() {
                    out.users.push(u);
                }
            }
        }
        Ok(out)
    }

    async fn user_of(&self, id: &ClientId) -> Result<Option<UserId>, NodeError> {
        Ok(self.local.registry().get(id).and_then(|c| c.user_id()))
    }

    async fn online(&self, q: &OnlineQuery) -> Result<OnlinePage, NodeError> {
        let reg = self.local.registry();
        let candidates = match (&q.tag, q.user) {
            (Some(t), _) => reg.tag_members(t),
            (None, Some(u)) => reg.user_clients(u),
            (None, None) => reg.all(),
        };
        let mut rows: Vec<Row> = candidates
            .iter()
            .filter(|c| {
                q.user.is_none_or(|u| c.user_id() == Some(u))
                    && q.tag.as_ref().is_none_or(|t| c.has_tag(t))
            })
            .map(|c| Row::of(c))
            .filter(|r| q.matches_text(&r.username, &r.ip))
            .collect();
        sort_rows(&mut rows);
        let total = rows.len();
        let rows = rows
            .into_iter()
            .skip(q.offset())
            .take(q.page_size as usize)
            .collect();
        Ok(OnlinePage { rows, total })
    }

    async fn counts(&self) -> Result<Counts, NodeError> {
        let (connections, users, tags) = self.local.registry().counts();
        Ok(Counts {
            connections,
            users,
            tags,
        })
    }

    async fn tag_counts(&self) -> Result<Vec<(String, usize)>, NodeError> {
        Ok(self
            .local
            .registry()
            .tag_counts()
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect())
    }
}
