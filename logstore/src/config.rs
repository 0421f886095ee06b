//! Configuration and the named limits of the log store.

use std::sync::Arc;

use crate::durable::{NoSyncer, OsSyncer, SharedSyncer};

/// Largest payload of one record. Raft entries carry at most one client batch, which the
/// gateway and lognode cap well below this.
pub const RECORD_SIZE_MAX: usize = 8 * 1024 * 1024;
/// Most records in one `append` call.
pub const BATCH_RECORDS_MAX: usize = 16 * 1024;
/// Most payload bytes in one `append` call.
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Append requests that may wait for the writer thread; further appenders block (backpressure).
pub const APPEND_QUEUE_MAX: usize = 4096;
/// Most bytes the writer gathers into one group commit before it syncs.
pub const GROUP_COMMIT_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most append requests the writer gathers into one group commit before it syncs.
pub const GROUP_COMMIT_REQUESTS_MAX: usize = 1024;
/// Longest the writer waits for more appends to join a group commit, and only while the previous
/// group showed that several appenders are at work. Kept well below one sync (~150 µs here).
pub const GROUP_COMMIT_WAIT: std::time::Duration = std::time::Duration::from_micros(50);
/// With [`SyncPolicy::OnRequest`], unsynced bytes after which the writer syncs on its own, so that
/// the sync a caller asks for has little left to do: at most this much plus one group commit's
/// bytes wait unsynced.
pub const DEFERRED_SYNC_BYTES_MAX: usize = 1024 * 1024;
/// Default segment size.
pub const SEGMENT_SIZE_DEFAULT: u64 = 64 * 1024 * 1024;
/// Smallest segment size accepted (tests use tiny segments to exercise rollover).
pub const SEGMENT_SIZE_MIN: u64 = 64;
/// Largest segment size accepted: offsets in the index files are `u32`.
pub const SEGMENT_SIZE_MAX: u64 = u32::MAX as u64;
/// Most bytes one `read_range` call returns (at least one record is always returned).
pub const READ_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(RECORD_SIZE_MAX <= BATCH_BYTES_MAX);
const _: () = assert!(BATCH_BYTES_MAX <= GROUP_COMMIT_BYTES_MAX * 4);
const _: () = assert!(SEGMENT_SIZE_DEFAULT <= SEGMENT_SIZE_MAX);
const _: () = assert!((RECORD_SIZE_MAX as u64) < SEGMENT_SIZE_MAX);

/// When the log forces data to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncMode {
    /// Every append completes only after `fdatasync`. The only mode for real data.
    #[default]
    Always,
    /// **UNSAFE**: never sync. Acknowledged appends can be lost on a crash or power loss.
    /// For benchmarks and tests only.
    Never,
}

impl std::str::FromStr for FsyncMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncMode::Always),
            "never" => Ok(FsyncMode::Never),
            other => Err(format!("unknown fsync mode {other:?}: expected \"always\" or \"never\" (unsafe)")),
        }
    }
}

/// When appends are synced (with [`FsyncMode::Always`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Every append's callback runs after a sync that covers it (group commit). For data that
    /// exists nowhere else: the Raft log.
    #[default]
    EveryAppend,
    /// Appends are written (readable, and kept by a killed process: the page cache survives it)
    /// and their callback runs then, but they are synced only by [`crate::Log::sync`], at a
    /// segment rollover, on close, or once [`DEFERRED_SYNC_BYTES_MAX`] bytes wait. For data
    /// derived from another log, whose owner syncs it before anything durable depends on it.
    /// [`crate::Log::durable_index`] moves only with those syncs.
    OnRequest,
}

/// How a log is opened.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment rolls over once appending would take it past this many bytes.
    pub segment_size: u64,
    /// How data is made durable; see [`FsyncMode`].
    pub fsync: FsyncMode,
    /// When appends are synced; see [`SyncPolicy`].
    pub sync: SyncPolicy,
    /// On open, also check every record of the sealed segments (not only the last segment's).
    /// Off by default: sealed segments were fully synced before they were sealed, and every read
    /// verifies its records' checksums anyway.
    pub verify_on_open: bool,
    /// Overrides the syncer chosen by `fsync`: tests inject one that counts and orders syncs.
    pub syncer: Option<SharedSyncer>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_size: SEGMENT_SIZE_DEFAULT,
            fsync: FsyncMode::Always,
            sync: SyncPolicy::EveryAppend,
            verify_on_open: false,
            syncer: None,
        }
    }
}

impl LogConfig {
    pub(crate) fn syncer(&self) -> SharedSyncer {
        match (&self.syncer, self.fsync) {
            (Some(s), _) => Arc::clone(s),
            (None, FsyncMode::Always) => Arc::new(OsSyncer),
            (None, FsyncMode::Never) => Arc::new(NoSyncer),
        }
    }
}
