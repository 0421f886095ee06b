//! gRPC services: the Raft transport ([`raft_service`]) and the client API ([`client_service`]).

pub mod batcher;
pub mod client_service;
pub mod raft_service;

/// Largest gRPC message a client may send or receive.
pub const CLIENT_MESSAGE_MAX: usize = 16 * 1024 * 1024;

/// Bytes a Raft entry adds around its request in the log record (log id and payload tag: a few
/// dozen), with a wide margin.
pub const ENTRY_OVERHEAD_MAX: usize = 4 * 1024;

/// Largest encoded request lognode proposes to Raft. The log refuses a record over
/// `logstore::RECORD_SIZE_MAX`, and openraft treats that refusal as a fatal storage error that
/// stops Raft on the leader; so a larger request is refused with `InvalidArgument` before it is
/// proposed (etcd's `--max-request-bytes` check).
pub const PROPOSAL_BYTES_MAX: usize = logstore::RECORD_SIZE_MAX - ENTRY_OVERHEAD_MAX;

/// Largest encoded ledger or group command one client request may carry: several are gathered
/// into one entry (`batcher::GATHER_BYTES_MAX`), so each must leave room for the others.
pub const COMMAND_BYTES_MAX: usize = batcher::GATHER_BYTES_MAX;

// A client message can be larger than a proposal: the checks below are what keeps it out of Raft.
const _: () = assert!(COMMAND_BYTES_MAX <= PROPOSAL_BYTES_MAX);
const _: () = assert!(ENTRY_OVERHEAD_MAX < logstore::RECORD_SIZE_MAX / 2);

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
        return Err(tonic::Status::invalid_argument(format!(
            "{what} encodes to {n} bytes; at most {COMMAND_BYTES_MAX}"
        )));
    }
    Ok(())
}
