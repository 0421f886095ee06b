use super::*;

#[test]
fn key_hash_is_fnv1a_64_like_lognode() {
    // Reference vectors of FNV-1a 64: lognode partitions keyed records with the same function.
    assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(key_hash(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn headers_come_back_sorted_and_records_keyless_when_the_key_is_empty() {
    let r = ConsumeResponse {
        records: vec![ledger_proto::ledger::ConsumedRecord {
            offset: 4,
            key: Vec::new(),
            value: b"1".to_vec(),
            headers: vec![
                Header { key: "b".into(), value: b"2".to_vec() },
                Header { key: "a".into(), value: b"1".to_vec() },
            ],
            timestamp_ms: -5,
            log_index: 9,
        }],
        next_offset: 5,
        log_start_offset: 0,
        end_offset: 5,
        applied_index: 9,
    };
    let f = fetched(r);
    assert_eq!(f.applied_index, 9);
    let rec = &f.value.records[0];
    assert_eq!(rec.key, None);
    assert_eq!(rec.timestamp_ms, 0);
    assert_eq!(rec.headers, vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
}
