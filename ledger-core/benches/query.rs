//! The cost of one page of the queries (issue 17) on a ledger of 10,000 accounts (half of them
//! `EUR`, 1 in 100 with a `vip-` prefix) and 1,000,000 transfers between pseudo-random pairs
//! (fixed LCG), held in `MemStore`. Building the ledger is not timed; each iteration asks for one
//! page of 100 as of the last index. lognode's disk store adds its reads on top (a page of
//! transfers reads about 100 transfer records and 200 accounts, most from its caches).
//!
//! Run: `cargo bench -p ledger-core --bench query`

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger_core::{
    AccountFilter, ApplyContext, Command, Ledger, NewAccount, NewTransfer, TransferFilter, TransferStatus,
};

const ACCOUNTS: u64 = 10_000;
const TRANSFERS: u64 = 1_000_000;
const BATCH: u64 = 8_000;
const PAGE: usize = 100;

fn account_id(i: u64) -> String {
    if i.is_multiple_of(100) { format!("vip-{i:05}") } else { format!("acct-{i:05}") }
}

fn currency(i: u64) -> &'static str {
    if i.is_multiple_of(2) { "USD" } else { "EUR" }
}

fn build() -> Ledger {
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
            currency: currency(i).into(),
            allow_overdraft: true,
            metadata: String::new(),
        });
        l.apply(&cmd, next());
    }
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = || {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        rng >> 33
    };
    for b in 0..TRANSFERS / BATCH {
        let transfers = (0..BATCH)
            .map(|k| {
                // Same currency: both even or both odd.
                let from = rand() % ACCOUNTS;
                let to = (from + 2 * (1 + rand() % (ACCOUNTS / 2 - 1))) % ACCOUNTS;
                NewTransfer {
                    flags: Default::default(),
                    id: format!("b{b}-{k}"),
                    debit_account_id: account_id(from),
                    credit_account_id: account_id(to),
                    amount: 1 + rand() % 100,
                    currency: currency(from).into(),
                    metadata: String::new(),
                    pending: false,
                    timeout_ms: None,
                }
            })
            .collect();
        l.apply(&Command::CreateTransfers { transfers, atomic: false }, next());
    }
    assert_eq!(l.transfer_count() as u64, TRANSFERS, "every transfer applied");
    l
}

fn queries(c: &mut Criterion) {
    let l = build();
    let at = l.last_index();
    let mut g = c.benchmark_group("query");
    g.throughput(Throughput::Elements(PAGE as u64));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(4));
    let all = AccountFilter::default();
    g.bench_function("accounts_page_100", |b| {
        b.iter(|| black_box(l.scan_accounts(Some(5_000), at, PAGE, &all)));
    });
    let eur = AccountFilter { currency: Some("EUR"), ..AccountFilter::default() };
    g.bench_function("accounts_page_100_currency", |b| {
        b.iter(|| black_box(l.scan_accounts(None, at, PAGE, &eur)));
    });
    let vip = AccountFilter { id_prefix: Some("vip-"), ..AccountFilter::default() };
    g.bench_function("accounts_prefix_1_in_100_scan_4096", |b| {
        b.iter(|| black_box(l.scan_accounts(None, at, PAGE, &vip)));
    });
    let transfers = TransferFilter::default();
    g.bench_function("transfers_page_100", |b| {
        b.iter(|| black_box(l.scan_transfers(Some(500_000), at, PAGE, &transfers)));
    });
    let one = TransferFilter { account: Some("acct-00042"), ..TransferFilter::default() };
    g.bench_function("transfers_of_one_account_page_100", |b| {
        b.iter(|| black_box(l.scan_transfers(None, at, PAGE, &one)));
    });
    let range = TransferFilter { created_index: (at - 10, at), ..TransferFilter::default() };
    g.bench_function("transfers_index_range_page_100", |b| {
        b.iter(|| black_box(l.scan_transfers(None, at, PAGE, &range)));
    });
    let pending = TransferFilter { status: Some(TransferStatus::Pending), ..TransferFilter::default() };
    g.bench_function("transfers_status_none_match_scan_4096", |b| {
        b.iter(|| black_box(l.scan_transfers(None, at, PAGE, &pending)));
    });
    g.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
