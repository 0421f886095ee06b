//! `ledger dev`: a whole local system on 127.0.0.1 — N lognodes (fsync on), a gateway, the
//! projector and (when needed) a private PostgreSQL — as child processes of the existing
//! binaries, with their logs under `<data-dir>/logs`.
//!
//! Start-up checks everything it can before starting anything (data dir, binaries, ports), then
//! starts the children in order and waits for each stage with a bounded wait; a child that exits
//! early is reported with the last lines of its log. Ctrl-C or SIGTERM stops the children in
//! reverse order (SIGTERM, then SIGKILL after a grace period); if `ledger dev` itself is killed,
//! the children get SIGTERM from the kernel (see `child`).

pub mod child;
mod keys;
mod postgres;
mod procs;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ledger_shutdown::Shutdown;
use lognode_args::LognodeArgs;
use serde::{Deserialize, Serialize};

use self::postgres::Database;
use self::procs::{Proc, Role};
use crate::Failure;
use crate::args::DevArgs;
use crate::output::{Out, note};

/// File marking a directory as a `ledger dev` data dir (`--fresh` wipes only such directories).
pub const MARKER_FILE: &str = "ledger-dev.json";
/// Version of the data dir layout.
pub const LAYOUT_VERSION: u32 = 1;
/// Longest wait for the first lognode's gossip port before starting the others.
pub const FIRST_NODE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for the gateway's `/readyz` to answer 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for the private PostgreSQL to accept connections.
pub const POSTGRES_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace period between SIGTERM and SIGKILL, per stage of the shutdown.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often children are checked while waiting or running.
pub const POLL: Duration = Duration::from_millis(200);
/// Deadline of one `/readyz` probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Contents of the marker file.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    /// `LAYOUT_VERSION`.
    layout: u32,
    /// Node count of the last run.
    nodes: u16,
}

/// Ports of one run.
#[derive(Debug)]
struct Ports {
    listen: SocketAddr,
    grpc: Vec<u16>,
    gossip: Vec<u16>,
    gateway_gossip: u16,
    postgres: u16,
}

impl Ports {
    fn new(a: &DevArgs) -> Result<Ports, Failure> {
        let listen: SocketAddr = a
            .listen
            .parse()
            .map_err(|_| Failure::usage(format!("--listen {:?}: expected ip:port, like 127.0.0.1:8080", a.listen)))?;
        let b = a.port_base;
        let n = a.nodes;
        Ok(Ports {
            listen,
            grpc: (1..=n).map(|i| b + i).collect(),
            gossip: (1..=n).map(|i| b + 100 + i).collect(),
            gateway_gossip: b + 201,
            postgres: b + 332,
        })
    }

    /// Fails with one clear message naming the first busy port.
    fn check_free(&self, with_postgres: bool) -> Result<(), Failure> {
        let busy = |what: &str, port: u16, flag: &str| {
            Failure::failed(format!(
                "port {port} ({what}) is already in use: stop whatever holds it (an earlier `ledger dev`?) \
                 or choose another {flag}"
            ))
        };
        if TcpListener::bind(self.listen).is_err() {
            return Err(busy("the gateway's HTTP address", self.listen.port(), "--listen"));
        }
        for (i, p) in self.grpc.iter().enumerate() {
            if !tcp_free(*p) {
                return Err(busy(&format!("lognode {} gRPC", i + 1), *p, "--port-base"));
            }
        }
        for (i, p) in self.gossip.iter().enumerate() {
            if !tcp_free(*p) || !udp_free(*p) {
                return Err(busy(&format!("lognode {} gossip", i + 1), *p, "--port-base"));
            }
        }
        if !tcp_free(self.gateway_gossip) || !udp_free(self.gateway_gossip) {
            return Err(busy("the gateway's gossip", self.gateway_gossip, "--port-base"));
        }
        if with_postgres && !tcp_free(self.postgres) {
            return Err(busy("the private PostgreSQL", self.postgres, "--port-base"));
        }
        Ok(())
    }
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// The binaries `ledger dev` runs.
#[derive(Debug)]
struct Binaries {
    lognode: PathBuf,
    gateway: PathBuf,
    projector: PathBuf,
}

/// Finds the binaries next to the `ledger` executable. Under `cargo run` (`CARGO` set) they are
/// (re)built first with the same profile, which is a no-op when they are up to date.
fn binaries() -> Result<Binaries, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::failed(format!("cannot find the ledger executable itself: {e}")))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
    // A cargo target directory holds CACHEDIR.TAG; its subdirectories are named by profile.
    let in_target = dir.parent().is_some_and(|t| t.join("CACHEDIR.TAG").is_file());
    let profile_args: Vec<String> = match profile.as_str() {
        "debug" if in_target => vec![],
        other if in_target && other != "release" => vec!["--profile".into(), other.to_owned()],
        _ => vec!["--release".into()],
    };
    let mut build_cmd = format!(
        "cargo build {}-p lognode -p gateway -p projector",
        profile_args.iter().map(|a| format!("{a} ")).collect::<String>()
    );
    if !in_target {
        build_cmd.push_str(&format!("`, then copy lognode, gateway and projector into `{}", dir.display()));
    }
    if let Some(cargo) = std::env::var_os("CARGO") {
        note(&format!("making sure the binaries are up to date: {build_cmd}"));
        let mut cmd = std::process::Command::new(cargo);
        cmd.arg("build").args(&profile_args).args(["-p", "lognode", "-p", "gateway", "-p", "projector"]);
        if let Some(m) = std::env::var_os("CARGO_MANIFEST_DIR") {
            cmd.current_dir(m);
        }
        let status = cmd.status().map_err(|e| Failure::failed(format!("cannot run cargo: {e}")))?;
        if !status.success() {
            return Err(Failure::failed(format!("building the binaries failed ({status}): {build_cmd}")));
        }
    }
    let b = Binaries { lognode: dir.join("lognode"), gateway: dir.join("gateway"), projector: dir.join("projector") };
    for p in [&b.lognode, &b.gateway, &b.projector] {
        if !p.is_file() {
            return Err(Failure::failed(format!(
                "{} is missing: build it with `{build_cmd}` (or run `cargo run --release --bin ledger -- dev`, \
                 which builds it)",
                p.display()
            )));
        }
    }
    Ok(b)
}

/// Prepares the data dir: refuses a directory that is not ours, wipes it with `--fresh`, writes
/// the marker. Returns the absolute path.
fn prepare_data_dir(a: &DevArgs) -> Result<PathBuf, Failure> {
    let cwd =
        std::env::current_dir().map_err(|e| Failure::failed(format!("cannot read the current directory: {e}")))?;
    let dir = cwd.join(&a.data_dir);
    let marker = dir.join(MARKER_FILE);
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Failure::failed(format!("--data-dir {} is not a directory", dir.display())));
        }
        let empty = std::fs::read_dir(&dir).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty && !marker.exists() {
            return Err(Failure::failed(format!(
                "{} exists and is not a `ledger dev` data dir (no {MARKER_FILE}); nothing was touched: \
                 choose another --data-dir",
                dir.display()
            )));
        }
        if !empty {
            let text = std::fs::read_to_string(&marker)
                .map_err(|e| Failure::failed(format!("cannot read {}: {e}", marker.display())))?;
            match serde_json::from_str::<Marker>(&text) {
                Ok(m) if m.layout == LAYOUT_VERSION => {
                    if !a.fresh && m.nodes > a.nodes {
                        note(&format!(
                            "the data dir was last used with {} nodes; starting {} (the others' data stays; \
                             if the cluster does not become ready, start again with --nodes {} or --fresh)",
                            m.nodes, a.nodes, m.nodes
                        ));
                    }
                }
                Ok(m) if !a.fresh => {
                    return Err(Failure::failed(format!(
                        "{} has layout {} and this ledger expects {LAYOUT_VERSION}: start with --fresh to wipe it",
                        dir.display(),
                        m.layout
                    )));
                }
                Ok(_) => {}
                Err(e) if !a.fresh => {
                    return Err(Failure::failed(format!(
                        "corrupt data dir: {} is not what `ledger dev` writes ({e}); start with --fresh to wipe it",
                        marker.display()
                    )));
                }
                Err(_) => {}
            }
        }
        if a.fresh && !empty {
            note(&format!("--fresh: wiping {}", dir.display()));
            let fallback = postgres::fallback_dir(&dir);
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Failure::failed(format!("cannot wipe {}: {e}", dir.display())))?;
            if let Some(fallback) = fallback {
                let _ = std::fs::remove_dir_all(&fallback);
            }
        }
    }
    std::fs::create_dir_all(dir.join("logs"))
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.join("logs").display())))?;
    let m = serde_json::to_string_pretty(&Marker { layout: LAYOUT_VERSION, nodes: a.nodes }).unwrap_or_default();
    std::fs::write(&marker, m).map_err(|e| Failure::failed(format!("cannot write {}: {e}", marker.display())))?;
    Ok(dir)
}

/// The running system.
struct System {
    data_dir: PathBuf,
    nodes: Vec<Proc>,
    gateway: Option<Proc>,
    projector: Option<Proc>,
    webhooks: Option<Proc>,
    postgres: Option<Proc>,
    /// Set by SIGINT/SIGTERM.
    signals: Shutdown,
}

impl System {
    fn log(&self, name: &str) -> PathBuf {
        self.data_dir.join("logs").join(format!("{name}.log"))
    }

    fn stopping(&self) -> bool {
        self.signals.is_stopping()
    }

    /// A start-up failure if any child has exited (or a signal asked to stop).
    fn check_startup(&mut self) -> Result<(), Failure> {
        if self.stopping() {
            return Err(Failure::failed("interrupted during start-up"));
        }
        for p in self.all_mut() {
            if let Some(s) = p.poll_exit() {
                return Err(Failure::failed(format!("start-up failed: {}", p.exit_report(s))));
            }
        }
        Ok(())
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.projector
            .iter_mut()
            .chain(self.webhooks.iter_mut())
            .chain(self.gateway.iter_mut())
            .chain(self.nodes.iter_mut())
            .chain(self.postgres.iter_mut())
    }

    /// Stops everything: projector and gateway, then the lognodes, then PostgreSQL.
    fn stop(&mut self) {
        let mut front: Vec<&mut Proc> =
            self.projector.iter_mut().chain(self.webhooks.iter_mut()).chain(self.gateway.iter_mut()).collect();
        procs::stop(&mut front, STOP_GRACE);
        let mut nodes: Vec<&mut Proc> = self.nodes.iter_mut().collect();
        procs::stop(&mut nodes, STOP_GRACE);
        let mut pg: Vec<&mut Proc> = self.postgres.iter_mut().collect();
        procs::stop(&mut pg, STOP_GRACE);
    }
}

/// Runs `ledger dev` until Ctrl-C or SIGTERM.
pub fn run(a: &DevArgs) -> Result<(), Failure> {
    let ports = Ports::new(a)?;
    let data_dir = prepare_data_dir(a)?;
    let bins = binaries()?;
    let db = if a.no_projector {
        Database::Unavailable("--no-projector: running without the projector".to_owned())
    } else {
        postgres::choose(&data_dir, ports.postgres)?
    };
    ports.check_free(matches!(db, Database::Private(_)))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    // Catching SIGINT/SIGTERM from here on: the children are stopped in order, never orphaned.
    let signals = rt
        .block_on(async { Shutdown::on_signals() })
        .map_err(|e| Failure::failed(format!("cannot catch SIGINT/SIGTERM: {e}")))?;
    let mut sys =
        System { data_dir, nodes: Vec::new(), gateway: None, projector: None, webhooks: None, postgres: None, signals };
    let result = rt.block_on(start(&mut sys, a, &ports, &bins, db));
    let code = match result {
        Ok(()) => rt.block_on(supervise(&mut sys)),
        Err(f) => Err(f),
    };
    note("stopping...");
    sys.stop();
    note(&format!("stopped; data kept in {}", sys.data_dir.display()));
    code
}

async fn start(sys: &mut System, a: &DevArgs, ports: &Ports, bins: &Binaries, db: Database) -> Result<(), Failure> {
    let env_log = |default: &str| std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned());
    // PostgreSQL first: initdb takes seconds, and the server starts while the cluster does.
    let mut pg_url: Option<String> = None;
    let mut private: Option<postgres::PrivatePg> = None;
    match db {
        Database::External(url) => pg_url = Some(url),
        Database::Unavailable(why) => note(&why),
        Database::Private(pg) => {
            let log = sys.log("postgres");
            pg.init(&log)?;
            let (program, args) = pg.command("postgres", &pg.server_args());
            sys.postgres = Some(Proc::spawn(Role::Postgres, &program, &args, &[], log)?);
            pg_url = Some(pg.url());
            private = Some(pg);
        }
    }
    let keyed = !a.insecure;
    if !keyed {
        note("INSECURE (--insecure): the gateway asks for no API key; anyone who can reach it may do anything");
    }
    let voters = usize::from(a.nodes);
    // Gossip is encrypted with a key of the data dir, shared by every lognode and the gateway.
    let gossip_key = keys::gossip(&sys.data_dir)?.display().to_string();
    // Mutual TLS between the lognodes and the gateway: a throwaway CA of the data dir and a
    // certificate for each (made on the first start, reused after).
    let mut members: Vec<String> = (1..=a.nodes).map(|i| format!("node{i}")).collect();
    members.push("gateway".to_owned());
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    let tls = if a.no_tls {
        note("--no-tls: the lognodes and the gateway talk plaintext gRPC");
        None
    } else {
        Some(lognode_args::certs::ensure(&sys.data_dir.join("tls"), &names).map_err(Failure::failed)?)
    };
    // A restart (lognode 1 has its data and the admin key exists): nodes 2.. start with node 1,
    // each opening its store at the same time (up to seconds each), and reach node 1's gossip by
    // their own join retries; the Raft peers know each other from the log already.
    let restart = sys.data_dir.join("node1").join("log").is_dir()
        && (!keyed || keys::path(&sys.data_dir, keys::ADMIN_KEY_FILE).is_file());
    for i in 1..=a.nodes {
        let idx = usize::from(i - 1);
        let grpc = format!("127.0.0.1:{}", ports.grpc[idx]);
        let gossip = format!("127.0.0.1:{}", ports.gossip[idx]);
        let mut node = LognodeArgs::new(i.into(), sys.data_dir.join(format!("node{i}")), &grpc, &gossip)
            .voters(voters)
            .extra(&["--gossip-key-file", gossip_key.as_str()])
            .extra(&tls.as_ref().map(|t| t[idx].lognode_flags()).unwrap_or_default());
        if keyed {
            // Every node may be given it: the first leader enters its hash into the log, once.
            let file = keys::path(&sys.data_dir, keys::ADMIN_KEY_FILE);
            node = node.extra(&["--admin-key-file".to_owned(), file.display().to_string()]);
        }
        let args =
            if i == 1 { node.bootstrap() } else { node.join(&format!("127.0.0.1:{}", ports.gossip[0])) }.to_args();
        let envs = [("RUST_LOG", env_log("info,openraft=warn,memberlist_core::broadcast=off"))];
        let p = Proc::spawn(Role::Lognode(u64::from(i)), &bins.lognode, &args, &envs, sys.log(&format!("node{i}")))?;
        sys.nodes.push(p);
        if i == 1 && !restart {
            // The others join through node 1's gossip: wait until it listens.
            let deadline = Instant::now() + FIRST_NODE_TIMEOUT;
            let addr = SocketAddr::from(([127, 0, 0, 1], ports.gossip[0]));
            while TcpStream::connect_timeout(&addr, POLL).is_err() {
                sys.check_startup()?;
                if Instant::now() > deadline {
                    return Err(Failure::failed(format!(
                        "lognode 1 did not open its gossip port {} within {FIRST_NODE_TIMEOUT:?}; see {}",
                        ports.gossip[0],
                        sys.log("node1").display()
                    )));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
    // Lognode 1 made the file (or found it) before it opened the gossip port waited for above;
    // on a restart it was there already.
    let admin = if keyed { Some(keys::admin(&sys.data_dir)?) } else { None };
    let mut gw_args = vec![
        "--listen".to_owned(),
        ports.listen.to_string(),
        "--join".into(),
        format!("127.0.0.1:{}", ports.gossip[0]),
        "--gossip-addr".into(),
        format!("127.0.0.1:{}", ports.gateway_gossip),
        "--gossip-profile".into(),
        "local".into(),
        "--gossip-key-file".into(),
        gossip_key.clone(),
    ];
    let gateway_tls = tls.as_ref().map(|t| t[usize::from(a.nodes)].clone());
    if let Some(t) = &gateway_tls {
        gw_args.extend(t.gateway_flags());
        if a.https {
            gw_args.extend(["--tls-cert".to_owned(), t.cert.display().to_string()]);
            gw_args.extend(["--tls-key".to_owned(), t.key.display().to_string()]);
        }
    }
    // With --https, the CA every client of the gateway trusts.
    let ca = gateway_tls.as_ref().filter(|_| a.https).map(|t| t.ca.clone());
    if admin.is_none() {
        gw_args.extend(["--auth".to_owned(), "none".to_owned()]);
    }
    let envs = [("RUST_LOG", env_log("info"))];
    sys.gateway = Some(Proc::spawn(Role::Gateway, &bins.gateway, &gw_args, &envs, sys.log("gateway"))?);
    let base = format!("{}://{}", if ca.is_some() { "https" } else { "http" }, ports.listen);
    let mut client =
        ledger_client::Client::with_timeout(&base, PROBE_TIMEOUT)?.with_key(admin.as_deref().unwrap_or(""));
    if let Some(ca) = &ca {
        let pem = std::fs::read(ca).map_err(|e| Failure::failed(format!("cannot read {}: {e}", ca.display())))?;
        client = client.with_ca_pem(&pem)?;
    }
    note(&format!("waiting for the cluster to elect a leader and admit its {} lognodes...", a.nodes));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        sys.check_startup()?;
        // Ready means a leader *and* every lognode of this run a live voter: /readyz turns 200 as
        // soon as a leader exists, which can be before gossip has brought the others in.
        if client.ready().await.unwrap_or(false) && all_voters(&client, a.nodes).await {
            break;
        }
        if Instant::now() > deadline {
            return Err(Failure::failed(format!(
                "the cluster did not become ready (a leader and {} live voters) within {READY_TIMEOUT:?}; logs are in {}",
                a.nodes,
                sys.data_dir.join("logs").display()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    if let Some(pg) = &private {
        let deadline = Instant::now() + POSTGRES_TIMEOUT;
        while !pg.ready() {
            sys.check_startup()?;
            if Instant::now() > deadline {
                return Err(Failure::failed(format!(
                    "the private PostgreSQL did not accept connections within {POSTGRES_TIMEOUT:?}; see {}",
                    sys.log("postgres").display()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    if let Some(url) = &pg_url {
        let mut args = vec!["--gateway".to_owned(), base.clone()];
        if let Some(ca) = &ca {
            args.extend(["--ca-cert".to_owned(), ca.display().to_string()]);
        }
        let key = match admin {
            Some(_) => keys::projector(&sys.data_dir, &client).await?,
            None => String::new(),
        };
        let envs = [("RUST_LOG", env_log("info")), ("DATABASE_URL", url.clone()), ("LEDGER_KEY", key)];
        sys.projector = Some(Proc::spawn(Role::Projector, &bins.projector, &args, &envs, sys.log("projector"))?);
        // The webhook deliverer: the projector binary too, with a key of its own (no PostgreSQL).
        let key = match admin {
            Some(_) => keys::webhooks(&sys.data_dir, &client).await?,
            None => String::new(),
        };
        let mut wargs = vec!["webhooks".to_owned()];
        wargs.extend(args.iter().cloned());
        let envs = [("RUST_LOG", env_log("info")), ("LEDGER_KEY", key)];
        sys.webhooks = Some(Proc::spawn(Role::Webhooks, &bins.projector, &wargs, &envs, sys.log("webhooks"))?);
    }
    banner(sys, &base, pg_url.as_deref(), admin.is_some(), ca.as_deref());
    Ok(())
}

/// Whether the cluster lists at least `nodes` live nodes, each of them a leader or a follower
/// (not a learner still catching up).
async fn all_voters(client: &ledger_client::Client, nodes: u16) -> bool {
    let Ok(c) = client.cluster().await else { return false };
    let voters = c.nodes.iter().filter(|n| n.alive && (n.role == "leader" || n.role == "follower")).count();
    voters >= usize::from(nodes)
}

fn banner(sys: &System, base: &str, pg_url: Option<&str>, keyed: bool, ca: Option<&std::path::Path>) {
    let out = Out { json: false, consistency: ledger_client::Consistency::Strong };
    // curl: `host:port` for plain HTTP, the https URL and the CA to trust for HTTPS.
    let host = match ca {
        Some(ca) => format!("--cacert {} {base}", ca.display()),
        None => base.trim_start_matches("http://").to_owned(),
    };
    let mut s = String::new();
    s.push_str(&format!("\nLedger is running ({} lognodes, fsync on):\n", sys.nodes.len()));
    s.push_str(&format!("  API       {base}/v1/...\n"));
    let sign_in = if keyed { "  (sign in with an API key, e.g. the admin key below)" } else { "" };
    s.push_str(&format!("  console   {base}/console{sign_in}\n"));
    s.push_str(&format!("  docs      {base}/docs\n"));
    s.push_str(&format!("  metrics   {base}/metrics\n"));
    match pg_url {
        Some(u) => s.push_str(&format!(
            "  postgres  {}  (the projector keeps the tables accounts and transfers)\n",
            postgres::redacted(u)
        )),
        None => s.push_str("  postgres  none: the projector is not running\n"),
    }
    s.push_str(&format!("  data      {}\n", sys.data_dir.display()));
    s.push_str("\nProcesses (logs in the data dir):\n");
    let procs = sys
        .nodes
        .iter()
        .chain(sys.gateway.iter())
        .chain(sys.projector.iter())
        .chain(sys.webhooks.iter())
        .chain(sys.postgres.iter());
    for p in procs {
        s.push_str(&format!("  {:<10}  pid {:<7}  {}\n", p.role.to_string(), p.pid(), p.log.display()));
    }
    let gw = if base == "http://127.0.0.1:8080" { String::new() } else { format!(" --gateway {base}") };
    let export_ca = ca.map_or_else(String::new, |ca| format!("  export LEDGER_CA_CERT={}\n", ca.display()));
    let (export, auth) = if keyed {
        let file = keys::path(&sys.data_dir, keys::ADMIN_KEY_FILE);
        s.push_str(&format!(
            "  admin key {} (scope admin; the projector's is {})\n",
            file.display(),
            keys::path(&sys.data_dir, keys::PROJECTOR_KEY_FILE).display()
        ));
        (format!("  export LEDGER_KEY=$(cat {})\n", file.display()), " -H \"Authorization: Bearer $LEDGER_KEY\"")
    } else {
        s.push_str("  admin key none: INSECURE (--insecure), the gateway asks for no key\n");
        (String::new(), "")
    };
    s.push_str(&format!(
        "\nTry:\n{export_ca}{export}  ledger{gw} account create equity --currency USD --allow-overdraft\n  \
         ledger{gw} account create alice --currency USD\n  \
         ledger{gw} transfer equity alice 1000 --currency USD\n  \
         ledger{gw} account show alice\n\
         or with curl:\n  \
         curl -s -XPOST {host}/v1/transfers{auth} -H 'content-type: application/json' \
         -d '{{\"id\":\"t1\",\"debit_account_id\":\"equity\",\"credit_account_id\":\"alice\",\"amount\":1000,\"currency\":\"USD\"}}'\n  \
         curl -s {host}/v1/accounts/alice{auth}\n\nCtrl-C stops everything.\n"
    ));
    out.text(&s);
}

/// Watches the children until a signal; reports unexpected exits. A gateway exit ends the run
/// (nothing can be reached); a lognode or projector exit is reported and the rest keeps running.
async fn supervise(sys: &mut System) -> Result<(), Failure> {
    loop {
        if sys.stopping() {
            return Ok(());
        }
        let mut fatal = None;
        for p in sys.all_mut() {
            if let Some(s) = p.poll_exit() {
                let consequence = match p.role {
                    Role::Gateway => "the API is gone: stopping everything",
                    Role::Lognode(_) => "the cluster keeps serving while a majority of lognodes is up",
                    Role::Projector => "the ledger keeps running without the PostgreSQL projection",
                    Role::Webhooks => "the ledger keeps running; webhooks are not delivered until a restart",
                    Role::Postgres => "the projector cannot write any more",
                };
                crate::output::error_line(&format!("{}\n  => {consequence}", p.exit_report(s)));
                if p.role == Role::Gateway {
                    fatal = Some(Failure::failed("the gateway exited"));
                }
            }
        }
        if let Some(f) = fatal {
            return Err(f);
        }
        sys.signals.sleep(POLL).await;
    }
}
