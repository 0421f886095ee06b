//! The ledger queries (issue 17): ListAccounts and ListTransfers on a replica chosen like other
//! reads.

use std::time::Duration;

use ledger_proto::convert;
use ledger_proto::ledger::{ListAccountsRequest, ListTransfersRequest};

use super::{GrpcBackend, bad_answer};
use crate::backend::{
    AccountsPage, AccountsQuery, BackendResult, Read, ReadConsistency, TransfersPage, TransfersQuery,
};

pub(super) async fn list_accounts(
    b: &GrpcBackend,
    q: AccountsQuery,
    read: ReadConsistency,
) -> BackendResult<Read<AccountsPage>> {
    let (metadata_key, metadata_value) = q.metadata.clone().unwrap_or_default();
    let r = b
        .nodes
        .read_call(read, Duration::ZERO, |mut c, opts| {
            let req = ListAccountsRequest {
                read: Some(opts),
                after: q.after,
                at_index: q.at_index,
                limit: q.limit,
                id_prefix: q.id_prefix.clone(),
                currency: q.currency.clone(),
                metadata_key: metadata_key.clone(),
                metadata_value: metadata_value.clone(),
            };
            async move { Ok(c.list_accounts(req).await?.into_inner()) }
        })
        .await?;
    let accounts = r.accounts.into_iter().map(convert::account_from_proto).collect::<Result<Vec<_>, _>>();
    let value = AccountsPage { accounts: accounts.map_err(bad_answer)?, next: r.next, at_index: r.at_index };
    Ok(Read { value, applied_index: r.applied_index })
}

pub(super) async fn list_transfers(
    b: &GrpcBackend,
    q: TransfersQuery,
    read: ReadConsistency,
) -> BackendResult<Read<Option<TransfersPage>>> {
    let (metadata_key, metadata_value) = q.metadata.clone().unwrap_or_default();
    let r = b
        .nodes
        .read_call(read, Duration::ZERO, |mut c, opts| {
            let req = ListTransfersRequest {
                read: Some(opts),
                after: q.after,
                at_index: q.at_index,
                limit: q.limit,
                account_id: q.account_id.clone(),
                status: q.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                from_index: q.created_index.0,
                to_index: q.created_index.1,
                from_ms: q.created_ms.0,
                to_ms: q.created_ms.1,
                metadata_key: metadata_key.clone(),
                metadata_value: metadata_value.clone(),
            };
            async move { Ok(c.list_transfers(req).await?.into_inner()) }
        })
        .await?;
    if r.account_not_found {
        return Ok(Read { value: None, applied_index: r.applied_index });
    }
    let transfers = r.transfers.into_iter().map(convert::transfer_from_proto).collect::<Result<Vec<_>, _>>();
    let value = TransfersPage { transfers: transfers.map_err(bad_answer)?, next: r.next, at_index: r.at_index };
    Ok(Read { value: Some(value), applied_index: r.applied_index })
}
