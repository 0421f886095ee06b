//! The disk store against the memory store, reopens, loads and layouts.

use ledger_core::{
    ApplyContext, Command, HistoryFrom, Ledger, LedgerMeta, MemStore, NewAccount, NewTransfer, Record, for_each_record,
};

use super::*;
use crate::types::{decode, encode};
use fjall::KeyspaceCreateOptions;

/// The store's dump, its history grouped by account (stores interleave accounts differently;
/// each account's own order is kept).
fn dump(s: &impl LedgerRead) -> Vec<Record> {
    let mut out = Vec::new();
    for_each_record(s, |r| -> Result<(), ()> {
        out.push(r);
        Ok(())
    })
    .expect("dump");
    out.sort_by_key(|r| match r {
        Record::Account(_) => (0, 0),
        Record::History { account, .. } => (1, *account),
        Record::Transfer(_) => (2, 0),
    });
    out
}

/// A deterministic script over 8 accounts in two currencies: posted and pending transfers
/// (some with timeouts, some duplicated, some failing), atomic batches that fail half way,
/// posts and voids, and time that moves so that pending transfers expire.
fn script(n: usize) -> Vec<(Command, u64)> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let mut out = Vec::new();
    let mut ts = 1_000u64;
    for i in 0..8u64 {
        let a = NewAccount {
            credits_must_not_exceed_debits: false,
            id: format!("acct-{i}"),
            currency: if i.is_multiple_of(2) { "USD" } else { "EUR" }.into(),
            allow_overdraft: i < 2,
            metadata: String::new(),
        };
        out.push((Command::CreateAccount(a), ts));
    }
    let transfer = |next: &mut dyn FnMut(u64) -> u64| {
        let id = next(600);
        let d = next(8);
        let c = (d + 2 * (1 + next(3))) % 8;
        let pending = next(3) == 0;
        NewTransfer {
            flags: Default::default(),
            id: format!("t-{id}"),
            debit_account_id: format!("acct-{d}"),
            credit_account_id: format!("acct-{c}"),
            amount: 1 + next(500),
            currency: if d.is_multiple_of(2) { "USD" } else { "EUR" }.into(),
            metadata: if next(4) == 0 { "{\"k\":1}".into() } else { String::new() },
            pending,
            timeout_ms: (pending && next(2) == 0).then(|| 1 + next(3_000)),
        }
    };
    for _ in 0..n {
        ts += next(400);
        let cmd = match next(10) {
            0..=4 => Command::CreateTransfer(transfer(&mut next)),
            5 | 6 => Command::CreateTransfers {
                transfers: (0..1 + next(6)).map(|_| transfer(&mut next)).collect(),
                atomic: next(2) == 0,
            },
            7 => Command::PostPending {
                pending_id: format!("t-{}", next(600)),
                amount: (next(2) == 0).then(|| 1 + next(300)),
            },
            8 => Command::VoidPending { pending_id: format!("t-{}", next(600)) },
            _ => Command::ExpirePending { now_ms: ts },
        };
        out.push((cmd, ts));
    }
    out
}

fn same_reads(mem: &Ledger<MemStore>, disk: &Ledger<DiskLedger>) {
    assert_eq!(mem.meta(), disk.meta());
    assert_eq!(mem.next_expiry_ms(), disk.next_expiry_ms());
    assert_eq!(mem.open_expiring_count(), disk.open_expiring_count());
    for i in 0..8 {
        let id = format!("acct-{i}");
        assert_eq!(mem.account(&id), disk.account(&id), "{id}");
        // Indexes and versions on both sides of anchors (every HISTORY_ANCHOR_EVERY versions).
        for k in 0..=16 {
            let index = mem.last_index() * k / 16;
            assert_eq!(mem.account_as_of(&id, index), disk.account_as_of(&id, index), "{id} as of {index}");
            let from = HistoryFrom::AfterIndex(index);
            assert_eq!(mem.account_transfers(&id, from, 7), disk.account_transfers(&id, from, 7));
        }
        for v in [0, 3, 30, 31, 32, 33, 63, 64, 65, 100] {
            let from = HistoryFrom::AfterVersion(v);
            assert_eq!(mem.account_transfers(&id, from, 50), disk.account_transfers(&id, from, 50), "{id} {v}");
        }
    }
    for t in 0..600 {
        let id = format!("t-{t}");
        assert_eq!(mem.transfer(&id), disk.transfer(&id), "{id}");
    }
    disk.check_invariants().expect("invariants of the disk ledger");
    assert_eq!(dump(mem.store()), dump(disk.store()));
}

/// The disk store gives exactly what the memory store gives, command by command (commits
/// after every few), after a reopen, and in a snapshot view.
#[test]
fn the_disk_store_behaves_like_the_memory_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mem = Ledger::default();
    let (store, state) = DiskLedger::open(dir.path(), 8 << 20).expect("open");
    assert!(state.is_none(), "a new store");
    let mut disk = Ledger::open(store, LedgerMeta::default()).expect("ledger");
    let cmds = script(3_000);
    let mut most_expiring = 0;
    for (i, (cmd, ts)) in cmds.iter().enumerate() {
        let ctx = ApplyContext { index: i as u64 + 1, timestamp_ms: *ts };
        assert_eq!(mem.apply(cmd, ctx), disk.apply(cmd, ctx), "entry {}", i + 1);
        if i.is_multiple_of(7) || i + 1 == cmds.len() {
            let meta = encode(&disk.meta());
            disk.store_mut().commit(&meta).expect("commit");
        }
        if i.is_multiple_of(500) {
            same_reads(&mem, &disk);
        }
        most_expiring = most_expiring.max(mem.open_expiring_count());
    }
    same_reads(&mem, &disk);
    let expired = (0..600)
        .filter_map(|t| mem.transfer(&format!("t-{t}")))
        .filter(|t| t.status == ledger_core::TransferStatus::Expired)
        .count();
    let transfers = mem.transfer_count();
    assert!(
        transfers > 400 && expired > 10 && most_expiring > 3,
        "the script exercises the store: {transfers} transfers, {expired} expired, at most {most_expiring} queued"
    );
    let view = disk.store().view();
    assert_eq!(dump(&view), dump(mem.store()), "a snapshot view reads the committed records");
    drop((disk, view));

    let (store, state) = DiskLedger::open(dir.path(), 8 << 20).expect("reopen");
    let meta: LedgerMeta = decode(&state.expect("state bytes")).expect("meta");
    let reopened = Ledger::open(store, meta).expect("ledger");
    same_reads(&mem, &reopened);
}

/// Uncommitted writes are not on disk: a store dropped without a commit reopens at its last
/// commit (what a crash between two applies leaves).
#[test]
fn only_committed_writes_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = DiskLedger::open(dir.path(), 8 << 20).expect("open");
    let mut disk = Ledger::open(store, LedgerMeta::default()).expect("ledger");
    let cmds = script(50);
    for (i, (cmd, ts)) in cmds.iter().enumerate().take(20) {
        disk.apply(cmd, ApplyContext { index: i as u64 + 1, timestamp_ms: *ts });
    }
    let meta = disk.meta();
    disk.store_mut().commit(&encode(&meta)).expect("commit");
    let committed = dump(disk.store());
    for (i, (cmd, ts)) in cmds.iter().enumerate().skip(20) {
        disk.apply(cmd, ApplyContext { index: i as u64 + 1, timestamp_ms: *ts });
    }
    assert!(disk.store().is_dirty());
    drop(disk);
    let (store, state) = DiskLedger::open(dir.path(), 8 << 20).expect("reopen");
    assert_eq!(decode::<LedgerMeta>(&state.expect("state")).expect("meta"), meta);
    assert_eq!(dump(&store), committed);
}

/// A store written with another layout (or before layouts were recorded) is refused at open,
/// naming the layout; an empty one opens.
#[test]
fn a_store_of_another_layout_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = DiskLedger::open(dir.path(), 8 << 20).expect("open");
    store.commit(b"head").expect("commit");
    drop(store);
    let (store, state) = DiskLedger::open(dir.path(), 8 << 20).expect("the same layout opens");
    assert_eq!(state.as_deref(), Some(&b"head"[..]));
    store.ks.meta.insert(LAYOUT_KEY, 1u32.to_be_bytes()).expect("write");
    drop(store);
    let err = DiskLedger::open(dir.path(), 8 << 20).expect_err("layout 1 is refused");
    assert!(matches!(err, OpenError::Layout { found: Some(1) }), "{err}");
    assert!(err.to_string().contains("layout 1 and this lognode reads layout 2"), "{err}");
    let db = Database::builder(dir.path()).open().expect("open the database");
    db.keyspace("meta", KeyspaceCreateOptions::default).expect("meta").remove(LAYOUT_KEY).expect("remove");
    drop(db);
    let err = DiskLedger::open(dir.path(), 8 << 20).expect_err("a store without a layout is refused");
    assert!(err.to_string().contains("layout none recorded"), "{err}");
}

/// A dump loads into the disk store committing every few writes (as a snapshot install does,
/// so that the overlay stays bounded) and reads back exactly as the ledger it came from, with
/// accounts' histories spanning many of those commits.
#[test]
fn a_dump_loads_into_the_disk_store_across_spills() {
    let mut mem = Ledger::default();
    for (i, (cmd, ts)) in script(3_000).iter().enumerate() {
        mem.apply(cmd, ApplyContext { index: i as u64 + 1, timestamp_ms: *ts });
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = DiskLedger::open(dir.path(), 8 << 20).expect("open");
    store.begin_load(37);
    {
        let mut loader = ledger_core::Loader::new(&mut store, mem.meta().currencies.len()).expect("empty");
        for_each_record(mem.store(), |r| loader.push(r)).expect("the dump loads");
        loader.finish().expect("the dump is whole");
    }
    store.commit(&encode(&mem.meta())).expect("commit");
    let loaded = Ledger::open(store, mem.meta()).expect("ledger");
    same_reads(&mem, &loaded);
}

/// The keyspaces that grow with history keep no filter or index block pinned in memory;
/// `accounts` does (fjall's defaults pin level-0 blocks), which shows that the measure reads
/// something. The options are
/// the keyspaces' own: tables written after a reopen follow them too. (Pinned blocks live as
/// long as their table; an append-only keyspace's tables are only moved down, so with fjall's
/// defaults its pinned blocks grew with every transfer: issue 20.)
#[test]
fn tables_of_the_growing_keyspaces_pin_nothing_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cmds = script(3_000);
    let (first, rest) = cmds.split_at(1_500);
    let check = |store: &DiskLedger, when: &str| {
        let pinned: std::collections::BTreeMap<_, _> = store.pinned_bytes().into_iter().collect();
        for name in ["transfers", "history", "anchors", "expiry", "ids"] {
            assert_eq!(pinned[name], 0, "{name} pins nothing {when}: {pinned:?}");
        }
        assert!(pinned["accounts"] > 0, "accounts keeps its level-0 blocks pinned {when}: {pinned:?}");
        for ks in [&store.ks.transfers, &store.ks.history, &store.ks.ids] {
            assert!(ks.table_count() > 0, "tables {when}");
        }
    };
    let (store, _) = DiskLedger::open(dir.path(), 8 << 20).expect("open");
    let mut disk = Ledger::open(store, LedgerMeta::default()).expect("ledger");
    for (i, (cmd, ts)) in first.iter().enumerate() {
        disk.apply(cmd, ApplyContext { index: i as u64 + 1, timestamp_ms: *ts });
    }
    let meta = disk.meta();
    disk.store_mut().commit(&encode(&meta)).expect("commit");
    disk.store().flush().expect("tables written");
    check(disk.store(), "after a flush");
    drop(disk);
    let (store, _) = DiskLedger::open(dir.path(), 8 << 20).expect("reopen");
    let mut disk = Ledger::open(store, meta).expect("ledger");
    for (i, (cmd, ts)) in rest.iter().enumerate() {
        disk.apply(cmd, ApplyContext { index: (first.len() + i) as u64 + 1, timestamp_ms: *ts });
    }
    let meta = disk.meta();
    disk.store_mut().commit(&encode(&meta)).expect("commit");
    disk.store().flush().expect("tables written");
    check(disk.store(), "after a reopen and a flush");
}
