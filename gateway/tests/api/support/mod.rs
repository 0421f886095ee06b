//! Test harness: a real HTTP server on 127.0.0.1 (ephemeral port) over the
//! in-process `MemoryBackend`, and a small HTTP/1.1 client.

pub mod memory;

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::GatewayConfig;
use serde_json::Value;

pub use memory::MemoryBackend;

pub use testkit::http::{REQUEST_TIMEOUT, Resp};

/// A running gateway.
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its backend.
    pub backend: Arc<MemoryBackend>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a gateway with `config` over a fresh backend.
pub async fn start(config: GatewayConfig) -> TestServer {
    start_with(config, gateway::ServeOptions::default()).await
}

/// Starts a gateway with `config` and connection options.
pub async fn start_with(config: GatewayConfig, opts: gateway::ServeOptions) -> TestServer {
    let backend = Arc::new(MemoryBackend::default());
    let app = gateway::app(backend.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway::serve_with(listener, app, opts, async move {
        let _ = rx.await;
    }));
    TestServer { addr, backend, shutdown: Some(tx), served: Some(served) }
}

/// Starts a gateway with the default config plus an admin token.
pub async fn start_default() -> TestServer {
    start(GatewayConfig { admin_token: Some("s3cret".to_owned()), ..GatewayConfig::default() }).await
}

impl TestServer {
    /// Asks for a graceful shutdown (like SIGTERM) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits (bounded) until the server has stopped.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        let Some(h) = self.served.take() else { return Ok(()) };
        tokio::time::timeout(REQUEST_TIMEOUT, h).await.expect("server did not stop").expect("join")
    }

    /// Sends one request on a fresh connection.
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        testkit::http::request(self.addr, method, path, headers, body).await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], Vec::new()).await
    }

    /// POST a JSON value.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_raw(path, body.to_string().as_bytes()).await
    }

    /// POST raw bytes as `application/json`.
    pub async fn post_raw(&self, path: &str, body: &[u8]) -> Resp {
        self.request("POST", path, &[("content-type", "application/json")], body.to_vec()).await
    }
}

/// Checks a problem+json error with this status and code.
pub fn check_problem(r: &Resp, status: u16, code: &str) -> Result<(), String> {
    if r.status != status {
        return Err(format!("status {} (want {status})", r.status));
    }
    if r.header("content-type") != Some("application/problem+json") {
        return Err(format!("content-type {:?}", r.header("content-type")));
    }
    let p: Value = serde_json::from_slice(&r.body).map_err(|e| format!("body is not JSON: {e}"))?;
    let ok = p["code"] == code
        && p["status"] == status
        && p["type"] == format!("urn:ledger:problem:{code}")
        && p["title"].as_str().is_some_and(|t| !t.is_empty())
        && p["detail"].as_str().is_some_and(|t| !t.is_empty());
    if ok { Ok(()) } else { Err(format!("problem {p} (want code {code})")) }
}

/// Asserts a problem+json error with this status and code.
#[track_caller]
pub fn assert_problem(r: &Resp, status: u16, code: &str, what: &str) {
    if let Err(e) = check_problem(r, status, code) {
        panic!("{what}: {e}; body {}", r.text());
    }
}

/// The `Ledger-Index` header as a number.
#[track_caller]
pub fn ledger_index(r: &Resp) -> u64 {
    r.header("ledger-index").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no Ledger-Index: {r:?}"))
}
