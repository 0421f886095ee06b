//! The replicated state and its `apply`: topics, partitions and their offset maps, the money
//! ledger, the consumer groups. Pure: no I/O, no wall clock, no randomness (the leader puts
//! timestamps into the commands); the same entries give byte-identical state on every node.
//!
//! Record payloads are NOT copied here: each partition maps offsets to (Raft log index, position
//! in the entry) runs, and reads fetch the entries from logstore. Ledger events derived while
//! applying are returned as encoded [`EventBatch`] records for the events log.

use std::collections::BTreeMap;

use ledger_core::{ApplyContext, Ledger, LedgerEvent, LedgerMeta};
use openraft::{EntryPayload, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::limits::{EVENTS_RECORD_BYTES_MAX, PARTITIONS_MAX, TOPIC_NAME_MAX};
use crate::store::node_store::NodeStore;
use crate::types::{LogId, Node, RecordData, Rejection, Request, Response, TypeConfig, encode};

/// The built-in topic that holds the money ledger's events (rule 9); clients cannot produce to it.
pub const TOPIC_LEDGER: &str = "ledger";
/// Partitions of [`TOPIC_LEDGER`].
pub const TOPIC_LEDGER_PARTITIONS: u32 = 8;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership<u64, Node>,
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// Nodes removed by an admin (RemoveNode): discovery must not add them back.
    pub removed_nodes: std::collections::BTreeSet<u64>,
    /// The money ledger, its records in memory or on disk.
    pub ledger: Ledger<NodeStore>,
    /// Index the next events-log record gets (1 for the first).
    pub next_event_seq: u64,
    /// The consumer groups (membership, assignments, committed offsets).
    pub groups: group_core::Groups,
    /// The API keys (hashes of their secrets only).
    pub keys: super::keys::Keys,
    /// The newest admin actions (`audit`).
    pub audit: super::audit::Audit,
    /// The webhook subscriptions with their newest delivery outcomes.
    pub webhooks: super::webhooks::Webhooks,
}

/// An empty state whose ledger is in memory (not yet the state of a new cluster: see
/// [`State::initial`]).
impl Default for State {
    fn default() -> Self {
        State {
            last_applied: None,
            membership: StoredMembership::default(),
            topics: BTreeMap::new(),
            removed_nodes: std::collections::BTreeSet::new(),
            ledger: Ledger::open(NodeStore::default(), LedgerMeta::default()).expect("an empty ledger"),
            next_event_seq: 0,
            groups: group_core::Groups::default(),
            keys: super::keys::Keys::default(),
            audit: super::audit::Audit::default(),
            webhooks: super::webhooks::Webhooks::default(),
        }
    }
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
        Self::initial_with(NodeStore::default())
    }

    /// [`State::initial`] with the ledger's records in `store` (empty).
    pub fn initial_with(store: NodeStore) -> State {
        let ledger = Ledger::open(store, LedgerMeta::default()).expect("an empty ledger");
        let mut s = State { next_event_seq: 1, ledger, ..State::default() };
        s.topics.insert(
            TOPIC_LEDGER.to_string(),
            Topic { partitions: vec![Partition::default(); TOPIC_LEDGER_PARTITIONS as usize] },
        );
        s
    }

    /// Applies one Raft entry: it becomes the last applied entry, and its command (if any) is
    /// applied with [`State::apply`]. Events-log records derived from it are pushed to `events`.
    ///
    /// # Panics
    /// When an invariant would break (on in release builds, as in logstore: applying anyway would
    /// diverge from the other replicas): the entry's index must be after the last applied one, and
    /// exactly one events-log record must be pushed per event sequence number used.
    pub fn apply_entry(&mut self, id: LogId, payload: EntryPayload<TypeConfig>, events: &mut Vec<Vec<u8>>) -> Response {
        assert!(
            self.last_applied.is_none_or(|l| l.index < id.index),
            "apply index must strictly increase: last applied {}, entry {}",
            self.last_applied.map_or(0, |l| l.index),
            id.index
        );
        let (seq, before) = (self.next_event_seq, events.len());
        self.last_applied = Some(id);
        let out = match payload {
            EntryPayload::Blank => Response::None,
            EntryPayload::Membership(m) => {
                self.membership = StoredMembership::new(Some(id), m);
                Response::None
            }
            EntryPayload::Normal(req) => self.apply(id.index, &req, events),
        };
        assert!(
            self.next_event_seq >= seq && self.next_event_seq - seq == (events.len() - before) as u64,
            "events-log sequence {seq} -> {} does not match the {} records derived from entry {id}",
            self.next_event_seq,
            events.len() - before
        );
        out
    }

    /// Checks every structural invariant of the state: each partition's runs are contiguous from
    /// their first offset and end at its end offset, the events-log sequence starts at 1, and the
    /// ledger's and the groups' own invariants hold. O(state): run after loading or installing a
    /// snapshot and by the tests, not per entry.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.next_event_seq == 0 {
            return Err("next_event_seq is 0 (the events log starts at 1)".into());
        }
        for (name, t) in &self.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let mut end = p.runs.first().map_or(p.end_offset, |r| r.first_offset);
                for r in &p.runs {
                    if r.first_offset != end || r.count == 0 {
                        return Err(format!("{name}/{i}: run {r:?} does not follow offset {end}"));
                    }
                    end += u64::from(r.count);
                }
                if end != p.end_offset {
                    return Err(format!("{name}/{i}: runs end at {end}, end offset is {}", p.end_offset));
                }
            }
        }
        self.ledger.check_invariants().map_err(|e| format!("ledger: {e:?}"))?;
        self.groups.check_invariants().map_err(|e| format!("groups: {e}"))?;
        self.keys.check_invariants().map_err(|e| format!("keys: {e}"))?;
        self.audit.check_invariants().map_err(|e| format!("audit: {e}"))?;
        self.webhooks.check_invariants().map_err(|e| format!("webhooks: {e}"))
    }

    /// Drops every run whose entry lies below its log's first index (`first_index(topic)`: the Raft
    /// log's, or the events log's for [`TOPIC_LEDGER`]): those records were purged and are
    /// unreadable, so the offset maps stay bounded by what the logs hold, not by history. Offsets
    /// and end offsets do not change; the partition's first readable offset is the first run
    /// kept, as reads already compute it. Node-local (each node purges its own logs), like the
    /// snapshot, which leaves the same runs out. Returns the number of runs dropped.
    pub fn trim_runs(&mut self, first_index: impl Fn(&str) -> Option<u64>) -> usize {
        let mut dropped = 0;
        for (name, t) in &mut self.topics {
            let Some(first) = first_index(name) else { continue };
            for p in &mut t.partitions {
                let below = p.runs.partition_point(|r| r.log_index < first);
                p.runs.drain(..below);
                dropped += below;
            }
        }
        dropped
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
                if self.topics.len() >= crate::limits::TOPICS_MAX {
                    return Response::Rejected(Rejection::LimitExceeded(format!(
                        "topic limit reached: {} topics exist, at most {} (TOPICS_MAX)",
                        self.topics.len(),
                        crate::limits::TOPICS_MAX
                    )));
                }
                self.topics
                    .insert(name.clone(), Topic { partitions: vec![Partition::default(); *partitions as usize] });
                // Members subscribed to a deleted topic of this name get its new partitions.
                self.groups.topic_changed(name, &ApplyCatalog(&self.topics));
                Response::TopicCreated
            }
            Request::DeleteTopic { name } => {
                if name == TOPIC_LEDGER {
                    return Response::Rejected(Rejection::Invalid(format!(
                        "topic {TOPIC_LEDGER:?} holds the ledger's events and cannot be deleted"
                    )));
                }
                if self.topics.remove(name).is_none() {
                    return Response::Rejected(Rejection::UnknownTopic(name.clone()));
                }
                self.groups.topic_changed(name, &ApplyCatalog(&self.topics));
                Response::TopicDeleted
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
            Request::Keys { timestamp_ms, command } => {
                let r = self.keys.apply(command, *timestamp_ms);
                self.audit.record_keys(log_index, *timestamp_ms, command, &r);
                r
            }
            Request::Webhooks { timestamp_ms, command } => self.webhooks.apply(command, log_index, *timestamp_ms),
            Request::Audited { timestamp_ms, by, request } => {
                self.apply_audited(log_index, *timestamp_ms, by, request, events)
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
            // Kept compact (the JSON is made when a consumer reads it), and without the key, which
            // the event holds: see lognode/README.md, "Ledger events".
            groups.entry(p).or_default().push(RecordData {
                key: Vec::new(),
                value: ledger_events::encode_compact(e),
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

#[cfg(test)]
mod tests {
    use super::super::layout::{SNAPSHOT_FORMAT, SNAPSHOT_MAGIC, SnapshotFormatError};
    use super::*;
    use crate::types::{RecordData, decode};

    /// Snapshots carry their layout versions: the current layout round-trips; a snapshot from
    /// before the header, or with another version of any part, is refused with the versions
    /// named instead of decoding into garbage.
    #[test]
    fn snapshots_are_versioned() {
        let mut s = State::initial();
        let mut events = Vec::new();
        s.apply(1, &produce(TOPIC_LEDGER, 0, 0), &mut events);
        let bytes = s.to_snapshot_bytes();
        assert!(bytes.starts_with(SNAPSHOT_MAGIC));
        assert_eq!(State::from_snapshot_bytes(&bytes).expect("current layout"), s);

        let old = s.head_bytes();
        let e = State::from_snapshot_bytes(&old).expect_err("unversioned");
        assert!(matches!(e, SnapshotFormatError::Unversioned), "{e}");
        assert!(e.to_string().contains("older lognode"), "{e}");
        assert!(matches!(State::from_snapshot_bytes(SNAPSHOT_MAGIC), Err(SnapshotFormatError::Unversioned)));

        for part in 0..3 {
            let mut other = bytes.clone();
            let at = SNAPSHOT_MAGIC.len() + 4 * part;
            other[at] = other[at].wrapping_add(1);
            let e = State::from_snapshot_bytes(&other).expect_err("another version").to_string();
            let expected =
                format!("{SNAPSHOT_FORMAT}/{}/{}", ledger_core::SNAPSHOT_FORMAT, group_core::SNAPSHOT_FORMAT);
            assert!(e.contains(&format!("reads {expected}")), "part {part}: {e}");
        }
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 1);
        assert!(matches!(State::from_snapshot_bytes(&cut), Err(SnapshotFormatError::Decode(_))));
        // Layout 6 (the head in bincode, written before 2026-12-06) still reads, to the same state.
        let old = s.to_snapshot_bytes_layout_6();
        assert_ne!(old, bytes);
        assert_eq!(State::from_snapshot_bytes(&old).expect("layout 6"), s);
        // A head whose length is damaged is refused before anything is allocated.
        let mut long = bytes.clone();
        let at = SNAPSHOT_MAGIC.len() + 12;
        long[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = State::from_snapshot_bytes(&long).expect_err("damaged head length").to_string();
        assert!(e.contains("SNAPSHOT_HEAD_BYTES_MAX"), "{e}");
    }

    /// A record's length above `SNAPSHOT_RECORD_BYTES_MAX`, or bytes that are not a record, are
    /// refused as damage, named, before anything is loaded.
    #[test]
    fn damaged_records_in_a_snapshot_are_refused() {
        let bytes = State::initial().to_snapshot_bytes();
        assert_eq!(bytes[bytes.len() - 4..], [0, 0, 0, 0], "a ledger without records ends the stream at once");
        let body = &bytes[..bytes.len() - 4];
        let mut long = body.to_vec();
        long.extend_from_slice(&(1u32 << 20).to_le_bytes());
        let e = State::from_snapshot_bytes(&long).expect_err("a record of 1 MiB").to_string();
        assert!(e.contains("SNAPSHOT_RECORD_BYTES_MAX"), "{e}");
        let mut garbage = body.to_vec();
        garbage.extend_from_slice(&3u32.to_le_bytes());
        garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
        garbage.extend_from_slice(&0u32.to_le_bytes());
        let e = State::from_snapshot_bytes(&garbage).expect_err("not a record").to_string();
        assert!(e.contains("does not decode"), "{e}");
    }

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
            credits_must_not_exceed_debits: false,
            id: id.into(),
            currency: "USD".into(),
            allow_overdraft: overdraft,
            metadata: "{}".into(),
        })
    }

    fn transfer(id: &str, from: &str, to: &str, amount: u64) -> ledger_core::Command {
        ledger_core::Command::CreateTransfer(ledger_core::NewTransfer {
            flags: Default::default(),
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
        assert!(batch.records[0].key.is_empty(), "the key is not stored: the event holds it");
        let (key, json) =
            ledger_events::stored_to_json(Vec::new(), batch.records[0].value.clone()).expect("a compact event");
        assert_eq!(key, b"t1");
        let event = ledger_events::decode(&json).expect("JSON");
        assert_eq!(event.partition_key(), "t1");
        // Identical on replay.
        let (s2, ev2, out2) = run();
        assert_eq!((s2.to_snapshot_bytes(), ev2, out2), (s.to_snapshot_bytes(), ev, out));
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
        let decoded = State::from_snapshot_bytes(&s.to_snapshot_bytes()).expect("decode");
        assert_eq!(decoded.groups, s.groups);
        let (s2, out2) = run();
        assert_eq!((s2.to_snapshot_bytes(), out2), (s.to_snapshot_bytes(), out));
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

    /// Produce state is bounded by the log, not by history: runs below the purged index go, the
    /// offsets stay, and the invariants hold.
    #[test]
    fn runs_below_the_logs_first_index_are_trimmed_and_offsets_kept() {
        let mut s = State::initial();
        let ev = &mut Vec::new();
        s.apply(1, &Request::CreateTopic { name: "t".into(), partitions: 2 }, ev);
        for i in 2..=101 {
            s.apply(i, &produce("t", 0, 2), ev);
        }
        s.apply(102, &produce("t", 1, 1), ev);
        let before = s.clone();
        assert_eq!(s.trim_runs(|_| None), 0, "nothing purged: nothing trimmed");
        assert_eq!(s, before);
        // The Raft log now starts at index 92: entries 2..=91 (90 runs of partition 0) are gone.
        let dropped = s.trim_runs(|topic| (topic == "t").then_some(92));
        assert_eq!(dropped, 90);
        let p0 = &s.topics["t"].partitions[0];
        assert_eq!(p0.runs.len(), 10);
        assert_eq!((p0.runs[0].first_offset, p0.runs[0].log_index, p0.end_offset), (180, 92, 200));
        assert_eq!(s.topics["t"].partitions[1].runs.len(), 1, "run at index 102 is kept");
        s.check_invariants().expect("invariants after trimming");
        // Appending goes on from the same end offset.
        assert_eq!(s.apply(103, &produce("t", 0, 1), ev), Response::Produced { base_offset: 200, count: 1 });
        // Everything purged: no runs left, offsets unchanged.
        assert_eq!(s.trim_runs(|_| Some(1_000)), 12);
        assert_eq!(s.topics["t"].partitions[0].end_offset, 201);
        s.check_invariants().expect("invariants with no runs");
    }

    #[test]
    fn topics_past_the_cap_are_refused_with_the_limit_named() {
        let mut s = State::initial();
        let ev = &mut Vec::new();
        let mut created = s.topics.len();
        let mut i = 0;
        while created < crate::limits::TOPICS_MAX {
            assert_eq!(
                s.apply(1, &Request::CreateTopic { name: format!("t{i}"), partitions: 1 }, ev),
                Response::TopicCreated
            );
            created += 1;
            i += 1;
        }
        match s.apply(1, &Request::CreateTopic { name: "one-more".into(), partitions: 1 }, ev) {
            Response::Rejected(Rejection::LimitExceeded(m)) => assert!(m.contains("TOPICS_MAX"), "{m}"),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(s.topics.len(), crate::limits::TOPICS_MAX);
    }
}
