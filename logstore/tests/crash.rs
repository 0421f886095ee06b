//! Crash simulation and corruption: what `Log::open` does with damaged files.

use std::fs;
use std::path::{Path, PathBuf};

use logstore::{Error, FsyncMode, Log, LogConfig};

fn config() -> LogConfig {
    LogConfig { segment_size: 2048, fsync: FsyncMode::Never, ..LogConfig::default() }
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("payload-{i}:").into_bytes();
    p.resize(8 + (i as usize * 13) % 90, b'a' + (i % 26) as u8);
    p
}

/// Writes `n` records and returns the segment files in index order.
fn write_log(dir: &Path, n: u64) -> Vec<PathBuf> {
    let (log, _) = Log::open(dir, config()).expect("open");
    for i in 0..n {
        log.append(i, vec![payload(i)]).expect("append");
    }
    drop(log);
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    segs
}

/// Byte offsets where each record of a data file ends.
fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        at += 16 + len;
        ends.push(at);
    }
    ends
}

#[test]
fn cutting_the_last_segment_at_every_byte_keeps_exactly_the_complete_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = write_log(dir.path(), 120);
    assert!(segs.len() >= 3, "the cut must be in the last of several segments");
    let last = segs.last().expect("a segment");
    let full = fs::read(last).expect("read last segment");
    let ends = frame_ends(&full);
    let records_before = 120 - ends.len() as u64;
    for cut in 0..=full.len() {
        fs::write(last, &full[..cut]).expect("cut");
        let (log, rec) = Log::open(dir.path(), config()).expect("a torn tail must open");
        let complete = ends.iter().filter(|&&e| e <= cut).count() as u64;
        let valid_len = ends.iter().copied().filter(|&e| e <= cut).max().unwrap_or(0);
        assert_eq!(rec.torn_bytes_dropped, (cut - valid_len) as u64, "cut at {cut}");
        let expect_last = records_before + complete;
        assert_eq!(log.last_index(), expect_last.checked_sub(1), "cut at {cut}");
        let all = log.read_range(0, u64::MAX, usize::MAX).expect("read");
        assert_eq!(all.len() as u64, expect_last, "cut at {cut}");
        for r in &all {
            assert_eq!(r.payload, payload(r.index), "cut at {cut}");
        }
        // The repaired log accepts the next append and is clean on the next open.
        log.append(expect_last, vec![b"after-crash".to_vec()]).expect("append after recovery");
        drop(log);
        let (_, rec) = Log::open(dir.path(), config()).expect("reopen");
        assert_eq!(rec.torn_bytes_dropped, 0, "cut at {cut}");
        assert_eq!(rec.last_index, Some(expect_last));
    }
}

#[test]
fn a_zero_filled_or_garbage_tail_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = write_log(dir.path(), 30);
    let last = segs.last().expect("a segment");
    let full = fs::read(last).expect("read");
    let mut zeroed = full.clone();
    zeroed.extend_from_slice(&[0u8; 4096]);
    fs::write(last, &zeroed).expect("write");
    let (log, rec) = Log::open(dir.path(), config()).expect("open");
    assert_eq!(rec.torn_bytes_dropped, 4096);
    assert_eq!(log.last_index(), Some(29));
    drop(log);
    // A half-written frame: a header claiming 200 bytes followed by 50 bytes of garbage.
    let mut torn = full.clone();
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(&[0xAB; 62]);
    fs::write(last, &torn).expect("write");
    let (log, rec) = Log::open(dir.path(), config()).expect("open");
    assert_eq!(rec.torn_bytes_dropped, 66);
    assert_eq!(log.last_index(), Some(29));
    assert_eq!(fs::read(last).expect("read").len(), full.len(), "the tail was cut from the file");
}

#[test]
fn a_flipped_byte_in_an_early_record_fails_the_open_and_truncates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), LogConfig { segment_size: 1 << 20, ..config() }).expect("open");
    for i in 0..50 {
        log.append(i, vec![payload(i)]).expect("append");
    }
    drop(log);
    let seg = dir.path().join(format!("{:020}.log", 0));
    let mut bytes = fs::read(&seg).expect("read");
    let ends = frame_ends(&bytes);
    let target = ends[3] + 20; // inside record 4's payload
    bytes[target] ^= 0x01;
    fs::write(&seg, &bytes).expect("write");
    let err = Log::open(dir.path(), config()).expect_err("corruption must fail the open");
    match &err {
        Error::Corruption { path, offset, .. } => {
            assert_eq!(path, &seg);
            assert_eq!(*offset, ends[3] as u64, "the error names the bad frame's offset");
        }
        other => panic!("expected corruption, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("00000000000000000000.log") && msg.contains("offset"), "{msg}");
    assert_eq!(fs::read(&seg).expect("read").len(), bytes.len(), "nothing was truncated");
}

#[test]
fn corruption_in_a_sealed_segment_is_caught_on_read_and_by_full_verification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = write_log(dir.path(), 120);
    let first = &segs[0];
    let mut bytes = fs::read(first).expect("read");
    let ends = frame_ends(&bytes);
    bytes[ends[1] + 18] ^= 0x80; // record 2
    fs::write(first, &bytes).expect("write");
    {
        let (log, _) = Log::open(dir.path(), config()).expect("the intact index lets it open");
        assert!(log.read(1).expect("record 1 is fine").is_some());
        let err = log.read(2).expect_err("record 2 is damaged");
        assert!(matches!(err, Error::Corruption { offset, .. } if offset == ends[1] as u64), "{err}");
    }
    let strict = LogConfig { verify_on_open: true, ..config() };
    let err = Log::open(dir.path(), strict).expect_err("full verification fails the open");
    assert!(matches!(err, Error::Corruption { ref path, .. } if path == first), "{err}");
}

#[test]
fn a_missing_or_damaged_index_is_rebuilt_from_the_data_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = write_log(dir.path(), 120);
    let idx0 = segs[0].with_extension("idx");
    let idx1 = segs[1].with_extension("idx");
    fs::remove_file(&idx0).expect("remove index");
    let mut damaged = fs::read(&idx1).expect("read index");
    damaged[20] ^= 0xFF;
    fs::write(&idx1, &damaged).expect("write");
    let (log, rec) = Log::open(dir.path(), config()).expect("open");
    assert_eq!(rec.indexes_rebuilt, 2);
    for i in 0..120 {
        assert_eq!(log.read(i).expect("read"), Some(payload(i)), "record {i}");
    }
    drop(log);
    let (_, rec) = Log::open(dir.path(), config()).expect("reopen");
    assert_eq!(rec.indexes_rebuilt, 0, "rebuilt indexes were written back");
}

#[test]
fn a_crash_between_purge_point_and_deletes_is_finished_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = write_log(dir.path(), 120);
    // Simulate the crash: the purge point is durable but no segment was deleted yet.
    fs::write(dir.path().join("purged.state"), 60u64.to_le_bytes()).expect("write");
    let (log, rec) = Log::open(dir.path(), config()).expect("open");
    assert!(rec.purged_segments_removed > 0);
    assert!(!segs[0].exists(), "a segment wholly below the purge point is deleted");
    assert_eq!(log.first_index(), Some(61));
    assert_eq!(log.last_index(), Some(119));
}

/// `SyncPolicy::OnRequest` under a power loss: every file of the log is cut back to the bytes its
/// last sync made durable (`RecordingSyncer`'s map, as the chaos harness does), and the log opens
/// with exactly the records written before the last `sync()`.
#[test]
fn on_request_a_power_loss_keeps_everything_up_to_the_last_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (live, copy, map) = (dir.path().join("live"), dir.path().join("copy"), dir.path().join("synced.map"));
    let syncer = std::sync::Arc::new(logstore::RecordingSyncer::new(&map));
    let cfg = LogConfig { sync: logstore::SyncPolicy::OnRequest, syncer: Some(syncer), ..LogConfig::default() };
    let (log, _) = Log::open(&live, cfg).expect("open");
    for i in 0..40 {
        log.append(i, vec![payload(i)]).expect("append");
    }
    log.sync().expect("sync");
    for i in 40..60 {
        log.append(i, vec![payload(i)]).expect("append");
    }
    assert_eq!((log.durable_index(), log.last_index()), (Some(39), Some(59)));

    // The power goes: a copy of the files as the disk would hold them (the log is still open).
    fs::create_dir(&copy).expect("mkdir");
    let synced: Vec<(u64, PathBuf)> = fs::read_to_string(&map)
        .expect("the map")
        .lines()
        .map(|l| {
            let (len, path) = l.split_once('\t').expect("a map line");
            (len.parse().expect("a length"), PathBuf::from(path))
        })
        .collect();
    for entry in fs::read_dir(&live).expect("list") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n == "LOCK") {
            continue;
        }
        let mut bytes = fs::read(&path).expect("read");
        let durable = synced.iter().find(|(_, p)| *p == path).map(|(len, _)| *len as usize);
        if path.extension().is_some_and(|e| e == "log") {
            let durable = durable.expect("every data file was synced at least once");
            assert!(durable < bytes.len(), "the unsynced tail is on the live file only");
            bytes.truncate(durable);
        }
        fs::write(copy.join(path.file_name().expect("a name")), bytes).expect("write");
    }
    drop(log);

    let (after, _) =
        Log::open(&copy, LogConfig { fsync: FsyncMode::Never, ..LogConfig::default() }).expect("the cut log opens");
    assert_eq!(after.last_index(), Some(39), "exactly the records of the last sync");
    for i in 0..40 {
        assert_eq!(after.read(i).expect("read"), Some(payload(i)), "record {i}");
    }
}
