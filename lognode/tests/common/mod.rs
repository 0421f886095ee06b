//! Test helpers: free ports, clients, bounded waits and lognode processes, all from the test kit
//! (`testkit`), under the names these tests use.
#![allow(dead_code, unused_imports)]

pub mod ledger;

pub use testkit::grpc::{client, leader_of, read_all, read_from};
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

/// `CreateAccount` of a USD account with empty metadata.
pub fn new_account(id: &str, overdraft: bool) -> ledger_core::Command {
    ledger_core::Command::CreateAccount(ledger_core::NewAccount {
        credits_must_not_exceed_debits: false,
        id: id.into(),
        currency: "USD".into(),
        allow_overdraft: overdraft,
        metadata: "{}".into(),
    })
}

/// A posted USD transfer with empty metadata.
pub fn transfer_body(id: &str, from: &str, to: &str, amount: u64) -> ledger_core::NewTransfer {
    ledger_core::NewTransfer {
        flags: Default::default(),
        id: id.into(),
        debit_account_id: from.into(),
        credit_account_id: to.into(),
        amount,
        currency: "USD".into(),
        metadata: "{}".into(),
        pending: false,
        timeout_ms: None,
    }
}

/// `CreateTransfer` of [`transfer_body`].
pub fn new_transfer(id: &str, from: &str, to: &str, amount: u64) -> ledger_core::Command {
    ledger_core::Command::CreateTransfer(transfer_body(id, from, to, amount))
}
