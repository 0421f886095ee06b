//! Errors as `application/problem+json` (RFC 9457) with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use group_core::GroupCode;
use ledger_core::ResultCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::backend::{BackendError, Missing};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $s:literal, )*) => {
        /// Every `code` an error response can carry. The ledger rule codes are
        /// exactly `ledger_core::ResultCode::as_str()`; never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The stable snake_case string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $s, )*
                }
            }

            /// Parses [`ErrorCode::as_str`] output.
            pub fn parse(s: &str) -> Option<ErrorCode> {
                match s {
                    $( $s => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    // ---- request shape ----
    /// The body is not syntactically valid JSON.
    MalformedJson => "malformed_json",
    /// The body has a field the endpoint does not know.
    UnknownField => "unknown_field",
    /// A required field is missing.
    MissingField => "missing_field",
    /// A field has the wrong JSON type.
    InvalidType => "invalid_type",
    /// The body does not match the endpoint's schema in another way.
    InvalidBody => "invalid_body",
    /// The request body is larger than the body limit.
    BodyTooLarge => "body_too_large",
    /// The request has a body whose `Content-Type` is not JSON.
    UnsupportedMediaType => "unsupported_media_type",
    /// The body was not received in time.
    RequestTimeout => "request_timeout",
    /// A query parameter is unknown or malformed.
    InvalidQuery => "invalid_query",
    /// A path parameter is malformed.
    InvalidPath => "invalid_path",
    /// `metadata` is not a JSON object.
    InvalidMetadata => "invalid_metadata",
    /// A batch has no transfers.
    BatchEmpty => "batch_empty",
    /// A record is larger than `RECORD_BYTES_MAX` (or its key or headers exceed their limits).
    RecordTooLarge => "record_too_large",
    /// A produce request has no records or more than `RECORDS_PER_PRODUCE_MAX`.
    TooManyRecords => "too_many_records",
    /// A topic name is empty, too long or has a character outside `[A-Za-z0-9._-]`.
    InvalidTopicName => "invalid_topic_name",
    /// A partition count is 0 or above `TOPIC_PARTITIONS_MAX`.
    InvalidPartitions => "invalid_partitions",
    /// No route for this path.
    NotFound => "not_found",
    /// The path exists but not with this method.
    MethodNotAllowed => "method_not_allowed",
    /// The `Host` header is not in the gateway's `--allowed-hosts` list (DNS-rebinding protection).
    HostNotAllowed => "host_not_allowed",
    // ---- resources ----
    /// No topic with this name.
    TopicNotFound => "topic_not_found",
    /// The topic has no such partition.
    PartitionNotFound => "partition_not_found",
    /// A topic with this name exists with another partition count.
    TopicExists => "topic_exists",
    /// The built-in `ledger` topic cannot be deleted (409).
    TopicProtected => "topic_protected",
    /// No cluster node with this id.
    NodeNotFound => "node_not_found",
    /// A reversal of a transfer that is not posted (pending: void it; voided or expired: nothing
    /// moved).
    NotPosted => "not_posted",
    /// No transaction with this id (issue 17).
    TransactionNotFound => "transaction_not_found",
    /// A reversal of a transfer that is a posting of a transaction: revert the transaction (409).
    PartOfTransaction => "part_of_transaction",
    /// An offset or index is outside what is stored.
    OutOfRange => "out_of_range",
    /// The backend rejected an argument.
    InvalidArgument => "invalid_argument",
    // ---- admin ----
    /// Admin endpoints are disabled (no admin token configured).
    AdminDisabled => "admin_disabled",
    /// No credentials, or unknown ones: a missing `Authorization: Bearer` header, an unknown or
    /// revoked API key, or a wrong admin token (401).
    Unauthorized => "unauthorized",
    /// The API key is known but lacks the scope the operation needs, or the account is outside
    /// the key's account prefix (403).
    Forbidden => "forbidden",
    /// A scope of a new API key is not one the gateway knows (422).
    InvalidScope => "invalid_scope",
    /// No live API key with this id (404).
    KeyNotFound => "key_not_found",
    /// No webhook subscription with this id (404).
    WebhookNotFound => "webhook_not_found",
    /// A webhook subscription with this id exists (409).
    WebhookExists => "webhook_exists",
    /// The API key is over its rate of requests (429, `Retry-After`).
    RateLimited => "rate_limited",
    /// The API key has its most requests in flight (429, `Retry-After`).
    InFlightExceeded => "in_flight_exceeded",
    // ---- availability ----
    /// Too many requests in flight; retry after `Retry-After` seconds.
    Overloaded => "overloaded",
    /// No leader is reachable (e.g. during an election); retry after `Retry-After` seconds.
    Unavailable => "unavailable",
    /// The backend did not answer in time; a write may or may not have been applied — retry with the same id.
    Timeout => "timeout",
    /// A bug.
    Internal => "internal",
    /// `min_index` is past the log's last applied index: no write can have produced it. Not
    /// retryable as is; the problem's `current_index` is the log's index now.
    IndexNotReached => "index_not_reached",
    /// No replica applied `min_index` within the bounded wait (the entry exists and will be
    /// applied); retry after `Retry-After` seconds.
    IndexNotApplied => "index_not_applied",
    // ---- ledger rules (ledger_core::ResultCode) ----
    /// The id is already used with a different body.
    IdConflict => "id_conflict",
    /// An id is empty, too long or has a character outside `[A-Za-z0-9._:-]`.
    InvalidId => "invalid_id",
    /// The currency is not 3–12 uppercase ASCII letters.
    InvalidCurrency => "invalid_currency",
    /// The amount is not an integer in `1..=2^63-1`.
    InvalidAmount => "invalid_amount",
    /// `timeout_ms` is 0, too large, or given on a non-pending transfer.
    InvalidTimeout => "invalid_timeout",
    /// Canonical metadata is larger than `METADATA_BYTES_MAX`.
    MetadataTooLarge => "metadata_too_large",
    /// An account does not exist.
    AccountNotFound => "account_not_found",
    /// Debit and credit account are the same.
    SameAccount => "same_account",
    /// An account does not have the transfer's currency.
    CurrencyMismatch => "currency_mismatch",
    /// The debit would take a non-overdraft account below zero available.
    InsufficientFunds => "insufficient_funds",
    /// A balance would cross its ceiling.
    Overflow => "overflow",
    /// A ledger capacity limit is reached.
    LimitExceeded => "limit_exceeded",
    /// The batch has more than `BATCH_TRANSFERS_MAX` transfers.
    BatchTooLarge => "batch_too_large",
    /// Atomic batch: this item was not applied because another item failed.
    LinkedEventFailed => "linked_event_failed",
    /// No transfer with this id.
    TransferNotFound => "transfer_not_found",
    /// The transfer is not a pending transfer.
    NotPending => "not_pending",
    /// The pending transfer was already posted (with another amount, or a void was asked).
    AlreadyPosted => "already_posted",
    /// The pending transfer was already voided.
    AlreadyVoided => "already_voided",
    /// The pending transfer expired.
    PendingExpired => "pending_expired",
    /// The post amount is larger than the pending amount.
    AmountExceedsPending => "amount_exceeds_pending",
    /// A string holds a NUL, a lone surrogate or a control character where none is allowed
    /// (`ledger_core::check_text`; 400).
    InvalidText => "invalid_text",
    /// The credit would take an account with `credits_must_not_exceed_debits` past its debits
    /// (rule 10).
    ExceedsDebits => "exceeds_debits",
    /// `credits_must_not_exceed_debits` without `allow_overdraft` (rule 10).
    FlagsAreMutuallyExclusive => "flags_are_mutually_exclusive",
    /// A closing transfer that is not pending (rule 11).
    ClosingTransferMustBePending => "closing_transfer_must_be_pending",
    /// The debit account is closed (rule 11).
    DebitAccountClosed => "debit_account_closed",
    /// The credit account is closed (rule 11).
    CreditAccountClosed => "credit_account_closed",
    // ---- consumer groups (group_core::GroupCode, docs/CONSUMER_GROUPS.md) ----
    /// A group id is empty, too long or has a character outside `[A-Za-z0-9._-]`.
    InvalidGroupId => "invalid_group_id",
    /// A malformed group request: no topics, the same partition twice, a bad reset target.
    InvalidRequest => "invalid_request",
    /// `session_timeout_ms` is outside 1000..=300000.
    InvalidSessionTimeout => "invalid_session_timeout",
    /// No group with this id.
    UnknownGroup => "unknown_group",
    /// The member is not (or no longer) in the group: it left or expired. Join again.
    UnknownMember => "unknown_member",
    /// A topic does not exist.
    UnknownTopic => "unknown_topic",
    /// A topic has no such partition.
    UnknownPartition => "unknown_partition",
    /// The commit names a generation that is not the group's current one; heartbeat to learn it.
    StaleGeneration => "stale_generation",
    /// The member does not own the partition in the current generation.
    NotOwner => "not_owner",
    /// An offset is past the partition's end offset.
    OffsetOutOfRange => "offset_out_of_range",
    /// An offset is below the committed one (only an admin reset moves it back).
    OffsetRegression => "offset_regression",
    /// Offsets are reset only while the group has no members.
    GroupNotEmpty => "group_not_empty",
}

impl ErrorCode {
    /// Whether the same request may succeed if sent again unchanged, later: the 503s and 429s
    /// (after `Retry-After`) and `request_timeout`. Every other code needs a change of the request or
    /// of the state first.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Overloaded
                | ErrorCode::Unavailable
                | ErrorCode::Timeout
                | ErrorCode::IndexNotApplied
                | ErrorCode::RequestTimeout
                | ErrorCode::RateLimited
                | ErrorCode::InFlightExceeded
        )
    }
}

impl From<ResultCode> for ErrorCode {
    fn from(c: ResultCode) -> Self {
        // Every failure code of the core has a twin here (unit-tested);
        // success codes never become errors.
        ErrorCode::parse(c.as_str()).unwrap_or(ErrorCode::Internal)
    }
}

/// The body of every error response (`application/problem+json`).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:ledger:problem:insufficient_funds",
    "title": "Insufficient funds",
    "status": 422,
    "detail": "the debit would take account 'alice' below zero available",
    "code": "insufficient_funds",
    "retryable": false
}))]
pub struct Problem {
    /// `urn:ledger:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short human summary of the problem kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// True when the same request may succeed if sent again unchanged later (after `Retry-After`
    /// when given): `overloaded`, `unavailable`, `timeout`, `index_not_applied`,
    /// `request_timeout`, `rate_limited`, `in_flight_exceeded`. False for every other code.
    pub retryable: bool,
    /// With `index_not_reached`: the log's last applied index now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_index: Option<u64>,
}

/// An error answered as problem+json.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: ErrorCode,
    /// Human explanation.
    pub detail: String,
    /// `Retry-After` seconds, for 503s.
    pub retry_after_secs: Option<u64>,
    /// The problem's `current_index` (and the `Ledger-Index` header), for `index_not_reached`.
    pub current_index: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), retry_after_secs: None, current_index: None }
    }

    /// 400.
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 422.
    pub fn unprocessable(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 404.
    pub fn not_found(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: ErrorCode, detail: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            detail: detail.into(),
            retry_after_secs: Some(retry_after_secs.max(1)),
            current_index: None,
        }
    }

    /// 500.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, detail)
    }

    /// The HTTP answer to a ledger rule violation.
    pub fn from_rule(code: ResultCode, detail: impl Into<String>) -> Self {
        let status = match code {
            ResultCode::IdConflict => StatusCode::CONFLICT,
            ResultCode::InvalidText => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, code.into(), detail)
    }

    /// The HTTP answer to a backend failure. `Unavailable` and `Timeout`
    /// become 503 with `Retry-After` (never another 5xx).
    pub fn from_backend(e: &BackendError, default_retry_after_secs: u64) -> Self {
        match e {
            BackendError::Unavailable { retry_after_ms } => Self::unavailable(
                ErrorCode::Unavailable,
                "no leader is reachable; retry later",
                retry_after_ms.div_ceil(1000).max(default_retry_after_secs),
            ),
            BackendError::Timeout => Self::unavailable(
                ErrorCode::Timeout,
                "the backend did not answer in time; a write may or may not have been applied: \
                 retry it with the same id",
                default_retry_after_secs,
            ),
            BackendError::NotFound(what, msg) => {
                let code = match what {
                    Missing::Topic => ErrorCode::TopicNotFound,
                    Missing::Partition => ErrorCode::PartitionNotFound,
                    Missing::Node => ErrorCode::NodeNotFound,
                    Missing::Key => ErrorCode::KeyNotFound,
                    Missing::Webhook => ErrorCode::WebhookNotFound,
                };
                Self::not_found(code, msg.clone())
            }
            BackendError::InvalidArgument(m) => Self::unprocessable(ErrorCode::InvalidArgument, m.clone()),
            BackendError::OutOfRange(m) => Self::unprocessable(ErrorCode::OutOfRange, m.clone()),
            BackendError::AlreadyExists(m) => Self::new(StatusCode::CONFLICT, ErrorCode::TopicExists, m.clone()),
            BackendError::Internal(m) => Self::internal(m.clone()),
            BackendError::Group(code, m) => Self::from_group(*code, m.clone()),
            BackendError::IndexNotReached { min_index, current } => ApiError {
                current_index: Some(*current),
                ..Self::unprocessable(
                    ErrorCode::IndexNotReached,
                    format!(
                        "min_index {min_index} is past the log's last applied index {current}: no write has \
                         produced it; pass the Ledger-Index of a write you made"
                    ),
                )
            },
            BackendError::IndexNotApplied { min_index, retry_after_ms } => Self::unavailable(
                ErrorCode::IndexNotApplied,
                format!("no replica applied index {min_index} within the read's wait; it exists: retry later"),
                retry_after_ms.div_ceil(1000).max(default_retry_after_secs),
            ),
        }
    }

    /// The HTTP answer to a consumer-group rule failure: 400 for malformed input, 404 for
    /// unknown things, 409 for fencing and state conflicts, 422 for a limit.
    pub fn from_group(code: GroupCode, detail: impl Into<String>) -> Self {
        use GroupCode as G;
        let status = match code {
            G::InvalidGroupId | G::InvalidRequest | G::InvalidSessionTimeout | G::OffsetOutOfRange => {
                StatusCode::BAD_REQUEST
            }
            G::UnknownGroup | G::UnknownMember | G::UnknownTopic | G::UnknownPartition => StatusCode::NOT_FOUND,
            G::StaleGeneration | G::NotOwner | G::OffsetRegression | G::GroupNotEmpty => StatusCode::CONFLICT,
            G::LimitExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            G::Ok => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let code = if code.is_ok() {
            ErrorCode::Internal
        } else {
            ErrorCode::parse(code.as_str()).unwrap_or(ErrorCode::Internal)
        };
        Self::new(status, code, detail)
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        Problem {
            type_: format!("urn:ledger:problem:{}", self.code.as_str()),
            title: title(self.code),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            retryable: self.code.retryable(),
            current_index: self.current_index,
        }
    }
}

/// A readable title from a code: `insufficient_funds` → `Insufficient funds`.
fn title(code: ErrorCode) -> String {
    let s = code.as_str().replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(ix) = self.current_index {
            resp.headers_mut().insert(crate::routes::LEDGER_INDEX, HeaderValue::from(ix));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ledger_failure_code_has_an_error_code_with_the_same_string() {
        for &c in ResultCode::ALL {
            if c.is_success() {
                continue;
            }
            let e = ErrorCode::parse(c.as_str());
            assert_eq!(e.map(ErrorCode::as_str), Some(c.as_str()), "{c}");
        }
    }

    #[test]
    fn every_group_failure_code_has_an_error_code_and_a_4xx_status() {
        for &c in GroupCode::ALL {
            if c.is_ok() {
                continue;
            }
            let e = ApiError::from_group(c, "x");
            assert_eq!(e.code.as_str(), c.as_str(), "{c}");
            assert!(e.status.is_client_error(), "{c}: {}", e.status);
        }
        assert_eq!(ApiError::from_group(GroupCode::StaleGeneration, "x").status, StatusCode::CONFLICT);
        assert_eq!(ApiError::from_group(GroupCode::NotOwner, "x").status, StatusCode::CONFLICT);
        assert_eq!(ApiError::from_group(GroupCode::UnknownMember, "x").status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn error_code_serde_name_matches_as_str() {
        for &c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).expect("serializes");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn unavailable_always_carries_retry_after_of_at_least_one_second() {
        let e = ApiError::from_backend(&BackendError::Unavailable { retry_after_ms: 0 }, 1);
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after_secs, Some(1));
        let e = ApiError::from_backend(&BackendError::Unavailable { retry_after_ms: 2500 }, 1);
        assert_eq!(e.retry_after_secs, Some(3));
        assert_eq!(title(ErrorCode::InsufficientFunds), "Insufficient funds");
    }

    #[test]
    fn retryable_codes_are_exactly_the_503s_the_429s_and_request_timeout() {
        let e = ApiError::from_backend(&BackendError::IndexNotApplied { min_index: 9, retry_after_ms: 1000 }, 1);
        assert_eq!(
            (e.status, e.code, e.problem().retryable),
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::IndexNotApplied, true)
        );
        let e = ApiError::from_backend(&BackendError::IndexNotReached { min_index: 9, current: 4 }, 1);
        assert!(e.status.is_client_error() && !e.problem().retryable);
        assert_eq!(e.problem().current_index, Some(4));
        let retryable: Vec<&str> = ErrorCode::ALL.iter().filter(|c| c.retryable()).map(|c| c.as_str()).collect();
        assert_eq!(
            retryable,
            [
                "request_timeout",
                "rate_limited",
                "in_flight_exceeded",
                "overloaded",
                "unavailable",
                "timeout",
                "index_not_applied"
            ]
        );
    }
}
