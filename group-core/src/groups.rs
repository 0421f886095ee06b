//! The replicated consumer-group state and its apply function.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::assign::assign;
use crate::code::GroupCode;
use crate::limits::{self, heartbeat_interval_ms};
use crate::types::{
    ApplyContext, DeletedReply, ExpireReply, GroupCommand, GroupOutcome, GroupSummary, GroupView, MemberReply,
    MemberView, OffsetReset, PartitionView, Rebalance, RebalanceReason, Reply, ResetTo, TopicCatalog, TopicPartition,
};

/// Version of the serialized [`Groups`] layout; bump on any change. lognode writes it into every
/// snapshot's header and refuses a snapshot of another version. 2: empty-group index and the
/// member-number floor (rule 13).
pub const SNAPSHOT_FORMAT: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Member {
    /// Join order within the group (tie-break of the assignor).
    seq: u64,
    topics: BTreeSet<String>,
    session_timeout_ms: u64,
    auto_offset_reset: OffsetReset,
    /// Last replicated activity (join, heartbeat entry, commit), log time.
    last_heartbeat_ms: u64,
    assignments: BTreeSet<TopicPartition>,
}

impl Member {
    fn deadline_ms(&self) -> u64 {
        self.last_heartbeat_ms.saturating_add(self.session_timeout_ms)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Group {
    generation: u64,
    next_member_seq: u64,
    members: BTreeMap<String, Member>,
    /// Partition count of every subscribed topic at the last rebalance.
    topic_partitions: BTreeMap<String, u32>,
    owners: BTreeMap<TopicPartition, String>,
    committed: BTreeMap<TopicPartition, u64>,
    /// `latest` start points, resolved when an uncommitted partition was
    /// assigned (rule 9). Only for owned partitions without a commit.
    anchors: BTreeMap<TopicPartition, u64>,
    /// Since when (log time) the group has had no member; `None` while it
    /// has members. It is deleted a retention after this (rule 13).
    empty_since_ms: Option<u64>,
}

/// Every consumer group: the replicated state. `Groups::default()` is the
/// empty state; restore a snapshot with serde (`SNAPSHOT_FORMAT`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    groups: BTreeMap<String, Group>,
    /// `(deadline_ms, group, member_id)` of every member (rule 5).
    deadlines: BTreeSet<(u64, String, String)>,
    /// `(empty_since_ms, group)` of every group without members (rule 13).
    empties: BTreeSet<(u64, String)>,
    /// Above every member number a deleted group gave out: a group created
    /// later numbers its members from here, so a member id of a deleted
    /// group never names a member of a re-created one (rule 13).
    member_floor: u64,
    last_index: u64,
    clock_ms: u64,
}

/// `[A-Za-z0-9._-]{1,GROUP_ID_BYTES_MAX}`.
pub fn is_valid_group_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= limits::GROUP_ID_BYTES_MAX
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_topic_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= limits::TOPIC_NAME_BYTES_MAX
}

fn ok(reply: Reply, rebalances: Vec<Rebalance>) -> GroupOutcome {
    GroupOutcome { code: GroupCode::Ok, reply, rebalances }
}

impl Group {
    fn member_reply(&self, member_id: &str, m: &Member) -> MemberReply {
        MemberReply {
            member_id: member_id.to_string(),
            generation: self.generation,
            assignments: m.assignments.iter().cloned().collect(),
            heartbeat_interval_ms: heartbeat_interval_ms(m.session_timeout_ms),
            session_timeout_ms: m.session_timeout_ms,
        }
    }

    /// Starts a new generation and reassigns (rules 2–4, 9).
    fn rebalance(&mut self, name: &str, reason: RebalanceReason, catalog: &dyn TopicCatalog) -> Rebalance {
        self.generation += 1;
        let mut order: Vec<(&String, &Member)> = self.members.iter().collect();
        order.sort_by_key(|(_, m)| m.seq);
        let ids: Vec<String> = order.iter().map(|(id, _)| (*id).clone()).collect();
        let subs: Vec<&BTreeSet<String>> = order.iter().map(|(_, m)| &m.topics).collect();
        let counts: BTreeMap<String, u32> =
            subs.iter().flat_map(|s| s.iter()).map(|t| (t.clone(), catalog.partitions(t).unwrap_or(0))).collect();
        let index_of: BTreeMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let owners = &self.owners;
        let previous = |tp: &TopicPartition| owners.get(tp).and_then(|o| index_of.get(o.as_str()).copied());
        let sets = assign(&subs, &counts, &previous);

        let mut new_owners = BTreeMap::new();
        for (id, set) in ids.iter().zip(&sets) {
            for tp in set {
                new_owners.insert(tp.clone(), id.clone());
            }
        }
        let moved = new_owners.iter().filter(|(tp, o)| self.owners.get(*tp) != Some(*o)).count()
            + self.owners.keys().filter(|tp| !new_owners.contains_key(*tp)).count();
        for (id, set) in ids.iter().zip(sets) {
            if let Some(m) = self.members.get_mut(id) {
                m.assignments = set;
            }
        }
        // Anchors live while the partition stays owned without a commit.
        self.anchors.retain(|tp, _| new_owners.contains_key(tp));
        for (tp, owner) in &new_owners {
            let latest = self.members.get(owner).is_some_and(|m| m.auto_offset_reset == OffsetReset::Latest);
            if latest && !self.committed.contains_key(tp) && !self.anchors.contains_key(tp) {
                self.anchors.insert(tp.clone(), catalog.end_offset(&tp.topic, tp.partition));
            }
        }
        self.owners = new_owners;
        self.topic_partitions = counts;
        Rebalance { group: name.to_string(), generation: self.generation, members: self.members.len(), moved, reason }
    }

    /// Where a fetch without a volatile position starts (rule 9).
    fn start_without_position(&self, tp: &TopicPartition, policy: OffsetReset, catalog: &dyn TopicCatalog) -> u64 {
        let start = catalog.start_offset(&tp.topic, tp.partition);
        let end = catalog.end_offset(&tp.topic, tp.partition);
        let base = match (self.committed.get(tp), self.anchors.get(tp)) {
            (Some(&c), _) => c,
            (None, Some(&a)) => a,
            (None, None) => match policy {
                OffsetReset::Earliest => start,
                OffsetReset::Latest => end,
            },
        };
        base.max(start).min(end.max(start))
    }
}

impl Groups {
    /// Applies one log entry. Never panics on any input, except when
    /// `ctx.index` does not strictly increase (`assert!`, on in release:
    /// applying anyway would fork the replicas).
    pub fn apply(&mut self, cmd: &GroupCommand, ctx: ApplyContext, catalog: &dyn TopicCatalog) -> GroupOutcome {
        assert!(
            ctx.index > self.last_index,
            "group-core: apply index {} does not follow {}",
            ctx.index,
            self.last_index
        );
        self.last_index = ctx.index;
        self.clock_ms = self.clock_ms.max(ctx.timestamp_ms);
        match cmd {
            GroupCommand::Join { group, topics, session_timeout_ms, auto_offset_reset } => self.join(
                group,
                topics,
                session_timeout_ms.unwrap_or(limits::SESSION_TIMEOUT_MS_DEFAULT),
                auto_offset_reset.unwrap_or_default(),
                catalog,
            ),
            GroupCommand::Heartbeat { group, member_id } => self.heartbeat(group, member_id),
            GroupCommand::Leave { group, member_id } => self.leave(group, member_id, catalog),
            GroupCommand::ExpireMembers { group, member_ids } => self.expire_members(group, member_ids, catalog),
            GroupCommand::ExpireDue { now_ms } => {
                self.clock_ms = self.clock_ms.max(*now_ms);
                self.expire_due(catalog)
            }
            GroupCommand::Commit { group, member_id, generation, offsets } => {
                self.commit(group, member_id, *generation, offsets, catalog)
            }
            GroupCommand::Rebalance { group } => self.metadata_rebalance(group, catalog),
            GroupCommand::ResetOffsets { group, topic, partition, to } => {
                self.reset(group, topic, *partition, to, catalog)
            }
            GroupCommand::Delete { group } => self.delete(group),
            GroupCommand::ExpireEmpty { now_ms, retention_ms } => {
                self.clock_ms = self.clock_ms.max(*now_ms);
                self.expire_empty(*retention_ms)
            }
        }
    }

    /// Rule 14: a topic was created or deleted by the entry being applied (`catalog` already
    /// shows the change). If it no longer exists, every group forgets its committed offsets and
    /// `latest` anchors, so a topic re-created under the same name starts clean. Every group
    /// whose members subscribe to it and whose last rebalance saw another partition count
    /// rebalances (reason `metadata`): a deleted topic's partitions leave the assignments, a
    /// re-created one's join them. O(groups); part of that entry's apply, so deterministic.
    pub fn topic_changed(&mut self, topic: &str, catalog: &dyn TopicCatalog) -> Vec<Rebalance> {
        let now = catalog.partitions(topic);
        let mut rebalances = Vec::new();
        for (name, g) in &mut self.groups {
            if now.is_none() {
                g.committed.retain(|tp, _| tp.topic != topic);
                g.anchors.retain(|tp, _| tp.topic != topic);
            }
            let subscribed = g.members.values().any(|m| m.topics.contains(topic));
            let seen = g.topic_partitions.get(topic).copied().unwrap_or(0);
            if subscribed && seen != now.unwrap_or(0) {
                rebalances.push(g.rebalance(name, RebalanceReason::Metadata, catalog));
            }
        }
        rebalances
    }

    fn set_heartbeat(&mut self, group: &str, member_id: &str) {
        let now = self.clock_ms;
        if let Some(m) = self.groups.get_mut(group).and_then(|g| g.members.get_mut(member_id)) {
            self.deadlines.remove(&(m.deadline_ms(), group.to_string(), member_id.to_string()));
            m.last_heartbeat_ms = m.last_heartbeat_ms.max(now);
            self.deadlines.insert((m.deadline_ms(), group.to_string(), member_id.to_string()));
        }
    }

    /// Removes a member (no rebalance); true if it was there. The last one
    /// to go starts the group's retention clock (rule 13).
    fn remove_member(&mut self, group: &str, member_id: &str) -> bool {
        let now = self.clock_ms;
        let Some(g) = self.groups.get_mut(group) else { return false };
        match g.members.remove(member_id) {
            Some(m) => {
                self.deadlines.remove(&(m.deadline_ms(), group.to_string(), member_id.to_string()));
                if g.members.is_empty() {
                    g.empty_since_ms = Some(now);
                    self.empties.insert((now, group.to_string()));
                }
                true
            }
            None => false,
        }
    }

    /// Removes a group without members and its committed offsets (rule 13).
    fn remove_group(&mut self, group: &str) {
        if let Some(g) = self.groups.remove(group) {
            if let Some(since) = g.empty_since_ms {
                self.empties.remove(&(since, group.to_string()));
            }
            self.member_floor = self.member_floor.max(g.next_member_seq);
        }
    }

    fn delete(&mut self, group: &str) -> GroupOutcome {
        let Some(g) = self.groups.get(group) else { return GroupOutcome::err(GroupCode::UnknownGroup) };
        if !g.members.is_empty() {
            return GroupOutcome::err(GroupCode::GroupNotEmpty);
        }
        self.remove_group(group);
        ok(Reply::None, Vec::new())
    }

    fn expire_empty(&mut self, retention_ms: u64) -> GroupOutcome {
        if !(limits::GROUP_RETENTION_MS_MIN..=limits::GROUP_RETENTION_MS_MAX).contains(&retention_ms) {
            return GroupOutcome::err(GroupCode::InvalidRequest);
        }
        let now = self.clock_ms;
        let due = |since: u64| since.saturating_add(retention_ms) <= now;
        let expired: Vec<String> = self
            .empties
            .iter()
            .take_while(|(since, _)| due(*since))
            .take(limits::EXPIRE_PER_ENTRY_MAX)
            .map(|(_, g)| g.clone())
            .collect();
        for g in &expired {
            self.remove_group(g);
        }
        let more_due = self.empties.first().is_some_and(|(since, _)| due(*since));
        ok(Reply::Deleted(DeletedReply { deleted: expired, more_due }), Vec::new())
    }

    fn rebalance(&mut self, group: &str, reason: RebalanceReason, catalog: &dyn TopicCatalog) -> Option<Rebalance> {
        self.groups.get_mut(group).map(|g| g.rebalance(group, reason, catalog))
    }

    fn join(
        &mut self,
        group: &str,
        topics: &[String],
        session_timeout_ms: u64,
        policy: OffsetReset,
        catalog: &dyn TopicCatalog,
    ) -> GroupOutcome {
        if !is_valid_group_id(group) {
            return GroupOutcome::err(GroupCode::InvalidGroupId);
        }
        if topics.is_empty() || !topics.iter().all(|t| valid_topic_name(t)) {
            return GroupOutcome::err(GroupCode::InvalidRequest);
        }
        let topics: BTreeSet<String> = topics.iter().cloned().collect();
        if topics.len() > limits::TOPICS_PER_SUBSCRIPTION_MAX {
            return GroupOutcome::err(GroupCode::LimitExceeded);
        }
        if !(limits::SESSION_TIMEOUT_MS_MIN..=limits::SESSION_TIMEOUT_MS_MAX).contains(&session_timeout_ms) {
            return GroupOutcome::err(GroupCode::InvalidSessionTimeout);
        }
        if topics.iter().any(|t| catalog.partitions(t).is_none()) {
            return GroupOutcome::err(GroupCode::UnknownTopic);
        }
        let existing = self.groups.get(group);
        if existing.is_none() && self.groups.len() >= limits::GROUPS_MAX {
            return GroupOutcome::err(GroupCode::LimitExceeded);
        }
        if existing.is_some_and(|g| g.members.len() >= limits::MEMBERS_PER_GROUP_MAX) {
            return GroupOutcome::err(GroupCode::LimitExceeded);
        }
        let union: BTreeSet<&String> = existing
            .into_iter()
            .flat_map(|g| g.members.values().flat_map(|m| m.topics.iter()))
            .chain(&topics)
            .collect();
        let partitions: u64 = union.iter().map(|t| u64::from(catalog.partitions(t).unwrap_or(0))).sum();
        if partitions > limits::PARTITIONS_PER_GROUP_MAX as u64 {
            return GroupOutcome::err(GroupCode::LimitExceeded);
        }

        let now = self.clock_ms;
        let floor = self.member_floor;
        let g = self
            .groups
            .entry(group.to_string())
            .or_insert_with(|| Group { next_member_seq: floor, ..Group::default() });
        if let Some(since) = g.empty_since_ms.take() {
            self.empties.remove(&(since, group.to_string()));
        }
        g.next_member_seq += 1;
        let seq = g.next_member_seq;
        let member_id = format!("{group}-{seq}");
        let m = Member {
            seq,
            topics,
            session_timeout_ms,
            auto_offset_reset: policy,
            last_heartbeat_ms: now,
            assignments: BTreeSet::new(),
        };
        self.deadlines.insert((m.deadline_ms(), group.to_string(), member_id.clone()));
        g.members.insert(member_id.clone(), m);
        let rb = g.rebalance(group, RebalanceReason::Join, catalog);
        // The member was inserted above; `unknown_member` is unreachable.
        let Some(m) = g.members.get(&member_id) else { return GroupOutcome::err(GroupCode::UnknownMember) };
        ok(Reply::Member(g.member_reply(&member_id, m)), vec![rb])
    }

    fn heartbeat(&mut self, group: &str, member_id: &str) -> GroupOutcome {
        if let Err(c) = self.member(group, member_id) {
            return GroupOutcome::err(c);
        }
        self.set_heartbeat(group, member_id);
        match self.member(group, member_id) {
            Ok(r) => ok(Reply::Member(r), Vec::new()),
            Err(c) => GroupOutcome::err(c),
        }
    }

    fn leave(&mut self, group: &str, member_id: &str, catalog: &dyn TopicCatalog) -> GroupOutcome {
        if let Err(c) = self.member(group, member_id) {
            return GroupOutcome::err(c);
        }
        self.remove_member(group, member_id);
        let rb = self.rebalance(group, RebalanceReason::Leave, catalog);
        ok(Reply::None, rb.into_iter().collect())
    }

    fn expire_members(&mut self, group: &str, member_ids: &[String], catalog: &dyn TopicCatalog) -> GroupOutcome {
        let Some(g) = self.groups.get(group) else { return GroupOutcome::err(GroupCode::UnknownGroup) };
        let now = self.clock_ms;
        let mut expire = BTreeSet::new();
        let mut skipped = Vec::new();
        for id in member_ids {
            match g.members.get(id) {
                Some(m) if m.deadline_ms() <= now => {
                    expire.insert(id.clone());
                }
                _ => {
                    if !expire.contains(id) {
                        skipped.push(id.clone());
                    }
                }
            }
        }
        let mut reply = ExpireReply { skipped, ..ExpireReply::default() };
        for id in &expire {
            self.remove_member(group, id);
            reply.expired.push((group.to_string(), id.clone()));
        }
        let rebalances = if expire.is_empty() {
            Vec::new()
        } else {
            self.rebalance(group, RebalanceReason::Expire, catalog).into_iter().collect()
        };
        ok(Reply::Expired(reply), rebalances)
    }

    fn metadata_rebalance(&mut self, group: &str, catalog: &dyn TopicCatalog) -> GroupOutcome {
        let Some(g) = self.groups.get_mut(group) else { return GroupOutcome::err(GroupCode::UnknownGroup) };
        let changed = g.topic_partitions.iter().any(|(t, &n)| catalog.partitions(t).unwrap_or(0) != n);
        let rebalances =
            if changed { vec![g.rebalance(group, RebalanceReason::Metadata, catalog)] } else { Vec::new() };
        ok(Reply::None, rebalances)
    }

    fn expire_due(&mut self, catalog: &dyn TopicCatalog) -> GroupOutcome {
        let now = self.clock_ms;
        let due: Vec<(u64, String, String)> = self
            .deadlines
            .iter()
            .take_while(|(d, _, _)| *d <= now)
            .take(limits::EXPIRE_PER_ENTRY_MAX)
            .cloned()
            .collect();
        let mut reply = ExpireReply::default();
        let mut touched = BTreeSet::new();
        for (_, group, id) in due {
            self.remove_member(&group, &id);
            touched.insert(group.clone());
            reply.expired.push((group, id));
        }
        reply.more_due = self.deadlines.first().is_some_and(|(d, _, _)| *d <= now);
        let rebalances = touched.iter().filter_map(|g| self.rebalance(g, RebalanceReason::Expire, catalog)).collect();
        ok(Reply::Expired(reply), rebalances)
    }

    fn commit(
        &mut self,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: &[(String, u32, u64)],
        catalog: &dyn TopicCatalog,
    ) -> GroupOutcome {
        if offsets.len() > limits::OFFSETS_PER_COMMIT_MAX {
            return GroupOutcome::err(GroupCode::LimitExceeded);
        }
        let Some(g) = self.groups.get(group) else { return GroupOutcome::err(GroupCode::UnknownGroup) };
        if !g.members.contains_key(member_id) {
            return GroupOutcome::err(GroupCode::UnknownMember);
        }
        if generation != g.generation {
            return GroupOutcome::err(GroupCode::StaleGeneration);
        }
        let mut seen = BTreeSet::new();
        for (topic, partition, offset) in offsets {
            if !valid_topic_name(topic) {
                return GroupOutcome::err(GroupCode::InvalidRequest);
            }
            let tp = TopicPartition::new(topic.clone(), *partition);
            if !seen.insert(tp.clone()) {
                return GroupOutcome::err(GroupCode::InvalidRequest);
            }
            match catalog.partitions(topic) {
                None => return GroupOutcome::err(GroupCode::UnknownTopic),
                Some(n) if *partition >= n => return GroupOutcome::err(GroupCode::UnknownPartition),
                Some(_) => {}
            }
            if g.owners.get(&tp).map(String::as_str) != Some(member_id) {
                return GroupOutcome::err(GroupCode::NotOwner);
            }
            if *offset > catalog.end_offset(topic, *partition) {
                return GroupOutcome::err(GroupCode::OffsetOutOfRange);
            }
            if g.committed.get(&tp).is_some_and(|c| *c > *offset) {
                return GroupOutcome::err(GroupCode::OffsetRegression);
            }
        }
        if let Some(g) = self.groups.get_mut(group) {
            for (topic, partition, offset) in offsets {
                let tp = TopicPartition::new(topic.clone(), *partition);
                g.anchors.remove(&tp);
                g.committed.insert(tp, *offset);
            }
        }
        self.set_heartbeat(group, member_id);
        ok(Reply::Committed(offsets.len()), Vec::new())
    }

    fn reset(
        &mut self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: &ResetTo,
        catalog: &dyn TopicCatalog,
    ) -> GroupOutcome {
        let Some(g) = self.groups.get(group) else { return GroupOutcome::err(GroupCode::UnknownGroup) };
        if !g.members.is_empty() {
            return GroupOutcome::err(GroupCode::GroupNotEmpty);
        }
        if !valid_topic_name(topic) {
            return GroupOutcome::err(GroupCode::InvalidRequest);
        }
        let Some(n) = catalog.partitions(topic) else { return GroupOutcome::err(GroupCode::UnknownTopic) };
        let targets: Vec<u32> = match partition {
            Some(p) if p >= n => return GroupOutcome::err(GroupCode::UnknownPartition),
            Some(p) => vec![p],
            None => (0..n).collect(),
        };
        let resolved: Option<BTreeMap<u32, u64>> = match to {
            ResetTo::Timestamp { offsets, .. } => {
                let map: BTreeMap<u32, u64> = offsets.iter().copied().collect();
                if map.len() != offsets.len()
                    || map.len() != targets.len()
                    || targets.iter().any(|p| !map.contains_key(p))
                {
                    return GroupOutcome::err(GroupCode::InvalidRequest);
                }
                Some(map)
            }
            _ => None,
        };
        let mut out = Vec::with_capacity(targets.len());
        for p in targets {
            let (start, end) = (catalog.start_offset(topic, p), catalog.end_offset(topic, p));
            let offset = match (to, &resolved) {
                (ResetTo::Earliest, _) => start,
                (ResetTo::Latest, _) => end,
                (ResetTo::Offset(o), _) => *o,
                (ResetTo::Timestamp { .. }, Some(m)) => m.get(&p).copied().unwrap_or(end),
                (ResetTo::Timestamp { .. }, None) => end,
            };
            if offset > end {
                return GroupOutcome::err(GroupCode::OffsetOutOfRange);
            }
            out.push((TopicPartition::new(topic, p), offset));
        }
        if let Some(g) = self.groups.get_mut(group) {
            for (tp, o) in &out {
                g.anchors.remove(tp);
                g.committed.insert(tp.clone(), *o);
            }
        }
        ok(Reply::Reset(out), Vec::new())
    }

    // ---- queries -------------------------------------------------------

    /// Index of the last applied entry (0 before the first).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Log clock: max of every applied timestamp (and `ExpireDue::now_ms`).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Every group, sorted by id.
    pub fn list_groups(&self) -> Vec<GroupSummary> {
        self.groups
            .iter()
            .map(|(name, g)| GroupSummary { group: name.clone(), generation: g.generation, members: g.members.len() })
            .collect()
    }

    /// A member's generation and assignments (the heartbeat response).
    pub fn member(&self, group: &str, member_id: &str) -> Result<MemberReply, GroupCode> {
        let g = self.groups.get(group).ok_or(GroupCode::UnknownGroup)?;
        let m = g.members.get(member_id).ok_or(GroupCode::UnknownMember)?;
        Ok(g.member_reply(member_id, m))
    }

    /// The committed offset of a partition, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        self.groups.get(group)?.committed.get(&TopicPartition::new(topic, partition)).copied()
    }

    /// The current owner of a partition, if any.
    pub fn owner(&self, group: &str, topic: &str, partition: u32) -> Option<&str> {
        self.groups.get(group)?.owners.get(&TopicPartition::new(topic, partition)).map(String::as_str)
    }

    /// Describe a group (rule 10). Lag = `end − max(effective committed,
    /// start)`, where the effective committed offset without a commit is
    /// where the owner would start (anchor / `auto_offset_reset`), and for
    /// an unowned partition without commit the end (lag 0).
    pub fn describe(&self, group: &str, catalog: &dyn TopicCatalog) -> Option<GroupView> {
        let g = self.groups.get(group)?;
        let mut members: Vec<(&String, &Member)> = g.members.iter().collect();
        members.sort_by_key(|(_, m)| m.seq);
        let members = members
            .into_iter()
            .map(|(id, m)| MemberView {
                member_id: id.clone(),
                topics: m.topics.iter().cloned().collect(),
                assignments: m.assignments.iter().cloned().collect(),
                last_heartbeat_ms: m.last_heartbeat_ms,
                session_timeout_ms: m.session_timeout_ms,
                auto_offset_reset: m.auto_offset_reset,
            })
            .collect();
        let tps: BTreeSet<&TopicPartition> = g.owners.keys().chain(g.committed.keys()).collect();
        let partitions = tps
            .into_iter()
            .map(|tp| {
                let owner = g.owners.get(tp);
                let end = catalog.end_offset(&tp.topic, tp.partition);
                let policy = owner.and_then(|o| g.members.get(o)).map_or(OffsetReset::Latest, |m| m.auto_offset_reset);
                let from = g.start_without_position(tp, policy, catalog);
                PartitionView {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    owner: owner.cloned(),
                    committed_offset: g.committed.get(tp).copied(),
                    end_offset: end,
                    lag: end.saturating_sub(from),
                }
            })
            .collect();
        Some(GroupView { group: group.to_string(), generation: g.generation, members, partitions })
    }

    /// Where a fetch of `member_id` on a partition starts (rule 9):
    /// its volatile `position` if the serving node has one, else the
    /// committed offset, else the `latest` anchor, else the start offset
    /// (`earliest`) / end offset (`latest`), always within `start..=end`.
    /// A position past the end is `offset_out_of_range`.
    pub fn fetch_start(
        &self,
        group: &str,
        member_id: &str,
        topic: &str,
        partition: u32,
        position: Option<u64>,
        catalog: &dyn TopicCatalog,
    ) -> Result<u64, GroupCode> {
        let g = self.groups.get(group).ok_or(GroupCode::UnknownGroup)?;
        let m = g.members.get(member_id).ok_or(GroupCode::UnknownMember)?;
        match catalog.partitions(topic) {
            None => return Err(GroupCode::UnknownTopic),
            Some(n) if partition >= n => return Err(GroupCode::UnknownPartition),
            Some(_) => {}
        }
        let tp = TopicPartition::new(topic, partition);
        if !m.assignments.contains(&tp) {
            return Err(GroupCode::NotOwner);
        }
        match position {
            Some(p) => {
                let (start, end) = (catalog.start_offset(topic, partition), catalog.end_offset(topic, partition));
                if p > end { Err(GroupCode::OffsetOutOfRange) } else { Ok(p.max(start)) }
            }
            None => Ok(g.start_without_position(&tp, m.auto_offset_reset, catalog)),
        }
    }

    /// Earliest replicated deadline (`last_heartbeat_ms + session`), for the
    /// leader's replicated-heartbeat path: propose `ExpireDue` once its own
    /// clock passes it.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _, _)| *d)
    }

    /// When the longest-empty group passes `retention_ms` (rule 13), for the leader: propose
    /// `ExpireEmpty` once its own clock passes it.
    pub fn next_empty_expiry_ms(&self, retention_ms: u64) -> Option<u64> {
        self.empties.first().map(|(since, _)| since.saturating_add(retention_ms))
    }

    /// Leader's in-memory heartbeat path (rule 5): the `(group, member)`
    /// pairs whose last sign of life is at least a session timeout before
    /// `now_ms`. The last sign of life is `max(replicated last_heartbeat_ms,
    /// last_seen(group, member))`; a new leader grants a full session from
    /// its takeover by returning `Some(max(takeover_ms, seen))`. Sorted by
    /// group then member id; propose one `ExpireMembers` per group.
    pub fn due_for_expiry(&self, now_ms: u64, last_seen: impl Fn(&str, &str) -> Option<u64>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, g) in &self.groups {
            for (id, m) in &g.members {
                let seen = m.last_heartbeat_ms.max(last_seen(name, id).unwrap_or(0));
                if seen.saturating_add(m.session_timeout_ms) <= now_ms {
                    out.push((name.clone(), id.clone()));
                }
            }
        }
        out
    }

    /// Checks every structural invariant (rules 3–5, 9); used by the tests
    /// after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut deadlines = BTreeSet::new();
        let mut empties = BTreeSet::new();
        for (name, g) in &self.groups {
            match g.empty_since_ms {
                Some(since) if g.members.is_empty() => {
                    empties.insert((since, name.clone()));
                }
                None if !g.members.is_empty() => {}
                _ => return Err(format!("{name}: empty_since does not match {} members", g.members.len())),
            }
            let mut seqs = BTreeSet::new();
            for (id, m) in &g.members {
                deadlines.insert((m.deadline_ms(), name.clone(), id.clone()));
                if !seqs.insert(m.seq) || m.seq > g.next_member_seq || *id != format!("{name}-{}", m.seq) {
                    return Err(format!("{name}: bad member id/seq {id}"));
                }
                for tp in &m.assignments {
                    if g.owners.get(tp) != Some(id) {
                        return Err(format!("{name}: {id} lists {tp} owned by {:?}", g.owners.get(tp)));
                    }
                }
            }
            let union: BTreeSet<&String> = g.members.values().flat_map(|m| m.topics.iter()).collect();
            if union.len() != g.topic_partitions.len() || !g.topic_partitions.keys().all(|t| union.contains(t)) {
                return Err(format!("{name}: topic_partitions do not match the subscriptions"));
            }
            let expected: usize = g.topic_partitions.values().map(|&n| n as usize).sum();
            if g.owners.len() != expected {
                return Err(format!("{name}: {} owned partitions, expected {expected}", g.owners.len()));
            }
            for (tp, owner) in &g.owners {
                let Some(m) = g.members.get(owner) else { return Err(format!("{name}: {tp} owned by gone {owner}")) };
                if !m.topics.contains(&tp.topic) || !m.assignments.contains(tp) {
                    return Err(format!("{name}: {tp} owned by {owner} that does not subscribe/list it"));
                }
                if g.topic_partitions.get(&tp.topic).is_none_or(|&n| tp.partition >= n) {
                    return Err(format!("{name}: {tp} is not a partition of the subscription"));
                }
            }
            // balance among members with the same subscription
            let mut by_sub: BTreeMap<&BTreeSet<String>, (usize, usize)> = BTreeMap::new();
            for m in g.members.values() {
                let e = by_sub.entry(&m.topics).or_insert((usize::MAX, 0));
                e.0 = e.0.min(m.assignments.len());
                e.1 = e.1.max(m.assignments.len());
            }
            if let Some((sub, (lo, hi))) = by_sub.iter().find(|(_, (lo, hi))| hi - lo > 1) {
                return Err(format!("{name}: unbalanced {lo}..{hi} among members subscribing {sub:?}"));
            }
            for tp in g.anchors.keys() {
                if !g.owners.contains_key(tp) || g.committed.contains_key(tp) {
                    return Err(format!("{name}: stray anchor {tp}"));
                }
            }
            if g.members.is_empty() && !g.owners.is_empty() {
                return Err(format!("{name}: owners without members"));
            }
        }
        if deadlines != self.deadlines {
            return Err("deadline index does not match the members".into());
        }
        if empties != self.empties {
            return Err("empty-group index does not match the groups".into());
        }
        Ok(())
    }
}
