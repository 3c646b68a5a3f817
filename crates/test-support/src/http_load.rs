//! An in-process HTTP/1.1 load generator, shared by the benchmark
//! (`bench gateway`) and the load tests.
//!
//! [`load`] opens `connections` keep-alive connections on loopback, each
//! sending its request (the bytes may differ per connection, e.g. one
//! `X-Forwarded-For` address each) one after the other until the time is
//! over, reconnecting after a failure or `Connection: close`. It parses just
//! enough HTTP (status, `Connection`, `Retry-After`, `Content-Length` or
//! chunked; bodies are skipped in the read buffer, not copied) to stay
//! cheap, so the machine's cores go to the servers under test.
//!
//! The [`LoadResult`] counts answers per status code (a 429 is an answer,
//! not an error) and, apart, the failures: connections refused or broken,
//! malformed answers and requests with no complete answer in time.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::ops::RangeBounds;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Answers per status code, all connections together.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers per status code of each connection, by connection index.
    pub per_connection: Vec<BTreeMap<u16, u64>>,
    /// Failures: connections refused or broken, malformed answers, and
    /// timeouts (counted here too).
    pub errors: u64,
    /// Requests with no complete answer within the timeout.
    pub timeouts: u64,
    /// The first failure seen, for the message of a failed check.
    pub first_error: Option<String>,
    /// 429 answers that came without a `Retry-After` header.
    pub too_many_without_retry_after: u64,
    /// From the start to the end of the last answer.
    pub elapsed: Duration,
    /// Latency of every answer (any status), in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    /// Every answer, whatever its status.
    pub fn answers(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Answers with status `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Answers whose status is outside `range` (e.g. `200..300`).
    pub fn count_outside(&self, range: impl RangeBounds<u16>) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| !range.contains(status))
            .map(|(_, count)| count)
            .sum()
    }

    /// Answers a second.
    pub fn throughput(&self) -> f64 {
        self.answers() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at `percent` (nearest rank), in milliseconds; NaN when
    /// nothing was answered.
    pub fn percentile_ms(&self, percent: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = (percent / 100.0 * self.latencies_us.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// `connections` keep-alive connections to `addr`, connection `i` sending
/// `request(i)` back to back until `duration` is over. A request with no
/// complete answer within `timeout` counts as an error (and timeout), and
/// its connection is replaced.
///
/// # Panics
/// When a connection task panics.
pub async fn load<F>(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    timeout: Duration,
    request: F,
) -> LoadResult
where
    F: Fn(usize) -> Vec<u8>,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|index| {
            let request = request(index);
            tokio::spawn(async move { connection_loop(addr, &request, deadline, timeout).await })
        })
        .collect();
    let mut result = LoadResult::default();
    for task in tasks {
        let stats = match task.await {
            Ok(stats) => stats,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        for (&status, &count) in &stats.statuses {
            *result.statuses.entry(status).or_default() += count;
        }
        result.per_connection.push(stats.statuses);
        result.errors += stats.errors;
        result.timeouts += stats.timeouts;
        result.too_many_without_retry_after += stats.too_many_without_retry_after;
        if result.first_error.is_none() {
            result.first_error = stats.first_error;
        }
        result.latencies_us.extend(stats.latencies_us);
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    result
}

/// What one connection saw.
#[derive(Debug, Default)]
struct ConnectionStats {
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    timeouts: u64,
    first_error: Option<String>,
    too_many_without_retry_after: u64,
    latencies_us: Vec<u32>,
}

impl ConnectionStats {
    fn failed(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// One client connection: requests until `deadline`, reconnecting after a
/// failure or `Connection: close`.
async fn connection_loop(
    addr: SocketAddr,
    request: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> ConnectionStats {
    let mut stats = ConnectionStats {
        latencies_us: Vec::with_capacity(16 * 1024),
        ..ConnectionStats::default()
    };
    let mut line = String::new();
    let mut stream: Option<BufReader<TcpStream>> = None;
    while Instant::now() < deadline {
        let mut connection = match stream.take() {
            Some(connection) => connection,
            None => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(socket)) => {
                    let _ = socket.set_nodelay(true);
                    BufReader::new(socket)
                }
                outcome => {
                    if outcome.is_err() {
                        stats.timeouts += 1;
                    }
                    stats.failed(|| format!("connect to {addr}: {outcome:?}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(timeout, async {
            connection.get_mut().write_all(request).await?;
            read_response(&mut connection, &mut line, None).await
        })
        .await;
        match answer {
            Ok(Ok(response)) => {
                stats
                    .latencies_us
                    .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                *stats.statuses.entry(response.status).or_default() += 1;
                if response.status == 429 && !response.retry_after {
                    stats.too_many_without_retry_after += 1;
                }
                if response.keep_alive {
                    stream = Some(connection);
                }
            }
            Ok(Err(error)) => stats.failed(|| format!("request to {addr}: {error}")),
            Err(_) => {
                stats.timeouts += 1;
                stats
                    .failed(|| format!("request to {addr}: no complete answer within {timeout:?}"));
            }
        }
    }
    stats
}

/// `GET path HTTP/1.1` with `Host: host` and `headers`, in that order.
pub fn get_request(host: impl Display, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// A parsed response head.
#[derive(Debug)]
struct Response {
    status: u16,
    keep_alive: bool,
    retry_after: bool,
}

/// Reads one HTTP/1.1 response (`Content-Length`, chunked, or delimited by
/// the end of the connection), using `line` as scratch space. The body is
/// appended to `body` when one is given, else skipped without a copy.
async fn read_response(
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
    mut body: Option<&mut Vec<u8>>,
) -> io::Result<Response> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    line.clear();
    if reader.read_line(line).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("status line"))?;
    let mut content_length = None;
    let mut chunked = false;
    let mut keep_alive = true;
    let mut retry_after = false;
    loop {
        line.clear();
        if reader.read_line(line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| invalid("length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("retry-after") {
            retry_after = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(line).await?;
            let size_text = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if reader.read_line(line).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            take_body(reader, size, body.as_deref_mut()).await?;
            // The CRLF after the chunk.
            take_body(reader, 2, None).await?;
        }
    } else if let Some(length) = content_length {
        take_body(reader, length, body).await?;
    } else if status >= 200 && status != 204 && status != 304 {
        // Delimited by the end of the connection.
        match body {
            Some(body) => {
                reader.read_to_end(body).await?;
            }
            None => {
                tokio::io::copy(reader, &mut tokio::io::sink()).await?;
            }
        }
        keep_alive = false;
    }
    Ok(Response {
        status,
        keep_alive,
        retry_after,
    })
}

/// Takes `length` bytes from `reader`, appending them to `body` if given.
/// Skipped bytes are consumed from the read buffer, never copied.
async fn take_body(
    reader: &mut BufReader<TcpStream>,
    mut length: usize,
    mut body: Option<&mut Vec<u8>>,
) -> io::Result<()> {
    while length > 0 {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let taken = available.len().min(length);
        if let Some(body) = body.as_deref_mut() {
            body.extend_from_slice(&available[..taken]);
        }
        reader.consume(taken);
        length -= taken;
    }
    Ok(())
}

/// Sends `request` on a fresh connection and returns the status and body.
///
/// # Errors
/// When the connection fails, the answer is malformed, or no complete
/// answer comes within `timeout` (`ErrorKind::TimedOut`).
pub async fn one_request(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let exchange = async {
        let socket = TcpStream::connect(addr).await?;
        let mut reader = BufReader::new(socket);
        reader.get_mut().write_all(request).await?;
        let mut body = Vec::new();
        let response = read_response(&mut reader, &mut String::new(), Some(&mut body)).await?;
        Ok((response.status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer from {addr} within {timeout:?}"),
        )
    })?
}

/// Sends `request` every 100 ms until it is answered 200.
///
/// # Errors
/// `ErrorKind::TimedOut` when no 200 came within `limit`.
pub async fn wait_serving(addr: SocketAddr, request: &[u8], limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((200, _)) = one_request(addr, request, Duration::from_secs(10)).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            let first_line = String::from_utf8_lossy(request);
            let first_line = first_line.lines().next().unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{addr}: {first_line:?} was not answered 200 within {limit:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
///
/// # Errors
/// When the file cannot be read (no such process) or has no `VmRSS`.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no VmRSS in /proc/{pid}/status"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpListener;

    /// A server that answers each request on a connection with the next of
    /// `answers` (cycling), as raw bytes.
    async fn scripted_server(answers: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let answers = answers.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(socket);
                    let mut line = String::new();
                    for answer in answers.iter().cycle() {
                        // Read one request head.
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line.trim_end().is_empty() {
                                break;
                            }
                        }
                        if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn counts_answers_per_status_and_checks_retry_after() {
        let addr = scripted_server(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n",
        ])
        .await;
        let result = load(
            addr,
            3,
            Duration::from_millis(300),
            Duration::from_secs(5),
            |i| get_request(addr, &format!("/{i}"), &[("X-Test", "1")]),
        )
        .await;
        assert_eq!(result.errors, 0, "{:?}", result.first_error);
        assert_eq!(result.per_connection.len(), 3);
        let (ok, limited) = (result.count(200), result.count(429));
        assert!(ok > 10 && limited > 10, "{:?}", result.statuses);
        assert_eq!(result.count_outside(200..300), limited);
        assert_eq!(result.answers(), ok + limited);
        assert_eq!(result.latencies_us.len() as u64, result.answers());
        assert!(result.latencies_us.is_sorted());
        // Every second 429 lacks Retry-After (±1 for where each connection stopped).
        let missing = result.too_many_without_retry_after;
        assert!(missing.abs_diff(limited / 2) <= 3, "{missing} of {limited}");
        assert!(result.throughput() > 0.0);
        assert!(result.percentile_ms(50.0) <= result.percentile_ms(99.0));
    }

    #[tokio::test]
    async fn silence_is_a_timeout_and_refusal_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let result = load(
            silent,
            2,
            Duration::from_millis(100),
            Duration::from_millis(200),
            |_| get_request(silent, "/", &[]),
        )
        .await;
        assert_eq!(result.answers(), 0);
        assert_eq!(result.timeouts, 2);
        assert_eq!(result.errors, 2);
        assert!(result.percentile_ms(99.0).is_nan());

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let result = load(
            closed,
            1,
            Duration::from_millis(100),
            Duration::from_secs(1),
            |_| get_request(closed, "/", &[]),
        )
        .await;
        assert!(result.errors > 0 && result.timeouts == 0, "{result:?}");
        assert!(result.first_error.is_some());
    }

    #[tokio::test]
    async fn one_request_returns_the_body() {
        let addr = scripted_server(vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ])
        .await;
        let request = get_request(addr, "/", &[]);
        let (status, body) = one_request(addr, &request, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "abcde"));
        wait_serving(addr, &request, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn get_request_bytes() {
        assert_eq!(
            get_request("127.0.0.1:1", "/a", &[("X-API-Key", "k"), ("Accept", "b")]),
            b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-API-Key: k\r\nAccept: b\r\n\r\n"
        );
    }
}
