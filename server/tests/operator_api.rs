//! The operator HTTP API against real sockets: sends, the online list and its filters (which
//! take injection strings as plain values), kicks, server-side tags, stats and metrics (where a
//! client-chosen close code cannot mint a label), and who may use it.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn each_send_reaches_exactly_the_intended_sockets_with_data_unchanged() {
    let app = spawn_app().await;
    let (uid, utok) = app.user("u1", &["member"]).await;
    let (mut d1, h1) = app.ws(&utok).await;
    let (mut d2, _) = app.ws(&utok).await;
    let (mut other, _) = app.ws(&app.admin_token).await;
    request(&mut d1, "join", json!({"id": "grp"})).await;
    let data = json!({"z": 1, "a": [1, 2, {"k": null}], "s": "ü"});
    let t = &app.admin_token;

    let (s, b) = app
        .post(
            "/api/websocket/send/toUser",
            t,
            json!({"userId": uid, "event": "notice", "data": data}),
        )
        .await;
    assert_eq!((s, b["delivered"].as_i64()), (200, Some(2)));
    for ws in [&mut d1, &mut d2] {
        let v = recv(ws).await;
        assert_eq!(v["event"], "notice");
        assert_eq!(v["data"], data);
        assert_eq!(v["code"], 0);
        assert!(v["timestamp"].as_i64().unwrap() > 0);
    }
    let (_, b) = app
        .post(
            "/api/websocket/send/toTag",
            t,
            json!({"tag": "grp", "event": "t", "data": 5}),
        )
        .await;
    assert_eq!(b["delivered"], 1);
    assert_eq!(recv(&mut d1).await["data"], 5);
    let (_, b) = app
        .post(
            "/api/websocket/send/toClient",
            t,
            json!({"clientId": h1["id"], "event": "c", "data": "x"}),
        )
        .await;
    assert_eq!(b["delivered"], 1);
    assert_eq!(recv(&mut d1).await["event"], "c");
    let (_, b) = app
        .post(
            "/api/websocket/send/toAll",
            t,
            json!({"event": "all", "data": {}}),
        )
        .await;
    assert_eq!(b["delivered"], 3);
    for ws in [&mut d1, &mut d2, &mut other] {
        assert_eq!(recv(ws).await["event"], "all");
    }
    // Nothing else arrived anywhere.
    for ws in [&mut d1, &mut d2, &mut other] {
        assert!(recv_within(ws, Duration::from_millis(200)).await.is_none());
    }
    let (s, b) = app
        .post(
            "/api/websocket/send/toClient",
            t,
            json!({"clientId": "zz.404", "event": "c"}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")));
    let (s, b) = app
        .post(
            "/api/websocket/send/toTag",
            t,
            json!({"tag": "bad tag", "event": "c"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().starts_with("tag"));
    let (s, b) = app
        .post("/api/websocket/send/toAll", t, json!({"event": ""}))
        .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().starts_with("event"));
    let (s, _) = app
        .post("/api/websocket/send/toUser", t, json!({"event": "x"}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn online_list_fields_filters_paging_and_limits() {
    let app = spawn_app().await;
    let (uid, utok) = app.user("listed", &["member"]).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        app.ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {utok}").parse().unwrap());
    req.headers_mut().insert("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    recv(&mut ws).await;
    request(&mut ws, "join", json!({"id": "vip"})).await;
    let mut others = Vec::new();
    for _ in 0..4 {
        others.push(app.ws(&app.admin_token).await.0);
    }
    let t = &app.admin_token;
    let (_, p) = app
        .get(&format!("/api/websocket/online?userId={uid}"), t)
        .await;
    assert_eq!(p["total"], 1);
    let row = &p["list"][0];
    assert_eq!(row["username"], "listed");
    assert_eq!(row["ip"], "127.0.0.1");
    assert_eq!(row["os"], "Windows 10/11");
    assert_eq!(row["browser"], "Edge");
    assert_eq!(row["tags"], json!(["vip"]));
    assert!(
        row["node"].is_string()
            && row["firstTime"].as_i64().is_some()
            && row["heartbeatTime"].as_i64().is_some()
    );
    assert!(row["userAgent"].as_str().unwrap().contains("Edg/"));
    assert_eq!(
        app.get("/api/websocket/online?tag=vip", t).await.1["total"],
        1
    );
    assert_eq!(
        app.get("/api/websocket/online?username=list", t).await.1["total"],
        1
    );
    assert_eq!(
        app.get("/api/websocket/online?ip=127.0", t).await.1["total"],
        5
    );
    assert_eq!(
        app.get("/api/websocket/online?ip=10.9", t).await.1["total"],
        0
    );
    let (_, p1) = app.get("/api/websocket/online?page=1&pageSize=2", t).await;
    let (_, p3) = app.get("/api/websocket/online?page=3&pageSize=2", t).await;
    assert_eq!(
        (p1["total"].as_i64(), p1["list"].as_array().unwrap().len()),
        (Some(5), 2)
    );
    assert_eq!(p3["list"].as_array().unwrap().len(), 1);
    let (_, all) = app.get("/api/websocket/online?pageSize=200", t).await;
    let keys: Vec<(i64, String)> = all["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["firstTime"].as_i64().unwrap(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            let n = |s: &str| s.rsplit('.').next().unwrap().parse::<u64>().unwrap();
            n(&a.1).cmp(&n(&b.1))
        })
    });
    assert_eq!(keys, sorted);
    assert_eq!(
        app.get("/api/websocket/online?pageSize=201", t).await.0,
        400
    );
    assert_eq!(app.get("/api/websocket/online?pageSize=0", t).await.0, 400);
    assert_eq!(
        app.get("/api/websocket/online?userId=1'%20OR%201=1", t)
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn kick_sends_reason_then_4001_and_revoke_refuses_reconnects() {
    let app = spawn_app().await;
    let (uid, utok) = app.user("kickme", &["member"]).await;
    let (mut a, ha) = app.ws(&utok).await;
    let (mut b, _) = app.ws(&utok).await;
    let t = &app.admin_token;
    let (_, r) = app
        .post(
            "/api/websocket/kick",
            t,
            json!({"clientId": ha["id"], "reason": "bye now"}),
        )
        .await;
    assert_eq!(r["closed"], 1);
    let v = recv(&mut a).await;
    assert_eq!(
        (v["event"].as_str(), v["data"]["reason"].as_str()),
        (Some("kick"), Some("bye now"))
    );
    assert_eq!(close_code(&mut a, Duration::from_secs(5)).await, 4001);
    let (_, r) = app
        .post(
            "/api/websocket/kick",
            t,
            json!({"userId": uid, "revoke": true}),
        )
        .await;
    assert_eq!(r["closed"], 1);
    assert_eq!(recv(&mut b).await["event"], "kick");
    assert_eq!(close_code(&mut b, Duration::from_secs(5)).await, 4001);
    let err = ws_connect(&app.ws_url, Some(&utok)).await.unwrap_err();
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(ref r) if r.status() == 401));
    let (s, _) = app
        .post("/api/websocket/kick", t, json!({"reason": "no target"}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn server_side_tags_stats_and_metrics() {
    let app = spawn_app().await;
    let (mut ws, h) = app.ws(&app.admin_token).await;
    let t = &app.admin_token;
    let (s, r) = app
        .post(
            "/api/websocket/tags/join",
            t,
            json!({"clientId": h["id"], "tag": "sys:ops"}),
        )
        .await;
    assert_eq!((s, r["changed"].as_i64()), (200, Some(1)));
    assert_eq!(
        app.get("/api/websocket/tags", t).await.1,
        json!([{"tag": "sys:ops", "members": 1}])
    );
    let (_, b) = app
        .post(
            "/api/websocket/send/toTag",
            t,
            json!({"tag": "sys:ops", "event": "ops"}),
        )
        .await;
    assert_eq!(b["delivered"], 1);
    assert_eq!(recv(&mut ws).await["event"], "ops");
    assert_eq!(
        request(&mut ws, "quit", json!({"id": "sys:ops"})).await["code"],
        403,
        "clients can't leave sys: tags either"
    );
    app.post(
        "/api/websocket/tags/quit",
        t,
        json!({"userId": 1, "tag": "sys:ops"}),
    )
    .await;
    assert_eq!(app.get("/api/websocket/tags", t).await.1, json!([]));
    let (_, st) = app.get("/api/websocket/stats", t).await;
    assert_eq!(st["connections"], 1);
    assert_eq!(st["users"], 1);
    assert!(st["messagesOut"].as_u64().unwrap() >= 2);
    assert!(st["node"].is_string() && st["uptime"].is_u64());

    let metrics = |body: &str, name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    let m1 = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for l in m1.lines().filter(|l| !l.starts_with('#')) {
        let value = l.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "unparseable metric line {l}");
    }
    request(&mut ws, "ping", Value::Null).await;
    let m2 = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics(&m2, "switchboard_messages_in_total")
            > metrics(&m1, "switchboard_messages_in_total")
    );
    assert_eq!(metrics(&m2, "switchboard_connections"), 1.0);
    assert!(m2.contains("switchboard_send_fanout_seconds_bucket"));
    assert!(m2.contains("switchboard_api_request_seconds_count"));
}

#[tokio::test]
async fn members_get_403_on_every_operator_route_and_api_keys_work() {
    let app = spawn_app().await;
    let (_, member) = app.user("plain", &["member"]).await;
    let posts = [
        ("/api/websocket/send/toAll", json!({"event": "x"})),
        (
            "/api/websocket/send/toClient",
            json!({"clientId": "a.1", "event": "x"}),
        ),
        (
            "/api/websocket/send/toUser",
            json!({"userId": 1, "event": "x"}),
        ),
        (
            "/api/websocket/send/toTag",
            json!({"tag": "t", "event": "x"}),
        ),
        ("/api/websocket/kick", json!({"userId": 1})),
        ("/api/websocket/tags/join", json!({"userId": 1, "tag": "t"})),
        ("/api/websocket/tags/quit", json!({"userId": 1, "tag": "t"})),
        ("/api/addons/hgexample/push", json!({"userId": 1})),
        (
            "/api/users",
            json!({"username": "x", "password": "password-123", "roles": ["admin"]}),
        ),
        ("/api/apikeys", json!({"name": "x"})),
    ];
    for (path, body) in &posts {
        let (s, b) = app.post(path, &member, body.clone()).await;
        assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")), "{path}");
    }
    for path in [
        "/api/websocket/online",
        "/api/websocket/tags",
        "/api/websocket/stats",
        "/api/users",
        "/api/apikeys",
        "/api/addons/hgexample/pushes",
    ] {
        assert_eq!(app.get(path, &member).await.0, 403, "{path}");
    }
    let (_, k) = app
        .post("/api/apikeys", &app.admin_token, json!({"name": "svc"}))
        .await;
    let key = k["key"].as_str().unwrap();
    let r = app
        .http
        .post(app.url("/api/websocket/send/toAll"))
        .header("X-API-Key", key)
        .json(&json!({"event": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn site_config_gives_the_socket_address() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url("/api/site/config"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["wsAddr"], app.ws_url);
    let app = spawn_with(|c| c.websocket.public_url = "wss://push.example.com/socket".into()).await;
    let v: Value = app
        .http
        .get(app.url("/api/site/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["wsAddr"], "wss://push.example.com/socket");
}

#[tokio::test]
async fn injection_strings_in_every_online_filter_get_sane_answers() {
    let app = spawn_app().await;
    let (_ws, _) = app.ws(&app.admin_token).await;
    for s in INJECTIONS {
        for key in ["username", "ip", "tag", "userId", "page", "pageSize"] {
            let r = app
                .http
                .get(app.url("/api/websocket/online"))
                .bearer_auth(&app.admin_token)
                .query(&[(key, *s)])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("a JSON body");
            match key {
                // Substring filters: nothing online matches an injection string.
                "username" | "ip" => {
                    assert_eq!(status, 200, "{key}={s:?}");
                    assert_eq!(body["total"], 0, "{key}={s:?}");
                    assert_eq!(body["list"], json!([]), "{key}={s:?}");
                }
                // Typed filters: the value does not parse, and the answer says which field.
                _ => {
                    assert_eq!(status, 400, "{key}={s:?}: {body}");
                    assert!(body["code"].is_string() && body["message"].is_string());
                }
            }
        }
    }
    // Combined, and repeated keys, too.
    let r = app
        .http
        .get(app.url("/api/websocket/online"))
        .bearer_auth(&app.admin_token)
        .query(&[
            ("username", "admin"),
            ("username", "' OR 1=1 --"),
            ("ip", "127.0.0.1"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 400, "{}", r.status());
    // And the unfiltered list is unharmed.
    let (s, all) = app.get("/api/websocket/online", &app.admin_token).await;
    assert_eq!((s, all["total"].as_u64()), (200, Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_chosen_close_codes_are_one_metric_label() {
    let app = spawn_app().await;
    for code in [4321u16, 4567, 3999, 4001] {
        let (mut ws, _) = app.ws(&app.admin_token).await;
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "bye".into(),
        })))
        .await
        .unwrap();
        // Wait for the server's answer so the close is counted.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            use futures_util::StreamExt;
            while ws.next().await.is_some() {}
        })
        .await;
    }
    let mut text = String::new();
    for _ in 0..50 {
        text = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("switchboard_closes_total{code=\"other\"} 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("switchboard_closes_total{"))
        .collect();
    assert!(
        closes.contains(&"switchboard_closes_total{code=\"other\"} 3"),
        "{closes:?}"
    );
    assert!(
        closes.contains(&"switchboard_closes_total{code=\"4001\"} 1"),
        "{closes:?}"
    );
    for code in ["4321", "4567", "3999"] {
        assert!(!text.contains(code), "{code} became a label: {closes:?}");
    }
}
