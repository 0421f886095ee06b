//! Does the on-disk state store hold its rate as the ledger grows (issue 20)?
//!
//! Applies the load generator's `transfers-batch` workload straight to a ledger whose records are
//! in lognode's on-disk store (`DiskLedger`), in one process, without Raft, gRPC or the gateway:
//! 101 accounts (one source, 100 destinations), 32 writers each sending requests of 100
//! transfers with ids `lt<run>-w<writer>-<seq>-<k>`, as `loadtest` does (with `--ordered-ids`,
//! `lt<run>-<seq, 10 digits>-w<writer>-<k>`, ids that sort by time, as `loadtest --ids ordered`
//! makes them). The store is committed as the state machine commits it (every
//! `STATE_COMMIT_WRITES_MAX` writes or `STATE_COMMIT_INTERVAL`). Prints, per window of `--window` transfers: the rate, the process's
//! RSS and the store's disk bytes per transfer.
//!
//! ```text
//! cargo bench -p lognode --bench state_store -- --transfers 30000000 [--cache-mib 64] [--dir D] [--ordered-ids]
//! ```

// A benchmark reports on stdout; its numbers are casts of counts and times.
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ledger_core::{
    ApplyContext, Command, HistoryFrom, Ledger, LedgerMeta, Loader, NewAccount, NewTransfer, Outcome, ResultCode,
    for_each_record,
};
use lognode::limits::{STATE_COMMIT_INTERVAL, STATE_COMMIT_WRITES_MAX, STATE_LOAD_WRITES_MAX};
use lognode::store::ledger_db::DiskLedger;
use lognode::store::node_store::NodeStore;

/// lognode's allocator, so that the bench measures what the node runs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const WRITERS: u64 = 32;
const PER_REQUEST: u64 = 100;
const DESTINATIONS: u64 = 100;

struct Args {
    transfers: u64,
    window: u64,
    cache_mib: u64,
    dir: Option<PathBuf>,
    ordered_ids: bool,
}

fn parse() -> Args {
    let mut a = Args { transfers: 5_000_000, window: 1_000_000, cache_mib: 64, dir: None, ordered_ids: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> u64 {
            it.next().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match flag.as_str() {
            "--transfers" => a.transfers = num("--transfers"),
            "--window" => a.window = num("--window").max(1),
            "--cache-mib" => a.cache_mib = num("--cache-mib"),
            "--dir" => a.dir = Some(PathBuf::from(it.next().expect("--dir takes a path"))),
            "--ordered-ids" => a.ordered_ids = true,
            // cargo bench passes --bench; anything else is a mistake worth naming.
            "--bench" => {}
            other => panic!("state_store bench: unknown argument {other}"),
        }
    }
    a
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |kib| kib / 1024)
}

/// CPU time of the whole process (every thread: apply and the store's flushes and compactions),
/// in seconds, from /proc/self/stat (utime + stime, in clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// Times what reads the history costs once the ledger is loaded: pages of an account's
/// transfers from random versions, balances as of random log indexes, and a whole dump of the
/// committed records (what a snapshot sends), from a read snapshot of the store.
fn read_costs(ledger: &mut Ledger<NodeStore>, last_index: u64, dir: &Path) {
    const READS: u64 = 1_000;
    let NodeStore::Disk(d) = ledger.store_mut() else { unreachable!("the bench opened a disk store") };
    d.commit(b"bench head").expect("commit");
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m.max(1)
    };
    let started = Instant::now();
    let mut entries = 0usize;
    for _ in 0..READS {
        let id = account(next(DESTINATIONS + 1));
        let len = ledger.account(&id).expect("a bench account").version;
        let page = ledger.account_transfers(&id, HistoryFrom::AfterVersion(next(len)), 50).expect("a page");
        entries += page.entries.len();
    }
    let pages = started.elapsed();
    let started = Instant::now();
    for _ in 0..READS {
        let id = account(next(DESTINATIONS + 1));
        // Every account exists from index DESTINATIONS + 1 on.
        ledger.account_as_of(&id, DESTINATIONS + 1 + next(last_index - DESTINATIONS)).expect("a bench account");
    }
    let as_of = started.elapsed();
    let NodeStore::Disk(d) = ledger.store() else { unreachable!() };
    let view = d.view();
    let started = Instant::now();
    let mut records = 0u64;
    for_each_record(&view, |_| -> Result<(), ()> {
        records += 1;
        Ok(())
    })
    .expect("the dump");
    let dump = started.elapsed();
    // What a new node does with the dump: load it, checked, into an empty store.
    let (mut fresh, _) = DiskLedger::open(&dir.join("loaded"), 64 << 20).expect("open a second store");
    fresh.begin_load(STATE_LOAD_WRITES_MAX);
    let started = Instant::now();
    {
        let mut loader = Loader::new(&mut fresh, 1).expect("an empty store");
        for_each_record(&view, |r| loader.push(r)).expect("the dump loads");
        loader.finish().expect("the dump is whole");
    }
    fresh.commit(b"bench head").expect("commit");
    let load = started.elapsed();
    let load_rss = rss_mib();
    println!(
        "RESULT reads history_page_us={:.0} ({entries} entries in {READS} pages of 50) as_of_us={:.0} \
         dump_secs={:.1} ({records} records, {:.0}/s) load_secs={:.1} ({:.0} records/s, RSS after {load_rss} MiB)",
        pages.as_secs_f64() * 1e6 / READS as f64,
        as_of.as_secs_f64() * 1e6 / READS as f64,
        dump.as_secs_f64(),
        records as f64 / dump.as_secs_f64().max(f64::EPSILON),
        load.as_secs_f64(),
        records as f64 / load.as_secs_f64().max(f64::EPSILON)
    );
}

fn account(i: u64) -> String {
    if i == 0 { "lt1a2b3c-src".to_owned() } else { format!("lt1a2b3c-a{}", i - 1) }
}

fn main() {
    // As lognode's main does: no transparent huge pages (they made its RSS creep).
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        println!("warning: cannot turn transparent huge pages off: {e}");
    }
    let args = parse();
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir_in(".").expect("a temporary directory");
            tmp.path().to_path_buf()
        }
    };
    let (disk, _) = DiskLedger::open(&dir.join("state"), args.cache_mib << 20).expect("open the store");
    let mut ledger = Ledger::open(NodeStore::Disk(disk), LedgerMeta::default()).expect("an empty ledger");
    let mut index = 0u64;
    let mut next = || {
        index += 1;
        ApplyContext { index, timestamp_ms: 1_000_000 + index }
    };
    for i in 0..=DESTINATIONS {
        let cmd = Command::CreateAccount(NewAccount {
            credits_must_not_exceed_debits: false,
            id: account(i),
            currency: "USD".into(),
            allow_overdraft: i == 0,
            metadata: String::new(),
        });
        ledger.apply(&cmd, next());
    }
    println!(
        "state_store bench: {} transfers, cache {} MiB, store in {}",
        args.transfers,
        args.cache_mib,
        dir.display()
    );
    println!(
        "{:>12} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "transfers", "window/s", "CPU us/tr", "RSS MiB", "disk MB", "disk B/tr"
    );
    println!(
        "(per keyspace: memtables waiting for a flush / level-0 tables / tables, MB, pinned filter and index blocks MB)"
    );
    let (mut done, mut seq, mut window_start) = (0u64, vec![0u64; WRITERS as usize], Instant::now());
    let (mut window_cpu, cpu_start) = (cpu_secs(), cpu_secs());
    let mut last_commit = Instant::now();
    let (mut first_rate, mut last_rate) = (None, 0.0);
    let started = Instant::now();
    while done < args.transfers {
        let w = (done / PER_REQUEST) % WRITERS;
        let s = seq[w as usize];
        seq[w as usize] += 1;
        let transfers = (0..PER_REQUEST)
            .map(|k| NewTransfer {
                flags: Default::default(),
                id: if args.ordered_ids {
                    format!("lt1a2b3c-{s:010}-w{w}-{k}")
                } else {
                    format!("lt1a2b3c-w{w}-{s}-{k}")
                },
                debit_account_id: account(0),
                credit_account_id: account(1 + k % DESTINATIONS),
                amount: 1,
                currency: "USD".into(),
                metadata: String::new(),
                pending: false,
                timeout_ms: None,
            })
            .collect();
        let (outcome, events) = ledger.apply(&Command::CreateTransfers { transfers, atomic: false }, next());
        if let Outcome::Batch(b) = &outcome {
            assert_eq!(b.code, ResultCode::Created, "every transfer of the workload is created");
        }
        drop(events);
        done += PER_REQUEST;
        let NodeStore::Disk(d) = ledger.store() else { unreachable!("the bench opened a disk store") };
        if d.pending_writes() >= STATE_COMMIT_WRITES_MAX || last_commit.elapsed() >= STATE_COMMIT_INTERVAL {
            let NodeStore::Disk(d) = ledger.store_mut() else { unreachable!() };
            d.commit(b"bench head").expect("commit");
            last_commit = Instant::now();
        }
        if done.is_multiple_of(args.window) {
            let rate = args.window as f64 / window_start.elapsed().as_secs_f64();
            first_rate.get_or_insert(rate);
            last_rate = rate;
            let NodeStore::Disk(d) = ledger.store() else { unreachable!() };
            let bytes = d.disk_bytes();
            let cpu = cpu_secs();
            let cpu_us = (cpu - window_cpu) * 1e6 / args.window as f64;
            window_cpu = cpu;
            println!(
                "{done:>12} {rate:>12.0} {cpu_us:>10.2} {:>10} {:>10} {:>12.0}   {}",
                rss_mib(),
                bytes / 1_000_000,
                bytes as f64 / done as f64,
                d.shape()
            );
            window_start = Instant::now();
        }
    }
    let total = started.elapsed();
    let first = first_rate.unwrap_or(0.0);
    println!(
        "RESULT state_store transfers={done} secs={:.1} rate={:.0}/s cpu_us_per_transfer={:.2} first_window={first:.0}/s \
         last_window={last_rate:.0}/s last/first={:.2}",
        total.as_secs_f64(),
        done as f64 / total.as_secs_f64().max(f64::EPSILON),
        (cpu_secs() - cpu_start) * 1e6 / done.max(1) as f64,
        if first > 0.0 { last_rate / first } else { 0.0 }
    );
    read_costs(&mut ledger, index, &dir);
    // Let background flushes finish before the directory goes (the bench measures, never waits
    // unboundedly).
    std::thread::sleep(Duration::from_millis(100));
}
