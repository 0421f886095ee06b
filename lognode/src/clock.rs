//! The wall clock a leader stamps entries with (ms since the Unix epoch). Time enters the state
//! machine only through these stamps, and the ledger's log time is the largest stamp applied so
//! far, so a clock that jumps back cannot move the log's time back.
//!
//! For the chaos harness's clock nemesis only, the hidden `--fault-clock-file` shifts this clock:
//! the file holds a signed offset in ms, read again every [`FAULT_CLOCK_POLL`] by [`follow`]. The
//! offset is one per process (every in-process test leaves it at 0).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

/// How often [`follow`] reads the offset file again.
pub const FAULT_CLOCK_POLL: Duration = Duration::from_millis(100);
/// Largest offset taken from the file, either way (about 10 years): beyond that it is refused.
pub const FAULT_CLOCK_OFFSET_MAX_MS: i64 = 10 * 366 * 24 * 3600 * 1000;

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Now, by this node's wall clock (shifted by the fault offset, if one is set).
pub fn now_ms() -> i64 {
    let real =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    real.saturating_add(OFFSET_MS.load(Ordering::Relaxed)).max(0)
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
    fn offsets_parse_within_their_limit() {
        assert_eq!(parse_offset(" -90000\n"), Ok(-90_000));
        assert_eq!(parse_offset("3600000"), Ok(3_600_000));
        assert!(parse_offset("soon").is_err_and(|e| e.contains("signed number")));
        assert!(parse_offset(&(FAULT_CLOCK_OFFSET_MAX_MS + 1).to_string()).is_err_and(|e| e.contains("limit")));
    }
}
