//! The run's report (JSON) and its one-page summary.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::Anomaly;
use crate::check::transfers::Counts;
use crate::history::{Attempt, Op, Outcome, What};
use crate::nemesis::Entry;
use crate::schedule::{Fault, Kind};

/// Operations by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ops {
    /// Acknowledged (transfers) or answered (reads).
    pub ok: u64,
    /// Refused for certain (transfers), or unanswered (reads).
    pub failed: u64,
    /// No definite answer before the run ended (transfers).
    pub unknown: u64,
}

impl Ops {
    /// Counts `ops`.
    pub fn of(ops: &[Op]) -> Ops {
        let mut o = Ops::default();
        for op in ops {
            match op.outcome {
                Outcome::Ok => o.ok += 1,
                Outcome::Failed => o.failed += 1,
                Outcome::Unknown => o.unknown += 1,
            }
        }
        o
    }
}

/// Requests that got a definite answer. With 3 lognodes every fault leaves a majority connected,
/// so every request counts. A client waits [`crate::workload::RETRY_PAUSE`] after a request with
/// no answer, so a stretch of failures weighs about as much as the same stretch of successes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Availability {
    /// Requests made (kept ones).
    pub attempts: u64,
    /// Of which answered definitely.
    pub answered: u64,
    /// `answered / attempts`.
    pub share: f64,
    /// The share of the seconds of the fault schedule in which at least one write was answered.
    pub write_seconds_share: f64,
}

impl Availability {
    /// From the attempts recorded; `window`: the schedule's start and end (ms).
    pub fn of(attempts: &[Attempt], window: (u64, u64)) -> Availability {
        let answered = attempts.iter().filter(|a| a.answered).count() as u64;
        let n = attempts.len() as u64;
        let seconds = window.1.saturating_sub(window.0) / 1000;
        let mut with_writes = vec![false; usize::try_from(seconds).unwrap_or(0)];
        for a in attempts.iter().filter(|a| a.write && a.answered && a.end_ms >= window.0) {
            if let Some(s) = usize::try_from((a.end_ms - window.0) / 1000).ok().and_then(|i| with_writes.get_mut(i)) {
                *s = true;
            }
        }
        let share = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 / whole as f64 };
        Availability {
            attempts: n,
            answered,
            share: share(answered, n),
            write_seconds_share: share(with_writes.iter().filter(|s| **s).count() as u64, seconds),
        }
    }
}

/// How long writes stopped after each fault that took the leader away: from the fault to the end
/// of the first write answered that was sent after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Faults measured.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: u64,
    /// 99th percentile (nearest rank), ms.
    pub p99_ms: u64,
    /// Longest, ms.
    pub max_ms: u64,
    /// Each one, in fault order (ms; a fault with no write answered before the next is left out).
    pub samples_ms: Vec<u64>,
}

impl Recovery {
    /// From the nemesis log and the writes' attempts, for the faults `which` selects.
    pub fn of(log: &[Entry], writes: &[Attempt], which: impl Fn(Fault) -> bool) -> Recovery {
        let samples: Vec<u64> = log
            .iter()
            .filter(|e| which(e.fault))
            .filter_map(|e| {
                writes.iter().filter(|a| a.answered && a.start_ms >= e.t_ms).map(|a| a.end_ms - e.t_ms).min()
            })
            .collect();
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        let rank = |q: f64| {
            if sorted.is_empty() {
                0
            } else {
                let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
                sorted[i]
            }
        };
        Recovery {
            count: sorted.len() as u64,
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: sorted.last().copied().unwrap_or_default(),
            samples_ms: samples,
        }
    }
}

/// What the linearizability checker found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Linearizability {
    /// Accounts checked.
    pub accounts: u64,
    /// Strong reads checked for linearizability.
    pub reads: u64,
    /// Answered reads (strong, and follower reads with `min_index`) checked against the history
    /// at the index they showed.
    pub indexed: u64,
    /// Accounts whose search gave up (not counted as a pass or a violation).
    pub inconclusive: Vec<String>,
}

/// What the topics-and-groups workload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Groups {
    /// Records acknowledged.
    pub produced: u64,
    /// Records without a definite answer (sent once, never again).
    pub produced_unknown: u64,
    /// Records in the topic at the end (every node's copy compared).
    pub in_topic: u64,
    /// Distinct records delivered to the group.
    pub delivered: u64,
    /// Commits acknowledged.
    pub commits: u64,
    /// Commits sent with a generation the group had moved past.
    pub stale_commits: u64,
    /// Of which refused, as they must be.
    pub stale_commits_refused: u64,
    /// Whether the group's committed offsets reached every partition's end after the heal.
    pub caught_up: bool,
}

impl Groups {
    /// From the operations, the records found and the deliveries.
    pub fn of(ops: &[Op], in_topic: u64, delivered: u64, caught_up: bool) -> Groups {
        let mut g = Groups { in_topic, delivered, caught_up, ..Groups::default() };
        for op in ops {
            match (&op.what, op.outcome) {
                (What::Produce { .. }, Outcome::Ok) => g.produced += 1,
                (What::Produce { .. }, Outcome::Unknown) => g.produced_unknown += 1,
                (What::Commit { stale: true, .. }, outcome) => {
                    g.stale_commits += 1;
                    g.stale_commits_refused += u64::from(outcome == Outcome::Failed);
                }
                (What::Commit { .. }, Outcome::Ok) => g.commits += 1,
                _ => {}
            }
        }
        g
    }
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Faults' schedule length, s.
    pub duration_s: f64,
    /// Lognodes (voters) in the cluster.
    pub nodes: u64,
    /// Nemeses enabled.
    pub nemesis: Vec<Kind>,
    /// Workloads run.
    pub workloads: Vec<String>,
    /// Faults injected, per kind (every kind listed).
    pub faults: BTreeMap<Kind, u64>,
    /// Scheduled faults skipped: no leader was known, or the schedule's end had come (an earlier
    /// fault ran late).
    pub faults_skipped: u64,
    /// Operations by outcome.
    pub ops: Ops,
    /// Anomalies; empty when clean.
    pub anomalies: Vec<Anomaly>,
    /// Every fault with its times.
    pub nemesis_log: Vec<Entry>,
    /// Answered requests.
    pub availability: Availability,
    /// Write unavailability after faults that took the leader away.
    pub leader_recovery: Recovery,
    /// The same, after the leader was cut off from both followers only.
    pub leader_isolation: Recovery,
    /// The transfers checker's counts.
    pub transfers: Counts,
    /// The linearizability checker's counts (absent without the reads workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linearizability: Option<Linearizability>,
    /// The topics-and-groups workload's counts (absent without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Groups>,
    /// What `projector verify` said after the run (absent without a projector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<String>,
    /// Where the run's logs and data are.
    pub dir: String,
}

impl Report {
    /// The one-page summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let verdict = if self.anomalies.is_empty() { "CLEAN" } else { "ANOMALIES FOUND" };
        s.push_str(&format!(
            "chaos run, seed {}, {} lognodes, {:.0} s of faults: {verdict}\n\n",
            self.seed, self.nodes, self.duration_s
        ));
        let kinds: Vec<String> =
            self.faults.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{} {n}", k.name())).collect();
        s.push_str(&format!(
            "faults:       {} ({} skipped: no leader known, or too late)\n",
            kinds.join(", "),
            self.faults_skipped
        ));
        s.push_str(&format!(
            "operations:   {} ok, {} failed, {} unknown (workloads: {})\n",
            self.ops.ok,
            self.ops.failed,
            self.ops.unknown,
            self.workloads.join(", ")
        ));
        let t = &self.transfers;
        s.push_str(&format!(
            "transfers:    {} acknowledged, {} refused, unknown: {} applied / {} not; {} applied in all\n",
            t.acknowledged, t.refused, t.unknown_applied, t.unknown_not_applied, t.applied
        ));
        if let Some(l) = &self.linearizability {
            s.push_str(&format!(
                "reads:        {} strong ones checked for linearizability over {} accounts ({} inconclusive); \
                 {} checked against the history at their index\n",
                l.reads,
                l.accounts,
                l.inconclusive.len(),
                l.indexed
            ));
        }
        if let Some(g) = &self.groups {
            s.push_str(&format!(
                "groups:       {} records acknowledged ({} unknown), {} in the topic on every node, {} delivered; \
                 {} commits; {} stale-generation commits, {} refused; caught up: {}\n",
                g.produced,
                g.produced_unknown,
                g.in_topic,
                g.delivered,
                g.commits,
                g.stale_commits,
                g.stale_commits_refused,
                g.caught_up
            ));
        }
        if let Some(p) = &self.projection {
            s.push_str(&format!("projection:   {p}\n"));
        }
        let a = &self.availability;
        s.push_str(&format!(
            "availability: {:.2} % of {} requests answered; writes answered in {:.1} % of the seconds\n",
            a.share * 100.0,
            a.attempts,
            a.write_seconds_share * 100.0
        ));
        let r = &self.leader_recovery;
        s.push_str(&format!(
            "leader lost:  {} times; writes back after p50 {} ms, p99 {} ms, max {} ms\n",
            r.count, r.p50_ms, r.p99_ms, r.max_ms
        ));
        let r = &self.leader_isolation;
        s.push_str(&format!(
            "  of which cut off: {} times; writes back after p50 {} ms, p99 {} ms, max {} ms\n",
            r.count, r.p50_ms, r.p99_ms, r.max_ms
        ));
        s.push_str(&format!("anomalies:    {}\n", self.anomalies.len()));
        for an in self.anomalies.iter().take(20) {
            s.push_str(&format!("  - {}: {} ({} ops in its slice)\n", an.kind, an.detail, an.history.len()));
        }
        s.push_str("\nfaults, in order:\n");
        for e in &self.nemesis_log {
            s.push_str(&format!(
                "  {:>8.1} s .. {:>8.1} s  {:<9} {}\n",
                e.t_ms as f64 / 1e3,
                e.healed_ms as f64 / 1e3,
                e.kind.name(),
                e.detail
            ));
        }
        s.push_str(&format!("\nlogs and data: {}\n", self.dir));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t_ms: u64, fault: Fault) -> Entry {
        Entry { t_ms, healed_ms: t_ms + 3000, kind: fault.kind(), fault, detail: String::new() }
    }

    fn attempt(start_ms: u64, end_ms: u64, answered: bool, write: bool) -> Attempt {
        Attempt { start_ms, end_ms, answered, write }
    }

    #[test]
    fn recovery_is_the_first_answered_write_sent_after_the_fault() {
        let log =
            [entry(1000, Fault::IsolateLeader), entry(5000, Fault::PauseFollower), entry(9000, Fault::KillLeader)];
        let writes = [
            attempt(900, 1100, true, true),   // sent before the fault: not counted
            attempt(1100, 1500, false, true), // no answer
            attempt(1200, 1800, true, true),  // the first: 800 ms
            attempt(9100, 9400, true, true),  // after the kill: 400 ms
        ];
        let all = Recovery::of(&log, &writes, Fault::removes_leader);
        assert_eq!((all.count, all.p50_ms, all.p99_ms, all.max_ms), (2, 400, 800, 800));
        assert_eq!(all.samples_ms, [800, 400]);
        let cut = Recovery::of(&log, &writes, |f| f == Fault::IsolateLeader);
        assert_eq!(cut.samples_ms, [800]);
    }

    #[test]
    fn availability_counts_answers_and_seconds_with_a_write() {
        let attempts = [
            attempt(0, 500, true, true),
            attempt(500, 1500, false, true),
            attempt(1500, 2500, false, false),
            attempt(2500, 3100, true, true),
        ];
        let a = Availability::of(&attempts, (0, 4000));
        assert_eq!((a.attempts, a.answered), (4, 2));
        assert!((a.share - 0.5).abs() < 1e-9 && (a.write_seconds_share - 0.5).abs() < 1e-9, "{a:?}");
    }
}
