// tidy: long-file: the run loop is one protocol of three cooperating tasks (heartbeats, fetches, the writer) over one membership state; its ordering rules read in one place.
//! The run loop: one consumer-group member of the `ledger` topic writing
//! into PostgreSQL exactly once.
//!
//! **Per membership** (one `join`, until the member is expired or the
//! process stops), three tasks run side by side:
//! - *heartbeats*, every `heartbeat_interval_ms`, even while PostgreSQL is
//!   down or a batch is being written; they report the current generation
//!   and assignment (or that the member is gone) on a watch channel;
//! - *fetches*: long-polls of the member's records, up to
//!   [`FETCH_QUEUE_MAX`] pages ahead of PostgreSQL;
//! - *the writer* (this loop): gathers up to `--batch-max` records, writes
//!   them with their partitions' offsets in ONE PostgreSQL transaction
//!   ([`apply_batches`], generation-fenced), then commits the same offsets
//!   to the log so that lag shows in `GET /v1/groups/{group}` (at most once
//!   per [`LOG_COMMIT_INTERVAL`] while batches keep coming, at once when idle).
//!
//! **Where reading resumes.** PostgreSQL's `projector_offsets` are the
//! truth; the log's committed offsets only decide where the gateway starts
//! delivering. On every new assignment the writer loads PostgreSQL's
//! offsets for the partitions it gained and commits those that are ahead of
//! the log's, so a new member's fetch starts right there. The opposite case
//! — PostgreSQL behind the log's committed offset (a restored or replaced
//! database, another program committing for the group) — cannot be fixed by
//! a commit (committed offsets never move backwards) nor by the admin reset
//! (it needs an empty group and an admin token). Instead every batch is
//! checked against PostgreSQL's next offset before it is written: records
//! that start *after* it leave a gap, and the gap is filled first by reading
//! the partition directly (`GET /v1/topics/ledger/partitions/{p}/records`,
//! strong reads) under the same fence. Records that start *before* it are
//! already applied and skipped by [`apply_batches`]. So nothing is ever
//! skipped and nothing applied twice, whatever the gateway delivers; if the
//! missing records were purged by retention, the projector stops with
//! [`RunError::Purged`] rather than continue with a hole.
//!
//! **Rebalances** are adopted in place (the member id stays valid; the
//! heartbeat tells the new generation and partitions). Only an expired
//! member (`unknown_member`) joins again, as a new member. A batch fenced
//! by a newer generation in PostgreSQL is dropped (its new owner writes
//! it). Gateway errors back off exponentially ([`BACKOFF_INITIAL`] doubling
//! to [`BACKOFF_MAX`]); PostgreSQL errors that can heal (connection lost,
//! shutdown, deadlock, serialization) are retried with the same backoff,
//! holding the batch in memory, so nothing is lost. Undecodable records
//! stop the projector (never skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ledger_events::{EventJson, TOPIC};
use ledger_shutdown::Shutdown;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::db::{self, Error, Outcome, PartitionBatch, apply_batches, load_offsets};
use crate::source::{Assigned, EventSource, FETCH_RECORDS_MAX, Fetched, Membership, SourceError, SourceRecord};

/// First retry delay after a failure.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Retry delays double up to this. Retries themselves are not counted: a
/// projector waits for its database and its gateway as long as it runs, but
/// never waits longer than this between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Default `--batch-max`: records per PostgreSQL transaction.
pub const BATCH_MAX_DEFAULT: usize = 5_000;
/// Largest accepted `--batch-max`.
pub const BATCH_MAX_LIMIT: usize = 50_000;
/// Long-poll wait of a fetch.
pub const FETCH_WAIT: Duration = Duration::from_secs(1);
/// Fetched pages (each at most [`FETCH_RECORDS_MAX`] records) queued ahead
/// of the writer.
pub const FETCH_QUEUE_MAX: usize = 8;
/// PostgreSQL connections of the pool.
pub const POOL_CONNECTIONS: u32 = 4;
/// How long to wait for a pooled connection before counting a failure.
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a graceful stop waits for the `leave` request.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Least time between two offset commits to the log while batches keep
/// coming (an idle writer commits at once).
pub const LOG_COMMIT_INTERVAL: Duration = Duration::from_millis(250);
/// How often an idle writer looks at the stop flag and heartbeat news.
pub const POLL_TICK: Duration = Duration::from_millis(100);
/// Empty answers to a gap read (the records are below the log's end, so
/// they must come) before the projector gives up.
pub const GAP_READ_EMPTY_MAX: u32 = 20;

const _: () = assert!(BATCH_MAX_DEFAULT <= BATCH_MAX_LIMIT);
const _: () = assert!(BACKOFF_INITIAL.as_millis() <= BACKOFF_MAX.as_millis());
const _: () = assert!(FETCH_QUEUE_MAX >= 1);

/// Exponential backoff between [`BACKOFF_INITIAL`] and [`BACKOFF_MAX`].
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, next: initial }
    }

    /// The delay to wait now; the next one doubles (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to `initial` after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX)
    }
}

/// Settings of [`run`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Consumer group (also the key of the offsets in PostgreSQL).
    pub group: String,
    /// Records per PostgreSQL transaction (at most).
    pub batch_max: usize,
    /// Long-poll wait of a fetch.
    pub fetch_wait: Duration,
    /// Retry policy.
    pub backoff: Backoff,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            group: "projector".to_owned(),
            batch_max: BATCH_MAX_DEFAULT,
            fetch_wait: FETCH_WAIT,
            backoff: Backoff::default(),
        }
    }
}

/// Fatal errors of [`run`] (transient ones are retried inside).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// PostgreSQL error that retrying cannot fix.
    #[error(transparent)]
    Db(#[from] Error),
    /// The event source refused for good (e.g. a malformed answer, or an
    /// offset PostgreSQL holds is past the log's end: a database of another
    /// cluster).
    #[error(transparent)]
    Source(SourceError),
    /// A record that is not a valid ledger event: never skipped.
    #[error("{TOPIC}/{partition} offset {offset}: undecodable ledger event: {error}")]
    Poison {
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
        /// Decode error.
        error: ledger_events::Error,
    },
    /// Records PostgreSQL still needs are no longer in the log.
    #[error(
        "{TOPIC}/{partition}: PostgreSQL needs offset {wanted}, but the log starts at {got} (purged by retention); \
         the projection cannot continue without a hole: rebuild it into a fresh database from a full log"
    )]
    Purged {
        /// Partition.
        partition: u32,
        /// First offset PostgreSQL has not applied.
        wanted: u64,
        /// First offset the log returned.
        got: u64,
    },
}

/// Connects to PostgreSQL and applies the migrations, retrying with
/// backoff while PostgreSQL is unreachable. Returns `None` if `stop` was set
/// first; fails at once on a non-transient error (bad URL, bad migration).
pub async fn connect(url: &str, backoff: &mut Backoff, stop: &Shutdown) -> Result<Option<PgPool>, Error> {
    loop {
        if stop.is_stopping() {
            return Ok(None);
        }
        let res = async {
            let pool = PgPoolOptions::new()
                .max_connections(POOL_CONNECTIONS)
                .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
                .connect(url)
                .await?;
            db::check_database(&pool).await?;
            db::migrate(&pool).await?;
            Ok::<_, Error>(pool)
        }
        .await;
        match res {
            Ok(pool) => {
                backoff.reset();
                return Ok(Some(pool));
            }
            Err(e) if e.is_transient() => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "PostgreSQL unavailable");
                stop.sleep(d).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the writer does next.
enum Flow {
    Continue,
    Rejoin,
    Stop,
}

/// Propagates `Rejoin` and `Stop` out of the current function.
macro_rules! flow {
    ($e:expr) => {
        match $e {
            Flow::Continue => {}
            other => return Ok(other),
        }
    };
}

/// Runs until `stop` is set (Ok, after leaving the group) or a fatal error.
pub async fn run<S: EventSource>(pool: &PgPool, source: &S, cfg: &Config, stop: &Shutdown) -> Result<(), RunError> {
    let mut backoff = cfg.backoff.clone();
    while !stop.is_stopping() {
        let m = match source.join(&cfg.group).await {
            Ok(m) => m,
            Err(SourceError::Unavailable(e)) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "join failed; retrying");
                stop.sleep(d).await;
                continue;
            }
            Err(e) => return Err(RunError::Source(e)),
        };
        backoff.reset();
        tracing::info!(member = %m.member_id, generation = m.generation, partitions = ?m.partitions, "joined");
        let member = m.member_id.clone();
        match membership(pool, source, cfg, stop, m, &mut backoff).await? {
            Flow::Stop => {
                match tokio::time::timeout(LEAVE_TIMEOUT, source.leave(&cfg.group, &member)).await {
                    Ok(Ok(())) => tracing::info!(%member, "left the group"),
                    Ok(Err(e)) => tracing::warn!(%member, error = %e, "leave failed"),
                    Err(_) => tracing::warn!(%member, "leave timed out"),
                }
                return Ok(());
            }
            Flow::Rejoin | Flow::Continue => tracing::warn!(%member, "membership lost; joining again"),
        }
    }
    Ok(())
}

/// Aborts the membership's tasks when the membership ends, however it ends.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// What the heartbeat task last heard.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Liveness {
    Alive(Assigned),
    Gone,
}

async fn heartbeats<S: EventSource>(
    source: S,
    group: String,
    member: String,
    interval: Duration,
    tx: watch::Sender<Liveness>,
) {
    loop {
        tokio::time::sleep(interval).await;
        // A heartbeat slower than the interval is as good as lost.
        match tokio::time::timeout(interval, source.heartbeat(&group, &member)).await {
            Ok(Ok(a)) => {
                tx.send_if_modified(|cur| {
                    let new = Liveness::Alive(a);
                    if *cur == new {
                        false
                    } else {
                        *cur = new;
                        true
                    }
                });
            }
            Ok(Err(SourceError::UnknownMember(e))) => {
                tracing::warn!(%member, error = %e, "heartbeat: member gone");
                let _ = tx.send(Liveness::Gone);
                return;
            }
            Ok(Err(e)) => tracing::warn!(%member, error = %e, "heartbeat failed"),
            Err(_) => tracing::warn!(%member, "heartbeat timed out"),
        }
    }
}

async fn fetches<S: EventSource>(
    source: S,
    group: String,
    member: String,
    max_records: u32,
    wait: Duration,
    tx: mpsc::Sender<Result<Fetched, SourceError>>,
    mut backoff: Backoff,
) {
    loop {
        let r = source.fetch(&group, &member, max_records, wait).await;
        let last = matches!(r, Err(SourceError::UnknownMember(_) | SourceError::Other(_)));
        let pause = match &r {
            Ok(_) => {
                backoff.reset();
                None
            }
            Err(_) => Some(backoff.next_delay()),
        };
        if tx.send(r).await.is_err() || last {
            return;
        }
        if let Some(d) = pause {
            tokio::time::sleep(d).await;
        }
    }
}

/// The writer's view of one membership.
struct Session<'a, S> {
    pool: &'a PgPool,
    source: &'a S,
    group: &'a str,
    stop: &'a Shutdown,
    /// Our member id.
    member: String,
    /// The generation we act in (fence of our writes, generation of our commits).
    generation: u64,
    /// Partitions owned in `generation`.
    partitions: BTreeSet<u32>,
    /// PostgreSQL's next offset per owned partition, as far as we know (0
    /// when PostgreSQL has none: a projection starts at the beginning).
    pg_next: BTreeMap<u32, u64>,
    /// The log's committed offsets, as far as we know.
    log_committed: BTreeMap<u32, u64>,
    /// A fetch failed: its answer may have been lost after the leader moved
    /// our position past its records. Those records come again only with
    /// later ones (as a gap) or after a rebalance; when the log goes quiet,
    /// [`Session::check_tails`] reads them directly.
    maybe_lost: bool,
}

async fn membership<S: EventSource>(
    pool: &PgPool,
    source: &S,
    cfg: &Config,
    stop: &Shutdown,
    m: Membership,
    backoff: &mut Backoff,
) -> Result<Flow, RunError> {
    let Membership { member_id, generation, partitions, heartbeat_interval } = m;
    let (hb_tx, mut hb_rx) = watch::channel(Liveness::Alive(Assigned { generation, partitions: partitions.clone() }));
    let mut tasks = Tasks(vec![tokio::spawn(heartbeats(
        source.clone(),
        cfg.group.clone(),
        member_id.clone(),
        heartbeat_interval,
        hb_tx,
    ))]);
    let mut s = Session {
        pool,
        source,
        group: &cfg.group,
        stop,
        member: member_id,
        generation: 0,
        partitions: BTreeSet::new(),
        pg_next: BTreeMap::new(),
        log_committed: BTreeMap::new(),
        maybe_lost: false,
    };
    // Resume before the first fetch, so it starts at PostgreSQL's offsets.
    flow!(s.adopt(Assigned { generation, partitions }, backoff).await?);
    let (tx, mut rx) = mpsc::channel(FETCH_QUEUE_MAX);
    let max_records = u32::try_from(cfg.batch_max).unwrap_or(u32::MAX).min(FETCH_RECORDS_MAX);
    tasks.0.push(tokio::spawn(fetches(
        source.clone(),
        cfg.group.clone(),
        s.member.clone(),
        max_records,
        cfg.fetch_wait,
        tx,
        cfg.backoff.clone(),
    )));

    let mut carry: Option<Fetched> = None;
    let mut last_commit = Instant::now();
    loop {
        if stop.is_stopping() {
            return Ok(Flow::Stop);
        }
        if hb_rx.has_changed().unwrap_or(false) {
            let news = hb_rx.borrow_and_update().clone();
            match news {
                Liveness::Gone => return Ok(Flow::Rejoin),
                Liveness::Alive(a) => flow!(s.adopt(a, backoff).await?),
            }
        }
        let page = match carry.take() {
            Some(p) => p,
            None => {
                let got = tokio::select! {
                    r = rx.recv() => r,
                    _ = tokio::time::sleep(POLL_TICK) => continue,
                    () = stop.stopping() => continue,
                };
                let Some(r) = got else { return Ok(Flow::Rejoin) };
                match answer(&mut s, r, backoff).await? {
                    Answer::Page(p) => p,
                    Answer::Skip => continue,
                    Answer::Flow(f) => return Ok(f),
                }
            }
        };
        // Gather more pages of the same generation, up to batch_max records.
        let generation = page.generation;
        let mut records = page.records;
        while records.len() < cfg.batch_max {
            match rx.try_recv() {
                Ok(Ok(p)) if p.generation == generation => records.extend(p.records),
                Ok(Ok(p)) => {
                    carry = Some(p);
                    break;
                }
                Ok(Err(e)) => {
                    match answer(&mut s, Err(e), backoff).await? {
                        Answer::Flow(f) => return Ok(f),
                        Answer::Page(_) | Answer::Skip => {}
                    }
                    break;
                }
                Err(_) => break,
            }
        }
        if generation > s.generation {
            flow!(s.refresh(backoff).await?);
        }
        if records.is_empty() {
            if s.maybe_lost {
                flow!(s.check_tails(generation, cfg.batch_max, backoff).await?);
            }
            // Idle: the log's offsets catch up with PostgreSQL's (zero lag shows).
            flow!(s.commit_log().await?);
            last_commit = Instant::now();
            continue;
        }
        flow!(s.write(generation, records, cfg.batch_max, backoff).await?);
        // Each commit is a replicated log entry: under a steady flow of small
        // batches, at most one per LOG_COMMIT_INTERVAL.
        if last_commit.elapsed() >= LOG_COMMIT_INTERVAL {
            flow!(s.commit_log().await?);
            last_commit = Instant::now();
        }
        backoff.reset();
    }
}

/// What to do with one answer of the fetcher.
enum Answer {
    Page(Fetched),
    Skip,
    Flow(Flow),
}

/// Handles a fetch error (or passes a page through).
async fn answer<S: EventSource>(
    s: &mut Session<'_, S>,
    r: Result<Fetched, SourceError>,
    backoff: &mut Backoff,
) -> Result<Answer, RunError> {
    match r {
        Ok(p) => Ok(Answer::Page(p)),
        Err(SourceError::UnknownMember(_)) => Ok(Answer::Flow(Flow::Rejoin)),
        Err(SourceError::Stale(e)) => {
            tracing::info!(error = %e, "fetch: stale; refreshing the assignment");
            Ok(match s.refresh(backoff).await? {
                Flow::Continue => Answer::Skip,
                f => Answer::Flow(f),
            })
        }
        Err(SourceError::Unavailable(e) | SourceError::Regression(e)) => {
            tracing::warn!(error = %e, "fetch failed; the fetcher backs off");
            s.maybe_lost = true;
            Ok(Answer::Skip)
        }
        Err(e @ SourceError::Other(_)) => Err(RunError::Source(e)),
    }
}

impl<S: EventSource> Session<'_, S> {
    /// Asks for the current generation and assignment now, and adopts it.
    async fn refresh(&mut self, backoff: &mut Backoff) -> Result<Flow, RunError> {
        match self.source.heartbeat(self.group, &self.member).await {
            Ok(a) => self.adopt(a, backoff).await,
            Err(SourceError::UnknownMember(_)) => Ok(Flow::Rejoin),
            Err(SourceError::Other(e)) => Err(RunError::Source(SourceError::Other(e))),
            Err(e) => {
                tracing::warn!(error = %e, "assignment refresh failed");
                Ok(Flow::Continue)
            }
        }
    }

    /// Takes a new generation and assignment: loads PostgreSQL's offsets of
    /// the partitions gained and moves the log's committed offsets up to them.
    async fn adopt(&mut self, a: Assigned, backoff: &mut Backoff) -> Result<Flow, RunError> {
        if a.generation < self.generation {
            return Ok(Flow::Continue);
        }
        let gained: Vec<u32> = a.partitions.difference(&self.partitions).copied().collect();
        if a.generation != self.generation {
            tracing::info!(generation = a.generation, partitions = ?a.partitions, gained = ?gained, "assignment");
        }
        self.generation = a.generation;
        self.partitions = a.partitions;
        let owned = &self.partitions;
        self.pg_next.retain(|p, _| owned.contains(p));
        if gained.is_empty() {
            return Ok(Flow::Continue);
        }
        let Some(stored) = retry(backoff, self.stop, || load_offsets(self.pool, self.group, TOPIC)).await? else {
            return Ok(Flow::Stop);
        };
        for p in &gained {
            self.pg_next.insert(*p, stored.get(p).copied().unwrap_or(0));
        }
        match self.source.committed(self.group).await {
            Ok(c) => self.log_committed = c,
            Err(e) => tracing::warn!(error = %e, "cannot read the log's committed offsets"),
        }
        self.commit_log().await
    }

    /// Commits PostgreSQL's offsets of our partitions to the log where they
    /// are ahead of the log's (never backwards: the log refuses that).
    async fn commit_log(&mut self) -> Result<Flow, RunError> {
        let offsets: BTreeMap<u32, u64> = self
            .partitions
            .iter()
            .filter_map(|p| {
                let n = *self.pg_next.get(p)?;
                (n > 0 && self.log_committed.get(p).is_none_or(|&c| n > c)).then_some((*p, n))
            })
            .collect();
        if offsets.is_empty() {
            return Ok(Flow::Continue);
        }
        match self.source.commit(self.group, &self.member, self.generation, &offsets).await {
            Ok(()) => {
                self.log_committed.extend(offsets);
                Ok(Flow::Continue)
            }
            Err(SourceError::UnknownMember(_)) => Ok(Flow::Rejoin),
            // The next heartbeat brings the new assignment; PostgreSQL holds the truth meanwhile.
            Err(SourceError::Stale(e)) => {
                tracing::info!(error = %e, "offset commit: stale generation");
                Ok(Flow::Continue)
            }
            Err(SourceError::Regression(e)) => {
                tracing::info!(error = %e, "offset commit: the log is ahead; re-reading its offsets");
                if let Ok(c) = self.source.committed(self.group).await {
                    self.log_committed = c;
                }
                Ok(Flow::Continue)
            }
            Err(SourceError::Unavailable(e)) => {
                tracing::warn!(error = %e, "offset commit to the log failed");
                Ok(Flow::Continue)
            }
            Err(e @ SourceError::Other(_)) => Err(RunError::Source(e)),
        }
    }

    /// Writes `records` (fetched in `generation`) into PostgreSQL: gaps
    /// before them are filled first, holes inside split the batch.
    async fn write(
        &mut self,
        generation: u64,
        records: Vec<SourceRecord>,
        batch_max: usize,
        backoff: &mut Backoff,
    ) -> Result<Flow, RunError> {
        let mut parts: BTreeMap<u32, Vec<(u64, EventJson)>> = BTreeMap::new();
        for r in records {
            // A partition that moved away since the fetch is its new owner's
            // to write (from the log's committed offset, which is never
            // ahead of PostgreSQL's): not written here.
            if !self.partitions.contains(&r.partition) {
                continue;
            }
            let e = decode(&r)?;
            parts.entry(r.partition).or_default().push((r.offset, e));
        }
        while !parts.is_empty() {
            // Gaps before each partition's records: fill them from the log.
            for (&p, events) in &parts {
                let from = self.pg_next.get(&p).copied().unwrap_or(0);
                let first = events.first().map_or(from, |(o, _)| *o);
                if first > from {
                    flow!(self.fill_gap(p, from, first, generation, batch_max, backoff).await?);
                }
            }
            // Holes inside: keep the contiguous head now, the rest next round.
            let mut rest: BTreeMap<u32, Vec<(u64, EventJson)>> = BTreeMap::new();
            for (&p, events) in parts.iter_mut() {
                if let Some(k) = events.windows(2).position(|w| w[1].0 != w[0].0 + 1) {
                    rest.insert(p, events.split_off(k + 1));
                }
            }
            let batches: Vec<PartitionBatch<'_>> = parts
                .iter()
                .filter_map(|(&partition, events)| {
                    let next_offset = events.last()?.0 + 1;
                    Some(PartitionBatch { partition, events, next_offset })
                })
                .collect();
            let Some(outcomes) =
                retry(backoff, self.stop, || apply_batches(self.pool, self.group, TOPIC, generation, &batches)).await?
            else {
                return Ok(Flow::Stop);
            };
            let mut redo: Vec<u32> = Vec::new();
            for (b, o) in batches.iter().zip(outcomes) {
                match o {
                    Outcome::Applied(a) => {
                        tracing::debug!(partition = b.partition, applied = a.applied, skipped = a.skipped, "batch");
                        self.pg_next.insert(b.partition, a.next_offset);
                    }
                    Outcome::Fenced { stored } => {
                        tracing::info!(
                            partition = b.partition,
                            stored,
                            ours = generation,
                            "fenced by a newer generation; dropping the batch"
                        );
                        rest.remove(&b.partition);
                        self.pg_next.remove(&b.partition);
                    }
                    Outcome::Gap { stored, first } => {
                        // PostgreSQL went back (e.g. restored): fill from there.
                        tracing::warn!(partition = b.partition, stored, first, "PostgreSQL is behind this batch");
                        self.pg_next.insert(b.partition, stored);
                        redo.push(b.partition);
                    }
                }
            }
            let mut kept: BTreeMap<u32, Vec<(u64, EventJson)>> = BTreeMap::new();
            for p in redo {
                if let Some(events) = parts.remove(&p) {
                    let mut events = events;
                    if let Some(tail) = rest.remove(&p) {
                        events.extend(tail);
                    }
                    kept.insert(p, events);
                }
            }
            kept.extend(rest);
            parts = kept;
        }
        Ok(Flow::Continue)
    }

    /// After a possibly lost fetch answer, on an empty fetch: reads what
    /// the log has past PostgreSQL's offset of each owned partition directly.
    async fn check_tails(
        &mut self,
        generation: u64,
        batch_max: usize,
        backoff: &mut Backoff,
    ) -> Result<Flow, RunError> {
        let owned: Vec<u32> = self.partitions.iter().copied().collect();
        for p in owned {
            let from = self.pg_next.get(&p).copied().unwrap_or(0);
            let end = match self.source.read(p, from, 1).await {
                Ok(r) => r.end_offset,
                Err(SourceError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "tail check failed; retrying later");
                    return Ok(Flow::Continue);
                }
                Err(e) => return Err(RunError::Source(e)),
            };
            if end > from {
                flow!(self.fill_gap(p, from, end, generation, batch_max, backoff).await?);
            }
        }
        self.maybe_lost = false;
        Ok(Flow::Continue)
    }

    /// Applies the records `[from, to)` of `partition` read directly from
    /// the log, in batches of at most `batch_max`, under `generation`.
    async fn fill_gap(
        &mut self,
        partition: u32,
        mut from: u64,
        to: u64,
        generation: u64,
        batch_max: usize,
        backoff: &mut Backoff,
    ) -> Result<Flow, RunError> {
        tracing::warn!(partition, from, to, "reading records missing from PostgreSQL directly from the log");
        let mut empty = 0u32;
        while from < to {
            if self.stop.is_stopping() {
                return Ok(Flow::Stop);
            }
            let mut events: Vec<(u64, EventJson)> = Vec::new();
            while from + (events.len() as u64) < to && events.len() < batch_max {
                let at = from + events.len() as u64;
                let room = (to - at).min((batch_max - events.len()) as u64);
                let want = u32::try_from(room).unwrap_or(u32::MAX).min(FETCH_RECORDS_MAX);
                let recs = match self.source.read(partition, at, want).await {
                    Ok(r) => r.records,
                    Err(SourceError::Unavailable(e)) => {
                        let d = backoff.next_delay();
                        tracing::warn!(error = %e, "gap read failed; retrying");
                        self.stop.sleep(d).await;
                        continue;
                    }
                    Err(e) => return Err(RunError::Source(e)),
                };
                let Some(r0) = recs.first() else {
                    empty += 1;
                    if empty > GAP_READ_EMPTY_MAX {
                        return Err(RunError::Source(SourceError::Other(format!(
                            "{TOPIC}/{partition}: no records at offset {at}, although records up to {to} were delivered"
                        ))));
                    }
                    self.stop.sleep(backoff.next_delay()).await;
                    continue;
                };
                if r0.offset != at {
                    return Err(RunError::Purged { partition, wanted: at, got: r0.offset });
                }
                for r in recs.iter().take_while(|r| r.offset < to) {
                    if r.offset != from + events.len() as u64 {
                        return Err(RunError::Purged { partition, wanted: from + events.len() as u64, got: r.offset });
                    }
                    events.push((r.offset, decode(r)?));
                }
            }
            let next_offset = from + events.len() as u64;
            let batch = [PartitionBatch { partition, events: &events, next_offset }];
            let Some(out) =
                retry(backoff, self.stop, || apply_batches(self.pool, self.group, TOPIC, generation, &batch)).await?
            else {
                return Ok(Flow::Stop);
            };
            match out.first() {
                Some(Outcome::Applied(a)) => {
                    self.pg_next.insert(partition, a.next_offset);
                    from = a.next_offset.max(next_offset);
                }
                Some(Outcome::Fenced { .. }) => {
                    self.pg_next.remove(&partition);
                    return Ok(Flow::Continue);
                }
                Some(Outcome::Gap { stored, .. }) => from = *stored,
                None => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Continue)
    }
}

fn decode(r: &SourceRecord) -> Result<EventJson, RunError> {
    ledger_events::decode(r.value.get().as_bytes()).map_err(|error| RunError::Poison {
        partition: r.partition,
        offset: r.offset,
        error,
    })
}

/// Runs `f` until it succeeds or fails for good, backing off on transient
/// errors. `Ok(None)` if `stop` was set meanwhile.
async fn retry<T, F, Fut>(backoff: &mut Backoff, stop: &Shutdown, mut f: F) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    loop {
        match f().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.is_transient() => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "PostgreSQL error; retrying");
                stop.sleep(d).await;
                if stop.is_stopping() {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}
