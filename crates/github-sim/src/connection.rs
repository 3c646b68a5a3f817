//! The simulator's listener for `axum::serve`: plain TCP or TLS, and a handle on each
//! connection that a handler can use to cut it off with no answer.
//!
//! Why not `service_kit::serve`: it serves plain `TcpStream`s only (its public
//! `Connection` holds one), and a fault that loses an answer needs to reach the connection
//! from inside a request. axum's `Listener` trait gives both without a second HTTP stack:
//! the stream type is ours ([`SimIo`]), and [`ConnectionHandle`] reaches handlers as
//! `ConnectInfo` (axum's `Connected` hook builds it from the accepted stream).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for `accept`.
const ACCEPT_QUEUE: usize = 64;

/// Lets a handler end its connection at once, with nothing more written to it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    aborted: Arc<AtomicBool>,
}

impl ConnectionHandle {
    /// From now on every read and write of the connection fails, so hyper drops it
    /// without sending a byte of the answer in hand: the client sees the connection
    /// close with no response (a transport error, not a status).
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.io().handle.clone()
    }
}

/// The byte stream under one connection.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A served connection: its stream and its [`ConnectionHandle`].
#[derive(Debug)]
pub(crate) struct SimIo {
    stream: Stream,
    handle: ConnectionHandle,
}

impl SimIo {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            handle: ConnectionHandle {
                aborted: Arc::new(AtomicBool::new(false)),
            },
        }
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut by a fault",
    )
}

impl AsyncRead for SimIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handle.is_aborted() {
            return Poll::Ready(Err(aborted()));
        }
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SimIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.handle.is_aborted() {
            return Poll::Ready(Err(aborted()));
        }
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handle.is_aborted() {
            return Poll::Ready(Err(aborted()));
        }
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handle.is_aborted() {
            return Poll::Ready(Err(aborted()));
        }
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts plain TCP connections, or TLS ones handshaken off the accept path.
#[derive(Debug)]
pub(crate) enum SimListener {
    /// HTTP.
    Plain(TcpListener),
    /// HTTPS: a task accepts and handshakes each connection on its own task (a slow
    /// handshake does not hold up the others) and queues the finished ones here.
    Tls {
        handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        local: SocketAddr,
    },
}

impl SimListener {
    /// Serves `listener` with TLS from `acceptor`. The accepting task ends when the
    /// returned listener is dropped (axum drops it at shutdown).
    pub(crate) fn tls(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (queue, handshaken) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = queue.closed() => return,
                    accepted = TcpListener::accept(&listener) => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, queue) = (acceptor.clone(), queue.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let _ = queue.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self::Tls { handshaken, local })
    }
}

impl Listener for SimListener {
    type Io = SimIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            Self::Plain(listener) => {
                // axum's own accept loop, which logs and retries accept errors.
                let (stream, peer) = Listener::accept(listener).await;
                let _ = stream.set_nodelay(true);
                (SimIo::new(Stream::Plain(stream)), peer)
            }
            Self::Tls { handshaken, .. } => match handshaken.recv().await {
                Some((stream, peer)) => (SimIo::new(Stream::Tls(Box::new(stream))), peer),
                // The accepting task only ends once this listener is gone.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match self {
            Self::Plain(listener) => listener.local_addr(),
            Self::Tls { local, .. } => Ok(*local),
        }
    }
}
