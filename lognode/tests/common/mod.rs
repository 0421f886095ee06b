//! Test helpers: free ports, clients, bounded waits and lognode processes, all from the test kit
//! (`testkit`), under the names these tests use.
#![allow(dead_code, unused_imports)]

pub use testkit::grpc::{client, leader_of, read_all};
pub use testkit::{Lognode as Proc, free_port, wait_for};

/// Logs to the test output when RUST_LOG is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
