//! Request heads the server cannot accept — garbage request lines, bad header names, heads too
//! large — are answered with the JSON error shape over raw sockets, like every other refusal;
//! random bytes are refused or cut off; good requests before them on the same connection are
//! answered first, and the server keeps serving.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Asserts one answer is the JSON error shape with this status and code.
fn assert_json_error(a: &RawAnswer, status: u16, code: &str) -> Value {
    assert_eq!(a.status, status, "{}\n{}", a.head, a.text());
    assert!(
        a.head.contains("content-type: application/json"),
        "not JSON: {}",
        a.head
    );
    let body = a.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_heads_get_a_json_400_naming_the_problem() {
    let app = spawn_app().await;
    let host = host_of(&app);
    let cases: Vec<(String, &str)> = vec![
        ("HELLO\r\n\r\n".into(), "method"),
        (
            format!("GET /a b c HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            "HTTP/1",
        ),
        ("GET / HTTP/9.9\r\n\r\n".into(), "HTTP/1"),
        // A TLS ClientHello sent to the plain-HTTP port.
        (
            "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}".into(),
            "method",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nBad Name: x\r\n\r\n"),
            "header name",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nX: a\u{1}b\r\n\r\n"),
            "header value",
        ),
        // A folded header line (obsolete, and refused in requests).
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nX: a\r\n b\r\n\r\n"),
            "header name",
        ),
        (
            format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: 12abc\r\n\r\n"
            ),
            "Content-Length",
        ),
        (
            format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4\r\n\
                 Content-Length: 5\r\n\r\n"
            ),
            "conflicting Content-Length",
        ),
        (
            format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n\r\n"
            ),
            "chunked",
        ),
    ];
    for (request, words) in cases {
        let answers = exchange(&host, request.as_bytes()).await;
        assert_eq!(answers.len(), 1, "{request:?}: {answers:?}");
        let body = assert_json_error(&answers[0], 400, "malformed_request");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(words), "{request:?}: {message}");
        assert!(
            answers[0].head.contains("connection: close"),
            "{}",
            answers[0].head
        );
    }
    // The server is none the worse for it.
    login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_a_json_431_naming_the_limit() {
    let app = spawn_app().await;
    let host = host_of(&app);
    // One huge header: the client is still sending when the answer comes, and gets it whole.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let answers = exchange(&host, huge.as_bytes()).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    let body = assert_json_error(&answers[0], 431, "headers_too_large");
    assert!(
        body["message"].as_str().unwrap().contains("65536 bytes"),
        "{body}"
    );
    // Too many header lines.
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let answers = exchange(&host, many.as_bytes()).await;
    let body = assert_json_error(&answers[0], 431, "headers_too_large");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("100 header lines"),
        "{body}"
    );
    // A head just under the limit is served.
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(60 * 1024)
    );
    let answers = exchange(&host, fits.as_bytes()).await;
    assert_eq!(answers[0].status, 200, "{}", answers[0].head);
}

/// Sends bytes and reads until the server closes; returns what it said, or an error naming
/// what it had said so far if the connection is still open after `within`.
async fn server_answer(app: &TestApp, bytes: &[u8], within: Duration) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(host_of(app)).await.unwrap();
    // The server may hang up before we finish writing; that is an answer too.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => {
                return Err(format!(
                    "connection still open after {within:?}; answered so far: {:?}",
                    String::from_utf8_lossy(&out)
                ));
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A deterministic stream of noise (xorshift), so failures are reproducible.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn random_bytes_and_broken_request_lines_are_refused_and_the_connection_closed() {
    let app = spawn_app().await;
    let within = Duration::from_secs(5);
    // A wrong HTTP version, a TLS ClientHello, too many header lines and a huge header have
    // their exact answers checked above; these are the inputs with no one right answer.
    let mut garbage: Vec<Vec<u8>> = (0..8).map(|seed| noise(2048, seed * 7919 + 1)).collect();
    garbage.push(b"GET\r\n\r\n".to_vec());
    garbage.push(b"GET /socket HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec());
    garbage.push(b"GET /socket HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec());
    garbage.push(format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes());
    for bytes in &garbage {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        let answer = match server_answer(&app, bytes, within).await {
            Ok(a) => a,
            Err(e) => panic!("garbage {shown:?}…: {e}"),
        };
        let line = status_line(&answer);
        assert!(
            answer.is_empty() || line.starts_with("HTTP/1.1 4") || line.starts_with("HTTP/1.0 4"),
            "garbage {shown:?}… answered {line:?}"
        );
    }
    // Still serving.
    let (mut ws, _) = app.ws(&app.admin_token).await;
    assert_alive(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_head_after_good_requests_on_one_connection_is_answered_after_them() {
    let app = spawn_app().await;
    let host = host_of(&app);
    // Pipelined: a GET, a login with a chunked body (wrong password), then garbage.
    let login_body = r#"{"username":"admin","password":"not-the-password"}"#;
    let (first, second) = login_body.split_at(20);
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n\
         POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n\
         {:x};note=1\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\nX-Trailer: t\r\n\r\n\
         GARBAGE\r\n\r\n",
        first.len(),
        second.len()
    );
    let answers = exchange(&host, request.as_bytes()).await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0].status, 200, "{}", answers[0].head);
    assert_json_error(&answers[1], 401, "invalid_credentials");
    assert_json_error(&answers[2], 400, "malformed_request");

    // A fixed-length body that happens to look like a bad head is a body, not a head.
    let body = "NOT A HEAD\r\n\r\n";
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}GET /healthz HTTP/1.1\r\nHost: {host}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let answers = exchange(&host, request.as_bytes()).await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_json_error(&answers[0], 400, "invalid_body");
    assert_eq!(answers[1].status, 200, "{}", answers[1].head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_frame_sent_with_the_handshake_reaches_the_socket() {
    let app = spawn_app().await;
    let host = host_of(&app);
    let mut s = TcpStream::connect(&host).await.unwrap();
    let handshake = format!(
        "GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {}\r\n\r\n",
        app.admin_token
    );
    // The first frame follows the head in the same write, before the 101 is seen.
    let mut bytes = handshake.into_bytes();
    bytes.extend(masked_frame(
        true,
        OP_TEXT,
        br#"{"event":"ping","seqno":"early"}"#,
    ));
    s.write_all(&bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("the reply within 5 s")
            .unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if text.contains(r#""seqno":"early""#) {
            assert!(text.starts_with("HTTP/1.1 101"), "{text}");
            assert!(text.contains(r#""event":"connected""#), "{text}");
            break;
        }
    }
}
