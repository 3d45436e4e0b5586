//! Where a request's body ends, so the head gate knows where the next head starts: a fixed
//! length, or a chunked body followed byte by byte with the grammar hyper's decoder accepts.

/// Where the next inbound bytes belong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// The start of a request head.
    Head,
    /// This many bytes of a fixed-length body.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Not ours to frame any more (after an upgrade request or a body hyper will refuse).
    Opaque,
}

/// Position in a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunk {
    /// The first hex digit of a chunk size.
    SizeStart,
    /// More hex digits, whitespace, an extension or the line end.
    Size(u64),
    /// Whitespace after the size.
    SizeSpace(u64),
    /// A chunk extension, up to the line end.
    Extension(u64),
    /// The LF of the size line.
    SizeLf(u64),
    /// Chunk data still to come.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// After the last chunk: a trailer line or the final CRLF.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF of a trailer line.
    TrailerLf,
    /// The LF of the final CRLF.
    EndLf,
}

impl Chunk {
    /// The state after `b`; `None` when the body is malformed.
    pub(super) fn step(self, b: u8) -> Option<Framing> {
        let hex = |b: u8| (b as char).to_digit(16).map(u64::from);
        let grow = |n: u64, d: u64| n.checked_mul(16)?.checked_add(d);
        let next = match (self, b) {
            (Chunk::SizeStart, _) => Chunk::Size(hex(b)?),
            (Chunk::Size(n), _) if hex(b).is_some() => Chunk::Size(grow(n, hex(b)?)?),
            (Chunk::Size(n) | Chunk::SizeSpace(n), b' ' | b'\t') => Chunk::SizeSpace(n),
            (Chunk::Size(n) | Chunk::SizeSpace(n), b';') => Chunk::Extension(n),
            (Chunk::Size(n) | Chunk::SizeSpace(n) | Chunk::Extension(n), b'\r') => Chunk::SizeLf(n),
            (Chunk::Extension(_), b'\n') => return None,
            (Chunk::Extension(n), _) => Chunk::Extension(n),
            (Chunk::SizeLf(0), b'\n') => Chunk::TrailerStart,
            (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::SizeStart,
            (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
            (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
            (Chunk::TrailerStart | Chunk::Trailer, _) => Chunk::Trailer,
            (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (Chunk::EndLf, b'\n') => return Some(Framing::Head),
            _ => return None,
        };
        Some(Framing::Chunked(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_chunked(body: &[u8]) -> Option<usize> {
        let mut f = Framing::Chunked(Chunk::SizeStart);
        for (i, b) in body.iter().enumerate() {
            f = match f {
                Framing::Chunked(Chunk::Data(n)) => Framing::Chunked(if n == 1 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(n - 1)
                }),
                Framing::Chunked(c) => c.step(*b)?,
                _ => unreachable!(),
            };
            if f == Framing::Head {
                return Some(i + 1);
            }
        }
        None
    }

    #[test]
    fn a_chunked_body_ends_where_hyper_ends_it() {
        let body = b"5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET";
        assert_eq!(walk_chunked(body), Some(body.len() - 3));
        assert_eq!(walk_chunked(b"0\r\n\r\n"), Some(5));
        assert_eq!(walk_chunked(b"z\r\n"), None);
        assert_eq!(walk_chunked(b"3\r\nabcX"), None);
    }
}
