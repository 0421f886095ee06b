//! Conversions between group-core types and the consumer-group messages of `ledger.v1`.
//!
//! The one place where consumer-group values cross the gRPC wire: the lognode's client service
//! answers with `*_to_proto`, the gateway's backend reads the answers with `*_from_proto`.
//! Encoding (documented in `proto/ledger.proto`): `auto_offset_reset` is group-core's
//! `OffsetReset::as_str` (`earliest`, `latest`; empty = the default, `latest`); an absent owner
//! is the empty string; group-core's `(topic, partition, offset)` triples and
//! `(TopicPartition, offset)` pairs are `TopicPartitionOffset`s.
//!
//! As in the parent module, `*_to_proto` never fails and `*_from_proto` returns a
//! [`ConvertError`] for what a peer could get wrong.

use group_core::{
    GroupSummary, GroupView, MemberReply, MemberView, OffsetReset, PartitionView, ResetTarget, TopicPartition,
};

use super::{ConvertError, Result};
use crate::ledger as pb;
use crate::ledger::reset_offsets_request::To;

/// `auto_offset_reset` on the wire: `None` (the server's default) is the empty string.
pub fn offset_reset_to_proto(r: Option<OffsetReset>) -> String {
    r.map(|r| r.as_str().to_owned()).unwrap_or_default()
}

/// Parses `auto_offset_reset`: empty is `None` (the server's default, `latest`).
pub fn offset_reset_from_proto(s: &str) -> Result<Option<OffsetReset>> {
    match s {
        "" => Ok(None),
        "earliest" => Ok(Some(OffsetReset::Earliest)),
        "latest" => Ok(Some(OffsetReset::Latest)),
        _ => Err(ConvertError::UnknownOffsetReset(s.to_owned())),
    }
}

/// A partition of a topic.
pub fn topic_partition_to_proto(tp: TopicPartition) -> pb::TopicPartition {
    pb::TopicPartition { topic: tp.topic, partition: tp.partition }
}

/// A partition of a topic.
pub fn topic_partition_from_proto(tp: pb::TopicPartition) -> TopicPartition {
    TopicPartition { topic: tp.topic, partition: tp.partition }
}

/// `(topic, partition, offset)` triples (commits, fetch positions).
pub fn offsets_to_proto(offsets: &[(String, u32, u64)]) -> Vec<pb::TopicPartitionOffset> {
    offsets
        .iter()
        .map(|(topic, partition, offset)| pb::TopicPartitionOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        })
        .collect()
}

/// `(topic, partition, offset)` triples (commits, fetch positions).
pub fn offsets_from_proto(offsets: Vec<pb::TopicPartitionOffset>) -> Vec<(String, u32, u64)> {
    offsets.into_iter().map(|o| (o.topic, o.partition, o.offset)).collect()
}

/// `(partition, offset)` pairs: the committed offsets a reset set (group-core's `Reply::Reset`).
pub fn partition_offsets_to_proto(offsets: Vec<(TopicPartition, u64)>) -> Vec<pb::TopicPartitionOffset> {
    offsets
        .into_iter()
        .map(|(tp, offset)| pb::TopicPartitionOffset { topic: tp.topic, partition: tp.partition, offset })
        .collect()
}

/// `(partition, offset)` pairs: the committed offsets a reset set.
pub fn partition_offsets_from_proto(offsets: Vec<pb::TopicPartitionOffset>) -> Vec<(TopicPartition, u64)> {
    offsets.into_iter().map(|o| (TopicPartition { topic: o.topic, partition: o.partition }, o.offset)).collect()
}

/// A join request.
pub fn join_to_proto(
    group: &str,
    topics: Vec<String>,
    session_timeout_ms: Option<u64>,
    auto_offset_reset: Option<OffsetReset>,
) -> pb::JoinGroupRequest {
    pb::JoinGroupRequest {
        group: group.to_owned(),
        topics,
        session_timeout_ms,
        auto_offset_reset: offset_reset_to_proto(auto_offset_reset),
    }
}

/// A member's view of its group (join and heartbeat answer) with the log index of the answer.
pub fn member_to_proto(m: MemberReply, log_index: u64) -> pb::GroupMemberResponse {
    pb::GroupMemberResponse {
        member_id: m.member_id,
        generation: m.generation,
        assignments: m.assignments.into_iter().map(topic_partition_to_proto).collect(),
        heartbeat_interval_ms: m.heartbeat_interval_ms,
        session_timeout_ms: m.session_timeout_ms,
        log_index,
    }
}

/// A member's view of its group and the log index of the answer.
pub fn member_from_proto(r: pb::GroupMemberResponse) -> (MemberReply, u64) {
    let m = MemberReply {
        member_id: r.member_id,
        generation: r.generation,
        assignments: r.assignments.into_iter().map(topic_partition_from_proto).collect(),
        heartbeat_interval_ms: r.heartbeat_interval_ms,
        session_timeout_ms: r.session_timeout_ms,
    };
    (m, r.log_index)
}

/// One line of the group list (a member count past `u32::MAX` saturates).
pub fn summary_to_proto(g: GroupSummary) -> pb::GroupSummary {
    pb::GroupSummary { group: g.group, generation: g.generation, members: u32::try_from(g.members).unwrap_or(u32::MAX) }
}

/// One line of the group list.
pub fn summary_from_proto(g: pb::GroupSummary) -> GroupSummary {
    GroupSummary { group: g.group, generation: g.generation, members: g.members as usize }
}

fn member_view_to_proto(m: MemberView) -> pb::GroupMember {
    pb::GroupMember {
        member_id: m.member_id,
        topics: m.topics,
        assignments: m.assignments.into_iter().map(topic_partition_to_proto).collect(),
        last_heartbeat_ms: m.last_heartbeat_ms,
        session_timeout_ms: m.session_timeout_ms,
        auto_offset_reset: m.auto_offset_reset.as_str().to_owned(),
    }
}

fn member_view_from_proto(m: pb::GroupMember) -> Result<MemberView> {
    Ok(MemberView {
        auto_offset_reset: offset_reset_from_proto(&m.auto_offset_reset)?.unwrap_or_default(),
        member_id: m.member_id,
        topics: m.topics,
        assignments: m.assignments.into_iter().map(topic_partition_from_proto).collect(),
        last_heartbeat_ms: m.last_heartbeat_ms,
        session_timeout_ms: m.session_timeout_ms,
    })
}

fn partition_view_to_proto(p: PartitionView) -> pb::GroupPartition {
    pb::GroupPartition {
        topic: p.topic,
        partition: p.partition,
        owner: p.owner.unwrap_or_default(),
        committed_offset: p.committed_offset,
        end_offset: p.end_offset,
        lag: p.lag,
    }
}

fn partition_view_from_proto(p: pb::GroupPartition) -> PartitionView {
    PartitionView {
        topic: p.topic,
        partition: p.partition,
        owner: (!p.owner.is_empty()).then_some(p.owner),
        committed_offset: p.committed_offset,
        end_offset: p.end_offset,
        lag: p.lag,
    }
}

/// A described group with the index the serving node had applied.
pub fn group_view_to_proto(v: GroupView, applied_index: u64) -> pb::DescribeGroupResponse {
    pb::DescribeGroupResponse {
        group: v.group,
        generation: v.generation,
        members: v.members.into_iter().map(member_view_to_proto).collect(),
        partitions: v.partitions.into_iter().map(partition_view_to_proto).collect(),
        applied_index,
    }
}

/// A described group and the index the serving node had applied.
pub fn group_view_from_proto(r: pb::DescribeGroupResponse) -> Result<(GroupView, u64)> {
    let v = GroupView {
        group: r.group,
        generation: r.generation,
        members: r.members.into_iter().map(member_view_from_proto).collect::<Result<_>>()?,
        partitions: r.partitions.into_iter().map(partition_view_from_proto).collect(),
    };
    Ok((v, r.applied_index))
}

/// The target of an admin offset reset.
pub fn reset_target_to_proto(t: ResetTarget) -> To {
    match t {
        ResetTarget::Earliest => To::Earliest(true),
        ResetTarget::Latest => To::Latest(true),
        ResetTarget::Offset(o) => To::Offset(o),
        ResetTarget::Timestamp(ms) => To::TimestampMs(ms),
    }
}

/// The target of an admin offset reset; absent is [`ConvertError::Missing`].
pub fn reset_target_from_proto(t: Option<To>) -> Result<ResetTarget> {
    Ok(match t {
        Some(To::Earliest(_)) => ResetTarget::Earliest,
        Some(To::Latest(_)) => ResetTarget::Latest,
        Some(To::Offset(o)) => ResetTarget::Offset(o),
        Some(To::TimestampMs(ms)) => ResetTarget::Timestamp(ms),
        None => return Err(ConvertError::Missing("to")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: u32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    #[test]
    fn offset_reset_round_trips_and_rejects_unknown_names() {
        for r in [None, Some(OffsetReset::Earliest), Some(OffsetReset::Latest)] {
            assert_eq!(offset_reset_from_proto(&offset_reset_to_proto(r)), Ok(r));
        }
        assert_eq!(offset_reset_to_proto(None), "");
        assert_eq!(offset_reset_from_proto("newest"), Err(ConvertError::UnknownOffsetReset("newest".into())));
    }

    #[test]
    fn member_reply_round_trips_with_its_index() {
        let m = MemberReply {
            member_id: "billing-3".into(),
            generation: 7,
            assignments: vec![tp("orders", 0), tp("orders", 2)],
            heartbeat_interval_ms: 3_333,
            session_timeout_ms: 10_000,
        };
        assert_eq!(member_from_proto(member_to_proto(m.clone(), 42)), (m, 42));
    }

    #[test]
    fn group_view_round_trips_including_no_owner_and_no_commit() {
        let v = GroupView {
            group: "billing".into(),
            generation: 4,
            members: vec![MemberView {
                member_id: "billing-1".into(),
                topics: vec!["orders".into()],
                assignments: vec![tp("orders", 0)],
                last_heartbeat_ms: 1_700_000_000_000,
                session_timeout_ms: 6_000,
                auto_offset_reset: OffsetReset::Earliest,
            }],
            partitions: vec![
                PartitionView {
                    topic: "orders".into(),
                    partition: 0,
                    owner: Some("billing-1".into()),
                    committed_offset: None,
                    end_offset: 9,
                    lag: 9,
                },
                PartitionView {
                    topic: "old".into(),
                    partition: 1,
                    owner: None,
                    committed_offset: Some(3),
                    end_offset: 5,
                    lag: 2,
                },
            ],
        };
        assert_eq!(group_view_from_proto(group_view_to_proto(v.clone(), 11)), Ok((v, 11)));
        let empty = GroupView { group: "g".into(), generation: 0, members: vec![], partitions: vec![] };
        let mut bad = group_view_to_proto(empty, 1);
        bad.members.push(pb::GroupMember { auto_offset_reset: "sometimes".into(), ..Default::default() });
        assert_eq!(group_view_from_proto(bad), Err(ConvertError::UnknownOffsetReset("sometimes".into())));
    }

    #[test]
    fn summaries_offsets_and_reset_targets_round_trip() {
        let s = GroupSummary { group: "g".into(), generation: 2, members: 3 };
        assert_eq!(summary_from_proto(summary_to_proto(s.clone())), s);
        let triples = vec![("a".to_owned(), 0, 5), ("b".to_owned(), 3, 0)];
        assert_eq!(offsets_from_proto(offsets_to_proto(&triples)), triples);
        let pairs = vec![(tp("a", 1), 8), (tp("a", 2), 0)];
        assert_eq!(partition_offsets_from_proto(partition_offsets_to_proto(pairs.clone())), pairs);
        for t in [ResetTarget::Earliest, ResetTarget::Latest, ResetTarget::Offset(12), ResetTarget::Timestamp(1_000)] {
            assert_eq!(reset_target_from_proto(Some(reset_target_to_proto(t))), Ok(t));
        }
        assert_eq!(reset_target_from_proto(None), Err(ConvertError::Missing("to")));
    }

    #[test]
    fn join_request_carries_the_reset_policy_as_its_name() {
        let j = join_to_proto("g", vec!["t".into()], Some(6_000), Some(OffsetReset::Earliest));
        assert_eq!(
            (j.group.as_str(), j.session_timeout_ms, j.auto_offset_reset.as_str()),
            ("g", Some(6_000), "earliest")
        );
        assert_eq!(offset_reset_from_proto(&j.auto_offset_reset), Ok(Some(OffsetReset::Earliest)));
    }
}
