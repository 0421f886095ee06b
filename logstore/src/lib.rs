//! `logstore`: Ledger's durable, segmented write-ahead log.
//!
//! The log is the source of truth of Ledger, so this crate decides whether Ledger can lose money.
//! It stores opaque records addressed by a caller-chosen, contiguous `u64` log index (the Raft
//! index), and knows nothing of Raft, JSON or protobuf.
//!
//! - [`log`]: [`Log`], the segments, the writer thread with group commit, reads, truncation, purge
//!   and crash recovery.
//! - [`frame`]: the on-disk record frame, `len | crc32c | index | payload`.
//! - [`segment`]: one data file plus its index file; scanning and index validation.
//! - [`durable`]: fsync, and crash-safe replacement of small files. The only module in Ledger
//!   that calls fsync.
//! - [`config`]: [`LogConfig`], [`FsyncMode`] and the named limits.
//! - [`error`]: the typed [`Error`].
//!
//! Invariants, checked with assertions that stay on in release builds: segments hold contiguous
//! indexes with no holes, an index file entry exists for every record, and the durable index never
//! passes the last index.

/// Ledger targets 64-bit platforms: `u64` offsets and lengths convert to `usize` without loss.
const _: () = assert!(usize::BITS == 64);

pub mod config;
pub mod durable;
pub mod error;
pub mod frame;
pub mod log;
pub mod segment;

pub use config::{
    APPEND_QUEUE_MAX, BATCH_BYTES_MAX, BATCH_RECORDS_MAX, DEFERRED_SYNC_BYTES_MAX, FsyncMode, GROUP_COMMIT_BYTES_MAX,
    GROUP_COMMIT_REQUESTS_MAX, GROUP_COMMIT_WAIT, LogConfig, READ_BYTES_MAX, RECORD_SIZE_MAX, SEGMENT_SIZE_DEFAULT,
    SEGMENT_SIZE_MAX, SEGMENT_SIZE_MIN, SyncPolicy,
};
pub use durable::{
    DIR_MODE, FILE_MODE, NoSyncer, OsSyncer, RECORDED_FILES_MAX, RecordingSyncer, Syncer, create_private_dir_all,
    publish, write_atomic, write_atomic_with, write_new,
};
pub use error::{Error, Result};
pub use log::{AppendCallback, Log, LogStats, Record, Recovery};
