//! A majority keeps serving: three lognodes, each in its own network namespace (needs root and
//! iproute2), the gateway (in this process) reaching every one of them, and eight writers posting
//! transfers through it, each retried with its id until acknowledged. Three faults in turn on one
//! cluster, each after a quiet stretch and healed after [`FAULT`]:
//! - the leader cut off from both followers: writes resume within [`RESUME_MAX`];
//! - a one-way cut, the followers unable to send to the leader (it still reaches them): the same;
//! - a follower cut off from both others, long enough to have raised its term over and over
//!   without pre-vote: no write gap over [`STEADY_GAP_MAX`], during the fault or after it heals,
//!   and the leader stays.
//!
//! Then safety: every acknowledged transfer is in its account's history (strong reads), none is
//! there twice, and the money sums to zero; and no strong read made by a writer right after an
//! acknowledgement (every [`READ_EVERY`]th) was stale, whichever node served it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::LedgerBackend;
use lognode_args::LognodeArgs;
use serde_json::{Value, json};
use testkit::bins::workspace_bin;
use testkit::cluster::LOGNODE_RUST_LOG;
use testkit::netns::Net;
use testkit::process::Proc;

use crate::support::{SERIAL, TestGateway, gateway_static, request, wait_for_voters};

/// Concurrent writers.
const WRITERS: usize = 8;
/// Writes before each fault.
const QUIET: Duration = Duration::from_secs(3);
/// How long each fault lasts.
const FAULT: Duration = Duration::from_secs(6);
/// Writes watched after each heal.
const AFTER: Duration = Duration::from_secs(4);
/// Longest write gap allowed while the leader is cut off (issue 22: within 2 s of the fault).
const RESUME_MAX: Duration = Duration::from_secs(2);
/// Longest write gap allowed when nothing should disturb the leader.
const STEADY_GAP_MAX: Duration = Duration::from_secs(1);
/// Deadline of one write attempt; then it is sent again with the same id.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after a failed attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// A writer reads its account (strongly) after every this many acknowledgements.
const READ_EVERY: usize = 4;
/// Deadline of one such read (short: a writer stuck reading would widen the write gaps measured).
const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest wait for the cluster to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

const GRPC_PORT: u16 = 7000;
const GOSSIP_PORT: u16 = 7001;

/// Three lognodes on hosts `n1`..`n3`; node `i` on host `n<i>`.
struct Nodes {
    // Dropped in this order: the processes, then their namespaces, then their data.
    _procs: Vec<Proc>,
    net: Net,
    _dir: tempfile::TempDir,
}

impl Nodes {
    fn start() -> Nodes {
        let net = Net::new(&["n1", "n2", "n3"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = workspace_bin("lognode");
        let seed = format!("{}:{GOSSIP_PORT}", net.host("n1").ip);
        let procs = (1..=3u64)
            .map(|id| {
                let host = format!("n{id}");
                let ip = &net.host(&host).ip;
                let args = LognodeArgs::new(
                    id,
                    dir.path().join(&host),
                    &format!("{ip}:{GRPC_PORT}"),
                    &format!("{ip}:{GOSSIP_PORT}"),
                );
                let args = if id == 1 { args.bootstrap() } else { args.join(&seed) };
                let log = dir.path().join(format!("{host}.log"));
                net.spawn(&host, &bin, &args.to_args(), &[("RUST_LOG", LOGNODE_RUST_LOG)], &log)
            })
            .collect();
        Nodes { net, _procs: procs, _dir: dir }
    }

    fn grpc_addrs(&self) -> Vec<String> {
        (1..=3).map(|i| format!("{}:{GRPC_PORT}", self.net.host(&format!("n{i}")).ip)).collect()
    }
}

/// The writers: every acknowledgement's time, and per writer the ids acknowledged and tried.
struct Load {
    acks: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<Writer>>,
}

impl Load {
    fn start(gw: &TestGateway) -> Load {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers =
            (0..WRITERS).map(|w| tokio::spawn(write(gw.addr, w, Arc::clone(&acks), Arc::clone(&stop)))).collect();
        Load { acks, stop, writers }
    }

    /// Acknowledgement times in `[from, to]`, in order.
    fn acks(&self, from: Instant, to: Instant) -> Vec<Instant> {
        let mut v: Vec<Instant> =
            self.acks.lock().expect("acks").iter().copied().filter(|t| *t >= from && *t <= to).collect();
        v.sort();
        v
    }

    async fn stop(self) -> Vec<Writer> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        for w in self.writers {
            out.push(w.await.expect("writer"));
        }
        out
    }
}

/// What one writer did.
struct Writer {
    /// Ids acknowledged, in order.
    acked: Vec<String>,
    /// Ids tried (`p-<w>-0` up to this).
    tried: u64,
    /// Strong reads of its account answered.
    reads: u64,
    /// Strong reads that missed an acknowledged transfer: (balance read, transfers acknowledged).
    stale: Vec<(i64, usize)>,
}

/// One writer: transfers of 1 from `src` to `dst-<w>`, each sent until acknowledged (or the load
/// stops), and after every [`READ_EVERY`]th acknowledgement a strong read of `dst-<w>`, which only
/// this writer credits: its balance must count every transfer acknowledged so far.
async fn write(addr: std::net::SocketAddr, w: usize, acks: Arc<Mutex<Vec<Instant>>>, stop: Arc<AtomicBool>) -> Writer {
    let mut acked = Vec::new();
    let mut tried = 0u64;
    let (mut reads, mut stale) = (0u64, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let id = format!("p-{w}-{tried}");
        tried += 1;
        let body = json!({"id": id, "debit_account_id": "src", "credit_account_id": format!("dst-{w}"),
                          "amount": 1, "currency": "USD"});
        while !stop.load(Ordering::Relaxed) {
            let sent = tokio::time::timeout(ATTEMPT_TIMEOUT, request(addr, "POST", "/v1/transfers", Some(&body))).await;
            if let Ok(r) = sent
                && (r.status == 200 || r.status == 201)
            {
                acks.lock().expect("acks").push(Instant::now());
                acked.push(id.clone());
                if acked.len().is_multiple_of(READ_EVERY) {
                    let path = format!("/v1/accounts/dst-{w}?consistency=strong");
                    // A read refused or timed out during a fault is unavailability, not staleness.
                    if let Ok(r) = tokio::time::timeout(READ_TIMEOUT, request(addr, "GET", &path, None)).await
                        && r.status == 200
                    {
                        reads += 1;
                        let balance = r.json()["balance"].as_i64().expect("balance");
                        if balance < i64::try_from(acked.len()).expect("count") {
                            stale.push((balance, acked.len()));
                        }
                    }
                }
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    Writer { acked, tried, reads, stale }
}

/// The longest stretch in `[from, to]` with no acknowledgement, and where it began.
fn longest_gap(acks: &[Instant], from: Instant, to: Instant) -> (Duration, Duration) {
    let mut points = vec![from];
    points.extend(acks.iter().copied().filter(|t| *t >= from && *t <= to));
    points.push(to);
    points.windows(2).map(|p| (p[1] - p[0], p[0] - from)).max().unwrap_or_default()
}

async fn leader(gw: &TestGateway) -> u64 {
    gw.backend.cluster_status().await.expect("cluster status").leader_id.expect("a leader")
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    LeaderIsolated,
    FollowersCannotSendToLeader,
    FollowerIsolated,
}

impl Fault {
    /// Applies the fault around `leader` (host names).
    fn apply(self, net: &Net, leader: &str, followers: [&str; 2]) {
        match self {
            Fault::LeaderIsolated => followers.iter().for_each(|f| net.isolate(leader, f)),
            Fault::FollowersCannotSendToLeader => followers.iter().for_each(|f| net.cut(f, leader)),
            Fault::FollowerIsolated => {
                net.isolate(followers[0], leader);
                net.isolate(followers[0], followers[1]);
            }
        }
    }
}

/// Figures of one fault.
#[derive(Debug)]
struct Figures {
    gap_during: Duration,
    gap_starts_after: Duration,
    gap_after_heal: Duration,
    quiet_per_s: usize,
    during_per_s: f64,
    leader_before: u64,
    leader_after: u64,
}

async fn run_fault(gw: &TestGateway, nodes: &Nodes, load: &Load, fault: Fault) -> Figures {
    tokio::time::sleep(QUIET).await;
    let leader_before = leader(gw).await;
    let l = format!("n{leader_before}");
    let others: Vec<String> = (1..=3).filter(|i| *i != leader_before).map(|i| format!("n{i}")).collect();
    let start = Instant::now();
    fault.apply(&nodes.net, &l, [&others[0], &others[1]]);
    tokio::time::sleep(FAULT).await;
    nodes.net.heal();
    let healed = Instant::now();
    tokio::time::sleep(AFTER).await;
    let acks = load.acks(start - Duration::from_secs(1), healed + AFTER);
    let (gap_during, gap_starts_after) = longest_gap(&acks, start, healed);
    let (gap_after_heal, _) = longest_gap(&acks, healed, healed + AFTER);
    let quiet_per_s = acks.iter().filter(|t| **t < start).count();
    let during = acks.iter().filter(|t| **t >= start && **t <= healed).count();
    let figures = Figures {
        gap_during,
        gap_starts_after,
        gap_after_heal,
        quiet_per_s,
        during_per_s: during as f64 / (healed - start).as_secs_f64(),
        leader_before,
        leader_after: leader(gw).await,
    };
    eprintln!(
        "{fault:?}: longest write gap {:?} (from {:?} after the fault began), after the heal {:?}; \
         {} writes/s in the quiet second before, {:.0}/s during; leader {} -> {}",
        figures.gap_during,
        figures.gap_starts_after,
        figures.gap_after_heal,
        figures.quiet_per_s,
        figures.during_per_s,
        figures.leader_before,
        figures.leader_after
    );
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_majority_keeps_serving_through_partitions_and_a_returning_node_disrupts_nothing() {
    let _serial = SERIAL.lock().await;
    let nodes = Nodes::start();
    let gw = gateway_static(nodes.grpc_addrs()).await;
    wait_for_voters(&gw.backend, 3, FORM_TIMEOUT).await;
    let created = |r: crate::support::Resp, what: &str| assert!(r.status == 201, "{what}: {} {}", r.status, r.text());
    created(gw.post("/v1/accounts", &json!({"id": "src", "currency": "USD", "allow_overdraft": true})).await, "src");
    for w in 0..WRITERS {
        created(gw.post("/v1/accounts", &json!({"id": format!("dst-{w}"), "currency": "USD"})).await, "dst");
    }

    let load = Load::start(&gw);
    let isolated = run_fault(&gw, &nodes, &load, Fault::LeaderIsolated).await;
    let one_way = run_fault(&gw, &nodes, &load, Fault::FollowersCannotSendToLeader).await;
    let follower = run_fault(&gw, &nodes, &load, Fault::FollowerIsolated).await;
    let writers = load.stop().await;

    // Every failed expectation is reported, not only the first.
    let mut failures = Vec::new();
    for (fault, f) in [("leader isolated", &isolated), ("one-way cut to the leader", &one_way)] {
        if f.gap_during > RESUME_MAX {
            failures.push(format!(
                "{fault}: no write acknowledged for {:?} (from {:?} after the fault began; at most {RESUME_MAX:?}): {f:?}",
                f.gap_during, f.gap_starts_after
            ));
        }
        if f.leader_after == f.leader_before {
            failures.push(format!("{fault}: the cut-off leader still leads: {f:?}"));
        }
    }
    if follower.gap_during > STEADY_GAP_MAX || follower.gap_after_heal > STEADY_GAP_MAX {
        failures.push(format!(
            "an isolated follower disturbed the writes (at most {STEADY_GAP_MAX:?} without one): {follower:?}"
        ));
    }
    if follower.leader_after != follower.leader_before {
        failures.push(format!("the returning follower deposed the leader: {follower:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    check_safety(&gw, &writers).await;
}

/// Every acknowledged transfer is there, each writer's account holds each transfer at most once
/// and only ones that were tried, and the money sums to zero.
async fn check_safety(gw: &TestGateway, writers: &[Writer]) {
    let balance = |v: &Value| v["balance"].as_i64().expect("balance");
    let mut sum = 0i64;
    let mut acked_total = 0;
    let reads: u64 = writers.iter().map(|wr| wr.reads).sum();
    for (w, wr) in writers.iter().enumerate() {
        assert!(
            wr.stale.is_empty(),
            "dst-{w}: stale strong reads (balance read, transfers acknowledged): {:?}",
            wr.stale
        );
    }
    assert!(reads > 0, "no strong read-after-write was answered at all");
    for (w, Writer { acked, tried, .. }) in writers.iter().enumerate() {
        let applied = history(gw, &format!("dst-{w}"), *tried).await;
        let unique: std::collections::BTreeSet<&String> = applied.iter().collect();
        assert_eq!(unique.len(), applied.len(), "dst-{w}: a transfer applied twice");
        for id in acked {
            assert!(unique.contains(id), "dst-{w}: acknowledged transfer {id} is missing");
        }
        let tried_ids: std::collections::BTreeSet<String> = (0..*tried).map(|n| format!("p-{w}-{n}")).collect();
        assert!(applied.iter().all(|id| tried_ids.contains(id)), "dst-{w}: a transfer nobody sent");
        let account = gw.get(&format!("/v1/accounts/dst-{w}?consistency=strong")).await.expect(200, "dst").json();
        assert_eq!(balance(&account), i64::try_from(applied.len()).expect("count"), "dst-{w}: {account}");
        sum += balance(&account);
        acked_total += acked.len();
    }
    assert!(acked_total > 0, "no transfer was acknowledged at all");
    let src = balance(&gw.get("/v1/accounts/src?consistency=strong").await.expect(200, "src").json());
    assert_eq!(src + sum, 0, "money created or destroyed: src {src}, the others {sum}");
    eprintln!(
        "safety: {acked_total} acknowledged transfers all applied once; balances sum to zero; {reads} strong \
         reads after writes, none stale"
    );
}

/// The ids of the transfers in `account`'s history (strong reads, page by page; at most enough
/// pages for `tried` transfers).
async fn history(gw: &TestGateway, account: &str, tried: u64) -> Vec<String> {
    let page = gateway::limits::HISTORY_PAGE_MAX;
    let pages_max = tried / page as u64 + 2;
    let mut ids = Vec::new();
    let mut after = String::new();
    for _ in 0..pages_max {
        let path = format!("/v1/accounts/{account}/transfers?limit={page}&consistency=strong{after}");
        let p = gw.get(&path).await.expect(200, "history").json();
        let entries = p["entries"].as_array().expect("entries");
        ids.extend(entries.iter().map(|e| e["transfer_id"].as_str().expect("transfer_id").to_owned()));
        match p["next"].as_u64() {
            Some(next) if !entries.is_empty() => after = format!("&after={next}"),
            _ => return ids,
        }
    }
    panic!("{account}: history longer than {pages_max} pages of {page}");
}
