//! [`NodeStore`]: where this node keeps the ledger's records, in memory or on disk
//! ([`DiskLedger`]), chosen by `--state-store`; it forwards ledger-core's store traits to the one
//! it holds.

use ledger_core::{Account, ExpiryKey, HistoryRecord, LedgerRead, LedgerStore, MemStore, Transfer};

use super::ledger_db::DiskLedger;

/// Where this node keeps the ledger's records: in memory (`--state-store memory`; tests and
/// benchmarks) or on disk (`--state-store disk`, the default).
pub enum NodeStore {
    /// Everything in memory; snapshots are files of the whole state.
    Mem(MemStore),
    /// In fjall; snapshots are read snapshots of the store.
    Disk(DiskLedger),
}

impl Default for NodeStore {
    fn default() -> Self {
        NodeStore::Mem(MemStore::default())
    }
}

impl std::fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeStore::Mem(_) => f.write_str("NodeStore::Mem"),
            NodeStore::Disk(d) => d.fmt(f),
        }
    }
}

/// Only an in-memory store is cloned (a memory-mode snapshot clones the state under the lock);
/// a disk store is snapshotted with [`DiskLedger::view`] instead.
impl Clone for NodeStore {
    fn clone(&self) -> Self {
        match self {
            NodeStore::Mem(m) => NodeStore::Mem(m.clone()),
            NodeStore::Disk(_) => panic!("a disk state store is not cloned: take a view of it"),
        }
    }
}

/// Equal records (tests): memory stores compare directly, others by their dumps.
impl PartialEq for NodeStore {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (NodeStore::Mem(a), NodeStore::Mem(b)) => a == b,
            _ => {
                let dump = |s: &NodeStore| {
                    let mut out = Vec::new();
                    let _ = ledger_core::for_each_record(s, |r| -> Result<(), ()> {
                        out.push(r);
                        Ok(())
                    });
                    out
                };
                dump(self) == dump(other)
            }
        }
    }
}

impl Eq for NodeStore {}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            NodeStore::Mem($s) => $e,
            NodeStore::Disk($s) => $e,
        }
    };
}

impl LedgerRead for NodeStore {
    fn account_count(&self) -> usize {
        each!(self, s => s.account_count())
    }
    fn account(&self, ai: u32) -> Account {
        each!(self, s => s.account(ai))
    }
    fn account_index(&self, id: &str) -> Option<u32> {
        each!(self, s => s.account_index(id))
    }
    fn transfer_count(&self) -> usize {
        each!(self, s => s.transfer_count())
    }
    fn transfer(&self, ti: u32) -> Transfer {
        each!(self, s => s.transfer(ti))
    }
    fn transfer_index(&self, id: &str) -> Option<u32> {
        each!(self, s => s.transfer_index(id))
    }
    fn transfers_range(&self, from: u32, to: u32) -> Vec<Transfer> {
        each!(self, s => s.transfers_range(from, to))
    }
    fn history(&self, ai: u32, version: u64) -> HistoryRecord {
        each!(self, s => s.history(ai, version))
    }
    fn history_stored(&self, ai: u32) -> u64 {
        each!(self, s => s.history_stored(ai))
    }
    fn for_each_history(&self, f: &mut dyn FnMut(u32, HistoryRecord) -> bool) {
        each!(self, s => s.for_each_history(f))
    }
    fn history_range(&self, ai: u32, from: u64, to: u64) -> Vec<HistoryRecord> {
        each!(self, s => s.history_range(ai, from, to))
    }
    fn history_partition_point(&self, ai: u32, len: u64, index: u64) -> u64 {
        each!(self, s => s.history_partition_point(ai, len, index))
    }
    fn expiry_next(&self, after: Option<ExpiryKey>) -> Option<ExpiryKey> {
        each!(self, s => s.expiry_next(after))
    }
    fn expiry_len(&self) -> usize {
        each!(self, s => s.expiry_len())
    }
    fn check_store(&self) -> Result<(), &'static str> {
        each!(self, s => s.check_store())
    }
}

impl LedgerStore for NodeStore {
    fn push_account(&mut self, ai: u32, a: Account) {
        each!(self, s => s.push_account(ai, a))
    }
    fn put_account(&mut self, ai: u32, a: Account) {
        each!(self, s => s.put_account(ai, a))
    }
    fn push_transfer(&mut self, ti: u32, t: Transfer) {
        each!(self, s => s.push_transfer(ti, t))
    }
    fn put_transfer(&mut self, ti: u32, t: Transfer) {
        each!(self, s => s.put_transfer(ti, t))
    }
    fn pop_transfer(&mut self, ti: u32) {
        each!(self, s => s.pop_transfer(ti))
    }
    fn push_history(&mut self, ai: u32, version: u64, r: HistoryRecord) {
        each!(self, s => s.push_history(ai, version, r))
    }
    fn pop_history(&mut self, ai: u32, version: u64) {
        each!(self, s => s.pop_history(ai, version))
    }
    fn expiry_insert(&mut self, key: ExpiryKey) {
        each!(self, s => s.expiry_insert(key))
    }
    fn expiry_remove(&mut self, key: ExpiryKey) {
        each!(self, s => s.expiry_remove(key))
    }
}
