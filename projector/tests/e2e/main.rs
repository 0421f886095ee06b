//! The projector end to end: real `lognode` (3, fsync on) and `gateway`
//! processes, `projector` processes, a fresh PostgreSQL database per test.
//! Needs `DATABASE_URL` (fails loudly without it) and the `lognode` and
//! `gateway` binaries (`cargo build -p lognode -p gateway`, same
//! `CARGO_TARGET_DIR`; `cargo test --workspace` builds them).
#![allow(clippy::unwrap_used)]

mod support;
mod webhooks;

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_client::{Consistency, NewAccount, NewPosting, NewTransaction, NewTransfer};
use sqlx::Row;
use support::{Cluster, Db, Proxy, SERIAL, caught_up, pg_target, transfer, wait_for};

const CATCH_UP: Duration = Duration::from_secs(90);

/// PostgreSQL's account rows equal the ledger's (read linearizably), field by field.
async fn assert_accounts_equal(c: &Cluster, db: &Db) {
    let rows = sqlx::query(
        "SELECT id, currency, allow_overdraft, debits_posted::text, credits_posted::text, debits_pending::text, \
         credits_pending::text, balance::text, available::text, version FROM accounts ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        let id: String = r.get(0);
        let a = c.client.account(&id, Consistency::Strong).await.unwrap();
        let got: (Option<String>, Option<bool>, String, String, String, String, String, String, i64) =
            (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7), r.get(8), r.get(9));
        let want = (
            Some(a.currency.clone()),
            Some(a.allow_overdraft),
            a.debits_posted.to_string(),
            a.credits_posted.to_string(),
            a.debits_pending.to_string(),
            a.credits_pending.to_string(),
            a.balance.to_string(),
            a.available.to_string(),
            a.version as i64,
        );
        assert_eq!(got, want, "account {id}: PostgreSQL vs ledger");
    }
}

/// Every `prefix{0..n}` transfer is in PostgreSQL exactly once.
async fn assert_transfers_present(db: &Db, prefix: &str, n: usize) {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM transfers WHERE id LIKE $1 || '%'")
        .bind(prefix)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in ids {
        *seen.entry(id).or_default() += 1;
    }
    for j in 0..n {
        let id = format!("{prefix}{j}");
        assert_eq!(seen.get(&id).copied(), Some(1), "transfer {id} must be in PostgreSQL exactly once");
    }
    assert_eq!(seen.len(), n, "unexpected {prefix}* transfers in PostgreSQL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_rows_equal_the_ledger_and_verify_catches_tampering() {
    let _serial = SERIAL.lock().await;
    let db = Db::fresh().await;
    let c = Cluster::start().await;
    c.accounts(5).await;
    c.transfers("t", 300, 5).await;
    // Two-phase: posted in full, posted in part, voided, left pending.
    for (i, id) in ["p-full", "p-part", "p-void", "p-open"].iter().enumerate() {
        let t = NewTransfer { pending: true, amount: 100, ..transfer(id, 5, i) };
        c.client.create_transfer(&t).await.unwrap();
    }
    c.client.post_pending("p-full", None).await.unwrap();
    c.client.post_pending("p-part", Some(40)).await.unwrap();
    c.client.void_pending("p-void").await.unwrap();
    // Transactions (issue 17): of two and three postings, and the reversal of the first.
    let tx = |id: &str, postings: &[(&str, &str, u64)]| NewTransaction {
        id: id.to_owned(),
        postings: postings
            .iter()
            .map(|&(d, cr, amount)| NewPosting {
                debit_account_id: d.to_owned(),
                credit_account_id: cr.to_owned(),
                amount,
                currency: "USD".to_owned(),
            })
            .collect(),
        metadata: Some(serde_json::json!({"order": id})),
    };
    c.client.create_transaction(&tx("pay-1", &[("user-0", "user-1", 5), ("user-1", "user-2", 2)])).await.unwrap();
    let three = [("equity", "user-3", 7), ("user-3", "user-4", 3), ("user-4", "user-0", 1)];
    c.client.create_transaction(&tx("pay-2", &three)).await.unwrap();
    let rev = c.client.revert_transaction("pay-1").await.unwrap().body.id;
    // Rules 10 and 11: a liability-side account, a balancing credit that moves less than asked,
    // and a pending closing debit that leaves user-2 closed.
    let liab = NewAccount {
        id: "liab".into(),
        currency: "USD".into(),
        allow_overdraft: true,
        credits_must_not_exceed_debits: true,
        metadata: None,
    };
    c.client.create_account(&liab).await.unwrap();
    let flagged = |id: &str, d: &str, cr: &str, amount: u64| NewTransfer {
        debit_account_id: d.into(),
        credit_account_id: cr.into(),
        amount,
        ..transfer(id, 5, 0)
    };
    c.client.create_transfer(&flagged("liab-1", "liab", "user-0", 50)).await.unwrap();
    let bal = NewTransfer { balancing_credit: true, ..flagged("bal-c", "user-1", "liab", 1_000) };
    assert_eq!(c.client.create_transfer(&bal).await.unwrap().body.amount, 50, "balanced down to liab's debits");
    let close = NewTransfer { pending: true, closing_debit: true, ..flagged("close-u2", "user-2", "user-3", 1) };
    c.client.create_transfer(&close).await.unwrap();

    let mut proj = c.projector("projector", &db.url, &[]);
    caught_up(&c, &db, 314, 7, CATCH_UP).await;
    assert_accounts_equal(&c, &db).await;
    assert_transfers_present(&db, "t", 300).await;
    for (id, status, posted) in [
        ("p-full", "posted", Some(100)),
        ("p-part", "posted", Some(40)),
        ("p-void", "voided", Some(0)),
        ("p-open", "pending", None),
    ] {
        let r = sqlx::query("SELECT status, posted_amount, amount FROM transfers WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let got: (String, Option<i64>, i64) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(got, (status.to_owned(), posted, 100), "transfer {id}");
        let l = c.client.transfer(id, Consistency::Strong).await.unwrap();
        assert_eq!(l.status, status, "ledger's status of {id}");
    }
    // Each transaction whole in the `transactions` view, its postings marked in `transfers`.
    let rows = sqlx::query("SELECT id, postings, postings_projected, metadata::text FROM transactions ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let got: Vec<(String, Option<i32>, i64, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    let want = |id: &str, n: i32, md: &str| (id.to_owned(), Some(n), i64::from(n), Some(md.to_owned()));
    assert_eq!(
        got,
        [
            want("pay-1", 2, r#"{"order": "pay-1"}"#),
            want("pay-2", 3, r#"{"order": "pay-2"}"#),
            want(&rev, 2, r#"{"reverses": "pay-1"}"#)
        ]
    );
    let marks =
        sqlx::query("SELECT id, transaction_id, posting FROM transfers WHERE id IN ('pay-2:1', 't7') ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let marks: Vec<(String, Option<String>, Option<i32>)> =
        marks.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(marks, [("pay-2:1".to_owned(), Some("pay-2".to_owned()), Some(1)), ("t7".to_owned(), None, None)]);
    // The log's committed offsets follow PostgreSQL's: no lag left in the group.
    wait_for("zero lag in GET /v1/groups/projector", Duration::from_secs(20), || async {
        let g = c.client.group("projector").await.ok()?;
        let lag: u64 = g.partitions.iter().map(|p| p.lag.unwrap_or(u64::MAX / 16)).sum();
        (g.partitions.len() == 8 && lag == 0).then_some(())
    })
    .await;

    let (ok, out) = c.verify(&db.url);
    assert!(ok, "verify must pass:\n{out}");
    assert!(out.contains("7 accounts equal the ledger"), "{out}");
    let flags: Vec<(String, Vec<String>, i64)> =
        sqlx::query("SELECT id, flags, amount FROM transfers WHERE id IN ('bal-c', 'close-u2', 'liab-1') ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        flags,
        [
            ("bal-c".to_owned(), s(&["balancing_credit"]), 50),
            ("close-u2".to_owned(), s(&["closing_debit"]), 1),
            ("liab-1".to_owned(), s(&[]), 50)
        ]
    );
    let acc: Vec<(String, Option<bool>, bool)> = sqlx::query(
        "SELECT id, credits_must_not_exceed_debits, closed FROM accounts WHERE id IN ('liab', 'user-2', 'user-3') ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(
        acc,
        [
            ("liab".to_owned(), Some(true), false),
            ("user-2".to_owned(), Some(false), true),
            ("user-3".to_owned(), Some(false), false)
        ]
    );

    // Graceful stop: SIGTERM → leaves the group, exits 0.
    let st = proj.terminate(Duration::from_secs(15));
    assert!(st.is_some_and(|s| s.success()), "projector did not stop cleanly:\n{}", proj.tail(20));

    sqlx::query("UPDATE accounts SET credits_posted = credits_posted + 1, balance = balance + 1 WHERE id = 'user-3'")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM transfers WHERE id = 'pay-2:1'").execute(&db.pool).await.unwrap();
    let (ok, out) = c.verify(&db.url);
    assert!(!ok, "verify must fail on a tampered row:\n{out}");
    assert!(out.contains("user-3") && out.contains("credits_posted"), "{out}");
    assert!(out.contains(r#"transaction "pay-2": 2 of its 3 postings in PostgreSQL"#), "{out}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_a_backlog_then_restart_applies_everything_exactly_once() {
    let _serial = SERIAL.lock().await;
    let db = Db::fresh().await;
    let c = Cluster::start().await;
    c.accounts(20).await;
    const BACKLOG: usize = 20_000;
    c.transfers("b", BACKLOG, 20).await;

    // Small transactions, so the kill lands among many of them.
    let mut proj = c.projector("projector-1", &db.url, &["--batch-max", "100"]);
    let at_kill = wait_for("the projector to be part-way", CATCH_UP, || async {
        let n = db.count("transfers").await;
        (n >= 1_000).then_some(n)
    })
    .await;
    proj.kill9();
    let after_kill = db.count("transfers").await;
    assert!(
        (after_kill as usize) < BACKLOG,
        "the projector finished the backlog before the kill ({at_kill} then {after_kill} rows): nothing was tested"
    );

    // More records while it is down, then restart.
    c.transfers("c", 500, 20).await;
    let mut proj = c.projector("projector-2", &db.url, &["--batch-max", "100"]);
    caught_up(&c, &db, (BACKLOG + 500) as i64, 21, CATCH_UP).await;
    assert!(proj.running(), "projector died:\n{}", proj.tail(20));
    assert_transfers_present(&db, "b", BACKLOG).await;
    assert_transfers_present(&db, "c", 500).await;
    assert_accounts_equal(&c, &db).await;
    let (ok, out) = c.verify(&db.url);
    assert!(ok, "verify must pass:\n{out}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_split_the_partitions_and_the_survivor_takes_over() {
    let _serial = SERIAL.lock().await;
    let db = Db::fresh().await;
    let c = Cluster::start().await;
    c.accounts(10).await;
    c.transfers("a", 2_000, 10).await;
    let mut one = c.projector("projector-a", &db.url, &[]);
    let mut two = c.projector("projector-b", &db.url, &[]);
    wait_for("two members with 4 partitions each", Duration::from_secs(30), || async {
        let g = c.client.group("projector").await.ok()?;
        (g.members.len() == 2 && g.members.iter().all(|m| m.assignments.len() == 4)).then_some(())
    })
    .await;
    caught_up(&c, &db, 2_000, 11, CATCH_UP).await;

    one.kill9();
    c.transfers("z", 2_000, 10).await;
    // The dead member is expired after its session (10 s); the survivor gets all 8.
    wait_for("one member with all 8 partitions", Duration::from_secs(40), || async {
        let g = c.client.group("projector").await.ok()?;
        (g.members.len() == 1 && g.members[0].assignments.len() == 8).then_some(())
    })
    .await;
    caught_up(&c, &db, 4_000, 11, CATCH_UP).await;
    assert!(two.running(), "the survivor died:\n{}", two.tail(20));
    assert_transfers_present(&db, "a", 2_000).await;
    assert_transfers_present(&db, "z", 2_000).await;
    assert_accounts_equal(&c, &db).await;
    let (ok, out) = c.verify(&db.url);
    assert!(ok, "verify must pass:\n{out}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_off_then_back_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let db = Db::fresh().await;
    let proxy = Proxy::start(pg_target()).await;
    let c = Cluster::start().await;
    c.accounts(10).await;
    c.transfers("x", 1_000, 10).await;
    let mut proj = c.projector("projector", &db.url_via(proxy.port), &[]);
    caught_up(&c, &db, 1_000, 11, CATCH_UP).await;

    // Cut every connection and refuse new ones while the ledger moves on.
    proxy.cut();
    c.transfers("y", 2_000, 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(db.count("transfers").await, 1_000, "nothing can be written while PostgreSQL is cut off");
    assert!(proj.running(), "the projector must wait for PostgreSQL, not exit:\n{}", proj.tail(40));
    proxy.restore().await;

    caught_up(&c, &db, 3_000, 11, CATCH_UP).await;
    assert_transfers_present(&db, "x", 1_000).await;
    assert_transfers_present(&db, "y", 2_000).await;
    assert_accounts_equal(&c, &db).await;
    let (ok, out) = c.verify(&db.url);
    assert!(ok, "verify must pass:\n{out}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_cleanly_to_an_empty_database_and_again() {
    let db = Db::fresh().await;
    for round in 0..2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
            .args(["migrate", "--database-url", &db.url])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for t in ["accounts", "projector_offsets", "transfers"] {
        assert!(tables.iter().any(|x| x == t), "table {t} missing: {tables:?}");
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_behind_the_logs_committed_offsets_is_filled_from_the_log_not_skipped() {
    let _serial = SERIAL.lock().await;
    let first = Db::fresh().await;
    let c = Cluster::start().await;
    c.accounts(10).await;
    c.transfers("r", 1_500, 10).await;
    let mut proj = c.projector("projector-1", &first.url, &[]);
    caught_up(&c, &first, 1_500, 11, CATCH_UP).await;
    // The log's committed offsets reach the end too.
    wait_for("zero lag in the group", Duration::from_secs(20), || async {
        let g = c.client.group("projector").await.ok()?;
        let lag: u64 = g.partitions.iter().map(|p| p.lag.unwrap_or(1)).sum();
        (g.partitions.len() == 8 && lag == 0).then_some(())
    })
    .await;
    assert!(proj.terminate(Duration::from_secs(15)).is_some_and(|s| s.success()), "{}", proj.tail(20));

    // A replaced (empty) database under the same group: the gateway would
    // deliver from the committed offsets (the end); the projector must
    // read everything before them from the log instead of skipping it.
    let second = Db::fresh().await;
    c.transfers("s", 500, 10).await;
    let _proj = c.projector("projector-2", &second.url, &[]);
    caught_up(&c, &second, 2_000, 11, CATCH_UP).await;
    assert_transfers_present(&second, "r", 1_500).await;
    assert_transfers_present(&second, "s", 500).await;
    assert_accounts_equal(&c, &second).await;
    let (ok, out) = c.verify(&second.url);
    assert!(ok, "verify must pass:\n{out}");
    first.drop_db().await;
    second.drop_db().await;
}
