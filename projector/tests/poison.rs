//! A record PostgreSQL refuses does not stop the projection (issue 21): it goes to
//! `projector_dead_letters` with PostgreSQL's reason, the records around it are projected, and
//! the metric and `dead_letters` (what `projector verify` reports) show it. Against a real
//! PostgreSQL (`DATABASE_URL`; each test gets a fresh database, and fails without one).

#![allow(clippy::unwrap_used)]

use ledger_core::{ApplyContext, Command, Ledger, NewAccount, NewTransfer};
use ledger_events::{EventJson, TOPIC};
use projector::{Applied, Fence, apply_batch, dead_letters};
use sqlx::{PgPool, Row};

/// The ledger's events for `cmds`, through the wire format, with `poison` applied to the JSON
/// text of event `poisoned` (what an older node or a bug could have put in the log).
fn events(cmds: &[Command], poisoned: usize, poison: impl Fn(String) -> String) -> Vec<(u64, EventJson)> {
    let mut ledger = Ledger::default();
    let mut out = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        let (_, evs) = ledger.apply(c, ApplyContext { index: i as u64 + 1, timestamp_ms: 1_700_000_000_000 });
        for e in evs {
            let mut text = String::from_utf8(ledger_events::encode(&e)).unwrap();
            if out.len() == poisoned {
                text = poison(text);
            }
            let offset = out.len() as u64;
            out.push((offset, ledger_events::decode(text.as_bytes()).unwrap()));
        }
    }
    out
}

fn account(id: &str, overdraft: bool) -> Command {
    Command::CreateAccount(NewAccount {
        credits_must_not_exceed_debits: false,
        id: id.into(),
        currency: "USD".into(),
        allow_overdraft: overdraft,
        metadata: format!(r#"{{"name":"{id}"}}"#),
    })
}

fn transfer(id: &str, d: &str, c: &str, amount: u64) -> Command {
    Command::CreateTransfer(NewTransfer {
        flags: Default::default(),
        id: id.into(),
        debit_account_id: d.into(),
        credit_account_id: c.into(),
        amount,
        currency: "USD".into(),
        metadata: "{}".into(),
        pending: false,
        timeout_ms: None,
    })
}

const FENCE: Fence<'static> = Fence { group: "projector", topic: TOPIC, partition: 0, generation: 1 };

#[sqlx::test(migrations = "../migrations")]
async fn a_record_postgresql_refuses_is_dead_lettered_and_projection_goes_on(pool: PgPool) {
    let cmds = [account("a1", true), account("bad", false), account("a2", false), transfer("t1", "a1", "a2", 7)];
    // Issue 21's request: a NUL escape in metadata, which jsonb cannot hold.
    let evs = events(&cmds, 1, |t| t.replace(r#"{"name":"bad"}"#, r#"{"a":"\u0000"}"#));
    assert_eq!(evs.len(), 4);

    let a = apply_batch(&pool, &FENCE, &evs, 4).await.expect("the batch is applied, not stopped");
    assert_eq!(a, Applied { applied: 4, skipped: 0, next_offset: 4 });
    let ids: Vec<String> = sqlx::query("SELECT id FROM accounts WHERE created_index IS NOT NULL ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, ["a1", "a2"], "the valid accounts before and after the bad one are projected");
    let t: i64 = sqlx::query("SELECT count(*) FROM transfers WHERE id = 't1'").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(t, 1, "the transfer after the bad record is projected");

    let (n, list) = dead_letters(&pool).await.unwrap();
    assert_eq!(n, 1);
    let d = &list[0];
    assert_eq!((d.partition, d.offset, d.kind.as_str(), d.entity_id.as_str()), (0, 1, "account_created", "bad"));
    assert_eq!(d.sqlstate, "22P05", "{d:?}");
    assert!(d.reason.contains("Unicode"), "PostgreSQL's reason is kept: {d:?}");
    let text = projector::metrics::render(&pool).await;
    assert!(text.contains("\nprojector_dead_letters 1\n"), "{text}");

    // Redelivery changes nothing (no second dead letter), and later records still flow.
    let a = apply_batch(&pool, &FENCE, &evs, 4).await.unwrap();
    assert_eq!(a, Applied { applied: 0, skipped: 4, next_offset: 4 });
    assert_eq!(dead_letters(&pool).await.unwrap().0, 1);
    let more = events(&[account("a3", false)], usize::MAX, |t| t);
    let more: Vec<(u64, EventJson)> = more.into_iter().map(|(_, e)| (4, e)).collect();
    apply_batch(&pool, &FENCE, &more, 5).await.unwrap();
    let a3: i64 = sqlx::query("SELECT count(*) FROM accounts WHERE id = 'a3'").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(a3, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_database_that_is_not_utf8_is_the_only_other_refusal_and_is_checked(pool: PgPool) {
    // What else PostgreSQL could refuse from a ledger event, checked against the schema: amounts
    // (<= 2^63-1) fit bigint, u128/i128 balances fit numeric(39,0), ids (<= 128 bytes) fit a
    // btree index entry, metadata (<= 4 KiB, nesting <= 128) fits jsonb. The encoding is the one
    // left: the projector needs a UTF8 database (checked at start-up).
    let enc: String = sqlx::query("SHOW server_encoding").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(enc, "UTF8");
    projector::db::check_database(&pool).await.expect("a UTF8 database is accepted");
    let big = events(
        &[account("x", true), account("y", false), transfer("big", "x", "y", ledger_core::limits::AMOUNT_MAX)],
        usize::MAX,
        |t| t,
    );
    let fence = Fence { partition: 1, ..FENCE };
    let a = apply_batch(&pool, &fence, &big, 3).await.unwrap();
    assert_eq!(a.applied, 3);
    assert_eq!(dead_letters(&pool).await.unwrap().0, 0, "the largest amount is stored, not refused");
}
