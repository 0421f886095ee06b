//! Overload and timeouts: 503 with Retry-After, never a queue; slow bodies
//! get 408.

use std::sync::Arc;
use std::time::Duration;

use gateway::GatewayConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{assert_problem, start, start_with};

#[tokio::test]
async fn requests_past_the_in_flight_limit_get_503_with_retry_after() {
    let s = Arc::new(
        start(GatewayConfig { max_in_flight: 2, backend_timeout: Duration::from_secs(20), ..Default::default() }).await,
    );
    s.backend.set_delay(Duration::from_secs(3));
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.get("/v1/accounts/nobody").await })
        })
        .collect();
    // Wait (bounded) until both slots are taken; /metrics is exempt from the limit.
    let mut full = false;
    for _ in 0..200 {
        if s.get("/metrics").await.text().lines().any(|l| l == "gateway_in_flight_requests 2") {
            full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(full, "the two slow requests never were in flight together");
    for i in 0..3 {
        let r = s.post("/v1/accounts", &json!({"id": format!("x{i}"), "currency": "USD"})).await;
        assert_problem(&r, 503, "overloaded", "request past the limit");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_eq!(s.get("/healthz").await.status, 200, "liveness is exempt from the limit");
    for t in slow {
        let r = t.await.expect("join");
        assert_problem(&r, 404, "account_not_found", "the slow requests are served");
    }
    let m = s.get("/metrics").await.text();
    assert!(m.lines().any(|l| l == "gateway_overloaded_total 3"), "{m}");
    assert!(m.lines().any(|l| l == "gateway_in_flight_requests 0"), "{m}");
    s.backend.set_delay(Duration::ZERO);
    let ok = s.post("/v1/accounts", &json!({"id": "after", "currency": "USD"})).await;
    assert_eq!(ok.status, 201, "nothing was queued; later requests are served: {}", ok.text());
    assert_problem(&s.get("/v1/accounts/x0").await, 404, "account_not_found", "rejected writes were not applied");
}

#[tokio::test]
async fn a_slow_backend_call_times_out_with_503_and_retry_after() {
    let s = start(GatewayConfig { backend_timeout: Duration::from_millis(100), ..Default::default() }).await;
    s.backend.set_delay(Duration::from_millis(2000));
    let r = s.post("/v1/accounts", &json!({"id": "slow", "currency": "USD"})).await;
    assert_problem(&r, 503, "timeout", "slow write");
    assert_eq!(r.header("retry-after"), Some("1"));
    let m = s.get("/metrics").await.text();
    assert!(m.contains("gateway_backend_errors_total{kind=\"timeout\"} 1"), "{m}");
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let s = start(GatewayConfig { body_read_timeout: Duration::from_millis(200), ..Default::default() }).await;
    let mut c = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    c.write_all(b"POST /v1/accounts HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        // Bounded by the outer timeout and by EOF.
        while !String::from_utf8_lossy(&got).contains("request_timeout") {
            let n = c.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("no answer to a stalled body");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json") && text.contains("\"code\":\"request_timeout\""), "{text}");
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let s = start(GatewayConfig::default()).await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    tokio::spawn(conn);
    let req = axum::http::Request::builder()
        .uri(format!("http://{}/healthz", s.addr))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp =
        tokio::time::timeout(Duration::from_secs(10), send.send_request(req)).await.expect("timeout").expect("h2");
    assert_eq!(resp.version(), axum::http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], br#"{"status":"ok"}"#);
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight_then_stops() {
    let mut s = start(GatewayConfig::default()).await;
    s.backend.set_delay(Duration::from_millis(500));
    let addr = s.addr;
    let in_flight = {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::spawn(async move {
            let mut stream = stream;
            stream
                .write_all(b"GET /v1/accounts/nobody HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
                .await
                .expect("write");
            let mut out = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
                .await
                .expect("no answer")
                .expect("read");
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.begin_shutdown();
    let answer = in_flight.await.expect("join");
    assert!(answer.starts_with("HTTP/1.1 404"), "the in-flight request was not finished: {answer}");
    assert!(answer.contains("account_not_found"), "{answer}");
    s.stopped().await.expect("serve returned an error");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

/// Reads until EOF (bounded by `limit`); `None` if the peer kept the connection open.
async fn read_until_closed(c: &mut tokio::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(limit, c.read_to_end(&mut out)).await.ok().map(|r| {
        let _ = r;
        out
    })
}

#[tokio::test]
async fn slow_headers_and_excess_connections_are_cut() {
    let opts = gateway::ServeOptions {
        header_read_timeout: Duration::from_millis(200),
        max_connections: 2,
        // No slots kept for health checks here (tests/cluster/hostile.rs covers them).
        health_reserved: 0,
        ..Default::default()
    };
    let s = start_with(GatewayConfig::default(), opts).await;
    // Slow headers: the connection is closed soon after the header deadline.
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127").await.expect("write");
    assert!(read_until_closed(&mut slow, Duration::from_secs(5)).await.is_some(), "slow headers were not cut");

    // Two idle connections take both slots; a third is closed at once.
    let mut a = tokio::net::TcpStream::connect(s.addr).await.expect("connect a");
    let _b = tokio::net::TcpStream::connect(s.addr).await.expect("connect b");
    a.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write a");
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), a.read_exact(&mut buf)).await.expect("a answered").expect("read a");
    assert_eq!(&buf, b"HTTP/1.1 200");
    let mut c = tokio::net::TcpStream::connect(s.addr).await.expect("connect c");
    let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let got = read_until_closed(&mut c, Duration::from_secs(5)).await;
    assert_eq!(got.map(|v| v.len()), Some(0), "a connection past the limit was served");
}
