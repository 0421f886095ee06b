//! Wiring: storage, Raft, gRPC server, gossip, the membership manager, and graceful shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use ledger_proto::ledger::ledger_server::LedgerServer;
use ledger_proto::raft::raft_server::RaftServer;
use ledger_shutdown::Shutdown;
use openraft::storage::RaftLogStorage;
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{Config, resolve};
use crate::discovery::{Discovery, Gossip, MemberKind, MemberMeta};
use crate::grpc::client_service::ClientService;
use crate::grpc::deadline::CallDeadline;
use crate::grpc::raft_service::RaftService;
use crate::limits::{
    APPEND_TIMEOUT_MS, CLIENT_MESSAGE_MAX, CONCURRENCY_PER_CONNECTION, ELECTION_TIMEOUT_MS, EXPIRY_ENTRIES_PER_TICK,
    EXPIRY_TICK, EXPIRY_WRITE_TIMEOUT, MEMBERSHIP_CALL_TIMEOUT, MEMBERSHIP_TICK, PROMOTE_LAG_MAX, RAFT_MESSAGE_MAX,
    SEGMENT_BYTES, SERVER_CALL_TIMEOUT, SHUTDOWN_GRACE, SNAPSHOT_CHECK_INTERVAL, STARTUP_APPLY_TIMEOUT,
};
use crate::network::Network;
use crate::store::records::Records;
use crate::store::state_machine::StateStore;
use crate::store::{LogStore, StateMachineStore};
use crate::types::{Node, Raft, Request, Response};

/// A running node.
pub struct NodeHandle {
    /// This node's id.
    pub id: u64,
    /// The local Raft.
    pub raft: Raft,
    /// The local state machine.
    pub sm: StateMachineStore,
    /// Discovery.
    pub discovery: Arc<dyn Discovery>,
    /// Set by [`NodeHandle::shutdown`]: every task of the node stops.
    stopping: Shutdown,
    server: JoinHandle<()>,
    manager: JoinHandle<()>,
    expirer: JoinHandle<()>,
    group_expirer: JoinHandle<()>,
    snapshotter: JoinHandle<()>,
    /// Check-quorum and elections (`election::run`).
    elections: JoinHandle<()>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why a node did not start. Each names what failed, and where.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--id 0` (openraft reserves no id, but 0 is what an unset id looks like).
    #[error("--id must not be 0")]
    ZeroId,
    /// An address flag that does not resolve.
    #[error("{flag}: {reason}")]
    Address {
        /// The flag (`--grpc-addr`, `--gossip-addr`, `--join`).
        flag: &'static str,
        /// Why it does not resolve.
        reason: String,
    },
    /// The Raft log or the events log could not be opened (logstore names the file and offset).
    #[error("open the {what} in {dir}: {source}")]
    OpenLog {
        /// `Raft log` or `events log`.
        what: &'static str,
        /// Its directory.
        dir: PathBuf,
        /// logstore's error.
        #[source]
        source: logstore::Error,
    },
    /// The Raft log store, the state machine or its snapshot could not be opened.
    #[error("open the {what}: {reason}")]
    Storage {
        /// What was opened.
        what: &'static str,
        /// openraft's storage error, as text.
        reason: String,
    },
    /// `--admin-key-file` is not usable (the message names the file and why).
    #[error("{0}")]
    AdminKey(String),
    /// `--gossip-key-file` is not usable (the message names the file and why).
    #[error("--gossip-key-file: {0}")]
    GossipKey(String),
    /// The `--tls-*` files are missing, unreadable or not a usable certificate and key.
    #[error("mutual TLS: {0}")]
    Tls(String),
    /// The Raft configuration is invalid.
    #[error("invalid Raft configuration: {0}")]
    RaftConfig(String),
    /// openraft did not start.
    #[error("start Raft: {0}")]
    Raft(String),
    /// The entries committed before the restart were not applied again in time: the node does not
    /// serve reads older than what it served before it stopped (ARCHITECTURE.md).
    #[error(
        "re-applying the entries committed before the restart: applied {applied} of {committed} within \
         {timeout:?}; not serving older state"
    )]
    Replay {
        /// The committed index read at startup.
        committed: u64,
        /// The applied index reached.
        applied: u64,
        /// [`STARTUP_APPLY_TIMEOUT`].
        timeout: Duration,
    },
    /// Gossip did not start.
    #[error("gossip on {addr}: {reason}")]
    Gossip {
        /// The gossip bind address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The gRPC listener could not be bound.
    #[error("bind gRPC on {addr}: {source}")]
    Bind {
        /// The gRPC bind address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `--bootstrap` failed.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// A blocking startup task panicked or was cancelled.
    #[error("startup task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The resolved addresses of a [`Config`].
struct Addrs {
    grpc: SocketAddr,
    gossip: SocketAddr,
    seeds: Vec<SocketAddr>,
}

/// Checks the id and resolves the address flags.
/// The `--tls-*` files: all three or none.
fn load_tls(cfg: &Config) -> Result<Option<ledger_proto::tls::ClusterTls>, StartError> {
    match (&cfg.tls_ca, &cfg.tls_cert, &cfg.tls_key) {
        (None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key)) => {
            let flags = ["--tls-ca", "--tls-cert", "--tls-key"];
            ledger_proto::tls::ClusterTls::load(flags, ca, cert, key).map(Some).map_err(StartError::Tls)
        }
        _ => Err(StartError::Tls("--tls-ca, --tls-cert and --tls-key go together".to_owned())),
    }
}

fn check_config(cfg: &Config) -> Result<Addrs, StartError> {
    if cfg.id == 0 {
        return Err(StartError::ZeroId);
    }
    let resolve_flag = |flag, addr: &str| resolve(addr).map_err(|reason| StartError::Address { flag, reason });
    Ok(Addrs {
        grpc: resolve_flag("--grpc-addr", &cfg.grpc_addr)?,
        gossip: resolve_flag("--gossip-addr", &cfg.gossip_addr)?,
        seeds: cfg
            .join
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| resolve_flag("--join", s))
            .collect::<Result<_, _>>()?,
    })
}

/// The file in the data dir where the gossip remembers its peers' addresses, to join through them
/// after a restart even when every `--join` seed has since been replaced (found by the chaos
/// harness, docs/FAULTS.md).
const GOSSIP_PEERS_FILE: &str = "gossip-peers";

/// Opens one logstore log of the data dir (blocking work, off the runtime). `sync` is
/// `EveryAppend` for the Raft log and `OnRequest` for the events log, which is derived from it
/// and synced before anything durable depends on it (`store::state_machine::events`).
async fn open_log(
    cfg: &Config,
    what: &'static str,
    sub: &str,
    sync: logstore::SyncPolicy,
) -> Result<logstore::Log, StartError> {
    let dir = cfg.data_dir.join(sub);
    let syncer: Option<Arc<dyn logstore::Syncer>> = match (&cfg.fault_synced_map, cfg.fsync) {
        (Some(map), logstore::FsyncMode::Always) => {
            Some(Arc::new(logstore::RecordingSyncer::new(map.with_extension(format!("{sub}.map")))))
        }
        _ => None,
    };
    let config =
        logstore::LogConfig { segment_size: SEGMENT_BYTES, fsync: cfg.fsync, sync, syncer, ..Default::default() };
    let open_dir = dir.clone();
    let (log, recovery) = tokio::task::spawn_blocking(move || logstore::Log::open(open_dir, config))
        .await?
        .map_err(|source| StartError::OpenLog { what, dir, source })?;
    info!(what, ?recovery, "log opened");
    Ok(log)
}

/// Reads (or, on the first open by this build, writes) where a log's format-2 records begin.
async fn records(log: logstore::Log, what: &'static str) -> Result<Records, StartError> {
    let dir = log.dir().to_path_buf();
    tokio::task::spawn_blocking(move || Records::open(log)).await?.map_err(|source| StartError::OpenLog {
        what,
        dir,
        source,
    })
}

/// Opens the Raft log, the node-local events log (ledger events, derived from applied entries,
/// see the README) and the state machine; returns them with the committed index saved before the
/// restart.
async fn open_storage(cfg: &Config) -> Result<(LogStore, StateMachineStore, u64), StartError> {
    let storage = |what| move |e: crate::types::StorageError| StartError::Storage { what, reason: e.to_string() };
    let log = open_log(cfg, "Raft log", "log", logstore::SyncPolicy::EveryAppend).await?;
    let started = std::time::Instant::now();
    let log = records(log, "Raft log").await?;
    let log_store = LogStore::new(log.clone()).map_err(storage("Raft log store"))?;
    info!(took_ms = started.elapsed().as_millis(), "Raft log store ready");
    let events =
        records(open_log(cfg, "events log", "events", logstore::SyncPolicy::OnRequest).await?, "events log").await?;
    let store = match cfg.state_store {
        crate::config::StateStoreKind::Memory => StateStore::Memory,
        crate::config::StateStoreKind::Disk => {
            StateStore::Disk { dir: cfg.data_dir.join("state"), cache_bytes: cfg.state_cache_bytes }
        }
    };
    let started = std::time::Instant::now();
    let sm = StateMachineStore::open(log, events, store).map_err(storage("state machine"))?;
    info!(took_ms = started.elapsed().as_millis(), applied = sm.opened_at_index(), "state machine opened");
    if cfg.retention_entries.is_some() || cfg.retention_bytes.is_some() {
        sm.follow_log_retention();
    }
    log_store.guard_purges(sm.durable_index());
    let committed = {
        let mut ls = log_store.clone();
        ls.read_committed().await.map_err(storage("committed index"))?.map_or(0, |c| c.index)
    };
    Ok((log_store, sm, committed))
}

/// Starts openraft on the storage.
async fn start_raft(
    cfg: &Config,
    log_store: LogStore,
    sm: StateMachineStore,
    liveness: &Arc<crate::election::Liveness>,
) -> Result<Raft, StartError> {
    let raft_config = openraft::Config {
        cluster_name: "ledger".into(),
        // openraft's heartbeat interval is also its AppendEntries deadline; heartbeats themselves
        // are sent by `election::run` every HEARTBEAT_MS.
        heartbeat_interval: APPEND_TIMEOUT_MS,
        enable_heartbeat: false,
        election_timeout_min: ELECTION_TIMEOUT_MS.0,
        election_timeout_max: ELECTION_TIMEOUT_MS.1,
        // Bytes of log are watched by `snapshot_by_bytes`; an entry count only when asked.
        snapshot_policy: cfg.snapshot_every.map_or(SnapshotPolicy::Never, SnapshotPolicy::LogsSinceLast),
        max_in_snapshot_log_to_keep: cfg.retention_entries.unwrap_or(u64::MAX),
        install_snapshot_timeout: 10_000,
        // Elections are started by `election::run`, after a pre-vote.
        enable_elect: false,
        ..Default::default()
    };
    let raft_config = Arc::new(raft_config.validate().map_err(|e| StartError::RaftConfig(e.to_string()))?);
    let network = Network { liveness: Arc::clone(liveness) };
    Raft::new(cfg.id, raft_config, network, log_store, sm).await.map_err(|e| StartError::Raft(e.to_string()))
}

/// Waits until everything committed before a restart is applied again, so the node never serves
/// reads older than what it served before it stopped. The entries are in the local log (openraft
/// re-applies them up to the saved committed index as it starts), so this needs no quorum; if it
/// does not finish within [`STARTUP_APPLY_TIMEOUT`], Raft is stopped and the node does not start.
async fn wait_replayed(raft: &Raft, sm: &StateMachineStore, committed: u64) -> Result<(), StartError> {
    let mut applied = sm.applied();
    if tokio::time::timeout(STARTUP_APPLY_TIMEOUT, applied.wait_for(|a| *a >= committed)).await.is_ok() {
        return Ok(());
    }
    let err = StartError::Replay { committed, applied: sm.applied_index(), timeout: STARTUP_APPLY_TIMEOUT };
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft shutdown after a failed start");
    }
    Err(err)
}

/// Binds the gRPC listener and serves the Raft transport and the client API until `stop` resolves.
async fn serve_grpc(
    addr: SocketAddr,
    raft: &Raft,
    client: ClientService,
    tls: Option<&ledger_proto::tls::ClusterTls>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<JoinHandle<()>, StartError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        builder = builder
            .tls_config(t.server(crate::limits::TLS_HANDSHAKE_TIMEOUT))
            .map_err(|e| StartError::Tls(format!("the certificate or key is not usable: {e}")))?;
    }
    let router = builder
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(crate::limits::SERVER_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(crate::limits::SERVER_KEEPALIVE_TIMEOUT))
        .add_service(CallDeadline::new(
            RaftServer::new(RaftService::new(raft.clone(), client.sm.clone(), Arc::clone(&client.liveness)))
                .max_decoding_message_size(RAFT_MESSAGE_MAX)
                .max_encoding_message_size(RAFT_MESSAGE_MAX),
            SERVER_CALL_TIMEOUT,
        ))
        .add_service(CallDeadline::new(
            LedgerServer::new(client)
                .max_decoding_message_size(CLIENT_MESSAGE_MAX)
                .max_encoding_message_size(CLIENT_MESSAGE_MAX),
            SERVER_CALL_TIMEOUT,
        ));
    // With our own listener, tonic's `tcp_nodelay` does not apply: it is set on the incoming side
    // (or small responses wait for Nagle + delayed ACK, ~40 ms), with the connection cap.
    let slots = Arc::new(tokio::sync::Semaphore::new(crate::limits::SERVER_CONNECTIONS_MAX));
    let incoming = crate::grpc::capped_incoming(listener, slots);
    Ok(tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            warn!(error = %e, "gRPC server failed");
        }
    }))
}

/// `--bootstrap`: initializes a new single-voter cluster, unless this node is already initialized.
async fn bootstrap(cfg: &Config, raft: &Raft) -> Result<(), StartError> {
    let initialized = raft.is_initialized().await.map_err(|e| StartError::Bootstrap(e.to_string()))?;
    if initialized {
        info!("already initialized; --bootstrap ignored");
        return Ok(());
    }
    let members = BTreeMap::from([(cfg.id, Node::new(cfg.grpc_addr.clone()))]);
    raft.initialize(members).await.map_err(|e| StartError::Bootstrap(e.to_string()))?;
    info!("bootstrapped a new cluster");
    Ok(())
}

/// Starts a node: opens storage, starts Raft, re-applies what was committed before a restart,
/// joins gossip, serves gRPC, bootstraps if asked, and starts the background tasks.
pub async fn start(cfg: Config) -> Result<NodeHandle, StartError> {
    let addrs = check_config(&cfg)?;
    let admin_key = match &cfg.admin_key_file {
        Some(path) => Some(crate::admin_key::load_or_create(path).map_err(StartError::AdminKey)?),
        None => None,
    };
    let tls = load_tls(&cfg)?;
    let gossip_key = match (&cfg.gossip_key_file, &tls) {
        (Some(path), _) => Some(ledger_discovery::GossipKey::load(path).map_err(StartError::GossipKey)?),
        // TLS without a gossip key: one every holder of the cluster CA's certificate derives.
        (None, Some(t)) => Some(ledger_discovery::GossipKey::derive_from_ca(t.ca_pem())),
        (None, None) => None,
    };
    if let Some(t) = &tls {
        crate::network::use_tls(t.client()).map_err(StartError::Tls)?;
    }
    let (log_store, sm, committed) = open_storage(&cfg).await?;
    let liveness = crate::election::Liveness::new();
    let raft = start_raft(&cfg, log_store, sm.clone(), &liveness).await?;
    // Everything committed before a restart is applied again before any read is served.
    wait_replayed(&raft, &sm, committed).await?;

    let meta = MemberMeta {
        kind: MemberKind::Lognode,
        node_id: cfg.id,
        grpc_addr: cfg.grpc_addr.clone(),
        role: "follower".into(),
    };
    let discovery: Arc<dyn Discovery> = Gossip::start_remembering(
        addrs.gossip,
        meta,
        addrs.seeds,
        cfg.gossip_profile,
        gossip_key,
        Some(cfg.data_dir.join(GOSSIP_PEERS_FILE)),
    )
    .await
    .map_err(|reason| StartError::Gossip { addr: addrs.gossip, reason })?;

    let stopping = Shutdown::new();
    let groups = crate::groups::Coordinator::new(
        cfg.id,
        raft.clone(),
        sm.clone(),
        cfg.group_retention_ms,
        Arc::clone(&liveness),
    );
    let client = ClientService {
        id: cfg.id,
        grpc_addr: cfg.grpc_addr.clone(),
        raft: raft.clone(),
        sm: sm.clone(),
        discovery: Arc::clone(&discovery),
        shutdown: stopping.clone(),
        round_robin: Arc::new(AtomicU64::new(0)),
        produce: crate::grpc::batcher::Gatherer::start(
            raft.clone(),
            Arc::clone(&liveness),
            crate::grpc::client_service::now_ms,
        ),
        transfers: crate::grpc::batcher::Gatherer::start(
            raft.clone(),
            Arc::clone(&liveness),
            crate::grpc::client_service::now_ms,
        ),
        liveness: Arc::clone(&liveness),
        groups: Arc::clone(&groups),
        streams: Arc::default(),
    };
    let stop = stopping.stopping();
    let server = serve_grpc(addrs.grpc, &raft, client, tls.as_ref(), stop).await?;
    info!(id = cfg.id, grpc = %cfg.grpc_addr, gossip = %cfg.gossip_addr, "lognode serving");

    if cfg.bootstrap {
        bootstrap(&cfg, &raft).await?;
    }

    let manager = tokio::spawn(manage_membership(
        cfg.id,
        raft.clone(),
        sm.clone(),
        Arc::clone(&discovery),
        cfg.voters,
        stopping.clone(),
    ));
    let group_expirer = tokio::spawn(crate::groups::expire_task(groups, stopping.clone()));
    let expirer = tokio::spawn(expire_pending(raft.clone(), sm.clone(), stopping.clone()));
    if let Some(path) = cfg.fault_clock_file.clone() {
        // The chaos harness's clock nemesis (hidden flag): ends with the node.
        let stop = stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = crate::clock::follow(path) => {}
                () = stop.stopping() => {}
            }
        });
    }
    let policy = BytePolicy {
        floor: cfg.snapshot_log_bytes,
        percent: cfg.snapshot_log_percent,
        keep: cfg.retention_bytes,
        lag: cfg.retention_lag_bytes,
    };
    let snapshotter = tokio::spawn(snapshot_by_bytes(raft.clone(), sm.clone(), policy, stopping.clone()));
    if let Some(hash) = admin_key {
        // Ends by itself once the log has a key; not joined on shutdown (it stops on `stopping`).
        tokio::spawn(crate::admin_key::enter_bootstrap_key(raft.clone(), sm.clone(), hash, stopping.clone()));
    }
    let elections = {
        let stop = stopping.clone();
        tokio::spawn(crate::election::run(cfg.id, raft.clone(), liveness, async move { stop.stopping().await }))
    };
    // Not joined: it ends with Raft (a normal stop), or ends the process.
    tokio::spawn(stop_when_raft_fails(raft.clone()));
    Ok(NodeHandle {
        id: cfg.id,
        raft,
        sm,
        discovery,
        stopping,
        server,
        manager,
        expirer,
        group_expirer,
        snapshotter,
        elections,
    })
}

/// Stops the process ([`crate::crash::stop`], saying why) once Raft's core quits on an error: a
/// storage error such as a full disk (ENOSPC), or a panic. The node could then no longer append,
/// vote or apply, yet it went on answering reads and gossip as if alive, serving an ever older
/// state and never recovering, even once the disk had room again (found by the chaos harness's
/// disk nemesis, docs/FAULTS.md). A restart replays the log and rejoins. Raft's normal stop
/// (shutdown) is not an error.
async fn stop_when_raft_fails(raft: Raft) {
    let mut metrics = raft.metrics();
    drop(raft);
    loop {
        let failed = match &metrics.borrow().running_state {
            Ok(()) | Err(openraft::error::Fatal::Stopped) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = failed {
            crate::crash::stop(&format!("Raft's core quit on an error: {e}"));
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

impl NodeHandle {
    /// Graceful shutdown: stop accepting and finish in-flight calls (bounded), leave gossip, stop
    /// Raft.
    pub async fn shutdown(self) {
        info!(id = self.id, "shutting down");
        self.stopping.trigger("node shutdown");
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server).await.is_err() {
            warn!("gRPC server did not stop in time");
        }
        // The manager may wait on a membership change that cannot commit any more: stop it.
        self.manager.abort();
        self.expirer.abort();
        self.group_expirer.abort();
        self.snapshotter.abort();
        self.elections.abort();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.discovery.shutdown()).await.is_err() {
            warn!("leaving gossip did not finish in time");
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, self.raft.shutdown()).await {
            Ok(Err(e)) => warn!(error = %e, "raft shutdown"),
            Err(_) => warn!("raft did not stop in time"),
            Ok(Ok(())) => {}
        }
        let sm = self.sm.clone();
        match tokio::time::timeout(
            SHUTDOWN_GRACE,
            tokio::task::spawn_blocking(move || sm.close().map_err(|e| e.to_string())),
        )
        .await
        {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "closing the state store failed; the next start replays its journal"),
            Ok(Err(e)) => warn!(error = %e, "closing the state store panicked"),
            Err(_) => warn!("closing the state store did not finish in time; the next start replays its journal"),
        }
        info!(id = self.id, "stopped");
    }
}

/// When the log after the last snapshot is long enough for the next one.
#[derive(Debug, Clone, Copy)]
struct BytePolicy {
    /// `--snapshot-log-bytes`.
    floor: u64,
    /// `--snapshot-log-percent` of the last snapshot's size.
    percent: u64,
    /// `--retention-bytes`: bytes of log kept before the snapshot; older ones are purged.
    keep: Option<u64>,
    /// `--retention-lag-bytes`: bytes of log before the snapshot the leader may keep for a member
    /// that still needs them.
    lag: u64,
}

impl BytePolicy {
    /// Bytes of log after a snapshot of `snapshot_bytes` that call for the next one.
    fn threshold(self, snapshot_bytes: u64) -> u64 {
        let share = u128::from(snapshot_bytes) * u128::from(self.percent) / 100;
        self.floor.max(u64::try_from(share).unwrap_or(u64::MAX))
    }
}

/// Asks Raft for a snapshot whenever the log after the current one is long enough
/// ([`BytePolicy`]), on every node: a restart then applies again at most about that much log, and
/// the log behind the snapshot can be purged (`--retention-entries`, or here with
/// `--retention-bytes`). Raft ignores the request while a snapshot is being built.
async fn snapshot_by_bytes(raft: Raft, sm: StateMachineStore, policy: BytePolicy, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(SNAPSHOT_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purge_asked = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.stopping() => return,
        }
        if let Some(upto) = policy.keep.and_then(|keep| purge_point(&raft, &sm, keep, policy.lag))
            && upto > purge_asked
        {
            debug!(upto, "log before the snapshot is longer than --retention-bytes: purge");
            match raft.trigger().purge_log(upto).await {
                Ok(()) => purge_asked = upto,
                Err(e) => warn!(error = %e, "could not ask Raft to purge the log"),
            }
        }
        if sm.applied_index() <= sm.snapshot_index() {
            continue;
        }
        let bytes = sm.log_bytes_since_snapshot();
        let threshold = policy.threshold(sm.snapshot_bytes());
        if bytes >= threshold {
            debug!(bytes, threshold, "log since the last snapshot is long enough: snapshot");
            if let Err(e) = raft.trigger().snapshot().await {
                warn!(error = %e, "could not ask Raft for a snapshot");
            }
        }
    }
}

/// Where to purge the log so that `keep` bytes stay before the snapshot (`None`: not yet). On
/// the leader, not past what the slowest member has (it would need a snapshot), unless that
/// leaves more than `lag` bytes before the snapshot.
fn purge_point(raft: &Raft, sm: &StateMachineStore, keep: u64, lag: u64) -> Option<u64> {
    let upto = sm.purge_point(keep)?;
    let slowest = {
        let m = raft.metrics();
        let m = m.borrow();
        m.replication.as_ref().and_then(|r| r.values().map(|l| l.as_ref().map_or(0, |l| l.index)).min())
    };
    let Some(slowest) = slowest.filter(|s| *s < upto) else { return Some(upto) };
    let forced = sm.purge_point(keep.max(lag)).unwrap_or(0);
    let held = slowest.max(forced);
    if held < upto {
        debug!(upto, slowest, held, "the log a lagging member needs is kept");
    }
    (held > 0).then_some(held)
}

/// On the leader, turns gossip into Raft membership: newly discovered lognodes become learners,
/// caught-up learners are promoted while there are fewer than `voters_target` voters. Nodes that
/// gossip reports dead stay in the membership (removal is RemoveNode's job); nodes removed by
/// RemoveNode are never added back.
async fn manage_membership(
    id: u64,
    raft: Raft,
    sm: StateMachineStore,
    discovery: Arc<dyn Discovery>,
    voters_target: usize,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(MEMBERSHIP_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.stopping() => return,
        }
        let m = raft.metrics().borrow().clone();
        let voter = m.membership_config.membership().voter_ids().any(|v| v == id);
        discovery.set_role(match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Follower if voter => "follower",
            _ => "learner",
        });
        if m.state != ServerState::Leader {
            continue;
        }
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let known: BTreeSet<u64> = membership.nodes().map(|(n, _)| *n).collect();
        let removed = sm.with_state(|s| s.removed_nodes.clone());
        for member in discovery.members() {
            let meta = &member.meta;
            if meta.kind != MemberKind::Lognode
                || !member.alive
                || known.contains(&meta.node_id)
                || removed.contains(&meta.node_id)
            {
                continue;
            }
            info!(node = meta.node_id, addr = %meta.grpc_addr, "adding discovered node as learner");
            let add = raft.add_learner(meta.node_id, Node::new(meta.grpc_addr.clone()), false);
            match tokio::time::timeout(MEMBERSHIP_CALL_TIMEOUT, add).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => debug!(node = meta.node_id, error = %e, "add learner failed; will retry"),
                Err(_) => debug!(node = meta.node_id, "add learner timed out; will retry"),
            }
        }
        if voters.len() >= voters_target {
            continue;
        }
        let Some(replication) = &m.replication else { continue };
        let leader_last = m.last_log_index.unwrap_or(0);
        let caught_up: Vec<u64> = membership
            .learner_ids()
            .filter(|l| {
                replication
                    .get(l)
                    .and_then(|x| x.as_ref())
                    .is_some_and(|matched| matched.index + PROMOTE_LAG_MAX >= leader_last)
            })
            .take(voters_target - voters.len())
            .collect();
        if caught_up.is_empty() {
            continue;
        }
        info!(?caught_up, "promoting caught-up learners to voters");
        let change = ChangeMembers::AddVoterIds(caught_up.into_iter().collect());
        match tokio::time::timeout(MEMBERSHIP_CALL_TIMEOUT, raft.change_membership(change, false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => debug!(error = %e, "promotion failed; will retry"),
            Err(_) => debug!("promotion timed out; will retry"),
        }
    }
}

/// On the leader, proposes `ExpirePending { now_ms }` (the leader's clock, carried in the entry)
/// when the earliest pending-transfer deadline is due. Followers never propose; every node applies
/// the entry identically.
async fn expire_pending(raft: Raft, sm: StateMachineStore, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.stopping() => return,
        }
        if raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        for _ in 0..EXPIRY_ENTRIES_PER_TICK {
            let now_ms = crate::clock::now_ms_u64();
            let (due, _) = sm.with_ledger(|l| l.next_expiry_ms().is_some_and(|at| at <= now_ms));
            if !due {
                break;
            }
            let req = Request::Ledger { timestamp_ms: now_ms, command: ledger_core::Command::ExpirePending { now_ms } };
            match tokio::time::timeout(EXPIRY_WRITE_TIMEOUT, raft.client_write(req)).await {
                Ok(Ok(r)) => {
                    debug!(index = r.log_id.index, "proposed ExpirePending");
                    if !matches!(r.data, Response::Ledger(ledger_core::Outcome::Expire(e)) if e.more_due) {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    debug!(error = %e, "ExpirePending failed; will retry");
                    break;
                }
                Err(_) => {
                    debug!("ExpirePending timed out; will retry");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BytePolicy;

    #[test]
    fn the_snapshot_threshold_is_the_floor_or_a_share_of_the_last_snapshot() {
        let p = BytePolicy { floor: 64 << 20, percent: 100, keep: None, lag: 0 };
        assert_eq!(p.threshold(0), 64 << 20, "no snapshot yet: the floor");
        assert_eq!(p.threshold(10 << 20), 64 << 20, "a small state: the floor");
        assert_eq!(p.threshold(500 << 20), 500 << 20, "a large state: as much log as the snapshot");
        assert_eq!(
            BytePolicy { floor: 1 << 16, percent: 0, keep: None, lag: 0 }.threshold(500 << 20),
            1 << 16,
            "0 %: the floor only"
        );
        assert_eq!(
            BytePolicy { floor: 1, percent: 1000, keep: None, lag: 0 }.threshold(u64::MAX),
            u64::MAX,
            "saturates"
        );
    }
}
