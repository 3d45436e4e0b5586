//! HTTP/1.1 over a bare TCP socket, for requests no HTTP client would send.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `127.0.0.1:<port>` of a test server.
pub fn host_of(app: &super::TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// One answer read off the wire.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }
}

/// Sends `bytes` on a new connection (while reading, so a server that answers early is heard)
/// and returns every answer until the server closes the connection; panics after 10 s.
pub async fn exchange(host: &str, bytes: &[u8]) -> Vec<RawAnswer> {
    let s = TcpStream::connect(host).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let bytes = bytes.to_vec();
    let writer = tokio::spawn(async move {
        // The server may close before taking everything; that is its right.
        let _ = wr.write_all(&bytes).await;
        wr
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after 10 s; got {:?}",
                String::from_utf8_lossy(&raw)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
        }
    }
    drop(writer.await);
    parse_answers(&raw)
}

/// Splits a byte stream into HTTP/1.1 answers (`Content-Length` or chunked bodies).
pub fn parse_answers(mut raw: &[u8]) -> Vec<RawAnswer> {
    let mut out = Vec::new();
    while let Some(end) = find(raw, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut answer = RawAnswer {
            status,
            head,
            body: Vec::new(),
        };
        let mut rest = &raw[end + 4..];
        if let Some(len) = answer.header("content-length").and_then(|v| v.parse().ok()) {
            let len: usize = len;
            let len = len.min(rest.len());
            answer.body = rest[..len].to_vec();
            rest = &rest[len..];
        } else if answer.header("transfer-encoding") == Some("chunked") {
            while let Some(line_end) = find(rest, b"\r\n") {
                let size = std::str::from_utf8(&rest[..line_end])
                    .ok()
                    .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
                    .unwrap_or(0);
                rest = &rest[line_end + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or_default();
                    break;
                }
                let take = size.min(rest.len());
                answer.body.extend_from_slice(&rest[..take]);
                rest = rest.get(take + 2..).unwrap_or_default();
            }
        }
        raw = rest;
        out.push(answer);
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One keep-alive HTTP/1.1 connection, for asking a server questions while it accepts no new
/// connections.
pub struct KeepAlive {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl KeepAlive {
    pub async fn connect(host: &str) -> KeepAlive {
        KeepAlive {
            stream: TcpStream::connect(host).await.unwrap(),
            host: host.to_string(),
            buf: Vec::new(),
        }
    }

    /// `GET path` on this connection; the answer must carry a `Content-Length`. Panics after
    /// 10 s or if the server closes the connection.
    pub async fn get(&mut self, path: &str) -> RawAnswer {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.write_all(req.as_bytes()).await.unwrap();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a Content-Length");
                if self.buf.len() >= end + 4 + len {
                    let rest = self.buf.split_off(end + 4 + len);
                    let answer = parse_answers(&self.buf).pop().unwrap();
                    self.buf = rest;
                    return answer;
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("an answer within 10 s")
                .unwrap();
            assert!(n > 0, "the server closed the keep-alive connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
