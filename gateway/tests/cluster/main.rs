//! The gateway against real lognode processes (3 nodes, fsync on, 127.0.0.1; `partitions`: each
//! node in its own network namespace, which needs root): the HTTP stack over the `GrpcBackend`. Needs the `lognode` binary (`cargo build -p lognode --bin lognode`
//! with the same `CARGO_TARGET_DIR`, or `LEDGER_LOGNODE_BIN`).

mod auth;
#[path = "../common/auth_walk.rs"]
mod auth_walk;
mod contract;
mod failover;
mod gossip_key;
mod groups;
mod hostile;
mod ledger;
mod partitions;
mod support;
mod tls;
#[path = "../common/tools.rs"]
mod tools;
mod topics;
