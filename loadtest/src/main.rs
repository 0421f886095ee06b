//! `loadtest`: Ledger's load generator, for measurements on small machines where k6's own CPU
//! use would crowd the cluster. It runs the k6 scripts' scenarios against a gateway, closed loop
//! (`--concurrency`) or open loop (`--rate`), keeps HDR histograms, prints a progress line and a
//! summary table, writes a JSON report (and an SVG chart), and at the end reads back the balances
//! of the accounts it used and verifies that money was conserved.
//!
//! Modules:
//! - `limits`: every bound, named;
//! - `http`: one keep-alive hyper connection per worker;
//! - `scenario`: setup and one step of each scenario, with the money each worker moved;
//! - `stats`: histograms and counts;
//! - `run`: the closed- and open-loop drivers and the progress line;
//! - `check`: the end-of-run conservation check;
//! - `report`: JSON, table, `RESULT` line and SVG.
//!
//! Exit status: 0 when the run finished and money was conserved; 2 when the conservation check
//! failed; 3 when the gateway lacks the routes a scenario needs; 1 for any other error.

mod check;
mod http;
mod limits;
mod report;
mod run;
mod scenario;
mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::limits::{CONCURRENCY_MAX, DURATION_MAX, OPEN_LOOP_CONNECTIONS_DEFAULT, RATE_PER_S_MAX};
use crate::run::Load;
use crate::scenario::{IdOrder, Plan, Scenario, SetupError, fresh_run_id};

/// Ledger's load generator.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
#[command(group(clap::ArgGroup::new("load").required(true).args(["concurrency", "rate"])))]
struct Cli {
    /// The gateway's root URL.
    #[arg(long, env = "GATEWAY", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// API key sent with every request (a gateway in `--auth keys` asks for one; it needs the
    /// scopes of the scenario, e.g. `admin` for a run that creates its accounts and topics).
    #[arg(long, env = "LEDGER_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// For an `https://` gateway: the CA certificate (PEM) to trust.
    #[arg(long, env = "LEDGER_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// What to run.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Closed loop: this many workers, each with one request in flight.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Open loop: start this many requests (iterations) per second, whatever their latency.
    #[arg(long)]
    rate: Option<u64>,
    /// Open loop: connections (workers) sharing the rate.
    #[arg(long, requires = "rate")]
    connections: Option<usize>,
    /// How long to apply load, e.g. `20s`, `1m`, `500ms`.
    #[arg(long, value_parser = parse_duration)]
    duration: Duration,
    /// How transfer ids sort: `scattered` (each worker's own range, the default) or `ordered`
    /// (by when they were made, like ULIDs or UUIDv7).
    #[arg(long, value_enum, default_value_t = IdOrder::Scattered)]
    ids: IdOrder,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write an SVG chart of latency and throughput over time here.
    #[arg(long)]
    chart: Option<PathBuf>,
}

/// `500ms`, `20s`, `2m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 20s"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if d.is_zero() || d > DURATION_MAX {
        return Err(format!("{s:?}: the duration must be above 0 and at most {}h", DURATION_MAX.as_secs() / 3600));
    }
    Ok(d)
}

fn load_of(cli: &Cli) -> Result<Load, String> {
    match (cli.concurrency, cli.rate) {
        (Some(c), None) if (1..=CONCURRENCY_MAX).contains(&c) => Ok(Load::Closed { concurrency: c }),
        (Some(c), None) => Err(format!("--concurrency {c}: must be 1..={CONCURRENCY_MAX}")),
        (None, Some(r)) if (1..=RATE_PER_S_MAX).contains(&r) => {
            let connections = cli.connections.unwrap_or(OPEN_LOOP_CONNECTIONS_DEFAULT);
            if !(1..=CONCURRENCY_MAX).contains(&connections) {
                return Err(format!("--connections {connections}: must be 1..={CONCURRENCY_MAX}"));
            }
            Ok(Load::Open { rate_per_s: r, connections })
        }
        (None, Some(r)) => Err(format!("--rate {r}: must be 1..={RATE_PER_S_MAX}")),
        _ => Err("give exactly one of --concurrency and --rate".to_owned()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (addr, https) = http::parse_gateway(&cli.gateway).map_err(anyhow::Error::msg)?;
    let tls = match (https, &cli.ca_cert) {
        (true, Some(ca)) => Some(http::tls_connector(ca).map_err(anyhow::Error::msg)?),
        (true, None) => anyhow::bail!("--gateway {}: an https:// gateway needs --ca-cert", cli.gateway),
        (false, _) => None,
    };
    let load = load_of(&cli).map_err(anyhow::Error::msg)?;
    let mut plan = Plan::new(cli.scenario, fresh_run_id());
    plan.ids = cli.ids;
    plan.key = cli.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(std::sync::Arc::from);
    plan.tls = tls;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "loadtest: scenario {} on {}, run id {}, {:?}, ids {:?}",
        cli.scenario.as_str(),
        cli.gateway,
        plan.run,
        cli.duration,
        cli.ids
    )?;
    drop(err);
    // Ctrl-C or SIGTERM ends the load early; the money check and the report still run.
    let stop = ledger_shutdown::Shutdown::on_signals().context("cannot listen for SIGINT/SIGTERM")?;
    let out = match run::run(addr, plan, load, cli.duration, &stop).await {
        Ok(out) => out,
        Err(e @ SetupError::NoGroupRoutes) => {
            writeln!(std::io::stderr(), "loadtest: {e}")?;
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(signal) = stop.reason() {
        writeln!(std::io::stderr(), "loadtest: {signal}: load stopped after {:?}; checking the accounts", out.elapsed)?;
    }
    let report = report::Report::new(cli.scenario, &cli.gateway, load, out);
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{}", report.table())?;
    writeln!(stdout, "{}", report.result_line())?;
    if let Some(path) = &cli.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if let Some(path) = &cli.chart {
        std::fs::write(path, report.svg()).with_context(|| format!("writing the chart to {}", path.display()))?;
    }
    Ok(if report.conservation.ok { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn the_command_line_needs_exactly_one_load_shape() {
        let ok = Cli::try_parse_from(["loadtest", "--scenario", "transfers", "--concurrency", "4", "--duration", "2s"]);
        assert!(ok.is_ok());
        let both = Cli::try_parse_from([
            "loadtest",
            "--scenario",
            "wallet",
            "--concurrency",
            "4",
            "--rate",
            "10",
            "--duration",
            "2s",
        ]);
        assert!(both.is_err());
        let none = Cli::try_parse_from(["loadtest", "--scenario", "wallet", "--duration", "2s"]);
        assert!(none.is_err());
        let bad = Cli::try_parse_from(["loadtest", "--scenario", "nope", "--rate", "1", "--duration", "2s"]);
        assert!(bad.is_err());
        let cli = Cli::try_parse_from(["loadtest", "--scenario", "consume", "--concurrency", "0", "--duration", "2s"])
            .expect("parses");
        assert!(load_of(&cli).is_err());
    }
}
