//! Harness: a real cluster on 127.0.0.1 — three `lognode` processes (fsync on) and the `gateway`
//! binary in front of them — and a way to run commands against it with a deadline.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::Duration;

use testkit::cluster::GatewayProcess;

/// Longest wait for the cluster to elect a leader with three voters.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a command run by a test may take before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// Three lognodes and a gateway.
pub struct Cluster {
    /// The gateway's URL, `http://127.0.0.1:<port>`.
    pub url: String,
    /// The gateway first, so it is killed first.
    gateway: GatewayProcess,
    /// The lognodes, their data directories and logs.
    pub lognodes: testkit::Cluster,
}

impl Cluster {
    /// Starts the processes and waits until the gateway is ready and sees three live voters.
    pub fn start() -> Cluster {
        let lognodes = testkit::Cluster::builder().rust_log("warn").start();
        let gateway = lognodes.gateway("warn");
        let cluster = Cluster { url: gateway.url.clone(), gateway, lognodes };
        cluster.gateway.wait_ready(3, CLUSTER_READY_TIMEOUT);
        cluster
    }

    /// A plain HTTP GET: the status and body, `None` when the gateway does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path, None)
    }

    /// A plain HTTP request with an optional JSON body.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
        testkit::raw_http::request(self.url.trim_start_matches("http://"), method, path, body)
    }

    /// Every process's log tail.
    pub fn logs(&self) -> String {
        format!("--- gateway ---\n{}\n{}", self.gateway.proc.tail(20), self.lognodes.logs())
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
pub fn run_bounded(cmd: Command) -> Output {
    testkit::process::run_bounded(cmd, COMMAND_TIMEOUT, true)
}

/// The whole-cluster tests run one at a time (each starts 3 fsyncing processes on a small machine).
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
