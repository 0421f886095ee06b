//! The run loop: join, resume from PostgreSQL's offsets, fetch, apply each
//! partition's records with [`apply_batch`], commit to the log; back off and
//! retry while PostgreSQL or the log is unavailable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ledger_events::{EventJson, TOPIC};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::db::{self, Error, Fence, apply_batch, load_offsets};
use crate::source::{CommitOffset, EventSource, Membership, SourceError};

/// First retry delay after a failure.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Retry delays double up to this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Default `--batch-max`: records per fetch (and at most per transaction).
pub const BATCH_MAX_DEFAULT: usize = 2_000;
/// Largest accepted `--batch-max`.
pub const BATCH_MAX_LIMIT: usize = 50_000;
/// Long-poll wait of a fetch.
pub const FETCH_WAIT: Duration = Duration::from_secs(1);
/// PostgreSQL connections of the pool.
pub const POOL_CONNECTIONS: u32 = 4;
/// How long to wait for a pooled connection before counting a failure.
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Consumer group.
    pub group: String,
    /// Records per fetch.
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
    /// PostgreSQL error that retrying cannot fix (e.g. [`Error::Gap`]).
    #[error(transparent)]
    Db(#[from] Error),
    /// The event source failed for good.
    #[error(transparent)]
    Source(SourceError),
    /// A record that is not a valid ledger event: never skipped.
    #[error("{topic}/{partition} offset {offset}: undecodable ledger event: {error}")]
    Poison {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
        /// Decode error.
        error: ledger_events::Error,
    },
}

async fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        tokio::time::sleep((end - Instant::now()).min(Duration::from_millis(50))).await;
    }
}

/// Connects to PostgreSQL and applies the migrations, retrying with
/// backoff while PostgreSQL is unreachable. Returns `None` if `stop` was set
/// first; fails at once on a non-transient error (bad URL, bad migration).
pub async fn connect(url: &str, backoff: &mut Backoff, stop: &AtomicBool) -> Result<Option<PgPool>, Error> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let res = async {
            let pool = PgPoolOptions::new()
                .max_connections(POOL_CONNECTIONS)
                .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
                .connect(url)
                .await?;
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
                sleep_unless_stopped(d, stop).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs until `stop` is set (Ok) or a fatal error.
pub async fn run<S: EventSource>(
    pool: &PgPool,
    source: &mut S,
    cfg: &Config,
    stop: &AtomicBool,
) -> Result<(), RunError> {
    let mut backoff = cfg.backoff.clone();
    'join: while !stop.load(Ordering::Relaxed) {
        let m = match source.join(&cfg.group).await {
            Ok(m) => m,
            Err(SourceError::Unavailable(e)) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, "join failed; retrying");
                sleep_unless_stopped(d, stop).await;
                continue;
            }
            Err(e) => return Err(RunError::Source(e)),
        };
        tracing::info!(generation = m.generation, partitions = m.assignments.len(), "joined");
        // Resume from PostgreSQL: tell the log where we are.
        let stored = match retry(&mut backoff, stop, || load_offsets(pool, &cfg.group, TOPIC)).await? {
            Some(s) => s,
            None => return Ok(()),
        };
        let resume: Vec<CommitOffset> = m
            .assignments
            .iter()
            .filter(|a| a.topic == TOPIC)
            .filter_map(|a| {
                stored.get(&a.partition).map(|&o| CommitOffset {
                    topic: a.topic.clone(),
                    partition: a.partition,
                    offset: o,
                })
            })
            .collect();
        if !resume.is_empty() {
            match source.commit(&m, &resume).await {
                Ok(()) => {}
                Err(SourceError::Rebalance | SourceError::Unavailable(_)) => continue 'join,
                Err(e) => return Err(RunError::Source(e)),
            }
        }
        let mut last_heartbeat = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_heartbeat.elapsed() >= m.heartbeat_interval {
                match source.heartbeat(&m).await {
                    Ok(()) => last_heartbeat = Instant::now(),
                    Err(SourceError::Rebalance) => continue 'join,
                    Err(SourceError::Unavailable(e)) => tracing::warn!(error = %e, "heartbeat failed"),
                    Err(e) => return Err(RunError::Source(e)),
                }
            }
            let fetched = match source.fetch(&m, cfg.batch_max, cfg.fetch_wait).await {
                Ok(f) => f,
                Err(SourceError::Rebalance) => continue 'join,
                Err(SourceError::Unavailable(e)) => {
                    let d = backoff.next_delay();
                    tracing::warn!(error = %e, "fetch failed; retrying");
                    sleep_unless_stopped(d, stop).await;
                    continue;
                }
                Err(e) => return Err(RunError::Source(e)),
            };
            if fetched.generation != m.generation {
                continue 'join;
            }
            match apply_fetched(pool, &m, &cfg.group, fetched, &mut backoff, stop).await? {
                Step::Commit(offsets) if !offsets.is_empty() => match source.commit(&m, &offsets).await {
                    Ok(()) => {}
                    Err(SourceError::Rebalance) => continue 'join,
                    // PostgreSQL holds the truth; the log catches up on the next commit.
                    Err(e) => tracing::warn!(error = %e, "offset commit to the log failed"),
                },
                Step::Commit(_) => {}
                Step::Rejoin => continue 'join,
                Step::Stop => return Ok(()),
            }
            backoff.reset();
        }
    }
    Ok(())
}

enum Step {
    Commit(Vec<CommitOffset>),
    Rejoin,
    Stop,
}

async fn apply_fetched(
    pool: &PgPool,
    m: &Membership,
    group: &str,
    fetched: crate::source::Fetched,
    backoff: &mut Backoff,
    stop: &AtomicBool,
) -> Result<Step, RunError> {
    let mut by_partition: BTreeMap<u32, Vec<(u64, EventJson)>> = BTreeMap::new();
    for r in fetched.records {
        if r.topic != TOPIC {
            tracing::warn!(topic = %r.topic, "ignoring a record of another topic");
            continue;
        }
        let e = ledger_events::decode(&r.value).map_err(|error| RunError::Poison {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            error,
        })?;
        by_partition.entry(r.partition).or_default().push((r.offset, e));
    }
    let mut commits = Vec::new();
    for (partition, events) in by_partition {
        let Some(next) = events.last().map(|(o, _)| o + 1) else { continue };
        let fence = Fence { group, topic: TOPIC, partition, generation: m.generation };
        let res = retry(backoff, stop, || apply_batch(pool, &fence, &events, next)).await;
        match res {
            Ok(Some(applied)) => {
                tracing::debug!(partition, applied = applied.applied, skipped = applied.skipped, "batch");
                commits.push(CommitOffset { topic: TOPIC.to_owned(), partition, offset: applied.next_offset });
            }
            Ok(None) => return Ok(Step::Stop),
            Err(Error::Fenced { stored, .. }) => {
                tracing::warn!(partition, stored, ours = m.generation, "fenced by a newer generation; rejoining");
                return Ok(Step::Rejoin);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Step::Commit(commits))
}

/// Runs `f` until it succeeds or fails for good, backing off on transient
/// errors. `Ok(None)` if `stop` was set meanwhile.
async fn retry<T, F, Fut>(backoff: &mut Backoff, stop: &AtomicBool, mut f: F) -> Result<Option<T>, Error>
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
                sleep_unless_stopped(d, stop).await;
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}
