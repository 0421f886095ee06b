//! The Raft transport's server side: decodes openraft requests and hands them to the local Raft.

use ledger_proto::raft::raft_server::Raft as RaftRpc;
use ledger_proto::raft::{PreVoteReply, PreVoteRequest, RaftReply, RaftRequest, SnapshotChunk, raft_reply};
use openraft::raft::AppendEntriesResponse;
use openraft::{Snapshot, SnapshotMeta, Vote};
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use crate::limits::{SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_WAIT_MAX};
use crate::store::StateMachineStore;
use crate::store::state_machine::SnapshotFile;
use crate::types::{Node, Raft, decode, encode};

/// Serves `ledger.raft.v1.Raft`.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    /// Where received snapshots are written.
    sm: StateMachineStore,
    /// InstallSnapshot streams received at once (`SNAPSHOT_INSTALLS_MAX`).
    installs: std::sync::Arc<tokio::sync::Semaphore>,
    /// Contact with the leader (AppendEntries accepted) and this node's pre-vote answers.
    liveness: std::sync::Arc<crate::election::Liveness>,
}

impl RaftService {
    /// Wraps the local Raft and its state machine.
    pub fn new(raft: Raft, sm: StateMachineStore, liveness: std::sync::Arc<crate::election::Liveness>) -> Self {
        let installs = std::sync::Arc::new(tokio::sync::Semaphore::new(crate::limits::SNAPSHOT_INSTALLS_MAX));
        RaftService { raft, sm, installs, liveness }
    }
}

fn reply<T: Serialize, E: Serialize>(r: Result<T, E>) -> Response<RaftReply> {
    let result = match r {
        Ok(v) => raft_reply::Result::Ok(encode(&v)),
        Err(e) => raft_reply::Result::Error(encode(&e)),
    };
    Response::new(RaftReply { result: Some(result) })
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable Raft payload: {e}"))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = decode(&request.into_inner().payload).map_err(bad)?;
        let resp = self.raft.append_entries(req).await;
        // From the current leader (or a newer one): anything but a higher vote of ours.
        if matches!(resp, Ok(ref r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.liveness.heard_from_leader();
        }
        Ok(reply(resp))
    }

    async fn pre_vote(&self, request: Request<PreVoteRequest>) -> Result<Response<PreVoteReply>, Status> {
        let req = request.into_inner();
        let theirs = crate::election::decode_log_id(&req.last_log_id)?;
        let answer = crate::election::pre_vote_answer(&self.raft, &self.liveness, theirs.as_ref());
        Ok(Response::new(match answer {
            Ok(()) => PreVoteReply { granted: true, reason: String::new() },
            Err(reason) => PreVoteReply { granted: false, reason },
        }))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = decode(&request.into_inner().payload).map_err(bad)?;
        Ok(reply(self.raft.vote(req).await))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let _install = self.installs.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} snapshot installs already running; at most {} at once (retry later)",
                crate::limits::SNAPSHOT_INSTALLS_MAX,
                crate::limits::SNAPSHOT_INSTALLS_MAX
            ))
        })?;
        let mut stream = request.into_inner();
        let first = tokio::time::timeout(SNAPSHOT_CHUNK_WAIT_MAX, stream.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no snapshot chunk came"))??
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let (vote, meta): (Vote<u64>, SnapshotMeta<u64, Node>) = decode(&first.meta).map_err(bad)?;
        if first.total_bytes > SNAPSHOT_BYTES_MAX {
            return Err(too_large());
        }
        let data = self.sm.begin_receive().await.map_err(|e| Status::internal(format!("snapshot file: {e}")))?;
        let path = data.path().to_path_buf();
        let received = receive(data, first, &mut stream).await;
        let result = match received {
            Ok(data) => {
                Ok(reply(self.raft.install_full_snapshot(vote, Snapshot { meta, snapshot: Box::new(data) }).await))
            }
            Err(status) => Err(status),
        };
        // Installing publishes the file under another name; whatever is left was not installed.
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a received snapshot file");
        }
        result
    }
}

fn too_large() -> Status {
    Status::resource_exhausted(format!("snapshot over {SNAPSHOT_BYTES_MAX} bytes"))
}

/// Writes the chunks of a snapshot stream (`first`, then the rest of `stream`) into `data`,
/// checking their offsets, the size limit and the announced total.
async fn receive(
    mut data: SnapshotFile,
    first: SnapshotChunk,
    stream: &mut Streaming<SnapshotChunk>,
) -> Result<SnapshotFile, Status> {
    use tokio::io::AsyncWriteExt as _;
    let io = |e: std::io::Error| Status::internal(format!("writing the snapshot file: {e}"));
    let total = first.total_bytes;
    let mut received = 0u64;
    let mut chunk = Some(first);
    while let Some(c) = chunk {
        if c.offset != received && !c.data.is_empty() {
            return Err(Status::invalid_argument(format!(
                "snapshot chunk at offset {} but {received} bytes received",
                c.offset
            )));
        }
        let len = c.data.len() as u64;
        if received + len > SNAPSHOT_BYTES_MAX {
            return Err(too_large());
        }
        data.file_mut().write_all(&c.data).await.map_err(io)?;
        received += len;
        chunk = match tokio::time::timeout(SNAPSHOT_CHUNK_WAIT_MAX, stream.message()).await {
            Ok(next) => next?,
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "no snapshot chunk for {} s after {received} bytes",
                    SNAPSHOT_CHUNK_WAIT_MAX.as_secs()
                )));
            }
        };
    }
    if total != 0 && received != total {
        return Err(Status::invalid_argument(format!("snapshot stream ended after {received} of {total} bytes")));
    }
    data.file_mut().flush().await.map_err(io)?;
    Ok(data)
}
