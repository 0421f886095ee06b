//! The backend the HTTP layer talks to: a small async trait.
//!
//! The product implementation speaks gRPC to the `lognode` cluster (writes
//! to the leader with its own leader-retry loop, reads to followers):
//! [`crate::grpc_backend::GrpcBackend`]. Tests use an in-process implementation
//! (`gateway/tests/api/support/memory.rs`) that is *not* a cluster.
//!
//! Contract for implementations:
//! - every method may be cancelled (the gateway wraps each call in a
//!   timeout and drops the future when it expires);
//! - an ordinary leader election is [`BackendError::Unavailable`] (after
//!   the implementation's own bounded retries), never
//!   [`BackendError::Internal`];
//! - ledger rule violations are *not* errors: they are result codes inside
//!   the [`Outcome`] returned by [`LedgerBackend::submit`].
//!
//! The trait speaks the pure cores' types: `ledger-core`'s for the ledger,
//! `group-core`'s for consumer groups (replies, views, reset targets). Only
//! what no core owns (topics, records, cluster status) is defined here. JSON
//! bodies are in `dto.rs`; protobuf conversions in `ledger_proto::convert`.

use async_trait::async_trait;
use group_core::{GroupSummary, GroupView, MemberReply, OffsetReset, ResetTarget, TopicPartition};
use ledger_core::{AccountView, Command, HistoryFrom, HistoryPage, Outcome, TransferStatus, TransferView};

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Any replica, possibly behind the leader (the default; cheapest).
    #[default]
    Follower,
    /// Linearizable: reflects every write acknowledged before the read
    /// started (leader read with a quorum check, or read-index).
    Strong,
    /// Served by a replica that has applied at least this log index
    /// (read-your-writes: pass the `Ledger-Index` of your write).
    MinIndex(u64),
}

/// The result of a write: the ledger's decision and the log index of the
/// entry that carried the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<T> {
    /// What the state machine decided.
    pub value: T,
    /// Log index of the entry.
    pub index: u64,
}

/// The result of a read, with the last log index applied by the replica
/// that served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read<T> {
    /// The value read.
    pub value: T,
    /// Last log index applied by the serving replica.
    pub applied_index: u64,
}

/// A topic of the generic log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
}

/// Result of creating a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicCreated {
    /// The topic (as it exists now).
    pub topic: TopicInfo,
    /// True if this call created it; false if an identical topic existed
    /// (idempotent replay). A topic with the same name and another
    /// partition count is [`BackendError::AlreadyExists`].
    pub created: bool,
}

/// One record to append to a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    /// Partitioning key: records with the same key go to the same partition
    /// (chosen by the state machine from a hash of the key). Keyless records
    /// are spread by the state machine.
    pub key: Option<String>,
    /// Value bytes (the gateway stores JSON text).
    pub value: Vec<u8>,
    /// Headers, sorted by name.
    pub headers: Vec<(String, String)>,
}

/// Where a produced record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordOffset {
    /// Partition.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// A stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Offset within its partition.
    pub offset: u64,
    /// Key, if any.
    pub key: Option<String>,
    /// Value bytes.
    pub value: Vec<u8>,
    /// Headers, sorted by name.
    pub headers: Vec<(String, String)>,
    /// Log time (ms) of the entry that appended it.
    pub timestamp_ms: u64,
}

/// A fetch request for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// First offset wanted.
    pub offset: u64,
    /// Maximum number of records (already capped by the gateway).
    pub limit: u32,
    /// Long-poll: when no record is at `offset` yet, wait up to this long
    /// for one (already capped by the gateway).
    pub wait_ms: u64,
}

/// Records fetched from one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Records in offset order (possibly none).
    pub records: Vec<StoredRecord>,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// Offset the next appended record will get (high watermark).
    pub end_offset: u64,
}

/// Raft role of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// The current leader.
    Leader,
    /// A voting follower.
    Follower,
    /// A non-voting learner (catching up).
    Learner,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Node id.
    pub id: u64,
    /// Its gRPC address.
    pub grpc_addr: String,
    /// Its role.
    pub role: NodeRole,
    /// Whether it answers.
    pub alive: bool,
    /// Last log index it applied.
    pub last_applied: u64,
    /// Last log index its current snapshot covers (0: none yet).
    pub snapshot_index: u64,
    /// First log index it still holds (0: empty, or not known).
    pub log_first_index: u64,
    /// Bytes of log after its snapshot: what a restart would apply again.
    pub log_bytes_since_snapshot: u64,
}

/// The cluster as seen by the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// Current leader, if one is known.
    pub leader_id: Option<u64>,
    /// Every member.
    pub nodes: Vec<NodeStatus>,
}

/// Counters the backend keeps for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Times the known leader changed.
    pub leader_changes: u64,
    /// Reads served, per node id (0: a node whose id is not known yet).
    pub reads_by_node: Vec<(u64, u64)>,
}

/// What was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A topic.
    Topic,
    /// A partition of an existing topic.
    Partition,
    /// A cluster node.
    Node,
    /// A live API key.
    Key,
    /// A webhook subscription.
    Webhook,
}

/// A record fetched by a group member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The record.
    pub record: StoredRecord,
}

/// The answer to a group fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupFetched {
    /// The group's generation when the records were read.
    pub generation: u64,
    /// Records, in offset order per partition.
    pub records: Vec<GroupRecord>,
}

/// A failure of the backend (never a ledger rule violation: those are
/// result codes in the [`Outcome`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No leader is reachable (election in progress, quorum lost) or the
    /// replica cannot serve the requested consistency yet. HTTP 503 with
    /// `Retry-After`.
    #[error("backend unavailable, retry after {retry_after_ms} ms")]
    Unavailable {
        /// Suggested wait before retrying.
        retry_after_ms: u64,
    },
    /// The call did not finish in time; a write may or may not have been
    /// applied (retry it with the same id: ids are idempotency keys).
    /// HTTP 503 with `Retry-After`.
    #[error("backend call timed out")]
    Timeout,
    /// A topic, partition or node does not exist. HTTP 404.
    #[error("{0:?} not found: {1}")]
    NotFound(Missing, String),
    /// The request is invalid in a way only the backend can tell. HTTP 422.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An offset or index is outside what is stored. HTTP 422.
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// A topic with this name exists with another partition count. HTTP 409.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A bug or an unexpected answer. HTTP 500.
    #[error("internal backend error: {0}")]
    Internal(String),
    /// A consumer-group rule refused the request (`unknown_member`,
    /// `stale_generation`, ...; docs/CONSUMER_GROUPS.md). HTTP 4xx by code.
    #[error("{0}: {1}")]
    Group(group_core::GroupCode, String),
    /// A `min_index` read asked for an index past the leader's last applied
    /// index: no acknowledged write can have produced it. HTTP 4xx at once
    /// (`index_not_reached`), never a retryable 503.
    #[error("min_index {min_index} is past the log's last applied index {current}")]
    IndexNotReached {
        /// The index asked for.
        min_index: u64,
        /// The leader's last applied index.
        current: u64,
    },
    /// No replica applied `min_index` within the bounded wait (the index
    /// exists: it will be applied soon). HTTP 503 `index_not_applied` with
    /// `Retry-After`.
    #[error("no replica applied index {min_index} in time")]
    IndexNotApplied {
        /// The index asked for.
        min_index: u64,
        /// Suggested wait before retrying.
        retry_after_ms: u64,
    },
}

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

/// What the gateway needs from the replicated ledger. Object safe: the
/// gateway holds an `Arc<dyn LedgerBackend>`.
#[async_trait]
pub trait LedgerBackend: Send + Sync + 'static {
    /// Appends a ledger command to the log (through the leader) and returns
    /// the state machine's decision once the entry is committed and applied.
    /// By reference: the caller keeps the command to build its answer, with no copy of it.
    async fn submit(&self, cmd: &Command) -> BackendResult<Applied<Outcome>>;

    /// An account with its current balances; `None` if it does not exist.
    async fn account(&self, id: &str, read: ReadConsistency) -> BackendResult<Read<Option<AccountView>>>;

    /// An account as it was once log entry `index` was applied; `None` if
    /// it did not exist then. [`BackendError::OutOfRange`] if `index` is past
    /// what the serving replica applied.
    async fn account_as_of(
        &self,
        id: &str,
        index: u64,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<AccountView>>>;

    /// A transfer; `None` if it does not exist.
    async fn transfer(&self, id: &str, read: ReadConsistency) -> BackendResult<Read<Option<TransferView>>>;

    /// One page of an account's history; `None` if the account does not
    /// exist. `limit` is already capped at `HISTORY_PAGE_MAX`.
    async fn account_transfers(
        &self,
        id: &str,
        from: HistoryFrom,
        limit: u32,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<HistoryPage>>>;

    /// One page of accounts in creation order, filtered, as of a log index (issue 17).
    async fn list_accounts(&self, query: AccountsQuery, read: ReadConsistency) -> BackendResult<Read<AccountsPage>> {
        let _ = (query, read);
        Err(BackendError::Internal("this backend has no account queries".to_owned()))
    }

    /// One page of transfers in creation order, filtered, as of a log index (issue 17). `None`
    /// when the query names an account that does not exist.
    async fn list_transfers(
        &self,
        query: TransfersQuery,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<TransfersPage>>> {
        let _ = (query, read);
        Err(BackendError::Internal("this backend has no transfer queries".to_owned()))
    }

    /// Creates a topic (idempotent for an identical request).
    async fn create_topic(&self, name: &str, partitions: u32) -> BackendResult<Applied<TopicCreated>>;

    /// Every topic, sorted by name.
    async fn list_topics(&self, read: ReadConsistency) -> BackendResult<Read<Vec<TopicInfo>>>;

    /// Deletes a topic (not `ledger`); [`BackendError::NotFound`] if it does not exist.
    async fn delete_topic(&self, name: &str, by: &str) -> BackendResult<Applied<()>>;

    /// Appends records to a topic in one log entry; one offset per record,
    /// in order.
    async fn produce(&self, topic: &str, records: Vec<NewRecord>) -> BackendResult<Applied<Vec<RecordOffset>>>;

    /// Reads records of one partition, long-polling up to `wait_ms` when
    /// none is available at `offset`.
    async fn fetch(&self, req: FetchRequest, read: ReadConsistency) -> BackendResult<Read<Fetched>>;

    /// Membership and health of the cluster.
    async fn cluster_status(&self) -> BackendResult<ClusterStatus>;

    /// Removes a node from the cluster (membership change through the log).
    async fn remove_node(&self, id: u64, by: &str) -> BackendResult<Applied<()>>;

    /// `Ok` when a leader is reachable (the gateway can serve writes).
    async fn ready(&self) -> BackendResult<()>;

    // ---- consumer groups (docs/CONSUMER_GROUPS.md) ----
    // Backends without consumer groups (the in-memory test backend) keep these defaults, which
    // answer `Internal` naming the missing feature.

    /// A new member joins `group` subscribing to `topics` (not idempotent: each call is a new
    /// member). `None`s are the server's defaults (session timeout, `latest`).
    async fn join_group(
        &self,
        group: &str,
        topics: Vec<String>,
        session_timeout_ms: Option<u64>,
        auto_offset_reset: Option<OffsetReset>,
    ) -> BackendResult<Applied<MemberReply>> {
        let _ = (group, topics, session_timeout_ms, auto_offset_reset);
        Err(no_groups())
    }

    /// Keeps the member's session alive; its generation and assignments.
    async fn group_heartbeat(&self, group: &str, member_id: &str) -> BackendResult<Read<MemberReply>> {
        let _ = (group, member_id);
        Err(no_groups())
    }

    /// The member leaves (the group rebalances).
    async fn leave_group(&self, group: &str, member_id: &str) -> BackendResult<Applied<()>> {
        let _ = (group, member_id);
        Err(no_groups())
    }

    /// Records of the member's partitions after its position, long-polling up
    /// to `wait_ms` (both already capped by the gateway). `from` holds
    /// client-side positions `(topic, partition, next offset)`, which win over
    /// the coordinator's for owned partitions.
    async fn group_fetch(
        &self,
        group: &str,
        member_id: &str,
        max_records: u32,
        wait_ms: u64,
        from: &[(String, u32, u64)],
    ) -> BackendResult<GroupFetched> {
        let _ = (group, member_id, max_records, wait_ms, from);
        Err(no_groups())
    }

    /// Commits `(topic, partition, next offset)` triples, as in `GroupCommand::Commit` (all or
    /// nothing; fenced by generation and ownership).
    async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: Vec<(String, u32, u64)>,
    ) -> BackendResult<Applied<()>> {
        let _ = (group, member_id, generation, offsets);
        Err(no_groups())
    }

    /// Every group, sorted by id.
    async fn list_groups(&self) -> BackendResult<Read<Vec<GroupSummary>>> {
        Err(no_groups())
    }

    /// One group: members, partitions, committed offsets and lag.
    async fn describe_group(&self, group: &str) -> BackendResult<Read<GroupView>> {
        let _ = group;
        Err(no_groups())
    }

    /// Admin: resets the committed offsets of an empty group; the new committed offsets.
    async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: ResetTarget,
        by: &str,
    ) -> BackendResult<Applied<Vec<(TopicPartition, u64)>>> {
        let _ = (group, topic, partition, to, by);
        Err(no_groups())
    }

    /// Admin: deletes a group without members, with its committed offsets.
    async fn delete_group(&self, group: &str, by: &str) -> BackendResult<Applied<()>> {
        let _ = (group, by);
        Err(no_groups())
    }

    // ---- API keys (docs/SECURITY.md) ----
    // Backends without keys (the in-memory test backend may keep them) answer `Internal`.

    /// Records a new API key through the log (its secret's hash, never the secret); the log time
    /// the leader gave it.
    async fn create_key(&self, key: ApiKey) -> BackendResult<Applied<u64>> {
        let _ = key;
        Err(no_keys())
    }

    /// Revokes a key; `NotFound(Missing::Key)` for an unknown one.
    async fn revoke_key(&self, id: &str, revoked_by: &str) -> BackendResult<Applied<()>> {
        let _ = (id, revoked_by);
        Err(no_keys())
    }

    /// Every live key, sorted by id.
    async fn list_keys(&self, read: ReadConsistency) -> BackendResult<Read<Vec<ApiKey>>> {
        let _ = read;
        Err(no_keys())
    }

    /// Up to `limit` audit records with a log index above `after`, oldest first, and how many
    /// were ever made.
    async fn list_audit(&self, after: u64, limit: u32, read: ReadConsistency) -> BackendResult<Read<AuditPage>> {
        let _ = (after, limit, read);
        Err(BackendError::Internal("this backend has no audit trail".to_owned()))
    }

    // ---- webhooks (docs/WEBHOOKS.md) ----

    /// Records a new webhook subscription through the log; the log time the leader gave it.
    /// `AlreadyExists` for a taken id.
    async fn create_webhook(&self, webhook: Webhook) -> BackendResult<Applied<u64>> {
        let _ = webhook;
        Err(no_webhooks())
    }

    /// Deletes a subscription; `NotFound(Missing::Webhook)` for an unknown one.
    async fn delete_webhook(&self, id: &str) -> BackendResult<Applied<()>> {
        let _ = id;
        Err(no_webhooks())
    }

    /// Records finished deliveries of a subscription (the deliverer's report).
    async fn record_deliveries(&self, id: &str, deliveries: Vec<Delivery>) -> BackendResult<Applied<()>> {
        let _ = (id, deliveries);
        Err(no_webhooks())
    }

    /// Every subscription, sorted by id, with its secret.
    async fn list_webhooks(&self, read: ReadConsistency) -> BackendResult<Read<Vec<Webhook>>> {
        let _ = read;
        Err(no_webhooks())
    }

    /// The kept delivered (or dead) deliveries of a subscription, newest first.
    async fn webhook_deliveries(
        &self,
        id: &str,
        dead: bool,
        read: ReadConsistency,
    ) -> BackendResult<Read<Vec<Delivery>>> {
        let _ = (id, dead, read);
        Err(no_webhooks())
    }

    /// Counters for `/metrics` (cheap, synchronous).
    fn stats(&self) -> BackendStats {
        BackendStats::default()
    }
}

fn no_webhooks() -> BackendError {
    BackendError::Internal("this backend has no webhooks".to_owned())
}

/// A webhook subscription as the log keeps it (docs/WEBHOOKS.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Its id (`[A-Za-z0-9._-]`, at most 64 bytes).
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types (`*`: all).
    pub events: Vec<String>,
    /// The signing secret (never shown by the API after the create).
    pub secret: String,
    /// Log time of its creation (ms since the epoch; 0 before it is applied).
    pub created_ms: u64,
    /// Id of the key that created it.
    pub created_by: String,
    /// Log index of its creation: events of later entries are delivered.
    pub created_index: u64,
    /// Deliveries ever recorded as delivered.
    pub delivered_total: u64,
    /// Deliveries ever recorded as dead.
    pub dead_total: u64,
}

/// The outcome of one finished delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Partition of the `ledger` topic.
    pub partition: u32,
    /// Offset there.
    pub offset: u64,
    /// Log index of the entry that produced the event.
    pub event_index: u64,
    /// Event type.
    pub event_type: String,
    /// Delivered, or dead.
    pub delivered: bool,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last answer (0: none).
    pub http_status: u16,
    /// Why the last attempt failed (empty when delivered).
    pub error: String,
    /// Deliverer's clock at the first attempt (ms since the epoch).
    pub first_attempt_ms: u64,
    /// At the last attempt.
    pub last_attempt_ms: u64,
}

fn no_keys() -> BackendError {
    BackendError::Internal("this backend has no API keys".to_owned())
}

/// An API key as the log keeps it: the SHA-256 of its secret, never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id (`[A-Za-z0-9._-]`, at most 64 bytes).
    pub id: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// Scopes (`crate::auth::Scope`'s text forms).
    pub scopes: Vec<String>,
    /// Empty: any account; else only accounts whose id starts with it.
    pub account_prefix: String,
    /// Log time of its creation (ms since the epoch; 0 before it is applied).
    pub created_ms: u64,
    /// Id of the key that created it (`bootstrap` for the cluster's first admin key).
    pub created_by: String,
    /// Its quotas (`crate::quota`).
    pub quota: Quota,
}

/// Quotas of one API key, each gateway enforcing them on its own (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// Requests a second (a token bucket's refill).
    pub rate_per_sec: u32,
    /// Requests the bucket holds at most (0: one second of `rate_per_sec`).
    pub burst: u32,
    /// Requests at once.
    pub max_in_flight: u32,
}

fn no_groups() -> BackendError {
    BackendError::Internal("this backend has no consumer groups".to_owned())
}

/// One admin action in the audit trail (docs/SECURITY.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Log index of the entry.
    pub index: u64,
    /// Log time (ms since the epoch).
    pub timestamp_ms: u64,
    /// Id of the API key that asked (`unauthenticated` with `--auth none`).
    pub by: String,
    /// `key.create`, `key.bootstrap`, `key.revoke`, `node.remove`, `topic.delete`,
    /// `group.delete` or `group.reset_offsets`.
    pub action: String,
    /// What it was asked of.
    pub target: String,
    /// `ok`, or why nothing changed.
    pub outcome: String,
}

/// A page of the audit trail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// Oldest first.
    pub records: Vec<AuditEntry>,
    /// Records ever made (the cluster keeps the newest 1000).
    pub total: u64,
}

/// A query of the accounts (`GET /v1/accounts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountsQuery {
    /// Go on after this account number (the `next` of the previous page).
    pub after: Option<u32>,
    /// The accounts as of this log index (0: the serving replica's applied index).
    pub at_index: u64,
    /// Page size, 1..=1000.
    pub limit: u32,
    /// The id starts with this (empty: any).
    pub id_prefix: String,
    /// The currency (empty: any).
    pub currency: String,
    /// A metadata member and the value it must have.
    pub metadata: Option<(String, String)>,
}

/// A page of accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountsPage {
    /// In creation order.
    pub accounts: Vec<AccountView>,
    /// The account number to go on after; `None` once the scan is complete.
    pub next: Option<u32>,
    /// The log index the page is as of.
    pub at_index: u64,
}

/// A query of the transfers (`GET /v1/transfers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransfersQuery {
    /// Go on after this cursor (the `next` of the previous page).
    pub after: Option<u64>,
    /// The transfers as of this log index (0: the serving replica's applied index).
    pub at_index: u64,
    /// Page size, 1..=1000.
    pub limit: u32,
    /// Only transfers debiting or crediting this account (empty: any); the cursor is then a
    /// version of that account.
    pub account_id: String,
    /// Only this status as of `at_index`.
    pub status: Option<TransferStatus>,
    /// Created at a log index in this range (inclusive).
    pub created_index: (Option<u64>, Option<u64>),
    /// Created at a log time (ms) in this range (inclusive).
    pub created_ms: (Option<u64>, Option<u64>),
    /// A metadata member and the value it must have.
    pub metadata: Option<(String, String)>,
}

/// A page of transfers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransfersPage {
    /// In creation order.
    pub transfers: Vec<TransferView>,
    /// The cursor to go on after; `None` once the scan is complete.
    pub next: Option<u64>,
    /// The log index the page is as of.
    pub at_index: u64,
}
