//! Clients that misbehave at the socket level: one that trickles its
//! headers, and one that connects and sends nothing, are cut off after the
//! header deadline, and the gateway keeps serving everyone else meanwhile.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestGateway, closed_upstream};

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let gateway = TestGateway::spawn(&closed_upstream(), &[]);
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    let started = Instant::now();
    // A byte every second, never finishing the headers.
    let mut cut_off = false;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
        .take(40)
    {
        if slow.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        // Others are served while the slow client holds its connection.
        let healthy = gateway
            .client
            .get(gateway.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(healthy.status(), 200);
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1000), slow.read(&mut probe)).await
        {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "still connected after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cut off only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_off() {
    let gateway = TestGateway::spawn(&closed_upstream(), &[]);
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    let started = Instant::now();
    let healthy = gateway
        .client
        .get(gateway.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("still connected after {:?}", started.elapsed()));
    assert!(closed.is_ok() && rest.is_empty(), "{rest:?}");
    assert!(
        started.elapsed() >= service_kit::HEADER_READ_TIMEOUT - Duration::from_secs(1),
        "cut off before the deadline: {:?}",
        started.elapsed()
    );
}
