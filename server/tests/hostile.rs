//! Hostile input over real sockets: broken frames, broken JSON, wrong types in every field of
//! every built-in event, floods of garbage, handshake garbage, slowloris and connection floods.
//! Whatever arrives, the server answers what it can, closes what it must, and keeps serving
//! everybody else.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How long a client may take to send its request headers before the server hangs up.
/// SPEC/issue 9: a connection that never finishes its headers is closed within a header
/// timeout. The bound is the server's header timeout (10 s is the proposed default) plus
/// slack; it can be raised with `SWITCHBOARD_TEST_HEADER_TIMEOUT_SECS` when a slower default
/// is chosen.
fn header_timeout_bound() -> Duration {
    let secs = std::env::var("SWITCHBOARD_TEST_HEADER_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(15);
    Duration::from_secs(secs)
}

fn host_of(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket plumbing: a hand-written handshake and hand-masked frames, so the tests can
// send exactly the bytes a well-behaved client library would refuse to produce.
// ---------------------------------------------------------------------------------------------

/// Reads an HTTP response head byte by byte (so no frame bytes are swallowed).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("response head within 5s")
            .expect("read");
        assert!(n == 1, "connection closed during the response head");
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Opens `/socket` by hand with a bearer token; returns the socket right after the 101.
async fn raw_upgrade(app: &TestApp, token: &str) -> TcpStream {
    let host = host_of(app);
    let mut s = TcpStream::connect(&host).await.unwrap();
    let req = format!(
        "GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
    s
}

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;

/// A client frame: masked, as RFC 6455 requires of clients.
fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one server frame (servers never mask): `(opcode, payload)`, or None on EOF/timeout.
async fn read_frame(s: &mut TcpStream, d: Duration) -> Option<(u8, Vec<u8>)> {
    tokio::time::timeout(d, async {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).await.ok()?;
        let opcode = h[0] & 0x0f;
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).await.ok()?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b).await.ok()?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        Some((opcode, payload))
    })
    .await
    .ok()?
}

/// Reads frames until a close frame and returns its code.
async fn raw_close_code(s: &mut TcpStream) -> u16 {
    loop {
        let (op, payload) = read_frame(s, Duration::from_secs(5))
            .await
            .expect("a close frame within 5s");
        if op == OP_CLOSE {
            assert!(payload.len() >= 2, "close frame without a code");
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

/// Reads frames until a data frame and returns it as JSON.
async fn raw_json(s: &mut TcpStream) -> (u8, Value) {
    loop {
        let (op, payload) = read_frame(s, Duration::from_secs(5))
            .await
            .expect("a frame within 5s");
        match op {
            OP_TEXT | OP_BINARY => return (op, serde_json::from_slice(&payload).unwrap()),
            OP_CLOSE => panic!("unexpected close {payload:?}"),
            _ => continue,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frame level
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let app = spawn_app().await;
    let cases: [&[u8]; 5] = [
        b"\xff\xfe",
        // Overlong encoding of '/'.
        b"\xc0\xaf",
        // A UTF-16 surrogate encoded as UTF-8.
        b"\xed\xa0\x80",
        // Beyond U+10FFFF, after a perfectly valid frame prefix.
        b"{\"event\":\"ping\",\"data\":\"\xf4\x90\x80\x80\"}",
        // A truncated sequence at the very end.
        b"{\"event\":\"ping\"}\xe2\x82",
    ];
    for bytes in cases {
        let mut s = raw_upgrade(&app, &app.admin_token).await;
        let (_, hello) = raw_json(&mut s).await;
        assert_eq!(hello["event"], "connected");
        s.write_all(&masked_frame(true, OP_TEXT, bytes))
            .await
            .unwrap();
        assert_eq!(raw_close_code(&mut s).await, 1007, "payload {bytes:?}");
    }
}

#[tokio::test]
async fn invalid_utf8_split_across_fragments_closes_with_1007() {
    let app = spawn_app().await;
    let mut s = raw_upgrade(&app, &app.admin_token).await;
    raw_json(&mut s).await;
    // Valid JSON start, then a continuation that ends inside a multi-byte sequence.
    s.write_all(&masked_frame(
        false,
        OP_TEXT,
        b"{\"event\":\"ping\",\"data\":\"",
    ))
    .await
    .unwrap();
    s.write_all(&masked_frame(true, OP_CONT, b"\xe2\x28\xa1\"}"))
        .await
        .unwrap();
    assert_eq!(raw_close_code(&mut s).await, 1007);
}

#[tokio::test]
async fn the_same_bytes_in_a_binary_frame_are_a_bad_request_not_a_close() {
    let app = spawn_app().await;
    let mut s = raw_upgrade(&app, &app.admin_token).await;
    raw_json(&mut s).await;
    s.write_all(&masked_frame(true, OP_BINARY, b"\xff\xfe"))
        .await
        .unwrap();
    let (op, reply) = raw_json(&mut s).await;
    assert_eq!(op, OP_BINARY, "binary frames are answered in binary");
    assert_eq!(reply["code"], 400);
    assert_eq!(reply["event"], "error");
    // A valid UTF-8 sequence split across fragments is fine.
    s.write_all(&masked_frame(
        false,
        OP_TEXT,
        b"{\"event\":\"ping\",\"data\":\"\xe2",
    ))
    .await
    .unwrap();
    s.write_all(&masked_frame(true, OP_CONT, b"\x82\xac\",\"seqno\":1}"))
        .await
        .unwrap();
    let (op, reply) = raw_json(&mut s).await;
    assert_eq!(op, OP_TEXT);
    assert_eq!(
        (reply["event"].as_str(), reply["code"].as_i64()),
        (Some("ping"), Some(0))
    );
    assert_eq!(reply["seqno"], 1);
}

// ---------------------------------------------------------------------------------------------
// Envelope and event level: every bad frame gets a reply, none closes the connection.
// ---------------------------------------------------------------------------------------------

/// Sends raw text and returns the next reply.
async fn ask_raw(ws: &mut Ws, raw: String) -> Value {
    ws.send(Message::Text(raw.into())).await.unwrap();
    recv(ws).await
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

async fn assert_alive(ws: &mut Ws) {
    let v = request(ws, "ping", Value::Null).await;
    assert_eq!(
        (v["event"].as_str(), v["code"].as_i64()),
        (Some("ping"), Some(0))
    );
}

#[tokio::test]
async fn malformed_envelopes_get_400_replies_and_the_connection_lives_on() {
    let app = spawn_with(|c| c.websocket.rate_limit.burst = 1_000).await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    let frame_level: Vec<String> = vec![
        "nope".into(),
        "{".into(),
        "[]".into(),
        "1".into(),
        "null".into(),
        "\"ping\"".into(),
        "{\"event\":\"ping\"".into(),
        "{\"event\":\"ping\"}}".into(),
        "{\"event\":\"ping\",\"event\":\"ping\"".into(),
        // Nesting far past any sane depth, in data (refused where it is bound: `data` is kept as
        // text until a handler reads it) and in seqno.
        format!(r#"{{"event":"join","data":{}}}"#, nested(10_000)),
        format!(r#"{{"event":"join","data":{}}}"#, nested_objects(5_000)),
        format!(r#"{{"event":"ping","seqno":{}}}"#, nested(10_000)),
        // Unbalanced nesting is malformed before any handler sees it.
        format!(r#"{{"event":"ping","data":{}}}"#, "[".repeat(10_000)),
        // Numbers no float can hold.
        r#"{"event":"join","data":{"id":1e400}}"#.into(),
        r#"{"event":"ping","seqno":-1e99999}"#.into(),
        // Lone surrogate escapes.
        r#"{"event":"join","data":{"id":"\ud800"}}"#.into(),
        r#"{"event":"\udfff"}"#.into(),
        // A field given twice.
        r#"{"event":"ping","data":1,"data":2}"#.into(),
    ];
    for raw in frame_level {
        let v = ask_raw(&mut ws, raw.clone()).await;
        let shown: String = raw.chars().take(60).collect();
        assert_eq!(v["code"], 400, "{shown}");
        assert!(
            v["errorMsg"].as_str().is_some_and(|m| !m.is_empty()),
            "{shown}"
        );
        assert_alive(&mut ws).await;
    }

    // Well-formed JSON, but a bad envelope: the reply still echoes what it can.
    let envelope_level = [
        (json!({"seqno": "a"}), Value::Null, json!("a")),
        (
            json!({"event": null, "seqno": "b"}),
            Value::Null,
            json!("b"),
        ),
        (json!({"event": 5, "seqno": "c"}), Value::Null, json!("c")),
        (
            json!({"event": ["ping"], "seqno": "d"}),
            Value::Null,
            json!("d"),
        ),
        (
            json!({"event": {"name": "ping"}, "seqno": "e"}),
            Value::Null,
            json!("e"),
        ),
        (
            json!({"event": true, "seqno": "f"}),
            Value::Null,
            json!("f"),
        ),
        (json!({"event": "", "seqno": "g"}), Value::Null, json!("g")),
        (
            json!({"event": "e".repeat(129), "seqno": "h"}),
            Value::Null,
            json!("h"),
        ),
        (
            json!({"event": "e".repeat(10_000), "seqno": "i"}),
            Value::Null,
            json!("i"),
        ),
        (
            json!({"event": "ping", "seqno": {"x": 1}}),
            json!("ping"),
            Value::Null,
        ),
        (
            json!({"event": "ping", "seqno": [1]}),
            json!("ping"),
            Value::Null,
        ),
        (
            json!({"event": "ping", "seqno": true}),
            json!("ping"),
            Value::Null,
        ),
    ];
    for (frame, event, seqno) in envelope_level {
        let v = ask_raw(&mut ws, frame.to_string()).await;
        assert_eq!(v["code"], 400, "{frame}");
        if event.is_string() {
            assert_eq!(v["event"], event, "{frame}");
        } else {
            assert_eq!(v["event"], "error", "{frame}");
        }
        assert_eq!(v["seqno"], seqno, "{frame}");
    }

    // Odd but legal envelopes: unknown events are 404, odd seqnos are echoed.
    let v = ask_raw(
        &mut ws,
        json!({"event": "e".repeat(128), "seqno": 1}).to_string(),
    )
    .await;
    assert_eq!(v["code"], 404);
    let v = ask_raw(
        &mut ws,
        json!({"event": "pi\u{0}ng", "seqno": 2}).to_string(),
    )
    .await;
    assert_eq!(v["code"], 404);
    let v = ask_raw(
        &mut ws,
        json!({"event": "\u{202e}gnip", "seqno": 3}).to_string(),
    )
    .await;
    assert_eq!(v["code"], 404);
    let v = ask_raw(
        &mut ws,
        r#"{"event":"ping","seqno":123456789012345678901234567890}"#.into(),
    )
    .await;
    assert_eq!(v["code"], 0);
    assert!(v["seqno"].is_number());
    let v = ask_raw(
        &mut ws,
        r#"{"event":"ping","seqno":"x","extra":{"y":[1,2,3]}}"#.into(),
    )
    .await;
    assert_eq!(
        (v["code"].as_i64(), v["seqno"].as_str()),
        (Some(0), Some("x"))
    );
    // Deep but within limits, and enormous numbers, are just data to `ping`.
    let v = ask_raw(
        &mut ws,
        format!(r#"{{"event":"ping","seqno":4,"data":{}}}"#, nested(100)),
    )
    .await;
    assert_eq!(v["code"], 0);
    let extremes = "[1.7976931348623157e308,-1.7976931348623157e308,\
                    18446744073709551616,-9223372036854775809,5e-324]";
    let v = ask_raw(
        &mut ws,
        format!(r#"{{"event":"ping","seqno":5,"data":{extremes}}}"#),
    )
    .await;
    assert_eq!(v["code"], 0);

    assert_alive(&mut ws).await;
    assert_eq!(
        app.state.ws.registry().counts().0,
        1,
        "still exactly one connection"
    );
}

/// One row of the wrong-types table: event, data, expected reply code.
type Case = (&'static str, Value, i64);

/// Numbers and shapes that fit no field of any built-in event.
fn hostile_values() -> Vec<Value> {
    let deep: Value = serde_json::from_str(&nested(120)).unwrap();
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.7976931348623157e308),
        serde_json::from_str("123456789012345678901234567890").unwrap(),
        json!([]),
        json!(["a"]),
        json!({}),
        json!({"id": "x"}),
        deep,
    ]
}

fn every_wrong_type_case() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    // `data` itself of the wrong shape.
    for event in ["join", "quit", "publish", "recover"] {
        for v in [
            Value::Null,
            json!("id"),
            json!(7),
            json!(true),
            json!([{"id": "t"}]),
            serde_json::from_str(&nested(120)).unwrap(),
        ] {
            cases.push((event, v, 400));
        }
    }
    // Every field of join / quit.
    for event in ["join", "quit"] {
        for v in hostile_values() {
            cases.push((event, json!({"id": v}), 400));
        }
        for bad in [
            "",
            "has space",
            "semi;colon",
            "quote'",
            "new\nline",
            "ünï",
            "%2e%2e",
        ] {
            cases.push((event, json!({"id": bad}), 400));
        }
        cases.push((event, json!({"id": "x".repeat(65)}), 400));
        cases.push((event, json!({"id": "x".repeat(100_000 / 2)}), 400));
        cases.push((event, json!({}), 400));
        cases.push((event, json!({"tag": "t"}), 400));
        cases.push((event, json!({"id": "t", "extra": 1}), 400));
        cases.push((event, json!({"id": "sys:admins"}), 403));
    }
    // Every field of publish.
    for v in hostile_values() {
        cases.push(("publish", json!({"tag": v, "data": 1}), 400));
    }
    for v in hostile_values() {
        if !v.is_boolean() && !v.is_null() {
            cases.push((
                "publish",
                json!({"tag": "room", "data": 1, "excludeSelf": v}),
                400,
            ));
        }
    }
    cases.push((
        "publish",
        json!({"tag": "room", "excludeSelf": "true"}),
        400,
    ));
    cases.push(("publish", json!({"data": 1}), 400));
    cases.push(("publish", json!({"tag": "bad tag", "data": 1}), 400));
    cases.push(("publish", json!({"tag": "not-joined", "data": 1}), 403));
    // `data` is the payload: anything goes, however odd.
    for v in hostile_values() {
        cases.push((
            "publish",
            json!({"tag": "room", "data": v, "excludeSelf": true}),
            0,
        ));
    }
    // Every field of recover.
    for v in hostile_values() {
        if !v.is_object() {
            cases.push(("recover", json!({"streams": v}), 400));
        }
        cases.push(("recover", json!({"streams": {"all": v}}), 400));
        if !(v.is_u64() || v.is_i64() && v.as_i64().unwrap() >= 0) {
            cases.push((
                "recover",
                json!({"streams": {"all": {"offset": v, "epoch": "e"}}}),
                400,
            ));
        }
        cases.push((
            "recover",
            json!({"streams": {"all": {"offset": 1, "epoch": v}}}),
            400,
        ));
    }
    cases.push(("recover", json!({}), 400));
    cases.push(("recover", json!({"stream": {}}), 400));
    cases.push(("recover", json!({"streams": {"all": {"offset": 1}}}), 400));
    cases.push(("recover", json!({"streams": {"all": {"epoch": "e"}}}), 400));
    cases.push((
        "recover",
        json!({"streams": {"all": {"offset": 1, "epoch": "e", "x": 1}}}),
        400,
    ));
    cases.push(("recover", json!({"streams": {}, "extra": true}), 400));
    let many: serde_json::Map<String, Value> = (0..129)
        .map(|i| (format!("tag:t{i}"), json!({"offset": 1, "epoch": "e"})))
        .collect();
    cases.push(("recover", json!({ "streams": many }), 400));
    // Legal shapes with absurd values: answered, not refused.
    cases.push((
        "recover",
        json!({"streams": {"all": {"offset": u64::MAX, "epoch": "x".repeat(1000)}}}),
        0,
    ));
    cases.push((
        "recover",
        json!({"streams": {
            "user:999999": {"offset": 0, "epoch": ""},
            "'; DROP TABLE users; --": {"offset": 0, "epoch": ""},
        }}),
        0,
    ));
    // `ping` takes no fields: any data is ignored.
    for v in hostile_values() {
        cases.push(("ping", v, 0));
    }
    cases
}

#[tokio::test]
async fn wrong_types_in_every_field_of_every_builtin_event_answer_with_error_codes() {
    let app = spawn_with(|c| {
        c.websocket.rate_limit.burst = 10_000;
        c.websocket.rate_limit.per_second = 10_000;
    })
    .await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    assert_eq!(
        request(&mut ws, "join", json!({"id": "room"})).await["code"],
        0
    );
    let cases = every_wrong_type_case();
    assert!(
        cases.len() > 150,
        "the table covers every field: {}",
        cases.len()
    );
    for (n, (event, data, want)) in cases.into_iter().enumerate() {
        let seqno = format!("case-{n}");
        send(
            &mut ws,
            json!({"event": event, "data": data, "seqno": seqno}),
        )
        .await;
        let v = recv(&mut ws).await;
        let shown: String = data.to_string().chars().take(80).collect();
        assert_eq!(v["event"], event, "{event} {shown}");
        assert_eq!(v["seqno"], seqno.as_str(), "{event} {shown}");
        assert_eq!(v["code"].as_i64(), Some(want), "{event} {shown}: {v}");
        if want != 0 {
            assert!(
                v["errorMsg"].as_str().is_some_and(|m| !m.is_empty()),
                "{event} {shown}: errors say why"
            );
            assert!(
                v.get("data").is_none(),
                "{event} {shown}: no data on errors"
            );
        }
    }
    // Nothing changed behind the errors: still in exactly the one tag, still serving.
    assert_eq!(
        request(&mut ws, "quit", json!({"id": "nothing"})).await["data"],
        json!(["room"])
    );
    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn wrong_types_in_login_answer_with_error_codes_on_an_anonymous_socket() {
    let app = spawn_with(|c| c.auth.except_login.push("/socket".into())).await;
    let mut ws = ws_connect(&app.ws_url, None).await.unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["data"]["userId"], Value::Null);
    let mut cases: Vec<(Value, i64)> = Vec::new();
    for v in [
        Value::Null,
        json!("admin"),
        json!(1),
        json!([]),
        json!(["admin", "pw"]),
    ] {
        cases.push((v, 400));
    }
    for v in hostile_values() {
        if v.is_null() {
            continue;
        }
        cases.push((json!({"username": v, "password": "pw"}), 400));
        cases.push((json!({"username": "admin", "password": v}), 400));
        cases.push((json!({"token": v}), 400));
    }
    cases.push((json!({}), 400));
    cases.push((json!({"username": "admin"}), 400));
    cases.push((json!({"password": ADMIN_PASSWORD}), 400));
    // Strings of the right type but the wrong content are refused as credentials.
    cases.push((json!({"token": ""}), 401));
    cases.push((json!({"token": "a.b.c"}), 401));
    cases.push((json!({"token": "x".repeat(20_000)}), 401));
    cases.push((
        json!({"username": "admin' --", "password": "' OR '1'='1"}),
        401,
    ));
    cases.push((json!({"username": "", "password": ""}), 401));
    for (n, (data, want)) in cases.into_iter().enumerate() {
        let seqno = n as u64;
        send(
            &mut ws,
            json!({"event": "login", "data": data, "seqno": seqno}),
        )
        .await;
        let v = recv(&mut ws).await;
        assert_eq!(
            (v["event"].as_str(), v["seqno"].as_u64()),
            (Some("login"), Some(seqno))
        );
        assert_eq!(v["code"].as_i64(), Some(want), "login {data}: {v}");
        assert!(v.get("data").is_none(), "login {data}: no token on failure");
    }
    assert_alive(&mut ws).await;
    // Still anonymous after all that; a real login then works, and a second one is a conflict.
    let (_, online) = app.get("/api/websocket/online", &app.admin_token).await;
    assert_eq!(online["list"][0]["userId"], Value::Null);
    let v = request(
        &mut ws,
        "login",
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["user"]["username"], "admin");
    let v = request(&mut ws, "login", json!({"username": 5})).await;
    assert_eq!(v["code"], 409);
}

// ---------------------------------------------------------------------------------------------
// Volume: ten thousand garbage frames from twenty connections.
// ---------------------------------------------------------------------------------------------

const FLOOD_CONNECTIONS: usize = 20;
const FLOOD_FRAMES: usize = 500;

/// The i-th garbage frame and the reply code it must get.
fn garbage(i: usize) -> (Message, i64) {
    match i % 7 {
        0 => (Message::Text(format!("garbage #{i} {{[").into()), 400),
        1 => (
            Message::Text(
                json!({"event": "no/such/event", "seqno": i})
                    .to_string()
                    .into(),
            ),
            404,
        ),
        2 => (
            Message::Text(
                json!({"event": "join", "data": {"id": i}, "seqno": i})
                    .to_string()
                    .into(),
            ),
            400,
        ),
        3 => (
            Message::Binary(vec![0xff, (i % 256) as u8, 0x00].into()),
            400,
        ),
        4 => (
            Message::Text(
                json!({"seqno": i, "data": [[[[[[i]]]]]]})
                    .to_string()
                    .into(),
            ),
            400,
        ),
        5 => (
            Message::Text(format!(r#"{{"event":"join","data":{}}}"#, nested(200)).into()),
            400,
        ),
        _ => (
            Message::Text(json!({"event": "ping", "seqno": i}).to_string().into()),
            0,
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_garbage_frames_from_twenty_connections_each_get_a_reply() {
    let app = spawn_with(|c| {
        c.websocket.rate_limit.per_second = 100_000;
        c.websocket.rate_limit.burst = 100_000;
    })
    .await;
    let mut expected: BTreeMap<i64, usize> = BTreeMap::new();
    for i in 0..FLOOD_FRAMES {
        *expected.entry(garbage(i).1).or_default() += FLOOD_CONNECTIONS;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        let (ws, _) = app.ws(&app.admin_token).await;
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let writer = tokio::spawn(async move {
                for i in 0..FLOOD_FRAMES {
                    tx.feed(garbage(i).0).await.unwrap();
                }
                tx.flush().await.unwrap();
                tx
            });
            let mut codes: Vec<i64> = Vec::with_capacity(FLOOD_FRAMES);
            while codes.len() < FLOOD_FRAMES {
                let msg = tokio::time::timeout(Duration::from_secs(20), rx.next())
                    .await
                    .expect("replies keep coming")
                    .expect("socket open")
                    .expect("no socket error");
                let v: Value = match msg {
                    Message::Text(t) => serde_json::from_str(&t).unwrap(),
                    Message::Binary(b) => serde_json::from_slice(&b).unwrap(),
                    Message::Close(c) => panic!("closed during the flood: {c:?}"),
                    _ => continue,
                };
                codes.push(v["code"].as_i64().unwrap());
            }
            let mut ws = writer.await.unwrap().reunite(rx).unwrap();
            // Nothing beyond one reply per frame, and the connection still works.
            assert!(
                recv_within(&mut ws, Duration::from_millis(200))
                    .await
                    .is_none()
            );
            assert_alive(&mut ws).await;
            codes
        }));
    }
    let mut got: BTreeMap<i64, usize> = BTreeMap::new();
    for t in tasks {
        let codes = t.await.unwrap();
        assert_eq!(codes.len(), FLOOD_FRAMES);
        for c in codes {
            *got.entry(c).or_default() += 1;
        }
    }
    assert_eq!(got, expected, "every frame got exactly its reply");
    assert_eq!(
        got.values().sum::<usize>(),
        FLOOD_CONNECTIONS * FLOOD_FRAMES
    );
    eprintln!(
        "{} garbage frames answered in {:?}",
        FLOOD_CONNECTIONS * FLOOD_FRAMES,
        started.elapsed()
    );

    // Healthy afterwards: probes answer, a fresh client gets through, nobody was dropped.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (mut fresh, _) = app.ws(&app.admin_token).await;
    assert_alive(&mut fresh).await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The handshake: garbage, half requests, slowloris.
// ---------------------------------------------------------------------------------------------

/// Sends bytes and reads until the server closes; returns what it said, or an error naming
/// what it had said so far if the connection is still open after `within`.
async fn server_answer(app: &TestApp, bytes: &[u8], within: Duration) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(host_of(app)).await.unwrap();
    // The server may hang up before we finish writing; that is an answer too.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => {
                return Err(format!(
                    "connection still open after {within:?}; answered so far: {:?}",
                    String::from_utf8_lossy(&out)
                ));
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A deterministic stream of noise (xorshift), so failures are reproducible.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn handshake_garbage_is_refused_and_the_connection_closed() {
    let app = spawn_app().await;
    let within = Duration::from_secs(5);
    let host = host_of(&app);
    let mut garbage: Vec<Vec<u8>> = (0..8).map(|seed| noise(2048, seed * 7919 + 1)).collect();
    garbage.push(b"GET\r\n\r\n".to_vec());
    garbage.push(b"GET /socket HTTP/9.9\r\n\r\n".to_vec());
    garbage.push(b"GET /socket HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec());
    garbage.push(b"GET /socket HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec());
    garbage.push(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()); // a TLS ClientHello
    garbage.push(format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes());
    let mut many_headers = format!("GET /socket HTTP/1.1\r\nHost: {host}\r\n");
    for i in 0..500 {
        many_headers.push_str(&format!("X-H{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    garbage.push(many_headers.into_bytes());
    garbage.push(
        format!(
            "GET /socket HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n",
            "b".repeat(1 << 20)
        )
        .into_bytes(),
    );
    for bytes in &garbage {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        let answer = match server_answer(&app, bytes, within).await {
            Ok(a) => a,
            Err(e) => panic!("garbage {shown:?}…: {e}"),
        };
        let line = status_line(&answer);
        assert!(
            answer.is_empty() || line.starts_with("HTTP/1.1 4") || line.starts_with("HTTP/1.0 4"),
            "garbage {shown:?}… answered {line:?}"
        );
    }
    // Still serving.
    let (mut ws, _) = app.ws(&app.admin_token).await;
    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn a_refused_upgrade_is_a_json_error_never_a_101() {
    let app = spawn_app().await;
    let url = app.ws_url.replacen("ws://", "http://", 1);
    let t = &app.admin_token;
    let upgrade = |version: Option<&str>, key: Option<&str>| {
        let mut r = app
            .http
            .get(&url)
            .bearer_auth(t)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade");
        if let Some(v) = version {
            r = r.header("Sec-WebSocket-Version", v);
        }
        if let Some(k) = key {
            r = r.header("Sec-WebSocket-Key", k);
        }
        r
    };
    let good_key = Some("dGhlIHNhbXBsZSBub25jZQ==");
    let attempts: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (app.http.get(&url).bearer_auth(t), 400, "websocket_required"),
        (
            app.http
                .get(&url)
                .bearer_auth(t)
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            400,
            "websocket_required",
        ),
        (
            app.http
                .post(&url)
                .bearer_auth(t)
                .header("Upgrade", "websocket")
                .header("Connection", "Upgrade")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            400,
            "websocket_required",
        ),
        // RFC 6455 4.4: an unsupported or missing version is 426 naming the one we speak.
        (upgrade(Some("8"), good_key), 426, "websocket_version"),
        (upgrade(None, good_key), 426, "websocket_version"),
        (upgrade(Some("13"), None), 400, "websocket_key"),
        // The key must be base64 of 16 bytes.
        (upgrade(Some("13"), Some("short")), 400, "websocket_key"),
        (upgrade(Some("13"), Some("c2hvcnQ=")), 400, "websocket_key"),
        (
            upgrade(Some("13"), Some("dGhlIHNhbXBsZSBub25jZQ==dGhl")),
            400,
            "websocket_key",
        ),
    ];
    for (req, status, code) in attempts {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{code}");
        if status == 426 {
            assert_eq!(r.headers()["sec-websocket-version"], "13");
        }
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(r.headers().get("sec-websocket-accept").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        app.state.ws.registry().counts().0,
        0,
        "nothing was upgraded"
    );
}

/// Trickles `head` one byte at a time and returns how long the server kept the connection
/// open; panics when that exceeds `limit`.
async fn trickle_until_closed(
    host: String,
    head: Vec<u8>,
    every: Duration,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(&host).await.unwrap();
    let mut buf = [0u8; 1024];
    let mut i = 0usize;
    loop {
        if started.elapsed() > limit {
            panic!("a slowloris connection was still open after {limit:?} ({i} header bytes sent)");
        }
        // Keep sending header bytes forever (the blank line never comes).
        let byte = head.get(i).copied().unwrap_or(b'a');
        i += 1;
        if s.write_all(&[byte]).await.is_err() {
            return started.elapsed();
        }
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            // A 408/400 answer: the close follows.
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends `bytes`, then waits silently; returns how long the server kept the connection open,
/// panicking past `limit`.
async fn stall_until_closed(host: String, bytes: Vec<u8>, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(&host).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await
        {
            Err(_) => panic!(
                "a connection that sent {:?} and stalled was still open after {limit:?}",
                String::from_utf8_lossy(&bytes)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_and_stalled_requests_are_closed_within_the_header_timeout_and_hurt_nobody() {
    let app = spawn_app().await;
    let bound = header_timeout_bound();
    let host = host_of(&app);
    let head = format!("GET /socket HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").into_bytes();
    let mut open = Vec::new();
    // Headers trickled a byte at a time, forever.
    for _ in 0..20 {
        open.push(tokio::spawn(trickle_until_closed(
            host.clone(),
            head.clone(),
            Duration::from_millis(250),
            bound,
        )));
    }
    // Requests that start and then go silent, and a connection that never says anything.
    for stalled in [
        String::new(),
        "\r\n\r\n\r\n\r\n".to_string(),
        "GET /socket HTTP/1.1\r\n".to_string(),
        format!("GET /socket HTTP/1.1\r\nHost: {host}\r\n"),
        format!(
            "GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        ),
    ] {
        open.push(tokio::spawn(stall_until_closed(
            host.clone(),
            stalled.into_bytes(),
            bound,
        )));
    }
    // Meanwhile real clients are served as usual.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    assert_alive(&mut ws).await;
    let (s, _) = app.get("/api/auth/me", &app.admin_token).await;
    assert_eq!(s, 200);
    let mut failures = Vec::new();
    for t in open {
        if let Err(e) = t.await {
            failures.push(
                e.into_panic()
                    .downcast::<String>()
                    .map(|b| *b)
                    .unwrap_or_default(),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 25 connections outlived the header timeout:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_alive(&mut ws).await;
}

// ---------------------------------------------------------------------------------------------
// Connection floods beyond the limit.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_beyond_max_connections_gets_429_while_existing_clients_keep_working() {
    const LIMIT: usize = 10;
    let app = spawn_with(|c| c.websocket.max_connections = LIMIT).await;
    let mut existing = Vec::new();
    for _ in 0..LIMIT {
        existing.push(app.ws(&app.admin_token).await.0);
    }
    // Existing clients ping continuously while the flood runs.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut pingers = Vec::new();
    for mut ws in existing {
        let stop = stop.clone();
        pingers.push(tokio::spawn(async move {
            let mut round_trips = 0u32;
            let mut worst = Duration::ZERO;
            while !stop.is_cancelled() {
                let t = Instant::now();
                let v = request(&mut ws, "ping", Value::Null).await;
                assert_eq!(v["code"], 0);
                worst = worst.max(t.elapsed());
                round_trips += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ws, round_trips, worst)
        }));
    }
    let mut flood = Vec::new();
    for _ in 0..200 {
        let url = app.ws_url.clone();
        let token = app.admin_token.clone();
        flood.push(tokio::spawn(async move {
            match ws_connect(&url, Some(&token)).await {
                Ok(_) => panic!("a handshake beyond max_connections was accepted"),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    let body: Value =
                        serde_json::from_slice(r.body().as_deref().unwrap_or(b"null")).unwrap();
                    (
                        r.status().as_u16(),
                        body["code"].as_str().unwrap_or("").to_string(),
                    )
                }
                Err(e) => panic!("expected an HTTP refusal, got {e}"),
            }
        }));
    }
    for f in flood {
        let (status, code) = f.await.unwrap();
        assert_eq!((status, code.as_str()), (429, "too_many_connections"));
    }
    stop.cancel();
    let mut survivors = Vec::new();
    for p in pingers {
        let (ws, round_trips, worst) = p.await.unwrap();
        assert!(
            round_trips > 0,
            "every existing client kept its round trips"
        );
        assert!(
            worst < Duration::from_secs(2),
            "ping took {worst:?} during the flood"
        );
        survivors.push(ws);
    }
    assert_eq!(app.state.ws.registry().counts().0, LIMIT);
    // A slot freed by a leaving client is usable again.
    survivors.pop().unwrap().close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ws_connect(&app.ws_url, Some(&app.admin_token)).await {
            Ok(mut ws) => {
                assert_eq!(recv(&mut ws).await["event"], "connected");
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the freed slot never became usable: {e}"),
        }
    }
    for mut ws in survivors {
        assert_alive(&mut ws).await;
    }
}
