//! `lognode-bench`: drives Produce (one record per call) and ProduceBatch against a running
//! cluster at several concurrencies and prints one line per run:
//! `RESULT <name> conc=<C> run=1 tput=<records/s> p50_ms=<x> p99_ms=<y> errors=<n>`.

use std::time::{Duration, Instant};

use clap::Parser;
use ledger_proto::LEADER_ADDR_METADATA;
use ledger_proto::ledger::ledger_client::LedgerClient;
use ledger_proto::ledger::{ClusterStatusRequest, CreateTopicRequest, ProduceBatchRequest, ProduceRequest, Record};
use tonic::transport::{Channel, Endpoint};

/// Most calls one run makes, whatever its duration.
const CALLS_MAX: usize = 10_000_000;
/// Deadline of one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Produce benchmark against a running lognode cluster.
#[derive(Debug, Parser)]
struct Args {
    /// gRPC address of any node (requests follow the not-leader redirect).
    #[arg(long)]
    addr: String,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Concurrencies (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    conc: Vec<usize>,
    /// Records per ProduceBatch call (0 = skip the batch runs).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Topic.
    #[arg(long, default_value = "bench")]
    topic: String,
}

fn connect(addr: &str) -> LedgerClient<Channel> {
    let ep = Endpoint::from_shared(format!("http://{addr}")).expect("valid address").timeout(CALL_TIMEOUT);
    LedgerClient::new(ep.connect_lazy())
}

/// Asks `addr` who the leader is.
async fn leader(addr: &str) -> String {
    let mut c = connect(addr);
    match c.cluster_status(ClusterStatusRequest { local_only: true }).await {
        Ok(s) if !s.get_ref().leader_addr.is_empty() => s.into_inner().leader_addr,
        _ => addr.to_string(),
    }
}

struct RunResult {
    latencies: Vec<Duration>,
    records: usize,
    errors: usize,
}

async fn run(addr: String, topic: String, conc: usize, batch: usize, value_bytes: usize, dur: Duration) -> RunResult {
    let end = Instant::now() + dur;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (addr, topic) = (addr.clone(), topic.clone());
        tasks.spawn(async move {
            let mut c = connect(&addr);
            let mut r = RunResult { latencies: Vec::new(), records: 0, errors: 0 };
            let value = vec![b'x'; value_bytes];
            for _ in 0..CALLS_MAX / conc.max(1) {
                if Instant::now() >= end {
                    break;
                }
                let t = Instant::now();
                let res = if batch == 0 {
                    let rec = Record { key: Vec::new(), value: value.clone(), headers: Vec::new() };
                    c.produce(ProduceRequest { topic: topic.clone(), partition: None, record: Some(rec) }).await
                } else {
                    let records = (0..batch)
                        .map(|_| Record { key: Vec::new(), value: value.clone(), headers: Vec::new() })
                        .collect();
                    c.produce_batch(ProduceBatchRequest { topic: topic.clone(), partition: None, records }).await
                };
                match res {
                    Ok(_) => {
                        r.latencies.push(t.elapsed());
                        r.records += batch.max(1);
                    }
                    Err(s) => {
                        r.errors += 1;
                        // Follow a leader change.
                        if let Some(l) = s.metadata().get(LEADER_ADDR_METADATA).and_then(|v| v.to_str().ok()) {
                            c = connect(l);
                        }
                    }
                }
            }
            r
        });
    }
    let mut all = RunResult { latencies: Vec::new(), records: 0, errors: 0 };
    while let Some(Ok(r)) = tasks.join_next().await {
        all.latencies.extend(r.latencies);
        all.records += r.records;
        all.errors += r.errors;
    }
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let addr = leader(&args.addr).await;
    // Created with 8 partitions if missing (clients cannot produce to the built-in `ledger` topic).
    let _ = connect(&addr).create_topic(CreateTopicRequest { name: args.topic.clone(), partitions: 8 }).await;
    let dur = Duration::from_secs(args.duration_secs);
    let mut kinds = vec![("produce".to_string(), 0usize)];
    if args.batch > 0 {
        kinds.push((format!("produce_batch{}", args.batch), args.batch));
    }
    for (name, batch) in kinds {
        for &conc in &args.conc {
            let started = Instant::now();
            let mut r = run(addr.clone(), args.topic.clone(), conc, batch, args.value_bytes, dur).await;
            let secs = started.elapsed().as_secs_f64();
            r.latencies.sort();
            #[allow(clippy::cast_precision_loss)]
            let tput = r.records as f64 / secs;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "RESULT {name} conc={conc} run=1 tput={tput:.0} p50_ms={:.2} p99_ms={:.2} errors={}",
                    pct(&r.latencies, 0.50),
                    pct(&r.latencies, 0.99),
                    r.errors
                );
            }
        }
    }
}
