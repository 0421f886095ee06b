//! gRPC services: the Raft transport ([`raft_service`]) and the client API ([`client_service`]).

pub mod batcher;
pub mod client_service;
pub mod raft_service;

use crate::limits::{COMMAND_BYTES_MAX, PROPOSAL_BYTES_MAX};

/// The bincode size of `value` (as the log stores it), without encoding it.
fn encoded_size<T: serde::Serialize>(value: &T) -> usize {
    bincode::serialized_size(value).map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Refuses a request whose Raft entry the log could not store (see [`PROPOSAL_BYTES_MAX`]).
pub fn check_proposal(request: &crate::types::Request) -> Result<(), tonic::Status> {
    let n = encoded_size(request);
    if n > PROPOSAL_BYTES_MAX {
        return Err(tonic::Status::invalid_argument(format!(
            "the request encodes to {n} bytes; the log's record limit allows at most {PROPOSAL_BYTES_MAX}"
        )));
    }
    Ok(())
}

/// Refuses one client command larger than [`COMMAND_BYTES_MAX`] (`what` names it).
pub fn check_command<T: serde::Serialize>(what: &str, command: &T) -> Result<(), tonic::Status> {
    let n = encoded_size(command);
    if n > COMMAND_BYTES_MAX {
        return Err(tonic::Status::invalid_argument(format!("{what} encodes to {n} bytes; at most {COMMAND_BYTES_MAX}")));
    }
    Ok(())
}
