//! [`MemStore`]: every record in memory, in vectors numbered by creation order, with hash
//! indexes for ids. What tests and benches use, and what a snapshot of a `Ledger<MemStore>`
//! holds (`Serialize`/`Deserialize` of [`crate::Ledger`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::store::{Account, ExpiryKey, HistoryRecord, LedgerRead, LedgerStore, Transfer};
use crate::types::Balances;

/// An account with its history inline. The field order is the snapshot layout of
/// `SNAPSHOT_FORMAT` 1; do not reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemAccount {
    pub(crate) id: Arc<str>,
    pub(crate) currency: u16,
    /// `Account::flags` (the byte that was `allow_overdraft` alone).
    pub(crate) flags: u8,
    pub(crate) metadata: Arc<str>,
    pub(crate) created_index: u64,
    pub(crate) created_timestamp_ms: u64,
    pub(crate) balances: Balances,
    pub(crate) updated_index: u64,
    pub(crate) history: Vec<HistoryRecord>,
}

/// Index of transfer ids: 64-bit id hash -> most recent transfer with that hash, plus a
/// per-transfer chain to older transfers with the same hash (so hash collisions are handled
/// exactly). Keys are plain `u64`s, so growing the table never dereferences id strings.
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

/// Every record in memory. Lookups use a fixed hasher and no map is iterated or serialized, so
/// two nodes holding the same records are byte-identical in a snapshot.
#[derive(Clone, Default)]
pub struct MemStore {
    pub(crate) accounts: Vec<MemAccount>,
    pub(crate) transfers: Vec<Transfer>,
    account_ids: FxHashMap<Arc<str>, u32>,
    transfer_ids: IdIndex,
    expiry: BTreeSet<ExpiryKey>,
    /// While a [`crate::Loader`] fills the store: the history length of each account pushed with
    /// more history than it holds yet (emptied as the records arrive).
    declared: FxHashMap<u32, u64>,
}

/// Equality of the records (the indexes follow from them).
impl PartialEq for MemStore {
    fn eq(&self, other: &Self) -> bool {
        self.accounts == other.accounts && self.transfers == other.transfers
    }
}

impl Eq for MemStore {}

fn idx32(n: usize) -> u32 {
    u32::try_from(n).expect("record count bounded by limits")
}

impl MemStore {
    /// Builds the store from records in creation order, rebuilding the id indexes and the expiry
    /// queue. Refuses duplicate ids and references out of range. `empty` replaces empty metadata
    /// (one shared allocation).
    pub(crate) fn from_records(
        accounts: Vec<MemAccount>,
        transfers: Vec<Transfer>,
        currencies: usize,
        empty: &Arc<str>,
    ) -> Result<MemStore, &'static str> {
        let mut s = MemStore { accounts, transfers, ..MemStore::default() };
        for (ai, a) in s.accounts.iter_mut().enumerate() {
            if usize::from(a.currency) >= currencies {
                return Err("account currency out of range");
            }
            if a.metadata.is_empty() {
                a.metadata = empty.clone();
            }
            if s.account_ids.insert(a.id.clone(), idx32(ai)).is_some() {
                return Err("duplicate account id");
            }
        }
        let n_accounts = s.accounts.len();
        for (ti, t) in s.transfers.iter_mut().enumerate() {
            if t.debit as usize >= n_accounts || t.credit as usize >= n_accounts {
                return Err("transfer account out of range");
            }
            if t.metadata.is_empty() {
                t.metadata = empty.clone();
            }
            if t.resolution.is_none()
                && let Some(at) = t.expires_at_ms()
            {
                s.expiry.insert((at, idx32(ti)));
            }
        }
        for ti in 0..s.transfers.len() {
            let id = &s.transfers[ti].id;
            if s.transfer_ids.find(&s.transfers[..ti], id).is_some() {
                return Err("duplicate transfer id");
            }
            s.transfer_ids.push(id, idx32(ti));
        }
        Ok(s)
    }

    /// Estimated heap bytes of the records and indexes (see [`crate::Ledger::heap_bytes_estimate`]).
    pub(crate) fn heap_bytes_estimate(&self) -> usize {
        use std::mem::size_of;
        fn arc_str(s: &str) -> usize {
            (16 + s.len()).div_ceil(8) * 8
        }
        // hashbrown: one control byte per bucket plus the entry.
        fn map<K, V>(m: &FxHashMap<K, V>) -> usize {
            m.capacity() * (size_of::<(K, V)>() + 1)
        }
        let mut n = self.accounts.capacity() * size_of::<MemAccount>()
            + self.transfers.capacity() * size_of::<Transfer>()
            + map(&self.account_ids)
            + self.transfer_ids.heap_bytes()
            // BTreeSet: ~ entries plus node overhead; count 1.5x the entries.
            + self.expiry.len() * size_of::<ExpiryKey>() * 3 / 2;
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

    /// Size in bytes of the fixed per-record structs (account, transfer, history record).
    pub(crate) fn record_sizes() -> (usize, usize, usize) {
        (std::mem::size_of::<MemAccount>(), std::mem::size_of::<Transfer>(), std::mem::size_of::<HistoryRecord>())
    }
}

impl LedgerRead for MemStore {
    fn account_count(&self) -> usize {
        self.accounts.len()
    }

    fn account(&self, ai: u32) -> Account {
        let a = &self.accounts[ai as usize];
        Account {
            id: a.id.clone(),
            currency: a.currency,
            flags: a.flags,
            metadata: a.metadata.clone(),
            created_index: a.created_index,
            created_timestamp_ms: a.created_timestamp_ms,
            balances: a.balances,
            updated_index: a.updated_index,
            history_len: self.declared.get(&ai).copied().unwrap_or(a.history.len() as u64),
        }
    }

    fn account_index(&self, id: &str) -> Option<u32> {
        self.account_ids.get(id).copied()
    }

    fn transfer_count(&self) -> usize {
        self.transfers.len()
    }

    fn transfer(&self, ti: u32) -> Transfer {
        self.transfers[ti as usize].clone()
    }

    fn transfer_index(&self, id: &str) -> Option<u32> {
        self.transfer_ids.find(&self.transfers, id)
    }

    fn history(&self, ai: u32, version: u64) -> HistoryRecord {
        self.accounts[ai as usize].history[version as usize - 1].clone()
    }

    fn history_range(&self, ai: u32, from: u64, to: u64) -> Vec<HistoryRecord> {
        let h = &self.accounts[ai as usize].history;
        if from > to {
            return Vec::new();
        }
        h[from as usize - 1..to as usize].to_vec()
    }

    fn history_stored(&self, ai: u32) -> u64 {
        self.accounts[ai as usize].history.len() as u64
    }

    fn history_partition_point(&self, ai: u32, len: u64, index: u64) -> u64 {
        self.accounts[ai as usize].history[..len as usize].partition_point(|r| r.index <= index) as u64
    }

    fn expiry_next(&self, after: Option<ExpiryKey>) -> Option<ExpiryKey> {
        match after {
            None => self.expiry.first().copied(),
            Some(k) => self.expiry.range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)).next().copied(),
        }
    }

    fn expiry_len(&self) -> usize {
        self.expiry.len()
    }

    fn check_store(&self) -> Result<(), &'static str> {
        if self.account_ids.len() != self.accounts.len() || self.transfer_ids.len() != self.transfers.len() {
            return Err("map sizes");
        }
        Ok(())
    }
}

impl LedgerStore for MemStore {
    fn push_account(&mut self, ai: u32, a: Account) {
        assert_eq!(ai as usize, self.accounts.len(), "accounts are numbered densely");
        if a.history_len > 0 {
            self.declared.insert(ai, a.history_len);
        }
        self.account_ids.insert(a.id.clone(), ai);
        self.accounts.push(MemAccount {
            id: a.id,
            currency: a.currency,
            flags: a.flags,
            metadata: a.metadata,
            created_index: a.created_index,
            created_timestamp_ms: a.created_timestamp_ms,
            balances: a.balances,
            updated_index: a.updated_index,
            history: Vec::new(),
        });
    }

    fn put_account(&mut self, ai: u32, a: Account) {
        let m = &mut self.accounts[ai as usize];
        debug_assert_eq!(a.history_len, m.history.len() as u64, "history is pushed before the account is put");
        debug_assert!(*m.id == *a.id);
        m.balances = a.balances;
        m.updated_index = a.updated_index;
        m.flags = a.flags;
    }

    fn push_transfer(&mut self, ti: u32, t: Transfer) {
        assert_eq!(ti as usize, self.transfers.len(), "transfers are numbered densely");
        self.transfer_ids.push(&t.id, ti);
        self.transfers.push(t);
    }

    fn put_transfer(&mut self, ti: u32, t: Transfer) {
        self.transfers[ti as usize] = t;
    }

    fn pop_transfer(&mut self, ti: u32) {
        assert_eq!(ti as usize + 1, self.transfers.len(), "only the newest transfer is popped");
        let t = self.transfers.pop().expect("a transfer to pop");
        self.transfer_ids.pop(&t.id);
    }

    fn push_history(&mut self, ai: u32, version: u64, r: HistoryRecord) {
        let h = &mut self.accounts[ai as usize].history;
        assert_eq!(version, h.len() as u64 + 1, "history is numbered densely");
        h.push(r);
        if self.declared.get(&ai) == Some(&version) {
            self.declared.remove(&ai);
        }
    }

    fn pop_history(&mut self, ai: u32, version: u64) {
        let h = &mut self.accounts[ai as usize].history;
        assert_eq!(version, h.len() as u64, "only the newest history record is popped");
        h.pop();
    }

    fn expiry_insert(&mut self, key: ExpiryKey) {
        self.expiry.insert(key);
    }

    fn expiry_remove(&mut self, key: ExpiryKey) {
        self.expiry.remove(&key);
    }
}
