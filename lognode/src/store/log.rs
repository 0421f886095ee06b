//! [`RaftLogStorage`] on logstore: each Raft entry is serialized once into one logstore record at
//! its Raft index. The vote, the committed log id and the last purged log id are logstore metas.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader, Vote};
use tracing::{info, warn};

use super::io_err;
use super::records::Records;
use crate::codec::{decode, decode_legacy, decode_or_legacy, encode};
use crate::limits::{PURGE_WAIT_MAX, READ_CHUNK_BYTES, REPLICATION_BATCH_BYTES_MAX};
use crate::types::{Entry, LogId, StorageError, TypeConfig};

/// The vote (format 2, [`crate::codec`]).
const META_VOTE: &str = "raft-vote-2";
/// The vote as lognodes of before 2026-12-06 saved it (format 1); read when [`META_VOTE`] is not
/// there yet.
const META_VOTE_LEGACY: &str = "raft-vote";
// The committed and purged log ids are `Option`s: their format follows from the first byte.
const META_COMMITTED: &str = "raft-committed";
const META_PURGED: &str = "raft-purged";

#[derive(Debug, Default)]
struct Tail {
    /// Last log id appended (pending or written), if any entry is held.
    last: Option<LogId>,
    /// Last purged log id.
    purged: Option<LogId>,
}

struct Inner {
    log: Records,
    /// Entries handed to `append` whose logstore append has not completed: readable at once, as
    /// openraft requires, before logstore's writer thread wrote them.
    pending: Mutex<BTreeMap<u64, Entry>>,
    tail: Mutex<Tail>,
    /// The state machine's durable index (see [`LogStore::guard_purges`]).
    durable_state: Mutex<Option<tokio::sync::watch::Receiver<u64>>>,
}

/// The Raft log store. Cheap to clone; clones are also the log readers.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.inner.log.dir()).finish_non_exhaustive()
    }
}

/// Locks the log store's in-memory state. A poisoned lock means a panic while that state was being
/// changed: the node stops rather than serve or replicate a log it cannot trust (`crate::crash`).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("Raft log store lock poisoned: a panic while changing the log's state; the node stops")
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

impl LogStore {
    /// Wraps an opened logstore, reading back the last entry and the purge point.
    pub fn new(log: Records) -> Result<Self, StorageError> {
        let purged = match log.load_meta(META_PURGED).map_err(read_err)? {
            Some(b) => decode_or_legacy::<Option<LogId>>(&b).map_err(read_err)?,
            None => None,
        };
        let last = match log.last_index() {
            Some(i) => {
                let bytes = log
                    .read(i)
                    .map_err(read_err)?
                    .ok_or_else(|| read_err(std::io::Error::other(format!("last index {i} is not readable"))))?;
                Some(*log.decode::<Entry>(i, &bytes).map_err(read_err)?.get_log_id())
            }
            None => None,
        };
        let inner = Inner {
            log,
            pending: Mutex::new(BTreeMap::new()),
            tail: Mutex::new(Tail { last, purged }),
            durable_state: Mutex::new(None),
        };
        Ok(LogStore { inner: Arc::new(inner) })
    }

    /// Makes every purge wait (at most [`PURGE_WAIT_MAX`]) until the state machine's durable
    /// index (`durable`: the index of the last state it made durable, a snapshot file or a synced
    /// store) reaches the purge point. openraft purges the log covered by a snapshot from the
    /// leader as soon as it hands the snapshot to the state machine; a crash before the snapshot
    /// is installed would otherwise leave a log purged past the state, which no restart recovers.
    pub fn guard_purges(&self, durable: tokio::sync::watch::Receiver<u64>) {
        *lock(&self.inner.durable_state) = Some(durable);
    }

    /// The underlying logstore.
    pub fn log(&self) -> &Records {
        &self.inner.log
    }

    /// Reads the entries in `start..end`, stopping after about `max_bytes` (at least one entry).
    fn read_entries(&self, start: u64, end: u64, max_bytes: usize) -> Result<Vec<Entry>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        // Pending first, then the log: an entry leaves `pending` only after it is in the log.
        let mut found: BTreeMap<u64, Entry> =
            lock(&self.inner.pending).range(start..end).map(|(i, e)| (*i, e.clone())).collect();
        let mut next = start;
        let mut bytes = 0usize;
        while next < end && bytes < max_bytes {
            let budget = READ_CHUNK_BYTES.min(max_bytes - bytes);
            let records = self.inner.log.read_range(next, end, budget).map_err(read_err)?;
            let Some(last) = records.last() else { break };
            next = last.index + 1;
            for r in records {
                bytes += r.payload.len();
                found.entry(r.index).or_insert(self.inner.log.decode::<Entry>(r.index, &r.payload).map_err(read_err)?);
            }
        }
        if bytes >= max_bytes {
            // Budget used up: do not return pending entries past what was read from the log.
            let _ = found.split_off(&next);
        }
        // Return the contiguous run from the first entry held in the range.
        let mut out: Vec<Entry> = Vec::with_capacity(found.len());
        for (i, e) in found {
            if out.last().is_some_and(|prev| prev.get_log_id().index + 1 != i) {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i + 1,
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_entries(start, end, usize::MAX))
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_entries(start, end, REPLICATION_BATCH_BYTES_MAX))
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let tail = lock(&self.inner.tail);
        let last = tail.last.max(tail.purged);
        Ok(LogState { last_purged_log_id: tail.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.inner.log.save_meta(META_VOTE, &encode(vote)).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        let read = |e: logstore::Error| io_err(ErrorSubject::Vote, ErrorVerb::Read, e);
        let undecodable = |e: crate::codec::CodecError| io_err(ErrorSubject::Vote, ErrorVerb::Read, e);
        if let Some(b) = self.inner.log.load_meta(META_VOTE).map_err(read)? {
            return decode(&b).map(Some).map_err(undecodable);
        }
        let legacy = self.inner.log.load_meta(META_VOTE_LEGACY).map_err(read)?;
        legacy.map(|b| decode_legacy(&b)).transpose().map_err(undecodable)
    }

    /// The committed index is Raft's volatile state: a node that loses it (power failure) learns
    /// it again from the leader, and the entries themselves are durable in the log. So it is
    /// saved without a sync — a synced save cost two syncs per commit round inside openraft's
    /// core loop, which serialized every write behind them.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.inner
            .log
            .save_meta_volatile(META_COMMITTED, &encode(&committed))
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let bytes =
            self.inner.log.load_meta(META_COMMITTED).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?;
        let Some(bytes) = bytes else { return Ok(None) };
        match decode_or_legacy::<Option<LogId>>(&bytes) {
            Ok(committed) => {
                // Never claim more than the log holds (an unsynced hint may outlive lost entries).
                let last = lock(&self.inner.tail).last.map(|l| l.index);
                Ok(committed.filter(|c| last.is_some_and(|l| c.index <= l)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the saved committed index is unreadable (power loss?); relearning it from the leader");
                Ok(None)
            }
        }
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Entries at or below the purge point are gone by definition (openraft itself never sends
        // them; its conformance suite does, after a purge that cleaned a hole).
        let purged = lock(&self.inner.tail).purged.map(|p| p.index);
        let entries: Vec<Entry> =
            entries.into_iter().filter(|e| purged.is_none_or(|p| e.get_log_id().index > p)).collect();
        let Some(first) = entries.first().map(|e| e.get_log_id().index) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let write_err = |e: logstore::Error| io_err(ErrorSubject::Logs, ErrorVerb::Write, e);
        let records: Vec<Vec<u8>> = entries.iter().map(encode).collect();
        let ids: Vec<LogId> = entries.iter().map(|e| *e.get_log_id()).collect();
        let last = ids.last().copied();
        {
            let mut pending = lock(&self.inner.pending);
            for e in entries {
                pending.insert(e.get_log_id().index, e);
            }
        }
        lock(&self.inner.tail).last = last;
        let inner = Arc::clone(&self.inner);
        let done: logstore::AppendCallback = Box::new(move |result| {
            // Runs on logstore's writer thread once the records are durable (or failed).
            {
                let mut pending = lock(&inner.pending);
                for id in &ids {
                    if pending.get(&id.index).is_some_and(|e| e.get_log_id() == id) {
                        pending.remove(&id.index);
                    }
                }
            }
            callback.log_io_completed(result.map_err(|e| std::io::Error::other(e.to_string())));
        });
        if let Err(e) = self.inner.log.append_then(first, records, done) {
            // Nothing was queued: undo the pending entries.
            let mut pending = lock(&self.inner.pending);
            let _ = pending.split_off(&first);
            return Err(write_err(e));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let index = log_id.index;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.inner.log.truncate_from(index).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
            let _ = lock(&this.inner.pending).split_off(&index);
            let last = match index.checked_sub(1) {
                Some(prev) => this.read_entries(prev, index, usize::MAX)?.pop().map(|e| *e.get_log_id()),
                None => None,
            };
            lock(&this.inner.tail).last = last;
            Ok(())
        })
        .await
        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let durable = lock(&self.inner.durable_state).clone();
        if let Some(mut rx) = durable
            && *rx.borrow() < log_id.index
        {
            info!(upto = log_id.index, durable = *rx.borrow(), "purge waits until the state is durable up to it");
            let reached = tokio::time::timeout(PURGE_WAIT_MAX, rx.wait_for(|d| *d >= log_id.index)).await;
            if !matches!(reached, Ok(Ok(_))) {
                let e = std::io::Error::other(format!(
                    "the state machine did not make its state durable up to {} within {PURGE_WAIT_MAX:?}; \
                     the log is not purged past it",
                    log_id.index
                ));
                return Err(io_err(ErrorSubject::Logs, ErrorVerb::Delete, e));
            }
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let del = |e: logstore::Error| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e);
            // The purged log id is durable before any record goes.
            this.inner.log.save_meta(META_PURGED, &encode(&Some(log_id))).map_err(del)?;
            {
                let mut tail = lock(&this.inner.tail);
                tail.purged = Some(log_id);
                if tail.last.is_some_and(|l| l.index <= log_id.index) {
                    tail.last = None;
                }
            }
            {
                let mut pending = lock(&this.inner.pending);
                let keep = pending.split_off(&(log_id.index + 1));
                if !pending.is_empty() {
                    warn!(upto = log_id.index, "purging entries that are not yet durable");
                }
                *pending = keep;
            }
            this.inner.log.purge_upto(log_id.index).map_err(del)
        })
        .await
        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::blank_ent;

    use super::*;
    use crate::codec::encode_legacy;

    fn log_id(term: u64, node: u64, index: u64) -> LogId {
        openraft::testing::log_id(term, node, index)
    }

    fn open(dir: &std::path::Path) -> LogStore {
        let (log, _) = logstore::Log::open(dir, logstore::LogConfig::default()).expect("open");
        LogStore::new(Records::open(log).expect("records")).expect("log store")
    }

    /// A Raft log as a lognode of before 2026-12-06 left it (entries and metas in bincode) opens:
    /// its vote, purge point, committed id and entries read back; what this build writes after them
    /// reads back beside them after a restart.
    #[tokio::test]
    async fn a_log_of_an_older_lognode_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old: Vec<Entry> = (3..=6).map(|i| blank_ent::<TypeConfig>(2, 1, i)).collect();
        let vote = Vote::new_committed(2, 1);
        {
            let (log, _) = logstore::Log::open(dir.path(), logstore::LogConfig::default()).expect("open");
            log.save_meta(META_PURGED, &encode_legacy(&Some(log_id(1, 1, 2)))).expect("purged");
            log.purge_upto(2).expect("purge");
            log.append(3, old.iter().map(encode_legacy).collect()).expect("append");
            log.save_meta(META_VOTE_LEGACY, &encode_legacy(&vote)).expect("vote");
            log.save_meta(META_COMMITTED, &encode_legacy(&Some(log_id(2, 1, 5)))).expect("committed");
        }
        let mut ls = open(dir.path());
        assert_eq!(ls.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(ls.read_committed().await.expect("committed"), Some(log_id(2, 1, 5)));
        let state = ls.get_log_state().await.expect("state");
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 1, 2)), Some(log_id(2, 1, 6))));
        assert_eq!(ls.try_get_log_entries(3..7).await.expect("read"), old);

        let newer = Vote::new_committed(3, 2);
        ls.save_vote(&newer).await.expect("save vote");
        let new: Vec<Entry> = (7..=8).map(|i| blank_ent::<TypeConfig>(3, 2, i)).collect();
        {
            use openraft::storage::RaftLogStorageExt;
            ls.blocking_append(new.clone()).await.expect("append");
        }
        ls.save_committed(Some(log_id(3, 2, 8))).await.expect("committed");
        drop(ls);
        let mut ls = open(dir.path());
        assert_eq!(ls.read_vote().await.expect("vote"), Some(newer));
        assert_eq!(ls.read_committed().await.expect("committed"), Some(log_id(3, 2, 8)));
        let all: Vec<Entry> = old.into_iter().chain(new).collect();
        assert_eq!(ls.try_get_log_entries(3..9).await.expect("read"), all);
    }
}
