//! One run: the world started, the accounts funded, the clients and the nemesis let loose for the
//! schedule's length, every fault healed, the clients drained, the final state read and checked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ledger_client::Client;

use crate::check::linear::{self, Call, Event, Verdict};
use crate::check::transfers::{self, FinalAccount};
use crate::check::{Anomaly, SLICE_MAX};
use crate::history::{Op, Outcome, Recorder, What};
use crate::nemesis;
use crate::report::{Availability, Linearizability, Ops, Recovery, Report};
use crate::schedule::{self, Kind, Timing};
use crate::workload::{self, BANK, Stop};
use crate::world::{Bins, READY_TIMEOUT, World};

/// After the schedule ends, how long clients may still retry the operations they have in flight
/// (every fault is healed by then).
pub const DRAIN: Duration = Duration::from_secs(20);
/// Deadline of reading the final state.
pub const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A workload, as named on the command line (`--workload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Transfers with client-chosen ids.
    Transfers,
    /// Strong reads of balances, checked for linearizability (runs the transfers' writers too).
    Reads,
    /// Producers to a topic and the members of a consumer group.
    Groups,
}

impl Workload {
    /// Parses a comma-separated list; an unknown name is an error naming it.
    pub fn parse_list(s: &str) -> Result<Vec<Workload>, String> {
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let w = match name {
                "transfers" => Workload::Transfers,
                "reads" => Workload::Reads,
                "groups" => Workload::Groups,
                other => return Err(format!("unknown workload {other:?}: expected some of transfers,reads,groups")),
            };
            if !out.contains(&w) {
                out.push(w);
            }
        }
        if out.is_empty() {
            return Err("no workload given".to_owned());
        }
        Ok(out)
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Transfers => "transfers",
            Workload::Reads => "reads",
            Workload::Groups => "groups",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The seed of the schedule and of the clients' choices.
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Nemeses.
    pub kinds: Vec<Kind>,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// The run's directory (data, logs); emptied first.
    pub dir: PathBuf,
    /// The binaries.
    pub bins: Bins,
    /// Concurrent writers.
    pub writers: usize,
    /// Concurrent readers (with the reads workload).
    pub readers: usize,
    /// Protected accounts.
    pub accounts: usize,
    /// Producers and consumer-group members each (with the groups workload).
    pub members: usize,
    /// Fault timing.
    pub timing: Timing,
    /// Lognodes (voters): 3 or 5.
    pub voters: u64,
    /// A PostgreSQL server URL: a projector materializes the ledger into a fresh database on it
    /// (dropped at the end), may be killed by the nemesis, and `projector verify` must agree
    /// with the cluster after the run.
    pub database_url: Option<String>,
}

/// Runs the whole thing; the report says what was found.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    if opts.dir.exists() {
        std::fs::remove_dir_all(&opts.dir).with_context(|| format!("empty {}", opts.dir.display()))?;
    }
    let db = match &opts.database_url {
        Some(url) => Some(Database::create(url, opts.seed)?),
        None => None,
    };
    let disk = opts.kinds.contains(&Kind::Disk);
    let projector_db = db.as_ref().map(|d| d.url.clone());
    let mut world = World::start(opts.bins.clone(), &opts.dir, opts.seed, opts.voters, disk, projector_db)?;
    let result = drive(opts, &mut world).await;
    if result.is_err() {
        eprintln!("{}", world.log_tails(20));
    }
    drop(world);
    drop(db);
    result
}

/// A fresh database for the projector, dropped with this value (`psql` makes and drops it).
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create(server: &str, seed: u64) -> anyhow::Result<Database> {
        let name = format!("chaos_{seed}_{}", std::process::id());
        anyhow::ensure!(
            server.starts_with("postgres://") || server.starts_with("postgresql://"),
            "--database-url {server:?}: expected postgres://user@host:port/database"
        );
        let url = testkit::pg::with_database(server, &name);
        let db = Database { server: server.to_owned(), name, url };
        db.psql(&format!("CREATE DATABASE {}", db.name))?;
        Ok(db)
    }

    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let mut cmd = std::process::Command::new("psql");
        cmd.args([self.server.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql]);
        let out = testkit::process::run_bounded(cmd, Duration::from_secs(60), false);
        anyhow::ensure!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        Ok(())
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = self.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            eprintln!("chaos: {e:#}");
        }
    }
}

async fn drive(opts: &Options, world: &mut World) -> anyhow::Result<Report> {
    let client = Client::with_timeout(&world.gateway_url(), workload::ATTEMPT_TIMEOUT)?.with_key(&world.admin_key);
    let rec = Recorder::new();
    wait_ready(&client, world.voters()).await?;
    workload::setup(&client, &rec, opts.accounts, READY_TIMEOUT).await.context("setup")?;
    let groups = opts.workloads.contains(&Workload::Groups);
    if groups {
        crate::groups::setup(&client, READY_TIMEOUT).await.context("setup")?;
    }

    let start = Instant::now();
    let start_ms = rec.now_ms();
    let stop = Stop { no_new: Arc::new(AtomicBool::new(false)), give_up: start + opts.duration + DRAIN };
    // Each kind of client on a host of its own (CLIENT_HOSTS), with a client of its own.
    let (url, key) = (world.gateway_url(), world.admin_key.clone());
    let mut tasks = Vec::new();
    let (writers, accounts, seed) = (opts.writers, opts.accounts, opts.seed);
    let (r, s) = (rec.clone(), stop.clone());
    tasks.push(clients(world, "c1", &url, &key, move |c| {
        (1..=writers).map(|w| boxed(workload::writer(c.clone(), r.clone(), w, accounts, seed, s.clone()))).collect()
    })?);
    let reads = opts.workloads.contains(&Workload::Reads);
    if reads {
        let (readers, r, s) = (opts.readers, rec.clone(), stop.clone());
        tasks.push(clients(world, "c2", &url, &key, move |c| {
            (0..readers)
                .map(|i| boxed(workload::reader(c.clone(), r.clone(), writers + 1 + i, accounts, seed, s.clone())))
                .collect()
        })?);
    }
    let consumers_done = Arc::new(AtomicBool::new(false));
    let mut consumers = Vec::new();
    if groups {
        let (base, members) = (opts.writers + opts.readers + 1, opts.members);
        let (r, s) = (rec.clone(), stop.clone());
        tasks.push(clients(world, "c3", &url, &key, move |c| {
            (0..members).map(|i| boxed(crate::groups::producer(c.clone(), r.clone(), base + i, s.clone()))).collect()
        })?);
        let (r, s, done) = (rec.clone(), stop.clone(), Arc::clone(&consumers_done));
        consumers.push(clients(world, "c4", &url, &key, move |c| {
            (0..members)
                .map(|i| {
                    let who = base + members + i;
                    boxed(crate::groups::consumer(c.clone(), r.clone(), who, seed, Arc::clone(&done), s.clone()))
                })
                .collect()
        })?);
    }

    let plan =
        schedule::plan_for(opts.seed, opts.duration, &opts.kinds, opts.timing, world.has_projector(), world.voters());
    let mut rng = fastrand::Rng::with_seed(opts.seed.rotate_left(17));
    let mut log = Vec::new();
    let mut skipped = 0u64;
    let mut fault_anomalies = Vec::new();
    for step in &plan {
        // A slow fault (a membership change waits up to 30 s per step) delays the next ones;
        // none starts past the schedule's end.
        if start.elapsed() + step.hold > opts.duration {
            skipped += 1;
            continue;
        }
        tokio::time::sleep_until((start + step.at).into()).await;
        eprintln!("[{:>7.1} s] {:?} for {:?}", rec.now_ms() as f64 / 1e3, step.fault, step.hold);
        match nemesis::inject(world, &client, &rec, step, &mut rng).await {
            Some((e, found)) => {
                log.push(e);
                fault_anomalies.extend(found);
            }
            None => skipped += 1,
        }
    }
    tokio::time::sleep_until((start + opts.duration).into()).await;
    stop.no_new.store(true, Ordering::Relaxed);
    world.heal();
    for t in tasks {
        join(t).await.context("clients")?;
    }
    let caught_up = !groups || crate::groups::wait_caught_up(&client, DRAIN).await;
    consumers_done.store(true, Ordering::Relaxed);
    for t in consumers {
        join(t).await.context("consumers")?;
    }
    eprintln!("[{:>7.1} s] clients done; reading the final state", rec.now_ms() as f64 / 1e3);

    let ops = rec.ops();
    let mut anomalies = fault_anomalies;
    let finals = match read_final(&client, opts.accounts, &ops).await {
        Ok(f) => f,
        Err(e) => {
            anomalies.push(Anomaly::new(
                "unavailable_after_heal",
                format!("every fault healed, yet the final state could not be read: {e:#}"),
                Vec::new(),
            ));
            BTreeMap::new()
        }
    };
    let read_at = rec.now_ms();
    let transfer_ops: Vec<Op> = ops.iter().filter(|o| o.transfer_id().is_some()).cloned().collect();
    let (counts, found) = if finals.is_empty() { Default::default() } else { transfers::check(&transfer_ops, &finals) };
    anomalies.extend(found);
    anomalies.extend(transfers::log_time_real(&transfer_ops, &finals, rec.epoch_ms()));
    if !finals.is_empty() {
        let ledger = copies(world, &client, crate::check::LEDGER_TOPIC, None).await;
        match ledger {
            Ok(c) => anomalies.extend(crate::check::groups::replicas(crate::check::LEDGER_TOPIC, &c)),
            Err(e) => anomalies.push(unavailable(e)),
        }
    }
    let mut group_counts = None;
    if groups {
        if !caught_up {
            eprintln!("the group's committed offsets did not reach the partitions' ends within {DRAIN:?}");
        }
        let delivered = rec.deliveries();
        let in_topic = match copies(world, &client, crate::groups::TOPIC, Some(crate::groups::PARTITIONS)).await {
            Ok(c) => {
                anomalies.extend(crate::check::groups::check(&ops, &c, &delivered));
                c.values().filter_map(|by_node| by_node.values().next()).map(|copy| copy.len() as u64).sum()
            }
            Err(e) => {
                anomalies.push(unavailable(e));
                0
            }
        };
        group_counts = Some(crate::report::Groups::of(&ops, in_topic, delivered.len() as u64, caught_up));
    }
    let projection = match world.verify_projection() {
        None => None,
        Some((true, _)) => Some("PostgreSQL equals the ledger (projector verify)".to_owned()),
        Some((false, said)) => {
            anomalies.push(Anomaly::new(
                "projection_differs",
                format!("projector verify found PostgreSQL and the ledger apart:\n{said}"),
                Vec::new(),
            ));
            Some("PostgreSQL differs from the ledger".to_owned())
        }
    };
    let linearizability = (reads && !finals.is_empty()).then(|| {
        let mut lin = check_reads(&ops, &finals, read_at, &mut anomalies);
        let (indexed, found) = crate::check::reads::check(&ops, &finals);
        lin.indexed = indexed;
        anomalies.extend(found);
        lin
    });

    let (attempts, _) = rec.attempts();
    let writes: Vec<_> = attempts.iter().filter(|a| a.write).copied().collect();
    let mut faults: BTreeMap<Kind, u64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    for e in &log {
        *faults.entry(e.kind).or_default() += 1;
    }
    Ok(Report {
        seed: opts.seed,
        duration_s: opts.duration.as_secs_f64(),
        nodes: world.voters(),
        nemesis: opts.kinds.clone(),
        workloads: opts.workloads.iter().map(|w| w.name().to_owned()).collect(),
        faults,
        faults_skipped: skipped,
        ops: Ops::of(&ops),
        anomalies,
        leader_recovery: Recovery::of(&log, &writes, crate::schedule::Fault::removes_leader),
        leader_isolation: Recovery::of(&log, &writes, |f| {
            matches!(f, crate::schedule::Fault::IsolateLeader | crate::schedule::Fault::SplitMinority)
        }),
        nemesis_log: log,
        availability: Availability::of(&attempts, (start_ms, start_ms + opts.duration.as_millis() as u64)),
        transfers: counts,
        linearizability,
        groups: group_counts,
        projection,
        dir: world.dir().display().to_string(),
    })
}

/// One client's work.
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn boxed(f: impl std::future::Future<Output = ()> + Send + 'static) -> Task {
    Box::pin(f)
}

/// Runs the tasks `make` gives on client host `host`: a thread in its namespace, with a runtime
/// and a gateway client of its own (so its connections are made from that host). Ends when every
/// task has; an error says which panicked.
fn clients(
    world: &World,
    host: &str,
    url: &str,
    key: &str,
    make: impl FnOnce(Client) -> Vec<Task> + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let (url, key, name) = (url.to_owned(), key.to_owned(), format!("clients-{host}"));
    crate::netns::spawn_in(&world.namespace(host), &name, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("runtime")?;
        rt.block_on(async move {
            let client = Client::with_timeout(&url, workload::ATTEMPT_TIMEOUT)?.with_key(&key);
            let handles: Vec<_> = make(client).into_iter().map(tokio::spawn).collect();
            for h in handles {
                h.await.context("a client panicked")?;
            }
            Ok(())
        })
    })
}

/// Waits for a client host's thread without holding up the runtime.
async fn join(t: std::thread::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match tokio::task::spawn_blocking(move || t.join()).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) | Err(_) => anyhow::bail!("a client host's thread panicked"),
    }
}

fn unavailable(e: anyhow::Error) -> Anomaly {
    Anomaly::new(
        "unavailable_after_heal",
        format!("every fault healed, yet a node's copy could not be read: {e:#}"),
        Vec::new(),
    )
}

/// Every node's copy of every partition of `topic` (`partitions`: its count, else asked), read
/// over gRPC from each node once it applied the highest index any node reports.
async fn copies(
    world: &World,
    client: &Client,
    topic: &str,
    partitions: Option<u32>,
) -> anyhow::Result<BTreeMap<u32, crate::check::groups::Copies>> {
    let cluster = client.cluster().await.context("cluster status")?;
    let min_index = cluster.nodes.iter().map(|n| n.last_applied).max().unwrap_or(0);
    let partitions = match partitions {
        Some(p) => p,
        None => {
            let topics = client.topics().await.context("topics")?;
            topics.iter().find(|t| t.name == topic).map(|t| t.partitions).context("no such topic")?
        }
    };
    let mut out: BTreeMap<u32, crate::check::groups::Copies> = BTreeMap::new();
    for (id, addr) in world.grpc_addrs() {
        for p in 0..partitions {
            let (t, a) = (topic.to_owned(), addr.clone());
            // The kit's read panics on an error other than a restart's: a node that cannot serve.
            let read = tokio::spawn(async move { testkit::grpc::read_all(&a, &t, p, min_index).await });
            let copy = read.await.map_err(|e| anyhow::anyhow!("reading {topic}/{p} from node {id}: {e}"))?;
            out.entry(p).or_default().insert(id, copy);
        }
    }
    Ok(out)
}

/// Waits until the gateway answers and names a leader with every voter alive.
async fn wait_ready(client: &Client, voters: u64) -> anyhow::Result<()> {
    let give_up = Instant::now() + READY_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < give_up {
        match tokio::time::timeout(workload::ATTEMPT_TIMEOUT, client.cluster()).await {
            Ok(Ok(c)) => {
                let live = c.nodes.iter().filter(|n| n.alive && n.role != "learner").count();
                if c.leader_id.is_some() && live as u64 >= voters {
                    return Ok(());
                }
                last = format!("{c:?}");
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!("the cluster was not ready within {READY_TIMEOUT:?}: {last}")
}

/// Every account's final balance and history.
async fn read_final(client: &Client, n: usize, ops: &[Op]) -> anyhow::Result<BTreeMap<String, FinalAccount>> {
    workload::wait_serving(client, BANK, FINAL_READ_TIMEOUT).await?;
    let give_up = Instant::now() + FINAL_READ_TIMEOUT;
    // A page holds at least one entry; an account has at most one per transfer sent.
    let pages_max = ops.len() + 2;
    let mut out = BTreeMap::new();
    let mut names = vec![BANK.to_owned()];
    names.extend(workload::accounts(n));
    for name in names {
        let (balance, history) =
            workload::read_final(client, &name, pages_max, give_up).await.with_context(|| format!("account {name}"))?;
        let protected = name != BANK;
        out.insert(name, FinalAccount { balance, protected, history });
    }
    Ok(out)
}

/// The strong reads of each account, with the transfers that touched it, checked for
/// linearizability. A transfer without a definite answer found applied must have taken effect
/// before the final read (`read_at`); one not applied is left out, as are refused ones.
fn check_reads(
    ops: &[Op],
    finals: &BTreeMap<String, FinalAccount>,
    read_at: u64,
    anomalies: &mut Vec<Anomaly>,
) -> Linearizability {
    let applied: std::collections::BTreeSet<&str> =
        finals.values().flat_map(|a| a.history.iter().map(|c| c.id.as_str())).collect();
    let mut per: BTreeMap<&str, Vec<Call>> = BTreeMap::new();
    let mut lin = Linearizability::default();
    for (i, op) in ops.iter().enumerate() {
        match (&op.what, op.outcome) {
            (What::Transfer { id, from, to, amount, .. }, Outcome::Ok | Outcome::Unknown) => {
                if !applied.contains(id.as_str()) {
                    continue;
                }
                let end = op.end_ms.or(Some(read_at));
                let amount = i64::try_from(*amount).unwrap_or(i64::MAX);
                per.entry(from).or_default().push(Call { start: op.start_ms, end, event: Event::Add(-amount), op: i });
                per.entry(to).or_default().push(Call { start: op.start_ms, end, event: Event::Add(amount), op: i });
            }
            (What::Read { account, min_index: None, balance: Some(b), .. }, Outcome::Ok) => {
                lin.reads += 1;
                per.entry(account).or_default().push(Call {
                    start: op.start_ms,
                    end: op.end_ms,
                    event: Event::Read(*b),
                    op: i,
                });
            }
            _ => {}
        }
    }
    for (account, calls) in &per {
        if account == &BANK {
            continue;
        }
        lin.accounts += 1;
        match linear::check(calls, 0, linear::STEPS_MAX) {
            Verdict::Linearizable => {}
            Verdict::Inconclusive => lin.inconclusive.push((*account).to_owned()),
            Verdict::Violation(slice) => anomalies.push(Anomaly::new(
                "not_linearizable",
                format!("account {account}: no order of its transfers explains its strong reads"),
                slice.iter().take(SLICE_MAX).map(|i| ops[*i].clone()).collect(),
            )),
        }
    }
    lin
}
