//! Every limit the gateway enforces, as named constants.
//!
//! Ledger rule limits (id length, metadata size, amount range, batch size,
//! history page size, pending timeout) are re-exported from
//! [`ledger_core::limits`] so the gateway and the state machine can never
//! disagree. The gateway checks them before anything reaches the log
//! (defence in depth: the core checks them again). Relations between the
//! numbers are checked at compile time at the bottom of this module.

use std::time::Duration;

pub use ledger_core::limits::{
    ACCOUNT_PAGE_MAX, ACCOUNT_SCAN_MAX, AMOUNT_MAX, AMOUNT_MIN, BATCH_TRANSFERS_MAX, CURRENCY_LEN_MAX,
    CURRENCY_LEN_MIN, HISTORY_PAGE_MAX, ID_BYTES_MAX, ID_BYTES_MIN, METADATA_BYTES_MAX, TIMEOUT_MS_MAX,
    TRANSFER_PAGE_MAX, TRANSFER_SCAN_MAX,
};

/// Default maximum size of a request body (1 MiB); larger bodies are
/// answered `413 body_too_large` before they are parsed.
pub const BODY_BYTES_MAX_DEFAULT: usize = 1024 * 1024;

/// Default number of requests handled at once. Past it the gateway answers
/// `503 overloaded` with `Retry-After` at once: it never queues.
pub const IN_FLIGHT_MAX_DEFAULT: usize = 1024;

/// Default deadline of one backend call (a write, or a read); past it the
/// request is answered `503 timeout` with `Retry-After`.
pub const BACKEND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// Time allowed to receive a whole request body; a slower client gets
/// `408 request_timeout`.
pub const BODY_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Time allowed to receive a request's headers (HTTP/1.1); a slower
/// client is disconnected (bounds slow-header attacks).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum number of open client connections; past it new connections are
/// closed at once (except for the `HEALTH_CONNECTIONS_RESERVED` slots).
pub const CONNECTIONS_MAX: usize = 4096;

/// Time from accept to the first complete request head, HTTP/1 and HTTP/2
/// alike (an HTTP/2 client must send its preface, settings and a HEADERS
/// frame in it). A connection that never sends a byte is closed after it,
/// so idle sockets cannot hold connection slots.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no request in flight for this long is closed (HTTP/1
/// keep-alive and HTTP/2 alike); clients reconnect. Longer than any long
/// poll's gap between requests of a busy client, short enough that idle
/// clients free their slots.
pub const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Interval of HTTP/2 keep-alive PINGs: a peer that vanished without a FIN
/// is found within `HTTP2_KEEPALIVE_INTERVAL + HTTP2_KEEPALIVE_TIMEOUT`.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Longest time allowed for an HTTP/2 PING acknowledgement before the
/// connection is closed (shorter when `--http2-keepalive-ms` is).
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most concurrent HTTP/2 streams (requests) on one connection; the
/// in-flight limit still bounds the total.
pub const HTTP2_STREAMS_PER_CONNECTION_MAX: u32 = 256;

/// Most open connections from one client address: one careless or hostile
/// client cannot take every slot. Behind a proxy every client shares its
/// address: raise it there (`ServeOptions::max_connections_per_client`).
pub const CONNECTIONS_PER_CLIENT_MAX: usize = 512;

/// Connection slots past `CONNECTIONS_MAX` kept for health checks: when
/// every ordinary slot is taken a new connection gets one of these, and it
/// serves only `/healthz` (anything else: 503 `overloaded`), so a load
/// balancer can still see the gateway alive under a connection flood.
pub const HEALTH_CONNECTIONS_RESERVED: usize = 16;

/// `FIRST_REQUEST_TIMEOUT` of a connection in a reserved health-check slot:
/// a health checker sends its request at once, and an idle socket that took
/// the slot gives it back quickly.
pub const HEALTH_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest graceful-shutdown drain: requests still running after it (at
/// most a long poll, bounded by `FETCH_WAIT_MS_MAX`) are cut.
pub const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(40);

/// Seconds sent in `Retry-After` when the gateway is overloaded or the
/// backend timed out (the backend may name a longer wait).
pub const RETRY_AFTER_SECS_DEFAULT: u64 = 1;

/// Default page size of `GET /v1/accounts/{id}/transfers`.
pub const HISTORY_PAGE_DEFAULT: usize = 100;

/// Maximum length of a topic name, in bytes (`[A-Za-z0-9._-]`): lognode's, a wire limit.
pub const TOPIC_NAME_BYTES_MAX: usize = ledger_proto::limits::TOPIC_NAME_BYTES_MAX;

/// Maximum number of partitions of one topic.
pub const TOPIC_PARTITIONS_MAX: u32 = 256;

/// Maximum number of records in one produce request.
pub const RECORDS_PER_PRODUCE_MAX: usize = 1000;

/// Maximum size of one record: key + value (its JSON text) + header names
/// and values, in bytes.
pub const RECORD_BYTES_MAX: usize = 64 * 1024;

/// Maximum size of a record key, in bytes.
pub const RECORD_KEY_BYTES_MAX: usize = 1024;

/// Maximum number of headers of one record.
pub const RECORD_HEADERS_MAX: usize = 64;

/// Default number of records returned by one fetch.
pub const FETCH_RECORDS_DEFAULT: u32 = 100;

/// Maximum number of records returned by one fetch: what one lognode read returns (a wire limit).
pub const FETCH_RECORDS_MAX: u32 = ledger_proto::limits::READ_RECORDS_MAX as u32;

/// Longest long-poll of a fetch (`wait_ms`).
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// Longest group id, in bytes (`[A-Za-z0-9._-]`), and other group limits: group-core's own, so
/// the gateway and the state machine never disagree.
pub use group_core::limits::{GROUP_ID_BYTES_MAX, OFFSETS_PER_COMMIT_MAX, TOPICS_PER_SUBSCRIPTION_MAX};

/// Longest member id the gateway passes on: ids are `{group}-{n}` with `n` a u64.
pub const MEMBER_ID_BYTES_MAX: usize = GROUP_ID_BYTES_MAX + 1 + 20;

/// Default number of records returned by one group fetch.
pub const GROUP_FETCH_RECORDS_DEFAULT: u32 = 100;

/// Maximum number of records returned by one group fetch: what one lognode read returns (a wire
/// limit).
pub const GROUP_FETCH_RECORDS_MAX: u32 = ledger_proto::limits::READ_RECORDS_MAX as u32;

/// Longest long-poll of a group fetch (`wait_ms`): lognode's, a wire limit.
pub const GROUP_FETCH_WAIT_MS_MAX: u64 = ledger_proto::limits::GROUP_FETCH_WAIT_MAX_MS;
/// Most client-side positions (`from=`) one group fetch may carry: lognode's, a wire limit.
pub const GROUP_FETCH_POSITIONS_MAX: usize = ledger_proto::limits::GROUP_FETCH_POSITIONS_MAX;

/// Most groups whose lag `/metrics` reports (the first ones by id).
pub const METRICS_GROUPS_MAX: usize = 100;

/// Most partition lag lines `/metrics` reports, over all groups.
pub const METRICS_GROUP_PARTITIONS_MAX: usize = 10_000;

/// Most time `/metrics` spends asking the cluster for group lag; past it the group lines are
/// left out (`gateway_group_metrics_up 0`).
pub const METRICS_GROUPS_TIMEOUT: Duration = Duration::from_secs(2);

/// `/metrics` requests handled at once (apart from `IN_FLIGHT_MAX_DEFAULT`, so the gateway stays
/// observable under overload). A scrape is cheap: it reads cached state and makes no backend
/// call (`status_cache`).
pub const METRICS_IN_FLIGHT_MAX: usize = 4;

/// Most single transfers (`POST /v1/transfers`) the gateway gathers into one call to the leader
/// (`grpc_backend/gather.rs`; at most the ledger's batch limit).
pub const GATHER_TRANSFERS_MAX: usize = 512;
/// Most bytes of ids, account ids, currency and metadata in one gathered call (far below
/// lognode's per-command limit and the gRPC message limit).
pub const GATHER_BYTES_MAX: usize = 1024 * 1024;
/// Gathered calls out at once; single transfers arriving meanwhile queue for the next one.
pub const GATHER_INFLIGHT_MAX: usize = 2;
/// Single transfers waiting for a gathered call; a request waits for room when it is full (the
/// requests in flight, `IN_FLIGHT_MAX_DEFAULT`, bound it before).
pub const GATHER_QUEUE_MAX: usize = 4096;
const _: () = assert!(GATHER_TRANSFERS_MAX <= ledger_core::limits::BATCH_TRANSFERS_MAX);
const _: () = assert!(GATHER_QUEUE_MAX >= GATHER_TRANSFERS_MAX && GATHER_INFLIGHT_MAX >= 1);

/// Maximum length of the admin bearer token.
pub const ADMIN_TOKEN_BYTES_MAX: usize = 256;

/// How often each gateway reloads the live API keys from the cluster (`crate::auth`): a revoked
/// key is refused by every gateway within about this long (issue 16 asks for 1 s).
pub const KEYS_REFRESH_INTERVAL: Duration = Duration::from_millis(250);
/// Longest bearer secret looked at; a longer one is 401 without being hashed.
pub const SECRET_BYTES_MAX: usize = 256;
/// Scopes of one API key (lognode's `KEY_SCOPES_MAX`).
pub const KEY_SCOPES_MAX: usize = 32;
/// Longest account prefix of an API key (lognode's `KEY_PREFIX_BYTES_MAX`).
pub const KEY_PREFIX_BYTES_MAX: usize = 128;
/// Largest quota number of an API key: requests a second, burst, in flight (lognode's
/// `KEY_QUOTA_MAX`).
pub const KEY_QUOTA_MAX: u32 = 1_000_000;
/// Longest TLS handshake of a client (with `--tls-cert`); then the connection is closed.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accounts in a `GET /v1/accounts` page when `limit` is absent (at most `ACCOUNT_PAGE_MAX`).
pub const ACCOUNTS_PAGE_DEFAULT: u32 = 100;
/// Transfers in a `GET /v1/transfers` page when `limit` is absent (at most `TRANSFER_PAGE_MAX`).
pub const TRANSFERS_PAGE_DEFAULT: u32 = 100;
/// Postings in one transaction (`POST /v1/transactions`) at most: they are applied as one atomic
/// batch, and `GET /v1/transactions/{id}` reads each.
pub const TRANSACTION_POSTINGS_MAX: usize = 100;
/// Length of a transaction id at most: posting `n` is the transfer `<id>:<n>`, which must be a
/// valid transfer id (`ID_BYTES_MAX`).
pub const TRANSACTION_ID_BYTES_MAX: usize = 124;
/// Posting reads one `GET /v1/transactions/{id}` has in flight at once.
pub const TRANSACTION_READS_IN_FLIGHT: usize = 16;
/// Webhook id length at most (`[A-Za-z0-9._-]`; lognode's `WEBHOOK_ID_BYTES_MAX`).
pub const WEBHOOK_ID_BYTES_MAX: usize = 64;
/// Webhook URL length at most (lognode's `WEBHOOK_URL_BYTES_MAX`).
pub const WEBHOOK_URL_BYTES_MAX: usize = 2048;
/// Event types of one webhook at most (lognode's `WEBHOOK_EVENTS_MAX`).
pub const WEBHOOK_EVENTS_MAX: usize = 8;
/// Webhook signing secret length at least.
pub const WEBHOOK_SECRET_BYTES_MIN: usize = 16;
/// Webhook signing secret length at most.
pub const WEBHOOK_SECRET_BYTES_MAX: usize = 128;
/// Deliveries one `POST /v1/webhooks/{id}/deliveries` records at most (lognode's
/// `WEBHOOK_RECORD_BATCH_MAX`).
pub const WEBHOOK_RECORD_BATCH_MAX: usize = 1000;
/// Error text of one delivery record at most, in bytes.
pub const WEBHOOK_ERROR_BYTES_MAX: usize = 256;
/// Audit records in one `GET /v1/audit` page at most (lognode's `AUDIT_READ_MAX`).
pub const AUDIT_PAGE_MAX: u32 = 1000;
/// Audit records in a page when `limit` is absent.
pub const AUDIT_PAGE_DEFAULT: u32 = 100;

// ---- compile-time relation checks -------------------------------------

const _: () = assert!(HISTORY_PAGE_DEFAULT >= 1 && HISTORY_PAGE_DEFAULT <= HISTORY_PAGE_MAX);
const _: () = assert!(ACCOUNTS_PAGE_DEFAULT >= 1 && ACCOUNTS_PAGE_DEFAULT as usize <= ACCOUNT_PAGE_MAX);
const _: () = assert!(TRANSFERS_PAGE_DEFAULT >= 1 && TRANSFERS_PAGE_DEFAULT as usize <= TRANSFER_PAGE_MAX);
const _: () = assert!(AUDIT_PAGE_DEFAULT >= 1 && AUDIT_PAGE_DEFAULT <= AUDIT_PAGE_MAX);
// The last posting of the longest transaction id is a valid transfer id (`:` and up to 3 digits),
// and a transaction is one batch.
const _: () = assert!(TRANSACTION_POSTINGS_MAX <= 1000 && TRANSACTION_ID_BYTES_MAX + 4 <= ID_BYTES_MAX);
const _: () = assert!(TRANSACTION_POSTINGS_MAX >= 1 && TRANSACTION_POSTINGS_MAX <= BATCH_TRANSFERS_MAX);
const _: () = assert!(TRANSACTION_READS_IN_FLIGHT >= 1);
const _: () = assert!(FETCH_RECORDS_DEFAULT >= 1 && FETCH_RECORDS_DEFAULT <= FETCH_RECORDS_MAX);
// One maximal record fits in a default body (a produce request of many
// records is bounded by the body limit as well as by the record count).
const _: () = assert!(RECORD_BYTES_MAX < BODY_BYTES_MAX_DEFAULT);
// One maximal metadata object fits in a default body.
const _: () = assert!(METADATA_BYTES_MAX < BODY_BYTES_MAX_DEFAULT);
const _: () = assert!(RECORD_KEY_BYTES_MAX <= RECORD_BYTES_MAX);
const _: () = assert!(TOPIC_PARTITIONS_MAX >= 1);
const _: () = assert!(IN_FLIGHT_MAX_DEFAULT >= 1);
const _: () = assert!(CONNECTIONS_MAX >= IN_FLIGHT_MAX_DEFAULT);
const _: () = assert!(CONNECTIONS_PER_CLIENT_MAX >= 1 && CONNECTIONS_PER_CLIENT_MAX <= CONNECTIONS_MAX);
const _: () = assert!(HEALTH_CONNECTIONS_RESERVED >= 1 && HEALTH_CONNECTIONS_RESERVED < CONNECTIONS_MAX);
// A connection gets its first request head in before it could count as idle.
const _: () = assert!(FIRST_REQUEST_TIMEOUT.as_millis() <= CONNECTION_IDLE_TIMEOUT.as_millis());
const _: () = assert!(HEADER_READ_TIMEOUT.as_millis() <= FIRST_REQUEST_TIMEOUT.as_millis());
const _: () = assert!(HEALTH_FIRST_REQUEST_TIMEOUT.as_millis() < FIRST_REQUEST_TIMEOUT.as_millis());
// The drain outlasts the longest long poll plus a default backend call.
const _: () = assert!(SHUTDOWN_DRAIN_MAX.as_millis() > FETCH_WAIT_MS_MAX as u128 + BACKEND_TIMEOUT_DEFAULT.as_millis());
const _: () = assert!(RETRY_AFTER_SECS_DEFAULT >= 1);
const _: () = assert!(GROUP_FETCH_RECORDS_DEFAULT >= 1 && GROUP_FETCH_RECORDS_DEFAULT <= GROUP_FETCH_RECORDS_MAX);
const _: () = assert!(GROUP_FETCH_WAIT_MS_MAX <= FETCH_WAIT_MS_MAX);
const _: () = assert!(GROUP_FETCH_POSITIONS_MAX >= 1);
// The gateway never asks lognode for more than its wire limits allow.
const _: () = assert!(RECORD_BYTES_MAX <= ledger_proto::limits::RECORD_BYTES_MAX);
const _: () = assert!(RECORDS_PER_PRODUCE_MAX <= ledger_proto::limits::PRODUCE_RECORDS_MAX);
const _: () = assert!(BODY_BYTES_MAX_DEFAULT <= ledger_proto::limits::PRODUCE_BYTES_MAX);
const _: () = assert!(TOPIC_PARTITIONS_MAX <= ledger_proto::limits::TOPIC_PARTITIONS_MAX);
const _: () = assert!(FETCH_RECORDS_MAX as usize == ledger_proto::limits::READ_RECORDS_MAX);
// A maximal commit (every offset with a maximal topic name) fits in a default body.
const _: () = assert!(OFFSETS_PER_COMMIT_MAX * (TOPIC_NAME_BYTES_MAX + 64) < BODY_BYTES_MAX_DEFAULT * 2);
