//! Every limit of the consumer groups, as named constants (rule 12).
//!
//! The relations between them are checked at compile time at the bottom of
//! this module, so changing one number cannot silently break another rule.

/// Maximum length of a group id, in bytes (ids are ASCII `[A-Za-z0-9._-]`).
pub const GROUP_ID_BYTES_MAX: usize = 249;

/// Maximum length of a topic name passed to the crate, in bytes. Longer
/// names are rejected with `invalid_request` before the catalog is asked.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Maximum number of groups. A `Join` that would create one more is
/// rejected with `limit_exceeded`. A group's committed offsets outlive its
/// members (as in Kafka) until an admin deletes it or it has been empty
/// for the retention (rule 13), which frees its slot.
pub const GROUPS_MAX: usize = 10_000;

/// Maximum number of members in one group (`limit_exceeded`).
pub const MEMBERS_PER_GROUP_MAX: usize = 1_000;

/// Maximum number of distinct topics in one member's subscription
/// (`limit_exceeded`).
pub const TOPICS_PER_SUBSCRIPTION_MAX: usize = 100;

/// Maximum number of partitions of the union of a group's subscribed
/// topics, checked when a member joins (`limit_exceeded`).
pub const PARTITIONS_PER_GROUP_MAX: usize = 10_000;

/// Maximum number of offsets in one `Commit` (`limit_exceeded`). Equal to
/// the partition limit so one commit can always cover a member's whole
/// assignment.
pub const OFFSETS_PER_COMMIT_MAX: usize = PARTITIONS_PER_GROUP_MAX;

/// Smallest session timeout a member may ask for: 1 s.
pub const SESSION_TIMEOUT_MS_MIN: u64 = 1_000;

/// Largest session timeout a member may ask for: 5 min.
pub const SESSION_TIMEOUT_MS_MAX: u64 = 5 * 60 * 1_000;

/// Session timeout when `Join` does not give one: 10 s (Kafka's default
/// `session.timeout.ms` before 3.0).
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// The heartbeat interval returned to a member is its session timeout
/// divided by this (Kafka's recommendation: at most a third).
pub const HEARTBEAT_INTERVAL_DIVISOR: u64 = 3;

/// Maximum number of members expired by one `ExpireDue` entry, and of
/// empty groups deleted by one `ExpireEmpty` entry (bounds the latency of
/// one apply). The rest go in the next entries; the outcome says `more_due`.
pub const EXPIRE_PER_ENTRY_MAX: usize = 1_000;

/// Shortest retention of an empty group an `ExpireEmpty` entry may name: 1 s.
pub const GROUP_RETENTION_MS_MIN: u64 = 1_000;

/// Longest retention of an empty group: 10 years (in effect, never).
pub const GROUP_RETENTION_MS_MAX: u64 = 10 * 365 * 24 * 60 * 60 * 1_000;

/// Retention of an empty group when the node is not told otherwise: 7 days
/// (Kafka's `offsets.retention.minutes` since 2.0).
pub const GROUP_RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1_000;

/// The heartbeat interval for a session timeout (rule 5).
pub const fn heartbeat_interval_ms(session_timeout_ms: u64) -> u64 {
    session_timeout_ms / HEARTBEAT_INTERVAL_DIVISOR
}

// ---- compile-time relation checks -------------------------------------

const _: () = assert!(GROUP_ID_BYTES_MAX >= 1 && TOPIC_NAME_BYTES_MAX >= 1);
const _: () = assert!(GROUPS_MAX >= 1 && MEMBERS_PER_GROUP_MAX >= 1);
const _: () = assert!(TOPICS_PER_SUBSCRIPTION_MAX >= 1);
const _: () = assert!(PARTITIONS_PER_GROUP_MAX >= 1 && PARTITIONS_PER_GROUP_MAX <= u32::MAX as usize);
const _: () = assert!(OFFSETS_PER_COMMIT_MAX >= PARTITIONS_PER_GROUP_MAX);
const _: () = assert!(SESSION_TIMEOUT_MS_MIN >= 1 && SESSION_TIMEOUT_MS_MIN <= SESSION_TIMEOUT_MS_MAX);
const _: () = assert!(
    SESSION_TIMEOUT_MS_DEFAULT >= SESSION_TIMEOUT_MS_MIN && SESSION_TIMEOUT_MS_DEFAULT <= SESSION_TIMEOUT_MS_MAX
);
// Every member gets a heartbeat interval of at least 1 ms that leaves room
// for at least two missed heartbeats before its session times out.
const _: () = assert!(HEARTBEAT_INTERVAL_DIVISOR >= 3);
const _: () = assert!(heartbeat_interval_ms(SESSION_TIMEOUT_MS_MIN) >= 1);
// A deadline (last heartbeat + session timeout) cannot overflow for any
// timestamp below 2^63 ms.
const _: () = assert!(SESSION_TIMEOUT_MS_MAX < (1 << 62));
const _: () = assert!(EXPIRE_PER_ENTRY_MAX >= 1 && EXPIRE_PER_ENTRY_MAX <= MEMBERS_PER_GROUP_MAX * GROUPS_MAX);
const _: () = assert!(
    GROUP_RETENTION_MS_MIN >= 1
        && GROUP_RETENTION_MS_MIN <= GROUP_RETENTION_MS_DEFAULT
        && GROUP_RETENTION_MS_DEFAULT <= GROUP_RETENTION_MS_MAX
);
// An empty group's deadline (emptied + retention) cannot overflow for any
// timestamp below 2^63 ms.
const _: () = assert!(GROUP_RETENTION_MS_MAX < (1 << 62));
