// tidy: long-file: the whole PostgreSQL side of the projection (schema checks, the exactly-once batch apply with its fences, dead letters and the verify reads) in one reviewable place.
//! The PostgreSQL side: migrations, [`apply_batch`] and [`load_offsets`].
//!
//! **Exactly once.** The rows of a batch and the partition's `next_offset`
//! are written in one transaction. The offset row is locked (`FOR UPDATE`)
//! and compared first:
//!
//! - stored `generation` > ours → [`Error::Fenced`] (a zombie of an older
//!   generation; the transaction rolls back, nothing is written);
//! - stored `next_offset` ≥ the batch's end → already applied (a crash
//!   after the PostgreSQL commit, before the log commit): nothing written;
//! - stored `next_offset` inside the batch → only the events at or after it
//!   are applied (never twice);
//! - stored `next_offset` < the batch's first offset → [`Error::Gap`]
//!   (never skip);
//! - no row yet → the batch starts the partition.
//!
//! Then `next_offset` and `generation` (ours) are written and the
//! transaction commits. All rows are written with one `UNNEST` statement per
//! table, each row at most once per statement (merged in Rust first), in id
//! order (so concurrent projectors lock rows in the same order).
//!
//! **Never poisoned.** When PostgreSQL refuses a row for its value (SQLSTATE
//! class 22 data exception, e.g. a `\u0000` escape in `jsonb`; 23514 check
//! violation; class 54 program limit) the batch's rows are rolled back to a
//! savepoint and written again one event at a time; each refused event is
//! recorded in `projector_dead_letters` with PostgreSQL's reason instead of
//! its rows, in the same transaction as the offsets, so the projection goes
//! on and the record is never silently lost ([`dead_letters`]).
//!
//! The non-macro `sqlx::query()` API is used everywhere: the build never
//! needs a database nor `.sqlx/` data.

use std::collections::BTreeMap;

use ledger_events::{AccountCreatedJson, AccountStateJson, EventJson, EventKind, Status, TransferJson};
use sqlx::{PgPool, Postgres, Row, Transaction};

/// The migrations in `migrations/` at the repository root (embedded).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Applies the migrations (idempotent; run at start-up).
pub async fn migrate(pool: &PgPool) -> Result<(), Error> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Errors of the database side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A newer generation owns the partition: this member is a zombie and
    /// must rejoin. Nothing was written.
    #[error(
        "fenced: {topic}/{partition} of group {group:?} was written by generation {stored}, ours is {ours}; rejoin"
    )]
    Fenced {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Generation stored in `projector_offsets`.
        stored: u64,
        /// Our generation.
        ours: u64,
    },
    /// The batch starts after the stored `next_offset`: records in between
    /// were never applied. Nothing was written.
    #[error("gap: {topic}/{partition} of group {group:?} resumes at offset {stored}, but the batch starts at {first}")]
    Gap {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Stored `next_offset`.
        stored: u64,
        /// First offset of the batch.
        first: u64,
    },
    /// The batch itself is malformed (offsets not increasing or not below
    /// `next_offset`).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// A u64 from the log does not fit PostgreSQL's bigint.
    #[error("{what} = {value} does not fit a PostgreSQL bigint")]
    OutOfRange {
        /// Which value.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A stored value could not be parsed back.
    #[error("corrupt value in PostgreSQL: {0}")]
    Corrupt(String),
    /// PostgreSQL error.
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// Migration error.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database cannot hold what the ledger accepts (e.g. not UTF8).
    #[error("unsupported database: {0}")]
    Unsupported(String),
}

impl Error {
    /// True for errors worth retrying after a backoff: PostgreSQL down or
    /// restarting, pool timeouts, deadlocks, serialization failures.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Db(e) => is_transient_sqlx(e),
            Error::Migrate(sqlx::migrate::MigrateError::Execute(e)) => is_transient_sqlx(e),
            _ => false,
        }
    }
}

/// Checks that the database can hold every string the ledger accepts: its
/// encoding must be UTF8 (any other refuses characters that ledger metadata
/// may hold, and every such record would become a dead letter).
pub async fn check_database(pool: &PgPool) -> Result<(), Error> {
    let enc: String = sqlx::query("SHOW server_encoding").fetch_one(pool).await?.try_get(0)?;
    if enc != "UTF8" {
        return Err(Error::Unsupported(format!(
            "the database encoding is {enc}; the projector needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
        )));
    }
    Ok(())
}

/// Dead letters recorded by this process (the `projector_dead_letters_recorded_total` metric).
pub static DEAD_LETTERS_RECORDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The SQLSTATE of an error that means "PostgreSQL refuses this value" (and
/// would refuse it again on every retry), or `None`.
fn refusal(e: &Error) -> Option<(String, String)> {
    match e {
        Error::Db(sqlx::Error::Database(db)) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let refused = code.starts_with("22") || code == "23514" || code.starts_with("54");
            refused.then(|| (code, db.message().to_owned()))
        }
        Error::OutOfRange { .. } => Some(("22003".to_owned(), e.to_string())),
        _ => None,
    }
}

/// A record PostgreSQL refused (a row of `projector_dead_letters`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset of the record.
    pub offset: u64,
    /// `account_created` or `transfer`.
    pub kind: String,
    /// Account or transfer id.
    pub entity_id: String,
    /// SQLSTATE.
    pub sqlstate: String,
    /// PostgreSQL's message.
    pub reason: String,
}

/// Most dead letters [`dead_letters`] returns (the count is exact).
pub const DEAD_LETTERS_LISTED_MAX: i64 = 1000;

/// The number of dead letters, and the first `DEAD_LETTERS_LISTED_MAX` of them by position.
pub async fn dead_letters(pool: &PgPool) -> Result<(u64, Vec<DeadLetter>), Error> {
    let n: i64 = sqlx::query("SELECT count(*) FROM projector_dead_letters").fetch_one(pool).await?.try_get(0)?;
    let rows = sqlx::query(
        "SELECT group_name, topic, partition, record_offset, kind, entity_id, sqlstate, reason \
         FROM projector_dead_letters ORDER BY group_name, topic, partition, record_offset LIMIT $1",
    )
    .bind(DEAD_LETTERS_LISTED_MAX)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let partition: i32 = r.try_get(2)?;
        out.push(DeadLetter {
            group: r.try_get(0)?,
            topic: r.try_get(1)?,
            partition: u32::try_from(partition).map_err(|_| Error::Corrupt(format!("partition = {partition}")))?,
            offset: u64_of("record_offset", r.try_get(3)?)?,
            kind: r.try_get(4)?,
            entity_id: r.try_get(5)?,
            sqlstate: r.try_get(6)?,
            reason: r.try_get(7)?,
        });
    }
    Ok((u64::try_from(n).unwrap_or(0), out))
}

fn event_identity(e: &EventJson) -> (&'static str, &str) {
    match e {
        EventJson::AccountCreated(a) => ("account_created", a.id.as_str()),
        EventJson::Transfer(t) => ("transfer", t.transfer_id.as_str()),
    }
}

/// Writes the rows of `todo`'s events; when PostgreSQL refuses a value, writes
/// them one at a time and records each refused one as a dead letter. Returns
/// the number of dead letters recorded.
async fn write_rows_or_dead_letter(
    tx: &mut Transaction<'_, Postgres>,
    group: &str,
    topic: &str,
    batches: &[PartitionBatch<'_>],
    todo: &[(usize, usize)],
) -> Result<u64, Error> {
    let mut events: Vec<&EventJson> = Vec::new();
    for &(i, skip) in todo {
        events.extend(batches[i].events[skip..].iter().map(|(_, e)| e));
    }
    sqlx::query("SAVEPOINT batch_rows").execute(&mut **tx).await?;
    let err = match write_rows(tx, events.into_iter()).await {
        Ok(()) => return Ok(0),
        Err(e) => e,
    };
    let Some((code, reason)) = refusal(&err) else { return Err(err) };
    tracing::warn!(sqlstate = %code, %reason, "PostgreSQL refused a row of the batch; writing its events one by one");
    sqlx::query("ROLLBACK TO SAVEPOINT batch_rows").execute(&mut **tx).await?;
    let mut dead = 0;
    for &(i, skip) in todo {
        let b = &batches[i];
        for (offset, e) in &b.events[skip..] {
            sqlx::query("SAVEPOINT one_event").execute(&mut **tx).await?;
            let err = match write_rows(tx, std::iter::once(e)).await {
                Ok(()) => {
                    sqlx::query("RELEASE SAVEPOINT one_event").execute(&mut **tx).await?;
                    continue;
                }
                Err(err) => err,
            };
            let Some((code, reason)) = refusal(&err) else { return Err(err) };
            sqlx::query("ROLLBACK TO SAVEPOINT one_event").execute(&mut **tx).await?;
            let (kind, id) = event_identity(e);
            tracing::error!(
                partition = b.partition, offset, kind, id, sqlstate = %code, %reason,
                "PostgreSQL refused a record: recorded in projector_dead_letters, projection goes on"
            );
            sqlx::query(
                "INSERT INTO projector_dead_letters \
                 (group_name, topic, partition, record_offset, kind, entity_id, sqlstate, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(group)
            .bind(topic)
            .bind(b.partition as i32)
            .bind(i64_of("offset", *offset)?)
            .bind(kind)
            .bind(id)
            .bind(&code)
            .bind(&reason)
            .execute(&mut **tx)
            .await?;
            dead += 1;
        }
    }
    Ok(dead)
}

/// See [`Error::is_transient`].
pub fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // 08: connection exception; 40001 serialization failure; 40P01
            // deadlock; 53: insufficient resources; 57P0x: shutdown/restart.
            code.starts_with("08")
                || code == "40001"
                || code == "40P01"
                || code.starts_with("53")
                || code.starts_with("57P0")
        }
        _ => false,
    }
}

/// Which partition a batch belongs to, and the generation of the writer.
#[derive(Clone, Copy, Debug)]
pub struct Fence<'a> {
    /// Consumer group name.
    pub group: &'a str,
    /// Topic (normally `ledger`).
    pub topic: &'a str,
    /// Partition.
    pub partition: u32,
    /// The writer's group generation.
    pub generation: u64,
}

/// What [`apply_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Events written.
    pub applied: usize,
    /// Events skipped because they were already applied (redelivery).
    pub skipped: usize,
    /// The partition's stored `next_offset` after the call.
    pub next_offset: u64,
}

fn i64_of(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::OutOfRange { what, value })
}

fn u64_of(what: &str, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("{what} = {value}")))
}

/// Where to resume: partition → stored `next_offset` for `group`/`topic`.
pub async fn load_offsets(pool: &PgPool, group: &str, topic: &str) -> Result<BTreeMap<u32, u64>, Error> {
    let rows = sqlx::query("SELECT partition, next_offset FROM projector_offsets WHERE group_name = $1 AND topic = $2")
        .bind(group)
        .bind(topic)
        .fetch_all(pool)
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let p: i32 = r.try_get(0)?;
        let o: i64 = r.try_get(1)?;
        let p = u32::try_from(p).map_err(|_| Error::Corrupt(format!("partition = {p}")))?;
        out.insert(p, u64_of("next_offset", o)?);
    }
    Ok(out)
}

/// Applies the events of one partition, `events` = the records at offsets
/// `[events[0].0, next_offset)` of the log (increasing offsets), together
/// with the new `next_offset`, in ONE transaction fenced by `fence`'s
/// generation. See the module docs for the protocol.
///
/// An empty `events` with `next_offset` equal to the stored one is a no-op.
pub async fn apply_batch(
    pool: &PgPool,
    fence: &Fence<'_>,
    events: &[(u64, EventJson)],
    next_offset: u64,
) -> Result<Applied, Error> {
    let batch = PartitionBatch { partition: fence.partition, events, next_offset };
    let mut out = apply_batches(pool, fence.group, fence.topic, fence.generation, &[batch]).await?;
    match out.pop() {
        Some(Outcome::Applied(a)) => Ok(a),
        Some(Outcome::Fenced { stored }) => Err(Error::Fenced {
            group: fence.group.to_owned(),
            topic: fence.topic.to_owned(),
            partition: fence.partition,
            stored,
            ours: fence.generation,
        }),
        Some(Outcome::Gap { stored, first }) => Err(Error::Gap {
            group: fence.group.to_owned(),
            topic: fence.topic.to_owned(),
            partition: fence.partition,
            stored,
            first,
        }),
        None => Err(Error::InvalidBatch("no outcome".to_owned())),
    }
}

/// The events of one partition for [`apply_batches`]: the records at
/// offsets `[events[0].0, next_offset)` (increasing offsets).
#[derive(Clone, Copy, Debug)]
pub struct PartitionBatch<'a> {
    /// Partition.
    pub partition: u32,
    /// `(offset, event)`, increasing offsets, all below `next_offset`.
    pub events: &'a [(u64, EventJson)],
    /// The partition's next offset once these events are applied.
    pub next_offset: u64,
}

/// What [`apply_batches`] did with one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written (or found already written, `applied == 0`).
    Applied(Applied),
    /// A newer generation wrote the partition: nothing of it was written.
    Fenced {
        /// Generation stored in `projector_offsets`.
        stored: u64,
    },
    /// The stored `next_offset` is before the batch's first offset: nothing
    /// of it was written (never skip; the caller fills the gap first).
    Gap {
        /// Stored `next_offset`.
        stored: u64,
        /// First offset of the batch.
        first: u64,
    },
}

/// Applies several partitions' batches in ONE transaction: each
/// partition's offset row is locked and checked as in [`apply_batch`]
/// (partitions in increasing order, so concurrent writers cannot
/// deadlock on them); the partitions that pass are written together (one
/// statement per table) with their new offsets; fenced or gapped
/// partitions are left out and reported, the others still commit. One
/// outcome per batch, in the order given.
pub async fn apply_batches(
    pool: &PgPool,
    group: &str,
    topic: &str,
    generation: u64,
    batches: &[PartitionBatch<'_>],
) -> Result<Vec<Outcome>, Error> {
    let mut order: Vec<usize> = (0..batches.len()).collect();
    order.sort_by_key(|&i| batches[i].partition);
    for w in order.windows(2) {
        if batches[w[0]].partition == batches[w[1]].partition {
            return Err(Error::InvalidBatch(format!("partition {} given twice", batches[w[0]].partition)));
        }
    }
    for b in batches {
        check_batch(b.events, b.next_offset)?;
        i32::try_from(b.partition).map_err(|_| Error::InvalidBatch(format!("partition {}", b.partition)))?;
        i64_of("next_offset", b.next_offset)?;
    }
    let gen_i = i64_of("generation", generation)?;

    let mut tx = pool.begin().await?;
    let mut outcomes = vec![None; batches.len()];
    let mut todo: Vec<(usize, usize)> = Vec::new(); // (batch, events to skip)
    for &i in &order {
        let b = &batches[i];
        let first = b.events.first().map_or(b.next_offset, |(o, _)| *o);
        let partition = b.partition as i32;
        // A missing row means the batch starts the partition: create it at
        // the batch's start, so the checks below treat both cases alike. A
        // concurrent creator makes this wait, then do nothing.
        sqlx::query(
            "INSERT INTO projector_offsets (group_name, topic, partition, next_offset, generation) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(group)
        .bind(topic)
        .bind(partition)
        .bind(i64_of("offset", first)?)
        .bind(gen_i)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT next_offset, generation FROM projector_offsets \
             WHERE group_name = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
        )
        .bind(group)
        .bind(topic)
        .bind(partition)
        .fetch_one(&mut *tx)
        .await?;
        let stored_next = u64_of("next_offset", row.try_get(0)?)?;
        let stored_gen = u64_of("generation", row.try_get(1)?)?;
        outcomes[i] = Some(if stored_gen > generation {
            Outcome::Fenced { stored: stored_gen }
        } else if stored_next >= b.next_offset {
            // Everything here is already applied (or the batch is empty).
            Outcome::Applied(Applied { applied: 0, skipped: b.events.len(), next_offset: stored_next })
        } else if stored_next < first {
            Outcome::Gap { stored: stored_next, first }
        } else {
            let skip = b.events.partition_point(|(o, _)| *o < stored_next);
            todo.push((i, skip));
            Outcome::Applied(Applied { applied: b.events.len() - skip, skipped: skip, next_offset: b.next_offset })
        });
    }
    if todo.is_empty() {
        tx.rollback().await?;
    } else {
        let dead = write_rows_or_dead_letter(&mut tx, group, topic, batches, &todo).await?;
        let parts: Vec<i32> = todo.iter().map(|&(i, _)| batches[i].partition as i32).collect();
        let nexts: Vec<i64> = todo.iter().map(|&(i, _)| batches[i].next_offset as i64).collect();
        sqlx::query(
            "UPDATE projector_offsets AS o SET next_offset = u.next, generation = $3, updated_at = now() \
             FROM unnest($4::int4[], $5::int8[]) AS u(partition, next) \
             WHERE o.group_name = $1 AND o.topic = $2 AND o.partition = u.partition",
        )
        .bind(group)
        .bind(topic)
        .bind(gen_i)
        .bind(parts)
        .bind(nexts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        DEAD_LETTERS_RECORDED.fetch_add(dead, std::sync::atomic::Ordering::Relaxed);
    }
    // Every index is in `order`, so every outcome is set.
    Ok(outcomes.into_iter().flatten().collect())
}

fn check_batch(events: &[(u64, EventJson)], next_offset: u64) -> Result<(), Error> {
    for w in events.windows(2) {
        if w[1].0 <= w[0].0 {
            return Err(Error::InvalidBatch(format!("offset {} follows {}", w[1].0, w[0].0)));
        }
    }
    if let Some((last, _)) = events.last()
        && *last >= next_offset
    {
        return Err(Error::InvalidBatch(format!("offset {last} is not below next_offset {next_offset}")));
    }
    Ok(())
}

/// Writes the rows of `events` (in log order within one partition).
pub(crate) async fn write_rows<'e>(
    tx: &mut Transaction<'_, Postgres>,
    events: impl Iterator<Item = &'e EventJson>,
) -> Result<(), Error> {
    let mut created: BTreeMap<&str, &AccountCreatedJson> = BTreeMap::new();
    let mut states: BTreeMap<&str, &AccountStateJson> = BTreeMap::new();
    let mut transfers: BTreeMap<&str, TransferRow<'_>> = BTreeMap::new();
    for e in events {
        match e {
            EventJson::AccountCreated(a) => {
                created.entry(&a.id).or_insert(a);
            }
            EventJson::Transfer(t) => {
                for s in [&t.debit_account, &t.credit_account] {
                    let slot = states.entry(&s.id).or_insert(s);
                    if s.version > slot.version {
                        *slot = s;
                    }
                }
                let row = transfers.entry(&t.transfer_id).or_insert_with(|| TransferRow::new(t));
                row.merge(t);
            }
        }
    }
    if !created.is_empty() || !states.is_empty() {
        write_accounts(tx, &created, &states).await?;
    }
    if !transfers.is_empty() {
        write_transfers(tx, &transfers).await?;
    }
    Ok(())
}

/// One statement for every account row of the batch (creation columns and
/// balance columns merged per id), in id order: two transactions touching
/// the same accounts lock them in the same order, so they cannot deadlock.
async fn write_accounts(
    tx: &mut Transaction<'_, Postgres>,
    created: &BTreeMap<&str, &AccountCreatedJson>,
    states: &BTreeMap<&str, &AccountStateJson>,
) -> Result<(), Error> {
    let mut ids: Vec<&str> = created.keys().chain(states.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let n = ids.len();
    let (mut cur, mut od, mut md, mut cidx, mut cms, mut cl) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut closed = Vec::with_capacity(n);
    let mut cols: [Vec<Option<String>>; 6] = Default::default();
    let mut ui = Vec::with_capacity(n);
    let mut ver = Vec::with_capacity(n);
    for id in &ids {
        match created.get(id) {
            Some(a) => {
                cur.push(Some(a.currency.as_str()));
                od.push(Some(a.allow_overdraft));
                md.push(Some(a.metadata.get()));
                cidx.push(Some(i64_of("index", a.index)?));
                cms.push(Some(i64_of("timestamp_ms", a.timestamp_ms)?));
                cl.push(Some(a.credits_must_not_exceed_debits));
            }
            None => {
                cur.push(None);
                od.push(None);
                md.push(None);
                cidx.push(None);
                cms.push(None);
                cl.push(None);
            }
        }
        match states.get(id) {
            Some(s) => {
                cols[0].push(Some(s.debits_posted.to_string()));
                cols[1].push(Some(s.credits_posted.to_string()));
                cols[2].push(Some(s.debits_pending.to_string()));
                cols[3].push(Some(s.credits_pending.to_string()));
                cols[4].push(Some(s.balance.to_string()));
                cols[5].push(Some(s.available.to_string()));
                ui.push(i64_of("updated_index", s.updated_index)?);
                ver.push(i64_of("version", s.version)?);
                closed.push(s.closed);
            }
            None => {
                for c in &mut cols {
                    c.push(None);
                }
                ui.push(0);
                ver.push(0);
                closed.push(false);
            }
        }
    }
    let [dp, cp, dq, cq, bal, av] = cols;
    // Numbers travel as text and are cast to numeric: exact for all of u128
    // and i128 without a big-decimal dependency. A row without balance
    // state has version 0, which never overwrites stored balances; a row
    // without creation data never overwrites stored creation data.
    sqlx::query(
        "INSERT INTO accounts AS a (id, currency, allow_overdraft, metadata, created_index, created_at, \
             debits_posted, credits_posted, debits_pending, credits_pending, balance, available, updated_index, \
             version, credits_must_not_exceed_debits, closed) \
         SELECT id, cur, od, md::jsonb, cidx, timestamptz 'epoch' + cms * interval '1 millisecond', \
             COALESCE(dp, '0')::numeric, COALESCE(cp, '0')::numeric, COALESCE(dq, '0')::numeric, \
             COALESCE(cq, '0')::numeric, COALESCE(bal, '0')::numeric, COALESCE(av, '0')::numeric, ui, ver, cl, cld \
         FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::int8[], $6::int8[], $7::text[], \
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::int8[], \
                     $15::bool[], $16::bool[]) \
              AS u(id, cur, od, md, cidx, cms, dp, cp, dq, cq, bal, av, ui, ver, cl, cld) \
         ORDER BY id \
         ON CONFLICT (id) DO UPDATE SET \
             currency = CASE WHEN a.created_index IS NULL THEN excluded.currency ELSE a.currency END, \
             allow_overdraft = CASE WHEN a.created_index IS NULL THEN excluded.allow_overdraft \
                 ELSE a.allow_overdraft END, \
             credits_must_not_exceed_debits = CASE WHEN a.created_index IS NULL \
                 THEN excluded.credits_must_not_exceed_debits ELSE a.credits_must_not_exceed_debits END, \
             closed = CASE WHEN excluded.version > a.version THEN excluded.closed ELSE a.closed END, \
             metadata = CASE WHEN a.created_index IS NULL THEN excluded.metadata ELSE a.metadata END, \
             created_at = CASE WHEN a.created_index IS NULL THEN excluded.created_at ELSE a.created_at END, \
             created_index = COALESCE(a.created_index, excluded.created_index), \
             debits_posted = CASE WHEN excluded.version > a.version THEN excluded.debits_posted \
                 ELSE a.debits_posted END, \
             credits_posted = CASE WHEN excluded.version > a.version THEN excluded.credits_posted \
                 ELSE a.credits_posted END, \
             debits_pending = CASE WHEN excluded.version > a.version THEN excluded.debits_pending \
                 ELSE a.debits_pending END, \
             credits_pending = CASE WHEN excluded.version > a.version THEN excluded.credits_pending \
                 ELSE a.credits_pending END, \
             balance = CASE WHEN excluded.version > a.version THEN excluded.balance ELSE a.balance END, \
             available = CASE WHEN excluded.version > a.version THEN excluded.available ELSE a.available END, \
             updated_index = CASE WHEN excluded.version > a.version THEN excluded.updated_index \
                 ELSE a.updated_index END, \
             version = GREATEST(a.version, excluded.version) \
         WHERE (a.created_index IS NULL AND excluded.created_index IS NOT NULL) OR excluded.version > a.version",
    )
    .bind(ids)
    .bind(cur)
    .bind(od)
    .bind(md)
    .bind(cidx)
    .bind(cms)
    .bind(dp)
    .bind(cp)
    .bind(dq)
    .bind(cq)
    .bind(bal)
    .bind(av)
    .bind(ui)
    .bind(ver)
    .bind(cl)
    .bind(closed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One transfer row, merged from the batch's events for that transfer.
struct TransferRow<'a> {
    t: &'a TransferJson,
    status: Status,
    posted_amount: Option<u64>,
    log_index: Option<u64>,
    created_ms: Option<u64>,
    resolved: Option<(u64, u64, u64)>,
    updated: (u64, i16),
}

const fn rank(kind: EventKind) -> i16 {
    match kind {
        EventKind::Created => 0,
        EventKind::Posted | EventKind::Voided | EventKind::Expired => 1,
    }
}

fn posted_amount(t: &TransferJson) -> Option<u64> {
    match (t.status, t.kind) {
        (Status::Pending, _) => None,
        (Status::Posted, EventKind::Created) => Some(t.amount),
        (Status::Posted, _) => Some(t.event_amount),
        (Status::Voided | Status::Expired, _) => Some(0),
    }
}

impl<'a> TransferRow<'a> {
    fn new(t: &'a TransferJson) -> Self {
        TransferRow {
            t,
            status: t.status,
            posted_amount: posted_amount(t),
            log_index: None,
            created_ms: None,
            resolved: None,
            updated: (t.index, rank(t.kind)),
        }
    }

    fn merge(&mut self, t: &'a TransferJson) {
        if t.kind == EventKind::Created {
            self.log_index = Some(t.index);
            self.created_ms = Some(t.timestamp_ms);
        } else {
            self.resolved = Some((t.index, t.timestamp_ms, t.event_amount));
        }
        let at = (t.index, rank(t.kind));
        if at >= self.updated {
            self.t = t;
            self.status = t.status;
            self.posted_amount = posted_amount(t);
            self.updated = at;
        }
    }
}

async fn write_transfers(
    tx: &mut Transaction<'_, Postgres>,
    rows: &BTreeMap<&str, TransferRow<'_>>,
) -> Result<(), Error> {
    let n = rows.len();
    let (mut id, mut d, mut c, mut amount, mut cur, mut pending, mut status, mut posted, mut md) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut exp, mut li, mut cms, mut ri, mut rms, mut ra, mut ui, mut ur) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut fl: Vec<Vec<&str>> = Vec::with_capacity(n);
    let opt = |what, v: Option<u64>| v.map(|v| i64_of(what, v)).transpose();
    for r in rows.values() {
        let t = r.t;
        id.push(t.transfer_id.as_str());
        d.push(t.debit_account_id.as_str());
        c.push(t.credit_account_id.as_str());
        amount.push(i64_of("amount", t.amount)?);
        cur.push(t.currency.as_str());
        pending.push(t.pending);
        status.push(r.status.as_str());
        posted.push(opt("posted_amount", r.posted_amount)?);
        md.push(t.metadata.get());
        exp.push(opt("expires_at_ms", t.expires_at_ms)?);
        li.push(opt("index", r.log_index)?);
        cms.push(opt("timestamp_ms", r.created_ms)?);
        ri.push(opt("index", r.resolved.map(|x| x.0))?);
        rms.push(opt("timestamp_ms", r.resolved.map(|x| x.1))?);
        ra.push(opt("event_amount", r.resolved.map(|x| x.2))?);
        ui.push(i64_of("index", r.updated.0)?);
        ur.push(r.updated.1);
        let names = [
            (t.balancing_debit, "balancing_debit"),
            (t.balancing_credit, "balancing_credit"),
            (t.closing_debit, "closing_debit"),
            (t.closing_credit, "closing_credit"),
        ];
        fl.push(names.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect());
    }
    // A transfer's flags as one text per row (a Postgres array of arrays must be rectangular).
    let fl: Vec<String> = fl.iter().map(|f| f.join(",")).collect();
    sqlx::query(
        "INSERT INTO transfers AS t (id, debit_account_id, credit_account_id, amount, currency, pending, status, \
             posted_amount, metadata, expires_at, log_index, created_at, resolved_index, resolved_at, \
             resolved_amount, updated_index, updated_rank, flags) \
         SELECT id, d, c, amount, cur, pending, status, posted, md::jsonb, \
             timestamptz 'epoch' + exp * interval '1 millisecond', li, \
             timestamptz 'epoch' + cms * interval '1 millisecond', ri, \
             timestamptz 'epoch' + rms * interval '1 millisecond', ra, ui, ur, \
             CASE WHEN fl = '' THEN '{}'::text[] ELSE string_to_array(fl, ',') END \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::bool[], $7::text[], \
                     $8::int8[], $9::text[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], \
                     $15::int8[], $16::int8[], $17::int2[], $18::text[]) \
              AS u(id, d, c, amount, cur, pending, status, posted, md, exp, li, cms, ri, rms, ra, ui, ur, fl) \
         ORDER BY id \
         ON CONFLICT (id) DO UPDATE SET \
             log_index = COALESCE(t.log_index, excluded.log_index), \
             created_at = COALESCE(t.created_at, excluded.created_at), \
             resolved_index = COALESCE(t.resolved_index, excluded.resolved_index), \
             resolved_at = COALESCE(t.resolved_at, excluded.resolved_at), \
             resolved_amount = COALESCE(t.resolved_amount, excluded.resolved_amount), \
             status = CASE WHEN (excluded.updated_index, excluded.updated_rank) > (t.updated_index, t.updated_rank) \
                 THEN excluded.status ELSE t.status END, \
             posted_amount = CASE WHEN (excluded.updated_index, excluded.updated_rank) > (t.updated_index, t.updated_rank) \
                 THEN excluded.posted_amount ELSE t.posted_amount END, \
             updated_rank = CASE WHEN (excluded.updated_index, excluded.updated_rank) > (t.updated_index, t.updated_rank) \
                 THEN excluded.updated_rank ELSE t.updated_rank END, \
             updated_index = GREATEST(t.updated_index, excluded.updated_index) \
         WHERE (excluded.updated_index, excluded.updated_rank) > (t.updated_index, t.updated_rank) \
            OR (t.log_index IS NULL AND excluded.log_index IS NOT NULL) \
            OR (t.resolved_index IS NULL AND excluded.resolved_index IS NOT NULL)",
    )
    .bind(id)
    .bind(d)
    .bind(c)
    .bind(amount)
    .bind(cur)
    .bind(pending)
    .bind(status)
    .bind(posted)
    .bind(md)
    .bind(exp)
    .bind(li)
    .bind(cms)
    .bind(ri)
    .bind(rms)
    .bind(ra)
    .bind(ui)
    .bind(ur)
    .bind(fl)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
