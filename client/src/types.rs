//! Wire types of the gateway API (JSON). Field names are the API's; see
//! `openapi/ledger.v1.json` for every field's meaning and examples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ------------------------------------------------------------------ accounts

/// Body of `POST /v1/accounts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewAccount {
    /// Account id, chosen by the client.
    pub id: String,
    /// Currency code (e.g. `USD`).
    pub currency: String,
    /// Whether the balance may go below zero.
    #[serde(default)]
    pub allow_overdraft: bool,
    /// Credits may never exceed debits (a liability-side account; needs `allow_overdraft`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credits_must_not_exceed_debits: bool,
    /// Free-form JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// An account and its balances (amounts are exact integers in minor units).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Account id.
    pub id: String,
    /// Currency.
    pub currency: String,
    /// Overdraft allowed.
    #[serde(default)]
    pub allow_overdraft: bool,
    /// Credits may not exceed debits.
    #[serde(default)]
    pub credits_must_not_exceed_debits: bool,
    /// Closed by a closing transfer.
    #[serde(default)]
    pub closed: bool,
    /// Metadata object.
    #[serde(default)]
    pub metadata: Value,
    /// Sum of posted debits.
    pub debits_posted: u128,
    /// Sum of posted credits.
    pub credits_posted: u128,
    /// Sum of pending debits.
    pub debits_pending: u128,
    /// Sum of pending credits.
    pub credits_pending: u128,
    /// `credits_posted - debits_posted`.
    pub balance: i128,
    /// `balance - debits_pending`.
    pub available: i128,
    /// Log index of the state shown.
    #[serde(default)]
    pub index: u64,
    /// Number of balance changes so far (per-account change counter).
    #[serde(default)]
    pub version: u64,
}

/// One balance change in an account's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Account version after this change.
    #[serde(default)]
    pub version: u64,
    /// Log index.
    pub index: u64,
    /// Log time (ms since the epoch).
    #[serde(default)]
    pub timestamp_ms: u64,
    /// The transfer that caused it.
    pub transfer_id: String,
    /// `created`, `posted`, `voided` or `expired`.
    pub kind: String,
    /// Balances after the change.
    pub debits_posted: u128,
    /// Balances after the change.
    pub credits_posted: u128,
    /// Balances after the change.
    pub debits_pending: u128,
    /// Balances after the change.
    pub credits_pending: u128,
    /// Balance after the change.
    pub balance: i128,
    /// Available after the change.
    pub available: i128,
}

/// A page of account history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Entries, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default)]
    pub next: Option<u64>,
}

// ----------------------------------------------------------------- transfers

/// Body of `POST /v1/transfers` (and one item of a batch).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewTransfer {
    /// Idempotency id, chosen by the client; deduplicated for good.
    pub id: String,
    /// Account debited.
    pub debit_account_id: String,
    /// Account credited.
    pub credit_account_id: String,
    /// Amount in minor units (> 0).
    pub amount: u64,
    /// Currency; must match both accounts.
    pub currency: String,
    /// Reserve only (two-phase); post or void later.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// Pending timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Free-form JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Move at most `amount`, less when the debit account would go below zero.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub balancing_debit: bool,
    /// Move at most `amount`, less when the credit account's credits would pass its debits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub balancing_credit: bool,
    /// Close the debit account (pending only; a void reopens it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closing_debit: bool,
    /// Close the credit account (pending only; a void reopens it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closing_credit: bool,
}

/// The decision about a pending transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// The decision's own transfer id.
    #[serde(default)]
    pub transfer_id: String,
    /// `posted`, `voided` or `expired`.
    pub status: String,
    /// Amount posted (0 for void/expiry).
    #[serde(default)]
    pub amount: u64,
    /// Log index.
    #[serde(default)]
    pub index: u64,
    /// Log time.
    #[serde(default)]
    pub timestamp_ms: u64,
}

/// A transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// Id.
    pub id: String,
    /// Account debited.
    pub debit_account_id: String,
    /// Account credited.
    pub credit_account_id: String,
    /// Amount.
    pub amount: u64,
    /// Currency.
    pub currency: String,
    /// Metadata object.
    #[serde(default)]
    pub metadata: Value,
    /// Created as pending.
    #[serde(default)]
    pub pending: bool,
    /// Pending timeout.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// When a pending transfer expires (log time).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// `pending`, `posted`, `voided` or `expired`.
    pub status: String,
    /// Log index of the creation.
    #[serde(default)]
    pub index: u64,
    /// Log time of the creation.
    #[serde(default)]
    pub timestamp_ms: u64,
    /// Post/void/expiry of a pending transfer.
    #[serde(default)]
    pub resolution: Option<Resolution>,
    /// Created with `balancing_debit` (`amount` is what moved).
    #[serde(default)]
    pub balancing_debit: bool,
    /// Created with `balancing_credit` (`amount` is what moved).
    #[serde(default)]
    pub balancing_credit: bool,
    /// Created with `closing_debit`.
    #[serde(default)]
    pub closing_debit: bool,
    /// Created with `closing_credit`.
    #[serde(default)]
    pub closing_credit: bool,
}

/// One item of a batch's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The transfer id.
    pub id: String,
    /// `created`, `exists` or `failed`.
    pub result: String,
    /// The rule's code when `result` is `failed`.
    #[serde(default)]
    pub code: Option<String>,
    /// The transfer, unless it failed.
    #[serde(default)]
    pub transfer: Option<Transfer>,
}

/// Answer of `POST /v1/transfers/batch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// One per item, in order.
    pub results: Vec<BatchItem>,
    /// Log index of the batch.
    pub index: u64,
}

// -------------------------------------------------------------------- topics

/// A topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// Answer of `POST /v1/topics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCreated {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Log index.
    #[serde(default)]
    pub index: u64,
}

/// A record to produce.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewRecord {
    /// Partition key (records with the same key share a partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Any JSON.
    pub value: Value,
    /// String headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

/// Where one produced record landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOffset {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// Answer of a produce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Produced {
    /// One per record, in order.
    pub offsets: Vec<RecordOffset>,
    /// Log index.
    pub index: u64,
}

/// A fetched record of one partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Offset.
    pub offset: u64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Value.
    pub value: Value,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Log time (ms since the epoch).
    #[serde(default)]
    pub timestamp: u64,
}

/// Answer of a partition fetch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FetchedRecords {
    /// Records in offset order.
    pub records: Vec<Record>,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// Offset the next appended record will get.
    pub end_offset: u64,
}

// ------------------------------------------------------------------- cluster

/// A lognode as the gateway sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub grpc_addr: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    /// Answers health checks.
    pub alive: bool,
    /// Last applied log index.
    pub last_applied: u64,
    /// Last log index its snapshot covers (0: none yet; absent from older gateways).
    #[serde(default)]
    pub snapshot_index: u64,
    /// First log index it still holds (0: empty or unknown).
    #[serde(default)]
    pub log_first_index: u64,
    /// Bytes of log after its snapshot.
    #[serde(default)]
    pub log_bytes_since_snapshot: u64,
}

/// Answer of `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Current leader, if known.
    #[serde(default)]
    pub leader_id: Option<u64>,
    /// Nodes.
    pub nodes: Vec<Node>,
}

// -------------------------------------------------------------------- groups

/// Body of `POST /v1/groups/{group}/members`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroup {
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Session timeout (the gateway's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u64>,
    /// `earliest` or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_offset_reset: Option<String>,
}

/// One (topic, partition).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
}

/// Answer of a join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Member id to use in later calls.
    pub member_id: String,
    /// Group generation.
    pub generation: u64,
    /// Partitions owned in this generation.
    pub assignments: Vec<TopicPartition>,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u64,
}

/// Answer of a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Current generation.
    pub generation: u64,
    /// Partitions owned now.
    pub assignments: Vec<TopicPartition>,
}

/// A record fetched by a group member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Value.
    pub value: Value,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Log time (ms since the epoch).
    #[serde(default)]
    pub timestamp: u64,
}

/// Answer of a member fetch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecords {
    /// Generation the records were fetched in.
    pub generation: u64,
    /// Records, in offset order per partition.
    pub records: Vec<GroupRecord>,
}

/// A committed position: the next offset to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset to read.
    pub offset: u64,
}

/// A member in a group description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Partitions owned.
    #[serde(default)]
    pub assignments: Vec<TopicPartition>,
    /// Last heartbeat as the gateway reports it.
    #[serde(default)]
    pub last_heartbeat: Value,
}

/// A partition in a group description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Owning member, if any.
    #[serde(default)]
    pub owner: Option<String>,
    /// Committed offset (next to read), if any.
    #[serde(default)]
    pub committed_offset: Option<u64>,
    /// End of the partition.
    #[serde(default)]
    pub end_offset: u64,
    /// `end_offset - committed_offset`.
    #[serde(default)]
    pub lag: Option<u64>,
}

/// Answer of `GET /v1/groups/{group}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// Generation.
    pub generation: u64,
    /// Members.
    #[serde(default)]
    pub members: Vec<GroupMember>,
    /// Partitions of the subscribed topics.
    #[serde(default)]
    pub partitions: Vec<GroupPartition>,
}

// ----------------------------------------------------------- raw-value records

/// A fetched record whose `value` is the exact JSON text of the response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordRaw {
    /// Offset.
    pub offset: u64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Value, as JSON text.
    pub value: Box<serde_json::value::RawValue>,
    /// Log time (ms since the epoch).
    #[serde(default)]
    pub timestamp: u64,
}

/// Answer of [`crate::Client::fetch_raw`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchedRecordsRaw {
    /// Records in offset order.
    pub records: Vec<RecordRaw>,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// Offset the next appended record will get.
    pub end_offset: u64,
}

/// A record fetched by a group member, `value` as JSON text.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupRecordRaw {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Value, as JSON text.
    pub value: Box<serde_json::value::RawValue>,
    /// Log time (ms since the epoch).
    #[serde(default)]
    pub timestamp: u64,
}

/// Answer of [`crate::Client::group_records_raw`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupRecordsRaw {
    /// Generation the records were fetched in.
    pub generation: u64,
    /// Records, in offset order per partition.
    pub records: Vec<GroupRecordRaw>,
}

/// Body of `POST /v1/keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    /// Scopes (`admin`, `accounts:read`, `topics:produce:<topic|*>`, ...).
    pub scopes: Vec<String>,
    /// Only accounts whose id starts with this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_prefix: Option<String>,
    /// Requests a second at each gateway (none: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<u32>,
    /// Requests a burst may take at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Requests in flight at each gateway (none: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
}

/// A key's quotas (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyQuota {
    /// Requests a second at each gateway.
    #[serde(default)]
    pub rate_per_sec: u32,
    /// Requests a burst may take at once.
    #[serde(default)]
    pub burst: u32,
    /// Requests in flight at each gateway.
    #[serde(default)]
    pub max_in_flight: u32,
}

/// Answer of `POST /v1/keys`: the new key and its secret, shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The key's id.
    pub id: String,
    /// The secret to send as `Authorization: Bearer <secret>`.
    pub secret: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its account prefix ("" for every account).
    #[serde(default)]
    pub account_prefix: String,
    /// Its quotas.
    #[serde(default)]
    pub quota: KeyQuota,
}

/// A live key, without its secret (`GET /v1/keys`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key's id.
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its account prefix ("" for every account).
    #[serde(default)]
    pub account_prefix: String,
    /// Log time of its creation (ms since the epoch).
    #[serde(default)]
    pub created_ms: u64,
    /// Id of the key that created it.
    #[serde(default)]
    pub created_by: String,
    /// Its quotas.
    #[serde(default)]
    pub quota: KeyQuota,
}

/// Answer of `GET /v1/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    /// Every live key, by id.
    pub keys: Vec<KeyInfo>,
}

/// One admin action of `GET /v1/audit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Log index of the action's entry.
    pub index: u64,
    /// Log time (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Id of the API key that asked.
    pub by: String,
    /// `key.create`, `key.bootstrap`, `key.revoke`, `node.remove`, `topic.delete`,
    /// `group.delete` or `group.reset_offsets`.
    pub action: String,
    /// What it was asked of.
    pub target: String,
    /// `ok`, or why nothing changed.
    pub outcome: String,
}

/// Answer of `GET /v1/audit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Oldest first.
    pub records: Vec<AuditRecord>,
    /// Admin actions ever recorded (the cluster keeps the newest 1000).
    pub total: u64,
    /// Cursor of the next page (`after`), absent at the end.
    #[serde(default)]
    pub next: Option<u64>,
}

/// Filters and cursor of `GET /v1/accounts` ([`crate::Client::list_accounts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountsQuery {
    /// Only ids starting with this.
    pub prefix: Option<String>,
    /// Only this currency.
    pub currency: Option<String>,
    /// Only accounts whose metadata member has this value.
    pub metadata: Option<(String, String)>,
    /// The `next` of the previous page.
    pub after: Option<u32>,
    /// The `at_index` of the first page (every page of one listing as of one index).
    pub at_index: Option<u64>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// Answer of `GET /v1/accounts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountList {
    /// In creation order, as of `at_index`.
    pub accounts: Vec<Account>,
    /// Cursor of the next page (`after`), absent at the end.
    #[serde(default)]
    pub next: Option<u32>,
    /// The log index the page is as of.
    pub at_index: u64,
}

/// Filters and cursor of `GET /v1/transfers` ([`crate::Client::list_transfers`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransfersQuery {
    /// Only transfers debiting or crediting this account.
    pub account_id: Option<String>,
    /// Only this status (`pending`, `posted`, `voided`, `expired`) as of the page's index.
    pub status: Option<String>,
    /// Created at this log index or later.
    pub from_index: Option<u64>,
    /// Created at this log index or earlier.
    pub to_index: Option<u64>,
    /// Created at this log time (ms) or later.
    pub from_ms: Option<u64>,
    /// Created at this log time (ms) or earlier.
    pub to_ms: Option<u64>,
    /// Only transfers whose metadata member has this value.
    pub metadata: Option<(String, String)>,
    /// The `next` of the previous page.
    pub after: Option<u64>,
    /// The `at_index` of the first page (every page of one listing as of one index).
    pub at_index: Option<u64>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// Answer of `GET /v1/transfers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferList {
    /// In creation order, each with its status as of `at_index`.
    pub transfers: Vec<Transfer>,
    /// Cursor of the next page (`after`), absent at the end.
    #[serde(default)]
    pub next: Option<u64>,
    /// The log index the page is as of.
    pub at_index: u64,
}

/// Answer of `GET /v1/accounts/{id}/balances` ([`crate::Client::statement`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// The account.
    pub account_id: String,
    /// First log index of the range.
    pub from_index: u64,
    /// Last log index of the range.
    pub to_index: u64,
    /// The account as of `from_index - 1`; absent if it did not exist yet.
    #[serde(default)]
    pub opening: Option<Account>,
    /// The account as of `to_index`.
    pub closing: Account,
    /// The balance changes in the range, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Cursor of the next page (`after`), absent at the end.
    #[serde(default)]
    pub next: Option<u64>,
}
