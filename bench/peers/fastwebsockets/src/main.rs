//! The tightest WebSocket server we can write in Rust: fastwebsockets over a raw tokio socket. A
//! text or binary message is echoed back as it came, `{"event":"join",…}` adds the connection to a
//! tag, and a broadcast is the request body itself, written to every connection from one shared
//! buffer — no JSON, no auth, no framework. It answers the bench's minimal protocol exactly as
//! `bare-tungstenite` does (see `bench/README.md`), so every scenario runs against both:
//! - `GET /socket?user=<id>` upgrades; the connection belongs to user `<id>` (no token checked);
//! - `POST /api/websocket/send/{toAll,toTag,toUser}` → `{"delivered": n}`; the tag and the user
//!   are read from the body's `"tag"` and `"userId"`, the body is pushed unchanged;
//! - `GET /healthz` → 200.

// The HTTP/1.1 part is the bare peer's: the two floors differ only in their WebSocket layer.
#[path = "../../bare-tungstenite/src/http.rs"]
mod http;
mod hub;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use fastwebsockets::{
    FragmentCollectorRead, Frame, OpCode, Payload, Role, WebSocket, WebSocketError,
};
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::http::{Request, read_request, write_response};
use crate::hub::{Hub, scan_value};

/// Same ping period as Switchboard's default, so idle CPU is compared like for like.
const PING_INTERVAL: Duration = Duration::from_secs(25);
/// Frames waiting for one connection's writer. A broadcast that finds the queue full skips that
/// connection; an echo waits for room, which slows only the client that sent it.
const QUEUE: usize = 256;
/// The limit the other peers and Switchboard use for an inbound message.
const MAX_MESSAGE: usize = 64 << 10;
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a connection's writer task writes, in order.
pub enum Out {
    /// A broadcast: one buffer shared by every recipient.
    Text(Bytes),
    /// An echo, or a pong/close the read half owes the peer.
    Frame(Frame<'static>),
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18105".into())
        .parse()
        .expect("usage: peer-fastwebsockets HOST:PORT");
    let listener = listen(addr)?;
    eprintln!("fastwebsockets listening on {addr}");
    let hub = Arc::new(Hub::default());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            // Out of file descriptors: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, hub.clone()));
    }
}

/// A backlog of 4096 like the other peers: tokio's default of 128 overflows in a connect storm.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn serve(mut stream: TcpStream, hub: Arc<Hub>) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let req = match read_request(&mut stream, &mut buf).await {
            Ok(Some(req)) => req,
            _ => return,
        };
        if req.is_websocket_upgrade() && req.path.starts_with("/socket") {
            // A client sends no frame before it has read the 101, so bytes after the request
            // are a protocol error, not a first frame to keep.
            if !buf.is_empty() {
                return;
            }
            let user = req.query_param("user").unwrap_or_default().to_owned();
            return websocket(stream, &req, hub, &user).await;
        }
        let (status, body) = route(&req, &hub);
        if write_response(&mut stream, status, &body).await.is_err() {
            return;
        }
    }
}

fn route(req: &Request, hub: &Hub) -> (u16, String) {
    let text = std::str::from_utf8(&req.body).unwrap_or_default();
    let frame = || Bytes::copy_from_slice(text.as_bytes());
    let delivered = |n: usize| (200, format!("{{\"delivered\":{n}}}"));
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => (200, "{}".into()),
        ("POST", "/api/websocket/send/toAll") => delivered(hub.send_to_all(frame())),
        ("POST", "/api/websocket/send/toTag") => {
            let tag = scan_value(text, "tag").unwrap_or_default();
            delivered(hub.send_to_tag(tag, frame()))
        }
        ("POST", "/api/websocket/send/toUser") => {
            let user = scan_value(text, "userId").unwrap_or_default();
            delivered(hub.send_to_user(user, frame()))
        }
        _ => (404, "{\"code\":\"not_found\"}".into()),
    }
}

fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

async fn websocket(mut stream: TcpStream, req: &Request, hub: Arc<Hub>, user: &str) {
    let Some(key) = req.header("sec-websocket-key") else {
        return;
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    ws.set_max_message_size(MAX_MESSAGE);
    // Owned halves: reading and writing proceed in two tasks without a lock between them.
    let (read, write) = ws.split(TcpStream::into_split);
    let mut read = FragmentCollectorRead::new(read);
    let (tx, rx) = mpsc::channel(QUEUE);
    let id = hub.register(tx.clone(), user);
    let mut writer = tokio::spawn(write_loop(write, rx));
    // The read half cannot be polled in a `select!` next to a queue (a cancelled `read_frame`
    // loses bytes), so it runs alone here and the writer is a task of its own. Racing the whole
    // loop against the writer is fine: whichever ends first ends the connection.
    let reader = async {
        // Pongs and the close reply are queued behind pushes already waiting: they are owed,
        // not urgent, and keeping one writer keeps frames whole on the wire.
        let owed = tx.clone();
        let mut obligated = move |frame: Frame<'static>| {
            let owed = owed.clone();
            async move {
                owed.send(Out::Frame(frame))
                    .await
                    .map_err(|_| WebSocketError::ConnectionClosed)
            }
        };
        loop {
            let frame = match read.read_frame(&mut obligated).await {
                Ok(frame) => frame,
                Err(_) => return,
            };
            let reply = match frame.opcode {
                OpCode::Text if frame.payload.starts_with(b"{\"event\":\"join\"") => {
                    let tag = std::str::from_utf8(&frame.payload)
                        .ok()
                        .and_then(|t| scan_value(t, "id"));
                    if let Some(tag) = tag {
                        hub.join(id, tag);
                    }
                    Frame::text(Payload::Borrowed(b"{\"event\":\"join\",\"code\":0}"))
                }
                OpCode::Text | OpCode::Binary => {
                    Frame::new(true, frame.opcode, None, frame.payload)
                }
                OpCode::Close => return,
                _ => continue,
            };
            if tx.send(Out::Frame(reply)).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = reader => {}
        _ = &mut writer => {}
    }
    hub.unregister(id);
    // The writer drains what is queued (a close reply, say) and stops once every sender is gone.
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

async fn write_loop(
    mut ws: fastwebsockets::WebSocketWrite<OwnedWriteHalf>,
    mut rx: mpsc::Receiver<Out>,
) {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        let result = tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Text(bytes)) => ws.write_frame(Frame::text(Payload::Borrowed(&bytes))).await,
                Some(Out::Frame(frame)) => ws.write_frame(frame).await,
                None => return,
            },
            _ = ping.tick() => ws.write_frame(Frame::new(true, OpCode::Ping, None, Payload::Borrowed(&[]))).await,
        };
        if result.is_err() || ws.is_closed() {
            return;
        }
    }
}
