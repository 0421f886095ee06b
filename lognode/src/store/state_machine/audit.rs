//! The audit trail (docs/SECURITY.md): one record per admin action, with the id of the API key
//! that asked, its log index and time, and its outcome. Key changes are recorded from their own
//! [`Request::Keys`] entries; node removal, topic and group deletion and offset resets come as
//! [`Request::Audited`] entries wrapping the action. The newest [`AUDIT_RECORDS_MAX`] records are
//! kept in the state's head (so in every snapshot); older ones are dropped and counted.
//!
//! [`Request::Keys`]: crate::types::Request::Keys

use std::collections::VecDeque;

use group_core::{GroupCode, GroupCommand, ResetTo};
use serde::{Deserialize, Serialize};

use super::state::State;
use crate::limits::{AUDIT_RECORDS_MAX, KEY_ID_BYTES_MAX};
use crate::types::{KeyCommand, Rejection, Request, Response};

/// One admin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Log index of the entry.
    pub index: u64,
    /// The entry's time (ms since the Unix epoch), set by the leader that proposed it.
    pub timestamp_ms: u64,
    /// Id of the API key that asked.
    pub by: String,
    /// What was asked: `key.create`, `key.bootstrap`, `key.revoke`, `node.remove`,
    /// `topic.delete`, `group.delete` or `group.reset_offsets`.
    pub action: String,
    /// What it was asked of: a key id, node id, topic, or group (with topic, partition, target).
    pub target: String,
    /// `ok`, or why nothing changed.
    pub outcome: String,
}

/// The newest audit records, and how many there ever were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// Oldest first; at most [`AUDIT_RECORDS_MAX`].
    pub records: VecDeque<AuditRecord>,
    /// Records ever made (never decreases).
    pub total: u64,
}

impl Audit {
    fn push(&mut self, record: AuditRecord) {
        if self.records.len() >= AUDIT_RECORDS_MAX {
            self.records.pop_front();
        }
        self.records.push_back(record);
        self.total = self.total.saturating_add(1);
    }

    /// Up to `limit` records with a log index above `after`, oldest first.
    pub fn after(&self, after: u64, limit: usize) -> Vec<AuditRecord> {
        let start = self.records.partition_point(|r| r.index <= after);
        self.records.iter().skip(start).take(limit).cloned().collect()
    }

    /// At most [`AUDIT_RECORDS_MAX`] records, no more than were ever made, in strictly rising
    /// log index order.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.records.len() > AUDIT_RECORDS_MAX || self.records.len() as u64 > self.total {
            return Err(format!("{} records kept, {} ever made", self.records.len(), self.total));
        }
        if let Some(w) = self.records.iter().zip(self.records.iter().skip(1)).find(|(a, b)| a.index >= b.index) {
            return Err(format!("record at index {} follows index {}", w.1.index, w.0.index));
        }
        Ok(())
    }

    /// Records a key change applied at `index` with `response`.
    pub fn record_keys(&mut self, index: u64, timestamp_ms: u64, command: &KeyCommand, response: &Response) {
        let (action, target, by) = match command {
            KeyCommand::Create(k) => ("key.create", &k.id, &k.created_by),
            KeyCommand::Bootstrap(k) => ("key.bootstrap", &k.id, &k.created_by),
            KeyCommand::Revoke { id, by } => ("key.revoke", id, by),
        };
        self.push(AuditRecord {
            index,
            timestamp_ms,
            by: bounded(by),
            action: action.to_owned(),
            target: bounded(target),
            outcome: outcome(response),
        });
    }
}

/// At most [`KEY_ID_BYTES_MAX`] bytes of `s` (a refused key change may carry a longer id).
fn bounded(s: &str) -> String {
    let mut end = s.len().min(KEY_ID_BYTES_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `ok`, or why the action changed nothing.
fn outcome(r: &Response) -> String {
    match r {
        Response::Rejected(e) => e.to_string(),
        Response::Group(o) if o.code != GroupCode::Ok => o.code.as_str().to_owned(),
        _ => "ok".to_owned(),
    }
}

/// The audit action and target of a request an [`Request::Audited`] entry may carry.
fn describe(request: &Request) -> Option<(&'static str, String)> {
    Some(match request {
        Request::RemoveNode { node_id } => ("node.remove", node_id.to_string()),
        Request::DeleteTopic { name } => ("topic.delete", name.clone()),
        Request::Group { command: GroupCommand::Delete { group }, .. } => ("group.delete", group.clone()),
        Request::Group { command: GroupCommand::ResetOffsets { group, topic, partition, to }, .. } => {
            let to = match to {
                ResetTo::Earliest => "earliest".to_owned(),
                ResetTo::Latest => "latest".to_owned(),
                ResetTo::Offset(o) => o.to_string(),
                ResetTo::Timestamp { timestamp_ms, .. } => format!("time {timestamp_ms}"),
            };
            let partition = partition.map_or_else(|| "*".to_owned(), |p| p.to_string());
            ("group.reset_offsets", format!("{group} {topic}/{partition} to {to}"))
        }
        _ => return None,
    })
}

impl State {
    /// Applies an [`Request::Audited`] entry: the action as its own entry would be, then its
    /// record. A request that is not an audited admin action, or a malformed `by`, is refused
    /// and changes nothing.
    pub(super) fn apply_audited(
        &mut self,
        log_index: u64,
        timestamp_ms: u64,
        by: &str,
        request: &Request,
        events: &mut Vec<Vec<u8>>,
    ) -> Response {
        let Some((action, target)) = describe(request) else {
            return Response::Rejected(Rejection::Invalid("an audited entry carries an admin action only".to_owned()));
        };
        if !super::keys::is_id(by) {
            return Response::Rejected(Rejection::Invalid(format!(
                "by: 1..={KEY_ID_BYTES_MAX} characters of [A-Za-z0-9._-]"
            )));
        }
        let response = self.apply(log_index, request, events);
        self.audit.push(AuditRecord {
            index: log_index,
            timestamp_ms,
            by: by.to_owned(),
            action: action.to_owned(),
            target,
            outcome: outcome(&response),
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u64) -> AuditRecord {
        AuditRecord {
            index,
            timestamp_ms: index * 10,
            by: "admin".into(),
            action: "node.remove".into(),
            target: "4".into(),
            outcome: "ok".into(),
        }
    }

    /// The newest `AUDIT_RECORDS_MAX` records are kept, read by index from a cursor.
    #[test]
    fn the_trail_is_bounded_and_read_after_a_cursor() {
        let mut audit = Audit::default();
        for i in 1..=(AUDIT_RECORDS_MAX as u64 + 5) {
            audit.push(record(i * 2));
        }
        assert_eq!(audit.records.len(), AUDIT_RECORDS_MAX);
        assert_eq!(audit.total, AUDIT_RECORDS_MAX as u64 + 5);
        assert_eq!(audit.records[0].index, 12, "the five oldest were dropped");
        let page = audit.after(13, 3);
        assert_eq!(page.iter().map(|r| r.index).collect::<Vec<_>>(), vec![14, 16, 18]);
        assert!(audit.after(u64::MAX, 10).is_empty());
        audit.check_invariants().expect("invariants");
        audit.records.swap(0, 1);
        assert!(audit.check_invariants().is_err(), "an out-of-order trail is caught");
    }

    /// A long id in a refused key change is cut to `KEY_ID_BYTES_MAX` bytes on a char boundary.
    #[test]
    fn record_fields_are_bounded() {
        assert_eq!(bounded(&"é".repeat(KEY_ID_BYTES_MAX)).len(), KEY_ID_BYTES_MAX);
        assert_eq!(bounded(&format!("a{}", "é".repeat(KEY_ID_BYTES_MAX))).len(), KEY_ID_BYTES_MAX - 1);
    }
}
