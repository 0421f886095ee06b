//! Throughput of `apply_batch` against a real PostgreSQL: events/s for
//! `EVENTS` transfer events (default 200,000) applied in batches of `BATCH`
//! (default 2,000) over 8 partitions.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p projector --bench apply_batch
//! ```
//! It creates (and drops afterwards) the database `projector_bench`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use ledger_core::{ApplyContext, Command, Ledger, LedgerEvent, NewAccount, NewTransfer};
use ledger_events::{EventJson, TOPIC};
use projector::{Fence, apply_batch};
use sqlx::postgres::PgPoolOptions;

const PARTITIONS: usize = 8;
const ACCOUNTS: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn events(n: usize) -> Vec<Vec<(u64, EventJson)>> {
    let mut ledger = Ledger::default();
    let mut index = 0;
    let mut out = vec![Vec::new(); PARTITIONS];
    let publish = |es: Vec<LedgerEvent>, out: &mut Vec<Vec<(u64, EventJson)>>| {
        for e in es {
            let key = ledger_events::partition_key(&e);
            let p = key.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) as usize % PARTITIONS;
            let o = out[p].len() as u64;
            out[p].push((o, ledger_events::decode(&ledger_events::encode(&e)).unwrap()));
        }
    };
    let mut apply = |cmd: Command, out: &mut Vec<Vec<(u64, EventJson)>>| {
        index += 1;
        let (_, es) = ledger.apply(&cmd, ApplyContext { index, timestamp_ms: 1_700_000_000_000 + index });
        publish(es, out);
    };
    for i in 0..ACCOUNTS {
        let acct = NewAccount {
            credits_must_not_exceed_debits: false,
            id: format!("acct-{i}"),
            currency: "USD".into(),
            allow_overdraft: true,
            metadata: "{}".into(),
        };
        apply(Command::CreateAccount(acct), &mut out);
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    // Batches of transfers, like a busy gateway produces.
    let mut made = 0;
    while made < n {
        let k = (n - made).min(1000);
        let transfers = (0..k)
            .map(|j| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let d = (rng % ACCOUNTS as u64) as usize;
                let c = (d + 1 + (rng >> 20) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                NewTransfer {
                    flags: Default::default(),
                    id: format!("t{}", made + j),
                    debit_account_id: format!("acct-{d}"),
                    credit_account_id: format!("acct-{c}"),
                    amount: 1 + rng % 10_000,
                    currency: "USD".into(),
                    metadata: r#"{"invoice":"INV-1"}"#.into(),
                    pending: false,
                    timeout_ms: None,
                }
            })
            .collect();
        apply(Command::CreateTransfers { transfers, atomic: false }, &mut out);
        made += k;
    }
    out
}

fn main() {
    let n = env_usize("EVENTS", 200_000);
    let batch = env_usize("BATCH", 2_000);
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must be set, e.g. postgres://postgres@127.0.0.1:5432/postgres");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let admin = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        sqlx::query("DROP DATABASE IF EXISTS projector_bench").execute(&admin).await.unwrap();
        sqlx::query("CREATE DATABASE projector_bench").execute(&admin).await.unwrap();
        let bench_url = match url.rfind('/') {
            Some(i) if !url[..i].ends_with('/') => format!("{}/projector_bench", &url[..i]),
            _ => format!("{}/projector_bench", url.trim_end_matches('/')),
        };
        let pool = PgPoolOptions::new().max_connections(4).connect(&bench_url).await.unwrap();
        projector::migrate(&pool).await.unwrap();

        let t0 = Instant::now();
        let parts = events(n);
        let total: usize = parts.iter().map(Vec::len).sum();
        println!("generated {total} events ({n} transfers + {ACCOUNTS} accounts) in {:?}", t0.elapsed());

        let t0 = Instant::now();
        // Partitions in parallel (one task each), batches in order within one.
        let mut tasks = Vec::new();
        for (p, events) in parts.into_iter().enumerate() {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let fence = Fence { group: "bench", topic: TOPIC, partition: p as u32, generation: 1 };
                for chunk in events.chunks(batch) {
                    let next = chunk.last().map(|(o, _)| o + 1).unwrap();
                    apply_batch(&pool, &fence, chunk, next).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let dt = t0.elapsed();
        println!(
            "applied {total} events in batches of {batch} over {PARTITIONS} partitions in {dt:.2?}: {:.0} events/s",
            total as f64 / dt.as_secs_f64()
        );
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers").fetch_one(&pool).await.unwrap();
        assert_eq!(count as usize, n);
        pool.close().await;
        sqlx::query("DROP DATABASE projector_bench").execute(&admin).await.unwrap();
    });
}
