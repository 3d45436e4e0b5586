//! Cluster mode: several nodes on one Redis and one database.
//!
//! Set SWITCHBOARD_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379); unset, each test reports
//! itself skipped. Every test uses its own key prefix, so tests can share one Redis.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn redis_url() -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("skipped: set SWITCHBOARD_TEST_REDIS_URL to run the cluster tests");
            None
        }
    }
}

fn prefix() -> String {
    format!("sbtest{}{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("x{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Two nodes sharing Redis, a database and a JWT secret.
async fn two_nodes(redis: &str) -> (TestApp, TestApp) {
    let p = prefix();
    let a = spawn_with(|c| {
        c.cluster.redis_url = redis.to_string();
        c.cluster.prefix = p.clone();
        c.cluster.node_id = "node-a".into();
    })
    .await;
    let dir = a.dir.path().to_path_buf();
    let b = spawn_with(|c| {
        c.cluster.redis_url = redis.to_string();
        c.cluster.prefix = p.clone();
        c.cluster.node_id = "node-b".into();
        c.server.data_dir = dir.clone();
    })
    .await;
    // Both heartbeats are in before the first cluster-wide count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (a, b)
}

#[tokio::test]
async fn recover_on_node_b_what_was_sent_while_on_node_a() {
    let Some(redis) = redis_url() else { return };
    let (a, b) = two_nodes(&redis).await;
    let (uid, tok) = a.user("mover", &["member"]).await;
    let stream = format!("user:{uid}");
    let (mut on_a, _) = a.ws(&tok).await;
    a.post(
        "/api/websocket/send/toUser",
        &a.admin_token,
        json!({"userId": uid, "event": "n", "data": 0}),
    )
    .await;
    let first = recv(&mut on_a).await;
    let epoch = first["epoch"].as_str().unwrap().to_string();
    drop(on_a);
    // Gone from the cluster's online list before the next pushes, so they reach no one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, stats) = a.get("/api/websocket/stats", &a.admin_token).await;
        if stats["connections"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still online: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 1..=3 {
        let (_, d) = a
            .post(
                "/api/websocket/send/toUser",
                &a.admin_token,
                json!({"userId": uid, "event": "n", "data": n}),
            )
            .await;
        assert_eq!(d["delivered"], 0);
    }
    let mut on_b = ws_connect(&format!("{}?recover=1", b.ws_url), Some(&tok))
        .await
        .unwrap();
    assert_eq!(recv(&mut on_b).await["event"], "connected");
    send(&mut on_b, json!({"event": "recover", "seqno": 1, "data": {"streams": {&stream: {"offset": 1, "epoch": epoch}}}})).await;
    for n in 1..=3 {
        let v = recv(&mut on_b).await;
        assert_eq!(
            (v["data"].as_i64(), v["offset"].as_i64()),
            (Some(n), Some(n + 1))
        );
    }
    let reply = recv(&mut on_b).await;
    assert_eq!(reply["data"]["recovered"][&stream], true);
    let v = request(
        &mut on_b,
        "recover",
        json!({"streams": {&stream: {"offset": 0, "epoch": "stale"}}}),
    )
    .await;
    assert_eq!(v["data"]["recovered"][&stream], false);
}

#[tokio::test]
async fn queue_entries_are_delivered_once_and_bad_ones_dead_lettered() {
    let Some(redis) = redis_url() else { return };
    let (a, b) = two_nodes(&redis).await;
    let prefix = a.state.cfg.cluster.prefix.clone();
    let (uid, tok) = a.user("queued", &["member"]).await;
    let (mut ws, _) = b.ws(&tok).await;
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let queue = format!("{prefix}:queue");
    for n in 0..20 {
        let payload =
            json!({"to": "user", "userId": uid, "event": "q", "data": {"n": n}}).to_string();
        let _: String = redis::cmd("XADD")
            .arg(&queue)
            .arg("*")
            .arg("payload")
            .arg(payload)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    for bad in [
        "not json",
        r#"{"to":"planet","event":"x"}"#,
        r#"{"to":"user","event":"x"}"#,
    ] {
        let _: String = redis::cmd("XADD")
            .arg(&queue)
            .arg("*")
            .arg("payload")
            .arg(bad)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        // Generous: the consumer polls with a 1 s block, and CI machines are busy.
        let v = recv_within(&mut ws, Duration::from_secs(20))
            .await
            .expect("queued pushes arrive");
        assert_eq!(v["event"], "q");
        got.push(v["data"]["n"].as_i64().unwrap());
    }
    got.sort();
    assert_eq!(
        got,
        (0..20).collect::<Vec<i64>>(),
        "each entry exactly once across both nodes"
    );
    assert!(
        recv_within(&mut ws, Duration::from_millis(500))
            .await
            .is_none()
    );
    let dead = format!("{prefix}:queue:dead");
    let mut dead_len = 0;
    for _ in 0..50 {
        dead_len = redis::cmd("XLEN")
            .arg(&dead)
            .query_async::<u64>(&mut c)
            .await
            .unwrap();
        if dead_len == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead_len, 3);
    let entries: Value = {
        let r: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&dead)
            .arg("-")
            .arg("+")
            .query_async(&mut c)
            .await
            .unwrap();
        Value::Array(
            r.ids
                .iter()
                .map(|e| json!(e.get::<String>("reason")))
                .collect(),
        )
    };
    assert!(entries.to_string().contains("to must be"), "{entries}");
    // Nothing left pending.
    let pending: (u64, Value, Value, Value) = redis::cmd("XPENDING")
        .arg(&queue)
        .arg("switchboard")
        .query_async(&mut c)
        .await
        .map(|v: redis::Value| {
            let n = match &v {
                redis::Value::Array(items) => match items.first() {
                    Some(redis::Value::Int(n)) => *n as u64,
                    _ => 0,
                },
                _ => 0,
            };
            (n, Value::Null, Value::Null, Value::Null)
        })
        .unwrap();
    assert_eq!(pending.0, 0);
    drop(b);
}

async fn eventually_async<F, Fut>(d: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + d;
    while !cond().await {
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {d:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn redis_outage_keeps_local_traffic_and_the_node_heals() {
    let Some(_) = redis_url() else { return };
    // A private Redis this test may stop and start; it comes back empty.
    let mut redis_proc = PrivateRedis::start(false);
    let url = redis_proc.url();
    let probe = redis::Client::open(url.as_str()).unwrap();
    eventually_async(Duration::from_secs(10), || async {
        probe.get_multiplexed_async_connection().await.is_ok()
    })
    .await;
    let app = spawn_with(|c| {
        c.cluster.redis_url = url.clone();
        c.cluster.node_id = "lonely".into();
    })
    .await;
    let (uid, tok) = app.user("steady", &["member"]).await;
    let (mut ws, _) = app.ws(&tok).await;
    let send = |n: i64| {
        let app = &app;
        async move {
            app.post(
                "/api/websocket/send/toUser",
                &app.admin_token,
                json!({"userId": uid, "event": "n", "data": n}),
            )
            .await
            .1["delivered"]
                .as_i64()
        }
    };
    assert_eq!(send(1).await, Some(1));
    assert_eq!(recv(&mut ws).await["data"], 1);

    redis_proc.stop();
    eventually_async(Duration::from_secs(15), || async {
        app.get("/readyz", "").await.0 == 503
    })
    .await;
    // The API says what it cannot do; the socket itself keeps working.
    let (status, body) = app
        .post(
            "/api/websocket/send/toUser",
            &app.admin_token,
            json!({"userId": uid, "event": "n", "data": 2}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "cluster_unavailable");
    let (status, body) = app.get("/api/websocket/online", &app.admin_token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("cluster_unavailable"))
    );
    let echo = request(
        &mut ws,
        "admin/addons/hgexample/testMessage",
        json!({"still": "here"}),
    )
    .await;
    assert_eq!(
        echo["data"],
        json!({"still": "here"}),
        "local sockets are still served"
    );

    // Redis comes back empty: this node's presence is gone, so its sockets are told to
    // reconnect (1012), and a reconnected socket is counted and served again.
    redis_proc.start_again();
    eventually_async(Duration::from_secs(30), || async {
        app.get("/readyz", "").await.0 == 200
    })
    .await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(15)).await, 1012);
    let (mut ws, _) = app.ws(&tok).await;
    assert_eq!(send(3).await, Some(1));
    let v = recv(&mut ws).await;
    assert_eq!(v["data"], 3);
    assert!(v["stream"].is_string());
}

#[tokio::test]
async fn the_login_limit_is_shared_across_nodes() {
    let Some(redis) = redis_url() else { return };
    let (a, b) = two_nodes(&redis).await;
    for _ in 0..5 {
        let (s, _) = a
            .post(
                "/api/auth/login",
                "",
                json!({"username": "admin", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(s, 401);
    }
    let (s, body) = b
        .post(
            "/api/auth/login",
            "",
            json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (429, Some("rate_limited")),
        "node B knows A's failures"
    );
}

#[tokio::test]
async fn entries_left_pending_by_a_dead_consumer_are_claimed_and_delivered() {
    let Some(redis) = redis_url() else { return };
    let p = prefix();
    let queue = format!("{p}:queue");
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    // A consumer that takes an entry and dies before acknowledging it.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&queue)
        .arg("switchboard")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await
        .unwrap();
    let payload = json!({"to": "all", "event": "orphan", "data": 1}).to_string();
    let _: String = redis::cmd("XADD")
        .arg(&queue)
        .arg("*")
        .arg("payload")
        .arg(&payload)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("switchboard")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&queue)
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    let app = spawn_with(|cfg| {
        cfg.cluster.redis_url = redis.clone();
        cfg.cluster.prefix = p.clone();
        cfg.cluster.queue_claim_idle = Duration::from_secs(1);
    })
    .await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    let v = recv_within(&mut ws, Duration::from_secs(15))
        .await
        .expect("the orphaned entry is claimed and delivered");
    assert_eq!(v["event"], "orphan");
}
