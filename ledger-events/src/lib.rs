//! `ledger-events`: the JSON encoding of [`LedgerEvent`]s, i.e. the `value`
//! of every record on the built-in topic `ledger` ([`LEDGER_TOPIC`]).
//!
//! `ledger-core` knows nothing about JSON; this crate is the single place
//! that defines the wire format (documented in `README.md`, pinned by the
//! golden file `tests/golden.json`).
//!
//! - [`encode`] turns a `ledger-core` event into JSON bytes (nodes call it
//!   when publishing).
//! - [`decode`] parses those bytes into the owned [`EventJson`] (projectors
//!   and users' services call it). Unknown fields are ignored so that
//!   fields can be added later without breaking consumers.
//! - [`partition_key`] is the record key (transfer id or account id).
//! - [`encode_compact`] / [`stored_to_json`]: the compact binary form lognode keeps at rest in
//!   its events log ([`COMPACT_TAG`], then postcard), turned into the JSON above when a consumer
//!   reads it. Consumers only ever see JSON.
//!
//! Balance counters are `u128` and `balance`/`available` are `i128`; all are
//! plain JSON integers (consumers in languages without 128-bit integers
//! must parse them as big integers). Metadata is embedded as the JSON value
//! itself (the object), not as a string.
//!
//! ```
//! use ledger_core::{ApplyContext, Command, Ledger, NewAccount};
//!
//! let mut ledger = Ledger::default();
//! let cmd = Command::CreateAccount(NewAccount {
//!     id: "alice".into(), currency: "USD".into(), allow_overdraft: false, metadata: r#"{"owner":"Alice"}"#.into(),
//!     credits_must_not_exceed_debits: false,
//! });
//! let (_, events) = ledger.apply(&cmd, ApplyContext { index: 1, timestamp_ms: 1000 });
//! let bytes = ledger_events::encode(&events[0]);
//! assert_eq!(
//!     std::str::from_utf8(&bytes).unwrap(),
//!     r#"{"type":"account_created","index":1,"timestamp_ms":1000,"id":"alice","currency":"USD","allow_overdraft":false,"metadata":{"owner":"Alice"}}"#
//! );
//! let decoded = ledger_events::decode(&bytes).unwrap();
//! assert_eq!(decoded.to_ledger_event(), events[0]);
//! assert_eq!(ledger_events::partition_key(&events[0]), "alice");
//! ```

use std::borrow::Cow;

use ledger_core::{
    AccountCreatedEvent, AccountState, Balances, LEDGER_TOPIC, LedgerEvent, TransferEvent, TransferEventKind,
    TransferFlags, TransferStatus,
};

mod legacy;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// The topic the events are published to (re-exported from `ledger-core`).
pub const TOPIC: &str = LEDGER_TOPIC;

/// Error of [`decode`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not JSON, or a field is missing or has the wrong type.
    #[error("invalid ledger event JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The `type` field names an event type this version does not know.
    #[error("unknown ledger event type {0:?}")]
    UnknownType(String),
    /// A stored value in the compact form does not decode.
    #[error("invalid compact ledger event: {0}")]
    Compact(#[from] postcard::Error),
    /// A stored value is neither JSON nor the compact form.
    #[error("a stored ledger event starts with byte {0:#04x}: neither JSON nor the compact form")]
    UnknownForm(u8),
}

/// Encodes an event as compact JSON (the record value on topic `ledger`).
///
/// Metadata is ledger-core's canonical JSON text and is embedded as is;
/// text that is not valid JSON (impossible through the gateway, which only
/// stores JSON objects) is embedded as a JSON string instead, like the
/// gateway does on reads.
pub fn encode(event: &LedgerEvent) -> Vec<u8> {
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_vec(&EventJson::from(event)).unwrap_or_default()
}

/// First byte of an event in its compact form: never the first byte of [`encode`]'s JSON (`{`),
/// so a stored value says which form it is in (events logs written before the compact form hold
/// JSON, and stay readable). A later codec or a change of [`LedgerEvent`]'s fields takes another
/// tag, and the older ones stay readable: 2 (2026-12-05) added the account limit and closed
/// flags and the transfer flags; 1 ([`COMPACT_TAG_V1`]) is the layout before them.
pub const COMPACT_TAG: u8 = 0x02;
/// The compact form written before 2026-12-05 (no account limit, closed or transfer flags): read,
/// never written.
pub const COMPACT_TAG_V1: u8 = 0x01;

/// The compact form of an event, as lognode keeps it at rest: [`COMPACT_TAG`], then the event in
/// postcard (varint integers, so small balances take a byte or two). About a quarter of the JSON's
/// size, and far cheaper to produce: every node encodes every event as it applies the log, while
/// JSON is needed only for the events a consumer reads ([`stored_to_json`]).
pub fn encode_compact(event: &LedgerEvent) -> Vec<u8> {
    // Serializing plain structs of strings and integers into memory cannot fail.
    postcard::to_extend(event, vec![COMPACT_TAG]).unwrap_or_default()
}

/// Decodes [`encode_compact`]'s bytes.
pub fn decode_compact(bytes: &[u8]) -> Result<LedgerEvent, Error> {
    match bytes.split_first() {
        Some((&COMPACT_TAG, body)) => Ok(postcard::from_bytes(body)?),
        Some((&COMPACT_TAG_V1, body)) => Ok(postcard::from_bytes::<legacy::EventV1>(body)?.into()),
        Some((&b, _)) => Err(Error::UnknownForm(b)),
        None => Err(Error::UnknownForm(0)),
    }
}

/// The record key and JSON value of a stored `ledger` event value: a compact one is decoded and
/// encoded with [`encode`] (byte for byte what encoding the event directly gives, so every node
/// serves the same records whatever form it stored them in); JSON is returned as it is, with
/// `stored_key`.
pub fn stored_to_json(stored_key: Vec<u8>, value: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>), Error> {
    match value.first() {
        Some(b'{') => Ok((stored_key, value)),
        _ => {
            let event = decode_compact(&value)?;
            Ok((event.partition_key().as_bytes().to_vec(), encode(&event)))
        }
    }
}

/// Decodes the JSON bytes of a `ledger` record value.
pub fn decode(bytes: &[u8]) -> Result<EventJson, Error> {
    #[derive(Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        ty: Cow<'a, str>,
    }
    // Two passes: the tag, then the concrete struct. A serde internally
    // tagged enum would buffer the numbers and lose u128/i128 precision.
    let tag: Tag<'_> = serde_json::from_slice(bytes)?;
    match tag.ty.as_ref() {
        ACCOUNT_CREATED => Ok(EventJson::AccountCreated(serde_json::from_slice(bytes)?)),
        TRANSFER => Ok(EventJson::Transfer(serde_json::from_slice(bytes)?)),
        other => Err(Error::UnknownType(other.to_owned())),
    }
}

/// The record key of an event: the transfer id for transfer events, the
/// account id for account creation (rule 9).
pub fn partition_key(event: &LedgerEvent) -> &str {
    event.partition_key()
}

const ACCOUNT_CREATED: &str = "account_created";
const TRANSFER: &str = "transfer";

/// A decoded `ledger` event (owned). Serializes back to the exact JSON
/// [`encode`] produces.
// Like `LedgerEvent`: almost every event is a transfer; boxing would cost an
// allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventJson {
    /// `"type": "account_created"`.
    AccountCreated(AccountCreatedJson),
    /// `"type": "transfer"`.
    Transfer(TransferJson),
}

impl<'de> Deserialize<'de> for EventJson {
    /// Only works with the `serde_json` deserializer (the format is JSON).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        decode(raw.get().as_bytes()).map_err(D::Error::custom)
    }
}

impl PartialEq for EventJson {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_vec(self).ok() == serde_json::to_vec(other).ok()
    }
}

impl Eq for EventJson {}

impl EventJson {
    /// Log index of the entry that produced the event.
    pub fn index(&self) -> u64 {
        match self {
            EventJson::AccountCreated(e) => e.index,
            EventJson::Transfer(e) => e.index,
        }
    }

    /// Record key (transfer id or account id).
    pub fn partition_key(&self) -> &str {
        match self {
            EventJson::AccountCreated(e) => &e.id,
            EventJson::Transfer(e) => &e.transfer_id,
        }
    }

    /// Back to the `ledger-core` event (`balance`/`available` are derived
    /// there and therefore not read).
    pub fn to_ledger_event(&self) -> LedgerEvent {
        match self {
            EventJson::AccountCreated(e) => LedgerEvent::AccountCreated(AccountCreatedEvent {
                index: e.index,
                timestamp_ms: e.timestamp_ms,
                id: e.id.as_str().into(),
                currency: e.currency.as_str().into(),
                allow_overdraft: e.allow_overdraft,
                metadata: metadata_text(&e.metadata).into(),
                credits_must_not_exceed_debits: e.credits_must_not_exceed_debits,
            }),
            EventJson::Transfer(e) => LedgerEvent::Transfer(TransferEvent {
                kind: e.kind.into(),
                index: e.index,
                timestamp_ms: e.timestamp_ms,
                transfer_id: e.transfer_id.as_str().into(),
                debit_account_id: e.debit_account_id.as_str().into(),
                credit_account_id: e.credit_account_id.as_str().into(),
                currency: e.currency.as_str().into(),
                amount: e.amount,
                event_amount: e.event_amount,
                pending: e.pending,
                expires_at_ms: e.expires_at_ms,
                status: e.status.into(),
                metadata: metadata_text(&e.metadata).into(),
                debit_account: e.debit_account.to_state(),
                credit_account: e.credit_account.to_state(),
                flags: TransferFlags {
                    balancing_debit: e.balancing_debit,
                    balancing_credit: e.balancing_credit,
                    closing_debit: e.closing_debit,
                    closing_credit: e.closing_credit,
                },
            }),
        }
    }
}

/// `"type": "account_created"`: an account was created.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountCreatedJson {
    /// Log index of the entry.
    pub index: u64,
    /// Log time (ms since the epoch) of the entry.
    pub timestamp_ms: u64,
    /// Account id (the record key).
    pub id: String,
    /// Currency code.
    pub currency: String,
    /// Overdraft allowed.
    pub allow_overdraft: bool,
    /// The account's metadata (a JSON object).
    pub metadata: Box<RawValue>,
    /// Credits may never exceed debits (rule 10); absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub credits_must_not_exceed_debits: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `"type": "transfer"`: a transfer was created, posted, voided or expired.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferJson {
    /// What happened.
    pub kind: EventKind,
    /// Log index of the entry.
    pub index: u64,
    /// Log time (ms since the epoch) of the entry.
    pub timestamp_ms: u64,
    /// Transfer id (the record key).
    pub transfer_id: String,
    /// Debited account id.
    pub debit_account_id: String,
    /// Credited account id.
    pub credit_account_id: String,
    /// Currency code.
    pub currency: String,
    /// Transfer amount as created (reserved amount for a pending transfer).
    pub amount: u64,
    /// Amount this event concerns: created → `amount`; posted → posted
    /// amount; voided/expired → released amount.
    pub event_amount: u64,
    /// Created as a pending (two-phase) transfer.
    pub pending: bool,
    /// Log time at which the reservation expires, if any (`null` otherwise).
    pub expires_at_ms: Option<u64>,
    /// Status of the transfer after the event.
    pub status: Status,
    /// The transfer's metadata (a JSON object).
    pub metadata: Box<RawValue>,
    /// Debited account right after the event.
    pub debit_account: AccountStateJson,
    /// Credited account right after the event.
    pub credit_account: AccountStateJson,
    /// A balancing debit (moved at most `amount`, rule 10); absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub balancing_debit: bool,
    /// A balancing credit; absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub balancing_credit: bool,
    /// A closing debit (closes the debit account while pending or posted, rule 11); absent when
    /// false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub closing_debit: bool,
    /// A closing credit; absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub closing_credit: bool,
}

/// State of one account right after a transfer event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStateJson {
    /// Account id.
    pub id: String,
    /// Sum of posted debits.
    pub debits_posted: u128,
    /// Sum of posted credits.
    pub credits_posted: u128,
    /// Sum of pending debits.
    pub debits_pending: u128,
    /// Sum of pending credits.
    pub credits_pending: u128,
    /// `credits_posted − debits_posted`.
    pub balance: i128,
    /// `balance − debits_pending`.
    pub available: i128,
    /// Log index of the event.
    pub updated_index: u64,
    /// Per-account change counter after the event (strictly increasing):
    /// a projector updates its row only when this is greater than the
    /// stored version.
    pub version: u64,
    /// The account is closed (rule 11) right after the event; absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub closed: bool,
}

impl AccountStateJson {
    /// The four counters.
    pub fn balances(&self) -> Balances {
        Balances {
            debits_posted: self.debits_posted,
            credits_posted: self.credits_posted,
            debits_pending: self.debits_pending,
            credits_pending: self.credits_pending,
        }
    }

    fn to_state(&self) -> AccountState {
        AccountState {
            id: self.id.as_str().into(),
            balances: self.balances(),
            updated_index: self.updated_index,
            version: self.version,
            closed: self.closed,
        }
    }
}

impl From<&AccountState> for AccountStateJson {
    fn from(s: &AccountState) -> Self {
        AccountStateJson {
            id: s.id.to_string(),
            debits_posted: s.balances.debits_posted,
            credits_posted: s.balances.credits_posted,
            debits_pending: s.balances.debits_pending,
            credits_pending: s.balances.credits_pending,
            balance: s.balances.balance(),
            available: s.balances.available(),
            updated_index: s.updated_index,
            version: s.version,
            closed: s.closed,
        }
    }
}

/// `kind` of a transfer event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The transfer was created (posted at once, or pending).
    Created,
    /// A pending transfer was posted.
    Posted,
    /// A pending transfer was voided.
    Voided,
    /// A pending transfer expired.
    Expired,
}

impl EventKind {
    /// The JSON string.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Posted => "posted",
            EventKind::Voided => "voided",
            EventKind::Expired => "expired",
        }
    }
}

impl From<TransferEventKind> for EventKind {
    fn from(k: TransferEventKind) -> Self {
        match k {
            TransferEventKind::Created => EventKind::Created,
            TransferEventKind::Posted => EventKind::Posted,
            TransferEventKind::Voided => EventKind::Voided,
            TransferEventKind::Expired => EventKind::Expired,
        }
    }
}

impl From<EventKind> for TransferEventKind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Created => TransferEventKind::Created,
            EventKind::Posted => TransferEventKind::Posted,
            EventKind::Voided => TransferEventKind::Voided,
            EventKind::Expired => TransferEventKind::Expired,
        }
    }
}

/// `status` of a transfer after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Funds reserved, waiting for post/void/expiry.
    Pending,
    /// Funds moved.
    Posted,
    /// Reservation released by a void.
    Voided,
    /// Reservation released by expiry.
    Expired,
}

impl Status {
    /// The JSON string (same values as the gateway's `status`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Posted => "posted",
            Status::Voided => "voided",
            Status::Expired => "expired",
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

impl From<&LedgerEvent> for EventJson {
    fn from(event: &LedgerEvent) -> Self {
        match event {
            LedgerEvent::AccountCreated(e) => EventJson::AccountCreated(AccountCreatedJson {
                index: e.index,
                timestamp_ms: e.timestamp_ms,
                id: e.id.to_string(),
                currency: e.currency.to_string(),
                allow_overdraft: e.allow_overdraft,
                metadata: metadata_raw(&e.metadata),
                credits_must_not_exceed_debits: e.credits_must_not_exceed_debits,
            }),
            LedgerEvent::Transfer(e) => EventJson::Transfer(TransferJson {
                kind: e.kind.into(),
                index: e.index,
                timestamp_ms: e.timestamp_ms,
                transfer_id: e.transfer_id.to_string(),
                debit_account_id: e.debit_account_id.to_string(),
                credit_account_id: e.credit_account_id.to_string(),
                currency: e.currency.to_string(),
                amount: e.amount,
                event_amount: e.event_amount,
                pending: e.pending,
                expires_at_ms: e.expires_at_ms,
                status: e.status.into(),
                metadata: metadata_raw(&e.metadata),
                debit_account: (&e.debit_account).into(),
                credit_account: (&e.credit_account).into(),
                balancing_debit: e.flags.balancing_debit,
                balancing_credit: e.flags.balancing_credit,
                closing_debit: e.flags.closing_debit,
                closing_credit: e.flags.closing_credit,
            }),
        }
    }
}

/// Metadata text → embedded JSON value (a JSON string if not valid JSON).
fn metadata_raw(text: &str) -> Box<RawValue> {
    if !text.starts_with('"')
        && let Ok(raw) = RawValue::from_string(text.to_owned())
    {
        return raw;
    }
    // Not JSON (or itself a JSON string): embed the text as a JSON string.
    // `to_string` of a &str cannot fail; the fallback is never used.
    let quoted = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned());
    RawValue::from_string(quoted).unwrap_or_else(|_| empty_object())
}

/// Embedded JSON value → ledger-core's metadata text (inverse of
/// [`metadata_raw`] for the canonical text the gateway stores).
pub fn metadata_text(raw: &RawValue) -> String {
    let s = raw.get();
    if s.starts_with('"') { serde_json::from_str::<String>(s).unwrap_or_else(|_| s.to_owned()) } else { s.to_owned() }
}

fn empty_object() -> Box<RawValue> {
    // "{}" is valid JSON; this cannot fail.
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("\"{{}}\" is valid JSON"))
}
