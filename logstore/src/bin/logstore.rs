//! `logstore`: inspect, verify and load-test a Ledger write-ahead log directory.
//!
//! ```text
//! logstore verify <dir>                 open with full checksum verification, print the report
//! logstore dump <dir> [--from N] [--limit N]
//! logstore bench <dir> [--records N] [--size B] [--appenders C] [--fsync always|never]
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use logstore::{FsyncMode, Log, LogConfig};

/// Most records `dump` prints in one call.
const DUMP_LIMIT_MAX: u64 = 100_000;
/// Most concurrent appenders `bench` starts.
const BENCH_APPENDERS_MAX: usize = 1024;

#[derive(Parser)]
#[command(name = "logstore", about = "Inspect, verify and load-test a Ledger write-ahead log directory")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open the log with full checksum verification of every segment and print what recovery found.
    /// Note: opening repairs a torn tail, exactly as a lognode start would.
    Verify {
        /// The log directory.
        dir: PathBuf,
    },
    /// Print records (index, length, first bytes).
    Dump {
        /// The log directory.
        dir: PathBuf,
        /// First index to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most records to print.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Append records to a new log in `dir` and report throughput.
    Bench {
        /// A directory for the benchmark log; it must not exist or be empty.
        dir: PathBuf,
        /// Records to append in total.
        #[arg(long, default_value_t = 20_000)]
        records: u64,
        /// Bytes per record.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Concurrent appenders (threads).
        #[arg(long, default_value_t = 1)]
        appenders: usize,
        /// `always` (durable), or `never`: UNSAFE, for benchmarks only, loses acknowledged data on a crash.
        #[arg(long, default_value = "always")]
        fsync: FsyncMode,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Verify { dir } => {
            if !dir.is_dir() {
                bail!("{} is not a directory", dir.display());
            }
            let cfg = LogConfig { verify_on_open: true, ..LogConfig::default() };
            let (_log, rec) =
                Log::open(&dir, cfg).with_context(|| format!("verifying the log in {}", dir.display()))?;
            writeln!(out, "ok: {rec:#?}")?;
        }
        Cmd::Dump { dir, from, limit } => {
            if !dir.is_dir() {
                bail!("{} is not a directory", dir.display());
            }
            if limit > DUMP_LIMIT_MAX {
                bail!("--limit {limit} is over the maximum of {DUMP_LIMIT_MAX}");
            }
            let (log, _) = Log::open(&dir, LogConfig::default())?;
            for r in log.read_range(from, from.saturating_add(limit), logstore::READ_BYTES_MAX)? {
                let head: String = r.payload.iter().take(32).map(|b| format!("{b:02x}")).collect();
                writeln!(out, "{:>12}  {:>8} bytes  {head}", r.index, r.payload.len())?;
            }
        }
        Cmd::Bench { dir, records, size, appenders, fsync } => {
            if appenders == 0 || appenders > BENCH_APPENDERS_MAX {
                bail!("--appenders must be 1..={BENCH_APPENDERS_MAX}");
            }
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                bail!("{} is not empty: bench needs a fresh directory", dir.display());
            }
            if fsync == FsyncMode::Never {
                writeln!(out, "WARNING: --fsync never is UNSAFE: nothing is made durable")?;
            }
            let (log, _) = Log::open(&dir, LogConfig { fsync, ..LogConfig::default() })?;
            let next = Arc::new(Mutex::new(0u64));
            let record = vec![0x5Au8; size];
            let per = records / appenders as u64;
            let start = Instant::now();
            std::thread::scope(|s| -> anyhow::Result<()> {
                let handles: Vec<_> = (0..appenders)
                    .map(|_| {
                        let (log, next, record) = (log.clone(), Arc::clone(&next), record.clone());
                        s.spawn(move || -> anyhow::Result<()> {
                            for _ in 0..per {
                                let (tx, rx) = mpsc::sync_channel(1);
                                {
                                    let mut n = next.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                                    log.append_then(*n, vec![record.clone()], Box::new(move |r| drop(tx.send(r))))?;
                                    *n += 1;
                                }
                                rx.recv()??;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().map_err(|_| anyhow::anyhow!("appender panicked"))??;
                }
                Ok(())
            })?;
            let secs = start.elapsed().as_secs_f64();
            let n = per * appenders as u64;
            writeln!(
                out,
                "appended {n} records of {size} B with {appenders} appenders, fsync {fsync:?}: {:.0} records/s, {:.1} MB/s",
                n as f64 / secs,
                (n as f64 * size as f64) / secs / 1e6
            )?;
        }
    }
    Ok(())
}
