//! Login, tokens, the exemption list, roles, users and API keys over real HTTP.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard::auth::token::{Claims, JwtKeys};
use switchboard_sdk::protocol::unix_now;

#[tokio::test]
async fn login_failures_look_the_same_for_unknown_users_and_wrong_passwords() {
    let app = spawn_app().await;
    let (s1, b1) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username":"admin","password":"wrong-one"}),
        )
        .await;
    let (s2, b2) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username":"ghost","password":"wrong-one"}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b1["code"], "invalid_credentials");
    let r = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"username":"admin","password":ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user"]["username"], "admin");
    assert_eq!(v["user"]["roles"], json!(["admin"]));
    assert!(v["expiresAt"].as_i64().unwrap() > unix_now());
    assert!(v.get("password_hash").is_none());
}

#[tokio::test]
async fn five_failures_a_minute_then_429_for_that_username_and_ip() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let (s, _) = app
            .post(
                "/api/auth/login",
                "",
                json!({"username":"admin","password":"nope-nope"}),
            )
            .await;
        assert_eq!(s, 401);
    }
    let (s, b) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username":"admin","password":ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(s, 429);
    assert_eq!(b["code"], "rate_limited");
    // Another username from the same IP is unaffected.
    app.user("bob", &["member"]).await;
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
async fn expired_and_forged_tokens_are_refused() {
    let app = spawn_with(|c| c.auth.token_ttl = Duration::from_secs(1)).await;
    let short = login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, b) = app.get("/api/auth/me", &short).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("token_expired")));

    let forged = JwtKeys::new(b"not-the-secret", "switchboard").sign(&Claims {
        sub: "1".into(),
        username: "admin".into(),
        roles: vec!["admin".into()],
        iat: unix_now(),
        exp: unix_now() + 600,
        jti: "x".into(),
        iss: "switchboard".into(),
        iatms: 0,
    });
    let (s, b) = app.get("/api/auth/me", &forged).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")));
    let (s, _) = app.get("/api/auth/me", "garbage").await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn exemption_list_exact_wildcard_and_addon_entries() {
    let app = spawn_with(|c| {
        c.auth.except_login.push("/api/users".into());
    })
    .await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/site/config",
        "/api/openapi.json",
        "/swagger",
        "/swagger/",
        "/api/addons/hgexample/ping",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} is exempt");
    }
    // Exact entries do not cover sub-paths.
    let r = app.http.get(app.url("/api/users/1")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Exempt path, no identity: the route's own role check still refuses.
    let r = app.http.get(app.url("/api/users")).send().await.unwrap();
    assert_eq!(r.status(), 401, "security scheme needs a credential");
    let r = app
        .http
        .get(app.url("/api/addons/hgexample/pushes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn roles_are_enforced_per_route() {
    let app = spawn_app().await;
    let (_, member) = app.user("mem", &["member"]).await;
    let (_, operator) = app.user("op", &["operator"]).await;
    let (s, b) = app.get("/api/users", &member).await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(app.get("/api/users", &operator).await.0, 403);
    assert_eq!(app.get("/api/websocket/stats", &operator).await.0, 200);
    assert_eq!(app.get("/api/websocket/stats", &member).await.0, 403);
    assert_eq!(app.get("/api/auth/me", &member).await.0, 200);
}

#[tokio::test]
async fn users_api_create_patch_disable_delete() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let (s, u) = app
        .post(
            "/api/users",
            t,
            json!({"username":"carol","password":"password-123","roles":["operator"]}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(u["roles"], json!(["operator"]));
    assert_eq!(u["enabled"], true);
    assert!(u.get("password").is_none() && u.get("passwordHash").is_none());
    let id = u["id"].as_i64().unwrap();
    let (s, b) = app
        .post(
            "/api/users",
            t,
            json!({"username":"carol","password":"password-123","roles":["member"]}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("conflict")));
    let (s, b) = app
        .post(
            "/api/users",
            t,
            json!({"username":"dave","password":"short","roles":["member"]}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().contains("password"));
    let (s, b) = app
        .post(
            "/api/users",
            t,
            json!({"username":"dave","password":"password-123","roles":["king"]}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().contains("roles"));

    let carol = login(&app.http, &app.base, "carol", "password-123").await;
    let r = app
        .http
        .patch(app.url(&format!("/api/users/{id}")))
        .bearer_auth(t)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get("/api/auth/me", &carol).await.0,
        401,
        "disabling invalidates tokens"
    );
    let (s, _) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username":"carol","password":"password-123"}),
        )
        .await;
    assert_eq!(s, 401);
    let r = app
        .http
        .delete(app.url(&format!("/api/users/{id}")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .http
        .delete(app.url(&format!("/api/users/{id}")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn api_keys_act_as_operator_and_are_stored_hashed() {
    let app = spawn_app().await;
    let (s, k) = app
        .post("/api/apikeys", &app.admin_token, json!({"name":"billing"}))
        .await;
    assert_eq!(s, 201);
    let key = k["key"].as_str().unwrap().to_string();
    let (_, list) = app.get("/api/apikeys", &app.admin_token).await;
    assert!(!list.to_string().contains(&key), "the key is never listed");
    let r = app
        .http
        .get(app.url("/api/websocket/stats"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(app.url("/api/users"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "operator, not admin");
    let r = app
        .http
        .get(app.url("/api/websocket/stats"))
        .header("X-API-Key", "sbk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // At rest: only the SHA-256 is stored.
    let db = std::fs::read(app.dir.path().join("switchboard.db")).unwrap_or_default();
    let wal = std::fs::read(app.dir.path().join("switchboard.db-wal")).unwrap_or_default();
    let hay = [db, wal].concat();
    assert!(
        !hay.windows(key.len()).any(|w| w == key.as_bytes()),
        "plain key not in the database"
    );
}

#[tokio::test]
async fn errors_are_json_everywhere() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_body");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("body: not valid JSON"),
        "{v}"
    );
    let r = app
        .http
        .get(app.url("/api/no/such/route"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["code"].is_string() && v["message"].is_string());
    let r = app
        .http
        .delete(app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let v: Value = r.json().await.unwrap();
    assert!(v["code"].is_string());
}

#[tokio::test]
async fn multi_login_false_revokes_older_tokens() {
    let app = spawn_with(|c| c.auth.multi_login = false).await;
    let first = login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get("/api/auth/me", &first).await.0, 200);
    let _second = login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get("/api/auth/me", &first).await.0, 401);
}

#[tokio::test]
async fn tokens_in_query_strings_work_and_jwt_secret_persists() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url(&format!("/api/auth/me?authorization={}", app.admin_token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(app.dir.path().join("jwt_secret").exists());
}
