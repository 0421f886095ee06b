//! The README's limits table is true: every public constant of `src/limits.rs` is named below
//! with the row of gateway/README.md ("## Limits") that states it, and that row holds the
//! constant's value as the README writes it. A constant added to `src/limits.rs` without a row
//! here (or in `NOT_IN_TABLE` with a reason) fails the completeness test.

use std::time::Duration;

use gateway::limits::*;

const README: &str = include_str!("../../README.md");
const LIMITS_RS: &str = include_str!("../../src/limits.rs");

/// Constants that are not user-facing limits, with the reason they have no row.
const NOT_IN_TABLE: &[(&str, &str)] = &[];

fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    match n {
        n if n >= KIB * KIB && n.is_multiple_of(KIB * KIB) => format!("{} MiB", n / (KIB * KIB)),
        n if n >= KIB && n.is_multiple_of(KIB) => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

fn dur(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

/// A number as the README writes it: groups of three digits separated by a space past 9 999.
fn num(n: u64) -> String {
    let digits = n.to_string();
    if n < 10_000 {
        return digits;
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// (constant, the start of its README row's first cell, the value as written in that row).
fn rows() -> Vec<(&'static str, &'static str, String)> {
    let n = |v: usize| num(v as u64);
    vec![
        ("BODY_BYTES_MAX_DEFAULT", "body size", bytes(BODY_BYTES_MAX_DEFAULT)),
        ("BODY_READ_TIMEOUT_DEFAULT", "body read time", dur(BODY_READ_TIMEOUT_DEFAULT)),
        ("HEADER_READ_TIMEOUT", "header read time", dur(HEADER_READ_TIMEOUT)),
        ("FIRST_REQUEST_TIMEOUT", "accept → first complete request head", dur(FIRST_REQUEST_TIMEOUT)),
        (
            "HEALTH_FIRST_REQUEST_TIMEOUT",
            "accept → first complete request head",
            format!("{} in a health slot", dur(HEALTH_FIRST_REQUEST_TIMEOUT)),
        ),
        ("CONNECTION_IDLE_TIMEOUT", "idle connection", dur(CONNECTION_IDLE_TIMEOUT)),
        ("HTTP2_KEEPALIVE_INTERVAL", "idle connection", format!("PING every {}", dur(HTTP2_KEEPALIVE_INTERVAL))),
        ("HTTP2_KEEPALIVE_TIMEOUT", "idle connection", format!("{} to answer", dur(HTTP2_KEEPALIVE_TIMEOUT))),
        (
            "HTTP2_STREAMS_PER_CONNECTION_MAX",
            "HTTP/2 streams per connection",
            n(HTTP2_STREAMS_PER_CONNECTION_MAX as usize),
        ),
        ("CONNECTIONS_MAX", "open connections |", n(CONNECTIONS_MAX)),
        ("HEALTH_CONNECTIONS_RESERVED", "open connections |", format!("+{} slots", HEALTH_CONNECTIONS_RESERVED)),
        ("CONNECTIONS_PER_CLIENT_MAX", "open connections per client address", n(CONNECTIONS_PER_CLIENT_MAX)),
        ("METRICS_IN_FLIGHT_MAX", "`/metrics` in flight", n(METRICS_IN_FLIGHT_MAX)),
        ("GATHER_TRANSFERS_MAX", "gathered into one call", format!("≤ {} transfers", GATHER_TRANSFERS_MAX)),
        ("GATHER_BYTES_MAX", "gathered into one call", format!("≤ {} of ids", bytes(GATHER_BYTES_MAX))),
        ("GATHER_INFLIGHT_MAX", "gathered into one call", format!("{} calls out", GATHER_INFLIGHT_MAX)),
        ("GATHER_QUEUE_MAX", "gathered into one call", format!("{} queued", GATHER_QUEUE_MAX)),
        ("SHUTDOWN_DRAIN_MAX", "graceful-shutdown drain", dur(SHUTDOWN_DRAIN_MAX)),
        ("IN_FLIGHT_MAX_DEFAULT", "requests in flight", n(IN_FLIGHT_MAX_DEFAULT)),
        ("RETRY_AFTER_SECS_DEFAULT", "`Retry-After` of a 503", format!("{} s", RETRY_AFTER_SECS_DEFAULT)),
        ("BACKEND_TIMEOUT_DEFAULT", "backend call", dur(BACKEND_TIMEOUT_DEFAULT)),
        ("HISTORY_PAGE_DEFAULT", "history page", format!("(default {})", HISTORY_PAGE_DEFAULT)),
        ("TOPIC_NAME_BYTES_MAX", "topic name / partitions", format!("1–{} of", TOPIC_NAME_BYTES_MAX)),
        ("TOPIC_PARTITIONS_MAX", "topic name / partitions", format!("1..={}", TOPIC_PARTITIONS_MAX)),
        ("RECORDS_PER_PRODUCE_MAX", "records per produce", format!("1..={}", RECORDS_PER_PRODUCE_MAX)),
        ("RECORD_BYTES_MAX", "record |", format!("≤ {}", bytes(RECORD_BYTES_MAX))),
        ("RECORD_KEY_BYTES_MAX", "record |", format!("key ≤ {}", bytes(RECORD_KEY_BYTES_MAX))),
        ("RECORD_HEADERS_MAX", "record |", format!("≤ {} headers", RECORD_HEADERS_MAX)),
        ("FETCH_RECORDS_DEFAULT", "fetch |", format!("(default {})", FETCH_RECORDS_DEFAULT)),
        ("FETCH_RECORDS_MAX", "fetch |", format!("limit 1..={}", FETCH_RECORDS_MAX)),
        ("FETCH_WAIT_MS_MAX", "fetch |", format!("`wait_ms` ≤ {}", num(FETCH_WAIT_MS_MAX))),
        ("GROUP_FETCH_RECORDS_DEFAULT", "group fetch |", format!("(default {})", GROUP_FETCH_RECORDS_DEFAULT)),
        ("GROUP_FETCH_RECORDS_MAX", "group fetch |", format!("`max_records` 1..={}", GROUP_FETCH_RECORDS_MAX)),
        ("GROUP_FETCH_WAIT_MS_MAX", "group fetch |", format!("`wait_ms` ≤ {}", num(GROUP_FETCH_WAIT_MS_MAX))),
        ("GROUP_FETCH_POSITIONS_MAX", "group fetch positions", format!("≤ {}", GROUP_FETCH_POSITIONS_MAX)),
        ("MEMBER_ID_BYTES_MAX", "group id / member id", format!("≤ {}", MEMBER_ID_BYTES_MAX)),
        ("METRICS_GROUPS_MAX", "`/metrics` group lines", format!("≤ {} groups", METRICS_GROUPS_MAX)),
        (
            "METRICS_GROUP_PARTITIONS_MAX",
            "`/metrics` group lines",
            format!("≤ {} lag lines", num(METRICS_GROUP_PARTITIONS_MAX as u64)),
        ),
        ("METRICS_GROUPS_TIMEOUT", "`/metrics` group lines", dur(METRICS_GROUPS_TIMEOUT)),
        ("ADMIN_TOKEN_BYTES_MAX", "admin token", format!("1–{} bytes", ADMIN_TOKEN_BYTES_MAX)),
        ("KEYS_REFRESH_INTERVAL", "API keys", format!("reloaded every {}", dur(KEYS_REFRESH_INTERVAL))),
        ("SECRET_BYTES_MAX", "API keys", format!("secret ≤ {} bytes", SECRET_BYTES_MAX)),
        ("KEY_SCOPES_MAX", "API keys", format!("1..={} scopes", KEY_SCOPES_MAX)),
        ("KEY_PREFIX_BYTES_MAX", "API keys", format!("account prefix ≤ {}", KEY_PREFIX_BYTES_MAX)),
        ("KEY_QUOTA_MAX", "API keys", format!("quotas ≤ {}", num(u64::from(KEY_QUOTA_MAX)))),
        ("TLS_HANDSHAKE_TIMEOUT", "TLS handshake", dur(TLS_HANDSHAKE_TIMEOUT)),
        ("ACCOUNTS_PAGE_DEFAULT", "account list page", format!("(default {})", ACCOUNTS_PAGE_DEFAULT)),
        ("TRANSFERS_PAGE_DEFAULT", "transfer list page", format!("(default {})", TRANSFERS_PAGE_DEFAULT)),
        ("AUDIT_PAGE_MAX", "audit page", format!("1..={}", AUDIT_PAGE_MAX)),
        ("TRANSACTION_POSTINGS_MAX", "transaction", format!("1..={} postings", TRANSACTION_POSTINGS_MAX)),
        ("TRANSACTION_ID_BYTES_MAX", "transaction", format!("id 1–{} characters", TRANSACTION_ID_BYTES_MAX)),
        (
            "TRANSACTION_READS_IN_FLIGHT",
            "transaction",
            format!("{} posting reads in flight", TRANSACTION_READS_IN_FLIGHT),
        ),
        ("AUDIT_PAGE_DEFAULT", "audit page", format!("(default {})", AUDIT_PAGE_DEFAULT)),
        ("WEBHOOK_ID_BYTES_MAX", "webhook", format!("id 1–{} of", WEBHOOK_ID_BYTES_MAX)),
        ("WEBHOOK_URL_BYTES_MAX", "webhook", format!("URL ≤ {} characters", WEBHOOK_URL_BYTES_MAX)),
        ("WEBHOOK_EVENTS_MAX", "webhook", format!("1..={} event types", WEBHOOK_EVENTS_MAX)),
        ("WEBHOOK_SECRET_BYTES_MIN", "webhook", format!("secret {}–", WEBHOOK_SECRET_BYTES_MIN)),
        ("WEBHOOK_SECRET_BYTES_MAX", "webhook", format!("–{} visible", WEBHOOK_SECRET_BYTES_MAX)),
        ("WEBHOOK_RECORD_BATCH_MAX", "webhook delivery report", format!("1..={} deliveries", WEBHOOK_RECORD_BATCH_MAX)),
        ("WEBHOOK_ERROR_BYTES_MAX", "webhook delivery report", format!("error ≤ {} bytes", WEBHOOK_ERROR_BYTES_MAX)),
    ]
}

/// The rows of the README's "## Limits" table, as whole lines.
fn table() -> Vec<&'static str> {
    let start = README.find("## Limits").expect("gateway/README.md has a \"## Limits\" section");
    README[start..].lines().skip(1).skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).collect()
}

#[test]
fn every_limit_row_states_its_constants_value() {
    let table = table();
    let mut wrong = Vec::new();
    for (name, row_start, value) in rows() {
        // `row_start` may end in " |" to match the first cell exactly.
        let found = table.iter().find(|l| l.trim_start_matches("| ").starts_with(row_start));
        match found {
            None => wrong.push(format!("{name}: no row starting with {row_start:?}")),
            Some(line) if !line.contains(&value) => wrong.push(format!("{name}: row {line:?} does not say {value:?}")),
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "gateway/README.md's limits table disagrees with src/limits.rs:\n{}", wrong.join("\n"));
}

#[test]
fn every_public_constant_has_a_row() {
    let listed: Vec<&str> = rows().iter().map(|r| r.0).chain(NOT_IN_TABLE.iter().map(|r| r.0)).collect();
    let missing: Vec<&str> = LIMITS_RS
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub const "))
        .filter_map(|rest| rest.split(':').next())
        .filter(|name| !listed.contains(name))
        .collect();
    assert!(missing.is_empty(), "constants of src/limits.rs with no README row checked here: {missing:?}");
}
