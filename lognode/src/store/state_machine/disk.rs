//! The state on disk (`--state-store disk`, issue 20): the ledger's records live in a
//! [`DiskLedger`] (fjall), and the rest of the state (topics' offset maps, groups, membership:
//! small) is written beside them, as the head, in the same batch.
//!
//! - **Apply** writes into the store's overlay. Every [`STATE_COMMIT_INTERVAL`](crate::limits::STATE_COMMIT_INTERVAL), or sooner when the
//!   overlay holds [`STATE_COMMIT_WRITES_MAX`](crate::limits::STATE_COMMIT_WRITES_MAX) writes, the overlay and the head are committed as one
//!   batch, not synced: the Raft log is the durability. A restart opens the store at its last
//!   commit and applies again only the entries after it.
//! - **Snapshots** are checkpoints of the store: a commit and an fsync of the store (before the
//!   Raft log may be purged behind it). Nothing is pinned between checkpoints: a read snapshot of
//!   fjall keeps every version of its trees made after it (memtables already flushed included)
//!   until it is dropped, which made each node's memory grow by all it wrote between two
//!   checkpoints. When a follower needs a snapshot, the store is committed and a read snapshot
//!   taken then (O(1), at the applied index, which is past the last checkpoint: openraft accepts
//!   a newer snapshot than it asked for); it is dumped to a file that is unlinked once opened,
//!   streamed in chunks, and dropped as soon as the dump is written. Nothing is kept on disk but
//!   the store itself.
//! - **Installing** a snapshot from the leader loads it into a new store generation
//!   (`<data-dir>/state/gen-<n>/`), syncs it, then switches the `CURRENT` file to it and removes
//!   the old one. A crash at any point leaves `CURRENT` naming a whole store; open removes the
//!   others.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use openraft::storage::Snapshot;
use openraft::{ErrorVerb, SnapshotMeta};

use super::events::sync_events;
use super::snapshot::SnapshotFile;
use super::{POISONED, State, StateMachineStore, TOPIC_LEDGER, index_of, snap_err};
use crate::limits::{STATE_COMMIT_INTERVAL, STATE_COMMIT_WRITES_MAX};
use crate::store::ledger_db::DiskLedger;
use crate::store::node_store::NodeStore;
use crate::store::records::Records;
use crate::types::{Node, StorageError, TypeConfig};

const CURRENT_FILE: &str = "CURRENT";
const GEN_PREFIX: &str = "gen-";

/// Where the store is and what its current snapshot is.
pub(super) struct DiskMode {
    root: PathBuf,
    cache_bytes: u64,
    generation: Mutex<u64>,
    /// The meta of the last checkpoint (`None` before the first one).
    checkpoint: Mutex<Option<SnapshotMeta<u64, Node>>>,
    /// When the store was last committed, and the applied index it was committed at.
    last_commit: Mutex<(Instant, u64)>,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    snap_err(ErrorVerb::Read, e)
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    snap_err(ErrorVerb::Write, e)
}

fn gen_dir(root: &Path, n: u64) -> PathBuf {
    root.join(format!("{GEN_PREFIX}{n:020}"))
}

/// Removes every store generation in `root` but `keep`.
fn remove_other_generations(root: &Path, keep: Option<u64>) -> Result<(), StorageError> {
    for entry in fs::read_dir(root).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix(GEN_PREFIX).and_then(|n| n.parse::<u64>().ok()) else { continue };
        if Some(n) != keep {
            fs::remove_dir_all(entry.path()).map_err(write_err)?;
        }
    }
    Ok(())
}

/// Opens the store generation `n` of `root`: the store and the head of its last commit.
fn open_generation(root: &Path, n: u64, cache_bytes: u64) -> Result<(DiskLedger, Option<Vec<u8>>), StorageError> {
    let dir = gen_dir(root, n);
    logstore::create_private_dir_all(&dir).map_err(write_err)?;
    DiskLedger::open(&dir, cache_bytes).map_err(read_err)
}

/// Commits `state` (whose ledger is on disk) with its head and syncs the store.
fn commit_and_sync(state: &mut State) -> Result<(), StorageError> {
    let head = state.head_bytes();
    let NodeStore::Disk(d) = state.ledger.store_mut() else { unreachable!("a disk-mode state") };
    d.commit(&head).map_err(write_err)?;
    d.persist().map_err(write_err)
}

/// Makes generation `n` the current one (`CURRENT`, written atomically), then tries to remove
/// the others: a store just closed may still be finishing its own background writes, so a failure
/// here is only logged (the next open removes what is left).
fn switch_generation(root: &Path, n: u64, syncer: &dyn logstore::Syncer) -> Result<(), StorageError> {
    logstore::write_atomic(syncer, root, CURRENT_FILE, n.to_string().as_bytes()).map_err(write_err)?;
    if let Err(e) = remove_other_generations(root, Some(n)) {
        tracing::warn!(error = %e, "an old state store generation could not be removed yet; the next start removes it");
    }
    Ok(())
}

/// The meta of a snapshot of the store at `last_applied`.
fn store_meta(
    last_applied: Option<crate::types::LogId>,
    membership: openraft::StoredMembership<u64, Node>,
) -> SnapshotMeta<u64, Node> {
    let snapshot_id = match last_applied {
        Some(l) => format!("{}-{}-store", l.leader_id, l.index),
        None => "none-store".to_string(),
    };
    SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id }
}

impl DiskMode {
    /// Opens the state in `root` (`<data-dir>/state`). Without a whole store there, or with one
    /// older than `from_snapshot` (a memory-mode snapshot file this node kept, and its index), the
    /// state is loaded from that file; without either, it is the state of a new cluster.
    pub(super) fn open(
        root: &Path,
        cache_bytes: u64,
        syncer: &dyn logstore::Syncer,
        from_snapshot: Option<(&Path, u64)>,
    ) -> Result<(State, DiskMode), StorageError> {
        logstore::create_private_dir_all(root).map_err(write_err)?;
        let current = logstore::durable::read_file(root, CURRENT_FILE)
            .map_err(read_err)?
            .and_then(|b| String::from_utf8_lossy(&b).trim().parse::<u64>().ok());
        remove_other_generations(root, current)?;
        let mut n = current.unwrap_or(0);
        let mut state = None;
        if current.is_some() {
            let started = Instant::now();
            let (store, head) = open_generation(root, n, cache_bytes)?;
            let opened_ms = started.elapsed().as_millis();
            if let Some(head) = head {
                let head = State::decode_head(&head).map_err(read_err)?;
                let s = head.into_state(NodeStore::Disk(store)).map_err(|e| read_err(std::io::Error::other(e)))?;
                tracing::info!(
                    generation = n,
                    opened_ms,
                    head_ms = started.elapsed().as_millis() - opened_ms,
                    "state store opened"
                );
                if from_snapshot.is_none_or(|(_, index)| index <= index_of(s.last_applied)) {
                    state = Some(s);
                }
            }
        }
        let state = match state {
            Some(s) => s,
            None => {
                // No whole store: a new generation, loaded from the snapshot file or empty.
                n += 1;
                let (store, _) = open_generation(root, n, cache_bytes)?;
                let mut s = match from_snapshot {
                    Some((path, _)) => {
                        let file = fs::File::open(path).map_err(read_err)?;
                        let mut r = std::io::BufReader::with_capacity(1 << 20, file);
                        State::read_snapshot_into(&mut r, NodeStore::Disk(store)).map_err(read_err)?
                    }
                    None => State::initial_with(NodeStore::Disk(store)),
                };
                commit_and_sync(&mut s)?;
                switch_generation(root, n, syncer)?;
                tracing::info!(generation = n, applied = index_of(s.last_applied), "state store created");
                s
            }
        };
        let applied = index_of(state.last_applied);
        let mode = DiskMode {
            root: root.to_path_buf(),
            cache_bytes,
            generation: Mutex::new(n),
            checkpoint: Mutex::new(None),
            last_commit: Mutex::new((Instant::now(), applied)),
        };
        Ok((state, mode))
    }

    /// Commits the store if the last commit is older than [`STATE_COMMIT_INTERVAL`](crate::limits::STATE_COMMIT_INTERVAL) and entries were
    /// applied since, or if the overlay is full. Called by apply with the state locked.
    pub(super) fn maybe_commit(&self, state: &mut State, events: &Records) {
        let applied = index_of(state.last_applied);
        let mut last = self.last_commit.lock().expect(POISONED);
        let NodeStore::Disk(d) = state.ledger.store() else { return };
        let due = (last.1 != applied && last.0.elapsed() >= STATE_COMMIT_INTERVAL)
            || d.pending_writes() >= STATE_COMMIT_WRITES_MAX;
        if !due {
            return;
        }
        if let Err(e) = sync_events(events, state.next_event_seq) {
            crate::crash::stop(&format!("the events log failed to sync before a state commit: {e}"));
        }
        let head = state.head_bytes();
        let NodeStore::Disk(d) = state.ledger.store_mut() else { return };
        if let Err(e) = d.commit(&head) {
            crate::crash::stop(&format!("the state store failed to commit: {e}"));
        }
        *last = (Instant::now(), applied);
    }
}

impl StateMachineStore {
    fn disk(&self) -> &DiskMode {
        self.shared.disk.as_ref().expect("disk mode")
    }

    /// Whether the state's ledger is on disk.
    pub fn state_on_disk(&self) -> bool {
        self.shared.disk.is_some()
    }

    /// Disk mode's snapshot: a commit under the lock, then an fsync of the store (before the log
    /// may be purged behind it). Its data is made only when a follower needs one, from the state
    /// at that time ([`Self::current_disk`]).
    pub(super) fn build_disk(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.purge_events_behind_the_log()?;
        let (raft_first, events_first) = (self.shared.log.first_index(), self.shared.events.first_index());
        let started = Instant::now();
        tracing::info!(applied = self.applied_index(), "store checkpoint started");
        let (last_applied, membership, next_seq) = {
            let mut s = self.shared.write();
            s.trim_runs(|name| if name == TOPIC_LEDGER { events_first } else { raft_first });
            sync_events(&self.shared.events, s.next_event_seq)?;
            let head = s.head_bytes();
            let NodeStore::Disk(d) = s.ledger.store_mut() else { unreachable!("a disk-mode state") };
            d.commit(&head).map_err(write_err)?;
            *self.disk().last_commit.lock().expect(POISONED) = (Instant::now(), index_of(s.last_applied));
            (s.last_applied, s.membership.clone(), s.next_event_seq)
        };
        let locked_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.with_disk_store(|d| d.persist()).map_err(write_err)?;
        self.made_durable(index_of(last_applied));
        self.mark_events(index_of(last_applied), next_seq);
        let meta = store_meta(last_applied, membership);
        *self.disk().checkpoint.lock().expect(POISONED) = Some(meta.clone());
        let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (memtable_bytes, flushes_queued, cache_bytes) = self.with_disk_store(DiskLedger::memory);
        let shape = self.with_disk_store(DiskLedger::shape);
        tracing::info!(
            index = index_of(last_applied),
            locked_ms,
            took_ms,
            memtable_bytes,
            flushes_queued,
            cache_bytes,
            shape,
            "store checkpoint taken"
        );
        // openraft keeps only the meta of a built snapshot; the data is made on demand.
        let data = self.empty_snapshot_file()?;
        Ok(Snapshot { meta, snapshot: Box::new(data) })
    }

    fn with_disk_store<T>(&self, f: impl FnOnce(&DiskLedger) -> T) -> T {
        let s = self.shared.read();
        let NodeStore::Disk(d) = s.ledger.store() else { unreachable!("a disk-mode state") };
        f(d)
    }

    /// A new, empty, already unlinked file in the snapshot directory (it lives as long as it is
    /// open), and the name it had.
    fn unlinked_file(&self) -> Result<(fs::File, PathBuf), StorageError> {
        let path = self.shared.snapshot_dir.join(format!("{}.tmp", self.next_data_name()));
        let file = logstore::durable::private_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(write_err)?;
        fs::remove_file(&path).map_err(write_err)?;
        Ok((file, path))
    }

    /// The data of a snapshot nobody reads: an empty, unlinked file.
    fn empty_snapshot_file(&self) -> Result<SnapshotFile, StorageError> {
        let (file, path) = self.unlinked_file()?;
        Ok(SnapshotFile::from_std(file, path, 0))
    }

    /// A snapshot of the state as applied now (`None` before the first checkpoint), as a lazy
    /// file: the store is committed and a read snapshot taken under the lock (O(1)); the file is
    /// unlinked at once (it lives as long as the sender reads it), and its data is dumped from
    /// the read snapshot when the sender materializes it, off the state machine's task (a dump of
    /// a large store takes a while). The read snapshot is dropped when the dump is written.
    pub(super) async fn current_disk(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        if self.disk().checkpoint.lock().expect(POISONED).is_none() {
            return Ok(None);
        }
        let (file, path) = self.unlinked_file()?;
        let (meta, head, view) = {
            let mut s = self.shared.write();
            sync_events(&self.shared.events, s.next_event_seq)?;
            let head = s.head_bytes();
            let NodeStore::Disk(d) = s.ledger.store_mut() else { unreachable!("a disk-mode state") };
            d.commit(&head).map_err(write_err)?;
            let view = d.view();
            *self.disk().last_commit.lock().expect(POISONED) = (Instant::now(), index_of(s.last_applied));
            (store_meta(s.last_applied, s.membership.clone()), head, view)
        };
        tracing::info!(index = index_of(meta.last_log_id), "a snapshot of the store is read for a follower");
        let fill: super::snapshot::Fill = Box::new(move |w| super::layout::write_snapshot_parts(w, &head, &view));
        Ok(Some(Snapshot { meta, snapshot: Box::new(SnapshotFile::lazy(file, path, fill)) }))
    }

    /// Installs a snapshot received into `file` (named `tmp`, removed afterwards) in a new store
    /// generation, then makes it current.
    pub(super) async fn install_disk(
        &self,
        meta: &SnapshotMeta<u64, Node>,
        file: fs::File,
        tmp: PathBuf,
    ) -> Result<(), StorageError> {
        let this = self.clone();
        let meta2 = meta.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let mode = this.disk();
            let n = *mode.generation.lock().expect(POISONED) + 1;
            let _ = fs::remove_dir_all(gen_dir(&mode.root, n));
            let (store, _) = open_generation(&mode.root, n, mode.cache_bytes)?;
            let mut r = std::io::BufReader::with_capacity(1 << 20, file);
            let mut state = State::read_snapshot_into(&mut r, NodeStore::Disk(store)).map_err(read_err)?;
            state.last_applied = meta2.last_log_id;
            state.membership = meta2.last_membership.clone();
            let applied = this.applied_index();
            assert!(
                index_of(state.last_applied) >= applied,
                "snapshot {} is behind the applied index {applied}",
                meta2.snapshot_id
            );
            // The events this node keeps below the snapshot's must survive a crash once the
            // store says they exist.
            this.shared.events.sync().map_err(write_err)?;
            commit_and_sync(&mut state)?;
            super::align_events(&this.shared.events, state.next_event_seq)?;
            let applied = index_of(state.last_applied);
            // The old store is dropped (closed) before its directory is removed.
            let old = std::mem::replace(&mut *this.shared.write(), state);
            drop(old);
            switch_generation(&mode.root, n, &*this.shared.log.syncer())?;
            *mode.generation.lock().expect(POISONED) = n;
            *mode.last_commit.lock().expect(POISONED) = (Instant::now(), applied);
            *mode.checkpoint.lock().expect(POISONED) = Some(meta2);
            this.shared.applied_tx.send_replace(applied);
            this.made_durable(applied);
            Ok(())
        })
        .await
        .map_err(write_err)?;
        let _ = fs::remove_file(&tmp);
        match &result {
            Err(e) => tracing::error!(error = %e, "installing a snapshot into the state store failed"),
            Ok(()) => tracing::info!(
                index = index_of(meta.last_log_id),
                took_ms = started.elapsed().as_millis(),
                "snapshot installed into a new store generation"
            ),
        }
        result
    }

    /// Disk mode: index of the last checkpoint (0 without one).
    pub(super) fn disk_snapshot_index(&self) -> u64 {
        self.disk().checkpoint.lock().expect(POISONED).as_ref().map_or(0, |m| index_of(m.last_log_id))
    }

    /// On shutdown, once Raft has stopped: commits what was applied and writes the store's
    /// memtables out, so that the next start replays neither the Raft log nor the store's journal
    /// (a restart at 24M transfers spent 3.4 of its 4.6 s replaying 75 MB of journal). kill -9
    /// skips this; the journal and the log then cover everything. Nothing to do in memory mode.
    pub fn close(&self) -> Result<(), StorageError> {
        if !self.state_on_disk() {
            return Ok(());
        }
        let started = Instant::now();
        let mut s = self.shared.write();
        sync_events(&self.shared.events, s.next_event_seq)?;
        let head = s.head_bytes();
        let NodeStore::Disk(d) = s.ledger.store_mut() else { unreachable!("a disk-mode state") };
        d.commit(&head).map_err(write_err)?;
        d.flush().map_err(write_err)?;
        tracing::info!(index = index_of(s.last_applied), took_ms = started.elapsed().as_millis(), "state store closed");
        Ok(())
    }

    /// Disk mode: bytes of the state store on disk.
    pub fn state_store_bytes(&self) -> u64 {
        if self.shared.disk.is_none() {
            return 0;
        }
        self.with_disk_store(DiskLedger::disk_bytes)
    }
}
