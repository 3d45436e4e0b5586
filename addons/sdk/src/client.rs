//! One connection as the rest of the system sees it: identity, metadata, tags, queue, session.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::identity::{Identity, UserId};
use crate::outbox::{CloseRequest, Outbound, Outbox, PushOutcome};
use crate::protocol::{Envelope, FrameData, close, code, unix_now};
use crate::tag::Tag;

/// A connection id, unique across the cluster: `<node prefix>.<counter>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 64;

    /// Builds an id from a node prefix and a per-node counter.
    pub fn new(node_prefix: &str, n: u64) -> Self {
        ClientId(Arc::from(format!("{node_prefix}.{n}")))
    }

    /// Accepts an id received from outside (API, cluster bus); `None` if it cannot be one.
    pub fn parse(s: &str) -> Option<Self> {
        (!s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| ClientId(Arc::from(s)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", &*self.0)
    }
}

impl Serialize for ClientId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ClientId::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid client id"))
    }
}

/// Facts fixed when the connection was accepted.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    /// Client IP (from `X-Forwarded-For` only behind a trusted proxy).
    pub ip: String,
    /// Raw `User-Agent`.
    pub user_agent: String,
    /// Operating system parsed from the user agent.
    pub os: String,
    /// Browser parsed from the user agent.
    pub browser: String,
    /// Unix seconds of the upgrade.
    pub first_time: i64,
    /// The node holding the socket.
    pub node: Arc<str>,
}

/// A per-connection key/value store for handlers and middleware.
#[derive(Default)]
pub struct Session(Mutex<HashMap<String, Value>>);

impl Session {
    /// Reads a value.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.0.lock().get(key).cloned()
    }
    /// Stores a value, returning the previous one.
    pub fn set(&self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.0.lock().insert(key.into(), value)
    }
    /// Removes a value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.0.lock().remove(key)
    }
    /// Number of stored keys.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }
}

/// A live connection. Shared (`Arc`) between the registry, handlers and the socket task.
pub struct Client {
    id: ClientId,
    info: ClientInfo,
    identity: RwLock<Option<Arc<Identity>>>,
    heartbeat: AtomicI64,
    tags: Mutex<BTreeSet<Tag>>,
    outbox: Outbox,
    session: Session,
    marks: Mutex<Vec<(Arc<str>, u64)>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("user_id", &self.user_id())
            .finish()
    }
}

impl Client {
    /// Creates the shared state of a new connection.
    pub fn new(
        id: ClientId,
        info: ClientInfo,
        identity: Option<Identity>,
        send_queue_bytes: usize,
    ) -> Self {
        let now = unix_now();
        Client {
            id,
            info,
            identity: RwLock::new(identity.map(Arc::new)),
            heartbeat: AtomicI64::new(now),
            tags: Mutex::new(BTreeSet::new()),
            outbox: Outbox::new(send_queue_bytes),
            session: Session::default(),
            marks: Mutex::new(Vec::new()),
        }
    }

    /// Records the offset a stream had when this connection started receiving it live.
    /// Only the server's hub calls this, under the stream's lock.
    #[doc(hidden)]
    pub fn set_stream_mark(&self, stream: &str, offset: u64) {
        let mut m = self.marks.lock();
        match m.iter_mut().find(|(s, _)| &**s == stream) {
            Some(e) => e.1 = offset,
            None => m.push((Arc::from(stream), offset)),
        }
    }

    /// The offset recorded by [`Client::set_stream_mark`].
    #[doc(hidden)]
    pub fn stream_mark(&self, stream: &str) -> Option<u64> {
        self.marks
            .lock()
            .iter()
            .find(|(s, _)| &**s == stream)
            .map(|e| e.1)
    }

    /// Forgets a stream mark (after leaving a tag or changing user).
    #[doc(hidden)]
    pub fn clear_stream_mark(&self, stream: &str) {
        self.marks.lock().retain(|(s, _)| &**s != stream);
    }

    /// The connection id.
    pub fn id(&self) -> &ClientId {
        &self.id
    }
    /// Facts from the handshake.
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }
    /// Who the connection acts as, `None` for an anonymous client on an exempt path.
    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.identity.read().clone()
    }
    /// The user, if the connection belongs to one.
    pub fn user_id(&self) -> Option<UserId> {
        self.identity.read().as_ref().and_then(|i| i.user_id)
    }
    /// The user's name, empty when anonymous.
    pub fn username(&self) -> String {
        self.identity
            .read()
            .as_ref()
            .map(|i| i.username.clone())
            .unwrap_or_default()
    }
    /// Replaces the identity. Only the server's registry calls this, so that its user index
    /// changes in the same step.
    #[doc(hidden)]
    pub fn set_identity(&self, identity: Option<Identity>) {
        *self.identity.write() = identity.map(Arc::new);
    }
    /// Unix seconds of the last inbound frame.
    pub fn heartbeat_time(&self) -> i64 {
        self.heartbeat.load(Ordering::Relaxed)
    }
    /// Records inbound activity.
    pub fn touch(&self) {
        self.heartbeat.store(unix_now(), Ordering::Relaxed);
    }
    /// The connection's tags, sorted.
    pub fn tags(&self) -> Vec<Tag> {
        self.tags.lock().iter().cloned().collect()
    }
    /// Whether the connection is in `tag`.
    pub fn has_tag(&self, tag: &Tag) -> bool {
        self.tags.lock().contains(tag)
    }
    /// Number of tags.
    pub fn tag_count(&self) -> usize {
        self.tags.lock().len()
    }
    /// Mutable access to the tag set. Only the registry calls this, under its own lock.
    #[doc(hidden)]
    pub fn tags_mut(&self) -> parking_lot::MutexGuard<'_, BTreeSet<Tag>> {
        self.tags.lock()
    }
    /// The per-connection key/value store.
    pub fn session(&self) -> &Session {
        &self.session
    }
    /// The send queue (the socket task drains it).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Queues an already-serialised frame. Returns whether it was queued.
    pub fn send_frame(&self, frame: Outbound) -> bool {
        self.outbox.push(frame) == PushOutcome::Queued
    }

    /// Queues a stream push (held while the connection recovers). Returns whether it was queued.
    pub fn send_stream_frame(&self, frame: Outbound) -> bool {
        self.outbox.push_stream(frame) == PushOutcome::Queued
    }

    /// Queues an envelope, as text or (for replies to binary requests) binary.
    pub fn send_envelope<D: FrameData + ?Sized>(
        &self,
        env: &Envelope<'_, D>,
        binary: bool,
    ) -> bool {
        let text = env.encode();
        let frame = if binary {
            Outbound::Binary(Bytes::from(text))
        } else {
            Outbound::Text(text)
        };
        self.send_frame(frame)
    }

    /// Sends `{"event", "data", "code": 0}` to this connection (hotgo's `SendSuccess`).
    pub fn send_success(&self, event: &str, data: &Value) -> bool {
        self.send_envelope(&Envelope::new(event, data), false)
    }

    /// Sends `{"event", "code": -1, "errorMsg"}` to this connection (hotgo's `SendError`).
    pub fn send_error(&self, event: &str, message: &str) -> bool {
        let mut env = Envelope::new(event, &Value::Null);
        env.code = code::HANDLER_ERROR;
        env.error_msg = Some(message);
        self.send_envelope(&env, false)
    }

    /// Sends `kick {reason}` and then closes with 4001.
    pub fn kick(&self, reason: &str) -> bool {
        let data = serde_json::json!({ "reason": reason });
        self.send_success("kick", &data);
        self.close(close::KICKED, reason, true)
    }

    /// Closes with `code` after what is queued has been written. A kick (4001) is announced
    /// with `kick {reason}` first, so the client knows not to reconnect at once.
    pub fn disconnect(&self, code: u16, reason: &str) -> bool {
        if code == close::KICKED {
            self.kick(reason)
        } else {
            self.close(code, reason, true)
        }
    }

    /// Asks the socket task to close with `code`. `flush` writes queued frames first.
    pub fn close(&self, code: u16, reason: &str, flush: bool) -> bool {
        self.outbox.close(CloseRequest {
            code,
            reason: truncate_reason(reason),
            flush,
        })
    }
}

/// Close reasons are limited to 123 bytes on the wire; cut at a character boundary.
fn truncate_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_string();
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_is_cut_to_123_bytes_on_a_char_boundary() {
        let r = truncate_reason(&"é".repeat(100));
        assert!(r.len() <= 123);
        assert!(r.chars().all(|c| c == 'é'));
    }

    #[test]
    fn client_ids_parse_only_printable_ascii() {
        assert!(ClientId::parse("abc.1").is_some());
        assert!(ClientId::parse("").is_none());
        assert!(ClientId::parse("a b").is_none());
        assert!(ClientId::parse(&"x".repeat(65)).is_none());
    }

    #[test]
    fn kick_queues_the_reason_then_closes() {
        let c = Client::new(ClientId::new("n", 1), ClientInfo::default(), None, 1 << 20);
        assert!(c.kick("bye"));
        let mut out = Vec::new();
        let close = c.outbox().drain(&mut out).unwrap();
        assert_eq!(close.code, 4001);
        assert_eq!(out.len(), 1);
    }
}
