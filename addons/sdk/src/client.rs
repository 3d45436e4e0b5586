//! One connection as an addon sees it: who it is, its tags and session, and how to send to it
//! or close it. The connection itself (its send queue, its place in the indexes) belongs to
//! the server, which implements [`ClientHandle`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::identity::{Identity, UserId};
use crate::protocol::{Envelope, EventError, FrameData, close};
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

/// A serialised frame for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (pushes, replies to text requests).
    Text(String),
    /// A binary frame (replies to binary requests).
    Binary(Bytes),
}

/// What the server implements for each live connection. Addons never implement or call it
/// directly: they hold a [`Client`], which wraps it.
///
/// The server's fan-out does not go through this trait: its indexes hold its own connection
/// type and queue frames on it directly, so a push to many recipients costs no dynamic call
/// per recipient. Only a handler's calls on its one [`Client`] are dynamic.
pub trait ClientHandle: Send + Sync + 'static {
    /// The connection id.
    fn id(&self) -> &ClientId;
    /// Facts from the handshake.
    fn info(&self) -> &ClientInfo;
    /// Who the connection acts as, `None` when anonymous.
    fn identity(&self) -> Option<Arc<Identity>>;
    /// The connection's tags, sorted.
    fn tags(&self) -> Vec<Tag>;
    /// Whether the connection is in `tag`.
    fn has_tag(&self, tag: &Tag) -> bool;
    /// The per-connection key/value store.
    fn session(&self) -> &Session;
    /// Unix seconds of the last inbound frame.
    fn heartbeat_time(&self) -> i64;
    /// Queues a frame without waiting. Returns whether it was queued.
    fn send(&self, frame: Frame) -> bool;
    /// Closes with `code` after what is queued has been written; a kick (4001) is announced
    /// with `kick {reason}` first. Returns whether this request is the one that closes it.
    fn disconnect(&self, code: u16, reason: &str) -> bool;
}

/// A live connection, as event handlers and the hub hand it out. Cloning it is cheap (a
/// shared pointer).
///
/// ```
/// # use switchboard_sdk::Client;
/// fn greet(client: &Client) {
///     if client.user_id().is_some() {
///         client.send_success("greeting", &serde_json::json!({"hello": client.username()}));
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Client(Arc<dyn ClientHandle>);

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", self.id())
            .field("user_id", &self.user_id())
            .finish()
    }
}

impl Client {
    /// Wraps the server's connection.
    pub fn new(handle: Arc<dyn ClientHandle>) -> Self {
        Client(handle)
    }
    /// The connection id.
    pub fn id(&self) -> &ClientId {
        self.0.id()
    }
    /// Facts from the handshake.
    pub fn info(&self) -> &ClientInfo {
        self.0.info()
    }
    /// Who the connection acts as, `None` for an anonymous client on an exempt path.
    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.0.identity()
    }
    /// The user, if the connection belongs to one.
    pub fn user_id(&self) -> Option<UserId> {
        self.identity().and_then(|i| i.user_id)
    }
    /// The user's name, empty when anonymous.
    pub fn username(&self) -> String {
        self.identity()
            .map(|i| i.username.clone())
            .unwrap_or_default()
    }
    /// Unix seconds of the last inbound frame.
    pub fn heartbeat_time(&self) -> i64 {
        self.0.heartbeat_time()
    }
    /// The connection's tags, sorted. Tags change only through the server (`join`, `quit`,
    /// the HTTP API), which keeps its indexes in step.
    pub fn tags(&self) -> Vec<Tag> {
        self.0.tags()
    }
    /// Whether the connection is in `tag`.
    pub fn has_tag(&self, tag: &Tag) -> bool {
        self.0.has_tag(tag)
    }
    /// The per-connection key/value store.
    pub fn session(&self) -> &Session {
        self.0.session()
    }
    /// Queues an already-serialised frame. Returns whether it was queued.
    pub fn send_frame(&self, frame: Frame) -> bool {
        self.0.send(frame)
    }
    /// Queues an envelope, as text or (for replies to binary requests) binary.
    pub fn send_envelope<D: FrameData + ?Sized>(
        &self,
        env: &Envelope<'_, D>,
        binary: bool,
    ) -> bool {
        let text = env.encode();
        self.send_frame(if binary {
            Frame::Binary(Bytes::from(text))
        } else {
            Frame::Text(text)
        })
    }
    /// Sends `{"event", "data", "code": 0}` to this connection (hotgo's `SendSuccess`).
    pub fn send_success(&self, event: &str, data: &Value) -> bool {
        self.send_envelope(&Envelope::new(event, data), false)
    }
    /// Sends `{"event", "code": -1, "errorMsg"}` to this connection (hotgo's `SendError`).
    pub fn send_error(&self, event: &str, message: &str) -> bool {
        self.send_envelope(
            &Envelope::error(event, &EventError::failed(message), None),
            false,
        )
    }
    /// Sends `kick {reason}` and then closes with 4001.
    pub fn kick(&self, reason: &str) -> bool {
        self.0.disconnect(close::KICKED, reason)
    }
    /// Closes with `code` after what is queued has been written. A kick (4001) is announced
    /// with `kick {reason}` first, so the client knows not to reconnect at once.
    pub fn disconnect(&self, code: u16, reason: &str) -> bool {
        self.0.disconnect(code, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_parse_only_printable_ascii() {
        assert!(ClientId::parse("abc.1").is_some());
        assert!(ClientId::parse("").is_none());
        assert!(ClientId::parse("a b").is_none());
        assert!(ClientId::parse(&"x".repeat(65)).is_none());
    }

    /// A connection that records what the sdk asks of it.
    struct Recorder {
        id: ClientId,
        info: ClientInfo,
        session: Session,
        sent: Mutex<Vec<Frame>>,
        closed: Mutex<Option<(u16, String)>>,
    }

    impl ClientHandle for Recorder {
        fn id(&self) -> &ClientId {
            &self.id
        }
        fn info(&self) -> &ClientInfo {
            &self.info
        }
        fn identity(&self) -> Option<Arc<Identity>> {
            None
        }
        fn tags(&self) -> Vec<Tag> {
            Vec::new()
        }
        fn has_tag(&self, _tag: &Tag) -> bool {
            false
        }
        fn session(&self) -> &Session {
            &self.session
        }
        fn heartbeat_time(&self) -> i64 {
            0
        }
        fn send(&self, frame: Frame) -> bool {
            self.sent.lock().push(frame);
            true
        }
        fn disconnect(&self, code: u16, reason: &str) -> bool {
            self.closed
                .lock()
                .replace((code, reason.to_string()))
                .is_none()
        }
    }

    #[test]
    fn errors_go_out_as_one_envelope_and_kick_closes_with_4001() {
        let rec = Arc::new(Recorder {
            id: ClientId::new("n", 1),
            info: ClientInfo::default(),
            session: Session::default(),
            sent: Mutex::new(Vec::new()),
            closed: Mutex::new(None),
        });
        let client = Client::new(rec.clone());
        assert!(client.send_error("e", "no"));
        let Some(Frame::Text(text)) = rec.sent.lock().first().cloned() else {
            panic!("a text frame");
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["code"].as_i64()),
            (Some("e"), Some(-1))
        );
        assert_eq!(v["errorMsg"], "no");
        assert!(v.get("data").is_none());
        assert!(client.kick("bye"));
        assert_eq!(*rec.closed.lock(), Some((4001, "bye".to_string())));
    }
}
