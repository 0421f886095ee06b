//! The compact form's first layout ([`crate::COMPACT_TAG_V1`]): `LedgerEvent` as it was before the
//! account limit, closed and transfer flags, kept field for field so that events logs written then
//! still read. postcard is not self-describing: these structs ARE the layout; never change them.

use std::sync::Arc;

use ledger_core::{
    AccountCreatedEvent, AccountState, Balances, LedgerEvent, TransferEvent, TransferEventKind, TransferFlags,
    TransferStatus,
};
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct AccountStateV1 {
    id: Arc<str>,
    balances: Balances,
    updated_index: u64,
    version: u64,
}

#[derive(Deserialize)]
pub(crate) struct AccountCreatedV1 {
    index: u64,
    timestamp_ms: u64,
    id: Arc<str>,
    currency: Arc<str>,
    allow_overdraft: bool,
    metadata: Arc<str>,
}

#[derive(Deserialize)]
pub(crate) struct TransferV1 {
    kind: TransferEventKind,
    index: u64,
    timestamp_ms: u64,
    transfer_id: Arc<str>,
    debit_account_id: Arc<str>,
    credit_account_id: Arc<str>,
    currency: Arc<str>,
    amount: u64,
    event_amount: u64,
    pending: bool,
    expires_at_ms: Option<u64>,
    status: TransferStatus,
    metadata: Arc<str>,
    debit_account: AccountStateV1,
    credit_account: AccountStateV1,
}

/// `LedgerEvent`'s variants in their order then (sized like it: almost every event is a transfer).
#[allow(clippy::large_enum_variant)]
#[derive(Deserialize)]
pub(crate) enum EventV1 {
    AccountCreated(AccountCreatedV1),
    Transfer(TransferV1),
}

impl From<AccountStateV1> for AccountState {
    fn from(s: AccountStateV1) -> Self {
        AccountState {
            id: s.id,
            balances: s.balances,
            updated_index: s.updated_index,
            version: s.version,
            closed: false,
        }
    }
}

impl From<EventV1> for LedgerEvent {
    fn from(e: EventV1) -> Self {
        match e {
            EventV1::AccountCreated(a) => LedgerEvent::AccountCreated(AccountCreatedEvent {
                index: a.index,
                timestamp_ms: a.timestamp_ms,
                id: a.id,
                currency: a.currency,
                allow_overdraft: a.allow_overdraft,
                metadata: a.metadata,
                credits_must_not_exceed_debits: false,
            }),
            EventV1::Transfer(t) => LedgerEvent::Transfer(TransferEvent {
                kind: t.kind,
                index: t.index,
                timestamp_ms: t.timestamp_ms,
                transfer_id: t.transfer_id,
                debit_account_id: t.debit_account_id,
                credit_account_id: t.credit_account_id,
                currency: t.currency,
                amount: t.amount,
                event_amount: t.event_amount,
                pending: t.pending,
                expires_at_ms: t.expires_at_ms,
                status: t.status,
                metadata: t.metadata,
                debit_account: t.debit_account.into(),
                credit_account: t.credit_account.into(),
                flags: TransferFlags::NONE,
            }),
        }
    }
}
