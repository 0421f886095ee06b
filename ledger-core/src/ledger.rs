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
use crate::mem_store::{MemAccount, MemStore};
use crate::store::{Account, HistoryRecord, LedgerStore, Transfer};
use crate::types::{
    AccountCreatedEvent, AccountResult, AccountState, AccountView, ApplyContext, Balances, BatchFailure, BatchResult,
    Command, Decision, ExpireResult, HistoryEntry, HistoryFrom, HistoryPage, LedgerEvent, NewAccount, NewTransfer,
    Outcome, TransferEvent, TransferEventKind, TransferResult, TransferStatus, TransferView,
};
use crate::validate;

/// Version of the snapshot layout produced by `Ledger`'s `Serialize`.
pub const SNAPSHOT_FORMAT: u32 = 1;

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

/// The ledger: the rules over a [`LedgerStore`] of accounts, transfers, their histories and the
/// expiry queue, plus the few values that are not records (last applied index, log time, the
/// currencies).
///
/// Build with `Ledger::default()` (in memory), drive with [`Ledger::apply`]. A `Ledger<MemStore>`
/// snapshots with serde (`Serialize`/`Deserialize` are deterministic: records are stored in log
/// order, lookup maps are rebuilt on restore). A ledger over another store is opened with
/// [`Ledger::open`] from the store and the [`LedgerMeta`] saved beside it.
#[derive(Clone)]
pub struct Ledger<S: LedgerStore = MemStore> {
    last_index: u64,
    clock_ms: u64,
    currencies: Vec<Arc<str>>,
    store: S,
    // ---- derived, rebuilt on restore ----
    currency_ids: FxHashMap<Arc<str>, u16>,
    empty: Arc<str>,
}

/// What a [`Ledger`] holds besides its store's records: save it with the records it describes,
/// and give it back to [`Ledger::open`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMeta {
    /// Index of the last applied log entry (0 before any).
    pub last_index: u64,
    /// Log time (ms).
    pub clock_ms: u64,
    /// Currency codes in creation order (accounts refer to them by position).
    pub currencies: Vec<Arc<str>>,
}

impl Default for Ledger<MemStore> {
    fn default() -> Self {
        Ledger::open(MemStore::default(), LedgerMeta::default()).expect("an empty ledger")
    }
}

impl<S: LedgerStore> std::fmt::Debug for Ledger<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("last_index", &self.last_index)
            .field("clock_ms", &self.clock_ms)
            .field("accounts", &self.store.account_count())
            .field("transfers", &self.store.transfer_count())
            .field("open_expiring", &self.store.expiry_len())
            .finish()
    }
}

/// Equality of the replicated state (the derived lookup maps follow from it).
impl<S: LedgerStore + PartialEq> PartialEq for Ledger<S> {
    fn eq(&self, other: &Self) -> bool {
        self.last_index == other.last_index
            && self.clock_ms == other.clock_ms
            && self.currencies == other.currencies
            && self.store == other.store
    }
}

impl<S: LedgerStore + Eq> Eq for Ledger<S> {}

fn idx32(n: usize) -> u32 {
    u32::try_from(n).expect("record count bounded by limits")
}

fn state_of(a: &Account) -> AccountState {
    AccountState {
        id: a.id.clone(),
        balances: a.balances,
        updated_index: a.updated_index,
        version: a.history_len,
        closed: a.closed(),
    }
}

/// `a + b`, or `overflow` if the sum crosses `BALANCE_MAX`.
fn add_capped(a: u128, b: u128) -> Result<u128, ResultCode> {
    a.checked_add(b).filter(|&v| v <= BALANCE_MAX).ok_or(ResultCode::Overflow)
}

impl<S: LedgerStore> Ledger<S> {
    /// A ledger over `store`, whose records `meta` describes (as [`Ledger::meta`] gave it when
    /// they were saved). Fails if the currencies repeat or an account refers to a currency that
    /// `meta` lacks (checked for the last account only: a cheap guard against mismatched files).
    pub fn open(store: S, meta: LedgerMeta) -> Result<Ledger<S>, &'static str> {
        let mut currency_ids = FxHashMap::default();
        for (ci, c) in meta.currencies.iter().enumerate() {
            let ci = u16::try_from(ci).map_err(|_| "too many currencies")?;
            if currency_ids.insert(c.clone(), ci).is_some() {
                return Err("duplicate currency");
            }
        }
        if let Some(last) = store.account_count().checked_sub(1)
            && usize::from(store.account(idx32(last)).currency) >= meta.currencies.len()
        {
            return Err("account currency out of range");
        }
        Ok(Ledger {
            last_index: meta.last_index,
            clock_ms: meta.clock_ms,
            currencies: meta.currencies,
            store,
            currency_ids,
            empty: Arc::from(""),
        })
    }

    /// The values to save beside the store's records (see [`Ledger::open`]).
    pub fn meta(&self) -> LedgerMeta {
        LedgerMeta { last_index: self.last_index, clock_ms: self.clock_ms, currencies: self.currencies.clone() }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, given back (the ledger is dropped).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The store, to save or flush what the applies wrote. Changing records through it breaks
    /// the ledger's invariants.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

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
        // Rule 10: a limit on both sides would pin the account at zero.
        if a.credits_must_not_exceed_debits && !a.allow_overdraft {
            return Err(ResultCode::FlagsAreMutuallyExclusive);
        }
        let flags = (u8::from(a.allow_overdraft) * Account::OVERDRAFT)
            | (u8::from(a.credits_must_not_exceed_debits) * Account::CREDITS_LIMIT);
        if let Some(ai) = self.store.account_index(a.id.as_str()) {
            let e = self.store.account(ai);
            let same = *self.currencies[usize::from(e.currency)] == *a.currency
                && e.flags & !Account::CLOSED == flags
                && *e.metadata == *a.metadata;
            return if same {
                Ok(AccountResult { code: ResultCode::Exists, created: Some((e.created_index, e.created_timestamp_ms)) })
            } else {
                Err(ResultCode::IdConflict)
            };
        }
        if self.store.account_count() >= ACCOUNTS_MAX {
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
        let ai = idx32(self.store.account_count());
        self.store.push_account(
            ai,
            Account {
                id: id.clone(),
                currency,
                flags,
                metadata: metadata.clone(),
                created_index: cx.index,
                created_timestamp_ms: cx.now,
                balances: Balances::default(),
                updated_index: cx.index,
                history_len: 0,
            },
        );
        cx.events.push(LedgerEvent::AccountCreated(AccountCreatedEvent {
            index: cx.index,
            timestamp_ms: cx.now,
            id,
            currency: self.currencies[usize::from(currency)].clone(),
            allow_overdraft: a.allow_overdraft,
            metadata,
            credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
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
        let debit = self.store.account(e.debit);
        let credit = self.store.account(e.credit);
        *debit.id == *t.debit_account_id
            && *credit.id == *t.credit_account_id
            // Rule 10: a balancing transfer moved at most what was asked.
            && (e.amount == t.amount || (t.flags.balancing() && e.amount <= t.amount))
            && *self.currencies[usize::from(debit.currency)] == *t.currency
            && *e.metadata == *t.metadata
            && e.flags == t.flags.bits(t.pending)
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
        if t.flags.closing() && !t.pending {
            return Err(ResultCode::ClosingTransferMustBePending);
        }
        // Rule 4: idempotency.
        if let Some(ti) = self.store.transfer_index(&t.id) {
            let e = self.store.transfer(ti);
            return if self.same_transfer_body(&e, t) {
                Ok(TransferResult { code: ResultCode::Exists, decision: Some(e.created_decision()) })
            } else {
                Err(ResultCode::IdConflict)
            };
        }
        // Rule 1: accounts.
        let debit = self.store.account_index(t.debit_account_id.as_str()).ok_or(ResultCode::AccountNotFound)?;
        let credit = self.store.account_index(t.credit_account_id.as_str()).ok_or(ResultCode::AccountNotFound)?;
        if debit == credit {
            return Err(ResultCode::SameAccount);
        }
        let (mut da, mut ca) = (self.store.account(debit), self.store.account(credit));
        if da.currency != ca.currency || *self.currencies[usize::from(da.currency)] != *t.currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        // Rule 11: a closed account takes no new transfer.
        if da.closed() {
            return Err(ResultCode::DebitAccountClosed);
        }
        if ca.closed() {
            return Err(ResultCode::CreditAccountClosed);
        }
        if self.store.transfer_count() >= TRANSFERS_MAX {
            return Err(ResultCode::LimitExceeded);
        }
        // Rule 6: deadline in log time.
        let timeout_ms = t.timeout_ms.unwrap_or(0);
        if timeout_ms != 0 && cx.now.checked_add(timeout_ms).is_none() {
            return Err(ResultCode::Overflow);
        }
        let (d, c) = (da.balances, ca.balances);
        // Rule 10: a balancing transfer moves what the balances allow, up to the amount asked.
        let mut amount = u128::from(t.amount);
        if t.flags.balancing_debit {
            amount = amount.min(d.credits_posted.saturating_sub(d.debits_posted + d.debits_pending));
            if amount == 0 && !t.flags.closing() {
                return Err(ResultCode::InsufficientFunds);
            }
        }
        if t.flags.balancing_credit {
            amount = amount.min(c.debits_posted.saturating_sub(c.credits_posted + c.credits_pending));
            if amount == 0 && !t.flags.closing() {
                return Err(ResultCode::ExceedsDebits);
            }
        }
        // Rule 5 then rules 2 and 10.
        let debit_total = add_capped(d.debits_posted + d.debits_pending, amount)?;
        let credit_total = add_capped(c.credits_posted + c.credits_pending, amount)?;
        if !da.allow_overdraft() && debit_total > d.credits_posted {
            return Err(ResultCode::InsufficientFunds);
        }
        if ca.credits_limited() && credit_total > c.debits_posted {
            return Err(ResultCode::ExceedsDebits);
        }
        let amount64 = u64::try_from(amount).expect("at most the amount asked");
        // Commit (nothing above mutated state).
        let ti = idx32(self.store.transfer_count());
        if t.pending {
            da.balances.debits_pending += amount;
            ca.balances.credits_pending += amount;
        } else {
            da.balances.debits_posted += amount;
            ca.balances.credits_posted += amount;
        }
        // Rule 11: closed from this entry on (reopened by a void or expiry of this transfer).
        if t.flags.closing_debit {
            da.flags |= Account::CLOSED;
        }
        if t.flags.closing_credit {
            ca.flags |= Account::CLOSED;
        }
        let transfer = Transfer {
            id: Arc::from(t.id.as_str()),
            metadata: self.share_metadata(&t.metadata),
            debit,
            credit,
            amount: amount64,
            timeout_ms,
            created_index: cx.index,
            created_timestamp_ms: cx.now,
            flags: t.flags.bits(t.pending),
            resolution: None,
        };
        let decision = transfer.created_decision();
        if let Some(at) = transfer.expires_at_ms() {
            self.store.expiry_insert((at, ti));
        }
        self.record(ti, &transfer, (da, ca), TransferEventKind::Created, amount64, cx);
        self.store.push_transfer(ti, transfer);
        Ok(TransferResult { code: ResultCode::Created, decision: Some(decision) })
    }

    /// Undoes the most recent transfer creation (atomic batch rollback).
    /// Its event was already truncated by the caller.
    fn pop_created_transfer(&mut self) {
        let ti = idx32(self.store.transfer_count().checked_sub(1).expect("rollback of a created transfer"));
        let t = self.store.transfer(ti);
        self.store.pop_transfer(ti);
        if let Some(at) = t.expires_at_ms() {
            self.store.expiry_remove((at, ti));
        }
        let amount = u128::from(t.amount);
        for (ai, is_debit) in [(t.debit, true), (t.credit, false)] {
            let mut a = self.store.account(ai);
            let rec = self.store.history(ai, a.history_len);
            assert_eq!(rec.transfer, ti, "rollback out of order");
            self.store.pop_history(ai, a.history_len);
            a.history_len -= 1;
            // Rule 11: a closing transfer undone reopens what it closed (the account was open
            // before it, or the transfer would have been refused).
            let f = t.transfer_flags();
            if (is_debit && f.closing_debit) || (!is_debit && f.closing_credit) {
                a.flags &= !Account::CLOSED;
            }
            let b = &mut a.balances;
            match (is_debit, t.pending()) {
                (true, true) => b.debits_pending -= amount,
                (true, false) => b.debits_posted -= amount,
                (false, true) => b.credits_pending -= amount,
                (false, false) => b.credits_posted -= amount,
            }
            a.updated_index =
                if a.history_len == 0 { a.created_index } else { self.store.history(ai, a.history_len).index };
            self.store.put_account(ai, a);
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
        let transfers_mark = self.store.transfer_count();
        for (i, t) in ts.iter().enumerate() {
            let r = self.create_transfer(t, cx);
            if !r.code.is_success() {
                // Rule 7: all or nothing. Undo in reverse order.
                while self.store.transfer_count() > transfers_mark {
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
        let ti = self.store.transfer_index(pending_id).ok_or(ResultCode::TransferNotFound)?;
        let t = self.store.transfer(ti);
        if !t.pending() {
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
            self.expire_one(ti, t, cx);
            return Err(ResultCode::PendingExpired);
        }
        let (status, kind, code, posted) = match action {
            Action::Post(a) => {
                let a = a.unwrap_or(t.amount);
                if a > t.amount {
                    return Err(ResultCode::AmountExceedsPending);
                }
                // Rule 11: no money moves into or out of a closed account, except by posting the
                // transfer that closed it.
                let f = t.transfer_flags();
                if self.store.account(t.debit).closed() && !f.closing_debit {
                    return Err(ResultCode::DebitAccountClosed);
                }
                if self.store.account(t.credit).closed() && !f.closing_credit {
                    return Err(ResultCode::CreditAccountClosed);
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
        self.settle(ti, t, posted, decision, kind, cx);
        Ok(TransferResult { code, decision: Some(decision) })
    }

    /// Releases the reservation of open pending transfer `ti` (whose record is `t`), posts
    /// `posted` of it, stores the decision, records history and the event.
    fn settle(
        &mut self,
        ti: u32,
        mut t: Transfer,
        posted: u64,
        decision: Decision,
        kind: TransferEventKind,
        cx: &mut Cx,
    ) {
        debug_assert!(t.pending() && t.resolution.is_none() && posted <= t.amount);
        let expires = t.expires_at_ms();
        t.resolution = Some(decision);
        let reserved = u128::from(t.amount);
        let posted128 = u128::from(posted);
        // No overflow/funds check needed: each side's total only shrinks.
        let (mut da, mut ca) = (self.store.account(t.debit), self.store.account(t.credit));
        da.balances.debits_pending -= reserved;
        da.balances.debits_posted += posted128;
        ca.balances.credits_pending -= reserved;
        ca.balances.credits_posted += posted128;
        // Rule 11: a closing transfer voided or expired reopens what it closed.
        if kind != TransferEventKind::Posted {
            let f = t.transfer_flags();
            if f.closing_debit {
                da.flags &= !Account::CLOSED;
            }
            if f.closing_credit {
                ca.flags &= !Account::CLOSED;
            }
        }
        if let Some(at) = expires {
            self.store.expiry_remove((at, ti));
        }
        self.record(ti, &t, (da, ca), kind, decision.amount, cx);
        self.store.put_transfer(ti, t);
    }

    fn expire_one(&mut self, ti: u32, t: Transfer, cx: &mut Cx) {
        let decision =
            Decision { status: TransferStatus::Expired, index: cx.index, timestamp_ms: cx.now, amount: t.amount };
        self.settle(ti, t, 0, decision, TransferEventKind::Expired, cx);
    }

    /// Expires pending transfers due at `cx.now`, oldest deadline first
    /// (ties: creation order), at most `EXPIRE_PER_ENTRY_MAX`.
    fn expire_due(&mut self, cx: &mut Cx) -> u32 {
        // A cursor past the entries expired so far: each is removed from the queue, and a store
        // may still have to step over removed entries, so starting from the front every time
        // would be quadratic.
        let mut n = 0u32;
        let mut after = None;
        while (n as usize) < EXPIRE_PER_ENTRY_MAX {
            match self.store.expiry_next(after) {
                Some(key @ (at, ti)) if at <= cx.now => {
                    let t = self.store.transfer(ti);
                    self.expire_one(ti, t, cx);
                    after = Some(key);
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }

    /// Appends history records for both accounts of transfer `ti` (whose record is `t`; the
    /// accounts `da`, `ca` carry their new balances), stores the accounts, and emits the
    /// transfer event.
    fn record(
        &mut self,
        ti: u32,
        t: &Transfer,
        (mut da, mut ca): (Account, Account),
        kind: TransferEventKind,
        event_amount: u64,
        cx: &mut Cx,
    ) {
        for (ai, a) in [(t.debit, &mut da), (t.credit, &mut ca)] {
            a.history_len += 1;
            a.updated_index = cx.index;
            self.store.push_history(
                ai,
                a.history_len,
                HistoryRecord { index: cx.index, transfer: ti, kind, balances: a.balances },
            );
        }
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
            pending: t.pending(),
            expires_at_ms: t.expires_at_ms(),
            status: t.status(),
            metadata: t.metadata.clone(),
            debit_account: state_of(&da),
            credit_account: state_of(&ca),
            flags: t.transfer_flags(),
        }));
        self.store.put_account(t.debit, da);
        self.store.put_account(t.credit, ca);
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
        self.store.account_count()
    }

    /// Number of stored (successfully created) transfers.
    pub fn transfer_count(&self) -> usize {
        self.store.transfer_count()
    }

    pub(crate) fn view_account(&self, a: Account, balances: Balances, index: u64, version: u64) -> AccountView {
        AccountView {
            allow_overdraft: a.allow_overdraft(),
            credits_must_not_exceed_debits: a.credits_limited(),
            closed: a.closed(),
            id: a.id,
            currency: self.currencies[usize::from(a.currency)].clone(),
            metadata: a.metadata,
            created_index: a.created_index,
            created_timestamp_ms: a.created_timestamp_ms,
            balances,
            balance: balances.balance(),
            available: balances.available(),
            index,
            version,
        }
    }

    /// The store's number of currency `code`, if any account uses it.
    pub(crate) fn currency_number(&self, code: &str) -> Option<u16> {
        self.currency_ids.get(code).copied()
    }

    /// The balances of account `ai` (`a`) once log entry `index` was applied: its balances,
    /// last changing index and version then. `a` must exist at `index`.
    pub(crate) fn balances_as_of(&self, ai: u32, a: &Account, index: u64) -> (Balances, u64, u64) {
        if a.updated_index <= index {
            return (a.balances, a.updated_index, a.history_len);
        }
        match self.store.history_partition_point(ai, a.history_len, index) {
            0 => (Balances::default(), a.created_index, 0),
            p => {
                let r = self.store.history(ai, p);
                (r.balances, r.index, p)
            }
        }
    }

    fn find_account(&self, id: &str) -> Option<(u32, Account)> {
        let ai = self.store.account_index(id)?;
        Some((ai, self.store.account(ai)))
    }

    /// The account with its current balances.
    pub fn account(&self, id: &str) -> Option<AccountView> {
        let (_, a) = self.find_account(id)?;
        let (balances, index, version) = (a.balances, a.updated_index, a.history_len);
        Some(self.view_account(a, balances, index, version))
    }

    /// The account as it was once log entry `index` was applied: `None` if
    /// it did not exist yet. Binary search over its history (O(log n)).
    pub fn account_as_of(&self, id: &str, index: u64) -> Option<AccountView> {
        let (ai, a) = self.find_account(id)?;
        if index < a.created_index {
            return None;
        }
        let p = self.store.history_partition_point(ai, a.history_len, index);
        Some(match p {
            0 => {
                let created = a.created_index;
                self.view_account(a, Balances::default(), created, 0)
            }
            _ => {
                let r = self.store.history(ai, p);
                self.view_account(a, r.balances, r.index, p)
            }
        })
    }

    /// The transfer with its current status.
    pub fn transfer(&self, id: &str) -> Option<TransferView> {
        let t = self.store.transfer(self.store.transfer_index(id)?);
        Some(self.view_transfer(t, u64::MAX))
    }

    /// Transfer `t` as it was once log entry `at` was applied (`t` existed then): a post, void
    /// or expiry decided after `at` is left out.
    pub(crate) fn view_transfer(&self, t: Transfer, at: u64) -> TransferView {
        let da = self.store.account(t.debit);
        let resolution = t.resolution.filter(|r| r.index <= at);
        let created = t.created_decision();
        TransferView {
            debit_account_id: da.id.clone(),
            credit_account_id: self.store.account(t.credit).id,
            amount: t.amount,
            currency: self.currencies[usize::from(da.currency)].clone(),
            pending: t.pending(),
            flags: t.transfer_flags(),
            timeout_ms: (t.timeout_ms != 0).then_some(t.timeout_ms),
            expires_at_ms: t.expires_at_ms(),
            status: resolution.map_or(created.status, |r| r.status),
            created,
            resolution,
            id: t.id,
            metadata: t.metadata,
        }
    }

    /// One page of the account's balance changes (transfer events touching
    /// it), ordered by log index then version; `limit` is capped at
    /// `HISTORY_PAGE_MAX`. `None` if the account does not exist.
    pub fn account_transfers(&self, id: &str, from: HistoryFrom, limit: usize) -> Option<HistoryPage> {
        let (ai, a) = self.find_account(id)?;
        let len = a.history_len;
        let start = match from {
            HistoryFrom::Start => 0,
            HistoryFrom::AfterVersion(v) => v,
            HistoryFrom::AfterIndex(i) => self.store.history_partition_point(ai, len, i),
        }
        .min(len);
        let end = start.saturating_add(limit.min(HISTORY_PAGE_MAX) as u64).min(len);
        let entries = self
            .store
            .history_range(ai, start + 1, end)
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let t = self.store.transfer(r.transfer);
                let timestamp_ms = match (r.kind, t.resolution) {
                    (TransferEventKind::Created, _) | (_, None) => t.created_timestamp_ms,
                    (_, Some(res)) => res.timestamp_ms,
                };
                HistoryEntry {
                    version: start + k as u64 + 1,
                    index: r.index,
                    timestamp_ms,
                    transfer_id: t.id,
                    kind: r.kind,
                    balances: r.balances,
                }
            })
            .collect();
        Some(HistoryPage { entries, next: (end < len).then_some(end) })
    }

    /// Earliest deadline (log time, ms) among open pending transfers. The
    /// leader proposes `ExpirePending { now_ms }` once its clock passes it
    /// (any later entry also expires due transfers).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.store.expiry_next(None).map(|(at, _)| at)
    }

    /// Number of open pending transfers that have a deadline.
    pub fn open_expiring_count(&self) -> usize {
        self.store.expiry_len()
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
        let accounts = self.store.account_count();
        let transfers = self.store.transfer_count();
        let mut open = vec![(0u128, 0u128); accounts];
        let mut expected = BTreeSet::new();
        for ti in 0..idx32(transfers) {
            let t = self.store.transfer(ti);
            if t.debit as usize >= accounts || t.credit as usize >= accounts {
                return Err(InvariantViolation::IndexCorrupt("transfer account out of range"));
            }
            if t.pending() && t.resolution.is_none() {
                open[t.debit as usize].0 += u128::from(t.amount);
                open[t.credit as usize].1 += u128::from(t.amount);
                if let Some(at) = t.expires_at_ms() {
                    expected.insert((at, ti));
                }
            }
            if self.store.transfer_index(&t.id) != Some(ti) {
                return Err(InvariantViolation::IndexCorrupt("transfer_ids"));
            }
        }
        for ai in 0..idx32(accounts) {
            let a = self.store.account(ai);
            let b = a.balances;
            let c = usize::from(a.currency);
            if c >= n {
                return Err(InvariantViolation::IndexCorrupt("account currency out of range"));
            }
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
            if !a.allow_overdraft() && b.available() < 0 {
                return Err(InvariantViolation::Overdrawn(name()));
            }
            // Rule 10: the liability-side limit.
            if a.credits_limited() && b.credits_posted + b.credits_pending > b.debits_posted {
                return Err(InvariantViolation::Overdrawn(name()));
            }
            if open[ai as usize] != (b.debits_pending, b.credits_pending) {
                return Err(InvariantViolation::PendingMismatch(name()));
            }
            if self.store.account_index(&a.id) != Some(ai) {
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
        if self.currency_ids.len() != self.currencies.len() {
            return Err(InvariantViolation::IndexCorrupt("map sizes"));
        }
        self.store.check_store().map_err(InvariantViolation::IndexCorrupt)?;
        let mut queued = BTreeSet::new();
        let mut cur = None;
        while let Some(k) = self.store.expiry_next(cur) {
            if queued.len() > transfers {
                return Err(InvariantViolation::IndexCorrupt("expiry queue"));
            }
            queued.insert(k);
            cur = Some(k);
        }
        if expected != queued || queued.len() != self.store.expiry_len() {
            return Err(InvariantViolation::IndexCorrupt("expiry queue"));
        }
        Ok(())
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
        let d = self.store.account_index(debit).ok_or(ResultCode::AccountNotFound)?;
        let c = self.store.account_index(credit).ok_or(ResultCode::AccountNotFound)?;
        if d == c {
            return Err(ResultCode::SameAccount);
        }
        let (mut da, mut ca) = (self.store.account(d), self.store.account(c));
        if da.currency != ca.currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        add_capped(da.balances.debits_posted + da.balances.debits_pending, amount)?;
        add_capped(ca.balances.credits_posted + ca.balances.credits_pending, amount)?;
        da.balances.debits_posted += amount;
        ca.balances.credits_posted += amount;
        self.store.put_account(d, da);
        self.store.put_account(c, ca);
        Ok(())
    }
}

impl Ledger<MemStore> {
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
        self.store.heap_bytes_estimate()
            + self.currencies.capacity() * size_of::<Arc<str>>()
            + self.currency_ids.capacity() * (size_of::<(Arc<str>, u16)>() + 1)
    }

    /// Size in bytes of the fixed per-record structs (account, transfer,
    /// history record), for documentation and tests.
    pub fn record_sizes() -> (usize, usize, usize) {
        MemStore::record_sizes()
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
    accounts: &'a [MemAccount],
    transfers: &'a [Transfer],
}

#[derive(Deserialize)]
struct SnapshotOwned {
    format: u32,
    last_index: u64,
    clock_ms: u64,
    currencies: Vec<Arc<str>>,
    accounts: Vec<MemAccount>,
    transfers: Vec<Transfer>,
}

/// Serializes the replicated state in log order (deterministic: no hash
/// map is serialized).
impl Serialize for Ledger<MemStore> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        SnapshotRef {
            format: SNAPSHOT_FORMAT,
            last_index: self.last_index,
            clock_ms: self.clock_ms,
            currencies: &self.currencies,
            accounts: &self.store.accounts,
            transfers: &self.store.transfers,
        }
        .serialize(s)
    }
}

/// Restores a snapshot and rebuilds the lookup maps and expiry queue;
/// rejects snapshots whose references are out of range or ids duplicated.
impl<'de> Deserialize<'de> for Ledger<MemStore> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = SnapshotOwned::deserialize(d)?;
        if s.format != SNAPSHOT_FORMAT {
            return Err(D::Error::custom(format!("unsupported ledger snapshot format {}", s.format)));
        }
        let empty: Arc<str> = Arc::from("");
        let store =
            MemStore::from_records(s.accounts, s.transfers, s.currencies.len(), &empty).map_err(D::Error::custom)?;
        let meta = LedgerMeta { last_index: s.last_index, clock_ms: s.clock_ms, currencies: s.currencies };
        let mut l = Ledger::open(store, meta).map_err(D::Error::custom)?;
        l.empty = empty;
        Ok(l)
    }
}
