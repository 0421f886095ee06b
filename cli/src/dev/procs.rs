//! The child processes of `ledger dev`: started through the `__child` helper (parent-death
//! signal), each in its own process group (a Ctrl-C in the terminal reaches only `ledger dev`,
//! which then stops the children in order), with stdout and stderr appended to a log file.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Failure;

/// Lines of a child's log shown when it exits unexpectedly.
pub const LOG_TAIL_LINES: usize = 15;
/// Bytes read from the end of a log to find those lines.
pub const LOG_TAIL_BYTES: u64 = 16 * 1024;
/// How often exits are polled while waiting for children to stop.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// What a child is, for messages and for the order of shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A lognode, by id.
    Lognode(u64),
    /// The gateway.
    Gateway,
    /// The projector.
    Projector,
    /// The webhook deliverer (`projector webhooks`).
    Webhooks,
    /// The private PostgreSQL.
    Postgres,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Lognode(i) => write!(f, "lognode {i}"),
            Role::Gateway => f.write_str("gateway"),
            Role::Projector => f.write_str("projector"),
            Role::Webhooks => f.write_str("webhooks"),
            Role::Postgres => f.write_str("postgres"),
        }
    }
}

/// One running child.
#[derive(Debug)]
pub struct Proc {
    /// What it is.
    pub role: Role,
    /// The process (its pid is the program's: the helper `exec`s into it).
    pub child: Child,
    /// Where its output goes.
    pub log: PathBuf,
    /// Its exit, once seen (reported once).
    pub exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `program args` as a child of this process (see the module doc); output is appended
    /// to `log` after a line marking the start.
    pub fn spawn(
        role: Role,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log: PathBuf,
    ) -> Result<Proc, Failure> {
        let me = std::env::current_exe()
            .map_err(|e| Failure::failed(format!("cannot find the ledger executable itself: {e}")))?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| Failure::failed(format!("cannot open the log {}: {e}", log.display())))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let _ = writeln!(
            file,
            "=== ledger dev: starting {role} at unix time {now}: {} {}",
            program.display(),
            args.join(" ")
        );
        let err = file.try_clone().map_err(|e| Failure::failed(format!("log {}: {e}", log.display())))?;
        let mut cmd = Command::new(me);
        cmd.arg("__child").arg("--parent").arg(std::process::id().to_string()).arg("--").arg(program).args(args);
        cmd.stdin(Stdio::null()).stdout(file).stderr(err).process_group(0);
        cmd.env_remove("LEDGER_GATEWAY").env("NO_COLOR", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| Failure::failed(format!("cannot start {role}: {e}")))?;
        Ok(Proc { role, child, log, exited: None })
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Has it exited (since the last check)? Returns the status the first time it is seen.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return None;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.exited = Some(s);
                Some(s)
            }
            _ => None,
        }
    }

    /// A message for an exit: status and the last lines of the log.
    pub fn exit_report(&self, status: ExitStatus) -> String {
        format!(
            "{} (pid {}) exited ({status}); last lines of {}:\n{}",
            self.role,
            self.pid(),
            self.log.display(),
            indent(&log_tail(&self.log))
        )
    }

    fn signal(&self, sig: Signal) {
        if self.exited.is_none() {
            let pid = i32::try_from(self.pid()).unwrap_or(i32::MAX);
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

/// Stops `procs`: SIGTERM to each still running, then waits up to `grace` for them to exit;
/// whatever is still running then gets SIGKILL. Every child is reaped.
pub fn stop(procs: &mut [&mut Proc], grace: Duration) {
    for p in procs.iter_mut() {
        p.poll_exit();
        p.signal(Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let mut running = 0;
        for p in procs.iter_mut() {
            if p.exited.is_none() && p.poll_exit().is_none() {
                running += 1;
            }
        }
        if running == 0 {
            return;
        }
        std::thread::sleep(STOP_POLL);
    }
    for p in procs.iter_mut() {
        if p.exited.is_none() && p.poll_exit().is_none() {
            crate::output::note(&format!("{} did not stop within {grace:?}: killing it", p.role));
            let _ = p.child.kill();
            if let Ok(s) = p.child.wait() {
                p.exited = Some(s);
            }
        }
    }
}

/// The last `LOG_TAIL_LINES` lines of a log file (or why it cannot be read).
pub fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut buf = Vec::new();
        f.take(LOG_TAIL_BYTES).read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
