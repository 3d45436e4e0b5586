//! socketioxide, the Socket.IO server for Rust, written the way its documentation shows. It speaks
//! the bench's protocol over Socket.IO v5 / Engine.IO v4 (see `bench/README.md`):
//! - `GET /socket.io/?EIO=4&transport=websocket&user=<id>` joins room `user:<id>`;
//! - event `echo` → the same event and data back; event `join` (tag) → joins, answers `join`;
//! - `POST /api/websocket/send/{toAll,toTag,toUser}` with Switchboard's bodies → `{"delivered": n}`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use axum::extract::{Json, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef};

/// Room sizes, kept by hand: socketioxide has no O(1) room count, and `delivered` must not cost
/// a scan of every socket per send.
static CONNECTED: AtomicUsize = AtomicUsize::new(0);
static ROOMS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

fn room_add(room: &str, delta: isize) {
    let mut rooms = ROOMS.lock().unwrap();
    let n = rooms.entry(room.to_owned()).or_default();
    *n = n.saturating_add_signed(delta);
}

fn room_size(room: &str) -> usize {
    ROOMS.lock().unwrap().get(room).copied().unwrap_or(0)
}

async fn on_connect(socket: SocketRef) {
    CONNECTED.fetch_add(1, Ordering::Relaxed);
    let user = socket
        .req_parts()
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("user=")))
        .unwrap_or_default()
        .to_owned();
    let room = format!("user:{user}");
    socket.join(room.clone());
    room_add(&room, 1);
    socket.on("echo", async |s: SocketRef, Data::<Value>(data)| {
        s.emit("echo", &data).ok();
    });
    socket.on("join", async |s: SocketRef, Data::<String>(tag)| {
        s.join(tag.clone());
        room_add(&tag, 1);
        s.emit("join", &tag).ok();
    });
    socket.on_disconnect(async |s: SocketRef| {
        CONNECTED.fetch_sub(1, Ordering::Relaxed);
        for room in s.rooms() {
            room_add(&room, -1);
        }
    });
}

async fn to_all(State(io): State<SocketIo>, Json(body): Json<Value>) -> Json<Value> {
    let event = body["event"].as_str().unwrap_or("message").to_owned();
    io.emit(event, &body["data"]).await.ok();
    Json(json!({"delivered": CONNECTED.load(Ordering::Relaxed)}))
}

async fn to_room(io: &SocketIo, room: String, body: &Value) -> Json<Value> {
    let event = body["event"].as_str().unwrap_or("message").to_owned();
    let delivered = room_size(&room);
    io.to(room).emit(event, &body["data"]).await.ok();
    Json(json!({"delivered": delivered}))
}

async fn to_tag(State(io): State<SocketIo>, Json(body): Json<Value>) -> Json<Value> {
    let room = body["tag"].as_str().unwrap_or_default().to_owned();
    to_room(&io, room, &body).await
}

async fn to_user(State(io): State<SocketIo>, Json(body): Json<Value>) -> Json<Value> {
    let user = match &body["userId"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    to_room(&io, format!("user:{user}"), &body).await
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18104".into())
        .parse()
        .expect("usage: peer-socketioxide HOST:PORT");
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new()
        .route("/healthz", get(async || "{}"))
        .route("/api/websocket/send/toAll", post(to_all))
        .route("/api/websocket/send/toTag", post(to_tag))
        .route("/api/websocket/send/toUser", post(to_user))
        .with_state(io)
        .layer(layer);
    // A backlog of 4096 like every peer (tokio's `bind` uses 128, which a connect storm overflows).
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    eprintln!("socketioxide listening on {addr}");
    axum::serve(listener, app).await
}
