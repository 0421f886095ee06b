//! Harness: real `lognode` processes (3 nodes, fsync on, 127.0.0.1), an in-process gateway over
//! the `GrpcBackend`, and a small HTTP/1.1 client.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, Request};
use gateway::GatewayConfig;
use gateway::backend::{LedgerBackend, NodeRole};
use gateway::grpc_backend::{GrpcBackend, Lognodes};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use ledger_discovery::{Discovery, Gossip, GossipProfile, MemberKind, MemberMeta};
use serde_json::Value;

/// Upper bound of one test request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A port free for both TCP and UDP on 127.0.0.1 (gossip uses both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found");
}

/// The `lognode` binary: `$LEDGER_LOGNODE_BIN`, else next to this test's target directory
/// (`cargo build -p lognode --bin lognode` with the same `CARGO_TARGET_DIR`).
pub fn lognode_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LEDGER_LOGNODE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("lognode");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p lognode --bin lognode` (same CARGO_TARGET_DIR) \
         or set LEDGER_LOGNODE_BIN",
        bin.display()
    );
    bin
}

/// A lognode child process; killed (SIGKILL) on drop.
pub struct Proc {
    pub id: u64,
    pub grpc: String,
    pub gossip: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Proc {
    /// Starts `lognode` (fsync always, gossip profile `local`); logs go to `<dir>.log`.
    pub fn start(id: u64, root: &Path, join: Option<&str>, bootstrap: bool) -> Proc {
        let grpc = format!("127.0.0.1:{}", free_port());
        let gossip = format!("127.0.0.1:{}", free_port());
        let dir = root.join(format!("n{id}"));
        let mut args = vec![
            "--id".to_owned(),
            id.to_string(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--grpc-addr".into(),
            grpc.clone(),
            "--gossip-addr".into(),
            gossip.clone(),
            "--gossip-profile".into(),
            "local".into(),
            "--fsync".into(),
            "always".into(),
        ];
        if let Some(j) = join {
            args.push("--join".into());
            args.push(j.into());
        }
        if bootstrap {
            args.push("--bootstrap".into());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.with_extension("log")).expect("log");
        let child = Command::new(lognode_bin())
            .args(&args)
            .env("RUST_LOG", "info,openraft=warn,memberlist_core::broadcast=off")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn lognode");
        Proc { id, grpc, gossip, dir, child: Some(child) }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of this node's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Three lognodes: node 1 bootstraps, 2 and 3 join its gossip.
pub struct Cluster {
    pub procs: Vec<Proc>,
    pub root: tempfile::TempDir,
}

impl Cluster {
    /// Starts the three processes (does not wait).
    pub fn start() -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let first = Proc::start(1, root.path(), None, true);
        let seed = first.gossip.clone();
        let procs = vec![
            first,
            Proc::start(2, root.path(), Some(&seed), false),
            Proc::start(3, root.path(), Some(&seed), false),
        ];
        Cluster { procs, root }
    }

    /// gRPC addresses.
    pub fn grpc_addrs(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.grpc.clone()).collect()
    }

    /// The process with this id.
    pub fn proc_mut(&mut self, id: u64) -> &mut Proc {
        self.procs.iter_mut().find(|p| p.id == id).expect("no such node")
    }

    /// Every node's log tail.
    pub fn logs(&self) -> String {
        self.procs.iter().map(|p| format!("--- node {} ---\n{}\n", p.id, p.log_tail())).collect()
    }
}

/// Polls `f` every 100 ms until it returns `Some`, at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
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

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Ledger-Index` header.
    #[track_caller]
    pub fn index(&self) -> u64 {
        self.header("ledger-index").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no Ledger-Index: {self:?}"))
    }

    /// Panics unless the status is `want`.
    #[track_caller]
    pub fn expect(self, want: u16, what: &str) -> Resp {
        assert_eq!(self.status, want, "{what}: {}", String::from_utf8_lossy(&self.body));
        self
    }
}

/// Like [`request`] without a body, `None` when the connection fails.
pub async fn try_request(addr: SocketAddr, method: &str, path: &str) -> Option<Resp> {
    tokio::net::TcpStream::connect(addr).await.ok()?;
    Some(request(addr, method, path, None).await)
}

/// Sends one request with a raw JSON-typed body (possibly malformed) on a fresh connection.
pub async fn request_raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Resp {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_vec())))
            .expect("request");
        let resp = sender.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
        Resp { status, headers, body }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut).await.expect("request timed out")
}

/// Sends one request on a fresh connection to `addr`.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .header("host", "127.0.0.1")
            .header("authorization", "Bearer s3cret");
        let bytes = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                v.to_string().into_bytes()
            }
            None => {
                // The gateway refuses a write without a JSON content type, also with no body.
                if method != "GET" {
                    req = req.header("content-type", "application/json");
                }
                Vec::new()
            }
        };
        let req = req.body(Full::new(Bytes::from(bytes))).expect("request");
        let resp = sender.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
        Resp { status, headers, body }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut).await.expect("request timed out")
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

/// The real `gateway` binary as a child process; killed on drop.
pub struct GatewayProc {
    pub addr: SocketAddr,
    log: tempfile::NamedTempFile,
    child: Option<Child>,
}

impl GatewayProc {
    /// `gateway --join <seed> --gossip-addr <free> --gossip-profile local --listen <free>`.
    pub fn start_join(seed: &str) -> GatewayProc {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let gossip = format!("127.0.0.1:{}", free_port());
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LEDGER_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["--listen", &addr.to_string(), "--join", seed, "--gossip-addr", &gossip])
            .args(["--gossip-profile", "local"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("spawn gateway");
        GatewayProc { addr, log, child: Some(child) }
    }

    /// SIGTERM, then wait (bounded); whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
