//! Property tests over random command sequences against a random catalog
//! (rules 2–8, 11).
//!
//! Random joins (sometimes with a missing topic), leaves, heartbeats,
//! leader expiries (both paths), commits (own/foreign partitions, stale and
//! future generations, regressions, offsets past the end), admin resets,
//! and catalog changes (records produced, retention, partitions added,
//! followed by `Rebalance` entries), with timestamps that
//! mostly advance and sometimes go backwards. After every step:
//! - all structural invariants hold (`check_invariants`), and, checked
//!   independently from the public views: every partition of the union of
//!   the members' topics is owned by exactly one current member that
//!   subscribes to its topic, and nothing else is owned (rule 3);
//! - members with the same subscription differ by at most one partition
//!   (rule 4), and in a group where everyone subscribes to the same topics
//!   a join only takes partitions from the others and a leave/expiry only
//!   gives partitions to the survivors (stickiness, rule 4);
//! - the generation grows by exactly one when and only when the member set
//!   changed (rule 2);
//! - committed offsets never decrease except through a successful reset,
//!   and a successful commit came from the owner in the current generation
//!   (rules 6–8);
//! - the leader's `due_for_expiry` agrees with the replicated deadlines
//!   (rule 5);
//! - a rejected command changes nothing (rule 11).
//!
//! And: applying the same sequence twice from scratch gives identical
//! outcomes and state; a snapshot taken at any step, restored with bincode
//! and continued, ends in the same state (rule 11).

use std::collections::{BTreeMap, BTreeSet};

use group_core::{
    ApplyContext, GroupCode, GroupCommand, GroupOutcome, Groups, MemCatalog, OffsetReset, RebalanceReason, Reply,
    ResetTo, TopicCatalog, TopicPartition,
};
use proptest::prelude::*;

const TOPICS: [&str; 3] = ["a", "b", "c"];
const GROUPS: [&str; 2] = ["g", "h"];

/// Abstract operation; member/partition/offset picks are resolved against
/// the current state (deterministically), so they mostly hit.
#[derive(Clone, Debug)]
enum Op {
    Join {
        group: usize,
        topics: Vec<usize>,
        ghost_topic: bool,
        session: u64,
        earliest: bool,
    },
    Heartbeat {
        group: usize,
        member: usize,
    },
    Leave {
        group: usize,
        member: usize,
    },
    Expire {
        group: usize,
        members: Vec<usize>,
    },
    ExpireDue {
        ahead: u64,
    },
    Commit {
        group: usize,
        member: usize,
        gen_delta: i8,
        offsets: Vec<(bool, usize, usize, i64)>,
    },
    Reset {
        group: usize,
        topic: usize,
        partition: Option<usize>,
        to: u8,
        offset: u64,
    },
    Produce {
        topic: usize,
        partition: usize,
        n: u64,
    },
    Retain {
        topic: usize,
        partition: usize,
        n: u64,
    },
    /// A topic gets more partitions; the node then proposes a `Rebalance`
    /// for every group (as it would on a metadata change).
    Grow {
        topic: usize,
        n: u32,
    },
    /// A `Rebalance` entry without a metadata change (no-op).
    Rebalance {
        group: usize,
    },
    /// Admin deletion (rule 13).
    Delete {
        group: usize,
    },
    /// The leader's retention entry (rule 13).
    ExpireEmpty {
        ahead: u64,
        retention: u64,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..GROUPS.len(), prop::collection::vec(0..TOPICS.len(), 1..3), prop::bool::weighted(0.05),
              prop_oneof![Just(1000u64), Just(3000), Just(10_000)], any::<bool>())
            .prop_map(|(group, topics, ghost_topic, session, earliest)| Op::Join { group, topics, ghost_topic, session, earliest }),
        2 => (0..GROUPS.len(), 0..8usize).prop_map(|(group, member)| Op::Heartbeat { group, member }),
        2 => (0..GROUPS.len(), 0..8usize).prop_map(|(group, member)| Op::Leave { group, member }),
        1 => (0..GROUPS.len(), prop::collection::vec(0..8usize, 0..3)).prop_map(|(group, members)| Op::Expire { group, members }),
        1 => (0u64..6000).prop_map(|ahead| Op::ExpireDue { ahead }),
        6 => (0..GROUPS.len(), 0..8usize, prop_oneof![8 => Just(0i8), 1 => Just(-1), 1 => Just(1)],
              prop::collection::vec((prop::bool::weighted(0.85), 0..TOPICS.len(), 0..8usize, -5i64..30), 0..4))
            .prop_map(|(group, member, gen_delta, offsets)| Op::Commit { group, member, gen_delta, offsets }),
        1 => (0..GROUPS.len(), 0..TOPICS.len(), prop::option::of(0..8usize), 0u8..4, 0u64..150)
            .prop_map(|(group, topic, partition, to, offset)| Op::Reset { group, topic, partition, to, offset }),
        2 => (0..TOPICS.len(), 0..8usize, 0u64..20).prop_map(|(topic, partition, n)| Op::Produce { topic, partition, n }),
        1 => (0..TOPICS.len(), 0..8usize, 0u64..10).prop_map(|(topic, partition, n)| Op::Retain { topic, partition, n }),
        1 => (0..TOPICS.len(), 1u32..3).prop_map(|(topic, n)| Op::Grow { topic, n }),
        1 => (0..GROUPS.len()).prop_map(|group| Op::Rebalance { group }),
        1 => (0..GROUPS.len()).prop_map(|group| Op::Delete { group }),
        1 => (0u64..6000, prop_oneof![Just(1000u64), Just(3000)]).prop_map(|(ahead, retention)| Op::ExpireEmpty { ahead, retention }),
    ]
}

/// Topics: partition count 0..5 (fixed for the run), start ≤ end.
fn catalog_strategy() -> impl Strategy<Value = Vec<(u32, u64, u64)>> {
    prop::collection::vec(
        (prop_oneof![1 => Just(0u32), 6 => 1u32..5], 0u64..20, 0u64..50).prop_map(|(p, s, n)| (p, s, s + n)),
        TOPICS.len(),
    )
}

struct World {
    groups: Groups,
    catalog: MemCatalog,
    index: u64,
    time: u64,
    /// Every member id ever returned per group (picks index into it).
    issued: BTreeMap<String, Vec<String>>,
    /// Groups whose `Rebalance` after a partition change is not applied yet.
    stale: BTreeSet<String>,
    /// The topic of the last `Grow`.
    grown: String,
}

impl World {
    fn new(topics: &[(u32, u64, u64)]) -> World {
        let mut catalog = MemCatalog::default();
        for (t, &(p, s, e)) in TOPICS.iter().zip(topics) {
            catalog.set_topic(t, p, s, e);
        }
        World {
            groups: Groups::default(),
            catalog,
            index: 0,
            time: 1_000,
            issued: BTreeMap::new(),
            stale: BTreeSet::new(),
            grown: String::new(),
        }
    }

    /// Mostly a current member (k < 6), else any id ever issued (gone ones included).
    fn pick_member(&self, group: &str, k: usize) -> String {
        if k < 6 {
            let v: Vec<String> = self
                .groups
                .describe(group, &self.catalog)
                .map(|v| v.members.into_iter().map(|m| m.member_id).collect())
                .unwrap_or_default();
            if !v.is_empty() {
                return v[k % v.len()].clone();
            }
        }
        match self.issued.get(group) {
            Some(v) if !v.is_empty() => v[k % v.len()].clone(),
            _ => format!("{group}-{}", k + 1),
        }
    }

    /// Turns an op into a log entry (or applies a catalog change: None).
    fn commands(&mut self, op: &Op) -> Vec<GroupCommand> {
        match op {
            Op::Grow { topic, n } => {
                self.catalog.add_partitions(TOPICS[*topic], *n, 0, 3);
                self.stale = GROUPS.iter().map(|g| g.to_string()).collect();
                self.grown = TOPICS[*topic].to_string();
                GROUPS.iter().map(|g| GroupCommand::Rebalance { group: g.to_string() }).collect()
            }
            Op::Rebalance { group } => vec![GroupCommand::Rebalance { group: GROUPS[*group].to_string() }],
            _ => self.command(op).into_iter().collect(),
        }
    }

    fn command(&mut self, op: &Op) -> Option<GroupCommand> {
        let g = |i: usize| GROUPS[i].to_string();
        Some(match op {
            Op::Join { group, topics, ghost_topic, session, earliest } => {
                let mut topics: Vec<String> = topics.iter().map(|&t| TOPICS[t].to_string()).collect();
                if *ghost_topic {
                    topics.push("ghost".into());
                }
                GroupCommand::Join {
                    group: g(*group),
                    topics,
                    session_timeout_ms: Some(*session),
                    auto_offset_reset: Some(if *earliest { OffsetReset::Earliest } else { OffsetReset::Latest }),
                }
            }
            Op::Heartbeat { group, member } => {
                GroupCommand::Heartbeat { group: g(*group), member_id: self.pick_member(GROUPS[*group], *member) }
            }
            Op::Leave { group, member } => {
                GroupCommand::Leave { group: g(*group), member_id: self.pick_member(GROUPS[*group], *member) }
            }
            Op::Expire { group, members } => GroupCommand::ExpireMembers {
                group: g(*group),
                member_ids: members.iter().map(|&m| self.pick_member(GROUPS[*group], m)).collect(),
            },
            Op::ExpireDue { ahead } => GroupCommand::ExpireDue { now_ms: self.time + ahead },
            Op::Delete { group } => GroupCommand::Delete { group: g(*group) },
            Op::ExpireEmpty { ahead, retention } => {
                GroupCommand::ExpireEmpty { now_ms: self.time + ahead, retention_ms: *retention }
            }
            Op::Commit { group, member, gen_delta, offsets } => {
                let name = GROUPS[*group];
                let member_id = self.pick_member(name, *member);
                let (generation, owned) = match self.groups.member(name, &member_id) {
                    Ok(r) => (r.generation, r.assignments),
                    Err(_) => {
                        (self.groups.list_groups().iter().find(|s| s.group == name).map_or(0, |s| s.generation), vec![])
                    }
                };
                let offsets = offsets
                    .iter()
                    .map(|&(own, t, p, delta)| {
                        let tp = if own && !owned.is_empty() {
                            owned[p % owned.len()].clone()
                        } else {
                            TopicPartition::new(TOPICS[t], u32::try_from(p).unwrap_or(0))
                        };
                        let base = self
                            .groups
                            .committed(name, &tp.topic, tp.partition)
                            .unwrap_or_else(|| self.catalog.start_offset(&tp.topic, tp.partition));
                        let offset = base.saturating_add_signed(delta);
                        (tp.topic, tp.partition, offset)
                    })
                    .collect();
                GroupCommand::Commit {
                    group: g(*group),
                    member_id,
                    generation: generation.saturating_add_signed(i64::from(*gen_delta)),
                    offsets,
                }
            }
            Op::Reset { group, topic, partition, to, offset } => {
                let t = TOPICS[*topic];
                let n = self.catalog.partitions(t).unwrap_or(0);
                let partition = partition.map(|p| u32::try_from(p).unwrap_or(0) % (n + 1));
                let to = match to {
                    0 => ResetTo::Earliest,
                    1 => ResetTo::Latest,
                    2 => ResetTo::Offset(*offset),
                    _ => {
                        let targets: Vec<u32> = match partition {
                            Some(p) => vec![p],
                            None => (0..n).collect(),
                        };
                        ResetTo::Timestamp {
                            timestamp_ms: *offset,
                            offsets: targets
                                .iter()
                                .map(|&p| (p, self.catalog.start_offset(t, p) + offset % 7))
                                .collect(),
                        }
                    }
                };
                GroupCommand::ResetOffsets { group: g(*group), topic: t.into(), partition, to }
            }
            Op::Produce { topic, partition, n } | Op::Retain { topic, partition, n } => {
                let t = TOPICS[*topic];
                let count = self.catalog.partitions(t).unwrap_or(0);
                if count > 0 {
                    let p = u32::try_from(*partition).unwrap_or(0) % count;
                    let (s, e) = (self.catalog.start_offset(t, p), self.catalog.end_offset(t, p));
                    let (s, e) = if matches!(op, Op::Produce { .. }) { (s, e + n) } else { ((s + n).min(e), e) };
                    self.catalog.set_offsets(t, p, s, e);
                }
                return None;
            }
            Op::Grow { .. } | Op::Rebalance { .. } => return None,
        })
    }

    fn apply(&mut self, cmd: &GroupCommand, dt: i64) -> GroupOutcome {
        self.index += 1;
        self.time = self.time.saturating_add_signed(dt);
        let out = self.groups.apply(cmd, ApplyContext { index: self.index, timestamp_ms: self.time }, &self.catalog);
        if let GroupCommand::Rebalance { group } = cmd {
            self.stale.remove(group);
        }
        if let (GroupCommand::Join { group, .. }, Reply::Member(m)) = (cmd, &out.reply) {
            self.issued.entry(group.clone()).or_default().push(m.member_id.clone());
        }
        out
    }
}

/// Public view of one group: member → (topics, assignments), committed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Snap {
    generation: u64,
    members: BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)>,
    committed: BTreeMap<TopicPartition, u64>,
}

fn snap(w: &World) -> BTreeMap<String, Snap> {
    w.groups
        .list_groups()
        .iter()
        .filter_map(|s| w.groups.describe(&s.group, &w.catalog))
        .map(|v| {
            let members = v
                .members
                .iter()
                .map(|m| {
                    (m.member_id.clone(), (m.topics.iter().cloned().collect(), m.assignments.iter().cloned().collect()))
                })
                .collect();
            let committed = v
                .partitions
                .iter()
                .filter_map(|p| p.committed_offset.map(|c| (TopicPartition::new(p.topic.clone(), p.partition), c)))
                .collect();
            (v.group.clone(), Snap { generation: v.generation, members, committed })
        })
        .collect()
}

fn check_step(
    w: &World,
    cmd: &GroupCommand,
    out: &GroupOutcome,
    before: &BTreeMap<String, Snap>,
    grown: Option<&str>,
) -> Result<(), String> {
    w.groups.check_invariants()?;
    let after = snap(w);
    let empty = Snap::default();
    for (name, s) in &after {
        let b = before.get(name).unwrap_or(&empty);
        // rule 3: exact coverage by subscribers
        let mut expected = BTreeSet::new();
        for (topics, _) in s.members.values() {
            for t in topics {
                for p in 0..w.catalog.partitions(t).unwrap_or(0) {
                    expected.insert(TopicPartition::new(t.clone(), p));
                }
            }
        }
        let mut owned = BTreeSet::new();
        for (id, (topics, assigned)) in &s.members {
            for tp in assigned {
                if !topics.contains(&tp.topic) {
                    return Err(format!("{name}: {id} owns {tp} without subscribing"));
                }
                if !owned.insert(tp.clone()) {
                    return Err(format!("{name}: {tp} owned twice"));
                }
            }
        }
        if owned != expected && !w.stale.contains(name) {
            return Err(format!("{name}: owned {owned:?} != expected {expected:?}"));
        }
        // rule 4: balance per subscription
        let mut by_sub: BTreeMap<&BTreeSet<String>, Vec<usize>> = BTreeMap::new();
        for (topics, assigned) in s.members.values() {
            by_sub.entry(topics).or_default().push(assigned.len());
        }
        for (sub, counts) in &by_sub {
            let (lo, hi) = (counts.iter().min().unwrap_or(&0), counts.iter().max().unwrap_or(&0));
            if hi - lo > 1 {
                return Err(format!("{name}: unbalanced {counts:?} for {sub:?}"));
            }
        }
        // rule 4: stickiness in homogeneous groups
        let homogeneous = by_sub.len() <= 1
            && b.members.values().all(|(t, _)| s.members.values().next().is_none_or(|(t2, _)| t == t2));
        let b_ids: BTreeSet<&String> = b.members.keys().collect();
        let s_ids: BTreeSet<&String> = s.members.keys().collect();
        if homogeneous && b_ids != s_ids {
            for (id, (_, assigned)) in &s.members {
                let Some((_, old)) = b.members.get(id) else { continue };
                let joined = s_ids.is_superset(&b_ids);
                let left = b_ids.is_superset(&s_ids);
                if joined && !assigned.is_subset(old) {
                    return Err(format!("{name}: join gave {id} new partitions {assigned:?} ⊄ {old:?}"));
                }
                if left && !assigned.is_superset(old) {
                    return Err(format!("{name}: leave took partitions from survivor {id}: {old:?} ⊄ {assigned:?}"));
                }
            }
        }
        // rule 2: generation +1 iff the member set changed, or a Rebalance
        // entry found changed partition counts
        let metadata = out.rebalances.iter().any(|r| r.group == *name && r.reason == RebalanceReason::Metadata);
        let metadata_expected = matches!(cmd, GroupCommand::Rebalance { group } if group == name)
            && grown.is_some_and(|t| b.members.values().any(|(topics, _)| topics.contains(t)));
        if metadata != metadata_expected {
            return Err(format!("{name}: metadata rebalance {metadata}, expected {metadata_expected}"));
        }
        let changed = b_ids != s_ids || metadata;
        let want = if changed { b.generation + 1 } else { b.generation };
        if s.generation != want {
            return Err(format!(
                "{name}: generation {} -> {} (members changed: {changed})",
                b.generation, s.generation
            ));
        }
        // rules 7-8: monotonic committed offsets unless a successful reset of that topic
        for (tp, &c) in &b.committed {
            let reset = matches!(cmd, GroupCommand::ResetOffsets { group, topic, .. } if group == name && *topic == tp.topic)
                && out.code.is_ok();
            match s.committed.get(tp) {
                None => return Err(format!("{name}: committed {tp} vanished")),
                Some(&n) if n < c && !reset => return Err(format!("{name}: committed {tp} went back {c} -> {n}")),
                _ => {}
            }
        }
        // rule 6: a successful commit came from the owner, in the current generation
        if let (GroupCommand::Commit { group, member_id, generation, offsets }, true) = (cmd, out.code.is_ok())
            && group == name
        {
            if *generation != b.generation {
                return Err(format!("{name}: commit with generation {generation} accepted in {}", b.generation));
            }
            let own = &b.members.get(member_id).ok_or("commit from a non-member accepted")?.1;
            for (t, p, o) in offsets {
                let tp = TopicPartition::new(t.clone(), *p);
                if !own.contains(&tp) {
                    return Err(format!("{name}: commit of {tp} by non-owner {member_id} accepted"));
                }
                if s.committed.get(&tp) != Some(o) {
                    return Err(format!("{name}: commit of {tp}={o} not stored"));
                }
            }
        }
    }
    // rule 5: both expiry paths agree: without in-memory heartbeats the
    // leader's helper finds exactly the members the replicated deadline
    // index says are due, and nothing is due right after an ExpireDue that
    // did not report more.
    let clock = w.groups.clock_ms();
    let due = w.groups.due_for_expiry(clock, |_, _| None);
    if w.groups.next_expiry_ms().is_some_and(|d| d <= clock) == due.is_empty() {
        return Err(format!("due_for_expiry {due:?} disagrees with next_expiry_ms {:?}", w.groups.next_expiry_ms()));
    }
    if let (GroupCommand::ExpireDue { .. }, Reply::Expired(e)) = (cmd, &out.reply)
        && !e.more_due
        && !due.is_empty()
    {
        return Err(format!("still due after ExpireDue: {due:?}"));
    }
    // rule 13: a member id is never given out twice, not even after its group was deleted;
    // a deleted group is gone; nothing past its retention survives an ExpireEmpty that did
    // not report more.
    if let (GroupCommand::Join { group, .. }, Reply::Member(m)) = (cmd, &out.reply) {
        let times = w.issued.get(group).map_or(0, |ids| ids.iter().filter(|id| **id == m.member_id).count());
        if times != 1 {
            return Err(format!("member id {} given out {times} times", m.member_id));
        }
    }
    if let (GroupCommand::Delete { group }, true) = (cmd, out.code.is_ok())
        && after.contains_key(group)
    {
        return Err(format!("{group} still listed after its deletion"));
    }
    if let (GroupCommand::ExpireEmpty { retention_ms, .. }, Reply::Deleted(d)) = (cmd, &out.reply) {
        if !d.more_due && w.groups.next_empty_expiry_ms(*retention_ms).is_some_and(|at| at <= clock) {
            return Err(format!("an empty group is past its retention after ExpireEmpty: {d:?}"));
        }
        if let Some(g) =
            d.deleted.iter().find(|g| after.contains_key(*g) || before.get(*g).is_none_or(|b| !b.members.is_empty()))
        {
            return Err(format!("ExpireEmpty deleted {g}, which was not an empty group or is still there"));
        }
    }
    // rule 11: a rejected command changes nothing visible
    if !out.code.is_ok() && &after != before {
        return Err(format!("rejected ({}) command changed the state", out.code));
    }
    if !out.code.is_ok() && !out.rebalances.is_empty() {
        return Err("rejected command reported a rebalance".into());
    }
    Ok(())
}

/// Serialized state, catalog, index and time at the snapshot point.
type Snapshot = (Vec<u8>, MemCatalog, u64, u64);

/// Runs the ops; returns outcomes, the final state, and the state at `snapshot_at`.
fn run(
    topics: &[(u32, u64, u64)],
    ops: &[(Op, i64)],
    check: bool,
    snapshot_at: Option<usize>,
) -> Result<(Vec<GroupOutcome>, World, Option<Snapshot>), TestCaseError> {
    let mut w = World::new(topics);
    let mut outs = Vec::new();
    let mut snapshot = None;
    for (i, (op, dt)) in ops.iter().enumerate() {
        if snapshot_at == Some(i) {
            snapshot = Some((bincode::serialize(&w.groups).expect("serialize"), w.catalog.clone(), w.index, w.time));
        }
        for cmd in w.commands(op) {
            let before = snap(&w);
            // a Rebalance right after a Grow may change the generation
            let grown = match &cmd {
                GroupCommand::Rebalance { group } if w.stale.contains(group) => Some(w.grown.clone()),
                _ => None,
            };
            let out = w.apply(&cmd, *dt);
            if check && let Err(e) = check_step(&w, &cmd, &out, &before, grown.as_deref()) {
                return Err(TestCaseError::fail(format!("step {i} {cmd:?} -> {:?}: {e}", out.code)));
            }
            outs.push(out);
        }
    }
    Ok((outs, w, snapshot))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Rules 2–8 after every step, and rule 11 (determinism, snapshots).
    #[test]
    fn rules_hold_and_apply_is_deterministic(
        topics in catalog_strategy(),
        ops in prop::collection::vec((op_strategy(), prop_oneof![9 => 0i64..700, 1 => -500i64..0]), 1..80),
        snap_frac in 0.0f64..1.0,
    ) {
        let at = ((ops.len() as f64) * snap_frac) as usize;
        let (outs1, w1, snapshot) = run(&topics, &ops, true, Some(at))?;
        let (outs2, w2, _) = run(&topics, &ops, false, None)?;
        prop_assert_eq!(&outs1, &outs2);
        prop_assert!(w1.groups == w2.groups, "same log, different state");

        // restore the snapshot taken at step `at` and continue
        if let Some((bytes, catalog, index, time)) = snapshot {
            let restored: Groups = bincode::deserialize(&bytes).expect("deserialize");
            let mut w3 = World::new(&topics);
            // replay the prefix's world bookkeeping (issued ids) without touching the state
            let (_, prefix, _) = run(&topics, &ops[..at], false, None)?;
            prop_assert!(prefix.groups == restored, "snapshot differs from the state it was taken from");
            w3.groups = restored;
            w3.catalog = catalog;
            w3.index = index;
            w3.time = time;
            w3.issued = prefix.issued;
            for (op, dt) in &ops[at..] {
                for cmd in w3.commands(op) {
                    w3.apply(&cmd, *dt);
                }
            }
            prop_assert!(w3.groups == w1.groups, "restore-then-continue differs from apply-from-scratch");
        }
        // sanity: the codes seen are all known
        for o in &outs1 {
            prop_assert!(GroupCode::ALL.contains(&o.code));
        }
    }
}
