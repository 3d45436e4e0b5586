//! The HTTP layer's own limits, attacked over raw sockets: a head that never finishes, a body
//! that never finishes, a body too large, a connection that idles, and more unauthenticated
//! connections than allowed. Each is answered with JSON (or, for a head that never ends,
//! simply closed), and real users are served meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads whatever the server sends until it closes the connection (or `limit` passes, which
/// panics): the bytes and how long the connection stayed open.
async fn read_until_closed(s: &mut TcpStream, started: Instant, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &[u8]) -> (u16, String, Value) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

fn login_head(host: &str, content_length: usize) -> String {
    format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n"
    )
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_bodies_get_a_json_408_and_are_closed_while_a_real_login_succeeds() {
    let app = spawn_with(|c| {
        c.server.body_timeout = Duration::from_secs(1);
    })
    .await;
    let host = host_of(&app);
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let host = host.clone();
        stalled.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut s = TcpStream::connect(&host).await.unwrap();
            s.write_all(login_head(&host, 1_000_000).as_bytes())
                .await
                .unwrap();
            s.write_all(b"{").await.unwrap();
            let raw = read_until_closed(&mut s, started, Duration::from_secs(8)).await;
            (parse_answer(&raw), started.elapsed())
        }));
    }
    // Meanwhile the admin logs in as usual.
    tokio::time::sleep(Duration::from_millis(200)).await;
    login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    for t in stalled {
        let ((status, head, body), open_for) = t.await.unwrap();
        assert_eq!(status, 408, "{head} {body}");
        assert_eq!(body["code"], "body_timeout", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("server.body_timeout")
        );
        assert!(head.contains("connection: close"), "{head}");
        assert!(open_for >= Duration::from_millis(900), "{open_for:?}");
    }
    login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declared_oversized_body_is_refused_with_413_before_it_is_read() {
    let app = spawn_app().await;
    let host = host_of(&app);
    let started = Instant::now();
    let mut s = TcpStream::connect(&host).await.unwrap();
    s.write_all(login_head(&host, 100 * 1024 * 1024).as_bytes())
        .await
        .unwrap();
    // Not one body byte is sent: the answer comes from the declared length alone.
    let raw = read_until_closed(&mut s, started, Duration::from_secs(5)).await;
    let (status, head, body) = parse_answer(&raw);
    assert_eq!(status, 413, "{head}");
    assert_eq!(body["code"], "body_too_large");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("server.max_body_size"),
        "{body}"
    );
    assert!(head.contains("application/json"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_streamed_bodies_are_cut_at_the_limit_and_memory_stays_bounded() {
    let app = spawn_app().await;
    let host = host_of(&app);
    let before = rss_bytes();
    let mut senders = Vec::new();
    for _ in 0..4 {
        let host = host.clone();
        senders.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut s = TcpStream::connect(&host).await.unwrap();
            let head = format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            // 100 MiB in 64 KiB chunks of a JSON string that never ends.
            let chunk = vec![b'a'; 64 * 1024];
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            let mut sent = 0usize;
            let _ = s.write_all(b"6\r\n{\"a\":\"\r\n").await;
            while sent < 100 * 1024 * 1024 {
                if s.write_all(&framed).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            let raw = read_until_closed(&mut s, started, Duration::from_secs(20)).await;
            (parse_answer(&raw), sent)
        }));
    }
    for t in senders {
        let ((status, head, body), sent) = t.await.unwrap();
        assert_eq!(status, 413, "{head} {body}");
        assert_eq!(body["code"], "body_too_large");
        assert!(
            sent < 100 * 1024 * 1024,
            "the server read the whole 100 MiB"
        );
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "four 100 MiB bodies grew the process by {} MiB",
        grown >> 20
    );
    login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_within_the_limit_is_served_and_the_limit_is_configurable() {
    let app = spawn_with(|c| c.server.max_body_size = 256).await;
    // Small enough: a normal login.
    login(&app.http, &app.base, "admin", ADMIN_PASSWORD).await;
    // Over the configured size, with a correct Content-Length.
    let padding = "x".repeat(300);
    let r = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD, "pad": padding}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "body_too_large");
    assert!(v["message"].as_str().unwrap().contains("256"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let app = spawn_with(|c| {
        c.server.keepalive_timeout = Duration::from_secs(1);
        c.server.header_timeout = Duration::from_secs(30);
    })
    .await;
    let host = host_of(&app);
    let mut s = TcpStream::connect(&host).await.unwrap();
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    // Requests more often than the idle limit keep the connection open past it.
    for _ in 0..4 {
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Then it idles: closed after about a second, long before the header timeout.
    let idle_from = Instant::now();
    let rest = read_until_closed(&mut s, idle_from, Duration::from_secs(6)).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(idle_from.elapsed() >= Duration::from_millis(400));
}

/// Sends `pieces` one every `every`, then `filler` forever (the blank line that ends a head
/// never comes); returns how long the server kept the connection open. Panics when it is open
/// past `limit`, or when the server answers a head that never ended instead of just closing.
async fn trickle_until_closed(
    host: String,
    pieces: Vec<Vec<u8>>,
    filler: Vec<u8>,
    every: Duration,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(&host).await.unwrap();
    let mut buf = [0u8; 1024];
    let mut i = 0usize;
    loop {
        if started.elapsed() > limit {
            panic!("a trickling head was still open after {limit:?} ({i} pieces sent)");
        }
        let piece = pieces.get(i).unwrap_or(&filler);
        i += 1;
        if s.write_all(piece).await.is_err() {
            return started.elapsed();
        }
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(n)) => panic!(
                "an answer to half a head: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
        }
    }
}

/// Sends `bytes`, then waits silently; returns how long the server kept the connection open,
/// panicking past `limit`.
async fn stall_until_closed(host: String, bytes: Vec<u8>, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(&host).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    read_until_closed(&mut s, started, limit).await;
    started.elapsed()
}

/// A head must be complete within `server.header_timeout`: a connection that trickles its
/// head in, stops half-way or never says anything is closed when the timeout is up — not
/// before — while real clients are served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heads_that_trickle_in_or_stall_are_cut_at_the_header_timeout_and_hurt_nobody() {
    // Out of the box the timeout is short enough to be a defence.
    let defaults = base_config(std::path::Path::new("."));
    assert!(
        defaults.server.header_timeout <= Duration::from_secs(15),
        "default header timeout {:?}",
        defaults.server.header_timeout
    );
    let timeout = Duration::from_secs(1);
    let app = spawn_with(|c| {
        c.server.header_timeout = timeout;
        // An idle limit far away, so only the header timeout can be what closes.
        c.server.keepalive_timeout = Duration::from_secs(60);
    })
    .await;
    let bound = Duration::from_secs(6);
    let host = host_of(&app);
    let mut tricklers = Vec::new();
    // Heads trickled a byte at a time…
    let head = format!("GET /socket HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").into_bytes();
    for _ in 0..20 {
        tricklers.push(tokio::spawn(trickle_until_closed(
            host.clone(),
            head.iter().map(|b| vec![*b]).collect(),
            b"a".to_vec(),
            Duration::from_millis(250),
            bound,
        )));
    }
    // …and a header line at a time.
    tricklers.push(tokio::spawn(trickle_until_closed(
        host.clone(),
        vec![b"GET /healthz HTTP/1.1\r\n".to_vec()],
        b"X-Slow: 1\r\n".to_vec(),
        Duration::from_millis(100),
        bound,
    )));
    // Requests that start and then go silent, and a connection that never says anything.
    let mut stalls = Vec::new();
    for stalled in [
        String::new(),
        "\r\n\r\n\r\n\r\n".to_string(),
        "GET /socket HTTP/1.1\r\n".to_string(),
        format!("GET /socket HTTP/1.1\r\nHost: {host}\r\n"),
        format!(
            "GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        ),
    ] {
        stalls.push(tokio::spawn(stall_until_closed(
            host.clone(),
            stalled.into_bytes(),
            bound,
        )));
    }
    // Meanwhile real clients are served as usual.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut ws, _) = app.ws(&app.admin_token).await;
    assert_alive(&mut ws).await;
    let (s, _) = app.get("/api/auth/me", &app.admin_token).await;
    assert_eq!(s, 200);
    let mut failures = Vec::new();
    let total = tricklers.len() + stalls.len();
    for t in tricklers {
        match t.await {
            Ok(open) => assert!(
                open >= timeout.mul_f32(0.9),
                "a trickling head was cut after {open:?}, before the header timeout"
            ),
            Err(e) => failures.push(e),
        }
    }
    for t in stalls {
        if let Err(e) = t.await {
            failures.push(e);
        }
    }
    let failures: Vec<String> = failures
        .into_iter()
        .map(|e| {
            e.into_panic()
                .downcast::<String>()
                .map(|b| *b)
                .unwrap_or_default()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {total} connections outlived the header timeout:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_alive(&mut ws).await;
}

/// A connection that is open and has sent nothing, so it counts as unauthenticated.
async fn silent(host: &str) -> TcpStream {
    TcpStream::connect(host).await.unwrap()
}

/// An anonymous keep-alive connection that was given a place under the cap: its first request
/// is answered 200 and it stays open. (A connection that closed a moment ago may still hold its
/// place, so a newcomer is retried until one is free.)
async fn counted_squatter(host: &str) -> TcpStream {
    for _ in 0..50 {
        let mut s = TcpStream::connect(host).await.unwrap();
        let req = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no place under the cap freed up");
}

async fn raw_request(host: &str, extra_headers: &str, path: &str) -> (u16, String, Value) {
    let started = Instant::now();
    let mut s = TcpStream::connect(host).await.unwrap();
    let body = json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
    let method = if path == "/api/auth/login" {
        "POST"
    } else {
        "GET"
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let raw = read_until_closed(&mut s, started, Duration::from_secs(10)).await;
    parse_answer(&raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthenticated_connections_past_the_cap_are_refused_but_token_holders_are_served() {
    let app = spawn_with(|c| {
        c.server.max_unauthenticated = 3;
        c.server.header_timeout = Duration::from_secs(30);
    })
    .await;
    let host = host_of(&app);
    // The test client's pooled connection logged in anonymously; a request with the token
    // on it makes it an authenticated one, so the three silent connections below fill the cap.
    let (status, _) = app.get("/api/auth/me", &app.admin_token).await;
    assert_eq!(status, 200);
    // Silent connections fill the cap. The test client may hold a second, still anonymous,
    // pooled connection of its own, so fewer than three may be needed: fill until refused.
    let mut squatters = Vec::new();
    loop {
        squatters.push(silent(&host).await);
        // Long enough for the previous probe's closed connection to give its place back.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if raw_request(&host, "", "/healthz").await.0 == 503 {
            break;
        }
        assert!(
            squatters.len() < 3,
            "three anonymous connections did not fill a cap of 3"
        );
    }

    let (status, head, body) = raw_request(&host, "", "/api/auth/login").await;
    assert_eq!(status, 503, "{head} {body}");
    assert_eq!(body["code"], "too_many_unauthenticated");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("server.max_unauthenticated")
    );
    // A health probe without a credential is anonymous too.
    let (status, _, _) = raw_request(&host, "", "/healthz").await;
    assert_eq!(status, 503);

    // A token holder on a new connection is not crowded out.
    let bearer = format!("Authorization: Bearer {}\r\n", app.admin_token);
    let (status, head, body) = raw_request(&host, &bearer, "/api/auth/me").await;
    assert_eq!(status, 200, "{head} {body}");
    assert_eq!(body["username"], "admin");
    // A bad token does not count as one.
    let (status, _, _) = raw_request(&host, "Authorization: Bearer nope\r\n", "/api/auth/me").await;
    assert_eq!(status, 503);

    // A squatter that authenticates frees its place: an anonymous login works again.
    let mut s = squatters.pop().unwrap();
    let req = format!(
        "GET /api/auth/me HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\r\n",
        app.admin_token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (status, head, body) = raw_request(&host, "", "/api/auth/login").await;
    assert_eq!(status, 200, "{head} {body}");

    // Full again; then a squatter that leaves frees its place too.
    squatters.push(counted_squatter(&host).await);
    let (status, _, _) = raw_request(&host, "", "/healthz").await;
    assert_eq!(status, 503);
    drop(squatters.pop());
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if raw_request(&host, "", "/healthz").await.0 == 200 {
            freed = true;
            break;
        }
    }
    assert!(freed, "a closed connection kept its place");
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_the_route_never_reads_does_not_keep_the_connection() {
    let app = spawn_with(|c| {
        c.server.body_timeout = Duration::from_secs(30);
        c.server.keepalive_timeout = Duration::from_secs(30);
    })
    .await;
    let host = host_of(&app);
    for path in ["/healthz", "/no/such/route", "/api/auth/me"] {
        let started = Instant::now();
        let mut s = TcpStream::connect(&host).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let raw = read_until_closed(&mut s, started, Duration::from_secs(5)).await;
        let (status, head, body) = parse_answer(&raw);
        assert!(status >= 400, "{path}: {head}");
        assert!(body["code"].is_string(), "{path}: {body}");
        assert!(head.contains("connection: close"), "{path}: {head}");
    }
}
