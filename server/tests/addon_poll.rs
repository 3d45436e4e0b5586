//! The poll addon end to end: events over real sockets, results pushed to the poll's tag, one
//! vote per user, its HTTP endpoint, its place in the event document, and its migration on
//! SQLite, PostgreSQL and MySQL/MariaDB.

mod common;

use std::time::Duration;

use common::*;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

const CREATE: &str = "admin/addons/poll/create";
const VOTE: &str = "admin/addons/poll/vote";
const RESULTS: &str = "admin/addons/poll/results";

fn votes(results: &Value) -> Vec<u64> {
    results["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| o["votes"].as_u64().unwrap())
        .collect()
}

/// Creates a poll as `token` over a new socket; answers its reply data.
async fn create_poll(app: &TestApp, token: &str, question: &str, options: &[&str]) -> Value {
    let (mut ws, _) = app.ws(token).await;
    let r = request(
        &mut ws,
        CREATE,
        json!({"question": question, "options": options}),
    )
    .await;
    assert_eq!(r["code"], 0, "{r}");
    r["data"].clone()
}

/// The whole flow against whichever database `app` runs on.
async fn poll_flow(app: &TestApp) {
    let (_, op) = app.user("pollster", &["operator"]).await;
    let (_, alice) = app.user("alice", &["member"]).await;
    let (_, bob) = app.user("bob", &["member"]).await;
    let (_, carol) = app.user("carol", &["member"]).await;

    // Creating needs the operator role; the limits answer 400 naming the field.
    let (mut a, _) = app.ws(&alice).await;
    let r = request(
        &mut a,
        CREATE,
        json!({"question": "Lunch?", "options": ["pizza", "soup"]}),
    )
    .await;
    assert_eq!(r["code"], 403, "{r}");
    let (mut o, _) = app.ws(&op).await;
    let r = request(
        &mut o,
        CREATE,
        json!({"question": "Lunch?", "options": ["pizza"]}),
    )
    .await;
    assert_eq!(
        (r["code"].as_i64(), r["errorMsg"].as_str()),
        (Some(400), Some("data.options: 2 to 10 options, got 1"))
    );
    let r = request(&mut o, CREATE, json!({"question": "Lunch?"})).await;
    assert_eq!(r["code"], 400, "a missing field is refused by the binding");
    assert!(r["errorMsg"].as_str().unwrap().contains("options"), "{r}");

    // Non-ASCII text round-trips through every backend.
    let poll = create_poll(
        app,
        &op,
        "Mittagessen — wohin?",
        &["Pizza", "Suppe", "Salat"],
    )
    .await;
    let id = poll["id"].as_i64().unwrap();
    let tag = format!("poll:{id}");
    assert_eq!(poll["tag"], tag);
    assert_eq!(poll["question"], "Mittagessen — wohin?");
    assert_eq!(poll["createdBy"], "pollster");
    assert_eq!(votes(&poll), [0, 0, 0]);

    // Carol watches the poll: she joins its tag with the built-in `join`.
    let (mut c, _) = app.ws(&carol).await;
    let r = request(&mut c, "join", json!({"id": tag})).await;
    assert_eq!(r["data"], json!([tag]));

    // Alice and Bob vote over their own sockets; each vote is pushed to the tag.
    let r = request(&mut a, VOTE, json!({"pollId": id, "option": 1})).await;
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(
        (votes(&r["data"]), r["data"]["total"].as_u64()),
        (vec![0, 1, 0], Some(1))
    );
    let push = recv(&mut c).await;
    assert_eq!(push["event"], RESULTS);
    assert_eq!(push["stream"], format!("tag:{tag}"));
    assert_eq!(votes(&push["data"]), [0, 1, 0]);

    let (mut b, _) = app.ws(&bob).await;
    let r = request(&mut b, VOTE, json!({"pollId": id, "option": 2})).await;
    assert_eq!(r["code"], 0, "{r}");
    let push = recv(&mut c).await;
    assert_eq!(
        (votes(&push["data"]), push["data"]["total"].as_u64()),
        (vec![0, 1, 1], Some(2))
    );

    // A second vote, an unknown poll and a missing option are refused with their codes,
    // and nothing is pushed for them.
    let r = request(&mut a, VOTE, json!({"pollId": id, "option": 0})).await;
    assert_eq!(
        (r["code"].as_i64(), r["errorMsg"].as_str()),
        (
            Some(409),
            Some(format!("you have already voted in poll {id}").as_str())
        )
    );
    let r = request(&mut a, VOTE, json!({"pollId": id + 1000, "option": 0})).await;
    assert_eq!(r["code"], 404, "{r}");
    let r = request(&mut c, VOTE, json!({"pollId": id, "option": 3})).await;
    assert_eq!(
        (r["code"].as_i64(), r["errorMsg"].as_str()),
        (
            Some(400),
            Some("data.option: 3 is not an option of this poll (0 to 2)")
        )
    );
    let r = request(&mut c, VOTE, json!({"pollId": id, "option": "soup"})).await;
    assert_eq!(r["code"], 400, "{r}");
    assert!(
        recv_within(&mut c, Duration::from_millis(300))
            .await
            .is_none(),
        "refused votes push nothing"
    );

    // `results` answers the same counts.
    let r = request(&mut b, RESULTS, json!({"pollId": id})).await;
    assert_eq!(
        (votes(&r["data"]), r["data"]["total"].as_u64()),
        (vec![0, 1, 1], Some(2))
    );
    let r = request(&mut b, RESULTS, json!({"pollId": -1})).await;
    assert_eq!(r["code"], 404, "{r}");

    // So does the HTTP endpoint, for any logged-in user.
    let (s, body) = app.get(&format!("/api/addons/poll/{id}"), &alice).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["id"], id);
    assert_eq!(body["tag"], tag);
    assert_eq!(
        (votes(&body), body["total"].as_u64()),
        (vec![0, 1, 1], Some(2))
    );
    assert_eq!(body["options"][2]["text"], "Salat");
    let (s, body) = app
        .get(&format!("/api/addons/poll/{}", id + 1000), &alice)
        .await;
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")));
    let (s, body) = app.get("/api/addons/poll/lunch", &alice).await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = app
        .get(&format!("/api/addons/poll/{id}"), "not-a-token")
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn polls_over_real_sockets_on_sqlite() {
    let app = spawn_app().await;
    poll_flow(&app).await;
}

#[tokio::test]
async fn an_api_key_connection_cannot_vote() {
    let app = spawn_app().await;
    let poll = create_poll(&app, &app.admin_token, "Deploy today?", &["yes", "no"]).await;
    let (_, k) = app
        .post("/api/apikeys", &app.admin_token, json!({"name": "pollbot"}))
        .await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        app.ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("X-API-Key", k["key"].as_str().unwrap().parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(recv(&mut ws).await["event"], "connected");
    let r = request(&mut ws, VOTE, json!({"pollId": poll["id"], "option": 0})).await;
    assert_eq!(
        (r["code"].as_i64(), r["errorMsg"].as_str()),
        (
            Some(403),
            Some("only a user can vote (this connection has none)")
        )
    );
    // It may read the counts: its operator role grants what members may do.
    let r = request(&mut ws, RESULTS, json!({"pollId": poll["id"]})).await;
    assert_eq!(r["code"], 0, "{r}");
}

/// Follows `#/a/b` references inside the document.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(r) => resolve(
            doc,
            doc.pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling reference {r}")),
        ),
        None => node,
    }
}

#[tokio::test]
async fn the_event_document_lists_the_poll_events_with_their_schemas() {
    let app = spawn_app().await;
    let doc: Value = reqwest::get(app.url("/api/asyncapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = |event: &str| -> Value {
        doc["operations"]
            .as_object()
            .unwrap()
            .values()
            .find(|op| op["x-switchboard-event"] == event && op["action"] == "send")
            .unwrap_or_else(|| panic!("no send operation for {event}"))
            .clone()
    };
    // The request `data` schema and the reply `data` schema of an event, references followed.
    let schemas = |event: &str| -> (Value, Value) {
        let op = op(event);
        let request = resolve(&doc, &op["messages"][0]);
        let reply = resolve(&doc, &op["reply"]["messages"][0]);
        (
            resolve(&doc, &request["payload"]["properties"]["data"]).clone(),
            resolve(&doc, &reply["payload"]["properties"]["data"]).clone(),
        )
    };
    let required = |schema: &Value| -> Vec<String> {
        let mut v: Vec<String> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };

    for (event, role) in [(CREATE, "operator"), (VOTE, "member"), (RESULTS, "member")] {
        let op = op(event);
        assert_eq!(op["x-switchboard-addon"], "poll", "{event}");
        assert_eq!(op["x-switchboard-role"], role, "{event}");
        assert!(!op["description"].as_str().unwrap().is_empty(), "{event}");
        let (_, reply) = schemas(event);
        for field in [
            "id",
            "question",
            "options",
            "total",
            "tag",
            "createdBy",
            "createdAt",
        ] {
            assert!(
                reply["properties"][field].is_object(),
                "{event} reply lacks {field}"
            );
        }
    }

    let (create, _) = schemas(CREATE);
    assert_eq!(required(&create), ["options", "question"]);
    assert_eq!(create["properties"]["question"]["type"], "string");
    assert_eq!(create["properties"]["options"]["type"], "array");
    assert_eq!(create["properties"]["options"]["items"]["type"], "string");

    let (vote, reply) = schemas(VOTE);
    assert_eq!(required(&vote), ["option", "pollId"]);
    assert_eq!(vote["properties"]["pollId"]["type"], "integer");
    assert_eq!(vote["properties"]["option"]["type"], "integer");
    let option = resolve(&doc, &reply["properties"]["options"]["items"]);
    for field in ["index", "text", "votes"] {
        assert!(
            option["properties"][field].is_object(),
            "option lacks {field}"
        );
    }

    let (results, _) = schemas(RESULTS);
    assert_eq!(required(&results), ["pollId"]);

    // The HTTP endpoint is in the OpenAPI spec, in its own tag.
    let spec: Value = reqwest::get(app.url("/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let get = &spec["paths"]["/api/addons/poll/{id}"]["get"];
    assert_eq!(get["tags"], json!(["Poll"]), "{get}");
    assert!(get["responses"]["404"].is_object());
}

/// The addon's schema on a scratch database of its own, so it cannot disturb the suites that
/// share the server; then the whole flow on it.
async fn on_database(url: String, name: &str) {
    let url = scratch_database(&url, name).await;
    let app = spawn_with(|c| c.database.url = url.clone()).await;
    poll_flow(&app).await;
    app.shutdown.cancel();
    let _ = app.handle.await;
    // A second start finds the migration recorded in the addon's own table and skips it.
    let db = switchboard::db::connect(&url).await.unwrap();
    switchboard::addons::Addons::default()
        .migrate(&db)
        .await
        .expect("migrations run again cleanly");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM switchboard_migrations_poll",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1);
}

#[tokio::test]
async fn polls_on_postgres() {
    if let Some(url) = test_postgres_url() {
        on_database(url, "switchboard_addon_poll").await
    }
}

#[tokio::test]
async fn polls_on_mysql() {
    if let Some(url) = test_mysql_url() {
        on_database(url, "switchboard_addon_poll").await
    }
}
