//! Memory per account and per transfer (documented in LEDGER_RULES.md).
//!
//! Builds 10,000 accounts and 200,000 posted transfers (ids of 12 bytes,
//! empty metadata) and reports two numbers per record: the ledger's own
//! heap estimate (`Ledger::heap_bytes_estimate`) and the growth of the
//! process's resident memory (Linux `/proc/self/statm`; includes allocator
//! overhead and the slack of vectors that doubled). Asserts upper bounds
//! on the estimate so a regression in record size is caught.

use ledger_core::{ApplyContext, Command, Ledger, NewAccount, NewTransfer};

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn memory_per_account_and_transfer() {
    const ACCOUNTS: u64 = 10_000;
    const TRANSFERS: u64 = 200_000;
    let (account, transfer, history) = Ledger::record_sizes();
    eprintln!("struct sizes: Account {account} B, Transfer {transfer} B, history record {history} B");

    let mut l = Ledger::default();
    let mut index = 0;
    let mut ctx = || {
        index += 1;
        ApplyContext { index, timestamp_ms: index }
    };
    let rss0 = rss_bytes();
    let heap0 = l.heap_bytes_estimate();
    for i in 0..ACCOUNTS {
        let cmd = Command::CreateAccount(NewAccount {
            credits_must_not_exceed_debits: false,
            id: format!("acct-{i:07}"),
            currency: "USD".into(),
            allow_overdraft: true,
            metadata: String::new(),
        });
        l.apply(&cmd, ctx());
    }
    let rss1 = rss_bytes();
    let heap1 = l.heap_bytes_estimate();
    let per_account = (heap1 - heap0) as f64 / ACCOUNTS as f64;

    let mut k = 0u64;
    while k < TRANSFERS {
        let transfers = (k..(k + 8000).min(TRANSFERS))
            .map(|t| NewTransfer {
                flags: Default::default(),
                id: format!("tr-{t:09}"),
                debit_account_id: format!("acct-{:07}", t % ACCOUNTS),
                credit_account_id: format!("acct-{:07}", (t * 7 + 1) % ACCOUNTS),
                amount: 1 + t % 1000,
                currency: "USD".into(),
                metadata: String::new(),
                pending: false,
                timeout_ms: None,
            })
            .collect::<Vec<_>>();
        k += transfers.len() as u64;
        l.apply(&Command::CreateTransfers { transfers, atomic: false }, ctx());
    }
    assert_eq!(l.transfer_count() as u64, TRANSFERS);
    let rss2 = rss_bytes();
    let heap2 = l.heap_bytes_estimate();
    let per_transfer = (heap2 - heap1) as f64 / TRANSFERS as f64;
    eprintln!("heap estimate: {per_account:.0} B/account, {per_transfer:.0} B/transfer (incl. 2 history records)");
    if let (Some(r0), Some(r1), Some(r2)) = (rss0, rss1, rss2) {
        eprintln!(
            "resident growth: {:.0} B/account, {:.0} B/transfer",
            r1.saturating_sub(r0) as f64 / ACCOUNTS as f64,
            r2.saturating_sub(r1) as f64 / TRANSFERS as f64
        );
    }
    assert!(per_account < 400.0, "{per_account} B/account");
    assert!(per_transfer < 700.0, "{per_transfer} B/transfer");
    l.check_invariants().expect("invariants");
}
