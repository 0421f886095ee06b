//! The lognodes the gateway knows: one long-lived gRPC channel per node, liveness (gossip or
//! probes), the leader, and the two call loops (leader calls with retry, spread reads).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ledger_discovery::{Discovery, MemberKind};
use ledger_proto::ledger::ledger_client::LedgerClient;
use ledger_proto::ledger::{ClusterStatusRequest, ReadOptions, Role};
use ledger_proto::{LEADER_ADDR_METADATA, LEADER_ID_METADATA};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::backend::{BackendError, BackendResult, Missing, ReadConsistency};

/// TCP connect timeout of a node's channel.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// HTTP/2 keep-alive ping interval on a node's channel (detects a dead peer on an idle channel).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Largest gRPC message exchanged with a lognode: the wire limit both sides use.
pub const MESSAGE_MAX: usize = ledger_proto::limits::MESSAGE_BYTES_MAX;
/// How often every known node is probed (`ClusterStatus{local_only}`) and gossip is re-read.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Deadline of one probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// Total time a write may spend finding the leader and retrying (elections take 1–3 s with
/// lognode's 750–1500 ms election timeout); stays below the gateway's 5 s backend timeout so the
/// client gets `unavailable` + `Retry-After` rather than a cut call.
pub const WRITE_RETRY_BUDGET: Duration = Duration::from_millis(4000);
/// Budget of `/readyz` (finding a leader that confirms it leads).
pub const READY_BUDGET: Duration = Duration::from_millis(1000);
/// First pause between write attempts; doubled up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest pause between write attempts.
pub const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// Most nodes one follower read tries before it fails.
pub const READ_ATTEMPTS_MAX: usize = 3;
/// Deadline of one follower-read attempt on one node (a stalled node is left for the next one);
/// a long poll adds its `wait_ms`.
pub const READ_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2000);
/// A node whose connection failed is avoided this long (or until a probe succeeds).
pub const DOWN_FOR: Duration = Duration::from_secs(1);
/// How long a `min_index` read waits on one node for the index to be applied.
pub const MIN_INDEX_WAIT_MS: u32 = 1500;
/// `Retry-After` suggested when no leader could be reached in time.
pub const RETRY_AFTER_MS: u64 = 1000;

const _: () = assert!(WRITE_RETRY_BUDGET.as_millis() < crate::limits::BACKEND_TIMEOUT_DEFAULT.as_millis());
const _: () = assert!(BACKOFF_MIN.as_millis() <= BACKOFF_MAX.as_millis());
const _: () = assert!((MIN_INDEX_WAIT_MS as u128) < READ_ATTEMPT_TIMEOUT.as_millis());

/// Whether a call may be sent again after an answer that leaves it unknown whether the leader
/// received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Every write carries its idempotency id (account/transfer ids, topic names, node ids):
    /// sending it twice applies it once. Retried after any transient failure.
    Always,
    /// No idempotency id (records of `produce`): retried only when the request surely did not
    /// reach a leader (not-leader, no leader known, connection refused).
    IfNotDelivered,
}

struct Node {
    id: Option<u64>,
    channel: Channel,
    /// From gossip (`None`: static node list, no gossip).
    gossip_alive: Option<bool>,
    /// Last probe answered.
    probe_ok: bool,
    down_until: Option<Instant>,
    /// Reads this node served.
    served: u64,
}

impl Node {
    /// Gossip says alive (when there is gossip), the last probe answered, and no connection
    /// failed in the last [`DOWN_FOR`].
    fn alive(&self, now: Instant) -> bool {
        self.gossip_alive.unwrap_or(true) && self.probe_ok && self.down_until.is_none_or(|t| now >= t)
    }
}

#[derive(Default)]
struct State {
    /// By gRPC address.
    nodes: BTreeMap<String, Node>,
    /// (id, address) of the leader, when known.
    leader: Option<(u64, String)>,
    /// Last leader id ever seen (changes are counted against it).
    last_leader_id: Option<u64>,
    /// Mutual TLS to the lognodes (`--cluster-*`); plaintext when `None`.
    tls: Option<tonic::transport::ClientTlsConfig>,
}

/// The node set (shared with the background prober).
pub struct Nodes {
    state: Mutex<State>,
    discovery: Option<Arc<dyn Discovery>>,
    rr: AtomicUsize,
    leader_changes: AtomicU64,
    /// Highest applied index any probe reported: a `min_index` at or below it surely exists, so
    /// only a higher one costs a question to the leader (see [`Nodes::read_call`]).
    applied_high: AtomicU64,
}

/// A chosen node.
pub struct Target {
    /// Its address.
    pub addr: String,
    /// Its client (a clone of the node's long-lived channel).
    pub client: LedgerClient<Channel>,
}

fn channel(addr: &str, tls: Option<&tonic::transport::ClientTlsConfig>) -> Option<Channel> {
    let ep = Endpoint::from_shared(ledger_proto::tls::endpoint_uri(addr, tls.is_some())).ok()?;
    let ep = match tls {
        Some(t) => ep.tls_config(t.clone()).ok()?,
        None => ep,
    };
    Some(
        ep.connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_INTERVAL)
            .keep_alive_while_idle(true)
            .connect_lazy(),
    )
}

fn client(ch: Channel) -> LedgerClient<Channel> {
    LedgerClient::new(ch).max_decoding_message_size(MESSAGE_MAX).max_encoding_message_size(MESSAGE_MAX)
}

/// How a failed call is handled.
#[derive(Debug)]
pub enum Failure {
    /// The node is not the leader and named it.
    NotLeader(u64, String),
    /// No leader is known (election): the request was refused.
    NoLeader,
    /// The connection could not be made: the request was not sent.
    Unreachable,
    /// The request may have reached the node (connection lost, timeout, Raft stopped).
    Unsure,
    /// `min_index` not applied in time on that node.
    Lagging,
    /// A definitive answer.
    Final(BackendError),
}

/// True when the status says the TCP connection could not be established (the request was
/// never written to the wire).
fn is_connect_error(s: &Status) -> bool {
    let mut text = s.message().to_ascii_lowercase();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        text.push(' ');
        text.push_str(&e.to_string().to_ascii_lowercase());
        src = e.source();
    }
    text.contains("tcp connect error")
        || text.contains("connection refused")
        || text.contains("error trying to connect")
}

fn missing_of(msg: &str) -> Missing {
    let m = msg.to_ascii_lowercase();
    if m.contains("partition") {
        Missing::Partition
    } else if m.contains("node") {
        Missing::Node
    } else {
        Missing::Topic
    }
}

/// Classifies a gRPC status from a lognode (see `proto/ledger.proto` for the error model).
pub fn classify(s: &Status) -> Failure {
    let msg = s.message().to_owned();
    if let Some(code) = s
        .metadata()
        .get(ledger_proto::GROUP_CODE_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(group_core::GroupCode::parse)
    {
        return Failure::Final(BackendError::Group(code, msg));
    }
    match s.code() {
        Code::FailedPrecondition => {
            let md = s.metadata();
            let id = md.get(LEADER_ID_METADATA).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            let addr = md.get(LEADER_ADDR_METADATA).and_then(|v| v.to_str().ok()).map(str::to_owned);
            match (id, addr) {
                (Some(id), Some(addr)) => Failure::NotLeader(id, addr),
                // E.g. a membership change refused while another is in progress: transient.
                _ => Failure::NoLeader,
            }
        }
        Code::Unavailable if is_connect_error(s) => Failure::Unreachable,
        Code::Unavailable if msg.contains("no leader is known") => Failure::NoLeader,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted | Code::ResourceExhausted => {
            Failure::Unsure
        }
        Code::DeadlineExceeded if msg.contains("min_index") => Failure::Lagging,
        Code::DeadlineExceeded => Failure::Unsure,
        Code::NotFound => Failure::Final(BackendError::NotFound(missing_of(&msg), msg)),
        Code::AlreadyExists => Failure::Final(BackendError::AlreadyExists(msg)),
        Code::OutOfRange => Failure::Final(BackendError::OutOfRange(msg)),
        Code::InvalidArgument => Failure::Final(BackendError::InvalidArgument(msg)),
        _ => Failure::Final(BackendError::Internal(format!("{:?}: {msg}", s.code()))),
    }
}

fn unavailable() -> BackendError {
    BackendError::Unavailable { retry_after_ms: RETRY_AFTER_MS }
}

impl Nodes {
    /// A node set over a static address list and/or gossip.
    pub fn new(
        static_addrs: &[String],
        discovery: Option<Arc<dyn Discovery>>,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Arc<Nodes> {
        let nodes = Arc::new(Nodes {
            state: Mutex::new(State { tls, ..State::default() }),
            discovery,
            rr: AtomicUsize::new(0),
            leader_changes: AtomicU64::new(0),
            applied_high: AtomicU64::new(0),
        });
        {
            let mut st = nodes.lock();
            for a in static_addrs {
                Self::ensure(&mut st, a);
            }
        }
        nodes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ensure<'a>(st: &'a mut State, addr: &str) -> Option<&'a mut Node> {
        if !st.nodes.contains_key(addr) {
            let ch = channel(addr, st.tls.as_ref())?;
            st.nodes.insert(
                addr.to_owned(),
                Node { id: None, channel: ch, gossip_alive: None, probe_ok: true, down_until: None, served: 0 },
            );
        }
        st.nodes.get_mut(addr)
    }

    /// Records the leader named by a node (not-leader metadata or a probe).
    pub fn set_leader(&self, id: u64, addr: &str) {
        let mut st = self.lock();
        if let Some(n) = Self::ensure(&mut st, addr) {
            n.id.get_or_insert(id);
        }
        if st.leader.as_ref().is_some_and(|(l, a)| *l == id && a == addr) {
            return;
        }
        if st.last_leader_id.is_some_and(|l| l != id) {
            self.leader_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(leader = id, %addr, "leader changed");
        }
        st.last_leader_id = Some(id);
        st.leader = Some((id, addr.to_owned()));
    }

    /// Forgets the leader if it is the node at `addr`.
    fn clear_leader_at(&self, addr: &str) {
        let mut st = self.lock();
        if st.leader.as_ref().is_some_and(|(_, a)| a == addr) {
            st.leader = None;
        }
    }

    /// Avoids `addr` for [`DOWN_FOR`] (its connection failed) and forgets it as leader.
    pub fn mark_down(&self, addr: &str) {
        let mut st = self.lock();
        if let Some(n) = st.nodes.get_mut(addr) {
            n.down_until = Some(Instant::now() + DOWN_FOR);
            n.probe_ok = false;
        }
        if st.leader.as_ref().is_some_and(|(_, a)| a == addr) {
            st.leader = None;
        }
    }

    fn target(st: &State, addr: &str) -> Option<Target> {
        st.nodes.get(addr).map(|n| Target { addr: addr.to_owned(), client: client(n.channel.clone()) })
    }

    /// The leader, if known and not marked down.
    fn leader_target(&self) -> Option<Target> {
        let st = self.lock();
        let now = Instant::now();
        let (_, addr) = st.leader.as_ref()?;
        st.nodes.get(addr).filter(|n| n.down_until.is_none_or(|t| now >= t))?;
        Self::target(&st, addr)
    }

    /// Round robin over the live nodes (then over all of them) except `exclude`.
    fn any_target(&self, exclude: &[String]) -> Option<Target> {
        let st = self.lock();
        let now = Instant::now();
        let alive: Vec<&String> =
            st.nodes.iter().filter(|(a, n)| n.alive(now) && !exclude.contains(a)).map(|(a, _)| a).collect();
        let pool: Vec<&String> =
            if alive.is_empty() { st.nodes.keys().filter(|a| !exclude.contains(a)).collect() } else { alive };
        if pool.is_empty() {
            return None;
        }
        let i = self.rr.fetch_add(1, Ordering::Relaxed) % pool.len();
        Self::target(&st, pool[i])
    }

    /// A read target: round robin over the live followers; the leader only when no follower is
    /// live; any other node as a last resort.
    fn read_target(&self, exclude: &[String]) -> Option<Target> {
        let picked = {
            let st = self.lock();
            let now = Instant::now();
            let leader = st.leader.as_ref().map(|(_, a)| a.as_str());
            let followers: Vec<&String> = st
                .nodes
                .iter()
                .filter(|(a, n)| n.alive(now) && Some(a.as_str()) != leader && !exclude.contains(a))
                .map(|(a, _)| a)
                .collect();
            if followers.is_empty() {
                leader
                    .filter(|l| !exclude.iter().any(|e| e == l) && st.nodes.get(*l).is_some_and(|n| n.alive(now)))
                    .and_then(|l| Self::target(&st, l))
            } else {
                let i = self.rr.fetch_add(1, Ordering::Relaxed) % followers.len();
                Self::target(&st, followers[i])
            }
        };
        picked.or_else(|| self.any_target(exclude))
    }

    fn served(&self, addr: &str) {
        if let Some(n) = self.lock().nodes.get_mut(addr) {
            n.served += 1;
        }
    }

    /// Leader changes seen.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// Reads served per node: (node id, or 0 while unknown; address; count).
    pub fn reads_served(&self) -> Vec<(u64, String, u64)> {
        self.lock().nodes.iter().map(|(a, n)| (n.id.unwrap_or(0), a.clone(), n.served)).collect()
    }

    /// The leader as currently known.
    pub fn leader(&self) -> Option<(u64, String)> {
        self.lock().leader.clone()
    }

    /// Copies gossip's view of the lognodes into the node set.
    fn refresh_from_gossip(&self) {
        let Some(d) = &self.discovery else { return };
        let members = d.members();
        let mut st = self.lock();
        let mut seen = Vec::new();
        for m in members.iter().filter(|m| m.meta.kind == MemberKind::Lognode) {
            if let Some(n) = Self::ensure(&mut st, &m.meta.grpc_addr) {
                n.id = Some(m.meta.node_id);
                n.gossip_alive = Some(m.alive);
                seen.push(m.meta.grpc_addr.clone());
            }
        }
        for (a, n) in st.nodes.iter_mut() {
            if n.gossip_alive.is_some() && !seen.contains(a) {
                n.gossip_alive = Some(false);
            }
        }
    }

    /// Asks every node for its local status (concurrently, bounded): liveness, id, and the
    /// leader it knows. A node that says it leads wins over the others' opinions.
    pub async fn probe_all(&self) {
        self.refresh_from_gossip();
        let targets: Vec<(String, LedgerClient<Channel>)> = {
            let st = self.lock();
            st.nodes.iter().map(|(a, n)| (a.clone(), client(n.channel.clone()))).collect()
        };
        let mut set = tokio::task::JoinSet::new();
        for (addr, mut c) in targets {
            set.spawn(async move {
                let mut req = tonic::Request::new(ClusterStatusRequest { local_only: true });
                req.set_timeout(PROBE_TIMEOUT);
                let r = tokio::time::timeout(PROBE_TIMEOUT, c.cluster_status(req)).await;
                (addr, r.ok().and_then(Result::ok).map(tonic::Response::into_inner))
            });
        }
        // (term, id, addr) of the node that says it leads in the highest term.
        let mut self_leader: Option<(u64, u64, String)> = None;
        let mut named: Option<(u64, String)> = None;
        while let Some(Ok((addr, resp))) = set.join_next().await {
            let mut st = self.lock();
            let Some(n) = st.nodes.get_mut(&addr) else { continue };
            match resp {
                Some(r) => {
                    n.probe_ok = true;
                    n.down_until = None;
                    n.id = Some(r.node_id);
                    if let Some(me) = r.nodes.first() {
                        self.applied_high.fetch_max(me.last_applied_index, Ordering::Relaxed);
                    }
                    // A leader that lost its quorum names no leader (and says so): skipped.
                    let me = r.nodes.first();
                    let leads = me.is_some_and(|s| s.role == Role::Leader as i32 && !s.quorum_lost);
                    if leads && r.leader_id == r.node_id {
                        // Two nodes that both say they lead (one cut off, not yet deposed): the
                        // higher term does.
                        let term = me.map_or(0, |s| s.term);
                        if self_leader.as_ref().is_none_or(|(t, _, _)| term > *t) {
                            self_leader = Some((term, r.node_id, addr.clone()));
                        }
                    } else if r.leader_id != 0 && !r.leader_addr.is_empty() {
                        named.get_or_insert((r.leader_id, r.leader_addr));
                    }
                }
                None => n.probe_ok = false,
            }
        }
        if let Some((id, addr)) = self_leader.map(|(_, id, addr)| (id, addr)).or(named) {
            self.set_leader(id, &addr);
        }
    }

    /// Runs `f` on the leader, following not-leader answers and retrying transient failures with
    /// backoff until `budget` is spent (then `Unavailable`). `retry` says whether an answer that
    /// leaves delivery unknown may be retried.
    pub async fn leader_call<T, F, Fut>(&self, retry: Retry, budget: Duration, mut f: F) -> BackendResult<T>
    where
        F: FnMut(LedgerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + budget;
        let mut backoff = BACKOFF_MIN;
        // Bounded by the deadline: every turn either returns, or sleeps, or follows a redirect
        // to a leader other than the node just asked (at most a few in a row).
        let mut redirects = 0u32;
        loop {
            let target = match self.leader_target() {
                Some(t) => Some(t),
                None => self.any_target(&[]),
            };
            let mut pause = true;
            if let Some(t) = target {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                match tokio::time::timeout(remaining, f(t.client)).await {
                    Err(_) => return Err(BackendError::Timeout),
                    Ok(Ok(v)) => return Ok(v),
                    Ok(Err(status)) => match classify(&status) {
                        Failure::NotLeader(id, addr) => {
                            let same = addr == t.addr;
                            self.set_leader(id, &addr);
                            // Follow a fresh redirect at once; a redirect to a node we cannot
                            // use (or a loop) waits.
                            if !same && redirects < 3 && self.leader_target().is_some() {
                                redirects += 1;
                                pause = false;
                            }
                        }
                        Failure::NoLeader => self.clear_leader_at(&t.addr),
                        Failure::Unreachable => self.mark_down(&t.addr),
                        Failure::Unsure | Failure::Lagging => {
                            if retry == Retry::IfNotDelivered {
                                tracing::debug!(node = %t.addr, %status, "write outcome unknown; not retried");
                                return Err(unavailable());
                            }
                            self.mark_down(&t.addr);
                        }
                        Failure::Final(e) => return Err(e),
                    },
                }
            }
            if pause {
                redirects = 0;
                if Instant::now() + backoff >= deadline {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                if self.leader_target().is_none() {
                    self.probe_all().await;
                }
            }
        }
        Err(unavailable())
    }

    /// Runs a read with the requested consistency: `Strong` on the leader (linearizable),
    /// otherwise on followers (round robin, at most [`READ_ATTEMPTS_MAX`] nodes, each for at most
    /// [`READ_ATTEMPT_TIMEOUT`] + `extra`).
    pub async fn read_call<T, F, Fut>(&self, read: ReadConsistency, extra: Duration, mut f: F) -> BackendResult<T>
    where
        F: FnMut(LedgerClient<Channel>, ReadOptions) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let opts = match read {
            ReadConsistency::Strong => ReadOptions { linearizable: true, min_index: 0, wait_ms: 0 },
            ReadConsistency::Follower => ReadOptions::default(),
            ReadConsistency::MinIndex(n) => {
                ReadOptions { linearizable: false, min_index: n, wait_ms: MIN_INDEX_WAIT_MS }
            }
        };
        if read == ReadConsistency::Strong {
            let r = self.leader_call(Retry::Always, WRITE_RETRY_BUDGET, |c| f(c, opts)).await;
            if r.is_ok()
                && let Some((_, addr)) = self.leader()
            {
                self.served(&addr);
            }
            return r;
        }
        if let ReadConsistency::MinIndex(n) = read
            && n > self.applied_high.load(Ordering::Relaxed)
            && let Some(current) = self.leader_applied_index().await
            && n > current
        {
            // Every acknowledged write was applied by the leader before it was acknowledged:
            // an index past the leader's applied one was never given to any client.
            return Err(BackendError::IndexNotReached { min_index: n, current });
        }
        let mut lagging = false;
        let mut tried: Vec<String> = Vec::new();
        for _ in 0..READ_ATTEMPTS_MAX {
            let Some(t) = self.read_target(&tried) else { break };
            let Ok(answer) = tokio::time::timeout(READ_ATTEMPT_TIMEOUT + extra, f(t.client, opts)).await else {
                tracing::debug!(node = %t.addr, "read attempt timed out; trying another node");
                tried.push(t.addr);
                continue;
            };
            match answer {
                Ok(v) => {
                    self.served(&t.addr);
                    return Ok(v);
                }
                Err(status) => match classify(&status) {
                    Failure::Final(e) => return Err(e),
                    Failure::Lagging => lagging = true,
                    Failure::Unreachable | Failure::Unsure => {
                        self.mark_down(&t.addr);
                    }
                    Failure::NotLeader(id, addr) => self.set_leader(id, &addr),
                    Failure::NoLeader => {}
                },
            }
            tried.push(t.addr);
        }
        match read {
            // A replica answered but had not applied the index in time: say exactly that.
            ReadConsistency::MinIndex(min_index) if lagging => {
                Err(BackendError::IndexNotApplied { min_index, retry_after_ms: RETRY_AFTER_MS })
            }
            _ => Err(unavailable()),
        }
    }

    /// The leader's last applied index (one `ClusterStatus{local_only}` call, at most
    /// [`PROBE_TIMEOUT`]); `None` when no leader is known or it does not answer in time.
    async fn leader_applied_index(&self) -> Option<u64> {
        let mut c = self.leader_target()?.client;
        let mut req = tonic::Request::new(ClusterStatusRequest { local_only: true });
        req.set_timeout(PROBE_TIMEOUT);
        let r = tokio::time::timeout(PROBE_TIMEOUT, c.cluster_status(req)).await.ok()?.ok()?.into_inner();
        let me = r.nodes.first()?;
        (me.role == Role::Leader as i32).then_some(())?;
        self.applied_high.fetch_max(me.last_applied_index, Ordering::Relaxed);
        Some(me.last_applied_index)
    }

    /// Runs `f` on one node (the leader if known, else any live one), trying up to
    /// [`READ_ATTEMPTS_MAX`] nodes. For calls any node can answer (cluster status).
    pub async fn any_call<T, F, Fut>(&self, mut f: F) -> BackendResult<T>
    where
        F: FnMut(LedgerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut tried: Vec<String> = Vec::new();
        for _ in 0..READ_ATTEMPTS_MAX {
            let t = match self.leader_target().filter(|t| !tried.contains(&t.addr)) {
                Some(t) => t,
                None => match self.any_target(&tried) {
                    Some(t) => t,
                    None => break,
                },
            };
            match f(t.client).await {
                Ok(v) => return Ok(v),
                Err(status) => match classify(&status) {
                    Failure::Final(e) => return Err(e),
                    _ => self.mark_down(&t.addr),
                },
            }
            tried.push(t.addr);
        }
        Err(unavailable())
    }
}

/// Probes the nodes every [`PROBE_INTERVAL`] until the node set is dropped.
pub fn spawn_prober(nodes: &Arc<Nodes>) -> tokio::task::JoinHandle<()> {
    let weak: Weak<Nodes> = Arc::downgrade(nodes);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(nodes) = weak.upgrade() else { return };
            nodes.probe_all().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    #[test]
    fn statuses_are_classified() {
        let mut s = Status::failed_precondition("not the leader");
        s.metadata_mut().insert(LEADER_ID_METADATA, MetadataValue::from(2u64));
        s.metadata_mut().insert(LEADER_ADDR_METADATA, MetadataValue::from_static("127.0.0.1:1"));
        assert!(matches!(classify(&s), Failure::NotLeader(2, a) if a == "127.0.0.1:1"));
        assert!(matches!(
            classify(&Status::unavailable("not the leader and no leader is known yet; retry")),
            Failure::NoLeader
        ));
        assert!(matches!(classify(&Status::unavailable("tcp connect error")), Failure::Unreachable));
        assert!(matches!(classify(&Status::unavailable("connection reset")), Failure::Unsure));
        assert!(matches!(classify(&Status::deadline_exceeded("min_index is 9")), Failure::Lagging));
        assert!(matches!(
            classify(&Status::not_found("topic \"t\" has no partition 9")),
            Failure::Final(BackendError::NotFound(Missing::Partition, _))
        ));
        assert!(matches!(
            classify(&Status::not_found("unknown topic \"t\"")),
            Failure::Final(BackendError::NotFound(Missing::Topic, _))
        ));
        assert!(matches!(classify(&Status::internal("x")), Failure::Final(BackendError::Internal(_))));
    }
}
