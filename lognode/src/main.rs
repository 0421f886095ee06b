//! `lognode` binary: parse the configuration, start the node, stop gracefully on SIGTERM/SIGINT.

use std::time::Duration;

use clap::Parser;
use lognode::config::Config;
use tracing::{error, info};

/// mimalloc instead of glibc's malloc: about a fifth of the instructions per transfer went into
/// glibc's allocator (README, Performance: `loadtest/callgrind.sh`).
/// `--features system-alloc` builds with the system allocator instead, for heap profilers that
/// hook malloc (heaptrack: README, issue 20).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Longest wait, once the node has stopped, for leftover tasks (a blocking read, a stream being
/// torn down) before the process exits anyway. Everything acknowledged is already on disk.
const RUNTIME_SHUTDOWN_MAX: Duration = Duration::from_secs(5);

fn main() -> std::process::ExitCode {
    // Every file this node writes holds ledger data: private to its user, including the files the
    // state store (fjall) creates itself (logstore already creates its files 0600).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // No transparent huge pages for this process (issue 20). mimalloc asks for them on its
    // arenas (madvise), returns memory in 64 KiB pieces (splitting a huge page each time), and the
    // kernel's khugepaged later collapses the split ranges into whole 2 MiB pages again, filling
    // the returned holes: RSS crept up by 1-2 B per transfer over a 58M-transfer run, and every
    // first touch zeroed 2 MiB. Set before the runtime starts any thread; inherited by nothing
    // else (lognode starts no children).
    let thp = nix::sys::prctl::set_thp_disable(true);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lognode: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(thp));
    rt.shutdown_timeout(RUNTIME_SHUTDOWN_MAX);
    code
}

async fn run(thp: nix::Result<()>) -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,openraft=warn,memberlist_core::broadcast=off")
        }))
        .with_ansi(false)
        .init();
    if let Err(e) = thp {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off (prctl): memory may creep up under load");
    }
    let cfg = Config::parse();
    // Listening before the node starts: a signal during start-up abandons it (as the default
    // action did before; nothing has been acknowledged yet).
    let signals = match ledger_shutdown::Shutdown::on_signals() {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM/SIGINT");
            return std::process::ExitCode::FAILURE;
        }
    };
    let started = tokio::select! {
        r = Box::pin(lognode::node::start(cfg)) => r,
        () = signals.stopping() => {
            info!(signal = signals.reason().unwrap_or("?"), "signal during start-up: not starting");
            return std::process::ExitCode::SUCCESS;
        }
    };
    let node = match started {
        Ok(n) => n,
        Err(e) => {
            error!(error = %e, "lognode failed to start");
            return std::process::ExitCode::FAILURE;
        }
    };
    signals.stopping().await;
    info!(signal = signals.reason().unwrap_or("?"), "signal received");
    node.shutdown().await;
    std::process::ExitCode::SUCCESS
}
