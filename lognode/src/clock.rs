//! The clock a leader stamps entries with (ms since the Unix epoch). Time enters the state
//! machine only through these stamps, and the ledger's log time is the largest stamp applied so
//! far, so a stamp that ran ahead would hold the log's time (session and pending-transfer
//! deadlines with it) until the real time caught up.
//!
//! So the node does not take steps of the wall clock: its clock is the wall clock read when it
//! first needs one, carried on by the monotonic clock. A wall clock reading within
//! [`CLOCK_SLEW_MAX_MS`] of it is followed (NTP's small corrections); a step beyond is not (it is
//! logged, once per step), until the node restarts. Its readings never go back. Found by the
//! chaos harness's clock nemesis (docs/FAULTS.md, finding 3).
//!
//! For that nemesis only, the hidden `--fault-clock-file` shifts the wall clock this module
//! reads: the file holds a signed offset in ms, read again every [`FAULT_CLOCK_POLL`] by
//! [`follow`]. The offset is one per process (every in-process test leaves it at 0).

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

/// How often [`follow`] reads the offset file again.
pub const FAULT_CLOCK_POLL: Duration = Duration::from_millis(100);
/// Largest offset taken from the file, either way (about 10 years): beyond that it is refused.
pub const FAULT_CLOCK_OFFSET_MAX_MS: i64 = 10 * 366 * 24 * 3600 * 1000;
/// A wall clock reading at most this far from the node's clock is followed; beyond, it is a step
/// and is not.
pub const CLOCK_SLEW_MAX_MS: i64 = 1_000;

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The node's clock: where it was anchored to the wall clock, and its last reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// The wall clock's reading at the anchor (ms).
    anchor_wall_ms: i64,
    /// The monotonic clock's reading at the anchor (ms, from any fixed origin).
    anchor_mono_ms: i64,
    /// The last reading given.
    last_ms: i64,
    /// The step last logged (wall minus the node's clock, ms), so each is logged once.
    step_ms: i64,
}

/// One reading of [`Clock`]: the time, and a step of the wall clock not taken (to log), if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The time given.
    pub ms: i64,
    /// The wall clock is this far from the node's clock (ms) and was not followed: a new step.
    pub new_step_ms: Option<i64>,
}

impl Clock {
    /// A clock anchored at wall time `wall_ms`, monotonic time `mono_ms`.
    pub fn new(wall_ms: i64, mono_ms: i64) -> Clock {
        Clock { anchor_wall_ms: wall_ms, anchor_mono_ms: mono_ms, last_ms: wall_ms, step_ms: 0 }
    }

    /// The time at monotonic time `mono_ms`, the wall clock reading `wall_ms`: the wall clock when
    /// it is within [`CLOCK_SLEW_MAX_MS`] of the anchor carried on (and then it is the new anchor),
    /// else the anchor carried on; never below the last reading.
    pub fn read(&mut self, wall_ms: i64, mono_ms: i64) -> Reading {
        let carried = self.anchor_wall_ms.saturating_add(mono_ms.saturating_sub(self.anchor_mono_ms));
        let off = wall_ms.saturating_sub(carried);
        let (at, new_step_ms) = if off.abs() <= CLOCK_SLEW_MAX_MS {
            (self.anchor_wall_ms, self.anchor_mono_ms) = (wall_ms, mono_ms);
            self.step_ms = 0;
            (wall_ms, None)
        } else {
            let new = (off - self.step_ms).abs() > CLOCK_SLEW_MAX_MS;
            if new {
                self.step_ms = off;
            }
            (carried, new.then_some(off))
        };
        self.last_ms = self.last_ms.max(at);
        Reading { ms: self.last_ms, new_step_ms }
    }
}

/// The process's clock, anchored at its first reading, and the origin of its monotonic readings.
static CLOCK: Mutex<Option<(Clock, Instant)>> = Mutex::new(None);

/// Now, by this node's clock (see the module docs).
pub fn now_ms() -> i64 {
    let real =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let wall = real.saturating_add(OFFSET_MS.load(Ordering::Relaxed)).max(0);
    let mut guard = CLOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (clock, origin) = guard.get_or_insert_with(|| (Clock::new(wall, 0), Instant::now()));
    let mono = i64::try_from(origin.elapsed().as_millis()).unwrap_or(i64::MAX);
    let r = clock.read(wall, mono);
    drop(guard);
    if let Some(step) = r.new_step_ms {
        warn!(
            step_ms = step,
            "the wall clock stepped; this node's clock goes on from its monotonic clock (it takes the wall clock \
             again when the two are within 1 s, or at a restart)"
        );
    }
    r.ms
}

/// [`now_ms`] as unsigned.
pub fn now_ms_u64() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

/// Parses the offset file's text: one signed integer (ms), surrounding blanks ignored.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let ms: i64 = text.trim().parse().map_err(|e| format!("expected a signed number of ms: {e}"))?;
    if ms.abs() > FAULT_CLOCK_OFFSET_MAX_MS {
        return Err(format!("{ms} ms is past the limit of {FAULT_CLOCK_OFFSET_MAX_MS} ms"));
    }
    Ok(ms)
}

/// Follows the offset in `path` until the process ends: a missing file means no offset, a bad
/// one is logged and leaves the offset as it was.
pub async fn follow(path: PathBuf) {
    let mut tick = tokio::time::interval(FAULT_CLOCK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut said = None;
    loop {
        tick.tick().await;
        let ms = match tokio::fs::read_to_string(&path).await {
            Ok(text) => match parse_offset(&text) {
                Ok(ms) => ms,
                Err(e) => {
                    if said.as_deref() != Some(text.as_str()) {
                        warn!(path = %path.display(), "fault clock file: {e}");
                        said = Some(text);
                    }
                    continue;
                }
            },
            Err(_) => 0,
        };
        if OFFSET_MS.swap(ms, Ordering::Relaxed) != ms {
            info!(offset_ms = ms, "fault clock: the wall clock is shifted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_corrections_are_followed_and_steps_are_not() {
        let mut c = Clock::new(1_000_000, 0);
        // The monotonic clock carries it on; a wall clock 300 ms off is followed (a slew).
        assert_eq!(c.read(1_000_500, 500), Reading { ms: 1_000_500, new_step_ms: None });
        assert_eq!(c.read(1_001_300, 1_000), Reading { ms: 1_001_300, new_step_ms: None });
        // A step forward of 10 minutes is not taken, and reported once.
        let step = 600_000;
        assert_eq!(c.read(1_002_300 + step, 2_000), Reading { ms: 1_002_300, new_step_ms: Some(step) });
        assert_eq!(c.read(1_003_300 + step, 3_000), Reading { ms: 1_003_300, new_step_ms: None });
        // Back to the true time: followed again.
        assert_eq!(c.read(1_004_300, 4_000), Reading { ms: 1_004_300, new_step_ms: None });
        // A step back is not taken either; a slew back never makes a reading go back.
        assert_eq!(c.read(1_005_300 - step, 5_000), Reading { ms: 1_005_300, new_step_ms: Some(-step) });
        assert_eq!(c.read(1_005_400, 5_500), Reading { ms: 1_005_400, new_step_ms: None });
        assert_eq!(c.read(1_005_000, 5_600), Reading { ms: 1_005_400, new_step_ms: None });
        assert_eq!(c.read(1_006_000, 6_000), Reading { ms: 1_006_000, new_step_ms: None });
    }

    #[test]
    fn offsets_parse_within_their_limit() {
        assert_eq!(parse_offset(" -90000\n"), Ok(-90_000));
        assert_eq!(parse_offset("3600000"), Ok(3_600_000));
        assert!(parse_offset("soon").is_err_and(|e| e.contains("signed number")));
        assert!(parse_offset(&(FAULT_CLOCK_OFFSET_MAX_MS + 1).to_string()).is_err_and(|e| e.contains("limit")));
    }
}
