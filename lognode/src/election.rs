//! Leadership that follows the majority: check-quorum on the leader, pre-vote before every
//! election, and the election timer itself.
//!
//! openraft 0.9 leaves three gaps that a partition exposes:
//! - a leader cut off from the majority keeps leading: it accepts writes that can never commit and
//!   keeps sending heartbeats to followers that can still hear it (a one-way cut), so they never
//!   elect another;
//! - a node cut off from everyone starts election after election, raising its term, and when it
//!   comes back the higher term deposes the healthy leader (a second outage);
//! - a follower waits for the leader lease *plus* an election timeout before it stands.
//!
//! So elections are ours: openraft's own election timer is off (`enable_elect: false`), and
//! [`run`] starts one (`trigger().elect()`) when this voter has heard from no leader for
//! [`ELECTION_SILENCE`] plus a per-node jitter and a majority of the voters answer a PreVote with
//! yes. A voter says yes only when it has not heard from a leader within the lease either (or it
//! is a leader that lost its quorum), and the asker's log is at least as new as its own.
//!
//! Heartbeats are ours too, every `HEARTBEAT_MS`: openraft uses its heartbeat interval as the
//! deadline of every AppendEntries as well, and that deadline must outlast a TCP retransmission
//! (`APPEND_TIMEOUT_MS`).
//!
//! A leader with no acknowledgement from a majority for [`QUORUM_ACK_MAX`] has *lost its quorum*:
//! it refuses writes and strong reads at once ("no leader is known", so callers look elsewhere),
//! cuts the writes it was waiting on ("outcome unknown": they may still commit under the next
//! leader), stops sending AppendEntries so that its followers see it gone, and reports itself in
//! ClusterStatus so that the gateway stops routing to it. A new leader deposes it as soon as the
//! partition heals.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ledger_proto::raft::PreVoteRequest;
use ledger_proto::raft::raft_client::RaftClient;
use openraft::{LogId, ServerState};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use crate::limits::{
    ELECTION_JITTER, ELECTION_RETRY, ELECTION_SILENCE, ELECTION_TICK, HEARTBEAT_MS, PREVOTE_TIMEOUT, QUORUM_ACK_MAX,
    STARTUP_ELECTION_SILENCE,
};
use crate::types::{Raft, decode, encode};

/// What this node knows of the leader's liveness, shared by the Raft service (contact), the
/// network (silence while the quorum is lost), the client service (refusals) and [`run`].
#[derive(Debug)]
pub struct Liveness {
    base: Instant,
    /// Milliseconds after `base` of the last AppendEntries accepted from a leader, or of the last
    /// vote given to another node.
    contact_ms: AtomicU64,
    /// True while this node leads without a quorum (see the module docs).
    quorum_lost: watch::Sender<bool>,
    /// Milliseconds after `base` until which this node does not stand: it granted another
    /// candidate's pre-vote, and that candidate is about to stand.
    defer_ms: AtomicU64,
}

impl Liveness {
    /// A node that has just started: it stands once it has heard from no leader for
    /// [`STARTUP_ELECTION_SILENCE`] (plus its jitter), as if its last contact had been that much
    /// less than the lease before it started.
    pub fn new() -> Arc<Liveness> {
        let head_start = ELECTION_SILENCE.saturating_sub(STARTUP_ELECTION_SILENCE);
        let now = Instant::now();
        Arc::new(Liveness {
            base: now.checked_sub(head_start).unwrap_or(now),
            contact_ms: AtomicU64::new(0),
            quorum_lost: watch::Sender::new(false),
            defer_ms: AtomicU64::new(0),
        })
    }

    /// Notes a pre-vote granted to another candidate: this node does not stand itself for
    /// [`ELECTION_RETRY`], so that two voters that became eligible together do not split the vote
    /// (after a restart of the whole cluster two nodes stood within 40 ms of each other, and the
    /// vote took a second more). If that candidate does not win, this node stands after it.
    pub fn granted_pre_vote(&self) {
        let until = self.now_ms().saturating_add(u64::try_from(ELECTION_RETRY.as_millis()).unwrap_or(u64::MAX));
        self.defer_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether this node granted another candidate's pre-vote within [`ELECTION_RETRY`].
    pub fn deferring(&self) -> bool {
        self.now_ms() < self.defer_ms.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes an AppendEntries accepted from a leader (or a vote given to another node).
    pub fn heard_from_leader(&self) {
        self.contact_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// Time since [`Liveness::heard_from_leader`].
    pub fn silent_for(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.contact_ms.load(Ordering::Relaxed)))
    }

    /// Whether this node leads without a quorum.
    pub fn quorum_lost(&self) -> bool {
        *self.quorum_lost.borrow()
    }

    /// The refusal of a write or a strong read while the quorum is lost: "no leader is known",
    /// which callers retry elsewhere (nothing was proposed).
    pub fn no_quorum() -> Status {
        Status::unavailable(format!(
            "this node leads but no majority acknowledged it for over {} ms: no leader is known that can \
             commit; retry (a new leader is being elected)",
            QUORUM_ACK_MAX.as_millis()
        ))
    }

    /// Refuses at once while the quorum is lost.
    pub fn check(&self) -> Result<(), Status> {
        if self.quorum_lost() { Err(Self::no_quorum()) } else { Ok(()) }
    }

    /// Waits for `fut` (a write or a leadership check already sent to Raft), unless the quorum is
    /// lost first: then the caller learns that the outcome is unknown (the entry may still commit
    /// under the next leader; writes carry idempotency ids and may be sent again).
    pub async fn unless_quorum_lost<T>(&self, fut: impl Future<Output = T>) -> Result<T, Status> {
        let mut lost = self.quorum_lost.subscribe();
        tokio::select! {
            v = fut => Ok(v),
            _ = lost.wait_for(|l| *l) => Err(Status::unavailable(format!(
                "this node lost its majority (no acknowledgement for over {} ms) while the request waited: \
                 its outcome is unknown; retry with the same id",
                QUORUM_ACK_MAX.as_millis()
            ))),
        }
    }

    /// Watches [`Liveness::quorum_lost`]: a hedged AppendEntries stops at once when it turns true.
    pub fn quorum_lost_watch(&self) -> watch::Receiver<bool> {
        self.quorum_lost.subscribe()
    }

    fn set_quorum_lost(&self, lost: bool) -> bool {
        self.quorum_lost.send_if_modified(|l| std::mem::replace(l, lost) != lost)
    }
}

/// The PreVote answer of this node to `candidate` whose last log id is `theirs`: `Ok(())` grants.
pub fn pre_vote_answer(raft: &Raft, liveness: &Liveness, theirs: Option<&LogId<u64>>) -> Result<(), String> {
    let state = raft.metrics().borrow().state;
    if state == ServerState::Leader && !liveness.quorum_lost() {
        return Err("this node leads and has its majority".into());
    }
    let silent = liveness.silent_for();
    if state != ServerState::Leader && silent < ELECTION_SILENCE {
        return Err(format!("this node heard from a leader {} ms ago", silent.as_millis()));
    }
    let mine = raft.data_metrics().borrow().last_log;
    if theirs < mine.as_ref() {
        return Err(format!("the candidate's log ({theirs:?}) is behind this node's ({mine:?})"));
    }
    liveness.granted_pre_vote();
    Ok(())
}

/// The jitter of this node's `attempt`-th election: spread over [`ELECTION_JITTER`] by node id
/// and attempt, so that two voters that lost the leader together do not stand together.
fn jitter(id: u64, attempt: u64) -> Duration {
    let span = u64::try_from(ELECTION_JITTER.as_millis()).unwrap_or(1).max(1);
    let x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(attempt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    Duration::from_millis(HEARTBEAT_MS + (x >> 33) % span)
}

/// Tracks how old the leader's last quorum acknowledgement is. openraft publishes
/// `millis_since_quorum_ack` with its metrics, which are not republished while nothing happens:
/// the age is the published value plus the time since it was seen.
#[derive(Default)]
struct QuorumClock {
    /// (term, when this node was first seen leading in it).
    leading: Option<(u64, Instant)>,
    /// (published age, when it was seen).
    ack: Option<(u64, Instant)>,
}

impl QuorumClock {
    /// Looks at the metrics; `fresh` when they were just published (their ack age is current).
    fn observe(&mut self, m: &crate::types::RaftMetrics, now: Instant, fresh: bool) {
        if m.state != ServerState::Leader {
            *self = QuorumClock::default();
            return;
        }
        if self.leading.is_none_or(|(t, _)| t != m.current_term) {
            self.leading = Some((m.current_term, now));
            self.ack = None;
        }
        if fresh || self.ack.is_none() {
            self.ack = m.millis_since_quorum_ack.map(|ms| (ms, now));
        }
    }

    fn lost(&self, m: &crate::types::RaftMetrics, now: Instant) -> bool {
        let Some((_, since)) = self.leading else { return false };
        if m.state != ServerState::Leader || m.membership_config.membership().voter_ids().count() <= 1 {
            return false;
        }
        let age = match self.ack {
            Some((ms, seen)) => Duration::from_millis(ms) + now.saturating_duration_since(seen),
            // No acknowledgement yet in this term: counted from when it began.
            None => now.saturating_duration_since(since),
        };
        age > QUORUM_ACK_MAX
    }
}

/// Runs check-quorum and elections for node `id` until `stop` resolves.
pub async fn run(id: u64, raft: Raft, liveness: Arc<Liveness>, stop: impl Future<Output = ()>) {
    let mut metrics = raft.metrics();
    let mut tick = tokio::time::interval(ELECTION_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clock = QuorumClock::default();
    let mut peers: BTreeMap<String, RaftClient<Channel>> = BTreeMap::new();
    let mut last_vote = metrics.borrow().vote;
    let mut attempt = 0u64;
    let mut next_try = Instant::now();
    let mut next_heartbeat = Instant::now();
    tokio::pin!(stop);
    loop {
        // Looked at once per tick, not on every publication (openraft publishes its metrics on
        // every turn of its loop, thousands of times a second under load): an ack age published
        // since the last tick is at most one tick old.
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        let Ok(changed) = metrics.has_changed() else { return };
        let m = metrics.borrow_and_update().clone();
        let now = Instant::now();
        clock.observe(&m, now, changed);
        let lost = clock.lost(&m, now);
        if liveness.set_quorum_lost(lost) {
            if lost {
                warn!(
                    term = m.current_term,
                    "no majority acknowledged this leader for {QUORUM_ACK_MAX:?}: refusing writes, going silent"
                );
            } else if m.state == ServerState::Leader {
                info!(term = m.current_term, "this leader has its majority again");
            } else {
                info!(term = m.current_term, leader = ?m.current_leader, "this node no longer leads");
            }
        }
        if m.vote != last_vote {
            // A vote given to another node: an election is under way, do not stand against it.
            if m.vote.leader_id().voted_for() != Some(id) {
                liveness.heard_from_leader();
            }
            last_vote = m.vote;
        }
        if m.state == ServerState::Leader && !lost && now >= next_heartbeat {
            next_heartbeat = now + Duration::from_millis(HEARTBEAT_MS);
            if let Err(e) = raft.trigger().heartbeat().await {
                warn!(error = %e, "could not send heartbeats");
                return;
            }
        }
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        if m.state == ServerState::Leader || !voters.contains(&id) || now < next_try {
            continue;
        }
        if voters.len() > 1 && (liveness.silent_for() < ELECTION_SILENCE + jitter(id, attempt) || liveness.deferring())
        {
            continue;
        }
        attempt += 1;
        next_try = now + ELECTION_RETRY;
        let others: Vec<(u64, String)> = voters
            .iter()
            .filter(|v| **v != id)
            .filter_map(|v| membership.get_node(v).map(|n| (*v, n.addr.clone())))
            .collect();
        peers.retain(|addr, _| others.iter().any(|(_, a)| a == addr));
        let mut granted_by = pre_vote(id, &raft, &mut peers, &others).await;
        granted_by.insert(id);
        let granted = granted_by.len();
        if liveness.deferring() {
            // Another candidate asked meanwhile and was granted: it stands, this one waits.
            debug!(granted, "granted another candidate's pre-vote meanwhile: not standing");
        } else if majority_of_each(membership.get_joint_config(), &granted_by) {
            info!(
                term = m.current_term,
                granted,
                voters = voters.len(),
                "pre-vote granted by a majority: standing for election"
            );
            if let Err(e) = raft.trigger().elect().await {
                warn!(error = %e, "could not start an election");
                return;
            }
        } else {
            debug!(
                granted,
                voters = voters.len(),
                joint = membership.get_joint_config().len() > 1,
                "pre-vote not granted by a majority (of each configuration, while the membership changes)"
            );
        }
    }
}

/// Whether `granted` holds a majority of every configuration of `joint`: what an election needs,
/// also while the membership changes (a joint configuration of the old and the new voters), when
/// a majority of the union is not enough. Standing without it only raises the term.
fn majority_of_each(joint: &[std::collections::BTreeSet<u64>], granted: &std::collections::BTreeSet<u64>) -> bool {
    !joint.is_empty() && joint.iter().all(|c| c.iter().filter(|v| granted.contains(v)).count() * 2 > c.len())
}

/// Asks every other voter (`(id, address)`) for a pre-vote at once, each within
/// [`PREVOTE_TIMEOUT`]; returns the ids of those that granted.
async fn pre_vote(
    id: u64,
    raft: &Raft,
    peers: &mut BTreeMap<String, RaftClient<Channel>>,
    others: &[(u64, String)],
) -> std::collections::BTreeSet<u64> {
    let last_log_id = encode(&raft.data_metrics().borrow().last_log);
    let mut set = tokio::task::JoinSet::new();
    for (voter, addr) in others {
        let voter = *voter;
        let client = match peers.get(addr) {
            Some(c) => c.clone(),
            None => match crate::network::channel(addr) {
                Ok(ch) => peers.entry(addr.clone()).or_insert_with(|| RaftClient::new(ch)).clone(),
                Err(_) => continue,
            },
        };
        let req = PreVoteRequest { candidate_id: id, last_log_id: last_log_id.clone() };
        let addr = addr.clone();
        set.spawn(async move {
            let mut client = client;
            let mut request = tonic::Request::new(req);
            request.set_timeout(PREVOTE_TIMEOUT);
            let reply = tokio::time::timeout(PREVOTE_TIMEOUT, client.pre_vote(request)).await;
            match reply {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    if !r.granted {
                        debug!(peer = %addr, reason = %r.reason, "pre-vote refused");
                    }
                    r.granted.then_some(voter)
                }
                _ => None,
            }
        });
    }
    let mut granted = std::collections::BTreeSet::new();
    while let Some(r) = set.join_next().await {
        granted.extend(r.ok().flatten());
    }
    granted
}

/// Decodes a PreVote's last log id.
pub fn decode_log_id(bytes: &[u8]) -> Result<Option<LogId<u64>>, Status> {
    decode(bytes).map_err(|e| Status::invalid_argument(format!("undecodable last_log_id: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_its_window_and_differs_between_nodes() {
        let lo = Duration::from_millis(HEARTBEAT_MS);
        let hi = lo + ELECTION_JITTER;
        for id in 1..=5 {
            for attempt in 0..50 {
                let j = jitter(id, attempt);
                assert!(j >= lo && j < hi, "{j:?}");
            }
        }
        assert!((1..=5).map(|id| jitter(id, 0)).collect::<std::collections::BTreeSet<_>>().len() >= 4);
    }

    /// An election needs a majority of each configuration of a joint one: while node 3 is being
    /// added to {1, 2}, nodes 2 and 3 together are a majority of the union but not of {1, 2}.
    #[test]
    fn a_joint_membership_needs_a_majority_of_each_configuration() {
        let set = |v: &[u64]| v.iter().copied().collect::<std::collections::BTreeSet<u64>>();
        let joint = [set(&[1, 2]), set(&[1, 2, 3])];
        assert!(!majority_of_each(&joint, &set(&[2, 3])));
        assert!(majority_of_each(&joint, &set(&[1, 2])));
        assert!(majority_of_each(&joint, &set(&[1, 2, 3])));
        let uniform = [set(&[1, 2, 3])];
        assert!(majority_of_each(&uniform, &set(&[2, 3])));
        assert!(!majority_of_each(&uniform, &set(&[3])));
        assert!(!majority_of_each(&[], &set(&[1])));
        assert!(majority_of_each(&[set(&[7])], &set(&[7])), "a single voter elects itself");
    }

    #[tokio::test]
    async fn silence_counts_from_the_last_contact() {
        let l = Liveness::new();
        // A node just started stands after STARTUP_ELECTION_SILENCE, not the whole lease.
        let head_start = l.silent_for();
        assert!(head_start >= ELECTION_SILENCE - STARTUP_ELECTION_SILENCE, "{head_start:?}");
        assert!(head_start < ELECTION_SILENCE, "{head_start:?}");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let before = l.silent_for();
        assert!(before >= head_start + Duration::from_millis(60), "{before:?}");
        l.heard_from_leader();
        assert!(l.silent_for() < before, "{:?}", l.silent_for());
    }

    #[tokio::test]
    async fn a_granted_pre_vote_defers_standing_for_one_retry() {
        let l = Liveness::new();
        assert!(!l.deferring());
        l.granted_pre_vote();
        assert!(l.deferring(), "granting another candidate defers this node's own candidacy");
        tokio::time::sleep(ELECTION_RETRY + Duration::from_millis(20)).await;
        assert!(!l.deferring(), "and only for ELECTION_RETRY");
    }

    #[tokio::test]
    async fn a_lost_quorum_cuts_the_wait_with_outcome_unknown() {
        let l = Liveness::new();
        assert!(l.check().is_ok());
        let waiter = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.unless_quorum_lost(std::future::pending::<()>()).await })
        };
        tokio::task::yield_now().await;
        assert!(l.set_quorum_lost(true));
        let err = waiter.await.expect("waiter").expect_err("the wait is cut");
        assert!(err.message().contains("outcome is unknown"), "{err}");
        assert!(l.check().expect_err("refused").message().contains("no leader is known"));
    }
}
