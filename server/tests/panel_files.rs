//! The panel's files, served from the embedded copy or from `web.dir` on disk: the panel
//! itself is served, and no path — dot segments in any encoding, backslashes, absolute paths,
//! NUL bytes — leaves the panel folder, with or without a token.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw HTTP/1.1 request (no client-side path normalisation); returns status and all the
/// bytes after the head, however the body is delimited, so nothing the server sends escapes
/// the marker search.
async fn raw_get(host: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(host).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("an answer within 5s")
        .ok();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn traversal_paths(secret_name: &str) -> Vec<String> {
    let n = secret_name;
    vec![
        format!("/../{n}"),
        format!("/../../{n}"),
        format!("/%2e%2e/{n}"),
        format!("/%2E%2E/{n}"),
        format!("/..%2f{n}"),
        format!("/..%2F{n}"),
        format!("/%2e%2e%2f{n}"),
        format!("/..%252f{n}"),
        format!("/.%2e/{n}"),
        format!("/js/../../{n}"),
        format!("/js/../../../{n}"),
        format!("/js/%2e%2e/%2e%2e/{n}"),
        format!("/js/..%2f..%2f{n}"),
        format!("/css/..%5c..%5c{n}"),
        format!("/js/..\\..\\{n}"),
        format!("/..\\{n}"),
        format!("/....//{n}"),
        format!("/..;/{n}"),
        format!("/js/./../../{n}"),
        format!("/%c0%ae%c0%ae/{n}"),
        format!("/js/%00/../../{n}"),
        format!("//{n}"),
        "/../server/src/main.rs".into(),
        "/js/../../server/src/main.rs".into(),
        "/../Cargo.toml".into(),
        "/%2e%2e/Cargo.toml".into(),
        "/..%2fCargo.toml".into(),
        "/js/../../Cargo.toml".into(),
        "//etc/passwd".into(),
        "/%2fetc%2fpasswd".into(),
        "/../../../../../../../../etc/passwd".into(),
        "/js/../../../../../../../../etc/passwd".into(),
        "/web/index.html".into(),
        "/tests/".into(),
        "/js/..".into(),
    ]
}

fn assert_no_file_leaked(path: &str, status: u16, body: &str, markers: &[&str]) {
    assert!(
        matches!(status, 400 | 401 | 403 | 404),
        "{path}: status {status}"
    );
    for m in markers {
        assert!(!body.contains(m), "{path}: response contains {m:?}");
    }
}

#[tokio::test]
async fn path_traversal_on_the_embedded_panel_never_serves_a_file() {
    let app = spawn_app().await;
    let host = host_of(&app);
    // Control: the panel itself is served.
    let (s, body) = raw_get(&host, "/", None).await;
    assert_eq!(s, 200);
    assert!(body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"));
    let (s, _) = raw_get(&host, "/js/socket.js", None).await;
    assert_eq!(s, 200);
    let markers = [
        "[workspace]",
        "[package]",
        "fn main",
        "root:x:0:0",
        "#[tokio::main]",
    ];
    for path in traversal_paths("Cargo.toml") {
        for token in [None, Some(app.admin_token.as_str())] {
            let (status, body) = raw_get(&host, &path, token).await;
            assert_no_file_leaked(&path, status, &body, &markers);
            if token.is_some() {
                assert!(matches!(status, 400 | 404), "{path} with a token: {status}");
            }
        }
    }
}

#[tokio::test]
async fn path_traversal_on_a_live_panel_folder_never_leaves_it() {
    // `web.dir` serves from disk: the folder sits next to a secret file.
    let root = tempfile::tempdir().unwrap();
    let www = root.path().join("www");
    std::fs::create_dir_all(www.join("js")).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><title>panel</title>",
    )
    .unwrap();
    std::fs::write(www.join("js/app.js"), "export const ok = 1;").unwrap();
    std::fs::write(root.path().join("secret.txt"), "TOP-SECRET-MARKER-7f3a").unwrap();
    let www_str = www.to_str().unwrap().to_string();
    let app = spawn_with(move |c| c.web.dir = www_str).await;
    let host = host_of(&app);
    let (s, body) = raw_get(&host, "/js/app.js", None).await;
    assert_eq!((s, body.as_str()), (200, "export const ok = 1;"));
    let mut paths = traversal_paths("secret.txt");
    // Absolute paths, in every spelling.
    let abs = root.path().join("secret.txt");
    let abs = abs.to_str().unwrap();
    paths.push(abs.to_string());
    paths.push(format!("/{abs}"));
    paths.push(format!("/js/../..{abs}"));
    paths.push(abs.replace('/', "%2f"));
    for path in paths {
        for token in [None, Some(app.admin_token.as_str())] {
            let (status, body) = raw_get(&host, &path, token).await;
            assert_no_file_leaked(&path, status, &body, &["TOP-SECRET-MARKER", "root:x:0:0"]);
        }
    }
}
