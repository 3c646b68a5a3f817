//! Load: 200 concurrent clients with valid keys for 30 s against the real
//! gateway in front of the real orchestrator (the `end_to_end` world:
//! GitHub simulator and Docker). Every answer must be a 200 or an intended
//! 429 (with `Retry-After`), no connection may break or time out, each
//! client must get about what its own rate limit allows, and the gateway's
//! memory must stay flat. The figures (requests, 200s, 429s, errors,
//! throughput, p50/p99, RSS) are printed and written to
//! `target/test-artifacts/gateway-load.json`.
//!
//! The gateway trusts `X-Forwarded-For` here and each connection sends its
//! own address, so each connection is a distinct client with its own bucket.
//! The clients send back to back, far above their limit (2 a second, burst
//! 10), so most answers are intended 429s, and the 200s are bounded by the
//! limit, not by the machine: 200 × (10 + 2 × 30) = 14 000 in 30 s, about
//! 470 proxied requests a second. The debug builds answer 1 000–3 000
//! requests a second on two cores (the low end with other work on the
//! box), so each client's next request comes well within its 500 ms token
//! period; the 80 % floor fails only when the whole box answers fewer than
//! about 375 a second. With 5 a second (32 000 200s, 1 070 a second) a run
//! on a busy box got 83 % and clients that were never limited: the count
//! measured the machine rather than the limiter. The burst (five seconds
//! of rate) is what a new client gets at once: 2 000 requests in the first
//! moment, all passed through to the orchestrator.
//!
//! `LOAD_TEST_SECONDS` shortens the run for local work; CI uses 30 s.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use test_support::http_load::{self, LoadResult};

use crate::docs::artifacts_dir;
use crate::end_to_end::World;
use crate::helpers::KEY;

/// Concurrent clients, one keep-alive connection each.
const CLIENTS: usize = 200;
/// Each client's limit: tokens a second and bucket size.
const RATE_PER_SECOND: u64 = 2;
const BURST: u64 = 10;
/// Length of the measured run unless `LOAD_TEST_SECONDS` says otherwise.
const SECONDS: u64 = 30;
/// The warm-up before the first memory sample, from other addresses so the
/// measured clients start with full buckets.
const WARM_UP: Duration = Duration::from_secs(3);
/// A request unanswered for this long is a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much the gateway's resident memory may grow during the run.
const RSS_GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// `GET /api/v1/runners` with the key, as client `10.{octet}.{i / 250}.{i % 250 + 1}`.
fn request(addr: SocketAddr, octet: u8, index: usize) -> Vec<u8> {
    let client = format!("10.{octet}.{}.{}", index / 250, index % 250 + 1);
    http_load::get_request(
        addr,
        "/api/v1/runners",
        &[
            ("X-API-Key", KEY),
            ("X-Forwarded-For", client.as_str()),
            ("Accept", "application/json"),
        ],
    )
}

fn seconds() -> u64 {
    std::env::var("LOAD_TEST_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(SECONDS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_get_200_or_429_and_memory_stays_flat() {
    let rate = RATE_PER_SECOND.to_string();
    let burst = BURST.to_string();
    let world = World::start_with_gateway_env(&[
        ("TRUST_PROXY_HEADERS", "true"),
        ("RATE_LIMIT_PER_SECOND", &rate),
        ("RATE_LIMIT_BURST", &burst),
    ])
    .await;
    let gateway = &world.gateway;
    let addr = SocketAddr::from(([127, 0, 0, 1], gateway.port));
    let seconds = seconds();

    // The real thing answers before anything is measured.
    let (status, body) = http_load::one_request(addr, &request(addr, 255, 0), REQUEST_TIMEOUT)
        .await
        .expect("the gateway answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("runners"), "{body}");

    let warm_up = http_load::load(addr, CLIENTS, WARM_UP, REQUEST_TIMEOUT, |i| {
        request(addr, 1, i)
    })
    .await;
    assert_eq!(warm_up.errors, 0, "warm-up: {:?}", warm_up.first_error);
    let rss_start = http_load::rss_kib(gateway.pid()).expect("gateway VmRSS");

    let result = http_load::load(
        addr,
        CLIENTS,
        Duration::from_secs(seconds),
        REQUEST_TIMEOUT,
        |i| request(addr, 2, i),
    )
    .await;
    let rss_end = http_load::rss_kib(gateway.pid()).expect("gateway VmRSS");

    report(&result, seconds, rss_start, rss_end);

    // Answers: only 200 and the intended 429, every 429 with Retry-After,
    // and nothing broken or late.
    assert_eq!(
        result.errors, 0,
        "{} connection errors ({} timeouts), first: {:?}",
        result.errors, result.timeouts, result.first_error
    );
    assert!(
        result
            .statuses
            .keys()
            .all(|&status| status == 200 || status == 429),
        "only 200 and 429 expected: {:?}",
        result.statuses
    );
    assert_eq!(
        result.too_many_without_retry_after,
        0,
        "429s without Retry-After (of {})",
        result.count(429)
    );

    // Per client: each was throttled, none got more than its own bucket
    // allows (GCRA: burst + rate × elapsed, +1 for rounding), none starved.
    let most = BURST + (RATE_PER_SECOND as f64 * result.elapsed.as_secs_f64()).ceil() as u64 + 1;
    let allowed = BURST + RATE_PER_SECOND * seconds;
    for (client, statuses) in result.per_connection.iter().enumerate() {
        let ok = statuses.get(&200).copied().unwrap_or(0);
        let limited = statuses.get(&429).copied().unwrap_or(0);
        assert!(
            limited > 0,
            "client {client} was never limited: {statuses:?}"
        );
        assert!(
            ok <= most,
            "client {client} got {ok} 200s, at most {most} allowed"
        );
        assert!(
            ok * 2 >= allowed,
            "client {client} got {ok} 200s, under half of the {allowed} allowed"
        );
    }
    // All clients together: close to what the limit allows. Over 110 % the
    // limiter lets too much through; under 80 % it throttles more than
    // configured (or keys clients wrongly: one shared bucket would give
    // 1/200 of this).
    let expected = CLIENTS as u64 * allowed;
    let ok = result.count(200);
    assert!(
        ok * 10 >= expected * 8 && ok * 10 <= expected * 11,
        "{ok} 200s, expected {expected} (80–110 %)"
    );

    // Memory: flat across the run.
    assert!(
        rss_end <= rss_start + RSS_GROWTH_LIMIT_KIB,
        "gateway RSS grew from {rss_start} KiB to {rss_end} KiB"
    );
}

/// Prints the one-line summary and writes the figures as JSON.
fn report(result: &LoadResult, seconds: u64, rss_start_kib: u64, rss_end_kib: u64) {
    let mb = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "gateway load: {CLIENTS} clients × {seconds} s (limit {RATE_PER_SECOND}/s, burst {BURST}): \
         {} requests, {} × 200, {} × 429, {} errors ({} timeouts), {:.0} req/s, \
         p50 {:.2} ms, p99 {:.2} ms, RSS {:.1} MB → {:.1} MB",
        result.answers(),
        result.count(200),
        result.count(429),
        result.errors,
        result.timeouts,
        result.throughput(),
        result.percentile_ms(50.0),
        result.percentile_ms(99.0),
        mb(rss_start_kib),
        mb(rss_end_kib),
    );
    let statuses: serde_json::Map<String, serde_json::Value> = result
        .statuses
        .iter()
        .map(|(status, count)| (status.to_string(), json!(count)))
        .collect();
    let figures = json!({
        "clients": CLIENTS,
        "seconds": seconds,
        "rate_limit_per_second": RATE_PER_SECOND,
        "rate_limit_burst": BURST,
        "elapsed_seconds": result.elapsed.as_secs_f64(),
        "requests": result.answers(),
        "ok_200": result.count(200),
        "too_many_429": result.count(429),
        "statuses": statuses,
        "errors": result.errors,
        "timeouts": result.timeouts,
        "throughput_rps": result.throughput(),
        "p50_ms": result.percentile_ms(50.0),
        "p99_ms": result.percentile_ms(99.0),
        "rss_start_mb": mb(rss_start_kib),
        "rss_end_mb": mb(rss_end_kib),
    });
    let path = artifacts_dir().join("gateway-load.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&figures).expect("JSON") + "\n",
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
