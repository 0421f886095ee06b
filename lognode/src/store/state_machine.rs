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

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ledger_core::{ApplyContext, Ledger, LedgerEvent};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftLogId, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::error;

use super::io_err;
use crate::types::{
    Entry, LogId, Node, RecordData, Rejection, Request, Response, StorageError, TypeConfig, decode, encode,
};

/// The built-in topic that holds the money ledger's events (rule 9); clients cannot produce to it.
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

/// Most ledger-event bytes (keys and values) in one events-log record; a partition's events of one
/// entry that are larger are split over several records (runs).
pub const EVENTS_RECORD_BYTES_MAX: usize = 1024 * 1024;
/// Most events-log records queued by one `append_then` call.
pub const EVENTS_APPEND_RECORDS_MAX: usize = 1024;
/// Most bytes queued by one `append_then` call on the events log.
pub const EVENTS_APPEND_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest wait, before writing a snapshot, for the events it covers to be durable.
pub const EVENTS_DURABLE_WAIT: Duration = Duration::from_secs(30);
/// Pause between checks of that wait.
const EVENTS_DURABLE_PAUSE: Duration = Duration::from_millis(2);

const _: () = assert!(EVENTS_RECORD_BYTES_MAX * 2 <= logstore::RECORD_SIZE_MAX);
const _: () = assert!(EVENTS_APPEND_RECORDS_MAX <= logstore::BATCH_RECORDS_MAX);
const _: () = assert!(EVENTS_APPEND_BYTES_MAX + 2 * EVENTS_RECORD_BYTES_MAX <= logstore::BATCH_BYTES_MAX);

const SNAPSHOT_FILE: &str = "snapshot.bin";
const SNAPSHOT_DIR: &str = "snapshot";

/// A run of offsets stored in one Raft entry: `count` records from `first_offset`, at positions
/// `0..count` of the entry at `log_index`. For [`TOPIC_LEDGER`], `log_index` is the index of an
/// [`EventBatch`] record in the node-local events log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Offset of the entry's first record.
    pub first_offset: u64,
    /// Raft log index of the entry.
    pub log_index: u64,
    /// Records in the entry.
    pub count: u32,
    /// Position of the request inside a `ProduceMany` entry (0 otherwise).
    pub item: u32,
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
    /// The money ledger.
    pub ledger: Ledger,
    /// Index the next events-log record gets (1 for the first).
    pub next_event_seq: u64,
    /// The consumer groups (membership, assignments, committed offsets).
    pub groups: group_core::Groups,
}

/// One events-log record: ledger events of one Raft entry that go to one partition of
/// [`TOPIC_LEDGER`], in the order `Ledger::apply` returned them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// Raft log index of the entry that produced the events.
    pub log_index: u64,
    /// Its leader-assigned timestamp.
    pub timestamp_ms: u64,
    /// The records: key = the event's partition key, value = the encoded event.
    pub records: Vec<RecordData>,
}

/// FNV-1a: a stable key hash for partitioning (records and ledger events).
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl State {
    /// The state of a new cluster: the built-in topics and an empty ledger.
    pub fn initial() -> State {
        let mut s = State { next_event_seq: 1, ..State::default() };
        s.topics.insert(
            TOPIC_LEDGER.to_string(),
            Topic { partitions: vec![Partition::default(); TOPIC_LEDGER_PARTITIONS as usize] },
        );
        s
    }

    /// Applies one command. Events-log records derived from it (ledger events) are pushed to
    /// `events`, at indexes `next_event_seq..` as it was before the call.
    pub fn apply(&mut self, log_index: u64, req: &Request, events: &mut Vec<Vec<u8>>) -> Response {
        match req {
            Request::Produce { topic, partition, records, .. } => {
                self.apply_produce(log_index, 0, topic, *partition, records)
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
            Request::Ledger { timestamp_ms, command } => {
                let ctx = ApplyContext { index: log_index, timestamp_ms: *timestamp_ms };
                let (outcome, evs) = self.ledger.apply(command, ctx);
                self.publish(log_index, *timestamp_ms, &evs, events);
                Response::Ledger(outcome)
            }
            Request::Group { timestamp_ms, command } => {
                let ctx = group_core::ApplyContext { index: log_index, timestamp_ms: *timestamp_ms };
                Response::Group(self.groups.apply(command, ctx, &ApplyCatalog(&self.topics)))
            }
            Request::ProduceMany { items, .. } => Response::ProducedMany(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| {
                        let item = u32::try_from(i).unwrap_or(u32::MAX);
                        self.apply_produce(log_index, item, &it.topic, it.partition, &it.records)
                    })
                    .collect(),
            ),
        }
    }

    /// Appends one request's records to a partition: they get contiguous offsets.
    fn apply_produce(
        &mut self,
        log_index: u64,
        item: u32,
        topic: &str,
        partition: u32,
        records: &[RecordData],
    ) -> Response {
        if topic == TOPIC_LEDGER {
            return Response::Rejected(Rejection::Invalid(format!(
                "topic {TOPIC_LEDGER:?} is written by the ledger only"
            )));
        }
        let Some(t) = self.topics.get_mut(topic) else {
            return Response::Rejected(Rejection::UnknownTopic(topic.to_string()));
        };
        let n = t.partitions.len();
        let Some(p) = t.partitions.get_mut(partition as usize) else {
            return Response::Rejected(Rejection::UnknownPartition {
                topic: topic.to_string(),
                partition,
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
        p.runs.push(Run { first_offset: base, log_index, count, item });
        p.end_offset += u64::from(count);
        Response::Produced { base_offset: base, count }
    }

    /// Appends ledger events to [`TOPIC_LEDGER`]: partition = `key_hash(partition key) %
    /// partitions`; per partition, the events become one or more events-log records (runs).
    fn publish(&mut self, log_index: u64, timestamp_ms: u64, evs: &[LedgerEvent], out: &mut Vec<Vec<u8>>) {
        if evs.is_empty() {
            return;
        }
        let Some(topic) = self.topics.get_mut(TOPIC_LEDGER) else { return };
        let n = topic.partitions.len() as u64;
        let mut groups: BTreeMap<usize, Vec<RecordData>> = BTreeMap::new();
        for e in evs {
            let key = e.partition_key().as_bytes();
            let p = usize::try_from(key_hash(key) % n).unwrap_or(0);
            groups.entry(p).or_default().push(RecordData {
                key: key.to_vec(),
                value: ledger_events::encode(e),
                headers: Vec::new(),
            });
        }
        for (p, records) in groups {
            let part = &mut topic.partitions[p];
            let mut chunk: Vec<RecordData> = Vec::new();
            let mut bytes = 0usize;
            let mut flush = |chunk: &mut Vec<RecordData>, seq: &mut u64| {
                if chunk.is_empty() {
                    return;
                }
                let count = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                part.runs.push(Run { first_offset: part.end_offset, log_index: *seq, count, item: 0 });
                part.end_offset += u64::from(count);
                *seq += 1;
                out.push(encode(&EventBatch { log_index, timestamp_ms, records: std::mem::take(chunk) }));
            };
            for r in records {
                let size = r.key.len() + r.value.len();
                if bytes + size > EVENTS_RECORD_BYTES_MAX && !chunk.is_empty() {
                    flush(&mut chunk, &mut self.next_event_seq);
                    bytes = 0;
                }
                bytes += size;
                chunk.push(r);
            }
            flush(&mut chunk, &mut self.next_event_seq);
        }
    }
}

/// The topics as the group coordinator sees them while applying an entry: partition counts and
/// end offsets are replicated state, identical on every node at this log index. Start offsets are
/// NOT (each node purges its own log after its own snapshots), so apply sees 0: an `earliest`
/// reset stores 0 and a commit below the start is accepted (group-core rule 7); reads and lag
/// treat an offset below the start as the start ([`QueryCatalog`] gives the real one).
pub struct ApplyCatalog<'a>(pub &'a BTreeMap<String, Topic>);

impl group_core::TopicCatalog for ApplyCatalog<'_> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.0.get(topic).map(|t| u32::try_from(t.partitions.len()).unwrap_or(u32::MAX))
    }
    fn start_offset(&self, _topic: &str, _partition: u32) -> u64 {
        0
    }
    fn end_offset(&self, topic: &str, partition: u32) -> u64 {
        self.0.get(topic).and_then(|t| t.partitions.get(partition as usize)).map_or(0, |p| p.end_offset)
    }
}

/// The topics as queries (fetch start points, describe, lag) see them on this node: like
/// [`ApplyCatalog`], with this node's real start offsets (retention).
pub struct QueryCatalog<'a> {
    store: &'a StateMachineStore,
    topics: &'a BTreeMap<String, Topic>,
}

impl group_core::TopicCatalog for QueryCatalog<'_> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        ApplyCatalog(self.topics).partitions(topic)
    }
    fn start_offset(&self, topic: &str, partition: u32) -> u64 {
        let log = self.store.log_of(topic);
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .map_or(0, |p| self.store.start_offset(log, p))
    }
    fn end_offset(&self, topic: &str, partition: u32) -> u64 {
        ApplyCatalog(self.topics).end_offset(topic, partition)
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
    events: logstore::Log,
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

/// Reads one record of `log` (a Raft entry or an events batch), waiting (bounded) for one that is
/// applied but not written by the log's writer thread yet.
fn read_record(log: &logstore::Log, index: u64) -> Result<Vec<u8>, ReadError> {
    for _ in 0..READ_UNWRITTEN_RETRIES {
        match log.read(index) {
            Ok(Some(bytes)) => return Ok(bytes),
            // Applied (committed by a quorum) but this node's writer has not written it yet.
            Ok(None) if log.purged_upto().is_none_or(|p| p < index) => {
                std::thread::sleep(READ_UNWRITTEN_PAUSE);
            }
            Ok(None) => return Err(ReadError::Log(format!("record {index} was purged"))),
            Err(e) => return Err(ReadError::Log(e.to_string())),
        }
    }
    Err(ReadError::Log(format!("record {index} is not written yet")))
}

/// Makes the events log end right before `next_seq`: drops newer records (derived from entries
/// after the snapshot; replay derives them again), and if records below it are missing (a snapshot
/// from the leader), empties it with a purge point so the next append may start at `next_seq`.
fn align_events(events: &logstore::Log, next_seq: u64) -> Result<(), StorageError> {
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

/// Applied index as a plain number (0 before anything was applied).
fn index_of(id: Option<LogId>) -> u64 {
    id.map_or(0, |l| l.index)
}

impl StateMachineStore {
    /// Opens the state machine next to `log`, restoring the last snapshot if one was stored.
    /// `events` is the node-local events log: records newer than the snapshot are dropped (the
    /// replay of the Raft log derives them again, identically).
    pub fn open(log: logstore::Log, events: logstore::Log) -> Result<Self, StorageError> {
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
        align_events(&events, state.next_event_seq)?;
        let (applied_tx, _) = watch::channel(index_of(state.last_applied));
        let shared = Shared {
            state: RwLock::new(state),
            applied_tx,
            log,
            events,
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

    /// Reads the ledger, with the Raft log index applied when it was read.
    pub fn with_ledger<T>(&self, f: impl FnOnce(&Ledger) -> T) -> (T, u64) {
        self.with_state(|s| (f(&s.ledger), index_of(s.last_applied)))
    }

    /// Reads the consumer groups with this node's view of the topics, and the applied index.
    pub fn with_groups<T>(&self, f: impl FnOnce(&group_core::Groups, &QueryCatalog<'_>) -> T) -> (T, u64) {
        self.with_state(|s| {
            let catalog = QueryCatalog { store: self, topics: &s.topics };
            (f(&s.groups, &catalog), index_of(s.last_applied))
        })
    }

    /// The first offset of `topic`/`partition` whose record timestamp is at or after
    /// `timestamp_ms`, or the end offset if there is none (for an offset reset "to a timestamp";
    /// blocking: reads logstore). Timestamps come from the leaders' clocks and are assumed to grow
    /// with the offsets (a binary search over the partition's runs).
    pub fn offset_for_timestamp(&self, topic: &str, partition: u32, timestamp_ms: u64) -> Result<u64, ReadError> {
        let log = self.log_of(topic);
        let (runs, start, end) = self.with_state(|s| {
            let t = s.topics.get(topic).ok_or_else(|| ReadError::UnknownTopic(topic.to_string()))?;
            let p = t
                .partitions
                .get(partition as usize)
                .ok_or_else(|| ReadError::UnknownPartition { topic: topic.to_string(), partition })?;
            let start = self.start_offset(log, p);
            let first = p.runs.partition_point(|r| r.first_offset + u64::from(r.count) <= start);
            Ok((p.runs[first..].to_vec(), start, p.end_offset))
        })?;
        let run_time = |r: &Run| -> Result<u64, ReadError> {
            let bytes = read_record(log, r.log_index)?;
            if topic == TOPIC_LEDGER {
                let b: EventBatch = decode(&bytes).map_err(|e| ReadError::Log(e.to_string()))?;
                return Ok(b.timestamp_ms);
            }
            let entry: Entry = decode(&bytes).map_err(|e| ReadError::Log(e.to_string()))?;
            match entry.payload {
                EntryPayload::Normal(Request::Produce { timestamp_ms, .. })
                | EntryPayload::Normal(Request::ProduceMany { timestamp_ms, .. }) => {
                    Ok(u64::try_from(timestamp_ms).unwrap_or(0))
                }
                _ => Err(ReadError::Log(format!("entry {} holds no records", r.log_index))),
            }
        };
        // Every record of a run has the run's timestamp: find the first run at or after it.
        let (mut lo, mut hi) = (0usize, runs.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if run_time(&runs[mid])? >= timestamp_ms {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(runs.get(lo).map_or(end, |r| r.first_offset.max(start)))
    }

    /// The log (Raft log, or the events log for [`TOPIC_LEDGER`]) a topic's runs point into.
    fn log_of(&self, topic: &str) -> &logstore::Log {
        if topic == TOPIC_LEDGER { &self.shared.events } else { &self.shared.log }
    }

    /// First readable offset of a partition: the first run still in the log (retention).
    fn start_offset(&self, log: &logstore::Log, p: &Partition) -> u64 {
        let log_first = log.first_index();
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
                    let log = self.log_of(name);
                    (name.clone(), t.partitions.iter().map(|p| (self.start_offset(log, p), p.end_offset)).collect())
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
        let log = self.log_of(topic);
        let (runs, start, end) = self.with_state(|s| {
            let t = s.topics.get(topic).ok_or_else(|| ReadError::UnknownTopic(topic.to_string()))?;
            let p = t
                .partitions
                .get(partition as usize)
                .ok_or_else(|| ReadError::UnknownPartition { topic: topic.to_string(), partition })?;
            let start = self.start_offset(log, p);
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
            let bytes_read = read_record(log, run.log_index)?;
            let (records, timestamp_ms, log_index) = if topic == TOPIC_LEDGER {
                let b: EventBatch = decode(&bytes_read).map_err(|e| ReadError::Log(e.to_string()))?;
                (b.records, i64::try_from(b.timestamp_ms).unwrap_or(i64::MAX), b.log_index)
            } else {
                let entry: Entry = decode(&bytes_read).map_err(|e| ReadError::Log(e.to_string()))?;
                match entry.payload {
                    EntryPayload::Normal(Request::Produce { records, timestamp_ms, .. }) => {
                        (records, timestamp_ms, run.log_index)
                    }
                    EntryPayload::Normal(Request::ProduceMany { mut items, timestamp_ms }) => {
                        let Some(it) = items.get_mut(run.item as usize) else {
                            return Err(ReadError::Log(format!("entry {} has no item {}", run.log_index, run.item)));
                        };
                        (std::mem::take(&mut it.records), timestamp_ms, run.log_index)
                    }
                    _ => return Err(ReadError::Log(format!("entry {} holds no records", run.log_index))),
                }
            };
            let skip = offset.saturating_sub(run.first_offset);
            for (pos, record) in records.into_iter().enumerate().skip(usize::try_from(skip).unwrap_or(usize::MAX)) {
                if out.records.len() >= max || (bytes >= READ_BYTES_MAX && !out.records.is_empty()) {
                    break 'runs;
                }
                bytes += record.key.len()
                    + record.value.len()
                    + record.headers.iter().map(|h| h.0.len() + h.1.len()).sum::<usize>();
                out.records.push(ReadRecord { offset: run.first_offset + pos as u64, log_index, timestamp_ms, record });
            }
        }
        Ok(out)
    }

    /// Queues events-log records at `first_seq..` without waiting for them to be durable: they are
    /// readable once written, and a snapshot waits for them (`wait_events_durable`).
    fn append_events(&self, first_seq: Option<u64>, records: Vec<Vec<u8>>) -> Result<(), StorageError> {
        let Some(first) = first_seq else { return Ok(()) };
        if records.is_empty() {
            return Ok(());
        }
        let done: logstore::AppendCallback = Box::new(move |r| {
            if let Err(e) = r {
                error!(first, error = %e, "events log append failed; ledger events are not stored");
            }
        });
        self.shared
            .events
            .append_then(first, records, done)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    /// Waits (bounded) until every events-log record below `next_seq` is durable.
    fn wait_events_durable(&self, next_seq: u64) -> Result<(), StorageError> {
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

    fn build(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (mut s2, last_applied, membership) = {
            let s = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
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
        let mut events = Vec::new();
        let mut events_bytes = 0usize;
        let mut first_seq = None;
        let mut s = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            let id = *entry.get_log_id();
            s.last_applied = Some(id);
            let seq = s.next_event_seq;
            let before = events.len();
            out.push(match entry.payload {
                EntryPayload::Blank => Response::None,
                EntryPayload::Membership(m) => {
                    s.membership = StoredMembership::new(Some(id), m);
                    Response::None
                }
                EntryPayload::Normal(req) => s.apply(id.index, &req, &mut events),
            });
            if events.len() > before {
                first_seq.get_or_insert(seq);
                events_bytes += events[before..].iter().map(Vec::len).sum::<usize>();
            }
            if events.len() >= EVENTS_APPEND_RECORDS_MAX || events_bytes >= EVENTS_APPEND_BYTES_MAX {
                self.append_events(first_seq.take(), std::mem::take(&mut events))?;
                events_bytes = 0;
            }
        }
        self.append_events(first_seq, events)?;
        let last = index_of(s.last_applied);
        drop(s);
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
    fn a_gathered_produce_entry_gives_each_request_its_own_offsets_and_result() {
        let mut s = State::initial();
        let ev = &mut Vec::new();
        s.apply(1, &Request::CreateTopic { name: "t".into(), partitions: 2 }, ev);
        let item = |topic: &str, partition, n: usize| crate::types::ProduceItem {
            topic: topic.into(),
            partition,
            records: (0..n).map(|i| RecordData { key: vec![], value: vec![i as u8], headers: vec![] }).collect(),
        };
        let many = Request::ProduceMany {
            timestamp_ms: 7,
            items: vec![item("t", 0, 2), item("nope", 0, 1), item("t", 0, 3), item("t", 1, 1)],
        };
        let Response::ProducedMany(rs) = s.apply(4, &many, ev) else { panic!("not a ProducedMany") };
        assert_eq!(rs[0], Response::Produced { base_offset: 0, count: 2 });
        assert!(matches!(rs[1], Response::Rejected(Rejection::UnknownTopic(_))), "one bad item fails alone");
        assert_eq!(rs[2], Response::Produced { base_offset: 2, count: 3 });
        assert_eq!(rs[3], Response::Produced { base_offset: 0, count: 1 });
        assert_eq!(
            s.topics["t"].partitions[0].runs,
            vec![
                Run { first_offset: 0, log_index: 4, count: 2, item: 0 },
                Run { first_offset: 2, log_index: 4, count: 3, item: 2 }
            ]
        );
        assert_eq!(s.topics["t"].partitions[1].runs, vec![Run { first_offset: 0, log_index: 4, count: 1, item: 3 }]);
    }

    #[test]
    fn apply_assigns_contiguous_offsets_as_runs_and_rejects_deterministically() {
        let mut s = State::initial();
        assert_eq!(s.topics[TOPIC_LEDGER].partitions.len(), TOPIC_LEDGER_PARTITIONS as usize);
        let ev = &mut Vec::new();
        let t = "t";
        assert_eq!(s.apply(1, &Request::CreateTopic { name: t.into(), partitions: 8 }, ev), Response::TopicCreated);
        // Only the ledger writes the ledger topic.
        assert!(matches!(s.apply(2, &produce(TOPIC_LEDGER, 0, 1), ev), Response::Rejected(Rejection::Invalid(_))));
        assert_eq!(s.apply(5, &produce(t, 3, 2), ev), Response::Produced { base_offset: 0, count: 2 });
        assert_eq!(s.apply(9, &produce(t, 3, 3), ev), Response::Produced { base_offset: 2, count: 3 });
        let p = &s.topics[t].partitions[3];
        assert_eq!(p.end_offset, 5);
        assert_eq!(
            p.runs,
            vec![
                Run { first_offset: 0, log_index: 5, count: 2, item: 0 },
                Run { first_offset: 2, log_index: 9, count: 3, item: 0 }
            ]
        );
        assert!(matches!(s.apply(10, &produce("nope", 0, 1), ev), Response::Rejected(Rejection::UnknownTopic(_))));
        assert!(matches!(s.apply(11, &produce(t, 99, 1), ev), Response::Rejected(Rejection::UnknownPartition { .. })));
        assert!(matches!(s.apply(12, &produce(t, 0, 0), ev), Response::Rejected(Rejection::Invalid(_))));
        let create = Request::CreateTopic { name: TOPIC_LEDGER.into(), partitions: 1 };
        assert_eq!(s.apply(13, &create, ev), Response::Rejected(Rejection::TopicExists(TOPIC_LEDGER.into())));
        assert!(ev.is_empty());
        // Same commands, same state: replaying on a fresh state gives an identical result.
        let mut u = State::initial();
        u.apply(1, &Request::CreateTopic { name: t.into(), partitions: 8 }, ev);
        u.apply(5, &produce(t, 3, 2), ev);
        u.apply(9, &produce(t, 3, 3), ev);
        assert_eq!(encode(&s.topics), encode(&u.topics));
    }

    fn ledger(ts: u64, command: ledger_core::Command) -> Request {
        Request::Ledger { timestamp_ms: ts, command }
    }

    fn account(id: &str, overdraft: bool) -> ledger_core::Command {
        ledger_core::Command::CreateAccount(ledger_core::NewAccount {
            id: id.into(),
            currency: "USD".into(),
            allow_overdraft: overdraft,
            metadata: "{}".into(),
        })
    }

    fn transfer(id: &str, from: &str, to: &str, amount: u64) -> ledger_core::Command {
        ledger_core::Command::CreateTransfer(ledger_core::NewTransfer {
            id: id.into(),
            debit_account_id: from.into(),
            credit_account_id: to.into(),
            amount,
            currency: "USD".into(),
            metadata: "{}".into(),
            pending: false,
            timeout_ms: None,
        })
    }

    /// Ledger commands are applied with the entry's index and timestamp; their events become
    /// events-log records (one per partition group) and runs of the ledger topic, deterministically.
    #[test]
    fn ledger_commands_apply_and_publish_events_deterministically() {
        use ledger_core::{Outcome, ResultCode};
        let cmds = [
            (3, ledger(1_000, account("equity", true))),
            (4, ledger(1_001, account("alice", false))),
            (6, ledger(1_002, transfer("t1", "equity", "alice", 500))),
            (7, ledger(999, transfer("t1", "equity", "alice", 500))),
            (8, ledger(1_003, transfer("t2", "alice", "equity", 501))),
        ];
        let run = || {
            let mut s = State::initial();
            let mut ev = Vec::new();
            let out: Vec<Response> = cmds.iter().map(|(i, c)| s.apply(*i, c, &mut ev)).collect();
            (s, ev, out)
        };
        let (s, ev, out) = run();
        let code = |r: &Response| match r {
            Response::Ledger(Outcome::Account(a)) => a.code,
            Response::Ledger(Outcome::Transfer(t)) => t.code,
            other => panic!("unexpected {other:?}"),
        };
        let codes: Vec<ResultCode> = out.iter().map(code).collect();
        assert_eq!(
            codes,
            [
                ResultCode::Created,
                ResultCode::Created,
                ResultCode::Created,
                ResultCode::Exists,
                ResultCode::InsufficientFunds
            ]
        );
        assert_eq!(s.ledger.account("alice").map(|a| a.balance), Some(500));
        assert_eq!(s.ledger.transfer("t1").map(|t| t.created.timestamp_ms), Some(1_002));
        // 2 account events + 1 transfer event, one record each (distinct entries).
        assert_eq!(ev.len(), 3);
        assert_eq!(s.next_event_seq, 4);
        let total: u64 = s.topics[TOPIC_LEDGER].partitions.iter().map(|p| p.end_offset).sum();
        assert_eq!(total, 3);
        let p = usize::try_from(key_hash(b"t1") % u64::from(TOPIC_LEDGER_PARTITIONS)).unwrap_or(0);
        let run_t1 = s.topics[TOPIC_LEDGER].partitions[p].runs.iter().find(|r| r.log_index == 3).copied();
        assert!(run_t1.is_some(), "t1's event is in partition {p}");
        let batch: EventBatch = decode(&ev[2]).expect("decode");
        assert_eq!((batch.log_index, batch.timestamp_ms, batch.records.len()), (6, 1_002, 1));
        assert_eq!(batch.records[0].key, b"t1");
        // Identical on replay.
        let (s2, ev2, out2) = run();
        assert_eq!((encode(&s2), ev2, out2), (encode(&s), ev, out));
    }

    fn group(ts: u64, command: group_core::GroupCommand) -> Request {
        Request::Group { timestamp_ms: ts, command }
    }

    /// Group commands are applied by group-core with the entry's index and timestamp, against the
    /// replicated topics (partition counts, end offsets), deterministically; the groups are part
    /// of the snapshot state.
    #[test]
    fn group_commands_apply_against_replicated_topics_and_survive_a_snapshot() {
        use group_core::{GroupCode, GroupCommand, Reply};
        let join = |g: &str| GroupCommand::Join {
            group: g.into(),
            topics: vec!["t".into()],
            session_timeout_ms: Some(1_000),
            auto_offset_reset: Some(group_core::OffsetReset::Earliest),
        };
        let run = || {
            let mut s = State::initial();
            let ev = &mut Vec::new();
            let mut out = Vec::new();
            out.push(s.apply(1, &group(1_000, join("g")), ev)); // no topic yet
            s.apply(2, &Request::CreateTopic { name: "t".into(), partitions: 4 }, ev);
            s.apply(3, &produce("t", 1, 5), ev);
            out.push(s.apply(4, &group(1_001, join("g")), ev));
            out.push(s.apply(5, &group(1_002, join("g")), ev));
            let commit = |generation, offset| GroupCommand::Commit {
                group: "g".into(),
                member_id: "g-1".into(),
                generation,
                offsets: vec![("t".into(), 0, offset)],
            };
            out.push(s.apply(6, &group(1_003, commit(1, 0)), ev)); // stale: generation 2 now
            out.push(s.apply(7, &group(1_004, commit(2, 0)), ev)); // g-1 keeps partitions 0, 1
            // Past partition 0's end (0 records) → offset_out_of_range.
            out.push(s.apply(8, &group(1_005, commit(2, 1)), ev));
            let expire = GroupCommand::ExpireMembers { group: "g".into(), member_ids: vec!["g-2".into()] };
            out.push(s.apply(9, &group(5_000, expire), ev));
            assert!(ev.is_empty(), "group entries publish no events");
            (s, out)
        };
        let (s, out) = run();
        let code = |r: &Response| match r {
            Response::Group(o) => o.code,
            other => panic!("unexpected {other:?}"),
        };
        let codes: Vec<GroupCode> = out.iter().map(code).collect();
        assert_eq!(
            codes,
            [
                GroupCode::UnknownTopic,
                GroupCode::Ok,
                GroupCode::Ok,
                GroupCode::StaleGeneration,
                GroupCode::Ok,
                GroupCode::OffsetOutOfRange,
                GroupCode::Ok
            ]
        );
        let Response::Group(o) = &out[6] else { panic!("not a group response") };
        assert!(matches!(&o.reply, Reply::Expired(e) if e.expired == vec![("g".to_owned(), "g-2".to_owned())]));
        assert_eq!(s.groups.committed("g", "t", 0), Some(0));
        assert_eq!(s.groups.member("g", "g-1").map(|m| (m.generation, m.assignments.len())), Ok((3, 4)));
        // The snapshot state round-trips, and replay gives byte-identical state.
        let decoded: State = decode(&encode(&s)).expect("decode");
        assert_eq!(decoded.groups, s.groups);
        let (s2, out2) = run();
        assert_eq!((encode(&s2), out2), (encode(&s), out));
    }

    /// While applying, the catalog reports start offset 0 (node-local retention must not make
    /// replicas disagree) and the replicated end offsets.
    #[test]
    fn apply_catalog_is_replicated_state_only() {
        use group_core::TopicCatalog;
        let mut s = State::initial();
        let ev = &mut Vec::new();
        s.apply(1, &Request::CreateTopic { name: "t".into(), partitions: 2 }, ev);
        s.apply(2, &produce("t", 1, 3), ev);
        let c = ApplyCatalog(&s.topics);
        assert_eq!(c.partitions("t"), Some(2));
        assert_eq!(c.partitions("nope"), None);
        assert_eq!((c.start_offset("t", 1), c.end_offset("t", 1)), (0, 3));
        assert_eq!(c.end_offset("t", 9), 0);
        assert_eq!(c.partitions(TOPIC_LEDGER), Some(TOPIC_LEDGER_PARTITIONS));
    }
}
