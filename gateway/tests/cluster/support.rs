//! Harness: real `lognode` processes (3 nodes, fsync on, 127.0.0.1) from the test kit, an
//! in-process gateway over the `GrpcBackend`, and the kit's small HTTP/1.1 client.
//!
//! With `crate::SECURE` (the `cluster_secure` test binary) the same tests run with security on:
//! lognodes with mutual TLS (a CA of the test binary) and a bootstrap admin key, and gateways
//! calling them over mTLS, asking for API keys, with every request sending the admin key.
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
pub use testkit::{Lognode as Proc, free_port, wait_for};

/// The admin key's secret in secure mode (the lognodes' `--admin-key-file`).
pub const SECURE_ADMIN_KEY: &str = "lk_secure_suite_admin_0123456789abcdef0123456789abcdef";
/// Longest wait for a secure gateway to know the admin key (an election, then the bootstrap).
const SECURE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The secure mode's files, made once per test binary: a CA with one certificate for every
/// lognode and one for the gateways, and the admin key file.
pub struct SecureFiles {
    pub node: lognode_args::certs::TlsFiles,
    pub gateway: lognode_args::certs::TlsFiles,
    pub admin_key_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The secure mode's files (`None` in the plain binary).
pub fn secure() -> Option<&'static SecureFiles> {
    static FILES: std::sync::OnceLock<SecureFiles> = std::sync::OnceLock::new();
    if !crate::SECURE {
        return None;
    }
    Some(FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files =
            lognode_args::certs::ensure(&dir.path().join("tls"), &["node", "gateway"]).expect("certificates");
        let admin_key_file = write_admin_key(dir.path(), SECURE_ADMIN_KEY);
        let gateway = files.pop().expect("gateway");
        let node = files.pop().expect("node");
        SecureFiles { node, gateway, admin_key_file, _dir: dir }
    }))
}

/// Writes `secret` to `<dir>/admin.key` (mode 0600), for lognode's `--admin-key-file`; its path.
pub fn write_admin_key(dir: &std::path::Path, secret: &str) -> std::path::PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("admin.key");
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).expect("key file");
    writeln!(f, "{secret}").expect("write key file");
    path
}

/// Lognode processes from the test kit; in secure mode each gets `--tls-*` and
/// `--admin-key-file`.
pub struct Cluster(testkit::Cluster);

impl std::ops::Deref for Cluster {
    type Target = testkit::Cluster;
    fn deref(&self) -> &testkit::Cluster {
        &self.0
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut testkit::Cluster {
        &mut self.0
    }
}

impl Cluster {
    /// Three lognodes with fsync on; waits until each listens, not for a leader.
    pub fn start() -> Cluster {
        Self::builder().start()
    }

    /// A builder for other sizes and flags.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder(testkit::Cluster::builder())
    }
}

/// [`testkit::cluster::ClusterBuilder`], adding the secure mode's flags.
pub struct ClusterBuilder(testkit::cluster::ClusterBuilder);

impl ClusterBuilder {
    /// Number of lognodes.
    pub fn nodes(self, n: u64) -> Self {
        ClusterBuilder(self.0.nodes(n))
    }

    /// More flags for every lognode.
    pub fn extra(self, flags: &[&str]) -> Self {
        ClusterBuilder(self.0.extra(flags))
    }

    /// Starts the processes (see the kit).
    pub fn start(self) -> Cluster {
        let Some(s) = secure() else { return Cluster(self.0.start()) };
        let mut flags = s.node.lognode_flags();
        flags.extend(["--admin-key-file".to_owned(), s.admin_key_file.display().to_string()]);
        Cluster(self.0.extra(&flags.iter().map(String::as_str).collect::<Vec<_>>()).start())
    }
}

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

/// The gateway's side of the secure mode's mutual TLS.
fn client_tls() -> Option<tonic::transport::ClientTlsConfig> {
    let s = secure()?;
    let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Some(
        ledger_proto::tls::ClusterTls::from_pem(&read(&s.gateway.ca), &read(&s.gateway.cert), &read(&s.gateway.key))
            .client(),
    )
}

/// Starts a gateway that finds the lognodes through the static list.
pub async fn gateway_static(addrs: Vec<String>) -> TestGateway {
    serve(GrpcBackend::start_with_tls(Lognodes::Static(addrs), client_tls()).await).await
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
    serve(GrpcBackend::start_with_tls(Lognodes::Gossip(gossip), client_tls()).await).await
}

async fn serve(backend: Arc<GrpcBackend>) -> TestGateway {
    let config = if crate::SECURE {
        GatewayConfig { auth: gateway::auth::AuthMode::Keys, ..GatewayConfig::default() }
    } else {
        GatewayConfig { admin_token: Some("s3cret".to_owned()), ..GatewayConfig::default() }
    };
    let app = gateway::app(backend.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway::serve(listener, app, async move {
        let _ = rx.await;
    }));
    let gw = TestGateway { addr, backend, shutdown: Some(tx) };
    if crate::SECURE {
        // The admin key exists once a leader entered it, and this gateway knows it once it
        // reloaded the keys.
        wait_for("the gateway to know the admin key", SECURE_READY_TIMEOUT, || async move {
            (request(addr, "GET", "/v1/keys", None).await.status == 200).then_some(())
        })
        .await;
    }
    gw
}

/// Like [`request`] without a body, `None` when the connection fails.
pub async fn try_request(addr: SocketAddr, method: &str, path: &str) -> Option<Resp> {
    tokio::net::TcpStream::connect(addr).await.ok()?;
    Some(request(addr, method, path, None).await)
}

/// Sends one request with a raw JSON-typed body (possibly malformed) on a fresh connection.
/// Without credentials: what a caller without a key or token gets.
pub async fn request_raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Resp {
    testkit::http::request(addr, method, path, &[("content-type", "application/json")], body.to_vec()).await
}

/// [`request_raw`] as the admin (its token, or in secure mode its key).
pub async fn request_raw_admin(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Resp {
    let admin = if crate::SECURE {
        concat!("Bearer ", "lk_secure_suite_admin_0123456789abcdef0123456789abcdef")
    } else {
        "Bearer s3cret"
    };
    let headers = [("content-type", "application/json"), ("authorization", admin)];
    testkit::http::request(addr, method, path, &headers, body.to_vec()).await
}

/// Sends one request (as the admin) on a fresh connection to `addr`.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let admin = if crate::SECURE {
        concat!("Bearer ", "lk_secure_suite_admin_0123456789abcdef0123456789abcdef")
    } else {
        "Bearer s3cret"
    };
    let mut headers = vec![("authorization", admin)];
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
