//! `/v1/transfers`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ledger_core::{Command, NewTransfer, Outcome, ResultCode, TransferResult};

use super::{read_json, write_json};
use crate::auth::{MaybeCaller, check_account, prefix_of};
use crate::backend::ReadConsistency;
use crate::dto::{
    BatchItem, BatchResponse, CreateTransferRequest, CreateTransfersRequest, ItemResult, PostPendingRequest, ReadQuery,
    Resolution, Transfer, read_consistency,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::limits::BATCH_TRANSFERS_MAX;
use crate::openapi::{BatchErrors, CreateTransferErrors, PostVoidErrors, TransferListErrors, TransferReadErrors};
use crate::server::AppState;
use crate::validate;

fn rule_detail(code: ResultCode, t: &NewTransfer) -> String {
    match code {
        ResultCode::IdConflict => format!("transfer '{}' already exists with a different body", t.id),
        ResultCode::AccountNotFound => {
            format!("account '{}' or '{}' does not exist", t.debit_account_id, t.credit_account_id)
        }
        ResultCode::SameAccount => "the debit and credit accounts are the same".to_owned(),
        ResultCode::CurrencyMismatch => format!("an account does not have currency {}", t.currency),
        ResultCode::InsufficientFunds if t.flags.balancing_debit => {
            format!("account '{}' has nothing available to move (balancing_debit)", t.debit_account_id)
        }
        ResultCode::InsufficientFunds => {
            format!("the debit would take account '{}' below zero available", t.debit_account_id)
        }
        ResultCode::ExceedsDebits => format!(
            "the credit would take account '{}' (credits_must_not_exceed_debits) past its debits",
            t.credit_account_id
        ),
        ResultCode::DebitAccountClosed => format!("account '{}' is closed", t.debit_account_id),
        ResultCode::CreditAccountClosed => format!("account '{}' is closed", t.credit_account_id),
        other => format!("transfer '{}' was not created: {other}", t.id),
    }
}

/// Create a transfer (posted at once, or pending with `pending: true`).
///
/// Idempotent on `id` forever: an identical body answers 200 with the
/// original result and `Idempotent-Replayed: true`; a different body
/// answers 409 `id_conflict`. A rule violation answers 422 with the rule's
/// code and creates nothing (the id stays free).
#[utoipa::path(post, path = "/v1/transfers", tag = "transfers", request_body = CreateTransferRequest,
    responses(
        (status = 201, description = "Created.", body = Transfer,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        (status = 200, description = "Identical replay: the original result.", body = Transfer,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true`."))),
        CreateTransferErrors,
    ))]
pub async fn create_transfer(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiJson(req): ApiJson<CreateTransferRequest>,
) -> Result<Response, ApiError> {
    let t = validate::new_transfer(&req, None)?;
    check_account(&caller, &t.debit_account_id)?;
    let cmd = Command::CreateTransfer(t);
    let applied = st.call(st.backend().submit(&cmd)).await?;
    let Command::CreateTransfer(t) = &cmd else {
        return Err(ApiError::internal("a transfer command changed kind"));
    };
    let Outcome::Transfer(r) = applied.value else {
        return Err(ApiError::internal("unexpected outcome for CreateTransfer"));
    };
    let (status, replayed) = match r.code {
        ResultCode::Created => (StatusCode::CREATED, false),
        ResultCode::Exists => (StatusCode::OK, true),
        code => return Err(ApiError::from_rule(code, rule_detail(code, t))),
    };
    let Some(d) = r.decision else {
        return Err(ApiError::internal("a created transfer has no decision"));
    };
    Ok(write_json(status, &Transfer::from_created(t, &d), applied.index, replayed))
}

/// Create up to 8190 transfers in one log entry.
///
/// One result per item, in order. With `atomic: true` either every item is
/// `created`/`exists` or none is applied: the failing item reports its code
/// and every other item `linked_event_failed`. Items are validated first: a
/// malformed item rejects the whole request with 422 (the detail names it).
#[utoipa::path(post, path = "/v1/transfers/batch", tag = "transfers", request_body = CreateTransfersRequest,
    responses(
        (status = 200, description = "Decided (see each item's result).", body = BatchResponse,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        BatchErrors,
    ))]
pub async fn create_transfers(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiJson(req): ApiJson<CreateTransfersRequest>,
) -> Result<Response, ApiError> {
    let n = req.transfers.len();
    if n == 0 {
        return Err(ApiError::unprocessable(ErrorCode::BatchEmpty, "transfers must not be empty"));
    }
    if n > BATCH_TRANSFERS_MAX {
        return Err(ApiError::from_rule(
            ResultCode::BatchTooLarge,
            format!("{n} transfers; the limit is {BATCH_TRANSFERS_MAX}"),
        ));
    }
    let transfers = req
        .transfers
        .iter()
        .enumerate()
        .map(|(i, t)| validate::new_transfer(&t.0, Some(i)))
        .collect::<Result<Vec<_>, _>>()?;
    for t in &transfers {
        check_account(&caller, &t.debit_account_id)?;
    }
    let cmd = Command::CreateTransfers { transfers, atomic: req.atomic };
    let applied = st.call(st.backend().submit(&cmd)).await?;
    let (Outcome::Batch(b), Command::CreateTransfers { transfers, .. }) = (applied.value, cmd) else {
        return Err(ApiError::internal("unexpected outcome for CreateTransfers"));
    };
    if b.code == ResultCode::BatchTooLarge {
        return Err(ApiError::from_rule(ResultCode::BatchTooLarge, format!("the ledger rejected {n} transfers")));
    }
    if b.results.len() != transfers.len() {
        return Err(ApiError::internal("the batch result does not have one result per item"));
    }
    let results = transfers
        .iter()
        .zip(b.results.iter())
        .map(|(t, r): (&NewTransfer, &TransferResult)| {
            let (result, code) = match r.code {
                ResultCode::Created => (ItemResult::Created, None),
                ResultCode::Exists => (ItemResult::Exists, None),
                other => (ItemResult::Failed, Some(ErrorCode::from(other))),
            };
            let transfer = match result {
                ItemResult::Failed => None,
                _ => r.decision.as_ref().map(|d| Transfer::from_created(t, d)),
            };
            BatchItem { id: t.id.clone(), result, code, transfer }
        })
        .collect();
    let body = BatchResponse { results, index: applied.index };
    Ok(write_json(StatusCode::OK, &body, applied.index, false))
}

/// Get a transfer with its current status.
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers",
    params(("id" = String, Path, description = "Transfer id.", example = "t-1001"), ReadQuery),
    responses(
        (status = 200, description = "The transfer.", body = Transfer,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        TransferReadErrors,
    ))]
pub async fn get_transfer(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    validate::id(&id, "id")?;
    let read = st.call(st.backend().transfer(&id, read_consistency(q.consistency, q.min_index))).await?;
    match read.value {
        // A prefix key sees the transfers of its accounts only.
        Some(t)
            if prefix_of(&caller)
                .is_none_or(|p| t.debit_account_id.starts_with(p) || t.credit_account_id.starts_with(p)) =>
        {
            Ok(read_json(&Transfer::from(&t), read.applied_index))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("transfer '{id}' is between accounts outside this key's account prefix"),
        )),
        None => Err(ApiError::not_found(ErrorCode::TransferNotFound, format!("no transfer '{id}'"))),
    }
}

async fn resolve(st: &AppState, caller: &MaybeCaller, id: String, cmd: Command) -> Result<Response, ApiError> {
    // A prefix key posts and voids only what its accounts would pay: the pending transfer is
    // read (linearizably: it may have just been made) and its debit account checked.
    if prefix_of(caller).is_some()
        && let Some(t) = st.call(st.backend().transfer(&id, ReadConsistency::Strong)).await?.value
    {
        check_account(caller, &t.debit_account_id)?;
    }
    let applied = st.call(st.backend().submit(&cmd)).await?;
    let Outcome::Transfer(r) = applied.value else {
        return Err(ApiError::internal("unexpected outcome for a post/void"));
    };
    let replayed = match r.code {
        ResultCode::Posted | ResultCode::Voided => false,
        ResultCode::Exists => true,
        ResultCode::TransferNotFound => {
            return Err(ApiError::not_found(ErrorCode::TransferNotFound, format!("no transfer '{id}'")));
        }
        code => return Err(ApiError::from_rule(code, format!("transfer '{id}': {code}"))),
    };
    let Some(d) = r.decision else {
        return Err(ApiError::internal("a resolved transfer has no decision"));
    };
    Ok(write_json(StatusCode::OK, &Resolution::new(&id, &d), applied.index, replayed))
}

/// Post a pending transfer: the full amount, or `amount` (the rest is released).
///
/// Idempotent: the same post again answers 200 with the original decision
/// and `Idempotent-Replayed: true`. The body is optional.
#[utoipa::path(post, path = "/v1/transfers/{id}/post", tag = "transfers",
    params(("id" = String, Path, description = "Pending transfer id.", example = "t-1002")),
    request_body(content = Option<PostPendingRequest>, description = "Optional; absent = post the full amount."),
    responses(
        (status = 200, description = "Posted (or an identical replay).", body = Resolution,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true` on a replay."))),
        PostVoidErrors,
    ))]
pub async fn post_pending(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<PostPendingRequest>,
) -> Result<Response, ApiError> {
    validate::id(&id, "id")?;
    let amount = match body.and_then(|b| b.amount) {
        Some(n) => Some(validate::amount(&n, "amount")?),
        None => None,
    };
    resolve(&st, &caller, id.clone(), Command::PostPending { pending_id: id, amount }).await
}

/// Void a pending transfer, releasing its funds.
///
/// Idempotent: the same void again answers 200 with the original decision
/// and `Idempotent-Replayed: true`. No body.
#[utoipa::path(post, path = "/v1/transfers/{id}/void", tag = "transfers",
    params(("id" = String, Path, description = "Pending transfer id.", example = "t-1002")),
    responses(
        (status = 200, description = "Voided (or an identical replay).", body = Resolution,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true` on a replay."))),
        PostVoidErrors,
    ))]
pub async fn void_pending(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(_body): OptionalJson<EmptyBody>,
) -> Result<Response, ApiError> {
    validate::id(&id, "id")?;
    resolve(&st, &caller, id.clone(), Command::VoidPending { pending_id: id }).await
}

/// The void endpoint takes no fields (an empty body or `{}`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// Query parameters of `GET /v1/transfers`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTransfersQuery {
    /// Only transfers debiting or crediting this account. The cursor is then a version of that
    /// account (its history holds one record per transfer touching it).
    #[param(example = "alice")]
    pub account_id: Option<String>,
    /// Only transfers with this status as of `at_index`.
    pub status: Option<crate::dto::Status>,
    /// Only transfers created at this log index or later.
    #[param(example = 1)]
    pub from_index: Option<u64>,
    /// Only transfers created at this log index or earlier.
    #[param(example = 42)]
    pub to_index: Option<u64>,
    /// Only transfers created at this log time (ms since the epoch) or later.
    #[param(example = 1_764_000_000_000_u64)]
    pub from_ms: Option<u64>,
    /// Only transfers created at this log time (ms since the epoch) or earlier.
    #[param(example = 1_765_000_000_000_u64)]
    pub to_ms: Option<u64>,
    /// Only transfers whose metadata has this member... (with `metadata_value`).
    #[param(example = "order")]
    pub metadata_key: Option<String>,
    /// ...with this value: a string equal to it, or a number, boolean or null written as it.
    #[param(example = "o-17")]
    pub metadata_value: Option<String>,
    /// Cursor: the `next` of the previous page (absent: from the first transfer).
    #[param(example = 99)]
    pub after: Option<u64>,
    /// The transfers as of this log index: the `at_index` of the first page, so that every page
    /// of one listing shows the same moment (absent: the serving replica's latest).
    #[param(example = 42)]
    pub at_index: Option<u64>,
    /// Page size, `1..=1000` (default 100).
    #[param(example = 100, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `strong` for a linearizable read; default `follower`.
    pub consistency: Option<crate::dto::Consistency>,
    /// Read-your-writes: served by a replica that applied at least this log index.
    pub min_index: Option<u64>,
}

/// A page of transfers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TransferList {
    /// In creation order, each with its status as of `at_index`.
    pub transfers: Vec<Transfer>,
    /// Cursor for the next page (pass it as `after`, with `at_index` and the same filters);
    /// absent at the end. A page may hold fewer than `limit` transfers, even none, and still
    /// have one.
    pub next: Option<u64>,
    /// The log index every transfer and status of the page is as of.
    #[schema(example = 42)]
    pub at_index: u64,
}

/// List transfers, filtered, in creation order.
///
/// Filters by account, status, creation log index or log time (ranges are inclusive) and one
/// metadata member. Pages are as of one log index: pass the first page's `at_index` with each
/// `next`, and the pages agree with each other while writes go on (transfers created later are
/// left out; a pending transfer posted later shows as pending). A key limited to an account
/// prefix must name one of its accounts in `account_id`.
#[utoipa::path(get, path = "/v1/transfers", tag = "transfers", params(ListTransfersQuery),
    responses(
        (status = 200, description = "A page of transfers.", body = TransferList,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        TransferListErrors,
    ))]
pub async fn list_transfers(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<ListTransfersQuery>,
) -> Result<Response, ApiError> {
    let limit =
        super::page_limit(q.limit, crate::limits::TRANSFERS_PAGE_DEFAULT as usize, crate::limits::TRANSFER_PAGE_MAX)?;
    let metadata = super::metadata_filter(q.metadata_key, q.metadata_value)?;
    for (name, lo, hi) in [("index", q.from_index, q.to_index), ("ms", q.from_ms, q.to_ms)] {
        if let (Some(lo), Some(hi)) = (lo, hi)
            && lo > hi
        {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("from_{name} {lo} is past to_{name} {hi}"),
            ));
        }
    }
    let account_id = q.account_id.unwrap_or_default();
    if !account_id.is_empty() {
        validate::id(&account_id, "account_id")?;
    }
    if let Some(own) = prefix_of(&caller)
        && !account_id.starts_with(own)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("this key may list only the transfers of an account starting with '{own}': give account_id"),
        ));
    }
    let query = crate::backend::TransfersQuery {
        after: q.after,
        at_index: q.at_index.unwrap_or(0),
        limit,
        account_id: account_id.clone(),
        status: q.status.map(Into::into),
        created_index: (q.from_index, q.to_index),
        created_ms: (q.from_ms, q.to_ms),
        metadata,
    };
    // A pinned page needs a replica that applied its index.
    let min_index = super::pinned_min_index(q.min_index, q.at_index);
    let read = st.call(st.backend().list_transfers(query, read_consistency(q.consistency, min_index))).await?;
    let Some(page) = read.value else {
        return Err(ApiError::not_found(ErrorCode::AccountNotFound, format!("no account '{account_id}'")));
    };
    let body = TransferList {
        transfers: page.transfers.iter().map(Transfer::from).collect(),
        next: page.next,
        at_index: page.at_index,
    };
    Ok(read_json(&body, read.applied_index))
}
