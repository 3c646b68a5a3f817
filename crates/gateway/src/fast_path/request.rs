//! Reading a client's request head and deciding whether the fast path takes
//! it: only plain reads of the runner endpoints, which need nothing but the
//! head; everything else goes to the full stack, byte for byte.

use httparse::Header;

use crate::proxy::{HOP_BY_HOP, NOT_FORWARDED};

/// The largest request head the fast path reads. A longer one goes to the
/// full stack, which reads up to `service_kit::MAX_HEAD_BYTES` (so any head
/// the fast path forwards is far inside the 431 limits).
pub(super) const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The most header lines the fast path reads (see [`MAX_HEAD_BYTES`]).
pub(super) const MAX_HEADERS: usize = 48;

/// What [`parse`] made of the bytes read so far.
pub(super) enum Parsed<'b, 'h> {
    /// Not a whole head yet: read more (unless [`MAX_HEAD_BYTES`] are in).
    Partial,
    /// For the full stack: anything the fast path does not take, malformed
    /// requests included (hyper answers those as it always has).
    Pass,
    /// A request the fast path answers.
    Take(Taken<'b, 'h>),
}

/// A request the fast path answers: `GET` of a runner endpoint with no body.
pub(super) struct Taken<'b, 'h> {
    /// How many bytes the head took (the next request starts there).
    pub head_len: usize,
    /// The orchestrator path it goes to, without `ORCHESTRATOR_URL`'s.
    pub target: Target<'b>,
    /// The query string, as sent, without `?`.
    pub query: Option<&'b str>,
    /// Every header line, as sent.
    pub headers: &'h [Header<'b>],
}

/// The orchestrator endpoint a taken request goes to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target<'b> {
    /// `GET /api/v1/runners` → `GET /runners`.
    List,
    /// `GET /api/v1/runners/{id}` → `GET /runners/{id}/status`.
    Runner(&'b str),
}

impl Target<'_> {
    /// Writes the orchestrator path.
    pub(super) fn write_path(&self, out: &mut Vec<u8>) {
        match self {
            Self::List => out.extend_from_slice(b"/runners"),
            Self::Runner(id) => {
                out.extend_from_slice(b"/runners/");
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(b"/status");
            }
        }
    }
}

/// Parses the head at the start of `buf` into `headers`.
pub(super) fn parse<'b, 'h>(buf: &'b [u8], headers: &'h mut [Header<'b>]) -> Parsed<'b, 'h> {
    let mut request = httparse::Request::new(headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        // Malformed, HTTP/2's preface, more than MAX_HEADERS lines: hyper's.
        Err(_) => return Parsed::Pass,
    };
    if request.method != Some("GET") || request.version != Some(1) {
        return Parsed::Pass;
    }
    let Some((target, query)) = request.path.and_then(route) else {
        return Parsed::Pass;
    };
    let headers: &'h [Header<'b>] = request.headers;
    if !headers.iter().all(|h| plain(h)) {
        return Parsed::Pass;
    }
    Parsed::Take(Taken {
        head_len,
        target,
        query,
        headers,
    })
}

/// The endpoint and query of a request target the fast path takes: exactly
/// `/api/v1/runners` or `/api/v1/runners/{id}` (an id the orchestrator
/// accepts, as sent, so there is nothing to decode), and a query of plain
/// URI characters (so it is forwarded as the full stack would parse it).
fn route(target: &str) -> Option<(Target<'_>, Option<&str>)> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if !query.is_none_or(|q| q.bytes().all(plain_uri_byte)) {
        return None;
    }
    let rest = path.strip_prefix("/api/v1/runners")?;
    let target = if rest.is_empty() {
        Target::List
    } else {
        let id = rest.strip_prefix('/')?;
        // `cleanup` is a route of its own (POST only).
        if id == "cleanup" || !api_types::is_valid_runner_id(id) {
            return None;
        }
        Target::Runner(id)
    };
    Some((target, query))
}

/// Unreserved, sub-delims, `:`, `@`, `/`, `?` and `%`: what a query may hold
/// without any URI parser reading it differently.
fn plain_uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// Whether a header line leaves the request one the fast path takes: no
/// body (`Content-Length` other than 0, `Transfer-Encoding`), no browser
/// (`Origin`: CORS is the full stack's), no `Expect` or `Upgrade`, and no
/// `Connection` other than `keep-alive` (which names only hop-by-hop
/// headers, dropped anyway).
fn plain(header: &Header<'_>) -> bool {
    let name = header.name;
    let is = |other: &str| name.eq_ignore_ascii_case(other);
    if is("content-length") {
        return header.value == b"0";
    }
    if is("connection") {
        return header.value.eq_ignore_ascii_case(b"keep-alive");
    }
    !(is("origin") || is("transfer-encoding") || is("expect") || is("upgrade"))
}

/// Whether a request header goes on to the orchestrator (as the full stack
/// forwards: not hop-by-hop, not the client's credentials or `Host`).
pub(super) fn forwarded(name: &str) -> bool {
    !HOP_BY_HOP
        .iter()
        .chain(&NOT_FORWARDED)
        .any(|h| name.eq_ignore_ascii_case(h.as_str()))
}

/// The first value of header `name`, as text (`None` when absent or not
/// visible ASCII: what `HeaderValue::to_str` accepts).
pub(super) fn first_text<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b str> {
    let header = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
    text(header.value)
}

/// Every value of header `name` that is visible ASCII, in order.
pub(super) fn all_text<'b, 'h>(
    headers: &'h [Header<'b>],
    name: &'static str,
) -> impl Iterator<Item = &'b str> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| text(h.value))
}

/// `value` as text when it is visible ASCII (tabs allowed).
fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (32..127).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(raw: &str) -> Option<(Target<'_>, Option<&str>)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse(raw.as_bytes(), &mut headers) {
            Parsed::Take(t) => {
                assert_eq!(t.head_len, raw.len());
                Some((t.target, t.query))
            }
            _ => None,
        }
    }

    #[test]
    fn takes_plain_reads_of_the_runner_endpoints() {
        assert_eq!(
            taken("GET /api/v1/runners HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some((Target::List, None))
        );
        assert_eq!(
            taken(
                "GET /api/v1/runners?state=idle&x=%20 HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n"
            ),
            Some((Target::List, Some("state=idle&x=%20")))
        );
        assert_eq!(
            taken("GET /api/v1/runners/gha-runner-1.a_b HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Some((Target::Runner("gha-runner-1.a_b"), None))
        );
    }

    #[test]
    fn leaves_everything_else_to_the_full_stack() {
        for raw in [
            "POST /api/v1/runners HTTP/1.1\r\n\r\n",
            "HEAD /api/v1/runners HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners HTTP/1.0\r\n\r\n",
            "GET /api/v1/runners/ HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners/cleanup HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners/.hidden HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners/a%2Fb HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners/a/status HTTP/1.1\r\n\r\n",
            "GET /api/v1/runnersx HTTP/1.1\r\n\r\n",
            "GET /api/v1//runners HTTP/1.1\r\n\r\n",
            "GET /api/v1/health HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners?a=|b HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners#x HTTP/1.1\r\n\r\n",
            "GET http://x/api/v1/runners HTTP/1.1\r\n\r\n",
            "GET /api/v1/runners HTTP/1.1\r\nOrigin: https://a.example\r\n\r\n",
            "GET /api/v1/runners HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
            "GET /api/v1/runners HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /api/v1/runners HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET /api/v1/runners HTTP/1.1\r\nConnection: keep-alive, x-secret\r\n\r\n",
            "GET /api/v1/runners HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /api/v1/runners HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /api/v1/runners HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert_eq!(taken(raw), None, "{raw:?} taken");
        }
    }

    #[test]
    fn too_many_headers_go_to_the_full_stack() {
        let mut raw = String::from("GET /api/v1/runners HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(taken(&raw), None);
    }

    #[test]
    fn header_text_is_what_header_value_to_str_accepts() {
        assert_eq!(text(b"k1\tk2 "), Some("k1\tk2 "));
        assert_eq!(text(b"caf\xc3\xa9"), None);
        assert_eq!(text(b"a\x7fb"), None);
    }
}
