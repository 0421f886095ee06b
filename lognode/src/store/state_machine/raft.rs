//! The openraft adapter: `RaftStateMachine` and `RaftSnapshotBuilder` for [`StateMachineStore`],
//! delegating to [`State::apply`](super::State::apply), the events log and the snapshots.

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};

use super::{SnapshotFile, StateMachineStore, index_of, snap_err};
use crate::limits::{EVENTS_APPEND_BYTES_MAX, EVENTS_APPEND_RECORDS_MAX};
use crate::types::{Entry, LogId, Node, Response, StorageError, TypeConfig};

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build()).await.map_err(|e| snap_err(ErrorVerb::Write, e))?
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership<u64, Node>), StorageError> {
        Ok(self.with_state(|s| (s.last_applied, s.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Off the runtime's threads: the on-disk store may read from disk and, when its flushes
        // and compactions fall behind, holds writes back; on a runtime thread that stalled Raft's
        // heartbeats and the gRPC server with it, and the cluster held elections under load.
        let entries: Vec<Entry> = entries.into_iter().collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply_entries(entries))
            .await
            .map_err(|e| crate::store::io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        Ok(Box::new(self.begin_receive().await?))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Node>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        self.install(meta, *snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.current().await
    }
}

impl StateMachineStore {
    /// Applies `entries` in order under the state's write lock, appends the events they derive
    /// and commits the on-disk store when due ([`RaftStateMachine::apply`], on a blocking thread).
    fn apply_entries(&self, entries: Vec<Entry>) -> Vec<Response> {
        let mut out = Vec::with_capacity(entries.len());
        let mut events = Vec::new();
        let mut events_bytes = 0usize;
        let mut first_seq = None;
        let mut s = self.shared.write();
        // A panic below would leave `s` half-applied: stop the node instead of unwinding.
        let _abort = crate::crash::AbortOnPanic("apply");
        for entry in entries {
            let id = *entry.get_log_id();
            let seq = s.next_event_seq;
            let before = events.len();
            out.push(s.apply_entry(id, entry.payload, &mut events));
            if events.len() > before {
                first_seq.get_or_insert(seq);
                events_bytes += events[before..].iter().map(Vec::len).sum::<usize>();
            }
            if events.len() >= EVENTS_APPEND_RECORDS_MAX || events_bytes >= EVENTS_APPEND_BYTES_MAX {
                self.append_events(first_seq.take(), std::mem::take(&mut events));
                events_bytes = 0;
            }
        }
        self.append_events(first_seq, events);
        if let Some(disk) = &self.shared.disk {
            disk.maybe_commit(&mut s, &self.shared.events);
        }
        let last = index_of(s.last_applied);
        drop(s);
        self.shared.applied_tx.send_replace(last);
        out
    }
}
