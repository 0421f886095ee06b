//! The client API (`ledger.v1.Ledger`): produce through the leader, read from any node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ledger_proto::convert;
use ledger_proto::convert::groups as group_convert;
use ledger_proto::ledger::ledger_server::Ledger;
use ledger_proto::ledger::{
    AccountTransfersRequest, AccountTransfersResponse, ClusterStatusRequest, ClusterStatusResponse, ConsumeRequest,
    ConsumeResponse, ConsumedRecord, CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest, DeleteTopicResponse,
    GetAccountRequest, GetAccountResponse, GetTransferRequest, GetTransferResponse, Header, ListTopicsRequest,
    ListTopicsResponse, NodeStatus, PartitionInfo, ProduceBatchRequest, ProduceRequest, ProduceResponse, ReadOptions,
    Record, RemoveNodeRequest, RemoveNodeResponse, Role, SubmitRequest, SubmitResponse, TopicInfo,
};
use ledger_proto::ledger::{
    CommitOffsetsRequest, CommitOffsetsResponse, DeleteGroupRequest, DeleteGroupResponse, DescribeGroupRequest,
    DescribeGroupResponse, GroupFetchRequest, GroupFetchResponse, GroupHeartbeatRequest, GroupMemberResponse,
    GroupRecord, JoinGroupRequest, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    ResetOffsetsRequest, ResetOffsetsResponse,
};
use ledger_proto::ledger::{
    CreateKeyRequest, CreateKeyResponse, ListKeysRequest, ListKeysResponse, RevokeKeyRequest, RevokeKeyResponse,
};
use ledger_proto::{LEADER_ADDR_METADATA, LEADER_ID_METADATA};
use openraft::ChangeMembers;
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::discovery::{Discovery, MemberKind};
use crate::grpc::batcher::{self, Gatherer};
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_RECORDS_MAX, CONSUME_RECORDS_DEFAULT, FETCH_RECORDS_DEFAULT, HISTORY_PAGE_MAX,
    MIN_INDEX_WAIT_DEFAULT, MIN_INDEX_WAIT_MAX, RECORD_BYTES_MAX, STREAM_BUFFER, WRITE_TIMEOUT,
};
use crate::store::StateMachineStore;
use crate::store::TOPIC_LEDGER;
use crate::store::state_machine::{ReadError, ReadResult, check_topic, key_hash};
use crate::types::{Node, Raft, RecordData, Rejection, Request as Cmd, Response as CmdResponse};

/// What the client service needs from the node.
#[derive(Clone)]
pub struct ClientService {
    /// This node's id.
    pub id: u64,
    /// This node's gRPC address.
    pub grpc_addr: String,
    /// The local Raft.
    pub raft: Raft,
    /// The local state machine.
    pub sm: StateMachineStore,
    /// Discovery.
    pub discovery: Arc<dyn Discovery>,
    /// Set on shutdown: streams and long polls end.
    pub shutdown: ledger_shutdown::Shutdown,
    /// Round robin for records without key and partition.
    pub round_robin: Arc<AtomicU64>,
    /// Gathers concurrent produce requests into shared Raft entries.
    pub produce: Gatherer<batcher::Produce>,
    /// Gathers concurrent single transfers into shared Raft entries.
    pub transfers: Gatherer<batcher::Transfers>,
    /// The consumer-group coordinator (serves while this node leads).
    pub groups: Arc<crate::groups::Coordinator>,
    /// ConsumeStream streams open per caller address (`CONSUME_STREAMS_PER_CALLER_MAX`).
    pub streams: Arc<crate::grpc::PerCaller>,
    /// Whether this node, if it leads, still has its quorum (check-quorum, see `election`).
    pub liveness: Arc<crate::election::Liveness>,
}

pub(crate) fn not_leader(leader_id: Option<u64>, leader_node: Option<&Node>) -> Status {
    match (leader_id, leader_node) {
        (Some(id), Some(node)) => {
            let mut s =
                Status::failed_precondition(format!("not the leader; the leader is node {id} at {}", node.addr));
            s.metadata_mut().insert(LEADER_ID_METADATA, MetadataValue::from(id));
            if let Ok(v) = MetadataValue::try_from(node.addr.as_str()) {
                s.metadata_mut().insert(LEADER_ADDR_METADATA, v);
            }
            s
        }
        _ => Status::unavailable("not the leader and no leader is known yet; retry"),
    }
}

/// The not-leader status for openraft's forward-to-leader error.
pub(crate) fn forward(f: &ForwardToLeader<u64, Node>) -> Status {
    not_leader(f.leader_id, f.leader_node.as_ref())
}

pub(crate) mod audit;
mod keys;
mod queries;
mod status;
mod webhooks;

fn rejection(r: Rejection) -> Status {
    match r {
        Rejection::UnknownTopic(_)
        | Rejection::UnknownPartition { .. }
        | Rejection::UnknownKey(_)
        | Rejection::UnknownWebhook(_) => Status::not_found(r.to_string()),
        Rejection::TopicExists(_) | Rejection::KeyExists(_) | Rejection::WebhookExists(_) => {
            Status::already_exists(r.to_string())
        }
        Rejection::Invalid(_) => Status::invalid_argument(r.to_string()),
        // The stable `limit_exceeded` code travels in the metadata, as for the group limits, so
        // the gateway answers 422 `limit_exceeded` and never retries it.
        Rejection::LimitExceeded(_) => crate::groups::group_status(group_core::GroupCode::LimitExceeded, r.to_string()),
    }
}

fn read_error(e: ReadError) -> Status {
    match e {
        ReadError::UnknownTopic(_) | ReadError::UnknownPartition { .. } => Status::not_found(e.to_string()),
        ReadError::OutOfRange { .. } => Status::out_of_range(e.to_string()),
        ReadError::Log(_) => Status::unavailable(e.to_string()),
    }
}

/// The leader's wall clock, for the timestamps it puts into entries ([`crate::clock`]).
pub(crate) fn now_ms() -> i64 {
    crate::clock::now_ms()
}

fn now_ms_u64() -> u64 {
    crate::clock::now_ms_u64()
}

/// A group request the conversion rejected (a malformed field): `invalid_request`.
fn bad_group_request(e: &convert::ConvertError) -> Status {
    crate::groups::group_status(group_core::GroupCode::InvalidRequest, e.to_string())
}

fn consumed(x: crate::store::state_machine::ReadRecord) -> ConsumedRecord {
    ConsumedRecord {
        offset: x.offset,
        key: x.record.key,
        value: x.record.value,
        headers: x.record.headers.into_iter().map(|(key, value)| Header { key, value }).collect(),
        timestamp_ms: x.timestamp_ms,
        log_index: x.log_index,
    }
}

fn record_size(r: &Record) -> usize {
    r.key.len() + r.value.len() + r.headers.iter().map(|h| h.key.len() + h.value.len()).sum::<usize>()
}

impl ClientService {
    /// Refuses a write early on a node that knows another leader (before validating against its
    /// possibly stale state); Raft itself refuses it too if leadership changed meanwhile.
    fn check_leader(&self) -> Result<(), Status> {
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(l) if l != self.id => Err(not_leader(Some(l), m.membership_config.membership().get_node(&l))),
            _ => self.liveness.check(),
        }
    }

    async fn write(&self, cmd: Cmd) -> Result<(CmdResponse, u64), Status> {
        crate::grpc::check_proposal(&cmd)?;
        self.liveness.check()?;
        let write = self.raft.client_write(cmd);
        match self.liveness.unless_quorum_lost(tokio::time::timeout(WRITE_TIMEOUT, write)).await? {
            Err(_) => Err(Status::deadline_exceeded(format!("write not committed within {WRITE_TIMEOUT:?}"))),
            Ok(Ok(resp)) => Ok((resp.data, resp.log_id.index)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(forward(&f)),
            Ok(Err(RaftError::APIError(e))) => Err(Status::failed_precondition(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(Status::unavailable(format!("raft stopped: {e}"))),
        }
    }

    async fn produce_records(
        &self,
        topic: String,
        partition: Option<u32>,
        records: Vec<Record>,
    ) -> Result<ProduceResponse, Status> {
        self.check_leader()?;
        if topic == TOPIC_LEDGER {
            return Err(Status::invalid_argument(format!("topic {TOPIC_LEDGER:?} is written by the ledger only")));
        }
        if records.is_empty() {
            return Err(Status::invalid_argument("no records"));
        }
        if records.len() > BATCH_RECORDS_MAX {
            return Err(Status::invalid_argument(format!(
                "{} records in one batch; at most {BATCH_RECORDS_MAX}",
                records.len()
            )));
        }
        let mut total = 0usize;
        for r in &records {
            let size = record_size(r);
            if size > RECORD_BYTES_MAX {
                return Err(Status::invalid_argument(format!("record of {size} bytes; at most {RECORD_BYTES_MAX}")));
            }
            total += size;
        }
        if total > BATCH_BYTES_MAX {
            return Err(Status::invalid_argument(format!("batch of {total} bytes; at most {BATCH_BYTES_MAX}")));
        }
        let partitions =
            self.sm.partitions(&topic).ok_or_else(|| Status::not_found(format!("unknown topic {topic:?}")))?;
        let partition = match partition {
            Some(p) if p >= partitions => {
                return Err(Status::not_found(format!("topic {topic:?} has no partition {p} (it has {partitions})")));
            }
            Some(p) => p,
            None if records[0].key.is_empty() => {
                u32::try_from(self.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(partitions)).unwrap_or(0)
            }
            None => u32::try_from(key_hash(&records[0].key) % u64::from(partitions)).unwrap_or(0),
        };
        let records = records
            .into_iter()
            .map(|r| RecordData {
                key: r.key,
                value: r.value,
                headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            })
            .collect();
        let item = crate::types::ProduceItem { topic: topic.clone(), partition, records };
        // Headers cost more encoded than their bytes (length prefixes): bound the encoding too.
        crate::grpc::check_command("the produce request", &item)?;
        match self.produce.submit(item).await? {
            (CmdResponse::Produced { base_offset, count }, log_index, timestamp_ms) => {
                Ok(ProduceResponse { topic, partition, base_offset, count, log_index, timestamp_ms })
            }
            (CmdResponse::Rejected(r), _, _) => Err(rejection(r)),
            (other, _, _) => Err(Status::internal(format!("unexpected response {other:?}"))),
        }
    }

    /// Replicates a ledger command with the leader's clock as its log time; returns the outcome,
    /// the entry's log index and the timestamp.
    async fn submit_command(&self, command: ledger_core::Command) -> Result<(ledger_core::Outcome, u64, u64), Status> {
        crate::grpc::check_command("the ledger command", &command)?;
        // Single transfers and non-atomic batches share entries with concurrent ones (see batcher).
        let gathered = match command {
            ledger_core::Command::CreateTransfer(t) => Ok(batcher::TransferItem::One(t)),
            ledger_core::Command::CreateTransfers { transfers, atomic: false } => {
                Ok(batcher::TransferItem::Batch(transfers))
            }
            other => Err(other),
        };
        let command = match gathered {
            Ok(item) => {
                let (outcome, log_index, timestamp_ms) = self.transfers.submit(item).await?;
                return Ok((outcome, log_index, u64::try_from(timestamp_ms).unwrap_or(0)));
            }
            Err(command) => command,
        };
        let timestamp_ms = now_ms_u64();
        match self.write(Cmd::Ledger { timestamp_ms, command }).await? {
            (CmdResponse::Ledger(outcome), log_index) => Ok((outcome, log_index, timestamp_ms)),
            (CmdResponse::Rejected(r), _) => Err(rejection(r)),
            (other, _) => Err(Status::internal(format!("unexpected response {other:?}"))),
        }
    }

    /// Applies the read options: linearizable (leader, quorum-confirmed) and/or `min_index`.
    async fn prepare_read(&self, opts: Option<&ReadOptions>) -> Result<(), Status> {
        let Some(opts) = opts else { return Ok(()) };
        if opts.linearizable {
            self.liveness.check()?;
            let confirm = self.liveness.unless_quorum_lost(self.raft.ensure_linearizable()).await;
            match confirm.map_err(|_| crate::election::Liveness::no_quorum())? {
                Ok(_) => {}
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => return Err(forward(&f)),
                Err(RaftError::APIError(e)) => return Err(Status::unavailable(e.to_string())),
                Err(RaftError::Fatal(e)) => return Err(Status::unavailable(format!("raft stopped: {e}"))),
            }
        }
        if opts.min_index > 0 {
            let wait = if opts.wait_ms == 0 {
                MIN_INDEX_WAIT_DEFAULT
            } else {
                Duration::from_millis(u64::from(opts.wait_ms)).min(MIN_INDEX_WAIT_MAX)
            };
            let mut rx = self.sm.applied();
            let min = opts.min_index;
            match tokio::time::timeout(wait, rx.wait_for(|a| *a >= min)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(Status::unavailable("node is shutting down")),
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "this node applied up to index {} but min_index is {min}; waited {wait:?}",
                        self.sm.applied_index()
                    )));
                }
            }
        }
        Ok(())
    }

    async fn read(&self, topic: String, partition: u32, offset: u64, max: usize) -> Result<ReadResult, Status> {
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || sm.read(&topic, partition, offset, max))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(read_error)
    }

    fn consume_response(&self, offset: u64, r: ReadResult) -> ConsumeResponse {
        let next_offset = r.records.last().map_or(offset, |l| l.offset + 1);
        ConsumeResponse {
            records: r.records.into_iter().map(consumed).collect(),
            next_offset,
            log_start_offset: r.start_offset,
            end_offset: r.end_offset,
            applied_index: self.sm.applied_index(),
        }
    }
}

#[tonic::async_trait]
impl Ledger for ClientService {
    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        let req = request.into_inner();
        let record = req.record.ok_or_else(|| Status::invalid_argument("record is required"))?;
        Ok(Response::new(self.produce_records(req.topic, req.partition, vec![record]).await?))
    }

    async fn produce_batch(&self, request: Request<ProduceBatchRequest>) -> Result<Response<ProduceResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(self.produce_records(req.topic, req.partition, req.records).await?))
    }

    async fn consume(&self, request: Request<ConsumeRequest>) -> Result<Response<ConsumeResponse>, Status> {
        let req = request.into_inner();
        self.prepare_read(req.read.as_ref()).await?;
        let max = if req.max_records == 0 { CONSUME_RECORDS_DEFAULT } else { req.max_records as usize };
        let r = self.read(req.topic, req.partition, req.offset, max).await?;
        Ok(Response::new(self.consume_response(req.offset, r)))
    }

    type ConsumeStreamStream = ReceiverStream<Result<ConsumeResponse, Status>>;

    async fn consume_stream(
        &self,
        request: Request<ConsumeRequest>,
    ) -> Result<Response<Self::ConsumeStreamStream>, Status> {
        let max_streams = crate::limits::CONSUME_STREAMS_PER_CALLER_MAX;
        let caller = request.remote_addr().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let slot = self.streams.try_add(caller, max_streams).ok_or_else(|| {
            Status::resource_exhausted(format!(
                "{max_streams} ConsumeStream streams are open from {caller}; at most {max_streams} per caller"
            ))
        })?;
        let req = request.into_inner();
        self.prepare_read(req.read.as_ref()).await?;
        let max = if req.max_records == 0 { CONSUME_RECORDS_DEFAULT } else { req.max_records as usize };
        // Fail fast on a bad topic/partition/offset.
        let first = self.read(req.topic.clone(), req.partition, req.offset, max).await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let this = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut applied = this.sm.applied();
            let shutdown = this.shutdown.clone();
            let mut offset = req.offset;
            let mut result = Ok(first);
            loop {
                match result {
                    Ok(r) if !r.records.is_empty() => {
                        let resp = this.consume_response(offset, r);
                        offset = resp.next_offset;
                        if tx.send(Ok(resp)).await.is_err() {
                            break; // the client went away
                        }
                    }
                    Ok(_) => {
                        // Nothing new: wait for the applied index to move (no polling).
                        tokio::select! {
                            () = tx.closed() => break,
                            r = applied.changed() => if r.is_err() { break },
                            () = shutdown.stopping() => break,
                        }
                    }
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        break;
                    }
                }
                if shutdown.is_stopping() {
                    break;
                }
                applied.borrow_and_update();
                result = this.read(req.topic.clone(), req.partition, offset, max).await;
            }
            debug!(topic = %req.topic, partition = req.partition, offset, "consume stream ended");
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        let req = request.into_inner();
        self.check_leader()?;
        check_topic(&req.name, req.partitions).map_err(rejection)?;
        match self.write(Cmd::CreateTopic { name: req.name, partitions: req.partitions }).await? {
            (CmdResponse::TopicCreated, log_index) => Ok(Response::new(CreateTopicResponse { log_index })),
            (CmdResponse::Rejected(r), _) => Err(rejection(r)),
            (other, _) => Err(Status::internal(format!("unexpected response {other:?}"))),
        }
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        let req = request.into_inner();
        self.check_leader()?;
        check_topic(&req.name, 1).map_err(rejection)?;
        match self.write(audit::audited(req.by, Cmd::DeleteTopic { name: req.name })).await? {
            (CmdResponse::TopicDeleted, log_index) => Ok(Response::new(DeleteTopicResponse { log_index })),
            (CmdResponse::Rejected(r), _) => Err(rejection(r)),
            (other, _) => Err(Status::internal(format!("unexpected response {other:?}"))),
        }
    }

    async fn list_topics(&self, request: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        self.prepare_read(request.get_ref().read.as_ref()).await?;
        let topics = self
            .sm
            .topic_offsets()
            .into_iter()
            .map(|(name, parts)| TopicInfo {
                name,
                partitions: parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, (start, end))| PartitionInfo {
                        partition: u32::try_from(i).unwrap_or(u32::MAX),
                        log_start_offset: start,
                        end_offset: end,
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let local_only = request.into_inner().local_only;
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        // A leader without its quorum names no leader: a new one is being elected.
        let leader_id = m.current_leader.filter(|l| *l != self.id || !self.liveness.quorum_lost());
        let leader_addr = leader_id.and_then(|l| membership.get_node(&l).map(|n| n.addr.clone())).unwrap_or_default();
        let me = self.local_status();
        if local_only {
            return Ok(Response::new(ClusterStatusResponse {
                nodes: vec![me],
                leader_id: leader_id.unwrap_or(0),
                leader_addr,
                node_id: self.id,
            }));
        }
        let gossip = self.discovery.members();
        let mut nodes: BTreeMap<(bool, u64), NodeStatus> = BTreeMap::new();
        for (id, node) in membership.nodes() {
            let role = if Some(*id) == leader_id {
                Role::Leader
            } else if voters.contains(id) {
                Role::Follower
            } else {
                Role::Learner
            };
            nodes.insert(
                (false, *id),
                NodeStatus {
                    id: *id,
                    grpc_addr: node.addr.clone(),
                    role: role as i32,
                    alive: false,
                    last_applied_index: 0,
                    voter: voters.contains(id),
                    kind: MemberKind::Lognode.as_str().to_string(),
                    ..NodeStatus::default()
                },
            );
        }
        for g in &gossip {
            let key = (g.meta.kind == MemberKind::Gateway, g.meta.node_id);
            let entry = nodes.entry(key).or_insert_with(|| NodeStatus {
                id: g.meta.node_id,
                grpc_addr: g.meta.grpc_addr.clone(),
                role: Role::None as i32,
                alive: false,
                last_applied_index: 0,
                voter: false,
                kind: g.meta.kind.as_str().to_string(),
                ..NodeStatus::default()
            });
            entry.alive = g.alive;
        }
        // Ask every other lognode for its applied index, concurrently and with a deadline.
        let mut asks = tokio::task::JoinSet::new();
        for ((gateway, id), n) in &nodes {
            if !*gateway && *id != self.id {
                let (id, addr) = (*id, n.grpc_addr.clone());
                asks.spawn(async move { (id, status::peer_status(addr).await) });
            }
        }
        while let Some(Ok((id, status))) = asks.join_next().await {
            if let (Some(n), Some(s)) = (nodes.get_mut(&(false, id)), status) {
                n.last_applied_index = s.last_applied_index;
                n.offset_map_runs = s.offset_map_runs;
                n.snapshot_index = s.snapshot_index;
                n.log_first_index = s.log_first_index;
                n.opened_at_index = s.opened_at_index;
                n.log_bytes_since_snapshot = s.log_bytes_since_snapshot;
                n.term = s.term;
                n.quorum_lost = s.quorum_lost;
            }
        }
        nodes.insert((false, self.id), me);
        Ok(Response::new(ClusterStatusResponse {
            nodes: nodes.into_values().collect(),
            leader_id: leader_id.unwrap_or(0),
            leader_addr,
            node_id: self.id,
        }))
    }

    async fn remove_node(&self, request: Request<RemoveNodeRequest>) -> Result<Response<RemoveNodeResponse>, Status> {
        let RemoveNodeRequest { node_id: id, by } = request.into_inner();
        self.check_leader()?;
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        if membership.get_node(&id).is_none() {
            return Err(Status::not_found(format!("node {id} is not in the Raft membership")));
        }
        // Recorded first, so that no leader adds the node back from gossip.
        if let (CmdResponse::Rejected(r), _) = self.write(audit::audited(by, Cmd::RemoveNode { node_id: id })).await? {
            return Err(rejection(r));
        }
        let change = if membership.voter_ids().any(|v| v == id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        match tokio::time::timeout(WRITE_TIMEOUT, self.raft.change_membership(change, false)).await {
            Err(_) => Err(Status::deadline_exceeded("membership change not committed in time")),
            Ok(Ok(r)) => Ok(Response::new(RemoveNodeResponse { log_index: r.log_id.index })),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(forward(&f)),
            Ok(Err(RaftError::APIError(e))) => Err(Status::failed_precondition(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(Status::unavailable(format!("raft stopped: {e}"))),
        }
    }

    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let command =
            convert::command_from_proto(request.into_inner()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if matches!(command, ledger_core::Command::ExpirePending { .. }) {
            return Err(Status::invalid_argument("ExpirePending is proposed by the leader only"));
        }
        self.check_leader()?;
        let (outcome, log_index, timestamp_ms) = self.submit_command(command).await?;
        Ok(Response::new(SubmitResponse {
            outcome: Some(convert::outcome_to_proto(&outcome)),
            log_index,
            timestamp_ms,
        }))
    }

    async fn get_account(&self, request: Request<GetAccountRequest>) -> Result<Response<GetAccountResponse>, Status> {
        let req = request.into_inner();
        self.prepare_read(req.read.as_ref()).await?;
        let (account, applied_index) = self.sm.with_ledger(|l| match req.as_of_index {
            Some(i) => l.account_as_of(&req.id, i),
            None => l.account(&req.id),
        });
        Ok(Response::new(GetAccountResponse {
            account: account.as_ref().map(convert::account_to_proto),
            applied_index,
        }))
    }

    async fn get_transfer(
        &self,
        request: Request<GetTransferRequest>,
    ) -> Result<Response<GetTransferResponse>, Status> {
        let req = request.into_inner();
        self.prepare_read(req.read.as_ref()).await?;
        let (transfer, applied_index) = self.sm.with_ledger(|l| l.transfer(&req.id));
        Ok(Response::new(GetTransferResponse {
            transfer: transfer.as_ref().map(convert::transfer_to_proto),
            applied_index,
        }))
    }

    async fn account_transfers(
        &self,
        request: Request<AccountTransfersRequest>,
    ) -> Result<Response<AccountTransfersResponse>, Status> {
        let req = request.into_inner();
        self.prepare_read(req.read.as_ref()).await?;
        let from = convert::history_from_from_proto(req.from);
        let limit = if req.limit == 0 { HISTORY_PAGE_MAX } else { (req.limit as usize).min(HISTORY_PAGE_MAX) };
        let (page, applied_index) = self.sm.with_ledger(|l| l.account_transfers(&req.account_id, from, limit));
        Ok(Response::new(AccountTransfersResponse {
            page: page.as_ref().map(convert::history_page_to_proto),
            applied_index,
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<ledger_proto::ledger::ListAccountsRequest>,
    ) -> Result<Response<ledger_proto::ledger::ListAccountsResponse>, Status> {
        self.list_accounts_call(request).await
    }

    async fn list_transfers(
        &self,
        request: Request<ledger_proto::ledger::ListTransfersRequest>,
    ) -> Result<Response<ledger_proto::ledger::ListTransfersResponse>, Status> {
        self.list_transfers_call(request).await
    }

    async fn join_group(&self, request: Request<JoinGroupRequest>) -> Result<Response<GroupMemberResponse>, Status> {
        let req = request.into_inner();
        let reset =
            group_convert::offset_reset_from_proto(&req.auto_offset_reset).map_err(|e| bad_group_request(&e))?;
        let (m, index) = self.groups.join(req.group, req.topics, req.session_timeout_ms, reset).await?;
        Ok(Response::new(group_convert::member_to_proto(m, index)))
    }

    async fn group_heartbeat(
        &self,
        request: Request<GroupHeartbeatRequest>,
    ) -> Result<Response<GroupMemberResponse>, Status> {
        let req = request.into_inner();
        let (m, applied_index) = self.groups.heartbeat(&req.group, &req.member_id).await?;
        Ok(Response::new(group_convert::member_to_proto(m, applied_index)))
    }

    async fn leave_group(&self, request: Request<LeaveGroupRequest>) -> Result<Response<LeaveGroupResponse>, Status> {
        let req = request.into_inner();
        let log_index = self.groups.leave(req.group, req.member_id).await?;
        Ok(Response::new(LeaveGroupResponse { log_index }))
    }

    async fn group_fetch(&self, request: Request<GroupFetchRequest>) -> Result<Response<GroupFetchResponse>, Status> {
        let req = request.into_inner();
        let max = if req.max_records == 0 { FETCH_RECORDS_DEFAULT } else { req.max_records as usize };
        let wait = Duration::from_millis(u64::from(req.wait_ms));
        let from = group_convert::offsets_from_proto(req.positions)
            .into_iter()
            .map(|(topic, partition, offset)| (group_core::TopicPartition { topic, partition }, offset))
            .collect::<std::collections::BTreeMap<_, _>>();
        let (generation, records) =
            self.groups.fetch(&req.group, &req.member_id, max, wait, &from, self.shutdown.clone()).await?;
        let records = records
            .into_iter()
            .map(|r| GroupRecord { topic: r.topic, partition: r.partition, record: Some(consumed(r.record)) })
            .collect();
        Ok(Response::new(GroupFetchResponse { generation, records }))
    }

    async fn commit_offsets(
        &self,
        request: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        let req = request.into_inner();
        let offsets = group_convert::offsets_from_proto(req.offsets);
        let log_index = self.groups.commit(req.group, req.member_id, req.generation, offsets).await?;
        Ok(Response::new(CommitOffsetsResponse { log_index }))
    }

    async fn list_groups(&self, _request: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        let (groups, applied_index) = self.groups.list().await?;
        let groups = groups.into_iter().map(group_convert::summary_to_proto).collect();
        Ok(Response::new(ListGroupsResponse { groups, applied_index }))
    }

    async fn describe_group(
        &self,
        request: Request<DescribeGroupRequest>,
    ) -> Result<Response<DescribeGroupResponse>, Status> {
        let req = request.into_inner();
        let (v, applied_index) = self.groups.describe(&req.group).await?;
        Ok(Response::new(group_convert::group_view_to_proto(v, applied_index)))
    }

    async fn reset_offsets(
        &self,
        request: Request<ResetOffsetsRequest>,
    ) -> Result<Response<ResetOffsetsResponse>, Status> {
        let req = request.into_inner();
        let to = group_convert::reset_target_from_proto(req.to).map_err(|_| {
            crate::groups::group_status(
                group_core::GroupCode::InvalidRequest,
                "a reset needs a target: earliest, latest, an offset or a timestamp",
            )
        })?;
        let (offsets, log_index) = self.groups.reset(req.group, req.topic, req.partition, to, req.by).await?;
        let offsets = group_convert::partition_offsets_to_proto(offsets);
        Ok(Response::new(ResetOffsetsResponse { offsets, log_index }))
    }

    async fn delete_group(
        &self,
        request: Request<DeleteGroupRequest>,
    ) -> Result<Response<DeleteGroupResponse>, Status> {
        let r = request.into_inner();
        let log_index = self.groups.delete(r.group, r.by).await?;
        Ok(Response::new(DeleteGroupResponse { log_index }))
    }

    async fn create_key(&self, request: Request<CreateKeyRequest>) -> Result<Response<CreateKeyResponse>, Status> {
        self.create_key_call(request).await
    }

    async fn revoke_key(&self, request: Request<RevokeKeyRequest>) -> Result<Response<RevokeKeyResponse>, Status> {
        self.revoke_key_call(request).await
    }

    async fn list_keys(&self, request: Request<ListKeysRequest>) -> Result<Response<ListKeysResponse>, Status> {
        self.list_keys_call(request).await
    }

    async fn list_audit(
        &self,
        request: Request<ledger_proto::ledger::ListAuditRequest>,
    ) -> Result<Response<ledger_proto::ledger::ListAuditResponse>, Status> {
        self.list_audit_call(request).await
    }

    async fn create_webhook(
        &self,
        request: Request<ledger_proto::ledger::CreateWebhookRequest>,
    ) -> Result<Response<ledger_proto::ledger::WebhookWriteResponse>, Status> {
        self.create_webhook_call(request).await
    }

    async fn delete_webhook(
        &self,
        request: Request<ledger_proto::ledger::DeleteWebhookRequest>,
    ) -> Result<Response<ledger_proto::ledger::WebhookWriteResponse>, Status> {
        self.delete_webhook_call(request).await
    }

    async fn record_deliveries(
        &self,
        request: Request<ledger_proto::ledger::RecordDeliveriesRequest>,
    ) -> Result<Response<ledger_proto::ledger::WebhookWriteResponse>, Status> {
        self.record_deliveries_call(request).await
    }

    async fn list_webhooks(
        &self,
        request: Request<ledger_proto::ledger::ListWebhooksRequest>,
    ) -> Result<Response<ledger_proto::ledger::ListWebhooksResponse>, Status> {
        self.list_webhooks_call(request).await
    }

    async fn webhook_deliveries(
        &self,
        request: Request<ledger_proto::ledger::WebhookDeliveriesRequest>,
    ) -> Result<Response<ledger_proto::ledger::WebhookDeliveriesResponse>, Status> {
        self.webhook_deliveries_call(request).await
    }
}
