//! The Raft transport's server side: decodes openraft requests and hands them to the local Raft.

use std::io::Cursor;

use ledger_proto::raft::raft_server::Raft as RaftRpc;
use ledger_proto::raft::{RaftReply, RaftRequest, SnapshotChunk, raft_reply};
use openraft::{Snapshot, SnapshotMeta, Vote};
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use crate::limits::SNAPSHOT_BYTES_MAX;
use crate::types::{Node, Raft, decode, encode};

/// Serves `ledger.raft.v1.Raft`.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    /// InstallSnapshot streams received at once (`SNAPSHOT_INSTALLS_MAX`).
    installs: std::sync::Arc<tokio::sync::Semaphore>,
}

impl RaftService {
    /// Wraps the local Raft.
    pub fn new(raft: Raft) -> Self {
        let installs = std::sync::Arc::new(tokio::sync::Semaphore::new(crate::limits::SNAPSHOT_INSTALLS_MAX));
        RaftService { raft, installs }
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
        Ok(reply(self.raft.append_entries(req).await))
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
        let first = stream.message().await?.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let (vote, meta): (Vote<u64>, SnapshotMeta<u64, Node>) = decode(&first.meta).map_err(bad)?;
        let mut data = first.data;
        while let Some(chunk) = stream.message().await? {
            if chunk.offset != data.len() as u64 {
                return Err(Status::invalid_argument(format!(
                    "snapshot chunk at offset {} but {} bytes received",
                    chunk.offset,
                    data.len()
                )));
            }
            if data.len() + chunk.data.len() > SNAPSHOT_BYTES_MAX {
                return Err(Status::resource_exhausted(format!("snapshot over {SNAPSHOT_BYTES_MAX} bytes")));
            }
            data.extend_from_slice(&chunk.data);
        }
        let snapshot = Snapshot { meta, snapshot: Box::new(Cursor::new(data)) };
        Ok(reply(self.raft.install_full_snapshot(vote, snapshot).await))
    }
}
