//! What every service binary of the project shares.
//!
//! - [`serve`]: serves an axum router like `axum::serve`, plus a deadline
//!   for reading a request's headers, so a client that trickles its headers
//!   (slowloris) is cut off instead of holding a connection forever; the
//!   peer address reaches handlers as `ConnectInfo<SocketAddr>`.
//! - [`shutdown_signal`]: completes on Ctrl-C or SIGTERM.
//! - [`healthcheck`]: the probe behind each binary's `healthcheck`
//!   subcommand (Docker's HEALTHCHECK, with no curl in the image).
//! - [`discard_body`]: reads and drops a refused request body, so the
//!   client sees the 413 instead of a reset connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, warn};

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut shutdown = pin!(shutdown);
    loop {
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
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
