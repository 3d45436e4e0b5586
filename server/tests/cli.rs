//! The operator commands, run as the real binary in temporary folders: users, API keys, the
//! database they name, and refusing to make a new database where none is expected.

mod binary;

use binary::{login_status, run, start, tree};

const ADMIN_PW: &str = "first-admin-password";

/// A folder holding a server's database, as `serve` leaves it.
fn server_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["migrate", "--create"], &[], None).ok();
    dir
}

fn user_row(list: &str, name: &str) -> String {
    list.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("{name} not in:\n{list}"))
        .to_string()
}

#[test]
fn every_database_command_in_a_folder_without_one_refuses_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["migrate"],
        &["user", "list"],
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--password",
            "password-123",
        ],
        &[
            "user",
            "passwd",
            "--username",
            "admin",
            "--password",
            "x-new-password",
        ],
        &["user", "disable", "--username", "admin"],
        &["user", "enable", "--username", "admin"],
        &["apikey", "list"],
        &["apikey", "create", "--name", "billing"],
        &["apikey", "revoke", "--id", "1"],
    ];
    let expected = std::path::absolute(dir.path().join("data/switchboard.db")).unwrap();
    for args in commands {
        let out = run(dir.path(), args, &[], None).failed();
        assert!(
            out.stderr
                .contains("database: sqlite://data/switchboard.db?mode=rwc"),
            "{args:?} names the database it looked for:\n{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("no database at {}", expected.display()))
                && out.stderr.contains("--create"),
            "{args:?} says where it looked and how to go on:\n{}",
            out.stderr
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            tree(dir.path()),
            Vec::<std::path::PathBuf>::new(),
            "{args:?} left files behind"
        );
    }
}

#[test]
fn an_existing_file_without_the_schema_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/switchboard.db"), b"").unwrap();
    let out = run(dir.path(), &["user", "list"], &[], None).failed();
    assert!(
        out.stderr.contains("has no Switchboard tables"),
        "{}",
        out.stderr
    );
    // …and --create sets that one up.
    let out = run(dir.path(), &["user", "list", "--create"], &[], None).ok();
    assert!(out.stdout.contains("username"), "{}", out.stdout);
}

#[test]
fn create_flag_makes_a_new_database_where_it_was_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "user",
            "create",
            "--create",
            "--username",
            "alice",
            "--password",
            "password-123",
            "--role",
            "operator",
        ],
        &[],
        None,
    )
    .ok();
    assert!(out.stdout.contains("created user alice"), "{}", out.stdout);
    assert!(dir.path().join("data/switchboard.db").exists());
    // The commands sign no tokens, so they leave the JWT secret to the server.
    assert!(!dir.path().join("data/jwt_secret").exists());
    let list = run(dir.path(), &["user", "list"], &[], None).ok().stdout;
    let row = user_row(&list, "alice");
    assert!(row.contains("operator") && row.ends_with("yes"), "{row}");
}

#[test]
fn the_database_named_is_the_one_configured_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    // A PostgreSQL URL with a password, pointing at a port nothing listens on: the command
    // must name it without the password and give up quickly.
    let out = run(
        dir.path(),
        &["user", "list"],
        &[(
            "SWITCHBOARD_DATABASE__URL",
            "postgres://app:hunter2-secret@127.0.0.1:1/prod",
        )],
        None,
    )
    .failed();
    assert!(
        out.stderr
            .contains("database: postgres://app:***@127.0.0.1:1/prod"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert_eq!(tree(dir.path()), Vec::<std::path::PathBuf>::new());

    // A data dir given in the environment is where the database is looked for.
    let server = server_folder();
    let data = server.path().join("data");
    let data = data.to_str().unwrap();
    let out = run(
        dir.path(),
        &["user", "list"],
        &[("SWITCHBOARD_SERVER__DATA_DIR", data)],
        None,
    )
    .ok();
    assert!(out.stderr.contains(data), "{}", out.stderr);
    assert_eq!(tree(dir.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn commands_print_no_migration_steps_unless_asked_for_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["migrate", "--create"], &[], None).ok();
    assert!(
        !out.stderr.contains("igration"),
        "quiet by default:\n{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "migrations applied");

    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["migrate", "--create"],
        &[("SWITCHBOARD_LOG__LEVEL", "debug")],
        None,
    )
    .ok();
    assert!(
        out.stderr.contains("Applying migration"),
        "shown at debug:\n{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_lost_admin_password_is_reset_with_user_passwd_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ADMIN_PW)];
    let server = start(dir.path(), &env);
    let base = server.url("");
    assert_eq!(login_status(&base, "admin", ADMIN_PW).await, 200);
    server.stop();

    let out = run(
        dir.path(),
        &["user", "passwd", "--username", "admin"],
        &[],
        Some("recovered-password-1\n"),
    )
    .ok();
    assert!(out.stdout.contains("password of admin"), "{}", out.stdout);

    // The variable that chose the first password does not bring it back.
    let server = start(dir.path(), &env);
    let base = server.url("");
    assert_eq!(login_status(&base, "admin", ADMIN_PW).await, 401);
    assert_eq!(
        login_status(&base, "admin", "recovered-password-1").await,
        200
    );
    server.stop();
}

#[test]
fn passwd_takes_the_password_option_and_checks_it() {
    let dir = server_folder();
    run(
        dir.path(),
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--password",
            "password-123",
        ],
        &[],
        None,
    )
    .ok();
    run(
        dir.path(),
        &[
            "user",
            "passwd",
            "--username",
            "bob",
            "--password",
            "another-pass",
        ],
        &[],
        None,
    )
    .ok();
    let out = run(
        dir.path(),
        &["user", "passwd", "--username", "bob", "--password", "short"],
        &[],
        None,
    )
    .failed();
    assert!(out.stderr.contains("password"), "{}", out.stderr);
    let out = run(
        dir.path(),
        &["user", "passwd", "--username", "nobody"],
        &[],
        Some("whatever-password\n"),
    )
    .failed();
    assert!(
        out.stderr.contains("no user named `nobody`"),
        "{}",
        out.stderr
    );
    let out = run(
        dir.path(),
        &["user", "passwd", "--username", "bob"],
        &[],
        Some(""),
    )
    .failed();
    assert!(out.stderr.contains("no password given"), "{}", out.stderr);
}

#[tokio::test]
async fn disable_and_enable_decide_whether_a_user_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ADMIN_PW)];
    // The server made the admin; add an operator beside it.
    start(dir.path(), &env).stop();
    let create = [
        "user",
        "create",
        "--username",
        "carol",
        "--password",
        "password-123",
        "--role",
        "operator",
    ];
    run(dir.path(), &create, &[], None).ok();

    let out = run(
        dir.path(),
        &["user", "disable", "--username", "carol"],
        &[],
        None,
    )
    .ok();
    assert!(
        out.stdout.contains("carol (id 2) disabled"),
        "{}",
        out.stdout
    );
    let list = run(dir.path(), &["user", "list"], &[], None).ok().stdout;
    assert!(user_row(&list, "carol").ends_with("no"), "{list}");

    let server = start(dir.path(), &env);
    assert_eq!(
        login_status(&server.url(""), "carol", "password-123").await,
        401
    );
    server.stop();

    run(
        dir.path(),
        &["user", "enable", "--username", "carol"],
        &[],
        None,
    )
    .ok();
    let list = run(dir.path(), &["user", "list"], &[], None).ok().stdout;
    assert!(user_row(&list, "carol").ends_with("yes"), "{list}");
    let server = start(dir.path(), &env);
    assert_eq!(
        login_status(&server.url(""), "carol", "password-123").await,
        200
    );
    server.stop();

    // Nobody could manage the server any more without its only admin.
    let out = run(
        dir.path(),
        &["user", "disable", "--username", "admin"],
        &[],
        None,
    )
    .failed();
    assert!(out.stderr.contains("only enabled admin"), "{}", out.stderr);
    let out = run(
        dir.path(),
        &["user", "enable", "--username", "dave"],
        &[],
        None,
    )
    .failed();
    assert!(
        out.stderr.contains("no user named `dave`"),
        "{}",
        out.stderr
    );
}

#[test]
fn apikey_list_shows_names_and_prefixes_and_revoke_removes_a_key() {
    let dir = server_folder();
    let key = run(
        dir.path(),
        &["apikey", "create", "--name", "billing"],
        &[],
        None,
    )
    .ok()
    .stdout
    .trim()
    .to_string();
    run(
        dir.path(),
        &["apikey", "create", "--name", "crm"],
        &[],
        None,
    )
    .ok();
    let list = run(dir.path(), &["apikey", "list"], &[], None).ok().stdout;
    let billing = user_row(&list, "billing");
    assert!(billing.trim_start().starts_with("1 "), "{list}");
    assert!(billing.contains(&key[..12]), "prefix shown: {list}");
    assert!(
        !list.contains(&key),
        "the key itself is never listed: {list}"
    );
    assert!(list.contains("crm"), "{list}");

    let out = run(dir.path(), &["apikey", "revoke", "--id", "1"], &[], None).ok();
    assert!(
        out.stdout.contains("API key `billing` (id 1) revoked"),
        "{}",
        out.stdout
    );
    let list = run(dir.path(), &["apikey", "list"], &[], None).ok().stdout;
    assert!(!list.contains("billing") && list.contains("crm"), "{list}");
    let out = run(dir.path(), &["apikey", "revoke", "--id", "1"], &[], None).failed();
    assert!(
        out.stderr.contains("no API key with id 1"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_key_revoked_from_the_command_line_is_refused_by_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ADMIN_PW)],
    );
    let key = run(
        dir.path(),
        &["apikey", "create", "--name", "svc"],
        &[],
        None,
    )
    .ok()
    .stdout
    .trim()
    .to_string();
    let http = reqwest::Client::new();
    let stats = |k: String| {
        let http = http.clone();
        let url = server.url("/api/websocket/stats");
        async move {
            http.get(url)
                .header("X-API-Key", k)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(stats(key.clone()).await, 200);
    run(dir.path(), &["apikey", "revoke", "--id", "1"], &[], None).ok();
    assert_eq!(stats(key).await, 401);
    server.stop();
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--help"],
            &["serve", "migrate", "user", "apikey", "openapi"],
        ),
        (&["serve", "--help"], &["--config"]),
        (&["migrate", "--help"], &["--create"]),
        (
            &["user", "--help"],
            &["create", "list", "passwd", "disable", "enable"],
        ),
        (&["user", "list", "--help"], &["--create"]),
        (
            &["user", "passwd", "--help"],
            &["--username", "--password", "stdin"],
        ),
        (&["user", "disable", "--help"], &["--username"]),
        (&["user", "enable", "--help"], &["--username"]),
        (&["apikey", "--help"], &["create", "list", "revoke"]),
        (&["apikey", "list", "--help"], &["--create"]),
        (&["apikey", "revoke", "--help"], &["--id"]),
    ];
    for (args, words) in cases {
        let out = run(dir.path(), args, &[], None).ok();
        for w in *words {
            assert!(
                out.stdout.contains(w),
                "{args:?} mentions {w}:\n{}",
                out.stdout
            );
        }
    }
    assert_eq!(tree(dir.path()), Vec::<std::path::PathBuf>::new());
}

/// On a terminal the password is asked for and not shown as it is typed.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn passwd_on_a_terminal_does_not_echo_the_password() {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::process::Stdio;

    let dir = server_folder();
    let create = [
        "user",
        "create",
        "--username",
        "erin",
        "--password",
        "password-123",
    ];
    run(dir.path(), &create, &[], None).ok();

    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two new descriptors, which the Files below then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    let mut terminal = unsafe { std::fs::File::from_raw_fd(master) };
    let tty = unsafe { std::fs::File::from_raw_fd(slave) };
    let mut child = binary::command(dir.path())
        .args(["user", "passwd", "--username", "erin"])
        .stdin(Stdio::from(tty.try_clone().unwrap()))
        .stdout(Stdio::from(tty.try_clone().unwrap()))
        .stderr(Stdio::from(tty))
        .spawn()
        .unwrap();

    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("new password for erin: ") {
        let n = terminal.read(&mut buf).expect("the prompt");
        assert!(n > 0, "terminal closed before the prompt");
        seen.extend_from_slice(&buf[..n]);
    }
    terminal.write_all(b"typed-on-a-tty-99\n").unwrap();
    // Once the command exits the terminal reads fail (EIO): that is the end of its output.
    while let Ok(n) = terminal.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(child.wait().unwrap().success());
    let shown = String::from_utf8_lossy(&seen);
    assert!(shown.contains("password of erin"), "{shown}");
    assert!(!shown.contains("typed-on-a-tty-99"), "echoed: {shown}");

    // …and what was typed is the password now.
    let server = start(dir.path(), &[]);
    assert_eq!(
        login_status(&server.url(""), "erin", "typed-on-a-tty-99").await,
        200
    );
    server.stop();
}

#[tokio::test]
async fn changes_made_from_the_command_line_are_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[("SWITCHBOARD_AUTH__ADMIN_PASSWORD", ADMIN_PW)],
    );
    let env = [("USER", "ops-oncall")];
    let create = [
        "user",
        "create",
        "--username",
        "carol",
        "--password",
        "carol-password-1",
    ];
    run(dir.path(), &create, &env, None).ok();
    let passwd = [
        "user",
        "passwd",
        "--username",
        "carol",
        "--password",
        "carol-password-2",
    ];
    run(dir.path(), &passwd, &env, None).ok();
    run(
        dir.path(),
        &["user", "disable", "--username", "carol"],
        &env,
        None,
    )
    .ok();
    run(
        dir.path(),
        &["apikey", "create", "--name", "svc"],
        &env,
        None,
    )
    .ok();
    run(dir.path(), &["apikey", "revoke", "--id", "1"], &env, None).ok();

    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PW}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let page: serde_json::Value = http
        .get(server.url("/api/audit?actor=cli:ops-oncall&pageSize=50"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen: Vec<(String, String, String)> = page["list"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|r| {
            assert_eq!(r["result"], "ok", "{r}");
            assert_eq!(r["ip"], "local", "{r}");
            (
                r["action"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap().to_string(),
                r["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    seen.sort();
    let user_target = seen
        .iter()
        .find(|(a, ..)| a == "user.create")
        .map(|(_, t, _)| t.clone())
        .unwrap_or_else(|| panic!("no user.create in {seen:?}"));
    let mut want = vec![
        (
            "apikey.create".to_string(),
            "apikey:1".to_string(),
            "svc".to_string(),
        ),
        (
            "apikey.revoke".to_string(),
            "apikey:1".to_string(),
            "svc".to_string(),
        ),
        (
            "user.create".to_string(),
            user_target.clone(),
            "carol with role member".to_string(),
        ),
        (
            "user.update".to_string(),
            user_target.clone(),
            "carol: disabled".to_string(),
        ),
        (
            "user.update".to_string(),
            user_target,
            "carol: password".to_string(),
        ),
    ];
    want.sort();
    assert_eq!(seen, want);
    server.stop();
}
