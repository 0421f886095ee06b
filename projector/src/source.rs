//! Where events come from: the [`EventSource`] trait, modelled on the
//! consumer-group HTTP API being built in parallel:
//!
//! | method | route |
//! |---|---|
//! | [`EventSource::join`] | `POST /v1/groups/{group}/members` → `{member_id, generation, assignments:[{topic,partition}], heartbeat_interval_ms}` |
//! | [`EventSource::heartbeat`] | `POST /v1/groups/{group}/members/{id}/heartbeat` |
//! | [`EventSource::fetch`] | `GET /v1/groups/{group}/members/{id}/records?max_records=&wait_ms=` → `{generation, records:[{topic, partition, offset, key, value, headers, timestamp}]}` |
//! | [`EventSource::commit`] | `POST /v1/groups/{group}/members/{id}/offsets` `{generation, offsets:[{topic,partition,offset}]}` |
//!
//! No HTTP implementation exists yet ([`Unavailable`] says so); tests use
//! an in-memory source.

use std::future::Future;
use std::time::Duration;

/// One assigned partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
}

/// The answer to a join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// Member id given by the group coordinator.
    pub member_id: String,
    /// Group generation (the fencing token written to PostgreSQL).
    pub generation: u64,
    /// Partitions this member owns in this generation.
    pub assignments: Vec<Assignment>,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// Record key (partition key), if any.
    pub key: Option<Vec<u8>>,
    /// Record value (a `ledger-events` JSON event on topic `ledger`).
    pub value: Vec<u8>,
    /// Record timestamp (ms since the epoch).
    pub timestamp_ms: u64,
}

/// Records returned by one fetch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Fetched {
    /// Generation the server answered for.
    pub generation: u64,
    /// Records, in offset order within each partition.
    pub records: Vec<SourceRecord>,
}

/// A committed position: the next offset to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset to read (Kafka convention).
    pub offset: u64,
}

/// Errors of an event source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The group rebalanced or our generation is stale: rejoin.
    #[error("rebalance: rejoin the group")]
    Rebalance,
    /// Temporarily unreachable: retry after a backoff.
    #[error("event source unavailable: {0}")]
    Unavailable(String),
    /// Not implemented (the consumer-group API does not exist yet).
    #[error("{0}")]
    NotImplemented(&'static str),
    /// Anything else (malformed answer...).
    #[error("event source: {0}")]
    Other(String),
}

/// A consumer-group member's view of the log.
///
/// Positions: after [`join`](EventSource::join) the projector
/// [`commit`](EventSource::commit)s the offsets stored in PostgreSQL for its
/// partitions (PostgreSQL is the truth, the log's committed offsets are only
/// a hint), then fetches from there.
pub trait EventSource: Send {
    /// Joins `group` (a new generation).
    fn join(&mut self, group: &str) -> impl Future<Output = Result<Membership, SourceError>> + Send;
    /// Keeps the membership alive.
    fn heartbeat(&mut self, m: &Membership) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// Next records of the assigned partitions, waiting up to `wait` for some.
    fn fetch(
        &mut self,
        m: &Membership,
        max_records: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Fetched, SourceError>> + Send;
    /// Commits positions (next offsets to read) under `m.generation`.
    fn commit(
        &mut self,
        m: &Membership,
        offsets: &[CommitOffset],
    ) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// The consumer-group HTTP source, until the API exists: every call fails
/// with [`SourceError::NotImplemented`].
#[derive(Clone, Debug)]
pub struct Unavailable {
    /// Gateway URL given on the command line.
    pub gateway: String,
}

/// The message of [`Unavailable`].
pub const NOT_AVAILABLE: &str = "consumer-group API not available yet: the projector cannot read the ledger topic \
     (POST /v1/groups/{group}/members is being built); nothing was done";

impl EventSource for Unavailable {
    async fn join(&mut self, _group: &str) -> Result<Membership, SourceError> {
        Err(SourceError::NotImplemented(NOT_AVAILABLE))
    }
    async fn heartbeat(&mut self, _m: &Membership) -> Result<(), SourceError> {
        Err(SourceError::NotImplemented(NOT_AVAILABLE))
    }
    async fn fetch(&mut self, _m: &Membership, _max: usize, _wait: Duration) -> Result<Fetched, SourceError> {
        Err(SourceError::NotImplemented(NOT_AVAILABLE))
    }
    async fn commit(&mut self, _m: &Membership, _offsets: &[CommitOffset]) -> Result<(), SourceError> {
        Err(SourceError::NotImplemented(NOT_AVAILABLE))
    }
}
