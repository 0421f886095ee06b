//! Issue 21: a request that encodes larger than the log's record limit is refused with
//! `InvalidArgument` before it is proposed (it used to make the log refuse the entry, which
//! openraft treats as fatal: Raft stopped on the leader). And every file the node writes (WAL
//! segments, indexes, metadata, snapshots, the events log) is private: files 0600, directories
//! 0700, whatever the umask. Connections, streams and snapshot installs are capped, and the
//! produce state is bounded by the retained log. One real `lognode` process per test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Proc, client, leader_of, wait_for};
use ledger_core::{Command, NewAccount, Outcome, ResultCode};
use ledger_proto::convert;
use ledger_proto::ledger::JoinGroupRequest;
use tonic::Code;

fn account(id: &str, metadata: String) -> Command {
    Command::CreateAccount(NewAccount {
        credits_must_not_exceed_debits: false,
        id: id.into(),
        currency: "USD".into(),
        allow_overdraft: false,
        metadata,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_proposals_are_refused_and_raft_keeps_running() {
    common::init_tracing();
    let root = tempfile::tempdir().unwrap();
    // Snapshots every few entries, so the snapshot files are written too.
    let node = Proc::start(1, root.path(), None, true, &["--snapshot-every", "4"]);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;

    // 10 MiB of metadata: under the 16 MiB gRPC message limit, over the log's 8 MiB record.
    let huge = format!(r#"{{"a":"{}"}}"#, "x".repeat(10 * 1024 * 1024));
    let err = client(&addr).submit(convert::command_to_proto(&account("big", huge))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("bytes"), "the limit is named: {}", err.message());

    // The same through the group API: one 9 MiB topic name.
    let join = JoinGroupRequest {
        group: "g".into(),
        topics: vec!["t".repeat(9 * 1024 * 1024)],
        session_timeout_ms: None,
        auto_offset_reset: String::new(),
    };
    let err = client(&addr).join_group(join).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Raft is still running: an ordinary write is applied.
    let r = client(&addr).submit(convert::command_to_proto(&account("ok", "{}".into()))).await;
    let r = r.unwrap_or_else(|e| panic!("ordinary write after the refusals: {e:?}\n{}", node.log_tail()));
    match convert::outcome_from_proto(r.into_inner().outcome.unwrap()).unwrap() {
        Outcome::Account(a) => assert_eq!(a.code, ResultCode::Created),
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_0600_and_directories_0700() {
    use std::os::unix::fs::PermissionsExt as _;
    common::init_tracing();
    let root = tempfile::tempdir().unwrap();
    let node = Proc::start(1, root.path(), None, true, &["--snapshot-every", "4"]);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;
    for i in 0..12 {
        let r = client(&addr).submit(convert::command_to_proto(&account(&format!("a{i}"), "{}".into()))).await;
        r.unwrap_or_else(|e| panic!("write {i}: {e:?}\n{}", node.log_tail()));
    }
    // A snapshot (by entry count) is a checkpoint of the state store: its files are under state/.
    let snapshots = wait_for("the state store's files", Duration::from_secs(30), || {
        let dir = node.dir.clone();
        async move {
            let mut found = Vec::new();
            let mut todo = vec![dir];
            while let Some(d) = todo.pop() {
                for e in std::fs::read_dir(&d).ok()?.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        todo.push(p);
                    } else if p.to_string_lossy().contains("/state/gen-") {
                        found.push(p);
                    }
                }
            }
            (!found.is_empty()).then_some(found)
        }
    })
    .await;
    let mut checked = 0;
    let mut todo = vec![node.dir.clone()];
    let mut wrong = Vec::new();
    while let Some(d) = todo.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        if mode != 0o700 {
            wrong.push(format!("{} is a directory with mode {mode:o}", d.display()));
        }
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p);
            } else {
                checked += 1;
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    wrong.push(format!("{} has mode {mode:o}", p.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "not private ({checked} files checked, snapshots {snapshots:?}):\n{}", wrong.join("\n"));
    assert!(checked >= 4, "only {checked} files found under {}", node.dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_caller_and_connections_are_capped() {
    use ledger_proto::ledger::{ConsumeRequest, CreateTopicRequest};
    use tokio::io::AsyncReadExt as _;
    common::init_tracing();
    let root = tempfile::tempdir().unwrap();
    let node = Proc::start(1, root.path(), None, true, &[]);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;
    client(&addr).create_topic(CreateTopicRequest { name: "t".into(), partitions: 1 }).await.unwrap();

    // ConsumeStream: at most CONSUME_STREAMS_PER_CALLER_MAX open from one caller.
    let max = lognode::limits::CONSUME_STREAMS_PER_CALLER_MAX;
    let c = client(&addr);
    let req = || ConsumeRequest { topic: "t".into(), partition: 0, offset: 0, max_records: 0, read: None };
    let mut open = Vec::new();
    for i in 0..max {
        open.push(c.clone().consume_stream(req()).await.unwrap_or_else(|e| panic!("stream {i}: {e:?}")));
    }
    let err = c.clone().consume_stream(req()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    drop(open.pop());
    let again = wait_for("a stream slot after one stream ended", Duration::from_secs(10), || {
        let mut c = c.clone();
        async move { c.consume_stream(req()).await.ok() }
    })
    .await;
    drop(again);
    drop(open);

    // Connections: past SERVER_CONNECTIONS_MAX a new one is closed at once.
    let cap = lognode::limits::SERVER_CONNECTIONS_MAX;
    let mut conns = Vec::new();
    for _ in 0..cap + 8 {
        conns.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut closed = 0;
    for s in conns.iter_mut().rev().take(8) {
        let mut b = [0u8; 16];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert!(closed >= 8 - 3, "only {closed} of the 8 connections past the cap were closed");
    drop(conns);
    // And the node still serves.
    wait_for("the node serving again", Duration::from_secs(10), || leader_of(&addr, 1)).await;
}

/// Bound on waiting for the holding stream's handler to start.
const INSTALL_HOLD_WAIT: Duration = Duration::from_secs(30);

/// At most `SNAPSHOT_INSTALLS_MAX` (1) InstallSnapshot streams at once on a real lognode: while
/// one stream is open (its first chunk not sent yet), another is refused with
/// `RESOURCE_EXHAUSTED` naming the limit, without waiting; once the first is gone, a new stream
/// gets past the limit (a garbage first chunk is then refused as undecodable instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_snapshot_installs_are_capped() {
    use ledger_proto::raft::SnapshotChunk;
    use ledger_proto::raft::raft_client::RaftClient;
    common::init_tracing();
    assert_eq!(lognode::limits::SNAPSHOT_INSTALLS_MAX, 1, "the test holds one stream");
    let root = tempfile::tempdir().unwrap();
    let node = Proc::start(1, root.path(), None, true, &[]);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;
    let raft = RaftClient::connect(format!("http://{addr}")).await.unwrap();

    // Holds the only slot: a stream that never sends its first chunk.
    let spawn_holder = || {
        let mut holder = raft.clone();
        tokio::spawn(async move { holder.install_snapshot(tokio_stream::pending::<SnapshotChunk>()).await })
    };
    let mut hold = spawn_holder();
    let mut holder_ends = Vec::new();

    // Another install is refused at once (retried while the holder's handler starts; a holder
    // whose call ended, e.g. cut under load, is started again and its end reported on failure).
    let started = std::time::Instant::now();
    let refusal = loop {
        if hold.is_finished() {
            holder_ends.push(format!("{:?}", hold.await));
            hold = spawn_holder();
        }
        let mut c = raft.clone();
        let r = tokio::time::timeout(Duration::from_secs(2), c.install_snapshot(tokio_stream::iter(Vec::new())))
            .await
            .expect("a second install is answered without waiting for the first");
        match r {
            Err(s) if s.code() == Code::ResourceExhausted => break s,
            other => {
                assert!(
                    started.elapsed() < INSTALL_HOLD_WAIT,
                    "never refused while one install was open: {other:?}; holder calls ended: {holder_ends:?}\n{}",
                    node.log_tail()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(refusal.message().contains("at most 1"), "the limit is named: {}", refusal.message());
    assert!(!hold.is_finished(), "the holding stream is still open");

    // The holder goes away (its stream is reset): the slot is free again.
    hold.abort();
    let garbage = SnapshotChunk { meta: vec![0xff; 3], offset: 0, data: Vec::new(), total_bytes: 0 };
    let started = std::time::Instant::now();
    loop {
        let mut c = raft.clone();
        match c.install_snapshot(tokio_stream::iter(vec![garbage.clone()])).await {
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(started.elapsed() < INSTALL_HOLD_WAIT, "the slot was never freed: {s:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::InvalidArgument, "past the limit, the chunk is decoded: {s:?}");
                assert!(s.message().contains("undecodable"), "{s:?}");
                break;
            }
            Ok(r) => panic!("a garbage snapshot was accepted: {r:?}"),
        }
    }
    // The node still serves.
    wait_for("the leader after the refusals", Duration::from_secs(10), || leader_of(&addr, 1)).await;
}

/// Produces without end (issue 21): every produce entry leaves an offset-map run in the node's
/// memory. Runs of entries the log no longer holds are dropped when a snapshot is built, so with
/// `--snapshot-every 100 --retention-entries 50` a node that took 1,200 produces holds a few
/// hundred runs (ClusterStatus `offset_map_runs`), not 1,200, and the records still in the log
/// read back from the topic's start offset to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_state_is_bounded_by_the_retained_log() {
    use ledger_proto::ledger::{
        ClusterStatusRequest, ConsumeRequest, CreateTopicRequest, ListTopicsRequest, ProduceRequest, Record,
    };
    const PRODUCES: u64 = 1_200;
    const WRITERS: u64 = 4;
    const RUNS_MAX: u64 = 400;
    common::init_tracing();
    let root = tempfile::tempdir().unwrap();
    let node = Proc::start(1, root.path(), None, true, &["--snapshot-every", "100", "--retention-entries", "50"]);
    let addr = node.grpc.clone();
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addr, 1)).await;
    client(&addr).create_topic(CreateTopicRequest { name: "t".into(), partitions: 1 }).await.unwrap();

    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let addr = addr.clone();
        writers.spawn(async move {
            let mut c = client(&addr);
            for i in 0..PRODUCES / WRITERS {
                let record = Record { key: Vec::new(), value: format!("{w}-{i}").into_bytes(), headers: Vec::new() };
                let req = ProduceRequest { topic: "t".into(), partition: Some(0), record: Some(record) };
                c.produce(req).await.map_err(|e| format!("produce {w}-{i}: {e:?}"))?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap().unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail()));
    }

    let status = client(&addr).cluster_status(ClusterStatusRequest { local_only: true }).await.unwrap().into_inner();
    let runs = status.nodes.iter().find(|n| n.id == 1).map(|n| n.offset_map_runs).expect("the node's own entry");
    assert!(runs >= 1, "the runs of entries still in the log are kept");
    assert!(runs <= RUNS_MAX, "{runs} offset-map runs after {PRODUCES} produces: the state grows with history");

    // What the log still holds reads back, in order, up to the end offset.
    let mut c = client(&addr);
    let topics = c.list_topics(ListTopicsRequest { read: None }).await.unwrap().into_inner();
    let t = topics.topics.iter().find(|t| t.name == "t").expect("topic t");
    let (start, end) = (t.partitions[0].log_start_offset, t.partitions[0].end_offset);
    assert_eq!(end, PRODUCES);
    assert!(start > 0, "retention moved the start offset forward");
    let req = ConsumeRequest { topic: "t".into(), partition: 0, offset: 0, max_records: 1, read: None };
    assert_eq!(c.consume(req).await.unwrap_err().code(), Code::OutOfRange, "a purged offset is out of range");
    let mut offset = start;
    for _ in 0..PRODUCES {
        if offset >= PRODUCES {
            break;
        }
        let req = ConsumeRequest { topic: "t".into(), partition: 0, offset, max_records: 1000, read: None };
        let r = c.consume(req).await.unwrap().into_inner();
        assert_eq!(r.records.first().map(|x| x.offset), Some(offset), "a gap at {offset}");
        offset = r.next_offset;
    }
    assert_eq!(offset, PRODUCES, "read back to the end");
}
