//! One delivery: POSTs of one event to a subscriber, retried with exponential backoff until a
//! 2xx answer or the last attempt.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ledger_client::Delivery;
use ledger_shutdown::Shutdown;

use super::order::{Pending, signature};
use super::{Config, Hook};

/// Bytes of a subscriber's answer read at most (the rest is ignored).
pub const ANSWER_BYTES_MAX: usize = 4096;
/// Characters of an error kept in a delivery record (lognode's `WEBHOOK_ERROR_BYTES_MAX`).
pub const ERROR_CHARS_MAX: usize = 200;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The delay before attempt `attempt + 1` (1-based `attempt` just failed): `backoff_min`
/// doubling up to `backoff_max`, minus up to a quarter of jitter derived from the delivery (so
/// deliveries that failed together do not retry in lockstep).
pub fn backoff(cfg: &Config, attempt: u32, jitter_seed: u64) -> Duration {
    let base = cfg.backoff_min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(cfg.backoff_max);
    let quarter = base / 4;
    let spread = u64::try_from(quarter.as_millis()).unwrap_or(u64::MAX).max(1);
    base - Duration::from_millis(jitter_seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) % spread)
}

/// The outcome of one attempt: `Ok(status)` for a 2xx, else the status (0: none) and why.
async fn attempt(http: &reqwest::Client, cfg: &Config, hook: &Hook, ev: &Pending) -> Result<u16, (u16, String)> {
    let body = ev.value.get().as_bytes().to_vec();
    let ts = now_ms() / 1000;
    let req = http
        .post(&hook.url)
        .timeout(cfg.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Ledger-Webhook-Id", &hook.id)
        .header("Ledger-Delivery-Id", format!("{}:{}:{}", hook.id, ev.partition, ev.offset))
        .header("Ledger-Event-Type", &ev.event_type)
        .header("Ledger-Timestamp", ts.to_string())
        .header("Ledger-Signature", signature(&hook.secret, ts, &body))
        .body(body);
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err((0, format!("timed out after {:?}", cfg.timeout))),
        Err(e) => return Err((0, error_text(&e))),
    };
    let status = resp.status().as_u16();
    // Read a little of the answer (bounded), so the connection can be reused.
    let mut read = 0usize;
    while read < ANSWER_BYTES_MAX {
        match tokio::time::timeout(cfg.timeout, resp.chunk()).await {
            Ok(Ok(Some(c))) => read += c.len(),
            _ => break,
        }
    }
    if resp.status().is_success() { Ok(status) } else { Err((status, format!("HTTP {status}"))) }
}

fn error_text(e: &reqwest::Error) -> String {
    let mut m = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = source
        && depth < 3
    {
        m.push_str(": ");
        m.push_str(&s.to_string());
        source = s.source();
        depth += 1;
    }
    m.chars().take(ERROR_CHARS_MAX).collect()
}

/// Delivers `ev` to `hook`: up to `cfg.attempts_max` attempts with backoff between them.
/// `None` if the stop began before the delivery finished (it is delivered again after a
/// restart).
pub async fn deliver(
    http: &reqwest::Client,
    cfg: &Config,
    hook: &Hook,
    ev: &Pending,
    stop: &Shutdown,
) -> Option<Delivery> {
    let first = now_ms();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let r = attempt(http, cfg, hook, ev).await;
        let (delivered, http_status, error) = match r {
            Ok(s) => (true, s, String::new()),
            Err((s, e)) => (false, s, e),
        };
        if delivered || tries >= cfg.attempts_max {
            if !delivered {
                tracing::warn!(webhook = %hook.id, partition = ev.partition, offset = ev.offset, attempts = tries,
                    error = %error, "webhook delivery dead");
            }
            return Some(Delivery {
                partition: ev.partition,
                offset: ev.offset,
                event_index: ev.index,
                event_type: ev.event_type.clone(),
                status: if delivered { "delivered" } else { "dead" }.to_owned(),
                attempts: tries,
                http_status,
                error,
                first_attempt_ms: first,
                last_attempt_ms: now_ms(),
            });
        }
        tracing::debug!(webhook = %hook.id, offset = ev.offset, attempt = tries, error = %error, "webhook attempt failed");
        if stop.sleep(backoff(cfg, tries, ev.offset ^ u64::from(ev.partition) << 56)).await {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backoff doubles from its minimum to its maximum, less at most a quarter of jitter.
    #[test]
    fn backoff_doubles_within_bounds() {
        let cfg = Config {
            backoff_min: Duration::from_millis(400),
            backoff_max: Duration::from_secs(3),
            ..Config::default()
        };
        for seed in [0u64, 1, 77, u64::MAX] {
            let d: Vec<Duration> = (1..=6).map(|a| backoff(&cfg, a, seed)).collect();
            let bases = [400u64, 800, 1600, 3000, 3000, 3000];
            for (d, b) in d.iter().zip(bases) {
                let b = Duration::from_millis(b);
                assert!(*d <= b && *d >= b - b / 4, "{d:?} vs {b:?}");
            }
        }
        assert!(backoff(&cfg, u32::MAX, 3) <= cfg.backoff_max);
    }
}
