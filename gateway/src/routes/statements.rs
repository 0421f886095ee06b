//! `GET /v1/accounts/{id}/balances`: an account's statement over a log-index range (issue 17).
//!
//! Made of the reads that already exist: the account as of the index before the range (the
//! opening balances), as of its last index (the closing ones), and its history between them, a
//! page at a time. History up to a replica's applied index never changes, so the three reads
//! agree on any replica that applied the range's end (each after the first asks for it with
//! `min_index`).

use axum::extract::State;
use axum::response::Response;
use ledger_core::HistoryFrom;

use super::read_json;
use crate::auth::{MaybeCaller, check_account};
use crate::backend::ReadConsistency;
use crate::dto::{Account, Consistency, HistoryItem, read_consistency};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiPath, ApiQuery};
use crate::limits::{HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX};
use crate::openapi::StatementErrors;
use crate::server::AppState;
use crate::validate;

/// Query parameters of `GET /v1/accounts/{id}/balances`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// First log index of the statement (default 1: from the account's creation).
    #[param(example = 1, minimum = 1)]
    pub from_index: Option<u64>,
    /// Last log index of the statement (default: the serving replica's applied index, returned
    /// as `to_index`; pass it with `after` for the next pages).
    #[param(example = 42)]
    pub to_index: Option<u64>,
    /// Cursor: the `next` of the previous page (an account version).
    #[param(example = 100)]
    pub after: Option<u64>,
    /// Changes per page, `1..=1000` (default 100).
    #[param(example = 100, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `strong` for a linearizable read; default `follower`.
    pub consistency: Option<Consistency>,
    /// Read-your-writes: served by a replica that applied at least this log index.
    pub min_index: Option<u64>,
}

/// An account's statement: opening balances, the changes in the range, closing balances.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Statement {
    /// The account.
    pub account_id: String,
    /// First log index of the range.
    #[schema(example = 1)]
    pub from_index: u64,
    /// Last log index of the range.
    #[schema(example = 42)]
    pub to_index: u64,
    /// The account as of `from_index - 1`; absent if it did not exist yet (every balance 0).
    pub opening: Option<Account>,
    /// The account as of `to_index`.
    pub closing: Account,
    /// The balance changes with `from_index <= index <= to_index`, oldest first, each with the
    /// balances right after it.
    pub entries: Vec<HistoryItem>,
    /// Cursor for the next page (pass it as `after`, with the same `from_index` and `to_index`);
    /// absent at the end.
    pub next: Option<u64>,
}

/// An account's statement over a range of log indexes.
///
/// The balances before the range (`opening`), every change in it with the balances after each,
/// a page at a time, and the balances at its end (`closing`). Every account keeps its whole
/// history, so any range back to the account's creation can be asked for.
#[utoipa::path(get, path = "/v1/accounts/{id}/balances", tag = "accounts",
    params(("id" = String, Path, description = "Account id.", example = "alice"), StatementQuery),
    responses(
        (status = 200, description = "A page of the statement.", body = Statement,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        StatementErrors,
    ))]
pub async fn account_statement(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> Result<Response, ApiError> {
    validate::id(&id, "id")?;
    check_account(&caller, &id)?;
    let limit = super::page_limit(q.limit, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX)?;
    let from_index = q.from_index.unwrap_or(1);
    if from_index == 0 {
        return Err(ApiError::bad_request(ErrorCode::InvalidQuery, "from_index starts at 1"));
    }
    if let Some(to) = q.to_index
        && to < from_index
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("to_index {to} is before from_index {from_index}"),
        ));
    }
    let not_found = || ApiError::not_found(ErrorCode::AccountNotFound, format!("no account '{id}'"));
    // The closing balances first: without `to_index`, they fix the range's end.
    let min_index = super::pinned_min_index(q.min_index, q.to_index);
    let rc = read_consistency(q.consistency, min_index);
    let closing = match q.to_index {
        Some(to) => st.call(st.backend().account_as_of(&id, to, rc)).await?,
        None => st.call(st.backend().account(&id, rc)).await?,
    };
    let applied = closing.applied_index;
    let to_index = q.to_index.unwrap_or(applied);
    let closing = match closing.value {
        Some(a) => a,
        // Unknown now, or (with `to_index`) not created yet then: tell the two apart.
        None if q.to_index.is_some() => {
            let now = st.call(st.backend().account(&id, ReadConsistency::MinIndex(to_index))).await?;
            if now.value.is_none() {
                return Err(not_found());
            }
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::OutOfRange,
                format!("account '{id}' was created after to_index {to_index}"),
            ));
        }
        None => return Err(not_found()),
    };
    let same = ReadConsistency::MinIndex(to_index);
    let opening = st.call(st.backend().account_as_of(&id, from_index - 1, same)).await?.value;
    let from = match q.after {
        Some(v) => HistoryFrom::AfterVersion(v),
        None => HistoryFrom::AfterIndex(from_index - 1),
    };
    let page = st.call(st.backend().account_transfers(&id, from, limit, same)).await?;
    let Some(page) = page.value else { return Err(not_found()) };
    let mut next = page.next;
    let mut entries = Vec::with_capacity(page.entries.len());
    for e in &page.entries {
        if e.index > to_index {
            next = None;
            break;
        }
        if e.index >= from_index {
            entries.push(HistoryItem::from(e));
        }
    }
    if entries.last().is_some_and(|e| e.version >= closing.version) {
        next = None;
    }
    let body = Statement {
        account_id: id,
        from_index,
        to_index,
        opening: opening.as_ref().map(Account::from),
        closing: Account::from(&closing),
        entries,
        next,
    };
    Ok(read_json(&body, applied))
}
