//! A hand-written WebSocket client: the handshake over a bare TCP socket and hand-masked
//! frames, so a test can send exactly the bytes a well-behaved client library refuses to
//! produce.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestApp, host_of};

/// Reads an HTTP response head byte by byte (so no frame bytes are swallowed).
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("response head within 5s")
            .expect("read");
        assert!(n == 1, "connection closed during the response head");
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Opens `/socket` by hand with a bearer token; returns the socket right after the 101.
pub async fn raw_upgrade(app: &TestApp, token: &str) -> TcpStream {
    let host = host_of(app);
    let mut s = TcpStream::connect(&host).await.unwrap();
    let req = format!(
        "GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
    s
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;

/// A client frame: masked, as the WebSocket protocol requires of every client frame.
pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one server frame (servers never mask): `(opcode, payload)`, or None on EOF/timeout.
pub async fn read_frame(s: &mut TcpStream, d: Duration) -> Option<(u8, Vec<u8>)> {
    tokio::time::timeout(d, async {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).await.ok()?;
        let opcode = h[0] & 0x0f;
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).await.ok()?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b).await.ok()?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        Some((opcode, payload))
    })
    .await
    .ok()?
}

/// Reads frames until a close frame and returns its code.
pub async fn raw_close_code(s: &mut TcpStream) -> u16 {
    loop {
        let (op, payload) = read_frame(s, Duration::from_secs(5))
            .await
            .expect("a close frame within 5s");
        if op == OP_CLOSE {
            assert!(payload.len() >= 2, "close frame without a code");
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

/// Reads frames until a data frame and returns it as JSON.
pub async fn raw_json(s: &mut TcpStream) -> (u8, Value) {
    loop {
        let (op, payload) = read_frame(s, Duration::from_secs(5))
            .await
            .expect("a frame within 5s");
        match op {
            OP_TEXT | OP_BINARY => return (op, serde_json::from_slice(&payload).unwrap()),
            OP_CLOSE => panic!("unexpected close {payload:?}"),
            _ => continue,
        }
    }
}
