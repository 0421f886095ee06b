//! The hidden `ledger __child --parent <pid> <program> <args>...`: how `ledger dev` starts each
//! child process so that none outlives it.
//!
//! The helper asks the kernel to send it SIGTERM when its parent dies (`PR_SET_PDEATHSIG`),
//! checks that its parent is still the `ledger dev` that started it (it may have died in
//! between), then replaces itself with the real program (`exec`). The parent-death signal
//! survives `exec`, so the lognode, gateway, projector or PostgreSQL inherits it: even when
//! `ledger dev` is killed with SIGKILL, its children get SIGTERM and stop cleanly. `ledger dev`
//! starts every child from its main thread, which lives as long as the process (the signal is
//! tied to the thread that forked).

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use nix::sys::signal::Signal;

use crate::Failure;

/// Sets the parent-death signal, then becomes `program` (returns only on failure).
pub fn exec(parent: u32, program: &OsStr, args: &[OsString]) -> Result<(), Failure> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| Failure::failed(format!("cannot set the parent-death signal: {e}")))?;
    let ppid = nix::unistd::getppid().as_raw();
    if u32::try_from(ppid).ok() != Some(parent) {
        return Err(Failure::failed(format!(
            "ledger dev (pid {parent}) is gone; not starting {}",
            program.to_string_lossy()
        )));
    }
    let e = Command::new(program).args(args).exec();
    Err(Failure::failed(format!("cannot run {}: {e}", program.to_string_lossy())))
}
