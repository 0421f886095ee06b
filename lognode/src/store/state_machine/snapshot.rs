//! Snapshots: the state (never the records), built after the runs the logs no longer hold were
//! dropped from the live state, stored with logstore's `write_atomic`, restored on open and
//! installed from the leader.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::Snapshot;
use openraft::{ErrorVerb, SnapshotMeta};

use super::{POISONED, State, StateMachineStore, TOPIC_LEDGER, align_events, index_of, snap_err};
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
    let state = State::from_snapshot_bytes(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
    state.check_invariants().map_err(|e| snap_err(ErrorVerb::Read, std::io::Error::other(e)))?;
    Ok(Some((state, StoredSnapshot { meta, data: Arc::new(data) })))
}

impl StateMachineStore {
    pub(super) fn build(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Runs below their log's first index are unreadable: drop them from the live state (so it
        // does not grow with history) and hence from the snapshot. The two logs' first indexes
        // are read before the write lock is taken; they only grow, so a stale one trims less.
        let (raft_first, events_first) = (self.shared.log.first_index(), self.shared.events.first_index());
        let (s2, last_applied, membership) = {
            let mut s = self.shared.write();
            let dropped = s.trim_runs(|name| if name == TOPIC_LEDGER { events_first } else { raft_first });
            if dropped > 0 {
                tracing::debug!(dropped, "dropped offset-map runs of purged entries");
            }
            (s.clone(), s.last_applied, s.membership.clone())
        };
        // The snapshot says "events below next_event_seq exist": make sure they survive a crash.
        self.wait_events_durable(s2.next_event_seq)?;
        let data = s2.to_snapshot_bytes();
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
        let mut state = State::from_snapshot_bytes(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
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

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, StoredMembership};

    use super::*;
    use crate::types::LogId;

    fn open(dir: &Path) -> StateMachineStore {
        let config = logstore::LogConfig { fsync: logstore::FsyncMode::Never, ..Default::default() };
        let (log, _) = logstore::Log::open(dir.join("log"), config.clone()).expect("open log");
        let (events, _) = logstore::Log::open(dir.join("events"), config).expect("open events log");
        StateMachineStore::open(log, events).expect("open state machine")
    }

    fn snapshot_at(index: u64) -> (SnapshotMeta<u64, Node>, Vec<u8>) {
        let id = LogId::new(CommittedLeaderId::new(1, 0), index);
        let state = State { last_applied: Some(id), ..State::initial() };
        let meta = SnapshotMeta {
            last_log_id: Some(id),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("s{index}"),
        };
        (meta, state.to_snapshot_bytes())
    }

    /// A snapshot built from an older state that finishes after a newer one was installed must not
    /// replace it: the restart point would fall behind the purged log.
    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let (meta, data) = snapshot_at(10);
        sm.install(&meta, data).await.expect("install");
        assert_eq!(sm.applied_index(), 10);
        let (old_meta, old_data) = snapshot_at(5);
        sm.store_snapshot(&StoredSnapshot { meta: old_meta, data: Arc::new(old_data) }).expect("store");
        let current = sm.current().expect("a current snapshot");
        assert_eq!(current.meta.snapshot_id, "s10");
        drop(sm);
        let reopened = open(dir.path());
        assert_eq!(reopened.applied_index(), 10, "the snapshot on disk is still the newer one");
    }

    #[tokio::test]
    #[should_panic(expected = "is behind the applied index")]
    async fn installing_a_snapshot_behind_the_applied_index_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let (meta, data) = snapshot_at(10);
        sm.install(&meta, data).await.expect("install");
        let (old_meta, old_data) = snapshot_at(5);
        let _ = sm.install(&old_meta, old_data).await;
    }

    #[tokio::test]
    async fn a_snapshot_whose_state_breaks_an_invariant_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = open(dir.path());
        let (meta, _) = snapshot_at(3);
        let mut state = State { last_applied: meta.last_log_id, ..State::initial() };
        state.next_event_seq = 0;
        let e = sm.install(&meta, state.to_snapshot_bytes()).await.expect_err("a broken snapshot");
        assert!(e.to_string().contains("next_event_seq"), "{e}");
        assert_eq!(sm.applied_index(), 0, "nothing installed");
    }
}
