//! Ledger operations the checkpoint and disk-store tests share: accounts, batches of transfers,
//! a node's status and balances.

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_core::{Command, Outcome, ResultCode};
use ledger_proto::convert;
use ledger_proto::ledger::{ClusterStatusRequest, GetAccountRequest, NodeStatus, ReadOptions};

use super::{client, new_account as open_account, transfer_body as transfer};

/// Accounts money moves between.
pub const ACCOUNTS: usize = 20;
/// Transfers per submitted batch (one Raft entry, about 10 KiB).
pub const BATCH: usize = 100;

/// The id of account `i`.
pub fn acct(i: usize) -> String {
    format!("acct-{i:02}")
}

/// Submits `cmd` to `addr`; the outcome and its log index.
pub async fn submit(addr: &str, cmd: &Command) -> (Outcome, u64) {
    let mut req = tonic::Request::new(convert::command_to_proto(cmd));
    req.set_timeout(Duration::from_secs(20));
    let r = client(addr).submit(req).await.unwrap_or_else(|e| panic!("submit to {addr}: {e:?}")).into_inner();
    (convert::outcome_from_proto(r.outcome.unwrap()).unwrap(), r.log_index)
}

/// Opens the accounts (and an overdraft-allowed equity account).
pub async fn open_accounts(addr: &str) {
    submit(addr, &open_account("equity", true)).await;
    for i in 0..ACCOUNTS {
        submit(addr, &open_account(&acct(i), false)).await;
    }
}

/// Submits `batches` batches of [`BATCH`] transfers from equity to the accounts, ids
/// `<prefix>-<batch>-<n>`; the last log index.
pub async fn load(addr: &str, prefix: &str, batches: usize) -> u64 {
    let mut last = 0;
    for b in 0..batches {
        let transfers = (0..BATCH)
            .map(|n| transfer(&format!("{prefix}-{b}-{n}"), "equity", &acct((b + n) % ACCOUNTS), 1 + n as u64))
            .collect();
        let (outcome, index) = submit(addr, &Command::CreateTransfers { transfers, atomic: false }).await;
        match outcome {
            Outcome::Batch(r) => assert!(r.results.iter().all(|t| t.code == ResultCode::Created), "{r:?}"),
            other => panic!("unexpected outcome {other:?}"),
        }
        last = index;
    }
    last
}

/// The node's own status (ClusterStatus, local only); `None` while it does not answer.
pub async fn try_status(addr: &str) -> Option<NodeStatus> {
    let s = client(addr).cluster_status(ClusterStatusRequest { local_only: true }).await.ok()?.into_inner();
    let id = s.node_id;
    s.nodes.into_iter().find(|n| n.id == id && n.kind == "lognode")
}

/// The node's own status.
pub async fn status(addr: &str) -> NodeStatus {
    try_status(addr).await.unwrap_or_else(|| panic!("no status from {addr}"))
}

/// Balances of equity and the accounts on `addr` once it applied `min_index`.
pub async fn balances(addr: &str, min_index: u64) -> BTreeMap<String, i128> {
    let mut out = BTreeMap::new();
    let ids = std::iter::once("equity".to_owned()).chain((0..ACCOUNTS).map(acct));
    for id in ids {
        let read = Some(ReadOptions { linearizable: false, min_index, wait_ms: 20_000 });
        let r = client(addr)
            .get_account(GetAccountRequest { id: id.clone(), as_of_index: None, read })
            .await
            .unwrap_or_else(|e| panic!("GetAccount {id} on {addr}: {e}"))
            .into_inner();
        let a = convert::account_from_proto(r.account.unwrap_or_else(|| panic!("{id} missing on {addr}"))).unwrap();
        out.insert(id, a.balance);
    }
    out
}

/// Waits (at most 60 s) until the node at `victim` has applied index `last`, then checks that it
/// reads the same balances as `leader` and that they sum to zero; returns them.
pub async fn agrees_with_leader(victim: &str, leader: &str, last: u64, what: &str) -> BTreeMap<String, i128> {
    super::wait_for("the victim caught up", Duration::from_secs(60), || {
        let a = victim.to_owned();
        async move { try_status(&a).await.filter(|s| s.last_applied_index >= last) }
    })
    .await;
    let on_leader = balances(leader, last).await;
    assert_eq!(balances(victim, last).await, on_leader, "the victim agrees with the leader ({what})");
    assert_eq!(on_leader.values().sum::<i128>(), 0, "money is conserved");
    on_leader
}
