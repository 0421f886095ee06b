//! Linearizability of one account's balance: is there one order of its operations, each placed
//! somewhere between its start and its end, in which every strong read returns the sum of the
//! transfers placed before it?
//!
//! The search is Wing and Gong's, with Lowe's memo of visited states (what Knossos and Porcupine
//! do): from the operations not yet placed, any one that started before every other one ended may
//! go next; a read only where the balance equals what it returned. A state (the set placed, as a
//! Zobrist hash, and the balance) is explored once. An operation with no definite end (unknown)
//! may be placed any time after its start, or never. Transfers refused for certain are left out
//! by the caller: they had no effect.

use std::collections::HashSet;

/// Most search steps for one account; past it the verdict is [`Verdict::Inconclusive`].
pub const STEPS_MAX: usize = 2_000_000;
/// Operations of the placed path kept in a violation's slice.
const PATH_TAIL: usize = 8;

/// What one operation did to, or saw of, the balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A transfer that changed the balance by this much.
    Add(i64),
    /// A read that returned this balance.
    Read(i64),
}

/// One operation on the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// When it started (ms).
    pub start: u64,
    /// When it ended (ms); none when unknown.
    pub end: Option<u64>,
    /// What it did.
    pub event: Event,
    /// Its index in the caller's history (for slices).
    pub op: usize,
}

/// The search's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An order exists.
    Linearizable,
    /// No order exists; the caller's indexes of the operations around the point where every
    /// order failed (the end of the longest order found, and what could have come next).
    Violation(Vec<usize>),
    /// Gave up after [`STEPS_MAX`] steps.
    Inconclusive,
}

struct Frame {
    /// The operation placed to reach this frame.
    placed: Option<usize>,
    candidates: Vec<usize>,
    next: usize,
}

/// A Zobrist key per position (splitmix64 of the position, twice).
fn key(i: usize) -> u128 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let i = i as u64;
    (u128::from(mix(i)) << 64) | u128::from(mix(i ^ 0xdead_beef_cafe_f00d))
}

/// Checks the calls of one account whose balance starts at `initial`, in at most `steps_max` steps.
pub fn check(calls: &[Call], initial: i64, steps_max: usize) -> Verdict {
    let mut calls = calls.to_vec();
    calls.sort_by_key(|c| (c.start, c.end.unwrap_or(u64::MAX)));
    let n = calls.len();
    let mut done = vec![false; n];
    let mut value = initial;
    let mut hash = 0u128;
    let mut required_left = calls.iter().filter(|c| c.end.is_some()).count();
    let mut visited: HashSet<(u128, i64)> = HashSet::new();
    let mut steps = 0usize;
    let mut deepest: (usize, Vec<usize>) = (0, Vec::new());

    let candidates = |done: &[bool], value: i64| -> Vec<usize> {
        let mut min_end = u64::MAX;
        let mut out = Vec::new();
        for (i, c) in calls.iter().enumerate() {
            if done[i] {
                continue;
            }
            if c.start > min_end {
                break;
            }
            out.push(i);
            if let Some(e) = c.end {
                min_end = min_end.min(e);
            }
        }
        out.retain(|i| calls[*i].start <= min_end && !matches!(calls[*i].event, Event::Read(v) if v != value));
        // Reads first: they change nothing, so they prune the most.
        out.sort_by_key(|i| !matches!(calls[*i].event, Event::Read(_)));
        out
    };

    let mut stack = vec![Frame { placed: None, candidates: candidates(&done, value), next: 0 }];
    let mut path: Vec<usize> = Vec::new();
    while let Some(top) = stack.last_mut() {
        if required_left == 0 {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > steps_max {
            return Verdict::Inconclusive;
        }
        if top.next >= top.candidates.len() {
            if path.len() >= deepest.0 {
                let mut slice: Vec<usize> = path.iter().rev().take(PATH_TAIL).copied().collect();
                slice.extend(top.candidates.iter().copied());
                slice.extend((0..n).filter(|i| !done[*i]).take(PATH_TAIL));
                deepest = (path.len(), slice);
            }
            let frame = stack.pop().unwrap_or(Frame { placed: None, candidates: Vec::new(), next: 0 });
            if let Some(i) = frame.placed {
                done[i] = false;
                hash ^= key(i);
                if let Event::Add(d) = calls[i].event {
                    value -= d;
                }
                if calls[i].end.is_some() {
                    required_left += 1;
                }
                path.pop();
            }
            continue;
        }
        let i = top.candidates[top.next];
        top.next += 1;
        let after = match calls[i].event {
            Event::Add(d) => value + d,
            Event::Read(_) => value,
        };
        if !visited.insert((hash ^ key(i), after)) {
            continue;
        }
        done[i] = true;
        hash ^= key(i);
        value = after;
        if calls[i].end.is_some() {
            required_left -= 1;
        }
        path.push(i);
        let next = candidates(&done, value);
        stack.push(Frame { placed: Some(i), candidates: next, next: 0 });
    }
    let mut ops: Vec<usize> = deepest.1.iter().map(|i| calls[*i].op).collect();
    ops.sort_unstable();
    ops.dedup();
    Verdict::Violation(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(start: u64, end: Option<u64>, d: i64, op: usize) -> Call {
        Call { start, end, event: Event::Add(d), op }
    }

    fn read(start: u64, end: u64, v: i64, op: usize) -> Call {
        Call { start, end: Some(end), event: Event::Read(v), op }
    }

    #[test]
    fn concurrent_writes_may_be_seen_in_either_order_and_unknown_ones_or_never() {
        let calls = [
            add(0, Some(10), 5, 0),
            add(1, Some(10), 7, 1),
            read(2, 11, 7, 2),
            read(12, 13, 12, 3),
            add(14, None, 100, 4),
            read(15, 16, 12, 5),
            read(17, 18, 112, 6),
        ];
        assert_eq!(check(&calls, 0, STEPS_MAX), Verdict::Linearizable);
        // The unknown one may also never happen.
        assert_eq!(check(&calls[..6], 0, STEPS_MAX), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_and_a_read_of_a_value_never_written_are_violations() {
        // The write of 5 ended before the read began: reading 0 is stale.
        let stale = [add(0, Some(10), 5, 0), read(11, 12, 0, 1)];
        let Verdict::Violation(ops) = check(&stale, 0, STEPS_MAX) else { panic!("stale read accepted") };
        assert!(ops.contains(&1), "{ops:?}");
        // A value no order of the writes gives.
        let never = [add(0, Some(10), 5, 0), add(0, Some(10), 7, 1), read(0, 20, 6, 2)];
        assert!(matches!(check(&never, 0, STEPS_MAX), Verdict::Violation(_)));
        // A value going back: 12 then 5 once both writes ended.
        let back = [add(0, Some(10), 5, 0), add(0, Some(10), 7, 1), read(11, 12, 12, 2), read(13, 14, 5, 3)];
        assert!(matches!(check(&back, 0, STEPS_MAX), Verdict::Violation(_)));
        // A refusal to find out in time is not a pass.
        let many: Vec<Call> = (0..40).map(|i| add(0, Some(100), 1 << (i % 20), i)).collect();
        let mut many = many;
        many.push(read(0, 100, -1, 40));
        assert_eq!(check(&many, 0, 1000), Verdict::Inconclusive);
    }
}
