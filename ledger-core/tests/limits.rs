//! Limits that need too many records for a readable script (rules 6 and 8).

use ledger_core::limits::{BATCH_TRANSFERS_MAX, CURRENCIES_MAX, EXPIRE_PER_ENTRY_MAX};
use ledger_core::{
    ApplyContext, Command, Ledger, LedgerEvent, NewAccount, NewTransfer, Outcome, ResultCode, TransferEventKind,
};

struct L {
    l: Ledger,
    index: u64,
}

impl L {
    fn apply(&mut self, cmd: Command, ts: u64) -> (Outcome, Vec<LedgerEvent>) {
        self.index += 1;
        let r = self.l.apply(&cmd, ApplyContext { index: self.index, timestamp_ms: ts });
        self.l.check_invariants().expect("rule 3 invariants");
        r
    }
}

fn account(id: &str, currency: &str, overdraft: bool) -> Command {
    Command::CreateAccount(NewAccount {
        credits_must_not_exceed_debits: false,
        id: id.into(),
        currency: currency.into(),
        allow_overdraft: overdraft,
        metadata: String::new(),
    })
}

/// Rule 8: `limit_exceeded` when a new currency would pass `CURRENCIES_MAX`;
/// accounts in known currencies are still accepted.
#[test]
fn rule8_currency_limit_exceeded() {
    let mut l = L { l: Ledger::default(), index: 0 };
    let currency = |n: usize| -> String {
        // 3 uppercase letters from n (26^3 > CURRENCIES_MAX)
        let b = |k: usize| char::from(b'A' + u8::try_from(k % 26).expect("< 26"));
        [b(n / 676), b(n / 26), b(n)].iter().collect()
    };
    for n in 0..CURRENCIES_MAX {
        let (o, _) = l.apply(account(&format!("a{n}"), &currency(n), false), 0);
        assert_eq!(
            o,
            Outcome::Account(ledger_core::AccountResult { code: ResultCode::Created, created: Some((l.index, 0)) })
        );
    }
    let (o, events) = l.apply(account("one-more", &currency(CURRENCIES_MAX), false), 0);
    let Outcome::Account(r) = o else { panic!() };
    assert_eq!(r.code, ResultCode::LimitExceeded);
    assert_eq!(r.code.as_str(), "limit_exceeded");
    assert!(events.is_empty());
    let (o, _) = l.apply(account("known-currency", &currency(0), false), 0);
    let Outcome::Account(r) = o else { panic!() };
    assert_eq!(r.code, ResultCode::Created);
}

/// Rule 6: expiry is capped at `EXPIRE_PER_ENTRY_MAX` per entry
/// (`more_due`), and a post of a due transfer the sweep has not reached
/// yet still answers `pending_expired` (and expires it right there).
#[test]
fn rule6_bounded_expiry_and_post_of_unswept_due_transfer() {
    let mut l = L { l: Ledger::default(), index: 0 };
    l.apply(account("bank", "USD", true), 0);
    l.apply(account("alice", "USD", false), 0);
    let total = 2 * EXPIRE_PER_ENTRY_MAX + 1;
    let mut created = 0;
    while created < total {
        let n = (total - created).min(BATCH_TRANSFERS_MAX);
        let transfers = (created..created + n)
            .map(|k| NewTransfer {
                flags: Default::default(),
                id: format!("p{k}"),
                debit_account_id: "bank".into(),
                credit_account_id: "alice".into(),
                amount: 1,
                currency: "USD".into(),
                metadata: String::new(),
                pending: true,
                timeout_ms: Some(10),
            })
            .collect();
        l.apply(Command::CreateTransfers { transfers, atomic: true }, 100);
        created += n;
    }
    assert_eq!(l.l.next_expiry_ms(), Some(110));
    // First sweep: capped.
    let (o, events) = l.apply(Command::ExpirePending { now_ms: 110 }, 110);
    let Outcome::Expire(e) = o else { panic!() };
    assert_eq!(e.expired as usize, EXPIRE_PER_ENTRY_MAX);
    assert!(e.more_due);
    assert_eq!(events.len(), EXPIRE_PER_ENTRY_MAX);
    // Next entry (a post of the last one) sweeps another capped chunk in
    // creation order, then finds p{total-1} due but unswept.
    let last = format!("p{}", total - 1);
    let (o, events) = l.apply(Command::PostPending { pending_id: last.clone(), amount: None }, 111);
    let Outcome::Transfer(r) = o else { panic!() };
    assert_eq!(r.code, ResultCode::PendingExpired);
    assert_eq!(events.len(), EXPIRE_PER_ENTRY_MAX + 1);
    let LedgerEvent::Transfer(t) = events.last().expect("event") else { panic!() };
    assert_eq!((t.kind, &*t.transfer_id), (TransferEventKind::Expired, last.as_str()));
    assert_eq!(l.l.next_expiry_ms(), None);
    assert_eq!(l.l.account("alice").map(|a| a.balances.credits_pending), Some(0));
}

/// Rule 8 (the one exception): a non-increasing log index is a caller bug
/// and panics loudly instead of forking replicas.
#[test]
#[should_panic(expected = "is not greater than last applied index")]
fn rule8_non_monotonic_index_panics() {
    let mut l = Ledger::default();
    let ctx = ApplyContext { index: 5, timestamp_ms: 0 };
    l.apply(&account("a", "USD", false), ctx);
    l.apply(&account("b", "USD", false), ctx);
}
