//! storebench: which embedded store should hold lognode's state (issue 20)?
//!
//! It runs Ledger's apply workload against each candidate, one process per engine (so that one
//! engine's memory never counts against another's):
//! - `--accounts` accounts are opened first (100,000 by default);
//! - then `--transfers` transfers in batches of `--batch` (one applied Raft entry of batched
//!   transfers). Each batch is one write transaction, not synced; every `--checkpoint-every`
//!   batches a durable checkpoint (the Raft log is the durability in between, as in lognode).
//!   Per transfer, in the transaction: the deduplication lookup of its client-chosen id (a miss),
//!   reads of both accounts, the transfer record (26-byte random id, 40-byte value), a history
//!   record per account (16-byte key, 32-byte post-balances), and both accounts written back
//!   (96 bytes each): 162 bytes of keys and values per transfer, before the engine's overhead;
//! - then random reads of existing transfers by id, and history pages (the newest 100 changes of
//!   a random account), from a read snapshot.
//!
//! It reports transfers/s per window of `--window` transfers (does the rate hold as the store
//! grows?), disk bytes per transfer (allocated blocks), RSS (anonymous and file-backed, and the
//! peak) and read latencies.
//!
//! ```text
//! cargo run --release --manifest-path storebench/Cargo.toml -- --transfers 5000000
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    Redb,
    Fjall,
    Lmdb,
}

#[derive(Debug, Parser)]
#[command(name = "storebench", about = "lognode state-store candidates on Ledger's apply workload")]
struct Args {
    /// Engines to run, each in its own process.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "redb,fjall,lmdb")]
    engines: Vec<Engine>,
    /// Transfers to apply.
    #[arg(long, default_value_t = 5_000_000)]
    transfers: u64,
    /// Accounts money moves between.
    #[arg(long, default_value_t = 100_000)]
    accounts: u32,
    /// Transfers per write transaction (one applied Raft entry).
    #[arg(long, default_value_t = 1_000)]
    batch: u64,
    /// Batches between durable checkpoints.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Cache given to the engine, in MiB (LMDB has none: it uses the OS page cache).
    #[arg(long, default_value_t = 256)]
    cache_mib: u64,
    /// Transfers per reported window.
    #[arg(long, default_value_t = 1_000_000)]
    window: u64,
    /// Random reads of transfers by id after the load (and a tenth as many history pages).
    #[arg(long, default_value_t = 200_000)]
    reads: u64,
    /// fjall: leave index and filter blocks to the cache instead of pinning them in memory (by
    /// default fjall pins the upper levels' index blocks and level 0's filters).
    #[arg(long)]
    fjall_unpinned: bool,
    /// fjall: memtable size per keyspace, in MiB (fjall's default: 64).
    #[arg(long, default_value_t = 64)]
    fjall_memtable_mib: u64,
    /// Directory for the stores (default: a temporary one under the current directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One transfer of the workload.
struct Transfer {
    id: Vec<u8>,
    debit: u32,
    credit: u32,
    amount: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Transfer `i`'s id: 26 bytes that sort randomly (client-chosen ids are random, like UUIDs).
fn transfer_id(i: u64) -> Vec<u8> {
    format!("{:016x}{i:010}", splitmix(i)).into_bytes()
}

fn transfer(i: u64, accounts: u32) -> Transfer {
    let h = splitmix(i);
    let debit = (h % u64::from(accounts)) as u32;
    let mut credit = ((h >> 32) % u64::from(accounts)) as u32;
    if credit == debit {
        credit = (credit + 1) % accounts;
    }
    Transfer { id: transfer_id(i), debit, credit, amount: 1 + (h >> 8) % 1000 }
}

/// An account's value: four u128 balances, created and updated index, currency (96 bytes).
#[derive(Clone, Copy, Default)]
struct Account {
    debits_posted: u128,
    credits_posted: u128,
    updated_index: u64,
}

const ACCOUNT_VALUE: usize = 96;
const HISTORY_VALUE: usize = 32;
/// A transfer's value: accounts, amount, created index and time, flags.
const TRANSFER_VALUE: usize = 40;

impl Account {
    fn encode(&self) -> [u8; ACCOUNT_VALUE] {
        let mut v = [0u8; ACCOUNT_VALUE];
        v[0..16].copy_from_slice(&self.debits_posted.to_le_bytes());
        v[16..32].copy_from_slice(&self.credits_posted.to_le_bytes());
        v[72..80].copy_from_slice(&self.updated_index.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Account {
        let u128_at = |at: usize| u128::from_le_bytes(v[at..at + 16].try_into().expect("16 bytes"));
        Account {
            debits_posted: u128_at(0),
            credits_posted: u128_at(16),
            updated_index: u64::from_le_bytes(v[72..80].try_into().expect("8 bytes")),
        }
    }

    /// The post-balances a history record keeps: the two posted sums (the pending ones only when
    /// not zero, which this workload never makes).
    fn balances(&self) -> [u8; HISTORY_VALUE] {
        let mut v = [0u8; HISTORY_VALUE];
        v[0..16].copy_from_slice(&self.debits_posted.to_le_bytes());
        v[16..32].copy_from_slice(&self.credits_posted.to_le_bytes());
        v
    }
}

fn account_key(a: u32) -> [u8; 4] {
    a.to_be_bytes()
}

/// History key: account, log index, position in the entry (big-endian: ordered by account, then
/// by index).
fn history_key(account: u32, index: u64, slot: u32) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[0..4].copy_from_slice(&account.to_be_bytes());
    k[4..12].copy_from_slice(&index.to_be_bytes());
    k[12..16].copy_from_slice(&slot.to_be_bytes());
    k
}

fn transfer_value(t: &Transfer, index: u64) -> [u8; TRANSFER_VALUE] {
    let mut v = [0u8; TRANSFER_VALUE];
    v[0..4].copy_from_slice(&t.debit.to_le_bytes());
    v[4..8].copy_from_slice(&t.credit.to_le_bytes());
    v[8..16].copy_from_slice(&t.amount.to_le_bytes());
    v[16..24].copy_from_slice(&index.to_le_bytes());
    v
}

/// The writes of one batch, computed against the accounts as the store has them: what every
/// engine writes in its transaction. `get_account` reads the committed (or in-transaction) value.
struct Writes {
    transfers: Vec<(Vec<u8>, [u8; TRANSFER_VALUE])>,
    history: Vec<([u8; 16], [u8; HISTORY_VALUE])>,
    accounts: Vec<([u8; 4], [u8; ACCOUNT_VALUE])>,
}

fn plan(
    index: u64,
    batch: &[Transfer],
    mut exists: impl FnMut(&[u8]) -> Result<bool>,
    mut get_account: impl FnMut(u32) -> Result<Account>,
) -> Result<Writes> {
    let mut touched: HashMap<u32, Account> = HashMap::with_capacity(batch.len() * 2);
    let mut w = Writes {
        transfers: Vec::with_capacity(batch.len()),
        history: Vec::with_capacity(batch.len() * 2),
        accounts: Vec::new(),
    };
    for (slot, t) in batch.iter().enumerate() {
        if exists(&t.id)? {
            bail!("transfer id {} is already there", String::from_utf8_lossy(&t.id));
        }
        for (account, debit) in [(t.debit, true), (t.credit, false)] {
            let a = match touched.get_mut(&account) {
                Some(a) => a,
                None => {
                    let a = get_account(account)?;
                    touched.entry(account).or_insert(a)
                }
            };
            if debit {
                a.debits_posted += u128::from(t.amount);
            } else {
                a.credits_posted += u128::from(t.amount);
            }
            a.updated_index = index;
            w.history.push((history_key(account, index, slot as u32), a.balances()));
        }
        w.transfers.push((t.id.clone(), transfer_value(t, index)));
    }
    w.accounts = touched.into_iter().map(|(k, a)| (account_key(k), a.encode())).collect();
    Ok(w)
}

/// What an engine must do.
trait Store {
    /// Opens every account, durably.
    fn open_accounts(&mut self, n: u32) -> Result<()>;
    /// Applies one batch as one write transaction, not synced.
    fn apply(&mut self, index: u64, batch: &[Transfer]) -> Result<()>;
    /// Makes everything applied so far durable.
    fn checkpoint(&mut self) -> Result<()>;
    /// Whether transfer `id` exists (from a read snapshot).
    fn has_transfer(&self, id: &[u8]) -> Result<bool>;
    /// Reads the newest `n` history records of `account`; how many there were.
    fn history_page(&self, account: u32, n: usize) -> Result<usize>;
}

// ---- redb --------------------------------------------------------------------------------------

mod redb_store {
    use redb::{Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};

    use super::*;

    const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
    const TRANSFERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("transfers");
    const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("history");

    pub struct RedbStore {
        db: redb::Database,
    }

    impl RedbStore {
        pub fn open(dir: &Path, cache_bytes: usize) -> Result<RedbStore> {
            let db = redb::Builder::new().set_cache_size(cache_bytes).create(dir.join("state.redb"))?;
            Ok(RedbStore { db })
        }
    }

    impl Store for RedbStore {
        fn open_accounts(&mut self, n: u32) -> Result<()> {
            let tx = self.db.begin_write()?;
            {
                let mut accounts = tx.open_table(ACCOUNTS)?;
                tx.open_table(TRANSFERS)?;
                tx.open_table(HISTORY)?;
                for a in 0..n {
                    accounts.insert(account_key(a).as_slice(), Account::default().encode().as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn apply(&mut self, index: u64, batch: &[Transfer]) -> Result<()> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(Durability::None)?;
            {
                let mut transfers = tx.open_table(TRANSFERS)?;
                let mut history = tx.open_table(HISTORY)?;
                let mut accounts = tx.open_table(ACCOUNTS)?;
                let w = plan(
                    index,
                    batch,
                    |id| Ok(transfers.get(id)?.is_some()),
                    |a| {
                        let v = accounts.get(account_key(a).as_slice())?.context("no such account")?;
                        Ok(Account::decode(v.value()))
                    },
                )?;
                for (k, v) in &w.transfers {
                    transfers.insert(k.as_slice(), v.as_slice())?;
                }
                for (k, v) in &w.history {
                    history.insert(k.as_slice(), v.as_slice())?;
                }
                for (k, v) in &w.accounts {
                    accounts.insert(k.as_slice(), v.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn checkpoint(&mut self) -> Result<()> {
            // An empty durable commit makes the non-durable ones before it durable.
            let mut tx = self.db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            tx.commit()?;
            Ok(())
        }

        fn has_transfer(&self, id: &[u8]) -> Result<bool> {
            let tx = self.db.begin_read()?;
            Ok(tx.open_table(TRANSFERS)?.get(id)?.is_some())
        }

        fn history_page(&self, account: u32, n: usize) -> Result<usize> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(HISTORY)?;
            let from = history_key(account, 0, 0);
            let to = history_key(account, u64::MAX, u32::MAX);
            let mut count = 0;
            for r in table.range(from.as_slice()..=to.as_slice())?.rev().take(n) {
                let (_, v) = r?;
                count += usize::from(!v.value().is_empty());
            }
            Ok(count)
        }
    }
}

// ---- fjall -------------------------------------------------------------------------------------

mod fjall_store {
    use fjall::config::PinningPolicy;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable as _};

    use super::*;

    pub struct FjallStore {
        db: Database,
        accounts: Keyspace,
        transfers: Keyspace,
        history: Keyspace,
    }

    impl FjallStore {
        pub fn open(dir: &Path, cache_bytes: u64, unpinned: bool, memtable_bytes: u64) -> Result<FjallStore> {
            let db = Database::builder(dir.join("state.fjall")).cache_size(cache_bytes).open()?;
            let options = move || {
                let o = KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes);
                if unpinned {
                    o.index_block_pinning_policy(PinningPolicy::all(false))
                        .filter_block_pinning_policy(PinningPolicy::all(false))
                } else {
                    o
                }
            };
            let accounts = db.keyspace("accounts", options)?;
            let transfers = db.keyspace("transfers", options)?;
            let history = db.keyspace("history", options)?;
            Ok(FjallStore { db, accounts, transfers, history })
        }
    }

    impl Store for FjallStore {
        fn open_accounts(&mut self, n: u32) -> Result<()> {
            let mut b = self.db.batch();
            for a in 0..n {
                b.insert(&self.accounts, account_key(a), Account::default().encode());
            }
            b.commit()?;
            self.db.persist(PersistMode::SyncAll)?;
            Ok(())
        }

        fn apply(&mut self, index: u64, batch: &[Transfer]) -> Result<()> {
            let w = plan(
                index,
                batch,
                |id| Ok(self.transfers.get(id)?.is_some()),
                |a| {
                    let v = self.accounts.get(account_key(a))?.context("no such account")?;
                    Ok(Account::decode(&v))
                },
            )?;
            let mut b = self.db.batch();
            for (k, v) in w.transfers {
                b.insert(&self.transfers, k, v);
            }
            for (k, v) in w.history {
                b.insert(&self.history, k, v);
            }
            for (k, v) in w.accounts {
                b.insert(&self.accounts, k, v);
            }
            b.commit()?;
            Ok(())
        }

        fn checkpoint(&mut self) -> Result<()> {
            self.db.persist(PersistMode::SyncAll)?;
            Ok(())
        }

        fn has_transfer(&self, id: &[u8]) -> Result<bool> {
            let snap = self.db.snapshot();
            Ok(snap.get(&self.transfers, id)?.is_some())
        }

        fn history_page(&self, account: u32, n: usize) -> Result<usize> {
            let snap = self.db.snapshot();
            let mut count = 0;
            for g in snap.prefix(&self.history, account.to_be_bytes()).rev().take(n) {
                let (_, v) = g.into_inner()?;
                count += usize::from(!v.is_empty());
            }
            Ok(count)
        }
    }
}

// ---- LMDB (heed) -------------------------------------------------------------------------------

mod lmdb_store {
    use heed::types::Bytes;
    use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions};

    use super::*;

    /// LMDB's map: the most the file may grow to (sparse; address space, not memory).
    const MAP_BYTES: usize = 256 << 30;

    type Db = Database<'static, Bytes, Bytes>;

    pub struct LmdbStore {
        /// Leaked: heed 0.23 ties each database handle to the env's lifetime.
        env: &'static Env,
        accounts: Db,
        transfers: Db,
        history: Db,
    }

    impl LmdbStore {
        pub fn open(dir: &Path) -> Result<LmdbStore> {
            let path = dir.join("state.lmdb");
            std::fs::create_dir_all(&path)?;
            let mut opts = EnvOpenOptions::new();
            opts.map_size(MAP_BYTES).max_dbs(4);
            // SAFETY: NO_SYNC (commits not synced until `force_sync`, as the other engines' commits
            // between checkpoints) is what the workload asks for; nothing else opens this env.
            let env: &'static Env = Box::leak(Box::new(unsafe {
                opts.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC | EnvFlags::NO_READ_AHEAD);
                opts.open(&path)?
            }));
            let tx = env.write_txn()?;
            let (accounts, transfers, history) = env
                .create_databases_and_commit(tx, |o, tx| {
                    let a: Db = o.create_database(tx, Some("accounts"))?;
                    let t: Db = o.create_database(tx, Some("transfers"))?;
                    let h: Db = o.create_database(tx, Some("history"))?;
                    Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((a, t, h)))
                })?
                .unwrap_commit();
            Ok(LmdbStore { env, accounts, transfers, history })
        }
    }

    impl Store for LmdbStore {
        fn open_accounts(&mut self, n: u32) -> Result<()> {
            let mut tx = self.env.write_txn()?;
            for a in 0..n {
                self.accounts.put(&mut tx, &account_key(a), &Account::default().encode())?;
            }
            tx.commit()?;
            self.env.force_sync()?;
            Ok(())
        }

        fn apply(&mut self, index: u64, batch: &[Transfer]) -> Result<()> {
            let mut tx = self.env.write_txn()?;
            let w = plan(
                index,
                batch,
                |id| Ok(self.transfers.get(&tx, id)?.is_some()),
                |a| {
                    let v = self.accounts.get(&tx, &account_key(a))?.context("no such account")?;
                    Ok(Account::decode(v))
                },
            )?;
            for (k, v) in &w.transfers {
                self.transfers.put(&mut tx, k, v)?;
            }
            for (k, v) in &w.history {
                self.history.put(&mut tx, k, v)?;
            }
            for (k, v) in &w.accounts {
                self.accounts.put(&mut tx, k, v)?;
            }
            tx.commit()?;
            Ok(())
        }

        fn checkpoint(&mut self) -> Result<()> {
            self.env.force_sync()?;
            Ok(())
        }

        fn has_transfer(&self, id: &[u8]) -> Result<bool> {
            let tx = self.env.read_txn()?;
            Ok(self.transfers.get(&tx, id)?.is_some())
        }

        fn history_page(&self, account: u32, n: usize) -> Result<usize> {
            let tx = self.env.read_txn()?;
            let mut count = 0;
            for r in self.history.rev_prefix_iter(&tx, &account.to_be_bytes())?.take(n) {
                let (_, v) = r?;
                count += usize::from(!v.is_empty());
            }
            Ok(count)
        }
    }
}

// ---- measuring ---------------------------------------------------------------------------------

/// Fields of /proc/self/status, in KiB.
fn proc_status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bytes of disk allocated under `dir` (blocks, not lengths: LMDB's file is sparse).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn micros(d: Duration, n: u64) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6 / n.max(1) as f64)
}

fn run_one(engine: Engine, args: &Args, dir: &Path) -> Result<()> {
    let cache = args.cache_mib << 20;
    let mut store: Box<dyn Store> = match engine {
        Engine::Redb => Box::new(redb_store::RedbStore::open(dir, usize::try_from(cache)?)?),
        Engine::Fjall => {
            Box::new(fjall_store::FjallStore::open(dir, cache, args.fjall_unpinned, args.fjall_memtable_mib << 20)?)
        }
        Engine::Lmdb => Box::new(lmdb_store::LmdbStore::open(dir)?),
    };
    println!("## {engine:?}: {} transfers, {} accounts, batches of {}", args.transfers, args.accounts, args.batch);
    store.open_accounts(args.accounts)?;
    let started = Instant::now();
    let mut window_start = Instant::now();
    let mut done = 0u64;
    let mut index = 1u64;
    let mut batches = 0u64;
    let mut rates = Vec::new();
    while done < args.transfers {
        let n = args.batch.min(args.transfers - done);
        let batch: Vec<Transfer> = (done..done + n).map(|i| transfer(i, args.accounts)).collect();
        store.apply(index, &batch)?;
        index += 1;
        batches += 1;
        done += n;
        if batches.is_multiple_of(args.checkpoint_every) {
            store.checkpoint()?;
        }
        if done.is_multiple_of(args.window) || done == args.transfers {
            let rate = args.window.min(done) as f64 / window_start.elapsed().as_secs_f64();
            rates.push(rate);
            println!(
                "  {done:>11} transfers: {rate:>9.0}/s in this window; RSS {} (anon {}, file {}); disk {:.1} B/transfer",
                mib(proc_status("VmRSS")),
                mib(proc_status("RssAnon")),
                mib(proc_status("RssFile")),
                disk_bytes(dir) as f64 / done as f64
            );
            window_start = Instant::now();
        }
    }
    store.checkpoint()?;
    let load = started.elapsed();

    let reads_started = Instant::now();
    for r in 0..args.reads {
        let i = splitmix(r ^ 0x5eed) % args.transfers;
        if !store.has_transfer(&transfer_id(i))? {
            bail!("transfer {i} is missing");
        }
    }
    let reads = reads_started.elapsed();
    let pages = (args.reads / 10).max(1);
    let pages_started = Instant::now();
    let mut records = 0;
    for p in 0..pages {
        records += store.history_page((splitmix(p) % u64::from(args.accounts)) as u32, 100)?;
    }
    let page_time = pages_started.elapsed();
    drop(store);
    println!(
        "  RESULT {engine:?}: load {:.1} s = {:.0} transfers/s (first window {:.0}/s, last {:.0}/s); \
         {:.1} disk B/transfer; peak RSS {}; get by id {}; history page of 100 {} ({} records)",
        load.as_secs_f64(),
        args.transfers as f64 / load.as_secs_f64(),
        rates.first().copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
        disk_bytes(dir) as f64 / args.transfers as f64,
        mib(proc_status("VmHWM")),
        micros(reads, args.reads),
        micros(page_time, pages),
        records,
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    if let [engine] = args.engines.as_slice() {
        let dir = tempfile::Builder::new().prefix("storebench-").tempdir_in(&base)?;
        return run_one(*engine, &args, dir.path());
    }
    // One process per engine: memory figures are each engine's own.
    let exe = std::env::current_exe()?;
    let forwarded: Vec<String> = std::env::args().skip(1).collect();
    for engine in &args.engines {
        let name = format!("{engine:?}").to_lowercase();
        let mut cmd = std::process::Command::new(&exe);
        let mut skip = false;
        for a in &forwarded {
            if skip {
                skip = false;
                continue;
            }
            if a == "--engines" {
                skip = true;
                continue;
            }
            if a.starts_with("--engines=") {
                continue;
            }
            cmd.arg(a);
        }
        let status = cmd.args(["--engines", &name]).status()?;
        if !status.success() {
            bail!("{name} failed: {status}");
        }
    }
    Ok(())
}
