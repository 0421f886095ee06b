//! Per-key quotas (issue 16): a token bucket (requests a second and a burst) and a limit of
//! requests in flight, each set per key in the log (`POST /v1/keys`) and enforced by every
//! gateway on its own (a client spread over `n` gateways gets up to `n` times its rate). Past
//! either: 429 with `Retry-After`. Counted per key id (never per secret) in `/metrics`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backend::Quota;

/// Why a request was throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttled {
    /// The bucket is empty: the next token comes after this long.
    Rate(Duration),
    /// The key has `max_in_flight` requests running.
    InFlight,
}

/// One key's limiter.
pub struct Limiter {
    quota: Quota,
    bucket: Mutex<(f64, Instant)>,
    in_flight: Option<Arc<Semaphore>>,
    requests: AtomicU64,
    throttled_rate: AtomicU64,
    throttled_in_flight: AtomicU64,
}

impl Limiter {
    fn new(quota: Quota) -> Limiter {
        let in_flight = (quota.max_in_flight > 0).then(|| Arc::new(Semaphore::new(quota.max_in_flight as usize)));
        Limiter {
            quota,
            bucket: Mutex::new((f64::from(burst(quota)), Instant::now())),
            in_flight,
            requests: AtomicU64::new(0),
            throttled_rate: AtomicU64::new(0),
            throttled_in_flight: AtomicU64::new(0),
        }
    }

    /// Admits one request: a token from the bucket and a slot in flight (held by the permit
    /// until the request ends), or why not.
    pub fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, Throttled> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if self.quota.rate_per_sec > 0 {
            let rate = f64::from(self.quota.rate_per_sec);
            let mut b = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(f64::from(burst(self.quota)));
            b.1 = now;
            if b.0 < 1.0 {
                self.throttled_rate.fetch_add(1, Ordering::Relaxed);
                return Err(Throttled::Rate(Duration::from_secs_f64((1.0 - b.0) / rate)));
            }
            b.0 -= 1.0;
        }
        match &self.in_flight {
            None => Ok(None),
            Some(s) => s.clone().try_acquire_owned().map(Some).map_err(|_| {
                self.throttled_in_flight.fetch_add(1, Ordering::Relaxed);
                Throttled::InFlight
            }),
        }
    }

    fn in_flight_now(&self) -> usize {
        self.in_flight.as_ref().map_or(0, |s| (self.quota.max_in_flight as usize).saturating_sub(s.available_permits()))
    }
}

/// A bucket's size: `burst`, or one second of `rate_per_sec` when 0.
fn burst(q: Quota) -> u32 {
    if q.burst > 0 { q.burst } else { q.rate_per_sec.max(1) }
}

/// The limiters of the live keys (at most one per live key: `KEYS_MAX` in lognode).
#[derive(Default)]
pub struct Quotas {
    by_key: Mutex<HashMap<String, Arc<Limiter>>>,
}

impl Quotas {
    /// Follows the live keys: a new key or a changed quota gets a fresh limiter, a revoked key's
    /// goes.
    pub fn sync<'a>(&self, keys: impl Iterator<Item = (&'a str, Quota)>) {
        let mut m = self.by_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = HashMap::with_capacity(m.len());
        for (id, q) in keys {
            let l = match m.remove(id) {
                Some(l) if l.quota == q => l,
                _ => Arc::new(Limiter::new(q)),
            };
            next.insert(id.to_owned(), l);
        }
        *m = next;
    }

    /// The limiter of key `id` (a fresh unlimited one for a key not loaded yet).
    pub fn of(&self, id: &str) -> Arc<Limiter> {
        let m = self.by_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.get(id).cloned().unwrap_or_else(|| Arc::new(Limiter::new(Quota::default())))
    }

    /// `/metrics` lines per key id.
    pub fn render(&self) -> String {
        let m = self.by_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ids: Vec<&String> = m.keys().collect();
        ids.sort();
        let mut o = String::new();
        let _ = writeln!(o, "# HELP gateway_key_requests_total Requests authenticated with each API key (by key id).");
        let _ = writeln!(o, "# TYPE gateway_key_requests_total counter");
        for id in &ids {
            let _ =
                writeln!(o, "gateway_key_requests_total{{key=\"{id}\"}} {}", m[*id].requests.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            o,
            "# HELP gateway_key_throttled_total Requests refused with 429 by a key's quota (by key id and reason)."
        );
        let _ = writeln!(o, "# TYPE gateway_key_throttled_total counter");
        for id in &ids {
            let l = &m[*id];
            let _ = writeln!(
                o,
                "gateway_key_throttled_total{{key=\"{id}\",reason=\"rate\"}} {}",
                l.throttled_rate.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                o,
                "gateway_key_throttled_total{{key=\"{id}\",reason=\"in_flight\"}} {}",
                l.throttled_in_flight.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP gateway_key_in_flight Requests in flight per API key with an in-flight quota.");
        let _ = writeln!(o, "# TYPE gateway_key_in_flight gauge");
        for id in &ids {
            let _ = writeln!(o, "gateway_key_in_flight{{key=\"{id}\"}} {}", m[*id].in_flight_now());
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket gives `burst` at once, then refuses, naming when the next token comes.
    #[test]
    fn a_bucket_gives_its_burst_then_refuses() {
        let l = Limiter::new(Quota { rate_per_sec: 2, burst: 3, max_in_flight: 0 });
        for i in 0..3 {
            assert!(l.admit().is_ok(), "request {i}");
        }
        match l.admit() {
            Err(Throttled::Rate(wait)) => {
                assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}")
            }
            other => panic!("{other:?}"),
        }
        assert!(Limiter::new(Quota::default()).admit().is_ok(), "no quota: no limit");
    }

    /// In-flight slots are held by the permit and come back when it drops.
    #[test]
    fn in_flight_slots_come_back() {
        let l = Limiter::new(Quota { rate_per_sec: 0, burst: 0, max_in_flight: 1 });
        let p = l.admit().expect("first");
        assert_eq!(l.admit().err(), Some(Throttled::InFlight));
        drop(p);
        assert!(l.admit().is_ok());
    }

    /// Limiters follow the keys: kept while the quota is the same, dropped with the key.
    #[test]
    fn limiters_follow_the_live_keys() {
        let q = Quotas::default();
        let a = Quota { rate_per_sec: 1, burst: 1, max_in_flight: 0 };
        q.sync([("k1", a)].into_iter());
        let first = q.of("k1");
        assert!(first.admit().is_ok());
        q.sync([("k1", a), ("k2", Quota::default())].into_iter());
        assert!(Arc::ptr_eq(&first, &q.of("k1")), "same quota: same bucket");
        q.sync([("k2", Quota::default())].into_iter());
        assert!(!q.render().contains("key=\"k1\""), "a revoked key leaves the metrics");
    }
}
