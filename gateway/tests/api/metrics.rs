//! `/metrics`: counts by route template and status.

use serde_json::json;

use crate::support::start_default;

#[tokio::test]
async fn metrics_count_requests_by_route_template_not_raw_uri() {
    let s = start_default().await;
    for id in ["m1", "m2", "m3"] {
        assert_eq!(s.post("/v1/accounts", &json!({"id": id, "currency": "USD"})).await.status, 201);
    }
    for id in ["m1", "m2", "ghost"] {
        s.get(&format!("/v1/accounts/{id}")).await;
    }
    s.get("/no/such/route").await;
    s.backend.set_unavailable(true);
    s.get("/readyz").await;
    s.backend.set_unavailable(false);

    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain")));
    let m = r.text();
    let has = |line: &str| assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    has(r#"gateway_http_requests_total{method="POST",route="/v1/accounts",status="201"} 3"#);
    has(r#"gateway_http_requests_total{method="GET",route="/v1/accounts/{id}",status="200"} 2"#);
    has(r#"gateway_http_requests_total{method="GET",route="/v1/accounts/{id}",status="404"} 1"#);
    has(r#"gateway_http_requests_total{method="GET",route="unmatched",status="404"} 1"#);
    has(r#"gateway_http_requests_total{method="GET",route="/readyz",status="503"} 1"#);
    has(r#"gateway_backend_errors_total{kind="unavailable"} 1"#);
    has("gateway_leader_changes_total 1");
    assert!(
        m.contains(r#"gateway_http_request_duration_seconds_bucket{method="GET",route="/v1/accounts/{id}",status="200",le="+Inf"} 2"#),
        "{m}"
    );
    assert!(!m.contains("ghost") && !m.contains("/v1/accounts/m1"), "raw URIs leaked into labels:\n{m}");
}
