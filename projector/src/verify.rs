//! `verify`: compares every account in PostgreSQL with the ledger's.
//!
//! [`verify`] compares the rows with given [`AccountSnapshot`]s;
//! [`verify_gateway`] (the `projector verify` command) reads them from the
//! ledger through a gateway, all at one log index:
//!
//! 1. `I` = the leader's last applied log index (`GET /v1/cluster`);
//! 2. the end offset of every `ledger` partition (strong reads); then it
//!    waits (at most [`CATCH_UP_WAIT`]) until PostgreSQL's offsets reach
//!    them, else it reports the partitions that are behind;
//! 3. every account row of PostgreSQL is compared with the ledger's account
//!    as of `I` (`?as_of_index=I`), or as of the row's own `updated_index`
//!    when the row is newer than `I` (the ledger kept moving meanwhile).
//!
//! 4. every transaction (issue 17) created up to `I` has all its postings in
//!    PostgreSQL (the `transactions` view: `postings_projected = postings`).
//!
//! An account missing from PostgreSQL is caught by step 2 (an unprojected
//! `account_created` event is lag) and every balance change by step 3 (the
//! `version` and counters differ).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_client::{Client, Consistency};
use ledger_core::{AccountView, Balances};
use ledger_events::TOPIC;
use sqlx::{PgPool, Row};
use tokio::sync::Semaphore;

use crate::db::Error;

/// Accounts read from the gateway at the same time.
pub const ACCOUNT_READS_IN_FLIGHT_MAX: usize = 16;
/// How long `verify_gateway` waits for PostgreSQL to reach the log's end.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(30);
/// How often it looks while waiting.
pub const CATCH_UP_POLL: Duration = Duration::from_millis(200);

/// Errors of [`verify_gateway`] (differences are not errors: see [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// PostgreSQL failed.
    #[error(transparent)]
    Db(#[from] Error),
    /// The gateway failed or answered something unexpected.
    #[error("gateway: {0}")]
    Gateway(String),
}

impl From<ledger_client::Error> for VerifyError {
    fn from(e: ledger_client::Error) -> Self {
        VerifyError::Gateway(e.to_string())
    }
}

impl From<sqlx::Error> for VerifyError {
    fn from(e: sqlx::Error) -> Self {
        VerifyError::Db(Error::Db(e))
    }
}

/// A partition PostgreSQL has not caught up with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behind {
    /// Partition of `ledger`.
    pub partition: u32,
    /// PostgreSQL's next offset (the largest over groups).
    pub projected: u64,
    /// The log's end offset.
    pub end: u64,
}

/// What [`verify_gateway`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The log index the ledger was read at.
    pub index: u64,
    /// Account rows compared.
    pub accounts: usize,
    /// Partitions PostgreSQL had not caught up with when the wait ended.
    pub behind: Vec<Behind>,
    /// Differences (sorted by account id).
    pub differences: Vec<Difference>,
    /// Records PostgreSQL refused (`projector_dead_letters`): how many, and the first ones.
    pub dead_letters: (u64, Vec<crate::db::DeadLetter>),
}

impl Report {
    /// True when PostgreSQL equals the ledger.
    pub fn ok(&self) -> bool {
        self.behind.is_empty() && self.differences.is_empty() && self.dead_letters.0 == 0
    }
}

/// Compares PostgreSQL with the ledger read through `client` (see the module docs).
pub async fn verify_gateway(pool: &PgPool, client: &Client) -> Result<Report, VerifyError> {
    let partitions = client
        .topics()
        .await?
        .into_iter()
        .find(|t| t.name == TOPIC)
        .map(|t| t.partitions)
        .ok_or_else(|| VerifyError::Gateway(format!("the gateway lists no topic {TOPIC:?}")))?;
    let cluster = client.cluster().await?;
    let leader = cluster.leader_id.ok_or_else(|| VerifyError::Gateway("no leader".to_owned()))?;
    let index = cluster
        .nodes
        .iter()
        .find(|n| n.id == leader)
        .map(|n| n.last_applied)
        .ok_or_else(|| VerifyError::Gateway(format!("leader {leader} is not in the node list")))?;

    // 2. Wait until PostgreSQL has every record the log had at `index`.
    let projected = projected_offsets(pool).await?;
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let from = projected.get(&p).copied().unwrap_or(0);
        let f = client.fetch_raw(TOPIC, p, from, Some(1), Consistency::Strong).await?;
        ends.insert(p, f.end_offset);
    }
    let deadline = Instant::now() + CATCH_UP_WAIT;
    let behind = loop {
        let projected = projected_offsets(pool).await?;
        let behind: Vec<Behind> = ends
            .iter()
            .filter_map(|(&partition, &end)| {
                let projected = projected.get(&partition).copied().unwrap_or(0);
                (projected < end).then_some(Behind { partition, projected, end })
            })
            .collect();
        if behind.is_empty() || Instant::now() >= deadline {
            break behind;
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    };

    // 3. Every account row against the ledger at `index` (or at the row's own index if newer).
    let rows = sqlx::query("SELECT id, updated_index, created_index FROM accounts ORDER BY id").fetch_all(pool).await?;
    let gate = Arc::new(Semaphore::new(ACCOUNT_READS_IN_FLIGHT_MAX));
    let mut reads = tokio::task::JoinSet::new();
    for r in &rows {
        let id: String = r.try_get(0)?;
        let updated: i64 = r.try_get(1)?;
        let created: Option<i64> = r.try_get(2)?;
        let at = index.max(u64::try_from(updated).unwrap_or(0));
        let created_after = created.is_some_and(|c| u64::try_from(c).unwrap_or(0) > index);
        let (client, gate) = (client.clone(), gate.clone());
        reads.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let res = client.account_as_of(&id, at, Consistency::MinIndex(at)).await;
            (id, created_after, res)
        });
    }
    let mut ledger = Vec::with_capacity(rows.len());
    let mut skip = std::collections::BTreeSet::new();
    while let Some(done) = reads.join_next().await {
        let (id, created_after, res) = done.map_err(|e| VerifyError::Gateway(format!("account read task: {e}")))?;
        match res {
            Ok(a) => ledger.push(AccountSnapshot {
                id: a.id,
                currency: a.currency,
                allow_overdraft: a.allow_overdraft,
                credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
                closed: a.closed,
                balances: Balances {
                    debits_posted: a.debits_posted,
                    credits_posted: a.credits_posted,
                    debits_pending: a.debits_pending,
                    credits_pending: a.credits_pending,
                },
                version: a.version,
            }),
            // Created after `index`: nothing to compare at `index`.
            Err(e) if e.status() == Some(404) && created_after => {
                skip.insert(id);
            }
            // Reported as NotInLedger by `verify`.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut differences = verify(pool, &ledger).await?;
    differences.retain(|d| !matches!(d, Difference::NotInLedger { id } if skip.contains(id)));
    differences.extend(incomplete_transactions(pool, index).await?);
    let dead_letters = crate::db::dead_letters(pool).await?;
    Ok(Report { index, accounts: rows.len(), behind, differences, dead_letters })
}

/// Transactions created up to log index `index` that PostgreSQL does not hold whole: every
/// posting was applied in one log entry, so once the partitions have caught up with `index`
/// each must have all of them.
pub async fn incomplete_transactions(pool: &PgPool, index: u64) -> Result<Vec<Difference>, Error> {
    let rows = sqlx::query(
        "SELECT id, postings, postings_projected FROM transactions \
         WHERE log_index <= $1 AND postings IS DISTINCT FROM postings_projected ORDER BY id",
    )
    .bind(i64::try_from(index).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Difference::Transaction {
                id: r.try_get(0)?,
                postings: r.try_get::<Option<i32>, _>(1)?.map(i64::from),
                projected: r.try_get(2)?,
            })
        })
        .collect()
}

/// The largest next offset PostgreSQL holds per partition of `ledger` (over groups).
async fn projected_offsets(pool: &PgPool) -> Result<BTreeMap<u32, u64>, Error> {
    let rows =
        sqlx::query("SELECT partition, max(next_offset) FROM projector_offsets WHERE topic = $1 GROUP BY partition")
            .bind(TOPIC)
            .fetch_all(pool)
            .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let p: i32 = r.try_get(0)?;
        let o: i64 = r.try_get(1)?;
        if let (Ok(p), Ok(o)) = (u32::try_from(p), u64::try_from(o)) {
            out.insert(p, o);
        }
    }
    Ok(out)
}

/// One account as read from the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSnapshot {
    /// Account id.
    pub id: String,
    /// Currency.
    pub currency: String,
    /// Overdraft allowed.
    pub allow_overdraft: bool,
    /// Credits may not exceed debits (rule 10).
    pub credits_must_not_exceed_debits: bool,
    /// Closed by a closing transfer (rule 11).
    pub closed: bool,
    /// The four counters (`balance`/`available` are derived from them).
    pub balances: Balances,
    /// Per-account change counter.
    pub version: u64,
}

impl From<&AccountView> for AccountSnapshot {
    fn from(a: &AccountView) -> Self {
        AccountSnapshot {
            id: a.id.to_string(),
            currency: a.currency.to_string(),
            allow_overdraft: a.allow_overdraft,
            credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
            closed: a.closed,
            balances: a.balances,
            version: a.version,
        }
    }
}

/// A difference between PostgreSQL and the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// The ledger has the account, PostgreSQL does not.
    MissingInDb {
        /// Account id.
        id: String,
    },
    /// PostgreSQL has an account the ledger does not.
    NotInLedger {
        /// Account id.
        id: String,
    },
    /// A column differs.
    Field {
        /// Account id.
        id: String,
        /// Column name.
        field: &'static str,
        /// Value in PostgreSQL (`NULL` if null).
        db: String,
        /// Value in the ledger.
        ledger: String,
    },
    /// A transaction whose postings PostgreSQL does not all hold.
    Transaction {
        /// Transaction id.
        id: String,
        /// Its posting count (from posting 0; `None` when posting 0 is missing).
        postings: Option<i64>,
        /// Postings in PostgreSQL.
        projected: i64,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::MissingInDb { id } => write!(f, "account {id:?}: in the ledger, missing in PostgreSQL"),
            Difference::NotInLedger { id } => write!(f, "account {id:?}: in PostgreSQL, not in the ledger"),
            Difference::Field { id, field, db, ledger } => {
                write!(f, "account {id:?}: {field} is {db} in PostgreSQL, {ledger} in the ledger")
            }
            Difference::Transaction { id, postings, projected } => match postings {
                Some(n) => write!(f, "transaction {id:?}: {projected} of its {n} postings in PostgreSQL"),
                None => write!(f, "transaction {id:?}: {projected} postings in PostgreSQL, posting 0 missing"),
            },
        }
    }
}

/// Compares every account row with `ledger` (any order); returns the
/// differences sorted by account id (empty = consistent).
pub async fn verify(pool: &PgPool, ledger: &[AccountSnapshot]) -> Result<Vec<Difference>, Error> {
    let rows = sqlx::query(
        "SELECT id, currency, allow_overdraft, debits_posted::text, credits_posted::text, debits_pending::text, \
             credits_pending::text, balance::text, available::text, version, credits_must_not_exceed_debits, \
             closed FROM accounts ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let mut want: BTreeMap<&str, &AccountSnapshot> = ledger.iter().map(|a| (a.id.as_str(), a)).collect();
    let mut out = Vec::new();
    for r in rows {
        let id: String = r.try_get(0)?;
        let Some(l) = want.remove(id.as_str()) else {
            out.push(Difference::NotInLedger { id });
            continue;
        };
        let text = |i: usize| -> Result<String, Error> {
            Ok(r.try_get::<Option<String>, _>(i)?.unwrap_or_else(|| "NULL".to_owned()))
        };
        let b = &l.balances;
        let expected: [(&'static str, usize, String); 11] = [
            ("currency", 1, l.currency.clone()),
            ("allow_overdraft", 2, l.allow_overdraft.to_string()),
            ("debits_posted", 3, b.debits_posted.to_string()),
            ("credits_posted", 4, b.credits_posted.to_string()),
            ("debits_pending", 5, b.debits_pending.to_string()),
            ("credits_pending", 6, b.credits_pending.to_string()),
            ("balance", 7, b.balance().to_string()),
            ("available", 8, b.available().to_string()),
            ("version", 9, l.version.to_string()),
            ("credits_must_not_exceed_debits", 10, l.credits_must_not_exceed_debits.to_string()),
            ("closed", 11, l.closed.to_string()),
        ];
        for (field, i, ledger) in expected {
            let db = match i {
                2 | 10 | 11 => r.try_get::<Option<bool>, _>(i)?.map_or_else(|| "NULL".to_owned(), |v| v.to_string()),
                9 => r.try_get::<i64, _>(i)?.to_string(),
                _ => text(i)?,
            };
            if db != ledger {
                out.push(Difference::Field { id: id.clone(), field, db, ledger });
            }
        }
    }
    out.extend(want.into_keys().map(|id| Difference::MissingInDb { id: id.to_owned() }));
    out.sort_by(|a, b| diff_id(a).cmp(diff_id(b)));
    Ok(out)
}

fn diff_id(d: &Difference) -> &str {
    match d {
        Difference::MissingInDb { id }
        | Difference::NotInLedger { id }
        | Difference::Field { id, .. }
        | Difference::Transaction { id, .. } => id,
    }
}
