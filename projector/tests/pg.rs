//! The projector against a real PostgreSQL.
//!
//! Every `#[sqlx::test]` creates a fresh database from `DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) and applies
//! `migrations/`. Without `DATABASE_URL`, or with PostgreSQL unreachable,
//! the tests FAIL (never skip).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use ledger_core::limits::BALANCE_MAX;
use ledger_core::{
    AccountState, ApplyContext, Balances, Command, Ledger, LedgerEvent, NewAccount, NewTransfer, TransferEvent,
    TransferEventKind, TransferStatus,
};
use ledger_events::{EventJson, TOPIC};
use projector::{AccountSnapshot, Applied, Difference, Error, Fence, apply_batch, load_offsets, verify};
use sqlx::{PgPool, Row};

const GROUP: &str = "projector";

#[test]
fn database_url_is_set() {
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    assert!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "DATABASE_URL must point at a PostgreSQL server the tests may create databases on, \
         e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres (got {url:?})"
    );
}

// ---------------------------------------------------------------------------
// a ledger producing events, split into partitions like the log would
// ---------------------------------------------------------------------------

struct Sim {
    ledger: Ledger,
    index: u64,
    ts: u64,
    partitions: Vec<Vec<(u64, EventJson)>>,
    transfer_ids: BTreeSet<String>,
    account_ids: BTreeSet<String>,
}

fn fnv(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

impl Sim {
    fn new(partitions: usize) -> Self {
        Sim {
            ledger: Ledger::default(),
            index: 0,
            ts: 1_700_000_000_000,
            partitions: vec![Vec::new(); partitions],
            transfer_ids: BTreeSet::new(),
            account_ids: BTreeSet::new(),
        }
    }

    fn apply(&mut self, cmd: Command) {
        self.index += 1;
        self.ts += 10;
        let (_, events) = self.ledger.apply(&cmd, ApplyContext { index: self.index, timestamp_ms: self.ts });
        self.ledger.check_invariants().unwrap();
        for e in events {
            self.publish(&e);
        }
    }

    fn publish(&mut self, e: &LedgerEvent) {
        match e {
            LedgerEvent::AccountCreated(a) => self.account_ids.insert(a.id.to_string()),
            LedgerEvent::Transfer(t) => self.transfer_ids.insert(t.transfer_id.to_string()),
        };
        // Through the wire format, like a real consumer.
        let decoded = ledger_events::decode(&ledger_events::encode(e)).unwrap();
        let p = (fnv(ledger_events::partition_key(e)) % self.partitions.len() as u64) as usize;
        let offset = self.partitions[p].len() as u64;
        self.partitions[p].push((offset, decoded));
    }

    fn account(&mut self, id: &str, overdraft: bool) {
        self.apply(Command::CreateAccount(NewAccount {
            credits_must_not_exceed_debits: false,
            id: id.into(),
            currency: "USD".into(),
            allow_overdraft: overdraft,
            metadata: format!(r#"{{"name":"{id}"}}"#),
        }));
    }

    fn transfer(&mut self, id: &str, d: &str, c: &str, amount: u64, pending: bool, timeout_ms: Option<u64>) {
        self.apply(Command::CreateTransfer(nt(id, d, c, amount, pending, timeout_ms)));
    }

    fn snapshots(&self) -> Vec<AccountSnapshot> {
        self.account_ids.iter().map(|id| AccountSnapshot::from(&self.ledger.account(id).unwrap())).collect()
    }

    fn events(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }
}

fn nt(id: &str, d: &str, c: &str, amount: u64, pending: bool, timeout_ms: Option<u64>) -> NewTransfer {
    NewTransfer {
        flags: Default::default(),
        id: id.into(),
        debit_account_id: d.into(),
        credit_account_id: c.into(),
        amount,
        currency: "USD".into(),
        metadata: format!(r#"{{"ref":"{id}"}}"#),
        pending,
        timeout_ms,
    }
}

/// Deterministic pseudo-random scenario: accounts, posted and pending
/// transfers, partial and full posts, voids, expiries and batch entries.
fn scenario(partitions: usize, steps: usize) -> Sim {
    let mut s = Sim::new(partitions);
    s.account("equity", true);
    let users: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    for u in &users {
        s.account(u, false);
        s.transfer(&format!("fund-{u}"), "equity", u, 1_000_000, false, None);
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut open: Vec<String> = Vec::new();
    for i in 0..steps {
        let d = &users[next(users.len() as u64) as usize];
        let mut c = &users[next(users.len() as u64) as usize];
        if c == d {
            c = &users[(users.iter().position(|u| u == d).unwrap() + 1) % users.len()];
        }
        match next(10) {
            0..=3 => s.transfer(&format!("t{i}"), d, c, 1 + next(500), false, None),
            4..=5 => {
                let timeout = if next(2) == 0 { Some(15 + next(100)) } else { None };
                s.transfer(&format!("p{i}"), d, c, 1 + next(500), true, timeout);
                open.push(format!("p{i}"));
            }
            6 if !open.is_empty() => {
                let id = open.swap_remove(next(open.len() as u64) as usize);
                let amount = if next(2) == 0 { None } else { Some(1) };
                s.apply(Command::PostPending { pending_id: id, amount });
            }
            7 if !open.is_empty() => {
                let id = open.swap_remove(next(open.len() as u64) as usize);
                s.apply(Command::VoidPending { pending_id: id });
            }
            8 => {
                let transfers = (0..3).map(|k| nt(&format!("b{i}-{k}"), d, c, 1 + next(50), false, None)).collect();
                s.apply(Command::CreateTransfers { transfers, atomic: next(2) == 0 });
            }
            _ => {
                let now = s.ts + 50;
                s.apply(Command::ExpirePending { now_ms: now });
            }
        }
    }
    s.apply(Command::ExpirePending { now_ms: s.ts + 1_000_000 });
    s
}

fn fence(partition: u32, generation: u64) -> Fence<'static> {
    Fence { group: GROUP, topic: TOPIC, partition, generation }
}

/// Applies partition `p`'s events `[from, to)` as one batch.
async fn apply_range(pool: &PgPool, s: &Sim, p: usize, from: usize, to: usize, generation: u64) -> Applied {
    let events = &s.partitions[p][from..to];
    apply_batch(pool, &fence(p as u32, generation), events, to as u64).await.unwrap()
}

/// Applies everything, `batch` events at a time, partition after partition
/// in the order given.
async fn apply_all(pool: &PgPool, s: &Sim, order: &[usize], batch: usize) {
    for &p in order {
        let n = s.partitions[p].len();
        let mut from = 0;
        while from < n {
            let to = (from + batch).min(n);
            let a = apply_range(pool, s, p, from, to, 1).await;
            assert_eq!(a, Applied { applied: to - from, skipped: 0, next_offset: to as u64 });
            from = to;
        }
    }
}

/// Every account and transfer row equals ledger-core's state.
async fn assert_matches_ledger(pool: &PgPool, s: &Sim) {
    let diffs = verify(pool, &s.snapshots()).await.unwrap();
    assert!(diffs.is_empty(), "{diffs:#?}");
    let rows = sqlx::query(
        "SELECT id, status, amount, posted_amount, pending, log_index, resolved_index, resolved_amount, \
             debit_account_id, credit_account_id, metadata::text FROM transfers ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let ids: BTreeSet<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    assert_eq!(ids, s.transfer_ids);
    for r in rows {
        let id: String = r.get(0);
        let t = s.ledger.transfer(&id).unwrap();
        assert_eq!(r.get::<String, _>(1), t.status.as_str(), "{id}");
        assert_eq!(r.get::<i64, _>(2) as u64, t.amount, "{id}");
        let posted = match t.status {
            TransferStatus::Pending => None,
            TransferStatus::Posted => Some(t.resolution.map_or(t.amount, |d| d.amount)),
            TransferStatus::Voided | TransferStatus::Expired => Some(0),
        };
        assert_eq!(r.get::<Option<i64>, _>(3).map(|v| v as u64), posted, "{id}");
        assert_eq!(r.get::<bool, _>(4), t.pending, "{id}");
        assert_eq!(r.get::<Option<i64>, _>(5), Some(t.created.index as i64), "{id}");
        assert_eq!(r.get::<Option<i64>, _>(6), t.resolution.map(|d| d.index as i64), "{id}");
        assert_eq!(r.get::<Option<i64>, _>(7), t.resolution.map(|d| d.amount as i64), "{id}");
        assert_eq!(r.get::<String, _>(8), &*t.debit_account_id);
        assert_eq!(r.get::<String, _>(9), &*t.credit_account_id);
        assert_eq!(r.get::<String, _>(10), format!(r#"{{"ref": "{id}"}}"#));
    }
}

/// The projected tables as text, to compare states.
async fn dump(pool: &PgPool) -> String {
    let a: Vec<String> =
        sqlx::query_scalar("SELECT a::text FROM accounts a ORDER BY id").fetch_all(pool).await.unwrap();
    let t: Vec<String> =
        sqlx::query_scalar("SELECT t::text FROM transfers t ORDER BY id").fetch_all(pool).await.unwrap();
    let o: Vec<String> = sqlx::query_scalar(
        "SELECT (group_name, topic, partition, next_offset, generation)::text FROM projector_offsets \
         ORDER BY group_name, topic, partition",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    format!("{}\n--\n{}\n--\n{}", a.join("\n"), t.join("\n"), o.join("\n"))
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn migrations_create_the_schema(pool: PgPool) {
    type Col = (String, String, String, Option<i32>, Option<i32>);
    let cols: Vec<Col> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, numeric_precision, numeric_scale \
         FROM information_schema.columns WHERE table_schema = 'public' \
           AND table_name IN ('accounts', 'transfers', 'projector_offsets')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let ty = |t: &str, c: &str| {
        cols.iter()
            .find(|x| x.0 == t && x.1 == c)
            .map(|x| (x.2.clone(), x.3, x.4))
            .unwrap_or_else(|| panic!("column {t}.{c} missing"))
    };
    let numeric = ("numeric".to_owned(), Some(39), Some(0));
    for c in ["debits_posted", "credits_posted", "debits_pending", "credits_pending", "balance", "available"] {
        assert_eq!(ty("accounts", c), numeric, "accounts.{c}");
    }
    for (t, c, want) in [
        ("accounts", "id", "text"),
        ("accounts", "currency", "text"),
        ("accounts", "allow_overdraft", "boolean"),
        ("accounts", "metadata", "jsonb"),
        ("accounts", "updated_index", "bigint"),
        ("accounts", "version", "bigint"),
        ("accounts", "created_index", "bigint"),
        ("transfers", "id", "text"),
        ("transfers", "debit_account_id", "text"),
        ("transfers", "credit_account_id", "text"),
        ("transfers", "amount", "bigint"),
        ("transfers", "currency", "text"),
        ("transfers", "status", "text"),
        ("transfers", "metadata", "jsonb"),
        ("transfers", "log_index", "bigint"),
        ("transfers", "created_at", "timestamp with time zone"),
        ("transfers", "pending", "boolean"),
        ("transfers", "expires_at", "timestamp with time zone"),
        ("transfers", "posted_amount", "bigint"),
        ("transfers", "updated_index", "bigint"),
        ("projector_offsets", "group_name", "text"),
        ("projector_offsets", "topic", "text"),
        ("projector_offsets", "partition", "integer"),
        ("projector_offsets", "next_offset", "bigint"),
        ("projector_offsets", "generation", "bigint"),
        ("projector_offsets", "updated_at", "timestamp with time zone"),
    ] {
        assert_eq!(ty(t, c).0, want, "{t}.{c}");
    }
    let pk: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
           AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'projector_offsets'::regclass AND i.indisprimary \
         ORDER BY array_position(i.indkey, a.attnum)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(pk, ["group_name", "topic", "partition"]);
    // Applying again is a no-op.
    projector::migrate(&pool).await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn happy_path_matches_the_ledger_and_verify_catches_tampering(pool: PgPool) {
    let s = scenario(4, 300);
    let kinds: BTreeSet<&str> = s
        .partitions
        .iter()
        .flatten()
        .map(|(_, e)| match e {
            EventJson::AccountCreated(_) => "account_created",
            EventJson::Transfer(t) => t.kind.as_str(),
        })
        .collect();
    assert_eq!(kinds, BTreeSet::from(["account_created", "created", "posted", "voided", "expired"]));
    apply_all(&pool, &s, &[0, 1, 2, 3], 7).await;
    assert_matches_ledger(&pool, &s).await;
    let offsets = load_offsets(&pool, GROUP, TOPIC).await.unwrap();
    let want: std::collections::BTreeMap<u32, u64> =
        s.partitions.iter().enumerate().map(|(p, v)| (p as u32, v.len() as u64)).collect();
    assert_eq!(offsets, want);
    assert!(load_offsets(&pool, "other-group", TOPIC).await.unwrap().is_empty());

    // Tampering is reported.
    sqlx::query("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 'user-3'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM accounts WHERE id = 'user-5'").execute(&pool).await.unwrap();
    let diffs = verify(&pool, &s.snapshots()).await.unwrap();
    let want_cp = s.ledger.account("user-3").unwrap().balances.credits_posted;
    assert_eq!(
        diffs,
        vec![
            Difference::Field {
                id: "user-3".into(),
                field: "credits_posted",
                db: (want_cp + 1).to_string(),
                ledger: want_cp.to_string()
            },
            Difference::MissingInDb { id: "user-5".into() },
        ],
    );
    // An account the ledger does not know is reported too.
    sqlx::query("INSERT INTO accounts (id) VALUES ('ghost')").execute(&pool).await.unwrap();
    let diffs = verify(&pool, &s.snapshots()).await.unwrap();
    assert!(diffs.contains(&Difference::NotInLedger { id: "ghost".into() }), "{diffs:#?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn redelivered_batches_change_nothing(pool: PgPool) {
    let s = scenario(2, 80);
    let n = s.partitions[0].len();
    assert!(n > 12, "scenario too small: {n}");
    assert_eq!(apply_range(&pool, &s, 0, 0, 5, 1).await, Applied { applied: 5, skipped: 0, next_offset: 5 });
    let before = dump(&pool).await;
    // Crash after the PostgreSQL commit, before the log commit: the same batch again.
    assert_eq!(apply_range(&pool, &s, 0, 0, 5, 1).await, Applied { applied: 0, skipped: 5, next_offset: 5 });
    // Even from a newer generation (the partition moved to another member).
    assert_eq!(apply_range(&pool, &s, 0, 0, 5, 2).await, Applied { applied: 0, skipped: 5, next_offset: 5 });
    assert_eq!(dump(&pool).await, before);
    // A batch overlapping the applied prefix applies only the rest.
    assert_eq!(apply_range(&pool, &s, 0, 3, 9, 2).await, Applied { applied: 4, skipped: 2, next_offset: 9 });
    // A batch that starts after the stored offset would skip records: refused.
    let err = apply_batch(&pool, &fence(0, 2), &s.partitions[0][10..12], 12).await.unwrap_err();
    assert!(matches!(err, Error::Gap { stored: 9, first: 10, .. }), "{err}");
    // Malformed batches are refused.
    let err = apply_batch(&pool, &fence(0, 2), &s.partitions[0][9..12], 11).await.unwrap_err();
    assert!(matches!(err, Error::InvalidBatch(_)), "{err}");
    // An empty batch at the stored offset is a no-op.
    assert_eq!(
        apply_batch(&pool, &fence(0, 2), &[], 9).await.unwrap(),
        Applied { applied: 0, skipped: 0, next_offset: 9 }
    );
    // Then everything, in random-sized batches, with redeliveries: same state
    // as one clean pass.
    let mut from = 9;
    while from < n {
        let to = (from + 1 + from % 5).min(n);
        apply_range(&pool, &s, 0, from, to, 2).await;
        apply_range(&pool, &s, 0, from.saturating_sub(2), to, 2).await;
        from = to;
    }
    let once = dump(&pool).await;
    apply_range(&pool, &s, 0, 0, n, 2).await;
    assert_eq!(dump(&pool).await, once);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_older_generation_is_fenced_and_writes_nothing(pool: PgPool) {
    let s = scenario(1, 40);
    assert_eq!(apply_range(&pool, &s, 0, 0, 10, 5).await.applied, 10);
    let before = dump(&pool).await;
    // The zombie of generation 4 tries the next batch: new rows it would write.
    let err = apply_batch(&pool, &fence(0, 4), &s.partitions[0][10..20], 20).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { stored: 5, ours: 4, partition: 0, .. }), "{err}");
    assert!(err.to_string().contains("fenced"), "{err}");
    assert_eq!(dump(&pool).await, before, "a fenced batch must write nothing");
    // The current owner continues; a newer one takes over and fences it.
    assert_eq!(apply_range(&pool, &s, 0, 10, 20, 5).await.applied, 10);
    assert_eq!(apply_range(&pool, &s, 0, 20, 25, 6).await.applied, 5);
    let err = apply_batch(&pool, &fence(0, 5), &s.partitions[0][25..30], 30).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { stored: 6, ours: 5, .. }), "{err}");
    // Other partitions are fenced independently.
    let other = apply_batch(&pool, &Fence { partition: 1, ..fence(0, 1) }, &[], 0).await.unwrap();
    assert_eq!(other.applied, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn partition_interleavings_give_the_same_state(pool: PgPool) {
    let s = scenario(4, 250);
    let mut dumps = Vec::new();
    // Partition by partition, in two opposite orders, then round-robin with
    // varying batch sizes.
    for order in [vec![0, 1, 2, 3], vec![3, 2, 1, 0]] {
        apply_all(&pool, &s, &order, 11).await;
        assert_matches_ledger(&pool, &s).await;
        dumps.push(dump(&pool).await);
        sqlx::query("TRUNCATE accounts, transfers, projector_offsets").execute(&pool).await.unwrap();
    }
    let mut pos = [0usize; 4];
    let mut round = 0;
    while (0..4).any(|p| pos[p] < s.partitions[p].len()) {
        for p in [2, 0, 3, 1] {
            let n = s.partitions[p].len();
            if pos[p] < n {
                let to = (pos[p] + 1 + (round * 7 + p * 3) % 13).min(n);
                apply_range(&pool, &s, p, pos[p], to, 1).await;
                pos[p] = to;
            }
        }
        round += 1;
    }
    assert_matches_ledger(&pool, &s).await;
    dumps.push(dump(&pool).await);
    assert_eq!(dumps[0], dumps[1]);
    assert_eq!(dumps[0], dumps[2]);
    assert!(s.events() > 250, "scenario too small: {}", s.events());
}

#[sqlx::test(migrations = "../migrations")]
async fn amounts_near_the_limits_are_exact(pool: PgPool) {
    // Real ledger: balances pushed to BALANCE_MAX, transfers of 2^63-1.
    let mut s = Sim::new(2);
    s.account("equity", true);
    s.account("rich", false);
    s.account("other", false);
    s.ledger.test_force_move("equity", "rich", BALANCE_MAX - 2 * (i64::MAX as u128)).unwrap();
    s.transfer("max1", "equity", "rich", i64::MAX as u64, false, None);
    s.transfer("max2", "equity", "rich", i64::MAX as u64, true, None);
    s.apply(Command::PostPending { pending_id: "max2".into(), amount: None });
    s.transfer("max3", "rich", "other", i64::MAX as u64, true, Some(1));
    apply_all(&pool, &s, &[0, 1], 2).await;
    assert_matches_ledger(&pool, &s).await;
    let rich: (String, String, String) =
        sqlx::query_as("SELECT credits_posted::text, balance::text, available::text FROM accounts WHERE id = 'rich'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rich.0, BALANCE_MAX.to_string());
    assert_eq!(rich.1, i128::MAX.to_string());
    assert_eq!(rich.2, (i128::MAX - i128::from(i64::MAX)).to_string());
    let eq: String =
        sqlx::query_scalar("SELECT balance::text FROM accounts WHERE id = 'equity'").fetch_one(&pool).await.unwrap();
    assert_eq!(eq, (-i128::MAX).to_string());
    let amount: i64 =
        sqlx::query_scalar("SELECT amount FROM transfers WHERE id = 'max1'").fetch_one(&pool).await.unwrap();
    assert_eq!(amount, i64::MAX);

    // Synthetic extremes beyond what one account can hold: u128::MAX counters.
    let b = Balances { debits_posted: BALANCE_MAX, credits_posted: 0, debits_pending: 0, credits_pending: u128::MAX };
    let st = |id: &str| AccountState {
        id: id.into(),
        balances: b,
        updated_index: i64::MAX as u64,
        version: 1 << 62,
        closed: false,
    };
    let e = LedgerEvent::Transfer(TransferEvent {
        kind: TransferEventKind::Created,
        index: i64::MAX as u64,
        timestamp_ms: 1,
        transfer_id: "x".into(),
        debit_account_id: "a".into(),
        credit_account_id: "b".into(),
        currency: "USD".into(),
        amount: i64::MAX as u64,
        event_amount: i64::MAX as u64,
        pending: true,
        expires_at_ms: None,
        status: TransferStatus::Pending,
        metadata: "{}".into(),
        debit_account: st("a"),
        credit_account: st("b"),
        flags: ledger_core::TransferFlags::NONE,
    });
    let ev = ledger_events::decode(&ledger_events::encode(&e)).unwrap();
    apply_batch(&pool, &Fence { group: "limits", ..fence(0, 1) }, &[(0, ev)], 1).await.unwrap();
    let row: (String, String, String, i64) = sqlx::query_as(
        "SELECT debits_posted::text, credits_pending::text, balance::text, version FROM accounts WHERE id = 'a'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row, (BALANCE_MAX.to_string(), u128::MAX.to_string(), (-i128::MAX).to_string(), 1 << 62));

    // A u64 that does not fit bigint is refused, not wrapped: a dead letter, and the projection
    // goes on (issue 21).
    let mut big = e.clone();
    if let LedgerEvent::Transfer(t) = &mut big {
        t.index = u64::MAX;
        t.transfer_id = "y".into();
    }
    let ev = ledger_events::decode(&ledger_events::encode(&big)).unwrap();
    let a = apply_batch(&pool, &Fence { group: "limits", ..fence(0, 1) }, &[(1, ev)], 2).await.unwrap();
    assert_eq!(a.next_offset, 2);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE id = 'y'").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 0);
    let (dead, list) = projector::dead_letters(&pool).await.unwrap();
    assert_eq!(dead, 1);
    assert!(list[0].sqlstate == "22003" && list[0].reason.contains("bigint"), "{:?}", list[0]);
}

#[sqlx::test(migrations = "../migrations")]
async fn account_created_after_its_transfers_keeps_the_balances(pool: PgPool) {
    let mut s = Sim::new(1);
    s.account("equity", true);
    s.account("alice", false);
    s.transfer("t1", "equity", "alice", 42, false, None);
    // The transfer's partition first, then the account creations.
    let p = &s.partitions[0];
    let t1 = p.iter().position(|(_, e)| matches!(e, EventJson::Transfer(_))).unwrap();
    let reordered: Vec<(u64, EventJson)> =
        [p[t1].1.clone(), p[0].1.clone(), p[1].1.clone()].into_iter().enumerate().map(|(i, e)| (i as u64, e)).collect();
    apply_batch(&pool, &fence(0, 1), &reordered[..1], 1).await.unwrap();
    apply_batch(&pool, &fence(0, 1), &reordered[1..], 3).await.unwrap();
    assert_matches_ledger(&pool, &s).await;
    let md: String =
        sqlx::query_scalar("SELECT metadata::text FROM accounts WHERE id = 'alice'").fetch_one(&pool).await.unwrap();
    assert_eq!(md, r#"{"name": "alice"}"#);
}
