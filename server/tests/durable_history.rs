//! Durable streams: epochs, offsets and history survive a restart of the real server process;
//! a crash either loses nothing a client sees or changes the epoch; stored history is pruned.
//!
//! The PostgreSQL and MySQL cases need SWITCHBOARD_TEST_POSTGRES_URL and
//! SWITCHBOARD_TEST_MYSQL_URL; unset, they report themselves skipped.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const PASSWORD: &str = "admin-password-1";

/// The server binary in `dir`, logged in as admin.
struct Proc {
    server: binary::Server,
    http: reqwest::Client,
    token: String,
}

impl Proc {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Proc {
        let mut all = vec![
            ("SWITCHBOARD_AUTH__ADMIN_PASSWORD", PASSWORD),
            ("SWITCHBOARD_LOG__LEVEL", "info"),
        ];
        all.extend_from_slice(env);
        let server = binary::start(dir, &all);
        let http = reqwest::Client::new();
        let token = login(&http, &server.url(""), "admin", PASSWORD).await;
        Proc {
            server,
            http,
            token,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.server.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn user(&self, name: &str) -> (i64, String) {
        let (s, v) = self
            .post(
                "/api/users",
                json!({"username": name, "password": "password-123", "roles": ["member"]}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let token = login(&self.http, &self.server.url(""), name, "password-123").await;
        (v["id"].as_i64().unwrap(), token)
    }

    async fn push_user(&self, uid: i64, n: u64) {
        let (s, v) = self
            .post(
                "/api/websocket/send/toUser",
                json!({"userId": uid, "event": "notice", "data": {"n": n}}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    /// Connects with `?recover=1` (live pushes wait behind the replay); returns the greeting.
    async fn ws(&self, token: &str) -> (Ws, Value) {
        self.connect(token, "?recover=1").await
    }

    /// Connects for live pushes only.
    async fn live(&self, token: &str) -> (Ws, Value) {
        self.connect(token, "").await
    }

    async fn connect(&self, token: &str, query: &str) -> (Ws, Value) {
        let url = format!("ws://{}/socket{query}", self.server.addr);
        let mut ws = ws_connect(&url, Some(token)).await.expect("ws connects");
        let hello = recv(&mut ws).await;
        assert_eq!(hello["event"], "connected");
        (ws, hello["data"].clone())
    }
}

fn position(greeting: &Value, stream: &str) -> (u64, String) {
    let p = &greeting["streams"][stream];
    (
        p["offset"].as_u64().expect("offset"),
        p["epoch"].as_str().expect("epoch").to_string(),
    )
}

/// Sends `recover` for one stream and collects the replayed pushes and the reply's verdict.
async fn recover(ws: &mut Ws, stream: &str, offset: u64, epoch: &str) -> (Vec<Value>, bool) {
    send(
        ws,
        json!({"event": "recover", "seqno": "rec", "data": {"streams": {stream: {"offset": offset, "epoch": epoch}}}}),
    )
    .await;
    let mut frames = Vec::new();
    loop {
        let v = recv(ws).await;
        if v["seqno"] == "rec" {
            assert_eq!(v["code"], 0, "{v}");
            let ok = v["data"]["recovered"][stream].as_bool().expect("verdict");
            return (frames, ok);
        }
        if v["stream"] == stream {
            frames.push(v);
        }
    }
}

#[tokio::test]
async fn a_clean_restart_keeps_epochs_and_recovers_every_push() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::start(dir.path(), &[]).await;
    let (uid, tok) = p.user("traveller").await;
    let (qid, qtok) = p.user("quiet").await;
    let stream = format!("user:{uid}");
    let quiet = format!("user:{qid}");
    let (mut ws, hello) = p.live(&tok).await;
    let (_, epoch) = position(&hello, &stream);
    let (_, quiet_hello) = p.live(&qtok).await;
    let quiet_before = position(&quiet_hello, &quiet);
    for n in 1..=3 {
        p.push_user(uid, n).await;
    }
    for n in 1..=3u64 {
        let v = recv(&mut ws).await;
        assert_eq!(
            (v["offset"].as_u64(), v["data"]["n"].as_u64()),
            (Some(n), Some(n))
        );
    }
    drop(ws);
    let (status, log) = p.server.stop();
    assert!(status.success(), "clean exit; log:\n{log}");
    assert!(log.contains("durable history flushed"), "log:\n{log}");

    let p = Proc::start(dir.path(), &[]).await;
    for n in 4..=6 {
        p.push_user(uid, n).await;
    }
    let (mut ws, hello) = p.ws(&tok).await;
    assert_eq!(
        position(&hello, &stream),
        (6, epoch.clone()),
        "same epoch, offsets go on"
    );
    // From offset 1: pushes 2 and 3 come from the stored history, 4–6 from this run.
    let (frames, ok) = recover(&mut ws, &stream, 1, &epoch).await;
    assert!(ok, "recovered across the restart");
    let got: Vec<(u64, u64, &str)> = frames
        .iter()
        .map(|v| {
            (
                v["offset"].as_u64().unwrap(),
                v["data"]["n"].as_u64().unwrap(),
                v["epoch"].as_str().unwrap(),
            )
        })
        .collect();
    let want: Vec<(u64, u64, &str)> = (2..=6).map(|n| (n, n, epoch.as_str())).collect();
    assert_eq!(got, want);

    // A stream that received nothing keeps its epoch: no false "missing" warning.
    let (mut qws, quiet_hello) = p.ws(&qtok).await;
    assert_eq!(position(&quiet_hello, &quiet), quiet_before);
    let (frames, ok) = recover(&mut qws, &quiet, 0, &quiet_before.1).await;
    assert!(ok && frames.is_empty());
    let (status, log) = p.server.stop();
    assert!(status.success(), "log:\n{log}");
}

#[tokio::test]
async fn a_kill_mid_traffic_loses_nothing_silently() {
    let dir = tempfile::tempdir().unwrap();
    // First run: a bystander's stream gets pushes, then a clean stop.
    let p = Proc::start(dir.path(), &[]).await;
    let (uid, tok) = p.user("watcher").await;
    let (bid, btok) = p.user("bystander").await;
    let stream = format!("user:{uid}");
    let by = format!("user:{bid}");
    p.push_user(bid, 1).await;
    p.push_user(bid, 2).await;
    let (_, bhello) = p.live(&btok).await;
    let by_before = position(&bhello, &by);
    assert_eq!(by_before.0, 2);
    let (status, _) = p.server.stop();
    assert!(status.success());

    // Second run: a stream is written early and then stays quiet; once its pushes are stored
    // the kill cannot have lost any of them.
    let p = Proc::start(dir.path(), &[]).await;
    let (eid, etok) = p.user("early").await;
    let early = format!("user:{eid}");
    p.push_user(eid, 1).await;
    p.push_user(eid, 2).await;
    let db = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("data/switchboard.db").display()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rows(&db, "stream_entries", Some(&early)).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the early pushes were never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, ehello) = p.live(&etok).await;
    let early_before = position(&ehello, &early);
    assert_eq!(early_before.0, 2);

    // Then pushes flow through the HTTP API while a client reads them; SIGKILL.
    let (mut ws, _) = p.live(&tok).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (http, url, token, stop) = (
            p.http.clone(),
            p.server.url("/api/websocket/send/toUser"),
            p.token.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"userId": uid, "event": "notice", "data": {"n": n}});
                if http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut last: Option<(u64, String)> = None;
    for _ in 0..300 {
        let v = recv(&mut ws).await;
        let offset = v["offset"].as_u64().unwrap();
        if let Some((prev, _)) = &last {
            assert_eq!(offset, prev + 1, "live pushes are consecutive");
        }
        last = Some((offset, v["epoch"].as_str().unwrap().to_string()));
    }
    p.server.kill();
    stop.store(true, Ordering::Relaxed);
    let _ = pusher.await;
    drop(ws);
    let (seen, epoch) = last.unwrap();

    // Third run: the client recovers from the last push it saw.
    let p = Proc::start(dir.path(), &[]).await;
    p.push_user(uid, 1_000_000).await;
    let (mut ws, hello) = p.ws(&tok).await;
    let (now, now_epoch) = position(&hello, &stream);
    let (frames, ok) = recover(&mut ws, &stream, seen, &epoch).await;
    if ok {
        // Everything after `seen`, consecutive, in the same epoch.
        assert_eq!(now_epoch, epoch);
        let offsets: Vec<u64> = frames
            .iter()
            .map(|v| v["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, ((seen + 1)..=now).collect::<Vec<_>>());
    } else {
        assert!(frames.is_empty(), "nothing replayed from a lost epoch");
        assert_ne!(now_epoch, epoch, "recovered:false comes with a new epoch");
    }
    // The early stream's pushes were all stored before the kill: same epoch, full history.
    let (mut ews, ehello) = p.ws(&etok).await;
    assert_eq!(
        position(&ehello, &early),
        early_before,
        "the stored stream keeps its epoch"
    );
    let (frames, ok) = recover(&mut ews, &early, 0, &early_before.1).await;
    assert!(ok, "the stored stream recovers");
    let ns: Vec<u64> = frames
        .iter()
        .map(|v| v["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [1, 2]);
    // The bystander's stream got nothing in the killed run: it keeps its epoch and history.
    let (mut bws, bhello) = p.ws(&btok).await;
    assert_eq!(position(&bhello, &by), by_before);
    let (frames, ok) = recover(&mut bws, &by, 0, &by_before.1).await;
    assert!(ok, "the untouched stream recovers");
    let ns: Vec<u64> = frames
        .iter()
        .map(|v| v["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [1, 2]);
    let (status, log) = p.server.stop();
    assert!(status.success(), "log:\n{log}");
    assert!(
        log.contains("did not stop cleanly"),
        "the unclean stop is logged:\n{log}"
    );
}

#[tokio::test]
async fn after_a_kill_without_the_intent_file_every_stream_gets_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::start(dir.path(), &[]).await;
    let (bid, btok) = p.user("idle").await;
    let by = format!("user:{bid}");
    p.push_user(bid, 1).await;
    let (status, _) = p.server.stop();
    assert!(status.success());
    let p = Proc::start(dir.path(), &[]).await;
    let (_, bhello) = p.live(&btok).await;
    let before = position(&bhello, &by);
    assert_eq!(before.0, 1, "kept across the clean stop");
    p.server.kill();
    // Without the file nothing says which streams the killed run wrote: all of them may have.
    std::fs::remove_file(dir.path().join("data/streams.intent")).unwrap();
    let p = Proc::start(dir.path(), &[]).await;
    let (mut bws, bhello) = p.ws(&btok).await;
    let after = position(&bhello, &by);
    assert_eq!(after.0, 1, "offsets go on");
    assert_ne!(after.1, before.1, "a new epoch");
    let (frames, ok) = recover(&mut bws, &by, 0, &before.1).await;
    assert!(!ok && frames.is_empty());
    let (status, _) = p.server.stop();
    assert!(status.success());
}

/// Rows of `table` (for `stream` when given).
async fn rows(url: &str, table: &str, stream: Option<&str>) -> i64 {
    let db = switchboard::db::connect(url).await.expect("database");
    let sql = match stream {
        Some(s) => format!("SELECT COUNT(*) AS n FROM {table} WHERE stream = '{s}'"),
        None => format!("SELECT COUNT(*) AS n FROM {table}"),
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// History kept in `url` survives a restart and is pruned to `history.size`, then by ttl.
async fn survives_and_is_pruned(url: Option<String>) {
    let tune = |c: &mut switchboard::Config| {
        if let Some(u) = &url {
            c.database.url = u.clone();
        }
        c.history.size = 5;
        c.history.ttl = Duration::from_secs(3);
        c.history.flush_interval = Duration::from_millis(50);
    };
    let app = spawn_with(tune).await;
    let db_url = app.state.cfg.database_url();
    let (uid, tok) = app.user("keeper", &["member"]).await;
    let stream = format!("user:{uid}");
    let (mut ws, hello) = app.ws(&tok).await;
    let (_, epoch) = position(&hello, &stream);
    for n in 1..=12 {
        let (s, _) = app
            .post(
                "/api/websocket/send/toUser",
                &app.admin_token,
                json!({"userId": uid, "event": "notice", "data": {"n": n}}),
            )
            .await;
        assert_eq!(s, 200);
    }
    for n in 1..=12u64 {
        assert_eq!(recv(&mut ws).await["offset"].as_u64(), Some(n));
    }
    // Flushed while running, and trimmed to the size.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rows(&db_url, "stream_positions", Some(&stream)).await != 1
        || rows(&db_url, "stream_entries", Some(&stream)).await != 5
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not flushed within 5s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(ws);
    app.shutdown.cancel();
    app.handle.await.unwrap().unwrap();

    let data_dir = app.dir.path().to_path_buf();
    let again = spawn_with(|c| {
        tune(c);
        c.server.data_dir = data_dir.clone();
    })
    .await;
    let tok = login(&again.http, &again.base, "keeper", "password-123").await;
    let (mut ws, hello) = again.ws(&tok).await;
    assert_eq!(position(&hello, &stream), (12, epoch.clone()));
    let (frames, ok) = recover(&mut ws, &stream, 8, &epoch).await;
    let offsets: Vec<u64> = frames
        .iter()
        .map(|v| v["offset"].as_u64().unwrap())
        .collect();
    assert!(ok);
    assert_eq!(offsets, [9, 10, 11, 12]);
    let (frames, ok) = recover(&mut ws, &stream, 6, &epoch).await;
    assert!(!ok && frames.is_empty(), "offset 7 left history (size 5)");
    // Past the ttl the stored entries go; the stream keeps its one position row. (Other
    // streams, such as the example addon's clock, keep getting pushes.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while rows(&db_url, "stream_entries", Some(&stream)).await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entries not pruned within 15s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows(&db_url, "stream_positions", Some(&stream)).await, 1);
    drop(ws);
    again.shutdown.cancel();
    again.handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn sqlite_history_survives_a_restart_and_is_pruned() {
    survives_and_is_pruned(None).await;
}

#[tokio::test]
async fn postgres_history_survives_a_restart_and_is_pruned() {
    if let Some(url) = test_postgres_url() {
        let url = scratch_database(&url, "sbtest_durable_history").await;
        survives_and_is_pruned(Some(url)).await
    }
}

#[tokio::test]
async fn mysql_history_survives_a_restart_and_is_pruned() {
    if let Some(url) = test_mysql_url() {
        let url = scratch_database(&url, "sbtest_durable_history").await;
        survives_and_is_pruned(Some(url)).await
    }
}

#[tokio::test]
async fn memory_only_history_starts_new_epochs() {
    let app = spawn_with(|c| c.history.durable = false).await;
    let (uid, tok) = app.user("forgetful", &["member"]).await;
    let stream = format!("user:{uid}");
    let (_, hello) = app.ws(&tok).await;
    let (_, epoch) = position(&hello, &stream);
    app.shutdown.cancel();
    app.handle.await.unwrap().unwrap();
    let data_dir = app.dir.path().to_path_buf();
    let again = spawn_with(|c| {
        c.history.durable = false;
        c.server.data_dir = data_dir.clone();
    })
    .await;
    let tok = login(&again.http, &again.base, "forgetful", "password-123").await;
    let (_, hello) = again.ws(&tok).await;
    assert_ne!(position(&hello, &stream).1, epoch);
    assert!(!data_dir.join("streams.intent").exists());
    again.shutdown.cancel();
    again.handle.await.unwrap().unwrap();
}
