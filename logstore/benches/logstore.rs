//! Criterion benches of the log store: append with and without fsync at 1 and 64 concurrent
//! appenders, sequential read, and reopen (recovery) of a large log.
//!
//! `cargo bench -p logstore --bench logstore`. Data goes under the target directory, so it sits on
//! the same disk as the build (not a tmpfs). `LOGSTORE_BENCH_REOPEN_MIB` sets the size of the log
//! used by the reopen bench (default 1024).

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use logstore::{FsyncMode, Log, LogConfig};

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

/// Appends from `appenders` concurrent tasks (as gRPC handlers would), each doing `per_task`
/// appends of one record, handing out indexes in queue order as the Raft layer does.
/// Returns the elapsed time.
fn concurrent_appends(log: &Log, next: &Arc<Mutex<u64>>, appenders: usize, per_task: u64, record: &[u8]) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..appenders {
            let log = log.clone();
            let next = Arc::clone(next);
            let record = record.to_vec();
            tasks.spawn(async move {
                for _ in 0..per_task {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    {
                        let mut n = next.lock().expect("lock");
                        log.append_then(
                            *n,
                            vec![record.clone()],
                            Box::new(move |r| {
                                let _ = tx.send(r);
                            }),
                        )
                        .expect("queued");
                        *n += 1;
                    }
                    rx.await.expect("callback").expect("durable");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
    });
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    for (fsync, label) in [(FsyncMode::Always, "fsync"), (FsyncMode::Never, "nofsync_UNSAFE")] {
        for size in [128usize, 1024] {
            if fsync == FsyncMode::Never && size == 1024 {
                continue;
            }
            for appenders in [1usize, 64] {
                let dir = bench_dir();
                let (log, _) = Log::open(dir.path(), LogConfig { fsync, ..LogConfig::default() }).expect("open");
                let next = Arc::new(Mutex::new(0u64));
                let record = vec![0x5Au8; size];
                group.throughput(Throughput::Elements(appenders as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("{label}/{size}B"), format!("{appenders}_appenders")),
                    &appenders,
                    |b, &appenders| {
                        b.iter_custom(|iters| concurrent_appends(&log, &next, appenders, iters, &record));
                    },
                );
            }
        }
    }
    group.finish();
}

fn fill(log: &Log, total_bytes: usize, record_size: usize) -> u64 {
    let record = vec![0xA5u8; record_size];
    let per_batch = 1024;
    let mut next = 0u64;
    while (next as usize) * record_size < total_bytes {
        log.append(next, vec![record.clone(); per_batch]).expect("append");
        next += per_batch as u64;
    }
    next
}

fn sequential_read(c: &mut Criterion) {
    let dir = bench_dir();
    let cfg = LogConfig { fsync: FsyncMode::Never, ..LogConfig::default() };
    let (log, _) = Log::open(dir.path(), cfg).expect("open");
    let records = fill(&log, 256 << 20, 1024);
    let mut group = c.benchmark_group("read");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(records * 1024));
    group.bench_function("sequential/1KiB_records/256MiB", |b| {
        b.iter(|| {
            let mut at = 0;
            while at < records {
                let chunk = log.read_range(at, records, 4 << 20).expect("read");
                at = chunk.last().expect("records").index + 1;
            }
        });
    });
    group.finish();
}

fn reopen(c: &mut Criterion) {
    let mib: usize = std::env::var("LOGSTORE_BENCH_REOPEN_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = bench_dir();
    let cfg = LogConfig { fsync: FsyncMode::Never, ..LogConfig::default() };
    {
        let (log, _) = Log::open(dir.path(), cfg.clone()).expect("open");
        fill(&log, mib << 20, 1024);
    }
    let mut group = c.benchmark_group("reopen");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function(format!("{mib}MiB_intact_index"), |b| {
        b.iter(|| {
            let (log, rec) = Log::open(dir.path(), cfg.clone()).expect("reopen");
            assert_eq!(rec.indexes_rebuilt, 0);
            drop(log);
        });
    });
    group.finish();
}

criterion_group!(benches, append, sequential_read, reopen);
criterion_main!(benches);
