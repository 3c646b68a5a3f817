//! Connections, at the socket level: pipelined requests, answers of every
//! framing relayed whole, pooled orchestrator connections that the
//! orchestrator dropped, the connection cap, and the graceful stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::helpers::{KEY, TestGateway};

/// An orchestrator stand-in at the socket level: records each request head
/// (and reads its body, by `Content-Length`), answers `reply`, and closes
/// the connection after answering when `close_after` is set. With `hold`
/// set it answers only once `release` is notified.
#[derive(Clone)]
struct RawUpstream {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
    /// Notified each time a head is recorded.
    arrived: Arc<Notify>,
    reply: Arc<Mutex<Vec<u8>>>,
    close_after: Arc<Mutex<bool>>,
    hold: Arc<Mutex<bool>>,
    release: Arc<Notify>,
}

impl RawUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            heads: Arc::default(),
            arrived: Arc::default(),
            reply: Arc::new(Mutex::new(json_reply(r#"{"runners":[]}"#))),
            close_after: Arc::default(),
            hold: Arc::default(),
            release: Arc::default(),
        };
        let serving = upstream.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(socket));
            }
        });
        upstream
    }

    async fn serve(self, mut socket: TcpStream) {
        let mut buf = Vec::new();
        loop {
            let Some(end) = find(&buf, b"\r\n\r\n") else {
                if !read_more(&mut socket, &mut buf).await {
                    return;
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = header_value(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            while buf.len() < end + 4 + length {
                if !read_more(&mut socket, &mut buf).await {
                    return;
                }
            }
            buf.drain(..end + 4 + length);
            let released = self.release.notified();
            self.heads.lock().unwrap().push(head);
            self.arrived.notify_waiters();
            if *self.hold.lock().unwrap() {
                released.await;
            }
            let reply = self.reply.lock().unwrap().clone();
            if socket.write_all(&reply).await.is_err() || *self.close_after.lock().unwrap() {
                return;
            }
        }
    }

    fn reply(&self, bytes: Vec<u8>) {
        *self.reply.lock().unwrap() = bytes;
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Waits (at most 5 s) until `count` heads have been recorded.
    async fn wait_for_heads(&self, count: usize) {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let arrived = self.arrived.notified();
                if self.heads.lock().unwrap().len() >= count {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{count} requests did not reach the orchestrator"));
    }
}

/// Reads more of `socket` into `buf`; false once it is closed.
async fn read_more(socket: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `200` JSON answer with a length.
fn json_reply(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The value of header `name` in a raw head, compared case-insensitively.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// An answer as the client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one answer (`Content-Length` or chunked) from `stream`, after the
/// bytes already in `buf`.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Answer {
    let more = async |stream: &mut TcpStream, buf: &mut Vec<u8>| {
        let read = tokio::time::timeout(Duration::from_secs(10), read_more(stream, buf))
            .await
            .expect("an answer within 10 s");
        assert!(read, "connection closed mid-answer: {buf:?}");
    };
    let end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        more(stream, buf).await;
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    buf.drain(..end + 4);
    let status = head[9..12].parse().unwrap();
    let body = if let Some(length) = header_value(&head, "content-length") {
        let length: usize = length.parse().unwrap();
        while buf.len() < length {
            more(stream, buf).await;
        }
        buf.drain(..length).collect()
    } else {
        assert_eq!(header_value(&head, "transfer-encoding"), Some("chunked"));
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                more(stream, buf).await;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                more(stream, buf).await;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break body;
            }
        }
    };
    Answer { status, head, body }
}

/// A plain read of the runner list with the test key.
fn list_runners(extra: &str) -> String {
    format!("GET /api/v1/runners HTTP/1.1\r\nHost: gateway\r\nX-API-Key: {KEY}\r\n{extra}\r\n")
}

/// Sends `request` on a new connection and reads one answer.
async fn ask(port: u16, request: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answer(&mut stream, &mut Vec::new()).await
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_each_with_its_own_id() {
    let upstream = RawUpstream::start().await;
    let gateway = TestGateway::spawn(&upstream.url, &[]);
    let body = r#"{"count":1}"#;
    // Four requests in one write: two reads, a create, another read.
    let pipelined = format!(
        "{read}{read}POST /api/v1/runners HTTP/1.1\r\nHost: g\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}{read}",
        body.len(),
        read = list_runners(""),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let answer = read_answer(&mut stream, &mut buf).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        ids.push(
            header_value(&answer.head, "x-request-id")
                .unwrap()
                .to_owned(),
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each request has its own id");
    let methods: Vec<String> = upstream
        .heads()
        .iter()
        .map(|h| h[..h.find(' ').unwrap()].to_owned())
        .collect();
    assert_eq!(methods, ["GET", "GET", "POST", "GET"]);
}

#[tokio::test]
async fn answers_without_a_length_are_relayed_whole() {
    let upstream = RawUpstream::start().await;
    let gateway = TestGateway::spawn(&upstream.url, &[]);
    upstream.reply(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{\"a\":1\r\n1\r\n}\r\n0\r\n\r\n"
            .to_vec(),
    );
    let answer = ask(gateway.port, &list_runners("")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"a":1}"#);
    // Up to the close, on a connection the orchestrator then closes.
    upstream.reply(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"b\":2}".to_vec());
    *upstream.close_after.lock().unwrap() = true;
    let answer = ask(gateway.port, &list_runners("")).await;
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &br#"{"b":2}"#[..])
    );
}

#[tokio::test]
async fn pooled_connections_the_orchestrator_dropped_are_replaced() {
    let upstream = RawUpstream::start().await;
    let gateway = TestGateway::spawn(&upstream.url, &[]);
    // The orchestrator answers as keep-alive, then closes the connection
    // (as one that restarts, or times out idle connections, does): the
    // gateway must not answer the next request from a dead connection.
    *upstream.close_after.lock().unwrap() = true;
    let request = list_runners("");
    let mut stream = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    let mut buf = Vec::new();
    for round in 0..5 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream, &mut buf).await;
        assert_eq!(answer.status, 200, "round {round}: {answer:?}");
        // The next request comes later, as a client's would.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(upstream.heads().len(), 5, "each request reached it once");
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_and_closes_idle_connections() {
    let upstream = RawUpstream::start().await;
    let mut gateway = TestGateway::spawn(&upstream.url, &[]);
    let request = list_runners("");
    let mut idle = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    idle.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut idle, &mut Vec::new()).await.status, 200);
    *upstream.hold.lock().unwrap() = true;
    let mut busy = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    busy.write_all(request.as_bytes()).await.unwrap();
    upstream.wait_for_heads(2).await;
    gateway.terminate();
    // The idle connection is closed while the request is still in flight.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed");
    assert!(closed.is_ok() && rest.is_empty(), "{rest:?}");
    upstream.release.notify_waiters();
    let answer = read_answer(&mut busy, &mut Vec::new()).await;
    assert_eq!(answer.status, 200, "the request in flight finished");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), busy.read_to_end(&mut rest))
        .await
        .expect("then its connection is closed")
        .unwrap();
    let status = gateway.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn at_the_connection_cap_the_next_client_waits_for_a_free_slot() {
    let upstream = RawUpstream::start().await;
    let gateway = TestGateway::spawn(
        &upstream.url,
        &[
            ("API_GATEWAY_MAX_CONNECTIONS", "2"),
            ("API_GATEWAY_WORKERS", "1"),
        ],
    );
    *upstream.hold.lock().unwrap() = true;
    let request = list_runners("");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(("127.0.0.1", gateway.port))
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        held.push(stream);
    }
    upstream.wait_for_heads(2).await;
    // A third client: the kernel takes its connection, the gateway does not
    // read from it while two are open.
    let mut third = TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(waited.is_err(), "answered beyond the cap: {waited:?}");
    // One closes: the third is served.
    drop(held.pop());
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    upstream.release.notify_waiters();
    let answer = read_answer(&mut held[0], &mut Vec::new()).await;
    assert_eq!(answer.status, 200);
}
