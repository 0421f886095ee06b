//! Crash, never recover: what lognode does when continuing would be worse than stopping.
//!
//! The state machine is replicated: a node whose state may be half-applied, or whose derived
//! events were not stored, must not serve reads or vote on further entries. It stops the whole
//! process instead, and on restart replays the Raft log from its last snapshot, which rebuilds the
//! state and the events exactly. This is the ledger's policy everywhere (logstore's assertions
//! stay on in release for the same reason).

/// Logs `what` and aborts the process (no unwinding: no destructor may publish partial state).
#[cold]
pub fn stop(what: &str) -> ! {
    tracing::error!(what, "lognode stops: continuing would serve or replicate a wrong state");
    eprintln!("lognode stops: {what}");
    std::process::abort()
}

/// Aborts the process if dropped while its thread is panicking: hold one across a section whose
/// panic would leave shared state half-changed (the apply path). A panic elsewhere unwinds as
/// usual.
#[derive(Debug)]
pub struct AbortOnPanic(pub &'static str);

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            stop(&format!("a panic during {}", self.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    use super::AbortOnPanic;

    const CHILD: &str = "LOGNODE_CRASH_TEST_CHILD";
    const NAME: &str = "crash::tests::a_panic_under_abort_on_panic_aborts_the_process";

    /// Runs itself as a child process that panics while holding an `AbortOnPanic`: the child must
    /// die of SIGABRT (no unwinding past the guard), saying why.
    #[test]
    fn a_panic_under_abort_on_panic_aborts_the_process() {
        if std::env::var_os(CHILD).is_some() {
            let _guard = AbortOnPanic("a test apply");
            panic!("boom");
        }
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new(exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("run the child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(6), "the child was not aborted: {:?}\n{stderr}", out.status);
        assert!(stderr.contains("lognode stops: a panic during a test apply"), "{stderr}");
    }
}
