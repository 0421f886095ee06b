//! Typed errors of the log store.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the log store.
///
/// Limit violations and misuse (`RecordTooLarge`, `BatchTooLarge`, `NotContiguous`, ...) leave the
/// log unchanged. `Io` on a write path and `Failed` mean the log stopped accepting writes: after a
/// failed fsync the kernel may have dropped dirty pages, so retrying would be a lie ("fsyncgate").
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing ("open", "write", "fsync", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A checksum or structure check failed somewhere other than the torn tail of the last
    /// segment. The log refuses to open rather than drop data that may have been acknowledged.
    #[error("corruption in {path} at byte offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first bad frame.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// One record is larger than [`crate::RECORD_SIZE_MAX`].
    #[error("record of {size} bytes exceeds the record size limit of {max} bytes")]
    RecordTooLarge {
        /// The record's size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A batch holds more records or bytes than the limits allow.
    #[error(
        "batch of {records} records / {bytes} bytes exceeds the limits of {records_max} records / {bytes_max} bytes"
    )]
    BatchTooLarge {
        /// Records in the batch.
        records: usize,
        /// Payload bytes in the batch.
        bytes: usize,
        /// [`crate::BATCH_RECORDS_MAX`].
        records_max: usize,
        /// [`crate::BATCH_BYTES_MAX`].
        bytes_max: usize,
    },
    /// An append with no records.
    #[error("empty batch: an append needs at least one record")]
    EmptyBatch,
    /// An append whose first index would leave a hole or overwrite the log.
    #[error("append at index {got} does not continue the log (next index must be {expected})")]
    NotContiguous {
        /// What the log expected (`last + 1`, or the smallest index allowed when empty).
        expected: u64,
        /// What the caller passed.
        got: u64,
    },
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Another process (or another `Log` in this process) holds the directory lock.
    #[error("log directory {0} is locked by another process")]
    Locked(PathBuf),
    /// The log stopped accepting writes after an earlier I/O failure, or it is shutting down.
    #[error("log is unavailable: {0}")]
    Failed(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// A copy of this error that can be handed to every waiter of a failed group commit.
    pub(crate) fn to_failed(&self) -> Error {
        Error::Failed(self.to_string())
    }
}
