//! Secrets stay out of the log at the most verbose level: a real server process runs with
//! `RUST_LOG=trace`, passwords and tokens go through every transport, and the log is searched.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_never_reach_a_trace_level_log() {
    const ADMIN_PW: &str = "Tr4ce-Admin-Pw-k3Qx-0912";
    const WRONG_PW: &str = "Tr4ce-Wrong-Pw-v8Ls-4471";

    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerCommand::new(dir.path())
        .env("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ADMIN_PW)
        .env(
            "SWITCHBOARD_AUTH__EXCEPT_LOGIN",
            r#"["/api/auth/login", "/healthz", "/readyz", "/socket"]"#,
        )
        .env("RUST_LOG", "trace")
        .start()
        .await;
    let base = server.base.clone();
    let http = reqwest::Client::new();

    // HTTP: a failed and a good login, then the token in a header and a query.
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "admin", "password": WRONG_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let token = login(&http, &base, "admin", ADMIN_PW).await;
    let r = http
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The socket: `login` with a password (wrong, then right) and `login {token}`, each in
    // the frame tungstenite traces.
    let ws_url = server.ws_url.clone();
    let mut ws = ws_connect(&ws_url, None).await.unwrap();
    assert_eq!(recv(&mut ws).await["event"], "connected");
    let v = request(
        &mut ws,
        "login",
        json!({"username": "admin", "password": WRONG_PW}),
    )
    .await;
    assert_eq!(v["code"], 401);
    let v = request(
        &mut ws,
        "login",
        json!({"username": "admin", "password": ADMIN_PW}),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    let socket_token = v["data"]["token"].as_str().unwrap().to_string();
    let mut ws2 = ws_connect(&ws_url, None).await.unwrap();
    assert_eq!(recv(&mut ws2).await["event"], "connected");
    let v = request(&mut ws2, "login", json!({"token": token})).await;
    assert_eq!(v["code"], 0, "{v}");
    let v = request(&mut ws2, "ping", Value::Null).await;
    assert_eq!(v["code"], 0);
    let _ = ws.close(None).await;
    let _ = ws2.close(None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.terminate(Duration::from_secs(10)).await;
    let log = server.log();
    assert!(
        log.contains("TRACE") && log.contains("connection accepted"),
        "trace logging was on: {} bytes of log",
        log.len()
    );
    assert!(log.contains("login failed"), "failed logins are logged");
    for (what, secret) in [
        ("the admin password", ADMIN_PW),
        ("a wrong password", WRONG_PW),
        ("the HTTP login's token", token.as_str()),
        (
            "the HTTP token's signature",
            token.rsplit('.').next().unwrap(),
        ),
        ("the socket login's token", socket_token.as_str()),
    ] {
        let line = log.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "{what} is in the log: {line:?}");
    }
}
