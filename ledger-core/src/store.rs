//! Where the ledger's records live.
//!
//! The rules in [`crate::Ledger`] read and write accounts, transfers, history records and the
//! expiry queue only through [`LedgerStore`]. The crate ships [`MemStore`], everything in memory,
//! which is what tests, benches and a snapshot restore use. A node that keeps the state on disk
//! implements the trait over its store (lognode does); the rules stay pure either way, because
//! every method is a lookup or an update of a record, and the caller decides when and how the
//! updates reach a disk.
//!
//! Records are numbered in creation order: account `ai` is the `ai`-th account created (from 0),
//! transfer `ti` the `ti`-th transfer, and history record `v` of an account its `v`-th balance
//! change (from 1, the account's version). Numbers are dense: a store never has a hole.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::{Balances, Decision, TransferEventKind, TransferStatus};

/// One account, without its history (see [`LedgerStore::history`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub(crate) id: Arc<str>,
    pub(crate) currency: u16,
    pub(crate) allow_overdraft: bool,
    pub(crate) metadata: Arc<str>,
    pub(crate) created_index: u64,
    pub(crate) created_timestamp_ms: u64,
    pub(crate) balances: Balances,
    pub(crate) updated_index: u64,
    /// History records of the account (its version).
    pub(crate) history_len: u64,
}

impl Account {
    /// The account's id (what a store indexes it by).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// One transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub(crate) id: Arc<str>,
    pub(crate) metadata: Arc<str>,
    pub(crate) debit: u32,
    pub(crate) credit: u32,
    pub(crate) amount: u64,
    /// 0 = no timeout.
    pub(crate) timeout_ms: u64,
    pub(crate) created_index: u64,
    pub(crate) created_timestamp_ms: u64,
    pub(crate) pending: bool,
    pub(crate) resolution: Option<Decision>,
}

impl Transfer {
    /// The transfer's id (what a store indexes it by, for good: rule 4).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When an open pending transfer with a timeout expires (log time, ms).
    pub(crate) fn expires_at_ms(&self) -> Option<u64> {
        // Checked at creation: created_timestamp_ms + timeout_ms fits.
        (self.pending && self.timeout_ms != 0).then(|| self.created_timestamp_ms.saturating_add(self.timeout_ms))
    }

    pub(crate) fn created_decision(&self) -> Decision {
        Decision {
            status: if self.pending { TransferStatus::Pending } else { TransferStatus::Posted },
            index: self.created_index,
            timestamp_ms: self.created_timestamp_ms,
            amount: self.amount,
        }
    }

    pub(crate) fn status(&self) -> TransferStatus {
        match self.resolution {
            Some(r) => r.status,
            None => self.created_decision().status,
        }
    }
}

/// One balance change of an account: the post-balances after a transfer event. 80 bytes in
/// memory (see LEDGER_RULES.md, memory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub(crate) index: u64,
    pub(crate) transfer: u32,
    pub(crate) kind: TransferEventKind,
    pub(crate) balances: Balances,
}

impl HistoryRecord {
    /// Log index of the entry that made the change (non-decreasing along an account's history).
    pub fn index(&self) -> u64 {
        self.index
    }
}

/// An entry of the expiry queue: (deadline in log time, transfer number). The queue is ordered by
/// deadline, then by transfer number (creation order).
pub type ExpiryKey = (u64, u32);

/// The records of one ledger, read and written by the rules.
///
/// Reads of a record that does not exist (a number at or past the count) are bugs in the caller
/// and may panic. Writes must be kept in the order given; [`Ledger::apply`](crate::Ledger::apply)
/// only undoes its own newest writes (`pop_*`), in reverse order, inside one apply.
pub trait LedgerStore {
    /// Number of accounts.
    fn account_count(&self) -> usize;
    /// Account `ai` (`ai < account_count()`).
    fn account(&self, ai: u32) -> Account;
    /// Number of the account with this id.
    fn account_index(&self, id: &str) -> Option<u32>;
    /// Stores a new account: `ai == account_count()`. Its id becomes findable.
    fn push_account(&mut self, ai: u32, a: Account);
    /// Replaces account `ai`.
    fn put_account(&mut self, ai: u32, a: Account);

    /// Number of transfers.
    fn transfer_count(&self) -> usize;
    /// Transfer `ti` (`ti < transfer_count()`).
    fn transfer(&self, ti: u32) -> Transfer;
    /// Number of the transfer with this id (permanent: rule 4).
    fn transfer_index(&self, id: &str) -> Option<u32>;
    /// Stores a new transfer: `ti == transfer_count()`. Its id becomes findable.
    fn push_transfer(&mut self, ti: u32, t: Transfer);
    /// Replaces transfer `ti` (its resolution changed).
    fn put_transfer(&mut self, ti: u32, t: Transfer);
    /// Removes the newest transfer, `ti == transfer_count() - 1`, and its id.
    fn pop_transfer(&mut self, ti: u32);

    /// History record `version` (1-based) of account `ai`.
    fn history(&self, ai: u32, version: u64) -> HistoryRecord;
    /// Appends history record `version` (= the account's history length + 1) to account `ai`.
    fn push_history(&mut self, ai: u32, version: u64, r: HistoryRecord);
    /// Removes the newest history record, `version`, of account `ai`.
    fn pop_history(&mut self, ai: u32, version: u64);

    /// History records `from..=to` (1-based) of account `ai`, in order.
    fn history_range(&self, ai: u32, from: u64, to: u64) -> Vec<HistoryRecord> {
        (from..=to).map(|v| self.history(ai, v)).collect()
    }

    /// How many of account `ai`'s first `len` history records have a log index `<= index`
    /// (their indexes never decrease). The default is a binary search over [`Self::history`].
    fn history_partition_point(&self, ai: u32, len: u64, index: u64) -> u64 {
        let (mut lo, mut hi) = (0u64, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.history(ai, mid + 1).index <= index {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The first expiry entry after `after` (the first of all if `None`).
    fn expiry_next(&self, after: Option<ExpiryKey>) -> Option<ExpiryKey>;
    /// Number of expiry entries.
    fn expiry_len(&self) -> usize;
    /// Adds an expiry entry.
    fn expiry_insert(&mut self, key: ExpiryKey);
    /// Removes an expiry entry (it exists).
    fn expiry_remove(&mut self, key: ExpiryKey);

    /// Store-specific consistency checks (index sizes and the like) for
    /// [`Ledger::check_invariants`](crate::Ledger::check_invariants). The default has none.
    fn check_store(&self) -> Result<(), &'static str> {
        Ok(())
    }
}
