//! One connection's task: reads frames and dispatches them in order, writes what piles up in
//! the send queue, pings, and enforces idle, expiry and size limits. One task per socket;
//! handlers run inline so a slow handler delays only its own connection.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use crate::websocket::client::Connection;
use crate::websocket::outbox::CloseRequest;
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use switchboard_sdk::Credential;
use switchboard_sdk::event::{EventContext, EventError, Reply};
use switchboard_sdk::protocol::{Envelope, FrameData, close, code, unix_now};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::WsState;
use super::builtins;
use super::frame;
use super::io;
use super::ratelimit::TokenBucket;

/// How long to wait for the peer's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Most already-arrived frames handled before their replies are written.
const MAX_BATCH: usize = 64;
/// Longest stream pushes are held for a client that announced `?recover=1` but never recovers.
const HOLD_LIMIT: Duration = Duration::from_secs(5);
/// Pings are due on multiples of this since the process started, not at each connection's own
/// instant: the connections that came up within one slot ping together, so the runtime wakes
/// once for a group (one timer-wheel turn, one burst of writes, the pongs read in one
/// readiness batch) instead of once or more per socket. A ping is at most this much late.
const PING_GRID: Duration = Duration::from_millis(100);

/// The first grid point at or after `at + interval`.
fn ping_due(at: Instant, interval: Duration) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let due = at + interval;
    let since = due.saturating_duration_since(origin).as_nanos();
    let grid = PING_GRID.as_nanos();
    let slots = since.div_ceil(grid);
    origin + Duration::from_nanos(u64::try_from(slots * grid).unwrap_or(u64::MAX))
}

/// What ended the connection.
enum Ending {
    /// Send this close frame.
    Close(u16, String),
    /// The peer closed or the socket failed; nothing more to send.
    Gone,
    /// The peer sent a close frame; tungstenite's reply has been flushed.
    PeerClosed(u16),
    /// A control write is stuck; try a close frame briefly, then drop.
    Stuck,
    /// One of our data-frame writes is stuck, maybe part-way through a frame: drop without
    /// writing anything more.
    Torn,
}

/// Runs a registered connection until it ends, then unregisters it.
///
/// A plain function returning an `async move` block rather than an `async fn`: an async fn
/// keeps a second copy of its by-value arguments in its state, and the stream is a few
/// hundred bytes that every connection's task would carry twice.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn run<S>(
    state: Arc<WsState>,
    client: Arc<Connection>,
    mut ws: WebSocketStream<S>,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        state.metrics.connects.inc();
        let ip = client.info().ip.clone();

        let ending = serve(&state, &client, &mut ws, &ip).await;
        // Leave every index before the close handshake, so sends stop counting this socket.
        // Boxed, like every await that happens once or rarely: the task of an idle connection
        // is as large as its largest await, inlined.
        Box::pin(state.node.detach(&client)).await;
        let code = match ending {
            Ending::Close(code, reason) => {
                Box::pin(send_close(&mut ws, code, reason, state.cfg.write_timeout)).await;
                code
            }
            Ending::Gone => 1006,
            Ending::PeerClosed(code) => code,
            Ending::Stuck => {
                // Best effort: the peer may drain its buffers and still learn why.
                let frame = CloseFrame {
                    code: CloseCode::from(close::SLOW_CLIENT),
                    reason: Utf8Bytes::from_static("write timeout"),
                };
                let close = timeout(Duration::from_millis(500), ws.close(Some(frame)));
                let _ = Box::pin(close).await;
                close::SLOW_CLIENT
            }
            Ending::Torn => close::SLOW_CLIENT,
        };
        state.metrics.closed(code);
        // The outbox's handle on the socket goes with the task, so the socket closes now.
        drop(client.outbox().detach());
    }
}

/// The `connected` greeting: who the connection is, liveness settings, and where its streams
/// stand (`{"all": {offset, epoch}, "user:<id>": {…}}`) so a first connection can recover from
/// there later.
pub fn greeting(state: &WsState, client: &Connection, streams: Value) -> Value {
    let g = Greeting {
        id: client.id().as_str().to_string(),
        user_id: client.user_id().map(|u| u.0),
        username: client.username(),
        node: state.node.id().to_string(),
        ping_interval: state.cfg.ping_interval.as_secs_f64(),
        idle_timeout: state.cfg.idle_timeout.as_secs_f64(),
        streams,
    };
    serde_json::to_value(&g).unwrap_or(Value::Null)
}

/// The `connected` push's data.
#[derive(serde::Serialize, poem_openapi::Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename = "ConnectedPush", rename_all = "camelCase")]
pub struct Greeting {
    /// The connection's id.
    pub id: String,
    /// `null` when anonymous or an API key.
    pub user_id: Option<i64>,
    /// Empty when anonymous.
    pub username: String,
    /// The node holding the connection.
    pub node: String,
    /// Seconds between server pings.
    pub ping_interval: f64,
    /// Seconds without a frame before the server closes with 4009.
    pub idle_timeout: f64,
    /// Where each stream stands (`{"all": {offset, epoch}, "user:<id>": {…}}`), for `recover`.
    pub streams: Value,
}

fn token_expiry(client: &Connection) -> Option<Instant> {
    let identity = client.identity()?;
    let Credential::Token { expires_at, .. } = identity.credential else {
        return None;
    };
    let left = expires_at - unix_now();
    Some(Instant::now() + Duration::from_secs(left.max(0) as u64))
}

async fn serve<S>(
    state: &WsState,
    client: &Arc<Connection>,
    ws: &mut WebSocketStream<S>,
    ip: &str,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &state.cfg;
    let mut bucket = TokenBucket::new(cfg.rate_limit.per_second, cfg.rate_limit.burst);
    let mut next_ping = ping_due(Instant::now(), cfg.ping_interval);
    let mut idle_deadline = Instant::now() + cfg.idle_timeout;
    let mut last_seen = Instant::now();
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut expiry = token_expiry(client).unwrap_or(far);
    let mut hold_deadline = if client.outbox().is_holding() {
        Instant::now() + HOLD_LIMIT
    } else {
        far
    };
    // One timer for all deadlines (ping, idle, hold, token expiry), re-armed only when the
    // earliest changes: creating a timer per loop turn would cost a timer-wheel insert and
    // removal for every push this socket receives.
    let timer = sleep_until(next_ping);
    tokio::pin!(timer);
    // Created once: the token's waiter list is shared by every connection, and a fresh
    // `cancelled()` per loop turn would lock it twice for every push this socket receives.
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    let mut armed: Option<Instant> = None;

    loop {
        let earliest = next_ping.min(idle_deadline).min(hold_deadline).min(expiry);
        if armed != Some(earliest) {
            timer.as_mut().reset(earliest);
            armed = Some(earliest);
        }
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                if let ending @ Ending::Torn = Box::pin(flush(state, client, ws)).await {
                    return ending;
                }
                return Ending::Close(close::GOING_AWAY, "server shutting down".into());
            }
            _ = client.outbox().ready() => {
                match Box::pin(flush(state, client, ws)).await {
                    Ending::Gone => {}
                    other => return other,
                }
            }
            msg = ws.next() => {
                let mut next = read_result(msg);
                // Handle every frame that has already arrived before writing the replies, so a
                // pipelining client gets one write for a batch instead of one per request. They
                // arrived together: one clock reading serves the whole batch.
                let mut handled = 0;
                let arrived = Instant::now();
                last_seen = arrived;
                client.touch();
                loop {
                    let msg = match next {
                        Ok(m) => m,
                        Err(ending) => return ending,
                    };
                    match msg {
                        // An empty frame is a heartbeat: no reply.
                        Message::Text(t) if t.is_empty() => record_in(state, 0),
                        Message::Binary(b) if b.is_empty() => record_in(state, 0),
                        Message::Text(t) => {
                            record_in(state, t.len());
                            let req = frame::parse_text_request(&t);
                            // Boxed: handler futures (database, Redis) are large; inlined they
                            // would make every idle connection's task as big as the biggest.
                            Box::pin(handle_request(state, client, req, false, (&mut bucket, arrived), ip)).await;
                        }
                        Message::Binary(b) => {
                            record_in(state, b.len());
                            let req = frame::parse_request(&b);
                            Box::pin(handle_request(state, client, req, true, (&mut bucket, arrived), ip)).await;
                        }
                        Message::Ping(_) => {
                            // tungstenite queued the pong; push it out now.
                            if Box::pin(timeout(cfg.write_timeout, ws.flush())).await.is_err() {
                                return Ending::Stuck;
                            }
                        }
                        Message::Pong(_) | Message::Frame(_) => {}
                        Message::Close(frame) => {
                            // tungstenite queued the reply to the peer's close; it is only
                            // written on the next read or flush, so flush before dropping.
                            let _ = Box::pin(timeout(cfg.write_timeout, ws.flush())).await;
                            return Ending::PeerClosed(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                        }
                    }
                    handled += 1;
                    if handled >= MAX_BATCH || client.outbox().is_closing() {
                        break;
                    }
                    // Poll once with this task's own waker (a no-op waker would leave the
                    // socket's readiness registered to nobody).
                    let ready = std::future::poll_fn(|cx| {
                        std::task::Poll::Ready(ws.poll_next_unpin(cx))
                    })
                    .await;
                    match ready {
                        std::task::Poll::Ready(m) => next = read_result(m),
                        std::task::Poll::Pending => break,
                    }
                }
                // A login may have changed the token whose expiry we watch.
                expiry = token_expiry(client).unwrap_or(far);
                if !client.outbox().is_closing() && client.outbox().has_queued() {
                    match Box::pin(flush(state, client, ws)).await {
                        Ending::Gone => {}
                        other => return other,
                    }
                }
            }
            _ = &mut timer => {
                armed = None;
                let now = Instant::now();
                if now >= expiry {
                    return Ending::Close(close::TOKEN_REVOKED, "token expired".into());
                }
                if now >= idle_deadline {
                    let deadline = last_seen + cfg.idle_timeout;
                    if now >= deadline {
                        return Ending::Close(close::IDLE_TIMEOUT, "idle timeout".into());
                    }
                    idle_deadline = deadline;
                }
                if now >= hold_deadline {
                    hold_deadline = far;
                    client.outbox().release();
                }
                if now >= next_ping {
                    next_ping = ping_due(now, cfg.ping_interval);
                    let ping = ws.send(Message::Ping(Bytes::new()));
                    let sent = Box::pin(timeout(cfg.write_timeout, ping)).await;
                    match sent {
                        Err(_) => return Ending::Stuck,
                        Ok(Err(_)) => return Ending::Gone,
                        Ok(Ok(())) => {}
                    }
                }
            }
        }
    }
}

/// A read's outcome as the message or how the connection ends. tungstenite's error type is
/// larger than a message (it can hold an HTTP response): turned into an [`Ending`] at once,
/// it is never part of the connection task's state.
fn read_result(read: Option<Result<Message, WsError>>) -> Result<Message, Ending> {
    match read {
        None => Err(Ending::Gone),
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(match error_close(&e) {
            Some((code, reason)) => Ending::Close(code, reason.into()),
            None => Ending::Gone,
        }),
    }
}

/// The close code and reason a read error deserves, or `None` when the socket is simply gone.
pub(crate) fn error_close(e: &WsError) -> Option<(u16, &'static str)> {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            Some((close::MESSAGE_TOO_BIG, "message too big"))
        }
        WsError::Utf8(_) => Some((close::INVALID_PAYLOAD, "invalid UTF-8")),
        // The peer dropped the socket without a close frame: gone (1006), not a violation.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

/// Sends our close frame, then waits briefly for the peer's so it is not lost to a reset.
pub(crate) async fn send_close<S>(
    ws: &mut WebSocketStream<S>,
    code: u16,
    reason: String,
    write_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason),
    };
    let _ = timeout(write_timeout, ws.close(Some(frame))).await;
    let _ = timeout(CLOSE_GRACE, async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

fn record_in(state: &WsState, len: usize) {
    state.metrics.messages_in.inc();
    state.metrics.bytes_in.add(len as u64);
}

/// Writes every queued frame (control frames tungstenite holds first). Returns `Gone` to mean
/// "carry on".
async fn flush<S>(state: &WsState, client: &Connection, ws: &mut WebSocketStream<S>) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut written = io::Written::default();
    let write = async {
        ws.flush().await.map_err(|_| ())?;
        std::future::poll_fn(|cx| client.outbox().poll_write(cx, &mut written))
            .await
            .map_err(|_| ())
    };
    let outcome = timeout(state.cfg.write_timeout, write).await;
    state.metrics.messages_out.add(written.frames);
    state.metrics.bytes_out.add(written.bytes);
    match outcome {
        Err(_) => return Ending::Torn,
        Ok(Err(())) => return Ending::Gone,
        Ok(Ok(())) => {}
    }
    match client.outbox().close_request() {
        Some(CloseRequest { code, reason, .. }) => Ending::Close(code, reason),
        None => Ending::Gone,
    }
}

fn reply<D: FrameData + ?Sized>(
    client: &Connection,
    event: &str,
    seqno: Option<&Value>,
    binary: bool,
    result: Result<&D, &EventError>,
) {
    match result {
        Ok(data) => {
            let mut env = Envelope::new(event, data);
            env.seqno = seqno;
            client.send_envelope(&env, binary);
        }
        Err(err) => {
            client.send_envelope(&Envelope::error(event, err, seqno), binary);
        }
    }
}

async fn handle_request(
    state: &WsState,
    client: &Arc<Connection>,
    parsed: Result<frame::Request, frame::BadFrame>,
    binary: bool,
    (bucket, now): (&mut TokenBucket, Instant),
    ip: &str,
) {
    let req = match parsed {
        Ok(r) => r,
        Err(bad) => {
            let event = bad.event.as_deref().unwrap_or(frame::ERROR_EVENT);
            reply::<Value>(
                client,
                event,
                bad.seqno.as_ref(),
                binary,
                Err(&EventError::bad_request(bad.message)),
            );
            return;
        }
    };
    if !matches!(req.event.as_str(), "recover" | "join" | "quit" | "ping") {
        // Clients re-join tags (and may ping) before recovering; anything else means they are
        // not recovering first, so stop holding their stream pushes.
        client.outbox().release();
    }
    if !bucket.try_take_at(now.into_std()) {
        state.metrics.rate_limited.inc();
        reply::<Value>(
            client,
            &req.event,
            req.seqno.as_ref(),
            binary,
            Err(&EventError::new(code::RATE_LIMITED, "rate limit exceeded")),
        );
        return;
    }
    if builtins::is_builtin(&req.event) {
        let result = AssertUnwindSafe(builtins::handle(state, client, &req.event, req.data, ip))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(EventError::new(code::INTERNAL, "internal error")));
        reply(
            client,
            &req.event,
            req.seqno.as_ref(),
            binary,
            result.as_ref(),
        );
        return;
    }
    let Some(route) = state.router.route(&req.event) else {
        reply::<Value>(
            client,
            &req.event,
            req.seqno.as_ref(),
            binary,
            Err(&EventError::not_found(format!(
                "unknown event `{}`",
                req.event
            ))),
        );
        return;
    };
    let ctx = EventContext::new(
        client.handle(),
        state.node.clone(),
        route.name().clone(),
        req.seqno.clone(),
        binary,
    );
    let outcome = AssertUnwindSafe(state.router.dispatch(route, ctx, req.data))
        .catch_unwind()
        .await;
    let seqno = req.seqno.as_ref();
    match outcome {
        Ok(Ok(Reply::Silent)) => {}
        Ok(Ok(Reply::Data(v))) => reply(client, &req.event, seqno, binary, Ok(&v)),
        Ok(Ok(Reply::Raw(d))) => reply(client, &req.event, seqno, binary, Ok(&d)),
        Ok(Err(e)) => reply::<Value>(client, &req.event, seqno, binary, Err(&e)),
        Err(_) => {
            tracing::error!(event = %req.event, client = %client.id(), "event handler panicked");
            let e = EventError::new(code::INTERNAL, "internal error: the handler failed");
            reply::<Value>(client, &req.event, seqno, binary, Err(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_fall_on_the_grid_no_earlier_than_the_interval() {
        let interval = Duration::from_secs(25);
        let start = Instant::now();
        let first = ping_due(start, interval);
        for ms in [0u64, 1, 37, 99, 100, 101, 2_500] {
            let at = start + Duration::from_millis(ms);
            let due = ping_due(at, interval);
            assert!(due >= at + interval, "due before the interval at +{ms} ms");
            assert!(
                due < at + interval + PING_GRID,
                "more than one slot late at +{ms} ms"
            );
            let apart = due.duration_since(first).as_nanos() % PING_GRID.as_nanos();
            assert_eq!(apart, 0, "off the grid at +{ms} ms");
        }
    }
}
