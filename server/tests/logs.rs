//! The server's log as an operator reads it: written to a file it has no colour codes, in JSON
//! every line is an object, start-up names where everything is, and a failed start says what
//! failed and exits quickly.

mod binary;

use std::time::Duration;

use binary::{start, start_expecting_exit};
use serde_json::{Value, json};

const ADMIN_PW: &str = "log-admin-password";

async fn admin_token(base: &str, password: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn send_to_all(base: &str, token: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/websocket/send/toAll"))
        .bearer_auth(token)
        .json(&json!({"event": "notice", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_redirected_log_has_no_escape_codes_and_starts_with_the_urls_and_addons() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ADMIN_PW)],
    );
    let addr = server.addr;
    let token = admin_token(&server.url(""), ADMIN_PW).await;
    send_to_all(&server.url(""), &token).await;
    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(!log.contains('\x1b'), "escape codes in a file:\n{log}");
    for part in [
        format!("panel=http://{addr}/"),
        format!("swagger=http://{addr}/swagger"),
        format!("socket=ws://{addr}/socket"),
        "addons loaded".to_string(),
        "addons=hgexample".to_string(),
        "database=sqlite://data/switchboard.db?mode=rwc".to_string(),
    ] {
        assert!(log.contains(&part), "start-up log lacks {part}:\n{log}");
    }
    assert!(
        !log.contains("igration"),
        "no migration steps at info:\n{log}"
    );
}

#[tokio::test]
async fn with_log_format_json_every_line_is_a_json_object() {
    let dir = tempfile::tempdir().unwrap();
    // No admin password: the generated one is announced, one more kind of line to check.
    let server = start(dir.path(), &[("SWITCHBOARD_LOG__FORMAT", "json")]);
    let addr = server.addr;
    let early = std::fs::read_to_string(&server.log).unwrap();
    let at = early
        .find("generated password: ")
        .expect("password announced")
        + 20;
    let password: String = early[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let token = admin_token(&server.url(""), &password).await;
    send_to_all(&server.url(""), &token).await;
    let (status, log) = server.stop();
    assert!(status.success(), "{status}\n{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{log}");
    for l in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(l[key].is_string(), "{key} missing in {l}");
        }
    }
    let listening = lines
        .iter()
        .find(|l| l["message"] == format!("listening on {addr}"))
        .unwrap_or_else(|| panic!("no listening line:\n{log}"));
    assert_eq!(listening["panel"], format!("http://{addr}/"));
    assert_eq!(listening["socket"], format!("ws://{addr}/socket"));
    let addons = lines
        .iter()
        .find(|l| l["message"] == "addons loaded")
        .unwrap();
    let built = switchboard::addons::Addons::default().names().len();
    assert_eq!(addons["count"], built, "numbers stay numbers: {addons}");
    let audit = lines
        .iter()
        .find(|l| l["target"] == "audit" && l["message"] == "send")
        .unwrap_or_else(|| panic!("no audit line for the send:\n{log}"));
    assert_eq!(audit["count"], 0, "{audit}");
    assert_eq!(audit["by"], "admin", "{audit}");
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("generated password")),
        "{log}"
    );
}

#[test]
fn a_port_in_use_names_the_address_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (status, took, log) = start_expecting_exit(
        dir.path(),
        &[("SWITCHBOARD_SERVER__ADDRESS", &address)],
        Duration::from_secs(15),
    );
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("cannot listen on {address}")) && log.contains("already in use"),
        "{log}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    drop(taken);
}

#[test]
fn an_unreachable_database_fails_fast_naming_its_host_not_its_password() {
    let dir = tempfile::tempdir().unwrap();
    // sqlx alone retries a refused connection for its whole 10 s pool timeout.
    let (status, took, log) = start_expecting_exit(
        dir.path(),
        &[
            (
                "SWITCHBOARD_DATABASE__URL",
                "postgres://postgres:hunter2-secret@127.0.0.1:1/test",
            ),
            ("SWITCHBOARD_LOG__FORMAT", "json"),
        ],
        Duration::from_secs(9),
    );
    assert!(!status.success(), "{log}");
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert!(!log.contains("hunter2"), "{log}");
    let error = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    let msg = error["message"].as_str().unwrap();
    assert!(
        msg.contains("postgres://postgres:***@127.0.0.1:1/test")
            && msg.contains("host 127.0.0.1:1"),
        "{msg}"
    );
}

#[test]
fn an_unreachable_redis_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, log) = start_expecting_exit(
        dir.path(),
        &[(
            "SWITCHBOARD_CLUSTER__REDIS_URL",
            "redis://:hunter2-secret@127.0.0.1:1",
        )],
        Duration::from_secs(20),
    );
    assert!(!status.success(), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    assert!(
        log.contains("cluster.redis_url redis://:***@127.0.0.1:1"),
        "{log}"
    );
}
