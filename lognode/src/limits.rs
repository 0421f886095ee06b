//! Every limit lognode enforces, as named constants with the reason for each value.
//!
//! Wire limits that the gateway must agree with (message, record, produce and read sizes, group
//! fetch waits and positions, topic names and partitions) come from [`ledger_proto::limits`],
//! which both processes import; lognode's names for them are aliases. Ledger and group rule limits
//! are ledger-core's and group-core's own. Relations between the numbers, and with logstore's
//! limits, are checked at compile time at the bottom of this module; `tests/limits_readme.rs`
//! checks the README's table against these constants.

use std::time::Duration;

use ledger_proto::limits as wire;

// ---- client API (gRPC `ledger.v1.Ledger`) -------------------------------

/// Largest gRPC message a client may send or receive (the gateway's channels use the same).
pub const CLIENT_MESSAGE_MAX: usize = wire::MESSAGE_BYTES_MAX;
/// Largest record (key + value + headers).
pub const RECORD_BYTES_MAX: usize = wire::RECORD_BYTES_MAX;
/// Most records in one ProduceBatch: one Raft entry.
pub const BATCH_RECORDS_MAX: usize = wire::PRODUCE_RECORDS_MAX;
/// Most bytes (keys, values, headers) in one ProduceBatch: one Raft entry, one logstore record.
pub const BATCH_BYTES_MAX: usize = wire::PRODUCE_BYTES_MAX;
/// Longest topic name (`[A-Za-z0-9._-]`).
pub const TOPIC_NAME_MAX: usize = wire::TOPIC_NAME_BYTES_MAX;
/// Most topics (the built-in `ledger` topic included): each holds up to `PARTITIONS_MAX` offset
/// maps in every replica's memory and in every snapshot. Past it CreateTopic is refused
/// (`InvalidArgument` naming the limit).
pub const TOPICS_MAX: usize = 1024;
/// Most live API keys (docs/SECURITY.md): the key table is part of the state's head, written
/// with every commit of the state store and in every snapshot. Past it CreateKey is refused
/// (`RESOURCE_EXHAUSTED` naming the limit).
pub const KEYS_MAX: usize = 1000;
/// Most scopes of one API key.
pub const KEY_SCOPES_MAX: usize = 32;
/// Longest scope of an API key, in bytes.
pub const KEY_SCOPE_BYTES_MAX: usize = 128;
/// Longest API key id (and `created_by`/`revoked_by`), in bytes (`[A-Za-z0-9._-]`).
pub const KEY_ID_BYTES_MAX: usize = 64;
/// Longest account prefix of an API key, in bytes (the account-id alphabet `[A-Za-z0-9._:-]`).
pub const KEY_PREFIX_BYTES_MAX: usize = 128;
/// Largest quota number of an API key (requests a second, burst, requests in flight).
pub const KEY_QUOTA_MAX: u32 = 1_000_000;
/// Most webhook subscriptions (docs/WEBHOOKS.md): each is in the state's head with its kept
/// delivery records. Past it CreateWebhook is refused (`limit_exceeded` naming the limit).
pub const WEBHOOKS_MAX: usize = 64;
/// Longest webhook id, in bytes (`[A-Za-z0-9._-]`).
pub const WEBHOOK_ID_BYTES_MAX: usize = 64;
/// Longest webhook URL, in bytes.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2048;
/// Most event types one webhook subscribes to.
pub const WEBHOOK_EVENTS_MAX: usize = 8;
/// Shortest webhook signing secret, in bytes.
pub const WEBHOOK_SECRET_BYTES_MIN: usize = 16;
/// Longest webhook signing secret, in bytes.
pub const WEBHOOK_SECRET_BYTES_MAX: usize = 128;
/// Delivered records kept per webhook (the newest; counted beyond in `delivered_total`).
pub const WEBHOOK_DELIVERED_KEPT: usize = 100;
/// Dead letters kept per webhook (the newest; counted beyond in `dead_total`).
pub const WEBHOOK_DEAD_KEPT: usize = 1000;
/// Most delivery outcomes one Record command carries.
pub const WEBHOOK_RECORD_BATCH_MAX: usize = 1000;
/// Longest error text of a delivery record, in bytes.
pub const WEBHOOK_ERROR_BYTES_MAX: usize = 256;
/// Audit records the state keeps (the newest; older ones are dropped, counted in `total`).
pub const AUDIT_RECORDS_MAX: usize = 1000;
/// Audit records one ListAudit answer holds at most.
pub const AUDIT_READ_MAX: u32 = 1000;
/// Shortest secret `--admin-key-file` may hold, in characters.
pub const ADMIN_KEY_MIN_CHARS: usize = 32;
/// Pause between two attempts of the leader to enter the bootstrap admin key.
pub const ADMIN_KEY_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Most partitions a topic may have: each is an offset map in every replica's memory.
pub const PARTITIONS_MAX: u32 = wire::TOPIC_PARTITIONS_MAX;
/// Most time a write may wait for Raft to commit and apply it; past it the caller gets
/// `UNAVAILABLE` and retries (the outcome is unknown, writes carry idempotency ids).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for `min_index` (read-your-writes on a follower).
pub const MIN_INDEX_WAIT_DEFAULT: Duration = Duration::from_secs(5);
/// Longest wait for `min_index`: bounds how long a read may hold a call.
pub const MIN_INDEX_WAIT_MAX: Duration = Duration::from_secs(30);
/// Default records per Consume.
pub const CONSUME_RECORDS_DEFAULT: usize = 100;
/// Responses a ConsumeStream may buffer for a slow client before it waits (backpressure).
pub const STREAM_BUFFER: usize = 16;
/// Most peer channels kept for ClusterStatus's fan-out (reused across calls; more peers than this
/// means membership churned, and the cache starts over).
pub const PEER_STATUS_CHANNELS_MAX: usize = 64;
/// Deadline of asking one peer for its status (ClusterStatus fans out to every peer).
pub const STATUS_PEER_TIMEOUT: Duration = Duration::from_millis(500);
/// Most entries one AccountTransfers page returns (ledger-core's cap).
pub const HISTORY_PAGE_MAX: usize = ledger_core::limits::HISTORY_PAGE_MAX;
/// gRPC calls served concurrently per connection (a gateway multiplexes on few connections).
pub const CONCURRENCY_PER_CONNECTION: usize = 256;

// ---- the gRPC server's connections (issue 21) ----------------------------

/// Most open gRPC connections (peers, gateways, clients); past it new ones are closed at once.
/// Far above what a cluster needs (a few per peer and per gateway), far below the open-files limit.
pub const SERVER_CONNECTIONS_MAX: usize = 1024;
/// Deadline of one gRPC call on the server: longer than the longest long poll (`FETCH_WAIT_MAX`)
/// plus a write (`WRITE_TIMEOUT`). A streamed response (ConsumeStream) is not cut by it: its call
/// ends when the stream starts. A snapshot install is not either (`grpc::deadline`): it is bounded
/// by `SNAPSHOT_CHUNK_WAIT_MAX` per chunk and by the sender's deadline.
pub const SERVER_CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// Interval of HTTP/2 keep-alive PINGs from the server: a peer gone without a FIN is found.
pub const SERVER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Time allowed for a PING's acknowledgement before the connection is closed.
pub const SERVER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest TLS handshake of a caller (with `--tls-*`); then the connection is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most ConsumeStream streams open at once from one caller (IP address): each holds a task and a
/// buffer of `STREAM_BUFFER` responses.
pub const CONSUME_STREAMS_PER_CALLER_MAX: usize = 64;
/// Most InstallSnapshot streams received at once: each fills a file of up to `SNAPSHOT_BYTES_MAX`
/// and decodes it, and one leader sends one at a time (a second one is refused; the leader retries).
pub const SNAPSHOT_INSTALLS_MAX: usize = 1;

// ---- proposals (issue 21) ----------------------------------------------

/// Bytes a Raft entry adds around its request in the log record (log id and payload tag: a few
/// dozen), with a wide margin.
pub const ENTRY_OVERHEAD_MAX: usize = 4 * 1024;
/// Largest encoded request lognode proposes to Raft. The log refuses a record over
/// `logstore::RECORD_SIZE_MAX`, and openraft treats that refusal as a fatal storage error that
/// stops Raft on the leader; so a larger request is refused with `InvalidArgument` before it is
/// proposed (etcd's `--max-request-bytes` check).
pub const PROPOSAL_BYTES_MAX: usize = logstore::RECORD_SIZE_MAX - ENTRY_OVERHEAD_MAX;
/// Largest encoded ledger, group or produce command one client request may carry: several are
/// gathered into one entry (`GATHER_BYTES_MAX`), so each must leave room for the others.
pub const COMMAND_BYTES_MAX: usize = GATHER_BYTES_MAX;

// ---- reads -----------------------------------------------------------

/// Most records one read returns.
pub const READ_RECORDS_MAX: usize = wire::READ_RECORDS_MAX;
/// Most record bytes (keys, values, headers) one read returns (at least one record is returned).
pub const READ_BYTES_MAX: usize = wire::READ_BYTES_MAX;
/// How many times a read retries an applied entry that logstore's writer has not written yet.
pub const READ_UNWRITTEN_RETRIES: u32 = 200;
/// Pause between those retries (with the retries: at most 1 s, longer than a group commit).
pub const READ_UNWRITTEN_PAUSE: Duration = Duration::from_millis(5);

// ---- gathering concurrent requests into one entry ----------------------

/// Requests that may wait for a gatherer; past it callers wait (backpressure).
pub const GATHER_QUEUE_MAX: usize = 4096;
/// Most requests gathered into one entry.
pub const GATHER_REQUESTS_MAX: usize = 512;
/// Most payload bytes gathered into one entry (a lone larger request goes alone).
pub const GATHER_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Gathered entries proposed at once. Measured on 2 cores with 64 producers: 1 beats 2, 4 and 8
/// (bigger entries amortize more of the per-entry cost than overlapping rounds gain).
pub const GATHER_INFLIGHT_MAX: usize = 1;

// ---- consumer groups ---------------------------------------------------

/// Default records per group fetch.
pub const FETCH_RECORDS_DEFAULT: usize = 100;
/// Most records one group fetch returns (one read's cap).
pub const FETCH_RECORDS_MAX: usize = READ_RECORDS_MAX;
/// A group fetch reads no further partition once its records reach this many bytes (one
/// partition read adds at most `READ_BYTES_MAX` plus one record).
pub const FETCH_BYTES_MAX: usize = READ_BYTES_MAX;
/// Longest long poll of a group fetch (the gateway's `wait_ms` cap is the same wire limit).
pub const FETCH_WAIT_MAX: Duration = Duration::from_millis(wire::GROUP_FETCH_WAIT_MAX_MS);
/// Most client-side positions one fetch may carry.
pub const FETCH_POSITIONS_MAX: usize = wire::GROUP_FETCH_POSITIONS_MAX;
/// Most time one leadership confirmation (once per term) may take.
pub const LEAD_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

// ---- leader-driven expiry (pending transfers and group sessions) ------

/// How often the leader looks for deadlines that passed: pending transfers (`ExpirePending`) and
/// group members whose session timed out (`ExpireMembers`). One value for both (they were 100 ms
/// and 200 ms): a deadline is acted on at most one tick late, and 100 ms is well under the
/// shortest session timeout and any pending timeout a client would notice. The check is an
/// in-memory scan on the leader, cheap at this rate.
pub const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// Most expiry entries each of the two tasks proposes per tick; the rest wait a tick. 8 per
/// 100 ms keeps both at the throughput they had (80 entries/s; group expiry was 16 per 200 ms)
/// while each tick adds at most 8 entries to the Raft log.
pub const EXPIRY_ENTRIES_PER_TICK: usize = 8;
/// Most time one expiry proposal may take.
pub const EXPIRY_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

// ---- Raft --------------------------------------------------------------

/// Raft heartbeat interval, in ms: `election::run` sends them (openraft's own are off, because
/// openraft also uses its heartbeat interval as the deadline of every AppendEntries).
pub const HEARTBEAT_MS: u64 = 150;
/// Deadline of one AppendEntries, in ms (openraft's `heartbeat_interval`): long enough for Linux's
/// smallest TCP retransmission timeout (200 ms), so that one lost packet is retransmitted rather
/// than the call cut (with 150 ms, 5 % packet loss cut replication to a twentieth).
pub const APPEND_TIMEOUT_MS: u64 = 450;
/// TCP connections to each peer over which Raft RPCs are hedged (see `hedge`): a request with no
/// answer after the hedge delay is sent again on another free connection, the first answer wins.
/// Connections are made when first used.
pub const HEDGE_LANES: usize = 8;
/// Shortest wait for an answer before a Raft RPC is hedged; above it, twice the recent answer
/// time, up to [`HEDGE_DELAY_MAX`].
pub const HEDGE_DELAY_MIN: Duration = Duration::from_millis(3);
/// After a call whose first copy was lost (a later copy answered first), this many calls to the
/// same peer are sent on two connections at once.
pub const HEDGE_EAGER_CALLS: u32 = 64;
/// Bytes of a Raft RPC assumed to reach a peer per millisecond: the hedge delay of a call grows by
/// its payload's time at this rate, so that a large AppendEntries (a follower catching up) is not
/// sent again while its first copy is still on its way, and calls that take longer than
/// [`HEDGE_DELAY_MIN`] to send are not sent twice at once. 64 KiB/ms (64 MiB/s) is well under
/// what a busy 2-core node takes in over TLS; at it, a 150 KB batch adds 2 ms and a 4 MiB one 64 ms.
pub const HEDGE_BYTES_PER_MS: usize = 64 * 1024;
/// Longest wait for an answer before a Raft RPC is hedged: below Linux's smallest TCP
/// retransmission timeout (200 ms), which is what a lost packet would otherwise cost.
pub const HEDGE_DELAY_MAX: Duration = Duration::from_millis(100);
/// While a Raft RPC is open and nothing was read from its connection for this long, an HTTP/2 PING
/// is sent on it, so that TCP finds a lost segment by what follows it (see `network::peer_channel`).
pub const PEER_PING_INTERVAL: Duration = Duration::from_millis(2);
/// A peer connection whose PING is not answered within this is closed (and made again).
pub const PEER_PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Smallest TCP retransmission timeout of the node's connections (`TCP_RTO_MIN_US`, Linux 6.15+,
/// rounded up to the kernel's tick; see `tcp`), instead of Linux's 200 ms.
pub const PEER_RTO_MIN: Duration = Duration::from_millis(5);
/// Raft election timeout range, in ms. Its top is openraft's leader lease: a voter that heard
/// from a leader within it refuses to vote for another. Elections themselves are started by
/// `election::run` (openraft's timer is off), after [`ELECTION_SILENCE`].
pub const ELECTION_TIMEOUT_MS: (u64, u64) = (500, 700);
/// Silence from the leader after which a voter asks for pre-votes (plus its jitter), and within
/// which a voter refuses them: the leader lease.
pub const ELECTION_SILENCE: Duration = Duration::from_millis(ELECTION_TIMEOUT_MS.1);
/// Silence after its own start after which a voter that has not heard from a leader asks for
/// pre-votes (plus its jitter), instead of [`ELECTION_SILENCE`]. A leader that is up reaches a
/// started node within a heartbeat or two, and the pre-vote still needs a majority that has not
/// heard from a leader within the lease, so standing sooner disrupts nothing; after a restart of
/// the whole cluster it saves half a second (the leader restored from the log has usually gone
/// silent: nobody was up to acknowledge it).
pub const STARTUP_ELECTION_SILENCE: Duration = Duration::from_millis(300);
/// Spread of the extra wait before a voter stands, on top of one heartbeat (per node and attempt).
pub const ELECTION_JITTER: Duration = Duration::from_millis(150);
/// Pause after an election attempt (granted or not) before the next one; also how long a voter
/// that granted another candidate's pre-vote does not stand itself.
pub const ELECTION_RETRY: Duration = Duration::from_millis(ELECTION_TIMEOUT_MS.0);
/// How often the election task looks at the node's Raft state.
pub const ELECTION_TICK: Duration = Duration::from_millis(50);
/// Deadline of one PreVote call.
pub const PREVOTE_TIMEOUT: Duration = Duration::from_millis(300);
/// A leader with no acknowledgement from a majority for this long has lost its quorum: it
/// refuses writes and strong reads, cuts the waiting ones and goes silent (see `election`).
pub const QUORUM_ACK_MAX: Duration = Duration::from_millis(600);
/// Largest gRPC message between nodes (AppendEntries batches, snapshot chunks).
pub const RAFT_MESSAGE_MAX: usize = 64 * 1024 * 1024;
/// Most entry bytes openraft gets for one AppendEntries (at least one entry): keeps replication
/// messages under [`RAFT_MESSAGE_MAX`], and each one well inside [`APPEND_TIMEOUT_MS`]. A new
/// leader does not know what its followers hold and openraft 0.9 probes from the first entry it
/// kept, so after a restart it sends the whole retained log again (64 MiB with
/// `--retention-bytes 67108864`); in 16 MiB messages those passed the deadline, no follower
/// acknowledged the leader within `QUORUM_ACK_MAX`, and leader after leader stepped down (a
/// restart took 10-20 s). Answered 4 MiB at a time, the quorum is acknowledged all along.
pub const REPLICATION_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most bytes read from logstore per `read_range` call when openraft asks for entries.
pub const READ_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Bytes of snapshot data per streamed chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks read ahead from the snapshot file while one is sent (the sender's memory per stream).
pub const SNAPSHOT_CHUNKS_IN_FLIGHT: usize = 2;
/// Largest snapshot accepted from a leader. It is written to a file as it arrives (never held in
/// memory), so this bounds the disk one install may fill.
pub const SNAPSHOT_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
/// Longest time between two commits of the on-disk state store while entries are applied: about
/// how much log a restart applies again.
pub const STATE_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Writes in the on-disk state store's overlay that force a commit (bounds the overlay's memory:
/// a write is one record, about 100 to 200 bytes with its map entry).
pub const STATE_COMMIT_WRITES_MAX: usize = 100_000;
/// Writes between two commits while a snapshot is loaded into the on-disk state store.
pub const STATE_LOAD_WRITES_MAX: usize = 200_000;
/// Largest encoded ledger record in a snapshot (an account or a transfer: an id, metadata and
/// numbers); a length above it is damage, refused before anything is allocated.
pub const SNAPSHOT_RECORD_BYTES_MAX: usize = 16 << 10;
const _: () = assert!(
    SNAPSHOT_RECORD_BYTES_MAX >= 2 * ledger_core::limits::ID_BYTES_MAX + ledger_core::limits::METADATA_BYTES_MAX + 512
);
/// Largest snapshot head (everything but the ledger's records: topics and their offset maps,
/// groups, keys, the audit trail, webhooks); a length above it is damage, refused before anything
/// is allocated. The head is held in memory whole as the state is, so this is far above any real
/// one.
pub const SNAPSHOT_HEAD_BYTES_MAX: u64 = 4 << 30;
/// Accounts (and, apart, account ids) the on-disk state store keeps decoded in memory after they
/// were read or committed; each map is emptied when it reaches this size.
pub const STATE_ACCOUNT_CACHE_MAX: usize = 100_000;
/// Longest a Raft log purge waits for the state machine to make its state durable up to the
/// purge point (installing a snapshot from the leader); past it, the purge fails.
pub const PURGE_WAIT_MAX: Duration = Duration::from_secs(600);
/// Timeout to establish a connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Deadline of one Raft RPC when openraft gives none.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// How often each node compares the log after its last snapshot with `--snapshot-log-bytes`.
pub const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Deadline of sending a whole snapshot and the follower loading it: this, plus one second per
/// [`SNAPSHOT_RATE_MIN`] bytes of snapshot.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Slowest rate, in snapshot bytes per second, at which a follower is expected to receive and
/// load a snapshot (new nodes loaded 1.24 GB in 90 s and 2.2 GB in 348 s, 14 and 6.4 MB/s):
/// sets the sender's deadline with [`SNAPSHOT_TIMEOUT`]. A fixed 60 s cut every install of a
/// large store, and the leader dumped its store again for each retry.
pub const SNAPSHOT_RATE_MIN: u64 = 2 * 1024 * 1024;
/// Longest a follower waits for the next chunk of a snapshot stream before it drops it.
pub const SNAPSHOT_CHUNK_WAIT_MAX: Duration = Duration::from_secs(30);

// ---- membership ----------------------------------------------------------

/// How often the leader turns gossip into Raft membership.
pub const MEMBERSHIP_TICK: Duration = Duration::from_millis(300);
/// A learner is promoted once its matched index is within this many entries of the leader's.
pub const PROMOTE_LAG_MAX: u64 = 100;
/// Most time one membership change by the manager may take before it is retried.
pub const MEMBERSHIP_CALL_TIMEOUT: Duration = Duration::from_secs(5);

// ---- storage and the events log -------------------------------------------

/// Segment size of the Raft log and the events log.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Most ledger-event bytes (keys and values) in one events-log record; a partition's events of one
/// entry that are larger are split over several records (runs).
pub const EVENTS_RECORD_BYTES_MAX: usize = 1024 * 1024;
/// Most events-log records queued by one `append_then` call.
pub const EVENTS_APPEND_RECORDS_MAX: usize = 1024;
/// Most bytes queued by one `append_then` call on the events log.
pub const EVENTS_APPEND_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Snapshots remembered as (applied index, next event number) pairs, to find which events were
/// derived only from Raft entries that retention purged (the events log then follows).
pub const EVENT_MARKS_MAX: usize = 64;

// ---- lifecycle -------------------------------------------------------------

/// Longest wait at startup for the entries committed before a restart to be applied again. They
/// are in the local log, so this is a local replay; past it the node does not start (a typed
/// startup error) rather than serve reads older than what it served before it stopped.
pub const STARTUP_APPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each shutdown step (in-flight gRPC calls, gossip leave, Raft) may take.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

// ---- compile-time relation checks -------------------------------------

// A maximal ProduceBatch fits in a message and, with room to spare, in one logstore record.
const _: () = assert!(BATCH_BYTES_MAX + 64 * 1024 <= CLIENT_MESSAGE_MAX);
const _: () = assert!(BATCH_BYTES_MAX * 2 <= logstore::RECORD_SIZE_MAX);
// A gathered entry fits in one logstore record; gathered transfers fit in one ledger batch.
const _: () = assert!(GATHER_BYTES_MAX * 2 <= logstore::RECORD_SIZE_MAX);
const _: () = assert!(SERVER_CALL_TIMEOUT.as_millis() > FETCH_WAIT_MAX.as_millis() + WRITE_TIMEOUT.as_millis());
const _: () = assert!(SERVER_CALL_TIMEOUT.as_millis() > SNAPSHOT_CHUNK_WAIT_MAX.as_millis());
const _: () =
    assert!(SERVER_CONNECTIONS_MAX >= 16 && CONSUME_STREAMS_PER_CALLER_MAX >= 1 && SNAPSHOT_INSTALLS_MAX >= 1);
// A client message can be larger than a proposal: the proposal checks keep it out of Raft.
const _: () = assert!(COMMAND_BYTES_MAX <= PROPOSAL_BYTES_MAX);
const _: () = assert!(ENTRY_OVERHEAD_MAX < logstore::RECORD_SIZE_MAX / 2);
const _: () = assert!(GATHER_REQUESTS_MAX <= ledger_core::limits::BATCH_TRANSFERS_MAX);
const _: () = assert!(GATHER_INFLIGHT_MAX >= 1 && GATHER_QUEUE_MAX >= GATHER_REQUESTS_MAX);
// Events-log appends fit logstore's records and batches.
const _: () = assert!(EVENTS_RECORD_BYTES_MAX * 2 <= logstore::RECORD_SIZE_MAX);
const _: () = assert!(EVENTS_APPEND_RECORDS_MAX <= logstore::BATCH_RECORDS_MAX);
const _: () = assert!(EVENTS_APPEND_BYTES_MAX + 2 * EVENTS_RECORD_BYTES_MAX <= logstore::BATCH_BYTES_MAX);
// Replication messages and snapshot chunks fit a Raft message.
const _: () = assert!(REPLICATION_BATCH_BYTES_MAX * 2 <= RAFT_MESSAGE_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES * 2 <= RAFT_MESSAGE_MAX);
// Elections wait several heartbeats.
const _: () = assert!(ELECTION_TIMEOUT_MS.0 >= 3 * HEARTBEAT_MS && ELECTION_TIMEOUT_MS.0 < ELECTION_TIMEOUT_MS.1);
// openraft requires its heartbeat interval (our AppendEntries deadline) below the election timeout.
const _: () = assert!(
    HEDGE_LANES >= 2 && HEDGE_DELAY_MIN.as_millis() < HEDGE_DELAY_MAX.as_millis() && HEDGE_DELAY_MAX.as_millis() < 200
);
const _: () = assert!(PEER_PING_INTERVAL.as_millis() < 200 && PEER_PING_TIMEOUT.as_millis() > 1000);
const _: () = assert!(APPEND_TIMEOUT_MS > 2 * 200 && APPEND_TIMEOUT_MS < ELECTION_TIMEOUT_MS.0);
// A leader notices its lost quorum after three heartbeats, and before its followers stand.
const _: () = assert!(
    QUORUM_ACK_MAX.as_millis() >= 3 * HEARTBEAT_MS as u128 && QUORUM_ACK_MAX.as_millis() < ELECTION_SILENCE.as_millis()
);
const _: () = assert!(
    PREVOTE_TIMEOUT.as_millis() < ELECTION_RETRY.as_millis() && ELECTION_TICK.as_millis() < HEARTBEAT_MS as u128
);
const _: () = assert!(FETCH_RECORDS_DEFAULT >= 1 && FETCH_RECORDS_DEFAULT <= FETCH_RECORDS_MAX);
const _: () = assert!(CONSUME_RECORDS_DEFAULT >= 1 && CONSUME_RECORDS_DEFAULT <= READ_RECORDS_MAX);
const _: () = assert!(MIN_INDEX_WAIT_DEFAULT.as_millis() <= MIN_INDEX_WAIT_MAX.as_millis());
// The largest group-fetch answer (bytes cap, plus one more partition read, plus one record, plus
// framing) fits in one gRPC message.
const _: () =
    assert!(FETCH_BYTES_MAX + READ_BYTES_MAX + RECORD_BYTES_MAX + FETCH_RECORDS_MAX * 1024 <= CLIENT_MESSAGE_MAX);
// A ledger expiry tick proposes at most EXPIRY_ENTRIES_PER_TICK entries within a write timeout.
const _: () = assert!(EXPIRY_TICK.as_millis() < EXPIRY_WRITE_TIMEOUT.as_millis() && EXPIRY_ENTRIES_PER_TICK >= 1);
