//! The `gateway` binary: parses and validates the command line, then serves
//! the HTTP API over the gRPC backend.
//!
//! ```text
//! gateway --listen <host:port> (--lognodes <grpc-addr>[,...] | --join <gossip-seed>[,...] --gossip-addr <host:port>)
//! gateway openapi        # prints the OpenAPI document
//! ```
//! Every flag can also be given as `LEDGER_<FLAG>` (e.g. `LEDGER_LISTEN`).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgGroup, Parser, Subcommand};
use gateway::grpc_backend::{GrpcBackend, Lognodes};
use gateway::{GatewayConfig, ServeOptions};
use ledger_discovery::{Discovery, Gossip, GossipProfile, MemberKind, MemberMeta};

/// mimalloc instead of glibc's malloc: glibc's allocator took about 40 % of the gateway's
/// instructions per transfer (README, Performance: `loadtest/callgrind.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "gateway", version, about = "Ledger's HTTP/JSON gateway.")]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
#[command(group(ArgGroup::new("cluster").args(["join", "lognodes"]).required(true).multiple(false)))]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,

    /// HTTP listen address (host:port).
    #[arg(long, env = "LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,

    /// Gossip seeds (host:port, comma-separated): discover the lognodes by gossip.
    #[arg(long, env = "LEDGER_JOIN", value_delimiter = ',')]
    join: Vec<String>,

    /// Static lognode gRPC addresses (host:port, comma-separated).
    #[arg(long, env = "LEDGER_LOGNODES", value_delimiter = ',')]
    lognodes: Vec<String>,

    /// This gateway's own gossip address (host:port); required with --join.
    #[arg(long, env = "LEDGER_GOSSIP_ADDR")]
    gossip_addr: Option<String>,

    /// Gossip timing: `lan` (default) or `local` (one machine); must match the lognodes'.
    #[arg(long, env = "LEDGER_GOSSIP_PROFILE", value_enum, default_value_t = GossipProfile::Lan)]
    gossip_profile: GossipProfile,

    /// With --join: the cluster's gossip key file (64 hex digits, readable only by its owner),
    /// when the lognodes encrypt their gossip (`lognode --gossip-key-file`).
    #[arg(long, env = "LEDGER_GOSSIP_KEY_FILE")]
    gossip_key_file: Option<std::path::PathBuf>,

    /// With --join: a file where the gossip remembers the addresses of the members it saw (at
    /// most 64), and joins through them as well as the seeds: at start, and when alone. A gateway
    /// restarted after every --join seed was replaced then still finds the cluster.
    #[arg(long, env = "LEDGER_GOSSIP_PEERS_FILE")]
    gossip_peers_file: Option<std::path::PathBuf>,

    /// HTTPS (docs/SECURITY.md): this gateway's certificate chain (PEM); with `--tls-key`.
    #[arg(long, env = "LEDGER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "LEDGER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Mutual TLS to the lognodes (docs/SECURITY.md): the cluster CA's certificate (PEM). With
    /// `--cluster-cert` and `--cluster-key` (all three or none); needed when the lognodes run
    /// with `--tls-*`. Gossip (`--join`) is then encrypted too, as theirs.
    #[arg(long, env = "LEDGER_CLUSTER_CA")]
    cluster_ca: Option<std::path::PathBuf>,
    /// This gateway's certificate (PEM), signed by the cluster CA.
    #[arg(long, env = "LEDGER_CLUSTER_CERT")]
    cluster_cert: Option<std::path::PathBuf>,
    /// This gateway's private key (PEM).
    #[arg(long, env = "LEDGER_CLUSTER_KEY")]
    cluster_key: Option<std::path::PathBuf>,

    /// `keys` (default): every route but health, readiness and the API document needs an API key
    /// (docs/SECURITY.md). `none`: no authentication; accepted only on a loopback address.
    #[arg(long, env = "LEDGER_AUTH", value_enum, default_value_t = gateway::auth::AuthMode::Keys)]
    auth: gateway::auth::AuthMode,

    /// With `--auth none`: bearer token for the admin endpoints (node removal, topic and group
    /// deletion, offset resets); absent disables them. With keys, they need the `admin` scope.
    #[arg(long, env = "LEDGER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Maximum request body size, in bytes.
    #[arg(long, env = "LEDGER_MAX_BODY_BYTES", default_value_t = gateway::limits::BODY_BYTES_MAX_DEFAULT)]
    max_body_bytes: usize,

    /// Maximum requests in flight; past it, 503 with Retry-After.
    #[arg(long, env = "LEDGER_MAX_IN_FLIGHT", default_value_t = gateway::limits::IN_FLIGHT_MAX_DEFAULT)]
    max_in_flight: usize,

    /// Host names (or host:port) this gateway answers to, comma-separated; a request whose `Host`
    /// is not listed gets 421 `host_not_allowed` (DNS-rebinding protection). Absent: any host.
    #[arg(long, env = "LEDGER_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,

    /// Deadline of one backend call, in milliseconds.
    #[arg(long, env = "LEDGER_BACKEND_TIMEOUT_MS", default_value_t = 5000)]
    backend_timeout_ms: u64,

    /// Most open connections from one client IP address; past it new ones are closed at once.
    /// Behind a proxy every client shares the proxy's address: raise it there.
    #[arg(long, env = "LEDGER_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = gateway::limits::CONNECTIONS_PER_CLIENT_MAX)]
    max_connections_per_client: usize,

    /// A connection with no request in flight for this long is closed, in milliseconds.
    #[arg(long, env = "LEDGER_IDLE_TIMEOUT_MS", default_value_t = IDLE_TIMEOUT_MS_DEFAULT)]
    idle_timeout_ms: u64,

    /// Interval of HTTP/2 keep-alive PINGs, in milliseconds; a PING not acknowledged within the
    /// interval (at most 10 s) closes the connection, so a vanished peer is found within twice it.
    #[arg(long, env = "LEDGER_HTTP2_KEEPALIVE_MS", default_value_t = HTTP2_KEEPALIVE_MS_DEFAULT)]
    http2_keepalive_ms: u64,
}

/// `--http2-keepalive-ms` by default: `HTTP2_KEEPALIVE_INTERVAL`.
const HTTP2_KEEPALIVE_MS_DEFAULT: u64 = gateway::limits::HTTP2_KEEPALIVE_INTERVAL.as_millis() as u64;
/// The range `--http2-keepalive-ms` accepts: 1 s to 1 h.
const HTTP2_KEEPALIVE_MS_RANGE: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;

/// `--idle-timeout-ms` by default: `CONNECTION_IDLE_TIMEOUT`.
const IDLE_TIMEOUT_MS_DEFAULT: u64 = gateway::limits::CONNECTION_IDLE_TIMEOUT.as_millis() as u64;
/// The range `--idle-timeout-ms` accepts: 1 s (shorter would close connections between a
/// client's requests) to 1 h (longer would let idle clients hold slots for hours).
const IDLE_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;

/// Connection limits from the command line (the rest of [`ServeOptions`] keeps its defaults).
fn serve_options(cli: &Cli) -> anyhow::Result<ServeOptions> {
    let max = gateway::limits::CONNECTIONS_MAX;
    if cli.max_connections_per_client == 0 || cli.max_connections_per_client > max {
        bail!("--max-connections-per-client must be 1..={max} (the gateway's connection limit)");
    }
    if !IDLE_TIMEOUT_MS_RANGE.contains(&cli.idle_timeout_ms) {
        bail!(
            "--idle-timeout-ms must be {}..={} (1 s to 1 h)",
            IDLE_TIMEOUT_MS_RANGE.start(),
            IDLE_TIMEOUT_MS_RANGE.end()
        );
    }
    if !HTTP2_KEEPALIVE_MS_RANGE.contains(&cli.http2_keepalive_ms) {
        bail!(
            "--http2-keepalive-ms must be {}..={} (1 s to 1 h)",
            HTTP2_KEEPALIVE_MS_RANGE.start(),
            HTTP2_KEEPALIVE_MS_RANGE.end()
        );
    }
    Ok(ServeOptions {
        max_connections_per_client: cli.max_connections_per_client,
        idle_timeout: Duration::from_millis(cli.idle_timeout_ms),
        http2_keepalive_interval: Duration::from_millis(cli.http2_keepalive_ms),
        ..ServeOptions::default()
    })
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi,
}

/// `host:port` with a non-empty host and a numeric port.
fn check_host_port(flag: &str, v: &str) -> anyhow::Result<()> {
    let (host, port) = v.rsplit_once(':').with_context(|| format!("--{flag} {v:?}: expected host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        bail!("--{flag} {v:?}: expected host:port with a non-empty host");
    }
    port.parse::<u16>().with_context(|| format!("--{flag} {v:?}: the port must be 0..=65535"))?;
    Ok(())
}

fn validate(cli: &Cli) -> anyhow::Result<GatewayConfig> {
    check_host_port("listen", &cli.listen)?;
    for s in &cli.join {
        check_host_port("join", s)?;
    }
    for s in &cli.lognodes {
        check_host_port("lognodes", s)?;
    }
    if let Some(g) = &cli.gossip_addr {
        if cli.join.is_empty() {
            bail!("--gossip-addr is only meaningful with --join");
        }
        check_host_port("gossip-addr", g)?;
    } else if !cli.join.is_empty() {
        bail!("--join needs --gossip-addr (this gateway's own gossip address)");
    }
    if cli.gossip_peers_file.is_some() && cli.join.is_empty() {
        bail!("--gossip-peers-file is for the gossip: it needs --join");
    }
    if cli.max_in_flight == 0 {
        bail!("--max-in-flight must be at least 1");
    }
    if cli.backend_timeout_ms == 0 {
        bail!("--backend-timeout-ms must be at least 1");
    }
    if let Some(t) = &cli.admin_token
        && (t.is_empty() || t.len() > gateway::limits::ADMIN_TOKEN_BYTES_MAX)
    {
        bail!("--admin-token must be 1..={} bytes", gateway::limits::ADMIN_TOKEN_BYTES_MAX);
    }
    if cli.auth == gateway::auth::AuthMode::None && !resolve("listen", &cli.listen)?.ip().is_loopback() {
        bail!(
            "--auth none serves every route to anyone who can reach {}: it is accepted only on a loopback \
             address (use --auth keys, the default)",
            cli.listen
        );
    }
    for h in &cli.allowed_hosts {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b)) {
            bail!("--allowed-hosts {h:?}: expected a host name or host:port");
        }
    }
    Ok(GatewayConfig {
        max_body_bytes: cli.max_body_bytes,
        allowed_hosts: cli.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        max_in_flight: cli.max_in_flight,
        backend_timeout: Duration::from_millis(cli.backend_timeout_ms),
        admin_token: cli.admin_token.clone(),
        auth: cli.auth,
        ..GatewayConfig::default()
    })
}

fn resolve(flag: &str, addr: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs as _;
    addr.to_socket_addrs()
        .with_context(|| format!("--{flag} {addr:?}: cannot resolve"))?
        .next()
        .with_context(|| format!("--{flag} {addr:?}: resolves to nothing"))
}

/// A gateway's gossip id: unique enough among gateways (gossip address, pid, start time).
fn gateway_member_id(gossip_addr: &str) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(gossip_addr.as_bytes());
    h.write_u32(std::process::id());
    h.finish()
}

/// The product backend: gRPC to the lognode cluster, which it finds from the static
/// `--lognodes` list or by joining the gossip (`--join`) as a gateway member (no Raft, no data).
async fn connect_backend(cli: &Cli) -> anyhow::Result<Arc<GrpcBackend>> {
    let tls = match (&cli.cluster_ca, &cli.cluster_cert, &cli.cluster_key) {
        (None, None, None) => None,
        (Some(ca), Some(cert), Some(key)) => {
            let flags = ["--cluster-ca", "--cluster-cert", "--cluster-key"];
            Some(ledger_proto::tls::ClusterTls::load(flags, ca, cert, key).map_err(|e| anyhow::anyhow!(e))?)
        }
        _ => anyhow::bail!("--cluster-ca, --cluster-cert and --cluster-key go together"),
    };
    let client_tls = tls.as_ref().map(ledger_proto::tls::ClusterTls::client);
    if cli.join.is_empty() {
        anyhow::ensure!(cli.gossip_key_file.is_none(), "--gossip-key-file is for the gossip: it needs --join");
        return Ok(GrpcBackend::start_with_tls(Lognodes::Static(cli.lognodes.clone()), client_tls).await);
    }
    let gossip_addr = cli.gossip_addr.as_deref().context("--join needs --gossip-addr")?;
    let bind = resolve("gossip-addr", gossip_addr)?;
    let seeds = cli.join.iter().map(|s| resolve("join", s)).collect::<anyhow::Result<Vec<_>>>()?;
    let meta = MemberMeta {
        kind: MemberKind::Gateway,
        node_id: gateway_member_id(gossip_addr),
        grpc_addr: cli.listen.clone(),
        role: "gateway".to_owned(),
    };
    let key = match (&cli.gossip_key_file, &tls) {
        (Some(path), _) => {
            Some(ledger_discovery::GossipKey::load(path).map_err(|e| anyhow::anyhow!("--gossip-key-file: {e}"))?)
        }
        (None, Some(t)) => Some(ledger_discovery::GossipKey::derive_from_ca(t.ca_pem())),
        (None, None) => None,
    };
    let gossip: Arc<dyn Discovery> =
        Gossip::start_remembering(bind, meta, seeds, cli.gossip_profile, key, cli.gossip_peers_file.clone())
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    Ok(GrpcBackend::start_with_tls(Lognodes::Gossip(gossip), client_tls).await)
}

/// Raises the soft limit of open files to the hard limit: every connection
/// is a file, and the connection limits (`gateway::limits::CONNECTIONS_MAX`)
/// must be what bounds them, not a default soft limit of 1024 that makes
/// `accept` fail for everyone.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

fn main() -> std::process::ExitCode {
    // No transparent huge pages, as in lognode (issue 20): mimalloc's 64 KiB returns split them
    // and the kernel's khugepaged collapses the holes back, so RSS creeps up under load.
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("gateway: warning: cannot turn transparent huge pages off (prctl): {e}");
    }
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Cmd::Openapi) = cli.command {
        let mut out = std::io::stdout().lock();
        out.write_all(gateway::openapi::spec_json().as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = validate(&cli)?;
    if config.auth == gateway::auth::AuthMode::None {
        tracing::warn!(
            listen = %cli.listen,
            "INSECURE: --auth none: every route is open to anyone who can reach this address, no API key asked"
        );
    }
    let serve_opts = serve_options(&cli)?;
    let https = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(gateway::tls_acceptor(cert, key).map_err(|e| anyhow::anyhow!(e))?),
        _ => None,
    };
    raise_open_files_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cli.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cli.listen))?;
        let backend = connect_backend(&cli).await?;
        let signals = ledger_shutdown::Shutdown::on_signals().context("cannot listen for SIGTERM/SIGINT")?;
        let stop = {
            let signals = signals.clone();
            async move {
                signals.stopping().await;
                let signal = signals.reason().unwrap_or("?");
                tracing::info!(signal, "shutting down: finishing the requests in flight");
            }
        };
        let scheme = if https.is_some() { "https" } else { "http" };
        tracing::info!(addr = %listener.local_addr()?, scheme, "gateway listening");
        let app = gateway::app(backend.clone(), config);
        let served = gateway::serve_tls(listener, app, serve_opts, https, stop).await;
        // Leave the gossip (bounded inside) once the requests in flight are done.
        backend.shutdown().await;
        served?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Cli {
        let mut args = vec!["gateway", "--lognodes", "127.0.0.1:7001"];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args).expect("parse")
    }

    /// Connection flags out of range are refused with a message naming the flag and its range.
    #[test]
    fn connection_flags_are_checked() {
        let ok = serve_options(&parse(&[
            "--max-connections-per-client",
            "8",
            "--idle-timeout-ms",
            "1500",
            "--http2-keepalive-ms",
            "2000",
        ]))
        .expect("ok");
        assert_eq!((ok.max_connections_per_client, ok.idle_timeout), (8, Duration::from_millis(1500)));
        assert_eq!(ok.http2_keepalive_interval, Duration::from_millis(2000));
        let d = serve_options(&parse(&[])).expect("defaults");
        assert_eq!(d.max_connections_per_client, gateway::limits::CONNECTIONS_PER_CLIENT_MAX);
        assert_eq!(d.idle_timeout, gateway::limits::CONNECTION_IDLE_TIMEOUT);
        assert_eq!(d.http2_keepalive_interval, gateway::limits::HTTP2_KEEPALIVE_INTERVAL);
        for (flags, needle) in [
            (["--max-connections-per-client", "0"], "--max-connections-per-client must be 1..=4096"),
            (["--max-connections-per-client", "4097"], "--max-connections-per-client must be 1..=4096"),
            (["--idle-timeout-ms", "999"], "--idle-timeout-ms must be 1000..=3600000"),
            (["--idle-timeout-ms", "3600001"], "--idle-timeout-ms must be 1000..=3600000"),
            (["--http2-keepalive-ms", "999"], "--http2-keepalive-ms must be 1000..=3600000"),
            (["--http2-keepalive-ms", "3600001"], "--http2-keepalive-ms must be 1000..=3600000"),
        ] {
            let e = serve_options(&parse(&flags)).expect_err("refused").to_string();
            assert!(e.contains(needle), "{flags:?}: {e}");
        }
    }
}
