//! The events log: ledger events derived by `State::apply` are appended to a node-local logstore
//! log (`<data-dir>/events`); it is aligned with the state on open and on snapshot install, and
//! a snapshot waits for the events it covers to be durable.

use crate::store::records::Records;
use openraft::ErrorVerb;

use super::{StateMachineStore, snap_err};
use crate::limits::{EVENT_MARKS_MAX, EVENTS_DURABLE_PAUSE, EVENTS_DURABLE_WAIT};
use crate::types::StorageError;

/// Makes the events log end right before `next_seq`: drops newer records (derived from entries
/// after the snapshot; replay derives them again), and if records below it are missing (a snapshot
/// from the leader), empties it with a purge point so the next append may start at `next_seq`.
pub(super) fn align_events(events: &Records, next_seq: u64) -> Result<(), StorageError> {
    let err = |e| snap_err(ErrorVerb::Write, e);
    events.truncate_from(next_seq.max(1)).map_err(err)?;
    let need = next_seq.saturating_sub(1);
    let complete =
        need == 0 || events.last_index().is_some_and(|l| l >= need) || events.purged_upto().is_some_and(|p| p >= need);
    if !complete {
        events.purge_upto(need).map_err(err)?;
    }
    Ok(())
}

impl StateMachineStore {
    /// Queues events-log records at `first_seq..` without waiting for them to be durable: they are
    /// readable once written, and a snapshot waits for them (`wait_events_durable`).
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

    /// Waits (bounded) until every events-log record below `next_seq` is durable.
    pub(super) fn wait_events_durable(&self, next_seq: u64) -> Result<(), StorageError> {
        let need = next_seq.saturating_sub(1);
        let ev = &self.shared.events;
        let deadline = std::time::Instant::now() + EVENTS_DURABLE_WAIT;
        loop {
            if need == 0 || ev.purged_upto().is_some_and(|p| p >= need) || ev.durable_index().is_some_and(|d| d >= need)
            {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let e = std::io::Error::other(format!(
                    "events log not durable up to {need} within {EVENTS_DURABLE_WAIT:?} (durable: {:?})",
                    ev.durable_index()
                ));
                return Err(snap_err(ErrorVerb::Write, e));
            }
            std::thread::sleep(EVENTS_DURABLE_PAUSE);
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
