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
//!    joined); the partition moved is the greatest one `x` did not own in the
//!    previous generation, else the greatest one.
//!
//! Step 3 strictly lowers Σ count², so it terminates. At the end, members
//! with the same subscription differ by at most one partition (each could
//! take any of the other's partitions), and a partition only moved if its
//! owner left, unsubscribed, or balance required it.
//!
//! Cost: with one subscription for everyone, step 3 makes one move per
//! partition that must move (`O(M log M)` each, `M` members); mixed
//! subscriptions add an `O(M² · T)` scan per move in the worst case.

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
    if n == 0 {
        return Vec::new();
    }
    // Partitions by index, in (topic, partition) order; topics by index.
    let topics: Vec<&String> = counts.keys().collect();
    let sub: Vec<Vec<bool>> = subs.iter().map(|s| topics.iter().map(|t| s.contains(*t)).collect()).collect();
    let mut parts: Vec<TopicPartition> = Vec::new();
    let mut topic_of: Vec<usize> = Vec::new();
    for (ti, (topic, &count)) in counts.iter().enumerate() {
        for p in 0..count {
            parts.push(TopicPartition::new(topic.clone(), p));
            topic_of.push(ti);
        }
    }
    let prev: Vec<Option<usize>> = parts.iter().map(|tp| previous(tp).filter(|&i| i < n)).collect();
    let eligible: Vec<Vec<usize>> = (0..topics.len()).map(|t| (0..n).filter(|&i| sub[i][t]).collect()).collect();

    // Per member: partitions owned in the previous generation (native) and
    // newly received (foreign), and partition counts per topic.
    let mut native: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut foreign: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut per_topic: Vec<Vec<u32>> = vec![vec![0; topics.len()]; n];
    let len = |native: &[BTreeSet<usize>], foreign: &[BTreeSet<usize>], i: usize| native[i].len() + foreign[i].len();

    // 1. keep
    let mut orphans = Vec::new();
    for k in 0..parts.len() {
        match prev[k] {
            Some(i) if sub[i][topic_of[k]] => {
                native[i].insert(k);
                per_topic[i][topic_of[k]] += 1;
            }
            _ => orphans.push(k),
        }
    }

    // 2. place orphans, most constrained first
    orphans.sort_by_key(|&k| (eligible[topic_of[k]].len(), k));
    for k in orphans {
        let t = topic_of[k];
        if let Some(&i) = eligible[t].iter().min_by_key(|&&i| (len(&native, &foreign, i), i)) {
            foreign[i].insert(k);
            per_topic[i][t] += 1;
        }
    }

    // 3. even out
    loop {
        let mut by_most: Vec<usize> = (0..n).collect();
        by_most.sort_by_key(|&i| (Reverse(len(&native, &foreign, i)), i));
        let mut by_fewest = by_most.clone();
        by_fewest.sort_by_key(|&i| (len(&native, &foreign, i), i));
        let mut mv: Option<(usize, usize, usize)> = None;
        'search: for &x in &by_most {
            for &y in &by_fewest {
                if len(&native, &foreign, y) + 2 > len(&native, &foreign, x) {
                    break;
                }
                if !(0..topics.len()).any(|t| per_topic[x][t] > 0 && sub[y][t]) {
                    continue;
                }
                let fits = |k: &&usize| sub[y][topic_of[**k]];
                if let Some(&k) = foreign[x].iter().rev().find(fits).or_else(|| native[x].iter().rev().find(fits)) {
                    mv = Some((x, y, k));
                    break 'search;
                }
            }
        }
        let Some((x, y, k)) = mv else { break };
        if !foreign[x].remove(&k) {
            native[x].remove(&k);
        }
        per_topic[x][topic_of[k]] -= 1;
        per_topic[y][topic_of[k]] += 1;
        if prev[k] == Some(y) {
            native[y].insert(k);
        } else {
            foreign[y].insert(k);
        }
    }

    (0..n).map(|i| native[i].iter().chain(&foreign[i]).map(|&k| parts[k].clone()).collect()).collect()
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
