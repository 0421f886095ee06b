//! Ledger's protobuf messages and gRPC services, generated from `proto/*.proto`.
//!
//! - [`raft`]: the Raft transport between lognodes (`ledger.raft.v1.Raft`).
//! - [`ledger`]: the client API (`ledger.v1.Ledger`).
//! - [`convert`]: ledger-core types ⇄ `ledger.v1` messages, and in [`convert::groups`] group-core
//!   types ⇄ the consumer-group messages.
//! - [`limits`]: the wire limits lognode and the gateway must agree on.
//! - [`tls`]: the cluster's mutual TLS (lognodes and gateways).

/// `ledger.raft.v1`: Raft transport.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod raft {
    tonic::include_proto!("ledger.raft.v1");
}

/// `ledger.v1`: the client API.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod ledger {
    tonic::include_proto!("ledger.v1");
}

pub mod convert;
pub mod limits;
pub mod tls;

/// gRPC metadata key naming the leader's node id on a not-leader error.
pub const LEADER_ID_METADATA: &str = "ledger-leader-id";
/// gRPC metadata key naming the leader's gRPC address on a not-leader error.
pub const LEADER_ADDR_METADATA: &str = "ledger-leader-addr";
/// gRPC metadata key carrying group-core's stable code (`stale_generation`, `unknown_member`, ...)
/// on a consumer-group rule failure.
pub const GROUP_CODE_METADATA: &str = "ledger-group-code";
