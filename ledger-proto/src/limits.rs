//! Wire limits that lognode and the gateway must agree on: lognode enforces them on its gRPC client
//! API, the gateway never asks for more (and mostly for less). Both sides import these constants,
//! so they cannot drift; the compile-time checks below tie them together.

/// Largest gRPC message of the client API (`ledger.v1.Ledger`), either way. lognode's server and
/// the gateway's channels both set it; every answer below is bounded to fit in it.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Largest record lognode accepts (key + value + header names and values). The gateway's own
/// record limit (64 KiB of JSON) is smaller.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;

/// Most records in one Produce/ProduceBatch: one Raft entry.
pub const PRODUCE_RECORDS_MAX: usize = 1000;

/// Most record bytes in one Produce/ProduceBatch: one Raft entry, which must fit in one logstore
/// record (checked in lognode) and one message.
pub const PRODUCE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Most records one read (Consume, a group fetch's partition) returns.
pub const READ_RECORDS_MAX: usize = 1000;

/// Most record bytes one read returns (at least one record is returned, so an answer may exceed
/// it by one record).
pub const READ_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Longest long poll of a group fetch, in milliseconds: lognode holds the call at most this long,
/// and the gateway accepts no longer `wait_ms`.
pub const GROUP_FETCH_WAIT_MAX_MS: u64 = 30_000;

/// Most client-side positions (`from=`) one group fetch may carry.
pub const GROUP_FETCH_POSITIONS_MAX: usize = 1024;

/// Longest topic name, in bytes (`[A-Za-z0-9._-]`).
pub const TOPIC_NAME_BYTES_MAX: usize = 128;

/// Most partitions lognode allows a topic (the gateway allows fewer).
pub const TOPIC_PARTITIONS_MAX: u32 = 1024;

/// Room in a message for everything but record bytes (framing, ids, offsets), per message.
pub const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;

// ---- compile-time relation checks -------------------------------------

// A maximal produce fits in one message.
const _: () = assert!(PRODUCE_BYTES_MAX + MESSAGE_OVERHEAD_BYTES <= MESSAGE_BYTES_MAX);
// One maximal record fits in a produce.
const _: () = assert!(RECORD_BYTES_MAX <= PRODUCE_BYTES_MAX);
// A maximal read (the bytes cap, one more record, a per-record overhead) fits in one message.
const _: () = assert!(READ_BYTES_MAX + RECORD_BYTES_MAX + READ_RECORDS_MAX * 1024 <= MESSAGE_BYTES_MAX);
const _: () = assert!(PRODUCE_RECORDS_MAX >= 1 && READ_RECORDS_MAX >= 1 && GROUP_FETCH_POSITIONS_MAX >= 1);
const _: () = assert!(TOPIC_NAME_BYTES_MAX >= 1 && TOPIC_PARTITIONS_MAX >= 1);
