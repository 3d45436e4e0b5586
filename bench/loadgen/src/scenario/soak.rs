//! Soak (Switchboard only): a steady population of connections under mixed load for a long time,
//! checking every answer on the way. `bench/soak.sh` runs it and judges the result.
//!
//! - `--connections` slots each hold one connection at a time. A connection lives an exponentially
//!   distributed time (mean 100 / `--churn` seconds, so `--churn` per cent of the population leaves
//!   each second), then leaves — with a close handshake, or (`--abrupt` per cent) by dropping the
//!   socket — and its slot reconnects at once.
//! - While alive it sends, every `--action-interval` seconds on average, one request with a seqno:
//!   echo (the hgexample event), join, quit, publish (to a tag it has joined) or ping. Every reply
//!   must come back with its own seqno, event and code 0 and the right data, within
//!   `--reply-timeout`.
//! - An API task sends `toUser`, `toTag` and (one in ten) `toAll` at `--api-rate`, and moves random
//!   connections in and out of server-side `sys:` tags; every answer must be 200.
//! - A kicker kicks one connection every `--kick-interval` seconds through
//!   `POST /api/websocket/kick`; it answers `{"closed":1}` and the connection must see `kick`, then
//!   close 4001. A connection taken by the kicker never leaves by itself, so every kick has a target.
//! - `--slow` clients, one cycle after another, flood echo requests with large payloads and stop
//!   reading; the server must cut them off (close 4008, or a dropped socket after its write
//!   timeout) while everyone else carries on.
//! - Every `--sample-interval` seconds: the server's RSS and CPU time, connections online, replies
//!   and their p99 latency in the window, errors so far.
//!
//! Anything unexpected is counted as an error by kind, with the first examples kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::Ctx;
use crate::http::HttpClient;
use crate::net::Sources;
use crate::procfs;
use crate::stats::{Recorder, secs, summary, unix_nanos};
use crate::target::ECHO_EVENT;
use crate::target::create_member;

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Minutes of mixed load.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Connections held at all times (slots that reconnect as soon as theirs ends).
    #[arg(long, default_value_t = 2_000)]
    pub connections: usize,
    /// Member users the connections are spread over (created as `soak-u1`, …).
    #[arg(long, default_value_t = 20)]
    pub users: usize,
    /// Per cent of the population that leaves, and is replaced, each second.
    #[arg(long, default_value_t = 2.0)]
    pub churn: f64,
    /// Per cent of leaves that drop the socket without a close handshake.
    #[arg(long, default_value_t = 25.0)]
    pub abrupt: f64,
    /// Mean seconds between one connection's requests.
    #[arg(long, default_value_t = 4.0)]
    pub action_interval: f64,
    /// Size of the pool of tags clients join and publish to (`soak-t0`, …).
    #[arg(long, default_value_t = 200)]
    pub tags: usize,
    /// Most tags one connection joins by itself.
    #[arg(long, default_value_t = 4)]
    pub max_tags: usize,
    /// API sends per second (toUser and toTag in turn, every tenth toAll).
    #[arg(long, default_value_t = 4.0)]
    pub api_rate: f64,
    /// Seconds between kicks.
    #[arg(long, default_value_t = 2.0)]
    pub kick_interval: f64,
    /// Slow clients (each one cycle after another: flood, stop reading, get cut off, reconnect).
    #[arg(long, default_value_t = 4)]
    pub slow: usize,
    /// Seconds a slow client keeps not reading after its flood; must exceed the server's
    /// `websocket.write_timeout` plus its close grace (10 s + 2 s by default).
    #[arg(long, default_value_t = 20.0)]
    pub slow_stall: f64,
    /// Bytes of padding in a slow client's echo requests (under `websocket.max_message_size`).
    #[arg(long, default_value_t = 32 * 1024)]
    pub slow_payload: usize,
    /// Seconds between samples of the server's RSS.
    #[arg(long, default_value_t = 10.0)]
    pub sample_interval: f64,
    /// Seconds a request may wait for its reply before it counts as missing.
    #[arg(long, default_value_t = 15.0)]
    pub reply_timeout: f64,
    /// Password given to the member users it creates.
    #[arg(long, default_value = "soak-member-pw")]
    pub user_password: String,
}

// ---- shared state --------------------------------------------------------------------------------

struct Shared {
    addr: SocketAddr,
    bearer: String,
    sources: Sources,
    args: SoakArgsCopy,
    tokens: Vec<(i64, String)>,
    stop: AtomicBool,
    /// Per slot: the connection's id while it may be kicked. The kicker takes it out; a
    /// connection that finds its entry gone knows a kick is coming and waits for it.
    live: Vec<Mutex<Option<String>>>,
    online: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    examples: Mutex<Vec<String>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// Round trips of every request, whole run and current sample window.
    rtt: Recorder,
    window_rtt: Recorder,
    /// API pushes: send call to receipt.
    push_latency: Recorder,
}

/// The numbers the tasks need, copied out of the clap struct.
#[derive(Clone)]
struct SoakArgsCopy {
    mean_life: f64,
    abrupt: f64,
    action_interval: f64,
    tags: usize,
    max_tags: usize,
    reply_timeout: Duration,
    slow_stall: Duration,
    slow_payload: usize,
}

const MAX_EXAMPLES: usize = 40;
const KICK_WAIT: Duration = Duration::from_secs(15);
const CLOSE_WAIT: Duration = Duration::from_secs(5);
const MAX_PENDING: usize = 8;

impl Shared {
    fn error(&self, kind: &'static str, detail: impl Into<String>) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
        let mut ex = self.examples.lock().unwrap();
        if ex.len() < MAX_EXAMPLES {
            let mut d: String = detail.into();
            d.truncate(300);
            ex.push(format!("{kind}: {d}"));
        }
    }

    fn count(&self, kind: &'static str, n: u64) {
        *self.counts.lock().unwrap().entry(kind).or_default() += n;
    }

    fn error_total(&self) -> u64 {
        self.errors.lock().unwrap().values().sum()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// xorshift64*: enough randomness for load, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Exponentially distributed with the given mean.
    fn exp(&mut self, mean: f64) -> Duration {
        Duration::from_secs_f64(-(1.0 - self.f64()).ln() * mean)
    }
}

// ---- connections ---------------------------------------------------------------------------------

type Ws = WebSocketStream<TcpStream>;

enum Frame {
    Text(String),
    /// A close frame and its code (None when it carried none).
    Close(Option<u16>),
    /// The stream ended or failed without a close frame.
    Gone(String),
}

async fn next_frame(ws: &mut Ws) -> Frame {
    loop {
        match ws.next().await {
            None => return Frame::Gone("end of stream".into()),
            Some(Err(e)) => return Frame::Gone(e.to_string()),
            Some(Ok(Message::Text(t))) => return Frame::Text(t.as_str().to_owned()),
            Some(Ok(Message::Binary(b))) => {
                return Frame::Text(String::from_utf8_lossy(&b).into_owned());
            }
            Some(Ok(Message::Close(f))) => return Frame::Close(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
        }
    }
}

/// Opens a WebSocket as the holder of `token` and reads the `connected` greeting; returns the
/// connection and its id. `rcvbuf` shrinks the socket's receive buffer (slow clients).
/// [`connect`], or on failure: the error recorded and a second's pause before the caller retries.
async fn connect_or_pause(
    sh: &Shared,
    token: &str,
    rcvbuf: Option<u32>,
    who: &str,
) -> Option<(Ws, String)> {
    match connect(sh, token, rcvbuf).await {
        Ok(c) => Some(c),
        Err(e) => {
            sh.error("connect_failed", format!("{who}{e:#}"));
            sleep(Duration::from_secs(1)).await;
            None
        }
    }
}

async fn connect(sh: &Shared, token: &str, rcvbuf: Option<u32>) -> anyhow::Result<(Ws, String)> {
    let inner = async {
        let tcp = match rcvbuf {
            None => sh.sources.connect(sh.addr).await.context("tcp connect")?,
            Some(size) => {
                let socket = TcpSocket::new_v4()?;
                socket.set_recv_buffer_size(size)?;
                let s = socket.connect(sh.addr).await.context("tcp connect")?;
                s.set_nodelay(true)?;
                s
            }
        };
        let mut request = format!("ws://{}/socket", sh.addr).into_client_request()?;
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse()?);
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
            .await
            .context("websocket handshake")?;
        let first = match next_frame(&mut ws).await {
            Frame::Text(t) => t,
            Frame::Close(code) => bail!("closed ({code:?}) before `connected`"),
            Frame::Gone(e) => bail!("gone before `connected`: {e}"),
        };
        let v: Value = serde_json::from_str(&first).context("greeting is not JSON")?;
        if v["event"] != "connected" {
            bail!("first frame is not `connected`: {first}");
        }
        let id = v["data"]["id"]
            .as_str()
            .with_context(|| format!("`connected` without an id: {first}"))?
            .to_owned();
        Ok((ws, id))
    };
    timeout(Duration::from_secs(15), inner)
        .await
        .context("connect timed out")?
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Echo,
    Join,
    Quit,
    Publish,
    Ping,
}

impl Kind {
    fn event(self) -> &'static str {
        match self {
            Kind::Echo => ECHO_EVENT,
            Kind::Join => "join",
            Kind::Quit => "quit",
            Kind::Publish => "publish",
            Kind::Ping => "ping",
        }
    }
}

struct Pending {
    kind: Kind,
    at: Instant,
    tag: Option<String>,
}

#[derive(Clone, Copy)]
enum Phase {
    Active,
    /// Left the kickable set; waiting for outstanding replies before closing.
    Draining,
    /// The kicker took this connection, or `kick` arrived: close 4001 must follow.
    AwaitKick(Instant),
    /// A write failed: only a kick (its close may be under way) explains that.
    Broken(Instant),
}

/// One slot: connect, live, leave (or be kicked), reconnect — until the soak ends.
async fn slot(sh: Arc<Shared>, i: usize, start_delay: Duration) {
    let mut rng = Rng::new(unix_nanos() ^ (i as u64).wrapping_mul(0x1000_0001));
    sleep(start_delay).await;
    // The first lifetimes are spread over the whole mean so that churn is steady from the start.
    let mut first = true;
    while !sh.stopping() {
        let (_, token) = &sh.tokens[i % sh.tokens.len()];
        let Some((ws, id)) = connect_or_pause(&sh, token, None, "").await else {
            continue;
        };
        sh.count("connects", 1);
        let life = if first {
            Duration::from_secs_f64(rng.f64() * sh.args.mean_life * 2.0)
        } else {
            rng.exp(sh.args.mean_life)
        };
        first = false;
        sh.online.fetch_add(1, Ordering::Relaxed);
        session(&sh, i, ws, id, &mut rng, life).await;
        sh.online.fetch_sub(1, Ordering::Relaxed);
        *sh.live[i].lock().unwrap() = None;
        sleep(Duration::from_millis(rng.below(100) as u64)).await;
    }
}

async fn session(sh: &Shared, slot: usize, mut ws: Ws, id: String, rng: &mut Rng, life: Duration) {
    let a = &sh.args;
    *sh.live[slot].lock().unwrap() = Some(id.clone());
    let leave_at = Instant::now() + life;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut tags: BTreeSet<String> = BTreeSet::new();
    let mut seq = 0u64;
    let mut phase = Phase::Active;
    let mut kicked = false;
    let mut drain_deadline = Instant::now();
    let mut next_action = Instant::now() + rng.exp(a.action_interval);
    loop {
        let now = Instant::now();
        // Requests past their deadline are missing (a kick cuts them short, legitimately).
        pending.retain(|s, p| {
            let late = !kicked && now.duration_since(p.at) > a.reply_timeout;
            if late {
                sh.error(
                    "missing_reply",
                    format!("{id} seqno {s} ({}) unanswered", p.kind.event()),
                );
            }
            !late
        });
        match phase {
            Phase::Active if now >= leave_at || sh.stopping() => {
                let mine = sh.live[slot].lock().unwrap().take();
                if mine.is_none() {
                    phase = Phase::AwaitKick(now + KICK_WAIT);
                    continue;
                }
                if !sh.stopping() && rng.f64() * 100.0 < a.abrupt {
                    // No close handshake: the socket is simply dropped, requests in flight or not.
                    sh.count("left_abruptly", 1);
                    drop(ws);
                    return;
                }
                phase = Phase::Draining;
                drain_deadline = now + a.reply_timeout;
                continue;
            }
            Phase::Draining if pending.is_empty() || now >= drain_deadline => {
                close_gracefully(sh, &mut ws).await;
                return;
            }
            Phase::AwaitKick(deadline) if now >= deadline => {
                sh.error(
                    "kick_not_received",
                    format!("{id} was kicked but saw no kick and 4001 (kick frame seen: {kicked})"),
                );
                return;
            }
            Phase::Broken(deadline) if now >= deadline => {
                sh.error(
                    "send_failed",
                    format!("{id}: a write failed and no kick explains it"),
                );
                return;
            }
            _ => {}
        }
        if matches!(phase, Phase::Active) && now >= next_action {
            next_action = now + rng.exp(a.action_interval);
            if pending.len() < MAX_PENDING {
                seq += 1;
                let (kind, data, tag) = pick_action(rng, a, &mut tags, seq);
                let frame = json!({"event": kind.event(), "data": data, "seqno": seq}).to_string();
                pending.insert(seq, Pending { kind, at: now, tag });
                if ws.send(Message::text(frame)).await.is_err() {
                    phase = Phase::Broken(now + CLOSE_WAIT);
                }
            }
        }
        let mut wake = match phase {
            Phase::Active => next_action.min(leave_at),
            Phase::Draining => drain_deadline,
            Phase::AwaitKick(d) | Phase::Broken(d) => d,
        };
        if let Some(oldest) = pending.values().map(|p| p.at).min() {
            wake = wake.min(oldest + a.reply_timeout + Duration::from_millis(1));
        }
        tokio::select! {
            frame = next_frame(&mut ws) => match frame {
                Frame::Text(text) => {
                    handle_text(sh, slot, &id, &text, &mut pending, &mut kicked);
                    if kicked && matches!(phase, Phase::Active | Phase::Draining) {
                        phase = Phase::AwaitKick(Instant::now() + KICK_WAIT);
                    }
                }
                Frame::Close(code) => {
                    if kicked && code == Some(4001) {
                        sh.count("kicked", 1);
                        if !pending.is_empty() {
                            sh.count("requests_cut_by_kick", pending.len() as u64);
                        }
                    } else {
                        sh.error("unexpected_close", format!("{id}: close {code:?}, kicked: {kicked}"));
                    }
                    // Our part of the closing handshake; tungstenite answers by itself, flush it.
                    let _ = timeout(CLOSE_WAIT, ws.close(None)).await;
                    return;
                }
                Frame::Gone(e) => {
                    let kind = if kicked { "kick_without_close" } else { "connection_lost" };
                    sh.error(kind, format!("{id}: {e}"));
                    return;
                }
            },
            _ = sleep_until(wake.into()) => {}
        }
    }
}

/// Picks the next request: mostly echoes, then tag traffic, a few pings.
fn pick_action(
    rng: &mut Rng,
    a: &SoakArgsCopy,
    tags: &mut BTreeSet<String>,
    seq: u64,
) -> (Kind, Value, Option<String>) {
    let r = rng.f64();
    let join_one = |rng: &mut Rng, tags: &mut BTreeSet<String>| {
        let tag = format!("soak-t{}", rng.below(a.tags));
        tags.insert(tag.clone());
        (Kind::Join, json!({"id": tag}), Some(tag))
    };
    let quit_one = |rng: &mut Rng, tags: &mut BTreeSet<String>| {
        let tag = tags.iter().nth(rng.below(tags.len())).cloned().unwrap();
        tags.remove(&tag);
        (Kind::Quit, json!({"id": tag}), Some(tag))
    };
    if r < 0.45 {
        (Kind::Echo, json!({"s": seq, "p": "soak-payload-16b"}), None)
    } else if r < 0.60 {
        if tags.is_empty() {
            join_one(rng, tags)
        } else {
            let tag = tags.iter().nth(rng.below(tags.len())).cloned().unwrap();
            let data = json!({"tag": tag, "data": {"n": seq}, "excludeSelf": false});
            (Kind::Publish, data, Some(tag))
        }
    } else if r < 0.78 {
        if tags.len() < a.max_tags {
            join_one(rng, tags)
        } else {
            quit_one(rng, tags)
        }
    } else if r < 0.93 {
        if tags.is_empty() {
            join_one(rng, tags)
        } else {
            quit_one(rng, tags)
        }
    } else {
        (Kind::Ping, Value::Null, None)
    }
}

fn handle_text(
    sh: &Shared,
    slot: usize,
    id: &str,
    text: &str,
    pending: &mut HashMap<u64, Pending>,
    kicked: &mut bool,
) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        sh.error("bad_frame", format!("{id}: not JSON: {text}"));
        return;
    };
    let event = v["event"].as_str().unwrap_or("");
    if let Some(seqno) = v.get("seqno") {
        let Some(p) = seqno.as_u64().and_then(|s| pending.remove(&s)) else {
            sh.error(
                "wrong_seqno",
                format!("{id}: no request with this seqno: {text}"),
            );
            return;
        };
        sh.rtt.record(slot, p.at.elapsed());
        sh.window_rtt.record(slot, p.at.elapsed());
        sh.count("replies", 1);
        if event != p.kind.event() || v["code"] != 0 {
            sh.error("bad_reply", format!("{id}: {:?} answered {text}", p.kind));
            return;
        }
        let data = &v["data"];
        let ok = match p.kind {
            Kind::Echo => data["s"] == *seqno,
            Kind::Join => contains(data, p.tag.as_deref()),
            Kind::Quit => data.is_array() && !contains(data, p.tag.as_deref()),
            Kind::Publish => data["delivered"].as_u64().is_some_and(|n| n >= 1),
            Kind::Ping => true,
        };
        if !ok {
            sh.error(
                "bad_reply",
                format!("{id}: {:?} {:?} answered {text}", p.kind, p.tag),
            );
        }
        return;
    }
    if v["code"] != 0 {
        sh.error(
            "bad_frame",
            format!("{id}: push with a non-zero code: {text}"),
        );
        return;
    }
    match event {
        "kick" => {
            // Only the kicker's targets may be kicked, and they are out of `live`.
            if sh.live[slot].lock().unwrap().as_deref() == Some(id) {
                sh.error("unexpected_kick", format!("{id}: {text}"));
            }
            if v["data"]["reason"] != "soak kick" {
                sh.error(
                    "bad_frame",
                    format!("{id}: kick without our reason: {text}"),
                );
            }
            *kicked = true;
        }
        "soak" => {
            sh.count("api_pushes_received", 1);
            match v["data"]["t"].as_u64() {
                Some(t) => sh
                    .push_latency
                    .record_micros(slot, unix_nanos().saturating_sub(t) / 1000),
                None => sh.error("bad_frame", format!("{id}: API push without t: {text}")),
            }
        }
        "publish" => {
            sh.count("publish_pushes_received", 1);
            if !v["data"]["tag"].is_string() || !v["data"]["from"]["id"].is_string() {
                sh.error("bad_frame", format!("{id}: malformed publish push: {text}"));
            }
        }
        _ => sh.error("unexpected_frame", format!("{id}: {text}")),
    }
}

fn contains(list: &Value, tag: Option<&str>) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|t| t.as_str() == tag))
}

/// Close handshake from our side: send ours, read until the server's close (or the end).
async fn close_gracefully(sh: &Shared, ws: &mut Ws) {
    let _ = timeout(CLOSE_WAIT, ws.close(None)).await;
    let answered = timeout(CLOSE_WAIT, async {
        loop {
            match next_frame(ws).await {
                Frame::Close(_) => return true,
                Frame::Gone(_) => return false,
                Frame::Text(_) => continue,
            }
        }
    })
    .await;
    match answered {
        Ok(true) => sh.count("left_with_close", 1),
        Ok(false) => sh.error(
            "close_not_answered",
            "stream ended without the server's close",
        ),
        Err(_) => sh.error("close_not_answered", "no close frame within 5 s"),
    }
}

// ---- slow clients --------------------------------------------------------------------------------

/// Flood, stop reading, then see how the server ended the connection.
async fn slow_client(sh: Arc<Shared>, i: usize) {
    let a = sh.args.clone();
    let payload = "s".repeat(a.slow_payload);
    sleep(Duration::from_secs(5 + 3 * i as u64)).await;
    while !sh.stopping() {
        let (_, token) = &sh.tokens[(i + 7) % sh.tokens.len()];
        let Some((mut ws, id)) =
            connect_or_pause(&sh, token, Some(16 * 1024), "slow client: ").await
        else {
            continue;
        };
        sh.count("slow_cycles", 1);
        // Flood until a write blocks (everything between us and the server is full), at most 60 s.
        let flood_end = Instant::now() + Duration::from_secs(60);
        let mut seq = 0u64;
        let mut blocked = false;
        while Instant::now() < flood_end {
            seq += 1;
            let frame = format!(
                "{{\"event\":\"{ECHO_EVENT}\",\"data\":{{\"s\":{seq},\"p\":\"{payload}\"}},\"seqno\":{seq}}}"
            );
            match timeout(Duration::from_secs(2), ws.send(Message::text(frame))).await {
                Ok(Ok(())) => sleep(Duration::from_millis(25)).await,
                Ok(Err(_)) | Err(_) => {
                    blocked = true;
                    break;
                }
            }
        }
        sh.count("slow_requests", seq);
        if !blocked {
            sh.error(
                "slow_never_blocked",
                format!("{id}: 60 s of flooding never blocked"),
            );
        }
        // Keep not reading past the server's write timeout, then see what is left.
        sleep(a.slow_stall).await;
        let outcome = timeout(Duration::from_secs(30), async {
            loop {
                match next_frame(&mut ws).await {
                    Frame::Text(_) => continue,
                    other => return other,
                }
            }
        })
        .await;
        match outcome {
            Ok(Frame::Close(Some(4008))) => sh.count("slow_cut_4008", 1),
            Ok(Frame::Gone(_)) => sh.count("slow_cut_dropped", 1),
            Ok(Frame::Close(code)) => {
                sh.error(
                    "slow_close_code",
                    format!("{id}: closed with {code:?}, not 4008"),
                );
            }
            Ok(Frame::Text(_)) => unreachable!(),
            Err(_) => sh.error(
                "slow_not_cut",
                format!(
                    "{id}: still open {} s after it stopped reading",
                    secs(a.slow_stall)
                ),
            ),
        }
        drop(ws);
        sleep(Duration::from_secs(2)).await;
    }
}

// ---- operators -----------------------------------------------------------------------------------

async fn post(
    sh: &Shared,
    http: &mut HttpClient,
    path: &str,
    body: Value,
) -> Result<Value, String> {
    match http
        .post(path, Some(&sh.bearer), body.to_string().as_bytes())
        .await
    {
        Ok(r) if r.status == 200 => Ok(r.json()),
        Ok(r) => Err(format!(
            "{path} answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )),
        Err(e) => Err(format!("{path}: {e:#}")),
    }
}

async fn kicker(sh: Arc<Shared>, interval: Duration) {
    let mut rng = Rng::new(unix_nanos() ^ 0xC0FFEE);
    let mut http = HttpClient::new(sh.addr);
    sleep(Duration::from_secs(3)).await;
    while !sh.stopping() {
        sleep(interval).await;
        let mut victim = None;
        for _ in 0..50 {
            let slot = rng.below(sh.live.len());
            if let Some(id) = sh.live[slot].lock().unwrap().take() {
                victim = Some(id);
                break;
            }
        }
        let Some(id) = victim else { continue };
        sh.count("kicks_sent", 1);
        let body = json!({"clientId": id, "reason": "soak kick"});
        match post(&sh, &mut http, "/api/websocket/kick", body).await {
            Ok(v) if v["closed"] == 1 => {}
            Ok(v) => sh.error("kick_http", format!("kick {id} answered {v}")),
            Err(e) => sh.error("kick_http", e),
        }
    }
}

async fn api_sender(sh: Arc<Shared>, rate: f64) {
    let mut rng = Rng::new(unix_nanos() ^ 0xA11);
    let mut http = HttpClient::new(sh.addr);
    let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut next = Instant::now() + Duration::from_secs(2);
    let mut n = 0u64;
    while !sh.stopping() {
        sleep_until(next.into()).await;
        next += period;
        n += 1;
        let data = json!({"t": unix_nanos(), "n": n});
        let (path, body, counter) = if n.is_multiple_of(10) {
            (
                "/api/websocket/send/toAll",
                json!({"event": "soak", "data": data}),
                "api_to_all",
            )
        } else if n.is_multiple_of(2) {
            let uid = sh.tokens[rng.below(sh.tokens.len())].0;
            let body = json!({"userId": uid, "event": "soak", "data": data});
            ("/api/websocket/send/toUser", body, "api_to_user")
        } else {
            // Client-joined tags, and now and then one of the server-side ones.
            let tag = if rng.below(4) == 0 {
                format!("sys:soak-{}", rng.below(8))
            } else {
                format!("soak-t{}", rng.below(sh.args.tags))
            };
            let body = json!({"tag": tag, "event": "soak", "data": data});
            ("/api/websocket/send/toTag", body, "api_to_tag")
        };
        match post(&sh, &mut http, path, body).await {
            Ok(v) => match v["delivered"].as_u64() {
                Some(d) => {
                    sh.count(counter, 1);
                    sh.count("api_delivered_reported", d);
                }
                None => sh.error("api_http", format!("{path} answered {v}")),
            },
            Err(e) => sh.error("api_http", e),
        }
        // Every fifth round, move a random connection in or out of a server-side tag. The
        // connection may have left meanwhile: then nothing changes, and the answer is still 200.
        if n.is_multiple_of(5) {
            let slot = rng.below(sh.live.len());
            let Some(id) = sh.live[slot].lock().unwrap().clone() else {
                continue;
            };
            let join = rng.below(3) != 0;
            let path = if join {
                "/api/websocket/tags/join"
            } else {
                "/api/websocket/tags/quit"
            };
            let body = json!({"clientId": id, "tag": format!("sys:soak-{}", rng.below(8))});
            match post(&sh, &mut http, path, body).await {
                Ok(v) if v["changed"].is_u64() => sh.count("api_tag_changes", 1),
                Ok(v) => sh.error("api_http", format!("{path} answered {v}")),
                Err(e) => sh.error("api_http", e),
            }
        }
    }
}

/// Creates the member users (or finds them from an earlier run) and logs each in.
async fn users(
    addr: SocketAddr,
    bearer: &str,
    n: usize,
    password: &str,
) -> anyhow::Result<Vec<(i64, String)>> {
    let mut http = HttpClient::new(addr);
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let name = format!("soak-u{i}");
        create_member(&mut http, Some(bearer), &name, password).await?;
        let body = json!({"username": name, "password": password}).to_string();
        let r = http.post("/api/auth/login", None, body.as_bytes()).await?;
        let v = r.json();
        let (Some(id), Some(token)) = (v["user"]["id"].as_i64(), v["token"].as_str()) else {
            bail!(
                "login {name} answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        };
        out.push((id, token.to_owned()));
    }
    Ok(out)
}

// ---- the run -------------------------------------------------------------------------------------

pub async fn run(ctx: &Ctx, args: &SoakArgs, sources: usize) -> anyhow::Result<Value> {
    let target = &ctx.target;
    let bearer = target
        .bearer()
        .context("the soak drives Switchboard only (--target switchboard)")?
        .to_owned();
    let addr = target.addr;
    let tokens = users(addr, &bearer, args.users.max(1), &args.user_password).await?;
    let n = args.connections.max(1);
    let sh = Arc::new(Shared {
        addr,
        bearer,
        sources: Sources::new(addr, sources),
        args: SoakArgsCopy {
            mean_life: 100.0 / args.churn.max(0.001),
            abrupt: args.abrupt,
            action_interval: args.action_interval,
            tags: args.tags.max(1),
            max_tags: args.max_tags.max(1),
            reply_timeout: Duration::from_secs_f64(args.reply_timeout),
            slow_stall: Duration::from_secs_f64(args.slow_stall),
            slow_payload: args.slow_payload,
        },
        tokens,
        stop: AtomicBool::new(false),
        live: (0..n).map(|_| Mutex::new(None)).collect(),
        online: AtomicU64::new(0),
        errors: Mutex::default(),
        examples: Mutex::default(),
        counts: Mutex::default(),
        rtt: Recorder::default(),
        window_rtt: Recorder::default(),
        push_latency: Recorder::default(),
    });
    let started = Instant::now();
    let before = procfs::sample(ctx.pid);
    // The population ramps up over ten seconds, not in one burst.
    let ramp = Duration::from_secs(10);
    let mut tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(slot(sh.clone(), i, ramp.mul_f64(i as f64 / n as f64))))
        .collect();
    tasks.extend((0..args.slow).map(|i| tokio::spawn(slow_client(sh.clone(), i))));
    let operators = [
        tokio::spawn(kicker(
            sh.clone(),
            Duration::from_secs_f64(args.kick_interval),
        )),
        tokio::spawn(api_sender(sh.clone(), args.api_rate)),
    ];

    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let interval = Duration::from_secs_f64(args.sample_interval);
    let mut samples = Vec::new();
    let mut next = started + interval;
    let mut last_replies = 0;
    while next <= started + duration {
        sleep_until(next.into()).await;
        next += interval;
        let s = procfs::sample(ctx.pid);
        let window = sh.window_rtt.take();
        let replies = sh
            .counts
            .lock()
            .unwrap()
            .get("replies")
            .copied()
            .unwrap_or(0);
        let sample = json!({
            "t_s": secs(started.elapsed()).round(),
            "rss_bytes": s.rss_bytes,
            "server_cpu_s": secs(s.cpu),
            "online": sh.online.load(Ordering::Relaxed),
            "replies": replies - last_replies,
            "rtt_p99_us": if window.is_empty() { 0 } else { window.value_at_quantile(0.99) },
            "errors": sh.error_total(),
        });
        last_replies = replies;
        eprintln!("[soak] {sample}");
        samples.push(sample);
    }

    // Everyone leaves: slots drain and close, kicked ones finish their kick, slow ones their cycle.
    sh.stop.store(true, Ordering::Relaxed);
    for op in operators {
        let _ = op.await;
    }
    let all_left = timeout(Duration::from_secs(90), async {
        for t in tasks.iter_mut() {
            let _ = t.await;
        }
    })
    .await
    .is_ok();
    if !all_left {
        sh.error(
            "did_not_finish",
            "client tasks still running 90 s after the end",
        );
    }
    let after = procfs::sample(ctx.pid);
    let errors = sh.errors.lock().unwrap().clone();
    let counts = sh.counts.lock().unwrap().clone();
    Ok(json!({
        "duration_s": secs(started.elapsed()),
        "connections": n,
        "users": args.users,
        "server_rss_before_bytes": before.rss_bytes,
        "server_rss_after_leave_bytes": after.rss_bytes,
        "server_cpu_s": secs(after.cpu.saturating_sub(before.cpu)),
        "loadgen_cpu_s": secs(procfs::sample_self().cpu),
        "online_at_end": sh.online.load(Ordering::Relaxed),
        "samples": samples,
        "errors": errors,
        "error_total": errors.values().sum::<u64>(),
        "error_examples": sh.examples.lock().unwrap().clone(),
        "counts": counts,
        "request_rtt": summary(&sh.rtt.take()),
        "api_push_latency": summary(&sh.push_latency.take()),
    }))
}
