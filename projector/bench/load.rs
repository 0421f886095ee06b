//! `projector-load`: creates a backlog of transfers through the gateway
//! (batches of `--batch` transfers, `--concurrency` requests in flight),
//! optionally at a fixed rate, for the projector benchmark
//! (`projector/bench/run.sh`).
//!
//! ```text
//! cargo run --release -p projector --example projector-load -- \
//!     --gateway http://127.0.0.1:8080 --accounts 1000 --transfers 1000000 [--rate 5000] [--prefix t]
//! ```
//! Accounts `acct-0..n` (all may overdraw) are created first (idempotent:
//! reruns reuse them). Prints one `RESULT` line.
#![allow(clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ledger_client::{Client, NewAccount, NewTransfer};

/// Most requests in flight.
const CONCURRENCY_MAX: usize = 256;
/// Most transfers per batch request (the gateway's batch limit is larger).
const BATCH_MAX: usize = 1_000;
/// Attempts of one batch request (503s and transport errors are retried).
const ATTEMPTS_MAX: u32 = 20;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    gateway: String,
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    #[arg(long, default_value_t = 1_000_000)]
    transfers: usize,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Transfers per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Transfer id prefix (ids are `<prefix><n>`).
    #[arg(long, default_value = "t")]
    prefix: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.batch == 0 || a.batch > BATCH_MAX || a.concurrency == 0 || a.concurrency > CONCURRENCY_MAX || a.accounts < 2 {
        bail!("--batch 1..={BATCH_MAX}, --concurrency 1..={CONCURRENCY_MAX}, --accounts >= 2");
    }
    let client = Client::new(&a.gateway)?;
    for i in 0..a.accounts {
        let acct = NewAccount {
            id: format!("acct-{i}"),
            currency: "USD".into(),
            allow_overdraft: true,
            metadata: None,
            ..NewAccount::default()
        };
        client.create_account(&acct).await.context("create account")?;
    }
    let batches = a.transfers.div_ceil(a.batch);
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (client, next, prefix) = (client.clone(), next.clone(), a.prefix.clone());
        let (n, batch, accounts, rate) = (a.transfers, a.batch, a.accounts, a.rate);
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed) as usize;
                if b >= batches {
                    return Ok::<(), anyhow::Error>(());
                }
                if rate > 0 {
                    // Batch b is due at b * batch / rate seconds.
                    let due = t0 + Duration::from_secs_f64((b * batch) as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let items: Vec<NewTransfer> = (b * batch..((b + 1) * batch).min(n))
                    .map(|j| {
                        // Every account may overdraw, so every pair is valid.
                        let d = (j.wrapping_mul(7919)) % accounts;
                        let c = (d + 1 + j % (accounts - 1)) % accounts;
                        NewTransfer {
                            id: format!("{prefix}{j}"),
                            debit_account_id: format!("acct-{d}"),
                            credit_account_id: format!("acct-{c}"),
                            amount: 1 + (j as u64 % 1000),
                            currency: "USD".into(),
                            ..NewTransfer::default()
                        }
                    })
                    .collect();
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match client.create_transfers(&items, false).await {
                        Ok(_) => break,
                        Err(e) if e.is_retryable() && attempt < ATTEMPTS_MAX => {
                            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "RESULT backlog transfers={} secs={dt:.1} tput={:.0} batch={} conc={}",
        a.transfers,
        a.transfers as f64 / dt,
        a.batch,
        a.concurrency
    );
    Ok(())
}
