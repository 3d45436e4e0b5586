//! The server's log as an operator reads it: written to a file it has no colour codes, in JSON
//! every line is an object, start-up names where everything is, a failed start says what
//! failed and exits quickly, and no password, token, key or secret is ever in it.

mod common;

use std::time::Duration;

use common::binary::{start, start_expecting_exit};
use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const ADMIN_PW: &str = "log-admin-password";

async fn send_to_all(base: &str, token: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/websocket/send/toAll"))
        .bearer_auth(token)
        .json(&json!({"event": "notice", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_redirected_log_has_no_escape_codes_and_starts_with_the_urls_and_addons() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ADMIN_PW)],
    );
    let addr = server.addr;
    let token = login(&reqwest::Client::new(), &server.url(""), "admin", ADMIN_PW).await;
    send_to_all(&server.url(""), &token).await;
    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(!log.contains('\x1b'), "escape codes in a file:\n{log}");
    for part in [
        format!("panel=http://{addr}/"),
        format!("swagger=http://{addr}/swagger"),
        format!("socket=ws://{addr}/socket"),
        "addons loaded".to_string(),
        "addons=hgexample".to_string(),
        "database=sqlite://data/switchboard.db?mode=rwc".to_string(),
    ] {
        assert!(log.contains(&part), "start-up log lacks {part}:\n{log}");
    }
    assert!(
        !log.contains("igration"),
        "no migration steps at info:\n{log}"
    );
}

#[tokio::test]
async fn with_log_format_json_every_line_is_a_json_object() {
    let dir = tempfile::tempdir().unwrap();
    // No admin password: the generated one is announced, one more kind of line to check.
    let server = start(dir.path(), &[("SWITCHBOARD_LOG__FORMAT", "json")]);
    let addr = server.addr;
    let early = std::fs::read_to_string(&server.log).unwrap();
    let at = early
        .find("generated password: ")
        .expect("password announced")
        + 20;
    let password: String = early[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let token = login(&reqwest::Client::new(), &server.url(""), "admin", &password).await;
    send_to_all(&server.url(""), &token).await;
    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{log}");
    for l in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(l[key].is_string(), "{key} missing in {l}");
        }
    }
    let listening = lines
        .iter()
        .find(|l| l["message"] == format!("listening on {addr}"))
        .unwrap_or_else(|| panic!("no listening line:\n{log}"));
    assert_eq!(listening["panel"], format!("http://{addr}/"));
    assert_eq!(listening["socket"], format!("ws://{addr}/socket"));
    let addons = lines
        .iter()
        .find(|l| l["message"] == "addons loaded")
        .unwrap();
    let built = switchboard::addons::Addons::default().names().len();
    assert_eq!(addons["count"], built, "numbers stay numbers: {addons}");
    let audit = lines
        .iter()
        .find(|l| l["target"] == "audit" && l["message"] == "send")
        .unwrap_or_else(|| panic!("no audit line for the send:\n{log}"));
    assert_eq!(audit["count"], 0, "{audit}");
    assert_eq!(audit["by"], "admin", "{audit}");
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("generated password")),
        "{log}"
    );
}

#[test]
fn a_port_in_use_names_the_address_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (status, took, log) = start_expecting_exit(
        dir.path(),
        &[("SWITCHBOARD_SERVER__ADDRESS", &address)],
        Duration::from_secs(15),
    );
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("cannot listen on {address}")) && log.contains("already in use"),
        "{log}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    drop(taken);
}

#[test]
fn an_unreachable_database_fails_fast_naming_its_host_not_its_password() {
    let dir = tempfile::tempdir().unwrap();
    // sqlx alone retries a refused connection for its whole 10 s pool timeout.
    let (status, took, log) = start_expecting_exit(
        dir.path(),
        &[
            (
                "SWITCHBOARD_DATABASE__URL",
                "postgres://postgres:hunter2-secret@127.0.0.1:1/test",
            ),
            ("SWITCHBOARD_LOG__FORMAT", "json"),
        ],
        Duration::from_secs(9),
    );
    assert!(!status.success(), "{log}");
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert!(!log.contains("hunter2"), "{log}");
    let error = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    let msg = error["message"].as_str().unwrap();
    assert!(
        msg.contains("postgres://postgres:***@127.0.0.1:1/test")
            && msg.contains("host 127.0.0.1:1"),
        "{msg}"
    );
}

#[test]
fn an_unreachable_redis_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, log) = start_expecting_exit(
        dir.path(),
        &[(
            "SWITCHBOARD_CLUSTER__REDIS_URL",
            "redis://:hunter2-secret@127.0.0.1:1",
        )],
        Duration::from_secs(20),
    );
    assert!(!status.success(), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    assert!(
        log.contains("cluster.redis_url redis://:***@127.0.0.1:1"),
        "{log}"
    );
}

/// The most verbose level logs the most, so if no secret reaches a `trace` log none reaches
/// any other level either. Passwords and tokens go through every transport: HTTP (header and
/// query), the WebSocket handshake (header, query, subprotocol), and the socket's `login`
/// event (with a password and with a token); failed logins and refused tokens included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_passwords_never_reach_the_log_even_at_trace_level() {
    const ENV_ADMIN_PASSWORD: &str = "Adm1n-From-Env-q8Zr-7731";
    const WRONG_PASSWORD: &str = "Wr0ng-Guess-x7Kd-5512";
    const USER_PASSWORD: &str = "Us3r-Initial-m4Nt-9040";
    const CHANGED_PASSWORD: &str = "Us3r-Changed-p2Lw-3318";

    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerCommand::new(dir.path())
        .env("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ENV_ADMIN_PASSWORD)
        // The socket on the exemption list, so anonymous sockets can send `login`.
        .env(
            "SWITCHBOARD_AUTH__EXCEPT_LOGIN",
            r#"["/api/auth/login", "/healthz", "/readyz", "/socket"]"#,
        )
        .env("RUST_LOG", "trace")
        .start()
        .await;
    let base = server.base.clone();
    let http = reqwest::Client::new();

    let token = login(&http, &base, "admin", ENV_ADMIN_PASSWORD).await;
    // HTTP: header and query.
    let r = http
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in [
        "/api/auth/me",
        "/api/websocket/online",
        "/api/websocket/stats",
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .query(&[("authorization", &token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}?authorization=");
    }
    // WebSocket: header, query, subprotocol.
    let ws_url = server.ws_url.clone();
    let mut sockets = Vec::new();
    sockets.push(ws_connect(&ws_url, Some(&token)).await.unwrap());
    sockets.push(
        ws_connect(&format!("{ws_url}?authorization={token}"), None)
            .await
            .unwrap(),
    );
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(&format!("switchboard.v1, bearer.{token}")).unwrap(),
    );
    sockets.push(tokio_tungstenite::connect_async(req).await.unwrap().0);
    for ws in &mut sockets {
        let hello = recv(ws).await;
        assert_eq!(hello["event"], "connected");
        assert_eq!(hello["data"]["userId"], 1, "the token was taken");
        assert_eq!(request(ws, "ping", Value::Null).await["code"], 0);
    }
    // Failed logins with a known wrong password, for a real and an unknown user.
    for user in ["admin", "admin", "ghost"] {
        let r = http
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"username": user, "password": WRONG_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // The socket's `login`: a wrong password, the right one, and a token, each in a frame the
    // WebSocket layer traces.
    let mut anonymous = ws_connect(&ws_url, None).await.unwrap();
    assert_eq!(recv(&mut anonymous).await["event"], "connected");
    let v = request(
        &mut anonymous,
        "login",
        json!({"username": "admin", "password": WRONG_PASSWORD}),
    )
    .await;
    assert_eq!(v["code"], 401);
    let v = request(
        &mut anonymous,
        "login",
        json!({"username": "admin", "password": ENV_ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    let socket_token = v["data"]["token"].as_str().unwrap().to_string();
    sockets.push(anonymous);
    let mut by_token = ws_connect(&ws_url, None).await.unwrap();
    assert_eq!(recv(&mut by_token).await["event"], "connected");
    let v = request(&mut by_token, "login", json!({"token": token})).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(request(&mut by_token, "ping", Value::Null).await["code"], 0);
    sockets.push(by_token);
    // A refused token (tampered signature) on HTTP and on the handshake, where the exempt
    // socket ignores it and lets the client in anonymously.
    let bad = format!("{}x", &token[..token.len() - 1]);
    let r = http
        .get(format!("{base}/api/auth/me"))
        .query(&[("authorization", &bad)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut refused = ws_connect(&format!("{ws_url}?authorization={bad}"), None)
        .await
        .unwrap();
    assert_eq!(recv(&mut refused).await["data"]["userId"], Value::Null);
    sockets.push(refused);
    // A user whose password is set and changed, and an API key.
    let r = http
        .post(format!("{base}/api/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "carol", "password": USER_PASSWORD, "roles": ["member"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let carol: Value = r.json().await.unwrap();
    let carol_token = login(&http, &base, "carol", USER_PASSWORD).await;
    let r = http
        .patch(format!("{base}/api/users/{}", carol["id"]))
        .bearer_auth(&token)
        .json(&json!({"password": CHANGED_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/api/apikeys"))
        .bearer_auth(&token)
        .json(&json!({"name": "billing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let api_key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .get(format!("{base}/api/websocket/stats"))
        .header("X-API-Key", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Logout (revocation is stored by token id, never the token).
    let r = http
        .post(format!("{base}/api/auth/logout"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let jwt_secret = std::fs::read_to_string(dir.path().join("jwt_secret"))
        .expect("the generated JWT secret is kept in the data dir");
    server.terminate(Duration::from_secs(10)).await;
    let log = server.log();
    assert!(
        log.contains("TRACE") && log.contains("connection accepted"),
        "trace logging was on: {} bytes of log",
        log.len()
    );
    assert!(
        log.contains("/api/auth/me") && log.contains("/socket"),
        "request paths are logged: {} bytes of log",
        log.len()
    );
    assert!(log.contains("login failed"), "failed logins are logged");
    let signature = token.rsplit('.').next().unwrap();
    let secrets: [(&str, &str); 10] = [
        ("the admin's token", &token),
        ("the admin token's signature", signature),
        ("a refused token", &bad),
        ("carol's token", &carol_token),
        ("the socket login's token", &socket_token),
        (
            "the admin password from the environment",
            ENV_ADMIN_PASSWORD,
        ),
        ("the wrong password", WRONG_PASSWORD),
        ("carol's first password", USER_PASSWORD),
        ("carol's new password", CHANGED_PASSWORD),
        ("the API key", &api_key),
    ];
    let mut leaks = Vec::new();
    for (what, secret) in secrets {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            let line: String = line.chars().take(300).collect();
            leaks.push(format!("{what} is in the log: {line}"));
        }
    }
    let jwt_secret = jwt_secret.trim();
    if !jwt_secret.is_empty() && log.contains(jwt_secret) {
        leaks.push("the JWT secret is in the log".into());
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
