//! The state machine: topics, partitions and their offset maps. Record payloads are NOT copied
//! here: each partition maps offsets to (Raft log index, position in the entry) runs, and reads
//! fetch the entries from logstore.
//!
//! Deterministic: no wall clock, no randomness; the leader puts timestamps into the commands.
//! Snapshots hold this state (never the records) and are stored with logstore's `write_atomic`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftLogId, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::io_err;
use crate::types::{Entry, LogId, Node, Rejection, Request, Response, StorageError, TypeConfig, decode, encode};

/// The built-in topic that holds the money ledger's commands.
pub const TOPIC_LEDGER: &str = "ledger";
/// Partitions of [`TOPIC_LEDGER`].
pub const TOPIC_LEDGER_PARTITIONS: u32 = 8;
/// Most partitions a topic may have.
pub const PARTITIONS_MAX: u32 = 1024;
/// Longest topic name.
pub const TOPIC_NAME_MAX: usize = 128;
/// Most records one read returns.
pub const READ_RECORDS_MAX: usize = 1000;
/// Most record bytes (keys, values, headers) one read returns (at least one record is returned).
pub const READ_BYTES_MAX: usize = 4 * 1024 * 1024;
/// How many times a read retries an applied entry that logstore's writer has not written yet.
const READ_UNWRITTEN_RETRIES: u32 = 200;
/// Pause between those retries.
const READ_UNWRITTEN_PAUSE: Duration = Duration::from_millis(5);

const SNAPSHOT_FILE: &str = "snapshot.bin";
const SNAPSHOT_DIR: &str = "snapshot";

/// A run of offsets stored in one Raft entry: `count` records from `first_offset`, at positions
/// `0..count` of the entry at `log_index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Offset of the entry's first record.
    pub first_offset: u64,
    /// Raft log index of the entry.
    pub log_index: u64,
    /// Records in the entry.
    pub count: u32,
}

/// One partition's offset map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Runs in offset order, contiguous, ending at `end_offset`.
    pub runs: Vec<Run>,
    /// Offset the next record gets.
    pub end_offset: u64,
}

/// One topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Its partitions.
    pub partitions: Vec<Partition>,
}

/// The replicated state (what a snapshot holds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership<u64, Node>,
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// Nodes removed by an admin (RemoveNode): discovery must not add them back.
    pub removed_nodes: std::collections::BTreeSet<u64>,
}

impl State {
    fn initial() -> State {
        let mut s = State::default();
        s.topics.insert(
            TOPIC_LEDGER.to_string(),
            Topic { partitions: vec![Partition::default(); TOPIC_LEDGER_PARTITIONS as usize] },
        );
        s
    }

    fn apply(&mut self, log_index: u64, req: &Request) -> Response {
        match req {
            Request::Produce { topic, partition, records, .. } => {
                let Some(t) = self.topics.get_mut(topic) else {
                    return Response::Rejected(Rejection::UnknownTopic(topic.clone()));
                };
                let n = t.partitions.len();
                let Some(p) = t.partitions.get_mut(*partition as usize) else {
                    return Response::Rejected(Rejection::UnknownPartition {
                        topic: topic.clone(),
                        partition: *partition,
                        partitions: u32::try_from(n).unwrap_or(u32::MAX),
                    });
                };
                let Ok(count) = u32::try_from(records.len()) else {
                    return Response::Rejected(Rejection::Invalid("too many records".into()));
                };
                if count == 0 {
                    return Response::Rejected(Rejection::Invalid("no records".into()));
                }
                let base = p.end_offset;
                p.runs.push(Run { first_offset: base, log_index, count });
                p.end_offset += u64::from(count);
                Response::Produced { base_offset: base, count }
            }
            Request::CreateTopic { name, partitions } => {
                if let Err(e) = check_topic(name, *partitions) {
                    return Response::Rejected(e);
                }
                if self.topics.contains_key(name) {
                    return Response::Rejected(Rejection::TopicExists(name.clone()));
                }
                self.topics
                    .insert(name.clone(), Topic { partitions: vec![Partition::default(); *partitions as usize] });
                Response::TopicCreated
            }
            Request::RemoveNode { node_id } => {
                self.removed_nodes.insert(*node_id);
                Response::NodeRemoved
            }
        }
    }
}

/// Checks a topic name and partition count.
pub fn check_topic(name: &str, partitions: u32) -> Result<(), Rejection> {
    let ok_name = !name.is_empty()
        && name.len() <= TOPIC_NAME_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok_name {
        return Err(Rejection::Invalid(format!(
            "topic name must be 1..={TOPIC_NAME_MAX} chars of [A-Za-z0-9._-], got {name:?}"
        )));
    }
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return Err(Rejection::Invalid(format!("partitions must be 1..={PARTITIONS_MAX}, got {partitions}")));
    }
    Ok(())
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Its offset.
    pub offset: u64,
    /// Raft log index of the entry holding it.
    pub log_index: u64,
    /// Leader-assigned timestamp.
    pub timestamp_ms: i64,
    /// The record.
    pub record: crate::types::RecordData,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such topic.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// No such partition.
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// Offset outside `start..=end`.
    #[error("offset {offset} is outside the partition's range {start}..={end}")]
    OutOfRange {
        /// Asked.
        offset: u64,
        /// First offset held.
        start: u64,
        /// Next offset to be written.
        end: u64,
    },
    /// The log failed.
    #[error("log read failed: {0}")]
    Log(String),
}

/// Result of a read.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Records from the asked offset.
    pub records: Vec<ReadRecord>,
    /// First offset held.
    pub start_offset: u64,
    /// Next offset to be written.
    pub end_offset: u64,
}

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, Node>,
    data: Arc<Vec<u8>>,
}

struct Shared {
    state: RwLock<State>,
    applied_tx: watch::Sender<u64>,
    log: logstore::Log,
    snapshot_dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
    snapshot_seq: Mutex<u64>,
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

fn snap_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Snapshot(None), verb, e)
}

/// Applied index as a plain number (0 before anything was applied).
fn index_of(id: Option<LogId>) -> u64 {
    id.map_or(0, |l| l.index)
}

impl StateMachineStore {
    /// Opens the state machine next to `log`, restoring the last snapshot if one was stored.
    pub fn open(log: logstore::Log) -> Result<Self, StorageError> {
        let snapshot_dir = log.dir().join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&snapshot_dir).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let mut state = State::initial();
        let mut current = None;
        if let Some(bytes) =
            logstore::durable::read_file(&snapshot_dir, SNAPSHOT_FILE).map_err(|e| snap_err(ErrorVerb::Read, e))?
        {
            let (meta, data): (SnapshotMeta<u64, Node>, Vec<u8>) =
                decode(&bytes).map_err(|e| snap_err(ErrorVerb::Read, e))?;
            state = decode(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
            current = Some(StoredSnapshot { meta, data: Arc::new(data) });
        }
        let (applied_tx, _) = watch::channel(index_of(state.last_applied));
        let shared = Shared {
            state: RwLock::new(state),
            applied_tx,
            log,
            snapshot_dir,
            current: Mutex::new(current),
            snapshot_seq: Mutex::new(0),
        };
        Ok(StateMachineStore { shared: Arc::new(shared) })
    }

    /// Watches the last applied Raft log index.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied_tx.subscribe()
    }

    /// The last applied Raft log index (0 before anything was applied).
    pub fn applied_index(&self) -> u64 {
        *self.shared.applied_tx.borrow()
    }

    /// Reads the state.
    pub fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// First readable offset of a partition: the first run still in the log (retention).
    fn start_offset(&self, p: &Partition) -> u64 {
        let log_first = self.shared.log.first_index();
        let first_kept = match log_first {
            Some(first) => p.runs.partition_point(|r| r.log_index < first),
            // Empty log: everything applied was purged (or nothing was produced).
            None => p.runs.len(),
        };
        p.runs.get(first_kept).map_or(p.end_offset, |r| r.first_offset)
    }

    /// Start and end offsets of every partition of every topic.
    pub fn topic_offsets(&self) -> Vec<(String, Vec<(u64, u64)>)> {
        self.with_state(|s| {
            s.topics
                .iter()
                .map(|(name, t)| {
                    (name.clone(), t.partitions.iter().map(|p| (self.start_offset(p), p.end_offset)).collect())
                })
                .collect()
        })
    }

    /// Partitions of a topic, if it exists.
    pub fn partitions(&self, topic: &str) -> Option<u32> {
        self.with_state(|s| s.topics.get(topic).map(|t| u32::try_from(t.partitions.len()).unwrap_or(u32::MAX)))
    }

    /// Reads up to `max` records of `topic`/`partition` from `offset` (blocking: reads logstore).
    pub fn read(&self, topic: &str, partition: u32, offset: u64, max: usize) -> Result<ReadResult, ReadError> {
        let max = max.clamp(1, READ_RECORDS_MAX);
        let (runs, start, end) = self.with_state(|s| {
            let t = s.topics.get(topic).ok_or_else(|| ReadError::UnknownTopic(topic.to_string()))?;
            let p = t
                .partitions
                .get(partition as usize)
                .ok_or_else(|| ReadError::UnknownPartition { topic: topic.to_string(), partition })?;
            let start = self.start_offset(p);
            if offset < start || offset > p.end_offset {
                return Err(ReadError::OutOfRange { offset, start, end: p.end_offset });
            }
            let from = p.runs.partition_point(|r| r.first_offset + u64::from(r.count) <= offset);
            let mut runs = Vec::new();
            let mut n = 0usize;
            for r in &p.runs[from..] {
                if n >= max {
                    break;
                }
                n += r.count as usize;
                runs.push(*r);
            }
            Ok((runs, start, p.end_offset))
        })?;
        let mut out = ReadResult { records: Vec::new(), start_offset: start, end_offset: end };
        let mut bytes = 0usize;
        'runs: for run in runs {
            let entry = self.read_entry(run.log_index)?;
            let EntryPayload::Normal(Request::Produce { records, timestamp_ms, .. }) = entry.payload else {
                return Err(ReadError::Log(format!("entry {} holds no records", run.log_index)));
            };
            let skip = offset.saturating_sub(run.first_offset);
            for (pos, record) in records.into_iter().enumerate().skip(usize::try_from(skip).unwrap_or(usize::MAX)) {
                if out.records.len() >= max || (bytes >= READ_BYTES_MAX && !out.records.is_empty()) {
                    break 'runs;
                }
                bytes += record.key.len()
                    + record.value.len()
                    + record.headers.iter().map(|h| h.0.len() + h.1.len()).sum::<usize>();
                out.records.push(ReadRecord {
                    offset: run.first_offset + pos as u64,
                    log_index: run.log_index,
                    timestamp_ms,
                    record,
                });
            }
        }
        Ok(out)
    }

    fn read_entry(&self, index: u64) -> Result<Entry, ReadError> {
        for _ in 0..READ_UNWRITTEN_RETRIES {
            match self.shared.log.read(index) {
                Ok(Some(bytes)) => return decode(&bytes).map_err(|e| ReadError::Log(e.to_string())),
                // Applied (committed by a quorum) but this node's writer has not written it yet.
                Ok(None) if self.shared.log.purged_upto().is_none_or(|p| p < index) => {
                    std::thread::sleep(READ_UNWRITTEN_PAUSE);
                }
                Ok(None) => return Err(ReadError::Log(format!("entry {index} was purged"))),
                Err(e) => return Err(ReadError::Log(e.to_string())),
            }
        }
        Err(ReadError::Log(format!("entry {index} is not written yet")))
    }

    fn build(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_applied, membership) = {
            let s = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
            // Runs below the log's first index are unreadable: leave them out of the snapshot.
            let mut s2 = s.clone();
            if let Some(first) = self.shared.log.first_index() {
                for t in s2.topics.values_mut() {
                    for p in &mut t.partitions {
                        let keep = p.runs.partition_point(|r| r.log_index < first);
                        p.runs.drain(..keep);
                    }
                }
            }
            (encode(&s2), s.last_applied, s.membership.clone())
        };
        let seq = {
            let mut g = self.shared.snapshot_seq.lock().unwrap_or_else(|e| e.into_inner());
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

    fn store_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StorageError> {
        let bytes = encode(&(&snap.meta, snap.data.as_ref()));
        let syncer = self.shared.log.syncer();
        logstore::write_atomic(&*syncer, &self.shared.snapshot_dir, SNAPSHOT_FILE, &bytes)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        *self.shared.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap.clone());
        Ok(())
    }
}

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
        let mut out = Vec::new();
        let last = {
            let mut s = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            for entry in entries {
                let id = *entry.get_log_id();
                s.last_applied = Some(id);
                out.push(match entry.payload {
                    EntryPayload::Blank => Response::None,
                    EntryPayload::Membership(m) => {
                        s.membership = StoredMembership::new(Some(id), m);
                        Response::None
                    }
                    EntryPayload::Normal(req) => s.apply(id.index, &req),
                });
            }
            index_of(s.last_applied)
        };
        self.shared.applied_tx.send_replace(last);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut state: State = decode(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        let stored = StoredSnapshot { meta: meta.clone(), data: Arc::new(data) };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.store_snapshot(&stored))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        let applied = index_of(state.last_applied);
        *self.shared.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        self.shared.applied_tx.send_replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let cur = self.shared.current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(cur.map(|c| Snapshot { meta: c.meta, snapshot: Box::new(Cursor::new(c.data.as_ref().clone())) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RecordData;

    fn produce(topic: &str, partition: u32, n: usize) -> Request {
        let records = (0..n).map(|i| RecordData { key: vec![], value: vec![i as u8], headers: vec![] }).collect();
        Request::Produce { topic: topic.into(), partition, timestamp_ms: 7, records }
    }

    #[test]
    fn apply_assigns_contiguous_offsets_as_runs_and_rejects_deterministically() {
        let mut s = State::initial();
        assert_eq!(s.topics[TOPIC_LEDGER].partitions.len(), TOPIC_LEDGER_PARTITIONS as usize);
        assert_eq!(s.apply(5, &produce(TOPIC_LEDGER, 3, 2)), Response::Produced { base_offset: 0, count: 2 });
        assert_eq!(s.apply(9, &produce(TOPIC_LEDGER, 3, 3)), Response::Produced { base_offset: 2, count: 3 });
        let p = &s.topics[TOPIC_LEDGER].partitions[3];
        assert_eq!(p.end_offset, 5);
        assert_eq!(
            p.runs,
            vec![Run { first_offset: 0, log_index: 5, count: 2 }, Run { first_offset: 2, log_index: 9, count: 3 }]
        );
        assert!(matches!(s.apply(10, &produce("nope", 0, 1)), Response::Rejected(Rejection::UnknownTopic(_))));
        assert!(matches!(
            s.apply(11, &produce(TOPIC_LEDGER, 99, 1)),
            Response::Rejected(Rejection::UnknownPartition { .. })
        ));
        assert!(matches!(s.apply(12, &produce(TOPIC_LEDGER, 0, 0)), Response::Rejected(Rejection::Invalid(_))));
        let create = Request::CreateTopic { name: TOPIC_LEDGER.into(), partitions: 1 };
        assert_eq!(s.apply(13, &create), Response::Rejected(Rejection::TopicExists(TOPIC_LEDGER.into())));
        // Same commands, same state: replaying on a fresh state gives an identical result.
        let mut t = State::initial();
        t.apply(5, &produce(TOPIC_LEDGER, 3, 2));
        t.apply(9, &produce(TOPIC_LEDGER, 3, 3));
        assert_eq!(encode(&s.topics), encode(&t.topics));
    }
}
