//! This node's status for ClusterStatus, and the peers' (asked over one cached channel each).

use std::collections::BTreeMap;

use ledger_proto::ledger::ledger_client::LedgerClient;
use ledger_proto::ledger::{ClusterStatusRequest, NodeStatus, Role};
use openraft::ServerState;
use tonic::Request;

use super::ClientService;
use crate::discovery::MemberKind;
use crate::limits::STATUS_PEER_TIMEOUT;

impl ClientService {
    pub(super) fn local_status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let voter = m.membership_config.membership().voter_ids().any(|v| v == self.id);
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Follower if voter => Role::Follower,
            ServerState::Follower => Role::Learner,
            ServerState::Shutdown => Role::None,
        };
        NodeStatus {
            id: self.id,
            grpc_addr: self.grpc_addr.clone(),
            role: role as i32,
            alive: true,
            last_applied_index: self.sm.applied_index(),
            voter,
            kind: MemberKind::Lognode.as_str().to_string(),
            offset_map_runs: self.sm.offset_map_runs(),
            snapshot_index: self.sm.snapshot_index(),
            log_first_index: self.sm.log_first_index(),
            opened_at_index: self.sm.opened_at_index(),
            log_bytes_since_snapshot: self.sm.log_bytes_since_snapshot(),
            term: m.current_term,
            quorum_lost: self.liveness.quorum_lost(),
            membership_changing: m.membership_config.membership().get_joint_config().len() > 1,
        }
    }
}

/// One lazily connected channel per peer address, reused by every ClusterStatus (a status
/// request used to open a new connection to every peer); at most `PEER_STATUS_CHANNELS_MAX`.
static PEER_STATUS_CHANNELS: std::sync::Mutex<BTreeMap<String, tonic::transport::Channel>> =
    std::sync::Mutex::new(BTreeMap::new());

fn peer_status_channel(addr: &str) -> Option<tonic::transport::Channel> {
    let mut m = PEER_STATUS_CHANNELS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = m.get(addr) {
        return Some(c.clone());
    }
    if m.len() >= crate::limits::PEER_STATUS_CHANNELS_MAX {
        m.clear(); // peers came and went: start over rather than grow
    }
    let c = crate::network::channel(addr).ok()?;
    m.insert(addr.to_owned(), c.clone());
    Some(c)
}

pub(super) async fn peer_status(addr: String) -> Option<NodeStatus> {
    let channel = peer_status_channel(&addr)?;
    let mut client = LedgerClient::new(channel);
    let mut req = Request::new(ClusterStatusRequest { local_only: true });
    req.set_timeout(STATUS_PEER_TIMEOUT);
    let resp = tokio::time::timeout(STATUS_PEER_TIMEOUT, client.cluster_status(req)).await.ok()?.ok()?;
    resp.into_inner().nodes.into_iter().next()
}
