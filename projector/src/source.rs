//! Where events come from: the [`EventSource`] trait, a consumer-group
//! member's view of the `ledger` topic, and [`HttpSource`], its
//! implementation over the gateway's HTTP API (`ledger-client`):
//!
//! | method | route |
//! |---|---|
//! | [`EventSource::join`] | `POST /v1/groups/{group}/members` |
//! | [`EventSource::heartbeat`] | `POST /v1/groups/{group}/members/{id}/heartbeat` |
//! | [`EventSource::fetch`] | `GET /v1/groups/{group}/members/{id}/records?max_records=&wait_ms=` |
//! | [`EventSource::commit`] | `POST /v1/groups/{group}/members/{id}/offsets` |
//! | [`EventSource::leave`] | `DELETE /v1/groups/{group}/members/{id}` |
//! | [`EventSource::committed`] | `GET /v1/groups/{group}` (committed offsets) |
//! | [`EventSource::read`] | `GET /v1/topics/ledger/partitions/{p}/records?offset=&limit=` (gap filling) |
//!
//! Only the `ledger` topic is consumed; partitions are plain `u32`s of it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use ledger_client::{Client, Consistency, Error as ClientError, JoinGroup, PartitionOffset};
use ledger_events::TOPIC;
use serde_json::value::RawValue;

/// Most records one fetch asks for (the gateway's per-fetch maximum).
pub const FETCH_RECORDS_MAX: u32 = 1_000;

/// Session timeout the projector asks for when it joins: a member silent
/// that long is expired and its partitions move to the others.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to a join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// Member id given by the group coordinator.
    pub member_id: String,
    /// Group generation (the fencing token written to PostgreSQL).
    pub generation: u64,
    /// Partitions of `ledger` this member owns in this generation.
    pub partitions: BTreeSet<u32>,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
}

/// What a heartbeat says: the current generation and our partitions in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    /// Current generation.
    pub generation: u64,
    /// Partitions of `ledger` this member owns in it.
    pub partitions: BTreeSet<u32>,
}

/// One record of the `ledger` topic.
#[derive(Clone, Debug)]
pub struct SourceRecord {
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// Record value: a `ledger-events` JSON event, as received.
    pub value: Box<RawValue>,
}

/// Records returned by one fetch.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    /// Generation the server answered for.
    pub generation: u64,
    /// Records, in offset order within each partition.
    pub records: Vec<SourceRecord>,
}

/// Answer of [`EventSource::read`].
#[derive(Clone, Debug, Default)]
pub struct Read {
    /// Records from the offset asked for, in offset order.
    pub records: Vec<SourceRecord>,
    /// The offset the next appended record will get.
    pub end_offset: u64,
}

/// Errors of an event source, sorted by what the caller does about them.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// This member is no longer in the group (expired or left): join again.
    #[error("no longer a member of the group ({0}): rejoin")]
    UnknownMember(String),
    /// Our generation is stale, or we do not own a partition any more: ask
    /// a heartbeat for the current generation and assignment.
    #[error("stale generation or partition moved ({0})")]
    Stale(String),
    /// A commit would move a committed offset backwards.
    #[error("offset regression ({0})")]
    Regression(String),
    /// Temporarily unreachable or overloaded: retry after a backoff.
    #[error("event source unavailable: {0}")]
    Unavailable(String),
    /// Anything else (malformed answer, rejected request): not retried.
    #[error("event source: {0}")]
    Other(String),
}

impl From<ClientError> for SourceError {
    fn from(e: ClientError) -> Self {
        if e.is_retryable() {
            return SourceError::Unavailable(e.to_string());
        }
        match e.code() {
            Some("unknown_member" | "unknown_group") => SourceError::UnknownMember(e.to_string()),
            Some("stale_generation" | "not_owner") => SourceError::Stale(e.to_string()),
            Some("offset_regression") => SourceError::Regression(e.to_string()),
            _ => SourceError::Other(e.to_string()),
        }
    }
}

/// A consumer-group member's view of the `ledger` topic. Cloned into the
/// heartbeat task, so it must be cheap to clone (a shared connection pool).
pub trait EventSource: Clone + Send + Sync + 'static {
    /// Joins `group` as a new member (a new generation).
    fn join(&self, group: &str) -> impl Future<Output = Result<Membership, SourceError>> + Send;
    /// Keeps the membership alive; answers the current generation and assignment.
    fn heartbeat(&self, group: &str, member: &str) -> impl Future<Output = Result<Assigned, SourceError>> + Send;
    /// Next records of the member's partitions, waiting up to `wait` for some.
    fn fetch(
        &self,
        group: &str,
        member: &str,
        max_records: u32,
        wait: Duration,
    ) -> impl Future<Output = Result<Fetched, SourceError>> + Send;
    /// Commits positions (next offsets to read, per partition) under `generation`.
    fn commit(
        &self,
        group: &str,
        member: &str,
        generation: u64,
        offsets: &BTreeMap<u32, u64>,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// Leaves the group (its partitions move at once).
    fn leave(&self, group: &str, member: &str) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// The group's committed offsets of `ledger` (empty for a new group).
    fn committed(&self, group: &str) -> impl Future<Output = Result<BTreeMap<u32, u64>, SourceError>> + Send;
    /// Reads records of one partition from `offset`, outside the group (to
    /// fill a gap), and the partition's end offset. The first record
    /// returned may be after `offset` only if the records in between were
    /// purged by retention.
    fn read(&self, partition: u32, offset: u64, limit: u32) -> impl Future<Output = Result<Read, SourceError>> + Send;
}

/// The consumer-group HTTP API of a gateway.
#[derive(Clone, Debug)]
pub struct HttpSource {
    client: Client,
}

/// `client`, trusting the CA certificate file `ca` (`--ca-cert`) when given.
pub fn with_ca(client: Client, ca: Option<&std::path::Path>) -> Result<Client, String> {
    let Some(ca) = ca else { return Ok(client) };
    let pem = std::fs::read(ca).map_err(|e| format!("--ca-cert {}: {e}", ca.display()))?;
    client.with_ca_pem(&pem).map_err(|e| e.to_string())
}

impl HttpSource {
    /// A source reading through the gateway at `gateway` (e.g. `http://127.0.0.1:8080`), sending
    /// the API key `key` (none when empty).
    pub fn new(gateway: &str, key: &str, ca: Option<&std::path::Path>) -> Result<Self, SourceError> {
        let client = Client::new(gateway).map_err(|e| SourceError::Other(e.to_string()))?.with_key(key);
        let client = with_ca(client, ca).map_err(|e| SourceError::Other(e.to_string()))?;
        Ok(HttpSource { client })
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn ledger_partitions(a: &[ledger_client::TopicPartition]) -> BTreeSet<u32> {
    a.iter().filter(|tp| tp.topic == TOPIC).map(|tp| tp.partition).collect()
}

impl EventSource for HttpSource {
    async fn join(&self, group: &str) -> Result<Membership, SourceError> {
        let join = JoinGroup {
            topics: vec![TOPIC.to_owned()],
            session_timeout_ms: Some(SESSION_TIMEOUT.as_millis() as u64),
            // Without a commit, start at the beginning: a projection never skips.
            auto_offset_reset: Some("earliest".to_owned()),
        };
        let m = self.client.join_group(group, &join).await?;
        Ok(Membership {
            partitions: ledger_partitions(&m.assignments),
            member_id: m.member_id,
            generation: m.generation,
            heartbeat_interval: Duration::from_millis(m.heartbeat_interval_ms.max(1)),
        })
    }

    async fn heartbeat(&self, group: &str, member: &str) -> Result<Assigned, SourceError> {
        let h = self.client.heartbeat(group, member).await?;
        Ok(Assigned { generation: h.generation, partitions: ledger_partitions(&h.assignments) })
    }

    async fn fetch(&self, group: &str, member: &str, max_records: u32, wait: Duration) -> Result<Fetched, SourceError> {
        let max = max_records.clamp(1, FETCH_RECORDS_MAX);
        let f = self.client.group_records_raw(group, member, Some(max), Some(wait.as_millis() as u64)).await?;
        let records = f
            .records
            .into_iter()
            .filter(|r| r.topic == TOPIC)
            .map(|r| SourceRecord { partition: r.partition, offset: r.offset, value: r.value })
            .collect();
        Ok(Fetched { generation: f.generation, records })
    }

    async fn commit(
        &self,
        group: &str,
        member: &str,
        generation: u64,
        offsets: &BTreeMap<u32, u64>,
    ) -> Result<(), SourceError> {
        let offsets: Vec<PartitionOffset> = offsets
            .iter()
            .map(|(&partition, &offset)| PartitionOffset { topic: TOPIC.to_owned(), partition, offset })
            .collect();
        self.client.commit_offsets(group, member, generation, &offsets).await?;
        Ok(())
    }

    async fn leave(&self, group: &str, member: &str) -> Result<(), SourceError> {
        self.client.leave_group(group, member).await?;
        Ok(())
    }

    async fn committed(&self, group: &str) -> Result<BTreeMap<u32, u64>, SourceError> {
        match self.client.group(group).await {
            Ok(d) => Ok(d
                .partitions
                .iter()
                .filter(|p| p.topic == TOPIC)
                .filter_map(|p| p.committed_offset.map(|o| (p.partition, o)))
                .collect()),
            // A group nobody joined yet has no offsets.
            Err(e) if e.code() == Some("unknown_group") => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, partition: u32, offset: u64, limit: u32) -> Result<Read, SourceError> {
        // Strong: a lagging follower must not answer "nothing there" for
        // records the group fetch has already delivered past.
        let limit = Some(limit.clamp(1, FETCH_RECORDS_MAX));
        let f = self.client.fetch_raw(TOPIC, partition, offset, limit, Consistency::Strong).await?;
        let records =
            f.records.into_iter().map(|r| SourceRecord { partition, offset: r.offset, value: r.value }).collect();
        Ok(Read { records, end_offset: f.end_offset })
    }
}
