//! One live connection as the server holds it: identity, metadata, tags, send queue, session
//! and stream marks.
//!
//! The registry's indexes hold this concrete type, so a push to many recipients queues on each
//! directly (no dynamic call per recipient). Handlers get a [`switchboard_sdk::Client`], a
//! narrow handle over the same connection through [`ClientHandle`]: they can read it, send to
//! it and close it, but its tags and identity change only here, under the registry's lock.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use smallvec::SmallVec;
use switchboard_sdk::protocol::{Envelope, FrameData, close, unix_now};
use switchboard_sdk::{ClientHandle, ClientId, ClientInfo, Frame, Identity, Session, Tag, UserId};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::outbox::{CloseRequest, Outbound, Outbox, PushOutcome};

/// Stream marks: (stream name, offset) pairs.
type Marks = SmallVec<[(Arc<str>, u64); 2]>;

/// A live connection. Shared (`Arc`) between the registry, handlers and the socket task.
pub struct Connection {
    id: ClientId,
    info: ClientInfo,
    identity: RwLock<Option<Arc<Identity>>>,
    heartbeat: AtomicI64,
    tags: Mutex<BTreeSet<Tag>>,
    outbox: Outbox,
    session: Session,
    /// Where each stream stood when this connection started receiving it live. Kept inline:
    /// almost every connection has exactly two (`all` and its user's).
    marks: Mutex<Marks>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("user_id", &self.user_id())
            .finish()
    }
}

impl Connection {
    /// Creates the shared state of a new connection.
    pub fn new(
        id: ClientId,
        info: ClientInfo,
        identity: Option<Identity>,
        send_queue_bytes: usize,
    ) -> Self {
        Connection {
            id,
            info,
            identity: RwLock::new(identity.map(Arc::new)),
            heartbeat: AtomicI64::new(unix_now()),
            tags: Mutex::new(BTreeSet::new()),
            outbox: Outbox::new(send_queue_bytes),
            session: Session::default(),
            marks: Mutex::new(SmallVec::new()),
        }
    }

    /// The handle handlers and addons get.
    pub fn handle(self: &Arc<Self>) -> switchboard_sdk::Client {
        switchboard_sdk::Client::new(self.clone())
    }

    /// Records the offset a stream had when this connection started receiving it live. The
    /// hub calls this under the stream's lock.
    pub fn set_stream_mark(&self, stream: &str, offset: u64) {
        let mut m = self.marks.lock();
        match m.iter_mut().find(|(s, _)| &**s == stream) {
            Some(e) => e.1 = offset,
            None => m.push((stream_name(stream), offset)),
        }
    }

    /// The offset recorded by [`Connection::set_stream_mark`].
    pub fn stream_mark(&self, stream: &str) -> Option<u64> {
        self.marks
            .lock()
            .iter()
            .find(|(s, _)| &**s == stream)
            .map(|e| e.1)
    }

    /// Forgets a stream mark (after leaving a tag or changing user).
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
    /// Replaces the identity. Only the registry calls this, so that its user index changes in
    /// the same step.
    pub(super) fn set_identity(&self, identity: Option<Identity>) {
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
    /// The tag set for changing it. Only the registry calls this, under its own lock, so the
    /// tag index and the connection's own set never disagree.
    pub(super) fn tags_mut(&self) -> parking_lot::MutexGuard<'_, BTreeSet<Tag>> {
        self.tags.lock()
    }
    /// The per-connection key/value store.
    pub fn session(&self) -> &Session {
        &self.session
    }
    /// The send queue (written by the socket task, or by the sender when the socket is quiet).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Queues an already-serialised frame. Returns whether it was queued.
    pub fn send_frame(&self, frame: Outbound) -> bool {
        self.outbox.push(frame) == PushOutcome::Queued
    }

    /// Queues an envelope, as text or (for replies to binary requests) binary.
    pub fn send_envelope<D: FrameData + ?Sized>(
        &self,
        env: &Envelope<'_, D>,
        binary: bool,
    ) -> bool {
        self.send_frame(Outbound::encode(env, binary))
    }

    /// Sends `{"event", "data", "code": 0}` to this connection.
    pub fn send_success(&self, event: &str, data: &Value) -> bool {
        self.send_envelope(&Envelope::new(event, data), false)
    }

    /// Closes with `code` after what is queued has been written. A kick (4001) is announced
    /// with `kick {reason}` first, so the client knows not to reconnect at once.
    pub fn disconnect(&self, code: u16, reason: &str) -> bool {
        if code == close::KICKED {
            let data = serde_json::json!({ "reason": reason });
            self.send_success("kick", &data);
        }
        self.close(code, reason, true)
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

impl ClientHandle for Connection {
    fn id(&self) -> &ClientId {
        &self.id
    }
    fn info(&self) -> &ClientInfo {
        &self.info
    }
    fn identity(&self) -> Option<Arc<Identity>> {
        Connection::identity(self)
    }
    fn tags(&self) -> Vec<Tag> {
        Connection::tags(self)
    }
    fn has_tag(&self, tag: &Tag) -> bool {
        Connection::has_tag(self, tag)
    }
    fn session(&self) -> &Session {
        &self.session
    }
    fn heartbeat_time(&self) -> i64 {
        Connection::heartbeat_time(self)
    }
    fn send(&self, frame: Frame) -> bool {
        self.send_frame(match frame {
            // Both conversions reuse the buffer: no copy.
            Frame::Text(text) => Outbound::Text(Utf8Bytes::from(text)),
            Frame::Binary(bytes) => Outbound::Binary(bytes),
        })
    }
    fn disconnect(&self, code: u16, reason: &str) -> bool {
        Connection::disconnect(self, code, reason)
    }
}

/// A stream's name for a mark: every connection marks `all`, so that one is shared rather than
/// allocated per connection.
fn stream_name(stream: &str) -> Arc<str> {
    static ALL: std::sync::LazyLock<Arc<str>> =
        std::sync::LazyLock::new(|| Arc::from(super::hub::ALL_STREAM));
    if stream == super::hub::ALL_STREAM {
        ALL.clone()
    } else {
        Arc::from(stream)
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
    fn kick_queues_the_reason_then_closes() {
        let c = Arc::new(Connection::new(
            ClientId::new("n", 1),
            ClientInfo::default(),
            None,
            1 << 20,
        ));
        assert!(c.handle().kick("bye"));
        let mut out = Vec::new();
        let close = c.outbox().drain(&mut out).unwrap();
        assert_eq!(close.code, 4001);
        assert_eq!(out.len(), 1);
    }
}
