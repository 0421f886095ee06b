//! The run's report: a JSON document, a summary table, a `RESULT` line in the shape of
//! `../shared/peers/` (so `agg.py` and the comparison script can read it), and an SVG chart of
//! latency and throughput over time, written by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::Conservation;
use crate::run::{Load, Outcome};
use crate::scenario::Scenario;
use crate::stats::percentile_ms;

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: percentile_ms(h, 0.50),
            p90: percentile_ms(h, 0.90),
            p99: percentile_ms(h, 0.99),
            p999: percentile_ms(h, 0.999),
            max: percentile_ms(h, 1.0),
            mean: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        }
    }
}

/// Numbers of one operation.
#[derive(Debug, Serialize)]
pub struct OpReport {
    /// Requests.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Their latency.
    pub latency_ms: Latency,
}

/// One second of the run.
#[derive(Debug, Serialize)]
pub struct SecondReport {
    /// Seconds since the start.
    pub second: usize,
    /// Requests completed in it.
    pub requests: u64,
    /// Errors in it.
    pub errors: u64,
    /// Transfers created in it.
    pub transfers: u64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

/// The JSON report (`--report`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Gateway URL.
    pub gateway: String,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Closed loop: workers; open loop: connections.
    pub concurrency: usize,
    /// Open loop: target starts per second.
    pub rate_per_s: Option<u64>,
    /// Measured wall time, seconds.
    pub duration_s: f64,
    /// Requests made (= `successes` + the sum of `errors`).
    pub requests: u64,
    /// Requests answered 2xx.
    pub successes: u64,
    /// Errors by code (problem+json `code`, `http_<status>`, or `client_*`).
    pub errors: BTreeMap<String, u64>,
    /// Requests per second.
    pub throughput_per_s: f64,
    /// Transfers created (each transfer of a batch counts).
    pub transfers: u64,
    /// Transfers created per second.
    pub transfers_per_s: f64,
    /// Transfers whose outcome is unknown (5xx or no answer to a write).
    pub transfers_unknown: u64,
    /// Failed batch items by code (inside 200 answers).
    pub item_errors: BTreeMap<String, u64>,
    /// Records consumed (consume scenario).
    pub records_consumed: u64,
    /// Offset commits fenced by a rebalance (409; counted as successes: the protocol's answer).
    pub commits_fenced: u64,
    /// Open loop: starts that were due but never made (the generator fell behind).
    pub dropped: u64,
    /// Latency of every request.
    pub latency_ms: Latency,
    /// Per operation.
    pub ops: BTreeMap<&'static str, OpReport>,
    /// Per second.
    pub timeline: Vec<SecondReport>,
    /// The money check.
    pub conservation: Conservation,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(scenario: Scenario, gateway: &str, load: Load, out: Outcome) -> Report {
        let rec = out.rec;
        let secs = out.elapsed.as_secs_f64().max(1e-9);
        let (mode, concurrency, rate_per_s) = match load {
            Load::Closed { concurrency } => ("closed", concurrency, None),
            Load::Open { rate_per_s, connections } => ("open", connections, Some(rate_per_s)),
        };
        let requests = rec.requests();
        Report {
            scenario: scenario.as_str(),
            gateway: gateway.to_owned(),
            mode,
            concurrency,
            rate_per_s,
            duration_s: secs,
            requests,
            successes: rec.successes,
            throughput_per_s: requests as f64 / secs,
            transfers: rec.transfers,
            transfers_per_s: rec.transfers as f64 / secs,
            transfers_unknown: rec.transfers_unknown,
            item_errors: rec.item_errors,
            records_consumed: rec.records,
            commits_fenced: rec.fenced,
            dropped: rec.dropped,
            latency_ms: Latency::of(&rec.overall),
            ops: rec
                .by_op
                .iter()
                .map(|(op, s)| {
                    (
                        op.as_str(),
                        OpReport { requests: s.requests, errors: s.errors, latency_ms: Latency::of(&s.latency) },
                    )
                })
                .collect(),
            timeline: rec
                .timeline
                .iter()
                .enumerate()
                .map(|(i, s)| SecondReport {
                    second: i,
                    requests: s.requests,
                    errors: s.errors,
                    transfers: s.transfers,
                    p50_ms: percentile_ms(&s.latency, 0.5),
                    p99_ms: percentile_ms(&s.latency, 0.99),
                })
                .collect(),
            errors: rec.errors,
            conservation: out.conservation,
        }
    }

    /// The human summary table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let load = match self.rate_per_s {
            Some(r) => format!("open loop, {r}/s over {} connections", self.concurrency),
            None => format!("closed loop, {} workers", self.concurrency),
        };
        let _ = writeln!(s, "scenario {} against {} ({load}), {:.1} s", self.scenario, self.gateway, self.duration_s);
        let _ = writeln!(s, "{:<22} {:>12}", "requests", self.requests);
        let _ = writeln!(s, "{:<22} {:>12}", "  successes", self.successes);
        let _ = writeln!(s, "{:<22} {:>12}", "  errors", self.requests - self.successes);
        let _ = writeln!(s, "{:<22} {:>12.1}", "throughput (req/s)", self.throughput_per_s);
        let _ = writeln!(s, "{:<22} {:>12}", "transfers", self.transfers);
        let _ = writeln!(s, "{:<22} {:>12.1}", "transfers/s", self.transfers_per_s);
        if self.transfers_unknown > 0 {
            let _ = writeln!(s, "{:<22} {:>12}", "transfers unknown", self.transfers_unknown);
        }
        if self.records_consumed > 0 || self.scenario == "consume" {
            let _ = writeln!(s, "{:<22} {:>12}", "records consumed", self.records_consumed);
            let _ = writeln!(s, "{:<22} {:>12}", "commits fenced (409)", self.commits_fenced);
        }
        if self.rate_per_s.is_some() {
            let _ = writeln!(s, "{:<22} {:>12}", "dropped starts", self.dropped);
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<10} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let mut row = |name: &str, req: u64, err: u64, l: &Latency| {
            let _ = writeln!(
                s,
                "{name:<10} {req:>9} {err:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                l.p50, l.p90, l.p99, l.p999, l.max
            );
        };
        row("all", self.requests, self.requests - self.successes, &self.latency_ms);
        for (name, op) in &self.ops {
            row(name, op.requests, op.errors, &op.latency_ms);
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nerrors by code:");
            for (code, n) in &self.errors {
                let _ = writeln!(s, "  {code:<28} {n:>9}");
            }
        }
        if !self.item_errors.is_empty() {
            let _ = writeln!(s, "\nfailed batch items by code:");
            for (code, n) in &self.item_errors {
                let _ = writeln!(s, "  {code:<28} {n:>9}");
            }
        }
        let c = &self.conservation;
        let sums: Vec<String> = c.sum_by_currency.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            s,
            "\nconservation: {} ({} accounts read back; balance sums: {}; {})",
            if c.ok { "OK" } else { "VIOLATED" },
            c.accounts_checked,
            sums.join(", "),
            if c.exact {
                "every balance equals the acknowledged transfers"
            } else {
                "some writes had unknown outcomes, so only the sums were compared"
            }
        );
        for v in &c.violations {
            let _ = writeln!(s, "  violation: {v}");
        }
        s
    }

    /// One line in the peers' `RESULT` format (throughput is transfers/s when the scenario
    /// moves money, else requests/s).
    pub fn result_line(&self) -> String {
        let tput = if self.transfers > 0 { self.transfers_per_s } else { self.throughput_per_s };
        format!(
            "RESULT ledger-{} conc={} run=1 tput={:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} errors={}",
            self.scenario,
            self.concurrency,
            tput,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            self.latency_ms.p999,
            self.requests - self.successes
        )
    }

    /// An SVG chart: p50 and p99 latency (left axis, ms) and transfers or requests per second
    /// (right axis) for each second of the run.
    pub fn svg(&self) -> String {
        const W: f64 = 900.0;
        const H: f64 = 420.0;
        const L: f64 = 70.0;
        const R: f64 = 80.0;
        const T: f64 = 40.0;
        const B: f64 = 50.0;
        let n = self.timeline.len().max(1);
        let per_s = |s: &SecondReport| if self.transfers > 0 { s.transfers as f64 } else { s.requests as f64 };
        let lat_max = self.timeline.iter().map(|s| s.p99_ms).fold(1.0, f64::max) * 1.1;
        let tput_max = self.timeline.iter().map(per_s).fold(1.0, f64::max) * 1.1;
        let x = |i: usize| L + (W - L - R) * (i as f64 + 0.5) / n as f64;
        let y = |v: f64, max: f64| T + (H - T - B) * (1.0 - v / max);
        let line = |f: &dyn Fn(&SecondReport) -> f64, max: f64| -> String {
            self.timeline
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{:.1},{:.1}", x(i), y(f(s), max)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let unit = if self.transfers > 0 { "transfers/s" } else { "requests/s" };
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{L}" y="20" font-size="14">loadtest {}: {} workers, p50/p99 latency (ms, left) and {unit} (right), per second</text>"#,
            self.scenario, self.concurrency
        );
        let _ = writeln!(
            s,
            r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            W - L - R,
            H - T - B
        );
        for k in 0..=4 {
            let f = k as f64 / 4.0;
            let yy = T + (H - T - B) * (1.0 - f);
            let _ = writeln!(s, r##"<line x1="{L}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#eee"/>"##, W - R);
            let _ =
                writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{:.1}</text>"#, L - 6.0, yy + 4.0, lat_max * f);
            let _ = writeln!(s, r#"<text x="{}" y="{:.1}">{:.0}</text>"#, W - R + 6.0, yy + 4.0, tput_max * f);
        }
        for i in (0..n).step_by((n / 10).max(1)) {
            let _ = writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{i}s</text>"#, x(i), H - B + 18.0);
        }
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="#bbb" stroke-width="2" points="{}"/>"##,
            line(&per_s, tput_max)
        );
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
            line(&|s| s.p50_ms, lat_max)
        );
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="#d62728" stroke-width="2" points="{}"/>"##,
            line(&|s| s.p99_ms, lat_max)
        );
        let _ = writeln!(
            s,
            r##"<text x="{L}" y="{}"><tspan fill="#1f77b4">— p50</tspan>  <tspan fill="#d62728">— p99</tspan>  <tspan fill="#888">— {unit}</tspan></text>"##,
            H - 12.0
        );
        let _ = writeln!(s, "</svg>");
        s
    }
}
