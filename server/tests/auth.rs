//! Logging in (over HTTP and with the socket's `login` event), the exemption list, and roles:
//! which routes each role may use and on whom it may act. Bad input to a login — injection
//! strings, wrong types — is refused with a code and never lets anyone in.

mod common;

use common::*;
use serde_json::{Value, json};
use switchboard::auth::AuthError;
use switchboard_sdk::api::ApiError;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_and_api_keys_may_not_act_on_an_admin_but_on_their_equals_and_below() {
    let app = spawn_app().await;
    let auth = &app.state.auth;
    let (op_id, op_token) = app.user("oscar", &["operator"]).await;
    let (member_id, member_token) = app.user("mia", &["member"]).await;
    let (status, key) = app
        .post("/api/apikeys", &app.admin_token, json!({"name": "svc"}))
        .await;
    assert_eq!(status, 201);
    let operator = auth.verify_token(&op_token).await.unwrap();
    let member = auth.verify_token(&member_token).await.unwrap();
    let api_key = auth
        .verify_api_key(key["key"].as_str().unwrap())
        .await
        .unwrap();
    let admin = auth.verify_token(&app.admin_token).await.unwrap();
    let admin_id = admin.user_id.unwrap().0;

    for (who, actor) in [("an operator", &operator), ("an API key", &api_key)] {
        let e = auth.authorize_action_on(actor, admin_id).await.unwrap_err();
        assert!(matches!(e, AuthError::Forbidden(_)), "{who}: {e:?}");
        let api: ApiError = e.into();
        assert_eq!(api.status(), 403, "{who}");
        assert_eq!(api.body().code, "forbidden");
        assert!(
            api.body().message.contains("admin"),
            "{}",
            api.body().message
        );
        // Their equals and those below are fine.
        auth.authorize_action_on(actor, op_id).await.unwrap();
        auth.authorize_action_on(actor, member_id).await.unwrap();
    }
    assert!(auth.authorize_action_on(&member, op_id).await.is_err());
    auth.authorize_action_on(&admin, admin_id).await.unwrap();
    auth.authorize_action_on(&admin, op_id).await.unwrap();
    // An unknown target is the caller's 404 to give, not a 403.
    auth.authorize_action_on(&operator, 999_999).await.unwrap();

    // The admin-only user routes still work for an admin acting on anyone.
    let r = app
        .http
        .patch(app.url(&format!("/api/users/{op_id}")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"roles": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // …and the role change takes effect: the former operator now outranks nobody below admin.
    auth.authorize_action_on(&auth.verify_token(&op_token).await.unwrap(), admin_id)
        .await
        .unwrap();
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

#[tokio::test]
async fn wrong_types_in_login_answer_with_error_codes_on_an_anonymous_socket() {
    let app = spawn_with(|c| c.auth.except_login.push("/socket".into())).await;
    let mut ws = ws_connect(&app.ws_url, None).await.unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["data"]["userId"], Value::Null);
    let mut cases: Vec<(Value, i64)> = Vec::new();
    for v in [
        Value::Null,
        json!("admin"),
        json!(1),
        json!([]),
        json!(["admin", "pw"]),
    ] {
        cases.push((v, 400));
    }
    for v in hostile_values() {
        if v.is_null() {
            continue;
        }
        cases.push((json!({"username": v, "password": "pw"}), 400));
        cases.push((json!({"username": "admin", "password": v}), 400));
        cases.push((json!({"token": v}), 400));
    }
    cases.push((json!({}), 400));
    cases.push((json!({"username": "admin"}), 400));
    cases.push((json!({"password": ADMIN_PASSWORD}), 400));
    // Strings of the right type but the wrong content are refused as credentials.
    cases.push((json!({"token": ""}), 401));
    cases.push((json!({"token": "a.b.c"}), 401));
    cases.push((json!({"token": "x".repeat(20_000)}), 401));
    cases.push((
        json!({"username": "admin' --", "password": "' OR '1'='1"}),
        401,
    ));
    cases.push((json!({"username": "", "password": ""}), 401));
    for (n, (data, want)) in cases.into_iter().enumerate() {
        let seqno = n as u64;
        send(
            &mut ws,
            json!({"event": "login", "data": data, "seqno": seqno}),
        )
        .await;
        let v = recv(&mut ws).await;
        assert_eq!(
            (v["event"].as_str(), v["seqno"].as_u64()),
            (Some("login"), Some(seqno))
        );
        assert_eq!(v["code"].as_i64(), Some(want), "login {data}: {v}");
        assert!(v.get("data").is_none(), "login {data}: no token on failure");
    }
    assert_alive(&mut ws).await;
    // Still anonymous after all that; a real login then works, and a second one is a conflict.
    let (_, online) = app.get("/api/websocket/online", &app.admin_token).await;
    assert_eq!(online["list"][0]["userId"], Value::Null);
    let v = request(
        &mut ws,
        "login",
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["user"]["username"], "admin");
    let v = request(&mut ws, "login", json!({"username": 5})).await;
    assert_eq!(v["code"], 409);
}
