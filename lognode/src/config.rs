//! Command-line and environment configuration (every flag `--x-y` is also `LEDGER_X_Y`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Parser;

/// Default number of voters the leader promotes learners up to.
pub const VOTERS_DEFAULT: usize = 3;
/// Default bytes of Raft log after the last snapshot that trigger the next one (64 MiB).
pub const SNAPSHOT_LOG_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Default of `--retention-lag-bytes`: with `--retention-bytes`, the leader does not purge the
/// Raft log a member still needs (one that fell behind for a while: a burst of compactions, a
/// pause) until the log before the snapshot holds this many bytes: such a follower catches up
/// from the log rather than by a snapshot, which costs the leader a dump of its whole store and
/// the follower a load of it. Past it the log is purged down to `--retention-bytes`, and the
/// follower gets a snapshot.
pub const RETENTION_LAG_BYTES_DEFAULT: u64 = 1 << 30;
/// Default `--snapshot-log-percent`: the log since the last snapshot at least as long as it.
pub const SNAPSHOT_LOG_PERCENT_DEFAULT: u64 = 100;
/// Smallest `--snapshot-log-bytes` (64 KiB): below it snapshots would follow each other.
pub const SNAPSHOT_LOG_BYTES_MIN: u64 = 64 * 1024;
/// Largest `--snapshot-log-bytes` (1 TiB).
pub const SNAPSHOT_LOG_BYTES_MAX: u64 = 1 << 40;

/// Default `--state-cache-bytes` (16 MiB). The ledger writes far more than it reads back, so the
/// block cache fills slowly (3-5 MiB a minute under a full batch load): a 64 MiB cache took the
/// whole 20 minutes of issue 20's benchmark to fill, RSS rising meanwhile, and moved no more
/// transfers than 16 MiB, which is full within minutes (README, State, snapshots and restart).
pub const STATE_CACHE_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;
/// Smallest `--state-cache-bytes` (1 MiB).
pub const STATE_CACHE_BYTES_MIN: u64 = 1024 * 1024;
/// Largest `--state-cache-bytes` (1 TiB).
pub const STATE_CACHE_BYTES_MAX: u64 = 1 << 40;

/// Where a node keeps the ledger's records (`--state-store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateStoreKind {
    /// In an on-disk store (fjall) under `<data-dir>/state`: memory bounded by the cache, restart
    /// in seconds.
    Disk,
    /// In memory: faster, but memory grows with every transfer and a restart decodes the last
    /// snapshot; for benchmarks and tests.
    Memory,
}

/// `lognode`: a Ledger log node.
#[derive(Debug, Clone, Parser)]
#[command(name = "lognode", version, about)]
pub struct Config {
    /// Node id, unique in the cluster (not 0).
    #[arg(long, env = "LEDGER_ID")]
    pub id: u64,
    /// Directory for the log, metadata and snapshots.
    #[arg(long, env = "LEDGER_DATA_DIR")]
    pub data_dir: PathBuf,
    /// gRPC address (host:port) to listen on and to advertise.
    #[arg(long, env = "LEDGER_GRPC_ADDR")]
    pub grpc_addr: String,
    /// Gossip address (host:port) to listen on.
    #[arg(long, env = "LEDGER_GOSSIP_ADDR")]
    pub gossip_addr: String,
    /// Gossip addresses of existing members to join through, comma separated.
    #[arg(long, env = "LEDGER_JOIN", value_delimiter = ',')]
    pub join: Vec<String>,
    /// Initialize a brand-new cluster with this node as its only voter (ignored when already
    /// initialized).
    #[arg(long, env = "LEDGER_BOOTSTRAP")]
    pub bootstrap: bool,
    /// Voters the leader promotes caught-up learners up to.
    #[arg(long, env = "LEDGER_VOTERS", default_value_t = VOTERS_DEFAULT)]
    pub voters: usize,
    /// Keep at least this many Raft entries before the last snapshot; older ones are purged and
    /// their records are gone (topic start offsets move forward). Default: keep forever.
    #[arg(long, env = "LEDGER_RETENTION_ENTRIES")]
    pub retention_entries: Option<u64>,
    /// Keep at least this many bytes of Raft log before the last snapshot; older entries are
    /// purged as with `--retention-entries`, which counts entries instead (one batched entry can
    /// hold thousands of transfers, so bytes are what bounds the disk). Default: keep forever.
    #[arg(long, env = "LEDGER_RETENTION_BYTES", conflicts_with = "retention_entries")]
    pub retention_bytes: Option<u64>,
    /// With `--retention-bytes`, the leader keeps the log a member still needs (one that fell
    /// behind for a while, or is down) until the log before the snapshot holds this many bytes:
    /// such a follower catches up from the log instead of by a snapshot, which costs the leader a
    /// dump of its whole store. Past it, the log is purged and the follower gets a snapshot. 0
    /// purges at once. Default: 1 GiB.
    #[arg(long, env = "LEDGER_RETENTION_LAG_BYTES", default_value_t = RETENTION_LAG_BYTES_DEFAULT)]
    pub retention_lag_bytes: u64,
    /// Take a snapshot when the Raft log after the last one holds this many bytes: a restart
    /// applies again at most about this much log. 64 KiB up to 1 TiB; default 64 MiB.
    #[arg(long, env = "LEDGER_SNAPSHOT_LOG_BYTES", default_value_t = SNAPSHOT_LOG_BYTES_DEFAULT,
        value_parser = clap::value_parser!(u64).range(SNAPSHOT_LOG_BYTES_MIN..=SNAPSHOT_LOG_BYTES_MAX))]
    pub snapshot_log_bytes: u64,
    /// ... and only once the log since the last snapshot is at least this percentage of that
    /// snapshot's size (0 to 1,000; default 100). A snapshot writes the whole state, so without
    /// this a growing state would be written again every `--snapshot-log-bytes` and snapshots
    /// would take a growing share of the node's work; with it, they take a bounded share, and a
    /// restart applies again at most about this much log. Tests use 0.
    #[arg(long, env = "LEDGER_SNAPSHOT_LOG_PERCENT", default_value_t = SNAPSHOT_LOG_PERCENT_DEFAULT,
        value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub snapshot_log_percent: u64,
    /// Also take a snapshot every this many Raft entries (tests use small values). Default: off;
    /// one entry can hold a batch of thousands of transfers, so bytes are the better measure.
    #[arg(long, env = "LEDGER_SNAPSHOT_EVERY", value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: Option<u64>,
    /// Gossip timing: `lan` (default) or `local` (one machine: faster failure detection).
    #[arg(long, env = "LEDGER_GOSSIP_PROFILE", value_enum, default_value_t = GossipProfile::Lan)]
    pub gossip_profile: GossipProfile,
    /// How long a consumer group stays without members before it is deleted with its committed
    /// offsets, in ms: 1000 (1 s) up to 10 years; default 7 days (Kafka's
    /// `offsets.retention.minutes`). The leader's value is the one that counts.
    #[arg(long, env = "LEDGER_GROUP_RETENTION_MS", default_value_t = group_core::limits::GROUP_RETENTION_MS_DEFAULT,
        value_parser = clap::value_parser!(u64).range(
            group_core::limits::GROUP_RETENTION_MS_MIN..=group_core::limits::GROUP_RETENTION_MS_MAX))]
    pub group_retention_ms: u64,
    /// Where the ledger's records live: `disk` (default) or `memory`. Switching an existing node
    /// from memory to disk is supported (its last snapshot is loaded into the store); from disk
    /// back to memory it is not (start it with a new data directory instead).
    #[arg(long, env = "LEDGER_STATE_STORE", value_enum, default_value_t = StateStoreKind::Disk)]
    pub state_store: StateStoreKind,
    /// Block cache of the on-disk state store, in bytes (1 MiB up to 1 TiB; default 16 MiB). The
    /// node's memory is about this plus a fixed overhead (README, "State on disk").
    #[arg(long, env = "LEDGER_STATE_CACHE_BYTES", default_value_t = STATE_CACHE_BYTES_DEFAULT,
        value_parser = clap::value_parser!(u64).range(STATE_CACHE_BYTES_MIN..=STATE_CACHE_BYTES_MAX))]
    pub state_cache_bytes: u64,
    /// The cluster's bootstrap admin key (docs/SECURITY.md): a file holding its secret (at least
    /// 32 characters, readable only by its owner; created with a new secret when missing). While
    /// no API key was ever created, the leader enters the secret's SHA-256 as the key `admin`
    /// (scope `admin`); later starts with the flag change nothing.
    #[arg(long, env = "LEDGER_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// Encrypts the gossip (docs/SECURITY.md): a file holding a key every lognode and gateway of
    /// the cluster shares (64 hex digits, readable only by its owner). A member without it, or
    /// with another key, can neither read the gossip nor join it.
    #[arg(long, env = "LEDGER_GOSSIP_KEY_FILE")]
    pub gossip_key_file: Option<PathBuf>,
    /// Mutual TLS (docs/SECURITY.md): the cluster CA's certificate (PEM). With `--tls-cert` and
    /// `--tls-key` (all three or none), the gRPC server (Raft and the client API) refuses every
    /// caller without a certificate signed by this CA, Raft calls to peers show this node's
    /// certificate, and the gossip is encrypted (with `--gossip-key-file`, or else a key derived
    /// from this CA certificate).
    #[arg(long, env = "LEDGER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM), signed by the cluster CA, for the DNS name `lognode`.
    #[arg(long, env = "LEDGER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "LEDGER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// "always" (default) or "never" (UNSAFE: benchmarks and tests only).
    #[arg(long, env = "LEDGER_FSYNC", default_value = "always")]
    pub fsync: logstore::FsyncMode,
    /// Fault injection for crash tests only (the chaos harness): with fsync always, record after
    /// every sync how many bytes of each log file are durable, in this file
    /// (`logstore::RecordingSyncer`), so that a harness can drop the rest after a SIGKILL.
    #[arg(long, env = "LEDGER_FAULT_SYNCED_MAP", hide = true)]
    pub fault_synced_map: Option<PathBuf>,
    /// Fault injection for the chaos harness's clock nemesis only: shift this node's wall clock
    /// by the signed offset in ms that this file holds, read again every 100 ms
    /// (`lognode::clock`).
    #[arg(long, env = "LEDGER_FAULT_CLOCK_FILE", hide = true)]
    pub fault_clock_file: Option<PathBuf>,
}

pub use ledger_discovery::GossipProfile;

/// Resolves `host:port` to its first socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))
}
