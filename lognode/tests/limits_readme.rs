//! The README's limits table is true: every constant of `src/limits.rs` has a row in
//! lognode/README.md ("## Limits") whose value is the constant's, and every row names a constant.

use std::collections::BTreeMap;
use std::time::Duration;

use lognode::limits::*;

fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    match n {
        n if n >= KIB * KIB * KIB && n.is_multiple_of(KIB * KIB * KIB) => format!("{} GiB", n / (KIB * KIB * KIB)),
        n if n >= KIB * KIB && n.is_multiple_of(KIB * KIB) => format!("{} MiB", n / (KIB * KIB)),
        n if n >= KIB && n.is_multiple_of(KIB) => format!("{} KiB", n / KIB),
        n => format!("{n} B"),
    }
}

fn dur(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

/// Every constant of `lognode::limits`, rendered as the README writes it.
fn constants() -> Vec<(&'static str, String)> {
    macro_rules! rows {
        ($($name:ident => $render:expr),* $(,)?) => { vec![$((stringify!($name), $render)),*] };
    }
    let n = |v: usize| v.to_string();
    rows![
        CLIENT_MESSAGE_MAX => bytes(CLIENT_MESSAGE_MAX),
        RECORD_BYTES_MAX => bytes(RECORD_BYTES_MAX),
        PEER_STATUS_CHANNELS_MAX => n(PEER_STATUS_CHANNELS_MAX),
        SERVER_CONNECTIONS_MAX => n(SERVER_CONNECTIONS_MAX),
        SERVER_CALL_TIMEOUT => dur(SERVER_CALL_TIMEOUT),
        SERVER_KEEPALIVE_INTERVAL => dur(SERVER_KEEPALIVE_INTERVAL),
        SERVER_KEEPALIVE_TIMEOUT => dur(SERVER_KEEPALIVE_TIMEOUT),
        TLS_HANDSHAKE_TIMEOUT => dur(TLS_HANDSHAKE_TIMEOUT),
        CONSUME_STREAMS_PER_CALLER_MAX => n(CONSUME_STREAMS_PER_CALLER_MAX),
        SNAPSHOT_INSTALLS_MAX => n(SNAPSHOT_INSTALLS_MAX),
        ENTRY_OVERHEAD_MAX => bytes(ENTRY_OVERHEAD_MAX),
        PROPOSAL_BYTES_MAX => bytes(PROPOSAL_BYTES_MAX),
        COMMAND_BYTES_MAX => bytes(COMMAND_BYTES_MAX),
        BATCH_RECORDS_MAX => n(BATCH_RECORDS_MAX),
        BATCH_BYTES_MAX => bytes(BATCH_BYTES_MAX),
        TOPIC_NAME_MAX => n(TOPIC_NAME_MAX),
        TOPICS_MAX => n(TOPICS_MAX),
        KEYS_MAX => n(KEYS_MAX),
        KEY_SCOPES_MAX => n(KEY_SCOPES_MAX),
        KEY_SCOPE_BYTES_MAX => n(KEY_SCOPE_BYTES_MAX),
        KEY_ID_BYTES_MAX => n(KEY_ID_BYTES_MAX),
        KEY_PREFIX_BYTES_MAX => n(KEY_PREFIX_BYTES_MAX),
        KEY_QUOTA_MAX => KEY_QUOTA_MAX.to_string(),
        AUDIT_RECORDS_MAX => n(AUDIT_RECORDS_MAX),
        WEBHOOKS_MAX => n(WEBHOOKS_MAX),
        WEBHOOK_ID_BYTES_MAX => bytes(WEBHOOK_ID_BYTES_MAX),
        WEBHOOK_URL_BYTES_MAX => bytes(WEBHOOK_URL_BYTES_MAX),
        WEBHOOK_EVENTS_MAX => n(WEBHOOK_EVENTS_MAX),
        WEBHOOK_SECRET_BYTES_MIN => bytes(WEBHOOK_SECRET_BYTES_MIN),
        WEBHOOK_SECRET_BYTES_MAX => bytes(WEBHOOK_SECRET_BYTES_MAX),
        WEBHOOK_DELIVERED_KEPT => n(WEBHOOK_DELIVERED_KEPT),
        WEBHOOK_DEAD_KEPT => n(WEBHOOK_DEAD_KEPT),
        WEBHOOK_RECORD_BATCH_MAX => n(WEBHOOK_RECORD_BATCH_MAX),
        WEBHOOK_ERROR_BYTES_MAX => bytes(WEBHOOK_ERROR_BYTES_MAX),
        AUDIT_READ_MAX => AUDIT_READ_MAX.to_string(),
        ADMIN_KEY_MIN_CHARS => n(ADMIN_KEY_MIN_CHARS),
        ADMIN_KEY_RETRY_PAUSE => dur(ADMIN_KEY_RETRY_PAUSE),
        PARTITIONS_MAX => PARTITIONS_MAX.to_string(),
        WRITE_TIMEOUT => dur(WRITE_TIMEOUT),
        MIN_INDEX_WAIT_DEFAULT => dur(MIN_INDEX_WAIT_DEFAULT),
        MIN_INDEX_WAIT_MAX => dur(MIN_INDEX_WAIT_MAX),
        CONSUME_RECORDS_DEFAULT => n(CONSUME_RECORDS_DEFAULT),
        STREAM_BUFFER => n(STREAM_BUFFER),
        STATUS_PEER_TIMEOUT => dur(STATUS_PEER_TIMEOUT),
        HISTORY_PAGE_MAX => n(HISTORY_PAGE_MAX),
        CONCURRENCY_PER_CONNECTION => n(CONCURRENCY_PER_CONNECTION),
        READ_RECORDS_MAX => n(READ_RECORDS_MAX),
        READ_BYTES_MAX => bytes(READ_BYTES_MAX),
        READ_UNWRITTEN_RETRIES => READ_UNWRITTEN_RETRIES.to_string(),
        READ_UNWRITTEN_PAUSE => dur(READ_UNWRITTEN_PAUSE),
        GATHER_QUEUE_MAX => n(GATHER_QUEUE_MAX),
        GATHER_REQUESTS_MAX => n(GATHER_REQUESTS_MAX),
        GATHER_BYTES_MAX => bytes(GATHER_BYTES_MAX),
        GATHER_INFLIGHT_MAX => n(GATHER_INFLIGHT_MAX),
        FETCH_RECORDS_DEFAULT => n(FETCH_RECORDS_DEFAULT),
        FETCH_RECORDS_MAX => n(FETCH_RECORDS_MAX),
        FETCH_BYTES_MAX => bytes(FETCH_BYTES_MAX),
        FETCH_WAIT_MAX => dur(FETCH_WAIT_MAX),
        FETCH_POSITIONS_MAX => n(FETCH_POSITIONS_MAX),
        LEAD_CONFIRM_TIMEOUT => dur(LEAD_CONFIRM_TIMEOUT),
        EXPIRY_TICK => dur(EXPIRY_TICK),
        EXPIRY_ENTRIES_PER_TICK => n(EXPIRY_ENTRIES_PER_TICK),
        EXPIRY_WRITE_TIMEOUT => dur(EXPIRY_WRITE_TIMEOUT),
        HEARTBEAT_MS => dur(Duration::from_millis(HEARTBEAT_MS)),
        APPEND_TIMEOUT_MS => dur(Duration::from_millis(APPEND_TIMEOUT_MS)),
        HEDGE_LANES => n(HEDGE_LANES),
        HEDGE_DELAY_MIN => dur(HEDGE_DELAY_MIN),
        HEDGE_BYTES_PER_MS => n(HEDGE_BYTES_PER_MS),
        HEDGE_DELAY_MAX => dur(HEDGE_DELAY_MAX),
        HEDGE_EAGER_CALLS => HEDGE_EAGER_CALLS.to_string(),
        PEER_PING_INTERVAL => dur(PEER_PING_INTERVAL),
        PEER_PING_TIMEOUT => dur(PEER_PING_TIMEOUT),
        PEER_RTO_MIN => dur(PEER_RTO_MIN),
        ELECTION_TIMEOUT_MS => format!("{}–{} ms", ELECTION_TIMEOUT_MS.0, ELECTION_TIMEOUT_MS.1),
        ELECTION_SILENCE => dur(ELECTION_SILENCE),
        STARTUP_ELECTION_SILENCE => dur(STARTUP_ELECTION_SILENCE),
        ELECTION_JITTER => dur(ELECTION_JITTER),
        ELECTION_RETRY => dur(ELECTION_RETRY),
        ELECTION_TICK => dur(ELECTION_TICK),
        PREVOTE_TIMEOUT => dur(PREVOTE_TIMEOUT),
        QUORUM_ACK_MAX => dur(QUORUM_ACK_MAX),
        RAFT_MESSAGE_MAX => bytes(RAFT_MESSAGE_MAX),
        REPLICATION_BATCH_BYTES_MAX => bytes(REPLICATION_BATCH_BYTES_MAX),
        READ_CHUNK_BYTES => bytes(READ_CHUNK_BYTES),
        SNAPSHOT_CHUNK_BYTES => bytes(SNAPSHOT_CHUNK_BYTES),
        SNAPSHOT_BYTES_MAX => bytes(usize::try_from(SNAPSHOT_BYTES_MAX).expect("64-bit")),
        SNAPSHOT_CHUNKS_IN_FLIGHT => n(SNAPSHOT_CHUNKS_IN_FLIGHT),
        SNAPSHOT_CHECK_INTERVAL => dur(SNAPSHOT_CHECK_INTERVAL),
        EVENT_MARKS_MAX => n(EVENT_MARKS_MAX),
        STATE_COMMIT_INTERVAL => dur(STATE_COMMIT_INTERVAL),
        STATE_COMMIT_WRITES_MAX => n(STATE_COMMIT_WRITES_MAX),
        STATE_LOAD_WRITES_MAX => n(STATE_LOAD_WRITES_MAX),
        SNAPSHOT_RECORD_BYTES_MAX => bytes(SNAPSHOT_RECORD_BYTES_MAX),
        SNAPSHOT_HEAD_BYTES_MAX => bytes(usize::try_from(SNAPSHOT_HEAD_BYTES_MAX).expect("64-bit")),
        STATE_ACCOUNT_CACHE_MAX => n(STATE_ACCOUNT_CACHE_MAX),
        PURGE_WAIT_MAX => dur(PURGE_WAIT_MAX),
        CONNECT_TIMEOUT => dur(CONNECT_TIMEOUT),
        RPC_TIMEOUT => dur(RPC_TIMEOUT),
        SNAPSHOT_TIMEOUT => dur(SNAPSHOT_TIMEOUT),
        SNAPSHOT_RATE_MIN => format!("{}/s", bytes(usize::try_from(SNAPSHOT_RATE_MIN).expect("fits"))),
        SNAPSHOT_CHUNK_WAIT_MAX => dur(SNAPSHOT_CHUNK_WAIT_MAX),
        MEMBERSHIP_TICK => dur(MEMBERSHIP_TICK),
        PROMOTE_LAG_MAX => PROMOTE_LAG_MAX.to_string(),
        MEMBERSHIP_CALL_TIMEOUT => dur(MEMBERSHIP_CALL_TIMEOUT),
        SEGMENT_BYTES => bytes(usize::try_from(SEGMENT_BYTES).expect("fits")),
        EVENTS_RECORD_BYTES_MAX => bytes(EVENTS_RECORD_BYTES_MAX),
        EVENTS_APPEND_RECORDS_MAX => n(EVENTS_APPEND_RECORDS_MAX),
        EVENTS_APPEND_BYTES_MAX => bytes(EVENTS_APPEND_BYTES_MAX),
        STARTUP_APPLY_TIMEOUT => dur(STARTUP_APPLY_TIMEOUT),
        SHUTDOWN_GRACE => dur(SHUTDOWN_GRACE),
    ]
}

/// `| `NAME` | value | why |` rows of the README's "## Limits" section.
fn readme_rows(readme: &str) -> BTreeMap<String, String> {
    let section = readme.split("\n## Limits").nth(1).expect("lognode/README.md has a \"## Limits\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        assert!(rows.insert(name.clone(), cells[2].to_owned()).is_none(), "README: {name} has two rows");
    }
    rows
}

#[test]
fn readme_limits_table_matches_the_constants() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).expect("read lognode/README.md");
    let source = std::fs::read_to_string(format!("{dir}/src/limits.rs")).expect("read src/limits.rs");
    let rows = readme_rows(&readme);
    let constants = constants();
    let mut problems = Vec::new();
    for (name, value) in &constants {
        match rows.get(*name) {
            None => problems.push(format!("{name}: no row in the README's limits table (value {value})")),
            Some(v) if v != value => problems.push(format!("{name}: README says {v:?}, the constant is {value:?}")),
            Some(_) => {}
        }
    }
    for name in rows.keys() {
        if !constants.iter().any(|(n, _)| n == name) {
            problems.push(format!("{name}: a README row that names no constant of src/limits.rs"));
        }
    }
    // A constant added to src/limits.rs must be added here (and so to the README) too.
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("pub const ") {
            let name = rest.split(':').next().unwrap_or_default();
            if !constants.iter().any(|(n, _)| *n == name) {
                problems.push(format!("{name}: in src/limits.rs but not checked by this test"));
            }
        }
    }
    assert!(problems.is_empty(), "lognode/README.md's limits table is out of date:\n{}", problems.join("\n"));
}

#[test]
fn rendering_of_sizes_and_durations() {
    assert_eq!(
        (bytes(16 * 1024 * 1024), bytes(1 << 30), bytes(64 * 1024), bytes(5)),
        ("16 MiB".to_owned(), "1 GiB".to_owned(), "64 KiB".to_owned(), "5 B".to_owned())
    );
    assert_eq!(
        (dur(Duration::from_millis(500)), dur(Duration::from_secs(30))),
        ("500 ms".to_owned(), "30 s".to_owned())
    );
}
