//! `lognode`: Ledger's replicated log node.
//!
//! openraft replicates commands ([`types::Request`]) whose Raft log is logstore's WAL
//! ([`store::log`]); the state machine ([`store::state_machine`]) keeps topics and offset maps and
//! serves reads from the log. gRPC ([`grpc`]) carries both the Raft transport ([`network`] is its
//! client side, each RPC [`hedge`]d over several connections) and the client API; [`discovery`] finds nodes by gossip and [`node`] wires it all.
//! Every limit is in [`limits`]; [`crash`] is what the node does when it must not go on.

pub mod admin_key;
pub mod clock;
pub mod codec;
pub mod config;
pub mod crash;
pub mod election;
pub use ledger_discovery as discovery;
pub mod groups;
pub mod grpc;
pub mod hedge;
pub mod limits;
pub mod network;
pub mod node;
pub mod store;
pub mod tcp;
pub mod types;
