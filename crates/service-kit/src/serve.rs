//! Serving HTTP/1.1 with hyper: [`serve`], the connection [`Limits`] it
//! keeps, and what it can serve ([`HttpService`]).
//!
//! Like `axum::serve`, plus what a service exposed to untrusted clients
//! needs and axum leaves out:
//! - a deadline for a request's headers, counted from when the connection
//!   opens or its last answer went out, so a client that sends nothing,
//!   trickles its headers (slowloris) or idles on a keep-alive connection
//!   lets go of it;
//! - a cap on open connections, so a flood of them exhausts neither file
//!   descriptors nor memory: at the cap, no connection is accepted until
//!   one closes (the rest wait in the kernel's listen backlog);
//! - the head limits of [`crate::MAX_HEADERS`] and [`crate::MAX_HEAD_BYTES`];
//! - a graceful stop: stop accepting, let each request in flight finish,
//!   close idle connections.
//!
//! HTTP/1.1 only: hyper's HTTP/2 server has no header deadline, and a
//! connection that must first be sniffed for HTTP/2's preface can be held
//! open by a client that never sends a byte. A TLS proxy in front can
//! speak HTTP/2 to clients.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};
use tracing::{debug, warn};

use crate::MAX_HEAD_BYTES;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The default cap on open connections: far more than the clients of a
/// runner service keep open, and, at two descriptors per proxied
/// connection, within the common soft limit of 4096 open files.
pub const MAX_CONNECTIONS: u32 = 1024;

/// How often, at most, [`serve`] warns that the connection cap holds
/// clients back.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// What [`serve`] allows each client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers, counted
    /// from when the connection opens or its last answer went out (so an
    /// idle keep-alive connection is closed after it too).
    pub header_read_timeout: Duration,
    /// Open connections at most (at least 1); the next one is accepted
    /// when one closes.
    pub max_connections: u32,
}

impl Default for Limits {
    /// [`HEADER_READ_TIMEOUT`] and [`MAX_CONNECTIONS`].
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

impl From<Duration> for Limits {
    /// A header deadline with the default cap ([`MAX_CONNECTIONS`]).
    fn from(header_read_timeout: Duration) -> Self {
        Self {
            header_read_timeout,
            ..Self::default()
        }
    }
}

/// Serves `service` (an axum `Router`, or any service answering like one)
/// on `listener` within `limits` (a [`Limits`], or just the header
/// deadline, with the default cap) until `shutdown` completes; then stops
/// accepting, lets each request in flight finish, closes idle connections,
/// and returns once every connection has ended. Handlers get the peer
/// address as `ConnectInfo<SocketAddr>`.
///
/// # Errors
/// Never in practice: accept errors are logged and retried.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()> + Send,
    limits: impl Into<Limits>,
) -> std::io::Result<()>
where
    S: HttpService<B>,
    B: ResponseBody,
{
    let limits = limits.into();
    let max_connections = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections as usize));
    let stop = CancellationToken::new();
    let builder = Arc::new(http1_builder(limits.header_read_timeout));
    let mut shutdown = pin!(shutdown);
    let mut warned: Option<Instant> = None;
    loop {
        if slots.available_permits() == 0
            && warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL)
        {
            warn!(
                max_connections,
                "the connection cap is reached: new connections wait until one closes"
            );
            warned = Some(Instant::now());
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            builder.clone(),
            service.clone(),
            stream,
            peer,
            stop.clone(),
            slot,
        ));
    }
    drop(listener);
    stop.cancel();
    // Each connection holds a slot until it ends.
    let _all = slots
        .acquire_many(max_connections)
        .await
        .expect("the semaphore is never closed");
    Ok(())
}

/// Like [`serve`], but the connections are served by `threads` threads,
/// each with a single-threaded Tokio runtime and its own service from
/// `make_service` (called once on each thread), the way nginx runs one
/// event loop per worker process: a request and everything it waits on
/// (e.g. a pooled client connection the service made on that thread) stay
/// on one thread. The caller's runtime only accepts, handing each
/// connection to the thread serving the fewest.
///
/// # Errors
/// A thread or its runtime that cannot be started, or every serving thread
/// gone (each would have to panic).
pub async fn serve_on_threads<F, S, B>(
    listener: TcpListener,
    threads: std::num::NonZeroUsize,
    make_service: F,
    shutdown: impl Future<Output = ()> + Send,
    limits: impl Into<Limits>,
) -> std::io::Result<()>
where
    F: Fn() -> S + Send + Sync + 'static,
    S: HttpService<B>,
    B: ResponseBody,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    type Handed = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);
    let limits = limits.into();
    let max_connections = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections as usize));
    let stop = CancellationToken::new();
    let make_service = Arc::new(make_service);
    let mut workers = Vec::with_capacity(threads.get());
    let mut started = Vec::with_capacity(threads.get());
    for index in 0..threads.get() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Handed>();
        let (ready, is_ready) = tokio::sync::oneshot::channel::<()>();
        let open = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let make_service = make_service.clone();
        let (counter, stop) = (open.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let service = make_service();
                    let _ = ready.send(());
                    let builder = Arc::new(http1_builder(limits.header_read_timeout));
                    let mut tasks = tokio::task::JoinSet::new();
                    while let Some((stream, peer, slot)) = receiver.recv().await {
                        let Ok(stream) = TcpStream::from_std(stream) else {
                            counter.fetch_sub(1, Ordering::Relaxed);
                            continue;
                        };
                        let (builder, service, stop, counter) = (
                            builder.clone(),
                            service.clone(),
                            stop.clone(),
                            counter.clone(),
                        );
                        tasks.spawn(async move {
                            serve_connection(builder, service, stream, peer, stop, slot).await;
                            counter.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                });
            })?;
        workers.push((sender, open, thread));
        started.push(is_ready);
    }
    for is_ready in started {
        if is_ready.await.is_err() {
            return Err(std::io::Error::other("a serving thread failed to start"));
        }
    }
    let mut shutdown = pin!(shutdown);
    let mut result = Ok(());
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let mut handed = Some((stream, peer, slot));
        while let Some(connection) = handed.take() {
            let Some(index) =
                (0..workers.len()).min_by_key(|&index| workers[index].1.load(Ordering::Relaxed))
            else {
                break;
            };
            let (sender, open, _) = &workers[index];
            open.fetch_add(1, Ordering::Relaxed);
            if let Err(returned) = sender.send(connection) {
                warn!(thread = index, "a serving thread stopped; the others go on");
                let (_, _, thread) = workers.swap_remove(index);
                let _ = thread.join();
                handed = Some(returned.0);
            }
        }
        if workers.is_empty() {
            result = Err(std::io::Error::other("every serving thread has stopped"));
            break;
        }
    }
    drop(listener);
    stop.cancel();
    let threads: Vec<_> = workers
        .into_iter()
        .map(|(sender, _, thread)| {
            drop(sender);
            thread
        })
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    })
    .await;
    result
}

fn http1_builder(header_read_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
}

/// Serves one connection until the client closes it, a limit ends it, or
/// `stop` lets its request in flight finish; then frees its `slot`.
async fn serve_connection<S: HttpService<B>, B: ResponseBody>(
    builder: Arc<http1::Builder>,
    service: S,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
    slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let connection = builder.serve_connection(
        TokioIo::new(stream),
        TowerToHyperService::new(with_peer(service, peer)),
    );
    let mut connection = pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = outcome {
        debug!(peer = %peer, error = %e, "connection ended with an error");
    }
    drop(slot);
}

/// What [`serve`] can serve: an axum `Router`, or any tower service
/// answering axum's requests (`R`) the way a router does, with any response
/// body (`B`).
pub trait HttpService<B, R = Request<Body>>:
    Service<R, Response = axum::http::Response<B>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S, B, R> HttpService<B, R> for S where
    S: Service<R, Response = axum::http::Response<B>, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// A response body hyper can send.
pub trait ResponseBody:
    hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + 'static
{
}

impl<B> ResponseBody for B where
    B: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// `service` with the peer address in each request's extensions, as
/// `ConnectInfo`, and hyper's body turned into axum's.
fn with_peer<S: HttpService<B>, B: ResponseBody>(
    service: S,
    peer: SocketAddr,
) -> impl HttpService<B, Request<Incoming>> {
    service.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.map(Body::new)
    })
}
