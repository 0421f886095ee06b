//! Field validation (defence in depth: the gateway validates too).

use crate::code::ResultCode;
use crate::limits::{
    AMOUNT_MAX, AMOUNT_MIN, CURRENCY_LEN_MAX, CURRENCY_LEN_MIN, ID_BYTES_MAX, ID_BYTES_MIN, METADATA_BYTES_MAX,
    TIMEOUT_MS_MAX,
};

/// True if `id` is 1–128 bytes of `[A-Za-z0-9._:-]`.
pub fn is_valid_id(id: &str) -> bool {
    (ID_BYTES_MIN..=ID_BYTES_MAX).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// True if `c` is 3–12 uppercase ASCII letters.
pub fn is_valid_currency(c: &str) -> bool {
    (CURRENCY_LEN_MIN..=CURRENCY_LEN_MAX).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_uppercase())
}

pub(crate) fn id(id: &str) -> Result<(), ResultCode> {
    if is_valid_id(id) { Ok(()) } else { Err(ResultCode::InvalidId) }
}

pub(crate) fn currency(c: &str) -> Result<(), ResultCode> {
    if is_valid_currency(c) { Ok(()) } else { Err(ResultCode::InvalidCurrency) }
}

pub(crate) fn amount(a: u64) -> Result<(), ResultCode> {
    if (AMOUNT_MIN..=AMOUNT_MAX).contains(&a) { Ok(()) } else { Err(ResultCode::InvalidAmount) }
}

pub(crate) fn metadata(m: &str) -> Result<(), ResultCode> {
    if m.len() <= METADATA_BYTES_MAX { Ok(()) } else { Err(ResultCode::MetadataTooLarge) }
}

pub(crate) fn timeout(pending: bool, timeout_ms: Option<u64>) -> Result<(), ResultCode> {
    match (pending, timeout_ms) {
        (_, None) => Ok(()),
        (true, Some(t)) if (1..=TIMEOUT_MS_MAX).contains(&t) => Ok(()),
        _ => Err(ResultCode::InvalidTimeout),
    }
}
