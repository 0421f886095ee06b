//! The kit's lognode cluster against real processes: leader lookup, pause (SIGSTOP) of the leader
//! and a new election, resume, restart of a node on its data, kill. Needs the `lognode` binary
//! (`cargo test --workspace` builds it; alone: `cargo build -p lognode` first, or
//! `LEDGER_LOGNODE_BIN`).

use std::time::Duration;

use testkit::Cluster;
use testkit::grpc::leader_of;

/// Longest wait for a leader (first election, or after the leader froze).
const ELECTION_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn leader_lookup_pause_resume_restart_and_kill() {
    let mut cluster = Cluster::start();
    assert_eq!(cluster.procs.len(), 3);
    let (leader, addr) = cluster.leader(3, ELECTION_TIMEOUT).await;
    assert!(cluster.grpc_addrs().contains(&addr), "leader {leader} at {addr} is not a member\n{}", cluster.logs());

    // A frozen leader is replaced by one of the others.
    cluster.pause(leader);
    let others: Vec<String> = cluster.procs.iter().filter(|p| p.id != leader).map(|p| p.grpc.clone()).collect();
    let (new_leader, _) = testkit::wait_for("a new leader while the old one is frozen", ELECTION_TIMEOUT, || {
        let others = others.clone();
        async move {
            for a in &others {
                if let Some(l) = leader_of(a, 3).await.filter(|(id, _)| *id != leader) {
                    return Some(l);
                }
            }
            None
        }
    })
    .await;
    assert_ne!(new_leader, leader);

    // Resumed, the old leader rejoins; a restarted node comes back on its data and ports.
    cluster.resume(leader);
    cluster.restart(leader);
    let (again, _) = cluster.leader(3, ELECTION_TIMEOUT).await;
    assert!(cluster.procs.iter().any(|p| p.id == again));
    let node = cluster.proc_mut(leader);
    assert!(node.child.as_mut().is_some_and(testkit::Proc::running), "restarted node not running");
    assert!(node.dir.exists());

    cluster.kill(leader);
    assert!(cluster.proc_mut(leader).child.is_none());
}
