//! Tags from the client's side: `join`, `quit` and `publish` (with and without the sender's own
//! copy, and switched off by configuration); the reserved `sys:` prefix is the server's in any
//! spelling of its case, and names that merely start alike are ordinary tags.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn join_quit_publish_and_exclude_self() {
    // Bad tag names, reserved tags and publishing to a tag not joined are refused: see the
    // wrong-types table in frames.rs, which checks every field of these events.
    let app = spawn_app().await;
    let (mut a, ha) = app.ws(&app.admin_token).await;
    let (mut b, _) = app.ws(&app.admin_token).await;
    assert_eq!(
        request(&mut a, "join", json!({"id": "room:1"})).await["data"],
        json!(["room:1"])
    );
    assert_eq!(
        request(&mut a, "join", json!({"id": "a-room"})).await["data"],
        json!(["a-room", "room:1"])
    );
    assert_eq!(
        request(&mut b, "join", json!({"id": "room:1"})).await["data"],
        json!(["room:1"])
    );
    let v = request(
        &mut a,
        "publish",
        json!({"tag": "room:1", "data": {"hi": 1}}),
    )
    .await;
    assert_eq!(v["data"]["delivered"], 2);
    let got = recv(&mut b).await;
    assert_eq!(got["event"], "publish");
    assert_eq!(got["data"]["tag"], "room:1");
    assert_eq!(got["data"]["from"]["id"], ha["id"]);
    assert_eq!(got["data"]["data"], json!({"hi": 1}));
    // (a's own copy arrived before its reply; `request` skipped it.)
    let v = request(
        &mut a,
        "publish",
        json!({"tag": "room:1", "data": 2, "excludeSelf": true}),
    )
    .await;
    assert_eq!(v["data"]["delivered"], 1);
    assert_eq!(
        request(&mut b, "quit", json!({"id": "room:1"})).await["data"],
        json!([])
    );
    let app2 = spawn_with(|c| c.websocket.client_publish = false).await;
    let (mut c, _) = app2.ws(&app2.admin_token).await;
    request(&mut c, "join", json!({"id": "t"})).await;
    assert_eq!(
        request(&mut c, "publish", json!({"tag": "t", "data": 1})).await["code"],
        403
    );
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
