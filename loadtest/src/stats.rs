//! What a run measured: HDR latency histograms (whole run, per operation, per second), counts of
//! successes and of errors by problem+json `code`, and the transfers and records moved.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::limits::{ERROR_CODES_MAX, HISTOGRAM_SIGFIG, LATENCY_US_MAX, TIMELINE_SECONDS_MAX, TIMELINE_SIGFIG};

/// The kinds of request a scenario makes (each has its own histogram).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `POST /v1/transfers`.
    Transfer,
    /// `POST /v1/transfers/batch`.
    Batch,
    /// `GET /v1/accounts/{id}`.
    Read,
    /// `POST /v1/groups/{group}/members`.
    Join,
    /// `GET /v1/groups/{group}/members/{member}/records`.
    Fetch,
    /// `POST /v1/groups/{group}/members/{member}/offsets`.
    Commit,
    /// `POST /v1/groups/{group}/members/{member}/heartbeat`.
    Heartbeat,
    /// `DELETE /v1/groups/{group}/members/{member}`.
    Leave,
}

impl Op {
    /// Name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Transfer => "transfer",
            Op::Batch => "batch",
            Op::Read => "read",
            Op::Join => "join",
            Op::Fetch => "fetch",
            Op::Commit => "commit",
            Op::Heartbeat => "heartbeat",
            Op::Leave => "leave",
        }
    }
}

/// The result of one request, as the scenario judged it.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `None` on success, else the error code (problem+json `code`, `http_<status>`, or a
    /// `client_*` code when no response came).
    pub error: Option<String>,
    /// Transfers this request created (a replay of our own id counts: it was applied once).
    pub transfers: u64,
    /// Transfers whose outcome is unknown (a 5xx or no response to a write): they may or may not
    /// have been applied.
    pub transfers_unknown: u64,
    /// Codes of batch items that failed inside a 200 answer.
    pub item_errors: Vec<String>,
    /// Records consumed.
    pub records: u64,
    /// Offset commits fenced by a rebalance (409): a correct answer, not an error.
    pub fenced: u64,
}

/// A latency histogram in microseconds, clamped to `LATENCY_US_MAX`.
pub fn histogram(sigfig: u8) -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; a failure here is a programming error.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, sigfig).expect("valid histogram bounds")
}

/// Per-operation numbers.
pub struct OpStats {
    /// Requests made (successes and errors).
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Latency of all of them.
    pub latency: Histogram<u64>,
}

/// One second of the run (by completion time).
pub struct Second {
    /// Requests completed in this second.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Transfers created in this second.
    pub transfers: u64,
    /// Their latencies (coarser histogram).
    pub latency: Histogram<u64>,
}

/// Everything recorded during a run; shared by the workers behind one mutex (a short critical
/// section per request: tens of nanoseconds next to a request's milliseconds).
pub struct Recorder {
    /// When the measured phase began.
    pub start: Instant,
    /// Every request's latency.
    pub overall: Histogram<u64>,
    /// Per operation.
    pub by_op: BTreeMap<Op, OpStats>,
    /// Per second, at most `TIMELINE_SECONDS_MAX`.
    pub timeline: Vec<Second>,
    /// Requests answered with success.
    pub successes: u64,
    /// Errors by code (at most `ERROR_CODES_MAX` codes, then `other`).
    pub errors: BTreeMap<String, u64>,
    /// Transfers created.
    pub transfers: u64,
    /// Transfers with an unknown outcome.
    pub transfers_unknown: u64,
    /// Failed batch items by code.
    pub item_errors: BTreeMap<String, u64>,
    /// Records consumed.
    pub records: u64,
    /// Offset commits fenced by a rebalance (409 `stale_generation` / `not_owner`).
    pub fenced: u64,
    /// Open loop: starts that were due but not made (queue full, or still queued at the end).
    pub dropped: u64,
}

fn bump(map: &mut BTreeMap<String, u64>, code: String) {
    if map.len() >= ERROR_CODES_MAX && !map.contains_key(&code) {
        *map.entry("other".to_owned()).or_insert(0) += 1;
    } else {
        *map.entry(code).or_insert(0) += 1;
    }
}

impl Recorder {
    /// An empty recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            overall: histogram(HISTOGRAM_SIGFIG),
            by_op: BTreeMap::new(),
            timeline: Vec::new(),
            successes: 0,
            errors: BTreeMap::new(),
            transfers: 0,
            transfers_unknown: 0,
            item_errors: BTreeMap::new(),
            records: 0,
            fenced: 0,
            dropped: 0,
        }
    }

    /// Total requests.
    pub fn requests(&self) -> u64 {
        self.successes + self.errors.values().sum::<u64>()
    }

    /// Records one request that took `latency` and completed at `done`.
    pub fn record(&mut self, op: Op, latency: Duration, done: Instant, outcome: Outcome) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, LATENCY_US_MAX);
        self.overall.saturating_record(us);
        let s = self.by_op.entry(op).or_insert_with(|| OpStats {
            requests: 0,
            errors: 0,
            latency: histogram(HISTOGRAM_SIGFIG),
        });
        s.requests += 1;
        s.latency.saturating_record(us);
        let is_error = outcome.error.is_some();
        if is_error {
            s.errors += 1;
        }
        let second = usize::try_from(done.saturating_duration_since(self.start).as_secs()).unwrap_or(usize::MAX);
        if second < TIMELINE_SECONDS_MAX {
            while self.timeline.len() <= second {
                self.timeline.push(Second {
                    requests: 0,
                    errors: 0,
                    transfers: 0,
                    latency: histogram(TIMELINE_SIGFIG),
                });
            }
            let t = &mut self.timeline[second];
            t.requests += 1;
            t.errors += u64::from(is_error);
            t.transfers += outcome.transfers;
            t.latency.saturating_record(us);
        }
        match outcome.error {
            None => self.successes += 1,
            Some(code) => bump(&mut self.errors, code),
        }
        self.transfers += outcome.transfers;
        self.transfers_unknown += outcome.transfers_unknown;
        self.records += outcome.records;
        self.fenced += outcome.fenced;
        for code in outcome.item_errors {
            bump(&mut self.item_errors, code);
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// A percentile of `h` in milliseconds (0 when empty).
pub fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_and_errors_add_up_to_requests() {
        let mut r = Recorder::new();
        let now = Instant::now();
        r.record(Op::Transfer, Duration::from_millis(2), now, Outcome { transfers: 1, ..Outcome::default() });
        r.record(
            Op::Transfer,
            Duration::from_millis(3),
            now,
            Outcome { error: Some("timeout".into()), transfers_unknown: 1, ..Outcome::default() },
        );
        r.record(
            Op::Read,
            Duration::from_millis(1),
            now,
            Outcome { error: Some("http_404".into()), ..Outcome::default() },
        );
        assert_eq!(r.requests(), 3);
        assert_eq!(r.successes, 1);
        assert_eq!(r.errors.get("timeout"), Some(&1));
        assert_eq!(r.transfers, 1);
        assert_eq!(r.transfers_unknown, 1);
        assert_eq!(r.by_op[&Op::Transfer].requests, 2);
        assert_eq!(r.by_op[&Op::Transfer].errors, 1);
        assert_eq!(r.timeline.len(), 1);
        assert_eq!(r.timeline[0].requests, 3);
    }

    #[test]
    fn error_codes_beyond_the_limit_count_as_other() {
        let mut m = BTreeMap::new();
        for i in 0..ERROR_CODES_MAX + 5 {
            bump(&mut m, format!("c{i}"));
        }
        assert_eq!(m.len(), ERROR_CODES_MAX + 1);
        assert_eq!(m.get("other"), Some(&5));
    }

    #[test]
    fn latencies_are_clamped_not_dropped() {
        let mut r = Recorder::new();
        r.record(Op::Read, Duration::from_secs(100_000), Instant::now(), Outcome::default());
        assert_eq!(r.overall.len(), 1);
        assert!(percentile_ms(&r.overall, 1.0) >= (LATENCY_US_MAX as f64 / 1000.0) * 0.99);
    }
}
