//! The order of deliveries, and their signature. Pure: no I/O.
//!
//! **Order.** The `ledger` topic spreads one account's events over its partitions (a transfer
//! event is keyed by the transfer's id), so per-account order is rebuilt by merging the
//! partitions: by the log index of the entry that made each event, and within one entry (an
//! atomic batch or a transaction touches an account several times) by the account's change
//! counter (`version`), which grows with every change of the account in apply order. An event
//! comes after every earlier event of either of its accounts.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use ledger_events::EventJson;
use serde_json::value::RawValue;
use sha2::Sha256;

/// One event waiting for delivery.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Partition of the `ledger` topic.
    pub partition: u32,
    /// Offset there.
    pub offset: u64,
    /// Log index of the entry that made it.
    pub index: u64,
    /// The accounts it changed, each with its change counter after the event (an account's
    /// creation is 0).
    pub accounts: Vec<(String, u64)>,
    /// `account.created`, `transfer.created`, `transfer.posted`, `transfer.voided` or
    /// `transfer.expired`.
    pub event_type: String,
    /// The event's JSON, as on the topic: the delivery's body.
    pub value: Box<RawValue>,
}

impl Pending {
    /// A record of the `ledger` topic; `Err` names what is wrong with an undecodable one.
    pub fn from_record(partition: u32, offset: u64, value: Box<RawValue>) -> Result<Pending, String> {
        let ev = ledger_events::decode(value.get().as_bytes())
            .map_err(|e| format!("ledger partition {partition} offset {offset}: {e}"))?;
        let (accounts, event_type) = match &ev {
            EventJson::AccountCreated(a) => (vec![(a.id.clone(), 0)], "account.created".to_owned()),
            EventJson::Transfer(t) => (
                vec![
                    (t.debit_account.id.clone(), t.debit_account.version),
                    (t.credit_account.id.clone(), t.credit_account.version),
                ],
                format!("transfer.{}", t.kind.as_str()),
            ),
        };
        Ok(Pending { partition, offset, index: ev.index(), accounts, event_type, value })
    }
}

/// Whether a subscription to `events` gets an event of type `t`.
pub fn subscribed(events: &[String], t: &str) -> bool {
    events.iter().any(|e| e == "*" || e == t)
}

/// Puts events in delivery order: by log index, and within one index every account's events by
/// its change counter (a topological order; ties by partition and offset, so the order is the
/// same on every run).
pub fn order(mut events: Vec<Pending>) -> Vec<Pending> {
    events.sort_by_key(|e| (e.index, e.partition, e.offset));
    let mut out = Vec::with_capacity(events.len());
    let mut rest = events.into_iter().peekable();
    while let Some(first) = rest.next() {
        let mut group = vec![first];
        while let Some(e) = rest.next_if(|e| e.index == group[0].index) {
            group.push(e);
        }
        if group.len() == 1 {
            out.append(&mut group);
        } else {
            out.extend(order_one_entry(group));
        }
    }
    out
}

/// Kahn's algorithm over the events of one entry: an event is ready when, for each of its
/// accounts, no event of the group with a lower counter of that account is left.
fn order_one_entry(group: Vec<Pending>) -> Vec<Pending> {
    // Per account: the counters of the group's events still waiting, with their positions.
    let mut waiting: BTreeMap<&str, BTreeSet<(u64, usize)>> = BTreeMap::new();
    for (i, e) in group.iter().enumerate() {
        for (acc, v) in &e.accounts {
            waiting.entry(acc.as_str()).or_default().insert((*v, i));
        }
    }
    let ready_now = |i: usize, waiting: &BTreeMap<&str, BTreeSet<(u64, usize)>>| {
        group[i]
            .accounts
            .iter()
            .all(|(acc, _)| waiting.get(acc.as_str()).and_then(|s| s.first()).is_some_and(|f| f.1 == i))
    };
    let mut done = vec![false; group.len()];
    let mut order = Vec::with_capacity(group.len());
    while order.len() < group.len() {
        // The first ready event in (partition, offset) order; if a malformed group has a cycle
        // (it cannot, counters grow in apply order), the first left one, so this always ends.
        let next = (0..group.len())
            .find(|&i| !done[i] && ready_now(i, &waiting))
            .or_else(|| (0..group.len()).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        for (acc, v) in &group[i].accounts {
            if let Some(s) = waiting.get_mut(acc.as_str()) {
                s.remove(&(*v, i));
            }
        }
        order.push(i);
    }
    let mut slots: Vec<Option<Pending>> = group.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Lowercase hex of HMAC-SHA256 with `key` over the concatenation of `parts`.
pub fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { unreachable!("HMAC takes a key of any length") };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Ledger-Signature` header of a delivery: `v1=` and the hex HMAC-SHA256, keyed by the
/// subscription's secret, of `<timestamp>.<body>` (the timestamp as sent in `Ledger-Timestamp`).
pub fn signature(secret: &str, timestamp_s: u64, body: &[u8]) -> String {
    let ts = timestamp_s.to_string();
    format!("v1={}", hmac_hex(secret.as_bytes(), &[ts.as_bytes(), b".", body]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(partition: u32, offset: u64, index: u64, accounts: &[(&str, u64)]) -> Pending {
        Pending {
            partition,
            offset,
            index,
            accounts: accounts.iter().map(|(a, v)| ((*a).to_owned(), *v)).collect(),
            event_type: "transfer.created".to_owned(),
            value: RawValue::from_string("{}".to_owned()).expect("json"),
        }
    }

    fn keys(v: &[Pending]) -> Vec<(u32, u64)> {
        v.iter().map(|e| (e.partition, e.offset)).collect()
    }

    /// Events of different entries go by log index, whatever their partitions.
    #[test]
    fn entries_go_by_log_index() {
        let out = order(vec![ev(3, 0, 9, &[("a", 2)]), ev(1, 5, 4, &[("a", 1)]), ev(0, 0, 7, &[("b", 1)])]);
        assert_eq!(keys(&out), vec![(1, 5), (0, 0), (3, 0)]);
    }

    /// Within one entry an account's events go by its counter, also when partition order says
    /// otherwise, and an event waits for both of its accounts: here `b` moves money on only after
    /// it got it, in another partition.
    #[test]
    fn within_an_entry_each_account_goes_by_its_counter() {
        // apply order: t1 a->b (a1, b1), t2 b->c (b2, c1), t3 a->c (a2, c2)
        let t1 = ev(5, 0, 10, &[("a", 1), ("b", 1)]);
        let t2 = ev(0, 0, 10, &[("b", 2), ("c", 1)]);
        let t3 = ev(2, 0, 10, &[("a", 2), ("c", 2)]);
        let out = order(vec![t3, t2, t1]);
        assert_eq!(keys(&out), vec![(5, 0), (0, 0), (2, 0)]);
        // Independent events keep partition order.
        let out = order(vec![ev(4, 0, 1, &[("x", 1), ("y", 1)]), ev(1, 0, 1, &[("z", 1), ("w", 1)])]);
        assert_eq!(keys(&out), vec![(1, 0), (4, 0)]);
    }

    /// An account's creation comes before its transfers in the same entry.
    #[test]
    fn a_creation_comes_first() {
        let out = order(vec![ev(0, 0, 3, &[("a", 1), ("b", 1)]), ev(6, 0, 3, &[("a", 0)])]);
        assert_eq!(keys(&out), vec![(6, 0), (0, 0)]);
    }

    /// Every event of the input comes out once, in a valid order, for many shuffled entries.
    #[test]
    fn order_is_a_permutation_that_respects_every_account() {
        // A chain through 4 accounts, 40 events in one entry, spread over 8 partitions.
        let mut counters = [0u64; 4];
        let mut evs = Vec::new();
        for i in 0..40u64 {
            let (d, c) = ((i % 4) as usize, ((i * 7 + 1) % 4) as usize);
            let c = if c == d { (c + 1) % 4 } else { c };
            counters[d] += 1;
            counters[c] += 1;
            let names = ["a", "b", "c", "d"];
            evs.push(ev((i * 5 % 8) as u32, i, 1, &[(names[d], counters[d]), (names[c], counters[c])]));
        }
        let out = order(evs.clone());
        assert_eq!(out.len(), evs.len());
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        for e in &out {
            for (a, v) in &e.accounts {
                let last = seen.insert(a.clone(), *v).unwrap_or(0);
                assert!(*v > last, "account {a}: counter {v} after {last}");
            }
        }
    }

    /// HMAC-SHA256 matches RFC 4231's test case 2, and the signature covers the timestamp.
    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let s = signature("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(s, format!("v1={}", hmac_hex(b"whsec_test", &[b"1700000000.{}"])));
        assert_ne!(s, signature("whsec_test", 1_700_000_001, b"{}"));
        assert!(subscribed(&["*".to_owned()], "transfer.posted"));
        assert!(subscribed(&["transfer.posted".to_owned()], "transfer.posted"));
        assert!(!subscribed(&["transfer.created".to_owned()], "transfer.posted"));
    }
}
