// tidy: long-file: the writer thread (group commit), the readers, truncation and purge share one lock and ordering protocol over the segments; kept together so it is reviewed whole.
//! The log: segments, the writer thread with group commit, reads, truncation and purge.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Instant;

use crate::config::{
    APPEND_QUEUE_MAX, BATCH_BYTES_MAX, BATCH_RECORDS_MAX, DEFERRED_SYNC_BYTES_MAX, GROUP_COMMIT_BYTES_MAX,
    GROUP_COMMIT_REQUESTS_MAX, GROUP_COMMIT_WAIT, LogConfig, READ_BYTES_MAX, RECORD_SIZE_MAX, SEGMENT_SIZE_MAX,
    SEGMENT_SIZE_MIN, SyncPolicy,
};
use crate::durable::{self, SharedSyncer};
use crate::error::{Error, Result};
use crate::frame::{self, HEADER_LEN};
use crate::segment::{self, Offsets, Segment};

const LOCK_FILE: &str = "LOCK";
const PURGED_FILE: &str = "purged.state";
const META_SUFFIX: &str = ".meta";
/// Longest name accepted by [`Log::save_meta`].
pub const META_NAME_MAX: usize = 64;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its log index.
    pub index: u64,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// What [`Log::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments in the log after opening.
    pub segments: usize,
    /// Bytes of a torn tail (an incomplete or checksum-failing last write) cut from the last segment.
    pub torn_bytes_dropped: u64,
    /// Sealed segments whose missing or damaged index file was rebuilt from the data file.
    pub indexes_rebuilt: usize,
    /// Segments deleted because an earlier `purge_upto` had covered them before a crash.
    pub purged_segments_removed: usize,
    /// First index held, if any.
    pub first_index: Option<u64>,
    /// Last index held, if any.
    pub last_index: Option<u64>,
}

/// Called from the writer thread once an append is durable (or failed).
pub type AppendCallback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

enum Cmd {
    Append { first_index: u64, records: Vec<Vec<u8>>, bytes: usize, done: AppendCallback },
    TruncateFrom { index: u64, done: mpsc::SyncSender<Result<()>> },
    PurgeUpto { index: u64, done: mpsc::SyncSender<Result<()>> },
    Sync { done: mpsc::SyncSender<Result<()>> },
}

/// What [`SyncPolicy::OnRequest`] has written and not yet synced.
#[derive(Debug, Default)]
struct Unsynced {
    files: Vec<(Arc<File>, PathBuf)>,
    dir: bool,
    bytes: usize,
}

#[derive(Debug)]
struct State {
    /// Segments in index order; the last one is the active one.
    segments: Vec<Segment>,
    /// Everything up to and including this index is logically gone.
    purged: Option<u64>,
    /// Last index known to be on stable storage.
    durable: Option<u64>,
    /// Set after a failed write or sync; the log then refuses all writes.
    failed: Option<String>,
    /// Written, not yet synced ([`SyncPolicy::OnRequest`] only).
    unsynced: Unsynced,
}

impl State {
    fn first_index(&self) -> Option<u64> {
        let first = self.segments.first()?.first_index;
        let first = self.purged.map_or(first, |p| first.max(p + 1));
        (first <= self.last_index()?).then_some(first)
    }

    fn last_index(&self) -> Option<u64> {
        let last = self.segments.last()?;
        (last.end_index() > self.segments[0].first_index).then(|| last.end_index() - 1)
    }

    /// The smallest index the next append may start at, and whether it must be exactly that.
    fn next_index(&self) -> (u64, bool) {
        match self.last_index() {
            Some(last) => (last + 1, true),
            None => (self.purged.map_or(0, |p| p + 1), false),
        }
    }

    fn check_invariants(&self) {
        for pair in self.segments.windows(2) {
            assert_eq!(pair[0].end_index(), pair[1].first_index, "hole between segments");
            assert!(pair[0].count > 0, "empty sealed segment");
        }
        if let (Some(d), Some(l)) = (self.durable, self.last_index()) {
            assert!(d <= l, "durable index beyond the last index");
        }
    }
}

struct Shared {
    dir: PathBuf,
    config: LogConfig,
    syncer: SharedSyncer,
    state: RwLock<State>,
    /// Serializes `save_meta` calls, which share temp-file names.
    meta_lock: Mutex<()>,
    /// Held for the log's lifetime: the directory lock.
    _lock: File,
    /// Counters for observability and benchmarks.
    stats: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    records: AtomicU64,
    group_commits: AtomicU64,
    bytes: AtomicU64,
}

/// Counters of a log since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Append requests completed successfully.
    pub appends: u64,
    /// Records in those appends.
    pub records: u64,
    /// Group commits: each is one sync covering every append in it (with
    /// [`SyncPolicy::OnRequest`]: each sync, however many appends it covers).
    pub group_commits: u64,
    /// Frame bytes written.
    pub bytes: u64,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

struct WriterThread {
    handle: Mutex<Option<JoinHandle<()>>>,
    id: ThreadId,
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        // The last handle may be dropped inside a callback on the writer thread itself.
        if thread::current().id() == self.id {
            return;
        }
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// A durable, segmented write-ahead log of framed records addressed by log index.
///
/// Cheap to clone; all clones share one writer thread. The writer closes when the last clone is
/// dropped, after completing every queued request.
#[derive(Clone)]
pub struct Log {
    // Field order matters for drop: the sender goes before the writer is joined.
    shared: Arc<Shared>,
    tx: SyncSender<Cmd>,
    _writer: Arc<WriterThread>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("dir", &self.shared.dir).finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering from a crash: a torn tail is cut, missing or
    /// damaged index files are rebuilt, and corruption before the tail fails the open.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<(Log, Recovery)> {
        let dir = dir.as_ref().to_path_buf();
        if !(SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX).contains(&config.segment_size) {
            return Err(Error::Config(format!(
                "segment_size {} is outside {SEGMENT_SIZE_MIN}..={SEGMENT_SIZE_MAX}",
                config.segment_size
            )));
        }
        crate::durable::create_private_dir_all(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = crate::durable::private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path)(e)),
        }
        let syncer = config.syncer();
        let (state, recovery) = recover(&dir, &config, &*syncer)?;
        let shared = Arc::new(Shared {
            dir,
            config,
            syncer,
            state: RwLock::new(state),
            meta_lock: Mutex::new(()),
            _lock: lock,
            stats: Counters::default(),
        });
        let (tx, rx) = mpsc::sync_channel(APPEND_QUEUE_MAX);
        let writer_shared = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("logstore-writer".into())
            .spawn(move || writer_loop(&writer_shared, &rx))
            .map_err(Error::io("spawn writer thread", &shared.dir))?;
        let writer = Arc::new(WriterThread { id: handle.thread().id(), handle: Mutex::new(Some(handle)) });
        Ok((Log { shared, tx, _writer: writer }, recovery))
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends `records` at indexes `first_index..` and returns once they are durable.
    pub fn append(&self, first_index: u64, records: Vec<Vec<u8>>) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.append_then(
            first_index,
            records,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().unwrap_or_else(|_| Err(Error::Failed("writer stopped".into())))
    }

    /// Queues `records` for appending at indexes `first_index..` and returns at once; `done` runs on
    /// the writer thread after the records are durable (or the append failed). Concurrent appends
    /// share one sync (group commit). Records become readable once written, possibly before `done`.
    ///
    /// Limit violations are returned here and nothing is queued. A wrong `first_index` is reported
    /// through `done`, because it depends on the appends queued before it. Blocks while
    /// [`APPEND_QUEUE_MAX`] requests are already queued.
    pub fn append_then(&self, first_index: u64, records: Vec<Vec<u8>>, done: AppendCallback) -> Result<()> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut bytes = 0usize;
        for r in &records {
            if r.len() > RECORD_SIZE_MAX {
                return Err(Error::RecordTooLarge { size: r.len(), max: RECORD_SIZE_MAX });
            }
            bytes += r.len();
        }
        if records.len() > BATCH_RECORDS_MAX || bytes > BATCH_BYTES_MAX {
            return Err(Error::BatchTooLarge {
                records: records.len(),
                bytes,
                records_max: BATCH_RECORDS_MAX,
                bytes_max: BATCH_BYTES_MAX,
            });
        }
        if let Some(f) = &self.shared.read().failed {
            return Err(Error::Failed(f.clone()));
        }
        self.tx
            .send(Cmd::Append { first_index, records, bytes, done })
            .map_err(|_| Error::Failed("writer stopped".into()))
    }

    /// Syncs every record appended before this call, and returns once they are durable. With
    /// [`SyncPolicy::EveryAppend`] their callbacks already say so: this only waits for the appends
    /// queued before it.
    pub fn sync(&self) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx.send(Cmd::Sync { done: tx }).map_err(|_| Error::Failed("writer stopped".into()))?;
        rx.recv().unwrap_or_else(|_| Err(Error::Failed("writer stopped".into())))
    }

    /// Drops every record with an index greater than `index`. Durable when it returns.
    pub fn truncate_after(&self, index: u64) -> Result<()> {
        self.truncate_from(index.saturating_add(1))
    }

    /// Drops every record with an index of `index` or more (a conflicting Raft suffix).
    /// Durable when it returns.
    pub fn truncate_from(&self, index: u64) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx.send(Cmd::TruncateFrom { index, done: tx }).map_err(|_| Error::Failed("writer stopped".into()))?;
        rx.recv().unwrap_or_else(|_| Err(Error::Failed("writer stopped".into())))
    }

    /// Drops every record up to and including `index`: logically at once, and physically by deleting
    /// whole segments that hold nothing newer. The purge point survives restarts and only moves
    /// forward; the next append into an emptied log must start after it.
    pub fn purge_upto(&self, index: u64) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx.send(Cmd::PurgeUpto { index, done: tx }).map_err(|_| Error::Failed("writer stopped".into()))?;
        rx.recv().unwrap_or_else(|_| Err(Error::Failed("writer stopped".into())))
    }

    /// The first index held, or `None` when the log is empty.
    pub fn first_index(&self) -> Option<u64> {
        self.shared.read().first_index()
    }

    /// The last index held, or `None` when the log is empty.
    pub fn last_index(&self) -> Option<u64> {
        self.shared.read().last_index()
    }

    /// Bytes of the frames of the records after `index` (all of them when `index` is below the
    /// first one): what a reader of the log's tail from `index + 1` would read. Costs one index
    /// lookup, not a scan; the callers use it to decide when the tail is long enough for a snapshot.
    pub fn bytes_after(&self, index: u64) -> Result<u64> {
        let st = self.shared.read();
        let from = st.first_index().map_or(index.saturating_add(1), |f| f.max(index.saturating_add(1)));
        let mut total = 0u64;
        for seg in st.segments.iter().filter(|s| s.end_index() > from) {
            let start = if from > seg.first_index { seg.offset_of(from)? } else { 0 };
            total += seg.len - start;
        }
        Ok(total)
    }

    /// The last index known to be on stable storage (with `FsyncMode::Never`: written; with
    /// [`SyncPolicy::OnRequest`]: written before the last sync).
    pub fn durable_index(&self) -> Option<u64> {
        self.shared.read().durable
    }

    /// The purge point: every index up to it is gone for good.
    pub fn purged_upto(&self) -> Option<u64> {
        self.shared.read().purged
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> LogStats {
        let c = &self.shared.stats;
        LogStats {
            appends: c.appends.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            group_commits: c.group_commits.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.shared.read().segments.len()
    }

    /// Reads one record.
    pub fn read(&self, index: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.read_range(index, index.saturating_add(1), READ_BYTES_MAX)?.pop().map(|r| r.payload))
    }

    /// Reads the records with indexes in `start..end` that the log holds, in order, stopping early
    /// once about `max_bytes` (capped at [`READ_BYTES_MAX`]) were read; at least one record is
    /// returned when any is in range. Every record's checksum and index are verified.
    pub fn read_range(&self, start: u64, end: u64, max_bytes: usize) -> Result<Vec<Record>> {
        let state = self.shared.read();
        let (Some(first), Some(last)) = (state.first_index(), state.last_index()) else {
            return Ok(Vec::new());
        };
        let start = start.max(first);
        let end = end.min(last + 1);
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        let mut budget = max_bytes.min(READ_BYTES_MAX) as u64;
        let pos = state.segments.partition_point(|s| s.end_index() <= start);
        let mut next = start;
        for seg in &state.segments[pos..] {
            if next >= end || (budget == 0 && !out.is_empty()) {
                break;
            }
            let seg_end = end.min(seg.end_index());
            let from = seg.offset_of(next)?;
            let full_to = seg.offset_of(seg_end)?;
            let mut to = full_to;
            if to - from > budget {
                // Read at least the first frame, even when it alone is over the budget.
                let mut h = [0u8; HEADER_LEN];
                seg.data.read_exact_at(&mut h, from).map_err(Error::io("read segment", &seg.data_path))?;
                let first_len = frame::Header::parse(&h).expect("HEADER_LEN bytes").frame_len();
                to = from + budget.max(first_len).min(full_to - from);
            }
            let cut = to < full_to;
            let mut buf = vec![0u8; usize::try_from(to - from).expect("bounded by READ_BYTES_MAX")];
            seg.data.read_exact_at(&mut buf, from).map_err(Error::io("read segment", &seg.data_path))?;
            let mut at = 0usize;
            while at < buf.len() && next < seg_end {
                match frame::check(&buf[at..], next, RECORD_SIZE_MAX) {
                    Ok((_, frame_len)) => {
                        let frame_len = frame_len as usize;
                        out.push(Record { index: next, payload: buf[at + HEADER_LEN..at + frame_len].to_vec() });
                        at += frame_len;
                        next += 1;
                    }
                    // A budget cut can end the buffer inside a frame: stop there.
                    Err(frame::Invalid::ShortPayload { .. } | frame::Invalid::ShortHeader) if cut => break,
                    Err(invalid) => {
                        return Err(Error::Corruption {
                            path: seg.data_path.clone(),
                            offset: from + at as u64,
                            reason: invalid.reason(next),
                        });
                    }
                }
            }
            budget = budget.saturating_sub(at as u64);
            if next < seg_end {
                break; // budget exhausted inside this segment
            }
        }
        Ok(out)
    }

    /// Durably stores a small named value (the Raft vote, the committed index): crash-safe via
    /// write-temp, sync, rename, sync-directory. `name` is 1..=64 chars of `[A-Za-z0-9_-]`.
    pub fn save_meta(&self, name: &str, bytes: &[u8]) -> Result<()> {
        check_meta_name(name)?;
        let _g = self.shared.meta_lock.lock().unwrap_or_else(|e| e.into_inner());
        durable::write_atomic(&*self.shared.syncer, &self.shared.dir, &format!("{name}{META_SUFFIX}"), bytes)
    }

    /// Stores a small named value that survives a process crash but not necessarily a power
    /// failure: write-temp + rename, no sync. After a power failure the value may be the old
    /// one, the new one, or unreadable (empty or garbage), so the caller must treat it as a hint
    /// it can rebuild — e.g. openraft's committed index, which Raft keeps as volatile state.
    /// Same naming rules as [`Log::save_meta`].
    pub fn save_meta_volatile(&self, name: &str, bytes: &[u8]) -> Result<()> {
        check_meta_name(name)?;
        let _g = self.shared.meta_lock.lock().unwrap_or_else(|e| e.into_inner());
        durable::write_atomic(&durable::NoSyncer, &self.shared.dir, &format!("{name}{META_SUFFIX}"), bytes)
    }

    /// Reads a value stored with [`Log::save_meta`] or [`Log::save_meta_volatile`].
    pub fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_meta_name(name)?;
        durable::read_file(&self.shared.dir, &format!("{name}{META_SUFFIX}"))
    }

    /// The syncer this log uses, for callers that must make their own files durable the same way.
    pub fn syncer(&self) -> SharedSyncer {
        Arc::clone(&self.shared.syncer)
    }
}

fn check_meta_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= META_NAME_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(Error::Config(format!("invalid meta name {name:?}"))) }
}

fn recover(dir: &Path, config: &LogConfig, syncer: &dyn crate::Syncer) -> Result<(State, Recovery)> {
    let mut recovery = Recovery::default();
    let purged = match durable::read_file(dir, PURGED_FILE)? {
        None => None,
        Some(b) => Some(u64::from_le_bytes(b.as_slice().try_into().map_err(|_| Error::Corruption {
            path: dir.join(PURGED_FILE),
            offset: 0,
            reason: format!("expected 8 bytes, found {}", b.len()),
        })?)),
    };
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list directory", dir))? {
        let entry = entry.map_err(Error::io("list directory", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(first) = segment::parse_data_name(&name) {
            firsts.push(first);
        } else if name.ends_with(".idx.tmp") {
            segment::remove_if_exists(&entry.path())?;
        }
    }
    firsts.sort_unstable();

    // Finish a purge that a crash interrupted: segments wholly covered by the purge point go.
    let mut removed_any = false;
    while let (Some(p), [a, b, ..]) = (purged, firsts.as_slice()) {
        if b - 1 > p || *a > p {
            break;
        }
        segment::remove_if_exists(&dir.join(segment::data_name(*a)))?;
        segment::remove_if_exists(&dir.join(format!("{a:020}.idx")))?;
        recovery.purged_segments_removed += 1;
        removed_any = true;
        firsts.remove(0);
    }

    let mut segments = Vec::with_capacity(firsts.len());
    for (k, &first) in firsts.iter().enumerate() {
        let data_path = dir.join(segment::data_name(first));
        let idx_path = dir.join(format!("{first:020}.idx"));
        let data = segment::open_data(&data_path)?;
        let last = k + 1 == firsts.len();
        let seg = if last {
            let scan = segment::scan(&data_path, &data, first, RECORD_SIZE_MAX, true)?;
            if scan.torn_bytes > 0 {
                tracing::warn!(file = %data_path.display(), bytes = scan.torn_bytes, "dropping torn tail");
                data.set_len(scan.valid_len).map_err(Error::io("truncate torn tail", &data_path))?;
                syncer.sync_data(&data).map_err(Error::io("fsync", &data_path))?;
                recovery.torn_bytes_dropped = scan.torn_bytes;
            }
            segment::remove_if_exists(&idx_path)?;
            Segment::from_scan(first, data, data_path, idx_path, scan)
        } else {
            let expected = firsts[k + 1] - first;
            let checked = if config.verify_on_open {
                Err("full verification requested".to_string())
            } else {
                segment::check_index(&idx_path, first, Some(expected), &data, &data_path, RECORD_SIZE_MAX)
            };
            match checked {
                Ok((idx, count, len)) => Segment {
                    first_index: first,
                    count,
                    len,
                    data: Arc::new(data),
                    data_path,
                    idx_path,
                    offsets: Offsets::File(idx),
                },
                Err(why) => {
                    let scan = segment::scan(&data_path, &data, first, RECORD_SIZE_MAX, false)?;
                    if scan.offsets.len() as u64 != expected {
                        return Err(Error::Corruption {
                            path: data_path,
                            offset: scan.valid_len,
                            reason: format!(
                                "segment holds {} records but the next segment starts at {}",
                                scan.offsets.len(),
                                firsts[k + 1]
                            ),
                        });
                    }
                    if !config.verify_on_open || !idx_path.exists() {
                        tracing::warn!(file = %idx_path.display(), why, "rebuilding segment index");
                        recovery.indexes_rebuilt += 1;
                    }
                    let mut seg = Segment::from_scan(first, data, data_path, idx_path, scan);
                    seg.seal()?;
                    seg
                }
            }
        };
        segments.push(seg);
    }
    // The last segment may be wholly purged too (the loop above keeps it until it is scanned).
    while let (Some(p), Some(first)) = (purged, segments.first()) {
        if first.end_index() > p.saturating_add(1) {
            break;
        }
        first.remove_files()?;
        segments.remove(0);
        recovery.purged_segments_removed += 1;
        removed_any = true;
    }
    // An empty file left by a crash right after a rollover is fine as the active segment, but an
    // empty log needs no segment at all: the next append picks its own first index.
    if segments.len() == 1 && segments[0].count == 0 {
        segments[0].remove_files()?;
        segments.clear();
        removed_any = true;
    }
    if removed_any {
        durable::sync_dir(syncer, dir)?;
    }
    let state = State { segments, purged, durable: None, failed: None, unsynced: Unsynced::default() };
    state.check_invariants();
    let durable = state.last_index();
    let state = State { durable, ..state };
    recovery.segments = state.segments.len();
    recovery.first_index = state.first_index();
    recovery.last_index = state.last_index();
    Ok((state, recovery))
}

fn writer_loop(shared: &Shared, rx: &Receiver<Cmd>) {
    let mut buf = Vec::new();
    let mut carried: Option<Cmd> = None;
    // Requests in the previous group: a hint of how many appenders are running concurrently.
    let mut previous_group = 1usize;
    loop {
        let cmd = match carried.take() {
            Some(c) => c,
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => {
                    // Every Log handle is gone: a clean close leaves nothing unsynced.
                    if let Err(e) = sync_unsynced(shared) {
                        tracing::error!(error = %e, "log sync on close failed");
                    }
                    return;
                }
            },
        };
        match cmd {
            Cmd::Append { first_index, records, bytes, done } => {
                let mut group = vec![(first_index, records, done)];
                let mut group_bytes = bytes;
                // With several appenders at work, the first request to arrive wakes this thread
                // while the others are still on their way. Give them a moment (far less than a
                // sync) to join this group instead of paying a sync of their own. A lone
                // appender never waits.
                let deadline = Instant::now() + GROUP_COMMIT_WAIT;
                while group.len() < GROUP_COMMIT_REQUESTS_MAX && group_bytes < GROUP_COMMIT_BYTES_MAX {
                    let next = match rx.try_recv() {
                        Ok(c) => Some(c),
                        Err(TryRecvError::Disconnected) => None,
                        Err(TryRecvError::Empty) if group.len() < previous_group => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() { None } else { rx.recv_timeout(left).ok() }
                        }
                        Err(TryRecvError::Empty) => None,
                    };
                    match next {
                        Some(Cmd::Append { first_index, records, bytes, done }) => {
                            group.push((first_index, records, done));
                            group_bytes += bytes;
                        }
                        Some(other) => {
                            carried = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                previous_group = group.len();
                commit_group(shared, group, &mut buf);
            }
            Cmd::TruncateFrom { index, done } => {
                let r = guarded(shared, |state| truncate_from(shared, state, index));
                let _ = done.send(r);
            }
            Cmd::PurgeUpto { index, done } => {
                let r = guarded(shared, |state| purge_upto(shared, state, index));
                let _ = done.send(r);
            }
            Cmd::Sync { done } => {
                let _ = done.send(sync_unsynced(shared));
            }
        }
    }
}

/// Runs a mutation under the write lock; any error fails the log for good.
fn guarded(shared: &Shared, f: impl FnOnce(&mut State) -> Result<()>) -> Result<()> {
    let mut state = shared.write();
    if let Some(why) = &state.failed {
        return Err(Error::Failed(why.clone()));
    }
    let r = f(&mut state);
    if let Err(e) = &r {
        tracing::error!(error = %e, "log write failed; refusing further writes");
        state.failed = Some(e.to_string());
    }
    state.check_invariants();
    r
}

type Pending = (u64, Vec<Vec<u8>>, AppendCallback);

fn commit_group(shared: &Shared, group: Vec<Pending>, buf: &mut Vec<u8>) {
    let mut results: Vec<(AppendCallback, Result<()>)> = Vec::with_capacity(group.len());
    let mut to_sync: Vec<(Arc<File>, PathBuf)> = Vec::new();
    let mut sync_dir = false;
    let deferred = shared.config.sync == SyncPolicy::OnRequest;
    // OnRequest: record bytes this group wrote (counted only then: the Raft log's path stays as it was).
    let mut written = 0usize;
    // OnRequest: whether this group must sync what waits (a new segment, or enough bytes).
    let mut sync_now = false;
    let outcome = {
        let mut state = shared.write();
        if let Some(why) = &state.failed {
            let why = why.clone();
            drop(state);
            for (_, _, done) in group {
                done(Err(Error::Failed(why.clone())));
            }
            return;
        }
        let mut outcome = Ok(());
        for (first_index, records, done) in group {
            if outcome.is_err() {
                results.push((done, Err(Error::Failed("an earlier write in this group failed".into()))));
                continue;
            }
            let (expected, exact) = state.next_index();
            if (exact && first_index != expected) || first_index < expected {
                results.push((done, Err(Error::NotContiguous { expected, got: first_index })));
                continue;
            }
            match write_records(shared, &mut state, first_index, &records, buf, &mut to_sync, &mut sync_dir) {
                Ok(()) => {
                    if deferred {
                        written += records.iter().map(Vec::len).sum::<usize>();
                    }
                    results.push((done, Ok(())));
                }
                Err(e) => {
                    results.push((done, Err(e.to_failed())));
                    outcome = Err(e);
                }
            }
        }
        if let Err(e) = &outcome {
            state.failed = Some(e.to_string());
        }
        if deferred && outcome.is_ok() {
            // A rollover syncs at once, so that only the last segment can have a torn tail.
            sync_now = sync_dir;
            let u = &mut state.unsynced;
            for (file, path) in to_sync.drain(..) {
                if !u.files.iter().any(|(f, _)| Arc::ptr_eq(f, &file)) {
                    u.files.push((file, path));
                }
            }
            u.dir |= std::mem::take(&mut sync_dir);
            u.bytes += written;
            sync_now |= u.bytes >= DEFERRED_SYNC_BYTES_MAX;
        }
        state.check_invariants();
        outcome
    };
    // Sync outside the lock: readers go on while the disk works.
    let synced = outcome.and_then(|()| {
        if deferred {
            return if sync_now { sync_unsynced(shared) } else { Ok(()) };
        }
        for (file, path) in &to_sync {
            shared.syncer.sync_data(file).map_err(Error::io("fsync", path))?;
        }
        if sync_dir {
            durable::sync_dir(&*shared.syncer, &shared.dir)?;
        }
        Ok(())
    });
    match &synced {
        Ok(()) => {
            let c = &shared.stats;
            if !deferred {
                let mut state = shared.write();
                state.durable = state.last_index();
                drop(state);
                c.group_commits.fetch_add(1, Ordering::Relaxed);
            }
            for (_, r) in &results {
                if r.is_ok() {
                    c.appends.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "log sync failed; refusing further writes");
            shared.write().failed = Some(e.to_string());
        }
    }
    for (done, r) in results {
        done(match (&synced, r) {
            (Ok(()), r) => r,
            (Err(e), Ok(())) => Err(e.to_failed()),
            (Err(_), Err(e)) => Err(e),
        });
    }
}

/// Syncs what [`SyncPolicy::OnRequest`] wrote and did not sync yet, then moves the durable index
/// to the last record. On the writer thread, like every write: nothing is appended meanwhile.
fn sync_unsynced(shared: &Shared) -> Result<()> {
    let pending = {
        let mut state = shared.write();
        if let Some(why) = &state.failed {
            return Err(Error::Failed(why.clone()));
        }
        std::mem::take(&mut state.unsynced)
    };
    if pending.files.is_empty() && !pending.dir {
        return Ok(());
    }
    let synced: Result<()> = (|| {
        for (file, path) in &pending.files {
            shared.syncer.sync_data(file).map_err(Error::io("fsync", path))?;
        }
        if pending.dir {
            durable::sync_dir(&*shared.syncer, &shared.dir)?;
        }
        Ok(())
    })();
    let mut state = shared.write();
    match &synced {
        Ok(()) => {
            state.durable = state.last_index();
            shared.stats.group_commits.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::error!(error = %e, "log sync failed; refusing further writes");
            state.failed = Some(e.to_string());
        }
    }
    synced
}

/// Writes one request's records into the active segment, rolling over as segments fill.
fn write_records(
    shared: &Shared,
    state: &mut State,
    first_index: u64,
    records: &[Vec<u8>],
    buf: &mut Vec<u8>,
    to_sync: &mut Vec<(Arc<File>, PathBuf)>,
    sync_dir: &mut bool,
) -> Result<()> {
    let segment_size = shared.config.segment_size;
    let mut index = first_index;
    let mut rest = records;
    while !rest.is_empty() {
        let need_new = match state.segments.last() {
            None => true,
            Some(s) => s.count > 0 && s.len + (HEADER_LEN + rest[0].len()) as u64 > segment_size,
        };
        if need_new {
            if let Some(active) = state.segments.last_mut() {
                active.seal()?;
            }
            state.segments.push(Segment::create(&shared.dir, index)?);
            *sync_dir = true;
        }
        let active = state.segments.last_mut().expect("a segment was just ensured");
        buf.clear();
        let mut lens = Vec::new();
        let mut room = segment_size.saturating_sub(active.len);
        for r in rest {
            let frame_len = (HEADER_LEN + r.len()) as u64;
            // A record larger than a whole segment still goes into an empty one.
            if frame_len > room && !(lens.is_empty() && active.count == 0) {
                break;
            }
            frame::encode(buf, index + lens.len() as u64, r);
            lens.push(frame_len);
            room = room.saturating_sub(frame_len);
        }
        active.data.write_all_at(buf, active.len).map_err(Error::io("write segment", &active.data_path))?;
        active.push_offsets(&lens);
        shared.stats.records.fetch_add(lens.len() as u64, Ordering::Relaxed);
        shared.stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if !to_sync.iter().any(|(f, _)| Arc::ptr_eq(f, &active.data)) {
            to_sync.push((Arc::clone(&active.data), active.data_path.clone()));
        }
        index += lens.len() as u64;
        rest = &rest[lens.len()..];
    }
    Ok(())
}

fn truncate_from(shared: &Shared, state: &mut State, index: u64) -> Result<()> {
    // Whatever would remain is purged already: the log becomes empty.
    let index = match state.purged {
        Some(p) if index <= p.saturating_add(1) => 0,
        _ => index,
    };
    let mut changed_dir = false;
    while let Some(last) = state.segments.last_mut() {
        if last.first_index >= index {
            // Delete from the back, so every intermediate state is a prefix of the log.
            last.remove_files()?;
            state.segments.pop();
            changed_dir = true;
        } else {
            if last.end_index() > index {
                last.truncate_from(index)?;
                shared.syncer.sync_data(&last.data).map_err(Error::io("fsync", &last.data_path))?;
            } else {
                last.unseal()?;
            }
            break;
        }
    }
    if changed_dir {
        durable::sync_dir(&*shared.syncer, &shared.dir)?;
    }
    state.durable = match (state.durable, state.last_index()) {
        (Some(d), Some(l)) => Some(d.min(l)),
        _ => None,
    };
    Ok(())
}

fn purge_upto(shared: &Shared, state: &mut State, index: u64) -> Result<()> {
    if state.purged.is_some_and(|p| p >= index) {
        return Ok(());
    }
    // Record the purge point first: a crash before the deletes is finished on the next open.
    durable::write_atomic(&*shared.syncer, &shared.dir, PURGED_FILE, &index.to_le_bytes())?;
    state.purged = Some(index);
    let mut changed_dir = false;
    while let Some(first) = state.segments.first() {
        if first.end_index() > index + 1 && first.count > 0 {
            break;
        }
        first.remove_files()?;
        state.segments.remove(0);
        changed_dir = true;
    }
    if changed_dir {
        durable::sync_dir(&*shared.syncer, &shared.dir)?;
    }
    if state.segments.is_empty() {
        state.durable = None;
    }
    Ok(())
}
