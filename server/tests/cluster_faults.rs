//! Cluster faults with real processes: three `switchboard` nodes on a private `redis-server`
//! this test starts on a free port, frozen with SIGSTOP, and Redis restarted mid-traffic; and
//! a thousand sockets over three nodes. Needs SWITCHBOARD_TEST_REDIS_URL set (the suite is
//! skipped otherwise) and `redis-server` on PATH.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn new(base: &str) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let token = login(&http, base, "admin", ADMIN_PASSWORD).await;
        Api { http, token }
    }

    async fn post(&self, base: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn user(&self, base: &str, name: &str) -> (i64, String) {
        let (s, v) = self
            .post(
                base,
                "/api/users",
                json!({"username": name, "password": "password-123", "roles": ["member"]}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        (
            v["id"].as_i64().unwrap(),
            login(&self.http, base, name, "password-123").await,
        )
    }
}

/// Three nodes `a`, `b`, `c` on `redis`, sharing one database; and their key prefix.
async fn three_process_nodes(redis: &str) -> (tempfile::TempDir, String, Vec<ServerProcess>) {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix();
    let mut nodes = Vec::new();
    // The first node creates the database; the others join it.
    for name in ["a", "b", "c"] {
        nodes.push(node_command(dir.path(), redis, &prefix, name).start().await);
    }
    (dir, prefix, nodes)
}

fn node_command(dir: &std::path::Path, redis: &str, prefix: &str, name: &str) -> ServerCommand {
    ServerCommand::new(dir)
        .cluster(redis, prefix, name)
        .env("SWITCHBOARD_WEBSOCKET__MAX_CONNECTIONS_PER_USER", "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_requests_after_start_are_exact_and_a_frozen_node_catches_up() {
    let Some(_) = test_redis_url() else { return };
    let redis = PrivateRedis::start(true);
    let (_dir, _, nodes) = three_process_nodes(&redis.url()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let api = Api::new(&a.base).await;
    let (uid, tok) = api.user(&a.base, "mallory").await;

    // Right after start: a socket on C is counted by a send and a kick made on A.
    let (mut on_c, hello_c) = {
        let mut ws = ws_connect(&c.ws_url, Some(&tok)).await.unwrap();
        let hello = recv(&mut ws).await;
        (ws, hello)
    };
    let mut on_b = ws_connect(&b.ws_url, Some(&tok)).await.unwrap();
    let hello_b = recv(&mut on_b).await;
    let (s, v) = api
        .post(
            &a.base,
            "/api/websocket/send/toUser",
            json!({"userId": uid, "event": "n", "data": 0}),
        )
        .await;
    assert_eq!((s, v["delivered"].as_i64()), (200, Some(2)), "{v}");
    assert_eq!(recv(&mut on_c).await["data"], 0);
    assert_eq!(recv(&mut on_b).await["data"], 0);

    // C freezes for 10 s. Sends made meanwhile still count its socket and do not wait for it.
    let frozen_at = Instant::now();
    c.signal("-STOP");
    let mut slowest = Duration::ZERO;
    for n in 1..=20 {
        let started = Instant::now();
        let (s, v) = api
            .post(
                &a.base,
                "/api/websocket/send/toUser",
                json!({"userId": uid, "event": "n", "data": n}),
            )
            .await;
        slowest = slowest.max(started.elapsed());
        assert_eq!((s, v["delivered"].as_i64()), (200, Some(2)), "{v}");
        assert_eq!(recv(&mut on_b).await["data"], n);
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    if let Some(left) = Duration::from_secs(10).checked_sub(frozen_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    eprintln!("slowest send while a node was frozen: {slowest:?}");
    c.signal("-CONT");
    // The frozen node's socket gets everything, in order, once it resumes.
    for n in 1..=20 {
        let f = recv_within(&mut on_c, Duration::from_secs(15))
            .await
            .expect("the resumed node delivers what it missed");
        assert_eq!(
            (f["data"].as_i64(), f["offset"].as_i64()),
            (Some(n), Some(n + 1))
        );
    }

    // A kick made on A closes the socket on the resumed node and counts it.
    let (s, v) = api
        .post(
            &a.base,
            "/api/websocket/kick",
            json!({"clientId": hello_c["data"]["id"]}),
        )
        .await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(1)));
    assert_eq!(recv(&mut on_c).await["event"], "kick");
    assert_eq!(close_code(&mut on_c, Duration::from_secs(5)).await, 4001);
    let (s, v) = api
        .post(&a.base, "/api/websocket/kick", json!({"userId": uid}))
        .await;
    assert_eq!(
        (s, v["closed"].as_i64()),
        (200, Some(1)),
        "only B's socket was left"
    );
    assert_eq!(hello_b["event"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_the_cluster_and_may_come_back() {
    let Some(_) = test_redis_url() else { return };
    let redis = PrivateRedis::start(false);
    let (dir, prefix, mut nodes) = three_process_nodes(&redis.url()).await;
    let api = Api::new(&nodes[0].base).await;
    let (uid, tok) = api.user(&nodes[0].base, "trent").await;
    let mut on_b = ws_connect(&nodes[1].ws_url, Some(&tok)).await.unwrap();
    assert_eq!(recv(&mut on_b).await["event"], "connected");
    let mut on_c = ws_connect(&nodes[2].ws_url, Some(&tok)).await.unwrap();
    assert_eq!(recv(&mut on_c).await["event"], "connected");
    let online = |api: &Api, base: String| {
        let (http, token) = (api.http.clone(), api.token.clone());
        async move {
            let r = http
                .get(format!("{base}/api/websocket/online?userId={uid}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["total"].as_i64()
        }
    };
    assert_eq!(online(&api, nodes[0].base.clone()).await, Some(2));

    // C dies without a word. Until its heartbeat expires it may still be counted; the other
    // nodes keep sending, and B's device gets every push in order.
    nodes[2].kill();
    drop(on_c);
    let killed_at = Instant::now();
    let mut n = 0;
    let gone_after = loop {
        n += 1;
        let (s, v) = api
            .post(
                &nodes[0].base,
                "/api/websocket/send/toUser",
                json!({"userId": uid, "event": "n", "data": n}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let f = recv(&mut on_b).await;
        assert_eq!(
            (f["data"].as_i64(), f["offset"].as_i64()),
            (Some(n), Some(n))
        );
        let delivered = v["delivered"].as_i64().unwrap();
        assert!(delivered == 1 || delivered == 2, "{v}");
        if delivered == 1 && online(&api, nodes[1].base.clone()).await == Some(1) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "the dead node's connection is still present after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("a killed node's connections left presence after {gone_after:?}");

    // C comes back under the same name and serves again.
    let c = node_command(dir.path(), &redis.url(), &prefix, "c")
        .start()
        .await;
    let mut back = ws_connect(&c.ws_url, Some(&tok)).await.unwrap();
    assert_eq!(recv(&mut back).await["event"], "connected");
    let (s, v) = api
        .post(
            &nodes[0].base,
            "/api/websocket/send/toUser",
            json!({"userId": uid, "event": "n", "data": "again"}),
        )
        .await;
    assert_eq!((s, v["delivered"].as_i64()), (200, Some(2)), "{v}");
    assert_eq!(recv(&mut back).await["data"], "again");
    assert_eq!(recv(&mut on_b).await["data"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_traffic_loses_nothing_within_history() {
    let Some(_) = test_redis_url() else { return };
    let mut redis = PrivateRedis::start(true);
    let (_dir, _, nodes) = three_process_nodes(&redis.url()).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let api = Api::new(&a.base).await;
    let (uid, tok) = api.user(&a.base, "niaj").await;
    let mut ws = ws_connect(&b.ws_url, Some(&tok)).await.unwrap();
    let hello = recv(&mut ws).await;
    let stream = format!("user:{uid}");
    let epoch = hello["data"]["streams"][&stream]["epoch"]
        .as_str()
        .unwrap()
        .to_string();

    // A second device that goes away while Redis is down: its node cannot tell presence then.
    let mut extra = Some(ws_connect(&b.ws_url, Some(&tok)).await.unwrap());
    let mut accepted = Vec::new();
    let mut refused = 0;
    for n in 1..=80i64 {
        if n == 20 {
            redis.stop();
        }
        if n == 25 {
            drop(extra.take());
        }
        if n == 30 {
            redis.restart();
        }
        let (s, v) = api
            .post(
                &a.base,
                "/api/websocket/send/toUser",
                json!({"userId": uid, "event": "n", "data": n}),
            )
            .await;
        match s {
            200 => {
                let d = v["delivered"].as_i64().unwrap();
                // 2 until node b is back on Redis and drops the device that left meanwhile
                // (checked below).
                assert!(d == 1 || d == 2, "{v}");
                accepted.push(n);
            }
            503 => {
                assert_eq!(v["code"], "cluster_unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused > 0, "the outage was visible to the API");
    // Once the node is back on Redis, the device that left during the outage is gone too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = api
            .http
            .get(format!("{}/api/websocket/online?userId={uid}", a.base))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap();
        let page: Value = r.json().await.unwrap_or(Value::Null);
        if page["total"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection stayed listed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        accepted.iter().filter(|&&n| n > 30).count() >= 10,
        "sends resumed after the restart: {accepted:?}"
    );
    // Every accepted send arrived, in order, with consecutive offsets.
    let mut got = Vec::new();
    let mut offsets = Vec::new();
    while got.len() < accepted.len() {
        let f = recv_within(&mut ws, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("missing pushes: got {got:?} of {accepted:?}"));
        got.push(f["data"].as_i64().unwrap());
        offsets.push(f["offset"].as_i64().unwrap());
        assert_eq!(f["epoch"], epoch.as_str(), "the stream kept its epoch");
    }
    assert_eq!(got, accepted);
    assert_eq!(offsets, (1..=accepted.len() as i64).collect::<Vec<_>>());

    // And `recover` afterwards replays from history, on another node (once it is ready
    // again: it resubscribes with its own backoff).
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{}/readyz", nodes[2].base))
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "node c never became ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("{}?recover=1", nodes[2].ws_url);
    let mut back = ws_connect(&url, Some(&tok)).await.unwrap();
    assert_eq!(recv(&mut back).await["event"], "connected");
    send(
        &mut back,
        json!({"event": "recover", "seqno": "r",
               "data": {"streams": {&stream: {"offset": 10, "epoch": &epoch}}}}),
    )
    .await;
    let mut replayed = Vec::new();
    loop {
        let f = recv(&mut back).await;
        if f["seqno"] == "r" {
            assert_eq!(f["data"]["recovered"][&stream], true, "{f}");
            break;
        }
        replayed.push(f["data"].as_i64().unwrap());
    }
    assert_eq!(replayed, accepted[10..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sockets_over_three_nodes_are_listed_exactly() {
    let Some(redis) = test_redis_url() else {
        return;
    };
    let d = Deployment::cluster(&redis, 3, |c| {
        c.websocket.max_connections_per_user = 0;
    })
    .await;
    let token = d.node(0).admin_token.clone();
    let mut sockets = Vec::new();
    let mut ids = BTreeSet::new();
    for batch in 0..10 {
        let mut pending = Vec::new();
        for i in 0..100 {
            let url = d.node(batch * 100 + i).ws_url.clone();
            let t = token.clone();
            pending.push(tokio::spawn(async move {
                let mut ws = ws_connect(&url, Some(&t)).await.unwrap();
                let hello = recv(&mut ws).await;
                (ws, hello["data"]["id"].as_str().unwrap().to_string())
            }));
        }
        for p in pending {
            let (ws, id) = p.await.unwrap();
            ids.insert(id);
            sockets.push(ws);
        }
    }
    assert_eq!(ids.len(), 1000);
    for i in 0..3 {
        let (_, stats) = d.node(i).get("/api/websocket/stats", &token).await;
        assert_eq!(stats["connections"], 1000, "node {i}: {stats}");
    }
    let mut listed = Vec::new();
    for page in 1..=5 {
        let (s, p) = d
            .node(page)
            .get(
                &format!("/api/websocket/online?page={page}&pageSize=200"),
                &token,
            )
            .await;
        assert_eq!((s, p["total"].as_i64()), (200, Some(1000)));
        let rows = p["list"].as_array().unwrap();
        assert_eq!(rows.len(), 200);
        listed.extend(rows.iter().map(|r| r["id"].as_str().unwrap().to_string()));
    }
    assert_eq!(listed.len(), 1000);
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every page exact"
    );
    let r = d
        .node(2)
        .post(
            "/api/websocket/send/toAll",
            &token,
            json!({"event": "all", "data": 1}),
        )
        .await;
    assert_eq!(r.1["delivered"], 1000);
    drop(sockets);
}
