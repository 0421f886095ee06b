//! Quick end-to-end checks of the public API.
use logstore::{Log, LogConfig};

#[test]
fn append_read_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig { segment_size: 256, ..LogConfig::default() };
    {
        let (log, rec) = Log::open(dir.path(), cfg.clone()).expect("open");
        assert_eq!(rec.last_index, None);
        for i in 0..50u64 {
            log.append(i, vec![format!("record-{i}").into_bytes()]).expect("append");
        }
        assert_eq!(log.first_index(), Some(0));
        assert_eq!(log.last_index(), Some(49));
        assert!(log.segment_count() > 3);
        let all = log.read_range(0, 100, usize::MAX).expect("read");
        assert_eq!(all.len(), 50);
    }
    let (log, rec) = Log::open(dir.path(), cfg).expect("reopen");
    assert_eq!(rec.last_index, Some(49));
    assert_eq!(rec.indexes_rebuilt, 0);
    assert_eq!(log.read(17).expect("read"), Some(b"record-17".to_vec()));
    let all = log.read_range(0, 100, usize::MAX).expect("read");
    assert_eq!(all.len(), 50);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.payload, format!("record-{i}").into_bytes());
    }
}
