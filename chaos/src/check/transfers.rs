//! The transfers checker: the history the clients recorded against the ledger's final state, read
//! after every fault was healed.
//!
//! It asserts:
//! - every acknowledged transfer is applied, once, to both its accounts (`lost`, `duplicated`,
//!   `torn`);
//! - no transfer is applied that was never sent, or that was refused for certain (`phantom`,
//!   `refused_but_applied`); an unknown one is applied once or not at all;
//! - each account's final balance is the sum of the applied transfers (`balance_mismatch`);
//! - the balances sum to zero (`not_conserved`);
//! - no protected account's balance went below zero, at the end or at any change in its history
//!   (`overdrawn`).

use std::collections::{BTreeMap, BTreeSet};

use super::Anomaly;
use crate::history::{Op, Outcome, What};

/// An account as read at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinalAccount {
    /// Its balance.
    pub balance: i64,
    /// Whether it may not go below zero.
    pub protected: bool,
    /// Its history, oldest first.
    pub history: Vec<Change>,
}

/// One change in an account's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The transfer that made it.
    pub id: String,
    /// Its log index.
    pub index: u64,
    /// The balance after it.
    pub balance: i64,
    /// Its log time (the leader's stamp, never below the log time before it).
    pub timestamp_ms: u64,
}

/// What the checker counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Transfers acknowledged.
    pub acknowledged: u64,
    /// Transfers refused for certain.
    pub refused: u64,
    /// Transfers without a definite answer that turned out applied.
    pub unknown_applied: u64,
    /// Transfers without a definite answer that turned out not applied.
    pub unknown_not_applied: u64,
    /// Distinct transfers found in the accounts' histories.
    pub applied: u64,
}

/// Checks `ops` (every transfer sent, setup included) against `accounts` (every account touched).
pub fn check(ops: &[Op], accounts: &BTreeMap<String, FinalAccount>) -> (Counts, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let sent: BTreeMap<&str, &Op> = ops.iter().filter_map(|o| o.transfer_id().map(|id| (id, o))).collect();
    let slice = |ids: &[&str]| -> Vec<Op> { ids.iter().filter_map(|id| sent.get(id).map(|o| (*o).clone())).collect() };

    // Where each transfer shows up: account -> the balance change it made there.
    let mut seen: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
    for (name, acc) in accounts {
        let mut before = 0i64;
        let mut ids_here = BTreeSet::new();
        for Change { id, balance: after, .. } in &acc.history {
            if !ids_here.insert(id.as_str()) {
                anomalies.push(Anomaly::new(
                    "duplicated",
                    format!("transfer {id} changed account {name} more than once"),
                    slice(&[id]),
                ));
            }
            seen.entry(id).or_default().push((name, after - before));
            if acc.protected && *after < 0 {
                anomalies.push(Anomaly::new(
                    "overdrawn",
                    format!("protected account {name} went to {after} with transfer {id}"),
                    slice(&[id]),
                ));
            }
            before = *after;
        }
        if acc.history.last().is_some_and(|c| c.balance != acc.balance) {
            anomalies.push(Anomaly::new(
                "balance_mismatch",
                format!("account {name}: balance {} but its history ends at {before}", acc.balance),
                Vec::new(),
            ));
        }
    }

    let mut counts = Counts { applied: seen.len() as u64, ..Counts::default() };
    for (id, changes) in &seen {
        let Some(op) = sent.get(id) else {
            anomalies.push(Anomaly::new("phantom", format!("transfer {id} was applied but never sent"), Vec::new()));
            continue;
        };
        let What::Transfer { from, to, amount, .. } = &op.what else { continue };
        let amount = i64::try_from(*amount).unwrap_or(i64::MAX);
        let mut want = vec![(from.as_str(), -amount), (to.as_str(), amount)];
        let mut got = changes.clone();
        want.sort_unstable();
        got.sort_unstable();
        if got != want && got.iter().collect::<BTreeSet<_>>().len() == got.len() {
            anomalies.push(Anomaly::new(
                "torn",
                format!("transfer {id} should change {want:?}, the histories show {got:?}"),
                slice(&[id]),
            ));
        }
        if op.outcome == Outcome::Failed {
            anomalies.push(Anomaly::new(
                "refused_but_applied",
                format!("transfer {id} was refused for certain, yet applied"),
                slice(&[id]),
            ));
        }
    }
    for (id, op) in &sent {
        let applied = seen.contains_key(id);
        match op.outcome {
            Outcome::Ok => {
                counts.acknowledged += 1;
                if !applied {
                    anomalies.push(Anomaly::new(
                        "lost",
                        format!("transfer {id} was acknowledged and is in no account's history"),
                        slice(&[id]),
                    ));
                }
            }
            Outcome::Failed => counts.refused += 1,
            Outcome::Unknown if applied => counts.unknown_applied += 1,
            Outcome::Unknown => counts.unknown_not_applied += 1,
        }
    }

    // Balances from the history the clients recorded.
    let mut expected: BTreeMap<&str, i64> = accounts.keys().map(|a| (a.as_str(), 0)).collect();
    for id in seen.keys() {
        if let Some(Op { what: What::Transfer { from, to, amount, .. }, .. }) = sent.get(id) {
            let amount = i64::try_from(*amount).unwrap_or(i64::MAX);
            *expected.entry(from).or_default() -= amount;
            *expected.entry(to).or_default() += amount;
        }
    }
    for (name, acc) in accounts {
        let want = expected.get(name.as_str()).copied().unwrap_or_default();
        if acc.balance != want {
            anomalies.push(Anomaly::new(
                "balance_mismatch",
                format!("account {name}: balance {} but the applied transfers sum to {want}", acc.balance),
                Vec::new(),
            ));
        }
        if acc.protected && acc.balance < 0 {
            anomalies.push(Anomaly::new(
                "overdrawn",
                format!("protected account {name} ends at {}", acc.balance),
                Vec::new(),
            ));
        }
    }
    anomalies.extend(log_time(accounts));
    let sum: i64 = accounts.values().map(|a| a.balance).sum();
    if sum != 0 {
        anomalies.push(Anomaly::new("not_conserved", format!("the balances sum to {sum}, not 0"), Vec::new()));
    }
    (counts, anomalies)
}

/// How far a transfer's log time may be from the real time of its operation (ms): the harness and
/// the lognodes read one machine's wall clock.
pub const LOG_TIME_TOLERANCE_MS: u64 = 1_000;

/// The log's time follows the real time: each acknowledged transfer's log time lies within its
/// operation's real time (from its first attempt to its answer, `epoch_ms` being the history's
/// time 0 by the wall clock), give or take [`LOG_TIME_TOLERANCE_MS`]. A step of a node's wall
/// clock must not reach the log (the clock nemesis jumps them).
pub fn log_time_real(ops: &[Op], accounts: &BTreeMap<String, FinalAccount>, epoch_ms: u64) -> Vec<Anomaly> {
    let stamps: BTreeMap<&str, u64> =
        accounts.values().flat_map(|a| a.history.iter().map(|c| (c.id.as_str(), c.timestamp_ms))).collect();
    let mut out = Vec::new();
    for op in ops {
        let (What::Transfer { id, .. }, Outcome::Ok, Some(end)) = (&op.what, op.outcome, op.end_ms) else { continue };
        let Some(t) = stamps.get(id.as_str()).copied() else { continue };
        let (from, to) = (epoch_ms + op.start_ms, epoch_ms + end);
        if (t + LOG_TIME_TOLERANCE_MS < from || t > to + LOG_TIME_TOLERANCE_MS) && out.len() < crate::check::SLICE_MAX {
            let off = if t < from { -((from - t) as i64) } else { (t - to) as i64 };
            out.push(Anomaly::new(
                "log_time_off",
                format!("transfer {id} has log time {t} ms, {off} ms outside the real time of its operation"),
                vec![op.clone()],
            ));
        }
    }
    out
}

/// The log's time never goes back: across every account's history, in log order, each change's
/// time is at least the one before (a leader's wall clock that jumps back, or a new leader whose
/// clock is behind, must not move it back).
fn log_time(accounts: &BTreeMap<String, FinalAccount>) -> Vec<Anomaly> {
    let by_index: BTreeMap<u64, (&str, u64)> =
        accounts.values().flat_map(|a| a.history.iter().map(|c| (c.index, (c.id.as_str(), c.timestamp_ms)))).collect();
    let mut out = Vec::new();
    let mut last: Option<(u64, &str, u64)> = None;
    for (index, (id, t)) in by_index {
        if let Some((i0, id0, t0)) = last
            && t < t0
            && out.len() < crate::check::SLICE_MAX
        {
            out.push(Anomaly::new(
                "log_time_back",
                format!("transfer {id} at index {index} has log time {t} ms, before {t0} ms of {id0} at index {i0}"),
                Vec::new(),
            ));
        }
        if last.is_none_or(|(_, _, t0)| t >= t0) {
            last = Some((index, id, t));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(id: &str, from: &str, to: &str, amount: u64, outcome: Outcome) -> Op {
        Op {
            client: 1,
            start_ms: 0,
            end_ms: (outcome != Outcome::Unknown).then_some(1),
            outcome,
            attempts: 1,
            what: What::Transfer { id: id.into(), from: from.into(), to: to.into(), amount, code: None },
        }
    }

    fn account(protected: bool, history: &[(&str, i64)]) -> FinalAccount {
        FinalAccount {
            balance: history.last().map_or(0, |h| h.1),
            protected,
            history: (1..)
                .zip(history)
                .map(|(index, (id, balance))| Change {
                    id: (*id).to_owned(),
                    index,
                    balance: *balance,
                    timestamp_ms: 1000 + index,
                })
                .collect(),
        }
    }

    fn kinds(anomalies: &[Anomaly]) -> Vec<&str> {
        anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    /// `bank` funds `a` with 10 (t0), `a` pays `b` 4 (t1, acknowledged) and 3 (t2, unknown, applied).
    fn clean() -> (Vec<Op>, BTreeMap<String, FinalAccount>) {
        let ops = vec![
            transfer("t0", "bank", "a", 10, Outcome::Ok),
            transfer("t1", "a", "b", 4, Outcome::Ok),
            transfer("t2", "a", "b", 3, Outcome::Unknown),
            transfer("t3", "a", "b", 50, Outcome::Failed),
            transfer("t4", "b", "a", 1, Outcome::Unknown),
        ];
        let accounts = BTreeMap::from([
            ("bank".to_owned(), account(false, &[("t0", -10)])),
            ("a".to_owned(), account(true, &[("t0", 10), ("t1", 6), ("t2", 3)])),
            ("b".to_owned(), account(true, &[("t1", 4), ("t2", 7)])),
        ]);
        (ops, accounts)
    }

    #[test]
    fn a_clean_history_passes_and_is_counted() {
        let (ops, accounts) = clean();
        let (counts, anomalies) = check(&ops, &accounts);
        assert!(anomalies.is_empty(), "{anomalies:?}");
        assert_eq!(
            counts,
            Counts { acknowledged: 2, refused: 1, unknown_applied: 1, unknown_not_applied: 1, applied: 3 }
        );
    }

    #[test]
    fn each_kind_of_damage_is_found() {
        // An acknowledged transfer missing from both accounts: lost, and the balances disagree.
        let (ops, mut acc) = clean();
        acc.insert("a".into(), account(true, &[("t0", 10), ("t2", 7)]));
        acc.insert("b".into(), account(true, &[("t2", 3)]));
        let (_, an) = check(&ops, &acc);
        assert!(kinds(&an).contains(&"lost"), "{an:?}");
        assert!(an.iter().any(|a| a.kind == "lost" && a.history.len() == 1), "{an:?}");

        // Applied twice to one account.
        let (ops, mut acc) = clean();
        acc.insert("b".into(), account(true, &[("t1", 4), ("t1", 8), ("t2", 11)]));
        assert!(kinds(&check(&ops, &acc).1).contains(&"duplicated"));

        // Never sent; refused yet applied; money made from nothing.
        let (ops, mut acc) = clean();
        acc.insert("b".into(), account(true, &[("t1", 4), ("t2", 7), ("zz", 9), ("t3", 59)]));
        let an = check(&ops, &acc).1;
        for k in ["phantom", "refused_but_applied", "not_conserved", "torn"] {
            assert!(kinds(&an).contains(&k), "{k}: {an:?}");
        }

        // The log's time went back at index 2 (a leader's clock behind the one before it).
        let (ops, mut acc) = clean();
        if let Some(c) = acc.get_mut("b").and_then(|b| b.history.get_mut(1)) {
            c.timestamp_ms = 900;
        }
        let an = check(&ops, &acc).1;
        assert_eq!(kinds(&an), ["log_time_back"], "{an:?}");

        // The log's time off the real time: t1 was sent from 0 to 1 ms, its entry says 1000 + 2.
        let (ops, acc) = clean();
        assert_eq!(log_time_real(&ops, &acc, 1000), Vec::new());
        assert_eq!(kinds(&log_time_real(&ops, &acc, 5000)), ["log_time_off", "log_time_off"]);
        // At epoch 0 the log time 1001 is 1000 ms after t1's answer: at the edge, allowed.
        assert_eq!(log_time_real(&ops, &acc, 0), Vec::new());
        // A log time ahead of the answer by more than the tolerance (a clock step that reached the log).
        let (ops, mut acc) = clean();
        for a in acc.values_mut() {
            a.history.iter_mut().filter(|c| c.id == "t0").for_each(|c| c.timestamp_ms = 2_002);
        }
        let an = log_time_real(&ops, &acc, 0);
        assert_eq!(kinds(&an), ["log_time_off"], "{an:?}");
        assert!(an[0].detail.contains("t0") && an[0].history.len() == 1, "{an:?}");

        // A protected account below zero at one point of its history.
        let (ops, mut acc) = clean();
        acc.insert("a".into(), account(true, &[("t1", -4), ("t0", 6), ("t2", 3)]));
        assert!(kinds(&check(&ops, &acc).1).contains(&"overdrawn"));
    }
}
