//! `projector`: materializes the `ledger` topic into PostgreSQL exactly once.
//!
//! - [`db`]: schema (migrations at the repository root),
//!   [`db::apply_batches`] (rows + offsets in one transaction,
//!   generation-fenced offset CAS) and [`db::load_offsets`] (where to
//!   resume: PostgreSQL, not the log).
//! - [`source`]: the [`source::EventSource`] trait (a consumer-group
//!   member's view of the `ledger` topic) and [`source::HttpSource`], its
//!   implementation over the gateway's HTTP API.
//! - [`run`]: the loop (join, heartbeat, fetch, write, commit; rebalances,
//!   gaps, outages).
//! - [`verify`]: compares PostgreSQL's accounts with the ledger's.
//! - [`webhooks`]: `projector webhooks`, the deliverer of webhook subscriptions (no PostgreSQL).

pub mod db;
pub mod metrics;
pub mod run;
pub mod source;
pub mod verify;
pub mod webhooks;

pub use db::{
    Applied, DeadLetter, Error, Fence, Outcome, PartitionBatch, apply_batch, apply_batches, dead_letters, load_offsets,
    migrate,
};
pub use verify::{AccountSnapshot, Difference, verify};
