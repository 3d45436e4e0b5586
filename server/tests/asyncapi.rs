//! `GET /api/asyncapi.json`: every registered WebSocket event, with the schemas of the types its
//! handler binds and answers, and the server's pushes; valid against the official AsyncAPI 3.0.0
//! JSON schema.

mod common;

use std::path::Path;
use std::process::Command;

use common::binary;
use common::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_sdk::event::{EventContext, EventResult, Reply};

/// An addon-style event whose data is its own struct.
#[derive(Deserialize, poem_openapi::Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename = "TestMoveRequest", rename_all = "camelCase")]
struct Move {
    /// Squares to move.
    steps: u32,
    /// Where to.
    direction_name: String,
    /// Optional note.
    note: Option<String>,
}

#[derive(Serialize, poem_openapi::Object)]
#[oai(rename = "TestMoveReply")]
struct Moved {
    position: i64,
}

async fn move_piece(_ctx: EventContext, m: Move) -> EventResult {
    Reply::json(&Moved {
        position: i64::from(m.steps),
    })
}

const MOVE: &str = "admin/addons/test/move";

async fn spawn_with_move() -> TestApp {
    spawn_full(
        |_| {},
        |reg| {
            reg.on(MOVE, move_piece)
                .role(switchboard_sdk::Role::Operator)
                .describe("Moves the piece.")
                .reply::<Moved>();
        },
    )
    .await
}

async fn fetch_document(app: &TestApp) -> Value {
    // Exempt from login, like the OpenAPI spec.
    let r = reqwest::get(app.url("/api/asyncapi.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn operation_of<'a>(doc: &'a Value, event: &str, action: &str) -> &'a Value {
    doc["operations"]
        .as_object()
        .unwrap()
        .values()
        .find(|op| op["x-switchboard-event"] == event && op["action"] == action)
        .unwrap_or_else(|| panic!("no {action} operation for `{event}`"))
}

/// Follows a `#/a/b/c` reference inside the document.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(r) => {
            let target = doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling reference {r}"));
            resolve(doc, target)
        }
        None => node,
    }
}

fn message<'a>(doc: &'a Value, list: &'a Value) -> &'a Value {
    resolve(doc, &list[0])
}

#[tokio::test]
async fn every_registered_event_is_a_send_operation_with_request_and_reply() {
    let app = spawn_with_move().await;
    let doc = fetch_document(&app).await;
    assert_eq!(doc["asyncapi"], "3.0.0");

    let mut expected: Vec<String> = switchboard::websocket::builtins::docs()
        .into_iter()
        .map(|d| d.name)
        .collect();
    // Every addon of this build, from the server's own list of them.
    let mut addon_events = switchboard_sdk::event::EventRegistry::new();
    switchboard::addons::Addons::default().register_events(&mut addon_events);
    let addon_events = addon_events.build().expect("the addons register cleanly");
    expected.extend(addon_events.iter().map(|r| r.name().to_string()));
    assert!(
        expected
            .iter()
            .any(|e| e == "admin/addons/hgexample/testMessage")
    );
    expected.push(MOVE.into());
    expected.sort();
    let mut sent: Vec<String> = doc["operations"]
        .as_object()
        .unwrap()
        .values()
        .filter(|op| op["action"] == "send")
        .map(|op| op["x-switchboard-event"].as_str().unwrap().to_string())
        .collect();
    sent.sort();
    assert_eq!(sent, expected, "exactly the registered events");

    for event in &expected {
        let op = operation_of(&doc, event, "send");
        let request = message(&doc, &op["messages"]);
        assert_eq!(request["payload"]["properties"]["event"]["const"], *event);
        assert!(
            request["payload"]["properties"]["data"].is_object(),
            "`{event}` request has a data schema"
        );
        let reply = message(&doc, &op["reply"]["messages"]);
        assert_eq!(reply["payload"]["properties"]["event"]["const"], *event);
        assert!(reply["payload"]["properties"]["code"].is_object());
    }

    // Built-ins show the types their handlers bind and answer.
    let join = operation_of(&doc, "join", "send");
    let data = resolve(
        &doc,
        &message(&doc, &join["messages"])["payload"]["properties"]["data"],
    );
    assert_eq!(data["required"], json!(["id"]));
    let publish = operation_of(&doc, "publish", "send");
    let reply = resolve(
        &doc,
        &message(&doc, &publish["reply"]["messages"])["payload"]["properties"]["data"],
    );
    assert_eq!(reply["properties"]["delivered"]["type"], "integer");
    let trends = operation_of(&doc, "admin/monitor/trends", "send");
    assert_eq!(trends["x-switchboard-role"], "operator");
    assert!(
        message(&doc, &trends["reply"]["messages"])["payload"]["properties"]["data"].is_object()
    );
    // `ping` answers no data.
    let ping = operation_of(&doc, "ping", "send");
    assert!(message(&doc, &ping["reply"]["messages"])["payload"]["properties"]["data"].is_null());
}

#[tokio::test]
async fn server_pushes_are_receive_operations() {
    let app = spawn_with_move().await;
    let doc = fetch_document(&app).await;
    for push in [
        "connected",
        "notice",
        "kick",
        "publish",
        "admin/monitor/trends",
        "admin/monitor/runInfo",
    ] {
        let op = operation_of(&doc, push, "receive");
        let msg = message(&doc, &op["messages"]);
        assert_eq!(msg["payload"]["properties"]["event"]["const"], push);
    }
    let connected = operation_of(&doc, "connected", "receive");
    let data = resolve(
        &doc,
        &message(&doc, &connected["messages"])["payload"]["properties"]["data"],
    );
    for field in [
        "id",
        "userId",
        "username",
        "node",
        "pingInterval",
        "idleTimeout",
    ] {
        assert!(
            data["properties"][field].is_object(),
            "connected has {field}"
        );
    }
    let kick = operation_of(&doc, "kick", "receive");
    let data = resolve(
        &doc,
        &message(&doc, &kick["messages"])["payload"]["properties"]["data"],
    );
    assert_eq!(data["required"], json!(["reason"]));
}

#[tokio::test]
async fn an_addon_events_typed_data_shows_its_fields_role_and_description() {
    let app = spawn_with_move().await;
    let doc = fetch_document(&app).await;
    let op = operation_of(&doc, MOVE, "send");
    assert_eq!(op["x-switchboard-role"], "operator");
    assert_eq!(op["description"], "Moves the piece.");
    assert_eq!(op["x-switchboard-addon"], "host");
    let request = resolve(
        &doc,
        &message(&doc, &op["messages"])["payload"]["properties"]["data"],
    );
    assert_eq!(request["type"], "object");
    assert_eq!(request["properties"]["steps"]["type"], "integer");
    assert_eq!(request["properties"]["directionName"]["type"], "string");
    assert!(request["properties"]["note"].is_object());
    assert_eq!(request["required"], json!(["steps", "directionName"]));
    let reply = resolve(
        &doc,
        &message(&doc, &op["reply"]["messages"])["payload"]["properties"]["data"],
    );
    assert_eq!(reply["properties"]["position"]["type"], "integer");

    // The document describes what the socket really accepts.
    let (mut ws, _) = app.ws(&app.admin_token).await;
    let ok = request_json(&mut ws, MOVE, json!({"steps": 3, "directionName": "up"})).await;
    assert_eq!(ok["data"], json!({"position": 3}));
    let bad = request_json(&mut ws, MOVE, json!({"steps": "3", "directionName": "up"})).await;
    assert_eq!(bad["code"], 400);
}

async fn request_json(ws: &mut Ws, event: &str, data: Value) -> Value {
    send(ws, json!({"event": event, "data": data, "seqno": 1})).await;
    recv(ws).await
}

/// Runs the validator under `server/tests/asyncapi` (node with `@asyncapi/specs` and ajv).
/// `None` when node or npm is missing.
fn validate_with_official_schema(doc: &Value) -> Option<Result<(), String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asyncapi");
    let has = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("node") || !has("npm") {
        return None;
    }
    if !dir.join("node_modules/@asyncapi/specs").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "npm ci in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(doc).unwrap()).unwrap();
    let out = Command::new("node")
        .arg(dir.join("validate.mjs"))
        .arg(file.path())
        .output()
        .expect("node runs");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

#[tokio::test]
async fn the_document_is_valid_asyncapi_3() {
    let app = spawn_with_move().await;
    let doc = fetch_document(&app).await;
    let Some(result) = validate_with_official_schema(&doc) else {
        eprintln!("skipped: node and npm are needed to run the AsyncAPI 3.0.0 schema validator");
        return;
    };
    if let Err(errors) = result {
        panic!("the AsyncAPI document is invalid:\n{errors}");
    }
    // The validator does refuse a broken document.
    let mut broken = doc.clone();
    let first = broken["operations"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    broken["operations"][&first]["action"] = json!("shout");
    assert!(
        validate_with_official_schema(&broken).unwrap().is_err(),
        "an operation with action `shout` must not validate"
    );
}

#[tokio::test]
async fn the_cli_prints_the_document_the_server_serves() {
    let app = spawn_full(|_| {}, |_| {}).await;
    let served = fetch_document(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let out = binary::run(dir.path(), &["asyncapi"], &[], None).ok();
    let printed: Value = serde_json::from_str(&out.stdout).expect("stdout is the JSON document");
    assert_eq!(printed, served);
    let help = binary::run(dir.path(), &["--help"], &[], None).ok();
    assert!(help.stdout.contains("asyncapi"), "{}", help.stdout);
}

mod clash {
    use super::*;

    /// Another type under the name the test event's request already uses.
    #[derive(Deserialize, poem_openapi::Object)]
    #[oai(rename = "TestMoveRequest")]
    pub struct OtherMove {
        pub to: String,
    }

    pub async fn other(_ctx: EventContext, _m: OtherMove) -> EventResult {
        Ok(Reply::ok())
    }
}

#[tokio::test]
async fn two_types_with_one_schema_name_stop_start_up_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let err = switchboard::app::Application::build_with_events(base_config(dir.path()), |reg| {
        reg.on(MOVE, move_piece);
        reg.on("admin/addons/test/other", clash::other);
    })
    .await
    .err()
    .expect("start-up refuses the clash");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("event document") && msg.contains("TestMoveRequest"),
        "{msg}"
    );
}
