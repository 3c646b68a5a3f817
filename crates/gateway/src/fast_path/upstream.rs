//! The fast path's connections to the orchestrator: a pool per serving
//! thread of plain keep-alive HTTP/1.1 connections, one request at a time
//! on each, and reading the orchestrator's answer head and body.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long an unused connection stays in the pool (as the full stack's
/// client keeps them).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most header lines an answer of the orchestrator may have (hyper's
/// limit, which the full stack's client keeps).
pub(super) const MAX_ANSWER_HEADERS: usize = 100;

/// The largest answer head read (the full stack's client reads as much).
const MAX_ANSWER_HEAD_BYTES: usize = service_kit::MAX_HEAD_BYTES;

/// The largest answer body without a length (chunked or up to the close)
/// that is read whole, to send on with a length.
const MAX_UNFRAMED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Where the orchestrator is, for plain `http://` `ORCHESTRATOR_URL`s.
#[derive(Debug)]
pub(super) struct Target {
    /// `host:port` to connect to.
    pub connect_to: String,
    /// `ORCHESTRATOR_URL`'s authority, sent as `Host`.
    pub host: String,
    /// `ORCHESTRATOR_URL`'s path, put in front of every forwarded one.
    pub prefix: String,
    /// `UPSTREAM_TIMEOUT_SECONDS`: the whole exchange, body included.
    pub timeout: Duration,
}

impl Target {
    /// The connect timeout, as the full stack's client has it.
    fn connect_timeout(&self) -> Duration {
        self.timeout.min(Duration::from_secs(5))
    }
}

/// An idle connection to the orchestrator and its read buffer.
#[derive(Debug)]
pub(super) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    idle_since: Instant,
}

/// A serving thread's idle connections, most recently used last.
#[derive(Debug, Clone, Default)]
pub(super) struct Pool(Arc<Mutex<Vec<Conn>>>);

impl Pool {
    /// Starts the task that closes connections idle for longer than
    /// [`POOL_IDLE_TIMEOUT`] (on the current runtime, the thread's).
    pub(super) fn sweep_idle(&self) {
        let pool = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POOL_IDLE_TIMEOUT / 2);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let now = Instant::now();
                pool.lock()
                    .expect("pool lock")
                    .retain(|c| now.duration_since(c.idle_since) < POOL_IDLE_TIMEOUT);
            }
        });
    }

    fn take(&self) -> Option<Conn> {
        let mut idle = self.0.lock().expect("pool lock");
        let now = Instant::now();
        while let Some(conn) = idle.pop() {
            if now.duration_since(conn.idle_since) < POOL_IDLE_TIMEOUT {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        self.0.lock().expect("pool lock").push(conn);
    }
}

/// Why an exchange failed, as the full stack answers it.
#[derive(Debug)]
pub(super) enum Failure {
    /// Connect or I/O error, or an answer that is not HTTP: 502.
    Unreachable(io::Error),
    /// No (whole) answer within the timeout: 504.
    TimedOut,
}

/// How the answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the orchestrator closes the connection.
    Close,
    /// None (1xx, 204, 304).
    Empty,
}

/// The orchestrator's answer head, parsed.
pub(super) struct AnswerHead<'a> {
    /// The status code.
    pub status: u16,
    /// Every header line, as received.
    pub headers: &'a [httparse::Header<'a>],
    framing: Framing,
}

impl AnswerHead<'_> {
    /// Whether the answer carried its own `Content-Length` (which is then
    /// passed on as it is); otherwise the body is read whole and sent on
    /// with one of ours.
    pub(super) fn has_length(&self) -> bool {
        matches!(self.framing, Framing::Length(_) | Framing::Empty)
    }
}

/// One exchange with the orchestrator: its connection (pooled or new),
/// from the request sent to the answer's last byte.
pub(super) struct Exchange<'p> {
    pool: &'p Pool,
    conn: Conn,
    /// The head's length in `conn.buf`, once read.
    head_len: usize,
    framing: Framing,
    keep_alive: bool,
}

impl<'p> Exchange<'p> {
    /// Sends `head` (a whole request without body) on a pooled connection,
    /// or a new one, and reads the answer head. A pooled connection the
    /// orchestrator closed meanwhile is retried once on a new connection
    /// (the request is a GET, safe to repeat).
    pub(super) async fn start(
        pool: &'p Pool,
        target: &Target,
        head: &[u8],
    ) -> Result<Self, Failure> {
        let mut reused = pool.take();
        loop {
            let fresh = reused.is_none();
            let mut conn = match reused.take() {
                Some(conn) => conn,
                None => connect(target).await?,
            };
            match send_and_read_head(&mut conn, head).await {
                Ok((head_len, framing, keep_alive)) => {
                    return Ok(Self {
                        pool,
                        conn,
                        head_len,
                        framing,
                        keep_alive,
                    });
                }
                Err(Sent::Stale) if !fresh => {}
                Err(Sent::Stale) => {
                    return Err(Failure::Unreachable(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the orchestrator closed the connection before answering",
                    )));
                }
                Err(Sent::Broken(e)) => return Err(Failure::Unreachable(e)),
            }
        }
    }

    /// The answer head (parsed again from the buffer: cheap, and it keeps
    /// the borrow out of the exchange).
    pub(super) fn head<'h>(&'h self, headers: &'h mut [httparse::Header<'h>]) -> AnswerHead<'h> {
        let mut answer = httparse::Response::new(headers);
        let _ = answer.parse(&self.conn.buf[..self.head_len]);
        AnswerHead {
            status: answer.code.unwrap_or(502),
            headers: answer.headers,
            framing: self.framing,
        }
    }

    /// For an answer with a length: the body bytes already read (at most
    /// the whole body), and how many more are to come.
    pub(super) fn body_start(&self) -> (&[u8], u64) {
        let read = &self.conn.buf[self.head_len..];
        match self.framing {
            Framing::Length(n) => {
                let now = read.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                (&read[..now], n - now as u64)
            }
            _ => (&[], 0),
        }
    }

    /// Relays the rest of a body with a length, `remaining` bytes after
    /// those [`Self::body_start`] gave, to `client` as they arrive; then the
    /// connection goes back to the pool when it can carry another request.
    pub(super) async fn relay_rest(
        mut self,
        remaining: u64,
        client: &mut TcpStream,
    ) -> io::Result<()> {
        if remaining == 0 {
            let body = match self.framing {
                Framing::Length(n) => usize::try_from(n).unwrap_or(usize::MAX),
                _ => 0,
            };
            self.conn.buf.advance(self.head_len + body);
            self.finish();
            return Ok(());
        }
        self.conn.buf.clear();
        let mut remaining = remaining;
        while remaining > 0 {
            if self.conn.stream.read_buf(&mut self.conn.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = self
                .conn
                .buf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            remaining -= take as u64;
            client.write_all(&self.conn.buf[..take]).await?;
            self.conn.buf.advance(take);
        }
        self.finish();
        Ok(())
    }

    /// Reads a body without a length (chunked, or up to the close) whole.
    pub(super) async fn read_unframed(mut self) -> io::Result<Vec<u8>> {
        self.conn.buf.advance(self.head_len);
        self.head_len = 0;
        match self.framing {
            Framing::Chunked => {
                let mut body = Vec::new();
                let mut decoder = Chunked::default();
                loop {
                    let used = decoder.feed(&self.conn.buf, &mut body)?;
                    self.conn.buf.advance(used);
                    if decoder.done() {
                        break;
                    }
                    if body.len() > MAX_UNFRAMED_BODY_BYTES {
                        return Err(io::Error::other("the orchestrator's answer is too large"));
                    }
                    if self.conn.stream.read_buf(&mut self.conn.buf).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                self.finish();
                Ok(body)
            }
            Framing::Close => {
                self.keep_alive = false;
                loop {
                    if self.conn.buf.len() > MAX_UNFRAMED_BODY_BYTES {
                        return Err(io::Error::other("the orchestrator's answer is too large"));
                    }
                    if self.conn.stream.read_buf(&mut self.conn.buf).await? == 0 {
                        break;
                    }
                }
                Ok(self.conn.buf.split().to_vec())
            }
            Framing::Length(_) | Framing::Empty => Ok(Vec::new()),
        }
    }

    /// Back to the pool, when the answer is wholly read and the connection
    /// may carry another request.
    fn finish(self) {
        if self.keep_alive && self.conn.buf.is_empty() {
            self.pool.put(self.conn);
        }
    }
}

/// A new connection to the orchestrator, within the connect timeout.
async fn connect(target: &Target) -> Result<Conn, Failure> {
    let connecting = TcpStream::connect(target.connect_to.as_str());
    let stream = match tokio::time::timeout(target.connect_timeout(), connecting).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err(Failure::Unreachable(io::Error::new(
                e.kind(),
                format!("cannot connect to {}: {e}", target.connect_to),
            )));
        }
        Err(_) => return Err(Failure::TimedOut),
    };
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(8 * 1024),
        idle_since: Instant::now(),
    })
}

/// How sending a request on a connection failed.
enum Sent {
    /// Closed (or reset) before any byte of an answer: a pooled connection
    /// the orchestrator had let go.
    Stale,
    /// Anything else.
    Broken(io::Error),
}

/// Writes `head` and reads the answer head: its length, framing and whether
/// the connection stays open.
async fn send_and_read_head(conn: &mut Conn, head: &[u8]) -> Result<(usize, Framing, bool), Sent> {
    let stale = |e: io::Error| match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Sent::Stale,
        _ => Sent::Broken(e),
    };
    conn.buf.clear();
    conn.stream.write_all(head).await.map_err(stale)?;
    loop {
        if !conn.buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
            let mut answer = httparse::Response::new(&mut headers);
            match answer.parse(&conn.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = answer.code.unwrap_or(0);
                    if (100..200).contains(&status) && status != 101 {
                        // Informational: the real answer follows.
                        conn.buf.advance(len);
                        continue;
                    }
                    let framing = framing(status, answer.headers).map_err(Sent::Broken)?;
                    let keep_alive = answer.version == Some(1)
                        && !answer.headers.iter().any(|h| {
                            h.name.eq_ignore_ascii_case("connection")
                                && h.value
                                    .split(|&b| b == b',')
                                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                        });
                    return Ok((len, framing, keep_alive));
                }
                Ok(httparse::Status::Partial) if conn.buf.len() < MAX_ANSWER_HEAD_BYTES => {}
                _ => return Err(Sent::Broken(not_http())),
            }
        }
        let before = conn.buf.len();
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if before == 0 => return Err(Sent::Stale),
            Ok(0) => return Err(Sent::Broken(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) if before == 0 => return Err(stale(e)),
            Err(e) => return Err(Sent::Broken(e)),
        }
    }
}

fn not_http() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the orchestrator's answer is not valid HTTP/1.1",
    )
}

/// How an answer with `status` and `headers` is delimited (RFC 9112 §6.3).
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> io::Result<Framing> {
    if status == 101 {
        return Err(not_http());
    }
    if status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header
                .value
                .split(|&b| b == b',')
                .next_back()
                .unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(not_http)?;
            if length.is_some_and(|l| l != value) {
                return Err(not_http());
            }
            length = Some(value);
        }
    }
    Ok(match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    })
}

/// A decoder of a chunked body that collects the data (extensions and
/// trailers are read and dropped).
#[derive(Debug, Default)]
struct Chunked {
    /// Data bytes left in the current chunk.
    data_left: u64,
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a size line.
    #[default]
    Size,
    /// Reading chunk data.
    Data,
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines after the last chunk, until an empty line.
    Trailers,
    Done,
}

impl Chunked {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes what it can of `input` into `body`; returns the bytes used.
    fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> io::Result<usize> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                ChunkState::Done => return Ok(used),
                ChunkState::Size | ChunkState::Trailers | ChunkState::DataEnd => {
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > 4096 {
                            return Err(not_http());
                        }
                        return Ok(used);
                    };
                    let line = &rest[..end];
                    used += end + 2;
                    self.state = match self.state {
                        ChunkState::Size => {
                            let size = line.split(|&b| b == b';').next().unwrap_or(b"");
                            let size = std::str::from_utf8(size)
                                .ok()
                                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                                .ok_or_else(not_http)?;
                            self.data_left = size;
                            if size == 0 {
                                ChunkState::Trailers
                            } else {
                                ChunkState::Data
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err(not_http()),
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailers,
                    };
                }
                ChunkState::Data => {
                    if rest.is_empty() {
                        return Ok(used);
                    }
                    let take = rest
                        .len()
                        .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
                    body.extend_from_slice(&rest[..take]);
                    used += take;
                    self.data_left -= take as u64;
                    if self.data_left == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_in_any_pieces() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 0..wire.len() {
            let mut decoder = Chunked::default();
            let mut body = Vec::new();
            let mut input = wire[..split].to_vec();
            let used = decoder.feed(&input, &mut body).unwrap();
            input.drain(..used);
            input.extend_from_slice(&wire[split..]);
            let used = decoder.feed(&input, &mut body).unwrap();
            assert_eq!(used, input.len(), "split at {split}");
            assert!(decoder.done());
            assert_eq!(body, b"Wikipedia");
        }
    }

    #[test]
    fn framing_follows_the_rfc() {
        let header = |name, value| httparse::Header { name, value };
        let length = [header("Content-Length", &b"12"[..])];
        assert_eq!(framing(200, &length).unwrap(), Framing::Length(12));
        assert_eq!(framing(204, &length).unwrap(), Framing::Empty);
        let both = [
            header("content-length", &b"3"[..]),
            header("transfer-encoding", &b"gzip, chunked"[..]),
        ];
        assert_eq!(framing(200, &both).unwrap(), Framing::Chunked);
        assert_eq!(framing(200, &[]).unwrap(), Framing::Close);
        let conflicting = [
            header("content-length", &b"3"[..]),
            header("content-length", &b"4"[..]),
        ];
        assert!(framing(200, &conflicting).is_err());
    }
}
