//! What the HTTP API answers to a request it cannot use: every 400 names the field and what
//! was expected, in the `{code, message}` shape; Swagger shows each path once and offers the
//! bearer token first.

mod common;

use common::*;
use serde_json::{Value, json};

async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(&app.admin_token)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

fn assert_field_error(reply: &(u16, Value), expected: &str) {
    let (status, body) = reply;
    assert_eq!(*status, 400, "{body}");
    assert_eq!(body["code"], "invalid_field", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(expected),
        "`{message}` should say `{expected}`"
    );
    assert!(
        !message.contains("occurred while parsing") && !message.contains("Expected input type"),
        "poem-openapi's wording leaked: {message}"
    );
}

#[tokio::test]
async fn a_send_without_its_fields_names_them() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let r = app
        .post("/api/websocket/send/toAll", t, json!({"data": {"x": 1}}))
        .await;
    assert_field_error(&r, "event: required");
    let r = app
        .post("/api/websocket/send/toAll", t, json!({"event": null}))
        .await;
    assert_eq!(r.1["message"], "event: required", "said once: {}", r.1);
    let r = app
        .post(
            "/api/websocket/send/toClient",
            t,
            json!({"event": "notice"}),
        )
        .await;
    assert_field_error(&r, "clientId: required");
    let r = app
        .post(
            "/api/websocket/send/toUser",
            t,
            json!({"userId": "seven", "event": "notice"}),
        )
        .await;
    assert_field_error(&r, "userId: expected an integer, got \"seven\"");
    let r = app
        .post("/api/websocket/send/toTag", t, json!({"event": "notice"}))
        .await;
    assert_field_error(&r, "tag: required");
    // Two problems at once: both are named.
    let r = app.post("/api/websocket/send/toTag", t, json!({})).await;
    assert_field_error(&r, "tag: required");
    assert_field_error(&r, "event: required");
}

#[tokio::test]
async fn users_name_a_missing_or_misshapen_roles_field() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let r = app
        .post(
            "/api/users",
            t,
            json!({"username": "alice", "password": "password-123", "role": ["operator"]}),
        )
        .await;
    assert_field_error(&r, "roles: required (the body has an unknown field `role`)");
    let r = app
        .post(
            "/api/users",
            t,
            json!({"username": "alice", "password": "password-123", "roles": "operator"}),
        )
        .await;
    assert_field_error(
        &r,
        "roles: expected a list of strings (e.g. [\"operator\"])",
    );
    let r = app
        .post(
            "/api/users",
            t,
            json!({"username": "bob", "password": "password-123", "roles": [["operator"]]}),
        )
        .await;
    assert_field_error(&r, "roles[0]: expected a string");

    let (id, _) = app.user("carol", &["member"]).await;
    let r = app
        .http
        .patch(app.url(&format!("/api/users/{id}")))
        .bearer_auth(t)
        .json(&json!({"enabled": "yes"}))
        .send()
        .await
        .unwrap();
    let r = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_field_error(&r, "enabled: expected true or false, got \"yes\"");
}

#[tokio::test]
async fn apikeys_name_the_missing_name_and_a_bad_id() {
    let app = spawn_app().await;
    let r = app.post("/api/apikeys", &app.admin_token, json!({})).await;
    assert_field_error(&r, "name: required");
    let r = app
        .http
        .delete(app.url("/api/apikeys/abc"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    let r = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_field_error(&r, "id: expected an integer");
}

#[tokio::test]
async fn login_names_the_missing_field_and_a_body_that_is_not_json() {
    let app = spawn_app().await;
    let r = app
        .post("/api/auth/login", "", json!({"username": "admin"}))
        .await;
    assert_field_error(&r, "password: required");

    let (s, v) = post_raw(&app, "/api/auth/login", "application/json", "{nope").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_body")), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("body: not valid JSON"),
        "{v}"
    );
    let (s, v) = post_raw(&app, "/api/auth/login", "application/json", "").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_body")), "{v}");
    assert_eq!(v["message"], "body: required (an object)");
    let (s, v) = post_raw(&app, "/api/auth/login", "application/json", "[1, 2]").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_body")), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("body: expected an object"),
        "{v}"
    );
    let (s, v) = post_raw(&app, "/api/auth/login", "text/plain", "{}").await;
    assert_eq!(s, 415, "{v}");
    assert_eq!(
        v["message"],
        "Content-Type: expected application/json, got text/plain"
    );
}

#[tokio::test]
async fn query_parameters_are_named_too() {
    let app = spawn_app().await;
    let r = app
        .get("/api/websocket/online?pageSize=many", &app.admin_token)
        .await;
    assert_field_error(&r, "pageSize: expected a non-negative integer");
}

#[tokio::test]
async fn every_operation_with_a_json_body_names_its_required_fields() {
    let app = spawn_app().await;
    let spec: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &spec["components"]["schemas"];
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(schema) = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.iter().find(|(k, _)| k.starts_with("application/json")))
                .map(|(_, v)| &v["schema"])
            else {
                continue;
            };
            let name = schema["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or_else(|| panic!("{method} {path}: inline body schema {schema}"));
            let required: Vec<&str> = schemas[name]["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if required.is_empty() {
                continue;
            }
            // Any path parameter: 1 (the body is refused before it is looked up).
            let concrete: Vec<&str> = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect();
            let url = app.url(&concrete.join("/"));
            let req = match method.as_str() {
                "post" => app.http.post(url),
                "patch" => app.http.patch(url),
                "put" => app.http.put(url),
                other => panic!("{other} {path} with a body"),
            };
            let r = req
                .bearer_auth(&app.admin_token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let reply = (r.status().as_u16(), r.json::<Value>().await.unwrap());
            for field in &required {
                assert_field_error(&reply, &format!("{field}: required"));
            }
            checked += 1;
        }
    }
    // Login, users, API keys, the four sends, the two tag changes and the addon's push.
    assert!(checked >= 10, "only {checked} operations checked");
}

#[tokio::test]
async fn swagger_offers_the_bearer_token_first_and_lists_each_path_under_one_tag() {
    let app = spawn_app().await;
    let spec: Value = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Swagger UI's Authorize dialog shows the schemes in the document's order.
    let schemes: Vec<(&String, &Value)> = spec["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(schemes.len(), 2, "{schemes:?}");
    assert_eq!(schemes[0].1["scheme"], "bearer", "{schemes:?}");
    assert_eq!(schemes[1].1["type"], "apiKey", "{schemes:?}");
    let mut tags = std::collections::BTreeMap::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let t: Vec<&str> = op["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(t.len(), 1, "{method} {path} has tags {t:?}");
            tags.insert(format!("{method} {path}"), t[0].to_string());
        }
    }
    for (op, tag) in [
        ("post /api/websocket/send/toAll", "Send"),
        ("get /api/websocket/online", "Online"),
        ("post /api/websocket/kick", "Online"),
        ("get /api/websocket/tags", "Online"),
        ("get /api/websocket/stats", "Online"),
    ] {
        assert_eq!(tags.get(op).map(String::as_str), Some(tag), "{op}");
    }
}

#[tokio::test]
async fn a_body_sent_in_several_chunks_is_read_whole_for_naming_fields() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.admin_token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for part in [
        r#"{"username": "dora", "#,
        r#""password": "password-123", "#,
        r#""role": "member"}"#,
    ] {
        s.write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply.contains("roles: required (the body has an unknown field `role`)"),
        "{reply}"
    );
}
