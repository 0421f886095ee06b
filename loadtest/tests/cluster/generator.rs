//! Short runs of the Rust load generator against a real cluster: each scenario's report adds up
//! (requests = successes + errors, transfers/s = transfers / duration, percentiles ordered, the
//! timeline sums to the totals) and its conservation check passes, exactly.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{Cluster, SERIAL, run_bounded};

/// Runs `loadtest` with `args`; its exit code, report and output.
fn loadtest(cluster: &Cluster, dir: &Path, name: &str, args: &[&str]) -> (Option<i32>, Option<Value>, String) {
    let report = dir.join(format!("{name}.json"));
    let chart = dir.join(format!("{name}.svg"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    cmd.args(["--gateway", &cluster.url]).args(args);
    cmd.arg("--report").arg(&report).arg("--chart").arg(&chart);
    let out = run_bounded(cmd);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let json = std::fs::read_to_string(&report).ok().map(|s| serde_json::from_str(&s).expect("report is JSON"));
    if json.is_some() {
        let svg = std::fs::read_to_string(&chart).expect("chart written");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "not an SVG: {svg}");
    }
    (out.status.code(), json, text)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("report has no integer {key}: {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("report has no number {key}: {v}"))
}

/// The checks every report must pass; returns (requests, transfers).
fn assert_adds_up(r: &Value, out: &str) -> (u64, u64) {
    let requests = u(r, "requests");
    let successes = u(r, "successes");
    let errors: u64 = r["errors"].as_object().expect("errors map").values().map(|v| v.as_u64().expect("count")).sum();
    assert!(requests > 0, "no requests made:\n{out}");
    assert_eq!(requests, successes + errors, "requests != successes + errors:\n{out}");
    assert_eq!(errors, 0, "errors on a healthy cluster:\n{out}");
    let secs = f(r, "duration_s");
    let transfers = u(r, "transfers");
    assert!((f(r, "transfers_per_s") - transfers as f64 / secs).abs() < 1e-6 * (1.0 + transfers as f64));
    assert!((f(r, "throughput_per_s") - requests as f64 / secs).abs() < 1e-6 * (1.0 + requests as f64));
    let l = &r["latency_ms"];
    let p: Vec<f64> = ["p50", "p90", "p99", "p999", "max"].iter().map(|k| f(l, k)).collect();
    assert!(p[0] > 0.0 && p.windows(2).all(|w| w[0] <= w[1]), "percentiles out of order: {l}");
    let timeline = r["timeline"].as_array().expect("timeline");
    let sum = |k: &str| timeline.iter().map(|s| s[k].as_u64().expect("count")).sum::<u64>();
    assert_eq!(sum("requests"), requests, "timeline requests do not add up");
    assert_eq!(sum("transfers"), transfers, "timeline transfers do not add up");
    let op_requests: u64 = r["ops"].as_object().expect("ops").values().map(|o| u(o, "requests")).sum();
    assert_eq!(op_requests, requests, "per-operation requests do not add up");
    let c = &r["conservation"];
    assert_eq!(c["ok"], true, "conservation failed:\n{out}");
    assert_eq!(c["exact"], true, "not every write had a known outcome:\n{out}");
    assert_eq!(c["accounts_checked"], 101, "not every account was read back:\n{out}");
    assert_eq!(c["sum_by_currency"]["USD"], 0);
    assert!(out.contains("conservation: OK"), "no conservation line in the summary:\n{out}");
    (requests, transfers)
}

#[test]
fn generator_reports_add_up_and_money_is_conserved() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = ["--concurrency", "4", "--duration", "2s"];

    let (code, r, out) =
        loadtest(&cluster, dir.path(), "transfers", &[&["--scenario", "transfers"][..], &closed].concat());
    assert_eq!(code, Some(0), "{out}\n{}", cluster.logs());
    let r = r.expect("report");
    let (requests, transfers) = assert_adds_up(&r, &out);
    assert_eq!(transfers, requests, "one transfer per request");
    assert!(out.contains("RESULT ledger-transfers conc=4"), "no RESULT line:\n{out}");

    let (code, r, out) =
        loadtest(&cluster, dir.path(), "batch", &[&["--scenario", "transfers-batch"][..], &closed].concat());
    assert_eq!(code, Some(0), "{out}\n{}", cluster.logs());
    let r = r.expect("report");
    let (requests, transfers) = assert_adds_up(&r, &out);
    assert_eq!(transfers, 100 * requests, "a batch is 100 transfers");
    assert_eq!(r["item_errors"].as_object().map(|m| m.len()), Some(0));

    let (code, r, out) = loadtest(&cluster, dir.path(), "wallet", &[&["--scenario", "wallet"][..], &closed].concat());
    assert_eq!(code, Some(0), "{out}\n{}", cluster.logs());
    let r = r.expect("report");
    let (requests, transfers) = assert_adds_up(&r, &out);
    let reads = u(&r["ops"]["read"], "requests");
    assert_eq!(reads + transfers, requests, "every wallet step is a read or a transfer");
    assert!(reads > 0 && transfers > 0, "the mix has both reads and transfers: {reads} / {transfers}");

    // Open loop: 50 starts per second for 2 s.
    let (code, r, out) = loadtest(
        &cluster,
        dir.path(),
        "open",
        &["--scenario", "transfers", "--rate", "50", "--connections", "8", "--duration", "2s"],
    );
    assert_eq!(code, Some(0), "{out}\n{}", cluster.logs());
    let r = r.expect("report");
    let (requests, _) = assert_adds_up(&r, &out);
    assert_eq!(r["mode"], "open");
    assert!((90..=100).contains(&(requests + u(&r, "dropped"))), "2 s at 50/s started {requests} (+ dropped):\n{out}");

    let (code, r, out) = loadtest(&cluster, dir.path(), "consume", &[&["--scenario", "consume"][..], &closed].concat());
    match cluster.group_routes() {
        Ok(()) => {
            assert_eq!(code, Some(0), "{out}\n{}", cluster.logs());
            let r = r.expect("report");
            let (_, transfers) = assert_adds_up(&r, &out);
            assert!(transfers > 0, "the members moved no money:\n{out}");
            assert!(u(&r, "records_consumed") > 0, "the members consumed nothing:\n{out}");
            let ops = &r["ops"];
            assert!(u(&ops["join"], "requests") >= 4, "every worker joins:\n{out}");
            assert!(u(&ops["fetch"], "requests") > 0 && u(&ops["commit"], "requests") > 0, "fetch and commit:\n{out}");
            assert_eq!(u(&ops["leave"], "requests"), 4, "every worker leaves at the end:\n{out}");
        }
        Err(why) => {
            eprintln!("NOTE: the consume scenario could not be exercised: {why}");
            assert_eq!(code, Some(3), "consume without group routes must exit 3:\n{out}");
            assert!(out.contains("no consumer-group routes"), "consume did not say why:\n{out}");
            assert!(r.is_none(), "no report without a run");
        }
    }
}
