//! The audit trail in the client API (docs/SECURITY.md): admin writes are wrapped in
//! [`Cmd::Audited`] with the id of the key that asked; ListAudit reads this node's applied trail.

use ledger_proto::ledger::{AuditRecord, ListAuditRequest, ListAuditResponse};
use tonic::{Request, Response, Status};

use super::{ClientService, now_ms_u64};
use crate::limits::AUDIT_READ_MAX;
use crate::types::Request as Cmd;

/// Who a request from a gateway without API keys is recorded as.
pub(crate) const UNAUTHENTICATED: &str = "unauthenticated";

/// `request` as an audited admin action asked by key `by` (empty: [`UNAUTHENTICATED`]).
pub(crate) fn audited(by: String, request: Cmd) -> Cmd {
    let by = if by.is_empty() { UNAUTHENTICATED.to_owned() } else { by };
    Cmd::Audited { timestamp_ms: now_ms_u64(), by, request: Box::new(request) }
}

impl ClientService {
    pub(crate) async fn list_audit_call(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        let r = request.into_inner();
        self.prepare_read(r.read.as_ref()).await?;
        let limit = if r.limit == 0 { AUDIT_READ_MAX } else { r.limit.min(AUDIT_READ_MAX) };
        let (records, total, applied_index) = self.sm.with_state(|s| {
            let records = s.audit.after(r.after_index, limit as usize);
            (records, s.audit.total, s.last_applied.map_or(0, |l| l.index))
        });
        let records = records
            .into_iter()
            .map(|a| AuditRecord {
                index: a.index,
                timestamp_ms: a.timestamp_ms,
                by: a.by,
                action: a.action,
                target: a.target,
                outcome: a.outcome,
            })
            .collect();
        Ok(Response::new(ListAuditResponse { records, total, applied_index }))
    }
}
