//! `lognode` binary: parse the configuration, start the node, stop gracefully on SIGTERM/SIGINT.

use std::time::Duration;

use clap::Parser;
use lognode::config::Config;
use tracing::{error, info};

/// jemalloc: under issue 20's 20-minute batch load (`loadtest/restart.sh`) the three lognodes
/// spent about 15 % less CPU per transfer with it than with mimalloc v2 (28.8-32.9 against
/// 33.8-38.5 us from the first minute to the last) and moved 15 % more transfers, with RSS flat;
/// mimalloc had been chosen on instruction counts, which leave out page faults and cache misses
/// (mimalloc returns freed pages within milliseconds, jemalloc after seconds). glibc's malloc
/// took a fifth of the instructions per transfer (README, Performance). `--features
/// system-alloc` builds with the system allocator instead, for heap profilers that hook malloc
/// (heaptrack: README, issue 20).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How often the node logs what the allocator holds ("allocator memory": live bytes, and bytes
/// resident), so that RSS that grows is told from data that grows (issue 20's benchmark reads it).
#[cfg(not(feature = "system-alloc"))]
const MEMORY_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Logs the allocator's statistics every [`MEMORY_LOG_INTERVAL`] until the runtime stops.
#[cfg(not(feature = "system-alloc"))]
async fn log_memory() {
    use tikv_jemalloc_ctl::{epoch, stats};
    let mut tick = tokio::time::interval(MEMORY_LOG_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The statistics are a snapshot taken at the last epoch advance.
        if let Err(e) = epoch::advance() {
            tracing::warn!(error = %e, "cannot read the allocator's statistics; not logging them any more");
            return;
        }
        let mib = |r: Result<usize, tikv_jemalloc_ctl::Error>| r.map_or(0, |v| v >> 20);
        info!(
            allocated_mib = mib(stats::allocated::read()),
            active_mib = mib(stats::active::read()),
            resident_mib = mib(stats::resident::read()),
            retained_mib = mib(stats::retained::read()),
            "allocator memory"
        );
    }
}

/// Longest wait, once the node has stopped, for leftover tasks (a blocking read, a stream being
/// torn down) before the process exits anyway. Everything acknowledged is already on disk.
const RUNTIME_SHUTDOWN_MAX: Duration = Duration::from_secs(5);

fn main() -> std::process::ExitCode {
    // Every file this node writes holds ledger data: private to its user, including the files the
    // state store (fjall) creates itself (logstore already creates its files 0600).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // No transparent huge pages for this process (issue 20). An allocator that returns memory in
    // pieces smaller than 2 MiB splits huge pages, and the kernel's khugepaged later collapses the
    // split ranges into whole 2 MiB pages again, filling the returned holes (with mimalloc, which
    // asks for huge pages on its arenas, RSS was about 50 MiB higher), and every first touch
    // zeroes 2 MiB. Set before the runtime starts any thread; inherited by nothing
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
    #[cfg(not(feature = "system-alloc"))]
    let memory_log = tokio::spawn(log_memory());
    signals.stopping().await;
    #[cfg(not(feature = "system-alloc"))]
    memory_log.abort();
    info!(signal = signals.reason().unwrap_or("?"), "signal received");
    node.shutdown().await;
    std::process::ExitCode::SUCCESS
}
