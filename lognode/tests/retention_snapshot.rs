//! Retention purges the log and moves start offsets forward; a 4th node joining through gossip
//! becomes a learner and catches up through a snapshot. Also: ConsumeStream tails new records.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{client, free_port, leader_of, wait_for};
use ledger_proto::ledger::{
    ClusterStatusRequest, ConsumeRequest, CreateTopicRequest, ListTopicsRequest, ProduceBatchRequest, ProduceRequest,
    ReadOptions, Record, Role,
};
use lognode::config::Config;
use lognode::node::start;
use tonic::Code;

const RETENTION: u64 = 20;
const SNAPSHOT_EVERY: u64 = 50;
/// A user topic (clients cannot produce to the built-in `ledger` topic).
const TOPIC: &str = "orders";

fn config(id: u64, dir: &std::path::Path, join: Vec<String>, bootstrap: bool) -> Config {
    Config {
        id,
        data_dir: dir.join(format!("n{id}")),
        grpc_addr: format!("127.0.0.1:{}", free_port()),
        gossip_addr: format!("127.0.0.1:{}", free_port()),
        join,
        bootstrap,
        voters: 3,
        retention_entries: Some(RETENTION),
        retention_bytes: None,
        retention_lag_bytes: lognode::config::RETENTION_LAG_BYTES_DEFAULT,
        snapshot_log_bytes: lognode::config::SNAPSHOT_LOG_BYTES_DEFAULT,
        snapshot_log_percent: lognode::config::SNAPSHOT_LOG_PERCENT_DEFAULT,
        snapshot_every: Some(SNAPSHOT_EVERY),
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

fn rec(v: String) -> Record {
    Record { key: Vec::new(), value: v.into_bytes(), headers: Vec::new() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_purges_and_a_new_learner_catches_up_by_snapshot() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let c1 = config(1, dir.path(), vec![], true);
    let seed = c1.gossip_addr.clone();
    let c2 = config(2, dir.path(), vec![seed.clone()], false);
    let c3 = config(3, dir.path(), vec![seed.clone()], false);
    let addrs: Vec<String> = [&c1, &c2, &c3].iter().map(|c| c.grpc_addr.clone()).collect();
    let mut nodes = vec![start(c1).await.unwrap(), start(c2).await.unwrap(), start(c3).await.unwrap()];
    let (_, leader) = wait_for("3 voters", Duration::from_secs(30), || leader_of(&addrs[0], 3)).await;
    let mut c = client(&leader);
    let created = c.create_topic(CreateTopicRequest { name: TOPIC.into(), partitions: 2 }).await.unwrap().into_inner();
    let after_create = Some(ReadOptions { min_index: created.log_index, ..Default::default() });

    // A stream tailing partition 1 from a follower, started before anything is produced there.
    let mut stream = client(&addrs[1])
        .consume_stream(ConsumeRequest {
            topic: TOPIC.into(),
            partition: 1,
            offset: 0,
            max_records: 0,
            read: after_create,
        })
        .await
        .unwrap()
        .into_inner();

    // 300 entries of 2 records each: several snapshots, the log purged below them.
    let mut last = 0;
    for i in 0..300u64 {
        let records = vec![rec(format!("r{}", 2 * i)), rec(format!("r{}", 2 * i + 1))];
        let r = c
            .produce_batch(ProduceBatchRequest { topic: TOPIC.into(), partition: Some(1), records })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.base_offset, 2 * i);
        last = r.log_index;
    }
    // The stream saw every record, in order, without polling.
    let mut next = 0u64;
    while next < 600 {
        let msg = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
        for r in msg.records {
            assert_eq!(r.offset, next);
            assert_eq!(r.value, format!("r{next}").into_bytes());
            next += 1;
        }
    }
    drop(stream);

    // Retention moved the start offset forward; reading below it is OUT_OF_RANGE.
    let start_offset = wait_for("the log purged", Duration::from_secs(20), || {
        let mut c = c.clone();
        async move {
            let t = c.list_topics(ListTopicsRequest { read: None }).await.ok()?.into_inner();
            let p = &t.topics.iter().find(|t| t.name == TOPIC)?.partitions[1];
            (p.log_start_offset > 0).then_some(p.log_start_offset)
        }
    })
    .await;
    assert!(start_offset < 600);
    let e = c
        .consume(ConsumeRequest { topic: TOPIC.into(), partition: 1, offset: 0, max_records: 1, read: None })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");

    // A 4th node joins via gossip, becomes a learner (3 voters already), and catches up.
    let c4 = config(4, dir.path(), vec![seed], false);
    let a4 = c4.grpc_addr.clone();
    nodes.push(start(c4).await.unwrap());
    let read = ReadOptions { linearizable: false, min_index: last, wait_ms: 20_000 };
    let status = wait_for("node 4 as a learner", Duration::from_secs(30), || {
        let mut c = c.clone();
        async move {
            let s = c.cluster_status(ClusterStatusRequest { local_only: false }).await.ok()?.into_inner();
            let n4 = s.nodes.into_iter().find(|n| n.id == 4)?;
            (n4.role == Role::Learner as i32 && n4.alive).then_some(n4)
        }
    })
    .await;
    assert!(!status.voter);
    let mut c4 = client(&a4);
    let t = c4.list_topics(ListTopicsRequest { read: Some(read) }).await.unwrap().into_inner();
    let p = &t.topics.iter().find(|t| t.name == TOPIC).unwrap().partitions[1];
    assert_eq!(p.end_offset, 600, "node 4 has the full offset map");
    assert!(p.log_start_offset > 0, "node 4 got a snapshot, not the purged log");
    let r = c4
        .consume(ConsumeRequest {
            topic: TOPIC.into(),
            partition: 1,
            offset: p.log_start_offset,
            max_records: 1000,
            read: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.records.len() as u64, 600 - p.log_start_offset);
    for x in &r.records {
        assert_eq!(x.value, format!("r{}", x.offset).into_bytes());
    }
    // And it keeps replicating new writes.
    let w = c
        .produce(ProduceRequest { topic: TOPIC.into(), partition: Some(1), record: Some(rec("new".into())) })
        .await
        .unwrap()
        .into_inner();
    let read = ReadOptions { linearizable: false, min_index: w.log_index, wait_ms: 10_000 };
    let r = c4
        .consume(ConsumeRequest { topic: TOPIC.into(), partition: 1, offset: 600, max_records: 10, read: Some(read) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.records[0].value, b"new");
    for n in nodes {
        n.shutdown().await;
    }
}
