//! `ledger-core`: the pure, deterministic rules of the Ledger.
//!
//! The source of truth is a replicated append-only log (Raft). Every node
//! feeds the same [`Command`]s, in the same order, with the same
//! [`ApplyContext`] (log index and leader-assigned timestamp) to
//! [`Ledger::apply`], and therefore reaches the same state, outcomes and
//! [`LedgerEvent`]s. The crate does no I/O, reads no clock and uses no
//! randomness; hash maps use a fixed hasher and are never iterated.
//!
//! The rules are numbered in `docs/LEDGER_RULES.md`; tests cite them.
//!
//! ```
//! use ledger_core::{ApplyContext, Command, Ledger, NewAccount, NewTransfer, Outcome, ResultCode};
//!
//! let mut ledger = Ledger::default();
//! let acct = |id: &str, overdraft| Command::CreateAccount(NewAccount {
//!     id: id.into(), currency: "USD".into(), allow_overdraft: overdraft,
//!     credits_must_not_exceed_debits: false, metadata: "{}".into(),
//! });
//! ledger.apply(&acct("equity", true), ApplyContext { index: 1, timestamp_ms: 1000 });
//! ledger.apply(&acct("alice", false), ApplyContext { index: 2, timestamp_ms: 1001 });
//! let t = Command::CreateTransfer(NewTransfer {
//!     id: "t1".into(), debit_account_id: "equity".into(), credit_account_id: "alice".into(),
//!     amount: 500, currency: "USD".into(), metadata: "{}".into(), pending: false, timeout_ms: None,
//!     flags: Default::default(),
//! });
//! let (outcome, events) = ledger.apply(&t, ApplyContext { index: 3, timestamp_ms: 1002 });
//! let Outcome::Transfer(r) = outcome else { unreachable!() };
//! assert_eq!(r.code, ResultCode::Created);
//! assert_eq!(events[0].partition_key(), "t1");
//! assert_eq!(ledger.account("alice").map(|a| a.balance), Some(500));
//! ```

mod code;
mod ledger;
pub mod limits;
mod mem_store;
mod query;
mod store;
mod types;
mod validate;

pub use code::ResultCode;
pub use ledger::{InvariantViolation, Ledger, LedgerMeta, SNAPSHOT_FORMAT};
pub use mem_store::MemStore;
pub use query::{AccountFilter, AccountScan, TransferFilter, TransferScan};
pub use store::{
    Account, ExpiryKey, HistoryRecord, LedgerRead, LedgerStore, Loader, Record, Transfer, for_each_record,
};
pub use types::{
    AccountCreatedEvent, AccountResult, AccountState, AccountView, ApplyContext, Balances, BatchFailure, BatchResult,
    Command, Decision, ExpireResult, HistoryEntry, HistoryFrom, HistoryPage, LEDGER_TOPIC, LedgerEvent, NewAccount,
    NewTransfer, Outcome, TransferEvent, TransferEventKind, TransferFlags, TransferResult, TransferStatus,
    TransferView,
};
pub use validate::{ControlChars, TextError, check_json_text, check_text, is_valid_currency, is_valid_id};
