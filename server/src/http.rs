//! The HTTP/1 accept loop and the limits that hold before any handler runs.
//!
//! Each accepted connection is served by hyper directly (no version sniffing, which has no
//! timeout of its own). Around it sit the limits a client can otherwise abuse before it has
//! proven who it is:
//!
//! - headers: a new connection must deliver its first request head within `header_timeout`;
//! - body: from the end of the headers, the whole body must arrive within `body_timeout`
//!   (else 408) and may not exceed `max_body_size` (else 413, at once when `Content-Length`
//!   says so);
//! - keep-alive: after a response, the next request must arrive within `keepalive_timeout`,
//!   or the connection is closed;
//! - unauthenticated connections: at most `max_unauthenticated` connections may be open that
//!   have not yet sent a request with a valid credential. Past that, a new connection is still
//!   read, but its request must carry a valid token or API key (the auth middleware checks it);
//!   anything else is answered 503 at once, before the body is read.
//!
//! - request heads: each is checked before hyper parses it (see [`head`]); a malformed head
//!   is answered 400, one over [`head::MAX_HEAD_BYTES`] or [`head::MAX_HEADERS`] 431.
//!
//! All these answers are JSON `{code, message}` and close the connection.
//!
//! When `accept` itself fails (at the open-files limit, say), the loop backs off instead of
//! spinning; see [`accept`].

pub mod accept;
mod framing;
pub mod head;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::error::json_error;
use crate::metrics::Metrics;
use head::{HeadGate, InFlight};

/// The limits of the HTTP layer, from `[server]`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest a new connection may take to deliver its first request head.
    pub header_timeout: Duration,
    /// Longest a request body may take, from the end of its headers.
    pub body_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_size: usize,
    /// Longest a connection may stay idle between requests.
    pub keepalive_timeout: Duration,
    /// Connections that have not presented a valid credential yet; 0 = unlimited.
    pub max_unauthenticated: usize,
    /// Longest wait for open connections at shutdown.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// The `[server]` values.
    pub fn from_config(cfg: &ServerConfig) -> Self {
        Settings {
            header_timeout: cfg.header_timeout,
            body_timeout: cfg.body_timeout,
            max_body_size: cfg.max_body_size,
            keepalive_timeout: cfg.keepalive_timeout,
            max_unauthenticated: cfg.max_unauthenticated,
            shutdown_timeout: cfg.shutdown_timeout,
        }
    }
}

/// Whether a connection still counts against `server.max_unauthenticated`.
///
/// The accept loop puts one into every request of a connection; the auth middleware calls
/// [`Admission::authenticated`] when a request carries a valid credential, which frees the
/// connection's place, and asks [`Admission::over_capacity`] before letting an anonymous
/// request through.
#[derive(Clone)]
pub struct Admission(Arc<Mutex<AdmissionState>>);

enum AdmissionState {
    /// Holds one of the places for unauthenticated connections.
    Counted(#[allow(dead_code)] OwnedSemaphorePermit),
    /// Admitted past the limit: only requests with a valid credential are served.
    OverCapacity,
    /// Presented a valid credential, or no limit is configured.
    Free,
}

impl Admission {
    fn new(slots: Option<&Arc<Semaphore>>) -> Self {
        let state = match slots {
            None => AdmissionState::Free,
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(permit) => AdmissionState::Counted(permit),
                Err(_) => AdmissionState::OverCapacity,
            },
        };
        Admission(Arc::new(Mutex::new(state)))
    }

    /// A request of this connection passed with a valid credential: the connection no longer
    /// counts as unauthenticated.
    pub fn authenticated(&self) {
        *self.0.lock() = AdmissionState::Free;
    }

    /// Whether this connection was admitted past the limit and has not authenticated since, so
    /// an anonymous request on it must be refused.
    pub fn over_capacity(&self) -> bool {
        matches!(*self.0.lock(), AdmissionState::OverCapacity)
    }
}

/// The answer to an anonymous request on a connection admitted past the limit.
pub fn over_capacity_response() -> Response {
    closing(json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_unauthenticated",
        "too many unauthenticated connections (server.max_unauthenticated); \
         retry later or present a token",
    ))
}

/// Marks a response as the last one on its connection.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// What went wrong while a handler read the body, so the answer can say so.
const BODY_OK: u8 = 0;
const BODY_TIMED_OUT: u8 = 1;
const BODY_TOO_LARGE: u8 = 2;
/// The handler read the body to its end.
const BODY_READ: u8 = 3;

/// A request body that must arrive within a deadline and stay under a size; a violation
/// ends the stream with an error and is recorded in `verdict`.
fn guarded_body(
    body: poem::Body,
    deadline: Instant,
    max: usize,
    verdict: Arc<AtomicU8>,
) -> poem::Body {
    struct State<S> {
        inner: Pin<Box<S>>,
        seen: usize,
        deadline: Instant,
        max: usize,
        verdict: Arc<AtomicU8>,
        done: bool,
    }
    let state = State {
        inner: Box::pin(body.into_bytes_stream()),
        seen: 0,
        deadline,
        max,
        verdict,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let fail = |st: &mut State<_>, code: u8, msg: &str| {
            st.done = true;
            st.verdict.store(code, Ordering::Relaxed);
            std::io::Error::other(msg.to_string())
        };
        match tokio::time::timeout_at(st.deadline, st.inner.next()).await {
            Err(_) => {
                let e = fail(&mut st, BODY_TIMED_OUT, "request body timed out");
                Some((Err(e), st))
            }
            Ok(None) => {
                st.verdict.store(BODY_READ, Ordering::Relaxed);
                None
            }
            Ok(Some(Err(e))) => {
                st.done = true;
                Some((Err(e), st))
            }
            Ok(Some(Ok(chunk))) => {
                st.seen = st.seen.saturating_add(chunk.len());
                if st.seen > st.max {
                    let e = fail(&mut st, BODY_TOO_LARGE, "request body too large");
                    Some((Err(e), st))
                } else {
                    Some((Ok::<Bytes, std::io::Error>(chunk), st))
                }
            }
        }
    });
    poem::Body::from_bytes_stream(stream)
}

fn timed_out(settings: &Settings) -> Response {
    closing(json_error(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        &format!(
            "the request body did not arrive within {:?} (server.body_timeout)",
            settings.body_timeout
        ),
    ))
}

fn too_large(settings: &Settings) -> Response {
    closing(json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &format!(
            "the request body exceeds {} bytes (server.max_body_size)",
            settings.max_body_size
        ),
    ))
}

/// A response body that tells the connection's watchdog when the response is done, which
/// starts the keep-alive idle timer, and the head gate that no request is in flight.
struct IdleOnEnd<B> {
    inner: B,
    phase: Arc<watch::Sender<Option<Instant>>>,
    in_flight: Arc<InFlight>,
    keepalive: Duration,
}

impl<B> IdleOnEnd<B> {
    fn idle(&self) {
        self.phase
            .send_replace(Some(Instant::now() + self.keepalive));
        self.in_flight.end();
    }
}

impl<B> Drop for IdleOnEnd<B> {
    fn drop(&mut self) {
        self.idle();
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for IdleOnEnd<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `route` on `listener` until `stop` is cancelled, then lets open requests finish and
/// waits for the connections at most `settings.shutdown_timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    route: poem::endpoint::BoxEndpoint<'static, Response>,
    settings: Settings,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let local_addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "listener has no local address");
            return;
        }
    };
    let route = Arc::new(route);
    let settings = Arc::new(settings);
    let slots = (settings.max_unauthenticated > 0)
        .then(|| Arc::new(Semaphore::new(settings.max_unauthenticated)));
    let conns = TaskTracker::new();
    let mut backoff = accept::AcceptBackoff::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    let pause = backoff.failed(&e, &metrics);
                    if !pause.is_zero() {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                    continue;
                }
            },
        };
        backoff.accepted();
        tracing::trace!(%peer, "connection accepted");
        // Small frames (pushes, replies) must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let admission = Admission::new(slots.as_ref());
        conns.spawn(serve_connection(
            stream,
            peer,
            local_addr,
            route.clone(),
            settings.clone(),
            admission,
            stop.clone(),
        ));
    }
    // Connections were told to finish (and sockets got 1001); wait for them, bounded.
    conns.close();
    let _ = tokio::time::timeout(settings.shutdown_timeout, conns.wait()).await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local_addr: SocketAddr,
    route: Arc<poem::endpoint::BoxEndpoint<'static, Response>>,
    settings: Arc<Settings>,
    admission: Admission,
    stop: CancellationToken,
) {
    // The connection's current deadline: the first head from now, none while a request is
    // being handled, the keep-alive limit once its response is done.
    let (phase_tx, mut phase_rx) = watch::channel(Some(Instant::now() + settings.header_timeout));
    let phase = Arc::new(phase_tx);
    let local = poem::web::LocalAddr(poem::Addr::SocketAddr(local_addr));
    let in_flight = Arc::new(InFlight::default());
    let io = HeadGate::new(stream, in_flight.clone());
    let service = {
        let phase = phase.clone();
        let settings = settings.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            phase.send_replace(None);
            in_flight.start();
            let in_flight = in_flight.clone();
            let deadline = Instant::now() + settings.body_timeout;
            let route = route.clone();
            let settings = settings.clone();
            let phase = phase.clone();
            // A WebSocket upgrade keeps hyper's own handle (see `RawUpgrade`), so the
            // socket task gets the bare TcpStream back.
            // The head gate stops framing after a request that asks for an upgrade, so
            // one that is not switched ends the connection (below): every head hyper reads
            // has been checked.
            let wants_upgrade = req.method() == hyper::Method::CONNECT
                || (req.version() == hyper::Version::HTTP_11
                    && req.headers().contains_key(hyper::header::UPGRADE));
            if req.headers().contains_key(hyper::header::UPGRADE) {
                if let Some(raw) = crate::websocket::handshake::RawUpgrade::extract(&mut req) {
                    req.extensions_mut().insert(raw);
                }
            }
            let declared_len = req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let has_body = declared_len.is_some_and(|n| n > 0)
                || req.headers().contains_key(hyper::header::TRANSFER_ENCODING);
            req.extensions_mut().insert(admission.clone());
            let mut req = poem::Request::from((
                req,
                local.clone(),
                poem::web::RemoteAddr(poem::Addr::SocketAddr(peer)),
                poem::http::uri::Scheme::HTTP,
            ));
            let verdict = Arc::new(AtomicU8::new(BODY_OK));
            let body = req.take_body();
            req.set_body(guarded_body(
                body,
                deadline,
                settings.max_body_size,
                verdict.clone(),
            ));
            async move {
                let resp = if declared_len.is_some_and(|n| n > settings.max_body_size as u64) {
                    // Refused on the declared length, before anything reads the body.
                    too_large(&settings)
                } else {
                    let resp = route.get_response(req).await;
                    match verdict.load(Ordering::Relaxed) {
                        BODY_TIMED_OUT => timed_out(&settings),
                        BODY_TOO_LARGE => too_large(&settings),
                        BODY_READ => resp,
                        // Answered without reading the body: hyper would wait for the rest
                        // of it before the next request, so the connection ends here instead.
                        _ if has_body => closing(resp),
                        _ => resp,
                    }
                };
                let resp = if wants_upgrade && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    closing(resp)
                } else {
                    resp
                };
                let resp: hyper::Response<_> = resp.into();
                let keepalive = settings.keepalive_timeout;
                Ok::<_, std::convert::Infallible>(resp.map(|inner| IdleOnEnd {
                    inner,
                    phase,
                    in_flight,
                    keepalive,
                }))
            }
        })
    };
    // hyper's own header timer would also run while the connection idles between requests,
    // cutting keep-alive at the header limit; the deadline above covers both instead.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    loop {
        let deadline = *phase_rx.borrow_and_update();
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.cancelled() => break,
            changed = phase_rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            // Silent, trickling or idle past its limit: dropping the connection closes it.
            _ = expired => return,
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// A connection hyper has switched to another protocol (a WebSocket).
pub struct Upgraded {
    /// The socket.
    pub socket: tokio::net::TcpStream,
    /// The bytes already read past the upgrade request, in order.
    pub early: Vec<u8>,
    /// The `101` response, still to be written: first, and best in the same write as the
    /// first frames (the client then wakes once for both).
    pub switching: bytes::Bytes,
}

/// The socket of a connection hyper has switched to another protocol; `None` if it is not
/// one of ours.
pub fn upgraded_socket(upgraded: hyper::upgrade::Upgraded) -> Option<Upgraded> {
    let parts = upgraded
        .downcast::<hyper_util::rt::TokioIo<HeadGate<tokio::net::TcpStream>>>()
        .ok()?;
    let (socket, held, switching) = parts.io.into_inner().into_parts();
    // hyper read its part before the gate's: its buffer comes first. Both are copied out, so
    // no 8 KiB read buffer stays alive for the life of the connection.
    let mut early = Vec::with_capacity(parts.read_buf.len() + held.len());
    early.extend_from_slice(&parts.read_buf);
    early.extend_from_slice(&held);
    Some(Upgraded {
        socket,
        early,
        switching,
    })
}
