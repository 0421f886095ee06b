//! `/v1/transactions` (issue 17): several postings under one id, applied atomically, and their
//! reversal.
//!
//! A transaction is built on the ledger's own rules, like a reversal: its postings are the
//! transfers of one atomic batch (rule 7), so they are decided in order in one log entry, each by
//! every rule, and a later posting may spend what an earlier one moved; if any is refused, none
//! is applied. Posting `n` of transaction `T` is the transfer `T:n` (`n` from 0), so rule 4 makes
//! the whole transaction idempotent forever: an identical replay finds every posting as it was
//! (200, `Idempotent-Replayed`), and any other body differs in at least one posting (409
//! `id_conflict`). Posting 0 carries the transaction's metadata and its posting count; every
//! posting carries the transaction id in its metadata, so the events of the `ledger` topic, the
//! transfer queries (`metadata_key=transaction`) and the projector all see it.
//!
//! The reversal of `T` is the transaction `rev-` + 32 hex digits of the SHA-256 of `T` (as for a
//! transfer), with the postings swapped and in the opposite order, so that it undoes `T` exactly:
//! once, all or nothing, and refused with `insufficient_funds` when an account has spent what `T`
//! brought it (no `force`).

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ledger_core::{Command, NewTransfer, Outcome, ResultCode, TransferView};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::reversals::reversal_id;
use super::{read_json, write_json};
use crate::auth::{MaybeCaller, check_account, prefix_of};
use crate::backend::ReadConsistency;
use crate::dto::{ReadQuery, metadata_value, read_consistency};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Obj};
use crate::limits::{
    METADATA_BYTES_MAX, TRANSACTION_ID_BYTES_MAX, TRANSACTION_POSTINGS_MAX, TRANSACTION_READS_IN_FLIGHT,
};
use crate::openapi::{CreateTransactionErrors, RevertTransactionErrors, TransactionReadErrors};
use crate::server::AppState;
use crate::validate;

/// The transfer id of posting `n` of transaction `tx`.
pub fn posting_id(tx: &str, n: usize) -> String {
    format!("{tx}:{n}")
}

/// If `t` is a posting of a transaction (its id is `T:n` and its metadata says so): `(T, n)`.
pub fn posting_of(t: &TransferView) -> Option<(String, usize)> {
    let Value::Object(m) = metadata_value(&t.metadata) else { return None };
    let tx = m.get("transaction")?.as_str()?;
    let n = usize::try_from(m.get("posting")?.as_u64()?).ok()?;
    (*t.id == *posting_id(tx, n)).then(|| (tx.to_owned(), n))
}

/// One posting of `POST /v1/transactions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostingRequest {
    /// Account debited.
    #[schema(example = "alice")]
    pub debit_account_id: String,
    /// Account credited.
    #[schema(example = "bob")]
    pub credit_account_id: String,
    /// Integer minor units, `1..=9223372036854775807`.
    #[schema(value_type = i64, example = 250, minimum = 1)]
    pub amount: serde_json::Number,
    /// Currency; both accounts must have it. Postings of one transaction may have different ones.
    #[schema(example = "USD")]
    pub currency: String,
}

/// Body of `POST /v1/transactions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "pay-7", "postings": [
    {"debit_account_id": "alice", "credit_account_id": "shop", "amount": 1000, "currency": "USD"},
    {"debit_account_id": "shop", "credit_account_id": "fees", "amount": 30, "currency": "USD"}
], "metadata": {"order": "o-17"}}))]
pub struct CreateTransactionRequest {
    /// 1–124 characters of `[A-Za-z0-9._:-]`; the idempotency key forever. Posting `n` becomes
    /// the transfer `<id>:<n>`.
    #[schema(example = "pay-7", min_length = 1, max_length = 124, pattern = "^[A-Za-z0-9._:-]+$")]
    pub id: String,
    /// 1..=100 postings, applied in order, all or none.
    #[schema(value_type = Vec<PostingRequest>)]
    pub postings: Vec<Obj<PostingRequest>>,
    /// A JSON object; with the transaction's id and posting count at most 4096 bytes canonicalized.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// One posting of a transaction: a posted transfer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Posting {
    /// The posting's transfer (`<transaction id>:<n>`), readable at `GET /v1/transfers/{id}`.
    #[schema(example = "pay-7:0")]
    pub transfer_id: String,
    /// Account debited.
    pub debit_account_id: String,
    /// Account credited.
    pub credit_account_id: String,
    /// Amount moved.
    pub amount: u64,
    /// Currency.
    pub currency: String,
}

/// A transaction: postings applied together under one id.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transaction {
    /// Transaction id.
    #[schema(example = "pay-7")]
    pub id: String,
    /// The postings, in the order they were applied.
    pub postings: Vec<Posting>,
    /// Metadata object (a reversal's is `{"reverses": "<id>"}`).
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Log index of the entry that applied it.
    pub index: u64,
    /// Log time (ms) of that entry.
    pub timestamp_ms: u64,
}

/// The metadata text of posting `n` of `count`: the transaction id and the posting's number;
/// posting 0 also the count and the transaction's metadata.
fn posting_metadata(tx: &str, n: usize, count: usize, metadata: &Value) -> Result<String, ApiError> {
    let v = if n == 0 {
        json!({"transaction": tx, "posting": 0, "postings": count, "metadata": metadata})
    } else {
        json!({"transaction": tx, "posting": n})
    };
    let text = validate::metadata(Some(&v), "metadata")?;
    if text.len() > METADATA_BYTES_MAX {
        return Err(ApiError::from_rule(
            ResultCode::MetadataTooLarge,
            format!(
                "metadata with the transaction's id and posting count is {} bytes canonicalized; the limit is \
                 {METADATA_BYTES_MAX}",
                text.len()
            ),
        ));
    }
    Ok(text)
}

/// The posting transfers of transaction `tx`.
fn postings_of(tx: &str, postings: &[Posting], metadata: &Value) -> Result<Vec<NewTransfer>, ApiError> {
    postings
        .iter()
        .enumerate()
        .map(|(n, p)| {
            Ok(NewTransfer {
                flags: Default::default(),
                id: posting_id(tx, n),
                debit_account_id: p.debit_account_id.clone(),
                credit_account_id: p.credit_account_id.clone(),
                amount: p.amount,
                currency: p.currency.clone(),
                metadata: posting_metadata(tx, n, postings.len(), metadata)?,
                pending: false,
                timeout_ms: None,
            })
        })
        .collect()
}

fn transaction_id(id: &str, field: &str) -> Result<(), ApiError> {
    validate::id(id, field)?;
    if id.len() > TRANSACTION_ID_BYTES_MAX {
        return Err(ApiError::from_rule(
            ResultCode::InvalidId,
            format!(
                "{field} must be 1–{TRANSACTION_ID_BYTES_MAX} characters of [A-Za-z0-9._:-] (a posting's id adds ':<n>')"
            ),
        ));
    }
    Ok(())
}

fn validate_request(req: &CreateTransactionRequest) -> Result<(Vec<Posting>, Value), ApiError> {
    transaction_id(&req.id, "id")?;
    let n = req.postings.len();
    if n == 0 {
        return Err(ApiError::unprocessable(ErrorCode::BatchEmpty, "postings must not be empty"));
    }
    if n > TRANSACTION_POSTINGS_MAX {
        return Err(ApiError::from_rule(
            ResultCode::BatchTooLarge,
            format!("{n} postings; the limit is {TRANSACTION_POSTINGS_MAX}"),
        ));
    }
    let mut postings = Vec::with_capacity(n);
    for (i, Obj(p)) in req.postings.iter().enumerate() {
        validate::id(&p.debit_account_id, &format!("postings[{i}].debit_account_id"))?;
        validate::id(&p.credit_account_id, &format!("postings[{i}].credit_account_id"))?;
        validate::currency(&p.currency, &format!("postings[{i}].currency"))?;
        let amount = validate::amount(&p.amount, &format!("postings[{i}].amount"))?;
        postings.push(Posting {
            transfer_id: posting_id(&req.id, i),
            debit_account_id: p.debit_account_id.clone(),
            credit_account_id: p.credit_account_id.clone(),
            amount,
            currency: p.currency.clone(),
        });
    }
    // Canonical, so that key order does not make a replay a conflict.
    let metadata = metadata_value(&validate::metadata(req.metadata.as_ref(), "metadata")?);
    Ok((postings, metadata))
}

/// Why posting `i` was refused, for a transaction or (`reverting`) for the reversal of one.
fn refusal(tx: &str, reverting: Option<&str>, i: usize, code: ResultCode, t: &NewTransfer) -> ApiError {
    let what = match reverting {
        Some(original) => format!("reverting '{original}'"),
        None => format!("postings[{i}]"),
    };
    let detail = match code {
        ResultCode::IdConflict => {
            return ApiError::from_rule(
                code,
                format!("transaction '{tx}' already exists with a different body (its posting '{}' differs)", t.id),
            );
        }
        ResultCode::AccountNotFound => {
            format!("{what}: account '{}' or '{}' does not exist", t.debit_account_id, t.credit_account_id)
        }
        ResultCode::SameAccount => format!("{what}: the debit and credit accounts are the same"),
        ResultCode::CurrencyMismatch => format!("{what}: an account does not have currency {}", t.currency),
        ResultCode::InsufficientFunds => {
            format!("{what} would take account '{}' below zero available", t.debit_account_id)
        }
        other => format!("{what} ({}) was refused: {other}", t.id),
    };
    ApiError::from_rule(code, format!("{detail}; nothing moved"))
}

/// Applies the postings of transaction `tx` as one atomic batch and answers with the transaction.
async fn submit(
    st: &AppState,
    tx: &str,
    reverting: Option<&str>,
    postings: Vec<Posting>,
    metadata: Value,
) -> Result<Response, ApiError> {
    let transfers = postings_of(tx, &postings, &metadata)?;
    let cmd = Command::CreateTransfers { transfers, atomic: true };
    let applied = st.call(st.backend().submit(&cmd)).await?;
    let (Outcome::Batch(b), Command::CreateTransfers { transfers, .. }) = (applied.value, cmd) else {
        return Err(ApiError::internal("unexpected outcome for a transaction"));
    };
    if b.results.len() != transfers.len() {
        return Err(ApiError::internal("the batch result does not have one result per posting"));
    }
    if let Some(f) = b.failed {
        let i = f.item as usize;
        let Some(t) = transfers.get(i) else {
            return Err(ApiError::internal("the failed posting is outside the transaction"));
        };
        return Err(refusal(tx, reverting, i, f.code, t));
    }
    if b.code != ResultCode::Created {
        return Err(ApiError::from_rule(b.code, format!("transaction '{tx}' was refused: {}", b.code)));
    }
    let replayed = b.results.iter().all(|r| r.code == ResultCode::Exists);
    let Some(d) = b.results.first().and_then(|r| r.decision) else {
        return Err(ApiError::internal("an applied transaction has no decision"));
    };
    let body = Transaction { id: tx.to_owned(), postings, metadata, index: d.index, timestamp_ms: d.timestamp_ms };
    let status = if replayed { StatusCode::OK } else { StatusCode::CREATED };
    Ok(write_json(status, &body, applied.index, replayed))
}

/// Create a transaction: several postings under one id, applied atomically.
///
/// The postings are applied in order in one log entry, each checked by every rule (a later
/// posting may spend what an earlier one moved); if one is refused, none is applied and the
/// answer names it. Posting `n` is the transfer `<id>:<n>`, whose metadata carries the
/// transaction id (so do the `ledger` topic's events). Idempotent on `id` forever: an identical
/// body answers 200 with the original result and `Idempotent-Replayed: true`; a different body
/// answers 409 `id_conflict`.
#[utoipa::path(post, path = "/v1/transactions", tag = "transactions", request_body = CreateTransactionRequest,
    responses(
        (status = 201, description = "Created.", body = Transaction,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        (status = 200, description = "Identical replay: the original result.", body = Transaction,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true`."))),
        CreateTransactionErrors,
    ))]
pub async fn create_transaction(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiJson(req): ApiJson<CreateTransactionRequest>,
) -> Result<Response, ApiError> {
    let (postings, metadata) = validate_request(&req)?;
    for p in &postings {
        check_account(&caller, &p.debit_account_id)?;
    }
    submit(&st, &req.id, None, postings, metadata).await
}

/// Reads transaction `id`: posting 0 (with `read`), then the others from a replica that applied
/// it. `None` if there is no such transaction.
async fn read_transaction(
    st: &AppState,
    id: &str,
    read: ReadConsistency,
) -> Result<Option<(Transaction, u64)>, ApiError> {
    let first = st.call(st.backend().transfer(&posting_id(id, 0), read)).await?;
    let Some(t0) = first.value else { return Ok(None) };
    let Value::Object(head) = metadata_value(&t0.metadata) else { return Ok(None) };
    let count = head.get("postings").and_then(Value::as_u64).and_then(|c| usize::try_from(c).ok());
    let (Some(count), Some(metadata)) = (count, head.get("metadata")) else { return Ok(None) };
    if posting_of(&t0).is_none_or(|(tx, n)| tx != id || n != 0) || !(1..=TRANSACTION_POSTINGS_MAX).contains(&count) {
        return Ok(None);
    }
    // Every posting was applied in t0's entry: any replica that applied it has them all.
    let pinned = ReadConsistency::MinIndex(t0.created.index);
    let mut rest = Vec::with_capacity(count - 1);
    let mut reads = tokio::task::JoinSet::new();
    let mut next = 1;
    loop {
        while next < count && reads.len() < TRANSACTION_READS_IN_FLIGHT {
            let (st, pid) = (st.clone(), posting_id(id, next));
            let n = next;
            reads.spawn(async move { st.call(st.backend().transfer(&pid, pinned)).await.map(|r| (n, r)) });
            next += 1;
        }
        let Some(done) = reads.join_next().await else { break };
        rest.push(done.map_err(|e| ApiError::internal(format!("a posting read failed: {e}")))??);
    }
    rest.sort_unstable_by_key(|(n, _)| *n);
    let mut applied_index = first.applied_index;
    let mut postings = Vec::with_capacity(count);
    let as_posting = |t: &TransferView| Posting {
        transfer_id: t.id.to_string(),
        debit_account_id: t.debit_account_id.to_string(),
        credit_account_id: t.credit_account_id.to_string(),
        amount: t.amount,
        currency: t.currency.to_string(),
    };
    postings.push(as_posting(&t0));
    for (n, r) in rest {
        applied_index = applied_index.max(r.applied_index);
        match r.value {
            Some(t) if posting_of(&t).is_some_and(|(tx, k)| tx == id && k == n) => postings.push(as_posting(&t)),
            _ => return Err(ApiError::internal(format!("transaction '{id}' has no posting {n}"))),
        }
    }
    let tx = Transaction {
        id: id.to_owned(),
        postings,
        metadata: metadata.clone(),
        index: t0.created.index,
        timestamp_ms: t0.created.timestamp_ms,
    };
    Ok(Some((tx, applied_index)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(ErrorCode::TransactionNotFound, format!("no transaction '{id}'"))
}

/// Get a transaction with its postings.
///
/// A key limited to an account prefix sees a transaction only when every posting debits or
/// credits one of its accounts.
#[utoipa::path(get, path = "/v1/transactions/{id}", tag = "transactions",
    params(("id" = String, Path, description = "Transaction id.", example = "pay-7"), ReadQuery),
    responses(
        (status = 200, description = "The transaction.", body = Transaction,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        TransactionReadErrors,
    ))]
pub async fn get_transaction(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    transaction_id(&id, "id")?;
    let read = read_consistency(q.consistency, q.min_index);
    let Some((tx, applied_index)) = read_transaction(&st, &id, read).await? else { return Err(not_found(&id)) };
    if let Some(p) = prefix_of(&caller)
        && !tx.postings.iter().all(|t| t.debit_account_id.starts_with(p) || t.credit_account_id.starts_with(p))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("transaction '{id}' has postings between accounts outside this key's account prefix"),
        ));
    }
    Ok(read_json(&tx, applied_index))
}

/// Revert a transaction.
///
/// Creates the reversal: the transaction `rev-` + 32 hex digits of the SHA-256 of the id, whose
/// postings are the original's with debit and credit swapped, in the opposite order, and whose
/// metadata is `{"reverses": "<id>"}`. Happens once: a second revert answers 200 with the same
/// reversal and `Idempotent-Replayed: true`. All or nothing: if a posting would overdraw the
/// account it debits (one that spent what it received), it is refused with 422
/// `insufficient_funds` and nothing moves. A reversal may itself be reverted.
#[utoipa::path(post, path = "/v1/transactions/{id}/revert", tag = "transactions",
    params(("id" = String, Path, description = "The transaction to revert.", example = "pay-7")),
    responses(
        (status = 201, description = "The reversal, created.", body = Transaction,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        (status = 200, description = "Already reverted: the reversal.", body = Transaction,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true`."))),
        RevertTransactionErrors,
    ))]
pub async fn revert_transaction(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    transaction_id(&id, "id")?;
    // Linearizable: the transaction may have just been made. Its postings never change again.
    let Some((original, _)) = read_transaction(&st, &id, ReadConsistency::Strong).await? else {
        return Err(not_found(&id));
    };
    let rev = reversal_id(&id);
    let postings: Vec<Posting> = original
        .postings
        .iter()
        .rev()
        .enumerate()
        .map(|(n, p)| Posting {
            transfer_id: posting_id(&rev, n),
            debit_account_id: p.credit_account_id.clone(),
            credit_account_id: p.debit_account_id.clone(),
            amount: p.amount,
            currency: p.currency.clone(),
        })
        .collect();
    let mut seen = HashSet::new();
    for p in &postings {
        if seen.insert(p.debit_account_id.as_str()) {
            check_account(&caller, &p.debit_account_id)?;
        }
    }
    submit(&st, &rev, Some(&id), postings, json!({"reverses": id})).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posting_ids_are_valid_and_fit_for_the_longest_transaction_id() {
        let longest = "t".repeat(TRANSACTION_ID_BYTES_MAX);
        let last = posting_id(&longest, TRANSACTION_POSTINGS_MAX - 1);
        assert!(ledger_core::is_valid_id(&last), "{last}");
        assert_eq!(posting_id("pay-7", 0), "pay-7:0");
        let rev = reversal_id(&longest);
        assert!(rev.len() <= TRANSACTION_ID_BYTES_MAX, "a reversal's id is itself a transaction id");
    }

    #[test]
    fn posting_metadata_names_the_transaction_and_fails_past_the_limit() -> Result<(), String> {
        let head = posting_metadata("pay-7", 0, 2, &json!({"order": "o-17"})).map_err(|e| format!("{e:?}"))?;
        assert_eq!(head, r#"{"metadata":{"order":"o-17"},"posting":0,"postings":2,"transaction":"pay-7"}"#);
        let tail = posting_metadata("pay-7", 1, 2, &json!({"order": "o-17"})).map_err(|e| format!("{e:?}"))?;
        assert_eq!(tail, r#"{"posting":1,"transaction":"pay-7"}"#);
        let big = json!({"k": "x".repeat(METADATA_BYTES_MAX - 20)});
        assert!(posting_metadata("pay-7", 0, 2, &big).is_err(), "the wrapped metadata is over the limit");
        assert!(posting_metadata("pay-7", 1, 2, &big).is_ok(), "only posting 0 carries the metadata");
        Ok(())
    }
}
