//! A child process guard: killed (SIGKILL, by pid) when dropped, its output kept in log files that
//! are printed to the test's stderr when the test fails (the guard drops while panicking).

use std::ffi::OsStr;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Lines of each log printed when a test fails.
pub const LOG_LINES_ON_FAILURE: usize = 40;
/// Polling period of the process waits.
const POLL: Duration = Duration::from_millis(50);

/// A command for a workspace binary that inherits none of the `LEDGER_*` variables nor
/// `DATABASE_URL` (the binaries read their flags from those: a test sets what it means).
pub fn hermetic(bin: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("LEDGER_") || name == "DATABASE_URL" {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// A running child process; see the module docs.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    /// The file its stderr (and, unless split, its stdout) is appended to.
    pub log: PathBuf,
    /// The file its stdout is appended to, when split from `log`.
    pub stdout_log: Option<PathBuf>,
    child: Option<Child>,
    pid: u32,
}

fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("log file {}: {e}", path.display()))
}

impl Proc {
    /// Spawns `cmd` (stdin closed) with its stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let file = append(log);
        let out = file.try_clone().unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        cmd.stdin(Stdio::null()).stdout(out).stderr(file);
        Proc::start(name, cmd, log.to_path_buf(), None)
    }

    /// Spawns `cmd` (stdin closed) with its stdout appended to `stdout_log` and its stderr to
    /// `stderr_log`.
    pub fn spawn_split(name: &str, mut cmd: Command, stdout_log: &Path, stderr_log: &Path) -> Proc {
        cmd.stdin(Stdio::null()).stdout(append(stdout_log)).stderr(append(stderr_log));
        Proc::start(name, cmd, stderr_log.to_path_buf(), Some(stdout_log.to_path_buf()))
    }

    fn start(name: &str, mut cmd: Command, log: PathBuf, stdout_log: Option<PathBuf>) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name} ({:?}): {e}", cmd.get_program()));
        Proc { name: name.to_owned(), log, stdout_log, pid: child.id(), child: Some(child) }
    }

    /// Its pid (also after it exited).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it still runs (not killed by this guard, not exited).
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Whether this guard still holds the process (it was not killed, terminated or reaped).
    pub fn is_held(&self) -> bool {
        self.child.is_some()
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`, `INT`...) with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        if self.child.is_some() {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.pid.to_string()).status();
        }
    }

    /// SIGSTOP: the process freezes (its sockets stay open, it answers nothing).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Proc::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits at most `within` for it to exit; its exit status if it did (else it is
    /// killed).
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_exit(within)
    }

    /// Waits at most `within` for it to exit; its exit status if it did (else it is killed).
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Its whole log (stderr, and stdout unless split).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its whole stdout when split from the log, else the log.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_log.as_ref().unwrap_or(&self.log)).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut logs = vec![&self.log];
            logs.extend(self.stdout_log.as_ref());
            for l in logs {
                let text = std::fs::read_to_string(l).unwrap_or_default();
                eprintln!(
                    "--- {} ({}, last {LOG_LINES_ON_FAILURE} lines) ---\n{}",
                    self.name,
                    l.display(),
                    tail(&text, LOG_LINES_ON_FAILURE)
                );
            }
        }
        self.kill9();
    }
}

/// Runs `cmd` (stdin closed) to completion, killing it after `timeout`; its output. Panics when it
/// cannot be spawned, and (when `panic_on_timeout`) when it had to be killed.
pub fn run_bounded(mut cmd: Command, timeout: Duration, panic_on_timeout: bool) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let s = child.wait().expect("wait");
            if panic_on_timeout {
                let _ = (out.join(), err.join());
                panic!("{cmd:?} did not finish within {timeout:?} (killed, {s})");
            }
            break s;
        }
        std::thread::sleep(POLL);
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// Whether a process with this pid is there and not a zombie (Linux `/proc`).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until none of the named `pids` is [`alive`]; the ones still alive after `timeout`.
pub fn wait_gone(pids: &[(String, u32)], timeout: Duration) -> Vec<(String, u32)> {
    let left = || pids.iter().filter(|(_, p)| alive(*p)).cloned().collect::<Vec<_>>();
    crate::wait::poll_until(timeout, || left().is_empty().then_some(())).map_or_else(left, |()| Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_kills_by_pid_on_drop_and_pause_freezes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sleep.log");
        let mut cmd = hermetic("sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let mut p = Proc::spawn("sleep", cmd, &log);
        let pid = p.pid();
        crate::wait_until("the child's output", Duration::from_secs(10), || p.log().contains("started").then_some(()));
        assert!(p.running());
        p.pause();
        let state = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        crate::wait_until("the stopped state", Duration::from_secs(10), || state().contains(") T ").then_some(()));
        p.resume();
        drop(p);
        assert!(!state().contains(") S ") && !state().contains(") T "), "still there: {}", state());
    }

    #[test]
    fn run_bounded_kills_at_the_timeout() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exec sleep 30"]);
        let started = Instant::now();
        let out = run_bounded(cmd, Duration::from_millis(500), false);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    }
}
