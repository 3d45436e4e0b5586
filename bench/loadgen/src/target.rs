//! The systems under test, each behind one adapter: how to log in, where to connect, what the
//! echo and join frames look like, and which inbound frames are heartbeats to answer. Scenarios see
//! only this interface, so every system is driven by exactly the same code.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::http::HttpClient;
use crate::net::Sources;
use crate::pusher;
use crate::stats::unix_nanos;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// This project: login, bearer token, `connected` frame, the hgexample echo event.
    Switchboard,
    /// tokio-tungstenite alone (bench/peers/bare-tungstenite).
    BareTungstenite,
    /// fastwebsockets alone (bench/peers/fastwebsockets): the same protocol as bare-tungstenite.
    Fastwebsockets,
    /// Node `ws` (bench/peers/node/ws-server.js).
    NodeWs,
    /// Node Socket.IO (bench/peers/node/socketio-server.js).
    SocketioNode,
    /// socketioxide (bench/peers/socketioxide).
    Socketioxide,
    /// sockudo, a Pusher Channels server: every connection subscribes a public channel, every
    /// broadcast is an event triggered through the signed HTTP API.
    Sockudo,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Switchboard => "switchboard",
            Kind::BareTungstenite => "bare-tungstenite",
            Kind::Fastwebsockets => "fastwebsockets",
            Kind::NodeWs => "node-ws",
            Kind::SocketioNode => "socketio-node",
            Kind::Socketioxide => "socketioxide",
            Kind::Sockudo => "sockudo",
        }
    }

    fn wire(self) -> Wire {
        match self {
            Kind::Switchboard => Wire::Switchboard,
            Kind::BareTungstenite | Kind::Fastwebsockets | Kind::NodeWs => Wire::Plain,
            Kind::SocketioNode | Kind::Socketioxide => Wire::SocketIo,
            Kind::Sockudo => Wire::Pusher,
        }
    }

    /// Pusher has no request/reply and no addressing by user: a server-side event goes to a
    /// channel and every subscriber gets it. The echo and API scenarios have nothing to measure
    /// there, nor the soak scenario, which checks answers. The cluster scenario stands a channel
    /// per user in for the user (`Audience::User`).
    pub fn has_request_reply(self) -> bool {
        self.wire() != Wire::Pusher
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Switchboard's JSON envelope, authenticated.
    Switchboard,
    /// The same envelope, no auth, user chosen by `?user=`.
    Plain,
    /// Socket.IO v5 over Engine.IO v4, WebSocket transport only.
    SocketIo,
    /// Pusher Channels protocol 7: channels instead of tags, events triggered over signed HTTP.
    Pusher,
}

/// Who a broadcast goes to.
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    All,
    Tag(&'a str),
    /// Every connection of one user (Switchboard's `toUser`).
    User(&'a User),
}

/// The Pusher channel every connection subscribes to on connect: "all" connections are its
/// subscribers, as they are the audience of Switchboard's `toAll`.
const PUSHER_ALL: &str = "all";

/// The Pusher channel that stands for a tag (Pusher's rooms are channels).
fn pusher_channel(tag: &str) -> String {
    format!("tag-{tag}")
}

/// The Pusher channel that stands for a user: Pusher addresses channels, not users, so an app
/// that pushes to a user has each of the user's devices subscribe a channel of its own.
fn pusher_user_channel(user: &User) -> String {
    format!("user-{}", user.key())
}

/// A user whose connections the API scenario addresses with `toUser`.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Value,
    token: Option<String>,
}

impl User {
    /// The id as URL and channel names carry it: a string id without its quotes.
    fn key(&self) -> String {
        self.id
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| self.id.to_string())
    }
}

pub struct Target {
    pub addr: SocketAddr,
    wire: Wire,
    admin: Option<User>,
    password: String,
    sources: Sources,
    pusher: pusher::App,
}

pub const ECHO_EVENT: &str = "admin/addons/hgexample/testMessage";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

impl Target {
    /// For Switchboard, logs in as `username` (an admin) whose token then signs every HTTP send.
    pub async fn new(
        kind: Kind,
        addr: SocketAddr,
        username: &str,
        password: &str,
        sources: Sources,
    ) -> anyhow::Result<Self> {
        let mut target = Self {
            addr,
            wire: kind.wire(),
            admin: None,
            password: password.to_owned(),
            sources,
            pusher: pusher::App::bench(),
        };
        if target.wire == Wire::Switchboard {
            target.admin = Some(
                target
                    .login(username, password)
                    .await
                    .context("admin login")?,
            );
        }
        Ok(target)
    }

    /// The same system reached at another address, with the same admin token: the nodes of a
    /// cluster share one database and JWT secret, so one login is valid on every node.
    pub fn at(&self, addr: SocketAddr, sources: usize) -> Self {
        Self {
            addr,
            wire: self.wire,
            admin: self.admin.clone(),
            password: self.password.clone(),
            sources: Sources::new(addr, sources),
            pusher: pusher::App::bench(),
        }
    }

    pub fn bearer(&self) -> Option<&str> {
        self.admin.as_ref().and_then(|u| u.token.as_deref())
    }

    /// The identity of connections that no scenario addresses by user.
    pub fn default_user(&self) -> User {
        self.admin.clone().unwrap_or(User {
            id: json!("0"),
            token: None,
        })
    }

    /// `n` distinct users. Switchboard's are created through its API (members) and logged in.
    pub async fn users(&self, n: usize) -> anyhow::Result<Vec<User>> {
        if self.wire != Wire::Switchboard {
            return Ok((1..=n)
                .map(|i| User {
                    id: json!(i.to_string()),
                    token: None,
                })
                .collect());
        }
        let mut http = HttpClient::new(self.addr);
        let mut users = Vec::with_capacity(n);
        for i in 1..=n {
            let name = format!("bench-u{i}");
            create_member(&mut http, self.bearer(), &name, &self.password).await?;
            users.push(self.login(&name, &self.password).await?);
        }
        Ok(users)
    }

    async fn login(&self, username: &str, password: &str) -> anyhow::Result<User> {
        let body = json!({"username": username, "password": password}).to_string();
        let resp = HttpClient::new(self.addr)
            .post("/api/auth/login", None, body.as_bytes())
            .await?;
        let v = resp.json();
        let token = v["token"].as_str().with_context(|| {
            format!(
                "login {username} answered {}: {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            )
        })?;
        Ok(User {
            id: v["user"]["id"].clone(),
            token: Some(token.to_owned()),
        })
    }

    /// Opens a connection as `user` and completes the protocol's own handshake, so that when this
    /// returns the server has registered the connection and will deliver to it.
    pub async fn connect(&self, user: &User) -> anyhow::Result<Conn> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner(user))
            .await
            .context("connect timed out")?
    }

    async fn connect_inner(&self, user: &User) -> anyhow::Result<Conn> {
        let uid = user.key();
        let url = match self.wire {
            Wire::Switchboard => format!("ws://{}/socket", self.addr),
            Wire::Plain => format!("ws://{}/socket?user={uid}", self.addr),
            Wire::SocketIo => format!(
                "ws://{}/socket.io/?EIO=4&transport=websocket&user={uid}",
                self.addr
            ),
            Wire::Pusher => format!("ws://{}{}", self.addr, self.pusher.socket_path()),
        };
        let mut request = url.into_client_request()?;
        if let Some(token) = &user.token {
            request
                .headers_mut()
                .insert("Authorization", format!("Bearer {token}").parse()?);
        }
        let tcp = self
            .sources
            .connect(self.addr)
            .await
            .context("tcp connect")?;
        // A small read buffer: 10,000 client connections must fit beside the server. Frames
        // queued with `feed` are written together at `flush` (or once 64 KiB are queued): with
        // a write buffer of 0, tungstenite would write every frame with its own syscall and a
        // pipelining client would spend most of the two shared cores in the kernel. The buffer
        // only grows while frames are queued, so idle connections do not pay for it.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(64 * 1024);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
            .await
            .context("websocket handshake")?;
        let mut conn = Conn {
            ws,
            wire: self.wire,
        };
        match self.wire {
            Wire::Plain => {}
            Wire::Switchboard => {
                let first = conn.recv().await.context("closed before `connected`")?;
                if !first.contains("\"connected\"") {
                    bail!(
                        "first frame is not `connected`: {}",
                        &first[..first.len().min(200)]
                    );
                }
            }
            Wire::SocketIo => {
                let open = conn
                    .recv()
                    .await
                    .context("closed before the Engine.IO open packet")?;
                if !open.starts_with('0') {
                    bail!("expected an Engine.IO open packet, got {open}");
                }
                conn.send("40".into()).await?;
                loop {
                    let ack = conn
                        .recv()
                        .await
                        .context("closed before the namespace connect")?;
                    if ack.starts_with("40") {
                        break;
                    }
                    if ack.starts_with("44") {
                        bail!("namespace connect refused: {ack}");
                    }
                }
            }
            Wire::Pusher => {
                // Registered once the server has established the connection and confirmed the
                // subscription to `all`: from then on a broadcast reaches it, as one reaches a
                // Switchboard connection once it has said `connected`.
                let first = conn
                    .recv()
                    .await
                    .context("closed before `pusher:connection_established`")?;
                let push = pusher::decode(&first)?;
                if push.event != "pusher:connection_established" {
                    bail!(
                        "first frame is not `pusher:connection_established`: {}",
                        &first[..first.len().min(200)]
                    );
                }
                conn.send(pusher::subscribe_frame(PUSHER_ALL)).await?;
                let reply = conn.recv().await.context("closed while subscribing")?;
                if !self.is_join_reply(&reply)? {
                    bail!(
                        "unexpected frame while subscribing: {}",
                        &reply[..reply.len().min(200)]
                    );
                }
            }
        }
        Ok(conn)
    }

    /// An echo request; its reply carries `"s":seq` in its data.
    pub fn echo_frame(&self, seq: u64, payload: &str) -> String {
        match self.wire {
            Wire::SocketIo => format!("42[\"echo\",{{\"s\":{seq},\"p\":\"{payload}\"}}]"),
            _ => format!(
                "{{\"event\":\"{ECHO_EVENT}\",\"data\":{{\"s\":{seq},\"p\":\"{payload}\"}},\"seqno\":{seq}}}"
            ),
        }
    }

    /// Joins a tag (a room; a channel in Pusher); `is_join_reply` recognises the answer.
    pub fn join_frame(&self, tag: &str) -> String {
        match self.wire {
            Wire::SocketIo => format!("42[\"join\",\"{tag}\"]"),
            Wire::Pusher => pusher::subscribe_frame(&pusher_channel(tag)),
            _ => format!("{{\"event\":\"join\",\"data\":{{\"id\":\"{tag}\"}}}}"),
        }
    }

    /// What a connection of `user` sends so that sends to the user reach it, answered like a join
    /// (`is_join_reply`); `None` where the server knows the user from the connection itself.
    pub fn user_join_frame(&self, user: &User) -> Option<String> {
        match self.wire {
            Wire::Pusher => Some(pusher::subscribe_frame(&pusher_user_channel(user))),
            _ => None,
        }
    }

    /// Whether `reply` answers a join: `Ok(false)` for an unrelated frame, an error for a refusal.
    pub fn is_join_reply(&self, reply: &str) -> anyhow::Result<bool> {
        match self.wire {
            Wire::Pusher => {
                if reply.contains("pusher_internal:subscription_succeeded") {
                    Ok(true)
                } else if reply.contains("pusher:subscription_error")
                    || reply.contains("\"pusher:error\"")
                {
                    bail!("subscribe refused: {reply}")
                } else {
                    Ok(false)
                }
            }
            _ if reply.contains("\"join\"") => {
                if reply.contains("\"code\":4") {
                    bail!("join refused: {reply}");
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Whether a send's answer says how many connections it reached (Switchboard's `delivered`).
    /// A Pusher trigger answers without one (sockudo: `{"ok":true}`): the load generator's own
    /// count is all there is.
    pub fn reports_deliveries(&self) -> bool {
        self.wire != Wire::Pusher
    }

    /// The HTTP request (path, body, bearer token) that broadcasts `data` to `to`. `data` must
    /// carry the send time as `"t"`; receivers read it back with `sent_at`.
    pub fn broadcast(&self, to: Audience<'_>, data: &Value) -> (String, String, Option<&str>) {
        match self.wire {
            Wire::Pusher => {
                let channel = match to {
                    Audience::All => PUSHER_ALL.to_owned(),
                    Audience::Tag(tag) => pusher_channel(tag),
                    Audience::User(user) => pusher_user_channel(user),
                };
                let body = pusher::trigger_body(&[&channel], "bench", data);
                // Signed per request: the server rejects a signature more than 600 s old.
                let path = self
                    .pusher
                    .events_path(body.as_bytes(), unix_nanos() / 1_000_000_000);
                (path, body, None)
            }
            _ => {
                let (path, body) = match to {
                    Audience::All => (
                        "/api/websocket/send/toAll",
                        json!({"event": "bench", "data": data}),
                    ),
                    Audience::Tag(tag) => (
                        "/api/websocket/send/toTag",
                        json!({"tag": tag, "event": "bench", "data": data}),
                    ),
                    Audience::User(user) => (
                        "/api/websocket/send/toUser",
                        json!({"userId": user.id, "event": "bench", "data": data}),
                    ),
                };
                (path.to_owned(), body.to_string(), self.bearer())
            }
        }
    }
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    wire: Wire,
}

impl Conn {
    /// The next application frame. Heartbeats are answered here (WebSocket pings by tungstenite,
    /// Engine.IO's `2` with `3`); `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => {
                    if self.wire == Wire::SocketIo && text.as_str() == "2" {
                        self.ws.send(Message::text("3")).await.ok()?;
                        continue;
                    }
                    if self.wire == Wire::Pusher && pusher::is_ping(&text) {
                        self.ws.send(Message::text(pusher::PONG)).await.ok()?;
                        continue;
                    }
                    return Some(text);
                }
                Ok(Message::Binary(bytes)) => return Utf8Bytes::try_from(bytes).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The send time a timestamped push carries, in unix ns.
    pub fn sent_at(&self, text: &str) -> Option<u64> {
        match self.wire {
            Wire::Pusher => pusher::sent_at(text),
            _ => find_u64(text, "\"t\":"),
        }
    }

    pub async fn send(&mut self, text: String) -> anyhow::Result<()> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// The next application frame if one is already buffered or readable without waiting.
    /// (tokio-tungstenite keeps its read state in the stream, so abandoning the poll loses nothing.)
    pub fn try_recv(&mut self) -> Option<Option<Utf8Bytes>> {
        self.recv().now_or_never()
    }

    /// Queues a frame without writing it out; `flush` sends everything queued in one write.
    pub async fn feed(&mut self, text: String) -> anyhow::Result<()> {
        self.ws.feed(Message::text(text)).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.ws.flush().await?;
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// Creates a member user through Switchboard's API; one left by an earlier run (409) will do.
pub async fn create_member(
    http: &mut HttpClient,
    bearer: Option<&str>,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    let body = json!({"username": name, "password": password, "roles": ["member"]});
    let resp = http
        .post("/api/users", bearer, body.to_string().as_bytes())
        .await?;
    if resp.status != 201 && resp.status != 409 {
        bail!(
            "POST /api/users answered {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
    }
    Ok(())
}

/// Extracts the unsigned integer after `"key":` in a JSON text without parsing the whole frame:
/// the receive path of 10,000 connections must stay cheaper than the servers it measures.
pub fn find_u64(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::find_u64;

    #[test]
    fn finds_numbers_in_any_envelope() {
        assert_eq!(
            find_u64(
                r#"{"event":"bench","data":{"p":"x","t":1234},"code":0}"#,
                "\"t\":"
            ),
            Some(1234)
        );
        assert_eq!(
            find_u64(r#"42["bench",{"t":99,"p":"x"}]"#, "\"t\":"),
            Some(99)
        );
        assert_eq!(find_u64(r#"{"data":{"s":"x"}}"#, "\"s\":"), None);
    }
}
