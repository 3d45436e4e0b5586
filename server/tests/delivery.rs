//! Stream offsets, history and `recover`: pushes missed while away are replayed in order, a
//! stale epoch or a gap longer than the history says so, and only your own streams recover.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn push_user(app: &TestApp, uid: i64, n: i64) {
    let (s, _) = app
        .post(
            "/api/websocket/send/toUser",
            &app.admin_token,
            json!({"userId": uid, "event": "notice", "data": {"n": n}}),
        )
        .await;
    assert_eq!(s, 200);
}

/// Connects with `?recover=1` so live pushes wait behind the replay.
async fn reconnect(app: &TestApp, token: &str) -> (Ws, Value) {
    let mut ws = ws_connect(&format!("{}?recover=1", app.ws_url), Some(token))
        .await
        .unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["event"], "connected");
    (ws, hello["data"].clone())
}

#[tokio::test]
async fn pushes_missed_while_away_are_replayed_in_order_then_recovered_true() {
    let app = spawn_app().await;
    let (uid, tok) = app.user("away", &["member"]).await;
    let (mut ws, hello) = app.ws(&tok).await;
    let stream = format!("user:{uid}");
    assert_eq!(hello["streams"][&stream]["offset"], 0);
    push_user(&app, uid, 0).await;
    let first = recv(&mut ws).await;
    assert_eq!(
        (first["stream"].as_str(), first["offset"].as_u64()),
        (Some(stream.as_str()), Some(1))
    );
    let epoch = first["epoch"].as_str().unwrap().to_string();
    drop(ws);
    let reg = app.state.ws.registry().clone();
    eventually(Duration::from_secs(5), || {
        reg.user_clients(switchboard_sdk::UserId(uid)).is_empty()
    })
    .await;
    for n in 1..=3 {
        push_user(&app, uid, n).await;
    }
    let (mut ws, _) = reconnect(&app, &tok).await;
    send(&mut ws, json!({"event": "recover", "seqno": 1, "data": {"streams": {&stream: {"offset": 1, "epoch": epoch}}}})).await;
    for (n, offset) in (1..=3).zip(2..) {
        let v = recv(&mut ws).await;
        assert_eq!(v["event"], "notice");
        assert_eq!(v["data"]["n"], n);
        assert_eq!(v["offset"], offset);
        assert_eq!(v["epoch"], epoch.as_str());
    }
    let reply = recv(&mut ws).await;
    assert_eq!(reply["event"], "recover");
    assert_eq!(reply["data"]["recovered"][&stream], true);
    assert!(
        recv_within(&mut ws, Duration::from_millis(200))
            .await
            .is_none(),
        "nothing twice"
    );
}

#[tokio::test]
async fn stale_epoch_or_a_gap_longer_than_history_answers_false() {
    let app = spawn_with(|c| c.history.size = 2).await;
    let (uid, tok) = app.user("gappy", &["member"]).await;
    let (ws, hello) = app.ws(&tok).await;
    let stream = format!("user:{uid}");
    let epoch = hello["streams"][&stream]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    drop(ws);
    let reg = app.state.ws.registry().clone();
    eventually(Duration::from_secs(5), || {
        reg.user_clients(switchboard_sdk::UserId(uid)).is_empty()
    })
    .await;
    for n in 0..5 {
        push_user(&app, uid, n).await;
    }
    let (mut ws, _) = reconnect(&app, &tok).await;
    let v = request(
        &mut ws,
        "recover",
        json!({"streams": {&stream: {"offset": 0, "epoch": epoch}}}),
    )
    .await;
    assert_eq!(
        v["data"]["recovered"][&stream], false,
        "offsets 1-3 left history"
    );
    let v = request(
        &mut ws,
        "recover",
        json!({"streams": {&stream: {"offset": 0, "epoch": "stale"}}}),
    )
    .await;
    assert_eq!(v["data"]["recovered"][&stream], false);
    let v = request(
        &mut ws,
        "recover",
        json!({"streams": {"all": {"offset": 0, "epoch": "x"}}, "bogus": 1}),
    )
    .await;
    assert_eq!(v["code"], 400);
}

#[tokio::test]
async fn a_tag_stream_recovers_and_other_users_streams_are_forbidden() {
    let app = spawn_app().await;
    let (uid, tok) = app.user("tagger", &["member"]).await;
    let (mut ws, _) = app.ws(&tok).await;
    request(&mut ws, "join", json!({"id": "news"})).await;
    let (_, b) = app
        .post(
            "/api/websocket/send/toTag",
            &app.admin_token,
            json!({"tag": "news", "event": "n", "data": 1}),
        )
        .await;
    assert_eq!(b["delivered"], 1);
    let first = recv(&mut ws).await;
    assert_eq!(first["stream"], "tag:news");
    let epoch = first["epoch"].as_str().unwrap().to_string();
    drop(ws);
    let reg = app.state.ws.registry().clone();
    eventually(Duration::from_secs(5), || reg.tag_counts().is_empty()).await;
    for d in 2..=3 {
        app.post(
            "/api/websocket/send/toTag",
            &app.admin_token,
            json!({"tag": "news", "event": "n", "data": d}),
        )
        .await;
    }
    let (mut ws, _) = reconnect(&app, &tok).await;
    request(&mut ws, "join", json!({"id": "news"})).await;
    send(
        &mut ws,
        json!({"event": "recover", "seqno": "r", "data": {"streams": {
            "tag:news": {"offset": 1, "epoch": epoch},
            "user:1": {"offset": 0, "epoch": "x"},
            "tag:secret": {"offset": 0, "epoch": "x"}
        }}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["data"], 2);
    assert_eq!(recv(&mut ws).await["data"], 3);
    let reply = recv(&mut ws).await;
    assert_eq!(reply["data"]["recovered"]["tag:news"], true);
    assert_eq!(reply["data"]["recovered"]["user:1"], false);
    assert_eq!(
        reply["data"]["errors"]["user:1"]["code"], 403,
        "another user's stream"
    );
    assert_eq!(
        reply["data"]["errors"]["tag:secret"]["code"], 403,
        "a tag not joined"
    );
    assert_ne!(uid, 1);
}

#[tokio::test]
async fn pushes_racing_with_recovery_arrive_exactly_once_in_offset_order() {
    let app = spawn_app().await;
    let (uid, tok) = app.user("racer", &["member"]).await;
    let (ws, hello) = app.ws(&tok).await;
    let stream = format!("user:{uid}");
    let epoch = hello["streams"][&stream]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    drop(ws);
    let hub: std::sync::Arc<dyn switchboard_sdk::Hub> = app.state.ws.node.clone();
    for n in 0..50 {
        hub.send_to_user(
            switchboard_sdk::UserId(uid),
            switchboard_sdk::Push::new("race", json!(n)),
        )
        .await;
    }
    // Keep sending while the client reconnects and recovers.
    let sender_hub = hub.clone();
    let sender = tokio::spawn(async move {
        for n in 50..450 {
            sender_hub
                .send_to_user(
                    switchboard_sdk::UserId(uid),
                    switchboard_sdk::Push::new("race", json!(n)),
                )
                .await;
            if n % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let (mut ws, _) = reconnect(&app, &tok).await;
    send(&mut ws, json!({"event": "recover", "seqno": 1, "data": {"streams": {&stream: {"offset": 0, "epoch": epoch}}}})).await;
    sender.await.unwrap();
    let mut offsets = Vec::new();
    let mut recovered = None;
    while offsets.len() < 450 {
        let v = recv(&mut ws).await;
        if v["event"] == "recover" {
            recovered = Some(v["data"]["recovered"][&stream].clone());
            continue;
        }
        assert_eq!(v["event"], "race");
        assert_eq!(
            v["data"].as_u64().unwrap() + 1,
            v["offset"].as_u64().unwrap()
        );
        offsets.push(v["offset"].as_u64().unwrap());
    }
    assert_eq!(recovered, Some(json!(true)));
    assert_eq!(
        offsets,
        (1..=450).collect::<Vec<u64>>(),
        "exactly once, in order"
    );
    assert!(
        recv_within(&mut ws, Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn pushes_to_all_carry_the_all_stream() {
    let app = spawn_app().await;
    let (mut ws, hello) = app.ws(&app.admin_token).await;
    let base = hello["streams"]["all"]["offset"].as_u64().unwrap();
    for _ in 0..2 {
        app.post(
            "/api/websocket/send/toAll",
            &app.admin_token,
            json!({"event": "a"}),
        )
        .await;
    }
    let a = recv(&mut ws).await;
    let b = recv(&mut ws).await;
    assert_eq!(
        (a["stream"].as_str(), a["offset"].as_u64()),
        (Some("all"), Some(base + 1))
    );
    assert_eq!(b["offset"].as_u64(), Some(base + 2));
    // Pushes to one connection have no stream.
    let (_, _) = app
        .post(
            "/api/websocket/send/toClient",
            &app.admin_token,
            json!({"clientId": hello["id"], "event": "c"}),
        )
        .await;
    let c = recv(&mut ws).await;
    assert!(c.get("stream").is_none() && c.get("offset").is_none());
}
