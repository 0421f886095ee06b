//! The product [`LedgerBackend`]: gRPC (`proto/ledger.proto`) to the lognode cluster.
//!
//! - **Connections**: one long-lived tonic `Channel` per lognode (HTTP/2, multiplexed), created
//!   when the node is first learned (from `--lognodes`, gossip, or a not-leader redirect).
//! - **Nodes and leader**: gossip (`--join`) or the static list gives the nodes; a background
//!   prober asks each for `ClusterStatus{local_only}` every [`nodes::PROBE_INTERVAL`] (liveness,
//!   ids, the leader); a not-leader answer's `ledger-leader-id`/`-addr` metadata updates the
//!   leader at once.
//! - **Writes** go to the leader. Not-leader, no-leader and connection failures are retried
//!   against the (new) leader with backoff ([`nodes::BACKOFF_MIN`]..[`nodes::BACKOFF_MAX`]) for at
//!   most [`nodes::WRITE_RETRY_BUDGET`], then [`BackendError::Unavailable`]. Ledger commands,
//!   topics and node removals carry their own idempotency key and are also retried when the
//!   outcome is unknown (connection lost mid-call); `produce` records have no id, so a produce is
//!   retried only when it surely did not reach a leader ([`nodes::Retry::IfNotDelivered`]).
//! - **Reads** go round robin to the followers gossip (or the prober) says are alive, to the
//!   leader only when no follower is; `Strong` reads go to the leader with `linearizable`,
//!   `MinIndex(n)` reads to a follower with `min_index = n` (waiting at most
//!   [`nodes::MIN_INDEX_WAIT_MS`] per node).

mod gather;
use gather::submit_command;
mod keys;
use keys::{key_from_proto, key_to_proto};
mod nodes;
mod queries;
mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ledger_core::{AccountView, Command, HistoryFrom, HistoryPage, Outcome, TransferView};
use ledger_discovery::Discovery;
use ledger_proto::convert;
use ledger_proto::ledger::{
    AccountTransfersRequest, ClusterStatusRequest, ConsumeRequest, ConsumeResponse, CreateTopicRequest,
    DeleteTopicRequest, GetAccountRequest, GetTransferRequest, Header, ListTopicsRequest, ProduceBatchRequest, Record,
    RemoveNodeRequest, Role,
};

pub use self::nodes::{
    BACKOFF_MAX, BACKOFF_MIN, MIN_INDEX_WAIT_MS, PROBE_INTERVAL, READ_ATTEMPT_TIMEOUT, READ_ATTEMPTS_MAX, READY_BUDGET,
    RETRY_AFTER_MS, Retry, WRITE_RETRY_BUDGET,
};
use self::nodes::{Nodes, spawn_prober};
use crate::backend::{
    Applied, BackendError, BackendResult, BackendStats, ClusterStatus, FetchRequest, Fetched, GroupFetched,
    GroupRecord, LedgerBackend, Missing, NewRecord, NodeRole, NodeStatus, Read, ReadConsistency, RecordOffset,
    StoredRecord, TopicCreated, TopicInfo,
};
use group_core::{GroupSummary, GroupView, MemberReply, OffsetReset, ResetTarget, TopicPartition};
use ledger_proto::convert::groups as group_convert;
use ledger_proto::ledger::{
    CommitOffsetsRequest, DeleteGroupRequest, DescribeGroupRequest, GroupFetchRequest, GroupHeartbeatRequest,
    LeaveGroupRequest, ListGroupsRequest, ResetOffsetsRequest,
};

/// FNV-1a, the key hash lognode (and the gateway's test backend) partitions by: records with the
/// same key land on `hash(key) % partitions`.
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Where the gateway finds the lognodes.
pub enum Lognodes {
    /// A fixed list of gRPC addresses.
    Static(Vec<String>),
    /// Gossip (the gateway is a non-storage member).
    Gossip(Arc<dyn Discovery>),
}

/// The gRPC backend.
pub struct GrpcBackend {
    nodes: Arc<Nodes>,
    discovery: Option<Arc<dyn Discovery>>,
    prober: tokio::task::JoinHandle<()>,
    /// Single transfers, gathered into one call ([`gather`]).
    transfers: gather::TransferGatherer,
    /// Partition counts by topic (a topic's count never changes).
    partitions: Mutex<HashMap<String, u32>>,
    /// Round robin over partitions for the keyless records of produce requests.
    keyless: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for GrpcBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBackend").finish_non_exhaustive()
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.prober.abort();
    }
}

fn bad_answer(e: convert::ConvertError) -> BackendError {
    BackendError::Internal(format!("a lognode answered a message that does not convert: {e}"))
}

fn headers_out(h: Vec<(String, String)>) -> Vec<Header> {
    h.into_iter().map(|(key, value)| Header { key, value: value.into_bytes() }).collect()
}

fn headers_in(h: Vec<Header>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> =
        h.into_iter().map(|h| (h.key, String::from_utf8_lossy(&h.value).into_owned())).collect();
    v.sort();
    v
}

fn stored(x: ledger_proto::ledger::ConsumedRecord) -> StoredRecord {
    StoredRecord {
        offset: x.offset,
        key: if x.key.is_empty() { None } else { Some(String::from_utf8_lossy(&x.key).into_owned()) },
        value: x.value,
        headers: headers_in(x.headers),
        timestamp_ms: u64::try_from(x.timestamp_ms).unwrap_or(0),
    }
}

fn fetched(r: ConsumeResponse) -> Read<Fetched> {
    let records = r.records.into_iter().map(stored).collect();
    Read {
        value: Fetched { records, next_offset: r.next_offset, end_offset: r.end_offset },
        applied_index: r.applied_index,
    }
}

impl GrpcBackend {
    /// Starts the backend (and its background prober; needs a Tokio runtime).
    pub async fn start(lognodes: Lognodes) -> Arc<GrpcBackend> {
        Self::start_with_tls(lognodes, None).await
    }

    /// [`GrpcBackend::start`], calling the lognodes over mutual TLS when `tls` is given
    /// (`gateway --cluster-*`, docs/SECURITY.md).
    pub async fn start_with_tls(
        lognodes: Lognodes,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Arc<GrpcBackend> {
        let (addrs, discovery) = match lognodes {
            Lognodes::Static(a) => (a, None),
            Lognodes::Gossip(d) => (Vec::new(), Some(d)),
        };
        let nodes = Nodes::new(&addrs, discovery.clone(), tls);
        nodes.probe_all().await;
        let prober = spawn_prober(&nodes);
        let transfers = gather::TransferGatherer::start(Arc::clone(&nodes));
        Arc::new(GrpcBackend {
            nodes,
            discovery,
            prober,
            transfers,
            partitions: Mutex::new(HashMap::new()),
            keyless: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Stops probing and leaves the gossip (graceful shutdown).
    pub async fn shutdown(&self) {
        self.prober.abort();
        if let Some(d) = &self.discovery {
            d.shutdown().await;
        }
    }

    /// The leader as currently known: (id, gRPC address).
    pub fn leader(&self) -> Option<(u64, String)> {
        self.nodes.leader()
    }

    async fn partitions_of(&self, topic: &str) -> BackendResult<u32> {
        if let Some(n) = self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(topic) {
            return Ok(*n);
        }
        let topics = self.list_topics(ReadConsistency::Strong).await?.value;
        let mut cache = self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in &topics {
            cache.insert(t.name.clone(), t.partitions);
        }
        cache.get(topic).copied().ok_or_else(|| BackendError::NotFound(Missing::Topic, format!("no topic '{topic}'")))
    }

    async fn get_account(
        &self,
        id: &str,
        as_of_index: Option<u64>,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<AccountView>>> {
        let r = self
            .nodes
            .read_call(read, Duration::ZERO, |mut c, opts| {
                let req = GetAccountRequest { id: id.to_owned(), as_of_index, read: Some(opts) };
                async move { Ok(c.get_account(req).await?.into_inner()) }
            })
            .await?;
        let value = r.account.map(convert::account_from_proto).transpose().map_err(bad_answer)?;
        Ok(Read { value, applied_index: r.applied_index })
    }

    /// The leader's applied index (for an idempotent replay that has no index of its own).
    async fn leader_applied(&self) -> BackendResult<u64> {
        self.nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| async move {
                let r = c.cluster_status(ClusterStatusRequest { local_only: true }).await?.into_inner();
                Ok(r.nodes.first().map_or(0, |n| n.last_applied_index))
            })
            .await
    }
}

#[async_trait]
impl LedgerBackend for GrpcBackend {
    /// To the leader; retried on not-leader/no-leader/lost connections within the budget: every
    /// command carries its ids, so a resubmission answers `exists` with the original decision
    /// (the client then sees a replay of its own first attempt).
    async fn submit(&self, cmd: &Command) -> BackendResult<Applied<Outcome>> {
        match cmd {
            Command::CreateTransfer(t) => self.transfers.submit(t.clone()).await,
            _ => submit_command(&self.nodes, cmd).await,
        }
    }

    async fn account(&self, id: &str, read: ReadConsistency) -> BackendResult<Read<Option<AccountView>>> {
        self.get_account(id, None, read).await
    }

    async fn account_as_of(
        &self,
        id: &str,
        index: u64,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<AccountView>>> {
        self.get_account(id, Some(index), read).await
    }

    async fn list_accounts(
        &self,
        q: crate::backend::AccountsQuery,
        read: ReadConsistency,
    ) -> BackendResult<Read<crate::backend::AccountsPage>> {
        queries::list_accounts(self, q, read).await
    }

    async fn list_transfers(
        &self,
        q: crate::backend::TransfersQuery,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<crate::backend::TransfersPage>>> {
        queries::list_transfers(self, q, read).await
    }

    async fn transfer(&self, id: &str, read: ReadConsistency) -> BackendResult<Read<Option<TransferView>>> {
        let r = self
            .nodes
            .read_call(read, Duration::ZERO, |mut c, opts| {
                let req = GetTransferRequest { id: id.to_owned(), read: Some(opts) };
                async move { Ok(c.get_transfer(req).await?.into_inner()) }
            })
            .await?;
        let value = r.transfer.map(convert::transfer_from_proto).transpose().map_err(bad_answer)?;
        Ok(Read { value, applied_index: r.applied_index })
    }

    async fn account_transfers(
        &self,
        id: &str,
        from: HistoryFrom,
        limit: u32,
        read: ReadConsistency,
    ) -> BackendResult<Read<Option<HistoryPage>>> {
        let r = self
            .nodes
            .read_call(read, Duration::ZERO, |mut c, opts| {
                let req = AccountTransfersRequest {
                    account_id: id.to_owned(),
                    from: Some(convert::history_from_to_proto(from)),
                    limit,
                    read: Some(opts),
                };
                async move { Ok(c.account_transfers(req).await?.into_inner()) }
            })
            .await?;
        let value = r.page.map(convert::history_page_from_proto).transpose().map_err(bad_answer)?;
        Ok(Read { value, applied_index: r.applied_index })
    }

    async fn create_topic(&self, name: &str, partitions: u32) -> BackendResult<Applied<TopicCreated>> {
        let req = CreateTopicRequest { name: name.to_owned(), partitions };
        let r = self
            .nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.create_topic(req).await?.into_inner().log_index) }
            })
            .await;
        let topic = TopicInfo { name: name.to_owned(), partitions };
        match r {
            Ok(index) => {
                self.partitions
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name.to_owned(), partitions);
                Ok(Applied { value: TopicCreated { topic, created: true }, index })
            }
            // lognode refuses any existing name: an identical one is an idempotent replay (also
            // the outcome of a retried create whose first answer was lost).
            Err(BackendError::AlreadyExists(msg)) => {
                let topics = self.list_topics(ReadConsistency::Strong).await?.value;
                match topics.into_iter().find(|t| t.name == name) {
                    Some(t) if t.partitions == partitions => {
                        let index = self.leader_applied().await?;
                        Ok(Applied { value: TopicCreated { topic, created: false }, index })
                    }
                    Some(t) => Err(BackendError::AlreadyExists(format!(
                        "topic '{name}' exists with {} partitions",
                        t.partitions
                    ))),
                    None => Err(BackendError::AlreadyExists(msg)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Not retried after an unknown outcome: a second delete would answer `topic_not_found`.
    async fn delete_topic(&self, name: &str, by: &str) -> BackendResult<Applied<()>> {
        let req = DeleteTopicRequest { name: name.to_owned(), by: by.to_owned() };
        let r = self
            .nodes
            .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.delete_topic(req).await?.into_inner().log_index) }
            })
            .await;
        // Whatever the outcome, the cached partition count may be stale now.
        self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name);
        Ok(Applied { value: (), index: r? })
    }

    async fn list_topics(&self, read: ReadConsistency) -> BackendResult<Read<Vec<TopicInfo>>> {
        let r = self
            .nodes
            .read_call(read, Duration::ZERO, |mut c, opts| async move {
                Ok(c.list_topics(ListTopicsRequest { read: Some(opts) }).await?.into_inner())
            })
            .await?;
        let mut topics: Vec<TopicInfo> = r
            .topics
            .into_iter()
            .map(|t| TopicInfo { name: t.name, partitions: u32::try_from(t.partitions.len()).unwrap_or(u32::MAX) })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        // ListTopics carries no applied index; 0 = unknown.
        Ok(Read { value: topics, applied_index: 0 })
    }

    /// Records are grouped by partition: keyed records go to `key_hash(key) % partitions` (what
    /// lognode would choose), keyless ones together to one partition this gateway picks (round
    /// robin over requests). Within a partition the records keep the request's order, keyed and
    /// keyless alike. Each group is one `ProduceBatch` (one Raft entry, atomic); a request whose
    /// records span several partitions is several entries, sent one after the other: if one fails, the
    /// earlier groups stay appended (the error says nothing about which). The index returned is
    /// the highest entry's.
    async fn produce(&self, topic: &str, records: Vec<NewRecord>) -> BackendResult<Applied<Vec<RecordOffset>>> {
        let partitions = self.partitions_of(topic).await?;
        if partitions == 0 {
            return Err(BackendError::Internal(format!("topic '{topic}' has no partitions")));
        }
        let mut groups: BTreeMap<u32, Vec<(usize, Record)>> = BTreeMap::new();
        let count = records.len();
        let keyless =
            u32::try_from(self.keyless.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % u64::from(partitions))
                .unwrap_or(0);
        for (i, r) in records.into_iter().enumerate() {
            let key = r.key.filter(|k| !k.is_empty()).map(String::into_bytes).unwrap_or_default();
            let partition = if key.is_empty() {
                keyless
            } else {
                u32::try_from(key_hash(&key) % u64::from(partitions)).unwrap_or(0)
            };
            let rec = Record { key, value: r.value, headers: headers_out(r.headers) };
            groups.entry(partition).or_default().push((i, rec));
        }
        let mut offsets: Vec<Option<RecordOffset>> = vec![None; count];
        let mut index = 0;
        for (partition, group) in groups {
            let (positions, recs): (Vec<usize>, Vec<Record>) = group.into_iter().unzip();
            let req = ProduceBatchRequest { topic: topic.to_owned(), partition: Some(partition), records: recs };
            let resp = self
                .nodes
                .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
                    let req = req.clone();
                    async move { Ok(c.produce_batch(req).await?.into_inner()) }
                })
                .await?;
            index = index.max(resp.log_index);
            for (j, pos) in positions.into_iter().enumerate() {
                if let Some(slot) = offsets.get_mut(pos) {
                    *slot = Some(RecordOffset { partition: resp.partition, offset: resp.base_offset + j as u64 });
                }
            }
        }
        let value = offsets
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| BackendError::Internal("a record got no offset".to_owned()))?;
        Ok(Applied { value, index })
    }

    /// Consume on one node; when nothing is at `offset` and `wait_ms > 0`, tails the partition
    /// on the same node (ConsumeStream) until a record arrives or `wait_ms` passes.
    async fn fetch(&self, req: FetchRequest, read: ReadConsistency) -> BackendResult<Read<Fetched>> {
        let wait = Duration::from_millis(req.wait_ms);
        let r = self
            .nodes
            .read_call(read, wait, |mut c, opts| {
                let creq = ConsumeRequest {
                    topic: req.topic.clone(),
                    partition: req.partition,
                    offset: req.offset,
                    max_records: req.limit,
                    read: Some(opts),
                };
                async move {
                    let first = c.consume(creq.clone()).await?.into_inner();
                    if !first.records.is_empty() || wait.is_zero() {
                        return Ok(first);
                    }
                    let tail = async {
                        let mut stream = c.consume_stream(creq).await?.into_inner();
                        stream.message().await
                    };
                    match tokio::time::timeout(wait, tail).await {
                        Ok(Ok(Some(next))) => Ok(next),
                        _ => Ok(first),
                    }
                }
            })
            .await?;
        Ok(fetched(r))
    }

    async fn cluster_status(&self) -> BackendResult<ClusterStatus> {
        let r = self
            .nodes
            .any_call(|mut c| async move {
                Ok(c.cluster_status(ClusterStatusRequest { local_only: false }).await?.into_inner())
            })
            .await?;
        let nodes = r
            .nodes
            .into_iter()
            .filter(|n| n.kind == "lognode")
            .map(|n| NodeStatus {
                id: n.id,
                grpc_addr: n.grpc_addr,
                role: match Role::try_from(n.role) {
                    Ok(Role::Leader) => NodeRole::Leader,
                    Ok(Role::Learner) => NodeRole::Learner,
                    _ if !n.voter => NodeRole::Learner,
                    _ => NodeRole::Follower,
                },
                alive: n.alive,
                last_applied: n.last_applied_index,
                snapshot_index: n.snapshot_index,
                log_first_index: n.log_first_index,
                log_bytes_since_snapshot: n.log_bytes_since_snapshot,
            })
            .collect();
        if r.leader_id != 0 && !r.leader_addr.is_empty() {
            self.nodes.set_leader(r.leader_id, &r.leader_addr);
        }
        Ok(ClusterStatus { leader_id: (r.leader_id != 0).then_some(r.leader_id), nodes })
    }

    async fn remove_node(&self, id: u64, by: &str) -> BackendResult<Applied<()>> {
        let req = RemoveNodeRequest { node_id: id, by: by.to_owned() };
        let index = self
            .nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.remove_node(req).await?.into_inner().log_index) }
            })
            .await?;
        Ok(Applied { value: (), index })
    }

    /// A leader answers and confirms it leads (within [`READY_BUDGET`]).
    async fn ready(&self) -> BackendResult<()> {
        self.nodes
            .leader_call(Retry::Always, READY_BUDGET, |mut c| async move {
                let r = c.cluster_status(ClusterStatusRequest { local_only: true }).await?.into_inner();
                if r.leader_id != 0 && r.leader_id == r.node_id {
                    Ok(())
                } else if r.leader_id != 0 && !r.leader_addr.is_empty() {
                    let mut s = tonic::Status::failed_precondition("not the leader");
                    if let (Ok(id), Ok(addr)) = (
                        tonic::metadata::MetadataValue::try_from(r.leader_id.to_string()),
                        tonic::metadata::MetadataValue::try_from(r.leader_addr),
                    ) {
                        s.metadata_mut().insert(ledger_proto::LEADER_ID_METADATA, id);
                        s.metadata_mut().insert(ledger_proto::LEADER_ADDR_METADATA, addr);
                    }
                    Err(s)
                } else {
                    Err(tonic::Status::unavailable("not the leader and no leader is known yet"))
                }
            })
            .await
    }

    /// To the leader; retried only when it surely did not reach one (every join is a new member).
    async fn join_group(
        &self,
        group: &str,
        topics: Vec<String>,
        session_timeout_ms: Option<u64>,
        auto_offset_reset: Option<OffsetReset>,
    ) -> BackendResult<Applied<MemberReply>> {
        let req = group_convert::join_to_proto(group, topics, session_timeout_ms, auto_offset_reset);
        let r = self
            .nodes
            .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.join_group(req).await?.into_inner()) }
            })
            .await?;
        let (value, index) = group_convert::member_from_proto(r);
        Ok(Applied { value, index })
    }

    async fn group_heartbeat(&self, group: &str, member_id: &str) -> BackendResult<Read<MemberReply>> {
        let req = GroupHeartbeatRequest { group: group.to_owned(), member_id: member_id.to_owned() };
        let r = self
            .nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.group_heartbeat(req).await?.into_inner()) }
            })
            .await?;
        let (value, applied_index) = group_convert::member_from_proto(r);
        Ok(Read { value, applied_index })
    }

    /// Not retried after an unknown outcome: a second leave would answer `unknown_member`.
    async fn leave_group(&self, group: &str, member_id: &str) -> BackendResult<Applied<()>> {
        let req = LeaveGroupRequest { group: group.to_owned(), member_id: member_id.to_owned() };
        let index = self
            .nodes
            .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.leave_group(req).await?.into_inner().log_index) }
            })
            .await?;
        Ok(Applied { value: (), index })
    }

    /// On the leader (positions live there). Not retried after an unknown outcome: the position
    /// may have moved past records this answer carried.
    async fn group_fetch(
        &self,
        group: &str,
        member_id: &str,
        max_records: u32,
        wait_ms: u64,
        from: &[(String, u32, u64)],
    ) -> BackendResult<GroupFetched> {
        let req = GroupFetchRequest {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
            max_records,
            wait_ms: u32::try_from(wait_ms).unwrap_or(u32::MAX),
            positions: group_convert::offsets_to_proto(from),
        };
        let budget = WRITE_RETRY_BUDGET + Duration::from_millis(wait_ms);
        let r = self
            .nodes
            .leader_call(Retry::IfNotDelivered, budget, |mut c| {
                let req = req.clone();
                async move { Ok(c.group_fetch(req).await?.into_inner()) }
            })
            .await?;
        let records = r
            .records
            .into_iter()
            .filter_map(|g| {
                g.record.map(|rec| GroupRecord { topic: g.topic, partition: g.partition, record: stored(rec) })
            })
            .collect();
        Ok(GroupFetched { generation: r.generation, records })
    }

    /// Retried: committing the same offsets again is accepted (idempotent).
    async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: Vec<(String, u32, u64)>,
    ) -> BackendResult<Applied<()>> {
        let req = CommitOffsetsRequest {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
            generation,
            offsets: group_convert::offsets_to_proto(&offsets),
        };
        let index = self
            .nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.commit_offsets(req).await?.into_inner().log_index) }
            })
            .await?;
        Ok(Applied { value: (), index })
    }

    /// Not retried once delivered: a lost answer to a create that was applied would answer
    /// `AlreadyExists` to the retry.
    async fn create_key(&self, key: crate::backend::ApiKey) -> BackendResult<Applied<u64>> {
        let req = ledger_proto::ledger::CreateKeyRequest { key: Some(key_to_proto(key)) };
        let r = self
            .nodes
            .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.create_key(req).await?.into_inner()) }
            })
            .await?;
        Ok(Applied { value: r.created_ms, index: r.log_index })
    }

    async fn revoke_key(&self, id: &str, revoked_by: &str) -> BackendResult<Applied<()>> {
        let req = ledger_proto::ledger::RevokeKeyRequest { id: id.to_owned(), revoked_by: revoked_by.to_owned() };
        let r = self
            .nodes
            .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.revoke_key(req).await?.into_inner().log_index) }
            })
            .await;
        match r {
            Ok(index) => Ok(Applied { value: (), index }),
            Err(BackendError::NotFound(_, m)) => Err(BackendError::NotFound(crate::backend::Missing::Key, m)),
            Err(e) => Err(e),
        }
    }

    async fn list_keys(&self, read: ReadConsistency) -> BackendResult<Read<Vec<crate::backend::ApiKey>>> {
        let r = self
            .nodes
            .read_call(read, Duration::ZERO, |mut c, opts| async move {
                Ok(c.list_keys(ledger_proto::ledger::ListKeysRequest { read: Some(opts) }).await?.into_inner())
            })
            .await?;
        let value = r
            .keys
            .into_iter()
            .map(key_from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::Internal(format!("a lognode answered a key that does not convert: {e}")))?;
        Ok(Read { value, applied_index: r.applied_index })
    }

    async fn create_webhook(&self, w: crate::backend::Webhook) -> BackendResult<Applied<u64>> {
        webhooks::create(&self.nodes, w).await
    }
    async fn delete_webhook(&self, id: &str) -> BackendResult<Applied<()>> {
        webhooks::delete(&self.nodes, id).await
    }
    async fn record_deliveries(&self, id: &str, d: Vec<crate::backend::Delivery>) -> BackendResult<Applied<()>> {
        webhooks::record(&self.nodes, id, d).await
    }
    async fn list_webhooks(&self, read: ReadConsistency) -> BackendResult<Read<Vec<crate::backend::Webhook>>> {
        webhooks::list(&self.nodes, read).await
    }
    async fn webhook_deliveries(
        &self,
        id: &str,
        dead: bool,
        read: ReadConsistency,
    ) -> BackendResult<Read<Vec<crate::backend::Delivery>>> {
        webhooks::deliveries(&self.nodes, id, dead, read).await
    }

    async fn list_audit(
        &self,
        after: u64,
        limit: u32,
        read: ReadConsistency,
    ) -> BackendResult<Read<crate::backend::AuditPage>> {
        let r = self
            .nodes
            .read_call(read, Duration::ZERO, |mut c, opts| async move {
                let req = ledger_proto::ledger::ListAuditRequest { read: Some(opts), after_index: after, limit };
                Ok(c.list_audit(req).await?.into_inner())
            })
            .await?;
        let records = r
            .records
            .into_iter()
            .map(|a| crate::backend::AuditEntry {
                index: a.index,
                timestamp_ms: a.timestamp_ms,
                by: a.by,
                action: a.action,
                target: a.target,
                outcome: a.outcome,
            })
            .collect();
        Ok(Read { value: crate::backend::AuditPage { records, total: r.total }, applied_index: r.applied_index })
    }

    async fn list_groups(&self) -> BackendResult<Read<Vec<GroupSummary>>> {
        let r = self
            .nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| async move {
                Ok(c.list_groups(ListGroupsRequest {}).await?.into_inner())
            })
            .await?;
        let value = r.groups.into_iter().map(group_convert::summary_from_proto).collect();
        Ok(Read { value, applied_index: r.applied_index })
    }

    async fn describe_group(&self, group: &str) -> BackendResult<Read<GroupView>> {
        let req = DescribeGroupRequest { group: group.to_owned() };
        let r = self
            .nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.describe_group(req).await?.into_inner()) }
            })
            .await?;
        let (value, applied_index) = group_convert::group_view_from_proto(r).map_err(bad_answer)?;
        Ok(Read { value, applied_index })
    }

    /// Retried: the same reset again sets the same offsets (for `earliest`/`latest`, as of the
    /// retry).
    async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: ResetTarget,
        by: &str,
    ) -> BackendResult<Applied<Vec<(TopicPartition, u64)>>> {
        let req = ResetOffsetsRequest {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
            to: Some(group_convert::reset_target_to_proto(to)),
            by: by.to_owned(),
        };
        let r = self
            .nodes
            .leader_call(Retry::Always, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.reset_offsets(req).await?.into_inner()) }
            })
            .await?;
        let value = group_convert::partition_offsets_from_proto(r.offsets);
        Ok(Applied { value, index: r.log_index })
    }

    /// Not retried after an unknown outcome: a second delete would answer `unknown_group`.
    async fn delete_group(&self, group: &str, by: &str) -> BackendResult<Applied<()>> {
        let req = DeleteGroupRequest { group: group.to_owned(), by: by.to_owned() };
        let index = self
            .nodes
            .leader_call(Retry::IfNotDelivered, WRITE_RETRY_BUDGET, |mut c| {
                let req = req.clone();
                async move { Ok(c.delete_group(req).await?.into_inner().log_index) }
            })
            .await?;
        Ok(Applied { value: (), index })
    }

    fn stats(&self) -> BackendStats {
        BackendStats {
            leader_changes: self.nodes.leader_changes(),
            reads_by_node: self.nodes.reads_served().into_iter().map(|(id, _, n)| (id, n)).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
