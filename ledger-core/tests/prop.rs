//! Property tests over random command sequences (rules 2, 3, 4, 6, 7).
//!
//! Random sequences of account creations, transfers (posted and pending,
//! with duplicates), post/void/expire and batches (atomic and not), with
//! timestamps that mostly advance and sometimes go backwards:
//! - applying the same sequence twice from scratch gives identical
//!   outcomes, events and state (determinism, rule 4 replays included);
//! - a snapshot taken at any point, restored and continued, ends in the
//!   same state with the same outcomes (snapshots);
//! - after every step all invariants hold: conservation per currency
//!   (rule 3), no non-overdraft account below zero available (rule 2),
//!   pending counters equal open pending transfers (rule 6).

use ledger_core::{
    ApplyContext, Command, Ledger, LedgerEvent, Loader, MemStore, NewAccount, NewTransfer, Outcome, ResultCode,
    TransferFlags, for_each_record, limits,
};
use proptest::prelude::*;

const ACCOUNTS: u8 = 6;
const TRANSFER_IDS: u8 = 24;

fn account_id(i: u8) -> String {
    format!("acct-{i}")
}

fn currency(i: u8) -> String {
    ["USD", "EUR"][usize::from(i % 2)].to_string()
}

fn transfer_strategy() -> impl Strategy<Value = NewTransfer> {
    (
        0..TRANSFER_IDS,
        0..ACCOUNTS,
        0..ACCOUNTS,
        prop_oneof![
            8 => 1u64..200,
            1 => Just(0u64),
            1 => Just(limits::AMOUNT_MAX),
        ],
        prop_oneof![9 => Just(0u8), 1 => Just(1u8)],
        any::<bool>(),
        prop::option::of(1u64..400),
        0u8..2,
        // Rules 10 and 11: balancing and closing flags on one transfer in four.
        prop_oneof![3 => Just(0u8), 1 => 0u8..16],
    )
        .prop_map(|(id, from, to, amount, cur, pending, timeout, meta, flags)| NewTransfer {
            flags: TransferFlags::from_bits(flags << 1).map(|(_, f)| f).unwrap_or_default(),
            id: format!("t{id}"),
            debit_account_id: account_id(from),
            credit_account_id: account_id(to),
            amount,
            currency: currency(cur),
            metadata: if meta == 0 { String::new() } else { "{\"m\":1}".into() },
            pending,
            timeout_ms: if pending { timeout } else { None },
        })
}

fn command_strategy() -> impl Strategy<Value = Command> {
    prop_oneof![
        2 => (0..ACCOUNTS, 0u8..2, any::<bool>()).prop_map(|(i, c, o)| {
            Command::CreateAccount(NewAccount {
                // Rule 10: some accounts limited on the credit side (refused without overdraft).
                credits_must_not_exceed_debits: c == 1 && i % 2 == 1,
                id: account_id(i),
                // account i's "home" currency mostly follows i, sometimes conflicts
                currency: currency(i / 3 + c * u8::from(i == 5)),
                allow_overdraft: o || i == 0 || i == 3,
                metadata: String::new(),
            })
        }),
        5 => transfer_strategy().prop_map(Command::CreateTransfer),
        2 => (prop::collection::vec(transfer_strategy(), 0..8), any::<bool>())
            .prop_map(|(transfers, atomic)| Command::CreateTransfers { transfers, atomic }),
        2 => (0..TRANSFER_IDS, prop::option::of(1u64..250)).prop_map(|(i, amount)| {
            Command::PostPending { pending_id: format!("t{i}"), amount }
        }),
        1 => (0..TRANSFER_IDS).prop_map(|i| Command::VoidPending { pending_id: format!("t{i}") }),
        1 => (0u64..3000).prop_map(|now_ms| Command::ExpirePending { now_ms }),
    ]
}

/// (command, timestamp delta; negative = a leader whose clock is behind).
/// Most scripts start by opening every account (acct-0 and acct-3 may
/// overdraft and fund the others) so that most transfers get far enough
/// to exercise funds, two-phase and batch rules.
fn script_strategy() -> impl Strategy<Value = Vec<(Command, i64)>> {
    let body = prop::collection::vec((command_strategy(), prop_oneof![8 => 0i64..100, 1 => -200i64..0]), 1..80);
    (prop_oneof![3 => Just(true), 1 => Just(false)], body).prop_map(|(open_all, body)| {
        let prefix = (0..ACCOUNTS).filter(|_| open_all).map(|i| {
            let cmd = Command::CreateAccount(NewAccount {
                credits_must_not_exceed_debits: i == 3,
                id: account_id(i),
                currency: currency(i / 3),
                allow_overdraft: i == 0 || i == 3,
                metadata: String::new(),
            });
            (cmd, 0)
        });
        prefix.chain(body).collect()
    })
}

type Trace = Vec<(Outcome, Vec<LedgerEvent>)>;

/// Absolute leader timestamps for a script: start at 1000, add each delta
/// (never below 0).
fn timestamps(script: &[(Command, i64)]) -> Vec<u64> {
    let mut ts: i64 = 1000;
    script
        .iter()
        .map(|(_, dt)| {
            ts = (ts + dt).max(0);
            u64::try_from(ts).expect("non-negative")
        })
        .collect()
}

fn run(ledger: &mut Ledger, script: &[(Command, i64)], ts: &[u64], first_index: u64) -> Trace {
    let mut trace = Vec::new();
    for (k, (cmd, _)) in script.iter().enumerate() {
        let ctx = ApplyContext { index: first_index + k as u64, timestamp_ms: ts[k] };
        let (outcome, events) = ledger.apply(cmd, ctx);
        if let Err(v) = ledger.check_invariants() {
            panic!("invariant violated after {cmd:?}: {v}");
        }
        // Rule 7: a failed atomic batch publishes no transfer creation.
        if let Outcome::Batch(b) = &outcome
            && b.failed.is_some()
        {
            assert!(events.iter().all(|e| !matches!(
                e,
                LedgerEvent::Transfer(t) if t.kind == ledger_core::TransferEventKind::Created
            )));
        }
        trace.push((outcome, events));
    }
    trace
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Rules 2, 3, 6, 7: determinism, snapshot equivalence, invariants.
    #[test]
    fn rule3_deterministic_and_conserving(script in script_strategy(), cut in 0usize..90) {
        let ts = timestamps(&script);
        let mut a = Ledger::default();
        let trace_a = run(&mut a, &script, &ts, 1);
        let mut b = Ledger::default();
        let trace_b = run(&mut b, &script, &ts, 1);
        prop_assert!(a == b);
        prop_assert_eq!(&trace_a, &trace_b);
        let bytes_a = bincode::serialize(&a).expect("ser");
        prop_assert_eq!(&bytes_a, &bincode::serialize(&b).expect("ser"));

        // Snapshot at `cut`, restore, continue.
        let cut = cut.min(script.len());
        let mut c = Ledger::default();
        let head = run(&mut c, &script[..cut], &ts[..cut], 1);
        let snap = bincode::serialize(&c).expect("ser");
        let mut restored: Ledger = bincode::deserialize(&snap).expect("de");
        prop_assert!(restored == c);
        restored.check_invariants().expect("invariants after restore");
        let tail = run(&mut restored, &script[cut..], &ts[cut..], 1 + cut as u64);
        prop_assert!(restored == a);
        prop_assert_eq!(&bytes_a, &bincode::serialize(&restored).expect("ser"));
        let joined: Trace = head.into_iter().chain(tail).collect();
        prop_assert_eq!(&joined, &trace_a);

        // The same cut restored from a record dump (how a node with its state on disk snapshots).
        let mut records = Vec::new();
        for_each_record(c.store(), |r| -> Result<(), ()> {
            records.push(r);
            Ok(())
        })
        .expect("dump");
        let mut store = MemStore::default();
        let mut loader = Loader::new(&mut store, c.meta().currencies.len()).expect("an empty store");
        for r in records {
            loader.push(r).expect("a record of a valid ledger");
        }
        loader.finish().expect("a complete dump");
        let mut loaded = Ledger::open(store, c.meta()).expect("open");
        prop_assert!(loaded == c);
        loaded.check_invariants().expect("invariants after a load");
        let tail = run(&mut loaded, &script[cut..], &ts[cut..], 1 + cut as u64);
        prop_assert!(loaded == a);
        let joined: Trace = run(&mut Ledger::default(), &script[..cut], &ts[..cut], 1).into_iter().chain(tail).collect();
        prop_assert_eq!(&joined, &trace_a);
    }

    /// Rule 4: re-applying every command a second time changes nothing but
    /// the log position: transfers/accounts answer exists (or the same
    /// error), and balances are unchanged.
    #[test]
    fn rule4_replaying_creations_changes_nothing(script in script_strategy()) {
        let mut l = Ledger::default();
        let n = script.len() as u64;
        let ts = timestamps(&script);
        let first = run(&mut l, &script, &ts, 1);
        let before: Vec<_> = (0..ACCOUNTS).map(|i| l.account(&account_id(i))).collect();
        // Re-send every single creation that succeeded (created or exists).
        let creations: Vec<(Command, i64)> = script
            .iter()
            .zip(&first)
            .filter(|((c, _), (o, _))| match (c, o) {
                (Command::CreateAccount(_), Outcome::Account(r)) => r.code.is_success(),
                (Command::CreateTransfer(_), Outcome::Transfer(r)) => r.code.is_success(),
                _ => false,
            })
            .map(|((c, _), _)| (c.clone(), 0))
            .collect();
        let last_ts = ts.last().copied().unwrap_or(1000);
        let trace = run(&mut l, &creations, &vec![last_ts; creations.len()], n + 1);
        for (outcome, events) in &trace {
            match outcome {
                Outcome::Account(r) => prop_assert_eq!(r.code, ResultCode::Exists),
                Outcome::Transfer(r) => prop_assert_eq!(r.code, ResultCode::Exists),
                _ => {}
            }
            // Log time does not move, so not even an expiry fires.
            prop_assert!(events.is_empty());
        }
        // Same log time, so nothing expired: balances are identical.
        let after: Vec<_> = (0..ACCOUNTS).map(|i| l.account(&account_id(i))).collect();
        prop_assert_eq!(before, after);
    }
}
