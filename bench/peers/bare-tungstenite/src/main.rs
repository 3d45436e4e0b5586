//! The floor of Switchboard's stack: tokio-tungstenite and nothing else. No auth, no event router,
//! no history — a text frame is echoed back as it came, `{"event":"join",…}` adds the connection to
//! a tag, and a hand-rolled HTTP/1.1 control path triggers broadcasts. Whatever Switchboard costs
//! beyond this server is the price of its features; the benchmark shows how big that price is.
//!
//! It speaks the bench's minimal protocol (see `bench/README.md`):
//! - `GET /socket?user=<id>` upgrades; the connection belongs to user `<id>` (no token checked);
//! - `POST /api/websocket/send/{toAll,toTag,toUser}` with Switchboard's bodies → `{"delivered": n}`;
//! - `GET /healthz` → 200.

mod http;
mod hub;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::http::{Request, read_request, write_response};
use crate::hub::Hub;

/// Same ping period as Switchboard's default, so idle CPU is compared like for like.
const PING_INTERVAL: Duration = Duration::from_secs(25);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18101".into())
        .parse()
        .expect("usage: peer-bare-tungstenite HOST:PORT");
    let listener = listen(addr)?;
    eprintln!("bare-tungstenite listening on {addr}");
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

/// tokio's `TcpListener::bind` listens with a backlog of 128; a connect storm of a few hundred
/// concurrent handshakes overflows it and each dropped SYN costs the client a 1 s retransmit.
/// The Node peers listen with 4096 too.
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
            let user = req.query_param("user").unwrap_or_default().to_owned();
            return websocket(stream, req, std::mem::take(&mut buf), hub, user).await;
        }
        let (status, body) = route(&req, &hub);
        if write_response(&mut stream, status, &body).await.is_err() {
            return;
        }
    }
}

fn route(req: &Request, hub: &Hub) -> (u16, String) {
    let body = || serde_json::from_slice::<serde_json::Value>(&req.body).unwrap_or_default();
    let delivered = |n: usize| (200, format!("{{\"delivered\":{n}}}"));
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => (200, "{}".into()),
        ("POST", "/api/websocket/send/toAll") => delivered(hub.send_to_all(&body())),
        ("POST", "/api/websocket/send/toTag") => delivered(hub.send_to_tag(&body())),
        ("POST", "/api/websocket/send/toUser") => delivered(hub.send_to_user(&body())),
        _ => (404, "{\"code\":\"not_found\"}".into()),
    }
}

async fn websocket(
    mut stream: TcpStream,
    req: Request,
    rest: Vec<u8>,
    hub: Arc<Hub>,
    user: String,
) {
    let Some(key) = req.header("sec-websocket-key") else {
        return;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .is_err()
    {
        return;
    }
    // The buffer sizes Switchboard uses too (tungstenite's 128 KiB defaults cost >1 GB at 10k).
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(64 << 10));
    let mut ws =
        WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = hub.register(tx, &user);
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        let result = tokio::select! {
            inbound = ws.next() => match inbound {
                Some(Ok(Message::Text(text))) => {
                    if text.starts_with("{\"event\":\"join\"") {
                        hub.join_from_frame(id, text.as_str());
                        ws.send(Message::text("{\"event\":\"join\",\"code\":0}")).await
                    } else {
                        ws.send(Message::Text(text)).await
                    }
                }
                Some(Ok(Message::Binary(bytes))) => ws.send(Message::Binary(bytes)).await,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => Ok(()), // pings are answered by tungstenite itself
            },
            Some(push) = rx.recv() => ws.send(push).await,
            _ = ping.tick() => ws.send(Message::Ping(Default::default())).await,
        };
        if result.is_err() {
            break;
        }
    }
    hub.unregister(id);
}
