//! The checkers: pure functions of the recorded history and the state read at the end.

pub mod groups;
pub mod linear;
pub mod reads;
pub mod transfers;

use serde::Serialize;

use crate::history::Op;

/// The built-in topic of the ledger's events.
pub const LEDGER_TOPIC: &str = "ledger";

/// Most operations kept in one anomaly's history slice.
pub const SLICE_MAX: usize = 32;

/// Something the system did that it must never do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// A stable name: `lost`, `duplicated`, `torn`, `phantom`, `refused_but_applied`,
    /// `balance_mismatch`, `not_conserved`, `overdrawn`, `not_linearizable`, `went_back`, `wrong_value`,
    /// `unavailable_after_heal`.
    pub kind: String,
    /// What was seen.
    pub detail: String,
    /// The operations that show it (at most [`SLICE_MAX`]).
    pub history: Vec<Op>,
}

impl Anomaly {
    /// An anomaly with the first [`SLICE_MAX`] operations of `history`.
    pub fn new(kind: &str, detail: String, mut history: Vec<Op>) -> Anomaly {
        history.truncate(SLICE_MAX);
        Anomaly { kind: kind.to_owned(), detail, history }
    }
}
