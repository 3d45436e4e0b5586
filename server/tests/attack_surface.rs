//! Smaller holes found by an attack pass: role boundaries between users, look-alikes of the
//! reserved tag prefix, client-chosen close codes as metric labels, failed logins in the log.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use switchboard::auth::AuthError;
use switchboard_sdk::api::ApiError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alikes_of_the_reserved_tag_prefix_are_refused_to_clients() {
    let app = spawn_app().await;
    let (_, token) = app.user("mia", &["member"]).await;
    let (mut ws, _) = app.ws(&token).await;
    for tag in ["sys:admin", "SYS:admin", "Sys:monitor", "sYs:x"] {
        let v = request(&mut ws, "join", json!({"id": tag})).await;
        assert_eq!(v["code"], 403, "{tag}: {v}");
    }
    let v = request(&mut ws, "join", json!({"id": "system"})).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"], json!(["system"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_chosen_close_codes_are_one_metric_label() {
    let app = spawn_app().await;
    for code in [4321u16, 4567, 3999, 4001] {
        let (mut ws, _) = app.ws(&app.admin_token).await;
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "bye".into(),
        })))
        .await
        .unwrap();
        // Wait for the server's answer so the close is counted.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            use futures_util::StreamExt;
            while ws.next().await.is_some() {}
        })
        .await;
    }
    let mut text = String::new();
    for _ in 0..50 {
        text = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("switchboard_closes_total{code=\"other\"} 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("switchboard_closes_total{"))
        .collect();
    assert!(
        closes.contains(&"switchboard_closes_total{code=\"other\"} 3"),
        "{closes:?}"
    );
    assert!(
        closes.contains(&"switchboard_closes_total{code=\"4001\"} 1"),
        "{closes:?}"
    );
    for code in ["4321", "4567", "3999"] {
        assert!(!text.contains(code), "{code} became a label: {closes:?}");
    }
}
