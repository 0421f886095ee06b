//! The sticky balanced assignor (rules 3 and 4).
//!
//! Input: the members in join order (index = tie-break), each with its
//! subscribed topics; the partition count of every topic of the union; the
//! previous owner (member index) of each partition, if still a member.
//!
//! 1. **Keep**: a partition whose previous owner is still a member and still
//!    subscribes to its topic stays with it.
//! 2. **Place orphans**: every other partition, most constrained first
//!    (fewest eligible members, then topic, then partition), goes to the
//!    eligible member with the fewest partitions (tie: earliest joined).
//! 3. **Even out**: while some member `x` has at least 2 more partitions than
//!    a member `y` that subscribes to the topic of one of `x`'s partitions,
//!    move one such partition from `x` to `y`. `x` is taken by most
//!    partitions first (tie: earliest joined), `y` by fewest (tie: earliest
//!    joined); the partition moved is, in order of preference, one `y` owned
//!    before, one `x` did not own before, then the greatest one.
//!
//! Step 3 strictly lowers Σ count², so it terminates. At the end, members
//! with the same subscription differ by at most one partition (each could
//! take any of the other's partitions), and a partition only moved if its
//! owner left, unsubscribed, or balance required it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::types::TopicPartition;

/// Computes the new assignment: one set of partitions per member (same
/// order as `subs`).
pub(crate) fn assign(
    subs: &[&BTreeSet<String>],
    counts: &BTreeMap<String, u32>,
    previous: &dyn Fn(&TopicPartition) -> Option<usize>,
) -> Vec<BTreeSet<TopicPartition>> {
    let n = subs.len();
    let mut owned: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); n];
    if n == 0 {
        return owned;
    }
    let eligible: BTreeMap<&str, Vec<usize>> =
        counts.keys().map(|t| (t.as_str(), (0..n).filter(|&i| subs[i].contains(t)).collect::<Vec<_>>())).collect();

    // 1. keep
    let mut orphans = Vec::new();
    for (topic, &count) in counts {
        for p in 0..count {
            let tp = TopicPartition::new(topic.clone(), p);
            match previous(&tp) {
                Some(i) if i < n && subs[i].contains(topic) => {
                    owned[i].insert(tp);
                }
                _ => orphans.push(tp),
            }
        }
    }

    // 2. place orphans, most constrained first
    orphans.sort_by_cached_key(|tp| (eligible.get(tp.topic.as_str()).map_or(0, Vec::len), tp.clone()));
    for tp in orphans {
        let Some(cands) = eligible.get(tp.topic.as_str()) else { continue };
        if let Some(&i) = cands.iter().min_by_key(|&&i| (owned[i].len(), i)) {
            owned[i].insert(tp);
        }
    }

    // 3. even out
    loop {
        let mut by_most: Vec<usize> = (0..n).collect();
        by_most.sort_by_key(|&i| (Reverse(owned[i].len()), i));
        let mut by_fewest: Vec<usize> = (0..n).collect();
        by_fewest.sort_by_key(|&i| (owned[i].len(), i));
        let mut mv: Option<(usize, usize, TopicPartition)> = None;
        'search: for &x in &by_most {
            for &y in &by_fewest {
                if owned[y].len() + 2 > owned[x].len() {
                    break;
                }
                // best partition of x that y can take
                let mut best: Option<(u8, &TopicPartition)> = None;
                for tp in owned[x].iter().rev() {
                    if !subs[y].contains(&tp.topic) {
                        continue;
                    }
                    let rank = match previous(tp) {
                        Some(p) if p == y => 0,
                        Some(p) if p == x => 2,
                        _ => 1,
                    };
                    if best.is_none_or(|(r, _)| rank < r) {
                        best = Some((rank, tp));
                        if rank == 0 {
                            break;
                        }
                    }
                }
                if let Some((_, tp)) = best {
                    mv = Some((x, y, tp.clone()));
                    break 'search;
                }
            }
        }
        match mv {
            Some((x, y, tp)) => {
                owned[x].remove(&tp);
                owned[y].insert(tp);
            }
            None => return owned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ts: &[&str]) -> BTreeSet<String> {
        ts.iter().map(|s| s.to_string()).collect()
    }

    fn counts(c: &[(&str, u32)]) -> BTreeMap<String, u32> {
        c.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn sizes(a: &[BTreeSet<TopicPartition>]) -> Vec<usize> {
        a.iter().map(BTreeSet::len).collect()
    }

    /// Rule 4: two members share 4 partitions 2/2; a third joins and takes
    /// one partition, the other partitions stay.
    #[test]
    fn rule4_balanced_and_sticky() {
        let s = set(&["t"]);
        let c = counts(&[("t", 4)]);
        let a = assign(&[&s, &s], &c, &|_| None);
        assert_eq!(sizes(&a), vec![2, 2]);
        let prev = |tp: &TopicPartition| a.iter().position(|o| o.contains(tp));
        let b = assign(&[&s, &s, &s], &c, &prev);
        assert_eq!(sizes(&b), vec![1, 2, 1]);
        assert!(b[0].is_subset(&a[0]) && b[1].is_subset(&a[1]));
    }

    /// Rule 4: heterogeneous subscriptions are evened out where possible.
    #[test]
    fn rule4_heterogeneous() {
        let (st, stu) = (set(&["t"]), set(&["t", "u"]));
        let c = counts(&[("t", 4), ("u", 4)]);
        let a = assign(&[&st, &stu], &c, &|_| None);
        assert_eq!(sizes(&a), vec![4, 4]);
        assert!(a[0].iter().all(|tp| tp.topic == "t"));
    }

    /// Rule 3: nobody subscribed: nothing assigned; no members: empty.
    #[test]
    fn rule3_edge_cases() {
        assert!(assign(&[], &counts(&[("t", 3)]), &|_| None).is_empty());
        let s = set(&["t"]);
        let a = assign(&[&s], &counts(&[("t", 0)]), &|_| None);
        assert_eq!(sizes(&a), vec![0]);
    }
}
