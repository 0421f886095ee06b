//! `verify`: compares every account in PostgreSQL with the ledger's.
//!
//! The ledger's accounts are an input ([`AccountSnapshot`]s; the HTTP read
//! side that lists them comes later). Run it when the projector has caught
//! up: an account that changed since is reported as a difference (its
//! `version` differs too, which tells lag from corruption).

use std::collections::BTreeMap;
use std::fmt;

use ledger_core::{AccountView, Balances};
use sqlx::{PgPool, Row};

use crate::db::Error;

/// One account as read from the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSnapshot {
    /// Account id.
    pub id: String,
    /// Currency.
    pub currency: String,
    /// Overdraft allowed.
    pub allow_overdraft: bool,
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
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::MissingInDb { id } => write!(f, "account {id:?}: in the ledger, missing in PostgreSQL"),
            Difference::NotInLedger { id } => write!(f, "account {id:?}: in PostgreSQL, not in the ledger"),
            Difference::Field { id, field, db, ledger } => {
                write!(f, "account {id:?}: {field} is {db} in PostgreSQL, {ledger} in the ledger")
            }
        }
    }
}

/// Compares every account row with `ledger` (any order); returns the
/// differences sorted by account id (empty = consistent).
pub async fn verify(pool: &PgPool, ledger: &[AccountSnapshot]) -> Result<Vec<Difference>, Error> {
    let rows = sqlx::query(
        "SELECT id, currency, allow_overdraft, debits_posted::text, credits_posted::text, debits_pending::text, \
             credits_pending::text, balance::text, available::text, version FROM accounts ORDER BY id",
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
        let expected: [(&'static str, usize, String); 9] = [
            ("currency", 1, l.currency.clone()),
            ("allow_overdraft", 2, l.allow_overdraft.to_string()),
            ("debits_posted", 3, b.debits_posted.to_string()),
            ("credits_posted", 4, b.credits_posted.to_string()),
            ("debits_pending", 5, b.debits_pending.to_string()),
            ("credits_pending", 6, b.credits_pending.to_string()),
            ("balance", 7, b.balance().to_string()),
            ("available", 8, b.available().to_string()),
            ("version", 9, l.version.to_string()),
        ];
        for (field, i, ledger) in expected {
            let db = match i {
                2 => r.try_get::<Option<bool>, _>(i)?.map_or_else(|| "NULL".to_owned(), |v| v.to_string()),
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
        Difference::MissingInDb { id } | Difference::NotInLedger { id } | Difference::Field { id, .. } => id,
    }
}
