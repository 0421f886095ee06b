//! The state machine: topics, partitions and their offset maps. Record payloads are NOT copied
//! here: each partition maps offsets to (Raft log index, position in the entry) runs, and reads
//! fetch the entries from logstore.
//!
//! Deterministic: no wall clock, no randomness; the leader puts timestamps into the commands.
//! Snapshots hold this state (never the records) and are stored with logstore's `write_atomic`.
//!
//! The money ledger (`ledger_core::Ledger`) is part of the state: `Request::Ledger` entries are
//! applied by `Ledger::apply` with the entry's index and leader-assigned timestamp. The ledger
//! events it returns are *derived* data: they are appended to a second, node-local logstore log
//! (the events log, `<data-dir>/events`), one events-log record per (entry, partition) group, and
//! the built-in [`TOPIC_LEDGER`] topic's runs point into it (for that topic `Run::log_index` is an
//! events-log index, not a Raft index). See lognode/README.md, "Ledger events".
//!
//! Split by concern: [`state`] is the pure replicated state and its `apply`; `reads` serves
//! records and views of the state; `events` is the events log; `snapshot` builds, stores and
//! installs snapshots; `raft` is the thin openraft adapter. This file holds the shared handle.

use crate::store::records::Records;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::{ErrorSubject, ErrorVerb};
use tokio::sync::watch;

use super::io_err;
use crate::types::{LogId, StorageError};

pub mod audit;
mod disk;
mod events;
pub mod keys;
pub mod layout;
mod raft;
mod reads;
mod snapshot;
pub mod state;
pub mod webhooks;

use events::align_events;
pub use layout::{SNAPSHOT_FORMAT, SNAPSHOT_MAGIC, SnapshotFormatError};
pub use reads::{QueryCatalog, ReadError, ReadRecord, ReadResult};
pub use snapshot::SnapshotFile;
use snapshot::{SNAPSHOT_DIR, StoredSnapshot};
pub use state::{
    ApplyCatalog, EventBatch, Partition, Run, State, TOPIC_LEDGER, TOPIC_LEDGER_PARTITIONS, Topic, check_topic,
    key_hash,
};

struct Shared {
    state: RwLock<State>,
    applied_tx: watch::Sender<u64>,
    /// Index of the last state made durable: the current snapshot file (memory mode) or the last
    /// synced commit of the store (disk mode). Raft log purges wait for it.
    durable_tx: watch::Sender<u64>,
    log: Records,
    events: Records,
    snapshot_dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
    /// The next snapshot data-file number.
    snapshot_seq: Mutex<u64>,
    /// (applied index, next event number) of recent snapshots, oldest first, at most
    /// `EVENT_MARKS_MAX`: events numbered below a mark's were derived from entries up to its index.
    event_marks: Mutex<VecDeque<(u64, u64)>>,
    /// Whether the events log follows the Raft log's retention (`--retention-entries` given).
    events_follow_retention: std::sync::atomic::AtomicBool,
    /// Applied index of the state this process opened (its last snapshot's; 0 without one): on
    /// start only the entries after it are applied again.
    opened_at: u64,
    /// Disk mode: the state store (`None`: the ledger's records are in memory).
    disk: Option<disk::DiskMode>,
}

/// Where the state machine keeps the ledger's records (`--state-store`).
#[derive(Clone, Debug)]
pub enum StateStore {
    /// In memory; snapshots are files of the whole state, and a restart decodes the last one.
    Memory,
    /// In a fjall store in `dir`, with a block cache of `cache_bytes`; a restart opens it.
    Disk {
        /// The store's directory (`<data-dir>/state`).
        dir: PathBuf,
        /// Its block cache.
        cache_bytes: u64,
    },
}

/// The state machine. Cheap to clone: clones share the state (the gRPC services read it).
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore").finish_non_exhaustive()
    }
}

/// Why a lock of the state machine can be poisoned, and what follows: the node stops.
const POISONED: &str =
    "state machine lock poisoned: a panic while changing the state; the node stops rather than serve it";

impl Shared {
    /// The state, for reading. Readers never see a half-applied entry: a panic in apply aborts the
    /// process ([`crate::crash::AbortOnPanic`]) before the write lock is released.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().expect(POISONED)
    }

    /// The state, for the apply path and snapshot install only.
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().expect(POISONED)
    }

    /// The last stored snapshot.
    fn current(&self) -> MutexGuard<'_, Option<StoredSnapshot>> {
        self.current.lock().expect(POISONED)
    }
}

fn snap_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Snapshot(None), verb, e)
}

/// Applied index as a plain number (0 before anything was applied).
fn index_of(id: Option<LogId>) -> u64 {
    id.map_or(0, |l| l.index)
}

impl StateMachineStore {
    /// Opens the state machine next to `log`, restoring the last snapshot if one was stored.
    /// `events` is the node-local events log: records newer than the snapshot are dropped (the
    /// replay of the Raft log derives them again, identically).
    pub fn open(log: Records, events: Records, store: StateStore) -> Result<Self, StorageError> {
        let snapshot_dir = log.dir().join(SNAPSHOT_DIR);
        // Private (0700), like the log's own files (0600, logstore).
        logstore::create_private_dir_all(&snapshot_dir).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let (state, current, next_seq, disk) = match store {
            StateStore::Memory => {
                let loaded = snapshot::load(&snapshot_dir, &*log.syncer())?;
                let (state, current) = match loaded.current {
                    Some((state, current)) => (state, Some(current)),
                    None => (State::initial(), None),
                };
                (state, current, loaded.next_seq, None)
            }
            StateStore::Disk { dir, cache_bytes } => {
                // A snapshot file of memory mode is used only if the store has no newer state;
                // in disk mode the snapshot directory holds temporary files only.
                let file = snapshot::current_file(&snapshot_dir)?;
                let (state, mode) = disk::DiskMode::open(
                    &dir,
                    cache_bytes,
                    &*log.syncer(),
                    file.as_ref().map(|(p, i)| (p.as_path(), *i)),
                )?;
                let next_seq = snapshot::clear_dir(&snapshot_dir)?;
                (state, None, next_seq, Some(mode))
            }
        };
        align_events(&events, state.next_event_seq)?;
        let opened_at = index_of(state.last_applied);
        let (applied_tx, _) = watch::channel(opened_at);
        let (durable_tx, _) = watch::channel(opened_at);
        let shared = Shared {
            state: RwLock::new(state),
            applied_tx,
            durable_tx,
            log,
            events,
            snapshot_dir,
            current: Mutex::new(current),
            snapshot_seq: Mutex::new(next_seq),
            event_marks: Mutex::new(VecDeque::new()),
            events_follow_retention: std::sync::atomic::AtomicBool::new(false),
            opened_at,
            disk,
        };
        Ok(StateMachineStore { shared: Arc::new(shared) })
    }

    /// Watches the index of the last state made durable (see [`crate::store::LogStore::guard_purges`]).
    pub fn durable_index(&self) -> watch::Receiver<u64> {
        self.shared.durable_tx.subscribe()
    }

    /// Records that the state is durable up to `index`.
    fn made_durable(&self, index: u64) {
        self.shared.durable_tx.send_if_modified(|d| {
            let grew = index > *d;
            *d = (*d).max(index);
            grew
        });
    }

    /// Watches the last applied Raft log index.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied_tx.subscribe()
    }

    /// The last applied Raft log index (0 before anything was applied).
    pub fn applied_index(&self) -> u64 {
        *self.shared.applied_tx.borrow()
    }

    /// Makes the events log (the `ledger` topic) follow the Raft log's retention: events derived
    /// only from purged entries are purged when a snapshot is built. Set when `--retention-entries`
    /// or `--retention-bytes` is given; without it every event this node derived is kept (a
    /// snapshot install also purges the Raft log, which must not cost the node its events).
    pub fn follow_log_retention(&self) {
        self.shared.events_follow_retention.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Applied index of the state this process opened: its last snapshot's (0 without one). A
    /// restart applies again only the entries after it.
    pub fn opened_at_index(&self) -> u64 {
        self.shared.opened_at
    }

    /// First index the Raft log holds (0 when it is empty).
    pub fn log_first_index(&self) -> u64 {
        self.shared.log.first_index().unwrap_or(0)
    }

    /// Bytes of Raft log after the current snapshot: what a restart would apply again.
    pub fn log_bytes_since_snapshot(&self) -> u64 {
        self.shared.log.bytes_after(self.snapshot_index()).unwrap_or(0)
    }

    /// Where `--retention-bytes` purges: the highest index up to which the log can go while at
    /// least `keep` bytes of it stay before the current snapshot. `None` when nothing can go.
    pub fn purge_point(&self, keep: u64) -> Option<u64> {
        let log = &self.shared.log;
        let (snap, first) = (self.snapshot_index(), log.first_index()?);
        if snap == 0 || first > snap {
            return None;
        }
        let after_snap = log.bytes_after(snap).ok()?;
        // Bytes in `(p, snap]`: what stays before the snapshot when the log is purged up to `p`;
        // it only shrinks as `p` grows.
        let kept = |p: u64| log.bytes_after(p).map_or(0, |b| b.saturating_sub(after_snap));
        if kept(first) < keep {
            return None;
        }
        // Largest p in [first, snap] with kept(p) >= keep (kept(first) is).
        let (mut lo, mut hi) = (first, snap);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if kept(mid) >= keep { lo = mid } else { hi = mid - 1 }
        }
        Some(lo)
    }
}
