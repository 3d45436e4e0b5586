//! A push larger than a recipient's send queue can ever hold is refused where it is sent —
//! 413 at the HTTP API, code 413 to a publishing socket — before it is numbered or delivered,
//! instead of cutting every recipient off with 4008.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const QUEUE: usize = 4096;
/// What the queue takes in one frame: its size less the per-frame bookkeeping.
const LARGEST_FRAME: usize = QUEUE - 64;

async fn small_queue_app() -> TestApp {
    spawn_with(|c| {
        c.websocket.send_queue_bytes = QUEUE;
        c.websocket.max_message_size = 8 * 1024;
    })
    .await
}

/// Data of `len` characters.
fn blob(len: usize) -> Value {
    Value::String("x".repeat(len))
}

fn assert_refused(reply: &(u16, Value), size_at_least: usize) {
    let (status, body) = reply;
    assert_eq!(*status, 413, "{body}");
    assert_eq!(body["code"], "push_too_large", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("websocket.send_queue_bytes"), "{message}");
    assert!(
        message.contains(&format!("at most {LARGEST_FRAME} bytes")),
        "{message}"
    );
    let size: usize = message
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    assert!(size >= size_at_least, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_push_is_refused_with_413_and_readers_keep_their_connection() {
    let app = small_queue_app().await;
    let (member, member_token) = app.user("reader", &["member"]).await;
    let (mut admin_ws, admin_hello) = app.ws(&app.admin_token).await;
    let (mut member_ws, _) = app.ws(&member_token).await;
    let v = request(&mut member_ws, "join", json!({"id": "room"})).await;
    assert_eq!(v["code"], 0, "{v}");
    let client_id = admin_hello["id"].as_str().unwrap().to_string();

    let big = blob(QUEUE * 2);
    let t = app.admin_token.as_str();
    let cases = [
        (
            "/api/websocket/send/toAll",
            json!({"event": "big", "data": big}),
        ),
        (
            "/api/websocket/send/toUser",
            json!({"userId": member, "event": "big", "data": big}),
        ),
        (
            "/api/websocket/send/toTag",
            json!({"tag": "room", "event": "big", "data": big}),
        ),
        (
            "/api/websocket/send/toClient",
            json!({"clientId": client_id, "event": "big", "data": big}),
        ),
    ];
    for (path, body) in cases {
        let reply = app.post(path, t, body).await;
        assert_refused(&reply, QUEUE * 2);
    }

    // Both readers are still connected and get the next push, and it is the first of its
    // stream: nothing of the refused ones was numbered.
    let (status, v) = app
        .post(
            "/api/websocket/send/toAll",
            t,
            json!({"event": "small", "data": {"n": 1}}),
        )
        .await;
    assert_eq!((status, &v["delivered"]), (200, &json!(2)), "{v}");
    for ws in [&mut admin_ws, &mut member_ws] {
        let got = recv(ws).await;
        assert_eq!(got["event"], "small", "{got}");
        assert_eq!(got["stream"], "all");
        assert_eq!(got["offset"], 1, "{got}");
    }
    let (status, v) = app
        .post(
            "/api/websocket/send/toTag",
            t,
            json!({"tag": "room", "event": "small", "data": 2}),
        )
        .await;
    assert_eq!((status, &v["delivered"]), (200, &json!(1)), "{v}");
    let got = recv(&mut member_ws).await;
    assert_eq!(
        (&got["stream"], &got["offset"]),
        (&json!("tag:room"), &json!(1)),
        "{got}"
    );

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("switchboard_oversized_pushes_total 4"),
        "{text}"
    );
    assert!(
        !text.contains("switchboard_closes_total{code=\"4008\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_just_fits_the_queue_is_delivered_and_one_byte_more_is_not() {
    let app = small_queue_app().await;
    let (mut ws, hello) = app.ws(&app.admin_token).await;
    let client_id = hello["id"].as_str().unwrap().to_string();
    // A push to one connection carries no stream fields, so its frame size is exact:
    // {"event":"e","data":"x…","code":0,"timestamp":<10 digits>}
    let envelope = r#"{"event":"e","data":"","code":0,"timestamp":1234567890}"#.len();
    let fits = LARGEST_FRAME - envelope;
    let send = |len: usize| json!({"clientId": client_id, "event": "e", "data": blob(len)});
    let (status, v) = app
        .post("/api/websocket/send/toClient", &app.admin_token, send(fits))
        .await;
    assert_eq!((status, &v["delivered"]), (200, &json!(1)), "{v}");
    let got = recv(&mut ws).await;
    assert_eq!(got["data"].as_str().unwrap().len(), fits);
    let reply = app
        .post(
            "/api/websocket/send/toClient",
            &app.admin_token,
            send(fits + 1),
        )
        .await;
    assert_refused(&reply, LARGEST_FRAME + 1);
    let v = request(&mut ws, "ping", Value::Null).await;
    assert_eq!(v["code"], 0, "still connected: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_publish_too_large_for_the_members_is_answered_413() {
    let app = small_queue_app().await;
    let (_, token) = app.user("listener", &["member"]).await;
    let (mut sender, _) = app.ws(&app.admin_token).await;
    let (mut listener, _) = app.ws(&token).await;
    for ws in [&mut sender, &mut listener] {
        let v = request(ws, "join", json!({"id": "chat"})).await;
        assert_eq!(v["code"], 0, "{v}");
    }
    // Within max_message_size inbound, but too large for a member's queue outbound.
    let v = request(
        &mut sender,
        "publish",
        json!({"tag": "chat", "data": blob(QUEUE + 100)}),
    )
    .await;
    assert_eq!(v["code"], 413, "{v}");
    assert!(
        v["errorMsg"]
            .as_str()
            .unwrap()
            .contains("websocket.send_queue_bytes"),
        "{v}"
    );
    let v = request(&mut sender, "publish", json!({"tag": "chat", "data": "hi"})).await;
    assert_eq!(v["data"]["delivered"], 2, "{v}");
    let got = recv_within(&mut listener, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got["event"], "publish", "{got}");
    assert_eq!(got["data"]["data"], "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_queue_entry_is_dead_lettered_and_the_next_one_delivered() {
    let Some(redis_url) = test_redis_url() else {
        return;
    };
    let d = Deployment::cluster(&redis_url, 1, |c| {
        c.websocket.send_queue_bytes = QUEUE;
        c.websocket.max_message_size = 8 * 1024;
    })
    .await;
    let app = d.node(0);
    let prefix = app.state.cfg.cluster.prefix.clone();
    let (uid, token) = app.user("queued", &["member"]).await;
    let (mut ws, _) = app.ws(&token).await;
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let queue = format!("{prefix}:queue");
    for data in [blob(QUEUE * 2), json!("fits")] {
        let payload = json!({"to": "user", "userId": uid, "event": "q", "data": data});
        let _: String = redis::cmd("XADD")
            .arg(&queue)
            .arg("*")
            .arg("payload")
            .arg(payload.to_string())
            .query_async(&mut c)
            .await
            .unwrap();
    }
    // The one that fits arrives, first of its stream; the reader was never cut off.
    let got = recv_within(&mut ws, Duration::from_secs(20))
        .await
        .expect("the entry that fits arrives");
    assert_eq!(
        (&got["data"], &got["offset"]),
        (&json!("fits"), &json!(1)),
        "{got}"
    );
    let dead = format!("{prefix}:queue:dead");
    let mut reasons = Vec::new();
    for _ in 0..50 {
        let r: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&dead)
            .arg("-")
            .arg("+")
            .query_async(&mut c)
            .await
            .unwrap();
        reasons = r.ids.iter().map(|e| e.get::<String>("reason")).collect();
        if !reasons.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let reason = reasons[0].as_deref().unwrap_or_default();
    assert!(reason.contains("websocket.send_queue_bytes"), "{reason}");
}
