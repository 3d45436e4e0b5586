//! At the open-files limit a real server process stops accepting without spinning: accept
//! errors are counted in `/metrics`, logged once for the episode, and as soon as descriptors
//! free up new logins and WebSockets work again.

mod common;

use std::time::Duration;

use common::*;
use tokio::net::TcpStream;

/// `switchboard_accept_errors_total{kind="emfile"}` as the server reports it.
async fn emfile_errors(probe: &mut KeepAlive) -> u64 {
    let answer = probe.get("/metrics").await;
    assert_eq!(answer.status, 200);
    answer
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_accept_errors_total{kind=\"emfile\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the accept error counter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_files_limit_accepting_backs_off_and_resumes_when_sockets_close() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerCommand::new(dir.path())
        // Squatting connections stay until the test closes them.
        .env("SWITCHBOARD_SERVER__HEADER_TIMEOUT", "120s")
        .env("SWITCHBOARD_SERVER__KEEPALIVE_TIMEOUT", "120s")
        .start()
        .await;
    let host = format!("127.0.0.1:{}", server.port);
    let pid = server.pid();
    // Opened before the limit is reached: the one way to ask the server during the episode.
    let mut probe = KeepAlive::connect(&host).await;
    assert_eq!(probe.get("/healthz").await.status, 200);
    assert_eq!(emfile_errors(&mut probe).await, 0);

    let limit = open_fds(pid) + 16;
    set_open_files_limit(pid, limit);
    // More connections than descriptors left: the rest wait in the listen backlog, and each
    // accept the server tries fails.
    let mut squatters = Vec::new();
    for _ in 0..40 {
        squatters.push(TcpStream::connect(&host).await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while emfile_errors(&mut probe).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no accept failed at {limit} open files"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // During the episode the server retries, but does not spin.
    let before = emfile_errors(&mut probe).await;
    let share = cpu_share(pid, Duration::from_secs(2)).await;
    let after = emfile_errors(&mut probe).await;
    assert!(
        share < 0.30,
        "the server used {:.0}% of a core while it could not accept",
        share * 100.0
    );
    assert!(
        after > before,
        "the server stopped retrying ({before} → {after})"
    );
    assert!(
        after - before < 100,
        "{} failed accepts in 2 s is a busy loop",
        after - before
    );
    let log = server.log();
    assert_eq!(
        log.matches("accept failed").count(),
        1,
        "one line for the episode, not one per failure:\n{log}"
    );

    // Descriptors free up: accepting resumes at once, for logins and sockets alike.
    drop(squatters);
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let token = loop {
        let r = http
            .post(format!("{}/api/auth/login", server.base))
            .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(r) = r
            && r.status() == 200
        {
            let v: serde_json::Value = r.json().await.unwrap();
            break v["token"].as_str().unwrap().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no login within 10 s of the sockets closing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut ws = ws_connect(&server.ws_url, Some(&token)).await.unwrap();
    assert_eq!(recv(&mut ws).await["event"], "connected");
    let v = request(&mut ws, "ping", serde_json::Value::Null).await;
    assert_eq!(v["code"], 0);
    let log = server.log();
    assert!(log.contains("accepting connections again"), "{log}");
    assert_eq!(log.matches("accept failed").count(), 1, "{log}");
}
