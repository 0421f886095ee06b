//! `chaos`: runs the fault-injection harness (see the crate docs and docs/FAULTS.md).
//!
//! Exit status: 0 when the run found no anomaly, 1 when it found one, 2 when the run could not be
//! made (not root, binaries missing, the cluster never ready).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos::run::{Options, Workload};
use chaos::schedule::{Kind, Timing};
use chaos::world::{Bins, NET_TAG};
use clap::{Parser, Subcommand};

/// Fault injection against a real Ledger cluster on network-namespace hosts (needs root).
#[derive(Parser, Debug)]
#[command(name = "chaos", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One run: a cluster of 3 (or 5) lognodes and a gateway, clients on hosts of their own, the
    /// nemesis for `--duration`, then the checkers. Exits 0 only when no anomaly was found.
    Run(Box<RunArgs>),
    /// Removes the namespaces (and kills the processes in them) that a killed run left behind.
    Cleanup,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The seed of the fault schedule and of the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long faults are injected: `300s`, `5m`, `1500ms` or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Faults, comma-separated: partition, pause, kill, netem (lossy and slow links), disk (a full
    /// disk; a crash losing unsynced writes), membership (a voter replaced), latency (delay and
    /// jitter, reordering, duplication: made without netem, which this kernel lacks), clock (a
    /// node's wall clock jumps). See docs/FAULTS.md.
    #[arg(long, default_value = "partition,pause,kill,netem,disk,membership,latency,clock", value_parser = parse_kinds)]
    nemesis: Kinds,
    /// Workloads, comma-separated: transfers, reads, groups. The transfers' writers always run
    /// (the reads' checker needs writes, and every run checks the ledger).
    #[arg(long, default_value = "transfers,reads,groups", value_parser = parse_workloads)]
    workload: Workloads,
    /// Where to write the JSON report (default: `<dir>/report.json`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where to write the one-page summary (default: `<dir>/summary.txt`; it is printed too).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// The run's directory, emptied first: data and logs of every process (default:
    /// `target/chaos/seed-<seed>`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where `lognode`, `gateway` (and `projector`, for `--database-url`) are (default: next to
    /// this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Concurrent writers.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=64))]
    writers: u16,
    /// Concurrent readers (with the reads workload): strong reads and follower reads with
    /// `min_index`, by turns.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    readers: u16,
    /// Protected accounts the transfers move money among.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=1000))]
    accounts: u16,
    /// A PostgreSQL server (`postgres://user@host:port/db`): a projector then materializes the
    /// ledger into a fresh database on it (dropped at the end), the kill nemesis may kill it,
    /// and `projector verify` must agree with the cluster after the run.
    #[arg(long)]
    database_url: Option<String>,
    /// Producers, and members of the consumer group, each (with the groups workload).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    members: u16,
    /// Lognodes (voters): 3, or 5 (a majority/minority split and a minority killed at once are
    /// then drawn too).
    #[arg(long, default_value_t = chaos::world::VOTERS_DEFAULT, value_parser = parse_nodes)]
    nodes: u64,
}

fn parse_nodes(s: &str) -> Result<u64, String> {
    match s.trim() {
        "3" => Ok(3),
        "5" => Ok(5),
        other => Err(format!("{other:?} lognodes: expected 3 or 5")),
    }
}

#[derive(Clone, Debug)]
struct Kinds(Vec<Kind>);
#[derive(Clone, Debug)]
struct Workloads(Vec<Workload>);

fn parse_kinds(s: &str) -> Result<Kinds, String> {
    Kind::parse_list(s).map(Kinds)
}

fn parse_workloads(s: &str) -> Result<Workloads, String> {
    Workload::parse_list(s).map(Workloads)
}

/// `300s`, `5m`, `1500ms` or a number of seconds; between 1 s and 24 h.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration: expected e.g. 300s, 5m or 1500ms"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m or h)")),
    };
    if d < Duration::from_secs(1) || d > Duration::from_secs(24 * 3600) {
        return Err(format!("{s:?}: a run lasts from 1 s to 24 h"));
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !chaos::world::is_root() {
        eprintln!("chaos: needs root (it creates network namespaces, veth pairs and routes)");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Cleanup => {
            let removed = testkit::netns::cleanup_tag(NET_TAG);
            eprintln!("chaos: removed {} namespace(s): {}", removed.len(), removed.join(" "));
            let unmounted = chaos::world::unmount_leftovers();
            eprintln!("chaos: unmounted {} disk(s): {}", unmounted.len(), unmounted.join(" "));
            ExitCode::SUCCESS
        }
        Command::Run(args) => match run(*args) {
            Ok(clean) => {
                if clean {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("chaos: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(args: RunArgs) -> anyhow::Result<bool> {
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?.parent().map(PathBuf::from).unwrap_or_default(),
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(format!("target/chaos/seed-{}", args.seed)));
    let dir = std::path::absolute(&dir)?;
    let opts = Options {
        seed: args.seed,
        duration: args.duration,
        kinds: args.nemesis.0,
        workloads: args.workload.0,
        dir: dir.clone(),
        bins: Bins::in_dir(&bin_dir)?,
        writers: args.writers.into(),
        readers: args.readers.into(),
        accounts: args.accounts.into(),
        members: args.members.into(),
        timing: Timing::DEFAULT,
        voters: args.nodes,
        database_url: args.database_url,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = runtime.block_on(chaos::run::run(&opts))?;
    let report_path = args.report.unwrap_or_else(|| dir.join("report.json"));
    let summary_path = args.summary.unwrap_or_else(|| dir.join("summary.txt"));
    std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)?;
    let summary = report.summary();
    std::fs::write(&summary_path, &summary)?;
    std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes())?;
    eprintln!("report: {}\nsummary: {}", report_path.display(), summary_path.display());
    Ok(report.anomalies.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_bounds() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("5 parsecs").is_err_and(|e| e.contains("unknown unit")));
        assert!(parse_duration("0s").is_err_and(|e| e.contains("1 s to 24 h")));
        assert!(parse_duration("s").is_err());
    }
}
