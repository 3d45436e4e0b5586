//! The audit log over real HTTP: sends, kicks, tag changes, logins and user and key changes
//! are stored with who, what, on whom, the result, the count and the IP; `GET /api/audit` is
//! admin-only, filters and pages; old rows are pruned. The same scenario runs on PostgreSQL and
//! MariaDB when SWITCHBOARD_TEST_POSTGRES_URL / SWITCHBOARD_TEST_MYSQL_URL are set.

mod common;

use std::time::Duration;

use common::*;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

/// Polls `GET /api/audit?{query}` until its list satisfies `done` and `total` agrees with it
/// (rows are written by a background task, a moment after the request that caused them).
async fn audit_until(app: &TestApp, query: &str, done: impl Fn(&[Value]) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, page) = app
            .get(&format!("/api/audit?{query}"), &app.admin_token)
            .await;
        assert_eq!(s, 200, "{page}");
        let list = page["list"].as_array().unwrap();
        if done(list) && page["total"].as_u64() >= Some(list.len() as u64) {
            return page;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("audit never matched for ?{query}: {page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find<'a>(list: &'a [Value], action: &str, target: &str) -> Option<&'a Value> {
    list.iter()
        .find(|r| r["action"] == action && r["target"] == target)
}

/// Sends, a kick, a tag change, a failed and a good login, a key's send, user changes.
async fn records_every_kind_of_action(app: &TestApp) {
    let (uid, bob) = app.user("bob", &["member"]).await;
    let (mut ws, hello) = app.ws(&bob).await;
    let client = hello["id"].as_str().unwrap().to_string();

    let (s, _) = app
        .post(
            "/api/websocket/send/toUser",
            &app.admin_token,
            json!({"userId": uid, "event": "hello", "data": 1}),
        )
        .await;
    assert_eq!(s, 200);
    recv(&mut ws).await;
    let (s, _) = app
        .post(
            "/api/websocket/tags/join",
            &app.admin_token,
            json!({"clientId": client, "tag": "room"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .post(
            "/api/websocket/send/toClient",
            &app.admin_token,
            json!({"clientId": "gone.1", "event": "x"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = app
        .post(
            "/api/websocket/kick",
            &app.admin_token,
            json!({"userId": uid, "reason": "bye"}),
        )
        .await;
    assert_eq!((s, v["closed"].as_i64()), (200, Some(1)));
    let (s, _) = app
        .post(
            "/api/auth/login",
            "",
            json!({"username": "bob", "password": "not-his-password"}),
        )
        .await;
    assert_eq!(s, 401);
    let (_, key) = app
        .post("/api/apikeys", &app.admin_token, json!({"name": "billing"}))
        .await;
    let r = app
        .http
        .post(app.url("/api/websocket/send/toAll"))
        .header("X-API-Key", key["key"].as_str().unwrap())
        .json(&json!({"event": "from-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .patch(app.url(&format!("/api/users/{uid}")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let page = audit_until(app, "pageSize=200", |l| {
        l.iter().any(|r| r["action"] == "user.update")
    })
    .await;
    let list = page["list"].as_array().unwrap();
    let send = find(list, "send", &format!("user:{uid}")).expect("the send");
    assert_eq!(send["actor"], "admin");
    assert_eq!(send["result"], "ok");
    assert_eq!(send["count"], 1);
    assert_eq!(send["ip"], "127.0.0.1");
    assert_eq!(send["detail"], "hello");
    assert!(send["at"].as_i64().unwrap() > 1_700_000_000);

    let miss = find(list, "send", "client:gone.1").expect("the refused send");
    assert_eq!(
        (&miss["result"], &miss["count"]),
        (&json!("not_found"), &json!(0))
    );

    let join = find(list, "tag.join", &format!("client:{client}")).expect("the tag change");
    assert_eq!(
        (&join["detail"], &join["count"]),
        (&json!("tag:room"), &json!(1))
    );

    let kick = find(list, "kick", &format!("user:{uid}")).expect("the kick");
    assert_eq!(kick["count"], 1);
    assert_eq!(kick["actor"], "admin");
    assert_eq!(kick["detail"], "bye");

    let failed = list
        .iter()
        .find(|r| r["action"] == "login" && r["actor"] == "bob" && r["result"] != "ok")
        .expect("the failed login");
    assert_eq!(failed["result"], "invalid_credentials");
    assert_eq!(failed["detail"], "wrong password");
    assert_eq!(failed["ip"], "127.0.0.1");
    assert!(
        list.iter()
            .any(|r| r["action"] == "login" && r["actor"] == "bob" && r["result"] == "ok"),
        "the good login of the test helper"
    );

    let by_key = find(list, "send", "all").expect("the key's send");
    assert_eq!(by_key["actor"], "apikey:billing");
    assert_eq!(by_key["detail"], "from-key");
    assert!(find(list, "apikey.create", &format!("apikey:{}", key["id"])).is_some());
    assert!(find(list, "user.create", &format!("user:{uid}")).is_some());
    let update = find(list, "user.update", &format!("user:{uid}")).unwrap();
    assert!(
        update["detail"].as_str().unwrap().contains("disabled"),
        "{update}"
    );
    // Newest first.
    let ids: Vec<i64> = list.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[tokio::test]
async fn sends_kicks_tags_logins_and_changes_are_stored() {
    let app = spawn_app().await;
    records_every_kind_of_action(&app).await;
}

#[tokio::test]
async fn only_admins_read_the_audit_log() {
    let app = spawn_app().await;
    let (_, op) = app.user("olga", &["operator"]).await;
    let (_, member) = app.user("mia", &["member"]).await;
    for token in [&op, &member] {
        let (s, v) = app.get("/api/audit", token).await;
        assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    }
    let (_, key) = app
        .post("/api/apikeys", &app.admin_token, json!({"name": "svc"}))
        .await;
    let r = app
        .http
        .get(app.url("/api/audit"))
        .header("X-API-Key", key["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "an API key acts as an operator");
    let r = app.http.get(app.url("/api/audit")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let spec: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let get = &spec["paths"]["/api/audit"]["get"];
    assert_eq!(get["tags"], json!(["Audit"]), "{get}");
    let params: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        ["page", "pageSize", "actor", "action", "from", "to"]
    );
}

#[tokio::test]
async fn filters_and_paging() {
    let app = spawn_app().await;
    let (_, op) = app.user("olga", &["operator"]).await;
    for i in 0..5 {
        let token = if i % 2 == 0 { &app.admin_token } else { &op };
        let (s, _) = app
            .post(
                "/api/websocket/send/toAll",
                token,
                json!({"event": format!("e{i}")}),
            )
            .await;
        assert_eq!(s, 200);
    }
    let all = audit_until(&app, "action=send&pageSize=200", |l| l.len() == 5).await;
    assert_eq!(all["total"], 5);
    let events: Vec<&str> = all["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["e4", "e3", "e2", "e1", "e0"]);

    let mut seen = Vec::new();
    for p in 1..=3 {
        let (s, v) = app
            .get(
                &format!("/api/audit?action=send&pageSize=2&page={p}"),
                &app.admin_token,
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            (v["page"].as_u64(), v["pageSize"].as_u64()),
            (Some(p), Some(2))
        );
        assert_eq!(v["total"], 5);
        for r in v["list"].as_array().unwrap() {
            seen.push(r["detail"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ["e4", "e3", "e2", "e1", "e0"]);

    let (_, v) = app
        .get("/api/audit?action=send&actor=olga", &app.admin_token)
        .await;
    assert_eq!(v["total"], 2, "{v}");
    assert!(
        v["list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor"] == "olga")
    );
    let (_, v) = app
        .get("/api/audit?action=login&actor=olga", &app.admin_token)
        .await;
    assert_eq!(v["total"], 1, "the helper's login: {v}");

    let at = all["list"][0]["at"].as_i64().unwrap();
    let (_, v) = app
        .get(
            &format!("/api/audit?action=send&from={}", at + 100),
            &app.admin_token,
        )
        .await;
    assert_eq!(v["total"], 0);
    let (_, v) = app
        .get(
            &format!("/api/audit?action=send&from={}&to={}", at - 100, at + 100),
            &app.admin_token,
        )
        .await;
    assert_eq!(v["total"], 5);
    let (_, v) = app
        .get(
            &format!("/api/audit?action=send&to={}", at - 100),
            &app.admin_token,
        )
        .await;
    assert_eq!(v["total"], 0);

    for (query, field) in [
        ("pageSize=0", "pageSize"),
        ("pageSize=201", "pageSize"),
        ("page=0", "page"),
        ("from=10&to=5", "from"),
    ] {
        let (s, v) = app
            .get(&format!("/api/audit?{query}"), &app.admin_token)
            .await;
        assert_eq!(s, 400, "{query}: {v}");
        assert!(
            v["message"].as_str().unwrap().starts_with(field),
            "{query}: {v}"
        );
    }
    let (s, v) = app.get("/api/audit?from=yesterday", &app.admin_token).await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn rows_older_than_the_retention_are_pruned() {
    let app = spawn_with(|c| c.audit.retention = Duration::from_secs(2)).await;
    let (s, _) = app
        .post(
            "/api/websocket/send/toAll",
            &app.admin_token,
            json!({"event": "short-lived"}),
        )
        .await;
    assert_eq!(s, 200);
    audit_until(&app, "action=send", |l| l.len() == 1).await;
    // Retention 2 s, checked every 2 s: gone within about 5 s.
    audit_until(&app, "action=send", |l| l.is_empty()).await;
}

#[tokio::test]
async fn the_dropped_audit_counter_is_exported() {
    let app = spawn_app().await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("switchboard_audit_dropped_total 0"), "{text}");
}

const TABLES: &[&str] = &[
    "users",
    "api_keys",
    "revoked_tokens",
    "audit_log",
    "seaql_migrations",
    "hgexample_push_log",
    "switchboard_migrations_hgexample",
];

async fn on_database(url: String) {
    let db = switchboard::db::connect(&url)
        .await
        .expect("database reachable");
    for t in TABLES {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t}"))
            .await
            .expect("drop table");
    }
    let app = spawn_with(|c| c.database.url = url.clone()).await;
    records_every_kind_of_action(&app).await;
    let (_, v) = app
        .get("/api/audit?action=send&pageSize=1&page=2", &app.admin_token)
        .await;
    assert_eq!(
        (v["total"].as_i64(), v["list"].as_array().map(Vec::len)),
        (Some(3), Some(1))
    );
}

#[tokio::test]
async fn audit_on_postgres() {
    if let Some(url) = test_postgres_url() {
        on_database(url).await
    }
}

#[tokio::test]
async fn audit_on_mysql() {
    if let Some(url) = test_mysql_url() {
        on_database(url).await
    }
}
