//! Durability plumbing: an append completes only after its data was synced, a failed sync
//! stops the log, and concurrent appenders share syncs; with `SyncPolicy::OnRequest`, appends are
//! synced when asked, at a rollover, past `DEFERRED_SYNC_BYTES_MAX` and on close.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use logstore::{DEFERRED_SYNC_BYTES_MAX, Error, Log, LogConfig, SyncPolicy, Syncer};

/// A syncer that records every call and can be told to fail or to be slow.
#[derive(Debug, Default)]
struct Recording {
    events: Mutex<Vec<&'static str>>,
    data_syncs: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    delay_ms: u64,
}

impl Syncer for Recording {
    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        if self.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.delay_ms));
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        file.sync_data()?;
        self.data_syncs.fetch_add(1, Ordering::SeqCst);
        self.events.lock().expect("lock").push("sync_data");
        Ok(())
    }
    fn sync_dir(&self, dir: &File) -> std::io::Result<()> {
        dir.sync_all()?;
        self.events.lock().expect("lock").push("sync_dir");
        Ok(())
    }
}

fn open_with(syncer: Arc<Recording>) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig { syncer: Some(syncer), ..LogConfig::default() };
    let (log, _) = Log::open(dir.path(), cfg).expect("open");
    (dir, log)
}

#[test]
fn the_append_callback_runs_only_after_the_data_sync() {
    let syncer = Arc::new(Recording::default());
    let (_dir, log) = open_with(Arc::clone(&syncer));
    for i in 0..20u64 {
        let (tx, rx) = mpsc::channel();
        let s = Arc::clone(&syncer);
        let before = syncer.data_syncs.load(Ordering::SeqCst);
        log.append_then(
            i,
            vec![b"money".to_vec()],
            Box::new(move |r| {
                s.events.lock().expect("lock").push("done");
                tx.send((r.is_ok(), s.data_syncs.load(Ordering::SeqCst))).expect("send");
            }),
        )
        .expect("queued");
        let (ok, syncs_at_done) = rx.recv_timeout(Duration::from_secs(10)).expect("callback ran");
        assert!(ok);
        assert!(syncs_at_done > before, "append {i} was acknowledged before any sync");
    }
    let events = syncer.events.lock().expect("lock");
    // The first append creates a segment: its directory entry is synced too, before the ack.
    assert_eq!(&events[..3], &["sync_data", "sync_dir", "done"]);
    for pair in events.windows(2).skip(2) {
        if pair[1] == "done" {
            assert_eq!(pair[0], "sync_data", "every ack directly follows a sync: {events:?}");
        }
    }
}

#[test]
fn the_blocking_append_returns_after_the_sync() {
    let syncer = Arc::new(Recording::default());
    let (_dir, log) = open_with(Arc::clone(&syncer));
    log.append(0, vec![b"a".to_vec()]).expect("append");
    assert_eq!(syncer.data_syncs.load(Ordering::SeqCst), 1);
    assert_eq!(log.durable_index(), Some(0));
}

#[test]
fn a_failed_sync_fails_the_append_and_every_later_write() {
    let syncer = Arc::new(Recording::default());
    let (_dir, log) = open_with(Arc::clone(&syncer));
    log.append(0, vec![b"a".to_vec()]).expect("append");
    syncer.fail.store(true, Ordering::SeqCst);
    let err = log.append(1, vec![b"b".to_vec()]).expect_err("sync failed");
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert_eq!(log.durable_index(), Some(0), "the failed record never became durable");
    // Retrying after a failed fsync would acknowledge data the kernel may have dropped.
    syncer.fail.store(false, Ordering::SeqCst);
    let err = log.append(1, vec![b"b".to_vec()]).expect_err("the log stays failed");
    assert!(matches!(err, Error::Failed(_)), "{err}");
    assert!(matches!(log.truncate_from(0), Err(Error::Failed(_))));
}

#[test]
fn concurrent_appenders_share_syncs() {
    let syncer = Arc::new(Recording { delay_ms: 2, ..Recording::default() });
    let (_dir, log) = open_with(Arc::clone(&syncer));
    let next = Arc::new(Mutex::new(0u64));
    let threads = 16;
    let per_thread = 20;
    std::thread::scope(|s| {
        for _ in 0..threads {
            let log = log.clone();
            let next = Arc::clone(&next);
            s.spawn(move || {
                for _ in 0..per_thread {
                    // Indexes must be contiguous, so hand them out in queue order.
                    let (tx, rx) = mpsc::channel();
                    {
                        let mut n = next.lock().expect("lock");
                        log.append_then(*n, vec![vec![1u8; 128]], Box::new(move |r| tx.send(r).expect("send")))
                            .expect("queued");
                        *n += 1;
                    }
                    rx.recv_timeout(Duration::from_secs(30)).expect("callback").expect("durable");
                }
            });
        }
    });
    let appends = threads * per_thread;
    let syncs = syncer.data_syncs.load(Ordering::SeqCst);
    assert_eq!(log.last_index(), Some(appends as u64 - 1));
    assert!(syncs * 4 < appends, "{syncs} syncs for {appends} appends: no group commit");
}

#[test]
fn meta_is_synced_but_volatile_meta_is_not() {
    let syncer = Arc::new(Recording::default());
    let (_dir, log) = open_with(Arc::clone(&syncer));
    let count = || syncer.events.lock().expect("lock").len();
    let before = count();
    log.save_meta("vote", b"v1").expect("save");
    assert_eq!(count(), before + 2, "save_meta syncs the file and the directory");
    log.save_meta_volatile("committed", b"c1").expect("save");
    log.save_meta_volatile("committed", b"c2").expect("save again");
    assert_eq!(count(), before + 2, "save_meta_volatile never syncs");
    assert_eq!(log.load_meta("committed").expect("load").as_deref(), Some(&b"c2"[..]));
    assert_eq!(log.load_meta("vote").expect("load").as_deref(), Some(&b"v1"[..]));
    assert!(log.save_meta_volatile("bad/name", b"x").is_err(), "same naming rules");
}

fn open_on_request(dir: &std::path::Path, syncer: Arc<Recording>, segment_size: u64) -> Log {
    let cfg = LogConfig { syncer: Some(syncer), sync: SyncPolicy::OnRequest, segment_size, ..LogConfig::default() };
    Log::open(dir, cfg).expect("open").0
}

/// A new `OnRequest` log in a temporary directory, with the syncer that counts its syncs.
fn new_on_request(segment_size: u64) -> (tempfile::TempDir, Arc<Recording>, Log) {
    let dir = tempfile::tempdir().expect("tempdir");
    let syncer = Arc::new(Recording::default());
    let log = open_on_request(dir.path(), Arc::clone(&syncer), segment_size);
    (dir, syncer, log)
}

/// Appends `n` records of `len` bytes at `first..`, each waiting for its callback.
fn append_each(log: &Log, first: u64, n: u64, len: usize) {
    for i in first..first + n {
        log.append(i, vec![vec![7u8; len]]).expect("append");
    }
}

#[test]
fn on_request_appends_are_readable_at_once_and_durable_only_after_a_sync() {
    let (_dir, syncer, log) = new_on_request(logstore::SEGMENT_SIZE_DEFAULT);
    // The first append creates the first segment: that is synced at once (file and directory).
    append_each(&log, 0, 1, 100);
    let after_first = syncer.data_syncs.load(Ordering::SeqCst);
    assert_eq!(after_first, 1, "{:?}", syncer.events.lock().expect("lock"));
    assert_eq!(log.durable_index(), Some(0));
    append_each(&log, 1, 50, 100);
    assert_eq!(syncer.data_syncs.load(Ordering::SeqCst), after_first, "no sync before one is asked for");
    assert_eq!(log.durable_index(), Some(0), "nothing more is durable yet");
    assert_eq!(log.read(50).expect("read").map(|r| r.len()), Some(100), "written records read back at once");
    log.sync().expect("sync");
    assert_eq!(syncer.data_syncs.load(Ordering::SeqCst), after_first + 1, "one sync for all 50");
    assert_eq!(log.durable_index(), Some(50));
    log.sync().expect("nothing to sync");
    assert_eq!(syncer.data_syncs.load(Ordering::SeqCst), after_first + 1, "an empty sync syncs nothing");
}

#[test]
fn on_request_syncs_on_its_own_past_the_byte_limit_and_at_a_rollover() {
    let (_dir, syncer, log) = new_on_request(logstore::SEGMENT_SIZE_DEFAULT);
    let len = 64 * 1024;
    let n = (DEFERRED_SYNC_BYTES_MAX / len) as u64;
    // The first record is synced with its new segment; the limit counts from there.
    append_each(&log, 0, 1, len);
    let base = syncer.data_syncs.load(Ordering::SeqCst);
    append_each(&log, 1, n - 1, len);
    assert_eq!(syncer.data_syncs.load(Ordering::SeqCst), base, "below the limit: no sync");
    assert_eq!(log.durable_index(), Some(0));
    append_each(&log, n, 1, len);
    assert_eq!(syncer.data_syncs.load(Ordering::SeqCst), base + 1, "the limit reached: one sync");
    assert_eq!(log.durable_index(), Some(n));
    drop(log);

    // Small segments: every rollover syncs what the old segment got, so a torn tail can only
    // be in the last one.
    let (_dir, syncer, log) = new_on_request(1000);
    append_each(&log, 0, 30, 100);
    let syncs = syncer.data_syncs.load(Ordering::SeqCst);
    assert!(syncs >= 3, "30 records of 100 bytes fill 3 segments of 1000 bytes: {syncs} syncs");
    let durable = log.durable_index().expect("some records are durable");
    assert!(durable >= 20, "every record before the last rollover is durable: {durable}");
}

#[test]
fn on_request_syncs_on_close_and_a_reopen_finds_everything() {
    let (dir, syncer, log) = new_on_request(logstore::SEGMENT_SIZE_DEFAULT);
    append_each(&log, 0, 20, 100);
    let before = syncer.data_syncs.load(Ordering::SeqCst);
    drop(log);
    assert_eq!(syncer.data_syncs.load(Ordering::SeqCst), before + 1, "the close synced the tail");
    let log = open_on_request(dir.path(), Arc::new(Recording::default()), logstore::SEGMENT_SIZE_DEFAULT);
    assert_eq!((log.last_index(), log.durable_index()), (Some(19), Some(19)));
}

#[test]
fn a_failed_requested_sync_fails_the_log() {
    let (_dir, syncer, log) = new_on_request(logstore::SEGMENT_SIZE_DEFAULT);
    append_each(&log, 0, 5, 100);
    syncer.fail.store(true, Ordering::SeqCst);
    let err = log.sync().expect_err("the sync failed");
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert_eq!(log.durable_index(), Some(0), "only the first record (synced with its segment) is durable");
    syncer.fail.store(false, Ordering::SeqCst);
    assert!(matches!(log.append(5, vec![b"x".to_vec()]), Err(Error::Failed(_))), "the log stays failed");
    assert!(matches!(log.sync(), Err(Error::Failed(_))));
}
