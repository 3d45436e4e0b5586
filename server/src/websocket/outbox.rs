//! A connection's send queue, bounded by bytes, and the only writer of its data frames.
//!
//! Senders never wait: a push either fits under the byte limit or the connection is marked
//! for closing with 4008 (the slow client alone pays). Frames leave the queue only once they
//! are on the wire, written front first under the queue's lock by whoever gets there: a
//! delivery to a socket that has been quiet is written by the sending side without waking
//! the connection's task ([`Outbox::push_delivery`], then [`Outbox::write_now`]); anything
//! the kernel does not take at once, and pushes to a socket that is busy, are left to the
//! connection task, which batches what piled up into one vectored write.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use switchboard_sdk::protocol::{Envelope, FrameData, close};

use super::io::{Written, write_queue};

/// Per-frame bookkeeping overhead counted against the byte limit, so a flood of empty frames
/// is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// A socket written to more recently than this is busy: pushes to it are left to its task,
/// which writes everything that piled up meanwhile at once. Past it, a delivery is written
/// straight away by the sender: at low rates that saves a task wake-up per recipient, at high
/// rates the batching saves a syscall per push.
const BUSY_WINDOW: Duration = Duration::from_millis(5);

/// A frame waiting to be written.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A text frame (pushes, replies to text requests).
    Text(Utf8Bytes),
    /// A binary frame (replies to binary requests).
    Binary(Bytes),
}

impl Outbound {
    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// The socket, once the connection task has it (the greeting is queued before).
    wire: Option<Arc<TcpStream>>,
    /// Bytes of the queue's front frame already on the wire: it must be finished before
    /// anything else is written, and is never dropped.
    front_sent: usize,
    /// tungstenite's last write stopped inside its buffer, i.e. inside a control frame: no
    /// data frame may be written until its task writes the rest.
    control_torn: bool,
    /// When anything was last written.
    last_write: Option<Instant>,
    /// Frames finished by a control write, not yet counted in the metrics.
    uncounted: Written,
    /// Bytes that go out before any frame: the rest of the HTTP `101` answer, which thus
    /// shares a write with the greeting.
    lead: Bytes,
}

impl State {
    /// Forgets queued and held frames, except a front frame already part-written.
    fn discard(&mut self) {
        let keep = if self.front_sent > 0 {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.clear();
        self.held = None;
        self.bytes = 0;
        if let Some(front) = keep {
            self.bytes = front.len() + FRAME_OVERHEAD;
            self.queue.push_back(front);
        }
    }

    /// Writes what the socket takes now, at most `max_frames` frames; `Ok(true)` once they
    /// are written.
    fn write(
        &mut self,
        now: Instant,
        max_frames: usize,
        written: &mut Written,
    ) -> io::Result<bool> {
        let Some(wire) = self.wire.as_ref() else {
            return Ok(self.queue.is_empty());
        };
        if self.control_torn {
            return Ok(self.queue.is_empty());
        }
        let before = self.queue.len();
        let bytes = &mut self.bytes;
        let result = write_queue(
            wire,
            &mut self.lead,
            &mut self.queue,
            &mut self.front_sent,
            max_frames,
            |f| {
                *bytes -= f.len() + FRAME_OVERHEAD;
                written.frames += 1;
                written.bytes += f.len() as u64;
            },
        );
        if self.queue.len() != before || self.front_sent > 0 {
            self.last_write = Some(now);
        }
        if self.queue.capacity() > 64 && self.queue.len() < 8 {
            self.queue.shrink_to(8);
        }
        result
    }
}

/// The bounded queue. Locks are held only for a push or a non-blocking write, never across
/// an await.
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

    /// Gives the outbox the socket to write to (the connection task, once upgraded), with
    /// bytes to write before any frame (the HTTP `101`, or nothing).
    pub fn attach(&self, wire: Arc<TcpStream>, lead: Bytes) {
        let mut st = self.state.lock();
        st.wire = Some(wire);
        let wake = !lead.is_empty();
        st.lead = lead;
        drop(st);
        if wake {
            // The lead goes out even when no frame is queued to carry it.
            self.notify.notify_one();
        }
    }

    /// Takes the socket back when the connection ends, so it closes with its task.
    pub fn detach(&self) -> Option<Arc<TcpStream>> {
        self.state.lock().wire.take()
    }

    /// Queues a frame without waiting; the connection task writes it.
    pub fn push(&self, frame: Outbound) -> PushOutcome {
        self.push_inner(frame, false, None).0
    }

    /// Queues a stream push; while streams are held (see [`Outbox::hold`]) it waits in the
    /// hold buffer, under the same byte limit.
    pub fn push_stream(&self, frame: Outbound) -> PushOutcome {
        self.push_inner(frame, true, None).0
    }

    /// Queues a delivery (a push to many, or to a user or tag). When the socket has been
    /// quiet for a while and nothing is waiting, the task is not woken and the second value is
    /// `true`: the caller writes it with [`Outbox::write_now`] once its locks are released.
    pub fn push_delivery(
        &self,
        frame: Outbound,
        stream: bool,
        now: Instant,
    ) -> (PushOutcome, bool) {
        self.push_inner(frame, stream, Some(now))
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

    fn push_inner(
        &self,
        frame: Outbound,
        stream: bool,
        direct: Option<Instant>,
    ) -> (PushOutcome, bool) {
        let cost = frame.len() + FRAME_OVERHEAD;
        let mut st = self.state.lock();
        if st.closing.is_some() {
            return (PushOutcome::Closed, false);
        }
        if st.bytes + cost > self.limit {
            st.closing = Some(CloseRequest {
                code: close::SLOW_CLIENT,
                reason: "send queue full".into(),
                flush: false,
            });
            st.discard();
            drop(st);
            self.notify.notify_one();
            return (PushOutcome::Overflow, false);
        }
        st.bytes += cost;
        if stream && let Some(held) = st.held.as_mut() {
            held.push_back(frame);
            return (PushOutcome::Queued, false);
        }
        let idle = st.queue.is_empty();
        st.queue.push_back(frame);
        let quiet = |now: Instant| {
            st.last_write
                .is_none_or(|t| now.saturating_duration_since(t) >= BUSY_WINDOW)
        };
        let write_now = idle && st.wire.is_some() && !st.control_torn && direct.is_some_and(quiet);
        drop(st);
        if !write_now {
            self.notify.notify_one();
        }
        (PushOutcome::Queued, write_now)
    }

    /// Writes what is queued without waiting, from the calling task; whatever the socket does
    /// not take now is left to the connection task, which is woken for it.
    pub fn write_now(&self, now: Instant, written: &mut Written) {
        let mut st = self.state.lock();
        let done = st.write(now, usize::MAX, written);
        drop(st);
        if !matches!(done, Ok(true)) {
            self.notify.notify_one();
        }
    }

    /// Wakes the connection task to write what is queued.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Writes the queue, waiting for the socket as needed (the connection task). Ready once
    /// the queue is empty; an error means the socket is gone.
    pub fn poll_write(&self, cx: &mut Context<'_>, written: &mut Written) -> Poll<io::Result<()>> {
        loop {
            let mut st = self.state.lock();
            if st.control_torn {
                return Poll::Ready(Err(io::Error::other(
                    "a control frame is part-written; flush tungstenite first",
                )));
            }
            let uncounted = std::mem::take(&mut st.uncounted);
            written.frames += uncounted.frames;
            written.bytes += uncounted.bytes;
            if st.write(Instant::now(), usize::MAX, written)? {
                return Poll::Ready(Ok(()));
            }
            let Some(wire) = st.wire.clone() else {
                return Poll::Ready(Ok(()));
            };
            drop(st);
            std::task::ready!(wire.poll_write_ready(cx))?;
        }
    }

    /// tungstenite's writes (control frames): the lead bytes and a data frame part-written
    /// are finished first, and a write that stops inside tungstenite's buffer keeps data
    /// frames out until the rest follows.
    pub fn poll_write_control(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut st = self.state.lock();
            let Some(wire) = st.wire.clone() else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            if (st.front_sent > 0 || !st.lead.is_empty()) && !st.control_torn {
                let mut written = std::mem::take(&mut st.uncounted);
                let finished = st.write(Instant::now(), 1, &mut written);
                st.uncounted = written;
                finished?;
            }
            if (st.front_sent == 0 && st.lead.is_empty()) || st.control_torn {
                match wire.try_write(buf) {
                    Ok(n) => {
                        st.control_torn = n < buf.len();
                        st.last_write = Some(Instant::now());
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            drop(st);
            std::task::ready!(wire.poll_write_ready(cx))?;
        }
    }

    /// Asks the connection to close; the first request wins. Returns whether this one did.
    pub fn close(&self, req: CloseRequest) -> bool {
        let mut st = self.state.lock();
        if st.closing.is_some() {
            return false;
        }
        if !req.flush {
            st.discard();
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

    /// The pending close request, if any.
    pub fn close_request(&self) -> Option<CloseRequest> {
        self.state.lock().closing.clone()
    }

    /// Moves every queued frame into `out` and returns the pending close request, if any
    /// (tests: what a connection without a socket would have written).
    #[cfg(test)]
    pub fn drain(&self, out: &mut Vec<Outbound>) -> Option<CloseRequest> {
        let mut st = self.state.lock();
        out.extend(st.queue.drain(..));
        st.bytes = st
            .held
            .as_ref()
            .map(|h| h.iter().map(|f| f.len() + FRAME_OVERHEAD).sum())
            .unwrap_or(0);
        st.closing.clone()
    }

    /// Bytes currently queued (including per-frame overhead).
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Whether frames wait in the queue (held ones do not count: nothing can write them yet).
    pub fn has_queued(&self) -> bool {
        !self.state.lock().queue.is_empty()
    }

    /// Resolves when something was queued or a close was requested.
    pub async fn ready(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A delivery to a quiet socket is written by the sender; one cut off by a full socket is
    /// finished before a control frame goes out; a push right after is left to the task (woken)
    /// and written behind it. The client reads every frame whole and in order.
    #[tokio::test]
    async fn direct_writes_control_frames_and_the_task_share_the_wire() {
        let (server, client) = super::super::io::tcp_pair().await;
        let o = Arc::new(Outbox::new(10 << 20));
        o.attach(Arc::new(server), Bytes::new());
        let big = "y".repeat(3 << 20);
        let now = Instant::now();
        let (outcome, write_now) = o.push_delivery(text_of(&big), true, now);
        assert_eq!((outcome, write_now), (PushOutcome::Queued, true));
        let mut written = Written::default();
        o.write_now(now, &mut written);
        assert_eq!(written.frames, 0, "3 MB cannot go out at once");
        let (_, write_now) = o.push_delivery(text(5), true, Instant::now());
        assert!(!write_now, "the socket is busy: its task writes this");
        let writer = {
            let o = o.clone();
            tokio::spawn(async move {
                // A ping from tungstenite's side, then the rest as the task would.
                let ping = [0x89u8, 0x00];
                let n = std::future::poll_fn(|cx| o.poll_write_control(cx, &ping))
                    .await
                    .unwrap();
                assert_eq!(n, 2);
                let mut written = Written::default();
                std::future::poll_fn(|cx| o.poll_write(cx, &mut written))
                    .await
                    .unwrap();
                written
            })
        };
        let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => assert_eq!(t.as_str(), big),
            other => panic!("wanted the big frame, got {other:?}"),
        }
        assert!(matches!(
            ws.next().await.unwrap().unwrap(),
            Message::Ping(_)
        ));
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => assert_eq!(t.len(), 5),
            other => panic!("wanted the small frame, got {other:?}"),
        }
        let written = writer.await.unwrap();
        assert_eq!(
            written.frames, 2,
            "the frame the control write finished is counted too"
        );
        assert_eq!(o.queued_bytes(), 0);
        assert!(o.detach().is_some());
    }

    fn text_of(s: &str) -> Outbound {
        Outbound::Text(Utf8Bytes::from(s.to_string()))
    }

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
