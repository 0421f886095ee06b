//! Issue 20: the ledger's records on disk (`--state-store disk`, the default). Against real
//! `lognode` processes:
//! - a restart (after kill -9) opens the store at its last commit and applies again only the log
//!   after it; the log is purged behind the store's checkpoints; a transfer id posted before is
//!   still deduplicated; no snapshot file is left on disk;
//! - a follower whose entries the leader purged catches up by a snapshot dumped from the leader's
//!   store and streamed in several chunks, loaded into a new store generation;
//! - kill -9 while that snapshot is being loaded leaves a node that restarts on its old store,
//!   removes the half-loaded one, catches up again and agrees with its peers;
//! - kill -9 in the middle of a checkpoint of the store, under load, leaves a node that restarts
//!   consistent with its peers and still deduplicates;
//! - with `--retention-bytes`, the leader keeps the log a stopped follower misses (up to
//!   `--retention-lag-bytes`), and the follower catches up from it without a snapshot.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ledger::{acct, agrees_with_leader, balances, load, open_accounts, status, submit, try_status};
use common::{Proc, leader_of, transfer_body as transfer, wait_for};
use ledger_core::{Command, Outcome, ResultCode};
use testkit::Cluster;

/// The smallest `--snapshot-log-bytes`: a checkpoint after every 64 KiB of log.
const SNAPSHOT_LOG_BYTES: &str = "65536";
/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn snapshot_dir(node: &Proc) -> PathBuf {
    node.dir.join("log").join("snapshot")
}

fn state_dir(node: &Proc) -> PathBuf {
    node.dir.join("state")
}

/// The store generations in a node's state directory.
fn generations(node_dir: &Path) -> Vec<String> {
    names(&node_dir.join("state")).into_iter().filter(|n| n.starts_with("gen-")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_opens_the_store_and_applies_only_the_log_after_its_last_commit() {
    common::init_tracing();
    let root = tempfile::tempdir().unwrap();
    let flags = ["--snapshot-log-bytes", SNAPSHOT_LOG_BYTES, "--retention-entries", "5"];
    let mut node = Proc::start(1, root.path(), None, true, &flags);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;
    open_accounts(&addr).await;
    let (dup, _) = submit(&addr, &Command::CreateTransfer(transfer("dup", "equity", &acct(0), 7))).await;
    assert!(matches!(dup, Outcome::Transfer(ref t) if t.code == ResultCode::Created), "{dup:?}");
    // About 200 KiB of log: several checkpoints by bytes of log.
    let last = load(&addr, "a", 20).await;
    let purged = wait_for("the log purged behind a checkpoint of the store", Duration::from_secs(30), || {
        let addr = addr.clone();
        async move { try_status(&addr).await.filter(|s| s.snapshot_index > 0 && s.log_first_index > 1) }
    })
    .await;
    assert!(
        purged.log_first_index + 5 <= purged.snapshot_index + 1,
        "at most the retention is kept before the checkpoint: {purged:?}"
    );
    assert_eq!(names(&snapshot_dir(&node)), Vec::<String>::new(), "no snapshot file is kept on disk");

    // A tail after the last checkpoint, then a crash.
    let last = last.max(load(&addr, "b", 2).await);
    let before = balances(&addr, last).await;
    let at_kill = status(&addr).await;
    node.kill9();
    node.spawn();
    assert!(node.wait_listening(Duration::from_secs(30)), "restart:\n{}", node.log_tail());
    wait_for("a leader after the restart", Duration::from_secs(30), || leader_of(&addr, 1)).await;

    let after = status(&addr).await;
    assert!(
        after.opened_at_index >= at_kill.snapshot_index && after.opened_at_index > 0,
        "it opened the store at or after its last checkpoint ({at_kill:?}): {after:?}"
    );
    assert!(after.last_applied_index >= last, "{after:?}");
    assert_eq!(balances(&addr, last).await, before, "the same balances after the restart");
    assert_eq!(before.values().sum::<i128>(), 0, "money is conserved");

    // `dup` was posted before the checkpoints and the restart: the same body is a replay, another
    // one a conflict.
    let (again, _) = submit(&addr, &Command::CreateTransfer(transfer("dup", "equity", &acct(0), 7))).await;
    assert!(matches!(again, Outcome::Transfer(ref t) if t.code == ResultCode::Exists), "{again:?}");
    let (other, _) = submit(&addr, &Command::CreateTransfer(transfer("dup", "equity", &acct(1), 7))).await;
    assert!(matches!(other, Outcome::Transfer(ref t) if t.code == ResultCode::IdConflict), "{other:?}");
    assert_eq!(generations(&node.dir).len(), 1, "one store: {:?}", names(&state_dir(&node)));
}

/// Sizes of the snapshots a node dumped for followers, from its log.
fn dumped_bytes(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("store snapshot dumped for a follower"))
        .filter_map(|l| {
            let clean: String = strip_ansi(l);
            let at = clean.find("bytes=")? + "bytes=".len();
            clean[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
        })
        .collect()
}

/// `line` without ANSI colour sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A 3-node cluster that checkpoints every 64 KiB of log and keeps 5 entries behind, with the
/// accounts open: the cluster, its leader's id and address, and a follower's id.
async fn cluster_with_accounts() -> (Cluster, u64, String, u64) {
    common::init_tracing();
    let cluster =
        Cluster::builder().extra(&["--snapshot-log-bytes", SNAPSHOT_LOG_BYTES, "--retention-entries", "5"]).start();
    let (_, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    open_accounts(&leader).await;
    let (leader_id, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    let follower = if leader_id == 3 { 2 } else { 3 };
    (cluster, leader_id, leader, follower)
}

/// Stops follower `behind`, loads `batches` batches on the leader until it purged past the
/// follower; returns the last index written.
async fn leave_behind(cluster: &mut Cluster, leader: &str, behind: u64, prefix: &str, batches: usize) -> u64 {
    let behind_addr = cluster.proc_mut(behind).grpc.clone();
    let applied_before = status(&behind_addr).await.last_applied_index;
    cluster.kill(behind);
    let last = load(leader, prefix, batches).await;
    wait_for("the leader purged past the stopped follower", Duration::from_secs(60), || {
        let leader = leader.to_owned();
        async move { try_status(&leader).await.filter(|s| s.log_first_index > applied_before + 1) }
    })
    .await;
    last
}

/// A follower that was down while the leader purged the entries it misses catches up by a
/// snapshot of the leader's store, streamed in several chunks (several MiB), and agrees with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_purged_log_catches_up_from_the_leaders_store() {
    let (mut cluster, leader_id, leader, behind) = cluster_with_accounts().await;
    let behind_addr = cluster.proc_mut(behind).grpc.clone();
    // 40,000 transfers: a dump of a few MiB (length-prefixed postcard records), several 1 MiB
    // chunks.
    let last = leave_behind(&mut cluster, &leader, behind, "c", 400).await;
    let leader_status = status(&leader).await;

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
    let sent = dumped_bytes(&cluster.proc_mut(leader_id).log_path());
    assert!(sent.iter().any(|b| *b > 1024 * 1024), "the leader sent a snapshot over one chunk (1 MiB): {sent:?}");
    let node = cluster.proc_mut(behind);
    assert_eq!(names(&snapshot_dir(node)), Vec::<String>::new(), "no received file is left");
    assert_eq!(generations(&node.dir).len(), 1, "the old store was removed: {:?}", names(&state_dir(node)));
}

/// kill -9 while a follower loads a snapshot from the leader (seen as a second store generation
/// in its state directory): it restarts on its old store, removes the half-loaded one, catches up
/// again and agrees with its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_a_snapshot_is_loaded_leaves_a_node_that_restarts_consistent() {
    let (mut cluster, _, leader, victim) = cluster_with_accounts().await;
    let victim_addr = cluster.proc_mut(victim).grpc.clone();
    let victim_dir = cluster.proc_mut(victim).dir.clone();

    // Each attempt leaves the victim behind the purged log (so that it needs a snapshot of a
    // state that grows by 20,000 transfers each time), restarts it, and kills it as soon as a
    // second store generation appears.
    const ATTEMPTS: usize = 5;
    let mut caught = None;
    let mut last = 0;
    for attempt in 1..=ATTEMPTS {
        last = leave_behind(&mut cluster, &leader, victim, &format!("k{attempt}"), 200).await;
        let before = generations(&victim_dir);
        assert_eq!(before.len(), 1, "{before:?}");
        cluster.restart(victim);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = None;
        while Instant::now() < deadline && seen.is_none() {
            let now = generations(&victim_dir);
            if now.len() > 1 {
                cluster.kill(victim);
                seen = Some(now);
            } else if try_status(&victim_addr).await.is_some_and(|s| s.last_applied_index >= last) {
                break;
            } else {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        if let Some(gens) = seen {
            let left = generations(&victim_dir);
            if left.len() > 1 {
                caught = Some((before, gens));
                break;
            }
        }
        // Missed (the load finished first): the victim is up again; try with a larger state.
        if try_status(&victim_addr).await.is_none() {
            cluster.restart(victim);
        }
    }
    let (before, during) =
        caught.unwrap_or_else(|| panic!("no kill while a snapshot was loaded in {ATTEMPTS} attempts"));

    cluster.restart(victim);
    agrees_with_leader(&victim_addr, &leader, last, "after the kill").await;
    let after = generations(&victim_dir);
    assert_eq!(after.len(), 1, "one store after the restart (killed with {during:?}, had {before:?}): {after:?}");
}

/// Where a node's log says it is in its checkpoints, read from `offset` on: the byte offset read
/// up to, and whether a checkpoint was started and not yet reported taken (`None` if no
/// checkpoint line was read).
fn checkpoint_in_progress(log: &Path, offset: u64) -> (u64, Option<bool>) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(log) else { return (offset, None) };
    let mut text = String::new();
    if f.seek(SeekFrom::Start(offset)).is_err() || f.read_to_string(&mut text).is_err() {
        return (offset, None);
    }
    // Only whole lines; a partial last line is read again next time.
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    let state = text[..whole].lines().fold(None, |state, l| {
        if l.contains("store checkpoint started") {
            Some(true)
        } else if l.contains("store checkpoint taken") {
            Some(false)
        } else {
            state
        }
    });
    (offset + whole as u64, state)
}

/// kill -9 in the middle of a checkpoint of the store (after its log said "store checkpoint
/// started" and before "store checkpoint taken": the commit, the fsync of the store, the pinning
/// of its read snapshot) while transfers keep coming: the node restarts on what reached its disk,
/// applies the log after it, and agrees with its peers; a transfer id posted before the kill is
/// still deduplicated by the restarted node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_a_checkpoint_leaves_a_node_that_restarts_consistent() {
    let (mut cluster, _, leader, victim) = cluster_with_accounts().await;
    let victim_addr = cluster.proc_mut(victim).grpc.clone();
    let log = cluster.proc_mut(victim).log_path();

    // Each attempt loads the cluster and watches the victim's log for a checkpoint in progress;
    // the checkpoint may end between the look and the kill, which the log then shows.
    const ATTEMPTS: usize = 10;
    let mut caught = None;
    let mut last = 0;
    for attempt in 1..=ATTEMPTS {
        let (mut offset, _) = checkpoint_in_progress(&log, 0);
        let writer = {
            let leader = leader.clone();
            let prefix = format!("c{attempt}");
            tokio::spawn(async move { load(&leader, &prefix, 40).await })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut killed_at = None;
        while Instant::now() < deadline && killed_at.is_none() && !writer.is_finished() {
            let (next, state) = checkpoint_in_progress(&log, offset);
            if state == Some(true) {
                cluster.kill(victim);
                killed_at = Some(offset);
            } else {
                offset = next;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        last = writer.await.unwrap();
        if let Some(at) = killed_at
            && checkpoint_in_progress(&log, at).1 == Some(true)
        {
            caught = Some(attempt);
            break;
        }
        if try_status(&victim_addr).await.is_none() {
            cluster.restart(victim);
        }
    }
    let attempt = caught.unwrap_or_else(|| panic!("no kill during a checkpoint in {ATTEMPTS} attempts"));

    cluster.restart(victim);
    let on_leader = agrees_with_leader(&victim_addr, &leader, last, &format!("attempt {attempt}")).await;
    // A transfer of the killed attempt, posted again through the restarted node's view of the
    // log: the leader answers it as a duplicate, and the victim holds the original.
    let id = format!("c{attempt}-0-0");
    let again = Command::CreateTransfer(transfer(&id, "equity", &acct(0), 1));
    let (outcome, index) = submit(&leader, &again).await;
    match outcome {
        Outcome::Transfer(r) => assert_eq!(r.code, ResultCode::Exists, "{id} posted again: {r:?}"),
        other => panic!("unexpected outcome {other:?}"),
    }
    wait_for("the victim applied the duplicate", Duration::from_secs(30), || {
        let a = victim_addr.clone();
        async move { try_status(&a).await.filter(|s| s.last_applied_index >= index) }
    })
    .await;
    assert_eq!(balances(&victim_addr, index).await, on_leader, "the duplicate moved no money on the victim");
}

/// `--retention-bytes`: the log before the last checkpoint is purged down to about that many
/// bytes, whatever the entries hold (here each entry is 16 records of 1 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bytes_keeps_that_much_log_before_the_checkpoint_and_purges_the_rest() {
    use ledger_proto::ledger::{CreateTopicRequest, ListTopicsRequest, ProduceBatchRequest, Record};
    const KEEP: u64 = 256 * 1024;
    const RECORD: usize = 1024;
    const ENTRIES: u64 = 128;
    const PER_ENTRY: u64 = 16;
    common::init_tracing();
    let root = tempfile::tempdir().unwrap();
    let keep = KEEP.to_string();
    let flags = ["--snapshot-log-bytes", SNAPSHOT_LOG_BYTES, "--snapshot-log-percent", "0", "--retention-bytes", &keep];
    let node = Proc::start(1, root.path(), None, true, &flags);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;
    let mut c = common::client(&addr);
    c.create_topic(CreateTopicRequest { name: "t".into(), partitions: 1 }).await.unwrap();
    // 2 MiB of records: 8 times what is kept.
    for i in 0..ENTRIES {
        let records = (0..PER_ENTRY)
            .map(|k| Record { key: Vec::new(), value: vec![b'a' + ((i + k) % 26) as u8; RECORD], headers: Vec::new() })
            .collect();
        c.produce_batch(ProduceBatchRequest { topic: "t".into(), partition: Some(0), records }).await.unwrap();
    }
    let total = ENTRIES * PER_ENTRY;
    // What stays: at least KEEP bytes before the last checkpoint (each record is over 1 KiB with
    // its framing, so fewer than KEEP / 1 KiB records) and at most one entry more, plus the log
    // after the checkpoint (under 2 checkpoint intervals).
    let kept_max = (KEEP + 2 * 65_536) / RECORD as u64 + PER_ENTRY;
    let kept_min = KEEP / (RECORD as u64 + 64) - PER_ENTRY;
    let start = wait_for("the log purged down to --retention-bytes", Duration::from_secs(30), || {
        let mut c = c.clone();
        async move {
            let t = c.list_topics(ListTopicsRequest { read: None }).await.ok()?.into_inner();
            let p = &t.topics.iter().find(|t| t.name == "t")?.partitions[0];
            (p.log_start_offset > 0 && total - p.log_start_offset <= kept_max).then_some(p.log_start_offset)
        }
    })
    .await;
    let s = status(&addr).await;
    let kept = total - start;
    assert!(kept >= kept_min, "kept {kept} records of {total}, fewer than --retention-bytes asks ({kept_min}): {s:?}");
    assert!(s.log_first_index > 1 && s.snapshot_index >= s.log_first_index, "the log starts after 1: {s:?}");
}

/// `--retention-bytes` with a follower down: the leader keeps the log the follower misses, up to
/// `--retention-lag-bytes` before its checkpoint, while the other follower purges its own; the
/// follower then catches up from the log, with no snapshot dumped or loaded. Past that many
/// bytes the leader purges, and the follower needs a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_keeps_the_log_a_follower_misses_up_to_retention_lag_bytes() {
    common::init_tracing();
    let flags = [
        "--snapshot-log-bytes",
        SNAPSHOT_LOG_BYTES,
        "--snapshot-log-percent",
        "0",
        "--retention-bytes",
        "65536",
        "--retention-lag-bytes",
        "1048576",
    ];
    let mut cluster = Cluster::builder().extra(&flags).start();
    let (_, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    open_accounts(&leader).await;
    let (leader_id, leader) = cluster.leader(3, Duration::from_secs(60)).await;
    let (behind, other) = if leader_id == 3 {
        (2, 1)
    } else if leader_id == 2 {
        (3, 1)
    } else {
        (3, 2)
    };
    let behind_addr = cluster.proc_mut(behind).grpc.clone();
    let other_addr = cluster.proc_mut(other).grpc.clone();
    let gens = generations(&cluster.proc_mut(behind).dir);

    // About 140 KiB of log (40 entries of 100 transfers, about 34 bytes each): over
    // --retention-bytes, under the lag.
    let applied_before = status(&behind_addr).await.last_applied_index;
    cluster.kill(behind);
    let last = load(&leader, "h", 40).await;
    let other_purged = wait_for("the other follower purged its own log", Duration::from_secs(30), || {
        let a = other_addr.clone();
        async move { try_status(&a).await.filter(|s| s.log_first_index > applied_before + 1) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = status(&leader).await;
    assert!(
        kept.log_first_index <= applied_before + 1 && kept.snapshot_index >= other_purged.log_first_index,
        "the leader kept the log the stopped follower (applied {applied_before}) misses: {kept:?}, \
         the other follower: {other_purged:?}"
    );
    cluster.restart(behind);
    wait_for("the follower caught up", Duration::from_secs(60), || {
        let a = behind_addr.clone();
        async move { try_status(&a).await.filter(|s| s.last_applied_index >= last) }
    })
    .await;
    let leader_log = cluster.proc_mut(leader_id).log_path();
    assert_eq!(dumped_bytes(&leader_log), Vec::<u64>::new(), "no snapshot was dumped for it");
    assert_eq!(generations(&cluster.proc_mut(behind).dir), gens, "it loaded no snapshot: the same store");
    assert_eq!(balances(&behind_addr, last).await, balances(&leader, last).await, "it agrees with the leader");

    // About 1.5 MiB more while it is down (over the lag): the leader purges past it, and it needs
    // a snapshot.
    let last = leave_behind(&mut cluster, &leader, behind, "i", 450).await;
    cluster.restart(behind);
    wait_for("the follower caught up by a snapshot", Duration::from_secs(60), || {
        let a = behind_addr.clone();
        async move { try_status(&a).await.filter(|s| s.last_applied_index >= last) }
    })
    .await;
    assert!(!dumped_bytes(&leader_log).is_empty(), "the leader dumped a snapshot for it");
    assert_eq!(balances(&behind_addr, last).await, balances(&leader, last).await, "it agrees with the leader");
}
