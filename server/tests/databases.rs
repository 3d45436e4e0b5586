//! The auth and users flow against PostgreSQL and MariaDB/MySQL.
//!
//! Set SWITCHBOARD_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) and
//! SWITCHBOARD_TEST_MYSQL_URL (e.g. mysql://root@127.0.0.1:3306/test); unset, each test
//! reports itself skipped. `.ci/run` always sets both.

mod common;

use common::*;
use sea_orm::ConnectionTrait;
use serde_json::json;

const TABLES: &[&str] = &[
    "users",
    "api_keys",
    "revoked_tokens",
    "audit_log",
    "stream_positions",
    "stream_entries",
    "stream_history_runs",
    "seaql_migrations",
    "hgexample_push_log",
    "switchboard_migrations_hgexample",
];

async fn fresh(url: &str) {
    let db = switchboard::db::connect(url)
        .await
        .expect("database reachable");
    for t in TABLES {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t}"))
            .await
            .expect("drop table");
    }
}

async fn auth_flow(url: String) {
    fresh(&url).await;
    let app = spawn_with(|c| c.database.url = url.clone()).await;
    let (s, b) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username": "admin", "password": "wrong-pass"}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_credentials")));
    let (uid, tok) = app.user("dbuser", &["operator"]).await;
    assert_eq!(app.get("/api/websocket/stats", &tok).await.0, 200);
    let (s, _) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": "dbuser", "password": "password-123", "roles": ["member"]}),
        )
        .await;
    assert_eq!(s, 409, "unique username enforced by the database");
    let (_, k) = app
        .post("/api/apikeys", &app.admin_token, json!({"name": "dbkey"}))
        .await;
    let r = app
        .http
        .get(app.url("/api/websocket/stats"))
        .header("X-API-Key", k["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .patch(app.url(&format!("/api/users/{uid}")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"password": "another-pass-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get("/api/auth/me", &tok).await.0,
        401,
        "password change revokes tokens"
    );
    let tok2 = login(&app.http, &app.base, "dbuser", "another-pass-1").await;
    let (s, _) = app.post("/api/auth/logout", &tok2, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        app.get("/api/auth/me", &tok2).await.0,
        401,
        "revocation stored"
    );
    let (s, _) = app
        .post(
            "/api/addons/hgexample/push",
            &app.admin_token,
            json!({"userId": uid}),
        )
        .await;
    assert_eq!(s, 200, "addon table migrated");
    app.shutdown.cancel();
    let _ = app.handle.await;
}

#[tokio::test]
async fn postgres_auth_and_users() {
    if let Some(url) = test_postgres_url() {
        auth_flow(url).await
    }
}

#[tokio::test]
async fn mysql_auth_and_users() {
    if let Some(url) = test_mysql_url() {
        auth_flow(url).await
    }
}
