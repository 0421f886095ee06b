//! Harness: a real cluster on 127.0.0.1 — three `lognode` processes (fsync on) and the `gateway`
//! binary in front of them — and a way to run commands against it with a deadline.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the cluster to elect a leader with three voters.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a command run by a test may take before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// Polling period of the waits.
const POLL: Duration = Duration::from_millis(100);
/// Attempts at finding a port free for both TCP and UDP.
const FREE_PORT_ATTEMPTS_MAX: usize = 100;

/// A port free for both TCP and UDP on 127.0.0.1 (gossip uses both).
pub fn free_port() -> u16 {
    for _ in 0..FREE_PORT_ATTEMPTS_MAX {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found in {FREE_PORT_ATTEMPTS_MAX} attempts");
}

/// A workspace binary built next to this test's target directory (`cargo test --workspace`
/// builds every workspace binary; alone, `cargo build -p lognode -p gateway` first), or the path
/// in `env`.
pub fn workspace_bin(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p lognode --bin lognode -p gateway --bin gateway` \
         (same CARGO_TARGET_DIR and profile) or set {env}",
        bin.display()
    );
    bin
}

/// A child process, killed on drop.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(name: String, bin: &Path, args: &[String], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        Proc { name, log, child: Some(child) }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- {} ---\n{}\n", self.name, lines[lines.len().saturating_sub(20)..].join("\n"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Three lognodes and a gateway.
pub struct Cluster {
    /// The gateway's URL, `http://127.0.0.1:<port>`.
    pub url: String,
    /// The gateway first, so it is killed first.
    procs: Vec<Proc>,
    /// Data directories and logs.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the processes and waits until the gateway is ready and sees three live voters.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let lognode = workspace_bin("lognode", "LEDGER_LOGNODE_BIN");
        let gateway = workspace_bin("gateway", "LEDGER_GATEWAY_BIN");
        let mut nodes = Vec::new();
        let mut grpc = Vec::new();
        let mut seed = String::new();
        for id in 1..=3u64 {
            let g = format!("127.0.0.1:{}", free_port());
            let gossip = format!("127.0.0.1:{}", free_port());
            let mut args: Vec<String> = [
                "--id",
                &id.to_string(),
                "--data-dir",
                &dir.path().join(format!("n{id}")).display().to_string(),
                "--grpc-addr",
                &g,
                "--gossip-addr",
                &gossip,
                "--gossip-profile",
                "local",
                "--fsync",
                "always",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if id == 1 {
                args.push("--bootstrap".into());
                seed = gossip.clone();
            } else {
                args.extend(["--join".to_owned(), seed.clone()]);
            }
            nodes.push(Proc::spawn(format!("lognode {id}"), &lognode, &args, dir.path().join(format!("n{id}.log"))));
            grpc.push(g);
        }
        let port = free_port();
        let args = vec!["--listen".to_owned(), format!("127.0.0.1:{port}"), "--lognodes".to_owned(), grpc.join(",")];
        let gw = Proc::spawn("gateway".into(), &gateway, &args, dir.path().join("gateway.log"));
        let mut procs = vec![gw];
        procs.extend(nodes);
        let cluster = Cluster { url: format!("http://127.0.0.1:{port}"), procs, dir };
        cluster.wait_ready();
        cluster
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some((200, _)) = self.get("/readyz") {
                match self.get("/v1/cluster") {
                    Some((200, body)) => {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                        let voters = v["nodes"]
                            .as_array()
                            .map(|n| n.iter().filter(|n| n["alive"] == true && n["role"] != "learner").count())
                            .unwrap_or(0);
                        if voters == 3 {
                            return;
                        }
                        last = body;
                    }
                    other => last = format!("{other:?}"),
                }
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "the cluster was not ready with 3 voters within {CLUSTER_READY_TIMEOUT:?} (last /v1/cluster: {last})\n{}",
            self.logs()
        );
    }

    /// A plain HTTP/1.0 GET: the status and body, `None` when the gateway does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path, None)
    }

    /// A plain HTTP/1.0 request with an optional JSON body.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
        use std::io::Write;
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.0\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split(' ').nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Some((status, body))
    }

    /// Every process's log tail.
    pub fn logs(&self) -> String {
        self.procs.iter().map(Proc::log_tail).collect()
    }

    /// Whether the gateway serves the consumer-group routes (a join on a fresh group); when it
    /// does not, the reason, clearly.
    pub fn group_routes(&self) -> Result<(), String> {
        let body = r#"{"topics":["ledger"],"session_timeout_ms":10000}"#;
        match self.request("POST", "/v1/groups/loadtest-probe/members", Some(body)) {
            Some((201, b)) => {
                let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
                if let Some(m) = v["member_id"].as_str() {
                    let _ = self.request("DELETE", &format!("/v1/groups/loadtest-probe/members/{m}"), None);
                }
                Ok(())
            }
            Some((404, b)) if b.contains("\"not_found\"") => {
                Err("the gateway answered 404 not_found for POST /v1/groups/{group}/members: no consumer-group routes yet (issue 6)".into())
            }
            other => Err(format!("unexpected answer to a group join: {other:?}")),
        }
    }
}

/// Runs `cmd` to completion, killing it after `COMMAND_TIMEOUT`.
pub fn run_bounded(mut cmd: Command) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let s = child.wait().expect("wait");
            let _ = (out_t.join(), err_t.join());
            panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?} (killed, {s})");
        }
        std::thread::sleep(POLL);
    };
    Output { status, stdout: out_t.join().unwrap_or_default(), stderr: err_t.join().unwrap_or_default() }
}

/// The whole-cluster tests run one at a time (each starts 3 fsyncing processes on a small machine).
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
