//! The scenarios (the same as the k6 scripts'): their setup, one worker's step, and the money
//! each worker expects to have moved (for the final check).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Deserialize;

use crate::http::{Conn, HttpError, Response};
use crate::limits::{
    ACCOUNTS_PER_RUN, BATCH_TRANSFERS, CONSUME_MAX_RECORDS, CONSUME_SESSION_TIMEOUT_MS, CONSUME_TOPIC, CONSUME_WAIT_MS,
    JOIN_RETRY_PAUSE, SETUP_ATTEMPTS_MAX, SETUP_RETRY_PAUSE, WALLET_FUNDING, WALLET_READ_PERCENT,
    WALLET_TRANSFER_AMOUNT_MAX,
};
use crate::stats::{Op, Outcome, Recorder};

/// Currency of every account a run creates.
pub const CURRENCY: &str = "USD";

/// A load scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Single transfers from one overdraft account to 100 accounts, 1 unit each.
    Transfers,
    /// Batches of 100 transfers (`POST /v1/transfers/batch`, not atomic).
    TransfersBatch,
    /// 100 funded wallets: 80 % balance reads, 20 % transfers between random wallets.
    Wallet,
    /// Consumer-group members on the `ledger` topic: join, transfer, fetch, commit, heartbeat,
    /// leave.
    Consume,
}

/// How the transfer ids a worker makes sort among everyone's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum IdOrder {
    /// `<run>-w<worker>-<seq>`: every worker's ids in a range of their own, the sequence not
    /// padded, so new ids land all over the key space (as random client ids do).
    #[default]
    Scattered,
    /// `<run>-<seq, 12 digits>-w<worker>`: ids sort by when they were made, as ULIDs and UUIDv7
    /// do (what TigerBeetle recommends): the ledger's deduplication index then only appends.
    Ordered,
}

impl IdOrder {
    /// The id of worker `worker`'s `seq`th request in run `run`.
    pub fn id(self, run: &str, worker: usize, seq: u64) -> String {
        match self {
            IdOrder::Scattered => format!("{run}-w{worker}-{seq}"),
            IdOrder::Ordered => format!("{run}-{seq:012}-w{worker}"),
        }
    }
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Transfers => "transfers",
            Scenario::TransfersBatch => "transfers-batch",
            Scenario::Wallet => "wallet",
            Scenario::Consume => "consume",
        }
    }
}

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The gateway has no consumer-group routes.
    #[error(
        "the gateway has no consumer-group routes: POST /v1/groups/{{group}}/members answered 404 `not_found` \
         (the consume scenario needs the consumer-group API, issue 6)"
    )]
    NoGroupRoutes,
    /// A setup request kept failing.
    #[error("setup request {what} failed after {attempts} attempts: {last}")]
    Failed {
        /// What was being set up.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last answer or error.
        last: String,
    },
}

/// What a run works on: its unique prefix and its accounts.
#[derive(Debug)]
pub struct Plan {
    /// The scenario.
    pub scenario: Scenario,
    /// Unique prefix of every id this run creates.
    pub run: String,
    /// Account ids: `[0]` is the overdraft source, `[1..]` the destinations or wallets.
    pub accounts: Vec<String>,
    /// Consume scenario: the group.
    pub group: String,
    /// Wallet scenario: the log index of the funding, set by [`setup`]; reads pass it as
    /// `min_index` (read your writes: a follower that has not applied the funding yet waits for
    /// it instead of answering 404). 0 before the setup.
    pub funded_index: std::sync::atomic::AtomicU64,
    /// How transfer ids sort.
    pub ids: IdOrder,
    /// API key sent with every request (`--key`; none for a gateway in `--auth none`).
    pub key: Option<std::sync::Arc<str>>,
    /// TLS for an `https://` gateway (`--ca-cert`).
    pub tls: Option<crate::http::Tls>,
}

impl Plan {
    /// A plan with a fresh run id.
    pub fn new(scenario: Scenario, run: String) -> Plan {
        let mut accounts = vec![format!("{run}-src")];
        accounts.extend((0..ACCOUNTS_PER_RUN).map(|i| format!("{run}-a{i}")));
        let group = format!("{run}-group");
        Plan {
            scenario,
            run,
            accounts,
            group,
            funded_index: std::sync::atomic::AtomicU64::new(0),
            ids: IdOrder::default(),
            key: None,
            tls: None,
        }
    }
}

/// A run id unique enough for one gateway: time and process id.
pub fn fresh_run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("lt{:x}{:x}", (nanos as u64) & 0xffff_ffff_ffff, std::process::id())
}

/// `POST`s `body` to `path` until it answers 2xx, retrying 5xx and transport failures with the
/// same body (same ids: idempotent) at most `SETUP_ATTEMPTS_MAX` times.
pub async fn setup_post(conn: &mut Conn, what: &str, path: &str, body: &str) -> Result<Response, SetupError> {
    let mut last = String::new();
    for attempt in 1..=SETUP_ATTEMPTS_MAX {
        match conn.post(path, body.to_owned()).await {
            Ok(r) if r.ok() => return Ok(r),
            Ok(r) if r.status < 500 => {
                return Err(SetupError::Failed {
                    what: what.to_owned(),
                    attempts: attempt,
                    last: format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
                });
            }
            Ok(r) => last = format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(SETUP_RETRY_PAUSE).await;
    }
    Err(SetupError::Failed { what: what.to_owned(), attempts: SETUP_ATTEMPTS_MAX, last })
}

/// Creates the run's accounts (and funds the wallets); returns the money moved so far per
/// account index.
pub async fn setup(conn: &mut Conn, plan: &Plan) -> Result<Vec<i128>, SetupError> {
    let mut expected = vec![0i128; plan.accounts.len()];
    for (i, id) in plan.accounts.iter().enumerate() {
        let body = format!(r#"{{"id":"{id}","currency":"{CURRENCY}","allow_overdraft":{}}}"#, i == 0);
        setup_post(conn, &format!("create account {id}"), "/v1/accounts", &body).await?;
    }
    if plan.scenario == Scenario::Wallet {
        let items: Vec<String> = (1..plan.accounts.len())
            .map(|i| {
                transfer_json(&format!("{}-fund{i}", plan.run), &plan.accounts[0], &plan.accounts[i], WALLET_FUNDING)
            })
            .collect();
        let body = format!(r#"{{"transfers":[{}],"atomic":true}}"#, items.join(","));
        let r = setup_post(conn, "fund the wallets", "/v1/transfers/batch", &body).await?;
        let parsed: BatchBody = serde_json::from_slice(&r.body).map_err(|e| SetupError::Failed {
            what: "fund the wallets".into(),
            attempts: 1,
            last: format!("unreadable batch answer: {e}"),
        })?;
        if let Some(bad) = parsed.results.iter().find(|x| x.result == "failed") {
            return Err(SetupError::Failed {
                what: "fund the wallets".into(),
                attempts: 1,
                last: format!("item {} failed: {:?}", bad.id, bad.code),
            });
        }
        plan.funded_index.store(parsed.index, std::sync::atomic::Ordering::Relaxed);
        for e in expected.iter_mut().skip(1) {
            *e += i128::from(WALLET_FUNDING);
        }
        expected[0] -= i128::from(WALLET_FUNDING) * (plan.accounts.len() as i128 - 1);
    }
    if plan.scenario == Scenario::Consume {
        // Probe the group routes once (and leave at once), so a gateway without them gives one
        // clear message instead of a run full of 404s.
        let path = format!("/v1/groups/{}/members", plan.group);
        match conn.post(&path, join_body()).await {
            Ok(r) if r.status == 404 && r.error_code() == "not_found" => return Err(SetupError::NoGroupRoutes),
            Ok(r) if r.ok() => {
                if let Ok(j) = serde_json::from_slice::<JoinBody>(&r.body) {
                    let _ = conn.send(Method::DELETE, &format!("{path}/{}", j.member_id), None).await;
                }
            }
            Ok(r) => {
                return Err(SetupError::Failed {
                    what: "join the group".into(),
                    attempts: 1,
                    last: format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
                });
            }
            Err(e) => {
                return Err(SetupError::Failed { what: "join the group".into(), attempts: 1, last: e.to_string() });
            }
        }
    }
    Ok(expected)
}

/// One transfer's JSON.
fn transfer_json(id: &str, debit: &str, credit: &str, amount: u64) -> String {
    format!(
        r#"{{"id":"{id}","debit_account_id":"{debit}","credit_account_id":"{credit}","amount":{amount},"currency":"{CURRENCY}"}}"#
    )
}

fn join_body() -> String {
    format!(
        r#"{{"topics":["{CONSUME_TOPIC}"],"session_timeout_ms":{CONSUME_SESSION_TIMEOUT_MS},"auto_offset_reset":"latest"}}"#
    )
}

#[derive(Deserialize)]
struct BatchItemBody {
    id: String,
    result: String,
    code: Option<String>,
}

#[derive(Deserialize)]
struct BatchBody {
    results: Vec<BatchItemBody>,
    /// Log index of the batch's entry.
    #[serde(default)]
    index: u64,
}

#[derive(Deserialize)]
struct Assignment {
    topic: String,
    partition: u32,
}

#[derive(Deserialize)]
struct JoinBody {
    member_id: String,
    generation: u64,
    #[serde(default)]
    assignments: Vec<Assignment>,
    heartbeat_interval_ms: Option<u64>,
}

#[derive(Deserialize)]
struct HeartbeatBody {
    generation: u64,
    #[serde(default)]
    assignments: Vec<Assignment>,
}

fn owned(assignments: Vec<Assignment>) -> BTreeSet<(String, u32)> {
    assignments.into_iter().map(|a| (a.topic, a.partition)).collect()
}

#[derive(Deserialize)]
struct FetchedRecord {
    topic: String,
    partition: u32,
    offset: u64,
}

#[derive(Deserialize)]
struct FetchBody {
    generation: u64,
    records: Vec<FetchedRecord>,
}

/// A consume-scenario worker's group membership.
struct Member {
    /// Its id in the group.
    id: String,
    /// The generation it last learned.
    generation: u64,
    /// Partitions it owns, as of its last join or heartbeat.
    owned: BTreeSet<(String, u32)>,
    /// Heartbeat period the gateway asked for.
    heartbeat_every: Duration,
    /// When it last heartbeated (or joined).
    last_heartbeat: Instant,
    /// Next offset to commit per (topic, partition), for what it consumed since the last commit.
    to_commit: BTreeMap<(String, u32), u64>,
}

/// One worker: a connection, a sequence of unique ids, and the money it moved.
pub struct Worker {
    /// Worker number (part of its ids).
    idx: usize,
    /// Its own keep-alive connection.
    conn: Conn,
    /// The run.
    plan: Arc<Plan>,
    /// Next sequence number for ids.
    seq: u64,
    /// xorshift state for the wallet scenario's choices (deterministic per worker).
    rng: u64,
    /// Money moved per account index by the transfers this worker saw succeed.
    pub expected: Vec<i128>,
    /// Consume scenario: the membership, once joined.
    member: Option<Member>,
}

/// What a request to judge returned.
type Answer = Result<Response, HttpError>;

fn write_outcome(answer: &Answer, transfers: u64) -> Outcome {
    match answer {
        Ok(r) if r.ok() => Outcome { transfers, ..Outcome::default() },
        // A 5xx to a write may or may not have been applied (e.g. a timeout); 4xx were not.
        Ok(r) => Outcome {
            error: Some(r.error_code()),
            transfers_unknown: if r.status >= 500 { transfers } else { 0 },
            ..Outcome::default()
        },
        Err(e) => Outcome { error: Some(e.code().to_owned()), transfers_unknown: transfers, ..Outcome::default() },
    }
}

fn read_outcome(answer: &Answer) -> Outcome {
    match answer {
        Ok(r) if r.ok() => Outcome::default(),
        Ok(r) => Outcome { error: Some(r.error_code()), ..Outcome::default() },
        Err(e) => Outcome { error: Some(e.code().to_owned()), ..Outcome::default() },
    }
}

impl Worker {
    /// Worker `idx` of the run, talking to `addr`.
    pub fn new(idx: usize, addr: std::net::SocketAddr, plan: Arc<Plan>) -> Worker {
        let n = plan.accounts.len();
        Worker {
            idx,
            conn: Conn::new(addr, plan.key.clone(), plan.tls.clone()),
            plan,
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (idx as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            expected: vec![0; n],
            member: None,
        }
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        self.plan.ids.id(&self.plan.run, self.idx, self.seq)
    }

    /// One iteration of the scenario. The first request's latency counts from `intended` when
    /// given (open loop: the time it should have started, so queueing delay is not hidden).
    pub async fn step(&mut self, rec: &Mutex<Recorder>, intended: Option<Instant>) {
        match self.plan.scenario {
            Scenario::Transfers => self.single_transfer(rec, intended).await,
            Scenario::TransfersBatch => self.batch(rec, intended).await,
            Scenario::Wallet => self.wallet(rec, intended).await,
            Scenario::Consume => self.consume(rec, intended).await,
        }
    }

    async fn timed(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        intended: Option<Instant>,
    ) -> (Answer, Duration, Instant) {
        let start = intended.unwrap_or_else(Instant::now);
        let answer = self.conn.send(method, path, body).await;
        let done = Instant::now();
        (answer, done.saturating_duration_since(start), done)
    }

    fn record(rec: &Mutex<Recorder>, op: Op, latency: Duration, done: Instant, outcome: Outcome) {
        // A poisoned lock means a worker panicked; its numbers are lost, the rest still count.
        let mut r = rec.lock().unwrap_or_else(|p| p.into_inner());
        r.record(op, latency, done, outcome);
    }

    /// Posts one transfer `debit → credit` (account indexes) and records it.
    async fn transfer(
        &mut self,
        rec: &Mutex<Recorder>,
        debit: usize,
        credit: usize,
        amount: u64,
        intended: Option<Instant>,
    ) {
        let id = self.next_id();
        let body = transfer_json(&id, &self.plan.accounts[debit], &self.plan.accounts[credit], amount);
        let (answer, latency, done) = self.timed(Method::POST, "/v1/transfers", Some(body), intended).await;
        let outcome = write_outcome(&answer, 1);
        if outcome.error.is_none() {
            self.expected[debit] -= i128::from(amount);
            self.expected[credit] += i128::from(amount);
        }
        Self::record(rec, Op::Transfer, latency, done, outcome);
    }

    async fn single_transfer(&mut self, rec: &Mutex<Recorder>, intended: Option<Instant>) {
        let dst = 1 + (self.seq as usize * 7 + self.idx) % (self.plan.accounts.len() - 1);
        self.transfer(rec, 0, dst, 1, intended).await;
    }

    async fn batch(&mut self, rec: &Mutex<Recorder>, intended: Option<Instant>) {
        let base = self.next_id();
        let dsts = self.plan.accounts.len() - 1;
        let items: Vec<String> = (0..BATCH_TRANSFERS)
            .map(|k| {
                transfer_json(&format!("{base}-{k}"), &self.plan.accounts[0], &self.plan.accounts[1 + k % dsts], 1)
            })
            .collect();
        let body = format!(r#"{{"transfers":[{}],"atomic":false}}"#, items.join(","));
        let (answer, latency, done) = self.timed(Method::POST, "/v1/transfers/batch", Some(body), intended).await;
        let mut outcome = write_outcome(&answer, BATCH_TRANSFERS as u64);
        if let (None, Ok(r)) = (&outcome.error, &answer) {
            match serde_json::from_slice::<BatchBody>(&r.body) {
                Ok(b) if b.results.len() == BATCH_TRANSFERS => {
                    outcome.transfers = 0;
                    for (k, item) in b.results.into_iter().enumerate() {
                        if item.result == "created" || item.result == "exists" {
                            outcome.transfers += 1;
                            self.expected[0] -= 1;
                            self.expected[1 + k % dsts] += 1;
                        } else {
                            outcome.item_errors.push(item.code.unwrap_or_else(|| item.result.clone()));
                        }
                    }
                }
                // A 200 we cannot read: the transfers may all have been applied.
                _ => {
                    outcome = Outcome {
                        error: Some("unreadable_batch_answer".into()),
                        transfers_unknown: BATCH_TRANSFERS as u64,
                        ..Outcome::default()
                    };
                }
            }
        }
        Self::record(rec, Op::Batch, latency, done, outcome);
    }

    async fn wallet(&mut self, rec: &Mutex<Recorder>, intended: Option<Instant>) {
        let wallets = self.plan.accounts.len() - 1;
        let roll = self.next_rand() % 100;
        let a = 1 + (self.next_rand() as usize) % wallets;
        if roll < WALLET_READ_PERCENT {
            let funded = self.plan.funded_index.load(std::sync::atomic::Ordering::Relaxed);
            let path = format!("/v1/accounts/{}?min_index={funded}", self.plan.accounts[a]);
            let (answer, latency, done) = self.timed(Method::GET, &path, None, intended).await;
            Self::record(rec, Op::Read, latency, done, read_outcome(&answer));
        } else {
            let b = 1 + (a + (self.next_rand() as usize) % (wallets - 1)) % wallets;
            let amount = 1 + self.next_rand() % WALLET_TRANSFER_AMOUNT_MAX;
            self.transfer(rec, a, b, amount, intended).await;
        }
    }

    async fn consume(&mut self, rec: &Mutex<Recorder>, mut intended: Option<Instant>) {
        let group = self.plan.group.clone();
        if self.member.is_none() {
            let path = format!("/v1/groups/{group}/members");
            let (answer, latency, done) = self.timed(Method::POST, &path, Some(join_body()), intended.take()).await;
            let mut outcome = read_outcome(&answer);
            if let (None, Ok(r)) = (&outcome.error, &answer) {
                match serde_json::from_slice::<JoinBody>(&r.body) {
                    Ok(j) => {
                        let every = j.heartbeat_interval_ms.unwrap_or(CONSUME_SESSION_TIMEOUT_MS / 3);
                        self.member = Some(Member {
                            id: j.member_id,
                            generation: j.generation,
                            owned: owned(j.assignments),
                            heartbeat_every: Duration::from_millis(every),
                            last_heartbeat: Instant::now(),
                            to_commit: BTreeMap::new(),
                        });
                    }
                    Err(_) => outcome.error = Some("unreadable_join_answer".into()),
                }
            }
            let failed = outcome.error.is_some();
            Self::record(rec, Op::Join, latency, done, outcome);
            if failed {
                tokio::time::sleep(JOIN_RETRY_PAUSE).await;
                return;
            }
        }
        // Move money, so ledger events flow to the group.
        let dst = 1 + (self.seq as usize * 7 + self.idx) % (self.plan.accounts.len() - 1);
        self.transfer(rec, 0, dst, 1, intended.take()).await;
        self.fetch(rec, &group).await;
        self.commit(rec, &group).await;
        let due = self.member.as_ref().is_some_and(|m| m.last_heartbeat.elapsed() >= m.heartbeat_every);
        if due {
            self.heartbeat(rec, &group).await;
        }
    }

    async fn fetch(&mut self, rec: &Mutex<Recorder>, group: &str) {
        let Some(member) = self.member.as_ref() else { return };
        let path = format!(
            "/v1/groups/{group}/members/{}/records?max_records={CONSUME_MAX_RECORDS}&wait_ms={CONSUME_WAIT_MS}",
            member.id
        );
        let (answer, latency, done) = self.timed(Method::GET, &path, None, None).await;
        let mut outcome = read_outcome(&answer);
        let mut stale = false;
        match (&outcome.error, &answer) {
            (None, Ok(r)) => match serde_json::from_slice::<FetchBody>(&r.body) {
                Ok(f) => {
                    outcome.records = f.records.len() as u64;
                    if let Some(m) = self.member.as_mut() {
                        stale = f.generation != m.generation;
                        for x in f.records {
                            let next = m.to_commit.entry((x.topic, x.partition)).or_insert(0);
                            *next = (*next).max(x.offset + 1);
                        }
                    }
                }
                Err(_) => outcome.error = Some("unreadable_fetch_answer".into()),
            },
            (Some(code), _) if code == "unknown_member" => self.member = None,
            _ => {}
        }
        Self::record(rec, Op::Fetch, latency, done, outcome);
        if stale {
            self.heartbeat(rec, group).await;
        }
    }

    async fn commit(&mut self, rec: &Mutex<Recorder>, group: &str) {
        let Some(member) = self.member.as_mut() else { return };
        if member.to_commit.is_empty() {
            return;
        }
        let offsets: Vec<String> = std::mem::take(&mut member.to_commit)
            .into_iter()
            .map(|((topic, partition), offset)| {
                format!(r#"{{"topic":"{topic}","partition":{partition},"offset":{offset}}}"#)
            })
            .collect();
        let body = format!(r#"{{"generation":{},"offsets":[{}]}}"#, member.generation, offsets.join(","));
        let path = format!("/v1/groups/{group}/members/{}/offsets", member.id);
        let (answer, latency, done) = self.timed(Method::POST, &path, Some(body), None).await;
        let mut outcome = read_outcome(&answer);
        // 409 (`stale_generation`, `not_owner`): fenced by a rebalance this member has not heard
        // of yet. That is the protocol working, not a failure: counted apart, then the member
        // learns the new generation.
        let fenced = matches!(&answer, Ok(r) if r.status == 409);
        if fenced {
            outcome.error = None;
            outcome.fenced = 1;
        }
        let code = outcome.error.clone();
        Self::record(rec, Op::Commit, latency, done, outcome);
        if fenced {
            self.heartbeat(rec, group).await;
        } else if code.as_deref() == Some("unknown_member") {
            self.member = None;
        }
    }

    async fn heartbeat(&mut self, rec: &Mutex<Recorder>, group: &str) {
        let Some(member) = self.member.as_ref() else { return };
        let path = format!("/v1/groups/{group}/members/{}/heartbeat", member.id);
        let (answer, latency, done) = self.timed(Method::POST, &path, None, None).await;
        let mut outcome = read_outcome(&answer);
        match (&outcome.error, &answer) {
            (None, Ok(r)) => match serde_json::from_slice::<HeartbeatBody>(&r.body) {
                Ok(h) => {
                    if let Some(m) = self.member.as_mut() {
                        m.generation = h.generation;
                        m.owned = owned(h.assignments);
                        m.last_heartbeat = Instant::now();
                        // Partitions that moved are committed by their new owner (from the last
                        // committed offset: at least once); ours would be fenced.
                        let keep = m.owned.clone();
                        m.to_commit.retain(|k, _| keep.contains(k));
                    }
                }
                Err(_) => outcome.error = Some("unreadable_heartbeat_answer".into()),
            },
            (Some(code), _) if code == "unknown_member" => self.member = None,
            _ => {}
        }
        Self::record(rec, Op::Heartbeat, latency, done, outcome);
    }

    /// End of the run: a consume-scenario member leaves its group.
    pub async fn finish(&mut self, rec: &Mutex<Recorder>) {
        if let Some(m) = self.member.take() {
            let path = format!("/v1/groups/{}/members/{}", self.plan.group, m.id);
            let (answer, latency, done) = self.timed(Method::DELETE, &path, None, None).await;
            Self::record(rec, Op::Leave, latency, done, read_outcome(&answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdOrder;

    /// Ordered ids sort by sequence whatever the worker (what keeps the ledger's deduplication
    /// index appending); scattered ones do not; both are unique per worker and sequence.
    #[test]
    fn ordered_ids_sort_by_sequence_and_scattered_ones_do_not() {
        let made = |order: IdOrder| -> Vec<String> {
            (1..=120u64).flat_map(|seq| (0..12usize).map(move |w| order.id("ltabc", w, seq))).collect()
        };
        let ordered = made(IdOrder::Ordered);
        let mut sorted = ordered.clone();
        sorted.sort();
        let seqs = |ids: &[String]| -> Vec<u64> {
            ids.iter().map(|id| id.split('-').nth(1).and_then(|s| s.parse().ok()).expect("a sequence")).collect()
        };
        assert_eq!(seqs(&sorted), seqs(&ordered), "ordered ids sort by sequence");
        let scattered = made(IdOrder::Scattered);
        let mut sorted = scattered.clone();
        sorted.sort();
        assert_ne!(sorted, scattered, "scattered ids are not in the order they were made");
        for ids in [ordered, scattered] {
            let unique: std::collections::BTreeSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "ids are unique");
        }
    }
}
