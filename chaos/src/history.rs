//! What the clients did: one [`Op`] per operation, with its start, its end and its outcome, and
//! every single attempt (for availability). Times are milliseconds from the run's start, on the
//! harness's one monotonic clock.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// Most operations one run records; past it the workloads start no new ones (a 300 s run at the
/// debug build's pace records about a tenth of it).
pub const OPS_MAX: usize = 2_000_000;
/// Most attempts one run records (for availability); past it attempts are counted, not kept.
pub const ATTEMPTS_MAX: usize = 4_000_000;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// Refused for certain (a 4xx answer): it must have no effect.
    Failed,
    /// No definite answer before the run ended: it may have taken effect once, or not at all.
    Unknown,
}

/// What an operation was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum What {
    /// `POST /v1/transfers` with a client-chosen id, sent again with the same id after a timeout.
    Transfer {
        /// The transfer id.
        id: String,
        /// Debited account.
        from: String,
        /// Credited account.
        to: String,
        /// Amount.
        amount: u64,
        /// The refusal's problem code, when refused.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// `GET /v1/accounts/{id}?consistency=strong`, or `?min_index=` (a follower read that must
    /// not go back before what this client saw).
    Read {
        /// The account.
        account: String,
        /// The `min_index` asked for; none for a strong read.
        #[serde(skip_serializing_if = "Option::is_none")]
        min_index: Option<u64>,
        /// The balance read, when answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        balance: Option<i64>,
        /// The log index the serving replica had applied (`Ledger-Index`), when answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<u64>,
    },
    /// `POST /v1/topics/{topic}/records` of one record, sent once (a produce is not idempotent:
    /// sending it again could store it twice).
    Produce {
        /// The id in the record's value.
        id: String,
        /// Where it landed, when acknowledged.
        #[serde(skip_serializing_if = "Option::is_none")]
        partition: Option<u32>,
        /// Where it landed, when acknowledged.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// `POST /v1/groups/{group}/members/{member}/offsets`.
    Commit {
        /// The member.
        member: String,
        /// The generation sent.
        generation: u64,
        /// `(partition, next offset)`.
        offsets: Vec<(u32, u64)>,
        /// Sent on purpose with a generation the group has moved past: must be refused.
        stale: bool,
    },
}

/// One attempt of an operation (a request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// When it was sent.
    pub start_ms: u64,
    /// When it ended (answer or timeout).
    pub end_ms: u64,
    /// Whether it got a definite answer (ok or refused for certain).
    pub answered: bool,
    /// A write (else a read).
    pub write: bool,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Op {
    /// The client that made it (0: the setup).
    pub client: usize,
    /// When its first attempt was sent.
    pub start_ms: u64,
    /// When its definite answer came (none when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Attempts sent.
    pub attempts: u32,
    /// What it was.
    #[serde(flatten)]
    pub what: What,
}

impl Op {
    /// The transfer id, for a transfer.
    pub fn transfer_id(&self) -> Option<&str> {
        match &self.what {
            What::Transfer { id, .. } => Some(id),
            What::Read { .. } | What::Produce { .. } | What::Commit { .. } => None,
        }
    }
}

/// The shared record of a run.
#[derive(Clone, Debug)]
pub struct Recorder {
    start: Instant,
    /// The wall clock at `start` (ms since the Unix epoch).
    epoch_ms: u64,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    ops: Vec<Op>,
    delivered: std::collections::BTreeSet<(u32, u64)>,
    attempts: Vec<Attempt>,
    attempts_dropped: u64,
}

impl Recorder {
    /// A record whose clock starts now.
    pub fn new() -> Recorder {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Recorder { start: Instant::now(), epoch_ms, inner: Arc::default() }
    }

    /// The wall clock when the recording started (ms since the Unix epoch): a time `t` of the
    /// history is `epoch_ms() + t` by the wall clock.
    pub fn epoch_ms(&self) -> u64 {
        self.epoch_ms
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the record is full ([`OPS_MAX`]): no new operation should start.
    pub fn full(&self) -> bool {
        self.lock().ops.len() >= OPS_MAX
    }

    /// Records an operation.
    pub fn op(&self, op: Op) {
        let mut g = self.lock();
        if g.ops.len() < OPS_MAX {
            g.ops.push(op);
        }
    }

    /// Records one attempt sent at `start_ms`, ended at `end_ms`, and whether it got a definite
    /// answer (ok or refused); `write` for a write.
    pub fn attempt(&self, start_ms: u64, end_ms: u64, answered: bool, write: bool) {
        let mut g = self.lock();
        if g.attempts.len() < ATTEMPTS_MAX {
            g.attempts.push(Attempt { start_ms, end_ms, answered, write });
        } else {
            g.attempts_dropped += 1;
        }
    }

    /// Records that a group member was given the record at `offset` of `partition`.
    pub fn delivered(&self, partition: u32, offset: u64) {
        let mut g = self.lock();
        if g.delivered.len() < OPS_MAX {
            g.delivered.insert((partition, offset));
        }
    }

    /// Every `(partition, offset)` delivered so far.
    pub fn deliveries(&self) -> std::collections::BTreeSet<(u32, u64)> {
        self.lock().delivered.clone()
    }

    /// The operations so far, by start time.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.lock().ops.clone();
        ops.sort_by_key(|o| (o.start_ms, o.client));
        ops
    }

    /// The attempts so far, and how many were not kept.
    pub fn attempts(&self) -> (Vec<Attempt>, u64) {
        let g = self.lock();
        (g.attempts.clone(), g.attempts_dropped)
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
