//! The events log: ledger events derived by `State::apply` are appended to a node-local logstore
//! log (`<data-dir>/events`), synced only when asked; it is aligned with the state on open and on
//! snapshot install, and it is synced before a state commit or a snapshot says its events exist.

use crate::store::records::Records;
use openraft::ErrorVerb;

use super::{StateMachineStore, snap_err};
use crate::limits::EVENT_MARKS_MAX;
use crate::types::StorageError;

/// Makes the events log end right before `next_seq`: drops newer records (derived from entries
/// after the snapshot; replay derives them again), and if records below it are missing (a snapshot
/// from the leader), empties it with a purge point so the next append may start at `next_seq`.
///
/// The records it keeps are synced first: the state that says they exist is, or is about to be,
/// durable.
pub(super) fn align_events(events: &Records, next_seq: u64) -> Result<(), StorageError> {
    let err = |e| snap_err(ErrorVerb::Write, e);
    events.sync().map_err(err)?;
    events.truncate_from(next_seq.max(1)).map_err(err)?;
    let need = next_seq.saturating_sub(1);
    let complete =
        need == 0 || events.last_index().is_some_and(|l| l >= need) || events.purged_upto().is_some_and(|p| p >= need);
    if !complete {
        events.purge_upto(need).map_err(err)?;
    }
    Ok(())
}

/// Makes every events-log record below `next_seq` durable, syncing the events log if one is not
/// yet. The events log is synced only when asked (`SyncPolicy::OnRequest`, and on its own once
/// `logstore::DEFERRED_SYNC_BYTES_MAX` bytes wait): before anything durable says these events
/// exist, i.e. before the state store commits a head with `next_seq` (`DiskMode::maybe_commit` and
/// every other commit) and before a snapshot is written. Everything appended before this call is
/// covered: apply appends them under the state's lock, before `next_seq` can be read.
pub(super) fn sync_events(events: &Records, next_seq: u64) -> Result<(), StorageError> {
    let need = next_seq.saturating_sub(1);
    let durable = |ev: &Records| {
        need == 0 || ev.purged_upto().is_some_and(|p| p >= need) || ev.durable_index().is_some_and(|d| d >= need)
    };
    if durable(events) {
        return Ok(());
    }
    events.sync().map_err(|e| snap_err(ErrorVerb::Write, e))?;
    if durable(events) {
        return Ok(());
    }
    let e = std::io::Error::other(format!(
        "the events log holds no record {need} to sync (last: {:?}, durable: {:?})",
        events.last_index(),
        events.durable_index()
    ));
    Err(snap_err(ErrorVerb::Write, e))
}

impl StateMachineStore {
    /// Queues events-log records at `first_seq..` without waiting for them to be durable: they are
    /// readable once written, and synced before anything durable depends on them
    /// ([`sync_events`]).
    ///
    /// A failed append stops the node ([`crate::crash::stop`]), whether logstore refuses the records
    /// or its writer fails to write them: the state already points at these records (the ledger
    /// topic's runs), so serving on would answer reads with events that do not exist. A restart
    /// replays the Raft log from the last snapshot and derives them again.
    pub(super) fn append_events(&self, first_seq: Option<u64>, records: Vec<Vec<u8>>) {
        let Some(first) = first_seq else { return };
        if records.is_empty() {
            return;
        }
        let done: logstore::AppendCallback = Box::new(move |r| {
            if let Err(e) = r {
                crate::crash::stop(&format!("events log append from record {first} failed: {e}"));
            }
        });
        if let Err(e) = self.shared.events.append_then(first, records, done) {
            crate::crash::stop(&format!("events log refused records from {first}: {e}"));
        }
    }

    /// Retention of the events log: purges the events derived only from Raft entries that the
    /// Raft log no longer holds (`--retention-entries`), so the `ledger` topic keeps what the other
    /// topics keep. Uses the marks of earlier snapshots: the newest one whose applied index the
    /// log purged says below which event number everything is derived from purged entries. Only
    /// with `--retention-entries` ([`StateMachineStore::follow_log_retention`]); by default nothing
    /// is purged.
    pub(super) fn purge_events_behind_the_log(&self) -> Result<(), StorageError> {
        if !self.shared.events_follow_retention.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let Some(purged) = self.shared.log.purged_upto() else { return Ok(()) };
        let mut marks = self.shared.event_marks.lock().expect(super::POISONED);
        let Some(pos) = marks.iter().rposition(|&(index, _)| index <= purged) else { return Ok(()) };
        let (_, next_seq) = marks[pos];
        marks.drain(..pos);
        drop(marks);
        let upto = next_seq.saturating_sub(1);
        let ev = &self.shared.events;
        if upto == 0 || ev.purged_upto().is_some_and(|p| p >= upto) {
            return Ok(());
        }
        ev.purge_upto(upto).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        tracing::info!(upto, raft_purged = purged, "events log purged behind the Raft log");
        Ok(())
    }

    /// Remembers that a snapshot at `index` covers the events numbered below `next_seq`.
    pub(super) fn mark_events(&self, index: u64, next_seq: u64) {
        let mut marks = self.shared.event_marks.lock().expect(super::POISONED);
        if marks.back().is_some_and(|&(i, _)| i >= index) {
            return;
        }
        if marks.len() >= EVENT_MARKS_MAX {
            marks.pop_front();
        }
        marks.push_back((index, next_seq));
    }
}
