//! `POST /v1/transfers/{id}/revert` (issue 17): a reversal is a new transfer that moves the
//! original's posted amount back, from its credit account to its debit account.
//!
//! Its id is derived from the original's (`rev-` and the first 32 hex digits of the SHA-256 of
//! the original id), so the permanent idempotency of transfer ids (rule 4) makes a reversal
//! happen once: a second revert, or a retry, is an identical replay. What it reads first (the
//! original's accounts, currency and posted amount) never changes once the transfer is posted,
//! so reading it before submitting is no read-modify-write against a stale copy; the reversal
//! itself is checked by every rule in log order like any transfer (an account it would overdraw
//! refuses it with `insufficient_funds`: there is no `force`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ledger_core::{Command, NewTransfer, Outcome, ResultCode, TransferStatus};
use sha2::{Digest, Sha256};

use super::write_json;
use crate::auth::{MaybeCaller, check_account};
use crate::backend::ReadConsistency;
use crate::dto::Transfer;
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiPath;
use crate::openapi::RevertErrors;
use crate::server::AppState;
use crate::validate;

/// The id of the reversal of transfer `id`.
pub fn reversal_id(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("rev-{hex}")
}

/// Revert a posted transfer.
///
/// Creates the reversal: a transfer of the original's posted amount from its credit account back
/// to its debit account, with id `rev-` + 32 hex digits of the SHA-256 of the original id and
/// metadata `{"reverses": "<id>"}`. Happens once: a second revert answers 200 with the same
/// reversal and `Idempotent-Replayed: true`. Only a posted transfer can be reverted (a pending one
/// is voided instead). The reversal obeys every rule: if it would overdraw the account it debits
/// (one that spent what it received), it is refused with 422 `insufficient_funds` and nothing
/// moves. A key limited to an account prefix reverts only what its own accounts pay back. A
/// posting of a transaction is reverted with its transaction (409 `part_of_transaction`).
#[utoipa::path(post, path = "/v1/transfers/{id}/revert", tag = "transfers",
    params(("id" = String, Path, description = "The posted transfer to revert.", example = "t-1001")),
    responses(
        (status = 201, description = "The reversal, created.", body = Transfer,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        (status = 200, description = "Already reverted: the reversal.", body = Transfer,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true`."))),
        RevertErrors,
    ))]
pub async fn revert_transfer(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    validate::id(&id, "id")?;
    // Linearizable: the transfer may have just been made or posted.
    let read = st.call(st.backend().transfer(&id, ReadConsistency::Strong)).await?;
    let Some(original) = read.value else {
        return Err(ApiError::not_found(ErrorCode::TransferNotFound, format!("no transfer '{id}'")));
    };
    // A posting goes back with its whole transaction, never alone.
    if let Some((tx, n)) = super::transactions::posting_of(&original) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::PartOfTransaction,
            format!("transfer '{id}' is posting {n} of transaction '{tx}': revert the transaction"),
        ));
    }
    let amount = match (original.status, original.resolution) {
        (TransferStatus::Posted, Some(r)) if original.pending => r.amount,
        (TransferStatus::Posted, _) => original.amount,
        (status, _) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NotPosted,
                format!("transfer '{id}' is {}: only a posted transfer can be reverted", status.as_str()),
            ));
        }
    };
    // The reversal debits the original's credit account.
    check_account(&caller, &original.credit_account_id)?;
    let t = NewTransfer {
        flags: Default::default(),
        id: reversal_id(&id),
        debit_account_id: original.credit_account_id.to_string(),
        credit_account_id: original.debit_account_id.to_string(),
        amount,
        currency: original.currency.to_string(),
        // Ids are `[A-Za-z0-9._:-]`: nothing to escape.
        metadata: format!("{{\"reverses\":\"{id}\"}}"),
        pending: false,
        timeout_ms: None,
    };
    let applied = st.call(st.backend().submit(&Command::CreateTransfer(t.clone()))).await?;
    let Outcome::Transfer(r) = applied.value else {
        return Err(ApiError::internal("unexpected outcome for a reversal"));
    };
    let (status, replayed) = match r.code {
        ResultCode::Created => (StatusCode::CREATED, false),
        ResultCode::Exists => (StatusCode::OK, true),
        ResultCode::InsufficientFunds => {
            return Err(ApiError::from_rule(
                ResultCode::InsufficientFunds,
                format!(
                    "reverting '{id}' would take account '{}' below zero available; nothing moved",
                    t.debit_account_id
                ),
            ));
        }
        code => {
            return Err(ApiError::from_rule(code, format!("the reversal of '{id}' ({}) was refused: {code}", t.id)));
        }
    };
    let Some(d) = r.decision else {
        return Err(ApiError::internal("a created reversal has no decision"));
    };
    Ok(write_json(status, &Transfer::from_created(&t, &d), applied.index, replayed))
}

#[cfg(test)]
mod tests {
    use super::reversal_id;

    #[test]
    fn reversal_ids_are_valid_distinct_and_stable() {
        let a = reversal_id("t-1001");
        assert_eq!(a.len(), 36);
        assert!(ledger_core::is_valid_id(&a), "{a}");
        assert_eq!(a, reversal_id("t-1001"));
        assert_ne!(a, reversal_id("t-1002"));
        assert_ne!(reversal_id(&a), a, "a reversal can itself be reverted, under another id");
    }
}
