//! The gateway against real lognode processes (3 nodes, fsync on, 127.0.0.1; `partitions`: each
//! node in its own network namespace, which needs root): the HTTP stack over the `GrpcBackend`. Needs the `lognode` binary (`cargo build -p lognode --bin lognode`
//! with the same `CARGO_TARGET_DIR`, or `LEDGER_LOGNODE_BIN`).

/// The plain run: no TLS, no API keys (the `cluster_secure` binary runs some again with both).
pub const SECURE: bool = false;

mod auth;
#[path = "../common/auth_walk.rs"]
mod auth_walk;
mod console;
mod contract;
mod failover;
mod gossip_key;
mod gossip_peers;
mod groups;
mod hostile;
mod ledger;
mod partitions;
mod support;
mod tls;
#[path = "../common/tools.rs"]
mod tools;
mod topics;
