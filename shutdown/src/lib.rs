//! `ledger-shutdown`: the one way Ledger's binaries stop.
//!
//! A [`Shutdown`] is a cheap, cloneable handle on one "stopping" flag. It is set once — by
//! SIGINT or SIGTERM when made with [`Shutdown::on_signals`], or by [`Shutdown::trigger`] —
//! and never cleared. Tasks either poll [`Shutdown::is_stopping`] between steps or await
//! [`Shutdown::stopping`] (also inside `tokio::select!`), and [`Shutdown::sleep`] is a sleep
//! that ends early when the stop begins.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let shutdown = ledger_shutdown::Shutdown::new();
//! let task = tokio::spawn({
//!     let shutdown = shutdown.clone();
//!     async move {
//!         let mut rounds = 0u32;
//!         while !shutdown.sleep(std::time::Duration::from_millis(10)).await {
//!             rounds += 1;
//!         }
//!         rounds
//!     }
//! });
//! assert!(shutdown.trigger("test"));
//! task.await.expect("the task stops");
//! assert_eq!(shutdown.reason(), Some("test"));
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The reason given when SIGINT (Ctrl-C) starts the stop.
pub const SIGINT: &str = "SIGINT";
/// The reason given when SIGTERM starts the stop.
pub const SIGTERM: &str = "SIGTERM";

/// A cloneable "stopping" signal: every clone sees the same flag.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// `None` while running; the reason once stopping. The sender lives as long as any clone,
    /// so a receiver never sees the channel closed.
    tx: Arc<watch::Sender<Option<&'static str>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A signal that only [`Shutdown::trigger`] sets.
    pub fn new() -> Shutdown {
        Shutdown { tx: Arc::new(watch::channel(None).0) }
    }

    /// A signal set by the first SIGINT or SIGTERM (later ones are absorbed: the process keeps
    /// stopping in its own orderly way). Must be called inside a tokio runtime; fails only when
    /// the signal handlers cannot be installed.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let reason = tokio::select! {
                    r = int.recv() => r.map(|()| SIGINT),
                    r = term.recv() => r.map(|()| SIGTERM),
                };
                match reason {
                    Some(reason) => {
                        s.trigger(reason);
                    }
                    // The runtime is going away; nothing more can arrive.
                    None => return,
                }
            }
        });
        Ok(shutdown)
    }

    /// Starts the stop (idempotent). Returns true if this call started it, false if it had
    /// already begun (the first reason is kept).
    pub fn trigger(&self, reason: &'static str) -> bool {
        self.tx.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(reason);
            true
        })
    }

    /// True once the stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Why the stop began (`SIGINT`, `SIGTERM` or the reason given to [`Shutdown::trigger`]).
    pub fn reason(&self) -> Option<&'static str> {
        *self.tx.borrow()
    }

    /// Completes once the stop has begun (at once if it already has). The future owns what it
    /// needs, so it can be spawned or handed to a server as its shutdown signal.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let tx = Arc::clone(&self.tx);
        async move {
            let mut rx = tx.subscribe();
            // `tx` is alive here, so the channel cannot close: only a set flag ends the wait.
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    /// Sleeps `d`, or less if the stop begins meanwhile. Returns true if stopping.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.stopping() => {}
        }
        self.is_stopping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn every_clone_sees_the_first_trigger_and_keeps_its_reason() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.is_stopping());
        assert_eq!(b.reason(), None);
        assert!(a.trigger("first"));
        assert!(!b.trigger("second"));
        assert!(b.is_stopping());
        assert_eq!(a.reason(), Some("first"));
    }

    #[tokio::test]
    async fn stopping_wakes_waiters_and_completes_at_once_afterwards() {
        let s = Shutdown::new();
        let waiter = tokio::spawn(s.stopping());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        s.trigger("test");
        tokio::time::timeout(BOUND, waiter).await.expect("woken").expect("joined");
        tokio::time::timeout(BOUND, s.stopping()).await.expect("already stopping");
    }

    #[tokio::test]
    async fn stopping_does_not_complete_when_every_other_handle_is_dropped() {
        let s = Shutdown::new();
        let wait = s.stopping();
        drop(s);
        assert!(tokio::time::timeout(Duration::from_millis(50), wait).await.is_err());
    }

    #[tokio::test]
    async fn sleep_ends_early_when_stopping_and_reports_it() {
        let s = Shutdown::new();
        assert!(!s.sleep(Duration::from_millis(1)).await);
        let t = s.clone();
        let sleeper = tokio::spawn(async move { t.sleep(Duration::from_secs(600)).await });
        s.trigger("test");
        assert!(tokio::time::timeout(BOUND, sleeper).await.expect("woken early").expect("joined"));
    }
}
