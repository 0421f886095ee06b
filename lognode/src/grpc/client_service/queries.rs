//! Ledger queries of the client API (issue 17): ListAccounts and ListTransfers scan the accounts
//! or transfers in creation order as of a log index, with filters, on this node's applied state
//! (a read like the others).

use ledger_core::{AccountFilter, AccountView, TransferFilter, TransferView};
use ledger_proto::convert;
use ledger_proto::ledger::{ListAccountsRequest, ListAccountsResponse, ListTransfersRequest, ListTransfersResponse};
use tonic::{Request, Response, Status};

use super::ClientService;

/// Whether `metadata` (a JSON object's text) has member `key` whose value is the string `value`,
/// or a number, boolean or null written as `value`.
fn metadata_has(metadata: &str, key: &str, value: &str) -> bool {
    // Most accounts do not mention the key at all: skip parsing those.
    if !metadata.contains(key) {
        return false;
    }
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(metadata) else {
        return false;
    };
    match m.get(key) {
        Some(serde_json::Value::String(s)) => s == value,
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null)) => {
            serde_json::from_str::<serde_json::Value>(value).is_ok_and(|parsed| parsed == *v)
        }
        _ => false,
    }
}

impl ClientService {
    pub(crate) async fn list_accounts_call(
        &self,
        request: Request<ListAccountsRequest>,
    ) -> Result<Response<ListAccountsResponse>, Status> {
        let r = request.into_inner();
        self.prepare_read(r.read.as_ref()).await?;
        if r.metadata_key.is_empty() != r.metadata_value.is_empty() {
            return Err(Status::invalid_argument("metadata_key and metadata_value go together"));
        }
        let limit = if r.limit == 0 { ledger_core::limits::ACCOUNT_PAGE_MAX } else { r.limit as usize };
        let (key, value) = (r.metadata_key.as_str(), r.metadata_value.as_str());
        let keep = |a: &AccountView| metadata_has(&a.metadata, key, value);
        let filter = AccountFilter {
            id_prefix: (!r.id_prefix.is_empty()).then_some(r.id_prefix.as_str()),
            currency: (!r.currency.is_empty()).then_some(r.currency.as_str()),
            keep: (!key.is_empty()).then_some(&keep as &dyn Fn(&AccountView) -> bool),
        };
        let (page, applied_index) = self.sm.with_state(|s| {
            let applied = s.last_applied.map_or(0, |l| l.index);
            let at = if r.at_index == 0 { applied } else { r.at_index };
            if at > applied {
                return (Err(at), applied);
            }
            (Ok((s.ledger.scan_accounts(r.after, at, limit, &filter), at)), applied)
        });
        let (page, at_index) = page.map_err(|at| {
            Status::out_of_range(format!("at_index {at} is past this node's applied index {applied_index}"))
        })?;
        Ok(Response::new(ListAccountsResponse {
            accounts: page.accounts.iter().map(convert::account_to_proto).collect(),
            next: page.next,
            at_index,
            applied_index,
        }))
    }
}

impl ClientService {
    pub(crate) async fn list_transfers_call(
        &self,
        request: Request<ListTransfersRequest>,
    ) -> Result<Response<ListTransfersResponse>, Status> {
        let r = request.into_inner();
        self.prepare_read(r.read.as_ref()).await?;
        if r.metadata_key.is_empty() != r.metadata_value.is_empty() {
            return Err(Status::invalid_argument("metadata_key and metadata_value go together"));
        }
        let status = if r.status.is_empty() {
            None
        } else {
            Some(convert::status_from_str(&r.status).map_err(|e| Status::invalid_argument(e.to_string()))?)
        };
        let limit = if r.limit == 0 { ledger_core::limits::TRANSFER_PAGE_MAX } else { r.limit as usize };
        let (key, value) = (r.metadata_key.as_str(), r.metadata_value.as_str());
        let keep = |t: &TransferView| metadata_has(&t.metadata, key, value);
        let filter = TransferFilter {
            account: (!r.account_id.is_empty()).then_some(r.account_id.as_str()),
            status,
            created_index: (r.from_index.unwrap_or(0), r.to_index.unwrap_or(u64::MAX)),
            created_ms: (r.from_ms.unwrap_or(0), r.to_ms.unwrap_or(u64::MAX)),
            keep: (!key.is_empty()).then_some(&keep as &dyn Fn(&TransferView) -> bool),
        };
        let (page, applied_index) = self.sm.with_state(|s| {
            let applied = s.last_applied.map_or(0, |l| l.index);
            let at = if r.at_index == 0 { applied } else { r.at_index };
            if at > applied {
                return (Err(at), applied);
            }
            (Ok((s.ledger.scan_transfers(r.after, at, limit, &filter), at)), applied)
        });
        let (page, at_index) = page.map_err(|at| {
            Status::out_of_range(format!("at_index {at} is past this node's applied index {applied_index}"))
        })?;
        let Some(page) = page else {
            return Ok(Response::new(ListTransfersResponse {
                at_index,
                applied_index,
                account_not_found: true,
                ..ListTransfersResponse::default()
            }));
        };
        Ok(Response::new(ListTransfersResponse {
            transfers: page.transfers.iter().map(convert::transfer_to_proto).collect(),
            next: page.next,
            at_index,
            applied_index,
            account_not_found: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::metadata_has;

    #[test]
    fn metadata_filters_match_members_by_value() {
        let m = r#"{"tier":"gold","n":3,"vip":true,"none":null,"nested":{"tier":"x"}}"#;
        assert!(metadata_has(m, "tier", "gold"));
        assert!(!metadata_has(m, "tier", "silver"));
        assert!(metadata_has(m, "n", "3") && metadata_has(m, "vip", "true") && metadata_has(m, "none", "null"));
        assert!(!metadata_has(m, "nested", "x"), "objects never match");
        assert!(!metadata_has(m, "missing", "gold"));
        assert!(!metadata_has("not json tier", "tier", "gold"));
    }
}
