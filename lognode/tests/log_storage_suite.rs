//! openraft's storage conformance suite against lognode's logstore-backed log store and state
//! machine, plus restart checks of our own.

#![allow(clippy::unwrap_used)] // the shared helpers of `common`

mod common;

use lognode::store::records::Records;
use lognode::store::state_machine::StateStore;
use lognode::store::{LogStore, StateMachineStore};
use lognode::types::TypeConfig;
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

/// Builds stores whose ledger records are in memory (`disk: false`) or in the on-disk store.
struct Builder {
    disk: bool,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = logstore::LogConfig { fsync: logstore::FsyncMode::Never, ..Default::default() };
        let (log, _) = logstore::Log::open(dir.path().join("log"), config.clone()).expect("open log");
        let log = Records::open(log).expect("records");
        let ls = LogStore::new(log.clone())?;
        let config = logstore::LogConfig { sync: logstore::SyncPolicy::OnRequest, ..config };
        let (events, _) = logstore::Log::open(dir.path().join("events"), config).expect("open events log");
        let events = Records::open(events).expect("events records");
        let store = if self.disk {
            StateStore::Disk { dir: dir.path().join("state"), cache_bytes: 1 << 20 }
        } else {
            StateStore::Memory
        };
        let sm = StateMachineStore::open(log, events, store)?;
        Ok((dir, ls, sm))
    }
}

#[test]
fn openraft_log_storage_conformance_suite() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    Suite::test_all(Builder { disk: false }).expect("openraft storage suite");
}

#[test]
fn openraft_log_storage_conformance_suite_with_the_state_on_disk() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    Suite::test_all(Builder { disk: true }).expect("openraft storage suite, state on disk");
}

/// Vote, committed, purge point and the last log id survive a reopen; limited reads are bounded.
#[tokio::test]
async fn log_store_state_survives_reopen() {
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    use openraft::testing::{blank_ent, log_id};
    use openraft::{RaftLogReader, Vote};

    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        let config = logstore::LogConfig { fsync: logstore::FsyncMode::Never, ..Default::default() };
        let (log, _) = logstore::Log::open(dir.path().join("log"), config).expect("open log");
        LogStore::new(Records::open(log).expect("records")).expect("log store")
    };
    {
        let mut ls = open();
        let entries: Vec<_> = (1..=10).map(|i| blank_ent::<TypeConfig>(2, 1, i)).collect();
        ls.blocking_append(entries).await.expect("append");
        ls.save_vote(&Vote::new_committed(2, 1)).await.expect("vote");
        ls.save_committed(Some(log_id(2, 1, 8))).await.expect("committed");
        ls.purge(log_id(2, 1, 3)).await.expect("purge");
        ls.truncate(log_id(2, 1, 10)).await.expect("truncate");
    }
    let mut ls = open();
    let state = ls.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 9)));
    assert_eq!(ls.read_vote().await.expect("vote"), Some(Vote::new_committed(2, 1)));
    assert_eq!(ls.read_committed().await.expect("committed"), Some(log_id(2, 1, 8)));
    let got = ls.try_get_log_entries(0..100).await.expect("read");
    assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (4..=9).collect::<Vec<_>>());
    let limited = ls.limited_get_log_entries(4, 10).await.expect("limited read");
    assert!(!limited.is_empty() && limited.len() <= 6);
    assert_eq!(limited[0].log_id.index, 4);
}

/// The events log is synced only when asked (`SyncPolicy::OnRequest`): its records are
/// readable as soon as apply wrote them, and durable before anything durable says they exist:
/// a checkpoint of the state store (every snapshot in disk mode) and the close.
#[tokio::test]
async fn the_events_log_is_synced_before_the_state_store_says_its_events_exist() {
    use openraft::entry::RaftEntry as _;
    use openraft::storage::{RaftSnapshotBuilder as _, RaftStateMachine as _};
    use openraft::testing::log_id;
    use openraft::{Entry, EntryPayload};

    let dir = tempfile::tempdir().expect("tempdir");
    let config = logstore::LogConfig::default();
    let (log, _) = logstore::Log::open(dir.path().join("log"), config.clone()).expect("open log");
    let log = Records::open(log).expect("records");
    let config = logstore::LogConfig { sync: logstore::SyncPolicy::OnRequest, ..config };
    let (events, _) = logstore::Log::open(dir.path().join("events"), config).expect("open events log");
    let events = Records::open(events).expect("events records");
    let store = StateStore::Disk { dir: dir.path().join("state"), cache_bytes: 1 << 20 };
    let mut sm = StateMachineStore::open(log, events.clone(), store).expect("open state machine");

    let ledger = |index: u64, command: ledger_core::Command| {
        let mut e = Entry::<TypeConfig>::new_blank(log_id(1, 1, index));
        e.payload = EntryPayload::Normal(lognode::types::Request::Ledger { timestamp_ms: 1, command });
        e
    };
    let mut entries = vec![ledger(1, common::new_account("a", true)), ledger(2, common::new_account("b", false))];
    entries.extend((0..20u64).map(|i| ledger(3 + i, common::new_transfer(&format!("t{i}"), "a", "b", 5))));
    // One entry first, then the rest.
    let mut rest = entries.split_off(1);
    sm.apply(entries).await.expect("apply");
    // The first record opens the events log's first segment, which is synced at once.
    for _ in 0..500 {
        if events.durable_index().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let first_durable = events.durable_index();
    assert_eq!(first_durable, Some(1), "synced with the new segment");
    sm.apply(std::mem::take(&mut rest)).await.expect("apply");
    // Apply queues the events for logstore's writer thread, which writes them a moment later.
    // An event per account and per transfer (records hold a partition's events of one apply call).
    written(&events, 2).await;
    let last = events.last_index().expect("events were derived");
    assert_eq!(events.durable_index(), first_durable, "no sync before one is needed");
    assert!(events.read(last).expect("read").is_some(), "the newest event reads back before any sync");

    let snap = sm.build_snapshot().await.expect("a checkpoint");
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(22));
    assert_eq!(events.durable_index(), Some(last), "the checkpoint synced every event it covers");

    sm.apply(vec![ledger(23, common::new_transfer("t-late", "a", "b", 1))]).await.expect("apply");
    written(&events, last + 1).await;
    let late = events.last_index().expect("events");
    assert!(late > last && events.durable_index() == Some(last), "{late} {:?}", events.durable_index());
    sm.close().expect("close");
    assert_eq!(events.durable_index(), Some(late), "the close synced them before its commit");
}

/// Waits (at most 5 s) until `events` holds record `n`.
async fn written(events: &Records, n: u64) {
    for _ in 0..500 {
        if events.last_index().is_some_and(|l| l >= n) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the events log never reached record {n}: {:?}", events.last_index());
}
