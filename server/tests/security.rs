//! Security over real HTTP and real sockets: forged tokens, injection strings, path traversal,
//! secrets in logs, responses and files, brute force, and the Origin allow-list.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};
use switchboard_sdk::protocol::unix_now;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const JWT_SECRET: &str = "the-real-jwt-secret-for-these-tests-0123456789";

fn host_of(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// JWT forgery
// ---------------------------------------------------------------------------------------------

/// HMAC (RFC 2104) over any of the SHA-2 hashes.
fn hmac<D: Digest>(key: &[u8], msg: &[u8], block: usize) -> Vec<u8> {
    let mut k = if key.len() > block {
        D::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = D::new().chain_update(&ipad).chain_update(msg).finalize();
    D::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// How a forged token is signed.
enum Sig<'a> {
    None,
    Hs256(&'a [u8]),
    Hs384(&'a [u8]),
    Hs512(&'a [u8]),
}

/// A JWT with exactly this header and these claims.
fn jwt(header: Value, claims: Value, sig: Sig) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mac = match sig {
        Sig::None => Vec::new(),
        Sig::Hs256(k) => hmac::<Sha256>(k, signing_input.as_bytes(), 64),
        Sig::Hs384(k) => hmac::<Sha384>(k, signing_input.as_bytes(), 128),
        Sig::Hs512(k) => hmac::<Sha512>(k, signing_input.as_bytes(), 128),
    };
    format!("{signing_input}.{}", b64(&mac))
}

/// The claims the server itself would issue to `admin` (user 1).
fn admin_claims() -> Value {
    json!({
        "sub": "1",
        "username": "admin",
        "roles": ["admin"],
        "iat": unix_now() - 5,
        "exp": unix_now() + 600,
        "jti": format!("forged-{}", uuid::Uuid::new_v4()),
        "iss": "switchboard",
    })
}

/// The admin claims with one claim replaced.
fn with(claim: &str, value: Value) -> Value {
    let mut c = admin_claims();
    c[claim] = value;
    c
}

/// The admin claims with one claim left out.
fn without(claim: &str) -> Value {
    let mut c = admin_claims();
    c.as_object_mut().unwrap().remove(claim);
    c
}

fn hs256_header() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

fn handshake_status(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// Presents `token` every way a client can; returns the statuses seen
/// (HTTP header, HTTP query, WS header, WS query, WS subprotocol).
async fn statuses_for(app: &TestApp, token: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let r = app
        .http
        .get(app.url("/api/auth/me"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    out.push(r.status().as_u16());
    if r.status() != 200 {
        let body: Value = r.json().await.expect("a JSON error body");
        assert!(body["code"].is_string() && body["message"].is_string());
    }
    let r = app
        .http
        .get(app.url("/api/auth/me"))
        .query(&[("authorization", token)])
        .send()
        .await
        .unwrap();
    out.push(r.status().as_u16());
    out.push(match ws_connect(&app.ws_url, Some(token)).await {
        Ok(_) => 101,
        Err(e) => handshake_status(e),
    });
    let url = format!(
        "{}?authorization={}",
        app.ws_url,
        token.replace('+', "%2B").replace('/', "%2F")
    );
    out.push(match ws_connect(&url, None).await {
        Ok(_) => 101,
        Err(e) => handshake_status(e),
    });
    let mut req = app.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(&format!("switchboard.v1, bearer.{token}")).unwrap(),
    );
    out.push(match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(e) => handshake_status(e),
    });
    out
}

#[tokio::test]
async fn forged_jwts_are_refused_with_401_on_http_and_on_the_websocket_handshake() {
    let app = spawn_with(|c| c.auth.jwt_secret = JWT_SECRET.into()).await;
    let secret = JWT_SECRET.as_bytes();

    // Control: a token minted here with the real secret and the server's own claims is
    // accepted everywhere, so every refusal below is about the one thing each case changes.
    let signed = |claims: Value| jwt(hs256_header(), claims, Sig::Hs256(secret));
    let genuine = signed(admin_claims());
    assert_eq!(
        statuses_for(&app, &genuine).await,
        [200, 200, 101, 101, 101]
    );

    let none_claims = admin_claims();
    let none_signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(none_claims.to_string().as_bytes())
    );
    let tampered = {
        // A genuine token whose payload is swapped for other claims, the old signature kept.
        let real = signed(with("roles", json!(["member"])));
        let sig = real.rsplit('.').next().unwrap().to_string();
        let claims = b64(with("roles", json!(["admin", "operator"]))
            .to_string()
            .as_bytes());
        format!(
            "{}.{claims}.{sig}",
            b64(hs256_header().to_string().as_bytes())
        )
    };
    // The admin claims under a header naming `alg`.
    let headed = |alg: Value, sig: Sig| jwt(json!({"alg": alg, "typ": "JWT"}), admin_claims(), sig);
    let other_secret = format!("{JWT_SECRET}\n");
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none, empty signature",
            headed(json!("none"), Sig::None),
        ),
        ("alg none, no signature part", none_signing_input.clone()),
        (
            "alg none, with an HS256 signature",
            format!(
                "{none_signing_input}.{}",
                b64(&hmac::<Sha256>(secret, none_signing_input.as_bytes(), 64))
            ),
        ),
        ("alg None", headed(json!("None"), Sig::None)),
        ("alg NONE", headed(json!("NONE"), Sig::None)),
        ("alg nOnE", headed(json!("nOnE"), Sig::None)),
        ("alg null", headed(Value::Null, Sig::Hs256(secret))),
        (
            "alg as an array",
            headed(json!(["HS256"]), Sig::Hs256(secret)),
        ),
        (
            "no alg at all",
            jwt(json!({"typ": "JWT"}), admin_claims(), Sig::Hs256(secret)),
        ),
        (
            "HS256, another secret",
            headed(json!("HS256"), Sig::Hs256(b"another-secret")),
        ),
        (
            "HS256, empty secret",
            headed(json!("HS256"), Sig::Hs256(b"")),
        ),
        (
            "HS256, secret plus a newline",
            headed(json!("HS256"), Sig::Hs256(other_secret.as_bytes())),
        ),
        // Algorithm confusion: the header names another algorithm, the MAC uses the real secret.
        (
            "RS256 header, HMAC-SHA256",
            headed(json!("RS256"), Sig::Hs256(secret)),
        ),
        (
            "ES256 header, HMAC-SHA256",
            headed(json!("ES256"), Sig::Hs256(secret)),
        ),
        (
            "PS256 header, HMAC-SHA256",
            headed(json!("PS256"), Sig::Hs256(secret)),
        ),
        (
            "EdDSA header, HMAC-SHA256",
            headed(json!("EdDSA"), Sig::Hs256(secret)),
        ),
        (
            "HS384 with the real secret",
            headed(json!("HS384"), Sig::Hs384(secret)),
        ),
        (
            "HS512 with the real secret",
            headed(json!("HS512"), Sig::Hs512(secret)),
        ),
        // Claims: every required one missing or wrong, with a valid HS256 signature.
        ("missing exp", signed(without("exp"))),
        ("exp as a string", signed(with("exp", json!("99999999999")))),
        ("exp null", signed(with("exp", Value::Null))),
        ("expired", signed(with("exp", json!(unix_now() - 30)))),
        ("wrong iss", signed(with("iss", json!("elsewhere")))),
        (
            "iss as a list",
            signed(with("iss", json!(["elsewhere", "switchboard"]))),
        ),
        ("missing iss", signed(without("iss"))),
        ("missing sub", signed(without("sub"))),
        ("missing iat", signed(without("iat"))),
        ("sub of no user", signed(with("sub", json!("999")))),
        ("sub with SQL", signed(with("sub", json!("1 OR 1=1")))),
        ("payload swapped under a genuine signature", tampered),
        ("signature of another token", {
            let other = signed(admin_claims());
            let mut parts: Vec<&str> = genuine.split('.').collect();
            parts[2] = other.rsplit('.').next().unwrap();
            parts.join(".")
        }),
        ("four segments", format!("{genuine}.x")),
        ("not base64", "!!!.???.***".into()),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        let got = statuses_for(&app, &token).await;
        // An empty token is no credential at all; everything else is a refused credential.
        assert!(
            got.iter().all(|s| *s == 401),
            "{what}: expected 401 everywhere (HTTP header, HTTP query, WS header, WS query, WS \
             subprotocol), got {got:?}"
        );
    }
    assert_eq!(
        app.state.ws.registry().counts().0,
        0,
        "no forged socket got in"
    );
}

// ---------------------------------------------------------------------------------------------
// Injection strings
// ---------------------------------------------------------------------------------------------

const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "' OR 1=1 --",
    "admin'--",
    "admin' #",
    "\" OR \"\"=\"",
    "1; DROP TABLE users; --",
    "1' UNION SELECT password_hash, 1, 1 FROM users --",
    "%' OR username LIKE '%",
    "') OR ('a'='a",
    "1)) OR 1=1 /*",
    "\\'; SELECT sqlite_version(); --",
    "'||(SELECT group_concat(key_hash) FROM api_keys)||'",
    "$where: '1 == 1'",
    "{\"$gt\": \"\"}",
    "\u{0}' OR '1'='1",
    "１' ＯＲ '１'='１",
];

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

#[tokio::test]
async fn injection_strings_in_login_and_user_routes_never_get_in_nor_break_anything() {
    let app = spawn_app().await;
    for s in INJECTIONS {
        for body in [
            json!({"username": s, "password": "whatever"}),
            json!({"username": s, "password": s}),
        ] {
            let (status, v) = app.post("/api/auth/login", "", body.clone()).await;
            assert!(status == 401 || status == 400, "{body}: {status}");
            assert!(v.get("token").is_none(), "{body}");
        }
        // A new user named like an injection is refused as a bad username, not a 500.
        let (status, _) = app
            .post(
                "/api/users",
                &app.admin_token,
                json!({"username": s, "password": "password-123", "roles": ["member"]}),
            )
            .await;
        assert!(
            status == 400 || status == 422,
            "create user {s:?}: {status}"
        );
    }
    // The admin's own password with an injection tail is just a wrong password.
    let (status, _) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username": "admin", "password": format!("{ADMIN_PASSWORD}' OR '1'='1")}),
        )
        .await;
    assert_eq!(status, 401);
    // Path parameters.
    for raw in ["1%20OR%201%3D1", "1'--", "1;DROP%20TABLE%20users"] {
        let r = app
            .http
            .patch(app.url(&format!("/api/users/{raw}")))
            .bearer_auth(&app.admin_token)
            .json(&json!({"enabled": false}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error(),
            "/api/users/{raw}: {}",
            r.status()
        );
    }
    // Everything is as it was: one user, and the admin still logs in.
    let (s, users) = app.get("/api/users", &app.admin_token).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin"]);
    assert_eq!(users[0]["enabled"], true);
    login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
}

// ---------------------------------------------------------------------------------------------
// Static files: no path leaves the panel folder.
// ---------------------------------------------------------------------------------------------

/// One raw HTTP/1.1 request (no client-side path normalisation); returns status and body.
async fn raw_get(host: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(host).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("an answer within 5s")
        .ok();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn traversal_paths(secret_name: &str) -> Vec<String> {
    let n = secret_name;
    vec![
        format!("/../{n}"),
        format!("/../../{n}"),
        format!("/%2e%2e/{n}"),
        format!("/%2E%2E/{n}"),
        format!("/..%2f{n}"),
        format!("/..%2F{n}"),
        format!("/%2e%2e%2f{n}"),
        format!("/..%252f{n}"),
        format!("/.%2e/{n}"),
        format!("/js/../../{n}"),
        format!("/js/../../../{n}"),
        format!("/js/%2e%2e/%2e%2e/{n}"),
        format!("/js/..%2f..%2f{n}"),
        format!("/css/..%5c..%5c{n}"),
        format!("/js/..\\..\\{n}"),
        format!("/..\\{n}"),
        format!("/....//{n}"),
        format!("/..;/{n}"),
        format!("/js/./../../{n}"),
        format!("/%c0%ae%c0%ae/{n}"),
        format!("/js/%00/../../{n}"),
        format!("//{n}"),
        "/../server/src/main.rs".into(),
        "/js/../../server/src/main.rs".into(),
        "/../Cargo.toml".into(),
        "/%2e%2e/Cargo.toml".into(),
        "/..%2fCargo.toml".into(),
        "/js/../../Cargo.toml".into(),
        "//etc/passwd".into(),
        "/%2fetc%2fpasswd".into(),
        "/../../../../../../../../etc/passwd".into(),
        "/js/../../../../../../../../etc/passwd".into(),
        "/web/index.html".into(),
        "/tests/".into(),
        "/js/..".into(),
    ]
}

fn assert_no_file_leaked(path: &str, status: u16, body: &str, markers: &[&str]) {
    assert!(
        matches!(status, 400 | 401 | 403 | 404),
        "{path}: status {status}"
    );
    for m in markers {
        assert!(!body.contains(m), "{path}: response contains {m:?}");
    }
}

#[tokio::test]
async fn path_traversal_on_the_embedded_panel_never_serves_a_file() {
    let app = spawn_app().await;
    let host = host_of(&app);
    // Control: the panel itself is served.
    let (s, body) = raw_get(&host, "/", None).await;
    assert_eq!(s, 200);
    assert!(body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"));
    let (s, _) = raw_get(&host, "/js/socket.js", None).await;
    assert_eq!(s, 200);
    let markers = [
        "[workspace]",
        "[package]",
        "fn main",
        "root:x:0:0",
        "#[tokio::main]",
    ];
    for path in traversal_paths("Cargo.toml") {
        for token in [None, Some(app.admin_token.as_str())] {
            let (status, body) = raw_get(&host, &path, token).await;
            assert_no_file_leaked(&path, status, &body, &markers);
            if token.is_some() {
                assert!(matches!(status, 400 | 404), "{path} with a token: {status}");
            }
        }
    }
}

#[tokio::test]
async fn path_traversal_on_a_live_panel_folder_never_leaves_it() {
    // `web.dir` serves from disk: the folder sits next to a secret file.
    let root = tempfile::tempdir().unwrap();
    let www = root.path().join("www");
    std::fs::create_dir_all(www.join("js")).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><title>panel</title>",
    )
    .unwrap();
    std::fs::write(www.join("js/app.js"), "export const ok = 1;").unwrap();
    std::fs::write(root.path().join("secret.txt"), "TOP-SECRET-MARKER-7f3a").unwrap();
    let www_str = www.to_str().unwrap().to_string();
    let app = spawn_with(move |c| c.web.dir = www_str).await;
    let host = host_of(&app);
    let (s, body) = raw_get(&host, "/js/app.js", None).await;
    assert_eq!((s, body.as_str()), (200, "export const ok = 1;"));
    let mut paths = traversal_paths("secret.txt");
    // Absolute paths, in every spelling.
    let abs = root.path().join("secret.txt");
    let abs = abs.to_str().unwrap();
    paths.push(abs.to_string());
    paths.push(format!("/{abs}"));
    paths.push(format!("/js/../..{abs}"));
    paths.push(abs.replace('/', "%2f"));
    for path in paths {
        for token in [None, Some(app.admin_token.as_str())] {
            let (status, body) = raw_get(&host, &path, token).await;
            assert_no_file_leaked(&path, status, &body, &["TOP-SECRET-MARKER", "root:x:0:0"]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets never in logs: the real binary, debug logging, every token transport.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_passwords_never_reach_the_log_even_at_debug_level() {
    const ENV_ADMIN_PASSWORD: &str = "Adm1n-From-Env-q8Zr-7731";
    const WRONG_PASSWORD: &str = "Wr0ng-Guess-x7Kd-5512";
    const USER_PASSWORD: &str = "Us3r-Initial-m4Nt-9040";
    const CHANGED_PASSWORD: &str = "Us3r-Changed-p2Lw-3318";

    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerCommand::new(dir.path())
        .env("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ENV_ADMIN_PASSWORD)
        .env("RUST_LOG", "debug")
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
        assert_eq!(recv(ws).await["event"], "connected");
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
    // A refused token (tampered signature) on every transport.
    let bad = format!("{}x", &token[..token.len() - 1]);
    let r = http
        .get(format!("{base}/api/auth/me"))
        .query(&[("authorization", &bad)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        ws_connect(&format!("{ws_url}?authorization={bad}"), None)
            .await
            .is_err()
    );
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

    let jwt_secret = std::fs::read_to_string(dir.path().join("jwt_secret"))
        .expect("the generated JWT secret is kept in the data dir");
    server.terminate(Duration::from_secs(10)).await;
    let log = server.log();
    assert!(
        log.contains("/api/auth/me") && log.contains("/socket"),
        "debug logging was on (request paths are logged): {} bytes of log",
        log.len()
    );
    let signature = token.rsplit('.').next().unwrap();
    let secrets: [(&str, &str); 9] = [
        ("the admin's token", &token),
        ("the admin token's signature", signature),
        ("a refused token", &bad),
        ("carol's token", &carol_token),
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
        if let Some(at) = log.find(secret) {
            let line_start = log[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let line: String = log[line_start..]
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect();
            leaks.push(format!("{what} is in the log: {line}"));
        }
    }
    let jwt_secret = jwt_secret.trim();
    if !jwt_secret.is_empty() && log.contains(jwt_secret) {
        leaks.push("the JWT secret is in the log".into());
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Secrets never in responses, and hashed at rest.
// ---------------------------------------------------------------------------------------------

fn assert_no_secret(what: &str, body: &str, secrets: &[&str]) {
    let lower = body.to_lowercase();
    for needle in [
        "$argon2",
        "password",
        "key_hash",
        "keyhash",
        "passwordhash",
        "password_hash",
    ] {
        assert!(
            !lower.contains(needle),
            "{what} mentions {needle:?}: {body}"
        );
    }
    for s in secrets {
        assert!(!body.contains(s), "{what} contains a secret: {body}");
    }
}

#[tokio::test]
async fn no_secret_or_hash_in_any_api_response() {
    let app = spawn_with(|c| c.auth.except_login.push("/socket".into())).await;
    let jwt_secret = std::fs::read_to_string(app.dir.path().join("jwt_secret")).unwrap();
    let jwt_secret = jwt_secret.trim().to_string();
    assert!(jwt_secret.len() >= 32, "a generated secret of real length");
    let user_pw = "dana-password-Vb81";
    let new_pw = "dana-password-changed-Kq40";
    let secrets = [jwt_secret.as_str(), ADMIN_PASSWORD, user_pw, new_pw];
    let t = app.admin_token.clone();

    let r = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_no_secret("login", &r.text().await.unwrap(), &secrets);

    let r = app
        .http
        .post(app.url("/api/users"))
        .bearer_auth(&t)
        .json(&json!({"username": "dana", "password": user_pw, "roles": ["operator"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created = r.text().await.unwrap();
    assert_no_secret("user create", &created, &secrets);
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"].clone();

    let r = app
        .http
        .patch(app.url(&format!("/api/users/{id}")))
        .bearer_auth(&t)
        .json(&json!({"password": new_pw, "roles": ["member"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_no_secret("user patch", &r.text().await.unwrap(), &secrets);

    let r = app
        .http
        .post(app.url("/api/apikeys"))
        .bearer_auth(&t)
        .json(&json!({"name": "svc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key_body = r.text().await.unwrap();
    assert_no_secret("api key create", &key_body, &secrets);
    let key = serde_json::from_str::<Value>(&key_body).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let key_sha = hex::encode(Sha256::digest(key.as_bytes()));

    let mut with_key = secrets.to_vec();
    with_key.push(&key);
    with_key.push(&key_sha);
    for path in [
        "/api/users",
        "/api/apikeys",
        "/api/auth/me",
        "/api/websocket/online",
        "/api/websocket/stats",
        "/api/websocket/tags",
        "/api/site/config",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        let r = app
            .http
            .get(app.url(path))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_no_secret(path, &r.text().await.unwrap(), &with_key);
    }
    // The spec names `password` fields, but holds no secret values.
    let spec = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for s in &with_key {
        assert!(!spec.contains(s), "the OpenAPI spec holds a secret");
    }
    assert!(!spec.contains("$argon2"));

    // Over the socket: the greeting and the `login` reply.
    let mut ws = ws_connect(&app.ws_url, None).await.unwrap();
    let hello = recv(&mut ws).await;
    assert_no_secret("greeting", &hello.to_string(), &with_key);
    let v = request(
        &mut ws,
        "login",
        json!({"username": "dana", "password": new_pw}),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_no_secret("ws login", &v.to_string(), &with_key);
    let v = request(&mut ws, "ping", Value::Null).await;
    assert_no_secret("ws ping", &v.to_string(), &with_key);
    let _ = ws.close(None).await;
}

/// Every byte SQLite may hold the data in: the database, its WAL and shared memory.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("switchboard.db") {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn api_keys_and_passwords_are_hashed_at_rest() {
    let app = spawn_app().await;
    let user_pw = "erin-password-Hq27";
    app.post(
        "/api/users",
        &app.admin_token,
        json!({"username": "erin", "password": user_pw, "roles": ["member"]}),
    )
    .await;
    let (s, created) = app
        .post(
            "/api/apikeys",
            &app.admin_token,
            json!({"name": "ledger-svc-Qx"}),
        )
        .await;
    assert_eq!(s, 201);
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.len() >= 32, "a key of real length: {}", key.len());
    // The key works…
    let r = app
        .http
        .get(app.url("/api/websocket/stats"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // …and the list shows only a prefix.
    let (_, list) = app.get("/api/apikeys", &app.admin_token).await;
    assert!(!list.to_string().contains(&key));

    let bytes = database_bytes(app.dir.path());
    assert!(
        contains(&bytes, b"ledger-svc-Qx"),
        "we are looking at the right database"
    );
    assert!(
        !contains(&bytes, key.as_bytes()),
        "the plain API key is in the database"
    );
    // The secret part after the shown prefix is nowhere either.
    let prefix = list[0]["prefix"].as_str().unwrap();
    assert!(key.starts_with(prefix) && prefix.len() < key.len());
    assert!(!contains(&bytes, &key.as_bytes()[prefix.len()..]));
    assert!(
        !contains(&bytes, user_pw.as_bytes()),
        "a plain password is in the database"
    );
    assert!(
        !contains(&bytes, ADMIN_PASSWORD.as_bytes()),
        "the admin password is in the database"
    );
    assert!(
        contains(&bytes, b"$argon2id$"),
        "passwords are argon2id hashes"
    );

    // The generated JWT secret is readable by the owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.dir.path().join("jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "jwt_secret mode {mode:o}");
    }
}

// ---------------------------------------------------------------------------------------------
// Brute force
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn five_failed_logins_a_minute_lock_that_username_over_http_and_websocket() {
    let app = spawn_with(|c| c.auth.except_login.push("/socket".into())).await;
    app.user("frank", &["member"]).await;
    app.user("gina", &["member"]).await;
    let fail = |user: &'static str| json!({"username": user, "password": "not-it-at-all"});
    for _ in 0..5 {
        let (s, b) = app.post("/api/auth/login", "", fail("frank")).await;
        assert_eq!((s, b["code"].as_str()), (401, Some("invalid_credentials")));
    }
    // The sixth try is refused even with the right password, and says why.
    let (s, b) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username": "frank", "password": "password-123"}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (429, Some("rate_limited")));
    // Case is no way around it.
    let (s, _) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username": "FRANK", "password": "password-123"}),
        )
        .await;
    assert!(s == 429 || s == 401, "FRANK: {s}");
    // The socket's `login` shares the same limit.
    let mut ws = ws_connect(&app.ws_url, None).await.unwrap();
    recv(&mut ws).await;
    let v = request(
        &mut ws,
        "login",
        json!({"username": "frank", "password": "password-123"}),
    )
    .await;
    assert_eq!(v["code"], 429, "{v}");
    // Failures over the socket count toward HTTP, too.
    for _ in 0..5 {
        let v = request(&mut ws, "login", fail("gina")).await;
        assert_eq!(v["code"], 401);
    }
    let (s, _) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username": "gina", "password": "password-123"}),
        )
        .await;
    assert_eq!(s, 429);
    // Another username from the same address is unaffected, and so is an existing token.
    let (s, _) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app.get("/api/auth/me", &app.admin_token).await;
    assert_eq!(s, 200);
    // Unknown users are limited the same way (no user enumeration through the limiter).
    for _ in 0..5 {
        let (s, _) = app.post("/api/auth/login", "", fail("nobody-here")).await;
        assert_eq!(s, 401);
    }
    let (s, _) = app.post("/api/auth/login", "", fail("nobody-here")).await;
    assert_eq!(s, 429);
}

// ---------------------------------------------------------------------------------------------
// Origin and CORS
// ---------------------------------------------------------------------------------------------

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
async fn the_http_api_never_grants_a_foreign_origin_cors_access() {
    let app = spawn_with(|c| {
        c.websocket.allowed_origins = vec!["https://admin.example".into()];
    })
    .await;
    for origin in ["https://evil.example", "null"] {
        let r = app
            .http
            .get(app.url("/api/auth/me"))
            .bearer_auth(&app.admin_token)
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        let allow = r
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            allow.is_none(),
            "a foreign origin got Access-Control-Allow-Origin: {allow:?}"
        );
        let r = app
            .http
            .request(reqwest::Method::OPTIONS, app.url("/api/users"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert!(
            r.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
    }
    // A cross-site form post with the browser's cookie-less credentials gets nowhere: tokens
    // are never taken from cookies.
    let r = app
        .http
        .post(app.url("/api/users"))
        .header("Origin", "https://evil.example")
        .header(
            "Cookie",
            format!(
                "token={}; authorization={}",
                app.admin_token, app.admin_token
            ),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("username=mallory&password=password-123&roles=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
