//! The ledger and consumer-group tests of `tests/cluster`, again with security on (issue 16):
//! lognodes with mutual TLS (`--tls-*`) and a bootstrap admin key, gateways calling them over
//! mTLS (`--cluster-*` in the binary; `GrpcBackend::start_with_tls` here) and asking for API keys,
//! every request sending the admin key (`support::secure`).

/// Security on.
pub const SECURE: bool = true;

#[path = "../cluster/groups.rs"]
mod groups;
#[path = "../cluster/ledger.rs"]
mod ledger;
#[path = "../cluster/support.rs"]
mod support;
