//! Wiring: storage, Raft, gRPC server, gossip, the membership manager, and graceful shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ledger_proto::ledger::ledger_server::LedgerServer;
use ledger_proto::raft::raft_server::RaftServer;
use ledger_shutdown::Shutdown;
use openraft::storage::RaftLogStorage;
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tracing::{debug, info, warn};

use crate::config::{Config, resolve};
use crate::discovery::{Discovery, Gossip, MemberKind, MemberMeta};
use crate::grpc::CLIENT_MESSAGE_MAX;
use crate::grpc::client_service::ClientService;
use crate::grpc::raft_service::RaftService;
use crate::network::{Network, RAFT_MESSAGE_MAX};
use crate::store::{LogStore, StateMachineStore};
use crate::types::{Node, Raft, Request, Response};

/// Raft heartbeat interval.
pub const HEARTBEAT_MS: u64 = 150;
/// Raft election timeout range.
pub const ELECTION_TIMEOUT_MS: (u64, u64) = (750, 1500);
/// How often the leader turns gossip into Raft membership.
pub const MEMBERSHIP_TICK: Duration = Duration::from_millis(300);
/// A learner is promoted once its matched index is within this many entries of the leader's.
pub const PROMOTE_LAG_MAX: u64 = 100;
/// Most time one membership change by the manager may take before it is retried.
pub const MEMBERSHIP_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long each shutdown step (in-flight gRPC calls, gossip leave, Raft) may take.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// gRPC calls served concurrently per connection.
pub const CONCURRENCY_PER_CONNECTION: usize = 256;
/// Longest wait at startup for the entries committed before a restart to be applied again.
pub const STARTUP_APPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the leader checks for pending transfers whose deadline passed.
pub const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// Most time one `ExpirePending` proposal may take.
pub const EXPIRY_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most `ExpirePending` entries proposed in one tick (each expires up to
/// `ledger_core::limits::EXPIRE_PER_ENTRY_MAX` transfers).
pub const EXPIRY_ENTRIES_PER_TICK: usize = 8;
/// Segment size of the log.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

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
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Starts a node: opens storage, starts Raft, serves gRPC, joins gossip, bootstraps if asked.
pub async fn start(cfg: Config) -> Result<NodeHandle, String> {
    if cfg.id == 0 {
        return Err("--id must not be 0".into());
    }
    let grpc_bind = resolve(&cfg.grpc_addr)?;
    let gossip_bind = resolve(&cfg.gossip_addr)?;
    let seeds = cfg.join.iter().filter(|s| !s.is_empty()).map(|s| resolve(s)).collect::<Result<Vec<_>, _>>()?;

    let log_config = logstore::LogConfig { segment_size: SEGMENT_BYTES, fsync: cfg.fsync, ..Default::default() };
    let dir = cfg.data_dir.join("log");
    let (log, recovery) = tokio::task::spawn_blocking(move || logstore::Log::open(dir, log_config))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("open log: {e}"))?;
    info!(?recovery, "log opened");
    let log_store = LogStore::new(log.clone()).map_err(|e| format!("open log store: {e}"))?;
    // Node-local store of the ledger events (derived from applied entries, see the README).
    let events_dir = cfg.data_dir.join("events");
    let events_config = logstore::LogConfig { segment_size: SEGMENT_BYTES, fsync: cfg.fsync, ..Default::default() };
    let (events, _) = tokio::task::spawn_blocking(move || logstore::Log::open(events_dir, events_config))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("open events log: {e}"))?;
    let sm = StateMachineStore::open(log, events).map_err(|e| format!("open state machine: {e}"))?;

    // Everything committed before a restart is applied again before any read is served, so a
    // node never answers with older data than it did before it stopped.
    let committed = {
        let mut ls = log_store.clone();
        ls.read_committed().await.map_err(|e| format!("read committed: {e}"))?.map_or(0, |c| c.index)
    };

    let raft_config = openraft::Config {
        cluster_name: "ledger".into(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_TIMEOUT_MS.0,
        election_timeout_max: ELECTION_TIMEOUT_MS.1,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
        max_in_snapshot_log_to_keep: cfg.retention_entries.unwrap_or(u64::MAX),
        install_snapshot_timeout: 10_000,
        ..Default::default()
    };
    let raft_config = Arc::new(raft_config.validate().map_err(|e| format!("raft config: {e}"))?);
    let raft =
        Raft::new(cfg.id, raft_config, Network, log_store, sm.clone()).await.map_err(|e| format!("start raft: {e}"))?;

    let mut applied = sm.applied();
    if tokio::time::timeout(STARTUP_APPLY_TIMEOUT, applied.wait_for(|a| *a >= committed)).await.is_err() {
        warn!(committed, applied = sm.applied_index(), "committed entries not re-applied in time; serving anyway");
    }

    let meta = MemberMeta {
        kind: MemberKind::Lognode,
        node_id: cfg.id,
        grpc_addr: cfg.grpc_addr.clone(),
        role: "follower".into(),
    };
    let discovery: Arc<dyn Discovery> = Gossip::start(gossip_bind, meta, seeds, cfg.gossip_profile).await?;

    let stopping = Shutdown::new();
    let groups = crate::groups::Coordinator::new(cfg.id, raft.clone(), sm.clone());
    let client = ClientService {
        id: cfg.id,
        grpc_addr: cfg.grpc_addr.clone(),
        raft: raft.clone(),
        sm: sm.clone(),
        discovery: Arc::clone(&discovery),
        shutdown: stopping.clone(),
        round_robin: Arc::new(AtomicU64::new(0)),
        produce: crate::grpc::batcher::Gatherer::start(raft.clone(), crate::grpc::client_service::now_ms),
        transfers: crate::grpc::batcher::Gatherer::start(raft.clone(), crate::grpc::client_service::now_ms),
        groups: Arc::clone(&groups),
    };
    let listener =
        tokio::net::TcpListener::bind(grpc_bind).await.map_err(|e| format!("bind gRPC on {grpc_bind}: {e}"))?;
    let server = {
        let stop = stopping.stopping();
        let router = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
            .tcp_nodelay(true)
            .add_service(
                RaftServer::new(RaftService::new(raft.clone()))
                    .max_decoding_message_size(RAFT_MESSAGE_MAX)
                    .max_encoding_message_size(RAFT_MESSAGE_MAX),
            )
            .add_service(
                LedgerServer::new(client)
                    .max_decoding_message_size(CLIENT_MESSAGE_MAX)
                    .max_encoding_message_size(CLIENT_MESSAGE_MAX),
            );
        // With our own listener, tonic's `tcp_nodelay` does not apply: set it on the incoming
        // side, or small responses wait for Nagle + delayed ACK (~40 ms).
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                warn!(error = %e, "gRPC server failed");
            }
        })
    };
    info!(id = cfg.id, grpc = %cfg.grpc_addr, gossip = %cfg.gossip_addr, "lognode serving");

    if cfg.bootstrap {
        let initialized = raft.is_initialized().await.map_err(|e| e.to_string())?;
        if initialized {
            info!("already initialized; --bootstrap ignored");
        } else {
            let members = BTreeMap::from([(cfg.id, Node::new(cfg.grpc_addr.clone()))]);
            raft.initialize(members).await.map_err(|e| format!("bootstrap: {e}"))?;
            info!("bootstrapped a new cluster");
        }
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
    Ok(NodeHandle { id: cfg.id, raft, sm, discovery, stopping, server, manager, expirer, group_expirer })
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
        if tokio::time::timeout(SHUTDOWN_GRACE, self.discovery.shutdown()).await.is_err() {
            warn!("leaving gossip did not finish in time");
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, self.raft.shutdown()).await {
            Ok(Err(e)) => warn!(error = %e, "raft shutdown"),
            Err(_) => warn!("raft did not stop in time"),
            Ok(Ok(())) => {}
        }
        info!(id = self.id, "stopped");
    }
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
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
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
