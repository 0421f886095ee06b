//! `lognode` binary: parse the configuration, start the node, stop gracefully on SIGTERM/SIGINT.

use clap::Parser;
use lognode::config::Config;
use tracing::{error, info};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,openraft=warn,memberlist_core::broadcast=off")
        }))
        .with_ansi(false)
        .init();
    let cfg = Config::parse();
    let node = match lognode::node::start(cfg).await {
        Ok(n) => n,
        Err(e) => {
            error!(error = %e, "lognode failed to start");
            return std::process::ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    info!("signal received");
    node.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
