// tidy: long-file: one state machine: the apply of every command under its numbered rules and the reads that see exactly that state share one set of invariants (checked by check_invariants); split, they would be checked nowhere whole.
//! The deterministic ledger state machine.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::code::ResultCode;
use crate::limits::{
    ACCOUNTS_MAX, BALANCE_MAX, BATCH_TRANSFERS_MAX, CURRENCIES_MAX, EXPIRE_PER_ENTRY_MAX, HISTORY_PAGE_MAX,
    TRANSFERS_MAX,
};
use crate::types::{
    AccountCreatedEvent, AccountResult, AccountState, AccountView, ApplyContext, Balances, BatchFailure, BatchResult,
    Command, Decision, ExpireResult, HistoryEntry, HistoryFrom, HistoryPage, LedgerEvent, NewAccount, NewTransfer,
    Outcome, TransferEvent, TransferEventKind, TransferResult, TransferStatus, TransferView,
};
use crate::validate;

/// Version of the snapshot layout produced by `Ledger`'s `Serialize`.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// One balance change of an account: the post-balances after a transfer
/// event. 80 bytes each (see LEDGER_RULES.md, memory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct HistoryRecord {
    index: u64,
    transfer: u32,
    kind: TransferEventKind,
    balances: Balances,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    id: Arc<str>,
    currency: u16,
    allow_overdraft: bool,
    metadata: Arc<str>,
    created_index: u64,
    created_timestamp_ms: u64,
    balances: Balances,
    updated_index: u64,
    history: Vec<HistoryRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Transfer {
    id: Arc<str>,
    metadata: Arc<str>,
    debit: u32,
    credit: u32,
    amount: u64,
    /// 0 = no timeout.
    timeout_ms: u64,
    created_index: u64,
    created_timestamp_ms: u64,
    pending: bool,
    resolution: Option<Decision>,
}

impl Transfer {
    fn expires_at_ms(&self) -> Option<u64> {
        // Checked at creation: created_timestamp_ms + timeout_ms fits.
        (self.pending && self.timeout_ms != 0).then(|| self.created_timestamp_ms.saturating_add(self.timeout_ms))
    }

    fn created_decision(&self) -> Decision {
        Decision {
            status: if self.pending { TransferStatus::Pending } else { TransferStatus::Posted },
            index: self.created_index,
            timestamp_ms: self.created_timestamp_ms,
            amount: self.amount,
        }
    }

    fn status(&self) -> TransferStatus {
        match self.resolution {
            Some(r) => r.status,
            None => self.created_decision().status,
        }
    }
}

/// Index of transfer ids: 64-bit id hash -> most recent transfer with that
/// hash, plus a per-transfer chain to older transfers with the same hash
/// (so hash collisions are handled exactly). Keys are plain `u64`s, so
/// growing the table never dereferences id strings.
#[derive(Clone, Default)]
struct IdIndex {
    heads: FxHashMap<u64, u32>,
    /// `next[t]`: previous transfer with the same hash, or `NO_TRANSFER`.
    next: Vec<u32>,
}

const NO_TRANSFER: u32 = u32::MAX;

fn id_hash(id: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(id.as_bytes());
    h.finish()
}

impl IdIndex {
    fn find(&self, transfers: &[Transfer], id: &str) -> Option<u32> {
        let mut cur = *self.heads.get(&id_hash(id))?;
        while cur != NO_TRANSFER {
            if *transfers[cur as usize].id == *id {
                return Some(cur);
            }
            cur = self.next[cur as usize];
        }
        None
    }

    /// Registers transfer `ti`, which must be `transfers.len() - 1`.
    fn push(&mut self, id: &str, ti: u32) {
        debug_assert_eq!(self.next.len(), ti as usize);
        let prev = self.heads.insert(id_hash(id), ti).unwrap_or(NO_TRANSFER);
        self.next.push(prev);
    }

    /// Unregisters the most recently pushed transfer.
    fn pop(&mut self, id: &str) {
        let prev = self.next.pop().expect("pop of a registered transfer");
        if prev == NO_TRANSFER {
            self.heads.remove(&id_hash(id));
        } else {
            self.heads.insert(id_hash(id), prev);
        }
    }

    fn len(&self) -> usize {
        self.next.len()
    }

    fn heap_bytes(&self) -> usize {
        self.heads.capacity() * (std::mem::size_of::<(u64, u32)>() + 1)
            + self.next.capacity() * std::mem::size_of::<u32>()
    }
}

/// Per-apply scratch: where we are in the log and the events produced.
struct Cx {
    index: u64,
    now: u64,
    events: Vec<LedgerEvent>,
}

#[derive(Clone, Copy)]
enum Action {
    Post(Option<u64>),
    Void,
}

/// Something in the state that breaks a ledger invariant (rule 3). Returned
/// by [`Ledger::check_invariants`]; any of these is a bug.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    /// Sum of balances over the currency's accounts is not 0.
    #[error("currency {0}: sum of posted debits != sum of posted credits")]
    PostedNotConserved(String),
    /// Pending debits and pending credits differ for the currency.
    #[error("currency {0}: sum of pending debits != sum of pending credits")]
    PendingNotConserved(String),
    /// A non-overdraft account has `available < 0`.
    #[error("account {0}: available < 0 without overdraft")]
    Overdrawn(String),
    /// A side of an account is above `BALANCE_MAX`.
    #[error("account {0}: a side exceeds BALANCE_MAX")]
    AboveCeiling(String),
    /// Pending counters disagree with the open pending transfers.
    #[error("account {0}: pending counters disagree with open pending transfers")]
    PendingMismatch(String),
    /// Lookup maps or the expiry queue disagree with the stored records.
    #[error("internal index disagrees with stored records: {0}")]
    IndexCorrupt(&'static str),
}

/// The ledger: accounts, transfers, their histories, and the rules.
///
/// Build with `Ledger::default()`, drive with [`Ledger::apply`], snapshot
/// with serde (`Serialize`/`Deserialize` are deterministic: records are
/// stored in log order, lookup maps are rebuilt on restore).
#[derive(Clone)]
pub struct Ledger {
    last_index: u64,
    clock_ms: u64,
    currencies: Vec<Arc<str>>,
    accounts: Vec<Account>,
    transfers: Vec<Transfer>,
    // ---- derived, rebuilt on restore ----
    currency_ids: FxHashMap<Arc<str>, u16>,
    account_ids: FxHashMap<Arc<str>, u32>,
    transfer_ids: IdIndex,
    /// Open pending transfers with a timeout: (expires_at_ms, transfer).
    expiry: BTreeSet<(u64, u32)>,
    empty: Arc<str>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            last_index: 0,
            clock_ms: 0,
            currencies: Vec::new(),
            accounts: Vec::new(),
            transfers: Vec::new(),
            currency_ids: FxHashMap::default(),
            account_ids: FxHashMap::default(),
            transfer_ids: IdIndex::default(),
            expiry: BTreeSet::new(),
            empty: Arc::from(""),
        }
    }
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("last_index", &self.last_index)
            .field("clock_ms", &self.clock_ms)
            .field("accounts", &self.accounts.len())
            .field("transfers", &self.transfers.len())
            .field("open_expiring", &self.expiry.len())
            .finish()
    }
}

/// Equality of the replicated state (the derived lookup maps follow from it).
impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        self.last_index == other.last_index
            && self.clock_ms == other.clock_ms
            && self.currencies == other.currencies
            && self.accounts == other.accounts
            && self.transfers == other.transfers
    }
}

impl Eq for Ledger {}

fn idx32(n: usize) -> u32 {
    u32::try_from(n).expect("record count bounded by limits")
}

fn state_of(a: &Account) -> AccountState {
    AccountState {
        id: a.id.clone(),
        balances: a.balances,
        updated_index: a.updated_index,
        version: a.history.len() as u64,
    }
}

/// `a + b`, or `overflow` if the sum crosses `BALANCE_MAX`.
fn add_capped(a: u128, b: u128) -> Result<u128, ResultCode> {
    a.checked_add(b).filter(|&v| v <= BALANCE_MAX).ok_or(ResultCode::Overflow)
}

impl Ledger {
    // ------------------------------------------------------------------
    // apply
    // ------------------------------------------------------------------

    /// Applies one log entry and returns its outcome and the events to
    /// publish on the `ledger` topic, in order.
    ///
    /// Log time is `max(previous log time, ctx.timestamp_ms)` (and, for
    /// `ExpirePending`, `now_ms`), so it never goes backwards even if a new
    /// leader's clock is behind. Before the command itself, pending
    /// transfers due at that log time are expired (at most
    /// `EXPIRE_PER_ENTRY_MAX`); their `expired` events come first.
    ///
    /// # Panics
    /// If `ctx.index` is not strictly greater than the previous index: that
    /// is a bug in the caller (the log is applied twice or out of order),
    /// and applying anyway would fork the replicas.
    pub fn apply(&mut self, cmd: &Command, ctx: ApplyContext) -> (Outcome, Vec<LedgerEvent>) {
        assert!(
            ctx.index > self.last_index,
            "ledger: apply index {} is not greater than last applied index {}",
            ctx.index,
            self.last_index
        );
        self.last_index = ctx.index;
        let mut now = self.clock_ms.max(ctx.timestamp_ms);
        if let Command::ExpirePending { now_ms } = cmd {
            now = now.max(*now_ms);
        }
        self.clock_ms = now;
        let mut cx = Cx { index: ctx.index, now, events: Vec::new() };
        let expired = self.expire_due(&mut cx);
        let outcome = match cmd {
            Command::CreateAccount(a) => Outcome::Account(self.create_account(a, &mut cx)),
            Command::CreateTransfer(t) => Outcome::Transfer(self.create_transfer(t, &mut cx)),
            Command::CreateTransfers { transfers, atomic } => {
                Outcome::Batch(self.create_transfers(transfers, *atomic, &mut cx))
            }
            Command::PostPending { pending_id, amount } => {
                Outcome::Transfer(self.resolve(pending_id, Action::Post(*amount), &mut cx))
            }
            Command::VoidPending { pending_id } => Outcome::Transfer(self.resolve(pending_id, Action::Void, &mut cx)),
            Command::ExpirePending { .. } => {
                Outcome::Expire(ExpireResult { expired, more_due: self.next_expiry_ms().is_some_and(|t| t <= now) })
            }
        };
        (outcome, cx.events)
    }

    fn create_account(&mut self, a: &NewAccount, cx: &mut Cx) -> AccountResult {
        match self.try_create_account(a, cx) {
            Ok(r) => r,
            Err(code) => AccountResult { code, created: None },
        }
    }

    fn try_create_account(&mut self, a: &NewAccount, cx: &mut Cx) -> Result<AccountResult, ResultCode> {
        validate::id(&a.id)?;
        validate::currency(&a.currency)?;
        validate::metadata(&a.metadata)?;
        if let Some(&ai) = self.account_ids.get(a.id.as_str()) {
            let e = &self.accounts[ai as usize];
            let same = *self.currencies[usize::from(e.currency)] == *a.currency
                && e.allow_overdraft == a.allow_overdraft
                && *e.metadata == *a.metadata;
            return if same {
                Ok(AccountResult { code: ResultCode::Exists, created: Some((e.created_index, e.created_timestamp_ms)) })
            } else {
                Err(ResultCode::IdConflict)
            };
        }
        if self.accounts.len() >= ACCOUNTS_MAX {
            return Err(ResultCode::LimitExceeded);
        }
        let currency = match self.currency_ids.get(a.currency.as_str()) {
            Some(&c) => c,
            None => {
                if self.currencies.len() >= CURRENCIES_MAX {
                    return Err(ResultCode::LimitExceeded);
                }
                let c = u16::try_from(self.currencies.len()).expect("bounded by CURRENCIES_MAX");
                let name: Arc<str> = Arc::from(a.currency.as_str());
                self.currencies.push(name.clone());
                self.currency_ids.insert(name, c);
                c
            }
        };
        let id: Arc<str> = Arc::from(a.id.as_str());
        let metadata = self.share_metadata(&a.metadata);
        let ai = idx32(self.accounts.len());
        self.accounts.push(Account {
            id: id.clone(),
            currency,
            allow_overdraft: a.allow_overdraft,
            metadata: metadata.clone(),
            created_index: cx.index,
            created_timestamp_ms: cx.now,
            balances: Balances::default(),
            updated_index: cx.index,
            history: Vec::new(),
        });
        self.account_ids.insert(id.clone(), ai);
        cx.events.push(LedgerEvent::AccountCreated(AccountCreatedEvent {
            index: cx.index,
            timestamp_ms: cx.now,
            id,
            currency: self.currencies[usize::from(currency)].clone(),
            allow_overdraft: a.allow_overdraft,
            metadata,
        }));
        Ok(AccountResult { code: ResultCode::Created, created: Some((cx.index, cx.now)) })
    }

    fn share_metadata(&self, m: &str) -> Arc<str> {
        if m.is_empty() { self.empty.clone() } else { Arc::from(m) }
    }

    fn create_transfer(&mut self, t: &NewTransfer, cx: &mut Cx) -> TransferResult {
        self.try_create_transfer(t, cx).unwrap_or_else(TransferResult::err)
    }

    fn same_transfer_body(&self, e: &Transfer, t: &NewTransfer) -> bool {
        let debit = &self.accounts[e.debit as usize];
        let credit = &self.accounts[e.credit as usize];
        *debit.id == *t.debit_account_id
            && *credit.id == *t.credit_account_id
            && e.amount == t.amount
            && *self.currencies[usize::from(debit.currency)] == *t.currency
            && *e.metadata == *t.metadata
            && e.pending == t.pending
            && e.timeout_ms == t.timeout_ms.unwrap_or(0)
    }

    fn try_create_transfer(&mut self, t: &NewTransfer, cx: &mut Cx) -> Result<TransferResult, ResultCode> {
        // Rule 8: shape first (defence in depth).
        validate::id(&t.id)?;
        validate::id(&t.debit_account_id)?;
        validate::id(&t.credit_account_id)?;
        validate::amount(t.amount)?;
        validate::currency(&t.currency)?;
        validate::metadata(&t.metadata)?;
        validate::timeout(t.pending, t.timeout_ms)?;
        // Rule 4: idempotency.
        if let Some(ti) = self.transfer_ids.find(&self.transfers, &t.id) {
            let e = &self.transfers[ti as usize];
            return if self.same_transfer_body(e, t) {
                Ok(TransferResult { code: ResultCode::Exists, decision: Some(e.created_decision()) })
            } else {
                Err(ResultCode::IdConflict)
            };
        }
        // Rule 1: accounts.
        let debit = *self.account_ids.get(t.debit_account_id.as_str()).ok_or(ResultCode::AccountNotFound)?;
        let credit = *self.account_ids.get(t.credit_account_id.as_str()).ok_or(ResultCode::AccountNotFound)?;
        if debit == credit {
            return Err(ResultCode::SameAccount);
        }
        let (da, ca) = (&self.accounts[debit as usize], &self.accounts[credit as usize]);
        if da.currency != ca.currency || *self.currencies[usize::from(da.currency)] != *t.currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        if self.transfers.len() >= TRANSFERS_MAX {
            return Err(ResultCode::LimitExceeded);
        }
        // Rule 6: deadline in log time.
        let timeout_ms = t.timeout_ms.unwrap_or(0);
        if timeout_ms != 0 && cx.now.checked_add(timeout_ms).is_none() {
            return Err(ResultCode::Overflow);
        }
        // Rule 5 then rule 2.
        let amount = u128::from(t.amount);
        let (d, c) = (da.balances, ca.balances);
        let debit_total = add_capped(d.debits_posted + d.debits_pending, amount)?;
        add_capped(c.credits_posted + c.credits_pending, amount)?;
        if !da.allow_overdraft && debit_total > d.credits_posted {
            return Err(ResultCode::InsufficientFunds);
        }
        // Commit (nothing above mutated state).
        let ti = idx32(self.transfers.len());
        {
            let d = &mut self.accounts[debit as usize].balances;
            if t.pending {
                d.debits_pending += amount;
            } else {
                d.debits_posted += amount;
            }
            let c = &mut self.accounts[credit as usize].balances;
            if t.pending {
                c.credits_pending += amount;
            } else {
                c.credits_posted += amount;
            }
        }
        let id: Arc<str> = Arc::from(t.id.as_str());
        let transfer = Transfer {
            id: id.clone(),
            metadata: self.share_metadata(&t.metadata),
            debit,
            credit,
            amount: t.amount,
            timeout_ms,
            created_index: cx.index,
            created_timestamp_ms: cx.now,
            pending: t.pending,
            resolution: None,
        };
        let decision = transfer.created_decision();
        if let Some(at) = transfer.expires_at_ms() {
            self.expiry.insert((at, ti));
        }
        self.transfers.push(transfer);
        self.transfer_ids.push(&id, ti);
        self.record(ti, TransferEventKind::Created, t.amount, cx);
        Ok(TransferResult { code: ResultCode::Created, decision: Some(decision) })
    }

    /// Undoes the most recent transfer creation (atomic batch rollback).
    /// Its event was already truncated by the caller.
    fn pop_created_transfer(&mut self) {
        let t = self.transfers.pop().expect("rollback of a created transfer");
        let ti = idx32(self.transfers.len());
        self.transfer_ids.pop(&t.id);
        if let Some(at) = t.expires_at_ms() {
            self.expiry.remove(&(at, ti));
        }
        let amount = u128::from(t.amount);
        for (ai, is_debit) in [(t.debit, true), (t.credit, false)] {
            let a = &mut self.accounts[ai as usize];
            let rec = a.history.pop().expect("history of a created transfer");
            assert_eq!(rec.transfer, ti, "rollback out of order");
            let b = &mut a.balances;
            match (is_debit, t.pending) {
                (true, true) => b.debits_pending -= amount,
                (true, false) => b.debits_posted -= amount,
                (false, true) => b.credits_pending -= amount,
                (false, false) => b.credits_posted -= amount,
            }
            a.updated_index = a.history.last().map_or(a.created_index, |r| r.index);
        }
    }

    fn create_transfers(&mut self, ts: &[NewTransfer], atomic: bool, cx: &mut Cx) -> BatchResult {
        if ts.len() > BATCH_TRANSFERS_MAX {
            return BatchResult { code: ResultCode::BatchTooLarge, results: Vec::new(), failed: None };
        }
        let mut results = Vec::with_capacity(ts.len());
        cx.events.reserve(ts.len());
        if !atomic {
            for t in ts {
                results.push(self.create_transfer(t, cx));
            }
            return BatchResult { code: ResultCode::Created, results, failed: None };
        }
        let events_mark = cx.events.len();
        let transfers_mark = self.transfers.len();
        for (i, t) in ts.iter().enumerate() {
            let r = self.create_transfer(t, cx);
            if !r.code.is_success() {
                // Rule 7: all or nothing. Undo in reverse order.
                while self.transfers.len() > transfers_mark {
                    self.pop_created_transfer();
                }
                cx.events.truncate(events_mark);
                let failed = BatchFailure { item: idx32(i), code: r.code };
                let results = (0..ts.len())
                    .map(|j| TransferResult::err(if j == i { r.code } else { ResultCode::LinkedEventFailed }))
                    .collect();
                return BatchResult { code: ResultCode::LinkedEventFailed, results, failed: Some(failed) };
            }
            results.push(r);
        }
        BatchResult { code: ResultCode::Created, results, failed: None }
    }

    fn resolve(&mut self, pending_id: &str, action: Action, cx: &mut Cx) -> TransferResult {
        self.try_resolve(pending_id, action, cx).unwrap_or_else(TransferResult::err)
    }

    fn try_resolve(&mut self, pending_id: &str, action: Action, cx: &mut Cx) -> Result<TransferResult, ResultCode> {
        validate::id(pending_id)?;
        if let Action::Post(Some(a)) = action {
            validate::amount(a)?;
        }
        let ti = self.transfer_ids.find(&self.transfers, pending_id).ok_or(ResultCode::TransferNotFound)?;
        let t = &self.transfers[ti as usize];
        if !t.pending {
            return Err(ResultCode::NotPending);
        }
        if let Some(res) = t.resolution {
            // Rule 6: idempotency of post/void on (pending id, action, amount).
            let replay = TransferResult { code: ResultCode::Exists, decision: Some(res) };
            return match (res.status, action) {
                (TransferStatus::Posted, Action::Post(a)) if a.unwrap_or(t.amount) == res.amount => Ok(replay),
                (TransferStatus::Posted, _) => Err(ResultCode::AlreadyPosted),
                (TransferStatus::Voided, Action::Void) => Ok(replay),
                (TransferStatus::Voided, _) => Err(ResultCode::AlreadyVoided),
                (TransferStatus::Expired | TransferStatus::Pending, _) => Err(ResultCode::PendingExpired),
            };
        }
        if t.expires_at_ms().is_some_and(|at| at <= cx.now) {
            // Due in log time but not yet swept (per-entry cap): expire now.
            self.expire_one(ti, cx);
            return Err(ResultCode::PendingExpired);
        }
        let (status, kind, code, posted) = match action {
            Action::Post(a) => {
                let a = a.unwrap_or(t.amount);
                if a > t.amount {
                    return Err(ResultCode::AmountExceedsPending);
                }
                (TransferStatus::Posted, TransferEventKind::Posted, ResultCode::Posted, a)
            }
            Action::Void => (TransferStatus::Voided, TransferEventKind::Voided, ResultCode::Voided, 0),
        };
        let decision = Decision {
            status,
            index: cx.index,
            timestamp_ms: cx.now,
            amount: if matches!(action, Action::Void) { t.amount } else { posted },
        };
        self.settle(ti, posted, decision, kind, cx);
        Ok(TransferResult { code, decision: Some(decision) })
    }

    /// Releases the reservation of open pending transfer `ti`, posts
    /// `posted` of it, stores the decision, records history and the event.
    fn settle(&mut self, ti: u32, posted: u64, decision: Decision, kind: TransferEventKind, cx: &mut Cx) {
        let t = &mut self.transfers[ti as usize];
        debug_assert!(t.pending && t.resolution.is_none() && posted <= t.amount);
        t.resolution = Some(decision);
        let (debit, credit, reserved) = (t.debit, t.credit, u128::from(t.amount));
        let expires = t.expires_at_ms();
        let posted128 = u128::from(posted);
        // No overflow/funds check needed: each side's total only shrinks.
        let d = &mut self.accounts[debit as usize].balances;
        d.debits_pending -= reserved;
        d.debits_posted += posted128;
        let c = &mut self.accounts[credit as usize].balances;
        c.credits_pending -= reserved;
        c.credits_posted += posted128;
        if let Some(at) = expires {
            self.expiry.remove(&(at, ti));
        }
        self.record(ti, kind, decision.amount, cx);
    }

    fn expire_one(&mut self, ti: u32, cx: &mut Cx) {
        let amount = self.transfers[ti as usize].amount;
        let decision = Decision { status: TransferStatus::Expired, index: cx.index, timestamp_ms: cx.now, amount };
        self.settle(ti, 0, decision, TransferEventKind::Expired, cx);
    }

    /// Expires pending transfers due at `cx.now`, oldest deadline first
    /// (ties: creation order), at most `EXPIRE_PER_ENTRY_MAX`.
    fn expire_due(&mut self, cx: &mut Cx) -> u32 {
        let mut n = 0u32;
        while (n as usize) < EXPIRE_PER_ENTRY_MAX {
            match self.expiry.first() {
                Some(&(at, ti)) if at <= cx.now => {
                    self.expire_one(ti, cx);
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }

    /// Appends history records for both accounts of transfer `ti` (with
    /// their current balances) and the transfer event.
    fn record(&mut self, ti: u32, kind: TransferEventKind, event_amount: u64, cx: &mut Cx) {
        let (debit, credit) = {
            let t = &self.transfers[ti as usize];
            (t.debit, t.credit)
        };
        for ai in [debit, credit] {
            let a = &mut self.accounts[ai as usize];
            a.history.push(HistoryRecord { index: cx.index, transfer: ti, kind, balances: a.balances });
            a.updated_index = cx.index;
        }
        let t = &self.transfers[ti as usize];
        let (da, ca) = (&self.accounts[debit as usize], &self.accounts[credit as usize]);
        cx.events.push(LedgerEvent::Transfer(TransferEvent {
            kind,
            index: cx.index,
            timestamp_ms: cx.now,
            transfer_id: t.id.clone(),
            debit_account_id: da.id.clone(),
            credit_account_id: ca.id.clone(),
            currency: self.currencies[usize::from(da.currency)].clone(),
            amount: t.amount,
            event_amount,
            pending: t.pending,
            expires_at_ms: t.expires_at_ms(),
            status: t.status(),
            metadata: t.metadata.clone(),
            debit_account: state_of(da),
            credit_account: state_of(ca),
        }));
    }

    // ------------------------------------------------------------------
    // reads
    // ------------------------------------------------------------------

    /// Index of the last applied log entry (0 before any).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Current log time (ms): the max of all applied entry timestamps.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Number of stored (successfully created) transfers.
    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }

    fn view_account(&self, a: &Account, balances: Balances, index: u64, version: u64) -> AccountView {
        AccountView {
            id: a.id.clone(),
            currency: self.currencies[usize::from(a.currency)].clone(),
            allow_overdraft: a.allow_overdraft,
            metadata: a.metadata.clone(),
            created_index: a.created_index,
            created_timestamp_ms: a.created_timestamp_ms,
            balances,
            balance: balances.balance(),
            available: balances.available(),
            index,
            version,
        }
    }

    fn find_account(&self, id: &str) -> Option<&Account> {
        self.account_ids.get(id).map(|&ai| &self.accounts[ai as usize])
    }

    /// The account with its current balances.
    pub fn account(&self, id: &str) -> Option<AccountView> {
        let a = self.find_account(id)?;
        Some(self.view_account(a, a.balances, a.updated_index, a.history.len() as u64))
    }

    /// The account as it was once log entry `index` was applied: `None` if
    /// it did not exist yet. Binary search over its history (O(log n)).
    pub fn account_as_of(&self, id: &str, index: u64) -> Option<AccountView> {
        let a = self.find_account(id)?;
        if index < a.created_index {
            return None;
        }
        let p = a.history.partition_point(|r| r.index <= index);
        Some(match p {
            0 => self.view_account(a, Balances::default(), a.created_index, 0),
            _ => {
                let r = &a.history[p - 1];
                self.view_account(a, r.balances, r.index, p as u64)
            }
        })
    }

    /// The transfer with its current status.
    pub fn transfer(&self, id: &str) -> Option<TransferView> {
        let t = &self.transfers[self.transfer_ids.find(&self.transfers, id)? as usize];
        let da = &self.accounts[t.debit as usize];
        Some(TransferView {
            id: t.id.clone(),
            debit_account_id: da.id.clone(),
            credit_account_id: self.accounts[t.credit as usize].id.clone(),
            amount: t.amount,
            currency: self.currencies[usize::from(da.currency)].clone(),
            metadata: t.metadata.clone(),
            pending: t.pending,
            timeout_ms: (t.timeout_ms != 0).then_some(t.timeout_ms),
            expires_at_ms: t.expires_at_ms(),
            status: t.status(),
            created: t.created_decision(),
            resolution: t.resolution,
        })
    }

    /// One page of the account's balance changes (transfer events touching
    /// it), ordered by log index then version; `limit` is capped at
    /// `HISTORY_PAGE_MAX`. `None` if the account does not exist.
    pub fn account_transfers(&self, id: &str, from: HistoryFrom, limit: usize) -> Option<HistoryPage> {
        let a = self.find_account(id)?;
        let start = match from {
            HistoryFrom::Start => 0,
            HistoryFrom::AfterVersion(v) => usize::try_from(v).unwrap_or(usize::MAX),
            HistoryFrom::AfterIndex(i) => a.history.partition_point(|r| r.index <= i),
        }
        .min(a.history.len());
        let end = start.saturating_add(limit.min(HISTORY_PAGE_MAX)).min(a.history.len());
        let entries = a.history[start..end]
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let t = &self.transfers[r.transfer as usize];
                let timestamp_ms = match (r.kind, t.resolution) {
                    (TransferEventKind::Created, _) | (_, None) => t.created_timestamp_ms,
                    (_, Some(res)) => res.timestamp_ms,
                };
                HistoryEntry {
                    version: (start + k + 1) as u64,
                    index: r.index,
                    timestamp_ms,
                    transfer_id: t.id.clone(),
                    kind: r.kind,
                    balances: r.balances,
                }
            })
            .collect();
        Some(HistoryPage { entries, next: (end < a.history.len()).then_some(end as u64) })
    }

    /// Earliest deadline (log time, ms) among open pending transfers. The
    /// leader proposes `ExpirePending { now_ms }` once its clock passes it
    /// (any later entry also expires due transfers).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry.first().map(|&(at, _)| at)
    }

    /// Number of open pending transfers that have a deadline.
    pub fn open_expiring_count(&self) -> usize {
        self.expiry.len()
    }

    // ------------------------------------------------------------------
    // invariants (rule 3)
    // ------------------------------------------------------------------

    /// Checks every ledger invariant over the whole state (O(accounts +
    /// transfers)): per currency Σ debits_posted == Σ credits_posted (so
    /// Σ balance == 0) and Σ debits_pending == Σ credits_pending; no
    /// non-overdraft account has available < 0; no side above
    /// `BALANCE_MAX`; pending counters equal the open pending transfers;
    /// lookup maps and expiry queue agree with the records.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        #[derive(Clone, Copy, Default, PartialEq)]
        struct Wide(u128, u128); // (high, low): sums of many u128 never wrap
        impl Wide {
            fn add(&mut self, v: u128) {
                let (lo, carry) = self.1.overflowing_add(v);
                self.1 = lo;
                self.0 += u128::from(carry);
            }
        }
        let n = self.currencies.len();
        let (mut dp, mut cp, mut dq, mut cq) =
            (vec![Wide::default(); n], vec![Wide::default(); n], vec![Wide::default(); n], vec![Wide::default(); n]);
        let mut open = vec![(0u128, 0u128); self.accounts.len()];
        for t in &self.transfers {
            if t.pending && t.resolution.is_none() {
                open[t.debit as usize].0 += u128::from(t.amount);
                open[t.credit as usize].1 += u128::from(t.amount);
            }
        }
        for (ai, a) in self.accounts.iter().enumerate() {
            let b = a.balances;
            let c = usize::from(a.currency);
            dp[c].add(b.debits_posted);
            cp[c].add(b.credits_posted);
            dq[c].add(b.debits_pending);
            cq[c].add(b.credits_pending);
            let name = || a.id.to_string();
            if b.debits_posted.checked_add(b.debits_pending).is_none_or(|v| v > BALANCE_MAX)
                || b.credits_posted.checked_add(b.credits_pending).is_none_or(|v| v > BALANCE_MAX)
            {
                return Err(InvariantViolation::AboveCeiling(name()));
            }
            if !a.allow_overdraft && b.available() < 0 {
                return Err(InvariantViolation::Overdrawn(name()));
            }
            if open[ai] != (b.debits_pending, b.credits_pending) {
                return Err(InvariantViolation::PendingMismatch(name()));
            }
            if self.account_ids.get(&*a.id) != Some(&idx32(ai)) {
                return Err(InvariantViolation::IndexCorrupt("account_ids"));
            }
        }
        for c in 0..n {
            if dp[c] != cp[c] {
                return Err(InvariantViolation::PostedNotConserved(self.currencies[c].to_string()));
            }
            if dq[c] != cq[c] {
                return Err(InvariantViolation::PendingNotConserved(self.currencies[c].to_string()));
            }
        }
        for (ti, t) in self.transfers.iter().enumerate() {
            if self.transfer_ids.find(&self.transfers, &t.id) != Some(idx32(ti)) {
                return Err(InvariantViolation::IndexCorrupt("transfer_ids"));
            }
        }
        if self.account_ids.len() != self.accounts.len()
            || self.transfer_ids.len() != self.transfers.len()
            || self.currency_ids.len() != self.currencies.len()
        {
            return Err(InvariantViolation::IndexCorrupt("map sizes"));
        }
        let expected: BTreeSet<(u64, u32)> = self
            .transfers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.resolution.is_none())
            .filter_map(|(ti, t)| t.expires_at_ms().map(|at| (at, idx32(ti))))
            .collect();
        if expected != self.expiry {
            return Err(InvariantViolation::IndexCorrupt("expiry queue"));
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // memory accounting
    // ------------------------------------------------------------------

    /// Estimated heap bytes held by the ledger: vector and map capacities
    /// times element sizes plus string allocations (each `Arc<str>` = 16
    /// bytes of counts + text, rounded up to 8). Allocator overhead is not
    /// included. Used for the per-account/per-transfer numbers in
    /// LEDGER_RULES.md.
    pub fn heap_bytes_estimate(&self) -> usize {
        use std::mem::size_of;
        fn arc_str(s: &str) -> usize {
            (16 + s.len()).div_ceil(8) * 8
        }
        // hashbrown: one control byte per bucket plus the entry.
        fn map<K, V>(m: &FxHashMap<K, V>) -> usize {
            m.capacity() * (size_of::<(K, V)>() + 1)
        }
        let mut n = self.accounts.capacity() * size_of::<Account>()
            + self.transfers.capacity() * size_of::<Transfer>()
            + self.currencies.capacity() * size_of::<Arc<str>>()
            + map(&self.currency_ids)
            + map(&self.account_ids)
            + self.transfer_ids.heap_bytes()
            // BTreeSet: ~ entries plus node overhead; count 1.5x the entries.
            + self.expiry.len() * size_of::<(u64, u32)>() * 3 / 2;
        for a in &self.accounts {
            n += arc_str(&a.id) + a.history.capacity() * size_of::<HistoryRecord>();
            if !a.metadata.is_empty() {
                n += arc_str(&a.metadata);
            }
        }
        for t in &self.transfers {
            n += arc_str(&t.id);
            if !t.metadata.is_empty() {
                n += arc_str(&t.metadata);
            }
        }
        n
    }

    /// Size in bytes of the fixed per-record structs (account, transfer,
    /// history record), for documentation and tests.
    pub fn record_sizes() -> (usize, usize, usize) {
        (std::mem::size_of::<Account>(), std::mem::size_of::<Transfer>(), std::mem::size_of::<HistoryRecord>())
    }

    // ------------------------------------------------------------------
    // test hook
    // ------------------------------------------------------------------

    /// TEST ONLY (feature `test-hooks`): moves `amount` (any u128) from
    /// `debit` to `credit` as posted balances, bypassing the amount limit,
    /// overdraft rule, history and events, so tests can bring balances
    /// near `BALANCE_MAX`. Conservation still holds. Returns `overflow` if
    /// a side would cross `BALANCE_MAX`.
    #[cfg(feature = "test-hooks")]
    pub fn test_force_move(&mut self, debit: &str, credit: &str, amount: u128) -> Result<(), ResultCode> {
        let d = *self.account_ids.get(debit).ok_or(ResultCode::AccountNotFound)?;
        let c = *self.account_ids.get(credit).ok_or(ResultCode::AccountNotFound)?;
        if d == c {
            return Err(ResultCode::SameAccount);
        }
        if self.accounts[d as usize].currency != self.accounts[c as usize].currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        let db = self.accounts[d as usize].balances;
        let cb = self.accounts[c as usize].balances;
        add_capped(db.debits_posted + db.debits_pending, amount)?;
        add_capped(cb.credits_posted + cb.credits_pending, amount)?;
        self.accounts[d as usize].balances.debits_posted += amount;
        self.accounts[c as usize].balances.credits_posted += amount;
        Ok(())
    }
}

// ----------------------------------------------------------------------
// snapshots
// ----------------------------------------------------------------------

#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: u32,
    last_index: u64,
    clock_ms: u64,
    currencies: &'a [Arc<str>],
    accounts: &'a [Account],
    transfers: &'a [Transfer],
}

#[derive(Deserialize)]
struct SnapshotOwned {
    format: u32,
    last_index: u64,
    clock_ms: u64,
    currencies: Vec<Arc<str>>,
    accounts: Vec<Account>,
    transfers: Vec<Transfer>,
}

/// Serializes the replicated state in log order (deterministic: no hash
/// map is serialized).
impl Serialize for Ledger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SnapshotRef {
            format: SNAPSHOT_FORMAT,
            last_index: self.last_index,
            clock_ms: self.clock_ms,
            currencies: &self.currencies,
            accounts: &self.accounts,
            transfers: &self.transfers,
        }
        .serialize(s)
    }
}

/// Restores a snapshot and rebuilds the lookup maps and expiry queue;
/// rejects snapshots whose references are out of range or ids duplicated.
impl<'de> Deserialize<'de> for Ledger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = SnapshotOwned::deserialize(d)?;
        if s.format != SNAPSHOT_FORMAT {
            return Err(D::Error::custom(format!("unsupported ledger snapshot format {}", s.format)));
        }
        let mut l = Ledger { last_index: s.last_index, clock_ms: s.clock_ms, ..Ledger::default() };
        for (ci, c) in s.currencies.iter().enumerate() {
            let ci = u16::try_from(ci).map_err(|_| D::Error::custom("too many currencies"))?;
            if l.currency_ids.insert(c.clone(), ci).is_some() {
                return Err(D::Error::custom("duplicate currency"));
            }
        }
        l.currencies = s.currencies;
        l.accounts = s.accounts;
        l.transfers = s.transfers;
        let empty = l.empty.clone();
        for (ai, a) in l.accounts.iter_mut().enumerate() {
            if usize::from(a.currency) >= l.currencies.len() {
                return Err(D::Error::custom("account currency out of range"));
            }
            if a.metadata.is_empty() {
                a.metadata = empty.clone();
            }
            if l.account_ids.insert(a.id.clone(), idx32(ai)).is_some() {
                return Err(D::Error::custom("duplicate account id"));
            }
        }
        let n_accounts = l.accounts.len();
        for (ti, t) in l.transfers.iter_mut().enumerate() {
            if t.debit as usize >= n_accounts || t.credit as usize >= n_accounts {
                return Err(D::Error::custom("transfer account out of range"));
            }
            if t.metadata.is_empty() {
                t.metadata = empty.clone();
            }
            if t.resolution.is_none()
                && let Some(at) = t.expires_at_ms()
            {
                l.expiry.insert((at, idx32(ti)));
            }
        }
        for ti in 0..l.transfers.len() {
            let id = &l.transfers[ti].id;
            if l.transfer_ids.find(&l.transfers[..ti], id).is_some() {
                return Err(D::Error::custom("duplicate transfer id"));
            }
            l.transfer_ids.push(id, idx32(ti));
        }
        Ok(l)
    }
}
