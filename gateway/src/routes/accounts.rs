//! `/v1/accounts`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ledger_core::{AccountView, Balances, Command, HistoryFrom, Outcome, ResultCode};

use super::{read_json, write_json};
use crate::auth::{MaybeCaller, check_account};
use crate::dto::{Account, AccountQuery, CreateAccountRequest, HistoryPageBody, HistoryQuery, read_consistency};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::limits::{HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX};
use crate::openapi::{AccountListErrors, AccountReadErrors, CreateAccountErrors, HistoryErrors};
use crate::server::AppState;
use crate::validate;

/// Create an account.
///
/// Idempotent on `id`: an identical body answers 200 with the account as
/// originally created and `Idempotent-Replayed: true`; a different body
/// answers 409 `id_conflict`. The body shows the account as created (zero
/// balances); `GET` it for current balances.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = CreateAccountRequest,
    responses(
        (status = 201, description = "Created.", body = Account,
            headers(("Ledger-Index" = u64, description = "Log index of the write."))),
        (status = 200, description = "Identical replay: the account as originally created.", body = Account,
            headers(("Ledger-Index" = u64, description = "Log index of the write."),
                    ("Idempotent-Replayed" = String, description = "`true`."))),
        CreateAccountErrors,
    ))]
pub async fn create_account(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiJson(req): ApiJson<CreateAccountRequest>,
) -> Result<Response, ApiError> {
    let acct = validate::new_account(&req)?;
    check_account(&caller, &acct.id)?;
    let applied = st.call(st.backend().submit(&Command::CreateAccount(acct.clone()))).await?;
    let Outcome::Account(r) = applied.value else {
        return Err(ApiError::internal("unexpected outcome for CreateAccount"));
    };
    let (status, replayed) = match r.code {
        ResultCode::Created => (StatusCode::CREATED, false),
        ResultCode::Exists => (StatusCode::OK, true),
        code => return Err(ApiError::from_rule(code, account_rule_detail(code, &acct.id))),
    };
    let (created_index, created_timestamp_ms) = r.created.unwrap_or((applied.index, 0));
    let view = AccountView {
        id: acct.id.as_str().into(),
        currency: acct.currency.as_str().into(),
        allow_overdraft: acct.allow_overdraft,
        credits_must_not_exceed_debits: acct.credits_must_not_exceed_debits,
        closed: false,
        metadata: acct.metadata.as_str().into(),
        created_index,
        created_timestamp_ms,
        balances: Balances::default(),
        balance: 0,
        available: 0,
        index: created_index,
        version: 0,
    };
    Ok(write_json(status, &Account::from(&view), applied.index, replayed))
}

fn account_rule_detail(code: ResultCode, id: &str) -> String {
    match code {
        ResultCode::IdConflict => format!("account '{id}' already exists with a different body"),
        other => format!("account '{id}' was not created: {other}"),
    }
}

/// Get an account with its balances.
///
/// `as_of_index` gives the balances as they were once that log index was
/// applied. `consistency=strong` reads linearizably; `min_index=N` reads
/// from a replica that applied at least N.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "Account id.", example = "alice"), AccountQuery),
    responses(
        (status = 200, description = "The account.", body = Account,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        AccountReadErrors,
    ))]
pub async fn get_account(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> Result<Response, ApiError> {
    validate::id(&id, "id")?;
    check_account(&caller, &id)?;
    let rc = read_consistency(q.consistency, q.min_index);
    let read = match q.as_of_index {
        Some(ix) => st.call(st.backend().account_as_of(&id, ix, rc)).await?,
        None => st.call(st.backend().account(&id, rc)).await?,
    };
    match read.value {
        Some(a) => Ok(read_json(&Account::from(&a), read.applied_index)),
        None => Err(ApiError::not_found(ErrorCode::AccountNotFound, format!("no account '{id}'"))),
    }
}

/// One page of an account's balance history (oldest first).
///
/// Pass the `next` of a page as `after` to get the following page.
#[utoipa::path(get, path = "/v1/accounts/{id}/transfers", tag = "accounts",
    params(("id" = String, Path, description = "Account id.", example = "alice"), HistoryQuery),
    responses(
        (status = 200, description = "A page of history.", body = HistoryPageBody,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        HistoryErrors,
    ))]
pub async fn account_history(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    validate::id(&id, "id")?;
    check_account(&caller, &id)?;
    let limit = super::page_limit(q.limit, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX)?;
    let from = q.after.map_or(HistoryFrom::Start, HistoryFrom::AfterVersion);
    let rc = read_consistency(q.consistency, q.min_index);
    let read = st.call(st.backend().account_transfers(&id, from, limit, rc)).await?;
    match read.value {
        Some(p) => Ok(read_json(&HistoryPageBody::from(&p), read.applied_index)),
        None => Err(ApiError::not_found(ErrorCode::AccountNotFound, format!("no account '{id}'"))),
    }
}

/// Query parameters of `GET /v1/accounts`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAccountsQuery {
    /// Only ids starting with this.
    #[param(example = "tenant-7:")]
    pub prefix: Option<String>,
    /// Only this currency.
    #[param(example = "USD")]
    pub currency: Option<String>,
    /// Only accounts whose metadata has this member... (with `metadata_value`).
    #[param(example = "tier")]
    pub metadata_key: Option<String>,
    /// ...with this value: a string equal to it, or a number, boolean or null written as it.
    #[param(example = "gold")]
    pub metadata_value: Option<String>,
    /// Cursor: the `next` of the previous page (absent: from the first account).
    #[param(example = 99)]
    pub after: Option<u32>,
    /// The accounts as of this log index: the `at_index` of the first page, so that every page
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

/// A page of accounts.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccountList {
    /// In creation order, as of `at_index`.
    pub accounts: Vec<Account>,
    /// Cursor for the next page (pass it as `after`, with `at_index`); absent at the end. A
    /// page may hold fewer than `limit` accounts, even none, and still have one.
    pub next: Option<u32>,
    /// The log index every account and balance of the page is as of.
    #[schema(example = 42)]
    pub at_index: u64,
}

/// List accounts, filtered, in creation order.
///
/// Filters by id prefix, currency and one metadata member. Pages are as of one log index: pass
/// the first page's `at_index` with each `next`, and the pages agree with each other while
/// writes go on (accounts created later are left out, balances are those of `at_index`). A key
/// limited to an account prefix lists only its accounts.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(ListAccountsQuery),
    responses(
        (status = 200, description = "A page of accounts.", body = AccountList,
            headers(("Ledger-Index" = u64, description = "Last log index applied by the serving replica."))),
        AccountListErrors,
    ))]
pub async fn list_accounts(
    State(st): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<ListAccountsQuery>,
) -> Result<Response, ApiError> {
    let limit =
        super::page_limit(q.limit, crate::limits::ACCOUNTS_PAGE_DEFAULT as usize, crate::limits::ACCOUNT_PAGE_MAX)?;
    let metadata = super::metadata_filter(q.metadata_key, q.metadata_value)?;
    let mut prefix = q.prefix.unwrap_or_default();
    if let Some(own) = crate::auth::prefix_of(&caller) {
        // A tenant's key lists its own accounts only: the longer of the two prefixes, when one
        // extends the other.
        if own.starts_with(prefix.as_str()) {
            prefix = own.to_owned();
        } else if !prefix.starts_with(own) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!("this key may list only accounts starting with '{own}'"),
            ));
        }
    }
    let query = crate::backend::AccountsQuery {
        after: q.after,
        at_index: q.at_index.unwrap_or(0),
        limit,
        id_prefix: prefix,
        currency: q.currency.unwrap_or_default(),
        metadata,
    };
    // A pinned page needs a replica that applied its index.
    let min_index = super::pinned_min_index(q.min_index, q.at_index);
    let read = st.call(st.backend().list_accounts(query, read_consistency(q.consistency, min_index))).await?;
    let page = read.value;
    let body = AccountList {
        accounts: page.accounts.iter().map(Account::from).collect(),
        next: page.next,
        at_index: page.at_index,
    };
    Ok(read_json(&body, read.applied_index))
}
