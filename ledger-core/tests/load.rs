//! The loader refuses damaged dumps (what a node reads from a snapshot file it received).

use ledger_core::{ApplyContext, Command, Ledger, Loader, MemStore, NewAccount, NewTransfer, Record, for_each_record};

fn ledger() -> Ledger {
    let mut l = Ledger::default();
    let mut index = 0;
    let mut apply = |l: &mut Ledger, c: Command| {
        index += 1;
        l.apply(&c, ApplyContext { index, timestamp_ms: 1_000 + index });
    };
    for (id, overdraft) in [("equity", true), ("alice", false)] {
        let a = NewAccount {
            credits_must_not_exceed_debits: false,
            id: id.into(),
            currency: "USD".into(),
            allow_overdraft: overdraft,
            metadata: String::new(),
        };
        apply(&mut l, Command::CreateAccount(a));
    }
    for (i, pending) in [(1, false), (2, true)] {
        let t = NewTransfer {
            flags: Default::default(),
            id: format!("t{i}"),
            debit_account_id: "equity".into(),
            credit_account_id: "alice".into(),
            amount: 10 * i,
            currency: "USD".into(),
            metadata: String::new(),
            pending,
            timeout_ms: pending.then_some(60_000),
        };
        apply(&mut l, Command::CreateTransfer(t));
    }
    l
}

fn records(l: &Ledger) -> Vec<Record> {
    let mut out = Vec::new();
    for_each_record(l.store(), |r| -> Result<(), ()> {
        out.push(r);
        Ok(())
    })
    .expect("dump");
    out
}

fn load(records: Vec<Record>) -> Result<(), &'static str> {
    let mut store = MemStore::default();
    let mut loader = Loader::new(&mut store, 1)?;
    for r in records {
        loader.push(r)?;
    }
    loader.finish()
}

#[test]
fn a_whole_dump_loads_and_restores_the_expiry_queue() {
    let l = ledger();
    let mut store = MemStore::default();
    let mut loader = Loader::new(&mut store, 1).expect("empty");
    for r in records(&l) {
        loader.push(r).expect("valid");
    }
    loader.finish().expect("complete");
    let loaded = Ledger::open(store, l.meta()).expect("open");
    assert_eq!(loaded, l);
    assert_eq!(loaded.open_expiring_count(), 1, "the open pending transfer is queued for expiry");
    assert_eq!(loaded.next_expiry_ms(), l.next_expiry_ms());
}

#[test]
fn damaged_dumps_are_refused() {
    let whole = records(&ledger());
    let first_account = whole.iter().position(|r| matches!(r, Record::Account(_))).expect("an account");
    let first_history = whole.iter().position(|r| matches!(r, Record::History { .. })).expect("history");
    let first_transfer = whole.iter().position(|r| matches!(r, Record::Transfer(_))).expect("a transfer");

    let mut dup_account = whole.clone();
    dup_account.insert(first_history, whole[first_account].clone());
    assert_eq!(load(dup_account), Err("duplicate account id"));

    let mut dup_transfer = whole.clone();
    dup_transfer.push(whole[first_transfer].clone());
    assert_eq!(load(dup_transfer), Err("duplicate transfer id"));

    let mut short_history = whole.clone();
    short_history.remove(first_history);
    assert_eq!(load(short_history), Err("an account's history is incomplete"));

    let unbalanced: Vec<Record> =
        whole.iter().filter(|r| !matches!(r, Record::Account(a) if a.id() == "equity")).cloned().collect();
    assert!(load(unbalanced).is_err(), "a dump without the equity account does not load");

    assert_eq!(load(whole[first_history..].to_vec()), Err("a history record of an account not in the dump"));

    let mut account_late = whole.clone();
    let a = account_late.remove(first_account);
    account_late.insert(first_history, a);
    assert_eq!(load(account_late), Err("an account after the history or the transfers"));

    let mut history_late = whole.clone();
    let h = history_late.remove(first_history);
    history_late.push(h);
    assert_eq!(load(history_late), Err("an account's history is incomplete"));

    let mut long_history = whole.clone();
    long_history.insert(first_history, whole[first_history].clone());
    assert_eq!(load(long_history), Err("an account's history is longer than its version"));

    let mut swapped = whole.clone();
    swapped.swap(first_history, first_history + 1);
    assert!(
        matches!((&swapped[first_history], &swapped[first_history + 1]), (Record::History { account: a, .. }, Record::History { account: b, .. }) if a == b),
        "the first two history records are one account's"
    );
    assert_eq!(load(swapped), Err("an account's history is out of log order"));
    let mut store = MemStore::default();
    store_one_account(&mut store);
    assert!(Loader::new(&mut store, 1).is_err(), "a store that is not empty is refused");
}

fn store_one_account(store: &mut MemStore) {
    let mut loader = Loader::new(store, 1).expect("empty");
    let first = records(&ledger()).into_iter().next().expect("a record");
    assert!(matches!(first, Record::Account(_)), "a dump starts with an account");
    loader.push(first).expect("an account");
}
