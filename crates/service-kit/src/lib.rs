//! What every service binary of the project shares.
//!
//! - [`serve`]: serves an axum router like `axum::serve`, plus a deadline
//!   for reading a request's headers, so a client that trickles its headers
//!   (slowloris) is cut off instead of holding a connection forever; the
//!   peer address reaches handlers as `ConnectInfo<SocketAddr>`.
//! - [`serve_on_threads`]: the same, with one single-threaded runtime per
//!   serving thread, each connection going first to the thread's [`Front`]
//!   (the gateway's fast path), then to hyper.
//! - [`shutdown_signal`]: completes on Ctrl-C or SIGTERM.
//! - [`healthcheck`]: the probe behind each binary's `healthcheck`
//!   subcommand (Docker's HEALTHCHECK, with no curl in the image).
//! - [`discard_body`]: reads and drops a refused request body, so the
//!   client sees the 413 instead of a reset connection.
//! - [`MAX_HEADERS`], [`MAX_HEAD_BYTES`]: the request-head limits of
//!   [`serve`], so a proxy in front of a service can keep to them.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};
use tracing::{debug, warn};

mod front;

use front::Rewind;
pub use front::{Connection, Front, NoFront, StopSignal};

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most header lines a request may have; more get hyper's own 431
/// (no body, connection closed). hyper's default, which [`serve`] keeps
/// (setting it would make hyper allocate the header index per request).
pub const MAX_HEADERS: usize = 100;

/// The read buffer a request's head (request line and headers) must fit
/// in; [`serve`] sets it (it is hyper's default). A head of at most this
/// many bytes is always taken; a larger one gets hyper's own 431 (no body,
/// connection closed), though hyper may take a little more, depending on
/// how the bytes arrive.
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the requests in flight.
///
/// # Errors
/// Never in practice: accept errors are logged and retried.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let connections = Connections::new(header_read_timeout, Arc::new(AtomicUsize::new(0)));
    let mut shutdown = pin!(shutdown);
    while let Some((stream, peer)) = accept_until(&listener, shutdown.as_mut()).await {
        connections.open.fetch_add(1, Ordering::Relaxed);
        connections.spawn(stream, peer, &router, &NoFront);
    }
    drop(listener);
    connections.finish().await;
    Ok(())
}

/// Like [`serve`], but the connections are served by `threads` threads,
/// each with a single-threaded Tokio runtime and its own router and
/// [`Front`] from `make_thread` (called once on each thread), the way nginx
/// runs one event loop per worker process. A request and everything it
/// waits on (e.g. a pooled client connection the router made on that
/// thread) then stay on one thread: no wake-up crosses threads and no task
/// is stolen, which on a busy machine costs more than the request itself.
/// The caller's runtime only accepts, handing each connection to the thread
/// serving the fewest. Each connection goes to the thread's front first,
/// then, if the front hands it back, to hyper and the router.
///
/// # Errors
/// A thread or its runtime that cannot be started, or every serving thread
/// gone (each would have to panic).
pub async fn serve_on_threads<F, S, B, Fr>(
    listener: TcpListener,
    threads: NonZeroUsize,
    make_thread: F,
    shutdown: impl Future<Output = ()> + Send,
    header_read_timeout: Duration,
) -> std::io::Result<()>
where
    F: Fn() -> (S, Fr) + Send + Sync + 'static,
    S: HttpService<B>,
    B: ResponseBody,
    Fr: Front,
{
    let make_thread = Arc::new(make_thread);
    let mut workers = Vec::with_capacity(threads.get());
    let mut started = Vec::with_capacity(threads.get());
    for index in 0..threads.get() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let (ready, is_ready) = tokio::sync::oneshot::channel::<()>();
        let open = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let make_thread = make_thread.clone();
        let counter = open.clone();
        let thread = std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(move || {
                // Inside the runtime, so the front may start tasks on it.
                runtime.block_on(async move {
                    // Should this panic, `ready` is dropped unsent.
                    let (router, front) = make_thread();
                    let _ = ready.send(());
                    serve_handed(receiver, router, front, counter, header_read_timeout).await;
                });
            })?;
        workers.push((sender, open, thread));
        started.push(is_ready);
    }
    // Accept only once every thread has its router, so no connection is
    // handed to a thread that then fails to start.
    for is_ready in started {
        if is_ready.await.is_err() {
            return Err(std::io::Error::other("a serving thread failed to start"));
        }
    }
    let mut shutdown = pin!(shutdown);
    let mut result = Ok(());
    while let Some((stream, peer)) = accept_until(&listener, shutdown.as_mut()).await {
        // Out of this runtime's reactor, into the chosen thread's.
        let mut connection = match stream.into_std() {
            Ok(stream) => Some((stream, peer)),
            Err(e) => {
                warn!(error = %e, "cannot hand over a connection");
                continue;
            }
        };
        while let Some(handed) = connection.take() {
            let Some(index) =
                (0..workers.len()).min_by_key(|&index| workers[index].1.load(Ordering::Relaxed))
            else {
                break;
            };
            let (sender, open, _) = &workers[index];
            open.fetch_add(1, Ordering::Relaxed);
            if let Err(returned) = sender.send(handed) {
                // Its runtime ended (a panic): serve without it.
                warn!(thread = index, "a serving thread stopped; the others go on");
                let (_, _, thread) = workers.swap_remove(index);
                let _ = thread.join();
                connection = Some(returned.0);
            }
        }
        if workers.is_empty() {
            result = Err(std::io::Error::other("every serving thread has stopped"));
            break;
        }
    }
    drop(listener);
    // Closing the channels tells each thread to finish its connections.
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

/// One serving thread of [`serve_on_threads`]: serves the connections it is
/// handed until the channel closes, then signals the stop and waits for
/// them to finish.
async fn serve_handed<S: HttpService<B>, B: ResponseBody, Fr: Front>(
    mut handed: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    router: S,
    front: Fr,
    open: Arc<AtomicUsize>,
    header_read_timeout: Duration,
) {
    let connections = Connections::new(header_read_timeout, open);
    while let Some((stream, peer)) = handed.recv().await {
        match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => connections.spawn(stream, peer, &router, &front),
            Err(e) => {
                connections.open.fetch_sub(1, Ordering::Relaxed);
                warn!(error = %e, "cannot serve a handed-over connection");
            }
        }
    }
    connections.finish().await;
}

/// The connections one runtime serves: how each is served (its front, then
/// hyper), the stop signal they all watch, and how many are open.
struct Connections {
    builder: Arc<Builder<TokioExecutor>>,
    stop: tokio::sync::watch::Sender<bool>,
    stop_signal: StopSignal,
    /// Open connections; the caller counts each before [`Self::spawn`]
    /// (`serve_on_threads` does so as it hands one over), the connection's
    /// task uncounts it when it ends.
    open: Arc<AtomicUsize>,
}

impl Connections {
    fn new(header_read_timeout: Duration, open: Arc<AtomicUsize>) -> Self {
        let (stop, stop_signal) = StopSignal::new();
        Self {
            builder: Arc::new(http_builder(header_read_timeout)),
            stop,
            stop_signal,
            open,
        }
    }

    /// Starts the task serving `stream`: `front` first, then hyper and
    /// `router` for whatever the front hands back.
    fn spawn<S: HttpService<B>, B: ResponseBody, Fr: Front>(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        router: &S,
        front: &Fr,
    ) {
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            stream,
            peer,
            read: bytes::BytesMut::new(),
            stop: self.stop_signal.clone(),
        };
        let (builder, router, front, open) = (
            self.builder.clone(),
            router.clone(),
            front.clone(),
            self.open.clone(),
        );
        tokio::spawn(async move {
            if let Some(connection) = front.serve(connection).await {
                hyper_serves(&builder, router, connection).await;
            }
            open.fetch_sub(1, Ordering::Release);
        });
    }

    /// Signals the stop and waits until every connection has ended (each
    /// finishing the request it has in hand).
    async fn finish(self) {
        let _ = self.stop.send(true);
        while self.open.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Serves the rest of `connection` (its unanswered bytes first) with hyper
/// and `router`, until the client closes it or the stop lets the request in
/// flight finish.
async fn hyper_serves<S: HttpService<B>, B: ResponseBody>(
    builder: &Builder<TokioExecutor>,
    router: S,
    connection: Connection,
) {
    let Connection {
        stream,
        peer,
        read,
        mut stop,
    } = connection;
    let io = TokioIo::new(Rewind {
        prefix: read,
        inner: stream,
    });
    let served = builder
        .serve_connection_with_upgrades(io, TowerToHyperService::new(with_peer(router, peer)));
    let mut served = pin!(served);
    let outcome = tokio::select! {
        outcome = served.as_mut() => outcome,
        () = stop.wait() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = outcome {
        debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

/// What [`serve_on_threads`] can serve: an axum [`Router`], or any tower
/// service answering axum's requests (`R`) the way a router does, with any
/// response body (`B`).
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

/// The next connection, or `None` once `shutdown` completes.
async fn accept_until(
    listener: &TcpListener,
    mut shutdown: Pin<&mut (impl Future<Output = ()> + Send + ?Sized)>,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => return None,
        }
    }
}

/// HTTP/1.1 (and HTTP/2 when a client starts with its preface) with the
/// header deadline and the head size limit.
fn http_builder(header_read_timeout: Duration) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
}

/// `router` with the peer address in each request's extensions, as
/// `ConnectInfo`, and hyper's body turned into axum's.
fn with_peer<S: HttpService<B>, B: ResponseBody>(
    router: S,
    peer: SocketAddr,
) -> impl HttpService<B, Request<Incoming>> {
    router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.map(Body::new)
    })
}

/// The most of a refused body [`discard_body`] reads.
pub const DISCARD_MAX_BYTES: usize = 8 * 1024 * 1024;
/// The longest [`discard_body`] reads a refused body for.
pub const DISCARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and drops a refused body (at most [`DISCARD_MAX_BYTES`], for at
/// most [`DISCARD_TIMEOUT`]) before the 413 goes out. Closing a connection
/// with unread data in it makes the kernel reset it, and a client still
/// sending then sees "connection reset" instead of the answer (nginx's
/// "lingering close" exists for the same reason).
pub async fn discard_body(body: Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let _ = tokio::time::timeout(DISCARD_TIMEOUT, async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > DISCARD_MAX_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Probes `http://127.0.0.1:PORT/healthz`: `Ok` when it answers 2xx within
/// two seconds. Plain HTTP/1.1 over a socket: no client library needed.
///
/// # Errors
/// A message saying why the probe failed.
pub async fn healthcheck(port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .map_err(|e| format!("no answer on port {port}: {e}"))?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("cannot send the probe: {e}"))?;
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .await
            .map_err(|e| format!("no answer on port {port}: {e}"))?;
        match &head[9..12] {
            [b'2', _, _] => Ok(()),
            status => Err(format!(
                "/healthz answered {}",
                String::from_utf8_lossy(status)
            )),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .map_err(|_| format!("no answer on port {port} within 2s"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(
        header_timeout: Duration,
    ) -> (
        u16,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router =
            Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route(
                    "/peer",
                    get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.ip().to_string()
                    }),
                );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(
                listener,
                router,
                async {
                    let _ = stopped.await;
                },
                header_timeout,
            )
            .await
            .unwrap();
        });
        (port, stop, server)
    }

    #[tokio::test]
    async fn serves_requests_with_the_peer_address_and_stops() {
        let (port, stop, server) = start(HEADER_READ_TIMEOUT).await;
        let body = reqwest::get(format!("http://127.0.0.1:{port}/peer"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "127.0.0.1");
        assert_eq!(healthcheck(port).await, Ok(()));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
        assert!(healthcheck(port).await.is_err());
    }

    #[tokio::test]
    async fn threads_share_the_connections_and_finish_requests_in_flight() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let arrived = Arc::new(AtomicUsize::new(0));
        let counter = arrived.clone();
        let make_router = move || {
            let counter = counter.clone();
            let router = Router::new().route(
                "/thread",
                get(move || async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Still in flight when the stop comes.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    std::thread::current().name().unwrap_or("?").to_owned()
                }),
            );
            (router, NoFront)
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on_threads(
            listener,
            NonZeroUsize::new(2).unwrap(),
            make_router,
            async {
                let _ = stopped.await;
            },
            HEADER_READ_TIMEOUT,
        ));
        // Four connections at once: the least busy thread takes each.
        let asks: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .unwrap();
                    stream
                        .write_all(b"GET /thread HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .await
                        .unwrap();
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer).await.unwrap();
                    answer
                })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(5), async {
            while arrived.load(Ordering::SeqCst) < 4 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("four requests arrive");
        stop.send(()).unwrap();
        let mut threads = Vec::new();
        for ask in asks {
            let answer = tokio::time::timeout(Duration::from_secs(5), ask)
                .await
                .unwrap()
                .unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            threads.push(answer.rsplit("\r\n\r\n").next().unwrap().to_owned());
        }
        threads.sort_unstable();
        assert_eq!(threads, ["http-0", "http-0", "http-1", "http-1"]);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(healthcheck(port).await.is_err(), "still accepting");
    }

    /// Answers `GET /front` itself, hands anything else to hyper.
    #[derive(Clone)]
    struct FrontDoor;

    impl Front for FrontDoor {
        async fn serve(self, mut connection: Connection) -> Option<Connection> {
            const ASK: &[u8] = b"GET /front HTTP/1.1\r\nHost: x\r\n\r\n";
            loop {
                while connection.read.len() < ASK.len() {
                    if connection
                        .stream
                        .read_buf(&mut connection.read)
                        .await
                        .ok()?
                        == 0
                    {
                        return None;
                    }
                }
                if !connection.read.starts_with(ASK) {
                    return Some(connection);
                }
                bytes::Buf::advance(&mut connection.read, ASK.len());
                connection
                    .stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfront")
                    .await
                    .ok()?;
            }
        }
    }

    #[tokio::test]
    async fn the_front_answers_what_it_takes_and_hyper_gets_the_rest_of_the_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let make_thread = || {
            let router = Router::new().route("/router", get(|| async { "router" }));
            (router, FrontDoor)
        };
        tokio::spawn(serve_on_threads(
            listener,
            NonZeroUsize::new(1).unwrap(),
            make_thread,
            std::future::pending(),
            HEADER_READ_TIMEOUT,
        ));
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        // Pipelined in one write: two for the front, then the router's (the
        // front reads it, at least in part, before handing it over).
        stream
            .write_all(
                b"GET /front HTTP/1.1\r\nHost: x\r\n\r\nGET /front HTTP/1.1\r\nHost: x\r\n\r\nGET /router HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answers = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answers))
            .await
            .expect("all three answered and the connection closed")
            .unwrap();
        assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 3, "{answers}");
        assert_eq!(answers.matches("front").count(), 2, "{answers}");
        assert!(answers.ends_with("router"), "{answers}");
    }

    #[tokio::test]
    async fn a_serving_thread_that_fails_to_start_fails_the_start() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let made = Arc::new(AtomicUsize::new(0));
        let make_router = move || {
            assert!(
                made.fetch_add(1, Ordering::SeqCst) > 0,
                "the first serving thread fails to start (expected by the test)"
            );
            (
                Router::new().route("/healthz", get(|| async { "ok" })),
                NoFront,
            )
        };
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            serve_on_threads(
                listener,
                NonZeroUsize::new(2).unwrap(),
                make_router,
                std::future::pending(),
                HEADER_READ_TIMEOUT,
            ),
        )
        .await
        .expect("the start fails at once instead of serving");
        assert!(outcome.unwrap_err().to_string().contains("failed to start"));
    }

    /// Sends `request` raw and returns the status of the answer.
    async fn raw_status(port: u16, request: Vec<u8>) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(&request).await.unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        String::from_utf8_lossy(&head[9..12]).parse().unwrap()
    }

    #[tokio::test]
    async fn head_limits_are_the_published_ones() {
        let (port, _stop, _server) = start(HEADER_READ_TIMEOUT).await;
        let with_lines = |n: usize| {
            let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
            for i in 1..n {
                request.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            request.extend_from_slice(b"Connection: close\r\n\r\n");
            request
        };
        // Host + (n - 1) + Connection = n + 1 lines.
        assert_eq!(raw_status(port, with_lines(MAX_HEADERS - 1)).await, 200);
        assert_eq!(raw_status(port, with_lines(MAX_HEADERS)).await, 431);
        let with_bytes = |n: usize| {
            let start = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ";
            let end = "\r\nConnection: close\r\n\r\n";
            let value = "v".repeat(n - start.len() - end.len());
            format!("{start}{value}{end}").into_bytes()
        };
        assert_eq!(raw_status(port, with_bytes(MAX_HEAD_BYTES)).await, 200);
        assert_eq!(raw_status(port, with_bytes(2 * MAX_HEAD_BYTES)).await, 431);
    }

    #[tokio::test]
    async fn a_client_that_trickles_its_headers_is_cut_off() {
        let (port, _stop, _server) = start(Duration::from_millis(500)).await;
        let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the connection was still open after 5 s");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // Meanwhile other clients are served.
        assert_eq!(healthcheck(port).await, Ok(()));
    }
}
