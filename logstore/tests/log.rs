//! Behaviour of the public `Log` API: rollover, index lookup, truncate, purge, limits, locking.

use logstore::{BATCH_RECORDS_MAX, Error, FsyncMode, Log, LogConfig, RECORD_SIZE_MAX, Record};

fn small(segment_size: u64) -> LogConfig {
    LogConfig { segment_size, fsync: FsyncMode::Never, ..LogConfig::default() }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat((i % 7) as usize)).into_bytes()
}

fn fill(log: &Log, range: std::ops::Range<u64>) {
    for i in range {
        log.append(i, vec![payload(i)]).expect("append");
    }
}

fn indexes(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.index).collect()
}

#[test]
fn records_read_back_across_rollover_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, rec) = Log::open(dir.path(), small(256)).expect("open");
        assert_eq!((rec.first_index, rec.last_index), (None, None));
        fill(&log, 0..50);
        assert!(log.segment_count() > 3, "256-byte segments must roll over");
        assert_eq!((log.first_index(), log.last_index()), (Some(0), Some(49)));
    }
    let (log, rec) = Log::open(dir.path(), small(256)).expect("reopen");
    assert_eq!((rec.first_index, rec.last_index), (Some(0), Some(49)));
    assert_eq!(rec.indexes_rebuilt, 0, "sealed indexes are intact");
    assert_eq!(rec.torn_bytes_dropped, 0);
    let all = log.read_range(0, 1000, usize::MAX).expect("read");
    assert_eq!(indexes(&all), (0..50).collect::<Vec<_>>());
    for r in &all {
        assert_eq!(r.payload, payload(r.index));
    }
    // Index lookup lands on the right record in every segment.
    for i in 0..50 {
        assert_eq!(log.read(i).expect("read"), Some(payload(i)), "record {i}");
    }
    assert_eq!(log.read(50).expect("read"), None);
    fill(&log, 50..60);
    assert_eq!(log.last_index(), Some(59));
}

#[test]
fn a_batch_larger_than_a_segment_spreads_over_several() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(128)).expect("open");
    log.append(10, (10..40).map(payload).collect()).expect("append");
    assert!(log.segment_count() >= 5);
    assert_eq!(indexes(&log.read_range(0, 100, usize::MAX).expect("read")), (10..40).collect::<Vec<_>>());
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(64)).expect("open");
    log.append(0, vec![vec![7u8; 500], vec![8u8; 10]]).expect("append");
    assert_eq!(log.read(0).expect("read"), Some(vec![7u8; 500]));
    assert_eq!(log.read(1).expect("read"), Some(vec![8u8; 10]));
}

#[test]
fn read_range_respects_its_byte_budget_but_returns_at_least_one_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(4096)).expect("open");
    log.append(0, (0..100).map(|_| vec![1u8; 100]).collect()).expect("append");
    let some = log.read_range(0, 100, 1000).expect("read");
    assert!(!some.is_empty() && some.len() < 10, "got {}", some.len());
    assert_eq!(indexes(&some), (0..some.len() as u64).collect::<Vec<_>>());
    let one = log.read_range(5, 100, 1).expect("read");
    assert_eq!(indexes(&one), vec![5]);
}

#[test]
fn truncate_drops_the_suffix_and_appends_continue_from_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(200)).expect("open");
    fill(&log, 0..40);
    log.truncate_after(22).expect("truncate");
    assert_eq!(log.last_index(), Some(22));
    assert_eq!(log.read(23).expect("read"), None);
    let err = log.append(30, vec![b"x".to_vec()]).expect_err("hole");
    assert!(matches!(err, Error::NotContiguous { expected: 23, got: 30 }), "{err}");
    log.append(23, vec![b"new-23".to_vec()]).expect("append");
    assert_eq!(log.read(23).expect("read"), Some(b"new-23".to_vec()));
    drop(log);
    let (log, _) = Log::open(dir.path(), small(200)).expect("reopen");
    assert_eq!(log.last_index(), Some(23));
    assert_eq!(log.read(23).expect("read"), Some(b"new-23".to_vec()));
    assert_eq!(log.read(22).expect("read"), Some(payload(22)));
}

#[test]
fn truncating_everything_leaves_an_empty_log_that_accepts_any_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(200)).expect("open");
    fill(&log, 5..30);
    log.truncate_from(5).expect("truncate");
    assert_eq!((log.first_index(), log.last_index()), (None, None));
    assert_eq!(log.segment_count(), 0);
    log.append(5, vec![b"again".to_vec()]).expect("append");
    assert_eq!(log.read(5).expect("read"), Some(b"again".to_vec()));
}

#[test]
fn purge_drops_whole_old_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = Log::open(dir.path(), small(200)).expect("open");
        fill(&log, 0..60);
        let before = log.segment_count();
        log.purge_upto(30).expect("purge");
        assert!(log.segment_count() < before, "old segments are deleted");
        assert_eq!(log.first_index(), Some(31));
        assert_eq!(log.read(30).expect("read"), None, "purged records are gone logically");
        assert_eq!(log.read_range(0, 40, usize::MAX).expect("read").first().map(|r| r.index), Some(31));
        log.purge_upto(10).expect("an older purge point is a no-op");
        assert_eq!(log.purged_upto(), Some(30));
    }
    let (log, _) = Log::open(dir.path(), small(200)).expect("reopen");
    assert_eq!((log.first_index(), log.last_index()), (Some(31), Some(59)));
}

/// `bytes_after` counts the frames after an index across segments (sealed ones read their offsets
/// from the index file), ignores what is purged, and is 0 past the end.
#[test]
fn bytes_after_counts_the_frames_of_the_tail() {
    let frames = |range: std::ops::Range<u64>| -> u64 {
        range.map(|i| (logstore::frame::HEADER_LEN + payload(i).len()) as u64).sum()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(200)).expect("open");
    assert_eq!(log.bytes_after(0).expect("bytes"), 0, "an empty log");
    fill(&log, 0..60);
    assert!(log.segment_count() > 3);
    for index in [0, 1, 17, 30, 58] {
        assert_eq!(log.bytes_after(index).expect("bytes"), frames(index + 1..60), "after {index}");
    }
    assert_eq!(log.bytes_after(59).expect("bytes"), 0);
    assert_eq!(log.bytes_after(u64::MAX).expect("bytes"), 0);
    log.purge_upto(30).expect("purge");
    assert_eq!(log.bytes_after(0).expect("bytes"), frames(31..60), "purged records are not counted");
    assert_eq!(log.bytes_after(40).expect("bytes"), frames(41..60));
    drop(log);
    let (log, _) = Log::open(dir.path(), small(200)).expect("reopen");
    assert_eq!(log.bytes_after(40).expect("bytes"), frames(41..60), "the same after a reopen");
}

#[test]
fn purging_past_the_end_empties_the_log_and_the_next_append_starts_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = Log::open(dir.path(), small(200)).expect("open");
        fill(&log, 0..20);
        log.purge_upto(100).expect("purge");
        assert_eq!((log.first_index(), log.last_index()), (None, None));
        let err = log.append(50, vec![b"x".to_vec()]).expect_err("below the purge point");
        assert!(matches!(err, Error::NotContiguous { expected: 101, got: 50 }), "{err}");
    }
    let (log, _) = Log::open(dir.path(), small(200)).expect("reopen");
    assert_eq!(log.purged_upto(), Some(100));
    assert!(log.append(100, vec![b"x".to_vec()]).is_err());
    log.append(101, vec![b"snapshot+1".to_vec()]).expect("append");
    assert_eq!(log.first_index(), Some(101));
}

#[test]
fn limits_are_enforced_with_clear_errors_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(4096)).expect("open");
    let err = log.append(0, vec![vec![0u8; RECORD_SIZE_MAX + 1]]).expect_err("too large");
    assert!(matches!(err, Error::RecordTooLarge { .. }));
    assert!(err.to_string().contains("exceeds the record size limit"), "{err}");
    let err = log.append(0, vec![Vec::new(); BATCH_RECORDS_MAX + 1]).expect_err("batch");
    assert!(matches!(err, Error::BatchTooLarge { .. }), "{err}");
    assert!(matches!(log.append(0, Vec::new()), Err(Error::EmptyBatch)));
    assert_eq!(log.last_index(), None);
    log.append(0, vec![b"ok".to_vec()]).expect("the log still works");
}

#[test]
fn a_directory_can_be_opened_by_one_log_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = Log::open(dir.path(), small(4096)).expect("open");
    let err = Log::open(dir.path(), small(4096)).expect_err("locked");
    assert!(matches!(err, Error::Locked(_)), "{err}");
    drop(log);
    Log::open(dir.path(), small(4096)).expect("free again after drop");
}

#[test]
fn meta_values_are_stored_durably_and_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = Log::open(dir.path(), small(4096)).expect("open");
        assert_eq!(log.load_meta("vote").expect("load"), None);
        log.save_meta("vote", b"term=3").expect("save");
        log.save_meta("vote", b"term=4").expect("save");
        assert!(log.save_meta("../escape", b"x").is_err());
        assert!(log.save_meta("", b"x").is_err());
    }
    let (log, _) = Log::open(dir.path(), small(4096)).expect("reopen");
    assert_eq!(log.load_meta("vote").expect("load"), Some(b"term=4".to_vec()));
}

#[test]
fn invalid_segment_sizes_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Log::open(dir.path(), small(1)).expect_err("too small");
    assert!(matches!(err, Error::Config(_)), "{err}");
}
