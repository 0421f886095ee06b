//! Every limit of the load generator, as named constants, with compile-time relation checks.

use std::time::Duration;

/// Most concurrent workers (`--concurrency`, or `--connections` in open loop); each holds one
/// keep-alive HTTP/1.1 connection.
pub const CONCURRENCY_MAX: usize = 4096;

/// Highest request rate of an open-loop run (`--rate`), per second.
pub const RATE_PER_S_MAX: u64 = 1_000_000;

/// Longest run (`--duration`).
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);

/// Default number of connections (workers) of an open-loop run.
pub const OPEN_LOOP_CONNECTIONS_DEFAULT: usize = 64;

/// Capacity of the open-loop queue of intended start times. A tick that finds it full is counted
/// as `dropped` (the generator, not the server, fell behind) instead of queueing without bound.
pub const OPEN_LOOP_QUEUE_MAX: usize = 65_536;

/// How often the open-loop ticker wakes up to hand out the starts that fell due.
pub const OPEN_LOOP_TICK: Duration = Duration::from_millis(1);

/// Deadline of one HTTP request (connect + send + whole response).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest response body read; a larger one is an error (`response_too_large`).
pub const RESPONSE_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Destination accounts of the transfer scenarios, and wallets of the wallet scenario.
pub const ACCOUNTS_PER_RUN: usize = 100;

/// Transfers in one `POST /v1/transfers/batch` of the `transfers-batch` scenario.
pub const BATCH_TRANSFERS: usize = 100;

/// Money given to each wallet before the wallet scenario starts (minor units).
pub const WALLET_FUNDING: u64 = 1_000_000;

/// Largest amount one wallet transfer moves (minor units); with [`WALLET_FUNDING`] a wallet
/// runs dry only after thousands of unlucky transfers.
pub const WALLET_TRANSFER_AMOUNT_MAX: u64 = 100;

/// Percent of wallet-scenario operations that are reads (the rest are transfers).
pub const WALLET_READ_PERCENT: u64 = 80;

/// Topics the consume scenario subscribes to: the ledger's own event topic.
pub const CONSUME_TOPIC: &str = "ledger";

/// `max_records` of one consume-scenario fetch.
pub const CONSUME_MAX_RECORDS: u32 = 100;

/// `wait_ms` of one consume-scenario fetch (long poll).
pub const CONSUME_WAIT_MS: u64 = 100;

/// `session_timeout_ms` of a consume-scenario member.
pub const CONSUME_SESSION_TIMEOUT_MS: u64 = 10_000;

/// Pause after a failed join before the next one, so a broken gateway is not hammered.
pub const JOIN_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Requests of the setup phase (account creation, funding) tried at most this many times each
/// (a 503 during an election is retried with the same id).
pub const SETUP_ATTEMPTS_MAX: u32 = 10;

/// Pause between setup attempts.
pub const SETUP_RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Reads of the final balance check tried at most this many times each.
pub const CHECK_ATTEMPTS_MAX: u32 = 10;

/// How often the progress line is refreshed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Seconds of per-second latency kept for the timeline (longer runs keep the first ones).
pub const TIMELINE_SECONDS_MAX: usize = 3600;

/// Highest latency a histogram records (longer ones are clamped to it), in microseconds.
pub const LATENCY_US_MAX: u64 = 120_000_000;

/// Significant figures of the whole-run histograms.
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// Significant figures of the per-second timeline histograms (smaller, one per second).
pub const TIMELINE_SIGFIG: u8 = 2;

/// Most distinct error codes kept; further codes are counted under `other`.
pub const ERROR_CODES_MAX: usize = 256;

const _: () = assert!(OPEN_LOOP_CONNECTIONS_DEFAULT <= CONCURRENCY_MAX);
const _: () = assert!(BATCH_TRANSFERS >= 1 && BATCH_TRANSFERS <= 8190);
const _: () = assert!(WALLET_READ_PERCENT <= 100);
const _: () = assert!(WALLET_TRANSFER_AMOUNT_MAX >= 1 && WALLET_TRANSFER_AMOUNT_MAX < WALLET_FUNDING);
// A whole run of latencies fits under the histogram ceiling.
const _: () = assert!(REQUEST_TIMEOUT.as_micros() < LATENCY_US_MAX as u128);
// A long-poll fetch finishes well within one request deadline.
const _: () = assert!((CONSUME_WAIT_MS as u128) < REQUEST_TIMEOUT.as_millis());
const _: () = assert!(CONSUME_SESSION_TIMEOUT_MS >= 1000);
