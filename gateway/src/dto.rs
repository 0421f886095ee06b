// tidy: long-file: every request and response body of the HTTP API with its OpenAPI schema and examples; one place keeps the wire format reviewable as a whole.
//! JSON request and response bodies (the wire format lives here, never in
//! `ledger-core`), with their OpenAPI schemas and conversions.
//!
//! **Big numbers.** Amounts are JSON integers in `1..=2^63-1`. Balance
//! counters are u128 and `balance`/`available` are i128; all are emitted as
//! plain JSON numbers. JavaScript's `JSON.parse` loses precision above
//! 2^53: JS clients must use a big-int-aware parser (e.g. `json-bigint`, or
//! `JSON.parse` with a reviver on the source text) when balances can exceed
//! 2^53 minor units.

use std::collections::BTreeMap;

use ledger_core::{AccountView, Decision, HistoryEntry, HistoryPage, TransferStatus, TransferView};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::backend::{ClusterStatus, NodeRole, NodeStatus, ReadConsistency, StoredRecord};
use crate::error::ErrorCode;
use crate::extract::Obj;

// ---------------------------------------------------------------------------
// reads
// ---------------------------------------------------------------------------

/// Read consistency level of a `GET`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Any replica, possibly slightly behind (default).
    #[default]
    Follower,
    /// Linearizable: sees every write acknowledged before the read.
    Strong,
}

/// Converts the `consistency` / `min_index` query parameters.
pub fn read_consistency(consistency: Option<Consistency>, min_index: Option<u64>) -> ReadConsistency {
    match (consistency, min_index) {
        (Some(Consistency::Strong), _) => ReadConsistency::Strong,
        (_, Some(n)) => ReadConsistency::MinIndex(n),
        _ => ReadConsistency::Follower,
    }
}

/// Query parameters of `GET /v1/accounts/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// `strong` for a linearizable read; default `follower`.
    pub consistency: Option<Consistency>,
    /// Read-your-writes: served by a replica that applied at least this log
    /// index (the `Ledger-Index` of your write). `strong` wins over it.
    #[param(example = 42)]
    pub min_index: Option<u64>,
    /// Balances as they were once this log index was applied.
    #[param(example = 40)]
    pub as_of_index: Option<u64>,
}

/// Query parameters of plain reads.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// `strong` for a linearizable read; default `follower`.
    pub consistency: Option<Consistency>,
    /// Read-your-writes: served by a replica that applied at least this log index.
    #[param(example = 42)]
    pub min_index: Option<u64>,
}

/// Query parameters of `GET /v1/accounts/{id}/transfers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Opaque cursor: the `next` of the previous page (absent = from the start).
    #[param(example = 100)]
    pub after: Option<u64>,
    /// Page size, `1..=1000` (default 100).
    #[param(example = 100, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `strong` for a linearizable read; default `follower`.
    pub consistency: Option<Consistency>,
    /// Read-your-writes: served by a replica that applied at least this log index.
    pub min_index: Option<u64>,
}

/// Query parameters of `GET /v1/topics/{topic}/partitions/{partition}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FetchQuery {
    /// First offset wanted (default 0).
    #[param(example = 0)]
    pub offset: Option<u64>,
    /// Maximum records returned, `1..=1000` (default 100).
    #[param(example = 100, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Long-poll: wait up to this many ms for a record at `offset` (default 0, at most 30000).
    #[param(example = 1000, maximum = 30000)]
    pub wait_ms: Option<u64>,
    /// `strong` for a linearizable read; default `follower`.
    pub consistency: Option<Consistency>,
    /// Read-your-writes: served by a replica that applied at least this log index.
    pub min_index: Option<u64>,
}

// ---------------------------------------------------------------------------
// accounts
// ---------------------------------------------------------------------------

/// Body of `POST /v1/accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "alice", "currency": "USD", "allow_overdraft": false, "metadata": {"owner": "Alice"}}))]
pub struct CreateAccountRequest {
    /// 1–128 characters of `[A-Za-z0-9._:-]`; the idempotency key.
    #[schema(example = "alice", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub id: String,
    /// 3–12 uppercase ASCII letters.
    #[schema(example = "USD", min_length = 3, max_length = 12, pattern = "^[A-Z]+$")]
    pub currency: String,
    /// May the account go below zero (funding/equity accounts)? Default false: its debits may
    /// not exceed its credits (TigerBeetle's `debits_must_not_exceed_credits`).
    #[serde(default)]
    pub allow_overdraft: bool,
    /// Credits may never exceed debits: the limit of a liability-side account (rule 10). Only
    /// with `allow_overdraft: true` (else 422 `flags_are_mutually_exclusive`). Default false.
    #[serde(default)]
    pub credits_must_not_exceed_debits: bool,
    /// A JSON object (at most 4096 bytes once canonicalized: keys sorted, no whitespace).
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "alice", "currency": "USD", "allow_overdraft": false, "metadata": {"owner": "Alice"},
    "debits_posted": 200, "credits_posted": 1000, "debits_pending": 100, "credits_pending": 0,
    "balance": 800, "available": 700, "index": 57, "version": 3,
    "created_index": 12, "created_timestamp_ms": 1764150000000u64
}))]
pub struct Account {
    /// Account id.
    pub id: String,
    /// Currency.
    pub currency: String,
    /// Overdraft allowed.
    pub allow_overdraft: bool,
    /// Credits may not exceed debits (rule 10).
    pub credits_must_not_exceed_debits: bool,
    /// Closed by a pending closing transfer (rule 11): refuses new transfers until that
    /// transfer is voided or expires; for good once it is posted. The state now, also on a read
    /// as of an earlier index.
    pub closed: bool,
    /// Metadata object (canonical form).
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Sum of posted debits (u128, a JSON number: may exceed 2^53).
    #[schema(value_type = u64)]
    pub debits_posted: u128,
    /// Sum of posted credits (u128, a JSON number: may exceed 2^53).
    #[schema(value_type = u64)]
    pub credits_posted: u128,
    /// Sum of pending debits (u128).
    #[schema(value_type = u64)]
    pub debits_pending: u128,
    /// Sum of pending credits (u128).
    #[schema(value_type = u64)]
    pub credits_pending: u128,
    /// `credits_posted − debits_posted` (i128).
    #[schema(value_type = i64)]
    pub balance: i128,
    /// `balance − debits_pending` (i128).
    #[schema(value_type = i64)]
    pub available: i128,
    /// Last log index that changed the account (creation included).
    pub index: u64,
    /// Number of balance changes so far.
    pub version: u64,
    /// Log index of the creation.
    pub created_index: u64,
    /// Log time (ms since the epoch) of the creation.
    pub created_timestamp_ms: u64,
}

/// Metadata text from the ledger back to JSON (it was canonical JSON when
/// stored; anything else is returned as a string rather than failing).
pub fn metadata_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

impl From<&AccountView> for Account {
    fn from(a: &AccountView) -> Self {
        Account {
            id: a.id.to_string(),
            currency: a.currency.to_string(),
            allow_overdraft: a.allow_overdraft,
            credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
            closed: a.closed,
            metadata: metadata_value(&a.metadata),
            debits_posted: a.balances.debits_posted,
            credits_posted: a.balances.credits_posted,
            debits_pending: a.balances.debits_pending,
            credits_pending: a.balances.credits_pending,
            balance: a.balance,
            available: a.available,
            index: a.index,
            version: a.version,
            created_index: a.created_index,
            created_timestamp_ms: a.created_timestamp_ms,
        }
    }
}

/// Kind of a history entry.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// A transfer was created (posted at once or pending).
    Created,
    /// A pending transfer was posted.
    Posted,
    /// A pending transfer was voided.
    Voided,
    /// A pending transfer expired.
    Expired,
}

/// One balance change of an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryItem {
    /// Account version after the change (1 for the first).
    pub version: u64,
    /// Log index of the change.
    pub index: u64,
    /// Log time (ms).
    pub timestamp_ms: u64,
    /// Transfer that caused it.
    pub transfer_id: String,
    /// What happened to the transfer.
    pub kind: HistoryKind,
    /// Posted debits after the change.
    #[schema(value_type = u64)]
    pub debits_posted: u128,
    /// Posted credits after the change.
    #[schema(value_type = u64)]
    pub credits_posted: u128,
    /// Pending debits after the change.
    #[schema(value_type = u64)]
    pub debits_pending: u128,
    /// Pending credits after the change.
    #[schema(value_type = u64)]
    pub credits_pending: u128,
    /// Balance after the change.
    #[schema(value_type = i64)]
    pub balance: i128,
    /// Available after the change.
    #[schema(value_type = i64)]
    pub available: i128,
}

impl From<&HistoryEntry> for HistoryItem {
    fn from(e: &HistoryEntry) -> Self {
        HistoryItem {
            version: e.version,
            index: e.index,
            timestamp_ms: e.timestamp_ms,
            transfer_id: e.transfer_id.to_string(),
            kind: match e.kind {
                ledger_core::TransferEventKind::Created => HistoryKind::Created,
                ledger_core::TransferEventKind::Posted => HistoryKind::Posted,
                ledger_core::TransferEventKind::Voided => HistoryKind::Voided,
                ledger_core::TransferEventKind::Expired => HistoryKind::Expired,
            },
            debits_posted: e.balances.debits_posted,
            credits_posted: e.balances.credits_posted,
            debits_pending: e.balances.debits_pending,
            credits_pending: e.balances.credits_pending,
            balance: e.balances.balance(),
            available: e.balances.available(),
        }
    }
}

/// A page of an account's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"entries": [{
    "version": 1, "index": 14, "timestamp_ms": 1764150000123u64, "transfer_id": "t-1001", "kind": "created",
    "debits_posted": 0, "credits_posted": 1000, "debits_pending": 0, "credits_pending": 0,
    "balance": 1000, "available": 1000
}], "next": 1}))]
pub struct HistoryPageBody {
    /// The entries.
    pub entries: Vec<HistoryItem>,
    /// Cursor for the next page (pass it as `after`); absent at the end.
    pub next: Option<u64>,
}

impl From<&HistoryPage> for HistoryPageBody {
    fn from(p: &HistoryPage) -> Self {
        HistoryPageBody { entries: p.entries.iter().map(HistoryItem::from).collect(), next: p.next }
    }
}

// ---------------------------------------------------------------------------
// transfers
// ---------------------------------------------------------------------------

/// Body of `POST /v1/transfers` (and one item of a batch).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": "t-1001", "debit_account_id": "alice", "credit_account_id": "bob", "amount": 250,
    "currency": "USD", "pending": false, "metadata": {"invoice": "INV-7"}
}))]
pub struct CreateTransferRequest {
    /// 1–128 characters of `[A-Za-z0-9._:-]`; the idempotency key forever.
    #[schema(example = "t-1001", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub id: String,
    /// Account debited.
    #[schema(example = "alice")]
    pub debit_account_id: String,
    /// Account credited.
    #[schema(example = "bob")]
    pub credit_account_id: String,
    /// Integer minor units, `1..=9223372036854775807`. Fractions, negatives,
    /// zero and larger numbers are `invalid_amount`.
    #[schema(value_type = i64, example = 250, minimum = 1)]
    pub amount: serde_json::Number,
    /// Currency; both accounts must have it.
    #[schema(example = "USD")]
    pub currency: String,
    /// Two-phase: only reserve the funds (post or void later). Default false.
    #[serde(default)]
    pub pending: bool,
    /// Pending only: the reservation expires this many ms after creation
    /// (log time), `1..=2592000000`. Absent = never.
    #[schema(example = 60000)]
    pub timeout_ms: Option<u64>,
    /// A JSON object (at most 4096 bytes canonicalized).
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Move at most `amount`: less when the debit account's debits would otherwise exceed its
    /// credits (sweeps, zeroing an account); refused with `insufficient_funds` when nothing can
    /// move (rule 10). Default false.
    #[serde(default)]
    pub balancing_debit: bool,
    /// Move at most `amount`: less when the credit account's credits would otherwise exceed its
    /// debits; refused with `exceeds_debits` when nothing can move (rule 10). Default false.
    #[serde(default)]
    pub balancing_credit: bool,
    /// Close the debit account (rule 11). Pending transfers only; a void or expiry reopens it.
    #[serde(default)]
    pub closing_debit: bool,
    /// Close the credit account (rule 11). Pending transfers only; a void or expiry reopens it.
    #[serde(default)]
    pub closing_credit: bool,
}

/// Status of a transfer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Funds reserved, waiting for post/void/expiry.
    Pending,
    /// Funds moved.
    Posted,
    /// Reservation released by a void.
    Voided,
    /// Reservation released because its timeout passed.
    Expired,
}

impl From<Status> for TransferStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => TransferStatus::Pending,
            Status::Posted => TransferStatus::Posted,
            Status::Voided => TransferStatus::Voided,
            Status::Expired => TransferStatus::Expired,
        }
    }
}

impl From<TransferStatus> for Status {
    fn from(s: TransferStatus) -> Self {
        match s {
            TransferStatus::Pending => Status::Pending,
            TransferStatus::Posted => Status::Posted,
            TransferStatus::Voided => Status::Voided,
            TransferStatus::Expired => Status::Expired,
        }
    }
}

/// A decision about a pending transfer: post, void or expiry.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"transfer_id": "t-1002", "status": "posted", "amount": 250, "index": 60, "timestamp_ms": 1764150009000u64}))]
pub struct Resolution {
    /// The pending transfer.
    pub transfer_id: String,
    /// Its status after the decision.
    pub status: Status,
    /// Post: the posted amount. Void/expiry: the released amount.
    pub amount: u64,
    /// Log index of the decision.
    pub index: u64,
    /// Log time (ms) of the decision.
    pub timestamp_ms: u64,
}

impl Resolution {
    /// From a ledger decision.
    pub fn new(transfer_id: &str, d: &Decision) -> Self {
        Resolution {
            transfer_id: transfer_id.to_owned(),
            status: d.status.into(),
            amount: d.amount,
            index: d.index,
            timestamp_ms: d.timestamp_ms,
        }
    }
}

/// A transfer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "t-1001", "debit_account_id": "alice", "credit_account_id": "bob", "amount": 250,
    "currency": "USD", "metadata": {"invoice": "INV-7"}, "pending": false, "timeout_ms": null,
    "expires_at_ms": null, "status": "posted", "index": 58, "timestamp_ms": 1764150001000u64, "resolution": null
}))]
pub struct Transfer {
    /// Transfer id.
    pub id: String,
    /// Account debited.
    pub debit_account_id: String,
    /// Account credited.
    pub credit_account_id: String,
    /// Amount (reserved amount for a pending transfer).
    pub amount: u64,
    /// Currency.
    pub currency: String,
    /// Metadata object.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Created as a pending (two-phase) transfer.
    pub pending: bool,
    /// Timeout given at creation.
    pub timeout_ms: Option<u64>,
    /// Log time at which the reservation expires.
    pub expires_at_ms: Option<u64>,
    /// Current status (on a create response: the status given at creation).
    pub status: Status,
    /// Log index of the creation.
    pub index: u64,
    /// Log time (ms) of the creation.
    pub timestamp_ms: u64,
    /// Pending transfers: the post/void/expiry decision, once made.
    pub resolution: Option<Resolution>,
    /// Created with `balancing_debit` (rule 10): `amount` is what moved. Absent when false (as
    /// are the other three flags: most transfers have none, and a batch answer lists many).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub balancing_debit: bool,
    /// Created with `balancing_credit` (rule 10): `amount` is what moved. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub balancing_credit: bool,
    /// Created with `closing_debit` (rule 11). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closing_debit: bool,
    /// Created with `closing_credit` (rule 11). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closing_credit: bool,
}

impl From<&TransferView> for Transfer {
    fn from(t: &TransferView) -> Self {
        Transfer {
            id: t.id.to_string(),
            debit_account_id: t.debit_account_id.to_string(),
            credit_account_id: t.credit_account_id.to_string(),
            amount: t.amount,
            currency: t.currency.to_string(),
            metadata: metadata_value(&t.metadata),
            pending: t.pending,
            timeout_ms: t.timeout_ms,
            expires_at_ms: t.expires_at_ms,
            status: t.status.into(),
            index: t.created.index,
            timestamp_ms: t.created.timestamp_ms,
            resolution: t.resolution.as_ref().map(|d| Resolution::new(&t.id, d)),
            balancing_debit: t.flags.balancing_debit,
            balancing_credit: t.flags.balancing_credit,
            closing_debit: t.flags.closing_debit,
            closing_credit: t.flags.closing_credit,
        }
    }
}

impl Transfer {
    /// The transfer as created, from the validated command and the ledger's
    /// creation decision (for a replay: the original decision).
    pub fn from_created(t: &ledger_core::NewTransfer, d: &Decision) -> Self {
        Transfer {
            id: t.id.clone(),
            debit_account_id: t.debit_account_id.clone(),
            credit_account_id: t.credit_account_id.clone(),
            // What the ledger decided: less than asked for a balancing transfer.
            amount: d.amount,
            currency: t.currency.clone(),
            metadata: metadata_value(&t.metadata),
            pending: t.pending,
            timeout_ms: t.timeout_ms,
            expires_at_ms: t.timeout_ms.and_then(|ms| d.timestamp_ms.checked_add(ms)).filter(|_| t.pending),
            status: d.status.into(),
            index: d.index,
            timestamp_ms: d.timestamp_ms,
            resolution: None,
            balancing_debit: t.flags.balancing_debit,
            balancing_credit: t.flags.balancing_credit,
            closing_debit: t.flags.closing_debit,
            closing_credit: t.flags.closing_credit,
        }
    }
}

/// Body of `POST /v1/transfers/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"atomic": true, "transfers": [
    {"id": "t-2001", "debit_account_id": "alice", "credit_account_id": "bob", "amount": 10, "currency": "USD"},
    {"id": "t-2002", "debit_account_id": "alice", "credit_account_id": "carol", "amount": 20, "currency": "USD"}
]}))]
pub struct CreateTransfersRequest {
    /// 1..=8190 transfers, decided in order in one log entry.
    #[schema(value_type = Vec<CreateTransferRequest>)]
    pub transfers: Vec<Obj<CreateTransferRequest>>,
    /// All or nothing when true; each on its own when false (default).
    #[serde(default)]
    pub atomic: bool,
}

/// Outcome of one batch item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    /// Created by this request.
    Created,
    /// Identical replay of an existing transfer.
    Exists,
    /// Not applied; see `code`.
    Failed,
}

/// One batch item's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// The item's transfer id.
    pub id: String,
    /// What happened to it.
    pub result: ItemResult,
    /// For `failed`: the rule code (`linked_event_failed` for the other items of a failed atomic batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// For `created`/`exists`: the transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
}

/// Response of `POST /v1/transfers/batch`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"index": 61, "results": [
    {"id": "t-2001", "result": "created", "transfer": {
        "id": "t-2001", "debit_account_id": "alice", "credit_account_id": "bob", "amount": 10, "currency": "USD",
        "metadata": {}, "pending": false, "timeout_ms": null, "expires_at_ms": null, "status": "posted",
        "index": 61, "timestamp_ms": 1764150010000u64, "resolution": null}},
    {"id": "t-2002", "result": "failed", "code": "insufficient_funds"}
]}))]
pub struct BatchResponse {
    /// One result per item, in request order.
    pub results: Vec<BatchItem>,
    /// Log index of the batch's entry.
    pub index: u64,
}

/// Body of `POST /v1/transfers/{id}/post` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 200}))]
pub struct PostPendingRequest {
    /// Amount to post, at most the pending amount; absent = the full amount
    /// (the rest of a partial post is released).
    #[schema(value_type = Option<i64>, example = 200, minimum = 1)]
    pub amount: Option<serde_json::Number>,
}

// ---------------------------------------------------------------------------
// topics
// ---------------------------------------------------------------------------

/// Body of `POST /v1/topics`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "orders", "partitions": 4}))]
pub struct CreateTopicRequest {
    /// 1–128 characters of `[A-Za-z0-9._-]`.
    #[schema(example = "orders", pattern = "^[A-Za-z0-9._-]+$", max_length = 128)]
    pub name: String,
    /// Number of partitions, `1..=256`.
    #[schema(example = 4, minimum = 1, maximum = 256)]
    pub partitions: u32,
}

/// A topic.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "orders", "partitions": 4}))]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
}

/// Response of `POST /v1/topics`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "orders", "partitions": 4, "index": 70}))]
pub struct TopicCreatedBody {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Log index of the write.
    pub index: u64,
}

/// Response of `GET /v1/topics`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"topics": [{"name": "orders", "partitions": 4}]}))]
pub struct TopicList {
    /// Every topic, sorted by name.
    pub topics: Vec<Topic>,
}

/// One record to produce.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// Partitioning key: records with the same key go to the same partition.
    #[schema(example = "customer-17")]
    pub key: Option<String>,
    /// Any JSON value: object, array, string, number, boolean or `null` (the default when
    /// absent). Stored as its JSON text and served back as the same value.
    #[schema(value_type = Value, example = json!({"order": 1, "total": 990}))]
    #[serde(default)]
    pub value: Value,
    /// String headers.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

/// Body of `POST /v1/topics/{topic}/records`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"records": [{"key": "customer-17", "value": {"order": 1, "total": 990}, "headers": {"source": "web"}}]}))]
pub struct ProduceRequest {
    /// 1..=1000 records, appended in one log entry.
    #[schema(value_type = Vec<ProduceRecord>)]
    pub records: Vec<Obj<ProduceRecord>>,
}

/// Where a produced record landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct OffsetBody {
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
}

/// Response of `POST /v1/topics/{topic}/records`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"offsets": [{"partition": 2, "offset": 17}], "index": 71}))]
pub struct ProduceResponse {
    /// One per record, in request order.
    pub offsets: Vec<OffsetBody>,
    /// Log index of the write.
    pub index: u64,
}

/// A fetched record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordBody {
    /// Offset in the partition.
    pub offset: u64,
    /// Key, if any.
    pub key: Option<String>,
    /// The JSON value as produced: any JSON value, `null` included.
    #[schema(value_type = Value)]
    pub value: Value,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// Log time (ms since the epoch) of the append.
    pub timestamp: u64,
}

impl From<StoredRecord> for RecordBody {
    fn from(r: StoredRecord) -> Self {
        let value = serde_json::from_slice(&r.value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.value).into_owned()));
        RecordBody {
            offset: r.offset,
            key: r.key,
            value,
            headers: r.headers.into_iter().collect(),
            timestamp: r.timestamp_ms,
        }
    }
}

/// Response of a fetch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"records": [{"offset": 17, "key": "customer-17", "value": {"order": 1, "total": 990},
    "headers": {"source": "web"}, "timestamp": 1764150020000u64}], "next_offset": 18, "end_offset": 18}))]
pub struct FetchResponse {
    /// Records in offset order.
    pub records: Vec<RecordBody>,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// Offset the next appended record will get.
    pub end_offset: u64,
}

// ---------------------------------------------------------------------------
// cluster / ops
// ---------------------------------------------------------------------------

/// Raft role.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The leader.
    Leader,
    /// A voting follower.
    Follower,
    /// A non-voting learner.
    Learner,
}

/// A cluster node.
#[derive(Debug, Serialize, ToSchema)]
pub struct Node {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub grpc_addr: String,
    /// Role.
    pub role: Role,
    /// Answers health checks.
    pub alive: bool,
    /// Last log index applied.
    pub last_applied: u64,
    /// Last log index covered by the node's current snapshot (0: none yet). A restart applies
    /// again only the log after it.
    pub snapshot_index: u64,
    /// First log index the node still holds (the log starts at 0): entries before it were purged
    /// behind a snapshot (also 0 when empty, or when the node did not answer).
    pub log_first_index: u64,
    /// Bytes of log after the node's snapshot (the next snapshot is taken at lognode's
    /// `--snapshot-log-bytes`).
    pub log_bytes_since_snapshot: u64,
}

/// Response of `GET /v1/cluster`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"leader_id": 1, "nodes": [
    {"id": 1, "grpc_addr": "10.0.0.1:7000", "role": "leader", "alive": true, "last_applied": 120,
     "snapshot_index": 100, "log_first_index": 1, "log_bytes_since_snapshot": 20480},
    {"id": 2, "grpc_addr": "10.0.0.2:7000", "role": "follower", "alive": true, "last_applied": 119,
     "snapshot_index": 100, "log_first_index": 1, "log_bytes_since_snapshot": 19456}
]}))]
pub struct Cluster {
    /// Current leader, if known.
    pub leader_id: Option<u64>,
    /// Members.
    pub nodes: Vec<Node>,
}

impl From<ClusterStatus> for Cluster {
    fn from(c: ClusterStatus) -> Self {
        Cluster { leader_id: c.leader_id, nodes: c.nodes.into_iter().map(Node::from).collect() }
    }
}

impl From<NodeStatus> for Node {
    fn from(n: NodeStatus) -> Self {
        Node {
            id: n.id,
            grpc_addr: n.grpc_addr,
            role: match n.role {
                NodeRole::Leader => Role::Leader,
                NodeRole::Follower => Role::Follower,
                NodeRole::Learner => Role::Learner,
            },
            alive: n.alive,
            last_applied: n.last_applied,
            snapshot_index: n.snapshot_index,
            log_first_index: n.log_first_index,
            log_bytes_since_snapshot: n.log_bytes_since_snapshot,
        }
    }
}

/// Response of `POST /v1/cluster/nodes/{id}/remove`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"removed": 3, "index": 130}))]
pub struct NodeRemoved {
    /// The removed node.
    pub removed: u64,
    /// Log index of the membership change.
    pub index: u64,
}

/// Response of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: String,
}

// ---------------------------------------------------------------------------
// consumer groups
// ---------------------------------------------------------------------------

/// Where a member without a committed offset starts reading a partition.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoOffsetResetBody {
    /// The partition's first stored offset.
    Earliest,
    /// The partition's end offset when it was assigned (the default): only new records.
    Latest,
}

impl From<AutoOffsetResetBody> for group_core::OffsetReset {
    fn from(r: AutoOffsetResetBody) -> Self {
        match r {
            AutoOffsetResetBody::Earliest => group_core::OffsetReset::Earliest,
            AutoOffsetResetBody::Latest => group_core::OffsetReset::Latest,
        }
    }
}

/// Body of `POST /v1/groups/{group}/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"topics": ["ledger"], "session_timeout_ms": 10000, "auto_offset_reset": "earliest"}))]
pub struct JoinGroupRequest {
    /// Subscribed topics (1..=100 distinct, each must exist).
    pub topics: Vec<String>,
    /// Session timeout, 1000..=300000 ms (default 10000): a member silent that long is expired.
    #[schema(minimum = 1000, maximum = 300000)]
    pub session_timeout_ms: Option<u64>,
    /// Start without a committed offset (default `latest`).
    pub auto_offset_reset: Option<AutoOffsetResetBody>,
}

/// A partition of a topic.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TopicPartitionBody {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
}

impl From<group_core::TopicPartition> for TopicPartitionBody {
    fn from(t: group_core::TopicPartition) -> Self {
        TopicPartitionBody { topic: t.topic, partition: t.partition }
    }
}

fn assignments(a: Vec<group_core::TopicPartition>) -> Vec<TopicPartitionBody> {
    a.into_iter().map(TopicPartitionBody::from).collect()
}

/// Answer of a join.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"member_id": "billing-1", "generation": 1,
    "assignments": [{"topic": "ledger", "partition": 0}, {"topic": "ledger", "partition": 1}],
    "heartbeat_interval_ms": 3333}))]
pub struct JoinGroupResponse {
    /// The member id: use it in every later request.
    pub member_id: String,
    /// The group's generation; commits must name it.
    pub generation: u64,
    /// Partitions this member owns in this generation.
    pub assignments: Vec<TopicPartitionBody>,
    /// Heartbeat at least this often (a third of the session timeout).
    pub heartbeat_interval_ms: u64,
}

impl From<group_core::MemberReply> for JoinGroupResponse {
    fn from(m: group_core::MemberReply) -> Self {
        JoinGroupResponse {
            member_id: m.member_id,
            generation: m.generation,
            assignments: assignments(m.assignments),
            heartbeat_interval_ms: m.heartbeat_interval_ms,
        }
    }
}

/// Answer of a heartbeat.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"generation": 2, "assignments": [{"topic": "ledger", "partition": 0}]}))]
pub struct HeartbeatResponse {
    /// The group's current generation.
    pub generation: u64,
    /// Partitions this member owns in it.
    pub assignments: Vec<TopicPartitionBody>,
}

impl From<group_core::MemberReply> for HeartbeatResponse {
    fn from(m: group_core::MemberReply) -> Self {
        HeartbeatResponse { generation: m.generation, assignments: assignments(m.assignments) }
    }
}

/// Query parameters of `GET /v1/groups/{group}/members/{member_id}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupFetchQuery {
    /// Maximum records returned, `1..=1000` (default 100).
    #[param(example = 1000, minimum = 1, maximum = 1000)]
    pub max_records: Option<u32>,
    /// Long poll: when no record is ready, wait up to this long, `0..=30000` ms (default 0).
    #[param(example = 5000, minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
    /// Client-side positions: the next offset you expect, per owned partition, as
    /// `topic:partition:offset` items separated by commas (at most 1024). The fetch starts exactly
    /// there for those partitions, so an answer lost on its way back (timeout, a gateway that
    /// died) is harmless: fetch again with the same positions. Without it, the fetch continues
    /// after the last records the group coordinator sent this member. Partitions you do not own
    /// are ignored; an offset past the end is `offset_out_of_range`.
    #[param(example = "ledger:0:1200,ledger:5:881")]
    pub from: Option<String>,
}

/// A record delivered to a group member.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRecordBody {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// Key, if any.
    pub key: Option<String>,
    /// The JSON value as produced (any JSON value, `null` included; ledger events for the
    /// `ledger` topic).
    #[schema(value_type = Value)]
    pub value: Value,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// Log time (ms since the epoch) of the append.
    pub timestamp: u64,
}

impl From<crate::backend::GroupRecord> for GroupRecordBody {
    fn from(g: crate::backend::GroupRecord) -> Self {
        let r = RecordBody::from(g.record);
        GroupRecordBody {
            topic: g.topic,
            partition: g.partition,
            offset: r.offset,
            key: r.key,
            value: r.value,
            headers: r.headers,
            timestamp: r.timestamp,
        }
    }
}

/// Answer of a group fetch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"generation": 1, "records": [{"topic": "orders", "partition": 0, "offset": 17,
    "key": "customer-17", "value": {"order": 1, "total": 990}, "headers": {"source": "web"},
    "timestamp": 1764150020000u64}]}))]
pub struct GroupFetchResponse {
    /// The group's generation when the records were read.
    pub generation: u64,
    /// Records in offset order per partition (possibly none).
    pub records: Vec<GroupRecordBody>,
}

/// One offset to commit: the next offset to read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The next offset to read (the last processed offset + 1), at most the end offset.
    pub offset: u64,
}

/// Body of `POST /v1/groups/{group}/members/{member_id}/offsets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"generation": 1, "offsets": [{"topic": "ledger", "partition": 0, "offset": 18}]}))]
pub struct CommitOffsetsRequest {
    /// The generation the member is in (from its last heartbeat, join or fetch).
    pub generation: u64,
    /// Offsets, all or nothing (at most 10000).
    #[schema(value_type = Vec<CommitOffset>)]
    pub offsets: Vec<Obj<CommitOffset>>,
}

/// One group in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupSummaryBody {
    /// Group id.
    pub group: String,
    /// Current generation (one per rebalance).
    pub generation: u64,
    /// Number of members.
    pub members: u32,
}

impl From<group_core::GroupSummary> for GroupSummaryBody {
    fn from(g: group_core::GroupSummary) -> Self {
        GroupSummaryBody {
            group: g.group,
            generation: g.generation,
            members: u32::try_from(g.members).unwrap_or(u32::MAX),
        }
    }
}

/// Answer of `GET /v1/groups`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"groups": [{"group": "billing", "generation": 3, "members": 2}]}))]
pub struct GroupList {
    /// Every group, sorted by id (a group outlives its members until it is deleted, or empty for
    /// the retention).
    pub groups: Vec<GroupSummaryBody>,
}

/// A member in a group description.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMemberBody {
    /// Member id.
    pub member_id: String,
    /// Partitions it owns.
    pub assignments: Vec<TopicPartitionBody>,
    /// Its last sign of life (join, heartbeat, fetch or commit), ms since the epoch.
    pub last_heartbeat: u64,
}

impl From<group_core::MemberView> for GroupMemberBody {
    fn from(m: group_core::MemberView) -> Self {
        GroupMemberBody {
            member_id: m.member_id,
            assignments: assignments(m.assignments),
            last_heartbeat: m.last_heartbeat_ms,
        }
    }
}

/// A partition in a group description.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupPartitionBody {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Owning member, or null.
    pub owner: Option<String>,
    /// Committed offset (next offset to read), or null before the first commit.
    pub committed_offset: Option<u64>,
    /// The partition's end offset.
    pub end_offset: u64,
    /// `end_offset - committed_offset`; before a commit, counted from where the owner would start.
    pub lag: u64,
}

impl From<group_core::PartitionView> for GroupPartitionBody {
    fn from(p: group_core::PartitionView) -> Self {
        GroupPartitionBody {
            topic: p.topic,
            partition: p.partition,
            owner: p.owner,
            committed_offset: p.committed_offset,
            end_offset: p.end_offset,
            lag: p.lag,
        }
    }
}

/// Answer of `GET /v1/groups/{group}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"group": "billing", "generation": 2,
    "members": [{"member_id": "billing-2", "assignments": [{"topic": "ledger", "partition": 0}],
                 "last_heartbeat": 1764150020000u64}],
    "partitions": [{"topic": "ledger", "partition": 0, "owner": "billing-2", "committed_offset": 18,
                    "end_offset": 20, "lag": 2}]}))]
pub struct GroupDescriptionBody {
    /// Group id.
    pub group: String,
    /// Current generation.
    pub generation: u64,
    /// Members in join order.
    pub members: Vec<GroupMemberBody>,
    /// Owned partitions and partitions with a committed offset.
    pub partitions: Vec<GroupPartitionBody>,
}

impl From<group_core::GroupView> for GroupDescriptionBody {
    fn from(d: group_core::GroupView) -> Self {
        GroupDescriptionBody {
            group: d.group,
            generation: d.generation,
            members: d.members.into_iter().map(GroupMemberBody::from).collect(),
            partitions: d.partitions.into_iter().map(GroupPartitionBody::from).collect(),
        }
    }
}

/// An explicit offset target of a reset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetToOffset {
    /// The offset (at most the end offset).
    pub offset: u64,
}

/// A timestamp target of a reset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetToTimestamp {
    /// The first offset appended at or after this time (ms since the epoch).
    pub timestamp: u64,
}

/// `earliest` or `latest`.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetToNamed {
    /// The partitions' first stored offsets.
    Earliest,
    /// The partitions' end offsets.
    Latest,
}

/// Where a reset moves the committed offsets.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ResetTo {
    /// `"earliest"` or `"latest"`.
    Named(ResetToNamed),
    /// `{"offset": n}`.
    Offset(ResetToOffset),
    /// `{"timestamp": ms}`.
    Timestamp(ResetToTimestamp),
}

impl From<ResetTo> for group_core::ResetTarget {
    fn from(to: ResetTo) -> Self {
        match to {
            ResetTo::Named(ResetToNamed::Earliest) => group_core::ResetTarget::Earliest,
            ResetTo::Named(ResetToNamed::Latest) => group_core::ResetTarget::Latest,
            ResetTo::Offset(o) => group_core::ResetTarget::Offset(o.offset),
            ResetTo::Timestamp(t) => group_core::ResetTarget::Timestamp(t.timestamp),
        }
    }
}

/// Body of `POST /v1/groups/{group}/offsets/reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"topic": "ledger", "to": "earliest"}))]
pub struct ResetOffsetsRequest {
    /// Topic.
    pub topic: String,
    /// One partition; absent = every partition of the topic.
    pub partition: Option<u32>,
    /// `"earliest"`, `"latest"`, `{"offset": n}` or `{"timestamp": ms}`.
    pub to: ResetTo,
}

/// An offset set by a reset.
#[derive(Debug, Serialize, ToSchema)]
pub struct OffsetResetBody {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The new committed offset.
    pub offset: u64,
}

impl From<(group_core::TopicPartition, u64)> for OffsetResetBody {
    fn from((tp, offset): (group_core::TopicPartition, u64)) -> Self {
        OffsetResetBody { topic: tp.topic, partition: tp.partition, offset }
    }
}

/// Answer of a reset.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"offsets": [{"topic": "ledger", "partition": 0, "offset": 0}], "index": 812}))]
pub struct ResetOffsetsResponse {
    /// The new committed offsets.
    pub offsets: Vec<OffsetResetBody>,
    /// Log index of the reset entry.
    pub index: u64,
}
