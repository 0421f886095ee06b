//! openraft storage on logstore: the Raft log is the WAL ([`log`]), the state machine holds only
//! metadata and offset maps ([`state_machine`]).

// openraft fixes the error type (`StorageError`, ~224 bytes) through its storage traits.
#![allow(clippy::result_large_err)]

pub mod ledger_db;
pub mod log;
pub mod node_store;
pub mod records;
pub mod state_machine;

pub use log::LogStore;
pub use state_machine::{StateMachineStore, TOPIC_LEDGER, TOPIC_LEDGER_PARTITIONS};

use openraft::{ErrorSubject, ErrorVerb};

use crate::types::StorageError;

/// Maps a logstore error into an openraft storage error.
pub(crate) fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}
