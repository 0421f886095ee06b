//! Apply rate of transfers in batches on one core.
//!
//! 10,000 accounts (10 funding accounts with overdraft, the rest funded
//! customers), `CreateTransfers` of 8,000 posted transfers between
//! pseudo-random customer pairs (fixed LCG, so every run is the same).
//! Only `Ledger::apply` and dropping its result are timed; building the
//! commands is not (they are built before each timed run, as a lognode
//! would have them decoded before applying). The ledger keeps growing (history, id maps) and is reset
//! to the funded base every 125 batches (1M transfers).
//!
//! `transactions_4_postings` applies the same 8,000 transfers per iteration as 2,000 gateway
//! transactions (issue 17): atomic `CreateTransfers` of 4 postings each, a chain A -> B -> C -> D
//! -> E of one amount (each posting spends what the one before brought), with the metadata the
//! gateway gives postings, one command (log entry position) per transaction.
//!
//! Run: `cargo bench -p ledger-core --bench apply`

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger_core::{ApplyContext, Command, Ledger, NewAccount, NewTransfer, Outcome, ResultCode};

const ACCOUNTS: u64 = 10_000;
const FUNDING: u64 = 10;
const BATCH: usize = 8_000;
const RESET_EVERY: u64 = 125;
const POSTINGS: usize = 4;

/// How the 8,000 transfers of one iteration are grouped into commands.
#[derive(Clone, Copy)]
enum Mode {
    /// One batch, atomic or not.
    Batch(bool),
    /// Transactions of `POSTINGS` postings, one atomic batch each.
    Transactions,
}

struct Bench {
    base: Ledger,
    ledger: Ledger,
    index: u64,
    batches: u64,
    rng: u64,
}

fn account_id(i: u64) -> String {
    format!("acct-{i:05}")
}

impl Bench {
    fn new() -> Bench {
        let mut l = Ledger::default();
        let mut index = 0;
        let mut next = || {
            index += 1;
            ApplyContext { index, timestamp_ms: 1_000_000 + index }
        };
        for i in 0..ACCOUNTS {
            let cmd = Command::CreateAccount(NewAccount {
                credits_must_not_exceed_debits: false,
                id: account_id(i),
                currency: "USD".into(),
                allow_overdraft: i < FUNDING,
                metadata: String::new(),
            });
            l.apply(&cmd, next());
        }
        let funding: Vec<NewTransfer> = (FUNDING..ACCOUNTS)
            .map(|i| NewTransfer {
                flags: Default::default(),
                id: format!("fund-{i}"),
                debit_account_id: account_id(i % FUNDING),
                credit_account_id: account_id(i),
                amount: 1_000_000_000_000,
                currency: "USD".into(),
                metadata: String::new(),
                pending: false,
                timeout_ms: None,
            })
            .collect();
        for chunk in funding.chunks(BATCH) {
            l.apply(&Command::CreateTransfers { transfers: chunk.to_vec(), atomic: false }, next());
        }
        Bench { ledger: l.clone(), base: l, index, batches: 0, rng: 0x9E37_79B9_7F4A_7C15 }
    }

    fn rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.rng >> 33
    }

    fn customer(&mut self) -> u64 {
        FUNDING + self.rand() % (ACCOUNTS - FUNDING)
    }

    /// The commands of one iteration (8,000 transfers).
    fn commands(&mut self, mode: Mode) -> Vec<Command> {
        match mode {
            Mode::Batch(atomic) => vec![self.batch(atomic)],
            Mode::Transactions => (0..BATCH / POSTINGS).map(|k| self.transaction(k)).collect(),
        }
    }

    /// A transaction of `POSTINGS` postings along a chain of distinct customers.
    fn transaction(&mut self, k: usize) -> Command {
        let tx = format!("x{}-{k}", self.batches);
        let mut chain = Vec::with_capacity(POSTINGS + 1);
        while chain.len() < POSTINGS + 1 {
            let a = self.customer();
            if !chain.contains(&a) {
                chain.push(a);
            }
        }
        let amount = 1 + self.rand() % 100;
        let transfers = (0..POSTINGS)
            .map(|n| NewTransfer {
                flags: Default::default(),
                id: format!("{tx}:{n}"),
                debit_account_id: account_id(chain[n]),
                credit_account_id: account_id(chain[n + 1]),
                amount,
                currency: "USD".into(),
                metadata: if n == 0 {
                    format!(r#"{{"metadata":{{}},"posting":0,"postings":{POSTINGS},"transaction":"{tx}"}}"#)
                } else {
                    format!(r#"{{"posting":{n},"transaction":"{tx}"}}"#)
                },
                pending: false,
                timeout_ms: None,
            })
            .collect();
        Command::CreateTransfers { transfers, atomic: true }
    }

    fn batch(&mut self, atomic: bool) -> Command {
        let b = self.batches;
        let transfers = (0..BATCH)
            .map(|k| {
                let from = self.customer();
                let mut to = self.customer();
                if to == from {
                    to = if to + 1 < ACCOUNTS { to + 1 } else { FUNDING };
                }
                NewTransfer {
                    flags: Default::default(),
                    id: format!("b{b}-{k}"),
                    debit_account_id: account_id(from),
                    credit_account_id: account_id(to),
                    amount: 1 + self.rand() % 100,
                    currency: "USD".into(),
                    metadata: String::new(),
                    pending: false,
                    timeout_ms: None,
                }
            })
            .collect();
        Command::CreateTransfers { transfers, atomic }
    }

    /// Builds `iters` batches (untimed), then times applying them one after
    /// the other, dropping each outcome and event list (timed: the caller
    /// pays for it too).
    fn run(&mut self, iters: u64, mode: Mode) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            if self.batches > 0 && self.batches.is_multiple_of(RESET_EVERY) {
                self.ledger = self.base.clone();
            }
            // Up to the next reset point.
            let until_reset = RESET_EVERY - self.batches % RESET_EVERY;
            let n = left.min(until_reset);
            let cmds: Vec<Command> = (0..n)
                .flat_map(|_| {
                    let c = self.commands(mode);
                    self.batches += 1;
                    c
                })
                .collect();
            let first = self.index + 1;
            self.index += cmds.len() as u64;
            let start = Instant::now();
            for (k, cmd) in cmds.iter().enumerate() {
                let index = first + k as u64;
                let ctx = ApplyContext { index, timestamp_ms: 2_000_000 + index };
                let (outcome, events) = self.ledger.apply(cmd, ctx);
                if let Outcome::Batch(b) = &outcome {
                    assert_eq!(b.code, ResultCode::Created);
                }
                black_box(&events);
                drop(outcome);
                drop(events);
            }
            total += start.elapsed();
            left -= n;
        }
        total
    }
}

fn apply_batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    let mut bench = Bench::new();
    g.bench_function("create_transfers_8000_non_atomic", |b| {
        b.iter_custom(|iters| bench.run(iters, Mode::Batch(false)));
    });
    let mut bench = Bench::new();
    g.bench_function("create_transfers_8000_atomic", |b| {
        b.iter_custom(|iters| bench.run(iters, Mode::Batch(true)));
    });
    let mut bench = Bench::new();
    g.bench_function("transactions_4_postings", |b| {
        b.iter_custom(|iters| bench.run(iters, Mode::Transactions));
    });
    g.finish();
}

criterion_group!(benches, apply_batches);
criterion_main!(benches);
