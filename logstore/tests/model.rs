//! Property test: random appends, truncations, purges and reopens agree with a simple in-memory
//! model of the log.

use std::collections::BTreeMap;

use logstore::{Error, FsyncMode, Log, LogConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append `sizes.len()` records at the next index (`skew` != 0 makes it a wrong index).
    Append {
        sizes: Vec<usize>,
        skew: i8,
    },
    /// Truncate from `last - back` (clamped).
    Truncate {
        back: u8,
    },
    /// Purge up to `first + ahead` (may pass the end).
    Purge {
        ahead: u8,
    },
    Reopen,
    Read {
        from_back: u8,
        budget: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(0usize..120, 1..6), prop_oneof![8 => Just(0i8), 1 => -2i8..3])
            .prop_map(|(sizes, skew)| Op::Append { sizes, skew }),
        2 => any::<u8>().prop_map(|b| Op::Truncate { back: b % 12 }),
        2 => any::<u8>().prop_map(|a| Op::Purge { ahead: a % 16 }),
        1 => Just(Op::Reopen),
        2 => (any::<u8>(), any::<u16>()).prop_map(|(f, b)| Op::Read { from_back: f % 20, budget: b % 600 }),
    ]
}

/// The model: what a log must hold.
#[derive(Default, Debug)]
struct Model {
    records: BTreeMap<u64, Vec<u8>>,
    purged: Option<u64>,
}

impl Model {
    fn next(&self) -> (u64, bool) {
        match self.records.keys().next_back() {
            Some(l) => (l + 1, true),
            None => (self.purged.map_or(0, |p| p + 1), false),
        }
    }
}

fn config() -> LogConfig {
    LogConfig { segment_size: 300, fsync: FsyncMode::Never, ..LogConfig::default() }
}

fn check_agrees(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.first_index(), model.records.keys().next().copied());
    prop_assert_eq!(log.last_index(), model.records.keys().next_back().copied());
    prop_assert_eq!(log.purged_upto(), model.purged);
    let got: BTreeMap<u64, Vec<u8>> =
        log.read_range(0, u64::MAX, usize::MAX).expect("read").into_iter().map(|r| (r.index, r.payload)).collect();
    prop_assert_eq!(&got, &model.records);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_log_agrees_with_the_model(start in 0u64..5, ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Log::open(dir.path(), config()).expect("open");
        let mut model = Model::default();
        let mut counter = 0u64;
        let mut first_append = true;
        for op in ops {
            match op {
                Op::Append { sizes, skew } => {
                    let (expected, exact) = model.next();
                    let base = if first_append { start } else { expected };
                    let at = base.saturating_add_signed(i64::from(skew));
                    let records: Vec<Vec<u8>> = sizes.iter().map(|&n| {
                        counter += 1;
                        let mut r = counter.to_le_bytes().to_vec();
                        r.resize(n.max(8), (counter % 251) as u8);
                        r
                    }).collect();
                    let valid = if exact { at == expected } else { at >= expected };
                    match log.append(at, records.clone()) {
                        Ok(()) => {
                            prop_assert!(valid, "append at {} accepted, expected {} exact={}", at, expected, exact);
                            for (k, r) in records.into_iter().enumerate() {
                                model.records.insert(at + k as u64, r);
                            }
                            first_append = false;
                        }
                        Err(Error::NotContiguous { .. }) => prop_assert!(!valid, "valid append at {} refused", at),
                        Err(e) => prop_assert!(false, "unexpected error {}", e),
                    }
                }
                Op::Truncate { back } => {
                    if let Some(&last) = model.records.keys().next_back() {
                        let from = last.saturating_sub(u64::from(back));
                        log.truncate_from(from).expect("truncate");
                        model.records.retain(|&i, _| i < from);
                    }
                }
                Op::Purge { ahead } => {
                    let base = model.records.keys().next().copied().or(model.purged).unwrap_or(0);
                    let upto = base + u64::from(ahead);
                    log.purge_upto(upto).expect("purge");
                    if model.purged.is_none_or(|p| p < upto) {
                        model.purged = Some(upto);
                        model.records.retain(|&i, _| i > upto);
                    }
                }
                Op::Reopen => {
                    drop(log);
                    let (reopened, rec) = Log::open(dir.path(), config()).expect("reopen");
                    prop_assert_eq!(rec.torn_bytes_dropped, 0);
                    log = reopened;
                }
                Op::Read { from_back, budget } => {
                    if let Some(&last) = model.records.keys().next_back() {
                        let from = last.saturating_sub(u64::from(from_back));
                        let got = log.read_range(from, u64::MAX, usize::from(budget)).expect("read");
                        let want: Vec<_> = model.records.range(from..).take(got.len()).collect();
                        prop_assert!(!got.is_empty(), "a non-empty range returns at least one record");
                        prop_assert_eq!(got.len(), want.len());
                        for (g, (i, p)) in got.iter().zip(want) {
                            prop_assert_eq!(g.index, *i);
                            prop_assert_eq!(&g.payload, p);
                        }
                    }
                }
            }
            check_agrees(&log, &model)?;
        }
    }
}
