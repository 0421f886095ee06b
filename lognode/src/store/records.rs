//! A logstore log whose records lognode encodes (the Raft log, the events log), and the boundary
//! between the records of the old codec and the new ([`crate::codec`]).
//!
//! The log's meta `record-format` holds the first index whose record is in the current format
//! (format byte first); every record below it was written untagged in format 1 (bincode) by a
//! lognode of before 2026-12-06. The meta is written when a lognode of this build first opens
//! the log: at the index after the last record (0 for a new log), and synced before any record
//! is appended. A truncation below it lowers it after the records are gone (a crash in between
//! leaves it higher than needed, never lower), so a record's format always follows from its
//! index.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError};

/// Name of the meta holding the format boundary.
const META_RECORD_FORMAT: &str = "record-format";

/// A logstore log and where its format-2 records begin. Cheap to clone; clones share the
/// boundary. Derefs to the log for everything else.
#[derive(Clone)]
pub struct Records {
    log: logstore::Log,
    /// First index whose record is format 2.
    current_from: Arc<AtomicU64>,
}

impl Records {
    /// Reads the log's format boundary, writing it first (synced) if this build opens the log for
    /// the first time.
    pub fn open(log: logstore::Log) -> Result<Records, logstore::Error> {
        let current_from = match log.load_meta(META_RECORD_FORMAT)? {
            Some(bytes) => codec::decode::<u64>(&bytes).map_err(|e| {
                logstore::Error::Config(format!("the log's {META_RECORD_FORMAT} meta does not decode: {e}"))
            })?,
            None => {
                // Records at or below the purge point are gone, and the next append goes after the
                // last record (or after the purge point of an emptied log).
                let next = match (log.last_index(), log.purged_upto()) {
                    (Some(last), _) => last + 1,
                    (None, Some(purged)) => purged + 1,
                    (None, None) => 0,
                };
                log.save_meta(META_RECORD_FORMAT, &codec::encode(&next))?;
                if next > 0 {
                    tracing::info!(dir = %log.dir().display(), before = next, "records below this index are in the old format (bincode); new ones are postcard");
                }
                next
            }
        };
        Ok(Records { log, current_from: Arc::new(AtomicU64::new(current_from)) })
    }

    /// The log.
    pub fn log(&self) -> &logstore::Log {
        &self.log
    }

    /// Decodes the record at `index`.
    pub fn decode<T: DeserializeOwned>(&self, index: u64, bytes: &[u8]) -> Result<T, CodecError> {
        if index < self.current_from.load(Ordering::Acquire) {
            codec::decode_legacy(bytes)
        } else {
            codec::decode(bytes)
        }
    }

    /// Removes the records from `index` on (logstore's `truncate_from`), then lowers the format
    /// boundary to `index` if it was above: what is appended there next is format 2.
    pub fn truncate_from(&self, index: u64) -> Result<(), logstore::Error> {
        self.log.truncate_from(index)?;
        if index < self.current_from.load(Ordering::Acquire) {
            self.log.save_meta(META_RECORD_FORMAT, &codec::encode(&index))?;
            self.current_from.store(index, Ordering::Release);
        }
        Ok(())
    }
}

impl Deref for Records {
    type Target = logstore::Log;

    fn deref(&self) -> &logstore::Log {
        &self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Records {
        let (log, _) = logstore::Log::open(dir, logstore::LogConfig::default()).expect("open");
        Records::open(log).expect("records")
    }

    /// A log written by an older lognode (bincode records, no boundary meta) reads back, new
    /// records go after it in format 2, and both read after a restart; a truncation into the old
    /// records makes what replaces them format 2.
    #[test]
    fn old_records_stay_readable_beside_new_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, _) = logstore::Log::open(dir.path(), logstore::LogConfig::default()).expect("open");
            let old: Vec<Vec<u8>> = (1..=5u64).map(|i| codec::encode_legacy(&(i, format!("old {i}")))).collect();
            log.append(1, old).expect("append old");
        }
        let r = open(dir.path());
        assert_eq!(r.current_from.load(Ordering::Acquire), 6);
        r.append(6, vec![codec::encode(&(6u64, "new 6".to_string()))]).expect("append new");
        drop(r);
        let r = open(dir.path());
        for i in 1..=6u64 {
            let bytes = r.read(i).expect("read").expect("present");
            let (n, s): (u64, String) = r.decode(i, &bytes).expect("decode");
            assert_eq!(n, i);
            assert!(s.ends_with(&i.to_string()), "{s}");
        }
        // Old record 4 decoded as format 2 would fail or be garbage: the boundary matters.
        assert!(codec::decode::<(u64, String)>(&r.read(4).expect("read").expect("present")).is_err());
        r.truncate_from(4).expect("truncate");
        r.append(4, vec![codec::encode(&(4u64, "new 4".to_string()))]).expect("append");
        drop(r);
        let r = open(dir.path());
        assert_eq!(r.current_from.load(Ordering::Acquire), 4);
        let (_, s): (u64, String) = r.decode(3, &r.read(3).expect("read").expect("present")).expect("old 3");
        assert_eq!(s, "old 3");
        let (_, s): (u64, String) = r.decode(4, &r.read(4).expect("read").expect("present")).expect("new 4");
        assert_eq!(s, "new 4");
    }

    #[test]
    fn a_new_log_is_format_2_from_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = open(dir.path());
        assert_eq!(r.current_from.load(Ordering::Acquire), 0);
        r.append(1, vec![codec::encode(&1u64)]).expect("append");
        assert_eq!(r.decode::<u64>(1, &r.read(1).expect("read").expect("present")).expect("decode"), 1);
    }
}
