//! The snapshot layout: a magic and the layout versions of the three parts of [`State`], the head
//! (everything but the ledger's records, [`crate::codec`], length-prefixed), then the ledger's
//! records one by one. Written
//! from any [`LedgerRead`] (the live state, or a read snapshot of the disk store) and read into
//! any empty store, streamed both ways.

use std::collections::BTreeMap;

use ledger_core::{Ledger, LedgerMeta, LedgerRead, Loader, Record};
use openraft::StoredMembership;
use serde::{Deserialize, Serialize};

use super::state::{State, Topic};
use crate::codec::{self, CodecError, decode_or_legacy, encode};
use crate::limits::SNAPSHOT_HEAD_BYTES_MAX;
use crate::limits::SNAPSHOT_RECORD_BYTES_MAX;
use crate::store::node_store::NodeStore;
use crate::types::{LogId, Node};

/// First bytes of a snapshot's state data (stored and sent to followers): a magic, then the
/// layout versions of the three parts of [`State`], each a little-endian `u32`.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"LDGRSNAP";
/// Version of lognode's own part of the snapshot layout (topics, offset maps, membership, and how
/// the ledger's records follow them); bump it on any change of [`State`] outside the ledger and
/// the groups. 2 (2026-12-04): the ledger's records are a stream of [`Record`]s after the head.
/// 3 (2026-12-04): every account, then every history record with its account's number (in the
/// order the store keeps them), then every transfer; each record length-prefixed postcard (was
/// bincode: 7.7 GB for 28M transfers). 4 (2026-12-05): the API keys after the groups. 5
/// (2026-12-05): the audit trail after the keys. 6 (2026-12-05): the webhook subscriptions after
/// the audit trail. 7 (2026-12-06): the head in lognode's codec format 2 (postcard, was bincode),
/// after its length as a little-endian `u64`; layout 6 is still read.
pub const SNAPSHOT_FORMAT: u32 = 7;
/// The last layout whose head is bincode (format 1), streamed without a length; still read.
const SNAPSHOT_FORMAT_LEGACY_HEAD: u32 = 6;
/// Length of the snapshot header.
const SNAPSHOT_HEADER_BYTES: usize = SNAPSHOT_MAGIC.len() + 3 * 4;

/// Why snapshot bytes were not read: written with another layout, or damaged.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFormatError {
    /// No header: written by a lognode from before snapshots were versioned (2026-12-04).
    #[error("the snapshot has no format header: it was written by an older lognode whose layout this one cannot read")]
    Unversioned,
    /// A part's layout version differs from the one this lognode reads.
    #[error(
        "snapshot layout {found} (lognode/ledger-core/group-core); this lognode reads {expected}: \
         it was written by another version"
    )]
    Version {
        /// Versions in the snapshot.
        found: String,
        /// Versions this build reads.
        expected: String,
    },
    /// The header matched but the state did not decode (damaged, or cut short).
    #[error("the snapshot's state does not decode: {0}")]
    Decode(String),
    /// The state decoded but its records are not a valid ledger.
    #[error("the snapshot's ledger records are not valid: {0}")]
    Records(String),
}

/// Everything in a snapshot but the ledger's records: the head, written before them. Field order
/// is the layout; [`HeadOwned`] reads it.
#[derive(Serialize)]
struct HeadRef<'a> {
    last_applied: &'a Option<LogId>,
    membership: &'a StoredMembership<u64, Node>,
    topics: &'a BTreeMap<String, Topic>,
    removed_nodes: &'a std::collections::BTreeSet<u64>,
    ledger: LedgerMeta,
    next_event_seq: u64,
    groups: &'a group_core::Groups,
    keys: &'a super::keys::Keys,
    audit: &'a super::audit::Audit,
    webhooks: &'a super::webhooks::Webhooks,
}

/// The head of a snapshot, or of a disk store's state, as read back.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct HeadOwned {
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, Node>,
    topics: BTreeMap<String, Topic>,
    removed_nodes: std::collections::BTreeSet<u64>,
    ledger: LedgerMeta,
    next_event_seq: u64,
    groups: group_core::Groups,
    keys: super::keys::Keys,
    audit: super::audit::Audit,
    webhooks: super::webhooks::Webhooks,
}

impl HeadOwned {
    /// The state this head describes, with its ledger's records in `store`.
    pub fn into_state(self, store: NodeStore) -> Result<State, String> {
        let ledger = Ledger::open(store, self.ledger).map_err(str::to_string)?;
        Ok(State {
            last_applied: self.last_applied,
            membership: self.membership,
            topics: self.topics,
            removed_nodes: self.removed_nodes,
            ledger,
            next_event_seq: self.next_event_seq,
            groups: self.groups,
            keys: self.keys,
            audit: self.audit,
            webhooks: self.webhooks,
        })
    }
}

fn snapshot_versions() -> [u32; 3] {
    [SNAPSHOT_FORMAT, ledger_core::SNAPSHOT_FORMAT, group_core::SNAPSHOT_FORMAT]
}

fn versions_text(v: &[u32; 3]) -> String {
    format!("{}/{}/{}", v[0], v[1], v[2])
}

/// Writes a snapshot to `w`, streamed: [`SNAPSHOT_MAGIC`], the three layout versions, the head
/// (`head`, from [`State::head_bytes`]), then the ledger's records of `ledger` one by one, each a
/// little-endian `u32` length and the record in postcard (varints: a history record's four u128
/// balances take a few bytes each, not 16), ended by a length of 0. No copy of the encoded state
/// is held in memory.
pub fn write_snapshot_parts(
    w: &mut dyn std::io::Write,
    head: &[u8],
    ledger: &(impl LedgerRead + ?Sized),
) -> std::io::Result<()> {
    w.write_all(SNAPSHOT_MAGIC)?;
    for v in snapshot_versions() {
        w.write_all(&v.to_le_bytes())?;
    }
    w.write_all(&(head.len() as u64).to_le_bytes())?;
    w.write_all(head)?;
    let mut buf = Vec::with_capacity(1024);
    ledger_core::for_each_record(ledger, |r| {
        buf.clear();
        postcard::to_io(&r, &mut buf).map_err(std::io::Error::other)?;
        let len = u32::try_from(buf.len()).map_err(std::io::Error::other)?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&buf)
    })?;
    w.write_all(&0u32.to_le_bytes())
}

/// A read of the snapshot that failed: cut short, or the file or stream failed.
fn io(e: std::io::Error) -> SnapshotFormatError {
    SnapshotFormatError::Decode(e.to_string())
}

impl From<CodecError> for SnapshotFormatError {
    fn from(e: CodecError) -> Self {
        SnapshotFormatError::Decode(e.to_string())
    }
}

/// Reads a layout-7 head: its length, at most [`SNAPSHOT_HEAD_BYTES_MAX`], then its bytes.
fn read_head(r: &mut dyn std::io::Read) -> Result<HeadOwned, SnapshotFormatError> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    if len > SNAPSHOT_HEAD_BYTES_MAX {
        return Err(SnapshotFormatError::Decode(format!(
            "a head of {len} bytes, more than SNAPSHOT_HEAD_BYTES_MAX ({SNAPSHOT_HEAD_BYTES_MAX})"
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(r, len), &mut bytes).map_err(io)?;
    if bytes.len() as u64 != len {
        return Err(SnapshotFormatError::Decode(format!("the head is cut short at {} of {len} bytes", bytes.len())));
    }
    Ok(codec::decode(&bytes)?)
}

/// The next record of a snapshot's stream (see [`write_snapshot_parts`]), read into `buf`;
/// `None` at the end.
fn read_record(r: &mut dyn std::io::Read, buf: &mut Vec<u8>) -> Result<Option<Record>, SnapshotFormatError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(io)?;
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 {
        return Ok(None);
    }
    if len > SNAPSHOT_RECORD_BYTES_MAX {
        return Err(SnapshotFormatError::Records(format!(
            "a record of {len} bytes, more than SNAPSHOT_RECORD_BYTES_MAX ({SNAPSHOT_RECORD_BYTES_MAX})"
        )));
    }
    buf.resize(len, 0);
    r.read_exact(buf).map_err(io)?;
    postcard::from_bytes(buf)
        .map(Some)
        .map_err(|e| SnapshotFormatError::Records(format!("a record does not decode: {e}")))
}

impl State {
    /// The head of this state (everything but the ledger's records), encoded: what a disk store
    /// keeps beside the records, and what a snapshot starts with.
    pub fn head_bytes(&self) -> Vec<u8> {
        encode(&HeadRef {
            last_applied: &self.last_applied,
            membership: &self.membership,
            topics: &self.topics,
            removed_nodes: &self.removed_nodes,
            ledger: self.ledger.meta(),
            next_event_seq: self.next_event_seq,
            groups: &self.groups,
            keys: &self.keys,
            audit: &self.audit,
            webhooks: &self.webhooks,
        })
    }

    /// Decodes what [`State::head_bytes`] gave.
    /// A disk store's head may still be the one a lognode of before 2026-12-06 wrote (format 1;
    /// its first byte is `last_applied`'s `Option` tag, 0 or 1).
    pub fn decode_head(bytes: &[u8]) -> Result<HeadOwned, CodecError> {
        decode_or_legacy(bytes)
    }

    /// Writes the snapshot of this state to `w` (see [`write_snapshot_parts`]).
    pub fn write_snapshot(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        write_snapshot_parts(w, &self.head_bytes(), self.ledger.store())
    }

    /// Reads what [`State::write_snapshot`] wrote into a state whose ledger is in memory.
    pub fn read_snapshot(r: &mut dyn std::io::Read) -> Result<State, SnapshotFormatError> {
        Self::read_snapshot_into(r, NodeStore::default())
    }

    /// Reads what [`State::write_snapshot`] wrote, streamed, loading the ledger's records into
    /// `store` (which must be empty); refuses, naming the versions, a snapshot written with
    /// another layout (it would decode into garbage, or not at all). A disk store commits as it
    /// loads, with no state until the load is whole.
    pub fn read_snapshot_into(r: &mut dyn std::io::Read, mut store: NodeStore) -> Result<State, SnapshotFormatError> {
        let mut head = [0u8; SNAPSHOT_HEADER_BYTES];
        let mut got = 0;
        while got < head.len() {
            match r.read(&mut head[got..]) {
                Ok(0) => return Err(SnapshotFormatError::Unversioned),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        if !head.starts_with(SNAPSHOT_MAGIC) {
            return Err(SnapshotFormatError::Unversioned);
        }
        let mut found = [0u32; 3];
        for (v, chunk) in found.iter_mut().zip(head[SNAPSHOT_MAGIC.len()..].chunks_exact(4)) {
            *v = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let expected = snapshot_versions();
        let legacy_head = found[0] == SNAPSHOT_FORMAT_LEGACY_HEAD && found[1..] == expected[1..];
        if found != expected && !legacy_head {
            return Err(SnapshotFormatError::Version {
                found: versions_text(&found),
                expected: versions_text(&expected),
            });
        }
        let head: HeadOwned = if legacy_head { codec::decode_legacy_from(&mut *r)? } else { read_head(&mut *r)? };
        if let NodeStore::Disk(d) = &mut store {
            d.begin_load(crate::limits::STATE_LOAD_WRITES_MAX);
        }
        {
            let mut loader = Loader::new(&mut store, head.ledger.currencies.len())
                .map_err(|e| SnapshotFormatError::Records(e.to_string()))?;
            let mut buf = Vec::with_capacity(1024);
            while let Some(rec) = read_record(&mut *r, &mut buf)? {
                loader.push(rec).map_err(|e| SnapshotFormatError::Records(e.to_string()))?;
            }
            loader.finish().map_err(|e| SnapshotFormatError::Records(e.to_string()))?;
        }
        head.into_state(store).map_err(SnapshotFormatError::Records)
    }

    /// [`State::write_snapshot`] into memory (tests and small states).
    pub fn to_snapshot_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_snapshot(&mut out).expect("writing to memory cannot fail");
        out
    }

    /// This state's snapshot in layout 6, as a lognode of before 2026-12-06 wrote it: the head in
    /// format 1 (bincode), without a length.
    #[cfg(test)]
    pub fn to_snapshot_bytes_layout_6(&self) -> Vec<u8> {
        let current = self.to_snapshot_bytes();
        let head = self.head_bytes();
        let mut out = current[..SNAPSHOT_MAGIC.len()].to_vec();
        out.extend_from_slice(&SNAPSHOT_FORMAT_LEGACY_HEAD.to_le_bytes());
        out.extend_from_slice(&current[SNAPSHOT_MAGIC.len() + 4..SNAPSHOT_HEADER_BYTES]);
        let legacy: HeadOwned = codec::decode(&head).expect("head");
        let legacy = codec::encode_legacy(&legacy);
        // What a disk store of before 2026-12-06 holds as its head reads too.
        let again = State::decode_head(&legacy).expect("format-1 head");
        assert_eq!(codec::encode(&again), head);
        out.extend_from_slice(&legacy);
        out.extend_from_slice(&current[SNAPSHOT_HEADER_BYTES + 8 + head.len()..]);
        out
    }

    /// [`State::read_snapshot`] from memory.
    pub fn from_snapshot_bytes(mut bytes: &[u8]) -> Result<State, SnapshotFormatError> {
        Self::read_snapshot(&mut bytes)
    }
}
