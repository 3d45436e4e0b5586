//! Users, passwords and API keys: the routes that manage them, what their answers show (never
//! a password, a hash or a key after its creation), and how they are kept at rest (passwords
//! as argon2id hashes, keys as digests, the JWT secret readable by its owner only).

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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
async fn api_keys_act_as_operator() {
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
}

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
    // The list shows only a prefix of the key (that the key works, and is never listed whole,
    // is `api_keys_act_as_operator`).
    let (_, list) = app.get("/api/apikeys", &app.admin_token).await;

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
