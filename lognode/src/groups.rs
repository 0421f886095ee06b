//! The consumer-group coordinator: the leader's side of `group-core`.
//!
//! What is replicated (Raft entries of [`Request::Group`], applied by `group_core::Groups`):
//! joins, leaves, commits, admin resets and deletions, and expiries (of silent members, and of
//! groups empty for the retention). What lives only in the leader's memory:
//!
//! - **last seen** per member (heartbeats and fetches): a heartbeat is not a log entry (a signal
//!   that needs no durability would otherwise dominate the log); the [`expire_task`] proposes
//!   `ExpireMembers` for members silent for their session timeout (`Groups::due_for_expiry`);
//! - **positions** per member and partition: where its next fetch starts (the offset after the
//!   last record it was sent). Without a position a fetch starts at the committed offset, else
//!   at `auto_offset_reset` (group-core rule 9).
//!
//! Both belong to one leader term. When this node becomes leader (a new term), it drops them and
//! starts every member's session clock at the takeover (nobody is expired because of a leader
//! change) and every position at the committed offsets (at least once: records after the last
//! commit are delivered again, none is skipped). Positions are also dropped when the member's
//! group starts a new generation, for the same reason: a partition that moved away and back must
//! restart from the committed offset, not from a position another member may have passed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use group_core::{
    GroupCode, GroupCommand, GroupOutcome, GroupView, MemberReply, Reply, ResetTarget, TopicCatalog, TopicPartition,
};
use openraft::ServerState;
use openraft::error::{CheckIsLeaderError, RaftError};
use tonic::Status;
use tonic::metadata::MetadataValue;
use tracing::{debug, info};

use crate::grpc::client_service::not_leader;
use crate::limits::{
    EXPIRY_ENTRIES_PER_TICK, EXPIRY_TICK, FETCH_BYTES_MAX, FETCH_POSITIONS_MAX, FETCH_RECORDS_MAX, FETCH_WAIT_MAX,
    LEAD_CONFIRM_TIMEOUT, WRITE_TIMEOUT,
};
use crate::store::StateMachineStore;
use crate::store::state_machine::{ReadError, ReadRecord};
use crate::types::{Raft, Request, Response};

/// The leader's wall clock (ms since the Unix epoch), for entry timestamps and sessions.
fn now_ms() -> u64 {
    crate::clock::now_ms_u64()
}

/// The gRPC status of a group rule failure: a gRPC code by kind, plus the stable code in the
/// [`ledger_proto::GROUP_CODE_METADATA`] metadata.
pub fn group_status(code: GroupCode, detail: impl Into<String>) -> Status {
    let detail = detail.into();
    let mut s = match code {
        GroupCode::UnknownGroup | GroupCode::UnknownMember | GroupCode::UnknownTopic | GroupCode::UnknownPartition => {
            Status::not_found(detail)
        }
        GroupCode::StaleGeneration | GroupCode::NotOwner | GroupCode::OffsetRegression | GroupCode::GroupNotEmpty => {
            Status::aborted(detail)
        }
        GroupCode::OffsetOutOfRange => Status::out_of_range(detail),
        GroupCode::LimitExceeded => Status::resource_exhausted(detail),
        GroupCode::InvalidGroupId | GroupCode::InvalidRequest | GroupCode::InvalidSessionTimeout | GroupCode::Ok => {
            Status::invalid_argument(detail)
        }
    };
    s.metadata_mut().insert(ledger_proto::GROUP_CODE_METADATA, MetadataValue::from_static(code.as_str()));
    s
}

/// A human explanation of a group code in context.
fn explain(code: GroupCode, group: &str, member: Option<&str>) -> String {
    let who = member.map(|m| format!(" member '{m}'")).unwrap_or_default();
    match code {
        GroupCode::UnknownGroup => format!("no group '{group}'"),
        GroupCode::UnknownMember => {
            format!("group '{group}' has no{who} (it left, expired or never joined): join again")
        }
        GroupCode::StaleGeneration => {
            format!("group '{group}'{who}: the generation is not the current one (heartbeat to learn it)")
        }
        GroupCode::NotOwner => format!("group '{group}'{who}: a partition is not owned by this member now"),
        GroupCode::OffsetRegression => {
            format!("group '{group}': an offset is below the committed one (only an admin reset moves it back)")
        }
        GroupCode::GroupNotEmpty => {
            format!("group '{group}' has members: offsets are reset, and a group deleted, only while it has none")
        }
        GroupCode::OffsetOutOfRange => format!("group '{group}': an offset is past the partition's end offset"),
        GroupCode::UnknownTopic => format!("group '{group}': a topic does not exist"),
        GroupCode::UnknownPartition => format!("group '{group}': a partition does not exist"),
        GroupCode::InvalidGroupId => {
            format!("group id {group:?} must be 1..={} chars of [A-Za-z0-9._-]", group_core::limits::GROUP_ID_BYTES_MAX)
        }
        GroupCode::InvalidSessionTimeout => format!(
            "session_timeout_ms must be in {}..={}",
            group_core::limits::SESSION_TIMEOUT_MS_MIN,
            group_core::limits::SESSION_TIMEOUT_MS_MAX
        ),
        GroupCode::InvalidRequest => format!("group '{group}': invalid request (empty or repeated topics/partitions)"),
        GroupCode::LimitExceeded => format!("group '{group}': a consumer-group limit is reached"),
        GroupCode::Ok => "ok".to_owned(),
    }
}

fn outcome_status(o: &GroupOutcome, group: &str, member: Option<&str>) -> Result<(), Status> {
    if o.code.is_ok() { Ok(()) } else { Err(group_status(o.code, explain(o.code, group, member))) }
}

/// A member's fetch positions, valid for one generation of its group.
#[derive(Debug, Default)]
struct Positions {
    generation: u64,
    /// Next offset to send, per partition.
    next: BTreeMap<TopicPartition, u64>,
    /// Where the next fetch starts its round over the assignments (fairness).
    rotate: usize,
}

#[derive(Debug, Default)]
struct Volatile {
    /// The leader term the maps belong to (0: not leading).
    term: u64,
    /// Leadership (and an up-to-date applied state) confirmed for `term`.
    confirmed: bool,
    /// When this node took over as leader of `term` (its clock).
    takeover_ms: u64,
    /// Last heartbeat or fetch per (group, member), leader clock.
    last_seen: HashMap<(String, String), u64>,
    positions: HashMap<(String, String), Positions>,
}

/// One record of a group fetch.
#[derive(Debug, Clone)]
pub struct FetchedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The record.
    pub record: ReadRecord,
}

/// The coordinator (one per node; active while the node leads). Cheap to share.
pub struct Coordinator {
    id: u64,
    /// How long a group stays without members before the leader proposes its deletion.
    retention_ms: u64,
    raft: Raft,
    sm: StateMachineStore,
    /// Check-quorum: a leader without its majority serves no group call.
    liveness: Arc<crate::election::Liveness>,
    volatile: Mutex<Volatile>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator for this node.
    pub fn new(
        id: u64,
        raft: Raft,
        sm: StateMachineStore,
        retention_ms: u64,
        liveness: Arc<crate::election::Liveness>,
    ) -> Arc<Coordinator> {
        Arc::new(Coordinator { id, retention_ms, raft, sm, liveness, volatile: Mutex::new(Volatile::default()) })
    }

    fn lock(&self) -> MutexGuard<'_, Volatile> {
        self.volatile.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current term if this node leads, after resetting the volatile state on a new term.
    fn leading_term(&self) -> Result<(u64, bool), Status> {
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader || m.current_leader != Some(self.id) {
            let leader_node = m.current_leader.and_then(|l| m.membership_config.membership().get_node(&l).cloned());
            return Err(not_leader(m.current_leader, leader_node.as_ref()));
        }
        let mut v = self.lock();
        if v.term != m.current_term {
            info!(term = m.current_term, "leading: consumer-group sessions and positions start afresh");
            *v = Volatile { term: m.current_term, takeover_ms: now_ms(), ..Volatile::default() };
        }
        Ok((v.term, v.confirmed))
    }

    /// Fails unless this node leads; the first time in a term, also waits until it applied
    /// everything committed before (so group answers are never older than an earlier leader's).
    pub async fn lead(&self) -> Result<(), Status> {
        let (term, confirmed) = self.leading_term()?;
        // A leader without its quorum serves no group call (check-quorum, see `election`).
        self.liveness.check()?;
        if confirmed {
            return Ok(());
        }
        let confirm = tokio::time::timeout(LEAD_CONFIRM_TIMEOUT, self.raft.ensure_linearizable());
        match self.liveness.unless_quorum_lost(confirm).await.map_err(|_| crate::election::Liveness::no_quorum())? {
            Err(_) => return Err(Status::unavailable("leadership not confirmed in time; retry")),
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                return Err(crate::grpc::client_service::forward(&f));
            }
            Ok(Err(e)) => return Err(Status::unavailable(e.to_string())),
        }
        let mut v = self.lock();
        if v.term == term {
            v.confirmed = true;
        }
        Ok(())
    }

    fn seen(&self, group: &str, member: &str) {
        let now = now_ms();
        self.lock().last_seen.insert((group.to_owned(), member.to_owned()), now);
    }

    /// Proposes a group command stamped with the leader's clock; the outcome once applied, and
    /// the entry's index.
    async fn propose(&self, command: GroupCommand) -> Result<(GroupOutcome, u64), Status> {
        self.propose_as(command, None).await
    }

    /// [`Self::propose`], as an admin action of key `by` (recorded in the audit trail) when
    /// given.
    async fn propose_as(&self, command: GroupCommand, by: Option<String>) -> Result<(GroupOutcome, u64), Status> {
        self.lead().await?;
        crate::grpc::check_command("the group command", &command)?;
        let request = Request::Group { timestamp_ms: now_ms(), command };
        let request = match by {
            Some(by) => crate::grpc::client_service::audit::audited(by, request),
            None => request,
        };
        crate::grpc::check_proposal(&request)?;
        let write = self.raft.client_write(request);
        match self.liveness.unless_quorum_lost(tokio::time::timeout(WRITE_TIMEOUT, write)).await? {
            Err(_) => Err(Status::deadline_exceeded(format!("write not committed within {WRITE_TIMEOUT:?}"))),
            Ok(Ok(r)) => match r.data {
                Response::Group(o) => Ok((o, r.log_id.index)),
                // An audited action with a malformed key id.
                Response::Rejected(e) => Err(Status::invalid_argument(e.to_string())),
                other => Err(Status::internal(format!("unexpected response {other:?}"))),
            },
            Ok(Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f)))) => {
                Err(crate::grpc::client_service::forward(&f))
            }
            Ok(Err(RaftError::APIError(e))) => Err(Status::failed_precondition(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(Status::unavailable(format!("raft stopped: {e}"))),
        }
    }

    /// A new member joins `group`.
    pub async fn join(
        &self,
        group: String,
        topics: Vec<String>,
        session_timeout_ms: Option<u64>,
        auto_offset_reset: Option<group_core::OffsetReset>,
    ) -> Result<(MemberReply, u64), Status> {
        let g = group.clone();
        let distinct = topics.iter().collect::<std::collections::BTreeSet<_>>().len();
        let (o, index) =
            self.propose(GroupCommand::Join { group, topics, session_timeout_ms, auto_offset_reset }).await?;
        if o.code == GroupCode::LimitExceeded {
            return Err(group_status(o.code, self.join_limit_detail(&g, distinct)));
        }
        outcome_status(&o, &g, None)?;
        match o.reply {
            Reply::Member(m) => {
                self.seen(&g, &m.member_id);
                Ok((m, index))
            }
            other => Err(Status::internal(format!("join answered {other:?}"))),
        }
    }

    /// Which limit a refused join hit, named with its value (from the state after the refusal,
    /// which a refused entry does not change).
    fn join_limit_detail(&self, group: &str, distinct_topics: usize) -> String {
        use group_core::limits::{
            GROUPS_MAX, MEMBERS_PER_GROUP_MAX, PARTITIONS_PER_GROUP_MAX, TOPICS_PER_SUBSCRIPTION_MAX,
        };
        let (summary, _) = self.sm.with_groups(|g, _| {
            let list = g.list_groups();
            (list.len(), list.iter().find(|s| s.group == group).map(|s| s.members))
        });
        match summary {
            _ if distinct_topics > TOPICS_PER_SUBSCRIPTION_MAX => format!(
                "group '{group}': {distinct_topics} topics in one subscription; at most {TOPICS_PER_SUBSCRIPTION_MAX} \
                 (TOPICS_PER_SUBSCRIPTION_MAX)"
            ),
            (n, None) if n >= GROUPS_MAX => format!(
                "group '{group}' would be a new group, and {n} exist: at most {GROUPS_MAX} (GROUPS_MAX). Delete empty \
                 groups (DELETE /v1/groups/{{group}}) or let them expire (lognode --group-retention-ms)"
            ),
            (_, Some(m)) if m >= MEMBERS_PER_GROUP_MAX => {
                format!("group '{group}' has {m} members: at most {MEMBERS_PER_GROUP_MAX} (MEMBERS_PER_GROUP_MAX)")
            }
            _ => format!(
                "group '{group}': its members would subscribe to more than {PARTITIONS_PER_GROUP_MAX} partitions \
                 (PARTITIONS_PER_GROUP_MAX)"
            ),
        }
    }

    /// A heartbeat: the member's generation and assignments; keeps its session alive.
    /// Also returns the applied index it was answered at.
    pub async fn heartbeat(&self, group: &str, member: &str) -> Result<(MemberReply, u64), Status> {
        self.lead().await?;
        let (r, index) = self.sm.with_groups(|g, _| g.member(group, member));
        let r = r.map_err(|c| group_status(c, explain(c, group, Some(member))))?;
        self.seen(group, member);
        Ok((r, index))
    }

    /// The member leaves.
    pub async fn leave(&self, group: String, member_id: String) -> Result<u64, Status> {
        let (g, m) = (group.clone(), member_id.clone());
        let (o, index) = self.propose(GroupCommand::Leave { group, member_id }).await?;
        outcome_status(&o, &g, Some(&m))?;
        let mut v = self.lock();
        let key = (g, m);
        v.last_seen.remove(&key);
        v.positions.remove(&key);
        Ok(index)
    }

    /// Commits offsets (fenced by generation and ownership in the state machine).
    pub async fn commit(
        &self,
        group: String,
        member_id: String,
        generation: u64,
        offsets: Vec<(String, u32, u64)>,
    ) -> Result<u64, Status> {
        if offsets.len() > group_core::limits::OFFSETS_PER_COMMIT_MAX {
            return Err(group_status(
                GroupCode::LimitExceeded,
                format!(
                    "{} offsets in one commit; at most {}",
                    offsets.len(),
                    group_core::limits::OFFSETS_PER_COMMIT_MAX
                ),
            ));
        }
        let (g, m) = (group.clone(), member_id.clone());
        let (o, index) = self.propose(GroupCommand::Commit { group, member_id, generation, offsets }).await?;
        outcome_status(&o, &g, Some(&m))?;
        self.seen(&g, &m);
        Ok(index)
    }

    /// Admin reset of an empty group's committed offsets. A reset to a timestamp is resolved to
    /// offsets here, before proposing (apply never reads record timestamps).
    pub async fn reset(
        &self,
        group: String,
        topic: String,
        partition: Option<u32>,
        to: ResetTarget,
        by: String,
    ) -> Result<(Vec<(TopicPartition, u64)>, u64), Status> {
        self.lead().await?;
        let to = match to {
            ResetTarget::Earliest => group_core::ResetTo::Earliest,
            ResetTarget::Latest => group_core::ResetTo::Latest,
            ResetTarget::Offset(o) => group_core::ResetTo::Offset(o),
            ResetTarget::Timestamp(ts) => {
                let n = self.sm.partitions(&topic).ok_or_else(|| {
                    group_status(GroupCode::UnknownTopic, format!("group '{group}': no topic '{topic}'"))
                })?;
                let targets: Vec<u32> = match partition {
                    Some(p) if p >= n => {
                        return Err(group_status(
                            GroupCode::UnknownPartition,
                            format!("topic '{topic}' has no partition {p} (it has {n})"),
                        ));
                    }
                    Some(p) => vec![p],
                    None => (0..n).collect(),
                };
                let (sm, t) = (self.sm.clone(), topic.clone());
                let offsets = tokio::task::spawn_blocking(move || {
                    targets.into_iter().map(|p| sm.offset_for_timestamp(&t, p, ts).map(|o| (p, o))).collect::<Result<
                        Vec<_>,
                        ReadError,
                    >>(
                    )
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::unavailable(e.to_string()))?;
                group_core::ResetTo::Timestamp { timestamp_ms: ts, offsets }
            }
        };
        let g = group.clone();
        let reset = GroupCommand::ResetOffsets { group, topic, partition, to };
        let (o, index) = self.propose_as(reset, Some(by)).await?;
        outcome_status(&o, &g, None)?;
        match o.reply {
            Reply::Reset(v) => Ok((v, index)),
            other => Err(Status::internal(format!("reset answered {other:?}"))),
        }
    }

    /// Admin deletion of a group without members, with its committed offsets (group-core rule 13).
    pub async fn delete(&self, group: String, by: String) -> Result<u64, Status> {
        let g = group.clone();
        let (o, index) = self.propose_as(GroupCommand::Delete { group }, Some(by)).await?;
        outcome_status(&o, &g, None)?;
        self.forget_group(&g);
        Ok(index)
    }

    /// Drops the volatile state of a deleted group's members (none should be left: it was empty).
    fn forget_group(&self, group: &str) {
        let mut v = self.lock();
        v.last_seen.retain(|(g, _), _| g != group);
        v.positions.retain(|(g, _), _| g != group);
    }

    /// Every group: (group, generation, members), and the applied index.
    pub async fn list(&self) -> Result<(Vec<group_core::GroupSummary>, u64), Status> {
        self.lead().await?;
        Ok(self.sm.with_groups(|g, _| g.list_groups()))
    }

    /// Describes a group; members' `last_heartbeat_ms` includes the heartbeats this leader saw.
    pub async fn describe(&self, group: &str) -> Result<(GroupView, u64), Status> {
        self.lead().await?;
        let (view, index) = self.sm.with_groups(|g, c| g.describe(group, c));
        let mut view =
            view.ok_or_else(|| group_status(GroupCode::UnknownGroup, explain(GroupCode::UnknownGroup, group, None)))?;
        let v = self.lock();
        for m in &mut view.members {
            if let Some(seen) = v.last_seen.get(&(group.to_owned(), m.member_id.clone())) {
                m.last_heartbeat_ms = m.last_heartbeat_ms.max(*seen);
            }
        }
        Ok((view, index))
    }

    /// Records of the member's partitions from its positions, long-polling up to `wait` when
    /// there are none yet. Returns the generation and the records (per partition in offset order).
    ///
    /// `from` holds client-side positions (next offset per partition): for partitions the
    /// member owns they replace the leader's remembered position, so a client that lost an
    /// answer gets the same records again by sending the same positions; a position past the
    /// end is `offset_out_of_range`. At most [`FETCH_POSITIONS_MAX`].
    pub async fn fetch(
        &self,
        group: &str,
        member: &str,
        max_records: usize,
        wait: Duration,
        from: &BTreeMap<TopicPartition, u64>,
        shutdown: ledger_shutdown::Shutdown,
    ) -> Result<(u64, Vec<FetchedRecord>), Status> {
        if from.len() > FETCH_POSITIONS_MAX {
            return Err(group_status(
                GroupCode::LimitExceeded,
                format!("at most {FETCH_POSITIONS_MAX} client positions per fetch"),
            ));
        }
        let max = max_records.clamp(1, FETCH_RECORDS_MAX);
        let deadline = tokio::time::Instant::now() + wait.min(FETCH_WAIT_MAX);
        let mut applied = self.sm.applied();
        // Bounded by the deadline: each turn reads, then waits for a new applied entry or the end.
        loop {
            applied.borrow_and_update();
            self.lead().await?;
            let (generation, records) = self.fetch_once(group, member, max, from).await?;
            if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok((generation, records));
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return Ok((generation, records)) },
                () = tokio::time::sleep_until(deadline) => return Ok((generation, records)),
                () = shutdown.stopping() => return Ok((generation, records)),
            }
        }
    }

    /// One pass over the member's partitions.
    async fn fetch_once(
        &self,
        group: &str,
        member: &str,
        max: usize,
        from: &BTreeMap<TopicPartition, u64>,
    ) -> Result<(u64, Vec<FetchedRecord>), Status> {
        let key = (group.to_owned(), member.to_owned());
        let (reply, _) = self.sm.with_groups(|g, _| g.member(group, member));
        let reply = reply.map_err(|c| group_status(c, explain(c, group, Some(member))))?;
        let (positions, rotate) = {
            let mut v = self.lock();
            let now = now_ms();
            v.last_seen.insert(key.clone(), now);
            let p = v.positions.entry(key.clone()).or_default();
            if p.generation != reply.generation {
                *p = Positions { generation: reply.generation, ..Positions::default() };
            }
            (p.next.clone(), p.rotate)
        };
        // Where each owned partition starts, and which have records to read.
        let n = reply.assignments.len();
        let (plan, _) = self.sm.with_groups(|g, c| {
            (0..n)
                .map(|i| &reply.assignments[(rotate + i) % n])
                .map(|tp| {
                    let start = if let Some(&client) = from.get(tp) {
                        // The client's own position wins; past the end is its error to see.
                        g.fetch_start(group, member, &tp.topic, tp.partition, Some(client), c)
                    } else {
                        let pos = positions.get(tp).copied();
                        match g.fetch_start(group, member, &tp.topic, tp.partition, pos, c) {
                            // A position past the end cannot come from our reads; restart from the commit.
                            Err(GroupCode::OffsetOutOfRange) => {
                                g.fetch_start(group, member, &tp.topic, tp.partition, None, c)
                            }
                            r => r,
                        }
                    };
                    start.map(|s| (tp.clone(), s, c.end_offset(&tp.topic, tp.partition)))
                })
                .collect::<Result<Vec<_>, GroupCode>>()
        });
        let plan = plan.map_err(|c| group_status(c, explain(c, group, Some(member))))?;
        let sm = self.sm.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut out: Vec<FetchedRecord> = Vec::new();
            let mut next: Vec<(TopicPartition, u64)> = Vec::new();
            let mut bytes = 0usize;
            for (tp, start, end) in plan {
                if out.len() >= max || bytes >= FETCH_BYTES_MAX {
                    break;
                }
                next.push((tp.clone(), start));
                if start >= end {
                    continue;
                }
                let r = sm.read(&tp.topic, tp.partition, start, max - out.len())?;
                if let Some(last) = r.records.last() {
                    next.push((tp.clone(), last.offset + 1));
                }
                bytes += r
                    .records
                    .iter()
                    .map(|x| {
                        x.record.key.len()
                            + x.record.value.len()
                            + x.record.headers.iter().map(|h| h.0.len() + h.1.len()).sum::<usize>()
                    })
                    .sum::<usize>();
                out.extend(r.records.into_iter().map(|record| FetchedRecord {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    record,
                }));
            }
            Ok::<_, ReadError>((out, next))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let (records, next) = match read {
            Ok(x) => x,
            // Retention passed the start meanwhile, or a log read failed: the next fetch retries.
            Err(e) => return Err(Status::unavailable(e.to_string())),
        };
        let mut v = self.lock();
        if let Some(p) = v.positions.get_mut(&key).filter(|p| p.generation == reply.generation) {
            for (tp, o) in next {
                p.next.insert(tp, o);
            }
            p.rotate = if n == 0 { 0 } else { (p.rotate + 1) % n };
        }
        Ok((reply.generation, records))
    }

    /// One expiry round (leader only): proposes `ExpireMembers` for every group with members
    /// silent for their session timeout, at most [`EXPIRY_ENTRIES_PER_TICK`] entries.
    async fn expire_round(&self) {
        match self.leading_term() {
            Err(_) => return,
            // Confirm leadership (and an up-to-date state) once per term before deciding.
            Ok((_, false)) if self.lead().await.is_err() => return,
            Ok(_) => {}
        }
        let now = now_ms();
        let (seen, takeover) = {
            let v = self.lock();
            (v.last_seen.clone(), v.takeover_ms)
        };
        let (due, _) = self.sm.with_groups(|g, _| {
            g.due_for_expiry(now, |group, member| {
                let s = seen.get(&(group.to_owned(), member.to_owned())).copied().unwrap_or(0);
                Some(s.max(takeover))
            })
        });
        // Forget members that are gone (bounded memory).
        let (alive, _) = self.sm.with_groups(|g, _| {
            seen.keys().filter(|(gr, m)| g.member(gr, m).is_ok()).cloned().collect::<std::collections::HashSet<_>>()
        });
        {
            let mut v = self.lock();
            // Entries added since the snapshot above belong to members that just joined or fetched.
            v.last_seen.retain(|k, _| alive.contains(k) || !seen.contains_key(k));
            v.positions.retain(|k, _| alive.contains(k) || !seen.contains_key(k));
        }
        let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (g, m) in due {
            by_group.entry(g).or_default().push(m);
        }
        for (group, member_ids) in by_group.into_iter().take(EXPIRY_ENTRIES_PER_TICK) {
            info!(%group, ?member_ids, "expiring consumer-group members whose session timed out");
            match self.propose(GroupCommand::ExpireMembers { group, member_ids }).await {
                Ok((o, index)) => debug!(index, ?o.reply, "proposed ExpireMembers"),
                Err(e) => {
                    debug!(error = %e, "ExpireMembers failed; will retry");
                    return;
                }
            }
        }
        self.expire_empty_groups().await;
    }

    /// Proposes `ExpireEmpty` (with this leader's clock and retention) while a group has been
    /// empty for the retention, at most [`EXPIRY_ENTRIES_PER_TICK`] entries.
    async fn expire_empty_groups(&self) {
        for _ in 0..EXPIRY_ENTRIES_PER_TICK {
            let now_ms = now_ms();
            let (due, _) =
                self.sm.with_groups(|g, _| g.next_empty_expiry_ms(self.retention_ms).is_some_and(|at| at <= now_ms));
            if !due {
                return;
            }
            let command = GroupCommand::ExpireEmpty { now_ms, retention_ms: self.retention_ms };
            match self.propose(command).await {
                Ok((GroupOutcome { reply: Reply::Deleted(d), .. }, index)) => {
                    info!(index, groups = ?d.deleted, "deleted consumer groups empty for the retention");
                    for g in &d.deleted {
                        self.forget_group(g);
                    }
                    if !d.more_due {
                        return;
                    }
                }
                Ok((o, _)) => {
                    debug!(code = %o.code, "ExpireEmpty refused");
                    return;
                }
                Err(e) => {
                    debug!(error = %e, "ExpireEmpty failed; will retry");
                    return;
                }
            }
        }
    }
}

/// On the leader, expires members whose session timed out, every [`EXPIRY_TICK`]; returns on
/// shutdown.
pub async fn expire_task(coordinator: Arc<Coordinator>, shutdown: ledger_shutdown::Shutdown) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.stopping() => return,
        }
        coordinator.expire_round().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal carries its stable code in the metadata, and a gRPC code that the gateway's
    /// retry loop treats as final (never FAILED_PRECONDITION, which means "not the leader").
    #[test]
    fn group_statuses_carry_the_code_and_a_final_grpc_code() {
        for &c in GroupCode::ALL {
            if c.is_ok() {
                continue;
            }
            let s = group_status(c, explain(c, "g", Some("g-1")));
            let md = s.metadata().get(ledger_proto::GROUP_CODE_METADATA).and_then(|v| v.to_str().ok());
            assert_eq!(md, Some(c.as_str()), "{c}");
            assert_ne!(s.code(), tonic::Code::FailedPrecondition, "{c}");
            assert_ne!(s.code(), tonic::Code::Unavailable, "{c}");
            assert!(!s.message().is_empty(), "{c}");
        }
        assert_eq!(group_status(GroupCode::StaleGeneration, "x").code(), tonic::Code::Aborted);
        assert_eq!(group_status(GroupCode::UnknownMember, "x").code(), tonic::Code::NotFound);
    }
}
