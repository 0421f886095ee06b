//! The topics-and-groups checker: what producers were told, what consumers got and committed,
//! against every node's copy of the topic read at the end.
//!
//! It asserts:
//! - every acknowledged record is at its offset with its value (`lost_record`, `wrong_record`),
//!   on every node, byte for byte (`replicas_differ`), and offsets have no holes (`offset_hole`);
//! - no record is there twice or unsent (`duplicated_record`, `phantom_record`), and none refused
//!   for certain is there (`refused_but_applied`);
//! - every record in the topic was delivered to the group at least once (`undelivered`);
//! - a group's committed offset never moves back: of two acknowledged commits one after the other
//!   in real time, the later one is not lower (`offset_went_back`);
//! - a commit from a stale generation is refused (`stale_commit_accepted`).

use std::collections::{BTreeMap, BTreeSet};

use super::Anomaly;
use crate::groups::TOPIC;
use crate::history::{Op, Outcome, What};

/// One partition as each node holds it at the end: `(offset, value bytes)` in offset order.
pub type Copies = BTreeMap<u64, Vec<(u64, Vec<u8>)>>;

/// A record value as the producers write it: `{"r":"<id>"}`.
pub fn value_of(id: &str) -> serde_json::Value {
    serde_json::json!({ "r": id })
}

/// The id in a record value written by [`value_of`].
fn id_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("r")?.as_str().map(str::to_owned)
}

/// Every node's copy of each partition of `topic` is the same, byte for byte.
pub fn replicas(topic: &str, copies: &BTreeMap<u32, Copies>) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for (partition, by_node) in copies {
        let mut nodes = by_node.iter();
        let Some((first_node, reference)) = nodes.next() else { continue };
        for (node, copy) in nodes {
            if copy != reference {
                let at =
                    copy.iter().zip(reference).position(|(a, b)| a != b).unwrap_or(copy.len().min(reference.len()));
                anomalies.push(Anomaly::new(
                    "replicas_differ",
                    format!(
                        "{topic}/{partition}: node {node} holds {} records, node {first_node} {}; first difference at \
                         position {at}",
                        copy.len(),
                        reference.len()
                    ),
                    Vec::new(),
                ));
            }
        }
    }
    anomalies
}

/// Checks the topic's partitions (`copies`: partition -> node id -> its copy), the operations
/// and the deliveries (partition, offset).
pub fn check(ops: &[Op], copies: &BTreeMap<u32, Copies>, delivered: &BTreeSet<(u32, u64)>) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let produced: BTreeMap<&str, &Op> = ops
        .iter()
        .filter_map(|o| match &o.what {
            What::Produce { id, .. } => Some((id.as_str(), o)),
            _ => None,
        })
        .collect();
    anomalies.extend(replicas(TOPIC, copies));
    let mut found: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
    for (partition, by_node) in copies {
        let Some(reference) = by_node.values().next() else { continue };
        for w in reference.windows(2) {
            if w[1].0 != w[0].0 + 1 {
                anomalies.push(Anomaly::new(
                    "offset_hole",
                    format!("partition {partition}: offset {} follows {}", w[1].0, w[0].0),
                    Vec::new(),
                ));
            }
        }
        for (offset, bytes) in reference {
            match id_of(bytes) {
                Some(id) => found.entry(id).or_default().push((*partition, *offset)),
                None => anomalies.push(Anomaly::new(
                    "phantom_record",
                    format!("partition {partition} offset {offset} holds a record nobody produced"),
                    Vec::new(),
                )),
            }
            if !delivered.contains(&(*partition, *offset)) {
                anomalies.push(Anomaly::new(
                    "undelivered",
                    format!("partition {partition} offset {offset} was never delivered to the group"),
                    Vec::new(),
                ));
            }
        }
    }
    for (id, at) in &found {
        let op = produced.get(id.as_str());
        let slice = op.map(|o| vec![(*o).clone()]).unwrap_or_default();
        if at.len() > 1 {
            anomalies.push(Anomaly::new("duplicated_record", format!("record {id} is at {at:?}"), slice.clone()));
        }
        match op.map(|o| o.outcome) {
            None => {
                anomalies.push(Anomaly::new("phantom_record", format!("record {id} at {at:?} was never sent"), slice))
            }
            Some(Outcome::Failed) => anomalies.push(Anomaly::new(
                "refused_but_applied",
                format!("record {id} was refused for certain, yet is at {at:?}"),
                slice,
            )),
            Some(_) => {}
        }
    }
    for (id, op) in &produced {
        let What::Produce { partition, offset, .. } = &op.what else { continue };
        if op.outcome != Outcome::Ok {
            continue;
        }
        let want = (partition.unwrap_or(u32::MAX), offset.unwrap_or(u64::MAX));
        match found.get(*id) {
            None => anomalies.push(Anomaly::new(
                "lost_record",
                format!("record {id} was acknowledged at {want:?} and is in no partition"),
                vec![(*op).clone()],
            )),
            Some(at) if !at.contains(&want) => anomalies.push(Anomaly::new(
                "wrong_record",
                format!("record {id} was acknowledged at {want:?} but is at {at:?}"),
                vec![(*op).clone()],
            )),
            Some(_) => {}
        }
    }
    anomalies.extend(check_commits(ops));
    anomalies
}

/// The commit rules: acknowledged commits never move a partition's offset back (in real-time
/// order), and stale-generation commits are refused.
fn check_commits(ops: &[Op]) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut per: BTreeMap<u32, Vec<(&Op, u64)>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let What::Commit { offsets, stale, generation, .. } = &op.what else { continue };
        if *stale {
            anomalies.push(Anomaly::new(
                "stale_commit_accepted",
                format!("a commit with generation {generation}, after the group moved past it, was acknowledged"),
                vec![op.clone()],
            ));
            continue;
        }
        for (p, o) in offsets {
            per.entry(*p).or_default().push((op, *o));
        }
    }
    for (p, mut commits) in per {
        commits.sort_by_key(|(op, _)| op.start_ms);
        // The highest offset among commits acknowledged before each commit started.
        let mut by_end: Vec<(u64, u64, &Op)> =
            commits.iter().map(|(op, o)| (op.end_ms.unwrap_or(u64::MAX), *o, *op)).collect();
        by_end.sort_by_key(|(end, _, _)| *end);
        let mut i = 0;
        let mut high: Option<(u64, &Op)> = None;
        for (op, o) in &commits {
            while i < by_end.len() && by_end[i].0 < op.start_ms {
                if high.is_none_or(|(h, _)| by_end[i].1 > h) {
                    high = Some((by_end[i].1, by_end[i].2));
                }
                i += 1;
            }
            if let Some((h, before)) = high
                && *o < h
            {
                anomalies.push(Anomaly::new(
                    "offset_went_back",
                    format!("partition {p}: a commit of {o} came after one of {h} had been acknowledged"),
                    vec![before.clone(), (*op).clone()],
                ));
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(id: &str, at: Option<(u32, u64)>, outcome: Outcome) -> Op {
        Op {
            client: 1,
            start_ms: 0,
            end_ms: Some(1),
            outcome,
            attempts: 1,
            what: What::Produce { id: id.into(), partition: at.map(|a| a.0), offset: at.map(|a| a.1) },
        }
    }

    fn commit(start: u64, end: u64, offset: u64, stale: bool) -> Op {
        Op {
            client: 2,
            start_ms: start,
            end_ms: Some(end),
            outcome: Outcome::Ok,
            attempts: 1,
            what: What::Commit { member: "m".into(), generation: 1, offsets: vec![(0, offset)], stale },
        }
    }

    fn rec(offset: u64, id: &str) -> (u64, Vec<u8>) {
        (offset, serde_json::to_vec(&value_of(id)).expect("json"))
    }

    fn kinds(a: &[Anomaly]) -> Vec<&str> {
        a.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn a_clean_topic_passes_and_each_kind_of_damage_is_found() {
        let ops = vec![
            produce("a", Some((0, 0)), Outcome::Ok),
            produce("b", Some((0, 1)), Outcome::Ok),
            produce("c", None, Outcome::Unknown),
            produce("d", None, Outcome::Failed),
            commit(0, 5, 1, false),
            commit(6, 7, 2, false),
        ];
        let copy = vec![rec(0, "a"), rec(1, "b"), rec(2, "c")];
        let copies = BTreeMap::from([(0, BTreeMap::from([(1, copy.clone()), (2, copy.clone())]))]);
        let delivered: BTreeSet<(u32, u64)> = [(0, 0), (0, 1), (0, 2)].into();
        assert_eq!(check(&ops, &copies, &delivered), Vec::new());

        let bad = vec![rec(0, "a"), rec(2, "c"), rec(3, "d"), rec(4, "c"), rec(5, "zz")];
        let copies = BTreeMap::from([(0, BTreeMap::from([(1, bad), (2, copy)]))]);
        let an = check(&ops, &copies, &delivered);
        for k in
            ["replicas_differ", "offset_hole", "lost_record", "duplicated_record", "refused_but_applied", "undelivered"]
        {
            assert!(kinds(&an).contains(&k), "{k}: {an:?}");
        }
    }

    #[test]
    fn commits_going_back_or_from_a_stale_generation_are_found() {
        assert!(check_commits(&[commit(0, 5, 10, false), commit(3, 8, 4, false)]).is_empty(), "concurrent");
        let an = check_commits(&[commit(0, 5, 10, false), commit(6, 8, 4, false)]);
        assert_eq!(kinds(&an), ["offset_went_back"]);
        assert_eq!(an[0].history.len(), 2);
        assert_eq!(kinds(&check_commits(&[commit(0, 5, 10, true)])), ["stale_commit_accepted"]);
    }
}
