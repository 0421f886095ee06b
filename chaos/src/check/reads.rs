//! Reads against the log: every answered read names the log index of the state it shows, and the
//! final history says what the balance was at every index. So:
//! - a read's balance must be the balance after the account's last change at or before its index
//!   (`wrong_value`: a read that mixes states, or shows a change that was never applied);
//! - a follower read with `min_index` must show an index at least that high (`went_back`: a
//!   client saw the ledger go back in time).

use std::collections::BTreeMap;

use super::Anomaly;
use super::transfers::FinalAccount;
use crate::history::{Op, Outcome, What};

/// Checks every answered read in `ops` against `accounts`; returns how many were checked.
pub fn check(ops: &[Op], accounts: &BTreeMap<String, FinalAccount>) -> (u64, Vec<Anomaly>) {
    let mut anomalies = Vec::new();
    let mut checked = 0u64;
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let What::Read { account, min_index, balance: Some(balance), index: Some(index) } = &op.what else {
            continue;
        };
        let Some(acc) = accounts.get(account) else { continue };
        checked += 1;
        if let Some(min) = min_index
            && index < min
        {
            anomalies.push(Anomaly::new(
                "went_back",
                format!("a read of {account} with min_index {min} showed index {index}"),
                vec![op.clone()],
            ));
        }
        let at = acc.history.partition_point(|c| c.index <= *index);
        let want = at.checked_sub(1).map_or(0, |i| acc.history[i].balance);
        if *balance != want {
            anomalies.push(Anomaly::new(
                "wrong_value",
                format!("a read of {account} at index {index} showed {balance}, the history says {want}"),
                vec![op.clone()],
            ));
        }
    }
    (checked, anomalies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::transfers::Change;

    fn read(min_index: Option<u64>, balance: i64, index: u64) -> Op {
        Op {
            client: 1,
            start_ms: 0,
            end_ms: Some(1),
            outcome: Outcome::Ok,
            attempts: 1,
            what: What::Read { account: "a".into(), min_index, balance: Some(balance), index: Some(index) },
        }
    }

    #[test]
    fn reads_must_match_the_history_at_their_index_and_not_go_below_min_index() {
        let change = |id: &str, index, balance| Change { id: id.into(), index, balance, timestamp_ms: index };
        let acc = FinalAccount { balance: 7, protected: true, history: vec![change("t1", 5, 10), change("t2", 9, 7)] };
        let accounts = BTreeMap::from([("a".to_owned(), acc)]);
        let good = [read(None, 0, 4), read(Some(3), 10, 5), read(None, 10, 8), read(Some(8), 7, 9), read(None, 7, 100)];
        assert_eq!(check(&good, &accounts), (5, Vec::new()));
        let (_, an) = check(&[read(None, 7, 8)], &accounts);
        assert_eq!(an.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["wrong_value"]);
        let (_, an) = check(&[read(Some(9), 10, 6)], &accounts);
        assert_eq!(an.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["went_back"]);
    }
}
