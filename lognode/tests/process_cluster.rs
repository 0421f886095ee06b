//! Real `lognode` processes on 127.0.0.1: concurrent producers, `kill -9` of the leader midway,
//! the killed node restarting and catching up, then a full stop and restart of all three.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Proc, client, leader_of, read_all, wait_for};
use ledger_proto::LEADER_ADDR_METADATA;
use ledger_proto::ledger::{ClusterStatusRequest, CreateTopicRequest, ProduceRequest, Record};
use tokio::sync::Mutex;
use tonic::Code;

/// Concurrent producer clients.
const CLIENTS: usize = 16;
/// Records each client produces (16 × 625 = 10,000).
const RECORDS_PER_CLIENT: usize = 625;
/// Attempts per record before the test fails.
const ATTEMPTS_MAX: usize = 100;
const PARTITIONS: u32 = 8;
/// A user topic (clients cannot produce to the built-in `ledger` topic).
const TOPIC: &str = "orders";
/// The whole produce phase must finish within this.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(120);

/// An acknowledged record: partition, offset, Raft index, value.
type Acked = (u32, u64, u64, Vec<u8>);

async fn produce_one(
    addrs: &[String],
    current: &Mutex<String>,
    partition: u32,
    value_base: &str,
    deadline: Instant,
) -> Acked {
    for attempt in 0..ATTEMPTS_MAX {
        assert!(Instant::now() < deadline, "produce phase over its deadline");
        // Each attempt has its own value: an ambiguous failure may still have been committed,
        // so only the acknowledged attempt's value must appear exactly once.
        let value = format!("{value_base}-a{attempt}").into_bytes();
        let addr = current.lock().await.clone();
        let req = ProduceRequest {
            topic: TOPIC.into(),
            partition: Some(partition),
            record: Some(Record { key: Vec::new(), value: value.clone(), headers: Vec::new() }),
        };
        let mut r = tonic::Request::new(req);
        r.set_timeout(Duration::from_secs(5));
        match client(&addr).produce(r).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                assert_eq!(resp.partition, partition);
                return (partition, resp.base_offset, resp.log_index, value);
            }
            Err(s) => {
                let leader = s.metadata().get(LEADER_ADDR_METADATA).and_then(|v| v.to_str().ok()).map(String::from);
                let next = match (s.code(), leader) {
                    (Code::FailedPrecondition, Some(l)) => l,
                    _ => {
                        // Unreachable, no leader yet, or timed out: try the next node.
                        let i = addrs.iter().position(|a| *a == addr).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        addrs[(i + 1) % addrs.len()].clone()
                    }
                };
                *current.lock().await = next;
            }
        }
    }
    panic!("record {value_base} not acknowledged after {ATTEMPTS_MAX} attempts");
}

fn check_partition(node: &str, partition: u32, records: &[(u64, Vec<u8>)], acked: &[&Acked]) {
    for (i, (offset, _)) in records.iter().enumerate() {
        assert_eq!(*offset, i as u64, "node {node} partition {partition}: offsets not contiguous");
    }
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for (_, v) in records {
        *seen.entry(v.as_slice()).or_default() += 1;
    }
    for (_, offset, _, value) in acked {
        let at = records
            .get(*offset as usize)
            .unwrap_or_else(|| panic!("node {node} partition {partition}: acknowledged offset {offset} missing"));
        assert_eq!(&at.1, value, "node {node} partition {partition} offset {offset}: wrong record");
        assert_eq!(seen[value.as_slice()], 1, "node {node}: acknowledged record present more than once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_survive_kill9_of_the_leader_and_a_full_restart() {
    let dir = tempfile::tempdir().unwrap();
    let n1 = Proc::start(1, dir.path(), None, true, &[]);
    let seed = n1.gossip.clone();
    let n2 = Proc::start(2, dir.path(), Some(&seed), false, &[]);
    let n3 = Proc::start(3, dir.path(), Some(&seed), false, &[]);
    let addrs = vec![n1.grpc.clone(), n2.grpc.clone(), n3.grpc.clone()];
    let (leader_id, leader_addr) =
        wait_for("3 voters and a leader", Duration::from_secs(60), || leader_of(&addrs[0], 3)).await;
    assert_eq!(leader_id, 1);
    // lognode turns transparent huge pages off for itself (issue 20: they made RSS creep).
    for p in [&n1, &n2, &n3] {
        let pid = p.child.as_ref().expect("running").pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains("THP_enabled:\t0"), "node {}: {status}", p.id);
    }
    client(&leader_addr).create_topic(CreateTopicRequest { name: TOPIC.into(), partitions: PARTITIONS }).await.unwrap();
    let mut procs = vec![n1, n2, n3];

    // Produce from concurrent clients; kill -9 the leader midway.
    let acked_count = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + PRODUCE_DEADLINE;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let addrs = addrs.clone();
        let current = Arc::new(Mutex::new(leader_addr.clone()));
        let acked_count = Arc::clone(&acked_count);
        tasks.spawn(async move {
            let mut acked = Vec::with_capacity(RECORDS_PER_CLIENT);
            for s in 0..RECORDS_PER_CLIENT {
                let partition = u32::try_from((c + s) % PARTITIONS as usize).unwrap();
                acked.push(produce_one(&addrs, &current, partition, &format!("c{c}-s{s}"), deadline).await);
                acked_count.fetch_add(1, Ordering::Relaxed);
            }
            acked
        });
    }
    let total = CLIENTS * RECORDS_PER_CLIENT;
    wait_for("half of the records", PRODUCE_DEADLINE, || async {
        (acked_count.load(Ordering::Relaxed) >= total / 2).then_some(())
    })
    .await;
    let killed = procs.iter().position(|p| p.grpc == leader_addr).unwrap();
    procs[killed].kill9();
    let killed_at = acked_count.load(Ordering::Relaxed);
    let mut acked: Vec<Acked> = Vec::with_capacity(total);
    while let Some(r) = tasks.join_next().await {
        acked.extend(r.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(acked.len(), total);
    eprintln!("produced {total} records from {CLIENTS} clients in {elapsed:?}; leader killed after {killed_at}");

    // Gossip reports the killed node dead; it stays a voter (removal is RemoveNode's job).
    let killed_id = procs[killed].id;
    let survivor = addrs.iter().find(|a| **a != leader_addr).unwrap().clone();
    wait_for("the killed node reported dead", Duration::from_secs(30), || {
        let survivor = survivor.clone();
        async move {
            let s = client(&survivor).cluster_status(ClusterStatusRequest { local_only: false }).await.ok()?;
            let n = s.into_inner().nodes.into_iter().find(|n| n.id == killed_id)?;
            (!n.alive && n.voter).then_some(())
        }
    })
    .await;

    // The killed node restarts and catches up.
    procs[killed].spawn();
    let max_index = acked.iter().map(|a| a.2).max().unwrap();
    let by_partition = |acked: &[Acked]| {
        let mut m: BTreeMap<u32, Vec<Acked>> = BTreeMap::new();
        for a in acked {
            m.entry(a.0).or_default().push(a.clone());
        }
        m
    };
    let parts = by_partition(&acked);
    let verify = |procs_addrs: Vec<String>, parts: BTreeMap<u32, Vec<Acked>>| async move {
        for (p, list) in &parts {
            let refs: Vec<&Acked> = list.iter().collect();
            let mut reference: Option<Vec<(u64, Vec<u8>)>> = None;
            for a in &procs_addrs {
                let records = read_all(a, TOPIC, *p, max_index).await;
                check_partition(a, *p, &records, &refs);
                match &reference {
                    None => reference = Some(records),
                    Some(r) => assert_eq!(r, &records, "partition {p} differs between nodes"),
                }
            }
        }
    };
    verify(addrs.clone(), parts.clone()).await;

    // Stop all three gracefully and restart them: the data is there and a leader is elected.
    for p in &mut procs {
        assert!(p.terminate(), "node {} did not exit cleanly on SIGTERM:\n{}", p.grpc, p.log_tail());
    }
    for p in &mut procs {
        p.spawn();
    }
    let (_, new_leader) = wait_for("a leader after restart", Duration::from_secs(60), || leader_of(&addrs[1], 3)).await;
    verify(addrs.clone(), parts).await;
    // And it accepts writes again.
    let r = client(&new_leader)
        .produce(ProduceRequest {
            topic: TOPIC.into(),
            partition: Some(0),
            record: Some(Record { key: Vec::new(), value: b"after-restart".to_vec(), headers: Vec::new() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.log_index > max_index);
    for p in &mut procs {
        assert!(p.terminate(), "node {} did not exit cleanly on SIGTERM:\n{}", p.grpc, p.log_tail());
    }
}
