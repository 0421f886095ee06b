//! Harness: real `lognode` processes (3 nodes, fsync on, 127.0.0.1) from the test kit, an
//! in-process gateway over the `GrpcBackend`, and the kit's small HTTP/1.1 client.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway::GatewayConfig;
use gateway::backend::{LedgerBackend, NodeRole};
use gateway::grpc_backend::{GrpcBackend, Lognodes};
use ledger_discovery::{Discovery, Gossip, GossipProfile, MemberKind, MemberMeta};
use serde_json::Value;
pub use testkit::http::{REQUEST_TIMEOUT, Resp};
pub use testkit::{Cluster, Lognode as Proc, free_port, wait_for};

/// Waits until the backend sees a leader and `voters` voters, every one of them alive; returns
/// the leader id.
pub async fn wait_for_voters(backend: &GrpcBackend, voters: usize, timeout: Duration) -> u64 {
    wait_for("a leader and all voters", timeout, || async {
        let c = backend.cluster_status().await.ok()?;
        let ready = c.nodes.iter().filter(|n| n.alive && n.role != NodeRole::Learner).count();
        let leader = c.leader_id?;
        (ready >= voters && backend.ready().await.is_ok()).then_some(leader)
    })
    .await
}

/// A gateway serving the real HTTP stack over a `GrpcBackend`.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub backend: Arc<GrpcBackend>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a gateway that finds the lognodes through the static list.
pub async fn gateway_static(addrs: Vec<String>) -> TestGateway {
    serve(GrpcBackend::start(Lognodes::Static(addrs)).await).await
}

/// Starts a gateway that joins the lognodes' gossip (as a gateway member) through `seed`.
pub async fn gateway_gossip(seed: &str) -> TestGateway {
    let port = free_port();
    let bind: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let meta = MemberMeta {
        kind: MemberKind::Gateway,
        node_id: u64::from(port),
        grpc_addr: "127.0.0.1:0".to_owned(),
        role: "gateway".to_owned(),
    };
    let seed: SocketAddr = seed.parse().expect("seed");
    let gossip: Arc<dyn Discovery> =
        Gossip::start(bind, meta, vec![seed], GossipProfile::Local).await.expect("join gossip");
    serve(GrpcBackend::start(Lognodes::Gossip(gossip)).await).await
}

async fn serve(backend: Arc<GrpcBackend>) -> TestGateway {
    let config = GatewayConfig { admin_token: Some("s3cret".to_owned()), ..GatewayConfig::default() };
    let app = gateway::app(backend.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway::serve(listener, app, async move {
        let _ = rx.await;
    }));
    TestGateway { addr, backend, shutdown: Some(tx) }
}

/// Like [`request`] without a body, `None` when the connection fails.
pub async fn try_request(addr: SocketAddr, method: &str, path: &str) -> Option<Resp> {
    tokio::net::TcpStream::connect(addr).await.ok()?;
    Some(request(addr, method, path, None).await)
}

/// Sends one request with a raw JSON-typed body (possibly malformed) on a fresh connection.
pub async fn request_raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Resp {
    testkit::http::request(addr, method, path, &[("content-type", "application/json")], body.to_vec()).await
}

/// Sends one request (as the admin) on a fresh connection to `addr`.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let mut headers = vec![("authorization", "Bearer s3cret")];
    // The gateway refuses a write without a JSON content type, also with no body.
    if body.is_some() || method != "GET" {
        headers.push(("content-type", "application/json"));
    }
    let bytes = body.map(|v| v.to_string().into_bytes()).unwrap_or_default();
    testkit::http::request(addr, method, path, &headers, bytes).await
}

impl TestGateway {
    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, None).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        request(self.addr, "POST", path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Resp {
        request(self.addr, "DELETE", path, None).await
    }

    /// Reads served per node id so far.
    pub fn reads(&self) -> std::collections::BTreeMap<u64, u64> {
        let mut m = std::collections::BTreeMap::new();
        for (id, n) in self.backend.stats().reads_by_node {
            *m.entry(id).or_insert(0) += n;
        }
        m
    }
}

/// The whole-cluster tests run one at a time (each starts 3 fsyncing processes on a small machine).
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Longest wait for the gateway binary to exit after SIGTERM.
const GATEWAY_TERMINATE_TIMEOUT: Duration = Duration::from_secs(20);

/// The real `gateway` binary as a child process; killed on drop.
pub struct GatewayProc {
    pub addr: SocketAddr,
    proc: testkit::cluster::GatewayProcess,
    _dir: tempfile::TempDir,
}

impl GatewayProc {
    /// `gateway --join <seed> --gossip-addr <free> --gossip-profile local --listen <free>`.
    pub fn start_join(seed: &str) -> GatewayProc {
        Self::start_join_with(seed, &[])
    }

    /// [`GatewayProc::start_join`] with `extra` flags.
    pub fn start_join_with(seed: &str, extra: &[&str]) -> GatewayProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_gateway"));
        let log = dir.path().join("gateway.log");
        let proc = testkit::cluster::GatewayProcess::start_join_with(bin, seed, extra, &log, "info");
        GatewayProc { addr: proc.addr, proc, _dir: dir }
    }

    /// `gateway --lognodes <lognodes> --listen <free> <extra...>`.
    pub fn start_static_with(lognodes: &[String], extra: &[&str]) -> GatewayProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_gateway"));
        let log = dir.path().join("gateway.log");
        let proc = testkit::cluster::GatewayProcess::start_static_with(bin, lognodes, extra, &log, "info");
        GatewayProc { addr: proc.addr, proc, _dir: dir }
    }

    /// SIGTERM, then wait (bounded); whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        self.proc.proc.terminate(GATEWAY_TERMINATE_TIMEOUT).is_some_and(|s| s.success())
    }

    /// Its log.
    pub fn log(&self) -> String {
        self.proc.proc.log()
    }
}
