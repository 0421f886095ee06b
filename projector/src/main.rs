//! The `projector` binary.
//!
//! ```text
//! projector --gateway <url> --database-url <url> [--group projector] [--batch-max <n>]
//! projector verify --gateway <url> --database-url <url>
//! projector migrate --database-url <url>
//! projector webhooks --gateway <url> [--max-attempts 8] [--backoff-min-ms 500] [--timeout-ms 10000]
//! ```
//! Flags can also be given as `LEDGER_<FLAG>` (`LEDGER_GATEWAY`,
//! `LEDGER_GROUP`, `LEDGER_BATCH_MAX`) and `DATABASE_URL`.
//!
//! Exit status: 0 after a graceful stop (SIGTERM or SIGINT: the projector
//! finishes the batch in hand, leaves the group and exits) or a clean
//! verification; 1 when `verify` finds differences; 2 on a fatal error.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ledger_shutdown::Shutdown;
use projector::run::{BATCH_MAX_DEFAULT, BATCH_MAX_LIMIT, Backoff, Config, connect, run};
use projector::source::HttpSource;

#[derive(Debug, Parser)]
#[command(name = "projector", version, about = "Materializes the ledger topic into PostgreSQL exactly once.")]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Gateway base URL (consumer-group API), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "LEDGER_GATEWAY", required = true)]
    gateway: Option<String>,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", required = true, hide_env_values = true)]
    database_url: Option<String>,
    /// API key sent to the gateway (`Authorization: Bearer`): with `--auth keys` the projector
    /// needs `groups:consume:<its group>` and `topics:read:ledger`. Prefer the environment
    /// variable: a flag shows in the process list.
    #[arg(long, env = "LEDGER_KEY", hide_env_values = true, default_value = "")]
    api_key: String,
    /// For an `https://` gateway: the CA certificate (PEM) to trust.
    #[arg(long, env = "LEDGER_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Consumer group name (also the key of the offsets in PostgreSQL).
    #[arg(long, env = "LEDGER_GROUP", default_value = "projector")]
    group: String,
    /// Records per PostgreSQL transaction (at most).
    #[arg(long, env = "LEDGER_BATCH_MAX", default_value_t = BATCH_MAX_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=BATCH_MAX_LIMIT as u64))]
    batch_max: u64,
    /// Serve Prometheus metrics (`GET /metrics`: dead letters) on this address (host:port).
    #[arg(long, env = "LEDGER_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Compares every account in PostgreSQL with the ledger; exits 1 on any difference.
    Verify {
        /// Gateway base URL.
        #[arg(long, env = "LEDGER_GATEWAY")]
        gateway: String,
        /// API key (needs `accounts:read`).
        #[arg(long, env = "LEDGER_KEY", hide_env_values = true, default_value = "")]
        api_key: String,
        /// For an `https://` gateway: the CA certificate (PEM) to trust.
        #[arg(long, env = "LEDGER_CA_CERT")]
        ca_cert: Option<std::path::PathBuf>,
        /// PostgreSQL URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Delivers the `ledger` topic's events to the webhook subscriptions (docs/WEBHOOKS.md), at
    /// least once, in order per account. Needs no PostgreSQL.
    Webhooks(WebhookArgs),
    /// Applies the migrations and exits (retries while PostgreSQL is down).
    Migrate {
        /// PostgreSQL URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

#[derive(Debug, Args)]
struct WebhookArgs {
    /// Gateway base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "LEDGER_GATEWAY")]
    gateway: String,
    /// API key: with `--auth keys` the deliverer needs `webhooks:deliver`,
    /// `topics:read:ledger` and `groups:consume:*` (its groups are `webhook-<id>-<created_index>`).
    #[arg(long, env = "LEDGER_KEY", hide_env_values = true, default_value = "")]
    api_key: String,
    /// For an `https://` gateway: the CA certificate (PEM) to trust.
    #[arg(long, env = "LEDGER_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Attempts per event before it becomes a dead letter.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_attempts: u32,
    /// Delay after the first failed attempt (ms), doubling up to `--backoff-max-ms`.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    backoff_min_ms: u64,
    /// Longest delay between two attempts (ms).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    backoff_max_ms: u64,
    /// Time one attempt may take (ms), connection to answer.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    timeout_ms: u64,
    /// How often the subscriptions are read (ms).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    refresh_ms: u64,
}

async fn webhooks(a: WebhookArgs) -> anyhow::Result<ExitCode> {
    use std::time::Duration;
    let client = projector::source::with_ca(
        ledger_client::Client::with_timeout(&a.gateway, Duration::from_secs(30))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_key(&a.api_key),
        a.ca_cert.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(a.timeout_ms))
        .build()
        .context("building the HTTP client for deliveries")?;
    let cfg = projector::webhooks::Config {
        attempts_max: a.max_attempts,
        backoff_min: Duration::from_millis(a.backoff_min_ms),
        backoff_max: Duration::from_millis(a.backoff_max_ms.max(a.backoff_min_ms)),
        timeout: Duration::from_millis(a.timeout_ms),
        refresh: Duration::from_millis(a.refresh_ms),
    };
    let stop = on_signal()?;
    projector::webhooks::run(client, http, cfg, stop).await?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("projector: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let res = rt.block_on(async {
        match cli.command {
            Some(Cmd::Verify { gateway, api_key, ca_cert, database_url }) => {
                verify(&gateway, &api_key, ca_cert.as_deref(), &database_url).await
            }
            Some(Cmd::Webhooks(a)) => webhooks(a).await,
            Some(Cmd::Migrate { database_url }) => {
                let stop = on_signal()?;
                if let Some(pool) = connect(&database_url, &mut Backoff::default(), &stop).await? {
                    pool.close().await;
                }
                Ok(ExitCode::SUCCESS)
            }
            None => {
                let gateway = cli.run.gateway.unwrap_or_default();
                let url = cli.run.database_url.unwrap_or_default();
                let cfg = Config {
                    group: cli.run.group,
                    batch_max: usize::try_from(cli.run.batch_max).unwrap_or(BATCH_MAX_LIMIT),
                    ..Config::default()
                };
                project(&gateway, &cli.run.api_key, cli.run.ca_cert.as_deref(), &url, &cfg, cli.run.metrics_listen)
                    .await
            }
        }
    });
    // Nothing may hold the process after main is done (a stuck connection).
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("projector: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The stop signal: set by the first SIGTERM or SIGINT.
fn on_signal() -> anyhow::Result<Shutdown> {
    let stop = Shutdown::on_signals().context("cannot listen for SIGTERM/SIGINT")?;
    let s = stop.clone();
    tokio::spawn(async move {
        s.stopping().await;
        tracing::info!(signal = s.reason().unwrap_or("?"), "stopping (signal)");
    });
    Ok(stop)
}

async fn project(
    gateway: &str,
    key: &str,
    ca: Option<&std::path::Path>,
    url: &str,
    cfg: &Config,
    metrics_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let source = HttpSource::new(gateway, key, ca).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stop = on_signal()?;
    let Some(pool) = connect(url, &mut Backoff::default(), &stop).await.context("connecting to PostgreSQL")? else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(addr) = metrics_listen {
        let listener_pool = pool.clone();
        tokio::spawn(async move {
            if let Err(e) = projector::metrics::serve(addr, listener_pool).await {
                tracing::error!(error = %e, %addr, "cannot serve metrics");
            }
        });
    }
    tracing::info!(%gateway, group = %cfg.group, batch_max = cfg.batch_max, "projecting");
    run(&pool, &source, cfg, &stop).await?;
    pool.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn verify(gateway: &str, key: &str, ca: Option<&std::path::Path>, url: &str) -> anyhow::Result<ExitCode> {
    let client = projector::source::with_ca(ledger_client::Client::new(gateway)?.with_key(key), ca)
        .map_err(anyhow::Error::msg)?;
    let stop = on_signal()?;
    let Some(pool) = connect(url, &mut Backoff::default(), &stop).await.context("connecting to PostgreSQL")? else {
        return Ok(ExitCode::from(2));
    };
    let report = projector::verify::verify_gateway(&pool, &client).await?;
    pool.close().await;
    for b in &report.behind {
        eprintln!(
            "partition {} of {}: PostgreSQL is at offset {}, the log ends at {}",
            b.partition,
            ledger_events::TOPIC,
            b.projected,
            b.end
        );
    }
    for d in &report.differences {
        eprintln!("{d}");
    }
    for d in &report.dead_letters.1 {
        eprintln!(
            "dead letter: {}/{} offset {} ({} {:?}) refused by PostgreSQL: {} {}",
            d.topic,
            d.partition,
            d.offset,
            d.kind,
            d.entity_id,
            d.sqlstate,
            d.reason.escape_debug()
        );
    }
    if report.ok() {
        eprintln!("verify: {} accounts equal the ledger at log index {}", report.accounts, report.index);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "verify: FAILED: {} differences, {} partitions behind, {} dead letters ({} accounts checked at log index {})",
            report.differences.len(),
            report.behind.len(),
            report.dead_letters.0,
            report.accounts,
            report.index
        );
        Ok(ExitCode::from(1))
    }
}
