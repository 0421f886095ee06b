//! Reads: records of a partition (from the Raft log, or the events log for [`TOPIC_LEDGER`]),
//! offsets, and consistent views of the state (ledger, groups) with the applied index.

use crate::store::records::Records;
use std::collections::BTreeMap;

use ledger_core::Ledger;

use crate::store::node_store::NodeStore;
use openraft::EntryPayload;

use super::{ApplyCatalog, EventBatch, Partition, Run, State, StateMachineStore, TOPIC_LEDGER, Topic, index_of};
use crate::limits::{READ_BYTES_MAX, READ_RECORDS_MAX, READ_UNWRITTEN_PAUSE, READ_UNWRITTEN_RETRIES};
use crate::types::{Entry, Request};

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

/// Reads one record of `log` (a Raft entry or an events batch), waiting (bounded) for one that is
/// applied but not written by the log's writer thread yet.
pub(super) fn read_record(log: &Records, index: u64) -> Result<Vec<u8>, ReadError> {
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

impl StateMachineStore {
    /// Reads the state.
    pub fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.read())
    }

    /// Reads the ledger, with the Raft log index applied when it was read.
    pub fn with_ledger<T>(&self, f: impl FnOnce(&Ledger<NodeStore>) -> T) -> (T, u64) {
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
                let b: EventBatch = log.decode(r.log_index, &bytes).map_err(|e| ReadError::Log(e.to_string()))?;
                return Ok(b.timestamp_ms);
            }
            let entry: Entry = log.decode(r.log_index, &bytes).map_err(|e| ReadError::Log(e.to_string()))?;
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
    pub(super) fn log_of(&self, topic: &str) -> &Records {
        if topic == TOPIC_LEDGER { &self.shared.events } else { &self.shared.log }
    }

    /// First readable offset of a partition: the first run still in the log (retention).
    pub(super) fn start_offset(&self, log: &Records, p: &Partition) -> u64 {
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

    /// Offset-map runs held in memory over every partition: bounded by the entries the logs still
    /// hold (runs of purged entries are dropped when a snapshot is built), not by history.
    pub fn offset_map_runs(&self) -> u64 {
        self.with_state(|s| s.topics.values().flat_map(|t| &t.partitions).map(|p| p.runs.len() as u64).sum())
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
                let b: EventBatch =
                    log.decode(run.log_index, &bytes_read).map_err(|e| ReadError::Log(e.to_string()))?;
                (b.records, i64::try_from(b.timestamp_ms).unwrap_or(i64::MAX), b.log_index)
            } else {
                let entry: Entry = log.decode(run.log_index, &bytes_read).map_err(|e| ReadError::Log(e.to_string()))?;
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
            for (pos, mut record) in records.into_iter().enumerate().skip(usize::try_from(skip).unwrap_or(usize::MAX)) {
                if out.records.len() >= max || (bytes >= READ_BYTES_MAX && !out.records.is_empty()) {
                    break 'runs;
                }
                if topic == TOPIC_LEDGER {
                    // Stored compact: the JSON is made here, for the records read only.
                    let (key, value) = ledger_events::stored_to_json(record.key, record.value)
                        .map_err(|e| ReadError::Log(format!("events record {}: {e}", run.log_index)))?;
                    (record.key, record.value) = (key, value);
                }
                bytes += record.key.len()
                    + record.value.len()
                    + record.headers.iter().map(|h| h.0.len() + h.1.len()).sum::<usize>();
                out.records.push(ReadRecord { offset: run.first_offset + pos as u64, log_index, timestamp_ms, record });
            }
        }
        Ok(out)
    }
}
