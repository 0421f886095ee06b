//! Lognode processes and clusters of them (kill, pause, restart, leader lookup), and the gateway and
//! projector binaries as processes. Every flag of lognode comes from `lognode-args`, the builder
//! `ledger dev` uses too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lognode_args::LognodeArgs;

use crate::bins::workspace_bin;
use crate::ports::{free_addr, free_port};
use crate::process::{Proc, hermetic};

/// `RUST_LOG` of lognodes started by the kit unless told otherwise.
pub const LOGNODE_RUST_LOG: &str = "info,openraft=warn,memberlist_core::broadcast=off";
/// Longest wait for a lognode to exit after SIGTERM.
pub const LOGNODE_TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of a lognode's log in [`Lognode::log_tail`].
pub const LOG_TAIL_LINES: usize = 30;
/// Voters of a cluster started by [`Cluster::start`].
pub const CLUSTER_NODES_DEFAULT: u64 = 3;
/// Attempts at starting one node of a new cluster: a port found free can be taken by another
/// process before the node binds it, and then the node starts again on other ports.
pub const NODE_START_ATTEMPTS_MAX: usize = 3;
/// Longest wait for a new node to listen on its gossip and gRPC ports.
pub const NODE_LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout of the listening probe.
const LISTEN_PROBE_TIMEOUT: Duration = Duration::from_millis(200);

fn listening(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| std::net::TcpStream::connect_timeout(&a, LISTEN_PROBE_TIMEOUT).is_ok())
}

/// One lognode process; its data in `dir`, its log in `<dir>.log` (appended across restarts).
#[derive(Debug)]
pub struct Lognode {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub grpc: String,
    /// Gossip address.
    pub gossip: String,
    /// Data directory.
    pub dir: PathBuf,
    /// Its command line (kept across restarts).
    pub args: Vec<String>,
    /// The running process, `None` once killed or terminated.
    pub child: Option<Proc>,
    /// The binary.
    pub bin: PathBuf,
    /// Its `RUST_LOG`.
    pub rust_log: String,
}

impl Lognode {
    /// A lognode (not started) on free ports with `<root>/n<id>` as data directory; `args` adds to
    /// the flags (join, bootstrap, extra ones).
    pub fn new(id: u64, root: &Path, bin: PathBuf, args: impl FnOnce(LognodeArgs) -> LognodeArgs) -> Lognode {
        let (grpc, gossip) = (free_addr(), free_addr());
        let dir = root.join(format!("n{id}"));
        let spec = args(LognodeArgs::new(id, &dir, &grpc, &gossip));
        Lognode { id, grpc, gossip, dir, args: spec.to_args(), child: None, bin, rust_log: LOGNODE_RUST_LOG.to_owned() }
    }

    /// Starts the workspace's `lognode` (fsync on, gossip profile `local`) with these flags.
    pub fn start(id: u64, root: &Path, join: Option<&str>, bootstrap: bool, extra: &[&str]) -> Lognode {
        let mut n = Lognode::new(id, root, workspace_bin("lognode"), |a| {
            let a = if bootstrap { a.bootstrap() } else { a };
            let a = match join {
                Some(seed) => a.join(seed),
                None => a,
            };
            a.extra(extra)
        });
        n.spawn();
        n
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.with_extension("log")
    }

    /// (Re)starts the process with the same flags (a running one is killed first).
    pub fn spawn(&mut self) {
        self.kill9();
        let mut cmd = hermetic(&self.bin);
        cmd.args(&self.args).env("RUST_LOG", &self.rust_log);
        self.child = Some(Proc::spawn(&format!("lognode {}", self.id), cmd, &self.log_path()));
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.child.take() {
            p.kill9();
        }
    }

    /// SIGKILL, then the same process again on the same data.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGSTOP (a frozen node: connections open, no answers).
    pub fn pause(&self) {
        if let Some(p) = &self.child {
            p.pause();
        }
    }

    /// SIGCONT.
    pub fn resume(&self) {
        if let Some(p) = &self.child {
            p.resume();
        }
    }

    /// Waits until it listens on its gossip and gRPC ports (true), or its process is gone (false);
    /// panics after `timeout`.
    pub fn wait_listening(&mut self, timeout: Duration) -> bool {
        let what = format!("lognode {} to listen on {} and {}", self.id, self.gossip, self.grpc);
        crate::wait_until(&what, timeout, || {
            if !self.child.as_mut().is_some_and(Proc::running) {
                return Some(false);
            }
            (listening(&self.gossip) && listening(&self.grpc)).then_some(true)
        })
    }

    /// SIGTERM, then waits (bounded) for a clean exit; whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut p) = self.child.take() else { return false };
        p.terminate(LOGNODE_TERMINATE_TIMEOUT).is_some_and(|s| s.success())
    }

    /// The last lines of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        crate::process::tail(&text, LOG_TAIL_LINES)
    }
}

impl Drop for Lognode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Lognodes on 127.0.0.1 (node 1 bootstraps, the others join its gossip) in a temporary directory.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, by id order.
    pub procs: Vec<Lognode>,
    /// Data directories and logs.
    pub root: tempfile::TempDir,
}

/// How to start a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: u64,
    bin: Option<PathBuf>,
    rust_log: String,
    extra: Vec<String>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            nodes: CLUSTER_NODES_DEFAULT,
            bin: None,
            rust_log: LOGNODE_RUST_LOG.to_owned(),
            extra: Vec::new(),
        }
    }
}

impl ClusterBuilder {
    /// How many lognodes.
    pub fn nodes(mut self, n: u64) -> Self {
        self.nodes = n;
        self
    }

    /// The lognode binary (default: the workspace's, see [`workspace_bin`]).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// The nodes' `RUST_LOG`.
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    /// Flags added to every node's command line.
    pub fn extra(mut self, flags: &[&str]) -> Self {
        self.extra.extend(flags.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Starts the processes one by one, each once it listens (a node whose ports were taken
    /// meanwhile starts again on others); does not wait for a leader.
    pub fn start(self) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let bin = self.bin.unwrap_or_else(|| workspace_bin("lognode"));
        let mut procs: Vec<Lognode> = Vec::new();
        for id in 1..=self.nodes {
            let seed = procs.first().map(|n| n.gossip.clone());
            for attempt in 1..=NODE_START_ATTEMPTS_MAX {
                let mut n = Lognode::new(id, root.path(), bin.clone(), |a| {
                    match &seed {
                        Some(s) => a.join(s),
                        None => a.bootstrap(),
                    }
                    .extra(&self.extra)
                });
                n.rust_log.clone_from(&self.rust_log);
                n.spawn();
                if n.wait_listening(NODE_LISTEN_TIMEOUT) {
                    procs.push(n);
                    break;
                }
                let log = n.log_tail();
                assert!(attempt < NODE_START_ATTEMPTS_MAX, "lognode {id} did not start in {attempt} attempts:\n{log}");
                // Its ports were taken (or it failed): a clean directory and new ports.
                n.kill9();
                let _ = std::fs::remove_dir_all(&n.dir);
                let _ = std::fs::rename(n.log_path(), n.dir.with_extension(format!("failed-{attempt}.log")));
            }
        }
        Cluster { procs, root }
    }
}

impl Cluster {
    /// Three lognodes with fsync on; waits until each listens, not for a leader.
    pub fn start() -> Cluster {
        ClusterBuilder::default().start()
    }

    /// A builder for other sizes, binaries and flags.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// gRPC addresses.
    pub fn grpc_addrs(&self) -> Vec<String> {
        self.procs.iter().map(|p| p.grpc.clone()).collect()
    }

    /// The gossip address of node 1 (the one the others joined through).
    pub fn seed(&self) -> &str {
        self.procs.first().map(|p| p.gossip.as_str()).expect("an empty cluster")
    }

    /// The node with this id.
    pub fn proc_mut(&mut self, id: u64) -> &mut Lognode {
        self.procs.iter_mut().find(|p| p.id == id).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// SIGKILL node `id`.
    pub fn kill(&mut self, id: u64) {
        self.proc_mut(id).kill9();
    }

    /// SIGSTOP node `id`.
    pub fn pause(&mut self, id: u64) {
        self.proc_mut(id).pause();
    }

    /// SIGCONT node `id`.
    pub fn resume(&mut self, id: u64) {
        self.proc_mut(id).resume();
    }

    /// Restarts node `id` on its data (killing it first if it runs).
    pub fn restart(&mut self, id: u64) {
        self.proc_mut(id).restart();
    }

    /// A path in the cluster's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Every node's log tail.
    pub fn logs(&self) -> String {
        self.procs.iter().map(|p| format!("--- node {} ---\n{}\n", p.id, p.log_tail())).collect()
    }

    /// Starts the workspace's `gateway` binary in front of these nodes (static list), logging to
    /// `<root>/gateway.log`.
    pub fn gateway(&self, rust_log: &str) -> GatewayProcess {
        GatewayProcess::start_static(&workspace_bin("gateway"), &self.grpc_addrs(), &self.path("gateway.log"), rust_log)
    }

    /// The leader's `(id, gRPC address)` once a node sees a leader and at least `voters` voters;
    /// panics after `timeout`.
    #[cfg(feature = "grpc")]
    pub async fn leader(&self, voters: usize, timeout: Duration) -> (u64, String) {
        let addrs: Vec<String> = self.procs.iter().filter(|p| p.child.is_some()).map(|p| p.grpc.clone()).collect();
        crate::wait_for("a leader", timeout, || {
            let addrs = addrs.clone();
            async move {
                for a in &addrs {
                    if let Some(l) = crate::grpc::leader_of(a, voters).await {
                        return Some(l);
                    }
                }
                None
            }
        })
        .await
    }
}

/// The `gateway` binary as a process.
#[derive(Debug)]
pub struct GatewayProcess {
    /// Its listen address.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub url: String,
    /// The process.
    pub proc: Proc,
}

impl GatewayProcess {
    /// `gateway --listen <free> --lognodes <a,b,c>`.
    pub fn start_static(bin: &Path, lognodes: &[String], log: &Path, rust_log: &str) -> GatewayProcess {
        GatewayProcess::start_static_with(bin, lognodes, &[], log, rust_log)
    }

    /// `gateway --listen <free> --lognodes <a,b,c> <extra...>`.
    pub fn start_static_with(
        bin: &Path,
        lognodes: &[String],
        extra: &[&str],
        log: &Path,
        rust_log: &str,
    ) -> GatewayProcess {
        let mut args = vec!["--lognodes".to_owned(), lognodes.join(",")];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        GatewayProcess::start(bin, &args, log, rust_log)
    }

    /// `gateway --listen <free> --join <seed> --gossip-addr <free> --gossip-profile local`.
    pub fn start_join(bin: &Path, seed: &str, log: &Path, rust_log: &str) -> GatewayProcess {
        Self::start_join_with(bin, seed, &[], log, rust_log)
    }

    /// [`GatewayProcess::start_join`] with `extra` flags.
    pub fn start_join_with(bin: &Path, seed: &str, extra: &[&str], log: &Path, rust_log: &str) -> GatewayProcess {
        let mut args =
            ["--join", seed, "--gossip-addr", &free_addr(), "--gossip-profile", "local"].map(str::to_owned).to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        GatewayProcess::start(bin, &args, log, rust_log)
    }

    fn start(bin: &Path, args: &[String], log: &Path, rust_log: &str) -> GatewayProcess {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = hermetic(bin);
        cmd.arg("--listen").arg(addr.to_string()).args(args).env("RUST_LOG", rust_log);
        // Open (on loopback) unless a test asks for keys.
        if !args.iter().any(|a| a == "--auth") {
            cmd.args(["--auth", "none"]);
        }
        GatewayProcess { addr, url: format!("http://{addr}"), proc: Proc::spawn("gateway", cmd, log) }
    }
}

impl GatewayProcess {
    /// Waits until the gateway answers `/readyz` with 200 and its `/v1/cluster` shows a leader and
    /// at least `voters` live voters; panics after `timeout` with the last answer and the log.
    pub fn wait_ready(&self, voters: usize, timeout: Duration) {
        let addr = self.addr.to_string();
        let mut last = String::new();
        let ready = crate::wait::poll_until(timeout, || {
            if !matches!(crate::raw_http::request(&addr, "GET", "/readyz", None), Some((200, _))) {
                return None;
            }
            let (status, body) = crate::raw_http::request(&addr, "GET", "/v1/cluster", None)?;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let live = v["nodes"]
                .as_array()
                .map_or(0, |n| n.iter().filter(|n| n["alive"] == true && n["role"] != "learner").count());
            last = format!("{status} {body}");
            (status == 200 && !v["leader_id"].is_null() && live >= voters).then_some(())
        });
        assert!(
            ready.is_some(),
            "the gateway was not ready with {voters} voters within {timeout:?} (last /v1/cluster: {last})\n{}",
            self.proc.tail(20)
        );
    }
}

/// Starts `projector --gateway <url> --database-url <db> <extra>` (`RUST_LOG=info`).
pub fn projector(bin: &Path, name: &str, gateway_url: &str, database_url: &str, extra: &[&str], log: &Path) -> Proc {
    let mut cmd = hermetic(bin);
    cmd.args(["--gateway", gateway_url, "--database-url", database_url]).args(extra).env("RUST_LOG", "info");
    Proc::spawn(name, cmd, log)
}
