//! Test helpers: a real server on 127.0.0.1:0 with a fresh SQLite database, HTTP and
//! WebSocket clients.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The binary's one-shot commands and its log-discovered server, shared with the CLI tests.
#[path = "../binary/mod.rs"]
pub mod binary;
mod process;
#[allow(unused_imports)]
pub use process::*;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard::Config;
use switchboard::api::AppState;
use switchboard::app::Application;
use switchboard_sdk::event::EventRegistry;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestApp {
    pub base: String,
    pub ws_url: String,
    pub admin_token: String,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub state: Arc<AppState>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub fn base_config(dir: &Path) -> Config {
    let mut cfg = Config::load_from(Path::new("/nonexistent"), None, Vec::new()).unwrap();
    cfg.server.address = "127.0.0.1:0".into();
    cfg.server.data_dir = dir.to_path_buf();
    cfg.server.shutdown_timeout = Duration::from_secs(5);
    cfg.auth.admin_password = ADMIN_PASSWORD.into();
    cfg.log.level = "warn".into();
    cfg
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> TestApp {
    spawn_full(f, |_| {}).await
}

pub async fn spawn_full(
    f: impl FnOnce(&mut Config),
    events: impl FnOnce(&mut EventRegistry),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path());
    f(&mut cfg);
    let path = cfg.websocket.path.clone();
    let app = Application::build_with_events(cfg, events)
        .await
        .expect("server builds");
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let state = app.state();
    let handle = tokio::spawn(app.run());
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let admin_token = login(&http, &base, "admin", ADMIN_PASSWORD).await;
    TestApp {
        ws_url: format!("ws://{addr}{path}"),
        base,
        admin_token,
        shutdown,
        handle,
        state,
        http,
        dir,
    }
}

pub async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> String {
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login of {user}");
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a user with roles and returns (id, token).
    pub async fn user(&self, name: &str, roles: &[&str]) -> (i64, String) {
        let r = self
            .http
            .post(self.url("/api/users"))
            .bearer_auth(&self.admin_token)
            .json(&json!({"username": name, "password": "password-123", "roles": roles}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        let token = login(&self.http, &self.base, name, "password-123").await;
        (v["id"].as_i64().unwrap(), token)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Connects with `Authorization: Bearer` and reads the `connected` greeting.
    pub async fn ws(&self, token: &str) -> (Ws, Value) {
        let mut ws = ws_connect(&self.ws_url, Some(token))
            .await
            .expect("ws connects");
        let hello = recv(&mut ws).await;
        assert_eq!(hello["event"], "connected");
        (ws, hello["data"].clone())
    }
}

pub async fn ws_connect(
    url: &str,
    token: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Next JSON frame (text or binary), skipping pings; panics after 5 s.
pub async fn recv(ws: &mut Ws) -> Value {
    recv_within(ws, Duration::from_secs(5))
        .await
        .expect("a frame within 5s")
}

pub async fn recv_within(ws: &mut Ws, d: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        match msg {
            Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
            Message::Binary(b) => return Some(serde_json::from_slice(&b).unwrap()),
            Message::Close(c) => panic!("unexpected close {c:?}"),
            _ => continue,
        }
    }
}

/// Reads until the close frame; returns its code (panics after `d`).
pub async fn close_code(ws: &mut Ws, d: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no close within {d:?}"),
            Ok(None) => panic!("stream ended without a close frame"),
            Ok(Some(Err(e))) => panic!("error before close: {e}"),
            Ok(Some(Ok(Message::Close(Some(f))))) => return u16::from(f.code),
            Ok(Some(Ok(Message::Close(None)))) => return 1005,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The status of a refused WebSocket handshake; panics when it was not an HTTP refusal.
pub fn handshake_status(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// A `ping` round trip succeeds: the connection is open and served.
pub async fn assert_alive(ws: &mut Ws) {
    let v = request(ws, "ping", Value::Null).await;
    assert_eq!(
        (v["event"].as_str(), v["code"].as_i64()),
        (Some("ping"), Some(0))
    );
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Sends a request and returns the reply.
pub async fn request(ws: &mut Ws, event: &str, data: Value) -> Value {
    send(ws, json!({"event": event, "data": data, "seqno": "r"})).await;
    loop {
        let v = recv(ws).await;
        if v["seqno"] == "r" {
            return v;
        }
    }
}

/// Waits until `cond` holds (polling), panicking after `d`.
pub async fn eventually(d: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + d;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {d:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One deployment the behaviour suite runs against: a single node, or several nodes on one
/// Redis sharing one database and JWT secret. Tests address nodes by index; in single-node
/// mode every index is the one node.
pub struct Deployment {
    pub nodes: Vec<TestApp>,
}

/// Key prefix unique to this test process and call, so tests can share one Redis.
pub fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "sbtest{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Redis URL of the cluster suites, or `None` (and a note that they are skipped).
pub fn test_redis_url() -> Option<String> {
    service_url("SWITCHBOARD_TEST_REDIS_URL", "the cluster tests")
}

/// A test service's URL from the environment variable `var`; unset or empty, the test
/// reports itself skipped (naming the variable) and gets `None`.
pub fn service_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("skipped: set {var} to run {what}");
            None
        }
    }
}

/// The PostgreSQL server to test against, if `SWITCHBOARD_TEST_POSTGRES_URL` names one.
pub fn test_postgres_url() -> Option<String> {
    service_url("SWITCHBOARD_TEST_POSTGRES_URL", "against PostgreSQL")
}

/// The MariaDB/MySQL server to test against, if `SWITCHBOARD_TEST_MYSQL_URL` names one.
pub fn test_mysql_url() -> Option<String> {
    service_url("SWITCHBOARD_TEST_MYSQL_URL", "against MariaDB/MySQL")
}

impl Deployment {
    /// One node, in-memory broker and presence.
    pub async fn single(f: impl Fn(&mut Config)) -> Deployment {
        Deployment {
            nodes: vec![spawn_with(f).await],
        }
    }

    /// `n` nodes on `redis`.
    pub async fn cluster(redis: &str, n: usize, f: impl Fn(&mut Config)) -> Deployment {
        let prefix = unique_prefix();
        let mut nodes: Vec<TestApp> = Vec::new();
        for i in 0..n {
            let data_dir = nodes.first().map(|a| a.dir.path().to_path_buf());
            let app = spawn_with(|c| {
                f(c);
                c.cluster.redis_url = redis.to_string();
                c.cluster.prefix = prefix.clone();
                c.cluster.node_id = format!("node-{i}");
                if let Some(d) = data_dir {
                    c.server.data_dir = d;
                }
            })
            .await;
            nodes.push(app);
        }
        Deployment { nodes }
    }

    /// Node `i` (wrapping).
    pub fn node(&self, i: usize) -> &TestApp {
        &self.nodes[i % self.nodes.len()]
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

/// A fresh, empty database `name` on the server of `url` (PostgreSQL or MySQL), so a test
/// owns its tables even when other suites use the same server; returns its URL.
pub async fn scratch_database(url: &str, name: &str) -> String {
    use sea_orm::ConnectionTrait;
    let db = switchboard::db::connect(url)
        .await
        .expect("database reachable");
    let drop = if url.starts_with("postgres") {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    } else {
        format!("DROP DATABASE IF EXISTS {name}")
    };
    db.execute_unprepared(&drop).await.expect("drop database");
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    format!("{server}/{name}{query}")
}

mod raw_http;
#[allow(unused_imports)]
pub use raw_http::*;
mod inputs;
#[allow(unused_imports)]
pub use inputs::*;
mod raw_ws;
#[allow(unused_imports)]
pub use raw_ws::*;
mod proc_stats;
#[allow(unused_imports)]
pub use proc_stats::*;
