//! A 3-node cluster in one process: election, replication, leader change; and bad-input statuses.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{client, free_port, leader_of, read_all, wait_for};
use ledger_proto::ledger::{
    ClusterStatusRequest, ConsumeRequest, CreateTopicRequest, ListAuditRequest, ProduceBatchRequest, ProduceRequest,
    ReadOptions, Record, RemoveNodeRequest, Role,
};
use ledger_proto::{LEADER_ADDR_METADATA, LEADER_ID_METADATA};
use lognode::config::Config;
use lognode::node::{NodeHandle, start};
use tonic::Code;

fn config(id: u64, dir: &std::path::Path, join: Vec<String>, bootstrap: bool) -> Config {
    Config {
        id,
        data_dir: dir.join(format!("n{id}")),
        grpc_addr: format!("127.0.0.1:{}", free_port()),
        gossip_addr: format!("127.0.0.1:{}", free_port()),
        join,
        bootstrap,
        voters: 3,
        retention_entries: None,
        retention_bytes: None,
        retention_lag_bytes: lognode::config::RETENTION_LAG_BYTES_DEFAULT,
        snapshot_log_bytes: lognode::config::SNAPSHOT_LOG_BYTES_DEFAULT,
        snapshot_log_percent: lognode::config::SNAPSHOT_LOG_PERCENT_DEFAULT,
        snapshot_every: None,
        group_retention_ms: group_core::limits::GROUP_RETENTION_MS_DEFAULT,
        fsync: logstore::FsyncMode::Never,
        fault_synced_map: None,
        fault_clock_file: None,
        gossip_profile: lognode::config::GossipProfile::Local,
        state_store: lognode::config::StateStoreKind::Disk,
        state_cache_bytes: lognode::config::STATE_CACHE_BYTES_MIN,
        admin_key_file: None,
        gossip_key_file: None,
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
    }
}

/// A user topic (clients cannot produce to the built-in `ledger` topic).
const TOPIC: &str = "orders";

fn record(v: &str) -> Record {
    Record { key: Vec::new(), value: v.as_bytes().to_vec(), headers: Vec::new() }
}

async fn start_cluster(dir: &std::path::Path) -> (Vec<NodeHandle>, Vec<String>) {
    let c1 = config(1, dir, vec![], true);
    let seed = c1.gossip_addr.clone();
    let cfgs = [c1, config(2, dir, vec![seed.clone()], false), config(3, dir, vec![seed], false)];
    let addrs: Vec<String> = cfgs.iter().map(|c| c.grpc_addr.clone()).collect();
    let mut nodes = Vec::new();
    for c in cfgs {
        nodes.push(start(c).await.unwrap());
    }
    (nodes, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_replicate_and_survive_leader_change() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addrs) = start_cluster(dir.path()).await;
    let (leader, leader_addr) =
        wait_for("3 voters and a leader", Duration::from_secs(30), || leader_of(&addrs[0], 3)).await;
    assert_eq!(leader, 1, "the bootstrap node leads first");

    let mut c = client(&leader_addr);
    c.create_topic(CreateTopicRequest { name: TOPIC.into(), partitions: 8 }).await.unwrap();
    let mut last_index = 0;
    for i in 0..20 {
        let r = c
            .produce(ProduceRequest { topic: TOPIC.into(), partition: Some(2), record: Some(record(&format!("a{i}"))) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.base_offset, i);
        assert_eq!(r.partition, 2);
        last_index = r.log_index;
    }
    // Replicated to every node, at the same offsets.
    let expect: Vec<(u64, Vec<u8>)> = (0..20).map(|i| (i, format!("a{i}").into_bytes())).collect();
    for a in &addrs {
        assert_eq!(read_all(a, TOPIC, 2, last_index).await, expect, "node {a}");
    }

    // A follower refuses writes and names the leader.
    let follower = addrs.iter().find(|a| **a != leader_addr).unwrap();
    let err = client(follower)
        .produce(ProduceRequest { topic: TOPIC.into(), partition: Some(2), record: Some(record("x")) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(err.metadata().get(LEADER_ID_METADATA).unwrap().to_str().unwrap(), "1");
    assert_eq!(err.metadata().get(LEADER_ADDR_METADATA).unwrap().to_str().unwrap(), leader_addr);

    // Leader change: stop the leader; the two others elect a new one and keep the data.
    let old = nodes.remove(0);
    old.shutdown().await;
    let (new_leader, new_addr) = wait_for("a new leader", Duration::from_secs(30), || async {
        leader_of(&addrs[1], 3).await.filter(|(id, _)| *id != 1)
    })
    .await;
    assert!(new_leader == 2 || new_leader == 3);
    let r = client(&new_addr)
        .produce(ProduceRequest { topic: TOPIC.into(), partition: Some(2), record: Some(record("after")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.base_offset, 20, "offsets continue after the leader change");
    for a in &addrs[1..] {
        let all = read_all(a, TOPIC, 2, r.log_index).await;
        assert_eq!(all.len(), 21);
        assert_eq!(all[20], (20, b"after".to_vec()));
    }
    // Admin removal of the stopped node: it leaves the Raft membership.
    let mut admin = client(&new_addr);
    admin.remove_node(RemoveNodeRequest { node_id: 1, by: "ops".into() }).await.unwrap();
    // ... recorded in the audit trail with the key that asked.
    let read = Some(ReadOptions { linearizable: true, ..Default::default() });
    let trail = admin.list_audit(ListAuditRequest { read, after_index: 0, limit: 0 }).await.unwrap().into_inner();
    let last = trail.records.last().expect("an audit record");
    assert_eq!(
        (last.action.as_str(), last.target.as_str(), last.by.as_str(), last.outcome.as_str()),
        ("node.remove", "1", "ops", "ok"),
        "{trail:?}"
    );
    let s = admin.cluster_status(ClusterStatusRequest { local_only: false }).await.unwrap().into_inner();
    let voters: Vec<u64> = s.nodes.iter().filter(|n| n.voter).map(|n| n.id).collect();
    assert_eq!(voters, vec![2, 3]);
    // ... and is not added back from gossip (several membership-manager ticks later).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = admin.cluster_status(ClusterStatusRequest { local_only: false }).await.unwrap().into_inner();
    assert!(s.nodes.iter().all(|n| n.id != 1 || n.role == Role::None as i32), "{:?}", s.nodes);
    let e = admin.remove_node(RemoveNodeRequest { node_id: 9, by: String::new() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_statuses_and_the_node_keeps_serving() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1, dir.path(), vec![], true);
    cfg.voters = 1;
    let addr = cfg.grpc_addr.clone();
    let node = start(cfg).await.unwrap();
    wait_for("a leader", Duration::from_secs(20), || leader_of(&addr, 1)).await;
    let mut c = client(&addr);
    c.create_topic(CreateTopicRequest { name: TOPIC.into(), partitions: 8 }).await.unwrap();
    // The built-in ledger topic is written by the ledger only.
    let e = c.produce(ProduceRequest { topic: "ledger".into(), partition: None, record: Some(record("x")) }).await;
    assert_eq!(e.unwrap_err().code(), Code::InvalidArgument);

    let big = Record { key: Vec::new(), value: vec![0u8; 2 * 1024 * 1024], headers: Vec::new() };
    let e = c.produce(ProduceRequest { topic: TOPIC.into(), partition: None, record: Some(big) }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    let e = c.produce_batch(ProduceBatchRequest { topic: TOPIC.into(), partition: None, records: vec![] }).await;
    assert_eq!(e.unwrap_err().code(), Code::InvalidArgument);

    let e = c.produce(ProduceRequest { topic: "nope".into(), partition: None, record: Some(record("x")) }).await;
    assert_eq!(e.unwrap_err().code(), Code::NotFound);

    let e = c.produce(ProduceRequest { topic: TOPIC.into(), partition: Some(99), record: Some(record("x")) }).await;
    assert_eq!(e.unwrap_err().code(), Code::NotFound);

    let e = c.create_topic(CreateTopicRequest { name: "bad name!".into(), partitions: 1 }).await;
    assert_eq!(e.unwrap_err().code(), Code::InvalidArgument);
    c.create_topic(CreateTopicRequest { name: "events".into(), partitions: 2 }).await.unwrap();
    let e = c.create_topic(CreateTopicRequest { name: "events".into(), partitions: 2 }).await;
    assert_eq!(e.unwrap_err().code(), Code::AlreadyExists);

    let consume = |topic: &str, offset: u64, read: Option<ReadOptions>| ConsumeRequest {
        topic: topic.into(),
        partition: 0,
        offset,
        max_records: 10,
        read,
    };
    let e = c.consume(consume("nope", 0, None)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.consume(consume("events", 5, None)).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    let wait = ReadOptions { linearizable: false, min_index: 1_000_000, wait_ms: 300 };
    let e = c.consume(consume("events", 0, Some(wait))).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");

    // Still serving, and linearizable reads work on the leader.
    let p = c
        .produce(ProduceRequest { topic: "events".into(), partition: Some(0), record: Some(record("ok")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.base_offset, 0);
    let lin = ReadOptions { linearizable: true, min_index: p.log_index, wait_ms: 1000 };
    let r = c.consume(consume("events", 0, Some(lin))).await.unwrap().into_inner();
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0].value, b"ok");
    assert_eq!(r.end_offset, 1);
    node.shutdown().await;
}
