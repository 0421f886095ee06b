//! The `projector` binary.
//!
//! ```text
//! projector --gateway <url> --database-url <url> [--group projector] [--batch-max <n>]
//! projector verify --gateway <url> --database-url <url>
//! projector migrate --database-url <url>
//! ```
//! Flags can also be given as `LEDGER_<FLAG>` (`LEDGER_GATEWAY`,
//! `LEDGER_GROUP`, `LEDGER_BATCH_MAX`) and `DATABASE_URL`.
//!
//! The consumer-group API the projector reads from does not exist yet: `run`
//! and `verify` exit with status 2 and say so, without touching PostgreSQL.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use projector::run::{BATCH_MAX_DEFAULT, BATCH_MAX_LIMIT, Backoff, connect};
use projector::source::NOT_AVAILABLE;

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
    /// Consumer group name (also the key of the offsets in PostgreSQL).
    #[arg(long, env = "LEDGER_GROUP", default_value = "projector")]
    group: String,
    /// Records per fetch and per PostgreSQL transaction.
    #[arg(long, env = "LEDGER_BATCH_MAX", default_value_t = BATCH_MAX_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=BATCH_MAX_LIMIT as u64))]
    batch_max: u64,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Compares every account in PostgreSQL with the ledger; exits 1 on any difference.
    Verify {
        /// Gateway base URL.
        #[arg(long, env = "LEDGER_GATEWAY")]
        gateway: String,
        /// PostgreSQL URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Applies the migrations and exits (retries while PostgreSQL is down).
    Migrate {
        /// PostgreSQL URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
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
    match cli.command {
        Some(Cmd::Verify { gateway, database_url: _ }) => {
            // The ledger's account list (the read side) is not served yet.
            eprintln!("projector verify: {NOT_AVAILABLE} (gateway {gateway})");
            ExitCode::from(2)
        }
        Some(Cmd::Migrate { database_url }) => match migrate(&database_url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("projector migrate: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => {
            let gateway = cli.run.gateway.unwrap_or_default();
            eprintln!(
                "projector: {NOT_AVAILABLE} (gateway {gateway}, group {:?}, batch max {})",
                cli.run.group, cli.run.batch_max
            );
            ExitCode::from(2)
        }
    }
}

fn migrate(url: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                s.store(true, Ordering::Relaxed);
            }
        });
        let pool = connect(url, &mut Backoff::default(), &stop).await.context("connecting to PostgreSQL")?;
        if let Some(pool) = pool {
            pool.close().await;
        }
        Ok(())
    })
}
