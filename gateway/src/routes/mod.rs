//! HTTP handlers, grouped by resource, and response helpers.

pub mod accounts;
pub mod audit;
pub mod groups;
pub mod keys;
pub mod ops;
pub mod reversals;
pub mod statements;
pub mod topics;
pub mod transactions;
pub mod transfers;
pub mod webhooks;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// Header carrying the log index of a write (and, on reads, the last index
/// applied by the replica that served the read).
pub const LEDGER_INDEX: HeaderName = HeaderName::from_static("ledger-index");

/// Header set to `true` on an identical replay of an earlier write.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The page size of a listing: `limit` or `default`, which must be in `1..=max`.
pub(crate) fn page_limit(limit: Option<u32>, default: usize, max: usize) -> Result<u32, ApiError> {
    let limit = limit.map_or(default, |l| l as usize);
    match u32::try_from(limit) {
        Ok(l) if (1..=max).contains(&limit) => Ok(l),
        _ => Err(ApiError::bad_request(crate::error::ErrorCode::InvalidQuery, format!("limit must be in 1..={max}"))),
    }
}

/// A listing's metadata filter: `metadata_key` (not empty) and `metadata_value`, both or neither.
pub(crate) fn metadata_filter(
    key: Option<String>,
    value: Option<String>,
) -> Result<Option<(String, String)>, ApiError> {
    match (key, value) {
        (Some(k), Some(v)) if !k.is_empty() => Ok(Some((k, v))),
        (None, None) => Ok(None),
        _ => Err(ApiError::bad_request(
            crate::error::ErrorCode::InvalidQuery,
            "metadata_key (not empty) and metadata_value go together",
        )),
    }
}

/// The `min_index` of a read pinned to `at_index`: a replica must have applied both.
pub(crate) fn pinned_min_index(min_index: Option<u64>, at_index: Option<u64>) -> Option<u64> {
    match (min_index, at_index) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(b) => {
            let mut r = (status, b).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => ApiError::internal(format!("cannot encode the response: {e}")).into_response(),
    }
}

/// A JSON write response with `Ledger-Index` (and `Idempotent-Replayed:
/// true` for a replay).
pub fn write_json<T: Serialize>(status: StatusCode, body: &T, index: u64, replayed: bool) -> Response {
    let mut r = json(status, body);
    r.headers_mut().insert(LEDGER_INDEX, HeaderValue::from(index));
    if replayed {
        r.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    r
}

/// A 204 write response with `Ledger-Index`.
pub fn no_content(index: u64) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(LEDGER_INDEX, HeaderValue::from(index));
    r
}

/// A JSON read response with `Ledger-Index` = the serving replica's applied index.
pub fn read_json<T: Serialize>(body: &T, applied_index: u64) -> Response {
    let mut r = json(StatusCode::OK, body);
    r.headers_mut().insert(LEDGER_INDEX, HeaderValue::from(applied_index));
    r
}

/// Writes a stored record's JSON fields (`"offset":..,"key":..,"value":..,"headers":{..},
/// "timestamp":..`, no braces) exactly as [`crate::dto::RecordBody`] serializes them, but
/// directly: a value that is valid JSON is copied as it is — validated, never parsed into a tree
/// and printed again, so big integers (u128 balances in ledger events) keep every digit and the
/// hot path of consumption allocates little; any other value becomes a JSON string.
pub fn write_record_fields(out: &mut Vec<u8>, r: &crate::backend::StoredRecord) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail; serde_json only fails on non-string map keys (none here).
    let _ = write!(out, "\"offset\":{},\"key\":", r.offset);
    let _ = serde_json::to_writer(&mut *out, &r.key);
    out.extend_from_slice(b",\"value\":");
    if serde_json::from_slice::<serde::de::IgnoredAny>(&r.value).is_ok() {
        out.extend_from_slice(r.value.trim_ascii());
    } else {
        let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(&r.value));
    }
    out.extend_from_slice(b",\"headers\":{");
    // Like the DTO's BTreeMap: sorted by name, the last value of a repeated name wins.
    let headers: std::collections::BTreeMap<&str, &str> =
        r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (j, (k, v)) in headers.into_iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, v);
    }
    let _ = write!(out, "}},\"timestamp\":{}", r.timestamp_ms);
}

/// The JSON of a [`crate::dto::FetchResponse`], written directly (see [`write_record_fields`]).
pub fn partition_fetch_body(records: &[crate::backend::StoredRecord], next_offset: u64, end_offset: u64) -> Vec<u8> {
    use std::io::Write as _;
    let size: usize = records.iter().map(|r| r.value.len() + 96).sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(b"{\"records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        write_record_fields(&mut out, r);
        out.push(b'}');
    }
    let _ = write!(out, "],\"next_offset\":{next_offset},\"end_offset\":{end_offset}}}");
    out
}

/// A JSON read response from bytes already encoded, with `Ledger-Index`.
pub fn read_json_bytes(body: Vec<u8>, applied_index: u64) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(LEDGER_INDEX, HeaderValue::from(applied_index));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::StoredRecord;
    use crate::dto::{FetchResponse, RecordBody};

    fn rec(offset: u64, key: Option<&str>, value: &[u8], headers: &[(&str, &str)]) -> StoredRecord {
        StoredRecord {
            offset,
            key: key.map(str::to_owned),
            value: value.to_vec(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            timestamp_ms: 1_764_150_000_000 + offset,
        }
    }

    #[test]
    fn partition_fetch_body_equals_the_dto_serialization_and_keeps_big_integers() {
        let records = vec![
            rec(7, Some("k\"1"), br#" {"a": [1, 2.5, "x"], "b": null} "#, &[("z", "1"), ("a", "q\"")]),
            rec(8, None, b"not json {", &[]),
            rec(9, None, &[0xff, 0xfe], &[]),
            rec(10, Some("acct"), br#"{"balance":340282366920938463463374607431768211455}"#, &[]),
        ];
        let bytes = partition_fetch_body(&records, 11, 12);
        let got: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let dto = FetchResponse {
            records: records.iter().cloned().map(RecordBody::from).collect(),
            next_offset: 11,
            end_offset: 12,
        };
        // Without arbitrary precision both sides read the u128 as the same f64: compare as values.
        assert_eq!(got, serde_json::to_value(&dto).expect("serializes"));
        // And the text keeps every digit (the DTO path would have printed a float).
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(text.contains(r#""value":{"balance":340282366920938463463374607431768211455}"#), "{text}");
        let empty: serde_json::Value = serde_json::from_slice(&partition_fetch_body(&[], 3, 3)).expect("valid JSON");
        assert_eq!(empty, serde_json::json!({"records": [], "next_offset": 3, "end_offset": 3}));
    }
}
