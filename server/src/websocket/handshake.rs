//! The upgrade: auth already ran in the middleware; here we check Origin and limits, answer
//! 101 ourselves and drive tokio-tungstenite directly (so pushes are shared `Utf8Bytes`).

use std::sync::Arc;

use crate::websocket::client::Connection;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Request, Response};
use switchboard_sdk::{ClientInfo, Identity};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use super::io::{Shared, SocketIo};
use super::registry::LimitError;
use super::{WsState, connection, useragent};
use crate::error::json_error;
use crate::net;
use crate::node::NodeError;

/// The subprotocol the server selects when offered.
pub const SUBPROTOCOL: &str = "switchboard.v1";

/// Bytes tungstenite reads at a time, and the read buffer every connection holds from the
/// start. A heartbeat or a small request fits; anything longer switches on the read-ahead
/// in `io::SocketIo`, which serves tungstenite's small reads from memory while a peer streams.
pub const READ_BUFFER: usize = 256;

/// tungstenite settings: small buffers so idle sockets stay cheap, bounded writes, the
/// configured message limit. tungstenite's write buffer only carries control frames (ping,
/// pong, close): data frames are written by the outbox (`io::write_queue`); large reads are served by the
/// read-ahead in `io::SocketIo`.
pub fn ws_config(state: &WsState) -> WebSocketConfig {
    let max = state.cfg.max_message_size;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(4096)
        .max_write_buffer_size(state.cfg.send_queue_bytes + max + 64 * 1024)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

fn header_str(req: &Request, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn header_has_token(req: &Request, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Whether `origin` may connect.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(_) if allowed.is_empty() => true,
        Some(o) => allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
    }
}

/// Handles `GET <websocket.path>`; `echo` turns the connection into a raw echo (conformance).
pub async fn upgrade(state: Arc<WsState>, req: Request, echo: bool) -> Response {
    if req.method() != poem::http::Method::GET
        || !header_has_token(&req, header::UPGRADE, "websocket")
        || !header_has_token(&req, header::CONNECTION, "upgrade")
    {
        return json_error(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            "this endpoint expects a WebSocket upgrade (GET with Upgrade: websocket)",
        );
    }
    if header_str(&req, header::SEC_WEBSOCKET_VERSION) != Some("13") {
        // RFC 6455 4.4: name the version this server speaks.
        let mut resp = json_error(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_version",
            "Sec-WebSocket-Version must be 13",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let Some(key) = header_str(&req, header::SEC_WEBSOCKET_KEY).map(str::to_owned) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "websocket_key",
            "missing Sec-WebSocket-Key",
        );
    };
    if !is_websocket_key(&key) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "websocket_key",
            "Sec-WebSocket-Key must be the base64 of 16 bytes",
        );
    }
    if !origin_allowed(&state.cfg.allowed_origins, header_str(&req, header::ORIGIN)) {
        return json_error(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this Origin may not open a WebSocket here",
        );
    }
    let identity: Option<Identity> = req.data::<Identity>().cloned();
    let reservation = match state
        .registry()
        .reserve(identity.as_ref().and_then(|i| i.user_id))
    {
        Ok(r) => r,
        Err(e) => {
            let code = match e {
                LimitError::Total => "too_many_connections",
                LimitError::PerUser => "too_many_user_connections",
            };
            return json_error(StatusCode::TOO_MANY_REQUESTS, code, &e.to_string());
        }
    };
    // Our accept loop hands the upgrade over (see `RawUpgrade`); poem's own is not used, so
    // the socket comes back as the plain TcpStream it is.
    let Some(on_upgrade) = req
        .extensions()
        .get::<RawUpgrade>()
        .and_then(RawUpgrade::take)
    else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            "connection cannot be upgraded",
        );
    };
    // `?recover=1`: the client will send `recover` first; hold its stream pushes until then
    // so replayed and live pushes arrive in offset order.
    let will_recover = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "recover=1" || p == "recover=true")
    });
    let offered_ours = header_has_token(&req, header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL);
    let user_agent = header_str(&req, header::USER_AGENT)
        .unwrap_or_default()
        .chars()
        .take(512)
        .collect::<String>();
    let (os, browser) = useragent::parse(&user_agent);
    let ip = state.proxies.client_ip(
        net::peer_ip(&req),
        header_str(&req, header::HeaderName::from_static("x-forwarded-for")),
    );
    let info = ClientInfo {
        ip,
        user_agent,
        os,
        browser,
        first_time: switchboard_sdk::protocol::unix_now(),
        node: state.registry().node().clone(),
    };
    let client = Arc::new(Connection::new(
        state.registry().next_id(),
        info,
        identity,
        state.cfg.send_queue_bytes,
    ));
    if will_recover {
        client.outbox().hold();
    }
    // The connection becomes present (cluster-wide) and its greeting is queued before the
    // 101 goes out: a client that sees `connected` is already counted by every send.
    let echo_reservation = if echo {
        Some(reservation)
    } else {
        let greeting_state = state.clone();
        let greeting_client = client.clone();
        let greeting: crate::node::Greeting = Box::new(move |streams| {
            connection::greeting(&greeting_state, &greeting_client, streams)
        });
        let attach = crate::node::Attach {
            client: client.clone(),
            reservation,
        };
        if let Err(e) = state.node.attach(attach, greeting).await {
            return match e {
                NodeError::Limit(l) => {
                    let code = match l {
                        LimitError::Total => "too_many_connections",
                        LimitError::PerUser => "too_many_user_connections",
                    };
                    json_error(StatusCode::TOO_MANY_REQUESTS, code, &l.to_string())
                }
                other => json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cluster_unavailable",
                    &other.to_string(),
                ),
            };
        }
        None
    };
    // Boxed, and built before the task: an async block keeps everything it captures for as
    // long as it runs, so the task of a connection that lives for hours holds only this
    // pointer, not the upgrade handle and settings it needed in its first millisecond.
    let gate = (!echo).then(|| client.clone());
    let opening = Box::pin(open_stream(on_upgrade, ws_config(&state), gate));
    let task_state = state.clone();
    state.tasks.spawn(async move {
        let Some(ws) = opening.await else {
            if !echo {
                Box::pin(task_state.node.detach(&client)).await;
            }
            return;
        };
        if echo {
            drop(echo_reservation);
            // Boxed: the echo path's state would otherwise size every connection's task.
            Box::pin(connection_echo(task_state, ws)).await;
            return;
        }
        connection::run(task_state, client, ws).await;
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .finish();
    if offered_ours {
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    resp
}

/// Waits for hyper to hand the socket over and builds the WebSocket on it. With `gate`, the
/// connection's outbox gets the socket first and tungstenite's own writes go through it (see
/// `outbox`); without, tungstenite writes alone (the echo endpoint).
async fn open_stream(
    on_upgrade: hyper::upgrade::OnUpgrade,
    config: WebSocketConfig,
    gate: Option<Arc<Connection>>,
) -> Option<WebSocketStream<SocketIo<Shared>>> {
    // Whatever was read past the request head belongs to the WebSocket; the 101 is still to
    // be written, ahead of everything else.
    let up = crate::http::upgraded_socket(on_upgrade.await.ok()?)?;
    let sock = Arc::new(up.socket);
    let io = match gate {
        Some(client) => {
            // From here on pushes may be written by the tasks that queue them; the first
            // write carries the 101 and the greeting queued before it.
            client.outbox().attach(sock.clone(), up.switching);
            SocketIo::gated(Shared(sock), client)
        }
        None => {
            let mut io = SocketIo::new(Shared(sock));
            tokio::io::AsyncWriteExt::write_all(&mut io, &up.switching)
                .await
                .ok()?;
            io
        }
    };
    let ws = WebSocketStream::from_partially_read(io, up.early, WsRole::Server, Some(config)).await;
    Some(ws)
}

/// RFC 6455 4.1: the key is a random 16-byte value, base64-encoded (24 characters).
fn is_websocket_key(key: &str) -> bool {
    use base64::Engine;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

/// hyper's upgrade handle, moved out of poem's reach by the accept loop (`app.rs`) for requests
/// that ask for an upgrade: poem's `Upgraded` boxes the socket and hides vectored writes; this
/// gives the connection task the `TcpStream` itself.
#[derive(Clone)]
pub struct RawUpgrade(Arc<parking_lot::Mutex<Option<hyper::upgrade::OnUpgrade>>>);

impl RawUpgrade {
    /// Takes the upgrade handle out of a hyper request, if it has one.
    pub fn extract<B>(req: &mut hyper::Request<B>) -> Option<Self> {
        req.extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
            .map(|on| RawUpgrade(Arc::new(parking_lot::Mutex::new(Some(on)))))
    }

    /// The handle; `None` once taken.
    pub fn take(&self) -> Option<hyper::upgrade::OnUpgrade> {
        self.0.lock().take()
    }
}

/// A raw echo over the same machinery (auth, limits, config): for the Autobahn testsuite.
async fn connection_echo<S>(state: Arc<WsState>, mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let write_timeout = state.cfg.write_timeout;
    let (code, reason) = loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break (switchboard_sdk::protocol::close::GOING_AWAY, "server shutting down"),
            msg = ws.next() => match msg {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if !matches!(tokio::time::timeout(write_timeout, ws.send(m)).await, Ok(Ok(()))) {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // Write tungstenite's queued reply to the peer's close before dropping.
                    let _ = tokio::time::timeout(write_timeout, ws.flush()).await;
                    return;
                }
                Some(Ok(_)) => {
                    // A ping: push out the queued pong.
                    let _ = tokio::time::timeout(write_timeout, ws.flush()).await;
                }
                None => return,
                Some(Err(e)) => match connection::error_close(&e) {
                    Some(c) => break c,
                    None => return,
                },
            }
        }
    };
    connection::send_close(&mut ws, code, reason.to_string(), write_timeout).await;
}
