//! A TCP proxy on 127.0.0.1 that a test can cut off (every connection closed, new ones refused, as
//! when the server behind it is down) and restore on the same port.

use std::time::Duration;

use tokio::sync::watch;

/// Longest wait for the proxy's port to be free again on [`Proxy::restore`].
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP proxy (e.g. to PostgreSQL) that can be cut off: cutting closes every open connection and
/// stops listening, so new connections are refused, as when the server is down; restoring listens
/// again on the same port.
pub struct Proxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    target: String,
    cut: watch::Sender<u64>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1, forwarding to `target`.
    pub async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let (cut, _) = watch::channel(0u64);
        let p = Proxy { port, target, cut, task: std::sync::Mutex::new(None) };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (cut, target) = (self.cut.clone(), self.target.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let mut cut_rx = cut.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        *self.task.lock().expect("proxy task lock") = Some(task);
    }

    /// Closes every connection and stops listening.
    pub fn cut(&self) {
        if let Some(t) = self.task.lock().expect("proxy task lock").take() {
            t.abort();
        }
        self.cut.send_modify(|n| *n += 1);
    }

    /// Listens again (same port).
    pub async fn restore(&self) {
        let addr = format!("127.0.0.1:{}", self.port);
        let listener = crate::wait_for("the proxy port to be free again", RESTORE_TIMEOUT, || {
            let addr = addr.clone();
            async move { tokio::net::TcpListener::bind(&addr).await.ok() }
        })
        .await;
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
