//! The behaviour of sends, kicks, tags, the online list, stats, recovery and logout — written
//! once and run against both modes: a single node, and three nodes on one Redis (set
//! SWITCHBOARD_TEST_REDIS_URL; unset, the cluster half reports itself skipped). A difference
//! between the modes is a failing test.
//!
//! Sockets are spread over the nodes by index and every API call goes to node 0, so in the
//! cluster each check crosses nodes; in single-node mode every index is the one node.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard::Config;

/// Limits small enough to reach in a test.
fn limits(c: &mut Config) {
    c.websocket.max_tags_per_connection = 3;
    c.websocket.max_connections_per_user = 4;
}

/// The socket path on the exemption list: anonymous clients may connect and `login`.
fn exempt_socket(c: &mut Config) {
    limits(c);
    c.auth.except_login.push("/socket".into());
}

macro_rules! in_both_modes {
    ($modname:ident, $config:path, $($name:ident),* $(,)?) => {
        mod $modname {
            mod single_node {
                use super::super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let d = Deployment::single($config).await;
                        super::super::$name(&d).await;
                    }
                )*
            }
            mod cluster_of_three {
                use super::super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(redis) = test_redis_url() else { return };
                        let d = Deployment::cluster(&redis, 3, $config).await;
                        super::super::$name(&d).await;
                    }
                )*
            }
        }
    };
}

in_both_modes!(
    anonymous,
    exempt_socket,
    anonymous_clients_are_listed_sent_to_kicked_and_can_log_in,
);

/// A write that never finishes keeps the socket task busy for long: what decides a slow
/// client's fate must not wait for it.
fn slow_writes(c: &mut Config) {
    limits(c);
    c.websocket.write_timeout = Duration::from_secs(30);
}

in_both_modes!(
    slow_consumers,
    slow_writes,
    a_slow_consumer_leaves_the_online_list_when_it_is_cut_off,
);

in_both_modes!(
    authenticated,
    limits,
    sends_reach_every_node_with_exact_counts,
    a_connection_is_counted_as_soon_as_it_is_greeted,
    kick_by_connection_and_by_user_with_revoke,
    tags_their_limits_and_counts,
    online_list_pages_filters_and_stats,
    recover_replays_on_any_node,
    logout_and_disable_close_sockets_everywhere,
    the_per_user_connection_limit_holds_across_nodes,
);

async fn api_post(d: &Deployment, path: &str, body: Value) -> (u16, Value) {
    d.node(0).post(path, &d.node(0).admin_token, body).await
}

async fn api_get(d: &Deployment, path: &str) -> (u16, Value) {
    d.node(0).get(path, &d.node(0).admin_token).await
}

fn delivered(r: (u16, Value)) -> (u16, i64) {
    (r.0, r.1["delivered"].as_i64().unwrap_or(-1))
}

async fn sends_reach_every_node_with_exact_counts(d: &Deployment) {
    // The very first requests after start are already exact.
    let (uid, alice) = d.node(0).user("alice", &["member"]).await;
    let (_, bob) = d.node(0).user("bob", &["member"]).await;
    let (mut a1, h1) = d.node(1).ws(&alice).await;
    let (mut a2, _) = d.node(2).ws(&alice).await;
    let (mut b0, _) = d.node(0).ws(&bob).await;

    let r = api_post(
        d,
        "/api/websocket/send/toUser",
        json!({"userId": uid, "event": "n", "data": {"x": 1}}),
    )
    .await;
    assert_eq!(delivered(r), (200, 2));
    for ws in [&mut a1, &mut a2] {
        let f = recv(ws).await;
        assert_eq!(
            (&f["event"], &f["data"], &f["stream"]),
            (&json!("n"), &json!({"x": 1}), &json!(format!("user:{uid}")))
        );
    }

    let r = api_post(
        d,
        "/api/websocket/send/toAll",
        json!({"event": "all", "data": [1, "two", null]}),
    )
    .await;
    assert_eq!(delivered(r), (200, 3));
    for ws in [&mut a1, &mut a2, &mut b0] {
        let f = recv(ws).await;
        assert_eq!(
            (&f["event"], &f["data"]),
            (&json!("all"), &json!([1, "two", null]))
        );
        assert_eq!(f["stream"], "all");
    }

    let id = h1["id"].as_str().unwrap();
    let r = api_post(
        d,
        "/api/websocket/send/toClient",
        json!({"clientId": id, "event": "direct", "data": "hi"}),
    )
    .await;
    assert_eq!(delivered(r), (200, 1));
    let f = recv(&mut a1).await;
    assert_eq!((&f["event"], &f["data"]), (&json!("direct"), &json!("hi")));
    assert!(
        f.get("stream").is_none(),
        "a single connection has no stream"
    );
    let (s, v) = api_post(
        d,
        "/api/websocket/send/toClient",
        json!({"clientId": "nobody.1", "event": "x"}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")));

    assert_eq!(
        request(&mut b0, "join", json!({"id": "room"})).await["data"],
        json!(["room"])
    );
    let (s, v) = api_post(
        d,
        "/api/websocket/tags/join",
        json!({"clientId": id, "tag": "room"}),
    )
    .await;
    assert_eq!((s, v["changed"].as_i64()), (200, Some(1)));
    let r = api_post(
        d,
        "/api/websocket/send/toTag",
        json!({"tag": "room", "event": "room-news", "data": 7}),
    )
    .await;
    assert_eq!(delivered(r), (200, 2));
    for ws in [&mut b0, &mut a1] {
        let f = recv(ws).await;
        assert_eq!(
            (&f["event"], &f["stream"]),
            (&json!("room-news"), &json!("tag:room"))
        );
    }
    // A client's `publish` counts the other members, cluster-wide.
    let reply = request(
        &mut b0,
        "publish",
        json!({"tag": "room", "data": "psst", "excludeSelf": true}),
    )
    .await;
    assert_eq!(reply["data"]["delivered"], 1);
    let f = recv(&mut a1).await;
    assert_eq!(
        (&f["event"], &f["data"]["data"]),
        (&json!("publish"), &json!("psst"))
    );
    assert!(
        recv_within(&mut a2, Duration::from_millis(300))
            .await
            .is_none(),
        "not a member: nothing"
    );
}

async fn a_connection_is_counted_as_soon_as_it_is_greeted(d: &Deployment) {
    let (uid, tok) = d.node(0).user("quick", &["member"]).await;
    for i in 0..6 {
        let (mut ws, hello) = d.node(i).ws(&tok).await;
        let id = hello["id"].as_str().unwrap().to_string();
        let (_, page) = api_get(d, &format!("/api/websocket/online?userId={uid}")).await;
        let ids: Vec<&str> = page["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&id.as_str()), "{id} in {ids:?}");
        let r = api_post(
            d,
            "/api/websocket/send/toClient",
            json!({"clientId": id, "event": "now", "data": i}),
        )
        .await;
        assert_eq!(delivered(r), (200, 1));
        assert_eq!(recv(&mut ws).await["data"], i);
        drop(ws);
        // Gone from the list once closed.
        let mut gone = false;
        for _ in 0..100 {
            let (_, p) = api_get(d, &format!("/api/websocket/online?userId={uid}")).await;
            if p["total"] == 0 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "a closed connection leaves the online list");
    }
}

async fn kick_by_connection_and_by_user_with_revoke(d: &Deployment) {
    let (uid, tok) = d.node(0).user("carol", &["member"]).await;
    let (mut c1, h1) = d.node(1).ws(&tok).await;
    let (mut c2, _) = d.node(2).ws(&tok).await;
    let (s, v) = api_post(
        d,
        "/api/websocket/kick",
        json!({"clientId": h1["id"], "reason": "bye", "revoke": true}),
    )
    .await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(1)));
    let kick = recv(&mut c1).await;
    assert_eq!(
        (&kick["event"], &kick["data"]["reason"]),
        (&json!("kick"), &json!("bye"))
    );
    assert_eq!(close_code(&mut c1, Duration::from_secs(5)).await, 4001);
    // The kicked connection's user had its tokens revoked, on every node.
    for i in 0..d.len() {
        let mut refused = false;
        for _ in 0..100 {
            if d.node(i).get("/api/auth/me", &tok).await.0 == 401 {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "node {i} still accepts the revoked token");
    }
    let (_, page) = api_get(d, &format!("/api/websocket/online?userId={uid}")).await;
    assert_eq!(page["total"], 1, "the other device is still online");

    let (s, v) = api_post(d, "/api/websocket/kick", json!({"userId": uid})).await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(1)));
    assert_eq!(recv(&mut c2).await["event"], "kick");
    assert_eq!(close_code(&mut c2, Duration::from_secs(5)).await, 4001);
    let (_, page) = api_get(d, &format!("/api/websocket/online?userId={uid}")).await;
    assert_eq!(
        page["total"], 0,
        "kicked connections leave the list at once"
    );
    let (s, v) = api_post(d, "/api/websocket/kick", json!({"userId": uid})).await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(0)));
    let (s, v) = api_post(d, "/api/websocket/kick", json!({})).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_field")));

    // An operator may kick an admin's socket, never revoke an admin's tokens.
    let (_, operator) = d.node(0).user("oscar", &["operator"]).await;
    let (mut admin_ws, admin_hello) = d.node(1).ws(&d.node(0).admin_token).await;
    for body in [
        json!({"clientId": admin_hello["id"], "revoke": true}),
        json!({"userId": 1, "revoke": true}),
    ] {
        let (s, v) = d.node(0).post("/api/websocket/kick", &operator, body).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    }
    assert_eq!(
        request(&mut admin_ws, "ping", Value::Null).await["code"],
        0,
        "nothing was kicked"
    );
    let (s, v) = d
        .node(0)
        .post(
            "/api/websocket/kick",
            &operator,
            json!({"clientId": admin_hello["id"]}),
        )
        .await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(1)));
    assert_eq!(
        close_code(&mut admin_ws, Duration::from_secs(5)).await,
        4001
    );
    assert_eq!(
        d.node(2)
            .get("/api/auth/me", &d.node(0).admin_token)
            .await
            .0,
        200
    );
}

async fn tags_their_limits_and_counts(d: &Deployment) {
    let (uid, tok) = d.node(0).user("dave", &["member"]).await;
    let (mut w1, h1) = d.node(1).ws(&tok).await;
    let (mut w2, h2) = d.node(2).ws(&tok).await;
    let join = |body: Value| api_post(d, "/api/websocket/tags/join", body);
    let (s, v) = join(json!({"userId": uid, "tag": "t1"})).await;
    assert_eq!((s, v["changed"].as_i64()), (200, Some(2)));
    let (s, v) = join(json!({"userId": uid, "tag": "t1"})).await;
    assert_eq!(
        (s, v["changed"].as_i64()),
        (200, Some(0)),
        "already members"
    );

    assert_eq!(
        request(&mut w1, "join", json!({"id": "t2"})).await["data"],
        json!(["t1", "t2"])
    );
    assert_eq!(
        request(&mut w1, "join", json!({"id": "t3"})).await["data"],
        json!(["t1", "t2", "t3"])
    );
    let over = request(&mut w1, "join", json!({"id": "t4"})).await;
    assert_eq!(over["code"], 403, "{over}");
    let sys = request(&mut w2, "join", json!({"id": "sys:x"})).await;
    assert_eq!(sys["code"], 403);

    // Over the limit the API answers 409 and changes nothing, whichever node holds the socket.
    let (s, v) = join(json!({"clientId": h1["id"], "tag": "t5"})).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")), "{v}");
    let (s, _) = join(json!({"userId": uid, "tag": "t6"})).await;
    assert_eq!(s, 409);
    let (_, page) = api_get(d, "/api/websocket/online?tag=t6").await;
    assert_eq!(page["total"], 0, "nobody joined t6");

    let (s, v) = join(json!({"clientId": h2["id"], "tag": "sys:vip"})).await;
    assert_eq!(
        (s, v["changed"].as_i64()),
        (200, Some(1)),
        "the server may assign sys: tags"
    );
    let (_, tags) = api_get(d, "/api/websocket/tags").await;
    assert_eq!(
        tags,
        json!([
            {"tag": "sys:vip", "members": 1},
            {"tag": "t1", "members": 2},
            {"tag": "t2", "members": 1},
            {"tag": "t3", "members": 1},
        ])
    );
    let (s, v) = api_post(
        d,
        "/api/websocket/tags/quit",
        json!({"userId": uid, "tag": "t1"}),
    )
    .await;
    assert_eq!((s, v["changed"].as_i64()), (200, Some(2)));
    let r = api_post(
        d,
        "/api/websocket/send/toTag",
        json!({"tag": "t1", "event": "x"}),
    )
    .await;
    assert_eq!(delivered(r), (200, 0));
    assert_eq!(
        request(&mut w1, "quit", json!({"id": "t2"})).await["data"],
        json!(["t3"])
    );
    let (_, stats) = api_get(d, "/api/websocket/stats").await;
    assert_eq!(stats["tags"], 2, "{stats}");
}

async fn online_list_pages_filters_and_stats(d: &Deployment) {
    let mut users = Vec::new();
    for name in ["erin", "frank", "grace"] {
        users.push(d.node(0).user(name, &["member"]).await);
    }
    let mut sockets = Vec::new();
    let mut ids = BTreeSet::new();
    for i in 0..9 {
        let (_, tok) = &users[i % 3];
        let (ws, hello) = d.node(i).ws(tok).await;
        ids.insert(hello["id"].as_str().unwrap().to_string());
        sockets.push(ws);
    }
    let (_, all) = api_get(d, "/api/websocket/online?pageSize=200").await;
    assert_eq!(all["total"], 9);
    let order: Vec<String> = all["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order.iter().cloned().collect::<BTreeSet<_>>(), ids);
    let nodes: BTreeSet<&str> = all["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), d.len().min(9));
    let mut paged = Vec::new();
    for page in 1..=3 {
        let (s, p) = api_get(d, &format!("/api/websocket/online?page={page}&pageSize=4")).await;
        assert_eq!(
            (s, p["total"].as_i64(), p["page"].as_i64()),
            (200, Some(9), Some(page))
        );
        for r in p["list"].as_array().unwrap() {
            paged.push(r["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(paged, order, "pages partition the list in order");
    let (_, empty) = api_get(d, "/api/websocket/online?page=4&pageSize=4").await;
    assert_eq!(
        (
            empty["total"].as_i64(),
            empty["list"].as_array().map(Vec::len)
        ),
        (Some(9), Some(0))
    );

    let (uid, _) = users[1];
    let (_, p) = api_get(d, &format!("/api/websocket/online?userId={uid}")).await;
    assert_eq!(p["total"], 3);
    assert!(
        p["list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["userId"] == uid && r["username"] == "frank")
    );
    let (_, p) = api_get(d, "/api/websocket/online?username=ra").await;
    assert_eq!(p["total"], 6, "frank and grace");
    let (_, p) = api_get(d, "/api/websocket/online?ip=127.0.0&pageSize=2").await;
    assert_eq!(
        (p["total"].as_i64(), p["list"].as_array().map(Vec::len)),
        (Some(9), Some(2))
    );
    let (_, p) = api_get(
        d,
        &format!("/api/websocket/online?userId={uid}&username=gr"),
    )
    .await;
    assert_eq!(p["total"], 0);
    let (s, v) = api_get(d, "/api/websocket/online?pageSize=201").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_field")));

    let (_, stats) = api_get(d, "/api/websocket/stats").await;
    assert_eq!(
        (stats["connections"].as_i64(), stats["users"].as_i64()),
        (Some(9), Some(3))
    );
    drop(sockets);
}

async fn recover_replays_on_any_node(d: &Deployment) {
    let (uid, tok) = d.node(0).user("heidi", &["member"]).await;
    let (mut ws, hello) = d.node(1).ws(&tok).await;
    let stream = format!("user:{uid}");
    let epoch = hello["streams"][&stream]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hello["streams"][&stream]["offset"], 0);
    for n in 1..=3 {
        api_post(
            d,
            "/api/websocket/send/toUser",
            json!({"userId": uid, "event": "m", "data": n}),
        )
        .await;
        let f = recv(&mut ws).await;
        assert_eq!(
            (f["offset"].as_i64(), f["epoch"].as_str()),
            (Some(n), Some(epoch.as_str()))
        );
    }
    drop(ws);
    for n in 4..=5 {
        let r = api_post(
            d,
            "/api/websocket/send/toUser",
            json!({"userId": uid, "event": "m", "data": n}),
        )
        .await;
        assert_eq!(r.0, 200);
    }
    let url = format!("{}?recover=1", d.node(2).ws_url);
    let mut back = ws_connect(&url, Some(&tok)).await.unwrap();
    assert_eq!(recv(&mut back).await["event"], "connected");
    send(
        &mut back,
        json!({"event": "recover", "seqno": "r",
               "data": {"streams": {&stream: {"offset": 3, "epoch": &epoch}}}}),
    )
    .await;
    let mut got = Vec::new();
    loop {
        let f = recv(&mut back).await;
        if f["seqno"] == "r" {
            assert_eq!(f["data"]["recovered"][&stream], true, "{f}");
            break;
        }
        got.push(f["data"].as_i64().unwrap());
    }
    assert_eq!(got, [4, 5]);
    let r = api_post(
        d,
        "/api/websocket/send/toUser",
        json!({"userId": uid, "event": "m", "data": 6}),
    )
    .await;
    assert_eq!(delivered(r), (200, 1));
    assert_eq!(recv(&mut back).await["offset"], 6);
}

async fn logout_and_disable_close_sockets_everywhere(d: &Deployment) {
    let (uid, first) = d.node(0).user("ivan", &["member"]).await;
    let second = login(&d.node(0).http, &d.node(0).base, "ivan", "password-123").await;
    let (mut f1, _) = d.node(1).ws(&first).await;
    let (mut f2, _) = d.node(2).ws(&first).await;
    let (mut s0, _) = d.node(0).ws(&second).await;
    let (s, v) = d.node(0).post("/api/auth/logout", &first, json!({})).await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(2)), "{v}");
    for ws in [&mut f1, &mut f2] {
        assert_eq!(close_code(ws, Duration::from_secs(5)).await, 4003);
    }
    assert_eq!(
        request(&mut s0, "ping", Value::Null).await["code"],
        0,
        "the other token lives"
    );

    let r = d
        .node(0)
        .http
        .patch(d.node(0).url(&format!("/api/users/{uid}")))
        .bearer_auth(&d.node(0).admin_token)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(close_code(&mut s0, Duration::from_secs(5)).await, 4003);
    let (_, page) = api_get(d, &format!("/api/websocket/online?userId={uid}")).await;
    assert_eq!(page["total"], 0);
}

async fn the_per_user_connection_limit_holds_across_nodes(d: &Deployment) {
    let (_, tok) = d.node(0).user("judy", &["member"]).await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(d.node(i).ws(&tok).await.0);
    }
    let refused = ws_connect(&d.node(4).ws_url, Some(&tok)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429)
        }
        other => panic!("expected 429, got {:?}", other.map(|_| "an upgrade")),
    }
    drop(held);
}

async fn anonymous_clients_are_listed_sent_to_kicked_and_can_log_in(d: &Deployment) {
    let mut anon = ws_connect(&d.node(1).ws_url, None).await.unwrap();
    let hello = recv(&mut anon).await;
    assert_eq!(
        (&hello["event"], &hello["data"]["userId"]),
        (&json!("connected"), &Value::Null)
    );
    let id = hello["data"]["id"].as_str().unwrap().to_string();
    let (_, page) = api_get(d, "/api/websocket/online").await;
    assert_eq!(page["total"], 1);
    assert_eq!(
        (&page["list"][0]["id"], &page["list"][0]["userId"]),
        (&json!(id), &Value::Null)
    );
    let r = api_post(d, "/api/websocket/send/toAll", json!({"event": "hello"})).await;
    assert_eq!(delivered(r), (200, 1));
    assert_eq!(recv(&mut anon).await["event"], "hello");
    let (_, stats) = api_get(d, "/api/websocket/stats").await;
    assert_eq!(
        (stats["connections"].as_i64(), stats["users"].as_i64()),
        (Some(1), Some(0))
    );

    // `login` gives the connection its identity everywhere at once.
    let (uid, _) = d.node(0).user("kim", &["member"]).await;
    let reply = request(
        &mut anon,
        "login",
        json!({"username": "kim", "password": "password-123"}),
    )
    .await;
    assert_eq!(reply["data"]["user"]["id"], uid, "{reply}");
    let again = request(&mut anon, "login", json!({"token": "x"})).await;
    assert_eq!(again["code"], 409);
    let (_, page) = api_get(d, &format!("/api/websocket/online?userId={uid}")).await;
    assert_eq!(
        (page["total"].as_i64(), &page["list"][0]["username"]),
        (Some(1), &json!("kim"))
    );
    let r = api_post(
        d,
        "/api/websocket/send/toUser",
        json!({"userId": uid, "event": "yours"}),
    )
    .await;
    assert_eq!(delivered(r), (200, 1));
    let f = recv(&mut anon).await;
    assert_eq!(
        (&f["event"], &f["stream"]),
        (&json!("yours"), &json!(format!("user:{uid}")))
    );

    let mut other = ws_connect(&d.node(2).ws_url, None).await.unwrap();
    let other_id = recv(&mut other).await["data"]["id"].clone();
    let (s, v) = api_post(d, "/api/websocket/kick", json!({"clientId": other_id})).await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(1)));
    assert_eq!(recv(&mut other).await["event"], "kick");
    assert_eq!(close_code(&mut other, Duration::from_secs(5)).await, 4001);
}

async fn a_slow_consumer_leaves_the_online_list_when_it_is_cut_off(d: &Deployment) {
    let (_, tok) = d.node(0).user("laggard", &["member"]).await;
    // Never read from: its kernel buffers fill, then its send queue.
    let (slow, hello) = d.node(1).ws(&tok).await;
    let id = hello["id"].as_str().unwrap().to_string();
    let (_, healthy) = d.node(0).user("reader", &["member"]).await;
    let (mut reader, _) = d.node(2).ws(&healthy).await;
    let blob = "z".repeat(200 * 1024);
    let listed = |page: &Value| {
        page["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str())
    };
    let mut cut = false;
    for _ in 0..400 {
        let (s, _) = api_post(
            d,
            "/api/websocket/send/toClient",
            json!({"clientId": &id, "event": "flood", "data": &blob}),
        )
        .await;
        if s == 404 {
            cut = true;
            break;
        }
        if !listed(&api_get(d, "/api/websocket/online").await.1) {
            cut = true;
            break;
        }
    }
    assert!(cut, "the slow consumer was cut off");
    // Gone from the list and the counts while its socket task may still be stuck writing
    // (the write timeout is 30 s): within moments, not after the timeout.
    let mut gone = false;
    for _ in 0..50 {
        let (_, page) = api_get(d, "/api/websocket/online").await;
        let (_, stats) = api_get(d, "/api/websocket/stats").await;
        if !listed(&page) && stats["connections"] == 1 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the cut-off connection left every index");
    let r = api_post(
        d,
        "/api/websocket/send/toAll",
        json!({"event": "still-here", "data": 1}),
    )
    .await;
    assert_eq!(delivered(r), (200, 1), "only the healthy reader is counted");
    assert_eq!(recv(&mut reader).await["event"], "still-here");
    drop(slow);
}

in_both_modes!(
    monitor,
    limits,
    monitor_reports_every_node_summed_and_pushes_to_subscribers,
);

/// The next push of `event` (not a reply), skipping everything else.
async fn next_push(ws: &mut common::Ws, event: &str) -> Value {
    loop {
        let f = recv_within(ws, Duration::from_secs(8))
            .await
            .unwrap_or_else(|| panic!("no {event} push"));
        if f["event"] == event && f.get("seqno").is_none() {
            return f;
        }
    }
}

async fn monitor_reports_every_node_summed_and_pushes_to_subscribers(d: &Deployment) {
    let (_, op) = d.node(0).user("otto", &["operator"]).await;
    let (_, member) = d.node(0).user("mia", &["member"]).await;
    let (mut watcher, _) = d.node(0).ws(&op).await;
    let (mut m1, _) = d.node(1).ws(&member).await;
    let (_m2, _) = d.node(2).ws(&member).await;

    for event in ["admin/monitor/trends", "admin/monitor/runInfo"] {
        let r = request(&mut m1, event, json!({})).await;
        assert_eq!(r["code"], 403, "a member may not monitor: {r}");
    }

    // Every node's figures, once each has shared them (every 2 s); the totals are the exact
    // cluster-wide counts at once.
    let want_nodes: BTreeSet<String> = if d.len() == 1 {
        [d.node(0).state.ws.node.id().to_string()].into()
    } else {
        (0..d.len()).map(|i| format!("node-{i}")).collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let info = loop {
        let r = request(&mut watcher, "admin/monitor/runInfo", json!({})).await;
        assert_eq!(r["code"], 0, "{r}");
        let nodes: BTreeSet<String> = r["data"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node"].as_str().unwrap().to_string())
            .collect();
        let local_sum: u64 = r["data"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["connections"].as_u64().unwrap())
            .sum();
        if nodes == want_nodes && local_sum == 3 {
            break r["data"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "each node counts its own sockets: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(info["total"]["connections"], 3, "{info}");
    assert_eq!(info["total"]["users"], 2, "{info}");
    assert_eq!(info["total"]["node"], "total");
    for n in info["nodes"].as_array().unwrap() {
        assert!(n["memoryBytes"].as_u64().unwrap() > 0, "{n}");
        assert!(n["cpuPercent"].as_f64().unwrap() >= 0.0, "{n}");
        assert!(n["uptime"].is_u64() && n["pid"].is_u64(), "{n}");
    }

    let r = request(&mut watcher, "admin/monitor/trends", json!({})).await;
    assert_eq!(r["data"]["interval"], 2, "{r}");
    assert!(!r["data"]["points"].as_array().unwrap().is_empty());

    // Asking subscribed the connection: it gets one push of each every 2 s, whichever node
    // holds it, and the figures follow the traffic.
    let first = next_push(&mut watcher, "admin/monitor/trends").await;
    let points = first["data"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{first}");
    next_push(&mut watcher, "admin/monitor/runInfo").await;
    let before = points[0]["total"]["messagesOut"].as_u64().unwrap();
    for i in 0..20 {
        let (s, _) = api_post(
            d,
            "/api/websocket/send/toAll",
            json!({"event": "tick", "data": i}),
        )
        .await;
        assert_eq!(s, 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let p = next_push(&mut watcher, "admin/monitor/trends").await;
        let total = &p["data"]["points"][0]["total"];
        if total["messagesOut"].as_u64().unwrap() >= before + 60 {
            assert!(
                total["messagesOutPerSec"].as_f64().unwrap() > 0.0,
                "{total}"
            );
            assert!(total["sendsPerSec"].as_f64().unwrap() > 0.0, "{total}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{total}");
    }
    // Figures are not numbered in a stream: a missed one is replaced by the next.
    assert!(
        first.get("stream").is_none() && first.get("offset").is_none(),
        "{first}"
    );
    assert_eq!(
        first["data"]["points"][0]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        d.len(),
        "one push carries every node: {first}"
    );
}
