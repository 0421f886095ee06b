//! A small Prometheus text-format registry: request counts and latency
//! histograms by method, route template (never the raw URI) and status;
//! backend errors by kind; overload rejections; leader changes and reads
//! per lognode (from the backend's stats).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

type Key = (&'static str, String, u16);

#[derive(Default)]
struct Inner {
    requests: BTreeMap<Key, Histogram>,
    backend_errors: BTreeMap<&'static str, u64>,
    overloaded: u64,
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Method label: one of a fixed set, so clients cannot grow the label space.
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters invalid.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one finished request. `route` is the matched path template.
    pub fn observe(&self, method: &'static str, route: &str, status: u16, latency: Duration) {
        let secs = latency.as_secs_f64();
        let mut g = self.lock();
        let h = g.requests.entry((method, route.to_owned(), status)).or_default();
        h.count += 1;
        h.sum += secs;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            h.buckets[i] += 1;
        }
    }

    /// Counts a backend error of this kind.
    pub fn backend_error(&self, kind: &'static str) {
        *self.lock().backend_errors.entry(kind).or_default() += 1;
    }

    /// Counts a request rejected because too many were in flight.
    pub fn overloaded(&self) {
        self.lock().overloaded += 1;
    }

    /// Renders the Prometheus text format (version 0.0.4).
    pub fn render(&self, in_flight: usize, backend: &crate::backend::BackendStats) -> String {
        let g = self.lock();
        let mut o = String::new();
        let _ = writeln!(o, "# HELP gateway_http_requests_total HTTP requests by method, route template and status.");
        let _ = writeln!(o, "# TYPE gateway_http_requests_total counter");
        for ((m, r, s), h) in &g.requests {
            let _ = writeln!(
                o,
                "gateway_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {}",
                escape(r),
                h.count
            );
        }
        let _ = writeln!(o, "# HELP gateway_http_request_duration_seconds HTTP request latency.");
        let _ = writeln!(o, "# TYPE gateway_http_request_duration_seconds histogram");
        for ((m, r, s), h) in &g.requests {
            let labels = format!("method=\"{m}\",route=\"{}\",status=\"{s}\"", escape(r));
            let mut cum = 0;
            for (b, n) in LATENCY_BUCKETS.iter().zip(h.buckets.iter()) {
                cum += n;
                let _ = writeln!(o, "gateway_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cum}");
            }
            let _ = writeln!(o, "gateway_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(o, "gateway_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(o, "gateway_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        let _ = writeln!(o, "# HELP gateway_backend_errors_total Backend call failures by kind.");
        let _ = writeln!(o, "# TYPE gateway_backend_errors_total counter");
        for (k, n) in &g.backend_errors {
            let _ = writeln!(o, "gateway_backend_errors_total{{kind=\"{k}\"}} {n}");
        }
        let _ =
            writeln!(o, "# HELP gateway_overloaded_total Requests rejected with 503 because too many were in flight.");
        let _ = writeln!(o, "# TYPE gateway_overloaded_total counter");
        let _ = writeln!(o, "gateway_overloaded_total {}", g.overloaded);
        let _ = writeln!(o, "# HELP gateway_in_flight_requests Requests being handled now.");
        let _ = writeln!(o, "# TYPE gateway_in_flight_requests gauge");
        let _ = writeln!(o, "gateway_in_flight_requests {in_flight}");
        let _ = writeln!(o, "# HELP gateway_leader_changes_total Leader changes seen by the backend.");
        let _ = writeln!(o, "# TYPE gateway_leader_changes_total counter");
        let _ = writeln!(o, "gateway_leader_changes_total {}", backend.leader_changes);
        let _ = writeln!(o, "# HELP gateway_backend_reads_total Reads served by each lognode (0: id not known yet).");
        let _ = writeln!(o, "# TYPE gateway_backend_reads_total counter");
        for (node, n) in &backend.reads_by_node {
            let _ = writeln!(o, "gateway_backend_reads_total{{node=\"{node}\"}} {n}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.observe("GET", "/v1/accounts/{id}", 200, Duration::from_millis(3));
        m.observe("GET", "/v1/accounts/{id}", 200, Duration::from_secs(60));
        m.observe("GET", "a\"b", 404, Duration::from_millis(1));
        let t = m.render(0, &crate::backend::BackendStats { leader_changes: 2, reads_by_node: vec![(3, 7)] });
        assert!(t.contains("gateway_http_requests_total{method=\"GET\",route=\"/v1/accounts/{id}\",status=\"200\"} 2"));
        assert!(t.contains("route=\"/v1/accounts/{id}\",status=\"200\",le=\"0.005\"} 1"));
        assert!(t.contains("route=\"/v1/accounts/{id}\",status=\"200\",le=\"10\"} 1"));
        assert!(t.contains("route=\"/v1/accounts/{id}\",status=\"200\",le=\"+Inf\"} 2"));
        assert!(t.contains("route=\"a\\\"b\""));
        assert!(t.contains("gateway_leader_changes_total 2"));
        assert!(t.contains("gateway_backend_reads_total{node=\"3\"} 7"));
    }
}
