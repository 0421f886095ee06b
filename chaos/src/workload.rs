//! The clients: writers posting transfers among the accounts with ids they choose, each sent again
//! with the same id until it gets a definite answer, and readers making strong reads of balances.
//! Every operation and every attempt goes into the [`Recorder`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ledger_client::{Client, Consistency, Error, NewAccount, NewTransfer};

use crate::check::transfers::Change;
use crate::history::{Op, Outcome, Recorder, What};

/// Deadline of one attempt; then it is sent again with the same id.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one strong read (short: a reader waiting out a fault measures nothing).
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after an attempt without a definite answer.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Pause between a client's operations.
pub const THINK: Duration = Duration::from_millis(5);
/// Largest transfer amount (accounts are funded with [`FUNDING`], so some transfers are refused
/// for insufficient funds: those must have no effect).
pub const AMOUNT_MAX: u64 = 120;
/// What the bank pays each protected account before the run.
pub const FUNDING: u64 = 500;
/// The account that funds the others (may go below zero).
pub const BANK: &str = "bank";
/// The currency.
const CURRENCY: &str = "USD";

/// The protected accounts' names.
pub fn accounts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("a{i}")).collect()
}

/// When the clients stop.
#[derive(Clone, Debug)]
pub struct Stop {
    /// Set at the end of the fault schedule: no new operation starts.
    pub no_new: Arc<AtomicBool>,
    /// After this an operation still without a definite answer is recorded as unknown.
    pub give_up: Instant,
}

impl Stop {
    fn stopping(&self) -> bool {
        self.no_new.load(Ordering::Relaxed)
    }
}

/// A definite answer (the transfer is applied, or refused for certain), or none yet.
fn definite(r: &Result<ledger_client::Written<ledger_client::Transfer>, Error>) -> Option<Result<(), String>> {
    match r {
        Ok(_) => Some(Ok(())),
        Err(e) => refused(e).map(|code| Err(code.to_owned())),
    }
}

/// The problem code when `e` refuses for certain (a 4xx answer but 408 and 429, which say "not
/// now"); none when the outcome is not known (no answer, 408, 429, 5xx).
pub fn refused(e: &Error) -> Option<&str> {
    match e {
        Error::Problem(p) if (400..500).contains(&p.status) && p.status != 408 && p.status != 429 => Some(&p.code),
        _ => None,
    }
}

/// Sends `t` until it gets a definite answer or `give_up` passes; records the operation.
async fn transfer(client: &Client, rec: &Recorder, who: usize, t: NewTransfer, give_up: Instant) -> Outcome {
    let start_ms = rec.now_ms();
    let mut attempts = 0u32;
    let (outcome, end_ms, code) = loop {
        attempts += 1;
        let sent = rec.now_ms();
        let r = tokio::time::timeout(ATTEMPT_TIMEOUT, client.create_transfer(&t)).await;
        let answer = r.ok().and_then(|r| definite(&r));
        let now = rec.now_ms();
        rec.attempt(sent, now, answer.is_some(), true);
        match answer {
            Some(Ok(())) => break (Outcome::Ok, Some(now), None),
            Some(Err(code)) => break (Outcome::Failed, Some(now), Some(code)),
            None if Instant::now() >= give_up => break (Outcome::Unknown, None, None),
            None => tokio::time::sleep(RETRY_PAUSE).await,
        }
    };
    let what = What::Transfer { id: t.id, from: t.debit_account_id, to: t.credit_account_id, amount: t.amount, code };
    rec.op(Op { client: who, start_ms, end_ms, outcome, attempts, what });
    outcome
}

/// Creates the bank and `n` protected accounts and funds each with [`FUNDING`]; every step is
/// retried until it succeeds or `within` passes (the funding transfers are recorded as client 0's).
pub async fn setup(client: &Client, rec: &Recorder, n: usize, within: Duration) -> anyhow::Result<()> {
    let give_up = Instant::now() + within;
    let mut all = vec![(BANK.to_owned(), true)];
    all.extend(accounts(n).into_iter().map(|a| (a, false)));
    for (id, overdraft) in &all {
        let account = NewAccount {
            id: id.clone(),
            currency: CURRENCY.to_owned(),
            allow_overdraft: *overdraft,
            ..NewAccount::default()
        };
        loop {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, client.create_account(&account)).await {
                Ok(Ok(_)) => break,
                Ok(Err(e)) if e.code() == Some("account_exists") => break,
                Ok(Err(e)) if !e.is_retryable() => bail!("creating account {id}: {e}"),
                _ if Instant::now() >= give_up => bail!("account {id} not created within {within:?}"),
                _ => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }
    for a in accounts(n) {
        let t = new_transfer(format!("fund-{a}"), BANK, &a, FUNDING);
        let outcome = transfer(client, rec, 0, t, give_up).await;
        if outcome != Outcome::Ok {
            bail!("funding {a} ended {outcome:?}");
        }
    }
    Ok(())
}

fn new_transfer(id: String, from: &str, to: &str, amount: u64) -> NewTransfer {
    NewTransfer {
        id,
        debit_account_id: from.to_owned(),
        credit_account_id: to.to_owned(),
        amount,
        currency: CURRENCY.to_owned(),
        ..NewTransfer::default()
    }
}

/// Writer `who` (from 1): random transfers among `n` accounts until told to stop.
pub async fn writer(client: Client, rec: Recorder, who: usize, n: usize, seed: u64, stop: Stop) {
    let mut rng = fastrand::Rng::with_seed(seed ^ (who as u64).wrapping_mul(0x9e37_79b9));
    let names = accounts(n);
    let mut seq = 0u64;
    while !stop.stopping() && !rec.full() {
        let from = rng.usize(0..n);
        let to = (from + rng.usize(1..n)) % n;
        let t = new_transfer(format!("t-{who}-{seq}"), &names[from], &names[to], rng.u64(1..=AMOUNT_MAX));
        seq += 1;
        transfer(&client, &rec, who, t, stop.give_up).await;
        tokio::time::sleep(THINK).await;
    }
}

/// Reader `who`: reads of random accounts until told to stop, by turns a strong read and a
/// follower read with `min_index` at the highest index this reader has seen. A read without an
/// answer is recorded as failed (it says nothing about the balance).
pub async fn reader(client: Client, rec: Recorder, who: usize, n: usize, seed: u64, stop: Stop) {
    let mut rng = fastrand::Rng::with_seed(seed ^ (who as u64).wrapping_mul(0x85eb_ca6b));
    let names = accounts(n);
    let mut seen = 0u64;
    let mut strong = true;
    while !stop.stopping() && !rec.full() {
        let account = names[rng.usize(0..n)].clone();
        let (consistency, min_index) =
            if strong { (Consistency::Strong, None) } else { (Consistency::MinIndex(seen), Some(seen)) };
        strong = !strong;
        let start_ms = rec.now_ms();
        let r = tokio::time::timeout(READ_TIMEOUT, client.account_indexed(&account, consistency)).await;
        let end = rec.now_ms();
        let (balance, index) = match r {
            Ok(Ok((a, index))) => (i64::try_from(a.balance).ok(), Some(index)),
            _ => (None, None),
        };
        seen = seen.max(index.unwrap_or_default());
        rec.attempt(start_ms, end, balance.is_some(), false);
        let outcome = if balance.is_some() { Outcome::Ok } else { Outcome::Failed };
        let what = What::Read { account, min_index, balance, index };
        rec.op(Op { client: who, start_ms, end_ms: Some(end), outcome, attempts: 1, what });
        tokio::time::sleep(if outcome == Outcome::Ok { THINK } else { RETRY_PAUSE }).await;
    }
}

/// Waits until the gateway serves strong reads of `account`, at most `within`.
pub async fn wait_serving(client: &Client, account: &str, within: Duration) -> anyhow::Result<()> {
    let give_up = Instant::now() + within;
    loop {
        match tokio::time::timeout(READ_TIMEOUT, client.account(account, Consistency::Strong)).await {
            Ok(Ok(_)) => return Ok(()),
            r if Instant::now() >= give_up => bail!("the cluster did not serve a strong read within {within:?}: {r:?}"),
            _ => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// An account's balance and history (strong reads, page by page), retried until `give_up`.
pub async fn read_final(
    client: &Client,
    account: &str,
    pages_max: usize,
    give_up: Instant,
) -> anyhow::Result<(i64, Vec<Change>)> {
    async fn retry<T, F: std::future::Future<Output = Result<T, Error>>>(
        give_up: Instant,
        mut f: impl FnMut() -> F,
    ) -> anyhow::Result<T> {
        loop {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, f()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !e.is_retryable() => return Err(e.into()),
                r if Instant::now() >= give_up => {
                    let why = match r {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    bail!("no answer before the deadline: {why}")
                }
                _ => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }
    let a = retry(give_up, || client.account(account, Consistency::Strong)).await.context("final balance")?;
    let mut history = Vec::new();
    let mut after = None;
    for _ in 0..pages_max {
        let page =
            retry(give_up, || client.history(account, after, None, Consistency::Strong)).await.context("history")?;
        for e in &page.entries {
            let balance = i64::try_from(e.balance).context("balance out of range")?;
            history.push(Change { id: e.transfer_id.clone(), index: e.index, balance, timestamp_ms: e.timestamp_ms });
        }
        match page.next {
            Some(next) if !page.entries.is_empty() => after = Some(next),
            _ => {
                let balance = i64::try_from(a.balance).context("balance out of range")?;
                return Ok((balance, history));
            }
        }
    }
    bail!("{account}: history longer than {pages_max} pages")
}
