//! The end-of-run check: read back every account the run used (linearizable reads) and verify
//! that money was conserved — per currency the balances sum to zero, nothing is left pending —
//! and, when every write's outcome is known, that each balance is exactly what the acknowledged
//! transfers say (nothing lost, nothing applied twice).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::http::Conn;
use crate::limits::{CHECK_ATTEMPTS_MAX, SETUP_RETRY_PAUSE};

/// The result of the check.
#[derive(Debug, Serialize)]
pub struct Conservation {
    /// Accounts read back.
    pub accounts_checked: usize,
    /// Sum of balances per currency (0 when conserved).
    pub sum_by_currency: BTreeMap<String, i128>,
    /// Whether each balance was compared with the acknowledged transfers (only when no write
    /// had an unknown outcome).
    pub exact: bool,
    /// Every violation found, in words; empty when the check passed.
    pub violations: Vec<String>,
    /// Whether the check passed.
    pub ok: bool,
}

#[derive(Deserialize)]
struct AccountBody {
    currency: String,
    balance: i128,
    debits_pending: u128,
    credits_pending: u128,
}

async fn read_account(conn: &mut Conn, id: &str) -> Result<AccountBody, String> {
    let path = format!("/v1/accounts/{id}?consistency=strong");
    let mut last = String::new();
    for _ in 0..CHECK_ATTEMPTS_MAX {
        match conn.get(&path).await {
            Ok(r) if r.status == 200 => {
                return serde_json::from_slice(&r.body).map_err(|e| format!("account {id}: unreadable answer: {e}"));
            }
            Ok(r) if r.status < 500 => return Err(format!("account {id}: {} {}", r.status, r.error_code())),
            Ok(r) => last = format!("{} {}", r.status, r.error_code()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(SETUP_RETRY_PAUSE).await;
    }
    Err(format!("account {id}: no answer after {CHECK_ATTEMPTS_MAX} attempts ({last})"))
}

/// Reads `accounts` back and compares them with `expected` (money moved per account, as
/// acknowledged); `exact` compares each balance, otherwise only the sums.
pub async fn check(conn: &mut Conn, accounts: &[String], expected: &[i128], exact: bool) -> Conservation {
    let mut sum_by_currency = BTreeMap::new();
    let mut violations = Vec::new();
    let mut checked = 0;
    for (i, id) in accounts.iter().enumerate() {
        let a = match read_account(conn, id).await {
            Ok(a) => a,
            Err(e) => {
                violations.push(e);
                continue;
            }
        };
        checked += 1;
        *sum_by_currency.entry(a.currency.clone()).or_insert(0i128) += a.balance;
        if a.debits_pending != 0 || a.credits_pending != 0 {
            violations.push(format!(
                "account {id}: pending debits {} / credits {} (the run makes no pending transfers)",
                a.debits_pending, a.credits_pending
            ));
        }
        if exact && a.balance != expected[i] {
            violations.push(format!(
                "account {id}: balance {} but the acknowledged transfers give {}",
                a.balance, expected[i]
            ));
        }
    }
    for (cur, sum) in &sum_by_currency {
        if *sum != 0 {
            violations.push(format!("currency {cur}: balances sum to {sum}, not 0"));
        }
    }
    let ok = violations.is_empty();
    Conservation { accounts_checked: checked, sum_by_currency, exact, violations, ok }
}
