//! lognode's binary codec, for everything it stores (Raft entries, the events log, its metas,
//! snapshot heads, the state store's head) and sends to its peers (Raft RPCs).
//!
//! **Format 2** (since 2026-12-06): one format byte, [`FORMAT_POSTCARD`], then the value in
//! [postcard](https://docs.rs/postcard) 1.x (serde, varint integers, maintained). A later codec
//! takes the next format byte and [`decode`] reads both, so a log never has to be rewritten.
//!
//! **Format 1** (before): bincode 1.x, untagged; bincode is no longer maintained. Only
//! [`decode_legacy`] reads it, for data a lognode of before 2026-12-06 wrote; nothing writes it.
//! Where such bytes can be met, the place that stores them says how they are told apart:
//! - log records by their index ([`crate::store::records::Records`]: records below the log's
//!   `record-format` boundary are format 1);
//! - values whose format-1 bytes begin with an `Option` or a `bool` (byte 0 or 1) by their first
//!   byte ([`decode_or_legacy`]);
//! - the vote by its meta's name, snapshots by their layout version.
//!
//! Peers are not told apart: every Raft RPC is format 2, so a cluster moves to it all at once (the
//! nodes stopped, then started with the new build; their data is read as it is).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format byte of a postcard-encoded value.
pub const FORMAT_POSTCARD: u8 = 2;

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// No bytes at all.
    #[error("no bytes to decode")]
    Empty,
    /// A format byte this build does not know (written by a newer lognode, or damaged).
    #[error("unknown format byte {0}: written by a newer lognode, or damaged")]
    UnknownFormat(u8),
    /// Format 2 bytes that postcard refused.
    #[error("undecodable (postcard): {0}")]
    Postcard(#[from] postcard::Error),
    /// Format 1 bytes that bincode refused.
    #[error("undecodable (bincode, format 1): {0}")]
    Legacy(#[from] bincode::Error),
}

/// Encodes `value` in format 2 (the format byte, then postcard).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(value));
    out.push(FORMAT_POSTCARD);
    postcard::to_extend(value, out).expect("postcard encoding into a vector cannot fail")
}

/// The length of [`encode`]'s bytes, without encoding.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).map_or(usize::MAX, |n| n.saturating_add(1))
}

/// Decodes what [`encode`] wrote (any format byte this build knows).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&FORMAT_POSTCARD, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&other, _)) => Err(CodecError::UnknownFormat(other)),
        None => Err(CodecError::Empty),
    }
}

/// Decodes format-1 bytes (bincode 1.x), written by a lognode of before 2026-12-06.
pub fn decode_legacy<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(bincode::deserialize(bytes)?)
}

/// Decodes one format-1 value from the front of `r` (bincode reads exactly its bytes), for the
/// heads of snapshots of layout 6.
pub fn decode_legacy_from<T: DeserializeOwned>(r: &mut dyn std::io::Read) -> Result<T, CodecError> {
    Ok(bincode::deserialize_from(r)?)
}

/// Decodes either format, for a type whose format-1 bytes begin with byte 0 or 1 (its first field
/// an `Option` or a `bool`): a first byte of 0 or 1 is format 1, any other a format byte.
pub fn decode_or_legacy<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.first() {
        Some(0 | 1) => decode_legacy(bytes),
        _ => decode(bytes),
    }
}

/// Encodes `value` in format 1. For tests that write what an older lognode wrote.
#[cfg(test)]
pub fn encode_legacy<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("bincode encoding of an in-memory value cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Entry, LogId};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(7, 2), index),
            payload: EntryPayload::Normal(crate::types::Request::Produce {
                topic: "t".into(),
                partition: 1,
                records: vec![crate::types::RecordData { key: b"k".to_vec(), value: vec![9; 40], headers: vec![] }],
                timestamp_ms: 1_700_000_000_000,
            }),
        }
    }

    #[test]
    fn round_trip_and_format_byte() {
        let e = entry(42);
        let bytes = encode(&e);
        assert_eq!(bytes[0], FORMAT_POSTCARD);
        assert_eq!(bytes.len(), encoded_len(&e));
        let back: Entry = decode(&bytes).expect("decode");
        assert_eq!(encode(&back), bytes);
        // Smaller than format 1 (varints instead of fixed-width integers).
        assert!(bytes.len() < encode_legacy(&e).len(), "{} vs {}", bytes.len(), encode_legacy(&e).len());
    }

    #[test]
    fn unknown_format_and_empty_are_errors() {
        let mut bytes = encode(&entry(1));
        bytes[0] = 3;
        assert!(matches!(decode::<Entry>(&bytes), Err(CodecError::UnknownFormat(3))));
        assert!(matches!(decode::<Entry>(&[]), Err(CodecError::Empty)));
        assert!(matches!(decode::<Entry>(&[FORMAT_POSTCARD, 0xff]), Err(CodecError::Postcard(_))));
    }

    #[test]
    fn option_values_read_in_either_format() {
        for v in [None, Some(LogId::new(CommittedLeaderId::new(3, 1), 99))] {
            assert_eq!(decode_or_legacy::<Option<LogId>>(&encode_legacy(&v)).expect("format 1"), v);
            assert_eq!(decode_or_legacy::<Option<LogId>>(&encode(&v)).expect("format 2"), v);
        }
    }
}
