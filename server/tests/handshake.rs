//! Opening a WebSocket: the three ways to present a token, the Origin allow-list, upgrade
//! requests the server refuses (always as a JSON error, never a 101), and the connection
//! limit holding under a flood while the clients already in keep being served.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[tokio::test]
async fn three_token_transports_are_accepted_and_no_token_is_refused() {
    let app = spawn_app().await;
    // Authorization header.
    let (_ws, hello) = app.ws(&app.admin_token).await;
    assert_eq!(hello["username"], "admin");
    assert!(hello["id"].as_str().unwrap().contains('.'));
    assert_eq!(hello["pingInterval"], 25.0);
    // Query string.
    let mut ws = ws_connect(
        &format!("{}?authorization={}", app.ws_url, app.admin_token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(recv(&mut ws).await["data"]["userId"], 1);
    // Subprotocol; the server selects switchboard.v1.
    let mut req = app.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(&format!("switchboard.v1, bearer.{}", app.admin_token)).unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "switchboard.v1");
    assert_eq!(recv(&mut ws).await["event"], "connected");
    // No token at all is refused with 401 (refused tokens: see the forged-token table).
    assert_eq!(
        handshake_status(ws_connect(&app.ws_url, None).await.unwrap_err()),
        401
    );
}

async fn handshake_with_origin(app: &TestApp, origin: Option<&str>) -> (u16, Value) {
    let mut req = app.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {}", app.admin_token)).unwrap(),
    );
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, resp)) => {
            assert_eq!(recv(&mut ws).await["event"], "connected");
            let _ = ws.close(None).await;
            (resp.status().as_u16(), Value::Null)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body = serde_json::from_slice(r.body().as_deref().unwrap_or(b"null"))
                .expect("a JSON refusal");
            (r.status().as_u16(), body)
        }
        Err(e) => panic!("handshake failed oddly: {e}"),
    }
}

#[tokio::test]
async fn only_allowed_origins_may_open_a_websocket() {
    let app = spawn_with(|c| {
        c.websocket.allowed_origins = vec!["https://admin.example".into()];
    })
    .await;
    assert_eq!(
        handshake_with_origin(&app, Some("https://admin.example"))
            .await
            .0,
        101
    );
    // Non-browser clients send no Origin and are allowed.
    assert_eq!(handshake_with_origin(&app, None).await.0, 101);
    for evil in [
        "https://evil.example",
        "http://admin.example",
        "https://admin.example.evil.example",
        "https://evil-admin.example",
        "https://admin.example:8443",
        "https://admin.example/",
        "https://sub.admin.example",
        "null",
        "",
        "*",
        "file://",
    ] {
        let (status, body) = handshake_with_origin(&app, Some(evil)).await;
        assert_eq!(status, 403, "Origin {evil:?}");
        assert_eq!(body["code"], "origin_not_allowed", "Origin {evil:?}");
    }
    assert_eq!(app.state.ws.registry().counts().0, 0);
}

#[tokio::test]
async fn a_refused_upgrade_is_a_json_error_never_a_101() {
    let app = spawn_app().await;
    let url = app.ws_url.replacen("ws://", "http://", 1);
    let t = &app.admin_token;
    let upgrade = |version: Option<&str>, key: Option<&str>| {
        let mut r = app
            .http
            .get(&url)
            .bearer_auth(t)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade");
        if let Some(v) = version {
            r = r.header("Sec-WebSocket-Version", v);
        }
        if let Some(k) = key {
            r = r.header("Sec-WebSocket-Key", k);
        }
        r
    };
    let good_key = Some("dGhlIHNhbXBsZSBub25jZQ==");
    let attempts: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (app.http.get(&url).bearer_auth(t), 400, "websocket_required"),
        (
            app.http
                .get(&url)
                .bearer_auth(t)
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            400,
            "websocket_required",
        ),
        (
            app.http
                .post(&url)
                .bearer_auth(t)
                .header("Upgrade", "websocket")
                .header("Connection", "Upgrade")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            400,
            "websocket_required",
        ),
        // An unsupported or missing version is 426, naming the one version the server speaks.
        (upgrade(Some("8"), good_key), 426, "websocket_version"),
        (upgrade(None, good_key), 426, "websocket_version"),
        (upgrade(Some("13"), None), 400, "websocket_key"),
        // The key must be base64 of 16 bytes.
        (upgrade(Some("13"), Some("short")), 400, "websocket_key"),
        (upgrade(Some("13"), Some("c2hvcnQ=")), 400, "websocket_key"),
        (
            upgrade(Some("13"), Some("dGhlIHNhbXBsZSBub25jZQ==dGhl")),
            400,
            "websocket_key",
        ),
    ];
    for (req, status, code) in attempts {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{code}");
        if status == 426 {
            assert_eq!(r.headers()["sec-websocket-version"], "13");
        }
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(r.headers().get("sec-websocket-accept").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        app.state.ws.registry().counts().0,
        0,
        "nothing was upgraded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_beyond_max_connections_gets_429_while_existing_clients_keep_working() {
    const LIMIT: usize = 10;
    let app = spawn_with(|c| c.websocket.max_connections = LIMIT).await;
    let mut existing = Vec::new();
    for _ in 0..LIMIT {
        existing.push(app.ws(&app.admin_token).await.0);
    }
    // Existing clients ping continuously while the flood runs.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut pingers = Vec::new();
    for mut ws in existing {
        let stop = stop.clone();
        pingers.push(tokio::spawn(async move {
            let mut round_trips = 0u32;
            let mut worst = Duration::ZERO;
            while !stop.is_cancelled() {
                let t = Instant::now();
                let v = request(&mut ws, "ping", Value::Null).await;
                assert_eq!(v["code"], 0);
                worst = worst.max(t.elapsed());
                round_trips += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ws, round_trips, worst)
        }));
    }
    let mut flood = Vec::new();
    for _ in 0..200 {
        let url = app.ws_url.clone();
        let token = app.admin_token.clone();
        flood.push(tokio::spawn(async move {
            match ws_connect(&url, Some(&token)).await {
                Ok(_) => panic!("a handshake beyond max_connections was accepted"),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    let body: Value =
                        serde_json::from_slice(r.body().as_deref().unwrap_or(b"null")).unwrap();
                    (
                        r.status().as_u16(),
                        body["code"].as_str().unwrap_or("").to_string(),
                    )
                }
                Err(e) => panic!("expected an HTTP refusal, got {e}"),
            }
        }));
    }
    for f in flood {
        let (status, code) = f.await.unwrap();
        assert_eq!((status, code.as_str()), (429, "too_many_connections"));
    }
    stop.cancel();
    let mut survivors = Vec::new();
    for p in pingers {
        let (ws, round_trips, worst) = p.await.unwrap();
        assert!(
            round_trips > 0,
            "every existing client kept its round trips"
        );
        assert!(
            worst < Duration::from_secs(2),
            "ping took {worst:?} during the flood"
        );
        survivors.push(ws);
    }
    assert_eq!(app.state.ws.registry().counts().0, LIMIT);
    // A slot freed by a leaving client is usable again.
    survivors.pop().unwrap().close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ws_connect(&app.ws_url, Some(&app.admin_token)).await {
            Ok(mut ws) => {
                assert_eq!(recv(&mut ws).await["event"], "connected");
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the freed slot never became usable: {e}"),
        }
    }
    for mut ws in survivors {
        assert_alive(&mut ws).await;
    }
}
