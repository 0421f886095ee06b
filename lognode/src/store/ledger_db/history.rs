//! History by a global sequence (see the parent module's docs): each record links back to its
//! account's previous one; anchors every [`HISTORY_ANCHOR_EVERY`] versions and each account's
//! tail find a version in at most `HISTORY_ANCHOR_EVERY - 1` steps back.

use ledger_core::HistoryRecord;

use super::{DiskLedger, DiskView, HISTORY_ANCHOR_EVERY, Keyspaces, Live, Src, cache_insert, io, value};

pub(super) fn anchor_key(ai: u32, version: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&ai.to_be_bytes());
    k[4..].copy_from_slice(&version.to_be_bytes());
    k
}

/// A history record as stored: (account number, distance back to its previous record, record).
pub(super) type Stored = (u32, u64, HistoryRecord);

pub(super) fn get_history(r: &impl Src, ks: &Keyspaces, seq: u64) -> Stored {
    let v = io(r.get(&ks.history, &seq.to_be_bytes()))
        .unwrap_or_else(|| panic!("history record {seq} is not in the state store"));
    value(&v, "history record")
}

pub(super) fn get_anchor(r: &impl Src, ks: &Keyspaces, ai: u32, version: u64) -> (u64, u64) {
    let v = io(r.get(&ks.anchors, &anchor_key(ai, version)))
        .unwrap_or_else(|| panic!("the anchor of version {version} of account {ai} is not in the state store"));
    pair_of(&v, "an anchor")
}

/// Two numbers, big-endian (a tail or an anchor).
pub(super) fn pair_bytes((x, y): (u64, u64)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&x.to_be_bytes());
    b[8..].copy_from_slice(&y.to_be_bytes());
    b
}

/// What [`pair_bytes`] wrote; `what` names the entry if it is not 16 bytes.
fn pair_of(v: &[u8], what: &str) -> (u64, u64) {
    assert_eq!(v.len(), 16, "{what} in the state store is {} bytes, not 16", v.len());
    (u64::from_be_bytes(v[..8].try_into().expect("8 bytes")), u64::from_be_bytes(v[8..].try_into().expect("8 bytes")))
}

pub(super) fn get_tail(r: &impl Src, ks: &Keyspaces, ai: u32) -> Option<(u64, u64)> {
    io(r.get(&ks.tails, &ai.to_be_bytes())).map(|v| pair_of(&v, "a history tail"))
}

/// Where an account's history records are read from (the live store with its overlay, or a
/// read snapshot).
pub(super) trait HistorySrc {
    /// Record `seq`.
    fn record(&self, seq: u64) -> Stored;
    /// (sequence, log index) of version `version` (a multiple of [`HISTORY_ANCHOR_EVERY`]) of
    /// account `ai`.
    fn anchor(&self, ai: u32, version: u64) -> (u64, u64);
    /// (sequence, version) of the newest record of account `ai`.
    fn tail(&self, ai: u32) -> Option<(u64, u64)>;
}

/// Records `from..=to` of account `ai`: from the anchor at or above `to` (or the tail), back.
pub(super) fn history_range(s: &impl HistorySrc, ai: u32, from: u64, to: u64) -> Vec<HistoryRecord> {
    if from > to {
        return Vec::new();
    }
    assert!(from >= 1, "history versions start at 1");
    let (tail_seq, len) = s.tail(ai).unwrap_or_else(|| panic!("account {ai} has no history record {to}"));
    assert!(to <= len, "history record {to} of account {ai} is past its newest, {len}");
    let anchor = to.div_ceil(HISTORY_ANCHOR_EVERY) * HISTORY_ANCHOR_EVERY;
    let (mut seq, mut version) = if anchor < len { (s.anchor(ai, anchor).0, anchor) } else { (tail_seq, len) };
    let mut out = Vec::with_capacity(usize::try_from(to - from + 1).unwrap_or(0));
    loop {
        let (_, back, r) = s.record(seq);
        if version <= to {
            out.push(r);
        }
        if version == from {
            break;
        }
        assert!(back != 0 && back <= seq, "history record {seq} of account {ai} has no valid link back");
        seq -= back;
        version -= 1;
    }
    out.reverse();
    out
}

/// How many of account `ai`'s first `len` records have a log index `<= index`: a binary search
/// over its anchors, then at most one anchor interval read.
pub(super) fn history_partition_point(s: &impl HistorySrc, ai: u32, len: u64, index: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    // The largest m with anchor m·K (below len) at or before `index` (m = 0: none).
    let (mut lo, mut hi) = (0u64, (len - 1) / HISTORY_ANCHOR_EVERY);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if s.anchor(ai, mid * HISTORY_ANCHOR_EVERY).1 <= index {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let base = lo * HISTORY_ANCHOR_EVERY;
    let top = len.min(base + HISTORY_ANCHOR_EVERY);
    let within = history_range(s, ai, base + 1, top).iter().take_while(|r| r.index() <= index).count();
    base + within as u64
}

impl HistorySrc for DiskLedger {
    fn record(&self, seq: u64) -> Stored {
        match self.overlay.history.get(&seq) {
            Some(r) => r.clone(),
            None => get_history(&Live, &self.ks, seq),
        }
    }

    fn anchor(&self, ai: u32, version: u64) -> (u64, u64) {
        match self.overlay.anchors.get(&(ai, version)) {
            Some(s) => *s,
            None => get_anchor(&Live, &self.ks, ai, version),
        }
    }

    fn tail(&self, ai: u32) -> Option<(u64, u64)> {
        if let Some(t) = self.overlay.tails.get(&ai) {
            return Some(*t);
        }
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = cache.tails.get(&ai) {
            return Some(*t);
        }
        let t = get_tail(&Live, &self.ks, ai)?;
        cache_insert(&mut cache.tails, ai, t);
        Some(t)
    }
}

impl HistorySrc for DiskView {
    fn record(&self, seq: u64) -> Stored {
        get_history(&self.snap, &self.ks, seq)
    }

    fn anchor(&self, ai: u32, version: u64) -> (u64, u64) {
        get_anchor(&self.snap, &self.ks, ai, version)
    }

    fn tail(&self, ai: u32) -> Option<(u64, u64)> {
        get_tail(&self.snap, &self.ks, ai)
    }
}
