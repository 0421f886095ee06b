//! Encrypted gossip against real processes (docs/SECURITY.md): three lognodes sharing
//! `--gossip-key-file` form a cluster; a gateway joining the gossip with that key serves it; one
//! with another key finds no lognode and never becomes ready.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Cluster, GatewayProc, SERIAL, try_request};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the gateway with the wrong key is watched.
const WATCH: Duration = Duration::from_secs(4);

fn key_file(dir: &Path, name: &str, byte: u8) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", format!("{byte:02x}").repeat(32))).expect("write key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.to_str().expect("utf-8").to_owned()
}

async fn ready(gw: &GatewayProc) -> bool {
    try_request(gw.addr, "GET", "/readyz").await.is_some_and(|r| r.status == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_gateway_with_the_gossip_key_finds_the_cluster() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (good, bad) = (key_file(dir.path(), "gossip.key", 0x5a), key_file(dir.path(), "other.key", 0xa5));
    let cluster = Cluster::builder().extra(&["--gossip-key-file", &good]).start();
    let seed = cluster.procs[0].gossip.clone();
    let outsider = GatewayProc::start_join_with(&seed, &["--gossip-key-file", &bad]);
    let member = GatewayProc::start_join_with(&seed, &["--gossip-key-file", &good]);

    let t0 = Instant::now();
    while !ready(&member).await {
        assert!(t0.elapsed() < READY_TIMEOUT, "the gateway with the key never became ready:\n{}", member.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ready means a leader is reachable; the third lognode may still be joining (it failed in CI
    // with 2 nodes listed, the third a moment from being added). All 3, within the bound.
    let (mut all, mut listed) = (false, String::new());
    while !all && t0.elapsed() < READY_TIMEOUT {
        let r = try_request(member.addr, "GET", "/v1/cluster").await.expect("cluster status");
        all = r.json()["nodes"].as_array().map(Vec::len) == Some(3);
        listed = r.text();
        if !all {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(all, "the gateway with the key never saw all 3 lognodes: {listed}\n{}", member.log());

    let t1 = Instant::now();
    while t1.elapsed() < WATCH {
        assert!(!ready(&outsider).await, "a gateway with another gossip key found the cluster:\n{}", outsider.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
