//! The webhook subscriptions the log holds (docs/WEBHOOKS.md): created and deleted by
//! [`Request::Webhooks`] entries, with the newest outcomes of their deliveries, applied
//! deterministically on every node. Bounded: at most [`WEBHOOKS_MAX`] subscriptions, each keeping
//! the newest [`WEBHOOK_DELIVERED_KEPT`] delivered and [`WEBHOOK_DEAD_KEPT`] dead deliveries.
//!
//! [`Request::Webhooks`]: crate::types::Request::Webhooks

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::limits::{
    WEBHOOK_DEAD_KEPT, WEBHOOK_DELIVERED_KEPT, WEBHOOK_ERROR_BYTES_MAX, WEBHOOK_EVENTS_MAX, WEBHOOK_ID_BYTES_MAX,
    WEBHOOK_RECORD_BATCH_MAX, WEBHOOK_SECRET_BYTES_MAX, WEBHOOK_SECRET_BYTES_MIN, WEBHOOK_URL_BYTES_MAX, WEBHOOKS_MAX,
};
use crate::types::{DeliveryRecord, Rejection, Response, WebhookCommand, WebhookRecord};

/// The event types a webhook may subscribe to (`*`: all of them).
pub const EVENT_TYPES: &[&str] =
    &["*", "account.created", "transfer.created", "transfer.posted", "transfer.voided", "transfer.expired"];

/// One subscription with the newest outcomes of its deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// The subscription.
    pub record: WebhookRecord,
    /// The newest delivered deliveries, oldest first.
    pub delivered: VecDeque<DeliveryRecord>,
    /// The newest dead letters, oldest first.
    pub dead: VecDeque<DeliveryRecord>,
    /// Deliveries ever recorded as delivered.
    pub delivered_total: u64,
    /// Deliveries ever recorded as dead.
    pub dead_total: u64,
}

/// The live subscriptions by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhooks {
    /// Live subscriptions by id.
    pub live: BTreeMap<String, Webhook>,
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= WEBHOOK_ID_BYTES_MAX
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Why `w` is not a subscription the log may hold (`Ok` for a valid one). Deterministic: every
/// node decides the same. The gateway checks the URL further (it parses it).
pub fn check(w: &WebhookRecord) -> Result<(), String> {
    if !is_id(&w.id) {
        return Err(format!("a webhook id is 1..={WEBHOOK_ID_BYTES_MAX} characters of [A-Za-z0-9._-]"));
    }
    if w.url.len() > WEBHOOK_URL_BYTES_MAX
        || !(w.url.starts_with("http://") || w.url.starts_with("https://"))
        || !w.url.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "url: an http:// or https:// URL of at most {WEBHOOK_URL_BYTES_MAX} visible ASCII characters"
        ));
    }
    if w.events.is_empty() || w.events.len() > WEBHOOK_EVENTS_MAX {
        return Err(format!("events: 1..={WEBHOOK_EVENTS_MAX} event types, not {}", w.events.len()));
    }
    if let Some(e) = w.events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(format!(
            "events: unknown event type {:?}; expected one of {}",
            e.chars().take(64).collect::<String>(),
            EVENT_TYPES.join(", ")
        ));
    }
    if !(WEBHOOK_SECRET_BYTES_MIN..=WEBHOOK_SECRET_BYTES_MAX).contains(&w.secret.len())
        || !w.secret.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "secret: {WEBHOOK_SECRET_BYTES_MIN}..={WEBHOOK_SECRET_BYTES_MAX} visible ASCII characters"
        ));
    }
    if !is_id(&w.created_by) {
        return Err(format!("created_by: 1..={WEBHOOK_ID_BYTES_MAX} characters of [A-Za-z0-9._-]"));
    }
    Ok(())
}

/// Why `d` is not a delivery record the log may hold.
pub fn check_delivery(d: &DeliveryRecord) -> Result<(), String> {
    if d.error.len() > WEBHOOK_ERROR_BYTES_MAX {
        return Err(format!("a delivery's error is at most {WEBHOOK_ERROR_BYTES_MAX} bytes"));
    }
    if d.event_type.is_empty() || d.event_type.len() > 32 || !d.event_type.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a delivery's event_type is 1..=32 visible ASCII characters".to_owned());
    }
    if d.attempts == 0 {
        return Err("a finished delivery made at least one attempt".to_owned());
    }
    if d.delivered != d.error.is_empty() {
        return Err("a delivered delivery has no error; a dead one says why".to_owned());
    }
    Ok(())
}

fn push_bounded(q: &mut VecDeque<DeliveryRecord>, d: DeliveryRecord, kept: usize) {
    if q.len() >= kept {
        q.pop_front();
    }
    q.push_back(d);
}

impl Webhooks {
    /// Applies one webhook command with the entry's timestamp.
    pub fn apply(&mut self, command: &WebhookCommand, log_index: u64, timestamp_ms: u64) -> Response {
        match command {
            WebhookCommand::Create(w) => {
                if let Err(e) = check(w) {
                    return Response::Rejected(Rejection::Invalid(e));
                }
                if self.live.contains_key(&w.id) {
                    return Response::Rejected(Rejection::WebhookExists(w.id.clone()));
                }
                if self.live.len() >= WEBHOOKS_MAX {
                    return Response::Rejected(Rejection::LimitExceeded(format!(
                        "webhook limit reached: {} subscriptions, at most {WEBHOOKS_MAX} (WEBHOOKS_MAX)",
                        self.live.len()
                    )));
                }
                let record = WebhookRecord { created_ms: timestamp_ms, created_index: log_index, ..w.clone() };
                let hook = Webhook {
                    record,
                    delivered: VecDeque::new(),
                    dead: VecDeque::new(),
                    delivered_total: 0,
                    dead_total: 0,
                };
                self.live.insert(w.id.clone(), hook);
                Response::WebhookDone
            }
            WebhookCommand::Delete { id } => match self.live.remove(id) {
                Some(_) => Response::WebhookDone,
                None => Response::Rejected(Rejection::UnknownWebhook(id.clone())),
            },
            WebhookCommand::Record { id, deliveries } => {
                if deliveries.len() > WEBHOOK_RECORD_BATCH_MAX {
                    return Response::Rejected(Rejection::Invalid(format!(
                        "at most {WEBHOOK_RECORD_BATCH_MAX} deliveries per record (WEBHOOK_RECORD_BATCH_MAX), not {}",
                        deliveries.len()
                    )));
                }
                if let Some(e) = deliveries.iter().find_map(|d| check_delivery(d).err()) {
                    return Response::Rejected(Rejection::Invalid(e));
                }
                let Some(hook) = self.live.get_mut(id) else {
                    return Response::Rejected(Rejection::UnknownWebhook(id.clone()));
                };
                for d in deliveries {
                    if d.delivered {
                        hook.delivered_total = hook.delivered_total.saturating_add(1);
                        push_bounded(&mut hook.delivered, d.clone(), WEBHOOK_DELIVERED_KEPT);
                    } else {
                        hook.dead_total = hook.dead_total.saturating_add(1);
                        push_bounded(&mut hook.dead, d.clone(), WEBHOOK_DEAD_KEPT);
                    }
                }
                Response::WebhookDone
            }
        }
    }

    /// What must hold after any sequence of applies: every subscription is valid and filed under
    /// its own id, within the limits, its kept records bounded and counted.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.live.len() > WEBHOOKS_MAX {
            return Err(format!("{} webhooks, more than {WEBHOOKS_MAX}", self.live.len()));
        }
        for (id, w) in &self.live {
            if *id != w.record.id {
                return Err(format!("webhook {:?} filed under id {id:?}", w.record.id));
            }
            check(&w.record).map_err(|e| format!("webhook {id}: {e}"))?;
            if w.delivered.len() > WEBHOOK_DELIVERED_KEPT || w.dead.len() > WEBHOOK_DEAD_KEPT {
                return Err(format!("webhook {id}: more delivery records kept than the limits"));
            }
            if (w.delivered.len() as u64) > w.delivered_total || (w.dead.len() as u64) > w.dead_total {
                return Err(format!("webhook {id}: more delivery records kept than counted"));
            }
            if w.delivered.iter().any(|d| !d.delivered) || w.dead.iter().any(|d| d.delivered) {
                return Err(format!("webhook {id}: a delivery record in the wrong list"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: &str) -> WebhookRecord {
        WebhookRecord {
            id: id.to_owned(),
            url: "http://127.0.0.1:9/hook".to_owned(),
            events: vec!["*".to_owned()],
            secret: "s".repeat(WEBHOOK_SECRET_BYTES_MIN),
            created_ms: 0,
            created_index: 0,
            created_by: "admin".to_owned(),
        }
    }

    fn delivery(offset: u64, delivered: bool) -> DeliveryRecord {
        DeliveryRecord {
            partition: 1,
            offset,
            event_index: 10 + offset,
            event_type: "transfer.created".to_owned(),
            delivered,
            attempts: if delivered { 1 } else { 5 },
            http_status: if delivered { 200 } else { 500 },
            error: if delivered { String::new() } else { "HTTP 500".to_owned() },
            first_attempt_ms: 1,
            last_attempt_ms: 2,
        }
    }

    /// A subscription is created once per id with the entry's time, and deleted once.
    #[test]
    fn webhooks_are_created_once_and_deleted_once() {
        let mut w = Webhooks::default();
        assert_eq!(w.apply(&WebhookCommand::Create(hook("a")), 7, 42), Response::WebhookDone);
        assert_eq!((w.live["a"].record.created_ms, w.live["a"].record.created_index), (42, 7));
        assert_eq!(
            w.apply(&WebhookCommand::Create(hook("a")), 7, 43),
            Response::Rejected(Rejection::WebhookExists("a".into()))
        );
        let del = WebhookCommand::Delete { id: "a".into() };
        assert_eq!(w.apply(&del, 7, 44), Response::WebhookDone);
        assert_eq!(w.apply(&del, 7, 45), Response::Rejected(Rejection::UnknownWebhook("a".into())));
        assert!(w.live.is_empty());
    }

    /// Malformed subscriptions are refused naming the field, and change nothing.
    #[test]
    fn malformed_webhooks_are_refused() {
        let mut w = Webhooks::default();
        let cases: Vec<(WebhookRecord, &str)> = vec![
            (WebhookRecord { id: String::new(), ..hook("x") }, "webhook id"),
            (WebhookRecord { id: "a b".into(), ..hook("x") }, "webhook id"),
            (WebhookRecord { url: "ftp://x".into(), ..hook("x") }, "url"),
            (WebhookRecord { url: "http://a b".into(), ..hook("x") }, "url"),
            (WebhookRecord { url: format!("http://{}", "a".repeat(WEBHOOK_URL_BYTES_MAX)), ..hook("x") }, "url"),
            (WebhookRecord { events: vec![], ..hook("x") }, "events"),
            (WebhookRecord { events: vec!["transfer.deleted".into()], ..hook("x") }, "unknown event type"),
            (WebhookRecord { events: vec!["*".into(); WEBHOOK_EVENTS_MAX + 1], ..hook("x") }, "events"),
            (WebhookRecord { secret: "short".into(), ..hook("x") }, "secret"),
            (WebhookRecord { secret: "s".repeat(WEBHOOK_SECRET_BYTES_MAX + 1), ..hook("x") }, "secret"),
            (WebhookRecord { created_by: String::new(), ..hook("x") }, "created_by"),
        ];
        for (h, field) in cases {
            match w.apply(&WebhookCommand::Create(h), 7, 1) {
                Response::Rejected(Rejection::Invalid(m)) => assert!(m.contains(field), "{field}: {m}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(w, Webhooks::default());
    }

    /// Past `WEBHOOKS_MAX` a create is refused naming the limit.
    #[test]
    fn subscriptions_are_bounded() {
        let mut w = Webhooks::default();
        for i in 0..WEBHOOKS_MAX {
            assert_eq!(w.apply(&WebhookCommand::Create(hook(&format!("h{i}"))), 7, 1), Response::WebhookDone);
        }
        match w.apply(&WebhookCommand::Create(hook("extra")), 7, 1) {
            Response::Rejected(Rejection::LimitExceeded(m)) => assert!(m.contains("WEBHOOKS_MAX"), "{m}"),
            other => panic!("{other:?}"),
        }
        w.check_invariants().expect("invariants");
    }

    /// Outcomes go to their list, the newest kept within the limits, all of them counted; a bad
    /// batch or an unknown id changes nothing.
    #[test]
    fn outcomes_are_kept_newest_first_and_bounded() {
        let mut w = Webhooks::default();
        assert_eq!(w.apply(&WebhookCommand::Create(hook("a")), 7, 1), Response::WebhookDone);
        let n = WEBHOOK_DELIVERED_KEPT as u64 + 5;
        let deliveries: Vec<_> = (0..n).map(|o| delivery(o, true)).chain([delivery(n, false)]).collect();
        let rec = WebhookCommand::Record { id: "a".into(), deliveries };
        assert_eq!(w.apply(&rec, 7, 2), Response::WebhookDone);
        let a = &w.live["a"];
        assert_eq!((a.delivered_total, a.dead_total), (n, 1));
        assert_eq!(a.delivered.len(), WEBHOOK_DELIVERED_KEPT);
        assert_eq!(a.delivered.front().map(|d| d.offset), Some(5), "the oldest ones were dropped");
        assert_eq!(a.dead.back().map(|d| d.offset), Some(n));
        w.check_invariants().expect("invariants");
        let before = w.clone();
        let bad = WebhookCommand::Record { id: "a".into(), deliveries: vec![delivery(1, true), delivery(2, false)] };
        assert_eq!(w.apply(&bad, 7, 3), Response::WebhookDone, "a valid batch");
        let mut w2 = before.clone();
        let mut broken = delivery(1, true);
        broken.error = "x".repeat(WEBHOOK_ERROR_BYTES_MAX + 1);
        let bad = WebhookCommand::Record { id: "a".into(), deliveries: vec![delivery(1, true), broken] };
        assert!(matches!(w2.apply(&bad, 7, 3), Response::Rejected(Rejection::Invalid(_))));
        assert_eq!(w2, before, "a refused batch records nothing");
        let unknown = WebhookCommand::Record { id: "zz".into(), deliveries: vec![delivery(1, true)] };
        assert_eq!(w2.apply(&unknown, 7, 3), Response::Rejected(Rejection::UnknownWebhook("zz".into())));
        let too_many = WebhookCommand::Record {
            id: "a".into(),
            deliveries: vec![delivery(1, true); WEBHOOK_RECORD_BATCH_MAX + 1],
        };
        assert!(
            matches!(w2.apply(&too_many, 7, 3), Response::Rejected(Rejection::Invalid(m)) if m.contains("WEBHOOK_RECORD_BATCH_MAX"))
        );
        assert_eq!(w2, before);
    }

    /// The invariants catch a state no apply could make.
    #[test]
    fn broken_webhook_states_fail_the_invariants() {
        let mut w = Webhooks::default();
        assert_eq!(w.apply(&WebhookCommand::Create(hook("a")), 7, 1), Response::WebhookDone);
        let mut misfiled = w.clone();
        let h = misfiled.live["a"].clone();
        misfiled.live.insert("b".into(), h);
        assert!(misfiled.check_invariants().expect_err("misfiled").contains("filed under"));
        let mut uncounted = w.clone();
        if let Some(h) = uncounted.live.get_mut("a") {
            h.delivered.push_back(delivery(1, true));
        }
        assert!(uncounted.check_invariants().expect_err("uncounted").contains("counted"));
        let mut wrong = w;
        if let Some(h) = wrong.live.get_mut("a") {
            h.dead.push_back(delivery(1, true));
            h.dead_total = 1;
        }
        assert!(wrong.check_invariants().expect_err("wrong list").contains("wrong list"));
    }
}
