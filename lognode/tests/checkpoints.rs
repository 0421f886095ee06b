//! Issue 20, first part, with the ledger's records in memory (`--state-store memory`; the disk
//! store's tests are in `state_on_disk.rs`): snapshots are taken by bytes of log
//! (`--snapshot-log-bytes`; these tests turn off `--snapshot-log-percent`, which waits for as much
//! log as the last snapshot), kept as files, and streamed from and to files in chunks. Against
//! real `lognode` processes:
//! - a restart (after kill -9) opens the last snapshot and applies again only the log after it,
//!   and a transfer id posted before the snapshot is still deduplicated after it;
//! - the Raft log is purged behind snapshots (`--retention-entries`), and the events log (the
//!   `ledger` topic) follows it;
//! - a follower whose entries the leader purged catches up by a snapshot larger than one chunk,
//!   after which the `ledger` topic serves every offset each node retains, contiguously up to the
//!   same end, with byte-identical records wherever two nodes hold an offset (issue 14);
//! - kill -9 in the middle of writing a snapshot leaves a node that restarts, removes the
//!   half-written file and agrees with its peers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ledger::{acct, agrees_with_leader, balances, load, open_accounts, status, submit, try_status};
use common::{Proc, client, leader_of, transfer_body as transfer, wait_for};
use ledger_core::{Command, Outcome, ResultCode};
use ledger_proto::ledger::{ConsumeRequest, ListTopicsRequest};
use testkit::Cluster;

/// The smallest `--snapshot-log-bytes`: a snapshot after every 64 KiB of log.
const SNAPSHOT_LOG_BYTES: &str = "65536";
/// Memory store, a snapshot after every 64 KiB of log however large the last one was, and the
/// log purged behind it except 5 entries.
const PURGING_MEMORY_FLAGS: [&str; 8] = [
    "--snapshot-log-bytes",
    SNAPSHOT_LOG_BYTES,
    "--snapshot-log-percent",
    "0",
    "--retention-entries",
    "5",
    "--state-store",
    "memory",
];

fn snapshot_dir(node: &Proc) -> PathBuf {
    node.dir.join("log").join("snapshot")
}

/// Files in a snapshot directory, with their sizes.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map_or(0, |m| m.len())))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_applies_only_the_log_after_the_last_snapshot_and_the_log_is_purged_behind_it() {
    common::init_tracing();
    let root = tempfile::tempdir().unwrap();
    let mut node = Proc::start(1, root.path(), None, true, &PURGING_MEMORY_FLAGS);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;
    open_accounts(&addr).await;
    let (dup, _) = submit(&addr, &Command::CreateTransfer(transfer("dup", "equity", &acct(0), 7))).await;
    assert!(matches!(dup, Outcome::Transfer(ref t) if t.code == ResultCode::Created), "{dup:?}");
    // About 200 KiB of log: several snapshots by bytes (no --snapshot-every).
    let last = load(&addr, "a", 20).await;

    let snap = wait_for("a snapshot taken by bytes of log", Duration::from_secs(30), || {
        let addr = addr.clone();
        async move { try_status(&addr).await.filter(|s| s.snapshot_index > 0) }
    })
    .await;
    assert!(snap.log_bytes_since_snapshot < 2 * 65_536, "{snap:?}");
    let purged = wait_for("the log purged behind a snapshot", Duration::from_secs(30), || {
        let addr = addr.clone();
        async move { try_status(&addr).await.filter(|s| s.log_first_index > 1) }
    })
    .await;
    assert!(
        purged.log_first_index + 5 <= purged.snapshot_index + 1,
        "at most the retention is kept before the snapshot: {purged:?}"
    );
    // The ledger topic follows the Raft log's retention: its oldest events go too.
    // Bounded: at most 120 looks, 250 ms apart, adding load whenever the log since the last
    // snapshot is short (a snapshot is taken every 64 KiB; the third one purges events).
    let mut looks = 0;
    let starts = loop {
        let topics = client(&addr).list_topics(ListTopicsRequest { read: None }).await.unwrap().into_inner();
        let ledger = topics.topics.into_iter().find(|t| t.name == "ledger").expect("the ledger topic");
        let starts: Vec<(u64, u64)> = ledger.partitions.iter().map(|p| (p.log_start_offset, p.end_offset)).collect();
        if starts.iter().any(|(s, _)| *s > 0) {
            break starts;
        }
        looks += 1;
        assert!(looks <= 120, "the events log was never purged behind the Raft log: {starts:?}\n{}", node.log_tail());
        if status(&addr).await.log_bytes_since_snapshot < 65_536 {
            load(&addr, &format!("r{looks}"), 3).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (p, (start, end)) = starts.iter().enumerate().find(|(_, (s, _))| *s > 0).unwrap();
    let mut c = client(&addr);
    let consume =
        |offset| ConsumeRequest { topic: "ledger".into(), partition: p as u32, offset, max_records: 10, read: None };
    assert_eq!(c.consume(consume(0)).await.unwrap_err().code(), tonic::Code::OutOfRange, "a purged event");
    if start < end {
        let r = c.consume(consume(*start)).await.unwrap().into_inner();
        assert_eq!(r.records.first().map(|x| x.offset), Some(*start), "the oldest kept event reads back");
        ledger_events::decode(&r.records[0].value).expect("as JSON");
    }

    // A tail after the last snapshot, then a crash.
    let last = last.max(load(&addr, "b", 2).await);
    let before = balances(&addr, last).await;
    let at_kill = status(&addr).await;
    node.kill9();
    node.spawn();
    assert!(node.wait_listening(Duration::from_secs(30)), "restart:\n{}", node.log_tail());
    wait_for("a leader after the restart", Duration::from_secs(30), || leader_of(&addr, 1)).await;

    let after = status(&addr).await;
    assert!(after.opened_at_index > 0, "the restart opened a snapshot: {after:?}");
    assert!(
        after.opened_at_index >= at_kill.snapshot_index,
        "it opened the last snapshot ({at_kill:?}), not an older one: {after:?}"
    );
    assert!(after.last_applied_index >= last, "{after:?}");
    assert_eq!(balances(&addr, last).await, before, "the same balances after the restart");
    let total: i128 = balances(&addr, last).await.values().sum();
    assert_eq!(total, 0, "money is conserved");

    // `dup` was posted before the snapshots: the same body is a replay, another one a conflict.
    let (again, _) = submit(&addr, &Command::CreateTransfer(transfer("dup", "equity", &acct(0), 7))).await;
    assert!(matches!(again, Outcome::Transfer(ref t) if t.code == ResultCode::Exists), "{again:?}");
    let (other, _) = submit(&addr, &Command::CreateTransfer(transfer("dup", "equity", &acct(1), 7))).await;
    assert!(matches!(other, Outcome::Transfer(ref t) if t.code == ResultCode::IdConflict), "{other:?}");
    let names = files(&snapshot_dir(&node));
    assert!(names.iter().all(|(n, _)| !n.ends_with(".tmp")), "{names:?}");
    assert_eq!(names.iter().filter(|(n, _)| n.ends_with(".snap")).count(), 1, "one data file: {names:?}");
}

/// A follower that was down while the leader purged the entries it misses catches up by a
/// snapshot streamed in several chunks (over 1 MiB of state), and then agrees with the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_purged_log_catches_up_by_a_chunked_snapshot() {
    common::init_tracing();
    let mut cluster = Cluster::builder()
        // Percent 0: a snapshot after every 64 KiB of log, however large the last one was, so that
        // one covers (nearly) the whole load once it ends.
        .extra(&PURGING_MEMORY_FLAGS)
        .start();
    let (_, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    open_accounts(&leader).await;
    let (leader_id, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    let behind = if leader_id == 3 { 2 } else { 3 };
    let behind_addr = cluster.proc_mut(behind).grpc.clone();
    let applied_before = status(&behind_addr).await.last_applied_index;
    cluster.kill(behind);

    // Enough transfers for a snapshot over one chunk (1 MiB; records are length-prefixed
    // postcard, about 40 % of what bincode took).
    let last = load(&leader, "c", 400).await;
    let leader_status = wait_for("the leader purged past the stopped follower", Duration::from_secs(60), || {
        let leader = leader.clone();
        async move { try_status(&leader).await.filter(|s| s.log_first_index > applied_before + 1) }
    })
    .await;
    // The leader snapshots every 64 KiB of log, checked every 500 ms: wait (bounded) for the one
    // that covers most of the load, over one chunk.
    let leader_dir = snapshot_dir(cluster.proc_mut(leader_id));
    wait_for("a snapshot over one chunk (1 MiB) on the leader", Duration::from_secs(30), || {
        let largest = files(&leader_dir).iter().filter(|(n, _)| n.ends_with(".snap")).map(|(_, l)| *l).max();
        async move { largest.filter(|b| *b > 1024 * 1024) }
    })
    .await;

    cluster.restart(behind);
    let caught_up = wait_for("the follower caught up", Duration::from_secs(60), || {
        let a = behind_addr.clone();
        async move { try_status(&a).await.filter(|s| s.last_applied_index >= last && s.snapshot_index > 0) }
    })
    .await;
    assert!(
        caught_up.snapshot_index >= leader_status.log_first_index.saturating_sub(1),
        "its state came from the leader's snapshot: {caught_up:?}, leader {leader_status:?}"
    );
    let on_leader = balances(&leader, last).await;
    assert_eq!(balances(&behind_addr, last).await, on_leader, "the follower agrees with the leader");
    let addrs: Vec<String> = (1..=3).map(|id| cluster.proc_mut(id).grpc.clone()).collect();
    retained_events_agree(&addrs, last).await;
    // A received file left behind would stay; the follower's own next snapshot (it snapshots
    // every 64 KiB of log too) is also a `.tmp` while it is built, and is gone once published.
    let dir = snapshot_dir(cluster.proc_mut(behind));
    let left = testkit::wait::poll_until(TMP_GONE_TIMEOUT, || {
        let names = files(&dir);
        names.iter().all(|(n, _)| !n.ends_with(".tmp")).then_some(())
    });
    assert!(left.is_some(), "no received file is left: {:?}", files(&dir));
}

/// Partitions of the built-in `ledger` topic.
const LEDGER_PARTITIONS: u32 = 8;

/// Issue 14: after retention (the events log purged behind the Raft log) and a kill -9 and
/// restart, the `ledger` topic serves every offset a node retains, contiguously up to the same
/// end on every node, with byte-identical records wherever two nodes both hold an offset; and
/// retention did purge events somewhere.
async fn retained_events_agree(addrs: &[String], last: u64) {
    let mut purged_somewhere = false;
    for p in 0..LEDGER_PARTITIONS {
        let mut held: Vec<std::collections::BTreeMap<u64, Vec<u8>>> = Vec::new();
        let mut ends = Vec::new();
        for a in addrs {
            let topics = client(a).list_topics(ListTopicsRequest { read: None }).await.unwrap().into_inner();
            let ledger = topics.topics.into_iter().find(|t| t.name == "ledger").expect("the ledger topic");
            let part = &ledger.partitions[p as usize];
            purged_somewhere |= part.log_start_offset > 0;
            let records = common::read_from(a, "ledger", p, part.log_start_offset, last).await;
            let offsets: Vec<u64> = records.iter().map(|(o, _)| *o).collect();
            let want: Vec<u64> = (part.log_start_offset..part.log_start_offset + offsets.len() as u64).collect();
            assert_eq!(offsets, want, "node {a} partition {p}: retained offsets not contiguous from the start");
            ends.push(part.log_start_offset + offsets.len() as u64);
            for (_, v) in &records {
                ledger_events::decode(v).unwrap_or_else(|e| panic!("node {a} partition {p}: not an event: {e}"));
            }
            held.push(records.into_iter().collect());
        }
        assert!(ends.iter().all(|e| *e == ends[0]), "partition {p}: the nodes end at different offsets: {ends:?}");
        for (i, a) in held.iter().enumerate() {
            for b in &held[i + 1..] {
                for (offset, value) in a {
                    if let Some(other) = b.get(offset) {
                        assert_eq!(value, other, "partition {p} offset {offset}: the nodes hold different bytes");
                    }
                }
            }
        }
    }
    assert!(purged_somewhere, "retention purged no event on any node: the check above proved nothing about it");
}

/// Longest wait for a snapshot being built to be published (its `.tmp` file gone).
const TMP_GONE_TIMEOUT: Duration = Duration::from_secs(15);

/// kill -9 while a snapshot file is being written (seen as its `.tmp` file): the node restarts,
/// removes the half-written file, and agrees with its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_in_the_middle_of_a_snapshot_leaves_a_node_that_restarts_consistent() {
    common::init_tracing();
    let mut cluster = Cluster::builder()
        .extra(&["--snapshot-log-bytes", SNAPSHOT_LOG_BYTES, "--snapshot-log-percent", "0", "--state-store", "memory"])
        .start();
    let (_, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    open_accounts(&leader).await;
    let (leader_id, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    let victim = if leader_id == 3 { 2 } else { 3 };
    let victim_addr = cluster.proc_mut(victim).grpc.clone();
    let dir = snapshot_dir(cluster.proc_mut(victim));
    // A state of a few MiB, so writing a snapshot takes long enough to be caught.
    load(&leader, "d", 60).await;

    // Attempts to kill it while a `.tmp` snapshot file exists; the file may be renamed between the
    // look and the kill, then the node is started again and the next snapshot is tried.
    const ATTEMPTS: usize = 5;
    let mut caught = None;
    let mut last = 0;
    for attempt in 1..=ATTEMPTS {
        let writer = {
            let leader = leader.clone();
            let prefix = format!("e{attempt}");
            tokio::spawn(async move { load(&leader, &prefix, 30).await })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = None;
        while Instant::now() < deadline && seen.is_none() && !writer.is_finished() {
            let tmp = files(&dir).into_iter().find(|(n, _)| n.starts_with("state-") && n.ends_with(".tmp"));
            if let Some((name, _)) = tmp {
                cluster.kill(victim);
                seen = Some(name);
            } else {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        last = writer.await.unwrap();
        let left = files(&dir);
        if let Some(name) = seen.filter(|name| left.iter().any(|(n, _)| n == name)) {
            caught = Some(name);
            break;
        }
        cluster.restart(victim);
    }
    let name = caught.unwrap_or_else(|| panic!("no kill in the middle of a snapshot in {ATTEMPTS} attempts"));

    cluster.restart(victim);
    agrees_with_leader(&victim_addr, &leader, last, "after the kill").await;
    let after = files(&dir);
    assert!(after.iter().all(|(n, _)| *n != name), "the half-written file was removed: {after:?}");
}
