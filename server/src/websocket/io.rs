//! The socket under tungstenite: read-ahead that costs nothing while a connection is idle, and
//! data frames written straight from the shared payloads.
//!
//! Reads: tungstenite asks for at most `read_buffer_size` (2 KiB, kept small because every idle
//! connection holds that buffer) per `read`, so a pipelining client sending 4 KiB messages cost
//! two `recvfrom` calls per message. [`SocketIo`] reads directly into tungstenite's buffer until
//! a read fills it (more is probably waiting); then it reads ahead up to [`READ_AHEAD`] bytes at
//! a time into a buffer of its own, and frees that buffer as soon as it is drained and the
//! socket has nothing more. Idle connections never allocate it.
//!
//! Writes: tungstenite copies every frame into a per-connection buffer whose capacity it never
//! gives back (one large push would leave every recipient holding that much memory).
//! [`write_frames`] writes text and binary frames itself, as a 2–10 byte header plus the
//! shared payload in one vectored write for a whole batch: no copy, one syscall per batch, no
//! memory kept. Control frames (ping, pong, close) stay with tungstenite; the connection task
//! flushes tungstenite's buffer before writing its own frames and never polls tungstenite while
//! one of its writes is under way, so frames never interleave.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crate::websocket::outbox::Outbound;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Bytes read ahead at a time while a connection streams.
pub const READ_AHEAD: usize = 16 * 1024;

/// Most slices handed to one vectored write (Linux allows 1,024).
const MAX_SLICES: usize = 512;

/// A socket with idle-free read-ahead; writes pass through (vectored included).
pub struct SocketIo<S> {
    inner: S,
    /// Read-ahead buffer, only while the peer streams: `ahead[pos..len]` is unread.
    ahead: Option<Box<[u8]>>,
    pos: usize,
    len: usize,
}

impl<S> SocketIo<S> {
    /// Wraps a socket.
    pub fn new(inner: S) -> Self {
        SocketIo {
            inner,
            ahead: None,
            pos: 0,
            len: 0,
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
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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

/// Writes `frames` as WebSocket data frames, header and shared payload side by side in
/// vectored writes, and flushes. A failure or a cancellation part-way leaves a torn frame on
/// the wire: the caller must then drop the connection without writing anything else.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    io: &mut W,
    frames: &[Outbound],
) -> io::Result<()> {
    let mut heads: Vec<([u8; 10], usize)> = Vec::with_capacity(frames.len().min(MAX_SLICES / 2));
    for group in frames.chunks(MAX_SLICES / 2) {
        heads.clear();
        for frame in group {
            let (binary, data) = payload(frame);
            let mut head = [0u8; 10];
            let n = frame_header(binary, data.len(), &mut head);
            heads.push((head, n));
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(group.len() * 2);
        for (frame, (head, n)) in group.iter().zip(&heads) {
            slices.push(IoSlice::new(&head[..*n]));
            let (_, data) = payload(frame);
            if !data.is_empty() {
                slices.push(IoSlice::new(data));
            }
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let written = io.write_vectored(rest).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, written);
        }
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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

    /// Frames written by `write_frames` through a tiny pipe (so every write is partial) are
    /// read back intact, in order, by tungstenite's own client.
    #[tokio::test]
    async fn tungstenite_reads_what_we_write() {
        let (server_side, client_side) = tokio::io::duplex(333);
        let sizes = [0usize, 1, 125, 126, 4096, 65_535, 65_536, 200_000];
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
        let writer = tokio::spawn(async move {
            let mut io = SocketIo::new(server_side);
            write_frames(&mut io, &frames).await.unwrap();
            io
        });
        let mut client = WebSocketStream::from_raw_socket(client_side, Role::Client, None).await;
        for want in expected {
            let got = client.next().await.unwrap().unwrap();
            match (want, got) {
                (Outbound::Text(w), Message::Text(g)) => assert_eq!(w, g),
                (Outbound::Binary(w), Message::Binary(g)) => assert_eq!(w, g),
                (w, g) => panic!("wanted {w:?}, got {g:?}"),
            }
        }
        drop(writer.await.unwrap());
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
