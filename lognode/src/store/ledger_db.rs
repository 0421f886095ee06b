//! The ledger's records on disk (issue 20): a [`LedgerStore`] over fjall, an LSM tree chosen by
//! `storebench/` (ARCHITECTURE.md has the figures).
//!
//! Layout: one fjall database, `<data-dir>/state/`, with these keyspaces (numbers big-endian, so
//! keys sort in numeric order):
//! - `accounts`: account number (u32) → [`Account`] (postcard);
//! - `transfers`: transfer number (u32) → [`Transfer`];
//! - `history`: history sequence (u64) → the account number, the distance back to the account's
//!   previous record (0 for its first) and the [`HistoryRecord`]. Every account's records go to
//!   one sequence, so the keyspace only ever appends: its tables never overlap and compaction
//!   moves them rather than merge them. (Keyed by account ‖ version, every insert landed in the middle of
//!   the keyspace, and the cost per transfer of merging them grew with the ledger: issue 20.)
//! - `anchors`: account number ‖ version (u64) → history sequence ‖ log index, for every
//!   [`HISTORY_ANCHOR_EVERY`]th version: a record is found from the anchor at or above its
//!   version (or the account's tail) by at most `HISTORY_ANCHOR_EVERY - 1` steps back, and a
//!   balance as of an index by a binary search over the anchors' indexes;
//! - `tails`: account number → history sequence ‖ version of its newest record;
//! - `ids`: `a` ‖ account id → account number, `t` ‖ transfer id → transfer number (the
//!   permanent deduplication index of rule 4);
//! - `expiry`: deadline (u64) ‖ transfer number (u32) → nothing;
//! - `meta`: `counts` → [`Counts`]; `state` → the caller's bytes (what else the node keeps, written
//!   with the records it describes); `layout` → [`STORE_LAYOUT`].
//!
//! Writes go to an in-memory overlay first; [`DiskLedger::commit`] writes the overlay and the
//! caller's state bytes as one fjall batch, without fsync: the Raft log is the durability, and a
//! node that crashes applies again the entries after the last batch that reached the disk. The
//! batch is handed to the operating system at once, so a killed process loses nothing of it.
//! Reads see the overlay, then the database. An I/O error of the store stops the node (a panic
//! under the apply path's abort guard): a replica that cannot read its state must not answer.
//!
//! [`DiskView`] is a read snapshot of the committed records (fjall's own snapshot, taken in O(1)),
//! which a Raft snapshot dumps while apply goes on.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace};
use ledger_core::{Account, ExpiryKey, HistoryRecord, LedgerRead, LedgerStore, Transfer};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::limits::STATE_ACCOUNT_CACHE_MAX;

mod history;
mod options;
use history::{HistorySrc, Stored, anchor_key, history_partition_point, history_range, pair_bytes};
use options::{ids_options, options, unfiltered};

/// Memtable size of each keyspace. storebench found fjall's default (64 MiB, six keyspaces) to be
/// where its memory grew; in a 3-node cluster on two cores, 8 MiB ones made so many flushes and
/// compactions that throughput fell (33,639 against 39,875 transfers/s over 60 s with 32 MiB).
const MEMTABLE_BYTES: u64 = 32 << 20;
/// Journal bytes after which fjall flushes the oldest memtables so that it can drop journals
/// (its smallest allowed value): bounds both the journal's disk and what an open replays.
const JOURNAL_BYTES_MAX: u64 = 64 << 20;
/// fjall's background threads (flushes and compactions). One: with more, fjall's worker 0 hands
/// every compaction request back to the queue and takes the next message, which is the same
/// request while the other workers are busy, so it spins (11 % of the store's CPU in a profile of
/// `--bench state_store`; fjall 3.1, see fjall-rs/fjall#323). With one, CPU per transfer over
/// 9M transfers went 9.60 → 9.00 µs and no flush waited long enough to stall writes.
const FJALL_WORKERS: usize = 1;
/// Longest wait in [`DiskLedger::flush`] for memtables queued behind a compaction (lognode's
/// close gives the whole flush `SHUTDOWN_GRACE`, the same 5 s; past it the journal covers them).
const FLUSH_WAIT_MAX: Duration = Duration::from_secs(5);
/// How often [`DiskLedger::flush`] looks at the flush queue.
const FLUSH_POLL: Duration = Duration::from_millis(10);
/// Target table size of the `ids` keyspace (fjall's leveled default is 64 MiB; level 1 holds four
/// tables). Its keys are client ids, random, so every level-0 compaction rewrites level 1: smaller
/// tables make a smaller level 1 and put the rest in deeper levels. `--bench state_store`, 12M
/// transfers, one run each, CPU µs per transfer over the run: 64 MiB 9.55 (last windows 10.75,
/// 11.13, 10.41), 16 MiB 8.56 (9.30, 9.07, 9.22), 8 MiB 9.85.
const IDS_TABLE_BYTES: u64 = 16 << 20;
const COUNTS_KEY: &[u8] = b"counts";
const STATE_KEY: &[u8] = b"state";
const LAYOUT_KEY: &[u8] = b"layout";
/// Version of the keyspaces' layout. 2 (2026-12-04): history by a global sequence, with anchors
/// and tails. A store of another layout is refused at open, naming both versions.
pub const STORE_LAYOUT: u32 = 2;
/// Every how many versions of an account its history has an anchor: the most steps back a read
/// of one record takes (each a point read) against the anchors' share of the writes.
pub const HISTORY_ANCHOR_EVERY: u64 = 32;

/// Why a store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] fjall::Error),
    /// The store was written with another layout.
    #[error(
        "the state store has layout {} and this lognode reads layout {STORE_LAYOUT}: it was written by another \
         version (start with an empty data directory, or add the node anew so that it loads a snapshot)",
        .found.map_or_else(|| "none recorded".to_owned(), |v| v.to_string())
    )]
    Layout {
        /// The layout found (`None`: a store from before layouts were recorded).
        found: Option<u32>,
    },
}

/// How many records of each kind the store holds (committed with them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    accounts: u32,
    transfers: u32,
    expiry: u64,
    /// The next history sequence (sequences of records undone inside an apply are not reused).
    history: u64,
}

#[derive(Clone)]
struct Keyspaces {
    accounts: Keyspace,
    transfers: Keyspace,
    history: Keyspace,
    anchors: Keyspace,
    tails: Keyspace,
    ids: Keyspace,
    expiry: Keyspace,
    meta: Keyspace,
}

/// Writes not yet committed.
#[derive(Default)]
struct Overlay {
    accounts: FxHashMap<u32, Account>,
    transfers: FxHashMap<u32, Transfer>,
    /// History sequence → (account, distance back, record).
    history: FxHashMap<u64, Stored>,
    /// (account, version) → (history sequence, log index).
    anchors: FxHashMap<(u32, u64), (u64, u64)>,
    /// Account → (history sequence, version) of its newest record.
    tails: FxHashMap<u32, (u64, u64)>,
    /// New ids (`a`/`t` ‖ id) → number.
    ids: FxHashMap<Box<[u8]>, u32>,
    /// `true`: inserted; `false`: removed from the database.
    expiry: BTreeMap<ExpiryKey, bool>,
    /// Writes since the last commit (a bound on the overlay's entries).
    ops: usize,
}

impl Overlay {
    fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.transfers.is_empty()
            && self.history.is_empty()
            && self.anchors.is_empty()
            && self.tails.is_empty()
            && self.ids.is_empty()
            && self.expiry.is_empty()
    }
}

fn io<T>(r: fjall::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("the state store failed: {e}; the node stops rather than serve a state it cannot read"))
}

/// Encodes a record for the store: postcard (varints, so the small numbers of most records
/// take a byte or two; bincode's fixed-width u128 balances made a history record 80 bytes).
fn record_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("postcard encoding of an in-memory record cannot fail")
}

fn value<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> T {
    postcard::from_bytes(bytes).unwrap_or_else(|e| panic!("the state store holds a {what} that does not decode: {e}"))
}

fn id_key(kind: u8, id: &str) -> Box<[u8]> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(kind);
    k.extend_from_slice(id.as_bytes());
    k.into_boxed_slice()
}

fn expiry_key((at, ti): ExpiryKey) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&at.to_be_bytes());
    k[8..].copy_from_slice(&ti.to_be_bytes());
    k
}

fn parse_expiry_key(k: &[u8]) -> ExpiryKey {
    assert_eq!(k.len(), 12, "an expiry key is 12 bytes");
    let at = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
    let ti = u32::from_be_bytes(k[8..].try_into().expect("4 bytes"));
    (at, ti)
}

fn number(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(
        bytes.try_into().unwrap_or_else(|_| panic!("the state store holds an id index entry of {} bytes", bytes.len())),
    )
}

/// Where committed records are read from: the live keyspaces, or a snapshot of the database.
trait Src {
    fn get(&self, ks: &Keyspace, key: &[u8]) -> fjall::Result<Option<fjall::UserValue>>;
    fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, ks: &Keyspace, r: R) -> fjall::Iter;
}

/// The live keyspaces: their newest committed data.
struct Live;

impl Src for Live {
    fn get(&self, ks: &Keyspace, key: &[u8]) -> fjall::Result<Option<fjall::UserValue>> {
        ks.get(key)
    }
    fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, ks: &Keyspace, r: R) -> fjall::Iter {
        ks.range(r)
    }
}

impl Src for fjall::Snapshot {
    fn get(&self, ks: &Keyspace, key: &[u8]) -> fjall::Result<Option<fjall::UserValue>> {
        fjall::Readable::get(self, ks, key)
    }
    fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, ks: &Keyspace, r: R) -> fjall::Iter {
        fjall::Readable::range(self, ks, r)
    }
}

fn get_account(r: &impl Src, ks: &Keyspaces, ai: u32) -> Account {
    let v =
        io(r.get(&ks.accounts, &ai.to_be_bytes())).unwrap_or_else(|| panic!("account {ai} is not in the state store"));
    value(&v, "account")
}

fn get_transfer(r: &impl Src, ks: &Keyspaces, ti: u32) -> Transfer {
    let v = io(r.get(&ks.transfers, &ti.to_be_bytes()))
        .unwrap_or_else(|| panic!("transfer {ti} is not in the state store"));
    value(&v, "transfer")
}

fn get_id(r: &impl Src, ks: &Keyspaces, key: &[u8]) -> Option<u32> {
    io(r.get(&ks.ids, key)).map(|v| number(&v))
}

fn transfers_range(r: &impl Src, ks: &Keyspaces, from: u32, to: u32) -> Vec<Transfer> {
    if from >= to {
        return Vec::new();
    }
    r.range(&ks.transfers, from.to_be_bytes()..to.to_be_bytes())
        .map(|g| {
            let v = io(g.value());
            value(&v, "transfer")
        })
        .collect()
}

/// The first expiry key in the database after `after`, skipping those `removed` says are gone.
fn disk_expiry_next(
    r: &impl Src,
    ks: &Keyspaces,
    after: Option<ExpiryKey>,
    removed: impl Fn(&ExpiryKey) -> bool,
) -> Option<ExpiryKey> {
    let lower = match after {
        Some(k) => Bound::Excluded(expiry_key(k)),
        None => Bound::Unbounded,
    };
    for g in r.range(&ks.expiry, (lower, Bound::<[u8; 12]>::Unbounded)) {
        let k = parse_expiry_key(&io(g.key()));
        if !removed(&k) {
            return Some(k);
        }
    }
    None
}

/// Committed accounts, account ids and history tails read recently (none goes stale: an id
/// never changes number, and every account or tail write passes through the overlay, which is
/// read first and moves here on every commit, the load's included). Each map holds at most
/// `STATE_ACCOUNT_CACHE_MAX` entries and is emptied when full.
#[derive(Default)]
struct Cache {
    ids: FxHashMap<Box<str>, u32>,
    accounts: FxHashMap<u32, Account>,
    tails: FxHashMap<u32, (u64, u64)>,
}

fn cache_insert<K: std::hash::Hash + Eq, V>(m: &mut FxHashMap<K, V>, k: K, v: V) {
    if m.len() >= STATE_ACCOUNT_CACHE_MAX {
        m.clear();
    }
    m.insert(k, v);
}

/// The ledger's records in a fjall database (see the module docs).
pub struct DiskLedger {
    db: Database,
    ks: Keyspaces,
    /// Counts including the overlay.
    counts: Counts,
    /// Boxed: the store sits in an enum beside the memory store.
    overlay: Box<Overlay>,
    cache: std::sync::Mutex<Cache>,
    /// While a snapshot is loaded: commit (with no state bytes, which marks the store as not
    /// whole) whenever the overlay holds this many writes, so that it stays bounded.
    spill_at: Option<usize>,
}

impl std::fmt::Debug for DiskLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskLedger").field("counts", &self.counts).finish_non_exhaustive()
    }
}

impl DiskLedger {
    /// Opens (or creates) the store in `dir` with a block cache of `cache_bytes`. Returns it and
    /// the state bytes of its last commit (`None` for a new store).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<(DiskLedger, Option<Vec<u8>>), OpenError> {
        let db = Database::builder(dir)
            .cache_size(cache_bytes)
            .max_journaling_size(JOURNAL_BYTES_MAX)
            .worker_threads(FJALL_WORKERS)
            .open()?;
        let ks = Keyspaces {
            accounts: db.keyspace("accounts", options)?,
            transfers: db.keyspace("transfers", unfiltered)?,
            history: db.keyspace("history", unfiltered)?,
            anchors: db.keyspace("anchors", unfiltered)?,
            tails: db.keyspace("tails", options)?,
            ids: db.keyspace("ids", || {
                ids_options().compaction_strategy(std::sync::Arc::new(
                    fjall::compaction::Leveled::default().with_table_target_size(IDS_TABLE_BYTES),
                ))
            })?,
            expiry: db.keyspace("expiry", unfiltered)?,
            meta: db.keyspace("meta", options)?,
        };
        let counts = match ks.meta.get(COUNTS_KEY)? {
            Some(v) => {
                let layout =
                    ks.meta.get(LAYOUT_KEY)?.and_then(|v| Some(u32::from_be_bytes(v.as_ref().try_into().ok()?)));
                if layout != Some(STORE_LAYOUT) {
                    return Err(OpenError::Layout { found: layout });
                }
                value(&v, "counts record")
            }
            None => Counts::default(),
        };
        let state = ks.meta.get(STATE_KEY)?.map(|v| v.to_vec());
        let state = state.filter(|s| !s.is_empty());
        let cache = std::sync::Mutex::new(Cache::default());
        Ok((DiskLedger { db, ks, counts, overlay: Box::default(), cache, spill_at: None }, state))
    }

    /// Writes every change since the last commit, the counts and `state` as one batch (not
    /// synced; handed to the operating system).
    pub fn commit(&mut self, state: &[u8]) -> fjall::Result<()> {
        self.spill_at = None;
        self.commit_inner(state)
    }

    fn commit_inner(&mut self, state: &[u8]) -> fjall::Result<()> {
        let o = std::mem::take(&mut self.overlay);
        let mut b = self.db.batch();
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (ai, a) in o.accounts {
            b.insert(&self.ks.accounts, ai.to_be_bytes(), record_bytes(&a));
            cache_insert(&mut cache.accounts, ai, a);
        }
        for (ai, tail) in o.tails {
            b.insert(&self.ks.tails, ai.to_be_bytes(), pair_bytes(tail));
            cache_insert(&mut cache.tails, ai, tail);
        }
        drop(cache);
        for (ti, t) in o.transfers {
            b.insert(&self.ks.transfers, ti.to_be_bytes(), record_bytes(&t));
        }
        for (seq, r) in o.history {
            b.insert(&self.ks.history, seq.to_be_bytes(), record_bytes(&r));
        }
        for ((ai, v), anchor) in o.anchors {
            b.insert(&self.ks.anchors, anchor_key(ai, v), pair_bytes(anchor));
        }
        for (k, n) in o.ids {
            b.insert(&self.ks.ids, &*k, n.to_be_bytes());
        }
        for (k, present) in o.expiry {
            if present {
                b.insert(&self.ks.expiry, expiry_key(k), []);
            } else {
                b.remove(&self.ks.expiry, expiry_key(k));
            }
        }
        b.insert(&self.ks.meta, COUNTS_KEY, record_bytes(&self.counts));
        b.insert(&self.ks.meta, STATE_KEY, state);
        b.insert(&self.ks.meta, LAYOUT_KEY, STORE_LAYOUT.to_be_bytes());
        b.commit()
    }

    /// Whether there are changes not yet committed.
    pub fn is_dirty(&self) -> bool {
        !self.overlay.is_empty()
    }

    /// Writes since the last commit.
    pub fn pending_writes(&self) -> usize {
        self.overlay.ops
    }

    /// Starts loading a snapshot into this (cleared) store: from now until the next
    /// [`DiskLedger::commit`] with state bytes, the store commits by itself every `spill_at`
    /// writes, and a reopen finds no state (the load did not finish).
    pub fn begin_load(&mut self, spill_at: usize) {
        self.spill_at = Some(spill_at.max(1));
    }

    fn wrote(&mut self) {
        self.overlay.ops += 1;
        if let Some(n) = self.spill_at
            && self.overlay.ops >= n
        {
            io(self.commit_inner(&[]));
        }
    }

    /// Forces what was committed to disk (fsync of the store's journal): before a snapshot of
    /// this store lets the Raft log behind it be purged.
    pub fn persist(&self) -> fjall::Result<()> {
        self.db.persist(fjall::PersistMode::SyncAll)
    }

    /// Writes every memtable out as tables, then syncs: a store closed after this opens without
    /// replaying its journal (up to `JOURNAL_BYTES_MAX` of it: seconds, at start).
    ///
    /// fjall's `rotate_memtable_and_wait` waits only when the active memtable had something to
    /// rotate: memtables sealed earlier and still queued behind a compaction (one worker) were
    /// left to the journal, and a restart right after a load replayed 43 MB of it for 2.5 s. So
    /// this also waits, at most [`FLUSH_WAIT_MAX`], until no keyspace holds a sealed memtable.
    pub fn flush(&self) -> fjall::Result<()> {
        let k = &self.ks;
        let all = [&k.accounts, &k.transfers, &k.history, &k.anchors, &k.tails, &k.ids, &k.expiry, &k.meta];
        for k in all {
            k.rotate_memtable_and_wait()?;
        }
        let deadline = Instant::now() + FLUSH_WAIT_MAX;
        while all.iter().any(|k| k.sealed_memtable_count() > 0) {
            if Instant::now() >= deadline {
                tracing::warn!(
                    waited_ms = FLUSH_WAIT_MAX.as_millis(),
                    "memtables still queued for flushing: the next open replays them from the journal"
                );
                break;
            }
            std::thread::sleep(FLUSH_POLL);
        }
        self.persist()
    }

    /// Removes every record (before a snapshot from the leader is loaded), committed at once.
    pub fn clear(&mut self) -> fjall::Result<()> {
        *self.overlay = Overlay::default();
        *self.cache.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner) = Cache::default();
        let k = &self.ks;
        for k in [&k.accounts, &k.transfers, &k.history, &k.anchors, &k.tails, &k.ids, &k.expiry, &k.meta] {
            k.clear()?;
        }
        self.counts = Counts::default();
        Ok(())
    }

    /// A read snapshot of the committed records (uncommitted writes are not in it).
    pub fn view(&self) -> DiskView {
        debug_assert!(self.overlay.is_empty(), "a view is taken between commits");
        DiskView { snap: self.db.snapshot(), ks: self.ks.clone(), counts: self.counts }
    }

    /// Bytes the store takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    /// Where the store's memory is, for logs: bytes in memtables (active and sealed), flushes
    /// queued, and bytes in the block cache.
    pub fn memory(&self) -> (u64, usize, u64) {
        (self.db.write_buffer_size(), self.db.outstanding_flushes(), self.db.cache_size())
    }

    fn named(&self) -> [(&'static str, &Keyspace); 7] {
        let k = &self.ks;
        [
            ("accounts", &k.accounts),
            ("transfers", &k.transfers),
            ("history", &k.history),
            ("anchors", &k.anchors),
            ("tails", &k.tails),
            ("ids", &k.ids),
            ("expiry", &k.expiry),
        ]
    }

    /// Bytes of filter and index blocks that each keyspace keeps pinned in memory, outside the
    /// block cache, for as long as their tables live (see `ledger_db/options.rs`).
    pub fn pinned_bytes(&self) -> Vec<(&'static str, usize)> {
        use fjall::AbstractTree;
        self.named()
            .iter()
            .map(|(name, ks)| (*name, ks.tree.pinned_filter_size() + ks.tree.pinned_block_index_size()))
            .collect()
    }

    /// The shape of each keyspace's tree, for benchmarks and logs: `name sealed/l0/tables MB pin
    /// MB` (memtables waiting for a flush, tables in level 0, tables in all, disk megabytes,
    /// filter and index blocks pinned in memory).
    pub fn shape(&self) -> String {
        let pinned = self.pinned_bytes();
        self.named()
            .iter()
            .zip(pinned)
            .map(|((name, ks), (_, pin))| {
                format!(
                    "{name} {}/{}/{} {} pin {}",
                    ks.sealed_memtable_count(),
                    ks.l0_table_count(),
                    ks.table_count(),
                    ks.disk_space() / 1_000_000,
                    pin / 1_000_000
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl LedgerRead for DiskLedger {
    fn account_count(&self) -> usize {
        self.counts.accounts as usize
    }

    fn account(&self, ai: u32) -> Account {
        if let Some(a) = self.overlay.accounts.get(&ai) {
            return a.clone();
        }
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(a) = cache.accounts.get(&ai) {
            return a.clone();
        }
        let a = get_account(&Live, &self.ks, ai);
        cache_insert(&mut cache.accounts, ai, a.clone());
        a
    }

    fn account_index(&self, id: &str) -> Option<u32> {
        let k = id_key(b'a', id);
        if let Some(n) = self.overlay.ids.get(&k) {
            return Some(*n);
        }
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = cache.ids.get(id) {
            return Some(*n);
        }
        let n = get_id(&Live, &self.ks, &k)?;
        cache_insert(&mut cache.ids, Box::from(id), n);
        Some(n)
    }

    fn transfer_count(&self) -> usize {
        self.counts.transfers as usize
    }

    fn transfer(&self, ti: u32) -> Transfer {
        match self.overlay.transfers.get(&ti) {
            Some(t) => t.clone(),
            None => get_transfer(&Live, &self.ks, ti),
        }
    }

    fn transfer_index(&self, id: &str) -> Option<u32> {
        let k = id_key(b't', id);
        self.overlay.ids.get(&k).copied().or_else(|| get_id(&Live, &self.ks, &k))
    }

    fn transfers_range(&self, from: u32, to: u32) -> Vec<Transfer> {
        let mut out = transfers_range(&Live, &self.ks, from, to);
        for (i, t) in out.iter_mut().enumerate() {
            if let Some(o) = self.overlay.transfers.get(&(from + i as u32)) {
                *t = o.clone();
            }
        }
        // Transfers only in the overlay (new since the last commit).
        for ti in from + out.len() as u32..to {
            out.push(self.transfer(ti));
        }
        out
    }

    fn history(&self, ai: u32, version: u64) -> HistoryRecord {
        history_range(self, ai, version, version).pop().expect("one record")
    }

    fn history_range(&self, ai: u32, from: u64, to: u64) -> Vec<HistoryRecord> {
        history_range(self, ai, from, to)
    }

    fn history_partition_point(&self, ai: u32, len: u64, index: u64) -> u64 {
        history_partition_point(self, ai, len, index)
    }

    fn history_stored(&self, ai: u32) -> u64 {
        HistorySrc::tail(self, ai).map_or(0, |(_, v)| v)
    }

    fn expiry_next(&self, after: Option<ExpiryKey>) -> Option<ExpiryKey> {
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let added = self.overlay.expiry.range((lower, Bound::Unbounded)).find(|(_, p)| **p).map(|(k, _)| *k);
        let disk = disk_expiry_next(&Live, &self.ks, after, |k| self.overlay.expiry.get(k) == Some(&false));
        match (added, disk) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        }
    }

    fn expiry_len(&self) -> usize {
        self.counts.expiry as usize
    }
}

impl LedgerStore for DiskLedger {
    fn push_account(&mut self, ai: u32, a: Account) {
        assert_eq!(ai, self.counts.accounts, "accounts are numbered densely");
        self.overlay.ids.insert(id_key(b'a', a.id()), ai);
        self.overlay.accounts.insert(ai, a);
        self.counts.accounts += 1;
        self.wrote();
    }

    fn put_account(&mut self, ai: u32, a: Account) {
        self.overlay.accounts.insert(ai, a);
        self.wrote();
    }

    fn push_transfer(&mut self, ti: u32, t: Transfer) {
        assert_eq!(ti, self.counts.transfers, "transfers are numbered densely");
        self.overlay.ids.insert(id_key(b't', t.id()), ti);
        self.overlay.transfers.insert(ti, t);
        self.counts.transfers += 1;
        self.wrote();
    }

    fn put_transfer(&mut self, ti: u32, t: Transfer) {
        self.overlay.transfers.insert(ti, t);
        self.wrote();
    }

    fn pop_transfer(&mut self, ti: u32) {
        assert_eq!(ti + 1, self.counts.transfers, "only the newest transfer is popped");
        let t = self.overlay.transfers.remove(&ti).expect("only a transfer of this apply is popped");
        self.overlay.ids.remove(&id_key(b't', t.id()));
        self.counts.transfers -= 1;
    }

    fn push_history(&mut self, ai: u32, version: u64, r: HistoryRecord) {
        let prev = HistorySrc::tail(self, ai);
        assert_eq!(version, prev.map_or(1, |(_, v)| v + 1), "account {ai}'s history grows by one version");
        let seq = self.counts.history;
        self.counts.history += 1;
        let back = prev.map_or(0, |(p, _)| seq - p);
        if version.is_multiple_of(HISTORY_ANCHOR_EVERY) {
            self.overlay.anchors.insert((ai, version), (seq, r.index()));
        }
        self.overlay.history.insert(seq, (ai, back, r));
        self.overlay.tails.insert(ai, (seq, version));
        self.wrote();
    }

    fn pop_history(&mut self, ai: u32, version: u64) {
        let (seq, v) = *self.overlay.tails.get(&ai).expect("only a history record of this apply is popped");
        assert_eq!(v, version, "only the newest history record is popped");
        let (_, back, _) = self.overlay.history.remove(&seq).expect("only a history record of this apply is popped");
        if version.is_multiple_of(HISTORY_ANCHOR_EVERY) {
            self.overlay.anchors.remove(&(ai, version));
        }
        if back == 0 {
            // Its first record: no tail was committed before it.
            self.overlay.tails.remove(&ai);
        } else {
            self.overlay.tails.insert(ai, (seq - back, version - 1));
        }
    }

    fn expiry_insert(&mut self, key: ExpiryKey) {
        match self.overlay.expiry.get(&key) {
            Some(false) => {
                self.overlay.expiry.remove(&key);
            }
            _ => {
                self.overlay.expiry.insert(key, true);
            }
        }
        self.counts.expiry += 1;
        self.wrote();
    }

    fn expiry_remove(&mut self, key: ExpiryKey) {
        match self.overlay.expiry.get(&key) {
            Some(true) => {
                self.overlay.expiry.remove(&key);
            }
            _ => {
                self.overlay.expiry.insert(key, false);
            }
        }
        self.counts.expiry -= 1;
        self.wrote();
    }
}

/// A read snapshot of a [`DiskLedger`]'s committed records.
pub struct DiskView {
    snap: fjall::Snapshot,
    ks: Keyspaces,
    counts: Counts,
}

impl LedgerRead for DiskView {
    /// In the order the store keeps history: one scan of the `history` keyspace.
    fn for_each_history(&self, f: &mut dyn FnMut(u32, HistoryRecord) -> bool) {
        for g in fjall::Readable::iter(&self.snap, &self.ks.history) {
            let (ai, _, r): Stored = value(&io(g.value()), "history record");
            if !f(ai, r) {
                return;
            }
        }
    }

    fn account_count(&self) -> usize {
        self.counts.accounts as usize
    }

    fn account(&self, ai: u32) -> Account {
        get_account(&self.snap, &self.ks, ai)
    }

    fn account_index(&self, id: &str) -> Option<u32> {
        get_id(&self.snap, &self.ks, &id_key(b'a', id))
    }

    fn transfer_count(&self) -> usize {
        self.counts.transfers as usize
    }

    fn transfer(&self, ti: u32) -> Transfer {
        get_transfer(&self.snap, &self.ks, ti)
    }

    fn transfer_index(&self, id: &str) -> Option<u32> {
        get_id(&self.snap, &self.ks, &id_key(b't', id))
    }

    fn transfers_range(&self, from: u32, to: u32) -> Vec<Transfer> {
        transfers_range(&self.snap, &self.ks, from, to)
    }

    fn history(&self, ai: u32, version: u64) -> HistoryRecord {
        history_range(self, ai, version, version).pop().expect("one record")
    }

    fn history_range(&self, ai: u32, from: u64, to: u64) -> Vec<HistoryRecord> {
        history_range(self, ai, from, to)
    }

    fn history_partition_point(&self, ai: u32, len: u64, index: u64) -> u64 {
        history_partition_point(self, ai, len, index)
    }

    fn history_stored(&self, ai: u32) -> u64 {
        HistorySrc::tail(self, ai).map_or(0, |(_, v)| v)
    }

    fn expiry_next(&self, after: Option<ExpiryKey>) -> Option<ExpiryKey> {
        disk_expiry_next(&self.snap, &self.ks, after, |_| false)
    }

    fn expiry_len(&self) -> usize {
        self.counts.expiry as usize
    }
}

#[cfg(test)]
mod tests;
