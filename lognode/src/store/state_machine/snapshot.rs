//! Snapshots: the state (never the records), built with the runs the logs no longer hold left
//! out, stored with logstore's `write_atomic`, restored on open and installed from the leader.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::Snapshot;
use openraft::{ErrorVerb, SnapshotMeta};

use super::{POISONED, State, StateMachineStore, align_events, index_of, snap_err};
use crate::types::{Node, StorageError, TypeConfig, decode, encode};

const SNAPSHOT_FILE: &str = "snapshot.bin";
pub(super) const SNAPSHOT_DIR: &str = "snapshot";

#[derive(Clone)]
pub(super) struct StoredSnapshot {
    meta: SnapshotMeta<u64, Node>,
    data: Arc<Vec<u8>>,
}

/// Reads the stored snapshot of `snapshot_dir`, if there is one: the state and the snapshot.
pub(super) fn load(snapshot_dir: &Path) -> Result<Option<(State, StoredSnapshot)>, StorageError> {
    let Some(bytes) =
        logstore::durable::read_file(snapshot_dir, SNAPSHOT_FILE).map_err(|e| snap_err(ErrorVerb::Read, e))?
    else {
        return Ok(None);
    };
    let (meta, data): (SnapshotMeta<u64, Node>, Vec<u8>) = decode(&bytes).map_err(|e| snap_err(ErrorVerb::Read, e))?;
    let state: State = decode(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
    state.check_invariants().map_err(|e| snap_err(ErrorVerb::Read, std::io::Error::other(e)))?;
    Ok(Some((state, StoredSnapshot { meta, data: Arc::new(data) })))
}

impl StateMachineStore {
    pub(super) fn build(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (mut s2, last_applied, membership) = {
            let s = self.shared.read();
            (s.clone(), s.last_applied, s.membership.clone())
        };
        // Runs below their log's first index are unreadable: leave them out of the snapshot.
        for (name, t) in &mut s2.topics {
            if let Some(first) = self.log_of(name).first_index() {
                for p in &mut t.partitions {
                    let keep = p.runs.partition_point(|r| r.log_index < first);
                    p.runs.drain(..keep);
                }
            }
        }
        // The snapshot says "events below next_event_seq exist": make sure they survive a crash.
        self.wait_events_durable(s2.next_event_seq)?;
        let data = encode(&s2);
        let seq = {
            let mut g = self.shared.snapshot_seq.lock().expect(POISONED);
            *g += 1;
            *g
        };
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data: Arc::new(data) };
        self.store_snapshot(&stored)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data.as_ref().clone())) })
    }

    /// Stores `snap` as the current snapshot, unless the current one is newer (a snapshot built
    /// from an older state can finish after a newer one was installed from the leader: storing it
    /// would move the restart point behind the purged log).
    pub(super) fn store_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StorageError> {
        let mut current = self.shared.current();
        if current.as_ref().is_some_and(|c| c.meta.last_log_id > snap.meta.last_log_id) {
            return Ok(());
        }
        let bytes = encode(&(&snap.meta, snap.data.as_ref()));
        let syncer = self.shared.log.syncer();
        logstore::write_atomic(&*syncer, &self.shared.snapshot_dir, SNAPSHOT_FILE, &bytes)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        *current = Some(snap.clone());
        Ok(())
    }

    /// Installs a snapshot received from the leader: checks it, aligns the events log, stores the
    /// snapshot and replaces the state.
    ///
    /// # Panics
    /// If the snapshot is behind the applied state (openraft installs only snapshots past the
    /// committed index; installing an older one would move the state backwards).
    pub(super) async fn install(&self, meta: &SnapshotMeta<u64, Node>, data: Vec<u8>) -> Result<(), StorageError> {
        let mut state: State = decode(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.check_invariants().map_err(|e| snap_err(ErrorVerb::Read, std::io::Error::other(e)))?;
        let applied = self.applied_index();
        assert!(
            index_of(state.last_applied) >= applied,
            "snapshot {} is behind the applied index {applied}",
            meta.snapshot_id
        );
        let stored = StoredSnapshot { meta: meta.clone(), data: Arc::new(data) };
        let this = self.clone();
        let next_seq = state.next_event_seq;
        tokio::task::spawn_blocking(move || {
            // Events this node derived beyond the snapshot are dropped and derived again from the
            // entries after it; events below it that this node never derived are unavailable here
            // (the partitions' start offsets move forward).
            align_events(&this.shared.events, next_seq)?;
            this.store_snapshot(&stored)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        let applied = index_of(state.last_applied);
        *self.shared.write() = state;
        self.shared.applied_tx.send_replace(applied);
        Ok(())
    }

    /// The last stored snapshot.
    pub(super) fn current(&self) -> Option<Snapshot<TypeConfig>> {
        let cur = self.shared.current().clone();
        cur.map(|c| Snapshot { meta: c.meta, snapshot: Box::new(Cursor::new(c.data.as_ref().clone())) })
    }
}
