//! `group-core`: the pure, deterministic rules of Kafka-style consumer
//! groups (membership, generations, sticky balanced assignment, heartbeats
//! and expiry, committed offsets and resets), applied from a replicated log.
//!
//! Every node feeds the same [`GroupCommand`]s, in the same order, with the
//! same [`ApplyContext`] (log index and leader-assigned timestamp) and the
//! same replicated [`TopicCatalog`] to [`Groups::apply`], and therefore
//! reaches the same state and [`GroupOutcome`]s. The crate does no I/O,
//! reads no clock, uses no randomness and only ordered maps.
//!
//! The rules are numbered in `docs/CONSUMER_GROUPS.md`; tests cite them.
//!
//! ```
//! use group_core::{ApplyContext, GroupCode, GroupCommand, Groups, MemCatalog, Reply};
//!
//! let mut catalog = MemCatalog::default();
//! catalog.set_topic("orders", 4, 0, 100);
//! let mut groups = Groups::default();
//! let join = GroupCommand::Join {
//!     group: "billing".into(), topics: vec!["orders".into()], session_timeout_ms: None, auto_offset_reset: None,
//! };
//! let out = groups.apply(&join, ApplyContext { index: 1, timestamp_ms: 1_000 }, &catalog);
//! let Reply::Member(m) = out.reply else { unreachable!() };
//! assert_eq!((m.member_id.as_str(), m.generation, m.assignments.len()), ("billing-1", 1, 4));
//! let commit = GroupCommand::Commit {
//!     group: "billing".into(), member_id: m.member_id.clone(), generation: 1,
//!     offsets: vec![("orders".into(), 0, 42)],
//! };
//! let out = groups.apply(&commit, ApplyContext { index: 2, timestamp_ms: 1_001 }, &catalog);
//! assert_eq!(out.code, GroupCode::Ok);
//! assert_eq!(groups.fetch_start("billing", &m.member_id, "orders", 0, None, &catalog), Ok(42));
//! ```

mod assign;
mod code;
mod groups;
pub mod limits;
mod types;

pub use code::GroupCode;
pub use groups::{Groups, SNAPSHOT_FORMAT, is_valid_group_id};
pub use types::{
    ApplyContext, DeletedReply, ExpireReply, GroupCommand, GroupOutcome, GroupSummary, GroupView, MemCatalog,
    MemberReply, MemberView, OffsetReset, PartitionView, Rebalance, RebalanceReason, Reply, ResetTarget, ResetTo,
    TopicCatalog, TopicPartition,
};
