//! What every service binary of the project shares.
//!
//! - [`serve`]: serves an axum router like `axum::serve`, within [`Limits`]:
//!   a deadline for reading a request's headers (so a client that sends
//!   nothing, trickles its headers or idles is cut off instead of holding a
//!   connection forever) and a cap on open connections; the peer address
//!   reaches handlers as `ConnectInfo<SocketAddr>`.
//! - [`serve_on_threads`]: the same, with one single-threaded runtime per
//!   serving thread.
//! - [`shutdown_signal`]: completes on Ctrl-C or SIGTERM.
//! - [`healthcheck`]: the probe behind each binary's `healthcheck`
//!   subcommand (Docker's HEALTHCHECK, with no curl in the image).
//! - [`discard_body`]: reads and drops a refused request body, so the
//!   client sees the 413 instead of a reset connection.
//! - [`rejection`]: axum's rejections of a JSON body, query or path,
//!   reworded in the API's words (no serde or Rust type names).
//! - [`MAX_HEADERS`], [`MAX_HEAD_BYTES`]: the request-head limits of
//!   [`serve`], so a proxy in front of a service can keep to them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;

pub mod rejection;
mod serve;

pub use serve::{
    HEADER_READ_TIMEOUT, HttpService, Limits, MAX_CONNECTIONS, ResponseBody, serve,
    serve_on_threads,
};

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

/// Probes `http://127.0.0.1:PORT{path}`: `Ok` when it answers 2xx within
/// two seconds. Plain HTTP/1.1 over a socket: no client library needed.
///
/// # Errors
/// A message saying why the probe failed.
pub async fn healthcheck(port: u16, path: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .map_err(|e| format!("no answer on port {port}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
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
                "{path} answered {}",
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
    use std::num::NonZeroUsize;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A server of `/healthz`, `/peer` (the client's address) and `/slow`
    /// (answers once `release` is notified), within `limits`.
    struct TestServer {
        port: u16,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        server: tokio::task::JoinHandle<()>,
        /// Requests `/slow` has received.
        slow_arrived: Arc<AtomicUsize>,
        release: Arc<tokio::sync::Notify>,
    }

    impl TestServer {
        async fn start(limits: Limits) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let slow_arrived = Arc::new(AtomicUsize::new(0));
            let release = Arc::new(tokio::sync::Notify::new());
            let (arrived, released) = (slow_arrived.clone(), release.clone());
            let router = Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route(
                    "/peer",
                    get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.ip().to_string()
                    }),
                )
                .route(
                    "/slow",
                    get(move || async move {
                        let released = released.notified();
                        arrived.fetch_add(1, Ordering::SeqCst);
                        released.await;
                        "slow"
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
                    limits,
                )
                .await
                .unwrap();
            });
            Self {
                port,
                stop: Some(stop),
                server,
                slow_arrived,
                release,
            }
        }

        /// Signals the stop and waits (at most 5 s) until `serve` returns.
        async fn stop(mut self) {
            self.stop.take().unwrap().send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(5), &mut self.server)
                .await
                .expect("serve returns within 5 s")
                .unwrap();
        }

        async fn connect(&self) -> TcpStream {
            TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
        }

        /// Waits until `/slow` has received `count` requests.
        async fn slow_requests_arrived(&self, count: usize) {
            tokio::time::timeout(Duration::from_secs(5), async {
                while self.slow_arrived.load(Ordering::SeqCst) < count {
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the requests arrive within 5 s");
        }
    }

    fn limits(header_read_timeout: Duration, max_connections: u32) -> Limits {
        Limits {
            header_read_timeout,
            max_connections,
        }
    }

    /// Sends `request` on `stream` and reads until the server closes it.
    async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("answered and closed within 5 s")
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    const GET_SLOW: &[u8] = b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn serves_requests_with_the_peer_address_and_stops() {
        let server = TestServer::start(Limits::default()).await;
        let port = server.port;
        let body = reqwest::get(format!("http://127.0.0.1:{port}/peer"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "127.0.0.1");
        assert_eq!(healthcheck(port, "/healthz").await, Ok(()));
        server.stop().await;
        assert!(healthcheck(port, "/healthz").await.is_err());
    }

    #[tokio::test]
    async fn the_stop_lets_requests_in_flight_finish_and_closes_idle_connections() {
        let server = TestServer::start(Limits::default()).await;
        let mut idle = server.connect().await;
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        idle.read_exact(&mut head).await.unwrap();
        let mut busy = server.connect().await;
        busy.write_all(GET_SLOW).await.unwrap();
        server.slow_requests_arrived(1).await;
        let release = server.release.clone();
        let stopping = tokio::spawn(server.stop());
        // The idle connection is closed while the busy one is still served.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
            .await
            .expect("the idle connection is closed")
            .unwrap();
        release.notify_waiters();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), busy.read_to_string(&mut answer))
            .await
            .expect("the request in flight is answered")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("slow"), "{answer}");
        stopping.await.unwrap();
    }

    #[tokio::test]
    async fn at_the_cap_the_next_connection_waits_until_one_closes() {
        let server = TestServer::start(limits(HEADER_READ_TIMEOUT, 2)).await;
        let mut first = server.connect().await;
        first.write_all(GET_SLOW).await.unwrap();
        let mut second = server.connect().await;
        second.write_all(GET_SLOW).await.unwrap();
        server.slow_requests_arrived(2).await;
        // The kernel completes the handshake, but the server takes nothing
        // from this connection while two are open.
        let mut third = server.connect().await;
        third
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
        assert!(waited.is_err(), "answered beyond the cap: {waited:?}");
        server.release.notify_waiters();
        for stream in [&mut first, &mut second] {
            let answer = exchange(stream, b"").await;
            assert!(answer.ends_with("slow"), "{answer}");
        }
        let answer = exchange(&mut third, b"").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.stop().await;
    }

    #[tokio::test]
    async fn threads_share_the_connections_and_finish_requests_in_flight() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let arrived = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let (counter, released) = (arrived.clone(), release.clone());
        let make_router = move || {
            let (counter, released) = (counter.clone(), released.clone());
            Router::new().route(
                "/thread",
                get(move || async move {
                    let released = released.notified();
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Still in flight when the stop comes.
                    released.await;
                    std::thread::current().name().unwrap_or("?").to_owned()
                }),
            )
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on_threads(
            listener,
            NonZeroUsize::new(2).unwrap(),
            make_router,
            async {
                let _ = stopped.await;
            },
            Limits::default(),
        ));
        // Four connections at once: the least busy thread takes each.
        let asks: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    exchange(
                        &mut stream,
                        b"GET /thread HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    )
                    .await
                })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(5), async {
            while arrived.load(Ordering::SeqCst) < 4 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("four requests arrive");
        stop.send(()).unwrap();
        release.notify_waiters();
        let mut threads = Vec::new();
        for ask in asks {
            let answer = ask.await.unwrap();
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
        assert!(
            healthcheck(port, "/healthz").await.is_err(),
            "still accepting"
        );
    }

    /// Sends `request` raw and returns the status of the answer.
    async fn raw_status(port: u16, request: Vec<u8>) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
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
        let server = TestServer::start(Limits::default()).await;
        let port = server.port;
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

    /// Reads from `stream` until the server closes it; how long that took.
    async fn closed_after(stream: &mut TcpStream) -> Duration {
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection was still open after 5 s");
        started.elapsed()
    }

    #[tokio::test]
    async fn clients_that_send_nothing_trickle_or_idle_are_cut_off() {
        let server = TestServer::start(limits(Duration::from_millis(500), 2)).await;
        let mut silent = server.connect().await;
        let mut slow = server.connect().await;
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        for stream in [&mut silent, &mut slow] {
            assert!(closed_after(stream).await < Duration::from_secs(3));
        }
        // Their slots are free again: others are served.
        assert_eq!(healthcheck(server.port, "/healthz").await, Ok(()));
        let mut idle = server.connect().await;
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        idle.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[9..12], b"200");
        assert!(closed_after(&mut idle).await < Duration::from_secs(3));
        server.stop().await;
    }
}
