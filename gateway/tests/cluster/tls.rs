//! Mutual TLS against real processes (issue 16, docs/SECURITY.md): three lognodes with `--tls-*`
//! and a gateway with `--cluster-*` serve writes and reads; a lognode refuses, on its client API
//! and its Raft service alike, a caller without a certificate or with one from another CA; a
//! gateway with a certificate from another CA never reaches the cluster.

use std::time::{Duration, Instant};

use ledger_proto::ledger::ClusterStatusRequest;
use ledger_proto::ledger::ledger_client::LedgerClient;
use ledger_proto::raft::PreVoteRequest;
use ledger_proto::raft::raft_client::RaftClient;
use lognode_args::certs::{self, TlsFiles};
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::support::{Cluster, GatewayProc, SERIAL, try_request};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the gateway with a foreign certificate is watched.
const WATCH: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A channel to `addr` trusting the cluster CA `ca`, showing `who`'s certificate (none if `None`).
async fn channel(addr: &str, ca: &TlsFiles, who: Option<&TlsFiles>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&ca.ca)))
        .domain_name(ledger_proto::tls::SERVER_NAME);
    if let Some(w) = who {
        tls = tls.identity(Identity::from_pem(read(&w.cert), read(&w.key)));
    }
    Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?.timeout(CALL_TIMEOUT).connect().await
}

async fn status_ok(addr: &str, ca: &TlsFiles, who: Option<&TlsFiles>) -> Result<(), String> {
    let ch = channel(addr, ca, who).await.map_err(|e| format!("connect: {e:?}"))?;
    LedgerClient::new(ch).cluster_status(ClusterStatusRequest { local_only: true }).await.map_err(|s| s.to_string())?;
    Ok(())
}

/// Whether the Raft service answered at all (an application error is an answer; a refused
/// handshake is not).
async fn raft_answers(addr: &str, ca: &TlsFiles, who: Option<&TlsFiles>) -> bool {
    let Ok(ch) = channel(addr, ca, who).await else { return false };
    match RaftClient::new(ch).pre_vote(PreVoteRequest { candidate_id: 99, last_log_id: Vec::new() }).await {
        Ok(_) => true,
        // A status the server sent has no transport error under it; a refused handshake has.
        Err(s) => {
            eprintln!("{addr}: PreVote answered {:?}: {}", s.code(), s.message());
            std::error::Error::source(&s).is_none() && s.message() != "transport error"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lognodes_admit_only_certificates_of_the_cluster_ca() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = certs::ensure(&dir.path().join("tls"), &["node", "gateway"]).expect("cluster certificates");
    let other = certs::ensure(&dir.path().join("other"), &["intruder"]).expect("another CA");
    let (node, gateway) = (&good[0], &good[1]);
    // The intruder's own certificate and key, presented to the cluster: signed by another CA.
    let intruder = TlsFiles { ca: node.ca.clone(), ..other[0].clone() };

    let node_flags = node.lognode_flags();
    let cluster = Cluster::builder().extra(&node_flags.iter().map(String::as_str).collect::<Vec<_>>()).start();
    let addrs = cluster.grpc_addrs();
    let gw_flags = gateway.gateway_flags();
    let gw = GatewayProc::start_static_with(&addrs, &gw_flags.iter().map(String::as_str).collect::<Vec<_>>());
    let t0 = Instant::now();
    loop {
        let r = try_request(gw.addr, "GET", "/v1/cluster").await;
        let voters = r.as_ref().filter(|r| r.status == 200).map_or(0, |r| {
            r.json()["nodes"]
                .as_array()
                .map_or(0, |n| n.iter().filter(|n| n["alive"] == true && n["role"] != "learner").count())
        });
        if voters == 3 && try_request(gw.addr, "GET", "/readyz").await.is_some_and(|r| r.status == 200) {
            break;
        }
        assert!(
            t0.elapsed() < READY_TIMEOUT,
            "the mTLS cluster never served 3 voters:\n{}\n{}",
            gw.log(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r =
        crate::support::request(gw.addr, "POST", "/v1/accounts", Some(&json!({"id": "a", "currency": "USD"}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = crate::support::request(gw.addr, "GET", "/v1/accounts/a?consistency=strong", None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    for addr in &addrs {
        status_ok(addr, node, Some(gateway))
            .await
            .unwrap_or_else(|e| panic!("{addr} refused the cluster's own certificate: {e}"));
        assert!(raft_answers(addr, node, Some(gateway)).await, "{addr}: Raft refused the cluster's own certificate");
        let e = status_ok(addr, node, Some(&intruder)).await.expect_err("a certificate of another CA");
        eprintln!("{addr} refused another CA's certificate: {e}");
        assert!(!raft_answers(addr, node, Some(&intruder)).await, "{addr}: Raft admitted another CA's certificate");
        status_ok(addr, node, None).await.expect_err("no client certificate");
        assert!(!raft_answers(addr, node, None).await, "{addr}: Raft admitted a caller without a certificate");
        let plain = testkit::grpc::client(addr).cluster_status(ClusterStatusRequest { local_only: true }).await;
        assert!(plain.is_err(), "{addr} answered plaintext gRPC");
    }

    // A gateway showing another CA's certificate never reaches the cluster.
    let bad_flags = intruder.gateway_flags();
    let bad = GatewayProc::start_static_with(&addrs, &bad_flags.iter().map(String::as_str).collect::<Vec<_>>());
    let t1 = Instant::now();
    while t1.elapsed() < WATCH {
        let ready = try_request(bad.addr, "GET", "/readyz").await.is_some_and(|r| r.status == 200);
        assert!(!ready, "a gateway with another CA's certificate became ready:\n{}", bad.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
