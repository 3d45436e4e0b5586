//! Bearer tokens: the ones the server issues work on every transport and expire; forged ones —
//! unsigned, signed with another key or algorithm, with missing or wrong claims, tampered with
//! — are refused with 401 on every transport, HTTP and the WebSocket handshake alike.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};
use switchboard_sdk::protocol::unix_now;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const JWT_SECRET: &str = "the-real-jwt-secret-for-these-tests-0123456789";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// HMAC over any of the SHA-2 hashes, so tokens can be signed exactly as a forger would.
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
    // The refusal names the reason: a signature by another key is an invalid token.
    let other_key = jwt(
        hs256_header(),
        admin_claims(),
        Sig::Hs256(b"not-the-secret"),
    );
    let (s, b) = app.get("/api/auth/me", &other_key).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")));
}

#[tokio::test]
async fn an_issued_token_is_refused_as_expired_once_its_lifetime_is_over() {
    let app = spawn_with(|c| c.auth.token_ttl = Duration::from_secs(1)).await;
    let short = login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, b) = app.get("/api/auth/me", &short).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("token_expired")));
}

#[tokio::test]
async fn me_logout_and_revoked_tokens() {
    let app = spawn_app().await;
    let (s, me) = app.get("/api/auth/me", &app.admin_token).await;
    assert_eq!(s, 200);
    assert_eq!(me["username"], "admin");
    let (s, _) = app
        .post("/api/auth/logout", &app.admin_token, json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, b) = app.get("/api/auth/me", &app.admin_token).await;
    assert_eq!(s, 401);
    assert_eq!(b["code"], "token_revoked");
}

#[tokio::test]
async fn multi_login_false_revokes_older_tokens() {
    let app = spawn_with(|c| c.auth.multi_login = false).await;
    let first = login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get("/api/auth/me", &first).await.0, 200);
    let _second = login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get("/api/auth/me", &first).await.0, 401);
}
