//! A connection's first reader, before hyper: [`Front`].
//!
//! [`crate::serve_on_threads`] gives each accepted connection to its
//! thread's [`Front`] first. The front may answer requests on it itself (the
//! gateway answers its hot read path this way, with no per-request task,
//! channel or header map) and hands the connection back, with whatever it
//! read and did not answer, as soon as a request is one it does not take.
//! hyper then serves the rest of the connection, starting with those bytes,
//! exactly as if it had read them itself. [`NoFront`] hands every connection
//! straight over.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// One client connection, as a [`Front`] gets it and hands it back.
#[derive(Debug)]
pub struct Connection {
    /// The socket (`TCP_NODELAY` already set).
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Bytes read from `stream` and not yet answered; hyper reads these
    /// first when the connection is handed back.
    pub read: BytesMut,
    /// Set when the server stops: finish the request in hand, take no more.
    pub stop: StopSignal,
}

/// What a serving thread does first with each of its connections.
pub trait Front: Clone + Send + 'static {
    /// Serves the requests it takes on `connection`. Returns the connection
    /// for hyper to serve the rest (from the first unanswered byte, kept in
    /// [`Connection::read`]), or `None` once it has closed it.
    fn serve(self, connection: Connection) -> impl Future<Output = Option<Connection>> + Send;
}

/// The front that takes no request: hyper serves every connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFront;

impl Front for NoFront {
    async fn serve(self, connection: Connection) -> Option<Connection> {
        Some(connection)
    }
}

/// Whether the server is stopping (a `watch` that only ever goes to true).
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// A signal and the sender that sets it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (set, signal) = watch::channel(false);
        (set, Self(signal))
    }

    /// Whether the stop has been signalled.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the stop is signalled (or its sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// A stream that yields `prefix` before reading from `inner`: how a
/// connection goes to hyper with the bytes a [`Front`] already read.
#[derive(Debug)]
pub(crate) struct Rewind {
    pub(crate) prefix: BytesMut,
    pub(crate) inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
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
        bufs: &[io::IoSlice<'_>],
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
