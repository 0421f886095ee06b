//! SIGTERM and SIGINT sent to this very process set the flag (its own test binary, so the
//! handlers installed here affect no other test).

use std::time::Duration;

use ledger_shutdown::{SIGINT, SIGTERM, Shutdown};

const BOUND: Duration = Duration::from_secs(10);

fn kill(sig: &str) {
    let status =
        std::process::Command::new("kill").args([sig, &std::process::id().to_string()]).status().expect("`kill` runs");
    assert!(status.success(), "kill {sig} failed: {status}");
}

#[tokio::test]
async fn sigterm_then_sigint_stop_once_with_the_first_reason() {
    let s = Shutdown::on_signals().expect("handlers installed");
    assert!(!s.is_stopping());
    kill("-TERM");
    tokio::time::timeout(BOUND, s.stopping()).await.expect("SIGTERM sets the flag");
    assert_eq!(s.reason(), Some(SIGTERM));
    // A second signal is absorbed (the process is not killed) and the first reason stays.
    kill("-INT");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.reason(), Some(SIGTERM));

    let again = Shutdown::on_signals().expect("handlers installed again");
    kill("-INT");
    tokio::time::timeout(BOUND, again.stopping()).await.expect("SIGINT sets the flag");
    assert_eq!(again.reason(), Some(SIGINT));
}
