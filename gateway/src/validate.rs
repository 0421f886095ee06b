//! Request validation: every field is checked against a named limit before
//! anything is sent to the log (the core checks the ledger rules again).

use ledger_core::{
    ControlChars, NewAccount, NewTransfer, ResultCode, TextError, TransferFlags, check_json_text, check_text,
    is_valid_currency, is_valid_id,
};
use serde_json::Value;

use crate::backend::NewRecord;
use crate::dto::{CreateAccountRequest, CreateTransferRequest, ProduceRecord};
use crate::error::{ApiError, ErrorCode};
use crate::limits::{
    AMOUNT_MAX, AMOUNT_MIN, METADATA_BYTES_MAX, RECORD_BYTES_MAX, RECORD_HEADERS_MAX, RECORD_KEY_BYTES_MAX,
    TIMEOUT_MS_MAX, TOPIC_NAME_BYTES_MAX, TOPIC_PARTITIONS_MAX,
};

fn rule(code: ResultCode, detail: String) -> ApiError {
    ApiError::from_rule(code, detail)
}

fn invalid_text(field: &str, e: TextError) -> ApiError {
    rule(
        ResultCode::InvalidText,
        format!(
            "{field} holds {e}; strings may not hold NUL, lone surrogates or control characters \
             (TAB, LF and CR are allowed inside metadata and record values only)"
        ),
    )
}

/// A string field without control characters (record keys, header names
/// and values): the gateway's half of `ledger_core::check_text`.
pub fn plain_text(s: &str, field: &str) -> Result<(), ApiError> {
    check_text(s, ControlChars::None).map_err(|e| invalid_text(field, e))
}

/// JSON text (canonical metadata, a record value): `ledger_core::check_json_text`.
pub fn json_text(s: &str, field: &str) -> Result<(), ApiError> {
    check_json_text(s).map_err(|e| invalid_text(field, e))
}

/// Writes `v` as canonical JSON: object keys sorted (by bytes), no
/// whitespace, strings and numbers as serde_json prints them. Two
/// semantically equal objects give identical bytes, which is what the
/// ledger compares for idempotency.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(val) = m.get(k) {
                    canonical_json(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, val) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(val, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Metadata: absent/null = `{}`; otherwise a JSON object, canonicalized,
/// at most `METADATA_BYTES_MAX` bytes.
pub fn metadata(m: Option<&Value>, field: &str) -> Result<String, ApiError> {
    let v = match m {
        None | Some(Value::Null) => return Ok("{}".to_owned()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            return Err(ApiError::unprocessable(ErrorCode::InvalidMetadata, format!("{field} must be a JSON object")));
        }
    };
    let mut s = String::new();
    canonical_json(v, &mut s);
    json_text(&s, field)?;
    if s.len() > METADATA_BYTES_MAX {
        return Err(rule(
            ResultCode::MetadataTooLarge,
            format!("{field} is {} bytes canonicalized; the limit is {METADATA_BYTES_MAX}", s.len()),
        ));
    }
    Ok(s)
}

/// An amount: a JSON integer in `AMOUNT_MIN..=AMOUNT_MAX`.
pub fn amount(n: &serde_json::Number, field: &str) -> Result<u64, ApiError> {
    match n.as_u64() {
        Some(a) if (AMOUNT_MIN..=AMOUNT_MAX).contains(&a) => Ok(a),
        _ => Err(rule(
            ResultCode::InvalidAmount,
            format!("{field} must be an integer in {AMOUNT_MIN}..={AMOUNT_MAX}, got {n}"),
        )),
    }
}

/// An account or transfer id.
pub fn id(s: &str, field: &str) -> Result<(), ApiError> {
    if is_valid_id(s) {
        Ok(())
    } else {
        Err(rule(ResultCode::InvalidId, format!("{field} must be 1–128 characters of [A-Za-z0-9._:-]")))
    }
}

/// A currency code: 3–12 uppercase ASCII letters.
pub fn currency(s: &str, field: &str) -> Result<(), ApiError> {
    if is_valid_currency(s) {
        Ok(())
    } else {
        Err(rule(ResultCode::InvalidCurrency, format!("{field} must be 3–12 uppercase ASCII letters")))
    }
}

/// `CreateAccountRequest` → `NewAccount`.
pub fn new_account(r: &CreateAccountRequest) -> Result<NewAccount, ApiError> {
    id(&r.id, "id")?;
    currency(&r.currency, "currency")?;
    let metadata = metadata(r.metadata.as_ref(), "metadata")?;
    if r.credits_must_not_exceed_debits && !r.allow_overdraft {
        return Err(rule(
            ResultCode::FlagsAreMutuallyExclusive,
            "credits_must_not_exceed_debits needs allow_overdraft: true (an account may not be limited on both sides)"
                .to_owned(),
        ));
    }
    Ok(NewAccount {
        id: r.id.clone(),
        currency: r.currency.clone(),
        allow_overdraft: r.allow_overdraft,
        credits_must_not_exceed_debits: r.credits_must_not_exceed_debits,
        metadata,
    })
}

/// `CreateTransferRequest` → `NewTransfer`; `item` is the transfer's position in a batch, which
/// error details name (`transfers[3].amount`). The field names are only built for an error: a
/// batch of valid transfers formats nothing (issue 14).
pub fn new_transfer(r: &CreateTransferRequest, item: Option<usize>) -> Result<NewTransfer, ApiError> {
    let name = |field: &str| match item {
        None => field.to_owned(),
        Some(i) => format!("transfers[{i}].{field}"),
    };
    for (value, field) in
        [(&r.id, "id"), (&r.debit_account_id, "debit_account_id"), (&r.credit_account_id, "credit_account_id")]
    {
        if !is_valid_id(value) {
            id(value, &name(field))?;
        }
    }
    if !is_valid_currency(&r.currency) {
        currency(&r.currency, &name("currency"))?;
    }
    let amount = amount(&r.amount, "").or_else(|_| amount(&r.amount, &name("amount")))?;
    match (r.pending, r.timeout_ms) {
        (_, None) => {}
        (true, Some(t)) if (1..=TIMEOUT_MS_MAX).contains(&t) => {}
        _ => {
            return Err(rule(
                ResultCode::InvalidTimeout,
                format!("{} must be in 1..={TIMEOUT_MS_MAX} and only on a pending transfer", name("timeout_ms")),
            ));
        }
    }
    let flags = TransferFlags {
        balancing_debit: r.balancing_debit,
        balancing_credit: r.balancing_credit,
        closing_debit: r.closing_debit,
        closing_credit: r.closing_credit,
    };
    if flags.closing() && !r.pending {
        return Err(rule(
            ResultCode::ClosingTransferMustBePending,
            format!(
                "{} and {} need pending: true (a void reopens the account)",
                name("closing_debit"),
                name("closing_credit")
            ),
        ));
    }
    let metadata = metadata(r.metadata.as_ref(), "").or_else(|_| metadata(r.metadata.as_ref(), &name("metadata")))?;
    Ok(NewTransfer {
        flags,
        id: r.id.clone(),
        debit_account_id: r.debit_account_id.clone(),
        credit_account_id: r.credit_account_id.clone(),
        amount,
        currency: r.currency.clone(),
        metadata,
        pending: r.pending,
        timeout_ms: r.timeout_ms,
    })
}

/// A topic name: 1..=`TOPIC_NAME_BYTES_MAX` bytes of `[A-Za-z0-9._-]`.
pub fn topic_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=TOPIC_NAME_BYTES_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            ErrorCode::InvalidTopicName,
            format!("a topic name is 1–{TOPIC_NAME_BYTES_MAX} characters of [A-Za-z0-9._-]"),
        ))
    }
}

/// A partition count: `1..=TOPIC_PARTITIONS_MAX`.
pub fn partitions(p: u32) -> Result<(), ApiError> {
    if (1..=TOPIC_PARTITIONS_MAX).contains(&p) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            ErrorCode::InvalidPartitions,
            format!("partitions must be in 1..={TOPIC_PARTITIONS_MAX}, got {p}"),
        ))
    }
}

/// A record to produce → `NewRecord`, checking the record limits.
pub fn record(r: ProduceRecord, i: usize) -> Result<NewRecord, ApiError> {
    let too_large =
        |what: String| ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::RecordTooLarge, what);
    let key_len = r.key.as_ref().map_or(0, String::len);
    if key_len > RECORD_KEY_BYTES_MAX {
        return Err(too_large(format!("records[{i}].key is {key_len} bytes; the limit is {RECORD_KEY_BYTES_MAX}")));
    }
    if let Some(k) = &r.key {
        plain_text(k, &format!("records[{i}].key"))?;
    }
    let headers: Vec<(String, String)> = r.headers.unwrap_or_default().into_iter().collect();
    for (k, v) in &headers {
        plain_text(k, &format!("records[{i}].headers (a name)"))?;
        plain_text(v, &format!("records[{i}].headers[{k:?}]"))?;
    }
    if headers.len() > RECORD_HEADERS_MAX {
        return Err(too_large(format!(
            "records[{i}] has {} headers; the limit is {RECORD_HEADERS_MAX}",
            headers.len()
        )));
    }
    let value = serde_json::to_string(&r.value).map_err(|e| ApiError::internal(e.to_string()))?;
    json_text(&value, &format!("records[{i}].value"))?;
    let value = value.into_bytes();
    let size = key_len + value.len() + headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if size > RECORD_BYTES_MAX {
        return Err(too_large(format!("records[{i}] is {size} bytes; the limit is {RECORD_BYTES_MAX}")));
    }
    Ok(NewRecord { key: r.key, value, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_recursively_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, {"z": 1, "a": "x\"y"}], "a": null, "c": 1.5 }"#).expect("valid json");
        let mut s = String::new();
        canonical_json(&v, &mut s);
        assert_eq!(s, r#"{"a":null,"b":[1,{"a":"x\"y","z":1}],"c":1.5}"#);
    }

    #[test]
    fn metadata_must_be_an_object_within_the_limit() {
        assert_eq!(metadata(None, "m").ok().as_deref(), Some("{}"));
        assert!(metadata(Some(&Value::from(3)), "m").is_err());
        let big = serde_json::json!({ "k": "x".repeat(METADATA_BYTES_MAX) });
        let e = metadata(Some(&big), "m").err().map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::MetadataTooLarge));
    }

    #[test]
    fn strings_with_nul_or_controls_are_invalid_text_400() {
        let nul = serde_json::json!({ "a": "x\u{0}y" });
        let e = metadata(Some(&nul), "metadata").err().map(|e| (e.status, e.code));
        assert_eq!(e, Some((axum::http::StatusCode::BAD_REQUEST, ErrorCode::InvalidText)));
        let esc = serde_json::json!({ "\u{1b}[2J": "x" });
        assert!(metadata(Some(&esc), "metadata").is_err());
        assert!(metadata(Some(&serde_json::json!({ "a": "line\nnext\ttab" })), "metadata").is_ok());
        assert!(plain_text("k\u{1b}", "key").is_err());
        assert!(plain_text("k", "key").is_ok());
    }

    #[test]
    fn amounts_outside_the_range_are_invalid() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).expect("number");
        assert_eq!(amount(&n("1"), "a").ok(), Some(1));
        assert_eq!(amount(&n("9223372036854775807"), "a").ok(), Some(AMOUNT_MAX));
        for bad in ["0", "-1", "1.5", "9223372036854775808", "18446744073709551616", "1e3"] {
            assert!(amount(&n(bad), "a").is_err(), "{bad}");
        }
    }
}
