//! Commands, outcomes, views and the topic catalog interface.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::code::GroupCode;

/// Where a log entry sits: its Raft index and the leader-assigned timestamp.
/// This is the only source of time (rule 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyContext {
    /// Log index; must strictly increase from one apply to the next.
    pub index: u64,
    /// Leader-assigned timestamp of the entry, in ms since the epoch.
    pub timestamp_ms: u64,
}

/// One partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number, `0..partitions(topic)`.
    pub partition: u32,
}

impl TopicPartition {
    /// Builds a `TopicPartition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// The topics, as seen by the replicated state machine. The crate does not
/// own topics: the node implements this from replicated topic metadata, so
/// the answers are the same on every replica for the same log index.
pub trait TopicCatalog {
    /// Number of partitions of `topic`, or `None` if it does not exist.
    fn partitions(&self, topic: &str) -> Option<u32>;
    /// First offset still stored (retention moves it forward).
    fn start_offset(&self, topic: &str, partition: u32) -> u64;
    /// The offset the next produced record will get ("log end offset").
    fn end_offset(&self, topic: &str, partition: u32) -> u64;
}

/// A simple in-memory [`TopicCatalog`] (tests, examples, tools).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemCatalog {
    topics: BTreeMap<String, Vec<(u64, u64)>>,
}

impl MemCatalog {
    /// Creates (or replaces) `topic` with `partitions` partitions, each with
    /// offsets `start..end`.
    pub fn set_topic(&mut self, topic: &str, partitions: u32, start: u64, end: u64) {
        self.topics.insert(topic.to_string(), vec![(start, end); partitions as usize]);
    }

    /// Sets the start and end offsets of one existing partition; returns
    /// false if it does not exist.
    pub fn set_offsets(&mut self, topic: &str, partition: u32, start: u64, end: u64) -> bool {
        match self.topics.get_mut(topic).and_then(|p| p.get_mut(partition as usize)) {
            Some(o) => {
                *o = (start, end);
                true
            }
            None => false,
        }
    }

    /// Adds `n` partitions to an existing topic, each with offsets
    /// `start..end`; returns false if the topic does not exist.
    pub fn add_partitions(&mut self, topic: &str, n: u32, start: u64, end: u64) -> bool {
        match self.topics.get_mut(topic) {
            Some(p) => {
                p.extend(std::iter::repeat_n((start, end), n as usize));
                true
            }
            None => false,
        }
    }

    /// Removes a topic.
    pub fn remove_topic(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    fn get(&self, topic: &str, partition: u32) -> (u64, u64) {
        self.topics.get(topic).and_then(|p| p.get(partition as usize)).copied().unwrap_or((0, 0))
    }
}

impl TopicCatalog for MemCatalog {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).map(|p| u32::try_from(p.len()).unwrap_or(u32::MAX))
    }
    fn start_offset(&self, topic: &str, partition: u32) -> u64 {
        self.get(topic, partition).0
    }
    fn end_offset(&self, topic: &str, partition: u32) -> u64 {
        self.get(topic, partition).1
    }
}

/// Where a member starts reading a partition that has no committed offset
/// (Kafka's `auto.offset.reset`; rule 9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    /// The partition's start offset at the time of the fetch.
    Earliest,
    /// The partition's end offset at the time the partition was first
    /// assigned (anchored in the replicated state, rule 9). Kafka's default.
    #[default]
    Latest,
}

impl OffsetReset {
    /// `earliest` or `latest`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// Target of an admin offset reset (rule 8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetTo {
    /// Each partition's start offset at apply time.
    Earliest,
    /// Each partition's end offset at apply time.
    Latest,
    /// One explicit offset for every target partition.
    Offset(u64),
    /// "The first offset at or after `timestamp_ms`": the node resolves it
    /// from its record index **before proposing** and passes the result as
    /// `offsets` (partition, offset), exactly one per target partition, so
    /// apply never looks at record timestamps. `timestamp_ms` is kept for
    /// audit only.
    Timestamp {
        /// The requested time (informational).
        timestamp_ms: u64,
        /// Resolved offsets, one per target partition.
        offsets: Vec<(u32, u64)>,
    },
}

/// Target of an admin offset reset as a caller asks for it (the gateway's API, the gRPC
/// request), before the node resolves a timestamp into offsets and proposes a [`ResetTo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTarget {
    /// Each partition's start offset.
    Earliest,
    /// Each partition's end offset.
    Latest,
    /// One explicit offset for every target partition.
    Offset(u64),
    /// The first offset appended at or after this time (ms since the epoch).
    Timestamp(u64),
}

/// One log entry of the group coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupCommand {
    /// A new member joins `group` (created on first join) subscribing to
    /// `topics` (rules 1–4). Every join creates a new member; a client that
    /// lost its member id just joins again.
    Join {
        /// Group id.
        group: String,
        /// Subscribed topics (duplicates are ignored).
        topics: Vec<String>,
        /// Session timeout; default `SESSION_TIMEOUT_MS_DEFAULT`.
        session_timeout_ms: Option<u64>,
        /// Start point without a committed offset; default `latest`.
        auto_offset_reset: Option<OffsetReset>,
    },
    /// Replicated heartbeat: sets the member's `last_heartbeat_ms` to the
    /// log time (rule 5).
    Heartbeat {
        /// Group id.
        group: String,
        /// Member id returned by `Join`.
        member_id: String,
    },
    /// The member leaves; the group rebalances (rule 2).
    Leave {
        /// Group id.
        group: String,
        /// Member id.
        member_id: String,
    },
    /// Leader-decided expiry of listed members (in-memory heartbeat path,
    /// rule 5). Members that are gone, or whose replicated activity is
    /// within their session timeout of this entry's log time, are skipped.
    ExpireMembers {
        /// Group id.
        group: String,
        /// Members to expire.
        member_ids: Vec<String>,
    },
    /// Expire every member whose replicated `last_heartbeat_ms +
    /// session_timeout_ms <= now` (replicated heartbeat path, rule 5), at
    /// most `EXPIRE_PER_ENTRY_MAX` per entry. `now = max(log clock, now_ms)`.
    ExpireDue {
        /// The leader's time when it proposed the entry.
        now_ms: u64,
    },
    /// Commit "next offset to read" per partition, all or nothing (rules 6–7).
    Commit {
        /// Group id.
        group: String,
        /// Member id.
        member_id: String,
        /// The generation the member believes is current.
        generation: u64,
        /// `(topic, partition, offset)` triples.
        offsets: Vec<(String, u32, u64)>,
    },
    /// Re-reads the partition counts of the group's topics from the catalog
    /// and, if any changed since the last rebalance, starts a new generation
    /// (rules 2–3). The node proposes it when topic metadata changes.
    Rebalance {
        /// Group id.
        group: String,
    },
    /// Admin reset of committed offsets of an empty group (rule 8).
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// One partition, or every partition of the topic.
        partition: Option<u32>,
        /// Target.
        to: ResetTo,
    },
    /// Admin deletion of an empty group with its committed offsets (rule 13).
    /// A group with members is `group_not_empty`.
    Delete {
        /// Group id.
        group: String,
    },
    /// Deletes every group that has had no member for `retention_ms`, at
    /// most `EXPIRE_PER_ENTRY_MAX` per entry, oldest first (rule 13;
    /// Kafka's `offsets.retention.minutes`). `now = max(log clock, now_ms)`.
    /// The leader proposes it with its configured retention, so every
    /// replica deletes the same groups.
    ExpireEmpty {
        /// The leader's time when it proposed the entry.
        now_ms: u64,
        /// How long a group stays without members before it is deleted,
        /// within `GROUP_RETENTION_MS_MIN..=MAX` (else `invalid_request`).
        retention_ms: u64,
    },
}

/// Why a group rebalanced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebalanceReason {
    /// A member joined.
    Join,
    /// A member left.
    Leave,
    /// Members expired.
    Expire,
    /// The partition count of a subscribed topic changed.
    Metadata,
}

impl RebalanceReason {
    /// `join`, `leave`, `expire` or `metadata`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RebalanceReason::Join => "join",
            RebalanceReason::Leave => "leave",
            RebalanceReason::Expire => "expire",
            RebalanceReason::Metadata => "metadata",
        }
    }
}

/// One rebalance (a new generation), reported for metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebalance {
    /// Group id.
    pub group: String,
    /// The new generation.
    pub generation: u64,
    /// Members in the new generation.
    pub members: usize,
    /// Partitions whose owner changed (including newly owned ones and ones
    /// that lost their owner).
    pub moved: usize,
    /// Cause.
    pub reason: RebalanceReason,
}

/// A member's view of its group: the join and heartbeat response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberReply {
    /// The member id (`"{group}-{seq}"`).
    pub member_id: String,
    /// Current generation; commits must name it.
    pub generation: u64,
    /// Partitions owned in this generation, sorted.
    pub assignments: Vec<TopicPartition>,
    /// How often to heartbeat (`session_timeout_ms / 3`).
    pub heartbeat_interval_ms: u64,
    /// The member's session timeout.
    pub session_timeout_ms: u64,
}

/// Result of an expiry entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireReply {
    /// Expired `(group, member_id)`, in order.
    pub expired: Vec<(String, String)>,
    /// `ExpireMembers`: listed members not expired (gone, or recently active).
    pub skipped: Vec<String>,
    /// `ExpireDue`: more members are already due (propose another entry).
    pub more_due: bool,
}

/// Result of an `ExpireEmpty` entry (rule 13).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedReply {
    /// Deleted groups, oldest-emptied first.
    pub deleted: Vec<String>,
    /// More empty groups are already past their retention (propose another entry).
    pub more_due: bool,
}

/// Command-specific part of a [`GroupOutcome`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Nothing more (errors, `Leave`).
    None,
    /// `Join` and `Heartbeat`.
    Member(MemberReply),
    /// `ExpireMembers` and `ExpireDue`.
    Expired(ExpireReply),
    /// `Commit`: number of offsets stored.
    Committed(usize),
    /// `ResetOffsets`: the new committed offsets.
    Reset(Vec<(TopicPartition, u64)>),
    /// `ExpireEmpty`: the groups deleted (`Delete` answers `None`).
    Deleted(DeletedReply),
}

/// What applying one [`GroupCommand`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOutcome {
    /// `ok` or the reason nothing changed.
    pub code: GroupCode,
    /// Command-specific details.
    pub reply: Reply,
    /// New generations started by this entry (for metrics; empty on error).
    pub rebalances: Vec<Rebalance>,
}

impl GroupOutcome {
    pub(crate) fn err(code: GroupCode) -> GroupOutcome {
        GroupOutcome { code, reply: Reply::None, rebalances: Vec::new() }
    }
}

/// One member in [`GroupView`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Member id.
    pub member_id: String,
    /// Subscribed topics, sorted.
    pub topics: Vec<String>,
    /// Owned partitions, sorted.
    pub assignments: Vec<TopicPartition>,
    /// Last replicated activity (join, heartbeat entry or commit), log time.
    pub last_heartbeat_ms: u64,
    /// Session timeout.
    pub session_timeout_ms: u64,
    /// Start policy without a commit.
    pub auto_offset_reset: OffsetReset,
}

/// One partition in [`GroupView`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Owner in the current generation (`None` for a partition with a
    /// commit that no member subscribes to any more).
    pub owner: Option<String>,
    /// Committed offset, if any.
    pub committed_offset: Option<u64>,
    /// Current end offset from the catalog.
    pub end_offset: u64,
    /// `end_offset − effective committed` (rule 10).
    pub lag: u64,
}

/// Describe-group answer (rule 10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// Group id.
    pub group: String,
    /// Current generation (0 = never had a member).
    pub generation: u64,
    /// Members in join order.
    pub members: Vec<MemberView>,
    /// Every assigned partition plus every partition with a commit, sorted.
    pub partitions: Vec<PartitionView>,
}

/// One line of `list_groups`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    /// Group id.
    pub group: String,
    /// Current generation.
    pub generation: u64,
    /// Number of members.
    pub members: usize,
}
