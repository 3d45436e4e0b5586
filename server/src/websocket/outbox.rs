//! A connection's send queue, bounded by bytes.
//!
//! Senders never wait: a push either fits under the byte limit or the connection is marked
//! for closing with 4008 (the slow client alone pays). The connection task drains the queue.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use switchboard_sdk::protocol::{Envelope, FrameData, close};

/// Per-frame bookkeeping overhead counted against the byte limit, so a flood of empty frames
/// is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// A frame waiting to be written.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A text frame (pushes, replies to text requests).
    Text(Utf8Bytes),
    /// A binary frame (replies to binary requests).
    Binary(Bytes),
}

impl Outbound {
    fn len(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Binary(b) => b.len(),
        }
    }
}

impl Outbound {
    /// Serialises an envelope into a frame: text, or binary for replies to binary requests.
    pub fn encode<D: FrameData + ?Sized>(env: &Envelope<'_, D>, binary: bool) -> Outbound {
        let text = env.encode();
        if binary {
            Outbound::Binary(Bytes::from(text))
        } else {
            Outbound::Text(Utf8Bytes::from(text))
        }
    }
}

/// Why and how a connection is to be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseRequest {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason (≤ 123 bytes on the wire).
    pub reason: String,
    /// Whether frames queued before the request are written first (kick: yes, overflow: no).
    pub flush: bool,
}

/// Result of [`Outbox::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued.
    Queued,
    /// The connection is closing; nothing was queued.
    Closed,
    /// The queue would have exceeded its limit; the connection is now closing with 4008.
    Overflow,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Outbound>,
    bytes: usize,
    closing: Option<CloseRequest>,
    /// While a reconnecting client recovers, live stream pushes wait here (counted in `bytes`).
    held: Option<VecDeque<Outbound>>,
}

/// The bounded queue. Locks are held only for a push or a drain, never across an await.
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    limit: usize,
}

impl Outbox {
    /// The largest frame a queue of `limit` bytes can ever take (when it is empty); a larger
    /// one would overflow it and close the connection with 4008 however fast the client reads.
    pub fn largest_frame(limit: usize) -> usize {
        limit.max(FRAME_OVERHEAD) - FRAME_OVERHEAD
    }

    /// A queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            limit: limit.max(FRAME_OVERHEAD),
        }
    }

    /// Queues a frame without waiting.
    pub fn push(&self, frame: Outbound) -> PushOutcome {
        self.push_inner(frame, false)
    }

    /// Queues a stream push; while streams are held (see [`Outbox::hold`]) it waits in the
    /// hold buffer, under the same byte limit.
    pub fn push_stream(&self, frame: Outbound) -> PushOutcome {
        self.push_inner(frame, true)
    }

    /// Starts holding stream pushes (a reconnecting client about to `recover`).
    pub fn hold(&self) {
        let mut st = self.state.lock();
        if st.held.is_none() {
            st.held = Some(VecDeque::new());
        }
    }

    /// Whether stream pushes are being held.
    pub fn is_holding(&self) -> bool {
        self.state.lock().held.is_some()
    }

    /// Stops holding: held pushes join the queue, in arrival order.
    pub fn release(&self) {
        let mut st = self.state.lock();
        if let Some(held) = st.held.take() {
            let any = !held.is_empty();
            st.queue.extend(held);
            drop(st);
            if any {
                self.notify.notify_one();
            }
        }
    }

    fn push_inner(&self, frame: Outbound, stream: bool) -> PushOutcome {
        let cost = frame.len() + FRAME_OVERHEAD;
        let mut st = self.state.lock();
        if st.closing.is_some() {
            return PushOutcome::Closed;
        }
        if st.bytes + cost > self.limit {
            st.closing = Some(CloseRequest {
                code: close::SLOW_CLIENT,
                reason: "send queue full".into(),
                flush: false,
            });
            st.queue.clear();
            st.held = None;
            st.bytes = 0;
            drop(st);
            self.notify.notify_one();
            return PushOutcome::Overflow;
        }
        st.bytes += cost;
        if stream && let Some(held) = st.held.as_mut() {
            held.push_back(frame);
            return PushOutcome::Queued;
        }
        st.queue.push_back(frame);
        drop(st);
        self.notify.notify_one();
        PushOutcome::Queued
    }

    /// Asks the connection to close; the first request wins. Returns whether this one did.
    pub fn close(&self, req: CloseRequest) -> bool {
        let mut st = self.state.lock();
        if st.closing.is_some() {
            return false;
        }
        if !req.flush {
            st.queue.clear();
            st.held = None;
            st.bytes = 0;
        }
        st.closing = Some(req);
        drop(st);
        self.notify.notify_one();
        true
    }

    /// Whether a close was requested.
    pub fn is_closing(&self) -> bool {
        self.state.lock().closing.is_some()
    }

    /// Moves every queued frame into `out` and returns the pending close request, if any.
    pub fn drain(&self, out: &mut Vec<Outbound>) -> Option<CloseRequest> {
        let mut st = self.state.lock();
        out.extend(st.queue.drain(..));
        st.bytes = st
            .held
            .as_ref()
            .map(|h| h.iter().map(|f| f.len() + FRAME_OVERHEAD).sum())
            .unwrap_or(0);
        if st.queue.capacity() > 64 {
            st.queue.shrink_to(8);
        }
        st.closing.clone()
    }

    /// Bytes currently queued (including per-frame overhead).
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Resolves when something was queued or a close was requested.
    pub async fn ready(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Outbound {
        Outbound::Text(Utf8Bytes::from("x".repeat(n)))
    }

    #[test]
    fn queues_until_the_byte_limit_then_closes_with_4008() {
        let o = Outbox::new(900);
        assert_eq!(o.push(text(400)), PushOutcome::Queued);
        assert_eq!(o.push(text(400)), PushOutcome::Overflow);
        assert_eq!(o.push(text(1)), PushOutcome::Closed);
        let mut out = Vec::new();
        let close = o.drain(&mut out).unwrap();
        assert_eq!(close.code, close::SLOW_CLIENT);
        assert!(
            out.is_empty(),
            "an overflowing queue is dropped, not flushed"
        );
    }

    #[test]
    fn held_stream_pushes_wait_behind_later_replies() {
        let o = Outbox::new(10_000);
        o.hold();
        assert_eq!(o.push_stream(text(1)), PushOutcome::Queued);
        assert_eq!(o.push(text(2)), PushOutcome::Queued);
        let mut out = Vec::new();
        o.drain(&mut out);
        assert_eq!(out.len(), 1, "only the reply");
        assert!(o.queued_bytes() > 0, "held bytes still count");
        o.release();
        o.drain(&mut out);
        assert_eq!(out.len(), 2);
        assert!(!o.is_holding());
    }

    #[test]
    fn kick_keeps_queued_frames_in_order() {
        let o = Outbox::new(10_000);
        o.push(text(1));
        o.push(text(2));
        assert!(o.close(CloseRequest {
            code: 4001,
            reason: "bye".into(),
            flush: true
        }));
        assert!(!o.close(CloseRequest {
            code: 4008,
            reason: "late".into(),
            flush: false
        }));
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out).unwrap().code, 4001);
        assert_eq!(out.len(), 2);
        assert_eq!(o.queued_bytes(), 0);
    }
}
