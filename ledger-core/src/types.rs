//! Public data types: commands (log entries), results, views and events.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::code::ResultCode;

/// The built-in topic every [`LedgerEvent`] is published to (rule 9).
pub const LEDGER_TOPIC: &str = "ledger";

/// Where a command sits in the replicated log. Both values come from the
/// log entry, never from the node applying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyContext {
    /// The Raft log index of the entry; strictly increasing across calls.
    pub index: u64,
    /// The leader-assigned timestamp of the entry, in ms since the epoch.
    pub timestamp_ms: u64,
}

/// Request to create an account.
///
/// Encoded (in the Raft log and snapshots) with `allow_overdraft` and
/// `credits_must_not_exceed_debits` packed into the one byte that was
/// `allow_overdraft` alone (bit 0 and bit 1), so entries written before the
/// second flag existed read back unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// Client-chosen id, 1–128 chars of `[A-Za-z0-9._:-]`.
    pub id: String,
    /// Currency code, 3–12 uppercase ASCII letters.
    pub currency: String,
    /// When true the account may go below zero (funding/equity accounts):
    /// its debits may exceed its credits. When false (the default) they may
    /// not (rule 2; TigerBeetle's `debits_must_not_exceed_credits`).
    pub allow_overdraft: bool,
    /// The liability-side limit (rule 10): credits may never exceed debits.
    /// Only with `allow_overdraft` (an account limited on both sides could
    /// never move).
    pub credits_must_not_exceed_debits: bool,
    /// Opaque canonical JSON object text (at most `METADATA_BYTES_MAX` bytes).
    pub metadata: String,
}

/// Flags of a new transfer besides `pending` (rules 10 and 11, with
/// TigerBeetle's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferFlags {
    /// Move at most `amount`: less when the debit account's debits would
    /// otherwise exceed its credits.
    pub balancing_debit: bool,
    /// Move at most `amount`: less when the credit account's credits would
    /// otherwise exceed its debits.
    pub balancing_credit: bool,
    /// Close the debit account (pending transfers only; a void or expiry
    /// reopens it).
    pub closing_debit: bool,
    /// Close the credit account (pending transfers only; a void or expiry
    /// reopens it).
    pub closing_credit: bool,
}

impl TransferFlags {
    /// No flag.
    pub const NONE: TransferFlags =
        TransferFlags { balancing_debit: false, balancing_credit: false, closing_debit: false, closing_credit: false };

    /// `pending` and the flags in one byte: bit 0 pending, then the flags in
    /// declaration order (bits 1–4).
    pub const fn bits(self, pending: bool) -> u8 {
        (pending as u8)
            | (self.balancing_debit as u8) << 1
            | (self.balancing_credit as u8) << 2
            | (self.closing_debit as u8) << 3
            | (self.closing_credit as u8) << 4
    }

    /// The inverse of [`TransferFlags::bits`]: `(pending, flags)`, or `None`
    /// when an unknown bit is set.
    pub const fn from_bits(b: u8) -> Option<(bool, TransferFlags)> {
        if b & !0x1f != 0 {
            return None;
        }
        let flags = TransferFlags {
            balancing_debit: b & 2 != 0,
            balancing_credit: b & 4 != 0,
            closing_debit: b & 8 != 0,
            closing_credit: b & 16 != 0,
        };
        Some((b & 1 != 0, flags))
    }

    /// A balancing flag is set.
    pub const fn balancing(self) -> bool {
        self.balancing_debit || self.balancing_credit
    }

    /// A closing flag is set.
    pub const fn closing(self) -> bool {
        self.closing_debit || self.closing_credit
    }
}

/// Request to create a transfer (posted at once, or pending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    /// Client-chosen id; the idempotency key forever.
    pub id: String,
    /// Account debited.
    pub debit_account_id: String,
    /// Account credited.
    pub credit_account_id: String,
    /// Amount in integer minor units, `1..=AMOUNT_MAX`.
    pub amount: u64,
    /// Currency; both accounts must have it.
    pub currency: String,
    /// Opaque canonical JSON object text (at most `METADATA_BYTES_MAX` bytes).
    pub metadata: String,
    /// True for a two-phase transfer that only reserves funds.
    pub pending: bool,
    /// Pending only: the reservation expires `timeout_ms` after the log time
    /// of its creation. `None` = never expires. `1..=TIMEOUT_MS_MAX`.
    pub timeout_ms: Option<u64>,
    /// Balancing and closing (rules 10 and 11). Encoded in one byte with
    /// `pending` (see [`TransferFlags::bits`]): the byte that was `pending`
    /// alone, so older log entries read back unchanged.
    pub flags: TransferFlags,
}

mod wire {
    //! The encodings of [`NewAccount`] and [`NewTransfer`]: the fields in
    //! their old order, with the flags packed into the old boolean's byte.

    use serde::de::Error as _;
    use serde::ser::SerializeStruct;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{NewAccount, NewTransfer, TransferFlags};

    impl Serialize for NewAccount {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut st = s.serialize_struct("NewAccount", 4)?;
            st.serialize_field("id", &self.id)?;
            st.serialize_field("currency", &self.currency)?;
            let flags = u8::from(self.allow_overdraft) | u8::from(self.credits_must_not_exceed_debits) << 1;
            st.serialize_field("allow_overdraft", &flags)?;
            st.serialize_field("metadata", &self.metadata)?;
            st.end()
        }
    }

    #[derive(Deserialize)]
    #[serde(rename = "NewAccount")]
    struct AccountWire {
        id: String,
        currency: String,
        allow_overdraft: u8,
        metadata: String,
    }

    impl<'de> Deserialize<'de> for NewAccount {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let w = AccountWire::deserialize(d)?;
            if w.allow_overdraft > 3 {
                return Err(D::Error::custom(format!("unknown account flags {:#x}", w.allow_overdraft)));
            }
            Ok(NewAccount {
                id: w.id,
                currency: w.currency,
                allow_overdraft: w.allow_overdraft & 1 != 0,
                credits_must_not_exceed_debits: w.allow_overdraft & 2 != 0,
                metadata: w.metadata,
            })
        }
    }

    impl Serialize for NewTransfer {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut st = s.serialize_struct("NewTransfer", 8)?;
            st.serialize_field("id", &self.id)?;
            st.serialize_field("debit_account_id", &self.debit_account_id)?;
            st.serialize_field("credit_account_id", &self.credit_account_id)?;
            st.serialize_field("amount", &self.amount)?;
            st.serialize_field("currency", &self.currency)?;
            st.serialize_field("metadata", &self.metadata)?;
            st.serialize_field("pending", &self.flags.bits(self.pending))?;
            st.serialize_field("timeout_ms", &self.timeout_ms)?;
            st.end()
        }
    }

    #[derive(Deserialize)]
    #[serde(rename = "NewTransfer")]
    struct TransferWire {
        id: String,
        debit_account_id: String,
        credit_account_id: String,
        amount: u64,
        currency: String,
        metadata: String,
        pending: u8,
        timeout_ms: Option<u64>,
    }

    impl<'de> Deserialize<'de> for NewTransfer {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let w = TransferWire::deserialize(d)?;
            let (pending, flags) = TransferFlags::from_bits(w.pending)
                .ok_or_else(|| D::Error::custom(format!("unknown transfer flags {:#x}", w.pending)))?;
            Ok(NewTransfer {
                id: w.id,
                debit_account_id: w.debit_account_id,
                credit_account_id: w.credit_account_id,
                amount: w.amount,
                currency: w.currency,
                metadata: w.metadata,
                pending,
                timeout_ms: w.timeout_ms,
                flags,
            })
        }
    }
}

/// One log entry for the ledger state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create one account.
    CreateAccount(NewAccount),
    /// Create one transfer.
    CreateTransfer(NewTransfer),
    /// Create up to `BATCH_TRANSFERS_MAX` transfers in one entry.
    CreateTransfers {
        /// The transfers, decided in order.
        transfers: Vec<NewTransfer>,
        /// All or nothing when true; each on its own when false.
        atomic: bool,
    },
    /// Post a pending transfer: the full amount (`None`) or a smaller one,
    /// the rest being released. Idempotent on (pending id, post, amount).
    PostPending {
        /// Id of the pending transfer.
        pending_id: String,
        /// Amount to post; `None` = the full pending amount.
        amount: Option<u64>,
    },
    /// Void a pending transfer, releasing its funds. Idempotent on
    /// (pending id, void).
    VoidPending {
        /// Id of the pending transfer.
        pending_id: String,
    },
    /// Leader-proposed: expire every pending transfer whose deadline is
    /// `<= now_ms` (at most `EXPIRE_PER_ENTRY_MAX` per entry).
    ExpirePending {
        /// Log time up to which pending transfers expire.
        now_ms: u64,
    },
}

/// The four balance counters of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Balances {
    /// Sum of posted debits.
    pub debits_posted: u128,
    /// Sum of posted credits.
    pub credits_posted: u128,
    /// Sum of debits reserved by pending transfers.
    pub debits_pending: u128,
    /// Sum of credits reserved by pending transfers.
    pub credits_pending: u128,
}

impl Balances {
    /// `credits_posted − debits_posted`. Always fits because each side is
    /// kept `<= BALANCE_MAX` (= `i128::MAX`).
    pub fn balance(&self) -> i128 {
        to_i128(self.credits_posted) - to_i128(self.debits_posted)
    }

    /// `balance − debits_pending` = `credits_posted − (debits_posted +
    /// debits_pending)`; fits in i128 by the same ceiling.
    pub fn available(&self) -> i128 {
        to_i128(self.credits_posted) - to_i128(self.debits_posted + self.debits_pending)
    }
}

fn to_i128(v: u128) -> i128 {
    // The ledger keeps every side <= BALANCE_MAX == i128::MAX.
    i128::try_from(v).unwrap_or(i128::MAX)
}

/// Status of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Funds reserved, waiting for post/void/expiry.
    Pending,
    /// Funds moved.
    Posted,
    /// Reservation released by a void.
    Voided,
    /// Reservation released because its timeout passed in log time.
    Expired,
}

impl TransferStatus {
    /// Stable snake_case string.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Pending => "pending",
            TransferStatus::Posted => "posted",
            TransferStatus::Voided => "voided",
            TransferStatus::Expired => "expired",
        }
    }
}

/// A decision about a transfer: what status it got, at which log index and
/// log time, and the amount concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Status the decision gave the transfer.
    pub status: TransferStatus,
    /// Log index of the entry that decided it.
    pub index: u64,
    /// Log time (ms) of that entry.
    pub timestamp_ms: u64,
    /// Creation: the transfer amount (reserved if pending). Post: the posted
    /// amount. Void/expiry: the released pending amount.
    pub amount: u64,
}

/// Result of `CreateAccount`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountResult {
    /// `created`, `exists` or an error code.
    pub code: ResultCode,
    /// For `created`/`exists`: log index and log time of the creation.
    pub created: Option<(u64, u64)>,
}

/// Result of one transfer creation, post or void.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferResult {
    /// The code.
    pub code: ResultCode,
    /// For success codes: the decision made (for `exists`, the original one).
    pub decision: Option<Decision>,
}

impl TransferResult {
    pub(crate) const fn err(code: ResultCode) -> Self {
        TransferResult { code, decision: None }
    }
}

/// The failing item of an atomic batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchFailure {
    /// Position of the failing item in the batch (0-based).
    pub item: u32,
    /// Its code.
    pub code: ResultCode,
}

/// Result of `CreateTransfers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// `batch_too_large` for an oversized batch (then `results` is empty),
    /// `linked_event_failed` for a failed atomic batch, else `created`.
    pub code: ResultCode,
    /// One result per item, in order.
    pub results: Vec<TransferResult>,
    /// Atomic batches only: the item that made the batch fail.
    pub failed: Option<BatchFailure>,
}

/// Result of `ExpirePending`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireResult {
    /// How many pending transfers this entry expired.
    pub expired: u32,
    /// True if more are already due (the per-entry cap was hit).
    pub more_due: bool,
}

/// What `Ledger::apply` decided for a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// For `CreateAccount`.
    Account(AccountResult),
    /// For `CreateTransfer`, `PostPending`, `VoidPending`.
    Transfer(TransferResult),
    /// For `CreateTransfers`.
    Batch(BatchResult),
    /// For `ExpirePending`.
    Expire(ExpireResult),
}

/// An account as read from the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// Account id.
    pub id: Arc<str>,
    /// Currency.
    pub currency: Arc<str>,
    /// Overdraft allowed.
    pub allow_overdraft: bool,
    /// Credits may not exceed debits (rule 10).
    pub credits_must_not_exceed_debits: bool,
    /// Closed by a closing transfer (rule 11): refuses new transfers. The
    /// account's state now, also in a view as of an earlier index.
    pub closed: bool,
    /// Opaque metadata text.
    pub metadata: Arc<str>,
    /// Log index of the creation.
    pub created_index: u64,
    /// Log time of the creation.
    pub created_timestamp_ms: u64,
    /// Balance counters.
    pub balances: Balances,
    /// `credits_posted − debits_posted`.
    pub balance: i128,
    /// `balance − debits_pending`.
    pub available: i128,
    /// Last log index that changed the account (creation included).
    pub index: u64,
    /// Number of balance changes so far (0 right after creation); strictly
    /// increasing per account, so projectors can upsert on it.
    pub version: u64,
}

/// A transfer as read from the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    /// Transfer id.
    pub id: Arc<str>,
    /// Debited account.
    pub debit_account_id: Arc<str>,
    /// Credited account.
    pub credit_account_id: Arc<str>,
    /// Amount (reserved amount for a pending transfer).
    pub amount: u64,
    /// Currency.
    pub currency: Arc<str>,
    /// Opaque metadata text.
    pub metadata: Arc<str>,
    /// Created as a pending (two-phase) transfer.
    pub pending: bool,
    /// Balancing and closing flags given at creation.
    pub flags: TransferFlags,
    /// Timeout given at creation.
    pub timeout_ms: Option<u64>,
    /// Log time at which the reservation expires.
    pub expires_at_ms: Option<u64>,
    /// Current status.
    pub status: TransferStatus,
    /// The creation decision.
    pub created: Decision,
    /// Pending transfers only: the post/void/expiry decision, once made.
    pub resolution: Option<Decision>,
}

/// Kind of a transfer lifecycle event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferEventKind {
    /// A transfer was created (posted at once or pending).
    Created,
    /// A pending transfer was posted.
    Posted,
    /// A pending transfer was voided.
    Voided,
    /// A pending transfer expired.
    Expired,
}

impl TransferEventKind {
    /// Stable snake_case string.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransferEventKind::Created => "created",
            TransferEventKind::Posted => "posted",
            TransferEventKind::Voided => "voided",
            TransferEventKind::Expired => "expired",
        }
    }
}

/// State of one account right after an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Account id.
    pub id: Arc<str>,
    /// Balance counters after the event (`balances.balance()` and
    /// `balances.available()` give the derived values).
    pub balances: Balances,
    /// Log index of the event (`updated_index` for projectors).
    pub updated_index: u64,
    /// Per-account change counter after the event: strictly increasing, so
    /// it also orders several changes made by one log entry (a batch).
    pub version: u64,
    /// Closed by a pending closing transfer (rule 11) right after the event.
    pub closed: bool,
}

/// An account was created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreatedEvent {
    /// Log index.
    pub index: u64,
    /// Log time (ms).
    pub timestamp_ms: u64,
    /// Account id (the partition key).
    pub id: Arc<str>,
    /// Currency.
    pub currency: Arc<str>,
    /// Overdraft allowed.
    pub allow_overdraft: bool,
    /// Opaque metadata text.
    pub metadata: Arc<str>,
    /// Credits may never exceed debits (rule 10).
    pub credits_must_not_exceed_debits: bool,
}

/// A transfer lifecycle event: created, posted, voided or expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferEvent {
    /// What happened.
    pub kind: TransferEventKind,
    /// Log index of the entry.
    pub index: u64,
    /// Log time (ms) of the entry.
    pub timestamp_ms: u64,
    /// Transfer id (the partition key).
    pub transfer_id: Arc<str>,
    /// Debited account id.
    pub debit_account_id: Arc<str>,
    /// Credited account id.
    pub credit_account_id: Arc<str>,
    /// Currency.
    pub currency: Arc<str>,
    /// Transfer amount as created (reserved amount for pending).
    pub amount: u64,
    /// Amount this event concerns: created → amount; posted → posted
    /// amount; voided/expired → released amount.
    pub event_amount: u64,
    /// Created as pending.
    pub pending: bool,
    /// Log time at which the reservation expires, if any.
    pub expires_at_ms: Option<u64>,
    /// Status of the transfer after the event.
    pub status: TransferStatus,
    /// Opaque metadata of the transfer.
    pub metadata: Arc<str>,
    /// Debit account right after the event.
    pub debit_account: AccountState,
    /// Credit account right after the event.
    pub credit_account: AccountState,
    /// The transfer's balancing and closing flags (rules 10 and 11).
    pub flags: TransferFlags,
}

/// An event for the topic [`LEDGER_TOPIC`] (rule 9).
// Almost every event is a transfer event; boxing it would cost one heap
// allocation per transfer in the hot path for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerEvent {
    /// Account creation.
    AccountCreated(AccountCreatedEvent),
    /// Transfer lifecycle.
    Transfer(TransferEvent),
}

impl LedgerEvent {
    /// Partition key: the transfer id for transfer lifecycle events (so a
    /// pending transfer and its post/void/expiry stay in order), the
    /// account id for account creation.
    pub fn partition_key(&self) -> &str {
        match self {
            LedgerEvent::AccountCreated(e) => &e.id,
            LedgerEvent::Transfer(e) => &e.transfer_id,
        }
    }

    /// Log index of the entry that produced the event.
    pub fn index(&self) -> u64 {
        match self {
            LedgerEvent::AccountCreated(e) => e.index,
            LedgerEvent::Transfer(e) => e.index,
        }
    }
}

/// Where an `account_transfers` page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryFrom {
    /// From the first change.
    Start,
    /// After the change with this `version` (the `next` cursor of a page).
    AfterVersion(u64),
    /// After every change made at log index `<=` this one.
    AfterIndex(u64),
}

/// One balance change of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Account version after this change (1 for the first change).
    pub version: u64,
    /// Log index of the change.
    pub index: u64,
    /// Log time of the change.
    pub timestamp_ms: u64,
    /// Transfer that caused it.
    pub transfer_id: Arc<str>,
    /// What happened to the transfer.
    pub kind: TransferEventKind,
    /// Balances right after the change.
    pub balances: Balances,
}

/// One page of an account's history, ordered by (index, version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The entries.
    pub entries: Vec<HistoryEntry>,
    /// Cursor for the next page (`HistoryFrom::AfterVersion(next)`), or
    /// `None` at the end.
    pub next: Option<u64>,
}
