//! What a socket does with each frame it receives: text that is not UTF-8 closes with 1007,
//! a frame over the size limit with 1009; anything else that cannot be used — binary junk,
//! broken JSON, a bad envelope, a built-in event given data of the wrong shape — gets a reply
//! with an error code, and the connection lives on, even under thousands of such frames.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

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

#[tokio::test]
async fn oversize_message_closes_with_1009() {
    let app = spawn_with(|c| c.websocket.max_message_size = 1024).await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    let big = json!({"event": "ping", "data": "x".repeat(4096)}).to_string();
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 1009);
}

/// Sends raw text and returns the next reply.
async fn ask_raw(ws: &mut Ws, raw: String) -> Value {
    ws.send(Message::Text(raw.into())).await.unwrap();
    recv(ws).await
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
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
    // Text that is no JSON at all cannot name its event: the reply is the `error` event.
    let v = ask_raw(&mut ws, "not json".into()).await;
    assert_eq!(
        (v["event"].as_str(), v["code"].as_i64()),
        (Some("error"), Some(400))
    );

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
