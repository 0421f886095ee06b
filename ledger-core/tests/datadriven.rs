//! Data-driven tests: every file under `testdata/` is a script of ledger
//! commands with the expected output of each (raft-rs `datadriven` style).
//! See `testdata/README.md` for the format. A fresh ledger per file; after
//! every command the runner also checks all invariants (rule 3).
//!
//! Set `REWRITE=1` to rewrite the expected outputs from the actual ones
//! (then review the diff with git before committing).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use testkit::datadriven::{self, Args, Case};

use ledger_core::{
    AccountState, ApplyContext, Command, HistoryFrom, Ledger, LedgerEvent, NewAccount, NewTransfer, Outcome,
    TransferFlags, TransferResult,
};

fn new_transfer(a: &Args) -> NewTransfer {
    NewTransfer {
        flags: TransferFlags {
            balancing_debit: a.flag("balancing_debit"),
            balancing_credit: a.flag("balancing_credit"),
            closing_debit: a.flag("closing_debit"),
            closing_credit: a.flag("closing_credit"),
        },
        id: a.str("id"),
        debit_account_id: a.str("from"),
        credit_account_id: a.str("to"),
        amount: a.u64("amount"),
        currency: a.str_or("cur", "USD"),
        metadata: a.str_or("meta", ""),
        pending: a.flag("pending"),
        timeout_ms: a.opt_u64("timeout"),
    }
}

struct Runner {
    ledger: Ledger,
    next_index: u64,
    time_ms: u64,
}

fn fmt_state(s: &AccountState) -> String {
    let b = s.balances;
    format!(
        "{}: dp={} cp={} dq={} cq={} v={}",
        s.id, b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending, s.version
    )
}

fn fmt_result(r: &TransferResult) -> String {
    match r.decision {
        Some(d) => {
            format!("{} status={} idx={} ts={} amount={}", r.code, d.status.as_str(), d.index, d.timestamp_ms, d.amount)
        }
        None => r.code.to_string(),
    }
}

fn fmt_event(e: &LedgerEvent) -> String {
    match e {
        LedgerEvent::AccountCreated(a) => format!(
            "event account_created key={} idx={} ts={} cur={} overdraft={}",
            e.partition_key(),
            a.index,
            a.timestamp_ms,
            a.currency,
            a.allow_overdraft
        ),
        LedgerEvent::Transfer(t) => format!(
            "event transfer_{} key={} idx={} ts={} amount={} event_amount={} status={}\n  {}\n  {}",
            t.kind.as_str(),
            e.partition_key(),
            t.index,
            t.timestamp_ms,
            t.amount,
            t.event_amount,
            t.status.as_str(),
            fmt_state(&t.debit_account),
            fmt_state(&t.credit_account)
        ),
    }
}

impl Runner {
    fn apply(&mut self, cmd: Command, a: &Args) -> String {
        let ts = a.opt_u64("ts").unwrap_or(self.time_ms);
        let ctx = ApplyContext { index: self.next_index, timestamp_ms: ts };
        self.next_index += 1;
        let (outcome, events) = self.ledger.apply(&cmd, ctx);
        let mut out = String::new();
        if a.flag("quiet") {
            // Summary only: counts of result codes and events.
            let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
            let head = match &outcome {
                Outcome::Batch(b) => {
                    for r in &b.results {
                        *codes.entry(r.code.as_str()).or_default() += 1;
                    }
                    format!("batch {}", b.code)
                }
                other => format!("{other:?}"),
            };
            writeln!(out, "{head} results={codes:?} events={}", events.len()).expect("fmt");
            if let Err(v) = self.ledger.check_invariants() {
                writeln!(out, "INVARIANT VIOLATED: {v}").expect("fmt");
            }
            return out;
        }
        match &outcome {
            Outcome::Account(r) => match r.created {
                Some((i, t)) => writeln!(out, "{} idx={i} ts={t}", r.code),
                None => writeln!(out, "{}", r.code),
            },
            Outcome::Transfer(r) => writeln!(out, "{}", fmt_result(r)),
            Outcome::Batch(b) => {
                match b.failed {
                    Some(f) => writeln!(out, "batch {} failed_item={} failed_code={}", b.code, f.item, f.code),
                    None => writeln!(out, "batch {}", b.code),
                }
                .expect("fmt");
                for (i, r) in b.results.iter().enumerate() {
                    writeln!(out, "  [{i}] {}", fmt_result(r)).expect("fmt");
                }
                Ok(())
            }
            Outcome::Expire(e) => writeln!(out, "expired n={} more_due={}", e.expired, e.more_due),
        }
        .expect("fmt");
        for e in &events {
            writeln!(out, "{}", fmt_event(e)).expect("fmt");
        }
        if let Err(v) = self.ledger.check_invariants() {
            writeln!(out, "INVARIANT VIOLATED: {v}").expect("fmt");
        }
        out
    }

    fn run(&mut self, input: &[String]) -> String {
        let words: Vec<&str> = input[0].split_whitespace().collect();
        let a = Args::parse(&words[1..]);
        match words[0] {
            "time" => {
                self.time_ms = a.u64("ts");
                "ok\n".into()
            }
            "account" => self.apply(
                Command::CreateAccount(NewAccount {
                    credits_must_not_exceed_debits: a.flag("credits_limit"),
                    id: a.str("id"),
                    currency: a.str_or("cur", "USD"),
                    allow_overdraft: a.flag("overdraft"),
                    metadata: a.str_or("meta", ""),
                }),
                &a,
            ),
            "transfer" => self.apply(Command::CreateTransfer(new_transfer(&a)), &a),
            "batch" => {
                let transfers = input[1..].iter().map(|l| new_transfer(&Args::parse_line(l))).collect();
                self.apply(Command::CreateTransfers { transfers, atomic: a.flag("atomic") }, &a)
            }
            "big-batch" => {
                // `n` copies of one transfer with ids `<id>-<k>`.
                let n = a.u64("n");
                let transfers = (0..n)
                    .map(|k| {
                        let mut t = new_transfer(&a);
                        t.id = format!("{}-{k}", t.id);
                        t
                    })
                    .collect();
                self.apply(Command::CreateTransfers { transfers, atomic: a.flag("atomic") }, &a)
            }
            "post" => self.apply(Command::PostPending { pending_id: a.str("id"), amount: a.opt_u64("amount") }, &a),
            "void" => self.apply(Command::VoidPending { pending_id: a.str("id") }, &a),
            "expire" => self.apply(Command::ExpirePending { now_ms: a.u64("now") }, &a),
            "account-show" => match self.ledger.account(&a.str("id")) {
                Some(v) => {
                    let b = v.balances;
                    format!(
                        "{} cur={} overdraft={} dp={} cp={} dq={} cq={} balance={} available={} idx={} v={} meta={}{}{}\n",
                        v.id,
                        v.currency,
                        v.allow_overdraft,
                        b.debits_posted,
                        b.credits_posted,
                        b.debits_pending,
                        b.credits_pending,
                        v.balance,
                        v.available,
                        v.index,
                        v.version,
                        v.metadata,
                        if v.credits_must_not_exceed_debits { " credits_limit" } else { "" },
                        if v.closed { " closed" } else { "" },
                    )
                }
                None => "not found\n".into(),
            },
            "as-of" => match self.ledger.account_as_of(&a.str("id"), a.u64("index")) {
                Some(v) => {
                    let b = v.balances;
                    format!(
                        "{} dp={} cp={} dq={} cq={} balance={} available={} idx={} v={}\n",
                        v.id,
                        b.debits_posted,
                        b.credits_posted,
                        b.debits_pending,
                        b.credits_pending,
                        v.balance,
                        v.available,
                        v.index,
                        v.version
                    )
                }
                None => "not found\n".into(),
            },
            "transfer-show" => match self.ledger.transfer(&a.str("id")) {
                Some(t) => {
                    let mut s = format!(
                        "{} {}->{} amount={} cur={} pending={} status={} created_idx={} created_ts={}",
                        t.id,
                        t.debit_account_id,
                        t.credit_account_id,
                        t.amount,
                        t.currency,
                        t.pending,
                        t.status.as_str(),
                        t.created.index,
                        t.created.timestamp_ms
                    );
                    if let Some(e) = t.expires_at_ms {
                        write!(s, " expires_at={e}").expect("fmt");
                    }
                    if let Some(r) = t.resolution {
                        write!(
                            s,
                            " resolved={} resolved_idx={} resolved_ts={} resolved_amount={}",
                            r.status.as_str(),
                            r.index,
                            r.timestamp_ms,
                            r.amount
                        )
                        .expect("fmt");
                    }
                    s + "\n"
                }
                None => "not found\n".into(),
            },
            "history" => {
                let from = match (a.opt_u64("after-version"), a.opt_u64("after-index")) {
                    (Some(v), _) => HistoryFrom::AfterVersion(v),
                    (None, Some(i)) => HistoryFrom::AfterIndex(i),
                    (None, None) => HistoryFrom::Start,
                };
                let limit = a.opt_u64("limit").map_or(usize::MAX, |l| usize::try_from(l).expect("limit"));
                match self.ledger.account_transfers(&a.str("id"), from, limit) {
                    Some(p) => {
                        let mut s = String::new();
                        for e in &p.entries {
                            let b = e.balances;
                            writeln!(
                                s,
                                "v={} idx={} ts={} {} {} dp={} cp={} dq={} cq={}",
                                e.version,
                                e.index,
                                e.timestamp_ms,
                                e.transfer_id,
                                e.kind.as_str(),
                                b.debits_posted,
                                b.credits_posted,
                                b.debits_pending,
                                b.credits_pending
                            )
                            .expect("fmt");
                        }
                        writeln!(s, "next={:?}", p.next).expect("fmt");
                        s
                    }
                    None => "not found\n".into(),
                }
            }
            "next-expiry" => format!("{:?}\n", self.ledger.next_expiry_ms()),
            "force-move" => {
                let amount: u128 = a.str("amount").parse().expect("u128 amount");
                match self.ledger.test_force_move(&a.str("from"), &a.str("to"), amount) {
                    Ok(()) => "ok\n".into(),
                    Err(c) => format!("{c}\n"),
                }
            }
            "snapshot-roundtrip" => {
                let bytes = bincode::serialize(&self.ledger).expect("serialize");
                let restored: Ledger = bincode::deserialize(&bytes).expect("deserialize");
                assert!(restored == self.ledger, "snapshot differs");
                let again = bincode::serialize(&restored).expect("serialize");
                assert_eq!(bytes, again, "snapshot bytes not stable");
                self.ledger = restored;
                "ok\n".into()
            }
            other => panic!("unknown command {other}"),
        }
    }
}

#[test]
fn datadriven() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    datadriven::run_dir(&dir, || {
        let mut r = Runner { ledger: Ledger::default(), next_index: 1, time_ms: 0 };
        move |case: &Case| r.run(&case.input)
    });
}
