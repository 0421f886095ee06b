//! Issue 4: the ledger on 3 real `lognode` processes (127.0.0.1). 16 concurrent clients move money
//! between 100 accounts funded from an overdraft-allowed equity account, retrying with the SAME
//! transfer ids on timeouts/unavailable/not-leader; the leader is killed with SIGKILL midway and
//! restarted. Afterwards every node reports identical balances (read with `min_index`), money is
//! conserved, every acknowledged transfer was applied exactly once, and the ledger events on the
//! `ledger` topic are contiguous per partition and identical on every node.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Proc, client, leader_of, new_account, new_transfer, read_all, wait_for};
use ledger_core::{Command, Outcome, ResultCode};
use ledger_proto::LEADER_ADDR_METADATA;
use ledger_proto::convert;
use ledger_proto::ledger::{GetAccountRequest, GetTransferRequest, ReadOptions};
use tokio::sync::Mutex;
use tonic::Code;

/// Concurrent clients.
const CLIENTS: usize = 16;
/// Transfers each client makes (16 × 40 = 640).
const TRANSFERS_PER_CLIENT: usize = 40;
/// Accounts money moves between.
const ACCOUNTS: usize = 100;
/// Initial funding of each account (from equity).
const FUNDING: u64 = 1_000_000;
/// Attempts per command before the test fails.
const ATTEMPTS_MAX: usize = 100;
/// The whole transfer phase must finish within this.
const PHASE_DEADLINE: Duration = Duration::from_secs(90);
/// One partition's records: (offset, value).
type Partition = Vec<(u64, Vec<u8>)>;

/// Partitions of the built-in ledger topic.
const LEDGER_PARTITIONS: u32 = 8;

fn acct(i: usize) -> String {
    format!("acct-{i:03}")
}

/// Submits `cmd` until a node acknowledges it, following not-leader hints and rotating on
/// timeouts/unavailable. Retries resend the SAME command (same ids): the ledger makes it idempotent.
async fn submit(addrs: &[String], current: &Mutex<String>, cmd: &Command, deadline: Instant) -> (Outcome, u64) {
    for _ in 0..ATTEMPTS_MAX {
        assert!(Instant::now() < deadline, "submit phase over its deadline");
        let addr = current.lock().await.clone();
        let mut req = tonic::Request::new(convert::command_to_proto(cmd));
        req.set_timeout(Duration::from_secs(5));
        match client(&addr).submit(req).await {
            Ok(r) => {
                let r = r.into_inner();
                return (convert::outcome_from_proto(r.outcome.unwrap()).unwrap(), r.log_index);
            }
            Err(s) => {
                assert!(
                    matches!(
                        s.code(),
                        Code::FailedPrecondition
                            | Code::Unavailable
                            | Code::DeadlineExceeded
                            | Code::Cancelled
                            | Code::Unknown
                    ),
                    "unexpected status {s:?}"
                );
                let leader = s.metadata().get(LEADER_ADDR_METADATA).and_then(|v| v.to_str().ok()).map(String::from);
                let next = match (s.code(), leader) {
                    (Code::FailedPrecondition, Some(l)) => l,
                    _ => {
                        let i = addrs.iter().position(|a| *a == addr).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        addrs[(i + 1) % addrs.len()].clone()
                    }
                };
                *current.lock().await = next;
            }
        }
    }
    panic!("{cmd:?} not acknowledged after {ATTEMPTS_MAX} attempts");
}

fn transfer_code(o: &Outcome) -> ResultCode {
    match o {
        Outcome::Transfer(t) => t.code,
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// Balance of every account (and equity) on `addr`, once it applied `min_index`.
async fn balances(addr: &str, ids: &[String], min_index: u64) -> BTreeMap<String, i128> {
    let mut c = client(addr);
    let mut out = BTreeMap::new();
    for id in ids {
        let read = Some(ReadOptions { linearizable: false, min_index, wait_ms: 20_000 });
        let deadline = Instant::now() + Duration::from_secs(30);
        let r = loop {
            match c.get_account(GetAccountRequest { id: id.clone(), as_of_index: None, read }).await {
                Ok(r) => break r.into_inner(),
                Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("GetAccount {id} on {addr}: {e}"),
            }
        };
        assert!(r.applied_index >= min_index);
        let a = convert::account_from_proto(r.account.unwrap_or_else(|| panic!("{id} missing on {addr}"))).unwrap();
        out.insert(id.clone(), a.balance);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_on_processes_survives_kill9_of_the_leader_exactly_once() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let n1 = Proc::start(1, dir.path(), None, true, &[]);
    let seed = n1.gossip.clone();
    let n2 = Proc::start(2, dir.path(), Some(&seed), false, &[]);
    let n3 = Proc::start(3, dir.path(), Some(&seed), false, &[]);
    let addrs = vec![n1.grpc.clone(), n2.grpc.clone(), n3.grpc.clone()];
    let mut procs = vec![n1, n2, n3];
    let (_, leader_addr) = wait_for("3 voters and a leader", Duration::from_secs(60), || leader_of(&addrs[0], 3)).await;
    let deadline = Instant::now() + PHASE_DEADLINE;
    let current = Mutex::new(leader_addr.clone());

    // Setup: equity, 100 accounts, funding.
    let (o, _) = submit(&addrs, &current, &new_account("equity", true), deadline).await;
    assert!(matches!(o, Outcome::Account(a) if a.code == ResultCode::Created), "{o:?}");
    for i in 0..ACCOUNTS {
        let (o, _) = submit(&addrs, &current, &new_account(&acct(i), false), deadline).await;
        assert!(matches!(o, Outcome::Account(a) if a.code == ResultCode::Created), "{o:?}");
    }
    let mut fund_index = 0;
    for i in 0..ACCOUNTS {
        let cmd = new_transfer(&format!("fund-{i}"), "equity", &acct(i), FUNDING);
        let (o, idx) = submit(&addrs, &current, &cmd, deadline).await;
        assert_eq!(transfer_code(&o), ResultCode::Created);
        fund_index = idx;
    }
    // Replay of an acknowledged command: `exists`, with the original decision, nothing changes.
    let (o, _) = submit(&addrs, &current, &new_transfer("fund-0", "equity", &acct(0), FUNDING), deadline).await;
    match o {
        Outcome::Transfer(t) => {
            assert_eq!(t.code, ResultCode::Exists);
            assert!(t.decision.unwrap().index < fund_index);
        }
        other => panic!("{other:?}"),
    }
    // Read-your-writes on a follower with min_index.
    let follower = addrs.iter().find(|a| **a != leader_addr).unwrap();
    let b = balances(follower, &[acct(ACCOUNTS - 1)], fund_index).await;
    assert_eq!(b[&acct(ACCOUNTS - 1)], i128::from(FUNDING));

    // 16 clients move money; the leader is killed with SIGKILL midway.
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let addrs = addrs.clone();
        let current = Arc::new(Mutex::new(leader_addr.clone()));
        let acked_count = Arc::clone(&acked_count);
        tasks.spawn(async move {
            let mut acked = Vec::with_capacity(TRANSFERS_PER_CLIENT);
            for s in 0..TRANSFERS_PER_CLIENT {
                let from = (c * 7 + s * 13) % ACCOUNTS;
                let to = (from + 1 + (c + s) % (ACCOUNTS - 1)) % ACCOUNTS;
                let amount = 1 + ((c * 31 + s * 17) % 100) as u64;
                let id = format!("x-{c}-{s}");
                let (o, idx) =
                    submit(&addrs, &current, &new_transfer(&id, &acct(from), &acct(to), amount), deadline).await;
                // `exists` when an attempt that timed out had been committed after all.
                let code = transfer_code(&o);
                assert!(matches!(code, ResultCode::Created | ResultCode::Exists), "{id}: {code}");
                acked.push((id, from, to, amount, idx));
                acked_count.fetch_add(1, Ordering::Relaxed);
            }
            acked
        });
    }
    let total = CLIENTS * TRANSFERS_PER_CLIENT;
    wait_for("half of the transfers", PHASE_DEADLINE, || async {
        (acked_count.load(Ordering::Relaxed) >= total / 2).then_some(())
    })
    .await;
    let killed = procs.iter().position(|p| p.grpc == leader_addr).unwrap();
    procs[killed].kill9();
    let killed_at = acked_count.load(Ordering::Relaxed);
    let mut acked = Vec::with_capacity(total);
    while let Some(r) = tasks.join_next().await {
        acked.extend(r.unwrap());
    }
    assert_eq!(acked.len(), total);
    eprintln!("{total} transfers from {CLIENTS} clients; leader killed after {killed_at}");

    // The killed node restarts (replaying its log, re-deriving its events) and catches up.
    procs[killed].spawn();
    let max_index = acked.iter().map(|a| a.4).max().unwrap().max(fund_index);

    // Expected balances: funding plus each acknowledged transfer exactly once.
    let mut expected: BTreeMap<String, i128> = BTreeMap::new();
    expected.insert("equity".into(), -i128::from(FUNDING) * ACCOUNTS as i128);
    for i in 0..ACCOUNTS {
        expected.insert(acct(i), i128::from(FUNDING));
    }
    for (_, from, to, amount, _) in &acked {
        *expected.get_mut(&acct(*from)).unwrap() -= i128::from(*amount);
        *expected.get_mut(&acct(*to)).unwrap() += i128::from(*amount);
    }
    let ids: Vec<String> = expected.keys().cloned().collect();
    for a in &addrs {
        let got = balances(a, &ids, max_index).await;
        assert_eq!(got.values().sum::<i128>(), 0, "conservation on {a}");
        assert_eq!(got, expected, "balances on {a}");
    }
    // Every acknowledged transfer exists once, as sent, on every node.
    for a in &addrs {
        let mut c = client(a);
        for (id, from, to, amount, _) in &acked {
            let read = Some(ReadOptions { linearizable: false, min_index: max_index, wait_ms: 20_000 });
            let t = c.get_transfer(GetTransferRequest { id: id.clone(), read }).await.unwrap().into_inner();
            let t = convert::transfer_from_proto(t.transfer.unwrap_or_else(|| panic!("{id} missing on {a}"))).unwrap();
            assert_eq!((&*t.debit_account_id, &*t.credit_account_id, t.amount), (&*acct(*from), &*acct(*to), *amount));
            assert_eq!(t.status.as_str(), "posted");
        }
    }

    // Ledger events: contiguous per partition, in log order, identical on every node; one event per
    // account and per transfer (so none duplicated by the retries or the replay after the kill).
    let mut reference: Option<Vec<Partition>> = None;
    for a in &addrs {
        let mut parts = Vec::new();
        for p in 0..LEDGER_PARTITIONS {
            let records = read_all(a, "ledger", p, max_index).await;
            let mut last_index = 0;
            for (i, (offset, value)) in records.iter().enumerate() {
                assert_eq!(*offset, i as u64, "node {a} partition {p}: offsets not contiguous");
                let e = ledger_events::decode(value).unwrap();
                assert!(e.index() >= last_index, "node {a} partition {p}: events out of log order");
                last_index = e.index();
                let key_partition = lognode::store::state_machine::key_hash(e.partition_key().as_bytes())
                    % u64::from(LEDGER_PARTITIONS);
                assert_eq!(key_partition, u64::from(p), "event {} in the wrong partition", e.partition_key());
            }
            parts.push(records);
        }
        let n: usize = parts.iter().map(Vec::len).sum();
        assert_eq!(n, 1 + ACCOUNTS + ACCOUNTS + total, "events on node {a}");
        match &reference {
            None => reference = Some(parts),
            Some(r) => assert!(r == &parts, "ledger events differ between nodes ({a})"),
        }
    }
    for p in &mut procs {
        assert!(p.terminate(), "node {} did not exit cleanly on SIGTERM:\n{}", p.grpc, p.log_tail());
    }
}
