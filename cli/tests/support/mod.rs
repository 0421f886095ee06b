//! Harness of the CLI tests: `ledger dev` as a real process on free 127.0.0.1 ports (its
//! children are the `lognode`, `gateway` and `projector` binaries next to `ledger` in the target
//! directory, built by `cargo test --workspace`), and running `ledger` commands.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::Proc;
pub use testkit::process::{alive, wait_gone};

/// Longest wait for `ledger dev` to print its banner (cluster ready).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for `ledger dev` to stop after SIGINT.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest run of one `ledger` client command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `ledger` binary under test.
pub fn ledger_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ledger"))
}

/// A `--port-base` whose ports (base+1..=base+nodes, base+101.., base+201, base+332) are free,
/// and a free `--listen` port.
pub fn free_ports(nodes: u16) -> (u16, u16) {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for i in 0..200u64 {
        let base = 20_000 + ((seed.wrapping_mul(2_654_435_761).wrapping_add(i * 7_919)) % 40_000) as u16;
        let mut ports: Vec<u16> = (1..=nodes).map(|n| base + n).collect();
        ports.extend((1..=nodes).map(|n| base + 100 + n));
        ports.extend([base + 201, base + 332]);
        if ports.iter().all(|p| testkit::ports::is_free(*p)) {
            let listen = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            if !ports.contains(&listen) {
                return (base, listen);
            }
        }
    }
    panic!("no free port range found");
}

/// A running `ledger dev`; killed (SIGKILL, its children follow by parent-death signal) on drop,
/// its output printed when the test fails.
pub struct Dev {
    pub proc: Proc,
    pub gateway: String,
    pub data_dir: PathBuf,
    logs: tempfile::TempDir,
}

impl Dev {
    /// Starts `ledger dev --data-dir <data_dir> --listen ... --port-base ... <extra>` with `envs`,
    /// and waits for its banner.
    pub fn start(data_dir: &Path, nodes: u16, extra: &[&str], envs: &[(&str, &str)]) -> Dev {
        let (base, listen) = free_ports(nodes);
        // Not `cargo run`: never rebuild from inside the test.
        let mut cmd = testkit::process::hermetic(ledger_bin());
        cmd.env_remove("CARGO")
            .args(["dev", "--nodes", &nodes.to_string(), "--listen", &format!("127.0.0.1:{listen}")])
            .args(["--port-base", &base.to_string(), "--data-dir"])
            .arg(data_dir)
            .args(extra);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let logs = tempfile::tempdir().unwrap();
        let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
        let proc = Proc::spawn_split("ledger dev", cmd, &out, &err);
        let mut dev =
            Dev { proc, gateway: format!("http://127.0.0.1:{listen}"), data_dir: data_dir.to_path_buf(), logs };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if dev.stdout().contains("Ctrl-C stops everything.") {
                return dev;
            }
            if !dev.proc.running() {
                panic!("ledger dev exited during start-up:\n{}\n{}", dev.stdout(), dev.stderr());
            }
            assert!(Instant::now() < deadline, "ledger dev not ready in {START_TIMEOUT:?}:\n{}", dev.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stdout(&self) -> String {
        self.proc.stdout()
    }

    pub fn stderr(&self) -> String {
        self.proc.log()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The children's pids from the banner (`<role>  pid <n>  <log>`).
    pub fn child_pids(&self) -> Vec<(String, u32)> {
        self.stdout()
            .lines()
            .filter_map(|l| {
                let (role, rest) = l.split_once(" pid ")?;
                let pid = rest.split_whitespace().next()?.parse().ok()?;
                Some((role.trim().to_owned(), pid))
            })
            .collect()
    }

    /// Sends a signal to `ledger dev`.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Waits for `ledger dev` to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = self.proc.wait_exit(timeout);
        assert!(status.is_some(), "ledger dev did not exit within {timeout:?}:\n{}", self.stderr());
        status.and_then(|s| s.code())
    }

    /// Runs `ledger --gateway <this> args...`, with the data dir's admin key (none with
    /// `--insecure`).
    pub fn ledger(&self, args: &[&str]) -> Run {
        let key = std::fs::read_to_string(self.data_dir.join("admin.key")).unwrap_or_default();
        let mut all = vec!["--api-key", key.trim()];
        all.extend_from_slice(args);
        ledger(&self.gateway, &all)
    }

    /// The data dir's admin key ("" with `--insecure`).
    pub fn admin_key(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.key")).unwrap_or_default().trim().to_owned()
    }
}

/// The outcome of one `ledger` command.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        &self.stdout
    }

    /// Asserts the exit code and that stderr starts with `error: ` and names `needle` (in its
    /// first line, or for clap's usage errors in the lines of its explanation).
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "unexpected exit: {self:#?}");
        let first = self.stderr.lines().next().unwrap_or("");
        let named = if self.code == Some(2) { self.stderr.contains(needle) } else { first.contains(needle) };
        assert!(first.starts_with("error: ") && named, "stderr should name {needle:?}: {self:#?}");
        assert!(!self.stderr.contains("panicked"), "panic: {self:#?}");
    }
}

/// Runs `ledger --gateway <gateway> args...` (bounded by `COMMAND_TIMEOUT`).
pub fn ledger(gateway: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(ledger_bin());
    cmd.arg("--gateway").arg(gateway).args(args).env_remove("LEDGER_GATEWAY").env_remove("LEDGER_KEY");
    let out = testkit::process::run_bounded(cmd, COMMAND_TIMEOUT, false);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Run { code: out.status.code(), stdout: text(&out.stdout), stderr: text(&out.stderr) }
}
