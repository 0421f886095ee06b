//! gRPC services: the Raft transport ([`raft_service`]) and the client API ([`client_service`]).

pub mod batcher;
pub mod client_service;
pub mod raft_service;

/// Largest gRPC message a client may send or receive.
pub const CLIENT_MESSAGE_MAX: usize = 16 * 1024 * 1024;
