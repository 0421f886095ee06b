//! `GET /v1/audit`: the audit trail (admin; docs/SECURITY.md). Every admin action is a log
//! entry with the id of the key that asked: key changes, node removal, topic and group
//! deletion, offset resets. The cluster keeps the newest 1000 records.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::read_json;
use crate::backend::{AuditEntry, ReadConsistency};
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiQuery;
use crate::limits::{AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX};
use crate::openapi::ReadErrors;
use crate::server::AppState;

/// Query parameters of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Records after this log index: the `next` of the previous page (absent: from the oldest
    /// record the cluster keeps).
    #[param(example = 0)]
    pub after: Option<u64>,
    /// Page size, `1..=1000` (default 100).
    #[param(example = 100, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One admin action.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordBody {
    /// Log index of the action's entry.
    #[schema(example = 42)]
    pub index: u64,
    /// Log time of the entry (ms since the Unix epoch).
    #[schema(example = 1764150000123u64)]
    pub timestamp_ms: u64,
    /// Id of the API key that asked (`unauthenticated` from a gateway run with `--auth none`,
    /// `bootstrap` for the cluster's first admin key).
    #[schema(example = "admin")]
    pub by: String,
    /// `key.create`, `key.bootstrap`, `key.revoke`, `node.remove`, `topic.delete`,
    /// `group.delete` or `group.reset_offsets`.
    #[schema(example = "key.revoke")]
    pub action: String,
    /// What the action was asked of: a key id, a node id, a topic, or a group (with the topic,
    /// partition and target of a reset).
    #[schema(example = "key-5f0c2a9d81e34b27")]
    pub target: String,
    /// `ok`, or why nothing changed.
    #[schema(example = "ok")]
    pub outcome: String,
}

impl From<AuditEntry> for AuditRecordBody {
    fn from(a: AuditEntry) -> Self {
        AuditRecordBody {
            index: a.index,
            timestamp_ms: a.timestamp_ms,
            by: a.by,
            action: a.action,
            target: a.target,
            outcome: a.outcome,
        }
    }
}

/// A page of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageBody {
    /// Oldest first.
    pub records: Vec<AuditRecordBody>,
    /// Admin actions ever recorded (the cluster keeps the newest 1000).
    #[schema(example = 3)]
    pub total: u64,
    /// Cursor for the next page (pass it as `after`); absent when this page is the last.
    pub next: Option<u64>,
}

/// The audit trail (admin): admin actions with the key that asked, oldest first.
///
/// Key changes, node removal, topic and group deletion and offset resets, each with its log
/// index and time and whether it changed anything. Read from the leader (linearizable). The
/// cluster keeps the newest 1000 records.
#[utoipa::path(get, path = "/v1/audit", tag = "keys", params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit trail.", body = AuditPageBody,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        ReadErrors,
    ))]
pub async fn list_audit(State(st): State<AppState>, ApiQuery(q): ApiQuery<AuditQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(AUDIT_PAGE_DEFAULT);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(ErrorCode::InvalidQuery, format!("limit must be in 1..={AUDIT_PAGE_MAX}")));
    }
    let read = st.call(st.backend().list_audit(q.after.unwrap_or(0), limit, ReadConsistency::Strong)).await?;
    let page = read.value;
    let full = page.records.len() >= limit as usize;
    let next = if full { page.records.last().map(|r| r.index) } else { None };
    let body = AuditPageBody { records: page.records.into_iter().map(Into::into).collect(), total: page.total, next };
    Ok(read_json(&body, read.applied_index))
}
