//! Memory under attack, on a real server process with tight limits: clients that stream
//! messages of the largest allowed size at the rate limit, and clients that never read while
//! broadcasts pile up for them. The server's resident memory stays under the bound SECURITY.md
//! states:
//!
//! ```text
//! baseline + connections × (64 KiB + send_queue_bytes + 3 × max_message_size)
//!          + 2 × history.max_bytes + database cache
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const MAX_MESSAGE: usize = 4 * 1024;
const SEND_QUEUE: usize = 16 * 1024;
const HISTORY_BYTES: usize = 1024 * 1024;
const PER_SECOND: u64 = 50;
/// What each connection may cost beyond its queue and messages in flight: its task, buffers
/// (tungstenite's 2 KiB read and 4 KiB write buffers, 16 KiB of read-ahead while it streams),
/// indexes and allocator slack.
const PER_CONNECTION: usize = 64 * 1024;
/// SQLite's page cache on each of the pool's 4 connections (its default, 2,000 KiB each), which
/// fills as durable history and the audit log are written.
const DATABASE_CACHE: usize = 4 * 2000 * 1024;
const WRITERS: usize = 50;
const SILENT: usize = 50;

/// A socket that never reads: a tiny receive buffer, so the server's send queue for it fills.
async fn silent_client(ws_url: &str, token: &str) -> Ws {
    let addr = ws_url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

/// `switchboard_closes_total{code="4008"}`: connections cut off because their queue overflowed.
async fn closes_4008(probe: &mut KeepAlive) -> u64 {
    probe
        .get("/metrics")
        .await
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_closes_total{code=\"4008\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_under_the_stated_bound_while_clients_flood_and_refuse_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerCommand::new(dir.path())
        .env(
            "SWITCHBOARD_WEBSOCKET__MAX_MESSAGE_SIZE",
            MAX_MESSAGE.to_string(),
        )
        .env(
            "SWITCHBOARD_WEBSOCKET__SEND_QUEUE_BYTES",
            SEND_QUEUE.to_string(),
        )
        .env(
            "SWITCHBOARD_WEBSOCKET__RATE_LIMIT__PER_SECOND",
            PER_SECOND.to_string(),
        )
        .env(
            "SWITCHBOARD_WEBSOCKET__RATE_LIMIT__BURST",
            (2 * PER_SECOND).to_string(),
        )
        .env("SWITCHBOARD_WEBSOCKET__MAX_CONNECTIONS_PER_USER", "0")
        .env("SWITCHBOARD_HISTORY__MAX_BYTES", HISTORY_BYTES.to_string())
        .start()
        .await;
    let pid = server.pid();
    let http = reqwest::Client::new();
    let token = login(&http, &server.base, "admin", ADMIN_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_of(pid);

    // Clients that never read, in the tag the broadcasts go to.
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        let mut ws = silent_client(&server.ws_url, &token).await;
        assert_eq!(recv(&mut ws).await["event"], "connected");
        let v = request(&mut ws, "join", json!({"id": "sink"})).await;
        assert_eq!(v["code"], 0, "{v}");
        silent.push(ws);
    }

    // Clients that stream messages of the largest size at the rate limit, reading replies.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let padding = "p".repeat(MAX_MESSAGE - r#"{"event":"ping","data":""}"#.len());
    let frame = format!(r#"{{"event":"ping","data":"{padding}"}}"#);
    assert_eq!(frame.len(), MAX_MESSAGE);
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (ws, _) = {
            let mut ws = ws_connect(&server.ws_url, Some(&token)).await.unwrap();
            let hello = recv(&mut ws).await;
            (ws, hello)
        };
        let (mut tx, mut rx) = ws.split();
        let limited = limited.clone();
        let drain = tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m
                    && t.contains(r#""code":429"#)
                {
                    limited.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let (stop, sent, frame) = (stop.clone(), sent.clone(), frame.clone());
        writers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / PER_SECOND));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if tx.send(Message::Text(frame.clone().into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            drop(tx);
            drain.abort();
        }));
    }
    let connected_rss = rss_of(pid);

    // Broadcasts to the silent clients, nearly as large as their queue takes in one frame,
    // from two senders, until every silent client's queue has overflowed (once the kernel's
    // socket buffers are full too) and the server has cut it off.
    let push_data = "b".repeat(SEND_QUEUE - 1024);
    let broadcasters: Vec<_> = (0..2)
        .map(|_| {
            let (http, base, token, stop) = (
                http.clone(),
                server.base.clone(),
                token.clone(),
                stop.clone(),
            );
            let push_data = push_data.clone();
            tokio::spawn(async move {
                let mut pushes = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/api/websocket/send/toTag"))
                        .bearer_auth(&token)
                        .json(&json!({"tag": "sink", "event": "flood", "data": push_data}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    pushes += 1;
                }
                pushes
            })
        })
        .collect();

    let mut probe = KeepAlive::connect(&format!("127.0.0.1:{}", server.port)).await;
    let mut peak = 0;
    let mut cut_off = 0;
    let started = tokio::time::Instant::now();
    let mut last_probe = started;
    while cut_off < SILENT as u64 && started.elapsed() < Duration::from_secs(30) {
        peak = peak.max(rss_of(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_probe.elapsed() >= Duration::from_millis(500) {
            last_probe = tokio::time::Instant::now();
            cut_off = closes_4008(&mut probe).await;
        }
    }
    // The writers go on a little longer with nobody left to cut off.
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < until {
        peak = peak.max(rss_of(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attack = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut pushes = 0;
    for b in broadcasters {
        pushes += b.await.unwrap();
    }
    for w in writers {
        w.await.unwrap();
    }
    peak = peak.max(rss_of(pid));

    let connections = (WRITERS + SILENT) as u64;
    let per_connection = (PER_CONNECTION + SEND_QUEUE + 3 * MAX_MESSAGE) as u64;
    // History itself, and the durable writer's copy of what it has not stored yet.
    let history = 2 * HISTORY_BYTES as u64;
    let bound = baseline + connections * per_connection + history + DATABASE_CACHE as u64;
    eprintln!(
        "baseline {} KiB, {connections} connected {} KiB, peak {} KiB, bound {} KiB; \
         {} max-size messages in, {} rate limited, {pushes} broadcasts, {cut_off} cut off in {attack:?}",
        baseline / 1024,
        connected_rss / 1024,
        peak / 1024,
        bound / 1024,
        sent.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    // The attack happened as described: the streams ran at the limit, and the silent
    // clients' queues filled up until the server cut them off.
    let expected = WRITERS as f64 * PER_SECOND as f64 * attack.as_secs_f64();
    assert!(
        sent.load(Ordering::Relaxed) as f64 >= expected * 0.5,
        "the writers did not stream at the rate limit"
    );
    assert_eq!(
        cut_off, SILENT as u64,
        "silent clients whose queues overflowed"
    );
    assert!(
        peak <= bound,
        "RSS peaked at {} KiB, over the bound of {} KiB",
        peak / 1024,
        bound / 1024
    );
    drop(silent);
}
