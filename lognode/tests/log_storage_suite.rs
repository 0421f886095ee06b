//! openraft's storage conformance suite against lognode's logstore-backed log store and state
//! machine, plus restart checks of our own.

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
