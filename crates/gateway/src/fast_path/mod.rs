//! The gateway's fast path: plain reads of the runner endpoints
//! (`GET /api/v1/runners`, `GET /api/v1/runners/{id}`), answered straight
//! off the socket, before hyper and axum.
//!
//! Reading runners is what dashboards and scripts do all day, and through
//! the full stack each read cost 31–38 µs of CPU against nginx's 21–24 on
//! the same machine (`bench/run gateway`): hyper's server and client, a
//! task and a channel per upstream request, header maps built and copied
//! four times. Here it costs 19–24 µs. Here a
//! request costs one parse of its head (httparse), the same checks as the
//! full stack — rate limit ([`RateLimit::check`], the same buckets), API key
//! ([`ApiKeys::check`]), request id ([`RequestIds`]) — one write of the
//! forwarded head on a pooled connection of this thread, one parse of the
//! answer head, and one write of the answer. The answer is the one the full
//! stack would give, header for header (see [`answer`]).
//!
//! Anything else — other methods and paths, a body, a browser's `Origin`
//! (CORS), `Expect`, `Upgrade`, `Connection: close`, HTTP/1.0 or HTTP/2, a
//! head over 8 KiB, malformed requests, and every request while `debug`
//! logging is on (so the request span is logged as before) — is handed to
//! the full stack with the bytes read so far, before any token is taken
//! or anything is answered. From then on that connection stays with hyper.

mod answer;
mod request;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::IntoResponse;
use bytes::Buf;
use service_kit::{Connection, Front};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{error, warn};

use self::answer::Added;
use self::request::{Parsed, Taken};
use self::upstream::{Exchange, Failure, Pool, Target};
use crate::RequestIds;
use crate::auth::{self, ApiKeys};
use crate::error::ApiError;
use crate::proxy::Upstream;
use crate::rate_limit::RateLimit;

/// A serving thread's fast path (see the module docs); cloned for each of
/// its connections.
#[derive(Debug, Clone)]
pub struct FastPath(Option<Arc<Inner>>);

#[derive(Debug)]
struct Inner {
    keys: ApiKeys,
    limit: RateLimit,
    request_ids: RequestIds,
    target: Target,
    /// This thread's connections to the orchestrator.
    pool: Pool,
    /// How long a client may take to send a request head.
    header_read_timeout: Duration,
}

impl FastPath {
    /// The fast path of one serving thread, sharing the limiter, keys and
    /// request ids with the full stack. Off (every connection goes to the
    /// full stack) when the orchestrator is reached over TLS. Must run on
    /// the thread's runtime (it starts the pool's sweeper there).
    pub fn new(
        upstream: &Upstream,
        keys: ApiKeys,
        limit: RateLimit,
        request_ids: RequestIds,
        header_read_timeout: Duration,
    ) -> Self {
        let Some((connect_to, host, prefix)) = upstream.plain_http() else {
            return Self(None);
        };
        let pool = Pool::default();
        pool.sweep_idle();
        Self(Some(Arc::new(Inner {
            keys,
            limit,
            request_ids,
            target: Target {
                connect_to,
                host,
                prefix,
                timeout: upstream.timeout(),
            },
            pool,
            header_read_timeout,
        })))
    }
}

impl Front for FastPath {
    async fn serve(self, connection: Connection) -> Option<Connection> {
        match self.0 {
            Some(inner) => inner.serve(connection).await,
            None => Some(connection),
        }
    }
}

/// What the checks made of a taken request.
enum Checked {
    /// Forward it: the forwarded head is written.
    Forward,
    /// Answer this instead (429 or 401).
    Refuse(axum::response::Response),
}

/// A taken request, checked, with what its answer needs.
struct Prepared {
    /// The head's length in the connection's buffer.
    head_len: usize,
    checked: Checked,
    request_id: HeaderValue,
    rate: Option<(u32, u32)>,
}

/// Whether the full stack should serve requests so that its `debug`
/// request span and trace events are logged.
fn debug_logging() -> bool {
    tracing::enabled!(target: "gateway::telemetry", tracing::Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG)
}

impl Inner {
    /// Answers the requests the fast path takes, in order, until the client
    /// closes, the stop comes, or a request is one for the full stack.
    async fn serve(&self, mut c: Connection) -> Option<Connection> {
        let mut forwarded_head = Vec::with_capacity(1024);
        let mut out = Vec::with_capacity(4096);
        loop {
            let mut deadline = None;
            let prepared = loop {
                if !c.read.is_empty() {
                    let mut headers = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
                    match request::parse(&c.read, &mut headers) {
                        Parsed::Take(taken) if !debug_logging() => {
                            break self.prepare(&taken, c.peer, &mut forwarded_head);
                        }
                        Parsed::Partial if c.read.len() < request::MAX_HEAD_BYTES => {}
                        _ => return Some(c),
                    }
                }
                if c.read.is_empty() && c.stop.is_set() {
                    return None;
                }
                // hyper's rule: the whole head within the timeout, counted
                // from when the connection waits for it.
                let deadline =
                    *deadline.get_or_insert_with(|| Instant::now() + self.header_read_timeout);
                if !read_more(&mut c, deadline).await {
                    return None;
                }
            };
            c.read.advance(prepared.head_len);
            let started = Instant::now();
            let added = Added {
                rate: prepared.rate,
                request_id: &prepared.request_id,
            };
            out.clear();
            let status = match prepared.checked {
                Checked::Refuse(answer) => {
                    let status = answer.status().as_u16();
                    answer::own(&mut out, answer, &added).await;
                    c.stream.write_all(&out).await.ok()?;
                    status
                }
                Checked::Forward => {
                    self.forward(&mut c.stream, &forwarded_head, &added, &mut out)
                        .await?
                }
            };
            if status >= 500 {
                log_failure(status, started, &prepared.request_id);
            }
            if c.stop.is_set() {
                return None;
            }
        }
    }

    /// The checks of the full stack's middleware, in its order: request id,
    /// rate limit, API key; then the forwarded head into `forwarded_head`.
    fn prepare(
        &self,
        taken: &Taken<'_, '_>,
        peer: SocketAddr,
        forwarded_head: &mut Vec<u8>,
    ) -> Prepared {
        let headers = taken.headers;
        let sent_id = headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(crate::REQUEST_ID))
            .and_then(|h| HeaderValue::from_bytes(h.value).ok());
        let made_id = sent_id.is_none();
        let request_id = sent_id.unwrap_or_else(|| self.request_ids.next_id());
        let client = self.limit.client(
            peer.ip(),
            request::all_text(headers, "x-forwarded-for"),
            request::all_text(headers, "forwarded"),
        );
        let rate = match self.limit.check(client) {
            Ok(rate) => rate,
            Err(too_many) => {
                return Prepared {
                    head_len: taken.head_len,
                    checked: Checked::Refuse(too_many.response()),
                    request_id,
                    rate: None,
                };
            }
        };
        let presented = auth::presented_key_in(
            request::first_text(headers, auth::API_KEY_HEADER),
            request::first_text(headers, "authorization"),
        );
        let checked = match self.keys.check(presented) {
            Ok(()) => {
                self.forwarded_head(taken, made_id.then_some(&request_id), forwarded_head);
                Checked::Forward
            }
            Err(refused) => Checked::Refuse(refused.into_response()),
        };
        Prepared {
            head_len: taken.head_len,
            checked,
            request_id,
            rate: Some(rate),
        }
    }

    /// The request as the full stack forwards it: the orchestrator's path
    /// and the query, `Host`, the end-to-end headers but the credentials,
    /// the id when the gateway made it, `Accept: */*` when none was sent.
    fn forwarded_head(
        &self,
        taken: &Taken<'_, '_>,
        made_id: Option<&HeaderValue>,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.target.prefix.as_bytes());
        taken.target.write_path(out);
        if let Some(query) = taken.query {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        answer::header_line(out, b"host", self.target.host.as_bytes());
        let mut has_accept = false;
        for header in taken.headers.iter().filter(|h| request::forwarded(h.name)) {
            has_accept |= header.name.eq_ignore_ascii_case("accept");
            answer::header_line(out, header.name.as_bytes(), header.value);
        }
        if let Some(id) = made_id {
            answer::header_line(out, crate::REQUEST_ID.as_bytes(), id.as_bytes());
        }
        if !has_accept {
            answer::header_line(out, b"accept", b"*/*");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Sends the forwarded head and relays the answer to `client`, all
    /// within `UPSTREAM_TIMEOUT_SECONDS`; answers 502 or 504 itself when
    /// the orchestrator does not. Returns the status sent, or `None` when
    /// the client connection must close (it broke, or the answer did midway).
    async fn forward(
        &self,
        client: &mut TcpStream,
        forwarded_head: &[u8],
        added: &Added<'_>,
        out: &mut Vec<u8>,
    ) -> Option<u16> {
        let deadline = Instant::now() + self.target.timeout;
        let mut head_sent = false;
        let relayed = tokio::time::timeout_at(
            deadline,
            self.relay(client, forwarded_head, added, out, &mut head_sent),
        )
        .await;
        let failure = match relayed {
            Ok(Ok(status)) => return Some(status),
            // The client is gone, or the answer broke off after its head.
            Ok(Err(Relay::Closed)) => return None,
            _ if head_sent => return None,
            Ok(Err(Relay::Failed(failure))) => failure,
            Err(_) => Failure::TimedOut,
        };
        let id = added.request_id.to_str().unwrap_or("-");
        let refusal = match failure {
            Failure::Unreachable(e) => {
                warn!(request_id = %id, error = %e, "orchestrator unreachable");
                ApiError::orchestrator_unreachable()
            }
            Failure::TimedOut => {
                warn!(request_id = %id, error = "no answer in time", "orchestrator timed out");
                ApiError::orchestrator_timeout(self.target.timeout.as_secs())
            }
        };
        let status = refusal.status.as_u16();
        out.clear();
        answer::own(out, refusal.into_response(), added).await;
        client.write_all(out).await.ok()?;
        Some(status)
    }

    async fn relay(
        &self,
        client: &mut TcpStream,
        forwarded_head: &[u8],
        added: &Added<'_>,
        out: &mut Vec<u8>,
        head_sent: &mut bool,
    ) -> Result<u16, Relay> {
        let exchange = Exchange::start(&self.pool, &self.target, forwarded_head)
            .await
            .map_err(Relay::Failed)?;
        out.clear();
        let (status, has_length) = {
            let mut headers = [httparse::EMPTY_HEADER; upstream::MAX_ANSWER_HEADERS];
            let head = exchange.head(&mut headers);
            answer::relayed_head(out, &head, added);
            (head.status, head.has_length())
        };
        if has_length {
            let (body, remaining) = exchange.body_start();
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            *head_sent = true;
            client.write_all(out).await.map_err(|_| Relay::Closed)?;
            exchange
                .relay_rest(remaining, client)
                .await
                .map_err(|_| Relay::Closed)?;
        } else {
            let body = exchange
                .read_unframed()
                .await
                .map_err(|e| Relay::Failed(Failure::Unreachable(e)))?;
            answer::number_line(out, b"content-length", body.len() as u64);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
            *head_sent = true;
            client.write_all(out).await.map_err(|_| Relay::Closed)?;
        }
        Ok(status)
    }
}

/// How relaying an answer ended early.
enum Relay {
    /// Before any of the answer went to the client: answer it ourselves.
    Failed(Failure),
    /// Afterwards, or the client is gone: close the connection.
    Closed,
}

/// Reads more of a request head; false when the connection is to close
/// (client gone, head not whole by `deadline`, or the stop while idle).
async fn read_more(c: &mut Connection, deadline: Instant) -> bool {
    c.read.reserve(4096);
    let idle = c.read.is_empty();
    let read = tokio::select! {
        biased;
        read = c.stream.read_buf(&mut c.read) => read,
        () = tokio::time::sleep_until(deadline) => return false,
        () = c.stop.wait(), if idle => return false,
    };
    matches!(read, Ok(n) if n > 0)
}

/// The error line the full stack's trace layer logs for a 5xx answer.
fn log_failure(status: u16, started: Instant, request_id: &HeaderValue) {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    error!(
        request_id = %request_id.to_str().unwrap_or("-"),
        classification = %format_args!("Status code: {status} {reason}"),
        latency = %format_args!("{} ms", started.elapsed().as_millis()),
        "response failed"
    );
}
