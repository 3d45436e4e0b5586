//! Request heads are read and checked here before hyper sees them.
//!
//! hyper answers a request head it cannot parse (a garbage request line, a bad header name, a
//! head over its buffer) by itself, with an empty 400 or 431, and no hook lets us change that.
//! So every connection's bytes pass through a [`HeadGate`]: it holds back the bytes of each
//! request head until the whole head is in, parses it with the parser hyper uses and applies
//! the checks hyper applies after it (method, request target, `Content-Length`,
//! `Transfer-Encoding`). A head that passes goes to hyper unchanged; one that fails never
//! reaches it: the gate answers the JSON error shape itself and closes the connection.
//!
//! To know where the next head starts, the gate follows each request's body framing (a fixed
//! length or chunked; see `framing`) as the bytes go by. After a request that asks for an
//! upgrade (WebSocket) or a body hyper will refuse anyway, it stops looking and passes bytes
//! through untouched.
//!
//! The `101 Switching Protocols` hyper writes for an upgrade is held back, not written: the
//! WebSocket that takes the socket over writes it together with its greeting, so a new
//! connection costs one write and its client one wake-up instead of two.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use poem::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::{Chunk, Framing};
use crate::error::raw_json_error;

/// The largest request head (request line and headers) accepted; a larger one is answered 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header lines a request may carry (hyper's own limit); more are answered 431.
pub const MAX_HEADERS: usize = 100;

/// The longest request target accepted (hyper's own limit); a longer one is answered 414.
const MAX_TARGET_BYTES: usize = u16::MAX as usize - 1;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// After a refusal, input the client is still sending is read and dropped for this long (or
/// this much) before the socket closes: closing with unread input resets the connection, and
/// the client could lose the answer.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Whether a request of this connection is being handled. The connection's service marks it;
/// a refusal waits until the request in flight has been answered, so hyper, which treats an
/// end of input in the middle of a request as an error, finishes that answer first.
#[derive(Default)]
pub struct InFlight {
    busy: AtomicBool,
    waker: AtomicWaker,
}

impl InFlight {
    /// A request head reached the service.
    pub fn start(&self) {
        self.busy.store(true, Ordering::Release);
    }

    /// The request's response is complete.
    pub fn end(&self) {
        self.busy.store(false, Ordering::Release);
        self.waker.wake();
    }

    fn is_busy(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.busy.load(Ordering::Acquire)
    }
}

/// Why a head was refused, as the JSON answer says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 414 or 431.
    pub status: StatusCode,
    /// Machine code.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    fn bad(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "malformed_request",
            message: message.into(),
        }
    }

    fn too_large(message: String) -> Refusal {
        Refusal {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code: "headers_too_large",
            message,
        }
    }
}

/// Checks one request head at the start of `bytes`. `Ok(None)`: not complete yet;
/// `Ok(Some((len, framing)))`: a good head of `len` bytes, followed by a body framed so.
fn check_head(bytes: &[u8]) -> Result<Option<(usize, Framing)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if bytes.len() >= MAX_HEAD_BYTES {
                return Err(Refusal::too_large(format!(
                    "the request head exceeds {MAX_HEAD_BYTES} bytes"
                )));
            }
            return Ok(None);
        }
        Err(e) => return Err(parse_refusal(e, req.method.is_some())),
    };
    if len > MAX_HEAD_BYTES {
        return Err(Refusal::too_large(format!(
            "the request head exceeds {MAX_HEAD_BYTES} bytes"
        )));
    }
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_TARGET_BYTES {
        return Err(Refusal {
            status: StatusCode::URI_TOO_LONG,
            code: "uri_too_long",
            message: format!("the request target exceeds {MAX_TARGET_BYTES} bytes"),
        });
    }
    if poem::http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(Refusal::bad("the request method is not a valid token"));
    }
    if target.parse::<poem::http::Uri>().is_err() {
        return Err(Refusal::bad(format!(
            "the request target {:?} is not a valid URI",
            truncated(target)
        )));
    }
    let http11 = req.version == Some(1);
    let mut upgrade = method.eq_ignore_ascii_case("CONNECT");
    let mut chunked = None;
    let mut length = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(Refusal::bad("Transfer-Encoding is not allowed in HTTP/1.0"));
            }
            // The last coding must be `chunked`; a later header line decides again.
            let last = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .map(str::trim);
            chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or_else(|| {
                Refusal::bad(format!(
                    "Content-Length {:?} is not a number of bytes",
                    truncated(&String::from_utf8_lossy(h.value))
                ))
            })?;
            if length.is_some_and(|prev| prev != n) {
                return Err(Refusal::bad("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = http11;
        }
    }
    let framing = match (chunked, length) {
        (Some(false), _) => {
            return Err(Refusal::bad(
                "Transfer-Encoding must end with chunked in a request",
            ));
        }
        _ if upgrade => Framing::Opaque,
        (Some(true), _) => Framing::Chunked(Chunk::SizeStart),
        (None, Some(n)) if n > 0 => Framing::Length(n),
        (None, _) => Framing::Head,
    };
    Ok(Some((len, framing)))
}

/// A decimal `Content-Length`, as hyper reads it (digits only, within its range).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(v).ok()?.parse::<u64>().ok()?;
    (n <= u64::MAX - 2).then_some(n)
}

fn parse_refusal(e: httparse::Error, saw_method: bool) -> Refusal {
    use httparse::Error as E;
    match e {
        E::TooManyHeaders => Refusal::too_large(format!(
            "a request may carry at most {MAX_HEADERS} header lines"
        )),
        E::Token if !saw_method => Refusal::bad("the request line does not start with a method"),
        E::Token => Refusal::bad("the request target contains characters a URI may not"),
        E::Version => Refusal::bad("the request line does not end with HTTP/1.0 or HTTP/1.1"),
        E::HeaderName => Refusal::bad("a header name contains characters a token may not"),
        E::HeaderValue => Refusal::bad("a header value contains control characters"),
        E::NewLine => Refusal::bad("a line of the request head does not end with CRLF"),
        E::Status => Refusal::bad("the request line is malformed"),
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// What the gate does once a head was refused.
enum Refused {
    /// Waiting to write the answer (hyper sees the end of input meanwhile).
    Pending(Vec<u8>),
    /// Writing it: bytes written so far.
    Writing(Vec<u8>, usize),
    /// Written; the write side is being shut down.
    Shutdown,
    /// Reading and dropping what the client still sends, until the deadline.
    Linger(Pin<Box<tokio::time::Sleep>>, usize),
    /// Finished.
    Done,
}

/// How a `101 Switching Protocols` response begins, as hyper writes it.
const SWITCHING_PROTOCOLS: &[u8] = b"HTTP/1.1 101 ";

/// The socket of one HTTP connection, as hyper reads it (see the module docs).
pub struct HeadGate<S> {
    inner: S,
    /// Bytes read from the socket and not yet handed to hyper.
    buf: BytesMut,
    /// How many leading bytes of `buf` are checked and may go to hyper.
    ready: usize,
    framing: Framing,
    refused: Option<Refused>,
    eof: bool,
    in_flight: std::sync::Arc<InFlight>,
    /// A `101 Switching Protocols` hyper wrote: held back so that it leaves in the same
    /// write as the WebSocket's first frames (see [`HeadGate::into_parts`]).
    switching: Vec<u8>,
}

impl<S> HeadGate<S> {
    /// Wraps a fresh connection.
    pub fn new(inner: S, in_flight: std::sync::Arc<InFlight>) -> Self {
        HeadGate {
            inner,
            buf: BytesMut::new(),
            ready: 0,
            framing: Framing::Head,
            refused: None,
            eof: false,
            in_flight,
            switching: Vec::new(),
        }
    }

    /// The socket back, with what was read from it but not yet handed on (an upgraded
    /// connection's first frames), and the `101` response not yet written: whoever takes the
    /// socket over writes it before anything else.
    pub fn into_parts(self) -> (S, Bytes, Bytes) {
        (self.inner, self.buf.freeze(), Bytes::from(self.switching))
    }

    /// Takes a write that is (the rest of) a `101` and returns its length; `None` for any
    /// other write. Only after a request that asked for an upgrade: hyper writes a response
    /// head in one piece, and nothing after a `101`, as the socket is handed over.
    fn hold(&mut self, bufs: &[io::IoSlice<'_>]) -> Option<usize> {
        let first = bufs.iter().find(|b| !b.is_empty())?;
        if self.switching.is_empty()
            && !(self.framing == Framing::Opaque && first.starts_with(SWITCHING_PROTOCOLS))
        {
            return None;
        }
        let mut n = 0;
        for b in bufs {
            self.switching.extend_from_slice(b);
            n += b.len();
        }
        Some(n)
    }

    /// Sorts the unchecked bytes of `buf` into "ready for hyper" as far as the framing allows.
    fn classify(&mut self) {
        while self.ready < self.buf.len() && self.refused.is_none() {
            let rest = &self.buf[self.ready..];
            match self.framing {
                Framing::Opaque => self.ready = self.buf.len(),
                Framing::Head => match check_head(rest) {
                    Ok(Some((len, framing))) => {
                        self.ready += len;
                        self.framing = framing;
                    }
                    Ok(None) => return,
                    Err(r) => {
                        tracing::debug!(status = %r.status, reason = %r.message, "request head refused");
                        let answer = raw_json_error(r.status, r.code, &r.message);
                        self.refused = Some(Refused::Pending(answer));
                    }
                },
                Framing::Length(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                    self.ready += take;
                    let left = n - take as u64;
                    self.framing = if left == 0 {
                        Framing::Head
                    } else {
                        Framing::Length(left)
                    };
                }
                Framing::Chunked(Chunk::Data(n)) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                    self.ready += take;
                    let left = n - take as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left)
                    });
                }
                Framing::Chunked(c) => {
                    let b = rest[0];
                    self.ready += 1;
                    // A malformed body: hyper refuses it itself (its handler sees a body
                    // error), so the rest is not ours to frame.
                    self.framing = c.step(b).unwrap_or(Framing::Opaque);
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> HeadGate<S> {
    /// Writes the refusal, shuts the write side and lingers; `Ready` when all is done.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(state) = self.refused.take() else {
                return Poll::Ready(Ok(()));
            };
            let next = match state {
                Refused::Pending(answer) => Refused::Writing(answer, 0),
                Refused::Writing(answer, at) if at < answer.len() => {
                    match Pin::new(&mut self.inner).poll_write(cx, &answer[at..]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Refused::Done,
                        Poll::Ready(Ok(n)) => Refused::Writing(answer, at + n),
                        Poll::Pending => {
                            self.refused = Some(Refused::Writing(answer, at));
                            return Poll::Pending;
                        }
                    }
                }
                Refused::Writing(..) => Refused::Shutdown,
                Refused::Shutdown => match Pin::new(&mut self.inner).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => {
                        Refused::Linger(Box::pin(tokio::time::sleep(LINGER_TIME)), 0)
                    }
                    Poll::Ready(Err(_)) => Refused::Done,
                    Poll::Pending => {
                        self.refused = Some(Refused::Shutdown);
                        return Poll::Pending;
                    }
                },
                Refused::Linger(mut sleep, dropped) => {
                    if sleep.as_mut().poll(cx).is_ready() || dropped >= LINGER_BYTES {
                        Refused::Done
                    } else {
                        let mut scratch = [0u8; 4096];
                        let mut rb = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                            Poll::Ready(Ok(())) if !rb.filled().is_empty() => {
                                Refused::Linger(sleep, dropped + rb.filled().len())
                            }
                            Poll::Ready(_) => Refused::Done,
                            Poll::Pending => {
                                self.refused = Some(Refused::Linger(sleep, dropped));
                                return Poll::Pending;
                            }
                        }
                    }
                }
                Refused::Done => {
                    self.refused = Some(Refused::Done);
                    return Poll::Ready(Ok(()));
                }
            };
            self.refused = Some(next);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadGate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.refused.is_some() {
                // hyper sees the end of input, finishes what it is doing and shuts the
                // connection down, which writes the answer (`poll_shutdown`). While a request
                // is in flight the end waits, or hyper would abort that request's answer.
                if this.in_flight.is_busy(cx) {
                    return Poll::Pending;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // What is left is an incomplete head: hyper sees it end as it would have.
                this.ready = this.buf.len();
                if this.ready == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // Nothing held back, no head to look at and more body to come than hyper has room
            // for: read straight into hyper's buffer.
            let direct = match this.framing {
                Framing::Opaque => Some(usize::MAX),
                Framing::Length(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                Framing::Chunked(Chunk::Data(n)) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => None,
            };
            if let Some(limit) = direct
                && this.buf.is_empty()
                && limit >= out.remaining()
            {
                let before = out.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                let n = (out.filled().len() - before) as u64;
                this.framing = match this.framing {
                    Framing::Length(left) if left == n => Framing::Head,
                    Framing::Length(left) => Framing::Length(left - n),
                    Framing::Chunked(Chunk::Data(left)) if left == n => {
                        Framing::Chunked(Chunk::DataCr)
                    }
                    Framing::Chunked(Chunk::Data(left)) => Framing::Chunked(Chunk::Data(left - n)),
                    other => other,
                };
                return Poll::Ready(Ok(()));
            }
            if this.buf.len() > this.ready {
                this.classify();
                if this.ready > 0 || this.refused.is_some() {
                    continue;
                }
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.eof = true;
            } else {
                this.buf.extend_from_slice(rb.filled());
                this.classify();
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadGate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(n) = this.hold(&[io::IoSlice::new(buf)]) {
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(n) = this.hold(bufs) {
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refused.is_some() {
            return this.poll_refusal(cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_after(bytes: &[u8]) -> (usize, Framing) {
        check_head(bytes).unwrap().unwrap()
    }

    /// After an upgrade request the `101` is held for whoever takes the socket over; other
    /// answers (an upgrade refused, any plain request) are written at once.
    #[tokio::test]
    async fn a_switching_protocols_answer_is_held_for_the_upgraded_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let plain = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let upgrade =
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let mut gate = HeadGate::new(ours, Default::default());
        peer.write_all(plain).await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = gate.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], plain);
        gate.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut got = [0u8; 19];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n", "a plain answer goes out");

        peer.write_all(upgrade).await.unwrap();
        let n = gate.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], upgrade);
        // A refused upgrade's answer is not held.
        gate.write_all(b"HTTP/1.1 401 Unauthorized\r\n\r\n")
            .await
            .unwrap();
        let mut got = [0u8; 29];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 401 Unauthorized\r\n\r\n");

        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let (head, rest) = answer.split_at(20);
        let slices = [io::IoSlice::new(head), io::IoSlice::new(rest)];
        let n = std::future::poll_fn(|cx| Pin::new(&mut gate).poll_write_vectored(cx, &slices))
            .await
            .unwrap();
        assert_eq!(n, answer.len(), "taken whole");
        gate.flush().await.unwrap();
        peer.write_all(b"\x81\x00").await.unwrap();
        let (mut inner, early, switching) = gate.into_parts();
        assert_eq!(&switching[..], &answer[..], "held, not written");
        assert!(
            early.is_empty(),
            "frames after the head are not read ahead by the gate"
        );
        inner.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        peer.read_exact(&mut one).await.unwrap();
        assert_eq!(
            &one, b"x",
            "nothing of the 101 reached the peer before the new owner wrote"
        );
    }

    #[test]
    fn a_good_head_is_measured_and_its_body_framed() {
        let (len, f) = framing_after(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(len, 39);
        assert_eq!(f, Framing::Length(5));
        let (_, f) = framing_after(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(f, Framing::Head);
        let (_, f) = framing_after(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(f, Framing::Chunked(Chunk::SizeStart));
        let (_, f) = framing_after(b"GET /socket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(f, Framing::Opaque);
        assert_eq!(check_head(b"GET / HTTP/1.1\r\nHost"), Ok(None));
    }

    #[test]
    fn bad_heads_are_refused_with_the_reason() {
        let cases: [(&[u8], u16, &str); 8] = [
            (b"\x01\x02 / HTTP/1.1\r\n\r\n", 400, "method"),
            (b"GET /a b HTTP/1.1\r\n\r\n", 400, "HTTP/1"),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "header name"),
            (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "header value"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
                400,
                "Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
                "conflicting",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                400,
                "chunked",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "HTTP/1.0",
            ),
        ];
        for (bytes, status, words) in cases {
            let r = check_head(bytes).unwrap_err();
            assert_eq!(
                r.status.as_u16(),
                status,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
            assert!(r.message.contains(words), "{} lacks {words}", r.message);
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(
            check_head(many.as_bytes()).unwrap_err().status.as_u16(),
            431
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}", "y".repeat(MAX_HEAD_BYTES));
        assert_eq!(check_head(big.as_bytes()).unwrap_err().status.as_u16(), 431);
    }
}
