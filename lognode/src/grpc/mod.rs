//! gRPC services: the Raft transport ([`raft_service`]) and the client API ([`client_service`]).

pub mod batcher;
pub mod client_service;
pub mod raft_service;
