//! Hostile input through the gateway, over raw TCP where a client library
//! would normalize the request: path tricks in runner ids, header floods,
//! conflicting framing headers (request smuggling shapes) and repeated API
//! keys. Each gets a clear error, nothing unintended reaches the
//! orchestrator, and the gateway keeps serving everyone else.
//!
//! Who answers what:
//! - the gateway's own router and handlers answer 4xx in the house JSON
//!   shape `{"error":{"code","message"}}`;
//! - hyper itself (before any of the gateway's code runs) answers a request
//!   it cannot parse with a body-less error and closes the connection
//!   (`content-length: 0`, `connection: close`): 400 for a malformed
//!   request line, header or framing, 414 for a request target longer than
//!   65 534 bytes, and 431 for more than 100 header lines or a header
//!   section that does not end within its read buffer
//!   (`service_kit::MAX_HEAD_BYTES`, ~408 KiB).

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{KEY, Recorded, TestGateway, TestUpstream};

/// How long any one raw exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait, once an answer is complete, for the connection to
/// close or for more bytes.
const SETTLE: Duration = Duration::from_secs(1);

/// hyper's request-head limits as the gateway (and the orchestrator) run
/// it: header lines, and bytes of request head.
const MAX_HEADERS: usize = service_kit::MAX_HEADERS;
const MAX_HEAD_BYTES: usize = service_kit::MAX_HEAD_BYTES;

/// One answer read off a raw socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bytes that came after the first answer (a second answer would show
    /// up here).
    rest: Vec<u8>,
    /// Whether the gateway closed (or reset) the connection after it.
    closed: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// An answer hyper made up itself: no body, connection closed.
    fn assert_from_hyper(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert_eq!(self.header("content-length"), Some("0"), "{what}: {self:?}");
        assert_eq!(self.header("connection"), Some("close"), "{what}: {self:?}");
        assert!(self.body.is_empty(), "{what}: {self:?}");
        assert!(self.closed, "{what}: the connection stayed open");
        assert!(
            self.header("x-request-id").is_none(),
            "{what}: the gateway's own layers never saw it: {self:?}"
        );
    }

    /// An error in the house shape; returns its code.
    fn assert_json_error(&self, status: u16, what: &str) -> String {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: {self:?}"
        );
        let body: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {self:?}"));
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!code.is_empty() && !message.is_empty(), "{what}: {body}");
        code.to_owned()
    }
}

/// Parses one HTTP/1.1 answer from the start of `bytes`; `None` while it
/// is incomplete.
fn try_parse_answer(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let after = &bytes[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let (body, rest) = if chunked {
        decode_chunked(after)?
    } else {
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        if after.len() < length {
            return None;
        }
        (after[..length].to_vec(), after[length..].to_vec())
    };
    Some(Answer {
        status,
        headers,
        body,
        rest,
        closed: false,
    })
}

/// One answer from what a raw exchange read; panics when there is none.
fn parse_answer(seen: &Exchange, what: &str) -> Answer {
    let Some(mut answer) = try_parse_answer(&seen.read) else {
        panic!(
            "{what}: no complete answer in {} bytes: {:?}",
            seen.read.len(),
            String::from_utf8_lossy(&seen.read[..seen.read.len().min(300)])
        );
    };
    answer.closed = seen.closed;
    answer
}

/// A chunked body (without trailers) and what follows it; `None` while it
/// is incomplete.
fn decode_chunked(mut bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut body = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&bytes[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return bytes
                .starts_with(b"\r\n")
                .then(|| (body, bytes[2..].to_vec()));
        }
        if bytes.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

/// What a raw exchange saw.
#[derive(Debug)]
struct Exchange {
    /// Everything read until the gateway closed the connection (or reset
    /// it, or the timeout passed).
    read: Vec<u8>,
    /// Whether the gateway closed or reset the connection (as opposed to
    /// the timeout passing with the connection still open).
    closed: bool,
    /// How many bytes were written before the gateway stopped taking them.
    written: usize,
    /// Whether writing failed (the gateway closed or reset the connection
    /// while the client was still sending).
    write_failed: bool,
}

/// Connects, sends `request` and then `then` (called for more bytes until
/// it returns `None`, or the gateway stops taking them), and reads until
/// the gateway closes the connection or [`EXCHANGE_TIMEOUT`] passes. The
/// writing runs alongside the reading, so a gateway that answers before the
/// client is done is seen answering; the client never half-closes (hyper
/// could take that for a client that went away).
async fn exchange_with(
    port: u16,
    request: Vec<u8>,
    mut then: impl FnMut() -> Option<Vec<u8>> + Send + 'static,
) -> Exchange {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let mut written = 0;
        let mut failed = false;
        let mut next = Some(request);
        while let Some(bytes) = next {
            if writer.write_all(&bytes).await.is_err() {
                failed = true;
                break;
            }
            written += bytes.len();
            next = then();
        }
        (written, failed, writer)
    });
    let mut read = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
    let closed = loop {
        // Once a whole answer is in, wait only a little longer: for the
        // connection to close, or for anything after the answer.
        let until = if try_parse_answer(&read).is_some() {
            deadline.min(tokio::time::Instant::now() + SETTLE)
        } else {
            deadline
        };
        match tokio::time::timeout_at(until, reader.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    if !closed {
        // The writer may be blocked on a gateway that no longer reads.
        write.abort();
    }
    let (written, write_failed) = match tokio::time::timeout(EXCHANGE_TIMEOUT, write).await {
        Ok(Ok((written, failed, writer))) => {
            drop(writer);
            (written, failed)
        }
        Ok(Err(e)) if e.is_cancelled() => (0, false),
        _ => panic!("the writer did not finish"),
    };
    Exchange {
        read,
        closed,
        written,
        write_failed,
    }
}

/// Sends `request` and reads one answer.
async fn exchange(port: u16, request: Vec<u8>, what: &str) -> Answer {
    let seen = exchange_with(port, request, || None).await;
    parse_answer(&seen, what)
}

/// `METHOD target HTTP/1.1` with the test key, `Connection: close`,
/// `extra` header lines and no body.
fn request(method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: gateway.test\r\nX-API-Key: {KEY}\r\n{extra}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// What a path trick must lead to.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The gateway answers this status with a JSON error; nothing is sent
    /// upstream.
    Json(u16),
    /// hyper answers this status with no body; nothing is sent upstream.
    Hyper(u16),
    /// The request is forwarded (the stand-in answers 200) to exactly this
    /// orchestrator path, query included.
    Forwarded(&'static str),
}

/// An upstream request that must never happen, whatever came in.
fn assert_harmless(got: &Recorded, what: &str) {
    let target = format!("{}?{}", got.path, got.query.as_deref().unwrap_or(""));
    let path = got.path.to_ascii_lowercase();
    assert!(
        !path.contains("..")
            && !path.contains("%2f")
            && !path.contains("%5c")
            && !path.contains('\\')
            && !path.contains("//")
            && !path.contains("/./")
            && path != "/runners/cleanup"
            && !path.starts_with("/health"),
        "{what}: reached {} {target}",
        got.method
    );
}

#[tokio::test]
async fn path_tricks_in_runner_ids_never_reach_another_orchestrator_path() {
    use Outcome::{Forwarded, Hyper, Json};
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let id_101 = format!("/api/v1/runners/{}", "x".repeat(101));
    let id_10k = format!("/api/v1/runners/{}", "x".repeat(10_000));
    // Over hyper's 65 534-byte limit on a request target: 414 from hyper.
    let id_70k = format!("/api/v1/runners/{}", "x".repeat(70_000));
    // (target, outcome for GET, outcome for DELETE)
    let cases: Vec<(&str, Outcome, Outcome)> = vec![
        // Dot segments and encoded separators: the id extractor decodes
        // them, and the id rule refuses the result.
        ("/api/v1/runners/..", Json(400), Json(400)),
        ("/api/v1/runners/.", Json(400), Json(400)),
        ("/api/v1/runners/%2e", Json(400), Json(400)),
        ("/api/v1/runners/%2e%2e", Json(400), Json(400)),
        ("/api/v1/runners/%2E%2E%2Fcleanup", Json(400), Json(400)),
        ("/api/v1/runners/a%2Fb", Json(400), Json(400)),
        ("/api/v1/runners/a%2fb", Json(400), Json(400)),
        ("/api/v1/runners/a%5Cb", Json(400), Json(400)),
        ("/api/v1/runners/a\\b", Json(400), Json(400)),
        ("/api/v1/runners/..%2F..%2Fhealth", Json(400), Json(400)),
        ("/api/v1/runners/%00", Json(400), Json(400)),
        ("/api/v1/runners/x%20y", Json(400), Json(400)),
        ("/api/v1/runners/a;b", Json(400), Json(400)),
        ("/api/v1/runners/a%3Fb", Json(400), Json(400)),
        // Non-ASCII: valid UTF-8 (é) and not UTF-8 at all.
        ("/api/v1/runners/caf%C3%A9", Json(400), Json(400)),
        ("/api/v1/runners/%FF%FE", Json(400), Json(400)),
        // Too long for the id rule (at most 100).
        (&id_101, Json(400), Json(400)),
        (&id_10k, Json(400), Json(400)),
        (&id_70k, Hyper(414), Hyper(414)),
        // A raw space splits the request line: hyper cannot parse it.
        ("/api/v1/runners/x y", Hyper(400), Hyper(400)),
        // Paths are matched as they come, without resolving dot segments
        // or merging slashes: these match no route.
        (
            "/api/v1/runners/a/../../../runners/cleanup",
            Json(404),
            Json(404),
        ),
        ("/api/v1/runners/./x", Json(404), Json(404)),
        ("/api/v1//runners", Json(404), Json(404)),
        ("/api/v1/runners%2Fcleanup", Json(404), Json(404)),
        ("/api/v1/runners/", Json(404), Json(404)),
        ("//evil.example/api/v1/runners", Json(404), Json(404)),
        ("/api/v1/health/../runners/cleanup", Json(404), Json(404)),
        // Absolute form: only the path counts; the host named is ignored
        // (the orchestrator's address is fixed at start-up). GET of the
        // list is a normal list; DELETE of it is no endpoint.
        (
            "http://evil.example/api/v1/runners",
            Forwarded("/runners"),
            Json(405),
        ),
        (
            "http://evil.example/api/v1/runners/..%2Fcleanup",
            Json(400),
            Json(400),
        ),
        (
            "http://evil.example:1/api/v1/runners/gha-runner-1",
            Forwarded("/runners/gha-runner-1/status"),
            Forwarded("/runners/gha-runner-1"),
        ),
        // A fragment is not part of the request target: dropped.
        (
            "/api/v1/runners/a#/../cleanup",
            Forwarded("/runners/a/status"),
            Forwarded("/runners/a"),
        ),
        // A query travels as a query, never as path.
        (
            "/api/v1/runners/x?y=../../cleanup",
            Forwarded("/runners/x/status?y=../../cleanup"),
            Forwarded("/runners/x?y=../../cleanup"),
        ),
    ];
    for (target, on_get, on_delete) in &cases {
        for (method, outcome) in [("GET", on_get), ("DELETE", on_delete)] {
            let what = format!("{method} {}", &target[..target.len().min(80)]);
            let before = upstream.received().len();
            let answer = exchange(gw.port, request(method, target, ""), &what).await;
            let sent: Vec<Recorded> = upstream.received().split_off(before);
            for got in &sent {
                assert_harmless(got, &what);
            }
            match *outcome {
                Json(status) => {
                    answer.assert_json_error(status, &what);
                    assert!(sent.is_empty(), "{what}: forwarded {sent:#?}");
                }
                Hyper(status) => {
                    answer.assert_from_hyper(status, &what);
                    assert!(sent.is_empty(), "{what}: forwarded {sent:#?}");
                }
                Forwarded(expected) => {
                    assert_eq!(answer.status, 200, "{what}: {answer:?}");
                    assert_eq!(sent.len(), 1, "{what}: {sent:#?}");
                    let got = &sent[0];
                    assert_eq!(got.method.as_str(), method, "{what}");
                    let target = match &got.query {
                        Some(query) => format!("{}?{query}", got.path),
                        None => got.path.clone(),
                    };
                    assert_eq!(target, expected, "{what}");
                    // The host the client named goes nowhere.
                    assert!(
                        got.headers["host"]
                            .to_str()
                            .unwrap()
                            .starts_with("127.0.0.1:"),
                        "{what}: {:?}",
                        got.headers["host"]
                    );
                }
            }
        }
    }
    // After all of that, a normal request still works.
    let response = gw
        .authed(Method::GET, "/api/v1/runners/gha-runner-ok")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        upstream.received().last().unwrap().path,
        "/runners/gha-runner-ok/status"
    );
}

/// `n` header lines `X-Flood-i: v`.
fn small_headers(n: usize) -> String {
    (0..n).map(|i| format!("X-Flood-{i}: v\r\n")).collect()
}

#[tokio::test]
async fn too_many_headers_get_431_from_hyper_and_nothing_is_forwarded() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    // `request` adds three lines (Host, X-API-Key, Connection): 101 and up
    // in all is over hyper's limit of 100 header lines.
    for extra in [MAX_HEADERS - 2, 200, 1_000, 10_000] {
        let what = format!("{} header lines", extra + 3);
        let answer = exchange(
            gw.port,
            request("GET", "/api/v1/runners", &small_headers(extra)),
            &what,
        )
        .await;
        answer.assert_from_hyper(431, &what);
    }
    assert!(upstream.received().is_empty(), "{:#?}", upstream.received());
    // Exactly 100 lines pass, and are forwarded as they are when they
    // still fit what the orchestrator takes (here the client sent its own
    // Accept and X-Request-Id, so the gateway adds no line of its own).
    let fits = format!(
        "Accept: */*\r\nX-Request-Id: flood-1\r\n{}",
        small_headers(MAX_HEADERS - 5)
    );
    let answer = exchange(
        gw.port,
        request("GET", "/api/v1/runners", &fits),
        "100 lines",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let got = upstream.single();
    assert_eq!(got.path, "/runners");
    assert_eq!(got.headers["x-flood-94"], "v");
    assert!(got.headers.len() <= MAX_HEADERS, "{}", got.headers.len());
}

#[tokio::test]
async fn headers_the_orchestrator_could_not_take_are_refused_by_the_gateway_in_json() {
    // The orchestrator parses requests with the same limits as the gateway
    // (the same `service_kit::serve`). Forwarding drops some lines (Host,
    // the API key, hop-by-hop ones) and adds others (Host, Accept and
    // X-Request-Id when absent, Content-Length for a body), so a request
    // within the gateway's limits can be over the orchestrator's. The
    // gateway refuses such a request itself, with a JSON 431, instead of
    // forwarding it and relaying the orchestrator's body-less 431 (which
    // the stand-in, served by hyper with the same defaults, would answer).
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let keep_alive = |method: &str, target: &str, lines: &str, body: &str| {
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{lines}\r\n{body}").into_bytes()
    };
    // 100 lines: Host, X-API-Key and 98 more. Forwarded: 98 + Host +
    // Accept + X-Request-Id = 101.
    let lines = format!("X-API-Key: {KEY}\r\n{}", small_headers(MAX_HEADERS - 2));
    let answer = exchange(
        gw.port,
        keep_alive("GET", "/api/v1/runners", &lines, ""),
        "101 lines to forward",
    )
    .await;
    assert_eq!(
        answer.assert_json_error(431, "101 lines to forward"),
        "request_headers_too_large"
    );
    assert!(answer.header("x-request-id").is_some(), "{answer:?}");
    // The webhook route (no API key to drop) is held to the same rule:
    // Host, Content-Type, Content-Length and 97 more; forwarded 97 +
    // Content-Type + Accept + X-Request-Id + Host + Content-Length = 102.
    let lines = format!(
        "Content-Type: application/json\r\nContent-Length: 2\r\n{}",
        small_headers(MAX_HEADERS - 3)
    );
    let answer = exchange(
        gw.port,
        keep_alive("POST", "/api/v1/webhooks/github", &lines, "{}"),
        "webhook",
    )
    .await;
    assert_eq!(
        answer.assert_json_error(431, "webhook"),
        "request_headers_too_large"
    );
    // One header value that the gateway still takes (its head is 3 bytes
    // under the limit), but that makes the forwarded head (the Accept and
    // X-Request-Id lines added, the API key and Connection dropped) a few
    // bytes too large for the orchestrator.
    let value = "v".repeat(MAX_HEAD_BYTES - 115);
    let answer = exchange(
        gw.port,
        request("GET", "/api/v1/runners", &format!("X-Big: {value}\r\n")),
        "too large to forward",
    )
    .await;
    assert_eq!(
        answer.assert_json_error(431, "too large to forward"),
        "request_headers_too_large"
    );
    assert!(upstream.received().is_empty(), "{:#?}", upstream.received());
    // One line less, or a few bytes less, and it goes through.
    let lines = format!("X-API-Key: {KEY}\r\n{}", small_headers(MAX_HEADERS - 3));
    let answer = exchange(
        gw.port,
        keep_alive("GET", "/api/v1/runners", &lines, ""),
        "100 lines to forward",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(upstream.single().headers.len(), MAX_HEADERS);
    let value = "v".repeat(MAX_HEAD_BYTES - 130);
    let answer = exchange(
        gw.port,
        request("GET", "/api/v1/runners", &format!("X-Big: {value}\r\n")),
        "just small enough to forward",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn one_huge_header_value_is_taken_up_to_the_head_limit_then_431() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    // 64 KiB is well within the head limit: forwarded intact.
    let value = "v".repeat(64 * 1024);
    let answer = exchange(
        gw.port,
        request("GET", "/api/v1/runners", &format!("X-Big: {value}\r\n")),
        "64 KiB",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(upstream.single().headers["x-big"], value.as_str());
    // 1 MiB is not: hyper stops reading at its buffer's limit and answers
    // 431 before the value is complete.
    let value = "v".repeat(1024 * 1024);
    let seen = exchange_with(
        gw.port,
        request("GET", "/api/v1/runners", &format!("X-Big: {value}\r\n")),
        || None,
    )
    .await;
    assert!(seen.closed, "{seen:?}");
    parse_answer(&seen, "1 MiB").assert_from_hyper(431, "1 MiB");
    assert_eq!(upstream.received().len(), 1, "{:#?}", upstream.received());
}

/// The gateway's resident memory in KiB.
fn rss_kib(gateway: &TestGateway) -> u64 {
    test_support::http_load::rss_kib(gateway.pid()).expect("VmRSS of the gateway")
}

/// One flooding connection: `head`, then `filler` over and over (never the
/// blank line that ends a header section), up to `cap` bytes or until the
/// gateway stops taking them.
async fn flood_once(port: u16, head: &'static [u8], filler: &'static [u8], cap: usize) -> Exchange {
    let mut sent = 0;
    exchange_with(port, head.to_vec(), move || {
        sent += filler.len();
        (sent <= cap).then(|| filler.to_vec())
    })
    .await
}

#[tokio::test]
async fn endless_header_sections_are_cut_off_in_bounded_memory_while_others_are_served() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    // Warm up (first connection, first forwarded request) before the
    // baseline is taken.
    for _ in 0..3 {
        let response = gw
            .authed(Method::GET, "/api/v1/runners")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let baseline = rss_kib(&gw);

    // Per connection, header bytes with no end (up to 64 MiB, far more than
    // the socket buffers on both sides hold): one endless header value, or
    // endless short header lines.
    const CAP: usize = 64 << 20;
    static ONE_VALUE: &[u8] = b"GET /api/v1/runners HTTP/1.1\r\nHost: x\r\nX-Endless: ";
    static VALUE_FILLER: [u8; 64 * 1024] = [b'a'; 64 * 1024];
    static LINES: &[u8] = b"GET /api/v1/runners HTTP/1.1\r\nHost: x\r\n";
    static LINE_FILLER: &[u8] = b"X-Line: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let flooding_for = Duration::from_secs(3);
    let started = Instant::now();
    let mut floods = Vec::new();
    for i in 0..4 {
        let port = gw.port;
        floods.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while started.elapsed() < flooding_for {
                let (head, filler): (&'static [u8], &'static [u8]) = if i == 0 {
                    (LINES, LINE_FILLER)
                } else {
                    (ONE_VALUE, &VALUE_FILLER)
                };
                seen.push(flood_once(port, head, filler, CAP).await);
            }
            seen
        }));
    }

    // Meanwhile others are served, each within 2 s, and the gateway's
    // memory stays bounded.
    let mut peak = baseline;
    let mut served = 0;
    while started.elapsed() < flooding_for {
        let response = tokio::time::timeout(
            Duration::from_secs(2),
            gw.authed(Method::GET, "/api/v1/runners").send(),
        )
        .await
        .expect("a normal request was not answered within 2 s during the flood")
        .unwrap();
        assert_eq!(response.status(), 200);
        served += 1;
        peak = peak.max(rss_kib(&gw));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut cut = 0;
    let (mut total, mut most) = (0, 0);
    for flood in floods {
        for seen in flood.await.unwrap() {
            total += seen.written;
            most = most.max(seen.written);
            // hyper answers 431 as soon as its buffer is full (or the 101st
            // line begins) and closes: the client's writing then fails,
            // once the kernel's socket buffers are full at the latest.
            assert!(seen.closed, "{seen:?}");
            assert!(
                seen.write_failed && seen.written < CAP,
                "the gateway took {} bytes of one header section",
                seen.written
            );
            parse_answer(&seen, "flood").assert_from_hyper(431, "flood");
            cut += 1;
        }
        peak = peak.max(rss_kib(&gw));
    }
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "{cut} flooding connections cut off with 431 after at most {most} bytes each, {} MiB in all; \
         {served} requests served meanwhile; gateway RSS {baseline} KiB before, {peak} KiB at most",
        total >> 20
    );
    assert!(cut >= 4, "{cut} flooding connections");
    assert!(served >= 1);
    assert!(
        grown_mib < 48,
        "the gateway's memory grew by {grown_mib} MiB (from {baseline} KiB) during the flood"
    );
    // And afterwards.
    let response = tokio::time::timeout(
        Duration::from_secs(2),
        gw.authed(Method::GET, "/api/v1/runners").send(),
    )
    .await
    .expect("not answered within 2 s after the flood")
    .unwrap();
    assert_eq!(response.status(), 200);
    // None of the flooding requests reached the orchestrator.
    assert!(
        upstream
            .received()
            .iter()
            .all(|r| !r.headers.contains_key("x-endless") && !r.headers.contains_key("x-line"))
    );
}

/// A cleanup request, sent right after a first request's body: whether it
/// is a request of its own depends on how that body is framed.
const SMUGGLED: &str = "POST /api/v1/runners/cleanup HTTP/1.1\r\nHost: x\r\nX-API-Key: test-key-0123456789\r\nContent-Length: 0\r\n\r\n";

#[tokio::test]
async fn conflicting_framing_headers_cannot_smuggle_a_request() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    // A create request with `framing`, then `body`, then `SMUGGLED`.
    let post = |framing: &str, body: &str| {
        format!(
            "POST /api/v1/runners HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n{framing}\r\n{body}{SMUGGLED}"
        )
        .into_bytes()
    };
    let chunked = "b\r\n{\"count\":1}\r\n0\r\n\r\n";

    // Refused by hyper before anything is read as a body: 400, closed, so
    // the bytes after it are never read as a request either.
    for (framing, body) in [
        // Two different lengths, in two lines or in one.
        (
            "Content-Length: 11\r\nContent-Length: 50\r\n",
            r#"{"count":1}"#,
        ),
        ("Content-Length: 11, 50\r\n", r#"{"count":1}"#),
        ("Content-Length: -11\r\n", r#"{"count":1}"#),
        ("Content-Length: 0x0b\r\n", r#"{"count":1}"#),
        // A transfer coding that does not end in chunked.
        ("Transfer-Encoding: chunked, gzip\r\n", chunked),
        ("Transfer-Encoding: xchunked\r\n", chunked),
        // Whitespace before the colon (an old smuggling trick).
        ("Transfer-Encoding : chunked\r\n", chunked),
    ] {
        let answer = exchange(gw.port, post(framing, body), framing).await;
        answer.assert_from_hyper(400, framing);
        assert!(answer.rest.is_empty(), "{framing}: a second answer");
    }
    assert!(upstream.received().is_empty(), "{:#?}", upstream.received());

    // Content-Length and Transfer-Encoding both: chunked wins (RFC 9112
    // §6.3), and hyper closes the connection after the answer, so what
    // follows the chunked body is never read as a next request. The
    // gateway forwards the decoded body with a length of its own and no
    // Transfer-Encoding, so the orchestrator cannot frame it differently.
    for framing in [
        // CL.TE: the length would cover the chunked body and the next
        // request's first bytes.
        "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n",
        // TE.CL: the length would stop inside the chunked body.
        "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    ] {
        let before = upstream.received().len();
        let answer = exchange(gw.port, post(framing, chunked), framing).await;
        assert_eq!(answer.status, 200, "{framing}: {answer:?}");
        assert!(answer.closed, "{framing}: the connection stayed open");
        assert!(answer.rest.is_empty(), "{framing}: a second answer");
        let sent = upstream.received().split_off(before);
        assert_eq!(sent.len(), 1, "{framing}: {sent:#?}");
        assert_forwarded_create(&sent[0], framing);
    }

    // A coding before chunked: the body is framed by its chunks, so the
    // request after it is a pipelined request of its own (answered in
    // turn, as the client sent it). The coding is not undone: the body goes
    // on as it came, without Transfer-Encoding (the orchestrator would
    // refuse it as unreadable JSON were it really compressed).
    let framing = "Transfer-Encoding: gzip, chunked\r\n";
    let before = upstream.received().len();
    let answer = exchange(gw.port, post(framing, chunked), framing).await;
    assert_eq!(answer.status, 200, "{framing}: {answer:?}");
    let second = try_parse_answer(&answer.rest).expect("the pipelined request's answer");
    assert_eq!(second.status, 200, "{second:?}");
    let sent = upstream.received().split_off(before);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_forwarded_create(&sent[0], framing);
    assert_eq!(sent[1].path, "/runners/cleanup");
    assert!(sent[1].body.is_empty());
}

/// The forwarded create request of the framing cases: the decoded body,
/// framed by a length of the gateway's own.
fn assert_forwarded_create(got: &Recorded, framing: &str) {
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("POST", "/runners/create"),
        "{framing}"
    );
    assert_eq!(got.body.as_ref(), br#"{"count":1}"#, "{framing}");
    assert_eq!(got.headers["content-length"], "11", "{framing}");
    assert!(
        !got.headers.contains_key("transfer-encoding"),
        "{framing}: {:?}",
        got.headers
    );
}

/// With several keys, the first `X-API-Key` line decides, and
/// `Authorization: Bearer` counts only when there is no `X-API-Key` at all;
/// a list in one line is taken as one (wrong) key.
#[tokio::test]
async fn with_several_api_keys_the_first_x_api_key_decides() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::spawn(&upstream.url, &[]);
    let list = |keys: &str| {
        format!("GET /api/v1/runners HTTP/1.1\r\nHost: x\r\n{keys}Connection: close\r\n\r\n")
            .into_bytes()
    };
    // A wrong first X-API-Key is refused whatever else comes.
    for keys in [
        format!("X-API-Key: wrong\r\nX-API-Key: {KEY}\r\n"),
        format!("X-API-Key: wrong\r\nAuthorization: Bearer {KEY}\r\n"),
        format!("Authorization: Bearer {KEY}\r\nX-API-Key: wrong\r\n"),
        format!("X-API-Key: wrong, {KEY}\r\n"),
        format!("X-API-Key: {KEY}, {KEY}\r\n"),
        format!("X-API-Key: \r\nX-API-Key: {KEY}\r\n"),
        format!("Authorization: Bearer wrong\r\nAuthorization: Bearer {KEY}\r\n"),
    ] {
        let answer = exchange(gw.port, list(&keys), &keys).await;
        assert_eq!(answer.assert_json_error(401, &keys), "unauthorized");
        assert!(answer.header("www-authenticate").is_some(), "{keys}");
    }
    assert!(upstream.received().is_empty(), "{:#?}", upstream.received());
    // A right first X-API-Key passes whatever else comes, and no key
    // (right or wrong) is forwarded.
    let keys = format!("X-API-Key: {KEY}\r\nX-API-Key: wrong\r\nAuthorization: Bearer wrong\r\n");
    let answer = exchange(gw.port, list(&keys), &keys).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let got = upstream.single();
    assert!(!got.headers.contains_key("x-api-key"), "{:?}", got.headers);
    assert!(
        !got.headers.contains_key("authorization"),
        "{:?}",
        got.headers
    );
}
