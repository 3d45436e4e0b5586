//! The single-node hub: the sdk's send functions over the local registry, with delivery
//! streams and history. Membership changes that affect streams (connect, login,
//! join) go through here so each connection knows from which offset it received a stream live.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::websocket::client::Connection;
use crate::websocket::outbox::Outbound;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_sdk::event::EventError;
use switchboard_sdk::protocol::{Push, code};
use switchboard_sdk::{Audience, ClientId, Identity, Tag, UserId};

use super::history::{MemoryHistory, Recovery, ShardGuard};
use super::registry::{LimitError, Registry, Reservation, TagChangeError, encode};

/// The stream of everything sent to all.
pub const ALL_STREAM: &str = "all";

/// `user:<id>`.
pub fn user_stream(user: UserId) -> String {
    format!("user:{user}")
}

/// `tag:<name>`.
pub fn tag_stream(tag: &Tag) -> String {
    format!("tag:{tag}")
}

/// Most streams one `recover` may name.
pub const MAX_RECOVER_STREAMS: usize = 128;

/// One stream in a `recover` request.
#[derive(Debug, Deserialize, poem_openapi::Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct RecoverFrom {
    /// Last offset the client saw.
    pub offset: u64,
    /// Epoch it saw it in.
    pub epoch: String,
}

/// The `recover` request data.
#[derive(Debug, Deserialize, poem_openapi::Object)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Stream name → position.
    pub streams: BTreeMap<String, RecoverFrom>,
}

impl RecoverRequest {
    /// Refuses requests naming too many streams.
    pub fn check(&self) -> Result<(), EventError> {
        if self.streams.len() > MAX_RECOVER_STREAMS {
            return Err(EventError::bad_request(format!(
                "data.streams: at most {MAX_RECOVER_STREAMS} streams"
            )));
        }
        Ok(())
    }
}

/// The `recover` reply being assembled: `recovered` per stream, `errors` for refused ones.
#[derive(Default)]
pub struct RecoverReply {
    recovered: serde_json::Map<String, Value>,
    errors: serde_json::Map<String, Value>,
}

impl RecoverReply {
    /// Records a stream the connection may not read (403 for that stream).
    pub fn forbid(&mut self, stream: String) {
        self.recovered.insert(stream.clone(), Value::Bool(false));
        self.errors.insert(
            stream,
            json!({"code": code::FORBIDDEN, "message": "not a stream of this connection"}),
        );
    }

    /// Records whether a stream was recovered.
    pub fn set(&mut self, stream: String, ok: bool) {
        self.recovered.insert(stream, Value::Bool(ok));
    }

    /// The reply data.
    pub fn into_value(self) -> Value {
        let mut out = json!({ "recovered": self.recovered });
        if !self.errors.is_empty() {
            out["errors"] = Value::Object(self.errors);
        }
        out
    }
}

/// The single-node hub.
pub struct LocalHub {
    registry: Arc<Registry>,
    history: Arc<MemoryHistory>,
}

impl LocalHub {
    /// Wraps a registry and a history.
    pub fn new(registry: Arc<Registry>, history: Arc<MemoryHistory>) -> Self {
        LocalHub { registry, history }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The history.
    pub fn history(&self) -> &Arc<MemoryHistory> {
        &self.history
    }

    fn lock_many(&self, streams: &[&str]) -> Vec<(usize, ShardGuard<'_>)> {
        let mut idx: Vec<usize> = streams.iter().map(|s| MemoryHistory::shard_of(s)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| (i, self.history.lock_index(i)))
            .collect()
    }

    /// Registers a connection: records where its `all` and user streams stand, queues the
    /// `connected` greeting built by `greeting` from those positions, and indexes it — all under
    /// the streams' locks, so the greeting comes first and no push is missed or doubled.
    pub fn register(
        &self,
        client: Arc<Connection>,
        reservation: Reservation,
        greeting: impl FnOnce(Value) -> Value,
    ) {
        let user = client.user_id().map(user_stream);
        let mut names: Vec<&str> = vec![ALL_STREAM];
        if let Some(u) = &user {
            names.push(u);
        }
        let mut guards = self.lock_many(&names);
        let mut positions = serde_json::Map::new();
        for name in &names {
            let shard = MemoryHistory::shard_of(name);
            if let Some((_, g)) = guards.iter_mut().find(|(i, _)| *i == shard) {
                let (offset, epoch) = g.position(name);
                client.set_stream_mark(name, offset);
                positions.insert(
                    name.to_string(),
                    json!({"offset": offset, "epoch": &*epoch}),
                );
            }
        }
        client.send_success("connected", &greeting(Value::Object(positions)));
        self.registry.register(client, reservation);
        drop(guards);
    }

    /// Adds a tag to a connection, marking where its stream stands.
    pub fn join(&self, id: &ClientId, tag: Tag) -> Result<Vec<Tag>, TagChangeError> {
        let stream = tag_stream(&tag);
        let mut g = self.history.lock(&stream);
        let list = self.registry.join(id, tag)?;
        if let Some(c) = self.registry.get(id) {
            if c.stream_mark(&stream).is_none() {
                let (offset, _) = g.position(&stream);
                c.set_stream_mark(&stream, offset);
            }
        }
        Ok(list)
    }

    /// Removes a tag from a connection.
    pub fn quit(&self, id: &ClientId, tag: &Tag) -> Result<Vec<Tag>, TagChangeError> {
        let list = self.registry.quit(id, tag)?;
        if let Some(c) = self.registry.get(id) {
            c.clear_stream_mark(&tag_stream(tag));
        }
        Ok(list)
    }

    /// Gives an anonymous connection an identity (socket `login`).
    pub fn set_identity(
        &self,
        client: &Arc<Connection>,
        identity: Identity,
    ) -> Result<(), LimitError> {
        let new_stream = identity.user_id.map(user_stream);
        let old_stream = client.user_id().map(user_stream);
        let _guard = new_stream.as_ref().map(|s| self.history.lock(s));
        self.registry.set_identity(client, identity)?;
        if let Some(old) = old_stream {
            client.clear_stream_mark(&old);
        }
        if let (Some(stream), Some(mut g)) = (new_stream, _guard) {
            let (offset, _) = g.position(&stream);
            client.set_stream_mark(&stream, offset);
        }
        Ok(())
    }

    /// Publishes into a tag's stream, optionally skipping the sender (`publish` event).
    pub fn publish_tag(&self, tag: &Tag, push: &Push, except: Option<&ClientId>) -> usize {
        let stream = tag_stream(tag);
        let mut g = self.history.lock(&stream);
        let frame = g.append(&stream, |pos| encode(push, Some(pos)));
        self.registry.deliver_tag(tag, &frame, except)
    }

    /// Whether a connection may recover `stream`: `all`, its own user, tags it joined.
    pub fn may_read_stream(client: &Connection, stream: &str) -> bool {
        if stream == ALL_STREAM {
            return true;
        }
        if let Some(id) = stream.strip_prefix("user:") {
            return client.user_id().is_some_and(|u| u.to_string() == id);
        }
        if let Some(name) = stream.strip_prefix("tag:") {
            return Tag::parse(name).is_ok_and(|t| client.has_tag(&t));
        }
        false
    }

    /// Replays what the client missed on each stream it may read, in order, and answers
    /// `{"recovered": {stream: bool}, "errors": {stream: {code, message}}}`.
    pub fn recover(&self, client: &Connection, req: RecoverRequest) -> Result<Value, EventError> {
        req.check()?;
        let mut reply = RecoverReply::default();
        for (stream, from) in req.streams {
            if !Self::may_read_stream(client, &stream) {
                reply.forbid(stream);
                continue;
            }
            let mut g = self.history.lock(&stream);
            let (current, _) = g.position(&stream);
            let live_from = client.stream_mark(&stream).unwrap_or(current);
            let ok = match g.range(&stream, &from.epoch, from.offset, live_from) {
                Recovery::Frames(frames) => {
                    for f in frames {
                        client.send_frame(f);
                    }
                    true
                }
                Recovery::Lost => false,
            };
            reply.set(stream, ok);
        }
        // Replays are queued; held live pushes follow them, in order.
        client.outbox().release();
        Ok(reply.into_value())
    }
}

impl LocalHub {
    /// Numbers `push` in its audience's stream and queues it to this node's recipients under
    /// the stream's lock; returns how many were reached.
    pub fn publish(&self, audience: &Audience, push: &Push, except: Option<&ClientId>) -> usize {
        match audience {
            Audience::All => {
                let mut g = self.history.lock(ALL_STREAM);
                let frame: Outbound = g.append(ALL_STREAM, |pos| encode(push, Some(pos)));
                self.registry.deliver_all(&frame)
            }
            Audience::Client(id) => self.registry.deliver_client(id, &encode(push, None)),
            Audience::User(user) => {
                let stream = user_stream(*user);
                let mut g = self.history.lock(&stream);
                let frame = g.append(&stream, |pos| encode(push, Some(pos)));
                self.registry.deliver_user(*user, &frame)
            }
            Audience::Tag(tag) => self.publish_tag(tag, push, except),
        }
    }
}
