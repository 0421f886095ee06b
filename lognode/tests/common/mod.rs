//! Test helpers: free ports, clients, bounded waits, and lognode processes.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ledger_proto::ledger::ledger_client::LedgerClient;
use ledger_proto::ledger::{ClusterStatusRequest, ConsumeRequest, ReadOptions, Role};
use tonic::transport::Channel;

/// A port free for both TCP and UDP on 127.0.0.1 (gossip uses both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found");
}

/// Connects a client (lazily: never fails here).
pub fn client(addr: &str) -> LedgerClient<Channel> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(15))
        .connect_lazy();
    LedgerClient::new(ch).max_decoding_message_size(16 * 1024 * 1024)
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

/// The leader's (id, grpc addr) as seen by the node at `addr`, once it sees one and every voter in
/// `expect_voters` is a voter.
pub async fn leader_of(addr: &str, expect_voters: usize) -> Option<(u64, String)> {
    let mut c = client(addr);
    let mut req = tonic::Request::new(ClusterStatusRequest { local_only: false });
    req.set_timeout(Duration::from_secs(2));
    let s = c.cluster_status(req).await.ok()?.into_inner();
    let voters = s.nodes.iter().filter(|n| n.voter).count();
    let leader_seen = s.nodes.iter().any(|n| n.role == Role::Leader as i32);
    (s.leader_id != 0 && leader_seen && voters >= expect_voters).then_some((s.leader_id, s.leader_addr))
}

/// Reads a whole partition from `addr` (after waiting until it applied `min_index`).
pub async fn read_all(addr: &str, topic: &str, partition: u32, min_index: u64) -> Vec<(u64, Vec<u8>)> {
    let mut c = client(addr);
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..100_000 {
        let read = ReadOptions { linearizable: false, min_index, wait_ms: 20_000 };
        let req = ConsumeRequest { topic: topic.into(), partition, offset, max_records: 1000, read: Some(read) };
        // A node that is (re)starting refuses connections for a while: retry, bounded.
        let deadline = Instant::now() + Duration::from_secs(30);
        let r = loop {
            match c.consume(req.clone()).await {
                Ok(r) => break r.into_inner(),
                Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("consume {topic}/{partition}@{offset} on {addr}: {e}"),
            }
        };
        if r.records.is_empty() {
            break;
        }
        for rec in r.records {
            out.push((rec.offset, rec.value));
        }
        offset = r.next_offset;
    }
    out
}

/// A lognode child process; killed (SIGKILL) on drop.
pub struct Proc {
    pub id: u64,
    pub grpc: String,
    pub gossip: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
}

impl Proc {
    /// Starts `lognode` with its flags; logs go to `<dir>.log`.
    pub fn start(id: u64, root: &Path, join: Option<&str>, bootstrap: bool, extra: &[&str]) -> Proc {
        let grpc = format!("127.0.0.1:{}", free_port());
        let gossip = format!("127.0.0.1:{}", free_port());
        let dir = root.join(format!("n{id}"));
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--grpc-addr".into(),
            grpc.clone(),
            "--gossip-addr".into(),
            gossip.clone(),
            "--gossip-profile".into(),
            "local".into(),
        ];
        if let Some(j) = join {
            args.push("--join".into());
            args.push(j.into());
        }
        if bootstrap {
            args.push("--bootstrap".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut p = Proc { id, grpc, gossip, dir, args, child: None };
        p.spawn();
        p
    }

    /// (Re)starts the process with the same flags.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.with_extension("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lognode"))
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn,memberlist_core::broadcast=off")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// The last lines of this node's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
