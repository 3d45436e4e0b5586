//! The WebSocket engine over real sockets.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_sdk::event::{EventContext, EventError, EventResult, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn hundred_pipelined_events_reply_in_order_with_seqno() {
    let app = spawn_with(|c| c.websocket.rate_limit.burst = 500).await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    for i in 0..100 {
        ws.feed(Message::Text(
            json!({"event":"admin/addons/hgexample/testMessage","data":{"n":i},"seqno":i})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..100 {
        let v = recv(&mut ws).await;
        assert_eq!(v["event"], "admin/addons/hgexample/testMessage");
        assert_eq!(v["seqno"], i);
        assert_eq!(v["data"]["n"], i);
        assert_eq!(v["code"], 0);
    }
}

/// testMessage sends `data` back as the client wrote it (whitespace, key order, numbers no
/// float holds), through read-ahead and batched direct frame writes, for text and binary, small
/// and large frames pipelined together.
#[tokio::test]
async fn echo_returns_data_byte_for_byte_in_pipelined_batches() {
    let app = spawn_with(|c| c.websocket.rate_limit.burst = 500).await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    let datas: Vec<String> = (0..40)
        .map(|i| match i % 4 {
            0 => format!(r#"{{ "z" : 1, "a":[ {i}, 123456789012345678901234567890, 1.50 ] }}"#),
            1 => format!(r#""{}""#, "é".repeat(2_000 + i)),
            2 => format!(r#"{{"pad":"{}","i":{i}}}"#, "x".repeat(60_000)),
            _ => "null".to_string(),
        })
        .collect();
    for (i, data) in datas.iter().enumerate() {
        let frame = format!(
            r#"{{"event":"admin/addons/hgexample/testMessage","data":{data},"seqno":{i}}}"#
        );
        let msg = if i % 3 == 0 {
            Message::Binary(frame.into_bytes().into())
        } else {
            Message::Text(frame.into())
        };
        ws.feed(msg).await.unwrap();
    }
    ws.flush().await.unwrap();
    for (i, data) in datas.iter().enumerate() {
        let text = loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("a reply")
                .unwrap()
                .unwrap()
            {
                Message::Text(t) => {
                    assert!(i % 3 != 0, "a binary request gets a binary reply");
                    break t.to_string();
                }
                Message::Binary(b) => {
                    assert!(i % 3 == 0, "a text request gets a text reply");
                    break String::from_utf8(b.to_vec()).unwrap();
                }
                _ => continue,
            }
        };
        let expected = if data == "null" {
            format!(r#"{{"event":"admin/addons/hgexample/testMessage","code":0,"seqno":{i},"#)
        } else {
            format!(
                r#"{{"event":"admin/addons/hgexample/testMessage","data":{data},"code":0,"seqno":{i},"#
            )
        };
        assert!(
            text.starts_with(&expected),
            "reply {i}: {}",
            &text[..text.len().min(200)]
        );
    }
}

async fn failing(_ctx: EventContext, _data: Value) -> EventResult {
    Err(EventError::failed("it went wrong"))
}
async fn panicking(_ctx: EventContext, _data: Value) -> EventResult {
    panic!("boom")
}
#[derive(serde::Deserialize, poem_openapi::Object)]
#[allow(dead_code)]
struct Typed {
    count: u32,
}
async fn typed(_ctx: EventContext, data: Typed) -> EventResult {
    Ok(json!({"count": data.count}).into())
}
async fn admin_only(_ctx: EventContext, _data: Value) -> EventResult {
    Ok(Reply::ok())
}

/// Counts calls per connection in the session store.
async fn counter(ctx: EventContext, _data: Value) -> EventResult {
    let n = ctx.session().get("n").and_then(|v| v.as_u64()).unwrap_or(0) + 1;
    ctx.session().set("n", json!(n));
    Ok(json!({"n": n}).into())
}

/// Aborts when data is "abort"; otherwise wraps the handler's reply (before/after).
struct Guard;

#[switchboard_sdk::async_trait]
impl switchboard_sdk::event::Middleware for Guard {
    async fn handle(
        &self,
        ctx: EventContext,
        data: switchboard_sdk::Data,
        next: switchboard_sdk::event::Next<'_>,
    ) -> EventResult {
        if data.to_value()? == json!("abort") {
            return Err(EventError::forbidden("aborted by middleware"));
        }
        ctx.session().set("before", json!(true));
        match next.run(ctx, data).await? {
            Reply::Data(v) => Ok(json!({"wrapped": v}).into()),
            Reply::Raw(d) => Ok(json!({"wrapped": d.to_value()?}).into()),
            Reply::Silent => Ok(Reply::Silent),
        }
    }
}

#[tokio::test]
async fn middleware_chain_and_session_store() {
    let app = spawn_full(
        |_| {},
        |reg| {
            reg.middleware(Guard);
            reg.on("test/counter", counter);
        },
    )
    .await;
    let (mut a, _) = app.ws(&app.admin_token).await;
    let (mut b, _) = app.ws(&app.admin_token).await;
    assert_eq!(
        request(&mut a, "test/counter", Value::Null).await["data"],
        json!({"wrapped": {"n": 1}})
    );
    assert_eq!(
        request(&mut a, "test/counter", Value::Null).await["data"],
        json!({"wrapped": {"n": 2}})
    );
    assert_eq!(
        request(&mut b, "test/counter", Value::Null).await["data"],
        json!({"wrapped": {"n": 1}}),
        "sessions are per connection"
    );
    let v = request(&mut a, "test/counter", json!("abort")).await;
    assert_eq!(
        (v["code"].as_i64(), v["errorMsg"].as_str()),
        (Some(403), Some("aborted by middleware"))
    );
    assert_eq!(
        request(&mut a, "test/counter", Value::Null).await["data"]["wrapped"]["n"],
        3,
        "abort skipped the handler"
    );
}

#[tokio::test]
async fn every_error_code_and_the_connection_lives_on() {
    let app = spawn_full(
        |c| {
            c.websocket.rate_limit = switchboard::config::RateLimitConfig {
                per_second: 1,
                burst: 12,
            }
        },
        |reg| {
            reg.on("test/fail", failing);
            reg.on("test/panic", panicking);
            reg.on("test/typed", typed);
            reg.on("test/admin", admin_only)
                .role(switchboard_sdk::Role::Admin);
        },
    )
    .await;
    let (_, member) = app.user("m1", &["member"]).await;
    let (mut ws, _) = app.ws(&member).await;
    // Frames that are no usable envelope at all: see frames.rs.
    assert_eq!(
        request(&mut ws, "nope/nothing", Value::Null).await["code"],
        404
    );
    let v = request(&mut ws, "test/fail", Value::Null).await;
    assert_eq!(
        (v["code"].as_i64(), v["errorMsg"].as_str()),
        (Some(-1), Some("it went wrong"))
    );
    let v = request(&mut ws, "test/typed", json!({"count": "many"})).await;
    assert_eq!(v["code"], 400);
    assert!(
        v["errorMsg"].as_str().unwrap().starts_with("data.count"),
        "{v}"
    );
    assert_eq!(
        request(&mut ws, "test/typed", json!({"count": 3})).await["data"]["count"],
        3
    );
    assert_eq!(
        request(&mut ws, "test/admin", Value::Null).await["code"],
        403
    );
    let v = request(&mut ws, "test/panic", Value::Null).await;
    assert_eq!(v["code"], 500);
    assert_eq!(
        request(&mut ws, "ping", Value::Null).await["code"],
        0,
        "alive after a panic"
    );
    // Empty frame: heartbeat, no reply.
    ws.send(Message::Text("".into())).await.unwrap();
    // Binary in, binary out.
    ws.send(Message::Binary(
        br#"{"event":"ping","seqno":"b"}"#.to_vec().into(),
    ))
    .await
    .unwrap();
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => {
                let v: Value = serde_json::from_slice(&b).unwrap();
                assert_eq!(v["seqno"], "b");
                break;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected binary, got {other:?}"),
        }
    }
    // Burst exhausted → 429 replies.
    let mut limited = false;
    for _ in 0..20 {
        if request(&mut ws, "ping", Value::Null).await["code"] == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited);
}

#[tokio::test]
async fn a_silent_raw_client_is_closed_with_4009() {
    let app = spawn_with(|c| {
        c.websocket.ping_interval = Duration::from_millis(300);
        c.websocket.idle_timeout = Duration::from_millis(800);
    })
    .await;
    // A raw TCP client that completes the handshake, then never answers pings.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /socket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {}\r\n\r\n",
        app.admin_token
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let start = std::time::Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut seen = Vec::new();
    // Read until the server closes; look for a close frame with code 4009 (0x0FA9).
    loop {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
        if seen
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2] == 0x0f && w[3] == 0xa9)
        {
            break;
        }
    }
    assert!(
        seen.windows(4)
            .any(|w| w[0] == 0x88 && w[2] == 0x0f && w[3] == 0xa9),
        "close 4009 seen"
    );
    assert!(start.elapsed() < Duration::from_millis(800 + 300 + 1000));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_with_4008_and_others_still_get_pushes() {
    let app = spawn_with(|c| {
        c.websocket.send_queue_bytes = 64 * 1024;
        c.websocket.write_timeout = Duration::from_secs(1);
    })
    .await;
    let (slow, slow_hello) = app.ws(&app.admin_token).await;
    let (_, member) = app.user("fast", &["member"]).await;
    let (mut fast, _) = app.ws(&member).await;
    let hub: std::sync::Arc<dyn switchboard_sdk::Hub> = app.state.ws.node.clone();
    let payload = json!({"blob": "y".repeat(16 * 1024)});
    let slow_id = switchboard_sdk::ClientId::parse(slow_hello["id"].as_str().unwrap()).unwrap();
    // Flood the slow client (it never reads) until the server gives up on it.
    let mut cut = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        let n = hub
            .send_to_client(
                &slow_id,
                switchboard_sdk::Push::new("flood", payload.clone()),
            )
            .await;
        if app.state.ws.registry().get(&slow_id).is_none() {
            cut = true;
            break;
        }
        if n == 0 {
            // Over the queue limit: the connection is closing; sends no longer wait or count.
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    assert!(cut, "the slow client was removed");
    let start = std::time::Instant::now();
    let n = hub
        .send_to_user(
            switchboard_sdk::UserId(2),
            switchboard_sdk::Push::new("hello", json!(1)),
        )
        .await;
    assert_eq!(n, 1);
    assert_eq!(recv(&mut fast).await["event"], "hello");
    assert!(start.elapsed() < Duration::from_secs(1));
    // The server recorded the close as 4008 (the slow client may or may not still get the
    // close frame through its full buffers).
    let metrics = app.state.ws.metrics.clone();
    eventually(Duration::from_secs(5), || {
        metrics.closes().iter().any(|(c, _)| *c == 4008)
    })
    .await;
    drop(slow);
}

/// Connects, retrying while a limit refuses with 429: an abruptly dropped socket gives its
/// place back when the server notices the EOF, a moment after the client let go.
async fn ws_when_admitted(app: &TestApp, token: &str) -> Ws {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ws_connect(&app.ws_url, Some(token)).await {
            Ok(mut ws) => {
                assert_eq!(recv(&mut ws).await["event"], "connected");
                return ws;
            }
            Err(e) => {
                assert_eq!(handshake_status(e), 429, "only a limit may refuse");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "a dropped socket never gave its place back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_thousand_abrupt_disconnects_leave_no_index_entries() {
    // Tight limits, so a leaked place in either count would show as a refused connection.
    let app = spawn_with(|c| {
        c.websocket.max_connections = 4;
        c.websocket.max_connections_per_user = 2;
    })
    .await;
    let (_, other) = app.user("churner", &["member"]).await;
    for i in 0..1000 {
        let token = if i % 3 == 0 { &other } else { &app.admin_token };
        let mut ws = ws_when_admitted(&app, token).await;
        if i % 2 == 0 {
            request(&mut ws, "join", json!({"id": format!("churn{}", i % 7)})).await;
        }
        drop(ws); // no close handshake
    }
    // Every index is empty: no connection, user or tag is left behind…
    wait_for_stats(&app, (0, 0, 0)).await;
    // …and every place was given back, to the exact count: each user gets exactly its two
    // places, the node exactly its four.
    let mut held = Vec::new();
    for token in [&app.admin_token, &app.admin_token, &other, &other] {
        let (ws, _) = app.ws(token).await;
        held.push(ws);
    }
    let (_, third) = app.user("third", &["member"]).await;
    assert_eq!(refusal(&app, &third).await, "too_many_connections");
    drop(held.pop());
    wait_for_stats(&app, (3, 2, 0)).await;
    assert_eq!(
        refusal(&app, &app.admin_token).await,
        "too_many_user_connections"
    );
}

/// Polls `GET /api/websocket/stats` until (connections, users, tags) are `want`.
async fn wait_for_stats(app: &TestApp, want: (u64, u64, u64)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, stats) = app.get("/api/websocket/stats", &app.admin_token).await;
        assert_eq!(status, 200);
        let got = (
            stats["connections"].as_u64(),
            stats["users"].as_u64(),
            stats["tags"].as_u64(),
        );
        if got == (Some(want.0), Some(want.1), Some(want.2)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "want {want:?}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error code of a refused upgrade (it must be a 429).
async fn refusal(app: &TestApp, token: &str) -> String {
    match ws_connect(&app.ws_url, Some(token)).await {
        Ok(_) => panic!("the connection was admitted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            let body: Value = serde_json::from_slice(r.body().as_deref().unwrap_or(b"null"))
                .expect("a JSON refusal");
            body["code"].as_str().unwrap_or_default().to_string()
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

#[tokio::test]
async fn expired_token_closes_the_socket_with_4003() {
    let app = spawn_with(|c| c.auth.token_ttl = Duration::from_secs(2)).await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 4003);
}

#[tokio::test]
async fn logout_closes_that_tokens_sockets_with_4003() {
    let app = spawn_app().await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    let (s, b) = app
        .post("/api/auth/logout", &app.admin_token, json!({}))
        .await;
    assert_eq!((s, b["closed"].as_i64()), (200, Some(1)));
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 4003);
}

#[tokio::test]
async fn graceful_shutdown_sends_1001_to_every_socket() {
    let app = spawn_app().await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(app.ws(&app.admin_token).await.0);
    }
    app.shutdown.cancel();
    for ws in sockets.iter_mut() {
        assert_eq!(close_code(ws, Duration::from_secs(5)).await, 1001);
    }
    let res = tokio::time::timeout(Duration::from_secs(6), app.handle).await;
    assert!(res.is_ok(), "server exits within shutdown_timeout");
}

#[tokio::test]
async fn anonymous_login_over_the_socket_then_a_send_reaches_it() {
    let app = spawn_with(|c| c.auth.except_login.push("/socket".into())).await;
    let (uid, _) = app.user("anon2user", &["member"]).await;
    let mut ws = ws_connect(&app.ws_url, None).await.unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["data"]["userId"], Value::Null);
    // Anonymous clients appear in the online list and can be sent to by id.
    let (_, page) = app.get("/api/websocket/online", &app.admin_token).await;
    assert_eq!(page["total"], 1);
    let v = request(
        &mut ws,
        "login",
        json!({"username": "anon2user", "password": "wrong-pass"}),
    )
    .await;
    assert_eq!(v["code"], 401);
    let v = request(
        &mut ws,
        "login",
        json!({"username": "anon2user", "password": "password-123"}),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["user"]["id"], uid);
    assert!(v["data"]["token"].is_string());
    assert_eq!(
        request(&mut ws, "login", json!({"token": "x"})).await["code"],
        409
    );
    let (s, d) = app
        .post(
            "/api/websocket/send/toUser",
            &app.admin_token,
            json!({"userId": uid, "event": "notice", "data": {"t": 1}}),
        )
        .await;
    assert_eq!((s, d["delivered"].as_i64()), (200, Some(1)));
    let got = recv(&mut ws).await;
    assert_eq!(got["event"], "notice");
    assert_eq!(got["data"], json!({"t": 1}));
    // A valid token on an exempt path still identifies the client.
    let (_, hello) = app.ws(&app.admin_token).await;
    assert_eq!(hello["userId"], 1);
}

#[tokio::test]
async fn the_clock_tag_receives_pushes() {
    let app = spawn_app().await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    request(&mut ws, "join", json!({"id": "hgexample:clock"})).await;
    let v = recv_within(&mut ws, Duration::from_secs(8))
        .await
        .expect("a clock push");
    assert_eq!(v["event"], "admin/addons/hgexample/clock");
    assert!(v["data"]["unixMillis"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn hgexample_http_endpoint_pushes_to_a_user() {
    let app = spawn_app().await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    let (s, d) = app
        .post(
            "/api/addons/hgexample/push",
            &app.admin_token,
            json!({"userId": 1, "data": {"x": 1}}),
        )
        .await;
    assert_eq!((s, d["delivered"].as_i64()), (200, Some(1)));
    let v = recv(&mut ws).await;
    assert_eq!(
        (v["event"].as_str(), &v["data"]),
        (Some("notice"), &json!({"x": 1}))
    );
    let (_, log) = app
        .get("/api/addons/hgexample/pushes", &app.admin_token)
        .await;
    assert_eq!(log[0]["delivered"], 1);
}

#[test]
fn reserved_or_duplicate_events_fail_start_up_clearly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = base_config(dir.path());
        let err = switchboard::Application::build_with_events(cfg, |reg| {
            reg.on("admin/addons/hgexample/testMessage", admin_only);
            reg.on("join", admin_only);
        })
        .await
        .err()
        .expect("start-up fails");
        let msg = err.to_string();
        assert!(msg.contains("registered twice"), "{msg}");
        assert!(msg.contains("reserved"), "{msg}");
    });
}

#[tokio::test]
async fn a_client_initiated_close_gets_the_closing_handshake() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let app = spawn_with(|c| c.websocket.echo_path = "/echo".into()).await;
    for path in ["/socket", "/echo"] {
        let url = format!("{}{path}", app.base.replace("http://", "ws://"));
        let mut ws = ws_connect(&url, Some(&app.admin_token)).await.unwrap();
        if path == "/socket" {
            recv(&mut ws).await;
        } else {
            ws.send(Message::Text("echo me".into())).await.unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::Text("echo me".into())
            );
        }
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a reply in time")
            .expect("a frame, not the end of the stream")
            .expect("no error");
        match reply {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000, "{path}"),
            other => panic!("{path}: expected the close reply, got {other:?}"),
        }
    }
}
