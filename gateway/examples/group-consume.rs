//! `group-consume`: the consumer-group benchmark client (issue 6).
//!
//! Fills a topic with `--n` records through the gateway (`--fill`, 1000 records per produce
//! request), then one group member fetches them all through the gateway with `--max-records`
//! per fetch, committing after every fetch or every `--commit-every-ms` (a commit overlaps the
//! next fetch), and prints
//! `RESULT group-consume conc=1 run=1 tput=<records/s> p50_ms=<fetch> p99_ms=<fetch> errors=0`.
//! Run it with `gateway/bench/group-consume.sh`, which starts the cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Deadline of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Records per produce request while filling.
const FILL_BATCH: usize = 1000;
/// Most fetches, whatever `--n` (bounds the loop).
const FETCHES_MAX: usize = 10_000_000;
/// Fetches in a row that may return nothing before the run gives up.
const EMPTY_FETCHES_MAX: usize = 50;

/// Consumer-group benchmark client.
#[derive(Debug, Parser)]
struct Args {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway: SocketAddr,
    /// Topic (created with 8 partitions when `--fill` is given).
    #[arg(long, default_value = "bench-consume")]
    topic: String,
    /// Records to consume.
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    /// Produce the records first.
    #[arg(long)]
    fill: bool,
    /// `max_records` of each fetch.
    #[arg(long, default_value_t = 1000)]
    max_records: u32,
    /// Consumer group id.
    #[arg(long, default_value = "bench")]
    group: String,
    /// Commit at most this often (like Kafka's `auto.commit.interval.ms`); 0 = after every fetch.
    #[arg(long, default_value_t = 0)]
    commit_every_ms: u64,
}

/// The part of a fetch answer the consumer needs (the values are skipped, not built).
#[derive(serde::Deserialize)]
struct FetchBody {
    generation: u64,
    records: Vec<FetchedRecord>,
}

#[derive(serde::Deserialize)]
struct FetchedRecord {
    topic: String,
    partition: u32,
    offset: u64,
}

/// One HTTP/1.1 connection, reused for every request.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender })
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Bytes)> {
        // Writes carry the JSON content type even without a body (the gateway refuses them otherwise).
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json");
        let bytes = match body {
            Some(v) => serde_json::to_vec(v)?,
            None => Vec::new(),
        };
        let req = req.body(Full::new(Bytes::from(bytes)))?;
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut).await?
    }

    async fn expect(&mut self, method: &str, path: &str, body: Option<&Value>, want: u16) -> anyhow::Result<Bytes> {
        let (status, bytes) = self.call(method, path, body).await?;
        anyhow::ensure!(status == want, "{method} {path}: {status} {}", String::from_utf8_lossy(&bytes));
        Ok(bytes)
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[allow(clippy::print_stdout)] // the RESULT line is the output
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut c = Conn::open(args.gateway).await?;
    if args.fill {
        let (status, body) = c.call("POST", "/v1/topics", Some(&json!({"name": args.topic, "partitions": 8}))).await?;
        anyhow::ensure!(status == 201 || status == 200, "create topic: {status} {}", String::from_utf8_lossy(&body));
        let start = Instant::now();
        let mut done = 0;
        while done < args.n {
            let k = FILL_BATCH.min(args.n - done);
            let records: Vec<Value> = (done..done + k)
                .map(|i| json!({"value": {"id": format!("t{i}"), "amount": 1000 + i, "currency": "USD", "pad": "x".repeat(40)}}))
                .collect();
            c.expect("POST", &format!("/v1/topics/{}/records", args.topic), Some(&json!({"records": records})), 200)
                .await?;
            done += k;
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!("filled {done} records in {secs:.1} s ({:.0}/s)", done as f64 / secs);
    }

    let join = json!({"topics": [args.topic], "auto_offset_reset": "earliest", "session_timeout_ms": 60000});
    let v: Value = serde_json::from_slice(
        &c.expect("POST", &format!("/v1/groups/{}/members", args.group), Some(&join), 201).await?,
    )?;
    let member = v["member_id"].as_str().unwrap_or_default().to_owned();
    let fetch_path =
        format!("/v1/groups/{}/members/{member}/records?max_records={}&wait_ms=1000", args.group, args.max_records);
    let commit_path = format!("/v1/groups/{}/members/{member}/offsets", args.group);
    let mut commit_conn = Some(Conn::open(args.gateway).await?);
    let mut committing: Option<tokio::task::JoinHandle<anyhow::Result<Option<Conn>>>> = None;
    let mut latencies = Vec::new();
    let mut next: BTreeMap<(String, u32), u64> = BTreeMap::new();
    let mut last_commit = Instant::now();
    let mut commits = 0usize;
    let mut got = 0usize;
    let mut empty = 0usize;
    let start = Instant::now();
    for _ in 0..FETCHES_MAX {
        if got >= args.n {
            break;
        }
        let t = Instant::now();
        let body = c.expect("GET", &fetch_path, None, 200).await?;
        latencies.push(t.elapsed());
        let v: FetchBody = serde_json::from_slice(&body)?;
        let generation = v.generation;
        if v.records.is_empty() {
            empty += 1;
            anyhow::ensure!(empty < EMPTY_FETCHES_MAX, "{EMPTY_FETCHES_MAX} empty fetches in a row at {got} records");
            continue;
        }
        empty = 0;
        got += v.records.len();
        for r in v.records {
            next.insert((r.topic, r.partition), r.offset + 1);
        }
        if got < args.n && last_commit.elapsed() < Duration::from_millis(args.commit_every_ms) {
            continue;
        }
        last_commit = Instant::now();
        commits += 1;
        let offsets: Vec<Value> =
            next.iter().map(|((t, p), o)| json!({"topic": t, "partition": p, "offset": o})).collect();
        let body = json!({"generation": generation, "offsets": offsets});
        // The commit of this batch runs on its own connection while the next fetch goes out
        // (at most one in flight): offsets are committed one batch behind, still at least once.
        if let Some(prev) = committing.take() {
            commit_conn = prev.await??;
        }
        let mut conn = commit_conn.take().ok_or_else(|| anyhow::anyhow!("no commit connection"))?;
        let path = commit_path.clone();
        committing = Some(tokio::spawn(async move {
            conn.expect("POST", &path, Some(&body), 204).await?;
            Ok::<_, anyhow::Error>(Some(conn))
        }));
    }
    if let Some(prev) = committing.take() {
        prev.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "RESULT {} conc=1 run=1 tput={:.0} p50_ms={:.2} p99_ms={:.2} errors=0",
        if args.commit_every_ms == 0 {
            "group-consume/commit-each-fetch".to_owned()
        } else {
            format!("group-consume/commit-every-{}ms", args.commit_every_ms)
        },
        got as f64 / secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    eprintln!("consumed {got} records in {secs:.2} s with {} fetches and {commits} commits", latencies.len());
    let _ = c.call("DELETE", &format!("/v1/groups/{}/members/{member}", args.group), None).await;
    Ok(())
}
