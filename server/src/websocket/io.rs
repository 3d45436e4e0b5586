//! The socket under tungstenite: read-ahead that costs nothing while a connection is idle, and
//! data frames written straight from the shared payloads.
//!
//! Reads: tungstenite asks for at most `read_buffer_size` (256 bytes, kept small because every
//! idle connection holds that buffer) per `read`, so a pipelining client sending 4 KiB messages
//! would cost sixteen `recvfrom` calls per message. [`SocketIo`] reads directly into
//! tungstenite's buffer until a read fills it (more is probably waiting); then it reads ahead up
//! to [`READ_AHEAD`] bytes at a time into a buffer of its own, and frees that buffer as soon as
//! it is drained and the socket has nothing more. Idle connections never allocate it.
//!
//! Writes: tungstenite copies every frame into a per-connection buffer whose capacity it never
//! gives back (one large push would leave every recipient holding that much memory).
//! [`write_queue`] writes text and binary frames itself, as a 2–10 byte header plus the
//! shared payload in one vectored write for a whole queue: no copy, one syscall per batch, no
//! memory kept. It never waits, so the task that queued a push can write it at once (see
//! `outbox`). Control frames (ping, pong, close) stay with tungstenite; its writes pass
//! through the connection's outbox ([`SocketIo::gated`]), which finishes any data frame cut off
//! by a full socket before them and keeps data frames out while one of tungstenite's is cut
//! off, so frames never interleave.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::websocket::client::Connection;
use crate::websocket::outbox::Outbound;
use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read ahead at a time while a connection streams.
pub const READ_AHEAD: usize = 16 * 1024;

/// Most slices handed to one vectored write (Linux allows 1,024).
const MAX_SLICES: usize = 512;

/// A TCP socket shared between its connection task (reads, control frames) and whichever
/// task queues a push for it (data frames written without waiting, through the outbox).
#[derive(Clone)]
pub struct Shared(pub Arc<TcpStream>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            let room = buf.initialize_unfilled();
            let wanted = room.len();
            // A read that returns less than asked for emptied the socket: readiness is cleared
            // inside the same `try_io` (which ignores the clearing if new data was signalled
            // since), so the next read waits for data instead of spending a `recv` to learn
            // there is none. tokio's own `TcpStream` reads do the same.
            let mut short = None;
            let read = self.0.try_io(Interest::READABLE, || {
                let n = recv(&self.0, room)?;
                if n > 0 && n < wanted {
                    short = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match (read, short) {
                (_, Some(n)) | (Ok(n), None) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale and is now cleared: the next poll registers the waker.
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shutdown_write(&self.0))
    }
}

/// One `recv(2)` into `buf`, without touching tokio's readiness (the caller's `try_io` does).
fn recv(sock: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the descriptor belongs to `sock`, alive for the call; `buf` is valid for
        // writes of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends FIN. tokio offers this only on an owned `TcpStream`; the socket here is shared.
fn shutdown_write(sock: &TcpStream) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `sock`, which is alive for the call.
    if unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_WR) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A socket with idle-free read-ahead. Writes pass through, or, once [`SocketIo::gated`], go
/// through the connection's outbox so they never land inside one of its data frames.
pub struct SocketIo<S> {
    inner: S,
    /// Read-ahead buffer, only while the peer streams: `ahead[pos..len]` is unread.
    ahead: Option<Box<[u8]>>,
    pos: usize,
    len: usize,
    gate: Option<Arc<Connection>>,
}

impl<S> SocketIo<S> {
    /// Wraps a socket.
    pub fn new(inner: S) -> Self {
        SocketIo {
            inner,
            ahead: None,
            pos: 0,
            len: 0,
            gate: None,
        }
    }

    /// Wraps a socket whose data frames `client`'s outbox writes: tungstenite's writes go
    /// through the same outbox.
    pub fn gated(inner: S, client: Arc<Connection>) -> Self {
        SocketIo {
            gate: Some(client),
            ..SocketIo::new(inner)
        }
    }

    #[cfg(test)]
    fn reading_ahead(&self) -> bool {
        self.ahead.is_some()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SocketIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.len {
            if let Some(ahead) = &this.ahead {
                let n = (this.len - this.pos).min(out.remaining());
                out.put_slice(&ahead[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
        }
        match &mut this.ahead {
            None => {
                let wanted = out.remaining();
                let before = out.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                let got = out.filled().len() - before;
                if wanted > 0 && got == wanted && wanted < READ_AHEAD {
                    // The caller's buffer was too small for what is arriving: read ahead from
                    // now on.
                    this.ahead = Some(vec![0u8; READ_AHEAD].into_boxed_slice());
                }
                Poll::Ready(Ok(()))
            }
            Some(ahead) => {
                let mut rb = ReadBuf::new(ahead);
                match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                    Poll::Pending => {
                        // Drained and nothing more arriving: back to costing nothing.
                        this.ahead = None;
                        this.pos = 0;
                        this.len = 0;
                        Poll::Pending
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {
                        let got = rb.filled().len();
                        let n = got.min(out.remaining());
                        out.put_slice(&rb.filled()[..n]);
                        if got == 0 {
                            this.ahead = None;
                        }
                        this.pos = n;
                        this.len = got;
                        Poll::Ready(Ok(()))
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SocketIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &this.gate {
            Some(client) => client.outbox().poll_write_control(cx, buf),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The header of an unmasked, final, uncompressed server frame; returns its length.
pub fn frame_header(binary: bool, payload_len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | if binary { 0x2 } else { 0x1 };
    if payload_len < 126 {
        out[1] = payload_len as u8;
        2
    } else if let Ok(len) = u16::try_from(payload_len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

fn payload(frame: &Outbound) -> (bool, &[u8]) {
    match frame {
        Outbound::Text(t) => (false, t.as_bytes()),
        Outbound::Binary(b) => (true, b),
    }
}

/// Frames handed to one vectored write: a header and a payload each.
const FRAMES_PER_WRITE: usize = MAX_SLICES / 2;

/// What one [`write_queue`] call put on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Frames completed.
    pub frames: u64,
    /// Payload bytes of the completed frames.
    pub bytes: u64,
}

/// Writes `lead` (raw bytes that precede every frame, usually none), then up to `max_frames`
/// queued frames, to the socket without waiting, header and shared payload side by side in
/// vectored writes, until they are written (`Ok(true)`) or the kernel takes no more
/// (`Ok(false)`). `lead` is advanced past what went out; `front_sent` counts the bytes of
/// the front frame already written, so a frame cut off by a full socket is continued, never
/// restarted; `done` is called with each completed frame as it leaves the queue.
pub fn write_queue(
    wire: &TcpStream,
    lead: &mut Bytes,
    queue: &mut VecDeque<Outbound>,
    front_sent: &mut usize,
    max_frames: usize,
    mut done: impl FnMut(&Outbound),
) -> io::Result<bool> {
    let mut heads = [([0u8; 10], 0usize); FRAMES_PER_WRITE];
    let mut left = max_frames;
    loop {
        if lead.is_empty() && (queue.is_empty() || left == 0) {
            return Ok(true);
        }
        // One slice is kept for the lead.
        let count = queue.len().min(FRAMES_PER_WRITE - 1).min(left);
        for (frame, head) in queue.iter().zip(heads.iter_mut()).take(count) {
            let (binary, data) = payload(frame);
            head.1 = frame_header(binary, data.len(), &mut head.0);
        }
        let mut slices: [IoSlice<'_>; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
        let mut used = 0;
        let mut total = lead.len();
        if !lead.is_empty() {
            slices[0] = IoSlice::new(lead);
            used = 1;
        }
        let mut skip = *front_sent;
        for (frame, (head, n)) in queue.iter().zip(heads.iter()).take(count) {
            for part in [&head[..*n], payload(frame).1] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[used] = IoSlice::new(&part[skip..]);
                total += part.len() - skip;
                skip = 0;
                used += 1;
            }
        }
        let mut written = match wire.try_write_vectored(&slices[..used]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        // A short write means the socket's buffer is full: wait for it to drain.
        let full = written < total;
        let from_lead = written.min(lead.len());
        lead.advance(from_lead);
        if lead.is_empty() {
            // Frees the buffer: an advanced `Bytes` still holds it.
            *lead = Bytes::new();
        }
        written -= from_lead;
        // Retire every frame the write completed; keep the position inside a cut-off one.
        for (_, head_len) in heads.iter().take(count) {
            let Some(front) = queue.front() else { break };
            if written == 0 {
                break;
            }
            let rest = head_len + front.len() - *front_sent;
            if written < rest {
                *front_sent += written;
                break;
            }
            written -= rest;
            *front_sent = 0;
            if let Some(frame) = queue.pop_front() {
                done(&frame);
            }
            left -= 1;
        }
        if full {
            return Ok(false);
        }
    }
}

/// A connected loopback pair whose first socket has a small send buffer, so large frames
/// cannot go out in one write.
#[cfg(test)]
pub(crate) async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client_side = TcpStream::connect(addr).await.unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    let size: libc::c_int = 4096;
    // SAFETY: a valid descriptor and an option value of the size given.
    let set = unsafe {
        libc::setsockopt(
            server_side.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
    (server_side, client_side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

    #[test]
    fn headers_use_the_shortest_length_encoding() {
        let mut h = [0u8; 10];
        assert_eq!(frame_header(false, 125, &mut h), 2);
        assert_eq!(&h[..2], &[0x81, 125]);
        assert_eq!(frame_header(true, 126, &mut h), 4);
        assert_eq!(&h[..4], &[0x82, 126, 0, 126]);
        assert_eq!(frame_header(false, 65_535, &mut h), 4);
        assert_eq!(frame_header(false, 65_536, &mut h), 10);
        assert_eq!(&h[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    /// Frames written by `write_queue` to a real socket whose reader is slow (so writes are
    /// cut off mid-frame and continued) are read back intact, in order, by tungstenite's own
    /// client.
    #[tokio::test]
    async fn tungstenite_reads_what_we_write() {
        let (server_side, client_side) = tcp_pair().await;
        let sizes = [
            0usize, 1, 125, 126, 4096, 65_535, 65_536, 200_000, 3_000_000,
        ];
        let frames: Vec<Outbound> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                if i % 2 == 0 {
                    Outbound::Text(Utf8Bytes::from("é".repeat(n / 2) + &"x".repeat(n % 2)))
                } else {
                    Outbound::Binary(Bytes::from(vec![i as u8; n]))
                }
            })
            .collect();
        let expected = frames.clone();
        // Raw bytes ahead of the frames (the HTTP 101), longer than the send buffer.
        let lead_bytes: Vec<u8> = (0..6000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut lead = Bytes::from(lead_bytes.clone());
        let writer = tokio::spawn(async move {
            let mut queue: VecDeque<Outbound> = frames.into_iter().collect();
            let mut front_sent = 0;
            let mut done = 0;
            let mut cut = 0;
            while !write_queue(
                &server_side,
                &mut lead,
                &mut queue,
                &mut front_sent,
                usize::MAX,
                |_| done += 1,
            )
            .unwrap()
            {
                if front_sent > 0 {
                    cut += 1;
                }
                server_side.writable().await.unwrap();
            }
            assert_eq!(front_sent, 0);
            assert!(lead.is_empty());
            (done, cut, server_side)
        });
        let mut client_side = client_side;
        let mut got_lead = vec![0u8; lead_bytes.len()];
        tokio::io::AsyncReadExt::read_exact(&mut client_side, &mut got_lead)
            .await
            .unwrap();
        assert_eq!(got_lead, lead_bytes, "the lead comes first, whole");
        let mut client = WebSocketStream::from_raw_socket(client_side, Role::Client, None).await;
        for want in expected {
            let got = client.next().await.unwrap().unwrap();
            match (want, got) {
                (Outbound::Text(w), Message::Text(g)) => assert_eq!(w, g),
                (Outbound::Binary(w), Message::Binary(g)) => assert_eq!(w, g),
                (w, g) => panic!("wanted {w:?}, got {g:?}"),
            }
        }
        let (done, cut, _socket) = writer.await.unwrap();
        assert_eq!(done, sizes.len());
        assert!(
            cut > 0,
            "frames larger than the send buffer are written in parts"
        );
    }

    /// Read-ahead starts only when a read fills the caller's buffer, hands every byte over in
    /// order, and is freed once the socket goes quiet.
    #[tokio::test]
    async fn read_ahead_comes_and_goes() {
        let (mut peer, ours) = tokio::io::duplex(1 << 20);
        let mut io = SocketIo::new(ours);
        peer.write_all(b"hello").await.unwrap();
        let mut small = [0u8; 64];
        let n = io.read(&mut small).await.unwrap();
        assert_eq!(&small[..n], b"hello");
        assert!(!io.reading_ahead(), "a short read allocates nothing");

        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&data).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 2048];
        while got.len() < data.len() {
            let n = io.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, data);
        // Drained: the next read finds nothing and gives the buffer back.
        let pending = futures_util::FutureExt::now_or_never(io.read(&mut chunk));
        assert!(pending.is_none());
        assert!(!io.reading_ahead());
        peer.write_all(b"bye").await.unwrap();
        drop(peer);
        let n = io.read(&mut chunk).await.unwrap();
        assert_eq!(&chunk[..n], b"bye");
        assert_eq!(io.read(&mut chunk).await.unwrap(), 0);
    }
}
