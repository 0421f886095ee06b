//! `projector`: materializes the `ledger` topic into PostgreSQL exactly once.
//!
//! - [`db`]: schema (migrations at the repository root), [`db::apply_batch`]
//!   (rows + offset in one transaction, generation-fenced offset CAS) and
//!   [`db::load_offsets`] (where to resume: PostgreSQL, not the log).
//! - [`verify`]: compares PostgreSQL's accounts with the ledger's.
//! - [`source`]: the [`source::EventSource`] trait modelled on the
//!   consumer-group HTTP API (not available yet), and [`run`]: the loop.

pub mod db;
pub mod run;
pub mod source;
pub mod verify;

pub use db::{Applied, Error, Fence, apply_batch, load_offsets, migrate};
pub use verify::{AccountSnapshot, Difference, verify};
