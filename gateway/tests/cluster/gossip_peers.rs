//! `--gossip-peers-file` against real processes: a gateway remembers the cluster's members it saw
//! by gossip, and a gateway whose only `--join` seed is gone finds the cluster through that file
//! (the hazard the chaos harness noticed: docs/FAULTS.md, finding 2, for lognodes).

use std::time::{Duration, Instant};

use crate::support::{Cluster, GatewayProc, SERIAL, try_request};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_seed_is_gone_finds_the_cluster_through_the_peers_it_remembered() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let peers = dir.path().join("gossip-peers");
    let peers_arg = peers.to_str().expect("utf-8").to_owned();
    let cluster = Cluster::start();
    let seed = cluster.procs[0].gossip.clone();
    let first = GatewayProc::start_join_with(&seed, &["--gossip-peers-file", &peers_arg]);

    // The first gateway writes the lognodes' gossip addresses it sees.
    let t0 = Instant::now();
    let want: Vec<String> = cluster.procs.iter().map(|p| p.gossip.clone()).collect();
    loop {
        let text = std::fs::read_to_string(&peers).unwrap_or_default();
        if want.iter().filter(|a| text.lines().any(|l| l.trim() == a.as_str())).count() >= 2 {
            break;
        }
        assert!(t0.elapsed() < READY_TIMEOUT, "{} lists {text:?}, not the lognodes {want:?}", peers.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(first);

    // A second gateway, its only seed an address nobody listens on, with that file: it must find
    // the cluster and serve.
    let dead_seed = testkit::ports::free_addr();
    let second = GatewayProc::start_join_with(&dead_seed, &["--gossip-peers-file", &peers_arg]);
    let t1 = Instant::now();
    loop {
        let ready = try_request(second.addr, "GET", "/readyz").await.is_some_and(|r| r.status == 200);
        if ready {
            break;
        }
        assert!(
            t1.elapsed() < READY_TIMEOUT,
            "a gateway whose seed is gone did not find the cluster through {}:\n{}",
            peers.display(),
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
