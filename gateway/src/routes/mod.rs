//! HTTP handlers, grouped by resource, and response helpers.

pub mod accounts;
pub mod groups;
pub mod ops;
pub mod topics;
pub mod transfers;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// Header carrying the log index of a write (and, on reads, the last index
/// applied by the replica that served the read).
pub const LEDGER_INDEX: HeaderName = HeaderName::from_static("ledger-index");

/// Header set to `true` on an identical replay of an earlier write.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

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

/// A JSON read response with `Ledger-Index` = the serving replica's applied index.
pub fn read_json<T: Serialize>(body: &T, applied_index: u64) -> Response {
    let mut r = json(StatusCode::OK, body);
    r.headers_mut().insert(LEDGER_INDEX, HeaderValue::from(applied_index));
    r
}
