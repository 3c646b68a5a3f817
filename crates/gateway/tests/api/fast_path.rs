//! The fast path (plain `GET`s of the runner endpoints, answered before
//! hyper): it answers exactly as the full stack does, hands everything else
//! to the full stack mid-connection, survives an orchestrator that drops
//! pooled connections, and stops gracefully.
//!
//! The full stack is forced by running a second gateway with `debug`
//! logging (the fast path leaves every request to the full stack then, so
//! the request span is logged). A raw upstream records the request heads
//! byte for byte: the full stack's client writes header names in lower case,
//! the fast path as the client sent them, which shows which path served.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{KEY, TestGateway};

/// An orchestrator stand-in at the socket level: records each request head
/// (and body, by `Content-Length`) as received, answers `reply`, and closes
/// the connection after answering when `close_after` is set.
#[derive(Clone)]
struct RawUpstream {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
    reply: Arc<Mutex<Vec<u8>>>,
    close_after: Arc<Mutex<bool>>,
    delay: Arc<Mutex<Duration>>,
}

impl RawUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            heads: Arc::default(),
            reply: Arc::new(Mutex::new(json_reply("200 OK", r#"{"runners":[]}"#, ""))),
            close_after: Arc::default(),
            delay: Arc::default(),
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
                let mut chunk = [0u8; 4096];
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = header_value(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..end + 4 + length);
            self.heads.lock().unwrap().push(head);
            let delay = *self.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
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
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A JSON answer with a length and `extra` header lines (each ending CRLF).
fn json_reply(status: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
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
    /// Lower-case name → values, in order.
    headers: BTreeMap<String, Vec<String>>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v[0].as_str())
    }
}

/// Reads one answer (`Content-Length` or chunked) from `stream`, after the
/// bytes already in `buf`.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Answer {
    let read_more = async |stream: &mut TcpStream, buf: &mut Vec<u8>| {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "connection closed mid-answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        read_more(stream, buf).await;
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    buf.drain(..end + 4);
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_owned());
    }
    let body = if let Some(length) = headers.get("content-length") {
        let length: usize = length[0].parse().unwrap();
        while buf.len() < length {
            read_more(stream, buf).await;
        }
        buf.drain(..length).collect()
    } else if headers.contains_key("transfer-encoding") {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                read_more(stream, buf).await;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                read_more(stream, buf).await;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break body;
            }
        }
    } else {
        Vec::new()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends `request` on a new connection and reads one answer.
async fn ask(port: u16, request: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answer(&mut stream, &mut Vec::new()).await
}

fn get(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n{headers}\r\n")
}

/// Headers whose values legitimately differ between two answers.
const VARYING: [&str; 2] = ["date", "x-request-id"];

#[tokio::test]
async fn plain_reads_answer_exactly_as_the_full_stack() {
    let upstream = RawUpstream::start().await;
    let fast = TestGateway::spawn(&upstream.url, &[]);
    let full = TestGateway::spawn(&upstream.url, &[("RUST_LOG", "info,gateway=debug")]);
    let with_key = format!("X-API-Key: {KEY}\r\n");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "list, key, no date upstream",
            json_reply("200 OK", r#"{"runners":[]}"#, ""),
            get("/api/v1/runners", &with_key),
        ),
        (
            "list with a query and a bearer key",
            json_reply(
                "200 OK",
                r#"{"runners":[1]}"#,
                "date: Tue, 01 Dec 2026 10:00:00 GMT\r\n",
            ),
            get(
                "/api/v1/runners?state=idle&limit=5",
                &format!("Authorization: Bearer {KEY}\r\nAccept: application/json\r\n"),
            ),
        ),
        (
            "one runner, the client's id, hop-by-hop and rate headers upstream",
            json_reply(
                "503 Service Unavailable",
                r#"{"error":{"code":"docker_unavailable","message":"m"}}"#,
                "connection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nx-ratelimit-limit: 7\r\nx-custom: kept\r\n",
            ),
            get(
                "/api/v1/runners/gha-runner-1",
                &format!(
                    "{with_key}X-Request-Id: client-id-1\r\nX-Trace: 1\r\nConnection: keep-alive\r\n"
                ),
            ),
        ),
        (
            "orchestrator's own request id",
            json_reply(
                "404 Not Found",
                r#"{"error":{"code":"not_found","message":"m"}}"#,
                "x-request-id: upstream-id\r\n",
            ),
            get("/api/v1/runners/nobody", &with_key),
        ),
        (
            "no key",
            json_reply("200 OK", "{}", ""),
            get("/api/v1/runners", ""),
        ),
        (
            "wrong key",
            json_reply("200 OK", "{}", ""),
            get("/api/v1/runners", "X-API-Key: nope\r\n"),
        ),
    ];
    for (case, reply, request) in cases {
        upstream.reply(reply);
        let before = upstream.heads().len();
        let from_fast = ask(fast.port, &request).await;
        let from_full = ask(full.port, &request).await;
        assert_eq!(from_fast.status, from_full.status, "{case}");
        assert_eq!(from_fast.body, from_full.body, "{case}");
        for answer in [&from_fast, &from_full] {
            for name in VARYING {
                assert!(
                    answer.headers.contains_key(name),
                    "{case}: no {name}: {answer:?}"
                );
            }
        }
        let strip = |answer: &Answer| {
            let mut headers = answer.headers.clone();
            for name in VARYING {
                headers.remove(name);
            }
            headers
        };
        assert_eq!(strip(&from_fast), strip(&from_full), "{case}");
        if let Some(sent) = header_value(&request, "x-request-id") {
            assert_eq!(from_fast.header("x-request-id"), Some(sent), "{case}");
        }
        // What the orchestrator received: the same headers, values and all.
        let heads = upstream.heads();
        let forwarded = &heads[before..];
        if from_fast.status == 401 {
            assert!(forwarded.is_empty(), "{case}: forwarded {forwarded:?}");
            continue;
        }
        assert_eq!(forwarded.len(), 2, "{case}: {forwarded:?}");
        let parse = |head: &str| {
            let mut lines = head.lines();
            let request_line = lines.next().unwrap().to_owned();
            let mut headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.to_ascii_lowercase(), v.trim().to_owned())
                })
                .filter(|(n, _)| n != "x-request-id" || header_value(&request, n).is_some())
                .collect();
            headers.sort();
            (request_line, headers)
        };
        assert_eq!(parse(&forwarded[0]), parse(&forwarded[1]), "{case}");
        assert!(
            header_value(&forwarded[0], "x-request-id").is_some(),
            "{case}: no id sent upstream"
        );
        // The fast path served the first (names as the client wrote them).
        if request.contains("X-Trace") {
            assert!(forwarded[0].contains("X-Trace: 1"), "{}", forwarded[0]);
            assert!(forwarded[1].contains("x-trace: 1"), "{}", forwarded[1]);
        }
    }
}

#[tokio::test]
async fn answers_without_a_length_are_relayed_whole() {
    let upstream = RawUpstream::start().await;
    let fast = TestGateway::spawn(&upstream.url, &[]);
    upstream.reply(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n6\r\n{\"a\":1\r\n1\r\n}\r\n0\r\n\r\n"
            .to_vec(),
    );
    let request = get("/api/v1/runners", &format!("X-API-Key: {KEY}\r\n"));
    let answer = ask(fast.port, &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"a":1}"#);
    assert_eq!(answer.header("content-length"), Some("7"));
    assert!(!answer.headers.contains_key("transfer-encoding"));
    // Up to the close, on a connection the orchestrator then closes.
    upstream.reply(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"b\":2}".to_vec());
    *upstream.close_after.lock().unwrap() = true;
    let answer = ask(fast.port, &request).await;
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &br#"{"b":2}"#[..])
    );
}

#[tokio::test]
async fn a_connection_goes_from_the_fast_path_to_the_full_stack_mid_stream() {
    let upstream = RawUpstream::start().await;
    let fast = TestGateway::spawn(&upstream.url, &[]);
    let body = r#"{"count":1}"#;
    // Four pipelined requests in one write: two plain reads, a create (full
    // stack from there on), and another read.
    let pipelined = format!(
        "{read}{read}POST /api/v1/runners HTTP/1.1\r\nHost: g\r\nX-API-Key: {KEY}\r\nX-Step: 3\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}{read}",
        body.len(),
        read = get(
            "/api/v1/runners",
            &format!("X-API-Key: {KEY}\r\nX-Step: r\r\n")
        ),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", fast.port)).await.unwrap();
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let answer = read_answer(&mut stream, &mut buf).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        ids.push(answer.header("x-request-id").unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each request has its own id");
    let heads = upstream.heads();
    let steps: Vec<&str> = heads.iter().map(|h| &h[..h.find(' ').unwrap()]).collect();
    assert_eq!(steps, ["GET", "GET", "POST", "GET"]);
    assert!(heads[0].contains("X-Step: r") && heads[1].contains("X-Step: r"));
    assert!(heads[2].contains("x-step: 3") && heads[3].contains("x-step: r"));
}

#[tokio::test]
async fn pooled_connections_the_orchestrator_dropped_are_replaced() {
    let upstream = RawUpstream::start().await;
    let fast = TestGateway::spawn(&upstream.url, &[]);
    // The orchestrator answers as keep-alive, then closes the connection:
    // the gateway pools it, finds it gone on the next request, and sends
    // that request again on a new connection.
    *upstream.close_after.lock().unwrap() = true;
    let request = get("/api/v1/runners", &format!("X-API-Key: {KEY}\r\n"));
    let mut stream = TcpStream::connect(("127.0.0.1", fast.port)).await.unwrap();
    let mut buf = Vec::new();
    for round in 0..5 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream, &mut buf).await;
        assert_eq!(answer.status, 200, "round {round}: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(upstream.heads().len(), 5, "each request reached it once");
}

#[tokio::test]
async fn sigterm_lets_a_read_in_flight_finish_and_closes_idle_connections() {
    let upstream = RawUpstream::start().await;
    let mut fast = TestGateway::spawn(&upstream.url, &[]);
    let request = get("/api/v1/runners", &format!("X-API-Key: {KEY}\r\n"));
    let mut idle = TcpStream::connect(("127.0.0.1", fast.port)).await.unwrap();
    idle.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut idle, &mut Vec::new()).await.status, 200);
    *upstream.delay.lock().unwrap() = Duration::from_millis(700);
    let mut busy = TcpStream::connect(("127.0.0.1", fast.port)).await.unwrap();
    busy.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    fast.terminate();
    let answer = read_answer(&mut busy, &mut Vec::new()).await;
    assert_eq!(answer.status, 200, "the read in flight finished");
    for stream in [&mut idle, &mut busy] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the connection is closed");
        assert!(closed.is_ok() && rest.is_empty(), "{rest:?}");
    }
    let status = fast.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
