//! A lognode restarted after the gossip seeds it was started with are gone finds the cluster
//! through the peers it remembered (`<data-dir>/gossip-peers`). Found by the chaos harness
//! (docs/FAULTS.md, seed 102): nodes 2 and 3 join through node 1; once node 1 was replaced, a
//! restarted node 2 ran outside the gossip, and a new node that joined through it formed an island
//! with it that the leader did not see, so it was never added as a learner.

use std::time::{Duration, Instant};

use ledger_proto::ledger::ClusterStatusRequest;
use testkit::Cluster;

/// Longest wait for the cluster to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for node 3's gossip to see the restarted node 2 alive.
const REJOIN_MAX: Duration = Duration::from_secs(10);

/// Whether `addr`'s gossip lists lognode `id` alive.
async fn sees_alive(addr: &str, id: u64) -> bool {
    let mut c = testkit::grpc::client(addr);
    let mut req = tonic::Request::new(ClusterStatusRequest { local_only: false });
    req.set_timeout(Duration::from_secs(2));
    match c.cluster_status(req).await {
        Ok(s) => s.into_inner().nodes.iter().any(|n| n.id == id && n.alive),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_its_seed_is_gone_rejoins_through_the_peers_it_remembered() {
    let mut cluster = Cluster::start();
    cluster.leader(3, FORM_TIMEOUT).await;
    let addrs = cluster.grpc_addrs();
    // Node 2 has seen node 3 by gossip, and remembers where it is.
    let peers = cluster.path("n2").join("gossip-peers");
    testkit::wait_for("node 2 to remember node 3's gossip address", FORM_TIMEOUT, || {
        let peers = peers.clone();
        async move { std::fs::read_to_string(&peers).ok().filter(|t| t.lines().count() >= 2) }
    })
    .await;

    cluster.kill(1);
    cluster.kill(2);
    testkit::wait_for("node 3's gossip to see node 2 gone", FORM_TIMEOUT, || {
        let a = addrs[2].clone();
        async move { (!sees_alive(&a, 2).await).then_some(()) }
    })
    .await;
    cluster.proc_mut(2).spawn();
    let restarted = Instant::now();
    // Node 3's gossip marks node 2 alive again only once node 2 joined it (its seed, node 1, is
    // gone for good).
    let mut seen = None;
    while restarted.elapsed() < REJOIN_MAX * 3 {
        if sees_alive(&addrs[2], 2).await {
            seen = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = seen.unwrap_or_else(|| panic!("node 3 never saw node 2 again\n{}", cluster.logs()));
    assert!(
        took <= REJOIN_MAX,
        "node 2 rejoined the gossip only after {took:?} (at most {REJOIN_MAX:?})\n{}",
        cluster.logs()
    );
    let log = std::fs::read_to_string(cluster.proc_mut(2).log_path()).unwrap_or_default();
    assert!(log.matches("joined gossip").count() >= 2, "node 2 did not join again after its restart:\n{log}");
}
