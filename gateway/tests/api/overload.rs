//! Overload and timeouts: 503 with Retry-After, never a queue.

use std::sync::Arc;
use std::time::Duration;

use gateway::GatewayConfig;
use serde_json::json;

use crate::support::{assert_problem, start};

#[tokio::test]
async fn requests_past_the_in_flight_limit_get_503_with_retry_after() {
    let s = Arc::new(
        start(GatewayConfig { max_in_flight: 2, backend_timeout: Duration::from_secs(10), ..Default::default() }).await,
    );
    s.backend.set_delay(Duration::from_millis(800));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.get("/v1/accounts/nobody").await })
        })
        .collect();
    // While the slow requests hold both slots, liveness and metrics still answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.get("/healthz").await.status, 200);
    let mut overloaded = 0;
    let mut served = 0;
    for t in tasks {
        let r = t.await.expect("join");
        match r.status {
            503 => {
                assert_problem(&r, 503, "overloaded", "excess request");
                assert_eq!(r.header("retry-after"), Some("1"));
                overloaded += 1;
            }
            404 => served += 1,
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert!((1..=2).contains(&served), "at most the limit is served, got {served}");
    assert_eq!(overloaded + served, 8);
    let m = s.get("/metrics").await.text();
    assert!(m.contains(&format!("gateway_overloaded_total {overloaded}")), "{m}");
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
