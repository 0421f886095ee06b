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

use crate::types::{Balances, Decision, TransferEventKind, TransferFlags, TransferStatus};

/// One account, without its history (see [`LedgerStore::history`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub(crate) id: Arc<str>,
    pub(crate) currency: u16,
    /// Bit 0 `allow_overdraft`, bit 1 `credits_must_not_exceed_debits`, bit 2 closed (rule 11):
    /// one byte, where records written before the last two existed hold `allow_overdraft` as a
    /// boolean (the same byte).
    pub(crate) flags: u8,
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

    /// Its number of history records (its version).
    pub fn history_len(&self) -> u64 {
        self.history_len
    }

    pub(crate) const OVERDRAFT: u8 = 1;
    pub(crate) const CREDITS_LIMIT: u8 = 2;
    pub(crate) const CLOSED: u8 = 4;

    pub(crate) fn allow_overdraft(&self) -> bool {
        self.flags & Self::OVERDRAFT != 0
    }

    pub(crate) fn credits_limited(&self) -> bool {
        self.flags & Self::CREDITS_LIMIT != 0
    }

    pub(crate) fn closed(&self) -> bool {
        self.flags & Self::CLOSED != 0
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
    /// `pending` and the [`TransferFlags`] in one byte ([`TransferFlags::bits`]; the byte that
    /// was `pending` alone before the flags).
    pub(crate) flags: u8,
    pub(crate) resolution: Option<Decision>,
}

impl Transfer {
    /// The transfer's id (what a store indexes it by, for good: rule 4).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Created pending (two-phase).
    pub(crate) fn pending(&self) -> bool {
        self.flags & 1 != 0
    }

    /// Its balancing and closing flags.
    pub(crate) fn transfer_flags(&self) -> TransferFlags {
        TransferFlags::from_bits(self.flags).map_or(TransferFlags::NONE, |(_, f)| f)
    }

    /// When an open pending transfer with a timeout expires (log time, ms).
    pub(crate) fn expires_at_ms(&self) -> Option<u64> {
        // Checked at creation: created_timestamp_ms + timeout_ms fits.
        (self.pending() && self.timeout_ms != 0).then(|| self.created_timestamp_ms.saturating_add(self.timeout_ms))
    }

    pub(crate) fn created_decision(&self) -> Decision {
        Decision {
            status: if self.pending() { TransferStatus::Pending } else { TransferStatus::Posted },
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

/// Reads of the records of one ledger. Reads of a record that does not exist (a number at or past
/// the count) are bugs in the caller and may panic.
pub trait LedgerRead {
    /// Number of accounts.
    fn account_count(&self) -> usize;
    /// Account `ai` (`ai < account_count()`).
    fn account(&self, ai: u32) -> Account;
    /// Number of the account with this id.
    fn account_index(&self, id: &str) -> Option<u32>;

    /// Number of transfers.
    fn transfer_count(&self) -> usize;
    /// Transfer `ti` (`ti < transfer_count()`).
    fn transfer(&self, ti: u32) -> Transfer;
    /// Number of the transfer with this id (permanent: rule 4).
    fn transfer_index(&self, id: &str) -> Option<u32>;
    /// Transfers `from..to`, in order.
    fn transfers_range(&self, from: u32, to: u32) -> Vec<Transfer> {
        (from..to).map(|ti| self.transfer(ti)).collect()
    }

    /// History record `version` (1-based) of account `ai`.
    fn history(&self, ai: u32, version: u64) -> HistoryRecord;
    /// History records `from..=to` (1-based) of account `ai`, in order.
    fn history_range(&self, ai: u32, from: u64, to: u64) -> Vec<HistoryRecord> {
        (from..=to).map(|v| self.history(ai, v)).collect()
    }
    /// How many history records account `ai` has in the store (its `history_len`, except while a
    /// [`Loader`] fills the store).
    fn history_stored(&self, ai: u32) -> u64;
    /// Calls `f` with every history record and its account number, each account's in version
    /// order (accounts may interleave), until `f` returns `false`. The default reads account by
    /// account, in chunks; a store that keeps history in one sequence reads that instead.
    fn for_each_history(&self, f: &mut dyn FnMut(u32, HistoryRecord) -> bool) {
        for ai in 0..u32::try_from(self.account_count()).expect("bounded by ACCOUNTS_MAX") {
            let len = self.history_stored(ai);
            let mut from = 1;
            while from <= len {
                let to = len.min(from + DUMP_CHUNK - 1);
                for r in self.history_range(ai, from, to) {
                    if !f(ai, r) {
                        return;
                    }
                }
                from = to + 1;
            }
        }
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

    /// Store-specific consistency checks (index sizes and the like) for
    /// [`Ledger::check_invariants`](crate::Ledger::check_invariants). The default has none.
    fn check_store(&self) -> Result<(), &'static str> {
        Ok(())
    }
}

/// The records of one ledger, read and written by the rules.
///
/// Writes must be kept in the order given; [`Ledger::apply`](crate::Ledger::apply) only undoes
/// its own newest writes (`pop_*`), in reverse order, inside one apply.
pub trait LedgerStore: LedgerRead {
    /// Stores a new account: `ai == account_count()`. Its id becomes findable.
    fn push_account(&mut self, ai: u32, a: Account);
    /// Replaces account `ai`.
    fn put_account(&mut self, ai: u32, a: Account);

    /// Stores a new transfer: `ti == transfer_count()`. Its id becomes findable.
    fn push_transfer(&mut self, ti: u32, t: Transfer);
    /// Replaces transfer `ti` (its resolution changed).
    fn put_transfer(&mut self, ti: u32, t: Transfer);
    /// Removes the newest transfer, `ti == transfer_count() - 1`, and its id.
    fn pop_transfer(&mut self, ti: u32);

    /// Appends history record `version` (= the account's history length + 1) to account `ai`.
    fn push_history(&mut self, ai: u32, version: u64, r: HistoryRecord);
    /// Removes the newest history record, `version`, of account `ai`.
    fn pop_history(&mut self, ai: u32, version: u64);

    /// Adds an expiry entry.
    fn expiry_insert(&mut self, key: ExpiryKey);
    /// Removes an expiry entry (it exists).
    fn expiry_remove(&mut self, key: ExpiryKey);
}

/// One record of a ledger's dump, in the order [`for_each_record`] gives them: every account,
/// then every history record, then every transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The next account (its `history_len` history records come after the accounts).
    Account(Account),
    /// The next history record of account number `account`: each account's come in version
    /// order, and accounts may interleave (a store dumps its history in the order it keeps it).
    History {
        /// The account's number (creation order).
        account: u32,
        /// The record.
        record: HistoryRecord,
    },
    /// The next transfer.
    Transfer(Transfer),
}

/// Records read per store call while dumping.
const DUMP_CHUNK: u64 = 4096;

/// Calls `f` with every record of `store` in creation order (see [`Record`]), reading in chunks.
/// The expiry queue is not dumped: it follows from the transfers.
pub fn for_each_record<S: LedgerRead + ?Sized, E>(
    store: &S,
    mut f: impl FnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    for ai in 0..u32::try_from(store.account_count()).expect("bounded by ACCOUNTS_MAX") {
        f(Record::Account(store.account(ai)))?;
    }
    let mut failed = None;
    store.for_each_history(&mut |account, record| match f(Record::History { account, record }) {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let n = u32::try_from(store.transfer_count()).expect("bounded by TRANSFERS_MAX");
    let mut from = 0;
    while from < n {
        let to = n.min(from.saturating_add(DUMP_CHUNK as u32));
        for t in store.transfers_range(from, to) {
            f(Record::Transfer(t))?;
        }
        from = to;
    }
    Ok(())
}

/// Fills an empty store from the records of [`for_each_record`], checking them as they come:
/// dense numbering, unique ids, each account's history complete and in log order, transfers
/// referring to existing accounts, and per currency the balances summing to zero. The expiry
/// queue is rebuilt from the open pending transfers. Its memory does not grow with the dump:
/// what it checks against is read back from the store.
pub struct Loader<'a, S: LedgerStore + ?Sized> {
    store: &'a mut S,
    currencies: usize,
    /// Which part of the dump comes next.
    stage: Stage,
    /// Per currency: (Σ debits_posted − Σ credits_posted, Σ debits_pending − Σ credits_pending),
    /// modulo 2^128: a check against damaged or mismatched data, not a proof.
    sums: Vec<(u128, u128)>,
}

/// The parts of a dump, in order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Accounts,
    History,
    Transfers,
}

impl<'a, S: LedgerStore + ?Sized> Loader<'a, S> {
    /// A loader into `store`, which must be empty, for a ledger with `currencies` currencies.
    pub fn new(store: &'a mut S, currencies: usize) -> Result<Self, &'static str> {
        if store.account_count() != 0 || store.transfer_count() != 0 || store.expiry_len() != 0 {
            return Err("the store to load into is not empty");
        }
        Ok(Loader { store, currencies, stage: Stage::Accounts, sums: vec![(0, 0); currencies] })
    }

    /// Moves on to `next`; leaving the history, checks that every account's is complete.
    fn enter(&mut self, next: Stage) -> Result<(), &'static str> {
        if next < self.stage {
            return Err(match next {
                Stage::Accounts => "an account after the history or the transfers",
                _ => "a history record after the transfers",
            });
        }
        if self.stage < Stage::Transfers && next == Stage::Transfers {
            for ai in 0..u32::try_from(self.store.account_count()).map_err(|_| "too many accounts")? {
                if self.store.history_stored(ai) != self.store.account(ai).history_len {
                    return Err("an account's history is incomplete");
                }
            }
        }
        self.stage = next;
        Ok(())
    }

    /// Stores the next record.
    pub fn push(&mut self, r: Record) -> Result<(), &'static str> {
        match r {
            Record::Account(a) => {
                self.enter(Stage::Accounts)?;
                if usize::from(a.currency) >= self.currencies {
                    return Err("account currency out of range");
                }
                if self.store.account_index(&a.id).is_some() {
                    return Err("duplicate account id");
                }
                let b = a.balances;
                let s = &mut self.sums[usize::from(a.currency)];
                s.0 = s.0.wrapping_add(b.debits_posted).wrapping_sub(b.credits_posted);
                s.1 = s.1.wrapping_add(b.debits_pending).wrapping_sub(b.credits_pending);
                let ai = u32::try_from(self.store.account_count()).map_err(|_| "too many accounts")?;
                self.store.push_account(ai, a);
            }
            Record::History { account: ai, record } => {
                self.enter(Stage::History)?;
                if ai as usize >= self.store.account_count() {
                    return Err("a history record of an account not in the dump");
                }
                let n = self.store.history_stored(ai);
                if n >= self.store.account(ai).history_len {
                    return Err("an account's history is longer than its version");
                }
                if n > 0 && self.store.history(ai, n).index > record.index {
                    return Err("an account's history is out of log order");
                }
                self.store.push_history(ai, n + 1, record);
            }
            Record::Transfer(t) => {
                self.enter(Stage::Transfers)?;
                let accounts = self.store.account_count();
                if t.debit as usize >= accounts || t.credit as usize >= accounts {
                    return Err("transfer account out of range");
                }
                if self.store.transfer_index(&t.id).is_some() {
                    return Err("duplicate transfer id");
                }
                let ti = u32::try_from(self.store.transfer_count()).map_err(|_| "too many transfers")?;
                if t.resolution.is_none()
                    && let Some(at) = t.expires_at_ms()
                {
                    self.store.expiry_insert((at, ti));
                }
                self.store.push_transfer(ti, t);
            }
        }
        Ok(())
    }

    /// Ends the load: checks the last account and that every currency sums to zero.
    pub fn finish(mut self) -> Result<(), &'static str> {
        self.enter(Stage::Transfers)?;
        if self.sums.iter().any(|&s| s != (0, 0)) {
            return Err("balances do not sum to zero in a currency");
        }
        Ok(())
    }
}
